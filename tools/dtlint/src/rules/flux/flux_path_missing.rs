use dtlint_yaml::Node;

use crate::config::Profile;
use crate::diag::{Finding, Label};
use crate::flux::path_key;
use crate::model::{Namespaces, Resource};
use crate::rules::Merged;
use crate::rules::flux::{Ref, objects, resolve};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports a Flux Kustomization whose `spec.path` (relative to the root
    /// of its GitRepository) does not exist or is a file, when that
    /// GitRepository is this repository: the `flux-system` source that
    /// `flux bootstrap` or a FluxInstance syncs, or one with its URL. Paths
    /// into other repositories, OCI artifacts and buckets are not checked.
    /// With `profile = "dark-tower"`, the directory must also hold a
    /// `kustomization.yaml`.
    ///
    /// ## Why is this bad?
    /// kustomize-controller fails the reconciliation (`path not found`), so
    /// nothing below it is applied, pruned or health-checked. A directory
    /// without a kustomization is valid (kustomize-controller generates
    /// one from every manifest below it), but it takes patches and SOPS
    /// files too, which this platform's layout never means.
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
        let namespaces = Namespaces::new(idx);
        let own_urls = own_urls(ctx, &namespaces);
        let house = ctx.config.profile == Profile::DarkTower;
        for r in objects(idx, "kustomize", "Kustomization") {
            let Some(spec) = r.spec() else { continue };
            // Paths of other sources (other repositories, OCI artifacts,
            // buckets) are not in this repository.
            if !from_this_repository(ctx, &namespaces, &own_urls, r, spec) {
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
            } else if house && info.kustomization.is_none() {
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
                    .help("Point spec.path at a directory of this repository, relative to its root (`./` followed by the directory)."),
                r.env,
            );
        }
        out.extend(merged.into_findings());
    }
}

/// The URLs of this repository's own sync source: the `flux-system`
/// GitRepository as declared (bootstrap's `gotk-sync.yaml`).
fn own_urls<'a>(ctx: &Context<'a>, namespaces: &Namespaces) -> Vec<&'a str> {
    objects(ctx.index, "source", "GitRepository")
        .filter(|g| g.name == "flux-system" && namespaces.of(g) == "flux-system")
        .filter_map(|g| g.spec()?.get("url")?.as_str())
        .collect()
}

/// Does `r` (a Flux Kustomization) build from this repository? Its
/// `sourceRef` is the GitRepository `flux bootstrap` or a FluxInstance
/// syncs from (`flux-system`), or another GitRepository with the same URL.
/// A source that is not declared here, and not made by a controller, is
/// another repository as far as dtlint can tell.
fn from_this_repository(
    ctx: &Context<'_>,
    namespaces: &Namespaces,
    own_urls: &[&str],
    r: &Resource<'_>,
    spec: &Node,
) -> bool {
    let Some(source) = spec.get("sourceRef").and_then(Ref::read) else {
        return false;
    };
    if source.kind != Some("GitRepository") {
        return false;
    }
    let ns = source
        .namespace
        .map_or_else(|| namespaces.of(r), str::to_string);
    if source.name == "flux-system" && ns == "flux-system" {
        return true;
    }
    if ctx
        .index
        .made_by(
            r,
            ("source.toolkit.fluxcd.io", "GitRepository"),
            source.name,
            &ns,
        )
        .is_some()
    {
        return true;
    }
    resolve(
        ctx.index,
        namespaces,
        r,
        "source.toolkit.fluxcd.io",
        "GitRepository",
        &source,
    )
    .and_then(|g| g.spec()?.get("url")?.as_str())
    .is_some_and(|url| own_urls.contains(&url))
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
