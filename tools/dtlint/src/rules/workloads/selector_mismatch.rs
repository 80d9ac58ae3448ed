use crate::diag::{Finding, Label};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks that a workload's `spec.selector` is satisfied by the labels of
    /// its own pod template (labels a kustomization adds count).
    ///
    /// ## Why is this bad?
    /// The API server rejects the object ("selector does not match template
    /// labels"), so the rollout never starts, and only when Flux applies it.
    ///
    /// ## Example
    /// ```yaml
    /// spec:
    ///   selector:
    ///     matchLabels:
    ///       app.kubernetes.io/name: media-handler
    ///   template:
    ///     metadata:
    ///       labels:
    ///         app.kubernetes.io/name: mediahandler
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// spec:
    ///   selector:
    ///     matchLabels:
    ///       app.kubernetes.io/name: media-handler
    ///   template:
    ///     metadata:
    ///       labels:
    ///         app.kubernetes.io/name: media-handler
    /// ```
    ///
    /// ## References
    /// - Deployment selector: <https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#selector>
    pub struct SelectorMismatch {
        id: "selector-mismatch",
        category: "workloads",
        severity: Error,
        summary: "a workload's selector does not match its own pod template",
    }
}

impl Rule for SelectorMismatch {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        for r in ctx.index.workloads() {
            if r.kind == "Pod" || r.kind == "CronJob" || r.kind == "Job" {
                continue;
            }
            let Some(sel) = ctx.index.own_selector(r) else {
                continue;
            };
            let added = ctx.index.added_labels(r.file);
            if sel.matches_with(r.pod_labels(), &added.template) {
                continue;
            }
            let mut f = Finding::new(
                Self::META.id,
                Label::new(r.file, sel.node.span, "this selector"),
                format!("selector of {} does not match its pod template", r.id()),
            )
            .help("Make the template's labels include every label the selector requires; the API server rejects the object otherwise.");
            if let Some(t) = r.pod_template() {
                let span = t.path(&["metadata", "labels"]).map_or(t.span, |l| l.span);
                f = f.with(Label::new(r.file, span, "pod template labels"));
            }
            out.push(f);
        }
    }
}
