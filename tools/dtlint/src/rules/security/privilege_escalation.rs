use crate::diag::Finding;
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks that every container sets `allowPrivilegeEscalation: false`.
    ///
    /// ## Why is this bad?
    /// With escalation allowed, a setuid binary or a file capability in the image can give a process more privileges than the container started with. The default is to allow it, so it must be turned off explicitly.
    ///
    /// ## Example
    /// ```yaml
    /// securityContext:
    ///   allowPrivilegeEscalation: true
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// securityContext:
    ///   allowPrivilegeEscalation: false
    /// ```
    ///
    /// ## References
    /// - Security context: <https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted>
    pub struct PrivilegeEscalation {
        id: "privilege-escalation",
        category: "security",
        severity: Error,
        summary: "a container may gain more privileges than its parent process",
    }
}

impl Rule for PrivilegeEscalation {
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
            "allowPrivilegeEscalation",
            false,
            false,
            "Set `allowPrivilegeEscalation: false` in the container's securityContext.",
            out,
        );
    }
}
