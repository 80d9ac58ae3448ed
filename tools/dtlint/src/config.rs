//! `dtlint.toml`: rule severities, environments, exclusions, exemptions.
//!
//! The file is optional; without it every rule runs at its default severity.
//! A bad config is a usage error (exit 2) naming the file and the line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::diag::Severity;

pub const FILE_NAME: &str = "dtlint.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{col}: {message}")]
    Invalid {
        path: String,
        line: usize,
        col: usize,
        message: String,
    },
}

/// A rule's severity as configured: a level, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level(pub Option<Severity>);

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Severity::parse_setting(&s).map(Level).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown severity `{s}`; expected error, warning, info or off"
            ))
        })
    }
}

/// One environment: where its overlays live and how strict it is.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Directory holding one overlay per service, e.g. `overlays/production`.
    pub overlays: String,
    /// Flux cluster directory, e.g. `clusters/production`.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Severity overrides for this environment.
    #[serde(default)]
    pub rules: BTreeMap<String, Level>,
    /// Minimum replicas for every workload.
    #[serde(default)]
    pub min_replicas: Option<i64>,
    /// Expected requests and limits of our own containers, by service
    /// (`app.kubernetes.io/name`), with `"*"` for every other service.
    #[serde(default)]
    pub resources: BTreeMap<String, Sizing>,
}

/// Requests and limits, e.g. `requests = { cpu = "50m", memory = "128Mi" }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sizing {
    #[serde(default)]
    pub requests: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
}

/// `[certificates]`: what the certificate rules accept.
///
/// ```toml
/// [certificates]
/// min-validity-days = 30
/// self-signed-environments = ["development"]
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Certificates {
    /// A certificate that expires within this many days is reported.
    #[serde(default = "default_min_validity_days")]
    pub min_validity_days: u32,
    /// Environments where a self-signed certificate is acceptable; unset
    /// means `development` (see [`Certificates::allows_self_signed`]).
    #[serde(default)]
    pub self_signed_environments: Option<Vec<String>>,
}

fn default_min_validity_days() -> u32 {
    30
}

impl Default for Certificates {
    fn default() -> Self {
        Self {
            min_validity_days: default_min_validity_days(),
            self_signed_environments: None,
        }
    }
}

impl Certificates {
    /// May a certificate in `env` be self-signed?
    pub fn allows_self_signed(&self, env: &str) -> bool {
        match &self.self_signed_environments {
            Some(envs) => envs.iter().any(|e| e == env),
            None => env == "development",
        }
    }
}

/// A finding that is accepted, with the reason why.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exemption {
    pub rule: String,
    /// Glob over the file path the finding points at (relative to the root).
    #[serde(default)]
    pub path: Option<String>,
    /// `Kind/name` of the resource, when only one resource is exempt.
    #[serde(default)]
    pub resource: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Globs (relative to the root) that are never read.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Default severity overrides.
    #[serde(default)]
    pub rules: BTreeMap<String, Level>,
    #[serde(default)]
    pub environments: BTreeMap<String, Environment>,
    #[serde(default, rename = "exemption")]
    pub exemptions: Vec<Exemption>,
    /// Container ports that carry QUIC and must be UDP.
    #[serde(default = "default_udp_ports")]
    pub udp_ports: Vec<i64>,
    /// Globs of service directories that must follow the seven-file pattern.
    #[serde(default)]
    pub service_dirs: Option<Vec<String>>,
    /// Globs excluded from `service_dirs`.
    #[serde(default)]
    pub service_dirs_skip: Option<Vec<String>>,
    /// Image prefixes of our own services: probe-path and similar house
    /// conventions are checked only for these; third-party sidecars only need
    /// the probes to exist.
    #[serde(default = "default_own_images")]
    pub own_images: Vec<String>,
    /// Largest file read, in bytes; bigger files are reported, not parsed.
    #[serde(default = "default_max_file_size")]
    pub max_file_size: u64,
    /// The expected traffic matrix (`traffic-matrix`, `dtlint graph`).
    #[serde(default)]
    pub network: Option<crate::netpol::NetworkConfig>,
    /// Globs (relative to the root) of the services' config contracts.
    #[serde(default = "default_contracts")]
    pub contracts: Vec<String>,
    /// Certificates found in Secrets (`certificate-self-signed`,
    /// `certificate-expiring`).
    #[serde(default)]
    pub certificates: Certificates,
    /// Bounds on overlay builds (`[render]`: allow-paths, timeout-seconds,
    /// max-output-bytes); see [`crate::render_guard`].
    #[serde(default)]
    pub render: crate::render_guard::RenderSettings,
    /// Where the file was read from, for messages.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// Environment names in the order `dtlint.toml` declares them: findings
    /// list their environments in this order (development, staging,
    /// production), not alphabetically.
    #[serde(skip)]
    environment_order: Vec<String>,
    /// `service_dirs` and `service_dirs_skip`, compiled once.
    #[serde(skip)]
    service_dir_globs: std::sync::OnceLock<(globset::GlobSet, globset::GlobSet)>,
}

