use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports containers with `privileged: true`.
    ///
    /// ## Why is this bad?
    /// A privileged container has every capability and every device of the
    /// node; escaping it is trivial. No Dark Tower workload needs it.
    ///
    /// ## Example
    /// ```yaml
    /// securityContext:
    ///   privileged: true
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// securityContext:
    ///   privileged: false
    ///   capabilities: {drop: [ALL]}
    /// ```
    ///
    /// ## References
    /// - Pod Security Standards, baseline: <https://kubernetes.io/docs/concepts/security/pod-security-standards/#baseline>
    pub struct PrivilegedContainer {
        id: "privileged-container",
        category: "security",
        severity: Error,
        summary: "a container runs privileged",
    }
}

impl Rule for PrivilegedContainer {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Workloads)
    }

    fn check_object(&self, _ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        for c in r.containers() {
            if let Some(p) = c
                .node
                .path(&["securityContext", "privileged"])
                .filter(|p| p.as_bool() == Some(true))
            {
                out.push(
                    Finding::new(Self::META.id, Label::new(r.file, p.span, "full access to the node"), format!("container `{}` of {} is privileged", c.name(), r.id()))
                        .help("Remove `privileged: true`; grant a single capability instead if one is really needed."),
                );
            }
        }
    }
}
