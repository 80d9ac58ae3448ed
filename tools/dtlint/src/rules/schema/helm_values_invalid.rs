use std::path::Path;

use dtlint_yaml::Node as Yaml;

use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, declare_rule};
use crate::schema::validate::{Options, Schema, Validator};
use crate::schema::{Catalog, build, cel};

declare_rule! {
    /// ## What it does
    /// Validates a HelmRelease's `spec.values` against its chart's
    /// `values.schema.json` when the chart is in the repository (a
    /// `GitRepository` or `Bucket` source and a `chart:` path that exists
    /// here), each problem at the value to edit: unknown keys where the
    /// schema is closed, types, enums, patterns, required values. Charts
    /// from a HelmRepository or an OCI registry are not in the repository;
    /// `check --verbose` counts the HelmReleases whose values went
    /// unchecked.
    ///
    /// ## Why is this bad?
    /// Helm validates values against the schema at install time: a wrong
    /// value fails the release, and Flux retries it until someone reads the
    /// HelmRelease's status.
    ///
    /// ## Example
    /// ```yaml
    /// spec:
    ///   chart:
    ///     spec:
    ///       chart: ./charts/web
    ///       sourceRef: {kind: GitRepository, name: flux-system}
    ///   values:
    ///     replicaCount: two      # the schema says integer
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    ///   values:
    ///     replicaCount: 2
    /// ```
    ///
    /// ## References
    /// - Chart values schema: <https://helm.sh/docs/topics/charts/#schema-files>
    /// - HelmRelease chart template: <https://fluxcd.io/flux/components/helm/helmreleases/#chart-template>
    pub struct HelmValuesInvalid {
        id: "helm-values-invalid",
        category: "schema",
        severity: Error,
        summary: "a HelmRelease's values do not match the chart's values.schema.json",
        needs: Repository,
    }
}

/// The chart directory a HelmRelease installs from this repository, if any.
fn chart_dir(ctx: &Context<'_>, r: &Resource<'_>) -> Result<std::path::PathBuf, String> {
    let spec = r.root.path(&["spec", "chart", "spec"]);
    let source = spec.and_then(|s| s.str_at(&["sourceRef", "kind"]));
    let chart = spec.and_then(|s| s.str_at(&["chart"])).unwrap_or("?");
    match source {
        Some("GitRepository" | "Bucket") => {}
        Some(kind) => {
            return Err(format!(
                "chart `{chart}` comes from a {kind}: its values.schema.json is not in the repository"
            ));
        }
        None if r.root.path(&["spec", "chartRef"]).is_some() => {
            return Err("a chartRef's chart is not in the repository".into());
        }
        None => return Err("no chart".into()),
    }
    let rel = chart.trim_start_matches("./");
    let dir = ctx.index.ws.root.join(rel);
    if Path::new(rel).is_absolute() || rel.split('/').any(|c| c == "..") {
        return Err(format!("chart path `{chart}` leaves the repository"));
    }
    Ok(dir)
}

fn check_values(
    ctx: &Context<'_>,
    catalog: &Catalog,
    r: &Resource<'_>,
    values: &Yaml,
    out: &mut Vec<Finding>,
) {
    let dir = match chart_dir(ctx, r) {
        Ok(dir) => dir,
        Err(why) => return cel::unchecked(format!("HelmRelease values: {why}")),
    };
    let ws = ctx.index.ws;
    let Some(id) = ws.sources.find_abs(&dir.join("values.schema.json")) else {
        return cel::unchecked(format!(
            "HelmRelease values: the chart at {} has no values.schema.json",
            crate::source::display_path(&ws.root, &dir)
        ));
    };
    let Some(doc) = ws.parsed(id).documents.first() else {
        return;
    };
    let Ok((arena, defs, root)) = build::standalone(&doc.root.to_json()) else {
        return cel::unchecked(format!(
            "HelmRelease values: {} is not a schema dtlint reads",
            ws.sources.get(id).path
        ));
    };
    let what = format!(
        "the values of chart {}",
        crate::source::display_path(&ws.root, &dir)
    );
    let mut problems = Vec::new();
    let schema = Schema {
        root,
        arena: &arena,
        crd: false,
    };
    let opts = Options {
        whole: true,
        ..Options::default()
    };
    Validator::standalone(catalog, &defs, &arena).object(
        values,
        schema,
        &what,
        opts,
        &mut problems,
    );
    for p in problems {
        let mut f = Finding::new(
            HelmValuesInvalid::META.id,
            Label::new(r.file, p.span, p.label),
            format!(
                "HelmRelease/{}: {}",
                r.name,
                p.message.replacen('`', "`spec.values.", 1)
            ),
        )
        .with(Label::new(
            id,
            ws.file_span(id),
            "the chart's values schema",
        ));
        if let Some(h) = p.help {
            f = f.help(h);
        }
        out.push(f);
    }
}

impl Rule for HelmValuesInvalid {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let Some((catalog, _)) = ctx.schemas() else {
            return;
        };
        for r in ctx
            .index
            .of_kind("HelmRelease")
            .filter(|r| r.group() == "helm.toolkit.fluxcd.io")
        {
            if let Some(values) = r.root.path(&["spec", "values"]) {
                check_values(ctx, catalog, r, values, out);
            }
        }
    }
}
