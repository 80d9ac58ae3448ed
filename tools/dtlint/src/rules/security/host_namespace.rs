use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports pods that share the node's network, PID or IPC namespace
    /// (`hostNetwork`, `hostPID`, `hostIPC` set to `true`).
    ///
    /// ## Why is this bad?
    /// With `hostNetwork` the pod bypasses every NetworkPolicy and can bind
    /// the node's ports; with `hostPID` it can see and signal every process
    /// on the node; with `hostIPC` it can read other pods' shared memory.
    ///
    /// ## Example
    /// ```yaml
    /// spec:
    ///   hostNetwork: true
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// spec:
    ///   hostNetwork: false   # the default; expose UDP through a Service instead
    /// ```
    ///
    /// ## References
    /// - Pod Security Standards, baseline: <https://kubernetes.io/docs/concepts/security/pod-security-standards/#baseline>
    pub struct HostNamespace {
        id: "host-namespace",
        category: "security",
        severity: Error,
        summary: "a pod shares the node's network, PID or IPC namespace",
    }
}

impl Rule for HostNamespace {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Workloads)
    }

    fn check_object(&self, _ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        let Some(ps) = r.pod_spec() else { return };
        for key in ["hostNetwork", "hostPID", "hostIPC"] {
            if let Some(n) = ps.get(key).filter(|n| n.as_bool() == Some(true)) {
                out.push(
                    Finding::new(
                        Self::META.id,
                        Label::new(r.file, n.span, "shares the node's namespace"),
                        format!("{} sets {key}: true", r.id()),
                    )
                    .help(format!(
                        "Remove `{key}: true`; pods must not share the node's namespaces."
                    )),
                );
            }
        }
    }
}
