use crate::diag::{Finding, Label};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports Flux Kustomizations that apply each other in a circle: one
    /// whose `spec.path` holds (directly or through the Kustomizations it
    /// applies) a Kustomization that applies the first again. Found while
    /// rendering the Flux tree, at the `spec.path` that closes the circle,
    /// with the whole circle named.
    ///
    /// ## Why is this bad?
    /// Each Kustomization of the circle applies, and so owns, the others:
    /// with `prune: true` a change in one can delete what another applies,
    /// and the ownership labels flip on every reconciliation. It is almost
    /// always a `path` pointing one directory too high (at the cluster
    /// directory instead of an app's).
    ///
    /// ## Example
    /// ```yaml
    /// # clusters/production/apps.yaml
    /// kind: Kustomization
    /// metadata: {name: apps}
    /// spec:
    ///   path: ./apps
    /// ---
    /// # apps/loop.yaml
    /// kind: Kustomization
    /// metadata: {name: loop}
    /// spec:
    ///   path: ./clusters/production   # applies `apps` again
    /// ```
    ///
    /// ## Use instead
    /// Point the inner Kustomization at its own directory (`./apps/loop`).
    ///
    /// ## References
    /// - Kustomization `spec.path`: <https://fluxcd.io/flux/components/kustomize/kustomizations/#path>
    pub struct FluxKustomizationCycle {
        id: "flux-kustomization-cycle",
        category: "flux",
        severity: Error,
        summary: "Flux Kustomizations apply each other in a circle",
        needs: Repository,
    }
}

impl Rule for FluxKustomizationCycle {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        for c in &ctx.index.render.cycles {
            let Some((file, span)) = c.at else { continue };
            let (Some(first), Some(closing)) = (c.chain.first(), c.chain.iter().rev().nth(1))
            else {
                continue;
            };
            let mut f = Finding::new(
                Self::META.id,
                Label::new(file, span, format!("applies Kustomization {first} again")),
                format!(
                    "Kustomization {closing} applies Kustomization {first} again: {}",
                    c.chain.join(" → ")
                ),
            )
            .help("Point this spec.path at the Kustomization's own directory, not at one that holds the Kustomizations above it.");
            f.envs.push(c.env.clone());
            out.push(f);
        }
    }
}
