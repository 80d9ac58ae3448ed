use crate::diag::{Finding, Label};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

use super::{effective, missing_span};

declare_rule! {
    /// ## What it does
    /// Checks that every container runs as a non-root user: `runAsNonRoot:
    /// true` (on the container or the pod) and no `runAsUser: 0`.
    ///
    /// ## Why is this bad?
    /// Root in a container is root on the node as soon as any escape works;
    /// it can also write to every mounted volume. Dark Tower images run as
    /// uid 65532 (distroless `nonroot`), Redis as 999.
    ///
    /// ## Example
    /// ```yaml
    /// securityContext:
    ///   runAsUser: 0
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// securityContext:
    ///   runAsNonRoot: true
    ///   runAsUser: 65532
    /// ```
    ///
    /// ## References
    /// - Pod Security Standards, restricted: <https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted>
    pub struct RunAsRoot {
        id: "run-as-root",
        category: "security",
        severity: Error,
        summary: "a container may run as root",
    }
}

impl Rule for RunAsRoot {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let help = "Set `runAsNonRoot: true` and a non-zero `runAsUser` (65532 for our images).";
        for r in ctx.index.workloads() {
            for c in r.containers() {
                if let Some(uid) =
                    effective(r, &c, "runAsUser", true).filter(|u| u.as_i64() == Some(0))
                {
                    out.push(
                        Finding::new(
                            Self::META.id,
                            Label::new(r.file, uid.span, "uid 0 is root"),
                            format!("container `{}` of {} runs as root", c.name(), r.id()),
                        )
                        .help(help),
                    );
                    continue;
                }
                match effective(r, &c, "runAsNonRoot", true) {
                    Some(n) if n.as_bool() == Some(true) => {}
                    Some(n) => out.push(
                        Finding::new(
                            Self::META.id,
                            Label::new(r.file, n.span, "must be true"),
                            format!(
                                "container `{}` of {} allows running as root",
                                c.name(),
                                r.id()
                            ),
                        )
                        .help(help),
                    ),
                    None => out.push(
                        Finding::new(
                            Self::META.id,
                            Label::new(r.file, missing_span(&c), "no runAsNonRoot: true"),
                            format!("container `{}` of {} may run as root", c.name(), r.id()),
                        )
                        .help(help),
                    ),
                }
            }
        }
    }
}
