use crate::diag::{Finding, Label};
use crate::kustomize::RefKind;
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks that every local path a `kustomization.yaml` lists exists:
    /// resources, components, patches and generator inputs. A directory
    /// listed under `resources:` or `components:` must hold a kustomization.
    ///
    /// ## Why is this bad?
    /// `kustomize build` fails on the first missing path, so Flux stops
    /// applying the whole overlay, including changes that have nothing to do
    /// with the missing file.
    ///
    /// ## Example
    /// ```yaml
    /// resources:
    ///   - deployment.yaml
    ///   - servce.yaml        # typo: the file is service.yaml
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// resources:
    ///   - deployment.yaml
    ///   - service.yaml
    /// ```
    ///
    /// ## References
    /// - Kustomization resources: <https://kubectl.docs.kubernetes.io/references/kustomize/kustomization/resource/>
    pub struct KustomizationMissingFile {
        id: "kustomization-missing-file",
        category: "layout",
        severity: Error,
        summary: "a kustomization lists a path that does not exist",
    }
}

impl Rule for KustomizationMissingFile {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let ws = ctx.index.ws;
        for k in &ws.kustomizations {
            for r in &k.refs {
                let problem = if !ws.exists(&r.path) {
                    Some(format!("`{}` does not exist", r.raw))
                } else if !ws.is_file(&r.path)
                    && ws.is_dir(&r.path)
                    && matches!(r.kind, RefKind::Resource | RefKind::Component)
                    && !ws.has_kustomization(&r.path)
                {
                    Some(format!("directory `{}` has no kustomization.yaml", r.raw))
                } else {
                    None
                };
                if let Some(msg) = problem {
                    out.push(
                        Finding::new(
                            Self::META.id,
                            Label::new(k.file, r.span, "listed here"),
                            msg,
                        )
                        .help("Fix the path or remove the entry; `kustomize build` fails on it."),
                    );
                }
            }
        }
    }
}
