use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

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

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Workloads)
    }

    fn check_object(&self, _ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        let help = "Set `runAsNonRoot: true` and a non-zero `runAsUser` (65532 for our images).";
        for c in r.containers() {
            if let Some(uid) = effective(r, &c, "runAsUser", true).filter(|u| u.as_i64() == Some(0))
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
                None => {
                    // With a non-zero uid the container does not run as
                    // root today; what is missing is the guarantee.
                    let uid = effective(r, &c, "runAsUser", true).and_then(Node::as_i64);
                    let message = match uid {
                        Some(uid) => format!(
                            "container `{}` of {} runs as uid {uid} but does not require a non-root user",
                            c.name(),
                            r.id()
                        ),
                        None => {
                            format!("container `{}` of {} may run as root", c.name(), r.id())
                        }
                    };
                    out.push(
                        Finding::new(
                            Self::META.id,
                            Label::new(r.file, missing_span(&c), "no runAsNonRoot: true"),
                            message,
                        )
                        .help(help),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn every_pod_template_kind_is_a_workload() {
        for (api, kind) in [
            ("apps.openshift.io/v1", "DeploymentConfig"),
            ("argoproj.io/v1alpha1", "Rollout"),
            ("v1", "ReplicationController"),
            ("apps/v1", "ReplicaSet"),
        ] {
            let doc = format!(
                "apiVersion: {api}\nkind: {kind}\nmetadata: {{name: w}}\nspec:\n  template:\n    spec:\n      containers:\n        - name: c\n          image: x:1\n"
            );
            let out = crate::rules::testing::run(&RunAsRoot, &[("w.yaml", &doc)]);
            assert_eq!(out.len(), 1, "{kind}: {out:?}");
            assert_eq!(
                out[0].primary.span.start.line, 8,
                "{kind}: at the container"
            );
        }
    }
    use super::*;
    use crate::config::Config;

    #[test]
    fn a_non_zero_uid_without_run_as_non_root_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: redis}\nspec:\n  securityContext: {runAsUser: 999}\n  containers:\n    - name: redis\n";
        std::fs::write(dir.path().join("pod.yaml"), pod).unwrap();
        let config = Config::dark_tower();
        let out = crate::rules::testing::check_dir(&RunAsRoot, dir.path(), &config);
        let messages: Vec<_> = out.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(
            messages,
            ["container `redis` of Pod/redis runs as uid 999 but does not require a non-root user"]
        );
    }
}