/// The `[environments.*]` names of a `dtlint.toml` in the order they are
/// written (the map the config is read into sorts them).
fn declaration_order(text: &str) -> Vec<String> {
    #[derive(Deserialize)]
    struct Names {
        #[serde(default)]
        environments: BTreeMap<toml::Spanned<String>, toml::Value>,
    }
    let Ok(names) = toml::from_str::<Names>(text) else {
        return Vec::new();
    };
    let mut keys: Vec<_> = names.environments.into_keys().collect();
    keys.sort_by_key(|k| k.span().start);
    keys.into_iter().map(toml::Spanned::into_inner).collect()
}

fn default_udp_ports() -> Vec<i64> {
    vec![4433, 4434]
}

fn default_own_images() -> Vec<String> {
    vec!["ghcr.io/dark-tower/".into()]
}

fn default_max_file_size() -> u64 {
    16 * 1024 * 1024
}

fn default_contracts() -> Vec<String> {
    vec!["services/*/config-contract.toml".into()]
}

impl Config {
    /// The defaults used when there is no `dtlint.toml`.
    pub fn defaults() -> Self {
        Self {
            udp_ports: default_udp_ports(),
            own_images: default_own_images(),
            max_file_size: default_max_file_size(),
            contracts: default_contracts(),
            ..Self::default()
        }
    }

    pub fn service_dirs(&self) -> Vec<String> {
        self.service_dirs
            .clone()
            .unwrap_or_else(|| vec!["base/*".into()])
    }

    pub fn service_dirs_skip(&self) -> Vec<String> {
        self.service_dirs_skip
            .clone()
            .unwrap_or_else(|| vec!["base/platform".into(), "base/platform/**".into()])
    }

    /// The compiled `service_dirs` and `service_dirs_skip` globs. `*` stops
    /// at `/`: `base/*` is `base/ac-service`, not a kustomization nested
    /// inside it such as `base/ac-service/migrations`.
    pub fn service_dir_globs(&self) -> &(globset::GlobSet, globset::GlobSet) {
        self.service_dir_globs.get_or_init(|| {
            let compile = |pats: Vec<String>| {
                let mut b = globset::GlobSetBuilder::new();
                for p in pats {
                    // An invalid glob matches nothing, as before.
                    if let Ok(g) = globset::GlobBuilder::new(&p)
                        .literal_separator(true)
                        .build()
                    {
                        b.add(g);
                    }
                }
                b.build().unwrap_or_else(|_| globset::GlobSet::empty())
            };
            (
                compile(self.service_dirs()),
                compile(self.service_dirs_skip()),
            )
        })
    }

    /// Is `image` one of our own service images?
    pub fn is_own_image(&self, image: &str) -> bool {
        self.own_images
            .iter()
            .any(|p| image.starts_with(p.as_str()))
    }

