use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};
use dtlint_yaml::Node;

declare_rule! {
    /// ## What it does
    /// Reports a PodDisruptionBudget that can never allow an eviction:
    /// `maxUnavailable: 0`, `minAvailable: 100%`, a `minAvailable` at
    /// least as large as the replicas of every workload it selects, or one
    /// that selects pods another budget already covers: the eviction API
    /// refuses to evict a pod under two budgets. That includes the
    /// instances of a CloudNativePG `Cluster`, whose operator makes its own
    /// budgets unless `spec.enablePDB` is `false`.
    ///
    /// ## Why is this bad?
    /// Node drains, cluster upgrades and autoscaler scale-downs wait on the
    /// budget forever; operators end up deleting the budget by hand in the
    /// middle of an upgrade, which removes the protection it was for.
    ///
    /// ## Example
    /// ```yaml
    /// # the Deployment has replicas: 1
    /// spec:
    ///   minAvailable: 1
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// # run at least two replicas, or allow one disruption:
    /// spec:
    ///   maxUnavailable: 1
    /// ```
    ///
    /// ## References
    /// - Disruption budgets: <https://kubernetes.io/docs/tasks/run-application/configure-pdb/>
    /// - CloudNativePG `enablePDB`: <https://cloudnative-pg.io/documentation/current/kubernetes_upgrade/>
    pub struct PdbBlocksEviction {
        id: "pdb-blocks-eviction",
        category: "workloads",
        severity: Error,
        summary: "a PodDisruptionBudget blocks every eviction",
        needs: Repository,
    }
}

/// `1 pod`, `2 pods`.
fn plural(n: i64, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

impl Rule for PdbBlocksEviction {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Kind("PodDisruptionBudget"))
    }

    fn check_object(&self, ctx: &Context<'_>, pdb: &Resource<'_>, out: &mut Vec<Finding>) {
        let help = "Allow at least one disruption: run more replicas than minAvailable, or use `maxUnavailable: 1`.";
        let Some(spec) = pdb.spec() else { return };
        if let Some(finding) = covered_twice(ctx, pdb) {
            out.push(finding);
        }
        if let Some(mu) = spec.get("maxUnavailable")
            && (mu.as_i64() == Some(0) || matches!(mu.as_str(), Some("0" | "0%")))
        {
            out.push(
                Finding::new(
                    Self::META.id,
                    Label::new(pdb.file, mu.span, "no pod may ever be evicted"),
                    format!("{} allows no disruption", pdb.id()),
                )
                .help(help),
            );
            return;
        }
        let Some(min) = spec.get("minAvailable") else {
            return;
        };
        if min.as_str() == Some("100%") {
            out.push(
                Finding::new(
                    Self::META.id,
                    Label::new(pdb.file, min.span, "no pod may ever be evicted"),
                    format!("{} requires every pod to stay up", pdb.id()),
                )
                .help(help),
            );
            return;
        }
        let Some(min_n) = min.as_i64() else { return };
        let Some(sel) = ctx.index.own_selector(pdb) else {
            return;
        };
        let targets: Vec<_> = ctx
            .index
            .pods_matching(&sel, pdb)
            .into_iter()
            .map(|(w, _)| w)
            .filter(|w| w.is_workload())
            .collect();
        if targets.is_empty() {
            return;
        }
        // Replicas default to 1 when not written.
        // An HPA's minReplicas is the floor of an autoscaled workload.
        if targets
            .iter()
            .all(|w| ctx.index.replicas_floor(w).count <= min_n)
        {
            let w = targets[0];
            let floor = ctx.index.replicas_floor(w);
            let replicas_msg = if floor.written {
                format!("runs {}", plural(floor.count, "replica"))
            } else {
                "no replicas set: runs 1 replica".to_string()
            };
            out.push(
                Finding::new(
                    Self::META.id,
                    Label::new(
                        pdb.file,
                        min.span,
                        format!("needs {} up", plural(min_n, "pod")),
                    ),
                    format!("{} blocks every eviction of {}", pdb.id(), w.id()),
                )
                .with(Label::new(floor.file, floor.span, replicas_msg))
                .help(help),
            );
        }
    }
}

/// Whether the operator of a CloudNativePG Cluster makes budgets for its
/// instances (`spec.enablePDB`, true unless written `false`).
fn operator_budgets(cluster: &Resource<'_>) -> bool {
    cluster.kind == "Cluster"
        && cluster.group() == "postgresql.cnpg.io"
        && cluster
            .spec()
            .and_then(|s| s.get("enablePDB"))
            .and_then(Node::as_bool)
            != Some(false)
}

/// A finding when `pdb` selects pods that another budget also covers: an
/// operator's (a CloudNativePG Cluster's), or another of ours (reported at
/// the later of the two, by name).
fn covered_twice(ctx: &Context<'_>, pdb: &Resource<'_>) -> Option<Finding> {
    let sel = ctx.index.own_selector(pdb)?;
    let selector_span = pdb.spec()?.get("selector")?.span;
    let mine = ctx.index.pods_matching(&sel, pdb);
    let help = "Give every pod one budget: select other pods, or turn the other budget off (for a CloudNativePG Cluster, keep its own budgets and drop this one).";
    if let Some((cluster, _)) = mine.iter().find(|(w, _)| operator_budgets(w)) {
        let at = cluster
            .spec()
            .and_then(|s| s.entry("enablePDB"))
            .map_or_else(|| cluster.anchor_span(), |e| e.key.span);
        return Some(
            Finding::new(
                PdbBlocksEviction::META.id,
                Label::new(pdb.file, selector_span, "selects the Cluster's instances"),
                format!(
                    "{} selects the instances of {}, which has its operator's own budgets: no instance can be evicted",
                    pdb.id(),
                    cluster.id()
                ),
            )
            .with(Label::new(cluster.file, at, "the operator makes budgets here (enablePDB defaults to true)"))
            .help(help),
        );
    }
    // Every other budget of a pod this one selects, reported at the later
    // of the two (by name).
    let found = mine.iter().find_map(|(w, _)| {
        ctx.index
            .budgets_of(w)
            .into_iter()
            .find(|other| other.name < pdb.name && ctx.index.same_namespace(pdb, other))
            .map(|other| (other, *w))
    });
    if let Some((other, w)) = found {
        let other_span = other
            .spec()
            .and_then(|s| s.get("selector"))
            .map_or_else(|| other.anchor_span(), |n| n.span);
        return Some(
            Finding::new(
                PdbBlocksEviction::META.id,
                Label::new(pdb.file, selector_span, "a second budget for these pods"),
                format!(
                    "{} and {} both select the pods of {}: no pod under two budgets can be evicted",
                    other.id(),
                    pdb.id(),
                    w.id()
                ),
            )
            .with(Label::new(other.file, other_span, "the first budget"))
            .help(help),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::plural;

    #[test]
    fn counts_read_naturally() {
        assert_eq!(plural(1, "pod"), "1 pod");
        assert_eq!(plural(3, "replica"), "3 replicas");
    }
}
