use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::{Resource, STANDARD_LABELS};
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks that every object and every pod template carries the six
    /// `app.kubernetes.io` labels: `name`, `instance`, `version`,
    /// `component`, `part-of` and `managed-by`. Labels a kustomization adds
    /// with `labels:` or `commonLabels:` count. Flux's own objects
    /// (sources, Kustomizations, HelmReleases) are not checked: they live in
    /// `flux-system` and steer the cluster rather than run the application.
    ///
    /// ## Why is this bad?
    /// Dashboards, alerts, cost reports, `kubectl get -l` and NetworkPolicies
    /// all find things by these labels. An object without them is invisible
    /// to the tooling, and pods without them are not matched by the policies
    /// and monitors written for their service.
    ///
    /// ## Example
    /// ```yaml
    /// metadata:
    ///   name: global-controller
    ///   labels:
    ///     app: global-controller
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// metadata:
    ///   name: global-controller
    ///   labels:
    ///     app.kubernetes.io/name: global-controller
    ///     app.kubernetes.io/instance: global-controller-production
    ///     app.kubernetes.io/version: "1.4.2"
    ///     app.kubernetes.io/component: controller
    ///     app.kubernetes.io/part-of: dark-tower
    ///     app.kubernetes.io/managed-by: flux
    /// ```
    ///
    /// ## References
    /// - Recommended labels: <https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/>
    pub struct MissingStandardLabels {
        id: "missing-standard-labels",
        category: "workloads",
        severity: Error,
        summary: "an object or pod template lacks one of the six app.kubernetes.io labels",
    }
}

fn check_labels(
    r: &Resource<'_>,
    meta: Option<&Node>,
    anchor: dtlint_yaml::Span,
    added: &[String],
    what: &str,
    out: &mut Vec<Finding>,
) {
    let labels = meta.and_then(|m| m.get("labels"));
    let missing: Vec<&str> = STANDARD_LABELS
        .iter()
        .copied()
        .filter(|k| {
            labels
                .and_then(|l| l.get(k))
                .and_then(Node::as_str)
                .is_none_or(str::is_empty)
                && !added.iter().any(|a| a == k)
        })
        .collect();
    if missing.is_empty() {
        return;
    }
    let span = meta
        .and_then(|m| m.entry("labels"))
        .map_or(anchor, |e| e.key.span);
    out.push(
        Finding::new(
            MissingStandardLabels::META.id,
            Label::new(r.file, span, format!("missing {}", missing.join(", "))),
            format!("{what} of {} lacks {} standard label{}", r.id(), missing.len(), if missing.len() == 1 { "" } else { "s" }),
        )
        .help("Add every app.kubernetes.io label: name, instance (<name>-<env>), version, component, part-of: dark-tower, managed-by: flux."),
    );
}

/// Where to point when a pod template has no labels at all: its
/// `metadata:` key, or the `template:` key when it has no metadata either.
fn template_anchor(r: &Resource<'_>, template: &Node) -> dtlint_yaml::Span {
    if let Some(e) = template.entry("metadata") {
        return e.key.span;
    }
    let parent = if r.kind == "CronJob" {
        r.spec().and_then(|s| s.path(&["jobTemplate", "spec"]))
    } else {
        r.spec()
    };
    parent
        .and_then(|p| p.entry("template"))
        .map_or(template.span, |e| e.key.span)
}

impl Rule for MissingStandardLabels {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Objects)
    }

    fn check_object(&self, ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        if r.is_flux() {
            return;
        }
        let added = ctx.index.added_labels(r.file);
        check_labels(
            r,
            r.metadata(),
            r.metadata_span(),
            &added.object,
            "metadata",
            out,
        );
        if r.kind != "Pod"
            && let Some(t) = r.pod_template()
        {
            let tmeta = t.get("metadata");
            let anchor = template_anchor(r, t);
            check_labels(r, tmeta, anchor, &added.template, "pod template", out);
        }
    }
}

#[cfg(test)]
mod tests {
    use dtlint_yaml::{Limits, LineIndex, parse};

    use super::*;
    use crate::source::FileId;
    use crate::workspace::Role;

    #[test]
    fn a_template_without_labels_is_reported_at_its_metadata_key() {
        let src = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: rotate}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        metadata:\n          annotations: {a: b}\n        spec: {}\n";
        let parsed = parse(src, &LineIndex::new(src), Limits::default());
        let r =
            Resource::from_node(FileId(0), 0, &parsed.documents[0].root, Role::Standalone).unwrap();
        let span = template_anchor(&r, r.pod_template().unwrap());
        assert_eq!((span.start.line, span.start.col), (8, 9));
        let src = src.replace("        metadata:\n          annotations: {a: b}\n", "");
        let parsed = parse(&src, &LineIndex::new(&src), Limits::default());
        let r =
            Resource::from_node(FileId(0), 0, &parsed.documents[0].root, Role::Standalone).unwrap();
        let span = template_anchor(&r, r.pod_template().unwrap());
        assert_eq!((span.start.line, span.start.col), (7, 7));
    }
}