    /// Read `dtlint.toml` from `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: display.clone(),
            source,
        })?;
        Self::parse(&text, &display).map(|mut c| {
            c.source = Some(path.to_path_buf());
            c
        })
    }

    pub fn parse(text: &str, display: &str) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            ConfigError::Invalid {
                path: display.to_string(),
                line,
                col,
                message: e.message().to_string(),
            }
        })?;
        for ex in &config.exemptions {
            if ex.reason.trim().is_empty() {
                return Err(ConfigError::Invalid {
                    path: display.to_string(),
                    line: find_line(text, &ex.rule),
                    col: 1,
                    message: format!("exemption for `{}` needs a non-empty reason", ex.rule),
                });
            }
        }
        if let Some(net) = &config.network
            && let Err((needle, message)) = net.validate()
        {
            return Err(ConfigError::Invalid {
                path: display.to_string(),
                line: find_line(text, &needle),
                col: 1,
                message,
            });
        }
        if !config.environments.is_empty()
            && let Some(unknown) = config
                .certificates
                .self_signed_environments
                .iter()
                .flatten()
                .find(|e| !config.environments.contains_key(e.as_str()))
        {
            return Err(ConfigError::Invalid {
                path: display.to_string(),
                line: find_line(text, "self-signed-environments"),
                col: 1,
                message: format!(
                    "`self-signed-environments` names `{unknown}`, which is not one of the [environments]"
                ),
            });
        }
        config.environment_order = declaration_order(text);
        config
            .environment_order
            .retain(|e| config.environments.contains_key(e));
        Ok(config)
    }

    /// Environments in declaration order (see [`Config::environment_order`]).
    pub fn environments_in_order(&self) -> impl Iterator<Item = (&str, &Environment)> {
        let declared = self
            .environment_order
            .iter()
            .filter_map(|n| Some((n.as_str(), self.environments.get(n)?)));
        // Environments added in code (tests) after parsing come last.
        let rest = self
            .environments
            .iter()
            .filter(|(n, _)| !self.environment_order.contains(n))
            .map(|(n, e)| (n.as_str(), e));
        declared.chain(rest)
    }

    /// Position of `env` in declaration order, for sorting.
    pub fn environment_rank(&self, env: &str) -> usize {
        self.environments_in_order()
            .position(|(n, _)| n == env)
            .unwrap_or(usize::MAX)
    }

    /// The environment whose overlay directory contains `path` (relative to the root).
    pub fn environment_of(&self, path: &str) -> Option<&str> {
        self.environments.iter().find_map(|(name, env)| {
            let dir = env.overlays.trim_end_matches('/');
            let cluster = env.cluster.as_deref().map(|c| c.trim_end_matches('/'));
            let inside = |d: &str| path == d || path.starts_with(&format!("{d}/"));
            (inside(dir) || cluster.is_some_and(inside)).then_some(name.as_str())
        })
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn find_line(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map_or(1, |i| i + 1)
}

/// Find `dtlint.toml` in `start` or its ancestors.
pub fn find(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join(FILE_NAME))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_severity_is_positioned() {
        let err = Config::parse("[rules]\nlatest-tag = \"loud\"\n", "dtlint.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("dtlint.toml:2:"), "{msg}");
        assert!(msg.contains("unknown severity `loud`"), "{msg}");
    }

    #[test]
    fn exemptions_need_a_reason() {
        let err = Config::parse(
            "[[exemption]]\nrule = \"latest-tag\"\nreason = \" \"\n",
            "dtlint.toml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("needs a non-empty reason"));
        let err = Config::parse("[[exemption]]\nrule = \"latest-tag\"\n", "d.toml").unwrap_err();
        assert!(err.to_string().contains("reason"), "{err}");
    }

    #[test]
    fn certificates_have_defaults_and_name_known_environments() {
        let c = Config::parse("[environments.staging]\noverlays = \"o/s\"\n", "d.toml").unwrap();
        assert_eq!(c.certificates.min_validity_days, 30);
        assert!(c.certificates.allows_self_signed("development"));
        assert!(!c.certificates.allows_self_signed("staging"));
        let c = Config::parse(
            "[environments.qa]\noverlays = \"o/q\"\n[certificates]\nmin-validity-days = 7\nself-signed-environments = [\"qa\"]\n",
            "d.toml",
        )
        .unwrap();
        assert_eq!(c.certificates.min_validity_days, 7);
        assert!(c.certificates.allows_self_signed("qa"));
        assert!(!c.certificates.allows_self_signed("development"));
        let err = Config::parse(
            "[environments.qa]\noverlays = \"o/q\"\n[certificates]\nself-signed-environments = [\"dev\"]\n",
            "d.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("d.toml:4:"), "{err}");
        assert!(err.contains("`dev`"), "{err}");
        let err = Config::parse("[certificates]\nmin_validity_days = 7\n", "d.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("min_validity_days"), "{err}");
    }

    #[test]
    fn environments_keep_their_declaration_order() {
        let c = Config::parse(
            "[environments.development]\noverlays = \"o/d\"\n[environments.staging]\noverlays = \"o/s\"\n[environments.production]\noverlays = \"o/p\"\n[environments.staging.resources]\n",
            "d.toml",
        )
        .unwrap();
        let names: Vec<&str> = c.environments_in_order().map(|(n, _)| n).collect();
        assert_eq!(names, ["development", "staging", "production"]);
        assert!(c.environment_rank("staging") < c.environment_rank("production"));
        assert_eq!(c.environment_rank("qa"), usize::MAX);
    }

    #[test]
    fn environments_match_by_directory() {
        let c = Config::parse(
            "[environments.production]\noverlays = \"overlays/production\"\ncluster = \"clusters/production\"\n",
            "d.toml",
        )
        .unwrap();
        assert_eq!(
            c.environment_of("overlays/production/gc/k.yaml"),
            Some("production")
        );
        assert_eq!(
            c.environment_of("clusters/production/apps.yaml"),
            Some("production")
        );
        assert_eq!(c.environment_of("overlays/production-old/x.yaml"), None);
    }
}
