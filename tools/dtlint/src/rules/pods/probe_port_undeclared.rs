use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks that the port of every probe (`httpGet`, `tcpSocket`, `grpc`)
    /// is declared in the container's `ports`, by name or number (as
    /// kube-linter's `liveness-port`, `readiness-port` and `startup-port`
    /// do), and that it is not a port the container declares `protocol:
    /// UDP`: every probe speaks TCP.
    ///
    /// ## Why is this bad?
    /// A probe on a port name the container does not declare is rejected by
    /// the API server; a probe on an undeclared number usually means the port
    /// changed and the probe did not, so every probe fails and the pod is
    /// restarted in a loop or never becomes ready.
    ///
    /// ## Example
    /// ```yaml
    /// ports:
    ///   - {name: http, containerPort: 8080}
    /// readinessProbe:
    ///   httpGet: {path: /ready, port: health}
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// ports:
    ///   - {name: http, containerPort: 8080}
    /// readinessProbe:
    ///   httpGet: {path: /ready, port: http}
    /// ```
    ///
    /// ## References
    /// - Probes: <https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/#http-probes>
    pub struct ProbePortUndeclared {
        id: "probe-port-undeclared",
        category: "pods",
        severity: Error,
        summary: "a probe targets a port the container does not declare",
    }
}

impl Rule for ProbePortUndeclared {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Workloads)
    }

    fn check_object(&self, _ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        for c in r.containers() {
            for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
                let Some(port) = c.node.get(key).and_then(super::probe_port) else {
                    continue;
                };
                // Every probe speaks TCP (HTTP and gRPC over it): a port the
                // container declares UDP never answers.
                if let Some(udp) = c.ports().find(|p| {
                    p.get("protocol").and_then(Node::as_str) == Some("UDP")
                        && (port.as_i64().is_some_and(|n| {
                            p.get("containerPort").and_then(Node::as_i64) == Some(n)
                        }) || port
                            .as_str()
                            .is_some_and(|n| p.get("name").and_then(Node::as_str) == Some(n)))
                }) {
                    let shown = port.as_scalar().map_or("?", |s| s.text.as_str());
                    let at = udp.get("protocol").map_or(udp.span, |n| n.span);
                    out.push(
                        Finding::new(
                            Self::META.id,
                            Label::new(r.file, port.span, "probed over TCP"),
                            format!("{key} of container `{}` probes port `{shown}` over TCP, which the container declares UDP", c.name()),
                        )
                        .with(Label::new(r.file, at, "declared UDP here"))
                        .help("Probe a TCP port of the container (a health or metrics port): a UDP port never accepts the probe's connection, so it always fails."),
                    );
                    continue;
                }
                if c.declares_port(port) {
                    continue;
                }
                let shown = port.as_scalar().map_or("?", |s| s.text.as_str());
                let mut f = Finding::new(
                    Self::META.id,
                    Label::new(r.file, port.span, "not a declared port"),
                    format!("{key} of container `{}` targets port `{shown}`, which the container does not declare", c.name()),
                )
                .help("Probe a port listed under the container's `ports:` (prefer its name).");
                if let Some(ports) = c.node.entry("ports") {
                    f = f.with(Label::new(r.file, ports.key.span, "declared ports"));
                }
                if let Some(name) = port.as_str()
                    && let Some(near) =
                        crate::rules::closest_node(name, c.ports().filter_map(|p| p.get("name")))
                {
                    f = f.did_you_mean(near.as_str().unwrap_or(""), r.file, near.span);
                }
                out.push(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_probe_on_a_udp_port_is_reported() {
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: mh}\nspec:\n  containers:\n    - name: mh\n      image: x:1\n      ports:\n        - {name: media, containerPort: 4434, protocol: UDP}\n      livenessProbe: {tcpSocket: {port: media}}\n";
        let out = crate::rules::testing::run(&ProbePortUndeclared, &[("p.yaml", pod)]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            out[0]
                .message
                .contains("over TCP, which the container declares UDP"),
            "{}",
            out[0].message
        );
    }
    use super::*;

    #[test]
    fn a_misspelt_port_name_says_which_port_was_meant() {
        let pod = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: gc}\nspec:\n  template:\n    spec:\n      containers:\n        - name: gc\n          ports:\n            - {name: metrics, containerPort: 9090}\n            - {name: http, containerPort: 8080}\n          readinessProbe: {httpGet: {path: /ready, port: htp}}\n";
        let out = crate::rules::testing::run(&ProbePortUndeclared, &[("d.yaml", pod)]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            out[0].message.ends_with("; did you mean `http`?"),
            "{}",
            out[0].message
        );
        assert_eq!(out[0].secondary[0].span.start.line, 11);
        assert_eq!(out[0].secondary[0].message, "`http` is defined here");
    }
}
