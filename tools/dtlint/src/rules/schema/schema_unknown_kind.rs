use std::collections::HashSet;

use crate::diag::{Finding, Label};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

use super::{Lookup, judged, lookup, release_for};

declare_rule! {
    /// ## What it does
    /// Reports a custom resource kind that no schema describes: not a
    /// Kubernetes kind, not in dtlint's catalog (Flux), and no
    /// CustomResourceDefinition in the repository defines it. Reported once
    /// per kind, at its first object; its fields are not checked.
    ///
    /// ## Why is this bad?
    /// Nothing checks such an object before the cluster does: a misspelt
    /// field is found when Flux applies it, or never (the API server prunes
    /// unknown fields of a custom resource silently).
    ///
    /// ## Example
    /// ```yaml
    /// apiVersion: example.com/v1
    /// kind: Widget        # no CRD in the repository describes it
    /// ```
    ///
    /// ## Use instead
    /// Commit the CustomResourceDefinition beside the objects (or in the
    /// Flux tree that installs it), so dtlint validates them against it, or
    /// turn the rule off for the kinds you accept unchecked:
    /// ```toml
    /// [[exemption]]
    /// rule = "schema-unknown-kind"
    /// path = "apps/widgets/**"
    /// reason = "the Widget CRD is installed by its chart"
    /// ```
    ///
    /// ## References
    /// - Custom resources: <https://kubernetes.io/docs/concepts/extend-kubernetes/api-extension/custom-resources/>
    pub struct SchemaUnknownKind {
        id: "schema-unknown-kind",
        category: "schema",
        severity: Warning,
        summary: "a custom resource kind no schema describes: its fields go unchecked",
    }
}

impl Rule for SchemaUnknownKind {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let Some((catalog, local)) = ctx.schemas() else {
            return;
        };
        let mut seen: HashSet<(&str, &str)> = HashSet::new();
        for r in ctx.index.resources.iter().filter(|r| judged(r)) {
            if seen.contains(&(r.group(), r.kind)) {
                continue;
            }
            let Some(release) = release_for(catalog, ctx.config.kubernetes_version_of(r.env))
            else {
                return;
            };
            if !matches!(lookup(catalog, release, local, r), Lookup::Unknown) {
                continue;
            }
            seen.insert((r.group(), r.kind));
            let Some(at) = r.root.get("kind") else {
                continue;
            };
            out.push(
                Finding::new(
                    Self::META.id,
                    Label::new(r.file, at.span, "no schema"),
                    format!(
                        "no schema describes {} ({}): its objects' fields are not checked",
                        r.kind, r.api_version
                    ),
                )
                .help("Commit the kind's CustomResourceDefinition in the repository, or exempt the kind in dtlint.toml."),
            );
        }
    }
}
