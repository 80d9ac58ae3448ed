use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks the requests and limits of our own containers (images under
    /// `own_images`) against the sizing table of their environment in
    /// `dtlint.toml` (`[environments.<env>.resources.<service>]`, `"*"` for
    /// every service without its own entry). Quantities compare by amount:
    /// `1000m` equals `1`, `2Gi` equals `2048Mi`.
    ///
    /// ## Why is this bad?
    /// Production sized like development runs out of memory under the first
    /// real meeting; development sized like production does not fit on a
    /// laptop cluster. The sizing was decided once (ADR-0012); the overlays
    /// must not drift from it one patch at a time.
    ///
    /// ## Example
    /// ```yaml
    /// # overlays/production/media-handler/patch-deployment.yaml
    /// resources:
    ///   limits: {cpu: 2000m, memory: 4Gi}
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// resources:
    ///   requests: {cpu: 4000m, memory: 12Gi}
    ///   limits: {cpu: 8000m, memory: 16Gi}
    /// ```
    ///
    /// ## References
    /// - ADR-0012, "Resource Sizing"; the SPEC environment table
    pub struct ResourcesPerEnvironment {
        id: "resources-per-environment",
        category: "gitops",
        severity: Error,
        summary: "a container's requests or limits differ from its environment's sizing table",
        needs: Repository,
    }
}

impl Rule for ResourcesPerEnvironment {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Workloads)
    }

    fn check_object(&self, ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        let Some(env) = r.env else { return };
        let Some(table) = ctx.config.environments.get(env).map(|e| &e.resources) else {
            return;
        };
        if table.is_empty() {
            return;
        }
        let service = r
            .pod_labels()
            .and_then(|l| l.get("app.kubernetes.io/name"))
            .and_then(Node::as_str)
            .unwrap_or(r.name);
        let Some(want) = table.get(service).or_else(|| table.get("*")) else {
            return;
        };
        for c in r.main_containers() {
            let own = c
                .node
                .get("image")
                .and_then(Node::as_str)
                .is_some_and(|i| ctx.config.is_own_image(i));
            if !own {
                continue;
            }
            let res = c.node.get("resources");
            for (kind, expected) in [("requests", &want.requests), ("limits", &want.limits)] {
                for (what, q) in expected {
                    let have = res.and_then(|x| x.get(kind)).and_then(|x| x.get(what));
                    let text = have.and_then(|h| h.as_scalar()).map(|s| s.text.as_str());
                    if text.is_some_and(|t| crate::quantity::same(t, q)) {
                        continue;
                    }
                    let span = have.map_or_else(
                        || {
                            c.node
                                .entry("resources")
                                .map_or_else(|| c.anchor_span(), |e| e.key.span)
                        },
                        |h| h.span,
                    );
                    let mut f = Finding::new(
                        Self::META.id,
                        Label::new(r.file, span, format!("{env} sizing is {q}")),
                        format!(
                            "{kind}.{what} of container `{}` of {} is {} in {env}, not {q}",
                            c.name(),
                            r.id(),
                            text.unwrap_or("unset")
                        ),
                    )
                    .help(format!(
                        "Set `{kind}.{what}: {q}` in the {env} overlay, as the sizing table says."
                    ));
                    // The table's value; `dtlint fix` applies it where the
                    // finding lands (safe only in that environment's own files).
                    f.replacement = Some(crate::diag::Replacement {
                        text: q.clone(),
                        safe: true,
                        in_container: have
                            .is_none()
                            .then(|| vec!["resources".into(), kind.into(), what.clone()]),
                        per_environment: true,
                    });
                    out.push(f);
                }
            }
        }
    }
}
