use dtlint_yaml::Node;

use crate::config::Profile;
use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks that a Service's `targetPort` (or `port`, when `targetPort` is
    /// not set) is declared by a container of the pods the Service selects:
    /// a name always, a number with `profile = "dark-tower"` (elsewhere
    /// `ports:` is informational and an undeclared number may still be
    /// listened on).
    ///
    /// ## Why is this bad?
    /// A named `targetPort` that no container declares gives the Service no
    /// endpoints for that port; a number that no container listens on sends
    /// traffic into the void. Both look fine in `kubectl get svc`.
    ///
    /// ## Example
    /// ```yaml
    /// ports:
    ///   - name: grpc
    ///     port: 50051
    ///     targetPort: grcp
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// ports:
    ///   - name: grpc
    ///     port: 50051
    ///     targetPort: grpc
    /// ```
    ///
    /// ## References
    /// - Service ports: <https://kubernetes.io/docs/concepts/services-networking/service/#field-spec-ports>
    pub struct TargetPortMissing {
        id: "target-port-missing",
        category: "network",
        severity: Error,
        summary: "a Service targets a port no selected container declares",
        needs: Repository,
    }
}

/// A secondary label on the ports the selected pods declare: the first main
/// container's `ports:`, or the workload when no container declares any.
fn declared_ports(w: &Resource<'_>) -> Label {
    let ports = w.main_containers().find_map(|c| c.node.entry("ports"));
    match ports {
        Some(e) => Label::new(
            w.file,
            e.key.span,
            format!("ports the pods of {} declare", w.id()),
        ),
        None => Label::new(
            w.file,
            w.anchor_span(),
            format!("the pods of {} declare no ports", w.id()),
        ),
    }
}

impl Rule for TargetPortMissing {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Kind("Service"))
    }

    fn check_object(&self, ctx: &Context<'_>, svc: &Resource<'_>, out: &mut Vec<Finding>) {
        let pods: Vec<_> = ctx.index.selected_workloads(svc);
        if pods.is_empty() {
            // Nothing selected is another rule's finding.
            return;
        }
        for p in svc
            .spec()
            .and_then(|s| s.get("ports"))
            .into_iter()
            .flat_map(Node::items)
        {
            let Some(target) = p.get("targetPort").or_else(|| p.get("port")) else {
                continue;
            };
            let declared = pods
                .iter()
                .any(|w| w.main_containers().any(|c| c.declares_port(target)));
            // A number no container lists may still be listened on
            // (`ports:` is informational); only the dark-tower profile asks
            // every port to be declared. A name must be.
            if declared || (is_number(target) && ctx.config.profile != Profile::DarkTower) {
                continue;
            }
            let shown = target.as_scalar().map_or("?", |s| s.text.as_str());
            out.push(
                Finding::new(
                    Self::META.id,
                    Label::new(svc.file, target.span, "no container declares this port"),
                    format!(
                        "{} targets port `{shown}`, which no selected container declares",
                        svc.id()
                    ),
                )
                .with(declared_ports(pods[0]))
                .help("Target a port name the container declares under `ports:`."),
            );
            if let Some(name) = target.as_str()
                && let Some((w, near)) = pods.iter().find_map(|w| {
                    let names = w
                        .main_containers()
                        .flat_map(|c| c.node.get("ports").into_iter().flat_map(Node::items))
                        .filter_map(|p| p.get("name"));
                    Some((*w, crate::rules::closest_node(name, names)?))
                })
                && let Some(f) = out.pop()
            {
                out.push(f.did_you_mean(near.as_str().unwrap_or(""), w.file, near.span));
            }
        }
    }
}

/// Is the port a number (not a name)?
pub(crate) fn is_number(port: &Node) -> bool {
    port.as_scalar()
        .is_some_and(|s| !s.text.is_empty() && s.text.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_target_port_says_which_port_was_meant() {
        let pod = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: gc}\nspec:\n  selector: {matchLabels: {app: gc}}\n  template:\n    metadata: {labels: {app: gc}}\n    spec:\n      containers:\n        - name: gc\n          ports:\n            - {name: http, containerPort: 8080}\n";
        let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: gc}\nspec:\n  selector: {app: gc}\n  ports:\n    - {name: http, port: 80, targetPort: htpp}\n";
        let out =
            crate::rules::testing::run(&TargetPortMissing, &[("d.yaml", pod), ("s.yaml", svc)]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            out[0].message.ends_with("; did you mean `http`?"),
            "{}",
            out[0].message
        );
        assert_eq!(out[0].secondary[0].span.start.line, 12);
    }
}
