use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Merged, Rule, RuleMeta, declare_rule};
use crate::terraform::{NodePool, Taint, node_pools};
use crate::workspace::Role;

declare_rule! {
    /// ## What it does
    /// Reads the node pools Terraform declares for each environment
    /// (`.../environments/<env>/*.tf`: a `module` with a `taints` list and
    /// `node_labels`, or a `google_container_node_pool` with `taint` blocks)
    /// and compares them with the workloads rendered for that environment:
    ///
    /// - a pool with a `NoSchedule` or `NoExecute` taint that no workload
    ///   tolerates is reported at the taint;
    /// - a workload whose `nodeSelector` picks a pool (by its labels), or
    ///   whose required node affinity has a term that picks it (every
    ///   expression of the term holds for the pool's labels, and one of them
    ///   is an `In` on a pool label), but does not tolerate the pool's
    ///   taints is reported at its `nodeSelector` or at that term.
    ///
    /// Tolerations match as Kubernetes matches them (`Equal` or `Exists`,
    /// an empty key or effect matching every one). Environments that were
    /// not rendered are not judged.
    ///
    /// ## Why is this bad?
    /// A dedicated pool that nothing tolerates stays empty and is paid
    /// for, while the service it was made for shares nodes with everything
    /// else; a workload that selects a pool without tolerating it never
    /// schedules at all.
    ///
    /// ## Example
    /// ```hcl
    /// module "media_handler_pool" {
    ///   node_labels = { "dark-tower.io/node-pool" = "media-handler" }
    ///   taints = [{ key = "dark-tower.io/dedicated", value = "media-handler", effect = "NO_SCHEDULE" }]
    /// }
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// # the media-handler Deployment
    /// spec:
    ///   template:
    ///     spec:
    ///       nodeSelector:
    ///         dark-tower.io/node-pool: media-handler
    ///       tolerations:
    ///         - key: dark-tower.io/dedicated
    ///           operator: Equal
    ///           value: media-handler
    ///           effect: NoSchedule
    /// ```
    ///
    /// ## References
    /// - Taints and tolerations: <https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/>
    /// - GKE node taints: <https://cloud.google.com/kubernetes-engine/docs/how-to/node-taints>
    pub struct NodePoolUntolerated {
        id: "node-pool-untolerated",
        category: "workloads",
        severity: Error,
        summary: "a tainted node pool that no workload tolerates, or a workload selecting a pool it does not tolerate",
        needs: Repository,
    }
}

/// Does one toleration (a `tolerations` item) tolerate `taint`?
fn tolerates(toleration: &Node, taint: &Taint) -> bool {
    let get = |k: &str| toleration.get(k).and_then(Node::as_str).unwrap_or("");
    let effect_ok = get("effect").is_empty() || get("effect") == taint.effect;
    let key = get("key");
    let key_ok = match get("operator") {
        "Exists" => key.is_empty() || key == taint.key,
        _ => key == taint.key && get("value") == taint.value,
    };
    effect_ok && key_ok
}

fn hard(taint: &Taint) -> bool {
    matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
}

/// Does the workload tolerate every hard taint of the pool?
fn tolerates_pool(r: &Resource<'_>, pool: &NodePool) -> bool {
    let tolerations: Vec<&Node> = r
        .pod_spec()
        .and_then(|s| s.get("tolerations"))
        .into_iter()
        .flat_map(Node::items)
        .collect();
    pool.taints
        .iter()
        .filter(|t| hard(t))
        .all(|t| tolerations.iter().any(|x| tolerates(x, t)))
}

/// Does the workload's `nodeSelector` pick this pool's nodes?
fn selects_pool<'a>(r: &Resource<'a>, pool: &NodePool) -> Option<&'a Node> {
    let sel = r.pod_spec()?.get("nodeSelector")?;
    let pairs: Vec<(&str, &str)> = sel
        .entries()
        .filter_map(|e| Some((e.key.as_str()?, e.value.as_str()?)))
        .collect();
    (!pairs.is_empty()
        && pairs
            .iter()
            .all(|(k, v)| pool.labels.iter().any(|(pk, pv)| pk == k && pv == v)))
    .then_some(sel)
}

