use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks that every container runs under a seccomp profile:
    /// `seccompProfile.type: RuntimeDefault` (or `Localhost`) on the pod or
    /// the container. `Unconfined` is reported.
    ///
    /// ## Why is this bad?
    /// Without seccomp every system call of the kernel is reachable from the
    /// container, including the ones behind most container escapes. The
    /// runtime's default profile blocks them at no cost to our services.
    ///
    /// ## Example
    /// ```yaml
    /// securityContext:
    ///   seccompProfile:
    ///     type: Unconfined
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// securityContext:
    ///   seccompProfile:
    ///     type: RuntimeDefault
    /// ```
    ///
    /// ## References
    /// - Seccomp: <https://kubernetes.io/docs/tutorials/security/seccomp/>
    pub struct MissingSeccomp {
        id: "missing-seccomp",
        category: "security",
        severity: Error,
        summary: "a container runs without a seccomp profile",
    }
}

impl Rule for MissingSeccomp {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Workloads)
    }

    fn check_object(&self, _ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        let help = "Set `seccompProfile: {type: RuntimeDefault}` in the pod's securityContext, and do not override it in the container's.";
        for c in r.containers() {
            let ty = super::effective(r, &c, "seccompProfile", true).and_then(|p| p.get("type"));
            let keys = ["securityContext", "seccompProfile", "type"];
            let mut f = match ty {
                Some(t) if matches!(t.as_str(), Some("RuntimeDefault" | "Localhost")) => continue,
                Some(t) => Finding::new(
                    Self::META.id,
                    Label::new(r.file, t.span, "no syscall filtering"),
                    format!(
                        "container `{}` of {} runs with seccomp {}",
                        c.name(),
                        r.id(),
                        t.as_str().unwrap_or("?")
                    ),
                )
                .help(help),
                None => Finding::new(
                    Self::META.id,
                    Label::new(r.file, super::missing_span(&c), "no seccompProfile"),
                    format!(
                        "container `{}` of {} has no seccomp profile",
                        c.name(),
                        r.id()
                    ),
                )
                .help(help),
            };
            // Fixed in the container; a pod-level profile is the pod's to change.
            let own = c.node.path(&keys);
            if ty.is_none() || own.is_some() {
                f.replacement = Some(crate::diag::Replacement::in_container(
                    &keys,
                    "RuntimeDefault",
                    own.is_some(),
                ));
            }
            out.push(f);
        }
    }
}
