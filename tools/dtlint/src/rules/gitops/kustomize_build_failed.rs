use crate::diag::{Finding, Label};
use crate::kustomize::FILE_NAMES;
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Builds every overlay an environment applies (each Flux Kustomization's
    /// `spec.path` under the environment's cluster directory, or every
    /// overlay under its overlay directory) with `kustomize build
    /// --load-restrictor LoadRestrictionsNone`, and reports a build that fails,
    /// quoting kustomize's own error.
    ///
    /// ## Why is this bad?
    /// Flux cannot apply an overlay that does not build: the Kustomization goes
    /// `Ready=False` and every later change to that service, including the fix
    /// for an incident, waits behind it.
    ///
    /// ## Example
    /// ```yaml
    /// # overlays/production/global-controller/kustomization.yaml
    /// patches:
    ///   - path: patch-deploymnet.yaml   # no such file
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// patches:
    ///   - path: patch-deployment.yaml
    /// ```
    ///
    /// ## References
    /// - kustomize build: <https://kubectl.docs.kubernetes.io/references/kustomize/cmd/build/>
    /// - Flux Kustomization status: <https://fluxcd.io/flux/components/kustomize/kustomizations/>
    pub struct KustomizeBuildFailed {
        id: "kustomize-build-failed",
        category: "gitops",
        severity: Error,
        summary: "an overlay an environment applies does not build",
        needs: Repository,
    }
}

impl Rule for KustomizeBuildFailed {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let ws = ctx.index.ws;
        for b in &ctx.index.render.failures {
            let Err(error) = &b.output else { continue };
            if !b.refused.is_empty() {
                // Not built on purpose: `unsafe-kustomize-path` says why.
                continue;
            }
            let kfile = FILE_NAMES
                .iter()
                .find_map(|n| ws.sources.find_abs(&b.target.dir.join(n)));
            // Point at the entry the error names, when there is one.
            let entry = ws
                .kustomizations
                .iter()
                .filter(|k| b.inputs.contains(&ws.sources.get(k.file).abs))
                .flat_map(|k| k.refs.iter().map(move |r| (k.file, r)))
                .find(|(_, r)| r.raw.len() > 2 && error.contains(r.raw.as_str()));
            let (file, span) = match (entry, kfile, b.target.requested_by) {
                (Some((f, r)), _, _) => (f, r.span),
                (None, Some(k), _) => (k, ws.file_span(k)),
                (None, None, Some((f, s))) => (f, s),
                (None, None, None) => continue,
            };
            let mut f = Finding::new(
                Self::META.id,
                Label::new(file, span, if entry.is_some() { "named in the error" } else { "this overlay" }),
                // Attributed to a file several overlays share, the message
                // names no overlay, so the environments merge into one finding.
                if entry.is_some() {
                    format!("overlays using this entry do not build: {error}")
                } else {
                    format!("`{}` does not build: {error}", b.target.display)
                },
            )
            .help("Fix the overlay so `kubectl kustomize --load-restrictor LoadRestrictionsNone` succeeds; Flux applies nothing from it until then.");
            f.envs.push(b.target.env.clone());
            if let Some((rf, rs)) = b.target.requested_by.filter(|(rf, _)| Some(*rf) != kfile) {
                f = f.with(Label::new(rf, rs, "applied by this Flux Kustomization"));
            }
            out.push(f);
        }
    }
}
