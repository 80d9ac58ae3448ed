use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Finds workloads that run more than one replica (`spec.replicas`, or
    /// the `minReplicas` of the HorizontalPodAutoscaler that scales them)
    /// and give every replica the same address to advertise: a container
    /// env var whose name contains `ADVERTISE` whose value is a literal, or
    /// comes from a ConfigMap or Secret. A value built from a per-pod field
    /// (`$(POD_IP)` where `POD_IP` comes from `status.podIP`, or from
    /// `status.podIPs` or `metadata.name`) is the replica's own; a node's
    /// name or IP is not, since replicas may share a node.
    ///
    /// ## Why is this bad?
    /// A service that registers its address with a directory (here the
    /// meeting-controller and media-handler with the global-controller)
    /// must be reached at the replica that holds the session. With one
    /// shared address every participant lands on whichever replica the
    /// address leads to, and two participants of one meeting end up on
    /// different replicas that never hear each other.
    ///
    /// ## Example
    /// ```yaml
    /// env:
    ///   - name: MC_WEBTRANSPORT_ADVERTISE_ADDRESS
    ///     valueFrom:
    ///       configMapKeyRef: {name: meeting-controller-config, key: ADVERTISE}
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// env:
    ///   - name: POD_IP
    ///     valueFrom:
    ///       fieldRef: {fieldPath: status.podIP}
    ///   - name: MC_WEBTRANSPORT_ADVERTISE_ADDRESS
    ///     value: "$(POD_IP):4433"
    /// ```
    ///
    /// ## References
    /// - Downward API: <https://kubernetes.io/docs/concepts/workloads/pods/downward-api/>
    /// - SPEC.md, the meeting-controller and media-handler registration
    pub struct SharedAdvertiseAddress {
        id: "shared-advertise-address",
        category: "workloads",
        severity: Error,
        summary: "replicas of a workload all advertise the same address",
        needs: Repository,
    }
}

/// Downward API fields that differ from pod to pod (a node's name or IP
/// does not: several replicas may share a node).
const PER_POD: [&str; 3] = ["status.podIP", "status.podIPs", "metadata.name"];

/// Is this env var per pod: from a per-pod field, or built from one?
fn per_pod(var: &Node, env: &[&Node]) -> bool {
    if let Some(path) = var
        .path(&["valueFrom", "fieldRef", "fieldPath"])
        .and_then(Node::as_str)
    {
        return PER_POD.contains(&path);
    }
    let Some(value) = var.get("value").and_then(Node::as_str) else {
        return false;
    };
    // `$(NAME)` references to earlier variables of the same container.
    let mut rest = value;
    while let Some(start) = rest.find("$(") {
        let after = &rest[start + 2..];
        let Some(end) = after.find(')') else { break };
        let name = &after[..end];
        if env.iter().any(|v| {
            v.get("name").and_then(Node::as_str) == Some(name)
                && v.path(&["valueFrom", "fieldRef", "fieldPath"])
                    .and_then(Node::as_str)
                    .is_some_and(|p| PER_POD.contains(&p))
        }) {
            return true;
        }
        rest = &after[end..];
    }
    false
}

impl Rule for SharedAdvertiseAddress {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Objects)
    }

    fn check_object(&self, ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        if !matches!(r.kind, "Deployment" | "StatefulSet" | "ReplicaSet") {
            return;
        }
        let replicas = ctx.index.replicas_floor(r).count;
        if replicas < 2 {
            return;
        }
        for c in r.containers() {
            let env: Vec<&Node> = c
                .node
                .get("env")
                .into_iter()
                .flat_map(Node::items)
                .collect();
            for var in &env {
                let Some(name) = var.get("name").and_then(Node::as_str) else {
                    continue;
                };
                if !name.to_ascii_uppercase().contains("ADVERTISE") || per_pod(var, &env) {
                    continue;
                }
                let at = var
                    .get("value")
                    .or_else(|| var.get("valueFrom"))
                    .map_or(var.span, |n| n.span);
                out.push(
                    Finding::new(
                        Self::META.id,
                        Label::new(r.file, at, "the same for every replica"),
                        format!(
                            "{} runs more than one replica and every one advertises the same {name}: whoever is sent there reaches any replica",
                            r.id()
                        ),
                    )
                    .help("Build the address from the pod's own IP: an env var from the downward API (fieldRef status.podIP) and `value: \"$(POD_IP):<port>\"`."),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;

    fn deployment(replicas: u32, env: &str) -> String {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: mc}}\nspec:\n  replicas: {replicas}\n  template:\n    spec:\n      containers:\n        - name: mc\n          env:\n{env}"
        )
    }

    const POD_IP: &str = "            - name: POD_IP\n              valueFrom: {fieldRef: {fieldPath: status.podIP}}\n";

    #[test]
    fn a_shared_address_is_reported_at_its_value() {
        let d = deployment(
            3,
            "            - name: MC_ADVERTISE_ADDRESS\n              value: \"mc.example:4433\"\n",
        );
        let out = run(&SharedAdvertiseAddress, &[("d.yaml", &d)]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].message,
            "Deployment/mc runs more than one replica and every one advertises the same MC_ADVERTISE_ADDRESS: whoever is sent there reaches any replica"
        );
        assert_eq!(out[0].primary.span.start.line, 12);
        let from_map = deployment(
            2,
            "            - name: MC_ADVERTISE_ADDRESS\n              valueFrom: {configMapKeyRef: {name: c, key: k}}\n",
        );
        assert_eq!(
            run(&SharedAdvertiseAddress, &[("d.yaml", &from_map)]).len(),
            1
        );
    }

    #[test]
    fn per_pod_addresses_and_single_replicas_pass() {
        let own = deployment(
            3,
            &format!(
                "{POD_IP}            - name: MC_ADVERTISE_ADDRESS\n              value: \"$(POD_IP):4433\"\n"
            ),
        );
        assert!(run(&SharedAdvertiseAddress, &[("d.yaml", &own)]).is_empty());
        let direct = deployment(
            3,
            "            - name: MC_ADVERTISE_IP\n              valueFrom: {fieldRef: {fieldPath: status.podIP}}\n",
        );
        assert!(run(&SharedAdvertiseAddress, &[("d.yaml", &direct)]).is_empty());
        let one = deployment(
            1,
            "            - name: MC_ADVERTISE_ADDRESS\n              value: \"mc.example:4433\"\n",
        );
        assert!(run(&SharedAdvertiseAddress, &[("d.yaml", &one)]).is_empty());
    }
}
