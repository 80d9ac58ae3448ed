use crate::diag::{Finding, Label};
use crate::netpol::mesh::PROXY_INBOUND_PORT;
use crate::netpol::{Direction, Piece, PortSpec, Proto};
use crate::rules::{Context, Merged, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Finds the NetworkPolicy rules that open a TCP port between two
    /// meshed services but not the Linkerd proxy's inbound port, 4143/TCP.
    /// A pod is meshed when its template says `linkerd.io/inject: enabled`,
    /// or its namespace does and the template does not say `disabled`
    /// (for a CloudNativePG `Cluster`, `spec.inheritedMetadata` counts as
    /// the template). The edges are the ones the policies allow, with the
    /// same semantics as `traffic-matrix`; the finding is at the `ports`
    /// item that opens the application port, on the side (ingress of the
    /// callee, egress of the caller) that lacks 4143, once per side.
    ///
    /// ## Why is this bad?
    /// Between meshed pods the caller's proxy connects to the callee's
    /// proxy on 4143, not to the application port: opaque ports such as
    /// PostgreSQL's 5432 and Redis' 6379 always, other ports in current
    /// Linkerd too. With the application port open and 4143 shut, every
    /// meshed call is dropped while the policies look right (linkerd2
    /// issues #12382, #15246). Opening 4143 lets a caller reach any port
    /// through the proxy, so keep each caller to its ports with Linkerd's
    /// `Server` and `AuthorizationPolicy` (`mesh-authorization`).
    ///
    /// ## Example
    /// ```yaml
    /// # global-controller and meeting-controller are both meshed
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
    ///       - protocol: TCP
    ///         port: 4143   # the Linkerd proxy: meshed calls arrive here
    /// ```
    ///
    /// ## References
    /// - Linkerd and NetworkPolicies: <https://linkerd.io/2-edge/common-errors/network-policy/>
    /// - linkerd/linkerd2#12382 (opaque ports, Redis) and #15246 (4143 both ways)
    /// - `dtlint graph` shows the edges the policies allow
    pub struct MeshProxyPort {
        id: "mesh-proxy-port",
        category: "network",
        severity: Error,
        summary: "a NetworkPolicy opens a port between meshed pods but not the Linkerd proxy port 4143",
        needs: Repository,
    }
}

fn proxy() -> PortSpec {
    PortSpec::single(PROXY_INBOUND_PORT, Proto::Tcp)
}

/// TCP application ports of an edge (everything but the proxy's own).
fn application(pieces: &[Piece]) -> Vec<&Piece> {
    let proxy = proxy();
    pieces
        .iter()
        .filter(|p| p.port.proto == Proto::Tcp && p.port.intersect(&proxy).is_none())
        .collect()
}

impl Rule for MeshProxyPort {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let mut collected = Merged::default();
        for net in ctx.nets().iter().filter(|n| n.has_meshed_pods()) {
            for ((f, t), pieces) in net.edges() {
                if !net.meshed_node(f) || !net.meshed_node(t) {
                    continue;
                }
                let app = application(pieces);
                if app.is_empty() {
                    continue;
                }
                let have: Vec<&PortSpec> = pieces.iter().map(|p| &p.port).collect();
                if proxy().minus(&have).is_empty() {
                    continue;
                }
                let ports: Vec<String> =
                    crate::netpol::port_list(&app.iter().map(|p| (*p).clone()).collect::<Vec<_>>())
                        .iter()
                        .map(ToString::to_string)
                        .collect();
                for dir in [Direction::Ingress, Direction::Egress] {
                    let (subject, other) = match dir {
                        Direction::Ingress => (t, f),
                        Direction::Egress => (f, t),
                    };
                    if net.side_allows(subject, dir, other, &[proxy()]) {
                        continue;
                    }
                    let mut vias: Vec<_> = app
                        .iter()
                        .filter_map(|p| match dir {
                            Direction::Ingress => p.ingress.as_ref(),
                            Direction::Egress => p.egress.as_ref(),
                        })
                        .collect();
                    vias.sort_by_key(|v| (v.file.0, v.rule.start.offset));
                    vias.dedup_by_key(|v| (v.file.0, v.rule.start.offset));
                    for via in vias {
                        let (span, _) = via.blame();
                        let finding = Finding::new(
                            Self::META.id,
                            Label::new(
                                via.file,
                                span,
                                format!(
                                    "opens {} to {other}, not 4143/TCP",
                                    ports.join(", ")
                                ),
                            ),
                            format!(
                                "{f} → {t} is meshed, but the {} of {} does not open the Linkerd proxy port 4143/TCP: every call is dropped",
                                dir.key(),
                                via.policy
                            ),
                        )
                        .help("Add `- protocol: TCP` / `port: 4143` to this rule's ports, on both sides of the edge; then keep the caller to its ports with a Linkerd Server and AuthorizationPolicy (see mesh-authorization).");
                        collected.add(finding, net.env);
                    }
                }
            }
        }
        out.extend(collected.into_findings());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;

