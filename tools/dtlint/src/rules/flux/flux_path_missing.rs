use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::flux::path_key;
use crate::rules::Merged;
use crate::rules::flux::objects;
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports a Flux Kustomization whose `spec.path` (relative to the root
    /// of its GitRepository, this repository) does not exist, is a file, or
    /// is a directory without a `kustomization.yaml`.
    ///
    /// ## Why is this bad?
    /// kustomize-controller fails the reconciliation (`path not found`), so
    /// nothing below it is applied, pruned or health-checked. A directory
    /// without a kustomization is built from every YAML file below it,
    /// patches and SOPS files included, which is rarely what was meant.
    ///
    /// ## Example
    /// ```yaml
    /// kind: Kustomization
    /// spec:
    ///   path: ./overlays/prod/global-controller   # the directory is overlays/production
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// kind: Kustomization
    /// spec:
    ///   path: ./overlays/production/global-controller
    /// ```
    ///
    /// ## References
    /// - Flux Kustomization `.spec.path`: <https://fluxcd.io/flux/components/kustomize/kustomizations/#path>
    pub struct FluxPathMissing {
        id: "flux-path-missing",
        category: "flux",
        severity: Error,
        summary: "a Flux Kustomization's spec.path does not exist or holds no kustomization",
        needs: Repository,
    }
}

impl Rule for FluxPathMissing {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let idx = ctx.index;
        let mut merged = Merged::default();
        for r in objects(idx, "kustomize", "Kustomization") {
            let Some(spec) = r.spec() else { continue };
            // Paths of other sources (OCI artifacts, buckets) are not in this repository.
            if spec.path(&["sourceRef", "kind"]).and_then(Node::as_str) != Some("GitRepository") {
                continue;
            }
            let Some(node) = spec.get("path") else {
                continue;
            };
            let Some(raw) = node.as_str() else { continue };
            let Some(info) = idx.flux_paths.get(&path_key(raw)) else {
                continue;
            };
            let (message, label) = if !info.exists {
                (
                    format!("spec.path `{raw}` of {} does not exist", r.id()),
                    "no such directory in the repository",
                )
            } else if !info.is_dir {
                (
                    format!("spec.path `{raw}` of {} is a file", r.id()),
                    "not a directory",
                )
            } else if info.kustomization.is_none() {
                (
                    format!(
                        "spec.path `{raw}` of {} holds no kustomization.yaml",
                        r.id()
                    ),
                    "no kustomization.yaml here",
                )
            } else {
                continue;
            };
            merged.add(
                Finding::new(Self::META.id, Label::new(r.file, node.span, label), message)
                    .help("Point spec.path at an overlay directory with a kustomization.yaml, relative to the repository root (e.g. `./overlays/production/global-controller`)."),
                r.env,
            );
        }
        out.extend(merged.into_findings());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;

    fn ks(path: &str) -> String {
        format!(
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {{name: a, namespace: flux-system}}\nspec:\n  interval: 10m\n  path: {path}\n  prune: true\n  sourceRef: {{kind: GitRepository, name: flux-system}}\n"
        )
    }

    #[test]
    fn paths_are_checked_from_the_root() {
        let k = "resources: []\n";
        let ok = ks("./overlays/dev/");
        assert!(
            run(
                &FluxPathMissing,
                &[
                    ("clusters/a.yaml", &ok),
                    ("overlays/dev/kustomization.yaml", k)
                ]
            )
            .is_empty()
        );
        let bad = ks("./overlays/prod");
        let out = run(
            &FluxPathMissing,
            &[
                ("clusters/a.yaml", &bad),
                ("overlays/dev/kustomization.yaml", k),
            ],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].message,
            "spec.path `./overlays/prod` of Kustomization/a does not exist"
        );
        assert_eq!(
            (
                out[0].primary.span.start.line,
                out[0].primary.span.start.col
            ),
            (6, 9)
        );
        let empty = ks("./overlays");
        let out = run(
            &FluxPathMissing,
            &[
                ("clusters/a.yaml", &empty),
                ("overlays/dev/kustomization.yaml", k),
            ],
        );
        assert_eq!(out[0].primary.message, "no kustomization.yaml here");
    }
}
