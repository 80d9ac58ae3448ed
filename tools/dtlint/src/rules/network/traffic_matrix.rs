use std::collections::BTreeMap;

use dtlint_yaml::Span;

use crate::diag::{Finding, Label};
use crate::netpol::mesh::PROXY_INBOUND_PORT;
use crate::netpol::{Direction, Net, NetworkConfig, OUTSIDE, Policy, PortSpec, Proto};
use crate::rules::{Context, Merged, Rule, RuleMeta, declare_rule};
use crate::source::FileId;

declare_rule! {
    /// ## What it does
    /// Computes the traffic the NetworkPolicies actually allow between
    /// services (pods grouped by `app.kubernetes.io/name`), peers in other
    /// namespaces and `outside`, and compares it with the matrix declared
    /// in `dtlint.toml`. An edge A → B on a port exists only when A's
    /// egress and B's ingress both allow it, with Kubernetes' semantics
    /// (isolation by `policyTypes` and their defaults, empty selectors,
    /// `namespaceSelector` by `kubernetes.io/metadata.name`, `ipBlock` as
    /// outside, named ports resolved on the receiving container, `endPort`,
    /// TCP by default). A missing edge is reported at the `ingress` (or
    /// `egress`) of the policy that should open it; an extra one at the
    /// `ports`, `from`/`to` item or rule that opens it. `dtlint graph`
    /// prints the computed matrix.
    ///
    /// ```toml
    /// [network]
    /// namespace = "dark-tower"
    /// ignore = ["kube-system/kube-dns", "monitoring/prometheus", "linkerd/*"]
    ///
    /// [[network.allow]]
    /// from = "meeting-controller"
    /// to = "global-controller"
    /// ports = ["50051/TCP"]
    ///
    /// [[network.allow]]
    /// from = "redis"
    /// to = "redis"
    /// ports = ["6379/TCP", "16379/TCP"]
    /// environments = ["staging", "production"]   # required there only
    /// ```
    ///
    /// The rule is off until `[network]` is configured. Edges of services
    /// that have no pods among the checked files are not required.
    ///
    /// ## Why is this bad?
    /// A policy that opens a port too many is invisible until someone uses
    /// it; one that misses an edge breaks the service at deploy time. The
    /// matrix is the reviewed design; the policies must say exactly that.
    ///
    /// ## Example
    /// ```yaml
    /// # the matrix says meeting-controller -> global-controller 50051/TCP
    /// ingress:
    ///   - from:
    ///       - podSelector:
    ///           matchLabels:
    ///             app.kubernetes.io/name: meeting-controller
    ///     ports:
    ///       - protocol: TCP
    ///         port: 50052
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// ingress:
    ///   - from:
    ///       - podSelector:
    ///           matchLabels:
    ///             app.kubernetes.io/name: meeting-controller
    ///     ports:
    ///       - protocol: TCP
    ///         port: 50051
    /// ```
    ///
    /// ## References
    /// - Network policies: <https://kubernetes.io/docs/concepts/services-networking/network-policies/>
    /// - SPEC.md, "Manifests", the network matrix
    /// - `dtlint graph --format dot` to see the computed graph
    pub struct TrafficMatrix {
        id: "traffic-matrix",
        category: "network",
        severity: Error,
        summary: "the traffic NetworkPolicies allow differs from the matrix in dtlint.toml",
        needs: Repository,
    }
}

/// The ports of the edges the configuration expects in one environment.
struct Expected {
    required: BTreeMap<(String, String), Vec<PortSpec>>,
    /// Required plus the edges allowed without being required.
    allowed: BTreeMap<(String, String), Vec<PortSpec>>,
}

fn expected(cfg: &NetworkConfig, env: Option<&str>) -> Expected {
    let mut out = Expected {
        required: BTreeMap::new(),
        allowed: BTreeMap::new(),
    };
    for e in &cfg.allow {
        let applies =
            e.environments.is_empty() || env.is_some_and(|x| e.environments.iter().any(|y| y == x));
        let optional = env.is_none() && !e.environments.is_empty();
        if !applies && !optional {
            continue;
        }
        let ports: Vec<PortSpec> = e
            .ports
            .iter()
            .filter_map(|p| PortSpec::parse(p).ok())
            .collect();
        let key = (e.from.clone(), e.to.clone());
        out.allowed
            .entry(key.clone())
            .or_default()
            .extend(ports.iter().cloned());
        if applies {
            out.required.entry(key).or_default().extend(ports);
        }
    }
    out
}

