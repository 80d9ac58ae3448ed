use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks that the QUIC ports (4433 for WebTransport, 4434 for media; set
    /// by `udp_ports` in `dtlint.toml`) are declared `protocol: UDP` on the
    /// container and on every Service port that serves them, and that a
    /// Service port's protocol matches the container port it targets.
    ///
    /// ## Why is this bad?
    /// `protocol` defaults to TCP. A Service with TCP 4433 looks healthy and
    /// routes nothing: clients' QUIC packets are dropped silently and joins
    /// time out with no error anywhere.
    ///
    /// ## Example
    /// ```yaml
    /// ports:
    ///   - name: webtransport
    ///     port: 4433
    ///     targetPort: webtransport
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// ports:
    ///   - name: webtransport
    ///     port: 4433
    ///     targetPort: webtransport
    ///     protocol: UDP
    /// ```
    ///
    /// ## References
    /// - Service protocols: <https://kubernetes.io/docs/reference/networking/service-protocols/>
    pub struct UdpPortProtocol {
        id: "udp-port-protocol",
        category: "network",
        severity: Error,
        summary: "a QUIC port is not declared as UDP, or a Service and its container disagree on protocol",
    }
}

fn protocol(port: &Node) -> &str {
    port.get("protocol").and_then(Node::as_str).unwrap_or("TCP")
}

/// Where to point at a port's protocol: the `protocol` value, or the port
/// number when the protocol is left to default to TCP.
fn port_span(port: &Node) -> dtlint_yaml::Span {
    ["protocol", "containerPort", "port"]
        .iter()
        .find_map(|k| port.get(k))
        .map_or(port.span, |n| n.span)
}

impl Rule for UdpPortProtocol {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Objects)
    }

    fn check_object(&self, ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        let udp = ctx.config.udp_ports();
        let help = "Add `protocol: UDP` to the port; Kubernetes assumes TCP.";
        let report = |out: &mut Vec<Finding>, file, port: &Node, what: String| {
            let span = port_span(port);
            out.push(
                Finding::new(
                    Self::META.id,
                    Label::new(file, span, "QUIC needs UDP"),
                    what,
                )
                .help(help),
            );
        };
        if r.is_workload() {
            for c in r.containers() {
                for p in c.ports() {
                    let Some(n) = p.get("containerPort").and_then(Node::as_i64) else {
                        continue;
                    };
                    if udp.contains(&n) && protocol(p) != "UDP" {
                        report(
                            out,
                            r.file,
                            p,
                            format!(
                                "container port {n} of `{}` in {} is {} but carries QUIC",
                                c.name(),
                                r.id(),
                                protocol(p)
                            ),
                        );
                    }
                }
            }
        }
        if r.kind == "Service" {
            let svc = r;
            let pods: Vec<_> = ctx.index.selected_workloads(svc);
            for p in svc
                .spec()
                .and_then(|s| s.get("ports"))
                .into_iter()
                .flat_map(Node::items)
            {
                let port_n = p.get("port").and_then(Node::as_i64);
                let target = p.get("targetPort");
                let target_n =
                    target
                        .and_then(Node::as_i64)
                        .or(if target.is_none() { port_n } else { None });
                let proto = protocol(p);
                if proto != "UDP" && [port_n, target_n].iter().flatten().any(|n| udp.contains(n)) {
                    report(
                        out,
                        svc.file,
                        p,
                        format!(
                            "service port {} of {} is {proto} but carries QUIC",
                            port_n.unwrap_or(0),
                            svc.id()
                        ),
                    );
                    continue;
                }
                // The container port this Service port reaches, by name or number.
                let wanted = target.or_else(|| p.get("port"));
                for w in &pods {
                    for c in w.main_containers() {
                        let Some(cp) = wanted.and_then(|t| {
                            c.ports().find(|cp| match (t.as_i64(), t.as_str()) {
                                (Some(n), _) => {
                                    cp.get("containerPort").and_then(Node::as_i64) == Some(n)
                                }
                                (None, Some(name)) => {
                                    cp.get("name").and_then(Node::as_str) == Some(name)
                                }
                                _ => false,
                            })
                        }) else {
                            continue;
                        };
                        if protocol(cp) != proto {
                            out.push(
                                Finding::new(
                                    Self::META.id,
                                    Label::new(svc.file, port_span(p), format!("{proto} here")),
                                    format!("service port {} of {} is {proto} but container `{}` declares {}", port_n.unwrap_or(0), svc.id(), c.name(), protocol(cp)),
                                )
                                .with(Label::new(w.file, port_span(cp), format!("{} here", protocol(cp))))
                                .help("Declare the same protocol on the Service port and the container port."),
                            );
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use dtlint_yaml::{Limits, LineIndex, parse};

    use super::*;

    #[test]
    fn a_defaulted_protocol_is_reported_at_the_port_number() {
        let src = "- name: webtransport\n  containerPort: 4433\n- name: media\n  port: 4434\n  protocol: TCP\n";
        let parsed = parse(src, &LineIndex::new(src), Limits::default());
        let ports: Vec<&Node> = parsed.documents[0].root.items().collect();
        assert_eq!(port_span(ports[0]).start.line, 2);
        assert_eq!(port_span(ports[1]).start.line, 5);
    }
}
