use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::rules::Merged;
use crate::rules::flux::{all, spec_span};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports Flux objects that lack a field their CRD requires: a
    /// Kustomization's `interval`, `prune` and `sourceRef` (`kind`,
    /// `name`); a HelmRelease's `interval` and `chart.spec` `chart` and
    /// `sourceRef` (or a `chartRef`); a GitRepository's or OCIRepository's
    /// `interval` and `url`, a HelmRepository's `url`, a Bucket's
    /// `interval`, `bucketName` and `endpoint`. Optional fields are not
    /// required: a Kustomization without `path` builds the source's root,
    /// and a chart without `version` is `helm-chart-unpinned`'s finding.
    ///
    /// ## Why is this bad?
    /// The API server rejects an object without its required fields, so
    /// Flux never reconciles it, and nothing that depends on it.
    ///
    /// ## Example
    /// ```yaml
    /// kind: Kustomization
    /// spec:
    ///   path: ./overlays/production/redis
    ///   sourceRef: {kind: GitRepository, name: flux-system}
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// kind: Kustomization
    /// spec:
    ///   interval: 10m
    ///   path: ./overlays/production/redis
    ///   prune: true
    ///   sourceRef: {kind: GitRepository, name: flux-system}
    /// ```
    ///
    /// ## References
    /// - Kustomization spec: <https://fluxcd.io/flux/components/kustomize/kustomizations/>
    /// - HelmRelease spec: <https://fluxcd.io/flux/components/helm/helmreleases/>
    pub struct FluxRequiredFields {
        id: "flux-required-fields",
        category: "flux",
        severity: Error,
        summary: "a Flux object lacks a field its CRD requires (interval, prune, sourceRef, chart, url)",
    }
}

/// Required paths under `spec`, by (group, kind).
fn required(group: &str, kind: &str, spec: Option<&Node>) -> Vec<&'static [&'static str]> {
    match (group, kind) {
        ("kustomize", "Kustomization") => vec![
            &["interval"],
            &["prune"],
            &["sourceRef", "kind"],
            &["sourceRef", "name"],
        ],
        ("helm", "HelmRelease") if spec.is_some_and(|s| s.get("chartRef").is_some()) => {
            vec![&["interval"], &["chartRef", "kind"], &["chartRef", "name"]]
        }
        ("helm", "HelmRelease") => vec![
            &["interval"],
            &["chart", "spec", "chart"],
            &["chart", "spec", "sourceRef", "kind"],
            &["chart", "spec", "sourceRef", "name"],
        ],
        ("source", "GitRepository" | "OCIRepository") => vec![&["interval"], &["url"]],
        ("source", "HelmRepository") => vec![&["url"]],
        ("source", "Bucket") => vec![&["interval"], &["bucketName"], &["endpoint"]],
        _ => Vec::new(),
    }
}

impl Rule for FluxRequiredFields {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let mut merged = Merged::default();
        for r in all(ctx.index) {
            let group = r.group().trim_end_matches(".toolkit.fluxcd.io");
            let spec = r.spec();
            for path in required(group, r.kind, spec) {
                if spec
                    .and_then(|s| s.path(path))
                    .is_some_and(|n| !n.is_null())
                {
                    continue;
                }
                // Point at the deepest parent that exists.
                let mut at = spec_span(r);
                let mut node = spec;
                for key in &path[..path.len() - 1] {
                    match node.and_then(|n| n.entry(key)) {
                        Some(e) => {
                            at = e.key.span;
                            node = Some(&e.value);
                        }
                        None => break,
                    }
                }
                let field = path.join(".");
                merged.add(
                    Finding::new(
                        Self::META.id,
                        Label::new(r.file, at, format!("`{field}` is missing here")),
                        format!("{} has no spec.{field}", r.id()),
                    )
                    .help(format!("Set spec.{field}; see `dtlint explain flux-required-fields` for what each field is for.")),
                    r.env,
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

    #[test]
    fn missing_fields_point_at_their_parent() {
        let hr = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: loki, namespace: monitoring}\nspec:\n  interval: 1h\n  chart:\n    spec:\n      chart: loki\n      sourceRef: {kind: HelmRepository, name: grafana}\n";
        let out = run(&FluxRequiredFields, &[("hr.yaml", hr)]);
        assert!(out.is_empty(), "a version is optional: {out:?}");
        let no_chart = hr.replace("      chart: loki\n", "");
        let out = run(&FluxRequiredFields, &[("hr.yaml", &no_chart)]);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].message,
            "HelmRelease/loki has no spec.chart.spec.chart"
        );
        assert_eq!(out[0].primary.span.start.line, 7, "at `spec:` under chart");
        let ks = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: a}\nspec:\n  interval: 10m\n  path: ./x\n  prune: false\n  sourceRef: {kind: GitRepository, name: flux-system}\n";
        assert!(
            run(&FluxRequiredFields, &[("k.yaml", ks)]).is_empty(),
            "prune: false is set"
        );
    }
}
