use std::collections::HashMap;

use crate::diag::{Finding, Label};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// In rendered mode, reports an object that two Flux Kustomizations of
    /// one environment both apply: the same API group, kind, namespace and
    /// name in the builds of both (overlapping `spec.path`s, a directory
    /// listed by two parents, or Kustomizations that apply each other).
    ///
    /// ## Why is this bad?
    /// Each Kustomization labels what it applies as its own and prunes what
    /// it no longer has. Two owners overwrite each other's labels and
    /// fields on every reconcile, and when one of them stops listing the
    /// object (or is deleted) its garbage collection deletes an object the
    /// other still declares: a Namespace takes everything in it along.
    ///
    /// ## Example
    /// ```yaml
    /// # clusters/production/apps.yaml
    /// spec:
    ///   path: ./apps/production            # includes ./apps/production/web
    /// ---
    /// spec:
    ///   path: ./apps/production/web
    /// ```
    ///
    /// ## Use instead
    /// Give every directory one Flux Kustomization: point the parent at a
    /// directory that does not contain the child's, or drop the child.
    ///
    /// ## References
    /// - Flux garbage collection: <https://fluxcd.io/flux/components/kustomize/kustomizations/#garbage-collection>
    pub struct FluxAppliedTwice {
        id: "flux-applied-twice",
        category: "flux",
        severity: Error,
        summary: "an object two Flux Kustomizations both apply",
        needs: Repository,
    }
}

/// Environment, API group, kind, namespace and name of an applied object.
type Identity<'a> = (&'a str, &'a str, &'a str, String, &'a str);

impl Rule for FluxAppliedTwice {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let idx = ctx.index;
        // Which Flux Kustomization built each rendered file.
        let by_file: HashMap<_, _> = idx
            .render
            .rendered
            .iter()
            .filter_map(|r| Some((r.file, (r.target.flux.as_ref()?, &r.target))))
            .collect();
        if by_file.len() < 2 {
            return;
        }
        let namespaces = crate::model::Namespaces::new(idx);
        // (env, group, kind, namespace, name) -> the first Kustomization
        // that applies it.
        let mut first: HashMap<Identity<'_>, (&str, &crate::render::Target)> = HashMap::new();
        for r in &idx.resources {
            let Some(&(flux, target)) = by_file.get(&r.file) else {
                continue;
            };
            // A name Flux has yet to substitute is not known to clash.
            if !r.is_object() || r.name.is_empty() || r.name.contains("${") {
                continue;
            }
            let key = (
                target.env.as_str(),
                r.group(),
                r.kind,
                namespaces.of(r),
                r.name,
            );
            let Some(&(other, other_target)) = first.get(&key) else {
                first.insert(key, (flux.name.as_str(), target));
                continue;
            };
            if other == flux.name {
                continue;
            }
            let mut f = Finding::new(
                Self::META.id,
                Label::new(r.file, r.anchor_span(), "applied twice"),
                format!(
                    "{} is applied by two Flux Kustomizations, {other} and {}: each prunes what the other declares",
                    r.id(),
                    flux.name
                ),
            )
            .help("Give every directory one Flux Kustomization: point the parent at a directory that does not contain the child's, or remove one of them.");
            for (name, t) in [(other, other_target), (flux.name.as_str(), target)] {
                if let Some((file, span)) = t.requested_by {
                    f = f.with(Label::new(
                        file,
                        span,
                        format!("Kustomization {name} applies it"),
                    ));
                }
            }
            f.envs.push(target.env.clone());
            out.push(f);
        }
    }
}