    const NS: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: default\n  annotations: {linkerd.io/inject: enabled}\n";
    const GC: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: gc}\nspec:\n  template:\n    metadata:\n      labels: {app.kubernetes.io/name: gc}\n    spec: {containers: [{name: gc, ports: [{name: grpc, containerPort: 50051}]}]}\n";
    const DENY: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n";

    fn mc(annotations: &str) -> String {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: mc}}\nspec:\n  template:\n    metadata:\n      labels: {{app.kubernetes.io/name: mc}}\n      annotations: {{{annotations}}}\n    spec: {{containers: [{{name: mc}}]}}\n"
        )
    }

    fn policy(name: &str, dir: &str, peer: &str, ports: &str) -> String {
        let key = if dir == "ingress" { "from" } else { "to" };
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}}}\nspec:\n  podSelector: {{matchLabels: {{app.kubernetes.io/name: {name}}}}}\n  policyTypes: [Ingress, Egress]\n  {dir}:\n    - {key}: [{{podSelector: {{matchLabels: {{app.kubernetes.io/name: {peer}}}}}}}]\n      ports: [{ports}]\n"
        )
    }

    fn check(gc_ports: &str, mc_ports: &str, mc_annotations: &str) -> Vec<Finding> {
        let gcp = policy("gc", "ingress", "mc", gc_ports);
        let mcp = policy("mc", "egress", "gc", mc_ports);
        let mcd = mc(mc_annotations);
        run(
            &MeshProxyPort,
            &[
                ("ns.yaml", NS),
                ("gc.yaml", GC),
                ("mc.yaml", &mcd),
                ("deny.yaml", DENY),
                ("gcp.yaml", &gcp),
                ("mcp.yaml", &mcp),
            ],
        )
    }

    #[test]
    fn both_sides_with_the_proxy_port_are_clean() {
        let both = "{port: 50051}, {port: 4143}";
        assert!(check(both, both, "").is_empty());
        // A named application port counts as well.
        assert!(check("{port: grpc}, {port: 4143}", both, "").is_empty());
    }

    #[test]
    fn a_side_without_the_proxy_port_is_reported_at_its_application_port() {
        let out = check("{port: 50051}", "{port: 50051}, {port: 4143}", "");
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].message,
            "mc → gc is meshed, but the ingress of NetworkPolicy/gc does not open the Linkerd proxy port 4143/TCP: every call is dropped"
        );
        assert_eq!(
            out[0].primary.message,
            "opens 50051/TCP to mc, not 4143/TCP"
        );
        assert_eq!(out[0].primary.span.start.line, 9, "at `port: 50051`");

        // Both sides lack it: one finding per side, each where it is fixed.
        let out = check("{port: 50051}", "{port: 50051}", "");
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(
            out.iter()
                .any(|f| f.message.contains("egress of NetworkPolicy/mc"))
        );
    }

    #[test]
    fn an_unmeshed_caller_needs_no_proxy_port() {
        // The caller opts out of the namespace's injection: it connects to 50051 itself.
        assert!(
            check(
                "{port: 50051}",
                "{port: 50051}",
                "linkerd.io/inject: disabled"
            )
            .is_empty()
        );
        // Nothing is meshed without the namespace annotation or a pod annotation.
        let gcp = policy("gc", "ingress", "mc", "{port: 50051}");
        let mcp = policy("mc", "egress", "gc", "{port: 50051}");
        let mcd = mc("");
        let out = run(
            &MeshProxyPort,
            &[
                ("gc.yaml", GC),
                ("mc.yaml", &mcd),
                ("deny.yaml", DENY),
                ("gcp.yaml", &gcp),
                ("mcp.yaml", &mcp),
            ],
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn udp_needs_no_proxy_port() {
        assert!(
            check(
                "{port: 4433, protocol: UDP}",
                "{port: 4433, protocol: UDP}",
                ""
            )
            .is_empty()
        );
    }
}
