use crate::diag::{Finding, Label};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};
use crate::workspace::Role;

declare_rule! {
    /// ## What it does
    /// Reports a manifest document (one with `metadata`) that names its
    /// `kind` but not its `apiVersion`, or the reverse, and a document listed under a
    /// kustomization's `resources:` that names neither. One finding per
    /// document, at the key that is there (or the document's first line):
    /// without both, no schema applies and no other rule can judge it.
    ///
    /// ## Why is this bad?
    /// The API server (and kustomize, for a listed resource) refuses an
    /// object without its type; dtlint cannot tell which schema to check it
    /// against, so every other mistake in it goes unseen too.
    ///
    /// ## Example
    /// ```yaml
    /// kind: Deployment
    /// metadata:
    ///   name: web
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// apiVersion: apps/v1
    /// kind: Deployment
    /// metadata:
    ///   name: web
    /// ```
    ///
    /// ## References
    /// - Object fields: <https://kubernetes.io/docs/concepts/overview/working-with-objects/#required-fields>
    pub struct SchemaKindMissing {
        id: "schema-kind-missing",
        category: "schema",
        severity: Error,
        summary: "a manifest document lacks its apiVersion or kind",
    }
}

impl Rule for SchemaKindMissing {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let ws = ctx.index.ws;
        for (id, _) in ws.sources.iter() {
            let role = ws.role(id);
            if !matches!(role, Role::Resource | Role::Standalone | Role::Patch) {
                continue;
            }
            for doc in &ws.parsed(id).documents {
                let root = &doc.root;
                if root.as_mapping().is_none_or(<[_]>::is_empty) {
                    continue;
                }
                // Only a document shaped like an object (with `metadata`)
                // is one: a Helm `Chart.yaml` has an `apiVersion` of its own.
                let object_like = root
                    .get("metadata")
                    .is_some_and(|m| m.as_mapping().is_some());
                let api = root
                    .entry("apiVersion")
                    .filter(|e| e.value.as_str().is_some());
                let kind = root.entry("kind").filter(|e| e.value.as_str().is_some());
                let (at, message) = match (api, kind) {
                    (None, Some(_)) | (Some(_), None) if !object_like => continue,
                    (None, Some(k)) => (
                        k.key.span,
                        format!(
                            "`kind: {}` has no `apiVersion`",
                            k.value.as_str().unwrap_or("")
                        ),
                    ),
                    (Some(a), None) => (
                        a.key.span,
                        format!(
                            "`apiVersion: {}` has no `kind`",
                            a.value.as_str().unwrap_or("")
                        ),
                    ),
                    // Neither: only a listed resource must be an object;
                    // other YAML files (values, tool configuration) need not.
                    (None, None) if role == Role::Resource => (
                        root.entries().next().map_or(root.span, |e| e.key.span),
                        "a resource listed by a kustomization has neither `apiVersion` nor `kind`"
                            .to_string(),
                    ),
                    (Some(_), Some(_)) | (None, None) => continue,
                };
                out.push(
                    Finding::new(Self::META.id, Label::new(id, at, "type incomplete"), message)
                        .help("Write both `apiVersion` and `kind`, e.g. `apiVersion: apps/v1` with `kind: Deployment`."),
                );
            }
        }
    }
}
