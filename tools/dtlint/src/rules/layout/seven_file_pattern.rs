use std::path::Path;

use crate::config::{SERVICE_FILES as REQUIRED, SERVICE_WORKLOAD_FILES as WORKLOADS};
use crate::diag::{Finding, Label};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};
use crate::source::display_path;

declare_rule! {
    /// ## What it does
    /// Checks that every service directory under `base/` holds the seven
    /// standard files: the workload (`deployment.yaml`, `statefulset.yaml`,
    /// or `cluster.yaml` for a database operator's cluster), `service.yaml`,
    /// `configmap.yaml`, `secret.yaml`, `network-policy.yaml`,
    /// `service-monitor.yaml` and `pdb.yaml`, next to its `kustomization.yaml`.
    /// Which directories count is set by `service_dirs` in `dtlint.toml`
    /// (default `base/*`, except `base/platform`).
    ///
    /// ## Why is this bad?
    /// A service without its NetworkPolicy runs with whatever the default
    /// allows; without a PodDisruptionBudget a node drain can take all its
    /// pods at once; without a ServiceMonitor nobody sees it fail. The fixed
    /// set makes a missing piece visible in review and lets every tool find
    /// each piece in the same place.
    ///
    /// ## Example
    /// ```text
    /// base/global-controller/
    ///   deployment.yaml  service.yaml  configmap.yaml  kustomization.yaml
    /// ```
    ///
    /// ## Use instead
    /// ```text
    /// base/global-controller/
    ///   deployment.yaml  service.yaml  configmap.yaml  secret.yaml
    ///   network-policy.yaml  service-monitor.yaml  pdb.yaml  kustomization.yaml
    /// ```
    ///
    /// ## References
    /// - Dark Tower SPEC, "Seven-file pattern"
    pub struct SevenFilePattern {
        id: "seven-file-pattern",
        category: "layout",
        severity: Error,
        summary: "a service directory under base/ lacks one of the seven standard files",
        needs: Repository,
    }
}

/// Is `dir` (relative to the root) a service directory per the config?
/// The kustomizations of service directories, with their relative paths.
pub fn service_dirs<'c>(
    ctx: &'c Context<'_>,
) -> impl Iterator<Item = (&'c crate::kustomize::Kustomization, String)> + 'c {
    let ws = ctx.index.ws;
    ws.kustomizations.iter().filter_map(move |k| {
        let rel = display_path(&ws.root, &k.dir);
        is_service_dir(ctx, &rel).then_some((k, rel))
    })
}

pub fn is_service_dir(ctx: &Context<'_>, rel: &str) -> bool {
    ctx.config.is_service_dir(rel)
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(items: &[&str]) -> String {
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

impl Rule for SevenFilePattern {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let ws = ctx.index.ws;
        for (k, rel) in service_dirs(ctx) {
            let has = |name: &str| ws.is_file(&Path::new(&k.dir).join(name));
            let mut missing: Vec<&str> = Vec::new();
            if !WORKLOADS.iter().any(|w| has(w)) {
                missing.push("deployment.yaml or statefulset.yaml");
            }
            missing.extend(REQUIRED.iter().copied().filter(|f| !has(f)));
            if missing.is_empty() {
                continue;
            }
            let file = ws.sources.get(k.file);
            let parsed = ws.parsed(k.file);
            let span = parsed
                .documents
                .first()
                .and_then(|d| d.root.entry("resources"))
                .map_or_else(|| file.head_span(), |e| e.key.span);
            let list = join_and(&missing);
            let them = if missing.len() == 1 { "it" } else { "them" };
            out.push(
                Finding::new(
                    Self::META.id,
                    Label::new(k.file, span, format!("{rel}/ has no {list}")),
                    format!(
                        "service directory `{rel}` is missing {} of the seven standard files",
                        missing.len()
                    ),
                )
                .help(format!(
                    "Create {list}, then list {them} under `resources:`."
                )),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::model::Index;
    use crate::workspace::Workspace;

    #[test]
    fn lists_read_naturally() {
        assert_eq!(join_and(&["pdb.yaml"]), "pdb.yaml");
        assert_eq!(join_and(&["a", "b", "c"]), "a, b and c");
    }

    #[test]
    fn a_nested_kustomization_is_not_a_service_directory() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::dark_tower();
        let ws = Workspace::load(dir.path(), &[dir.path().to_path_buf()], &config).unwrap();
        let index = Index::build(&ws);
        let ctx = Context::new(&index, &config);
        assert!(is_service_dir(&ctx, "base/ac-service"));
        assert!(!is_service_dir(&ctx, "base/ac-service/migrations"));
        assert!(!is_service_dir(&ctx, "base/platform"));
    }
}