/// Does one `matchExpressions` item hold for a node with `labels`?
/// (`Gt`/`Lt` compare numbers; an unknown operator holds for nothing.)
fn expression_holds(e: &Node, labels: &[(String, String)]) -> bool {
    let Some(key) = e.get("key").and_then(Node::as_str) else {
        return false;
    };
    let value = labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str());
    let values: Vec<&str> = e
        .get("values")
        .into_iter()
        .flat_map(Node::items)
        .filter_map(Node::as_str)
        .collect();
    let number = |v: &str| v.parse::<i64>().ok();
    match e.get("operator").and_then(Node::as_str) {
        Some("In") => value.is_some_and(|v| values.contains(&v)),
        Some("NotIn") => value.is_none_or(|v| !values.contains(&v)),
        Some("Exists") => value.is_some(),
        Some("DoesNotExist") => value.is_none(),
        Some("Gt") => {
            matches!((value.and_then(number), values.first().and_then(|v| number(v))), (Some(a), Some(b)) if a > b)
        }
        Some("Lt") => {
            matches!((value.and_then(number), values.first().and_then(|v| number(v))), (Some(a), Some(b)) if a < b)
        }
        _ => false,
    }
}

/// The first term of the workload's required node affinity that picks this
/// pool: all its expressions hold for the pool's labels and one is an `In`
/// on a label the pool has (a term of only `NotIn`/`DoesNotExist` fits every
/// pool and targets none).
fn affinity_selects_pool<'a>(r: &Resource<'a>, pool: &NodePool) -> Option<&'a Node> {
    let terms = r.pod_spec()?.path(&[
        "affinity",
        "nodeAffinity",
        "requiredDuringSchedulingIgnoredDuringExecution",
        "nodeSelectorTerms",
    ])?;
    terms.items().find(|term| {
        let exprs: Vec<&Node> = term
            .get("matchExpressions")
            .into_iter()
            .flat_map(Node::items)
            .collect();
        !exprs.is_empty()
            && exprs.iter().all(|e| expression_holds(e, &pool.labels))
            && exprs.iter().any(|e| {
                e.get("operator").and_then(Node::as_str) == Some("In")
                    && e.get("key")
                        .and_then(Node::as_str)
                        .is_some_and(|k| pool.labels.iter().any(|(pk, _)| pk == k))
            })
    })
}

impl Rule for NodePoolUntolerated {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let ws = ctx.index.ws;
        let mut collected = Merged::default();
        for (id, file) in ws.sources.iter() {
            if ws.role(id) != Role::Terraform {
                continue;
            }
            let pools = match node_pools(id, file) {
                Ok(p) => p,
                Err((span, message)) => {
                    out.push(Finding::new(
                        Self::META.id,
                        Label::new(id, span, message),
                        "cannot read this Terraform file's node pools".to_string(),
                    ));
                    continue;
                }
            };
            for pool in pools {
                let Some(env) = pool.env.as_deref() else {
                    continue;
                };
                let workloads: Vec<&Resource<'_>> = ctx
                    .index
                    .objects()
                    .filter(|r| r.env == Some(env) && r.is_workload())
                    .collect();
                // Not rendered (or not checked here): nothing to compare.
                if workloads.is_empty() {
                    continue;
                }
                for r in &workloads {
                    if let Some(sel) =
                        selects_pool(r, &pool).or_else(|| affinity_selects_pool(r, &pool))
                        && !tolerates_pool(r, &pool)
                    {
                        let taints: Vec<String> = pool
                            .taints
                            .iter()
                            .filter(|t| hard(t))
                            .map(|t| format!("{}={}:{}", t.key, t.value, t.effect))
                            .collect();
                        let finding = Finding::new(
                            Self::META.id,
                            Label::new(
                                r.file,
                                sel.span,
                                format!("selects node pool {}", pool.name),
                            ),
                            format!(
                                "{} selects node pool {}, whose taint {} it does not tolerate: its pods never schedule",
                                r.id(),
                                pool.name,
                                taints.join(", ")
                            ),
                        )
                        .with(Label::new(pool.file, pool.span, "the pool"))
                        .help("Add a toleration for each of the pool's taints to the pod template, next to its nodeSelector or node affinity.");
                        collected.add(finding, Some(env));
                    }
                }
                for taint in pool.taints.iter().filter(|t| hard(t)) {
                    let tolerated = workloads.iter().any(|r| {
                        r.pod_spec()
                            .and_then(|s| s.get("tolerations"))
                            .into_iter()
                            .flat_map(Node::items)
                            .any(|x| tolerates(x, taint))
                    });
                    if tolerated {
                        continue;
                    }
                    out.push(
                        Finding::new(
                            Self::META.id,
                            Label::new(
                                pool.file,
                                taint.span,
                                format!("no workload of {env} tolerates this taint"),
                            ),
                            format!(
                                "node pool {} is tainted {}={}:{} and no workload of {env} tolerates it: its nodes stay empty",
                                pool.name, taint.key, taint.value, taint.effect
                            ),
                        )
                        .help("Give the workload this pool is for a matching toleration (and a nodeSelector for the pool's labels), or drop the taint."),
                    );
                }
            }
        }
        out.extend(collected.into_findings());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: &str = "module \"mh_pool\" {\n  name = \"media-handler\"\n  node_labels = { \"pool\" = \"mh\" }\n  taints = [{\n    key    = \"dedicated\"\n    value  = \"mh\"\n    effect = \"NO_SCHEDULE\"\n  }]\n}\n";

