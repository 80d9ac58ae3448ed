use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::netpol::Namespaces;
use crate::rules::Merged;
use crate::rules::flux::{Ref, all, resolve};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports Flux references that name no declared object: a
    /// Kustomization's `sourceRef`, a HelmRelease's `chart.spec.sourceRef`
    /// or `chartRef`, and the `dependsOn` entries of both (which name
    /// objects of the same kind). A reference without `namespace` means the
    /// referring object's namespace; objects of different environments
    /// never resolve each other. Objects that controllers create count as
    /// declared: the source and Kustomization of `flux bootstrap` (a
    /// `flux-system/gotk-sync.yaml`, even a placeholder) or of a
    /// flux-operator `FluxInstance` sync, and an `ArtifactGenerator`'s
    /// `ExternalArtifact`s.
    ///
    /// ## Why is this bad?
    /// Flux waits for the missing source or dependency forever
    /// (`dependency 'flux-system/postgress' not found`), so the object and
    /// everything that depends on it never reconciles.
    ///
    /// ## Example
    /// ```yaml
    /// kind: Kustomization
    /// spec:
    ///   dependsOn:
    ///     - name: postgress
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// kind: Kustomization
    /// spec:
    ///   dependsOn:
    ///     - name: postgres
    /// ```
    ///
    /// ## References
    /// - Kustomization dependencies: <https://fluxcd.io/flux/components/kustomize/kustomizations/#dependencies>
    /// - HelmRelease chart template: <https://fluxcd.io/flux/components/helm/helmreleases/#chart-template>
    pub struct FluxRefUnresolved {
        id: "flux-ref-unresolved",
        category: "flux",
        severity: Error,
        summary: "a Flux sourceRef or dependsOn names an object that is not declared",
        needs: Repository,
    }
}

/// Kinds a reference may name, with their API group.
const SOURCES: [(&str, &str); 6] = [
    ("GitRepository", "source.toolkit.fluxcd.io"),
    ("OCIRepository", "source.toolkit.fluxcd.io"),
    ("Bucket", "source.toolkit.fluxcd.io"),
    ("HelmRepository", "source.toolkit.fluxcd.io"),
    ("HelmChart", "source.toolkit.fluxcd.io"),
    ("ExternalArtifact", "source.toolkit.fluxcd.io"),
];

fn check_ref(
    ctx: &Context<'_>,
    namespaces: &Namespaces,
    r: &Resource<'_>,
    what: &str,
    node: Option<&Node>,
    fixed_kind: Option<(&str, &str)>,
    merged: &mut Merged,
) {
    let Some(re) = node.and_then(Ref::read) else {
        return;
    };
    let (kind, group) = if let Some(k) = fixed_kind {
        k
    } else {
        let Some(kind) = re.kind else { return };
        match SOURCES.iter().find(|(k, _)| *k == kind) {
            Some(k) => *k,
            None => return,
        }
    };
    if resolve(ctx.index, namespaces, r, group, kind, &re).is_some() {
        return;
    }
    let ns = re
        .namespace
        .map_or_else(|| namespaces.of(r), str::to_string);
    // Made by a controller (bootstrap, a FluxInstance, an
    // ArtifactGenerator): it will exist.
    if ctx.index.made_by(r, (group, kind), re.name, &ns).is_some() {
        return;
    }
    merged.add(
        Finding::new(
            FluxRefUnresolved::META.id,
            Label::new(r.file, re.name_span(), format!("no {kind} {ns}/{} is declared", re.name)),
            format!("{what} of {} names {kind} {ns}/{}, which does not exist", r.id(), re.name),
        )
        .help(format!("Declare the {kind}, or fix the name (and `namespace`, which defaults to the referring object's)."))
        ,
        r.env,
    );
}

impl Rule for FluxRefUnresolved {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let namespaces = Namespaces::new(ctx.index);
        let mut merged = Merged::default();
        for r in all(ctx.index) {
            let Some(spec) = r.spec() else { continue };
            let own = (r.kind, r.group());
            match (r.group(), r.kind) {
                ("kustomize.toolkit.fluxcd.io", "Kustomization") => {
                    check_ref(
                        ctx,
                        &namespaces,
                        r,
                        "sourceRef",
                        spec.get("sourceRef"),
                        None,
                        &mut merged,
                    );
                }
                ("helm.toolkit.fluxcd.io", "HelmRelease") => {
                    check_ref(
                        ctx,
                        &namespaces,
                        r,
                        "chart sourceRef",
                        spec.path(&["chart", "spec", "sourceRef"]),
                        None,
                        &mut merged,
                    );
                    check_ref(
                        ctx,
                        &namespaces,
                        r,
                        "chartRef",
                        spec.get("chartRef"),
                        None,
                        &mut merged,
                    );
                }
                _ => continue,
            }
            for dep in spec.get("dependsOn").into_iter().flat_map(Node::items) {
                check_ref(
                    ctx,
                    &namespaces,
                    r,
                    "dependsOn",
                    Some(dep),
                    Some(own),
                    &mut merged,
                );
            }
        }
        out.extend(merged.into_findings());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;

    const GIT: &str = "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {name: flux-system, namespace: flux-system}\nspec: {interval: 1m, url: 'ssh://git@example.com/x'}\n";

    fn ks(name: &str, source: &str, deps: &str) -> String {
        format!(
            "---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {{name: {name}, namespace: flux-system}}\nspec:\n  interval: 10m\n  path: ./x\n  prune: true\n  sourceRef: {{kind: GitRepository, name: {source}}}\n  dependsOn: [{deps}]\n"
        )
    }

    #[test]
    fn sources_and_dependencies_resolve_in_the_namespace() {
        let ok = ks("a", "flux-system", "") + &ks("b", "flux-system", "{name: a}");
        assert!(run(&FluxRefUnresolved, &[("git.yaml", GIT), ("k.yaml", &ok)]).is_empty());
        let bad = ks("a", "flux", "") + &ks("b", "flux-system", "{name: a, namespace: other}");
        let out = run(&FluxRefUnresolved, &[("git.yaml", GIT), ("k.yaml", &bad)]);
        let msgs: Vec<&str> = out.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(
            msgs,
            [
                "sourceRef of Kustomization/a names GitRepository flux-system/flux, which does not exist",
                "dependsOn of Kustomization/b names Kustomization other/a, which does not exist",
            ]
        );
    }
}
