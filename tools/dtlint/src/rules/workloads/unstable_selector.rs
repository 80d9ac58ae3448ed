use crate::diag::{Finding, Label};
use crate::model::STABLE_SELECTOR_LABELS;
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks that the selectors of workloads, Services and
    /// PodDisruptionBudgets use only the stable labels
    /// `app.kubernetes.io/name` and `app.kubernetes.io/instance`.
    ///
    /// ## Why is this bad?
    /// A workload's selector is immutable: a selector on
    /// `app.kubernetes.io/version` makes the next release fail to apply, or
    /// forces a delete-and-recreate with downtime. A Service selecting on
    /// version drops every pod of the other version mid-rollout.
    ///
    /// ## Example
    /// ```yaml
    /// selector:
    ///   matchLabels:
    ///     app.kubernetes.io/name: meeting-controller
    ///     app.kubernetes.io/version: "1.4.2"
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// selector:
    ///   matchLabels:
    ///     app.kubernetes.io/name: meeting-controller
    ///     app.kubernetes.io/instance: meeting-controller-production
    /// ```
    ///
    /// ## References
    /// - Label selector updates: <https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#label-selector-updates>
    pub struct UnstableSelector {
        id: "unstable-selector",
        category: "workloads",
        severity: Error,
        summary: "a selector uses a label other than app.kubernetes.io/name and instance",
    }
}

impl Rule for UnstableSelector {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        for r in ctx.index.objects() {
            let Some(sel) = ctx.index.own_selector(r) else {
                continue;
            };
            for (key, value) in sel.match_labels() {
                if STABLE_SELECTOR_LABELS.contains(&key) {
                    continue;
                }
                let key_span = sel
                    .node
                    .get("matchLabels")
                    .unwrap_or(sel.node)
                    .entry(key)
                    .map_or(value.span, |e| e.key.span);
                out.push(
                    Finding::new(
                        Self::META.id,
                        Label::new(r.file, key_span, "not a stable label"),
                        format!("{} selects on `{key}`", r.id()),
                    )
                    .help("Select only on app.kubernetes.io/name and app.kubernetes.io/instance; they never change between releases."),
                );
            }
        }
    }
}