    #[test]
    fn node_affinity_expressions_hold_as_the_scheduler_reads_them() {
        let labels = vec![
            ("pool".to_owned(), "mh".to_owned()),
            ("cores".to_owned(), "16".to_owned()),
        ];
        let holds = |yaml: &str| {
            let lines = dtlint_yaml::LineIndex::new(yaml);
            let parsed = dtlint_yaml::parse(yaml, &lines, dtlint_yaml::Limits::default());
            expression_holds(&parsed.documents[0].root, &labels)
        };
        assert!(holds("{key: pool, operator: In, values: [mh, mc]}"));
        assert!(!holds("{key: pool, operator: In, values: [mc]}"));
        assert!(holds("{key: gpu, operator: NotIn, values: [a100]}"));
        assert!(!holds("{key: pool, operator: NotIn, values: [mh]}"));
        assert!(holds("{key: pool, operator: Exists}"));
        assert!(holds("{key: gpu, operator: DoesNotExist}"));
        assert!(holds("{key: cores, operator: Gt, values: ['8']}"));
        assert!(!holds("{key: cores, operator: Lt, values: ['8']}"));
        assert!(!holds("{key: pool, operator: Near, values: [mh]}"));
    }

    fn deployment(extra: &str) -> String {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: mh}}\nspec:\n  template:\n    spec:\n{extra}      containers: [{{name: mh, image: x}}]\n"
        )
    }

    /// The rendered objects of an environment are what `dtlint check` sees;
    /// here an `overlays/<env>` directory stands for them.
    fn check(env: &str, workload: &str) -> Vec<Finding> {
        let dir = tempfile::tempdir().unwrap();
        let tf = dir.path().join("terraform/environments/production");
        std::fs::create_dir_all(&tf).unwrap();
        std::fs::write(tf.join("main.tf"), POOL).unwrap();
        let ov = dir.path().join(format!("overlays/{env}/mh"));
        std::fs::create_dir_all(&ov).unwrap();
        std::fs::write(ov.join("deployment.yaml"), workload).unwrap();
        let config = crate::config::Config::parse(
            "[environments.production]\noverlays = \"overlays/production\"\n[environments.staging]\noverlays = \"overlays/staging\"\n",
            "dtlint.toml",
        )
        .unwrap();
        let root = dir.path().to_path_buf();
        let ws =
            crate::workspace::Workspace::load(&root, std::slice::from_ref(&root), &config).unwrap();
        let index = crate::model::Index::build_with(&ws, Some(&config));
        let mut out = Vec::new();
        NodePoolUntolerated.check(&Context::new(&index, &config), &mut out);
        out
    }

    #[test]
    fn a_pool_nothing_tolerates_is_reported_at_its_taint() {
        let out = check("production", &deployment(""));
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].message,
            "node pool media-handler is tainted dedicated=mh:NoSchedule and no workload of production tolerates it: its nodes stay empty"
        );
        assert_eq!(out[0].primary.span.start.line, 4, "the taint object");
    }

    #[test]
    fn a_tolerating_workload_passes_and_a_selecting_one_must_tolerate() {
        let ok = deployment(
            "      nodeSelector: {pool: mh}\n      tolerations: [{key: dedicated, operator: Equal, value: mh, effect: NoSchedule}]\n",
        );
        assert!(check("production", &ok).is_empty());
        let exists = deployment("      tolerations: [{operator: Exists}]\n");
        assert!(
            check("production", &exists).is_empty(),
            "Exists with no key tolerates all"
        );
        let wrong_value = deployment(
            "      nodeSelector: {pool: mh}\n      tolerations: [{key: dedicated, value: gc, effect: NoSchedule}]\n",
        );
        let out = check("production", &wrong_value);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out.iter().any(|f| f.message
            == "Deployment/mh selects node pool media-handler, whose taint dedicated=mh:NoSchedule it does not tolerate: its pods never schedule"));
    }

    #[test]
    fn an_environment_without_workloads_is_not_judged() {
        assert!(check("staging", &deployment("")).is_empty());
    }
}
