//! `[network]` in `dtlint.toml`: the traffic the NetworkPolicies must allow.

use serde::Deserialize;

use crate::ports::PortSpec;

/// `[network]` in `dtlint.toml`: the traffic the policies must allow, and
/// nothing more.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// The namespace whose services are named without a prefix.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Peers whose edges are not compared (globs over peer names, e.g.
    /// `kube-system/kube-dns`, `linkerd/*`).
    #[serde(default)]
    pub ignore: Vec<String>,
    /// The expected edges.
    #[serde(default)]
    pub allow: Vec<AllowEdge>,
}

/// One expected edge: `from` may open `ports` on `to`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowEdge {
    /// A service name (`app.kubernetes.io/name`), `ns/name`, or `outside`.
    pub from: String,
    pub to: String,
    /// `8082/TCP`, `4433/UDP`, `8000-8010/TCP`, `*/TCP`; a bare number is TCP.
    pub ports: Vec<String>,
    /// Only in these environments (default: all). Checked outside any
    /// environment (plain source mode), such an edge is allowed, not required.
    #[serde(default)]
    pub environments: Vec<String>,
    /// Why the edge exists, for readers of the file.
    #[serde(default)]
    pub reason: Option<String>,
}

impl NetworkConfig {
    /// Check the port syntax; on error, a string to find the line by and the message.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for edge in &self.allow {
            for p in &edge.ports {
                PortSpec::parse(p).map_err(|m| (p.clone(), format!("network.allow: {m}")))?;
            }
            if edge.ports.is_empty() {
                return Err((
                    edge.to.clone(),
                    format!(
                        "network.allow from `{}` to `{}` lists no ports",
                        edge.from, edge.to
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Is this peer excluded from the comparison?
    pub fn ignores(&self, peer: &str) -> bool {
        self.ignore.iter().any(|g| {
            g == peer || globset::Glob::new(g).is_ok_and(|g| g.compile_matcher().is_match(peer))
        })
    }
}
