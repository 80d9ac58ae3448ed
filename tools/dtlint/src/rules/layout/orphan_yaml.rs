use std::path::Path;

use crate::diag::{Finding, Label};
use crate::kustomize::FILE_NAMES;
use crate::rules::{Context, Rule, RuleMeta, declare_rule};
use crate::workspace::Role;

declare_rule! {
    /// ## What it does
    /// Reports a YAML file that sits in a directory with a
    /// `kustomization.yaml` but is not listed by any kustomization (as a
    /// resource, patch, generator input, `configurations:` or `crds:` entry).
    ///
    /// ## Why is this bad?
    /// Flux applies what the kustomization lists, not what the directory
    /// holds. An unlisted file looks deployed in review and is not: a
    /// NetworkPolicy or PodDisruptionBudget written but never applied gives a
    /// false sense of safety.
    ///
    /// ## Example
    /// ```yaml
    /// # base/media-handler/kustomization.yaml, next to pdb.yaml
    /// resources:
    ///   - deployment.yaml
    ///   - service.yaml
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// resources:
    ///   - deployment.yaml
    ///   - service.yaml
    ///   - pdb.yaml
    /// ```
    ///
    /// ## References
    /// - Kustomization resources: <https://kubectl.docs.kubernetes.io/references/kustomize/kustomization/resource/>
    pub struct OrphanYaml {
        id: "orphan-yaml",
        category: "layout",
        severity: Error,
        summary: "a YAML file next to a kustomization.yaml is not listed by any kustomization",
        needs: Repository,
    }
}

impl Rule for OrphanYaml {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let ws = ctx.index.ws;
        // Every path any kustomization names, under any key: files listed
        // under `configurations:` or `crds:` get no role but are not orphans.
        let listed: crate::pathmap::PathSet = ws
            .kustomizations
            .iter()
            .flat_map(|k| &k.refs)
            .map(|r| r.path.as_path())
            .collect();
        for (id, file) in ws.sources.iter() {
            if ws.role(id) != Role::Standalone || listed.contains(file.abs.as_path()) {
                continue;
            }
            let name = file.abs.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') {
                continue;
            }
            let dir = file.abs.parent().unwrap_or(Path::new(""));
            let Some(kfile) = FILE_NAMES
                .iter()
                .map(|n| dir.join(n))
                .find(|p| ws.is_file(p))
            else {
                continue;
            };
            let mut f = Finding::new(
                Self::META.id,
                Label::new(id, file.head_span(), "not listed by any kustomization"),
                format!("`{name}` is never applied"),
            )
            .help(format!("List `{name}` under `resources:` (or `patches:`) in kustomization.yaml, or delete it."));
            if let Some(kid) = ws.sources.find_abs(&kfile) {
                let span = ws
                    .parsed(kid)
                    .documents
                    .first()
                    .and_then(|d| d.root.entry("resources"))
                    .map_or_else(|| ws.file_span(kid), |e| e.key.span);
                f = f.with(Label::new(kid, span, "the kustomization of this directory"));
            }
            out.push(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(files: &[(&str, &str)]) -> Vec<String> {
        crate::rules::testing::run(&OrphanYaml, files)
            .into_iter()
            .map(|f| f.message)
            .collect()
    }

    #[test]
    fn configuration_files_are_listed() {
        let k = "resources: [deployment.yaml]\nconfigurations: [kustomizeconfig.yaml]\n";
        let files = [
            ("kustomization.yaml", k),
            ("deployment.yaml", "kind: Deployment\n"),
            ("kustomizeconfig.yaml", "nameReference: []\n"),
        ];
        assert!(findings(&files).is_empty());
        let files = [
            ("kustomization.yaml", "resources: [deployment.yaml]\n"),
            ("deployment.yaml", "kind: Deployment\n"),
            ("pdb.yaml", "kind: PodDisruptionBudget\n"),
        ];
        assert_eq!(findings(&files), ["`pdb.yaml` is never applied"]);
    }
}
