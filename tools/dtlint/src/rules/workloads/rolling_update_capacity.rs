use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks that a Deployment rolls out without losing capacity: strategy
    /// `RollingUpdate` with `maxUnavailable: 0` and a `maxSurge` of at least
    /// one. A StatefulSet must not use `updateStrategy: OnDelete`.
    ///
    /// ## Why is this bad?
    /// The default `maxUnavailable: 25%` takes pods out of service before
    /// their replacements are ready; `Recreate` stops every pod first. For a
    /// meeting controller that is dropped calls on every release.
    /// `OnDelete` means a release never reaches running pods.
    ///
    /// ## Example
    /// ```yaml
    /// strategy:
    ///   type: Recreate
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// strategy:
    ///   type: RollingUpdate
    ///   rollingUpdate:
    ///     maxSurge: 1
    ///     maxUnavailable: 0
    /// ```
    ///
    /// ## References
    /// - Rolling update: <https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#rolling-update-deployment>
    pub struct RollingUpdateCapacity {
        id: "rolling-update-capacity",
        category: "workloads",
        severity: Error,
        summary: "a rollout may take pods out of service before replacements are ready",
    }
}

/// `0`, `"0"` and `"0%"` all mean zero.
fn is_zero(n: &Node) -> bool {
    n.as_i64() == Some(0) || matches!(n.as_str(), Some("0" | "0%"))
}

impl Rule for RollingUpdateCapacity {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Workloads)
    }

    fn check_object(&self, _ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        let help = "Use `strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}`.";
        let Some(spec) = r.spec() else { return };
        match r.kind {
            "Deployment" => {
                let strategy = spec.get("strategy");
                // Where maxUnavailable belongs: `rollingUpdate:`, else
                // `strategy:`, else `spec:`.
                let anchor = strategy
                    .and_then(|s| s.entry("rollingUpdate"))
                    .or_else(|| spec.entry("strategy"))
                    .or_else(|| r.root.entry("spec"))
                    .map_or_else(|| r.anchor_span(), |e| e.key.span);
                let ty = strategy.and_then(|s| s.get("type"));
                if let Some(t) = ty.filter(|t| t.as_str() == Some("Recreate")) {
                    out.push(
                        Finding::new(
                            Self::META.id,
                            Label::new(r.file, t.span, "stops every pod first"),
                            format!("{} uses the Recreate strategy", r.id()),
                        )
                        .help(help),
                    );
                    return;
                }
                let ru = strategy.and_then(|s| s.get("rollingUpdate"));
                match ru.and_then(|ru| ru.get("maxUnavailable")) {
                    Some(mu) if is_zero(mu) => {
                        if let Some(ms) =
                            ru.and_then(|ru| ru.get("maxSurge")).filter(|m| is_zero(m))
                        {
                            out.push(
                                Finding::new(Self::META.id, Label::new(r.file, ms.span, "no room to surge"), format!("{} can never roll out: maxSurge and maxUnavailable are both 0", r.id()))
                                    .help(help),
                            );
                        }
                    }
                    Some(mu) => out.push(
                        Finding::new(
                            Self::META.id,
                            Label::new(
                                r.file,
                                mu.span,
                                "pods leave service before replacements are ready",
                            ),
                            format!("{} allows unavailable pods during a rollout", r.id()),
                        )
                        .help(help),
                    ),
                    None => out.push(
                        Finding::new(
                            Self::META.id,
                            Label::new(r.file, anchor, "defaults to maxUnavailable: 25%"),
                            format!("{} does not set maxUnavailable: 0", r.id()),
                        )
                        .help(help),
                    ),
                }
            }
            "StatefulSet" => {
                if let Some(t) = spec
                    .path(&["updateStrategy", "type"])
                    .filter(|t| t.as_str() == Some("OnDelete"))
                {
                    out.push(
                        Finding::new(Self::META.id, Label::new(r.file, t.span, "releases wait for manual deletes"), format!("{} uses the OnDelete update strategy", r.id()))
                            .help("Use `updateStrategy: {type: RollingUpdate}` so releases reach running pods."),
                    );
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn a_missing_max_unavailable_is_reported_at_rolling_update() {
        let dir = tempfile::tempdir().unwrap();
        let d = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: mh}\nspec:\n  strategy:\n    rollingUpdate:\n      maxSurge: 1\n";
        std::fs::write(dir.path().join("deployment.yaml"), d).unwrap();
        let config = Config::dark_tower();
        let out = crate::rules::testing::check_dir(&RollingUpdateCapacity, dir.path(), &config);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (
                out[0].primary.span.start.line,
                out[0].primary.span.start.col
            ),
            (6, 5)
        );
    }
}
