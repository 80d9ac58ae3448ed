use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports a PodDisruptionBudget that can never allow an eviction:
    /// `maxUnavailable: 0`, `minAvailable: 100%`, or a `minAvailable` at
    /// least as large as the replicas of every workload it selects.
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

#[cfg(test)]
mod tests {
    use super::plural;

    #[test]
    fn counts_read_naturally() {
        assert_eq!(plural(1, "pod"), "1 pod");
        assert_eq!(plural(3, "replica"), "3 replicas");
    }
}