fn joined(ports: &[PortSpec]) -> String {
    ports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The policy of a service that should open traffic in `dir`: its own
/// allow policy, else any policy that isolates it.
fn responsible<'n, 'i, 'a>(
    net: &'n Net<'i, 'a>,
    service: &str,
    dir: Direction,
) -> Option<&'n Policy<'i, 'a>> {
    let pods: Vec<_> = net.pods_of(service).collect();
    let selecting = |p: &&Policy<'_, '_>| pods.iter().any(|q| p.selects(q));
    net.policies
        .iter()
        .filter(selecting)
        .find(|p| !p.selects_all() && p.isolates(dir))
        .or_else(|| {
            net.policies
                .iter()
                .filter(selecting)
                .find(|p| !p.selects_all())
        })
        .or_else(|| {
            net.policies
                .iter()
                .filter(selecting)
                .find(|p| p.isolates(dir))
        })
}

/// A rule of `subject`'s policies that names `other` as a peer but opens
/// other ports: the port that was most likely changed.
fn near_miss(
    net: &Net<'_, '_>,
    subject: &str,
    dir: Direction,
    other: &str,
) -> Option<(FileId, Span, String)> {
    let others = net.peers_named(other);
    for s in net.pods_of(subject) {
        for o in &others {
            let Some(allowed) = net.allowed(s, dir, *o) else {
                continue;
            };
            let named: Vec<&(PortSpec, crate::netpol::Via)> = allowed
                .iter()
                .filter(|(_, v)| v.peer.is_some() && v.port.is_some())
                .collect();
            let Some((_, first)) = named.first() else {
                continue;
            };
            let ports: Vec<PortSpec> = named
                .iter()
                .filter(|(_, v)| v.rule == first.rule)
                .map(|(p, _)| p.clone())
                .collect();
            let port = first.port.unwrap_or(first.rule);
            return Some((
                first.file,
                port,
                format!("admits {other} on {} only", joined(&ports)),
            ));
        }
    }
    None
}

/// Extra traffic grouped by where it is opened: (file, span, from, to) →
/// (label, ports, the other side's label).
type Extras = BTreeMap<(FileId, Span, String, String), (String, Vec<PortSpec>, Option<Label>)>;

