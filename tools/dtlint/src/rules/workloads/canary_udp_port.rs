use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports a Flagger `Canary` (`flagger.app`) whose target workload
    /// (`spec.targetRef`, found in the same namespace and environment)
    /// declares a UDP container port. The finding is at the Canary's
    /// `targetRef`, with the UDP port beside it.
    ///
    /// ## Why is this bad?
    /// Flagger takes over the target's Service and rebuilds its ports as
    /// TCP, and it shifts traffic with HTTP routes or TCP splits: a QUIC
    /// or WebTransport endpoint loses its port at the first analysis, and
    /// its traffic cannot be weighted anyway. Such a service rolls out
    /// with its Deployment's strategy and readiness probe instead.
    ///
    /// ## Example
    /// ```yaml
    /// kind: Canary
    /// spec:
    ///   targetRef:
    ///     kind: Deployment
    ///     name: media-handler   # serves 4434/UDP
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// # no Canary for media-handler; its Deployment:
    /// spec:
    ///   strategy:
    ///     rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
    /// ```
    ///
    /// ## References
    /// - Flagger service ports: <https://docs.flagger.app/usage/how-it-works#canary-service>
    pub struct CanaryUdpPort {
        id: "canary-udp-port",
        category: "workloads",
        severity: Error,
        summary: "a Flagger Canary targets a workload that serves a UDP port",
        needs: Repository,
    }
}

impl Rule for CanaryUdpPort {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Objects)
    }

    fn check_object(&self, ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        let Some((target, workload)) = crate::rules::workloads::canary_target(ctx, r) else {
            return;
        };
        let udp = workload.containers().find_map(|c| {
            c.ports().find(|p| {
                p.get("protocol")
                    .and_then(Node::as_str)
                    .is_some_and(|s| s.eq_ignore_ascii_case("UDP"))
            })
        });
        let Some(udp) = udp else { return };
        let port = udp
            .get("containerPort")
            .and_then(Node::as_i64)
            .map_or_else(|| "a".to_string(), |n| n.to_string());
        out.push(
            Finding::new(
                Self::META.id,
                Label::new(
                    r.file,
                    target.get("name").map_or(target.span, |n| n.span),
                    format!("targets {}", workload.id()),
                ),
                format!(
                    "{} shifts traffic to {}, which serves {port}/UDP: Flagger rebuilds its Service with TCP ports only",
                    r.id(),
                    workload.id()
                ),
            )
            .with(Label::new(workload.file, udp.span, "the UDP port"))
            .help("Drop the Canary for this workload and roll it out with its Deployment strategy and readiness probe, or move the UDP endpoint to a workload of its own."),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;

    const CANARY: &str = "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: mh}\nspec:\n  targetRef: {apiVersion: apps/v1, kind: Deployment, name: mh}\n";

    fn deployment(ports: &str) -> String {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: mh}}\nspec:\n  template:\n    spec:\n      containers:\n        - name: mh\n          ports: [{ports}]\n"
        )
    }

    #[test]
    fn a_canary_of_a_udp_workload_is_reported_at_its_target() {
        let d = deployment(
            "{name: http, containerPort: 8083}, {name: media, containerPort: 4434, protocol: UDP}",
        );
        let out = run(&CanaryUdpPort, &[("canary.yaml", CANARY), ("d.yaml", &d)]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].message,
            "Canary/mh shifts traffic to Deployment/mh, which serves 4434/UDP: Flagger rebuilds its Service with TCP ports only"
        );
        assert_eq!(out[0].primary.span.start.line, 5);
    }

    #[test]
    fn tcp_only_targets_and_other_names_pass() {
        let d = deployment("{name: http, containerPort: 8083}");
        assert!(run(&CanaryUdpPort, &[("canary.yaml", CANARY), ("d.yaml", &d)]).is_empty());
        let d = deployment("{name: media, containerPort: 4434, protocol: UDP}")
            .replace("name: mh}", "name: other}");
        assert!(run(&CanaryUdpPort, &[("canary.yaml", CANARY), ("d.yaml", &d)]).is_empty());
    }
}
