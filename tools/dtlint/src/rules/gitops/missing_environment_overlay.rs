use crate::diag::{Finding, Label};
use crate::rules::layout::seven_file_pattern::service_dirs;
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks that every service directory under `base/` (the ones the
    /// seven-file pattern applies to) has an overlay in every environment
    /// `dtlint.toml` declares: `<overlays>/<service>/kustomization.yaml`.
    ///
    /// ## Why is this bad?
    /// A service without a production overlay is never deployed there, or is
    /// deployed from the base with development sizing and placeholder
    /// settings; either way the environments drift apart silently.
    ///
    /// ## Example
    /// ```text
    /// base/media-handler/
    /// overlays/development/media-handler/
    /// overlays/staging/media-handler/
    /// # no overlays/production/media-handler/
    /// ```
    ///
    /// ## Use instead
    /// ```text
    /// overlays/production/media-handler/kustomization.yaml
    /// ```
    ///
    /// ## References
    /// - Dark Tower SPEC, "Environments"
    pub struct MissingEnvironmentOverlay {
        id: "missing-environment-overlay",
        category: "gitops",
        severity: Error,
        summary: "a service has no overlay in one of the environments",
        needs: Repository,
    }
}

impl Rule for MissingEnvironmentOverlay {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let ws = ctx.index.ws;
        for (k, _) in service_dirs(ctx) {
            let Some(service) = k.dir.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let missing: Vec<&str> = ctx
                .config
                .environments_in_order()
                .filter(|(_, e)| {
                    let dir = ws.root.join(&e.overlays).join(service);
                    !ws.has_kustomization(&dir)
                })
                .map(|(name, _)| name)
                .collect();
            if missing.is_empty() {
                continue;
            }
            let dirs: Vec<String> = missing
                .iter()
                .filter_map(|env| ctx.config.environments.get(*env))
                .map(|e| format!("{}/{service}/", e.overlays.trim_end_matches('/')))
                .collect();
            out.push(
                Finding::new(
                    Self::META.id,
                    Label::new(
                        k.file,
                        ws.file_span(k.file),
                        format!("no overlay in {}", missing.join(", ")),
                    ),
                    format!(
                        "service `{service}` has no overlay for {}",
                        missing.join(", ")
                    ),
                )
                .help(format!(
                    "Create {} with a kustomization.yaml that uses this base.",
                    dirs.join(" and ")
                )),
            );
        }
    }
}