impl Rule for TrafficMatrix {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let Some(cfg) = &ctx.config.network else {
            return;
        };
        let mut collected = Merged::default();
        for net in ctx.nets() {
            let env = net.env;
            let edges = net.edges();
            let mut want = expected(cfg, env);
            // A meshed edge also opens the callee's proxy port; whether it
            // does is mesh-proxy-port's question, not this rule's.
            for ((f, t), ports) in &mut want.allowed {
                if ports.iter().any(|p| p.proto == Proto::Tcp)
                    && net.meshed_node(f)
                    && net.meshed_node(t)
                {
                    ports.push(PortSpec::single(PROXY_INBOUND_PORT, Proto::Tcp));
                }
            }
            let absent =
                |n: &str| !n.contains('/') && n != OUTSIDE && net.pods_of(n).next().is_none();
            let ignored = |f: &str, t: &str| cfg.ignores(f) || cfg.ignores(t);

            // Missing edges.
            for ((f, t), specs) in &want.required {
                if ignored(f, t) || absent(f) || absent(t) {
                    continue;
                }
                let have: Vec<&PortSpec> = edges
                    .get(&(f.clone(), t.clone()))
                    .into_iter()
                    .flatten()
                    .map(|p| &p.port)
                    .collect();
                let left: Vec<PortSpec> = specs.iter().flat_map(|s| s.minus(&have)).collect();
                if left.is_empty() {
                    continue;
                }
                let ours = |n: &str| net.pods_of(n).next().is_some();
                let ingress_ok = !ours(t) || net.side_allows(t, Direction::Ingress, f, &left);
                let egress_ok = !ours(f) || net.side_allows(f, Direction::Egress, t, &left);
                let (blame, dir, other) = if !ingress_ok || egress_ok {
                    (
                        t.as_str(),
                        Direction::Ingress,
                        (!egress_ok).then_some(f.as_str()),
                    )
                } else {
                    (f.as_str(), Direction::Egress, None)
                };
                let Some(owner) = net.pods_of(blame).next().map(|p| p.owner) else {
                    continue;
                };
                let other_name = if dir == Direction::Ingress { f } else { t };
                let near = near_miss(net, blame, dir, other_name);
                let (file, span, label) = match (near, responsible(net, blame, dir)) {
                    (Some(near), _) => near,
                    (None, Some(p)) => (
                        p.r.file,
                        p.section_span(dir),
                        format!(
                            "the {} of {} does not admit {}",
                            dir.key(),
                            p.r.id(),
                            other_name
                        ),
                    ),
                    (None, None) => (
                        owner.file,
                        owner.anchor_span(),
                        format!("no NetworkPolicy selects {blame}'s pods"),
                    ),
                };
                let mut finding = Finding::new(
                    Self::META.id,
                    Label::new(file, span, label),
                    format!("missing edge {f} → {t} on {}", joined(&left)),
                )
                .help("The matrix in dtlint.toml ([[network.allow]]) expects this traffic: open it in this policy (and on the other side), or take the edge out of the matrix.");
                if let Some(src) = other
                    && let Some(p) = responsible(net, src, Direction::Egress)
                {
                    finding = finding.with(Label::new(
                        p.r.file,
                        p.section_span(Direction::Egress),
                        format!("the egress of {} does not allow it either", p.r.id()),
                    ));
                }
                collected.add(finding, env);
            }

            // Extra edges, grouped by the node that opens them.
            let mut extra: Extras = BTreeMap::new();
            for ((f, t), pieces) in edges {
                if ignored(f, t) {
                    continue;
                }
                let exp: Vec<&PortSpec> = want
                    .allowed
                    .get(&(f.clone(), t.clone()))
                    .into_iter()
                    .flatten()
                    .collect();
                for piece in pieces {
                    let left = piece.port.minus(&exp);
                    if left.is_empty() {
                        continue;
                    }
                    let (file, span, label, secondary) = match (&piece.ingress, &piece.egress) {
                        (Some(i), e) => {
                            let (span, label) = i.blame();
                            let sec = e.as_ref().map(|e| {
                                let (s, _) = e.blame();
                                Label::new(
                                    e.file,
                                    s,
                                    format!("and the egress of {} allows it", e.policy),
                                )
                            });
                            (i.file, span, label.to_string(), sec)
                        }
                        (None, Some(e)) => {
                            let (span, label) = e.blame();
                            (e.file, span, label.to_string(), None)
                        }
                        (None, None) => {
                            let Some(owner) =
                                net.pods_of(t).chain(net.pods_of(f)).next().map(|p| p.owner)
                            else {
                                continue;
                            };
                            (
                                owner.file,
                                owner.anchor_span(),
                                "no NetworkPolicy isolates these pods".to_string(),
                                None,
                            )
                        }
                    };
                    let slot = extra
                        .entry((file, span, f.clone(), t.clone()))
                        .or_insert_with(|| (label, Vec::new(), secondary));
                    for l in left {
                        if !slot.1.contains(&l) {
                            slot.1.push(l);
                        }
                    }
                }
            }
            for ((file, span, f, t), (label, mut ports, secondary)) in extra {
                ports.sort();
                let mut finding = Finding::new(
                    Self::META.id,
                    Label::new(file, span, label),
                    format!("extra edge {f} → {t} on {} is not in the declared matrix", joined(&ports)),
                )
                .help("Narrow this rule to the declared traffic, or declare the edge under [[network.allow]] in dtlint.toml (infrastructure peers go in network.ignore).");
                if let Some(s) = secondary {
                    finding = finding.with(s);
                }
                collected.add(finding, env);
            }
        }
        out.extend(collected.into_findings());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const GC: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: gc}\nspec:\n  template:\n    metadata:\n      labels: {app.kubernetes.io/name: gc}\n    spec: {containers: [{name: gc, ports: [{name: grpc, containerPort: 50051}]}]}\n";
    const MC: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: mc}\nspec:\n  template:\n    metadata:\n      labels: {app.kubernetes.io/name: mc}\n    spec: {containers: [{name: mc}]}\n";
    const DENY: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n";
    const MC_EGRESS: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: mc}\nspec:\n  podSelector: {matchLabels: {app.kubernetes.io/name: mc}}\n  policyTypes: [Ingress, Egress]\n  egress:\n    - to: [{podSelector: {matchLabels: {app.kubernetes.io/name: gc}}}]\n      ports: [{port: 50051}]\n";

    fn run(gc_ingress_port: &str, toml: &str) -> Vec<Finding> {
        let dir = tempfile::tempdir().unwrap();
        let gc_policy = format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: gc}}\nspec:\n  podSelector: {{matchLabels: {{app.kubernetes.io/name: gc}}}}\n  policyTypes: [Ingress, Egress]\n  ingress:\n    - from: [{{podSelector: {{matchLabels: {{app.kubernetes.io/name: mc}}}}}}]\n      ports: [{{port: {gc_ingress_port}}}]\n"
        );
        for (n, t) in [
            ("gc.yaml", GC),
            ("mc.yaml", MC),
            ("deny.yaml", DENY),
            ("mcp.yaml", MC_EGRESS),
            ("gcp.yaml", &gc_policy),
        ] {
            std::fs::write(dir.path().join(n), t).unwrap();
        }
        crate::rules::testing::check_dir(
            &TrafficMatrix,
            dir.path(),
            &Config::parse(toml, "dtlint.toml").unwrap(),
        )
    }

    const MATRIX: &str = "[network]\nnamespace = \"default\"\n[[network.allow]]\nfrom = \"mc\"\nto = \"gc\"\nports = [\"50051/TCP\"]\n";

    #[test]
    fn the_declared_matrix_is_clean() {
        assert!(
            run("grpc", MATRIX).is_empty(),
            "the named port resolves to 50051"
        );
        assert!(run("50051", MATRIX).is_empty());
    }

    #[test]
    fn a_changed_port_is_missing_at_the_target_and_extra_nowhere() {
        // Ingress now on 50052: MC's egress (50051) and GC's ingress no longer meet.
        let out = run("50052", MATRIX);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].message, "missing edge mc → gc on 50051/TCP");
        assert_eq!(out[0].primary.message, "admits mc on 50052/TCP only");
        assert_eq!(
            (
                out[0].primary.span.start.line,
                out[0].primary.span.start.col
            ),
            (9, 22),
            "at the changed port"
        );
        // Without a rule naming the source, the finding is at the policy's `ingress`.
        let out = run(
            "grpc",
            &MATRIX.replace("from = \"mc\"", "from = \"outside\""),
        );
        let missing = out
            .iter()
            .find(|f| f.message.starts_with("missing"))
            .unwrap();
        assert_eq!(
            missing.primary.message,
            "the ingress of NetworkPolicy/gc does not admit outside"
        );
    }

    #[test]
    fn an_undeclared_edge_is_extra_at_the_port() {
        let out = run("grpc", "[network]\nnamespace = \"default\"\n");
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].message,
            "extra edge mc → gc on 50051/TCP is not in the declared matrix"
        );
        assert_eq!(
            (
                out[0].primary.span.start.line,
                out[0].primary.message.as_str()
            ),
            (9, "this port admits it")
        );
        assert_eq!(
            out[0].secondary[0].message,
            "and the egress of NetworkPolicy/mc allows it"
        );
        // Ignoring a peer drops its edges.
        assert!(
            run(
                "grpc",
                "[network]\nnamespace = \"default\"\nignore = [\"m*\"]\n"
            )
            .is_empty()
        );
    }

    #[test]
    fn environment_scoped_edges_are_optional_outside_environments() {
        let scoped = "[network]\nnamespace = \"default\"\n[[network.allow]]\nfrom = \"mc\"\nto = \"gc\"\nports = [\"50051/TCP\", \"9999/TCP\"]\nenvironments = [\"production\"]\n";
        assert!(run("grpc", scoped).is_empty());
    }
}
