use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

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

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Workloads)
    }

    fn check_object(&self, ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        if r.kind == "Pod" || r.kind == "CronJob" || r.kind == "Job" {
            return;
        }
        let Some(sel) = ctx.index.own_selector(r) else {
            return;
        };
        let added = ctx.index.added_labels(r.file);
        if sel.matches_with(r.pod_labels(), &added.template) {
            return;
        }
        let labels = r.pod_labels();
        let culprit = crate::rules::selector_parts(&sel)
            .into_iter()
            .find(|p| !p.selector().matches_with(labels, &added.template));
        let (span, what) = culprit
            .as_ref()
            .map_or((sel.node.span, "this selector"), |p| {
                (p.span, "required by the selector")
            });
        let mut f = Finding::new(
            Self::META.id,
            Label::new(r.file, span, what),
            format!("selector of {} does not match its pod template", r.id()),
        )
        .help("Make the template's labels include every label the selector requires; the API server rejects the object otherwise.");
        // Point at the template's value of the label, or at its labels
        // when the label is missing.
        let have = culprit
            .as_ref()
            .and_then(|p| labels.and_then(|l| l.entry(p.key)));
        if let Some(e) = have {
            f = f.with(Label::new(
                r.file,
                e.value.span,
                "the pod template has this",
            ));
        } else if let Some(t) = r.pod_template() {
            let span = t
                .path(&["metadata"])
                .and_then(|m| m.entry("labels"))
                .map_or(t.span, |e| e.key.span);
            let msg = culprit.as_ref().map_or_else(
                || "pod template labels".to_string(),
                |p| format!("no `{}` label here", p.key),
            );
            f = f.with(Label::new(r.file, span, msg));
        }
        out.push(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn points_at_the_failing_requirement() {
        let dir = tempfile::tempdir().unwrap();
        let d = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: mh}\nspec:\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: mh\n      app.kubernetes.io/instance: mh-base\n  template:\n    metadata:\n      labels:\n        app.kubernetes.io/name: mh\n        app.kubernetes.io/instance: mh-dev\n";
        std::fs::write(dir.path().join("deployment.yaml"), d).unwrap();
        let config = Config::dark_tower();
        let out = crate::rules::testing::check_dir(&SelectorMismatch, dir.path(), &config);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (
                out[0].primary.span.start.line,
                out[0].primary.span.start.col
            ),
            (8, 35)
        );
        assert_eq!(out[0].secondary[0].span.start.line, 13);
    }
}
