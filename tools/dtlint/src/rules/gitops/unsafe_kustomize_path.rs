use crate::diag::{Finding, Label};
use crate::kustomize::FILE_NAMES;
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks every path a kustomization references (resources, components,
    /// patches, generator files and env files, `crds`, `configurations`,
    /// `transformers`/`generators`/`validators` files, `replacements` and
    /// `openapi` paths, Helm values files) before any overlay is built.
    /// After symbolic links are followed, each must be a regular file or a
    /// directory inside the repository (or listed under `[render]
    /// allow-paths` in `dtlint.toml`), no larger than `max_file_size`.
    /// Remote references (`https://…`, `github.com/…`) are not fetched
    /// unless `allow-paths` lists a prefix of them. An overlay whose
    /// kustomizations reference anything else is not built.
    ///
    /// ## Why is this bad?
    /// `kustomize build` reads what it is told to: `/dev/zero` until memory
    /// runs out, a FIFO forever, a symlink loop or a path into another
    /// checkout that differs on every machine. Flux's kustomize-controller
    /// refuses paths outside the source, so such an overlay never applies in
    /// a cluster either; and a build that depends on the network is neither
    /// reproducible nor safe to run in CI.
    ///
    /// ## Example
    /// ```yaml
    /// resources:
    ///   - ../../../../shared/deployment.yaml   # outside the repository
    ///   - /dev/zero
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// resources:
    ///   - ../../base/global-controller
    /// ```
    ///
    /// ## References
    /// - kustomize load restrictions: <https://kubectl.docs.kubernetes.io/references/kustomize/cmd/build/>
    /// - Flux Kustomization `spec.path`: <https://fluxcd.io/flux/components/kustomize/kustomizations/#path>
    pub struct UnsafeKustomizePath {
        id: "unsafe-kustomize-path",
        category: "gitops",
        severity: Error,
        summary: "a kustomization references a path kustomize must not read",
        needs: Repository,
    }
}

impl Rule for UnsafeKustomizePath {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let ws = ctx.index.ws;
        let help = "Reference a file or directory inside the repository; list a path outside it under `[render] allow-paths` in dtlint.toml only if every checkout has it.";
        let mut found: Vec<(crate::render_guard::UnsafeRef, Finding)> = Vec::new();
        for u in &ws.unsafe_refs {
            let Some(file) = ws.sources.find_abs(&u.kustomization) else {
                continue;
            };
            found.push((
                u.clone(),
                Finding::new(
                    Self::META.id,
                    Label::new(file, u.span, "referenced here"),
                    u.message(),
                )
                .help(help),
            ));
        }
        // Overlays refused for entries outside the checked files: point at
        // the entry when its kustomization was read, else at the overlay.
        for b in &ctx.index.render.failures {
            for u in &b.refused {
                if let Some((_, f)) = found.iter_mut().find(|(seen, _)| seen == u) {
                    if !f.envs.contains(&b.target.env) {
                        f.envs.push(b.target.env.clone());
                    }
                    continue;
                }
                let at = ws
                    .sources
                    .find_abs(&u.kustomization)
                    .map(|k| (k, u.span))
                    .or_else(|| {
                        FILE_NAMES
                            .iter()
                            .find_map(|n| ws.sources.find_abs(&b.target.dir.join(n)))
                            .map(|k| (k, ws.file_span(k)))
                            .or(b.target.requested_by)
                    });
                let Some((file, span)) = at else { continue };
                let message = if ws.sources.find_abs(&u.kustomization).is_some() {
                    u.message()
                } else {
                    format!(
                        "`{}` does not build: {} references {}",
                        b.target.display,
                        crate::source::display_path(&ws.root, &u.kustomization),
                        u.message()
                    )
                };
                let mut f = Finding::new(
                    Self::META.id,
                    Label::new(file, span, "referenced here"),
                    message,
                )
                .help(help);
                f.envs.push(b.target.env.clone());
                found.push((u.clone(), f));
            }
        }
        out.extend(found.into_iter().map(|(_, f)| f));
    }
}
