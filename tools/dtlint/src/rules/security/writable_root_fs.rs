use crate::diag::Finding;
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks that every container sets `readOnlyRootFilesystem: true`.
    ///
    /// ## Why is this bad?
    /// An attacker who gets code execution can rewrite binaries and config inside a writable container, and the change survives until the pod restarts. A read-only root filesystem also stops accidental writes that fill the node's disk. Services that need scratch space mount an `emptyDir` at `/tmp`.
    ///
    /// ## Example
    /// ```yaml
    /// securityContext:
    ///   readOnlyRootFilesystem: false
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// securityContext:
    ///   readOnlyRootFilesystem: true
    /// ```
    ///
    /// ## References
    /// - Security context: <https://kubernetes.io/docs/tasks/configure-pod-container/security-context/>
    pub struct WritableRootFs {
        id: "writable-root-fs",
        category: "security",
        severity: Error,
        summary: "a container's root filesystem is writable",
    }
}

impl Rule for WritableRootFs {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Workloads)
    }

    fn check_object(&self, _ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        super::require_bool(
            r,
            Self::META.id,
            "readOnlyRootFilesystem",
            true,
            false,
            "Set `readOnlyRootFilesystem: true` and mount an emptyDir at /tmp for scratch space.",
            out,
        );
    }
}
