use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::{Resource, STABLE_SELECTOR_LABELS, STATEFULSET_POD_LABELS};
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks that the selectors of workloads, Services and
    /// PodDisruptionBudgets (`matchLabels` and `matchExpressions` alike) use
    /// only the stable labels `app.kubernetes.io/name` and
    /// `app.kubernetes.io/instance`. A Service may also select one
    /// StatefulSet replica by the labels its controller gives that pod
    /// (`statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index`),
    /// which stay the same for that ordinal across releases.
    ///
    /// ## Why is this bad?
    /// A workload's selector is immutable: a selector on
    /// `app.kubernetes.io/version` makes the next release fail to apply, or
    /// forces a delete-and-recreate with downtime. A Service selecting on
    /// version drops every pod of the other version mid-rollout.
    ///
    /// ## Example
    /// ```yaml
    /// selector:
    ///   matchLabels:
    ///     app.kubernetes.io/name: meeting-controller
    ///     app.kubernetes.io/version: "1.4.2"
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// selector:
    ///   matchLabels:
    ///     app.kubernetes.io/name: meeting-controller
    ///     app.kubernetes.io/instance: meeting-controller-production
    /// ```
    ///
    /// ## References
    /// - Label selector updates: <https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#label-selector-updates>
    pub struct UnstableSelector {
        id: "unstable-selector",
        category: "workloads",
        severity: Error,
        summary: "a selector uses a label other than app.kubernetes.io/name and instance",
    }
}

impl Rule for UnstableSelector {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Objects)
    }

    fn check_object(&self, ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        let Some(sel) = ctx.index.own_selector(r) else {
            return;
        };
        let labels = if sel.structured {
            sel.node.get("matchLabels")
        } else {
            Some(sel.node)
        };
        let mut keys: Vec<(&str, dtlint_yaml::Span)> = labels
            .into_iter()
            .flat_map(Node::entries)
            .filter_map(|e| Some((e.key.as_str()?, e.key.span)))
            .collect();
        if sel.structured {
            // `matchExpressions` keys are as immutable as `matchLabels`.
            keys.extend(
                sel.node
                    .get("matchExpressions")
                    .into_iter()
                    .flat_map(Node::items)
                    .filter_map(|expr| expr.get("key"))
                    .filter_map(|k| Some((k.as_str()?, k.span))),
            );
        }
        for (key, span) in keys {
            if STABLE_SELECTOR_LABELS.contains(&key)
                || (r.kind == "Service" && STATEFULSET_POD_LABELS.contains(&key))
            {
                continue;
            }
            out.push(
                Finding::new(
                    Self::META.id,
                    Label::new(r.file, span, "not a stable label"),
                    format!("{} selects on `{key}`", r.id()),
                )
                .help("Select only on app.kubernetes.io/name and app.kubernetes.io/instance; they never change between releases."),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn match_expressions_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let pdb = "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: mc}\nspec:\n  selector:\n    matchLabels: {app.kubernetes.io/name: mc}\n    matchExpressions:\n      - {key: app.kubernetes.io/version, operator: In, values: [\"1\"]}\n";
        std::fs::write(dir.path().join("pdb.yaml"), pdb).unwrap();
        let config = Config::dark_tower();
        let out = crate::rules::testing::check_dir(&UnstableSelector, dir.path(), &config);
        let found: Vec<_> = out
            .iter()
            .map(|f| (f.message.as_str(), f.primary.span.start.line))
            .collect();
        assert_eq!(
            found,
            [(
                "PodDisruptionBudget/mc selects on `app.kubernetes.io/version`",
                8
            )]
        );
        let only_expressions = pdb
            .replace("    matchLabels: {app.kubernetes.io/name: mc}\n", "")
            .replace("version", "name");
        std::fs::write(dir.path().join("pdb.yaml"), only_expressions).unwrap();
        let out = crate::rules::testing::check_dir(&UnstableSelector, dir.path(), &config);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_service_may_select_one_statefulset_pod_a_workload_may_not() {
        let dir = tempfile::tempdir().unwrap();
        let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: mh-0}\nspec:\n  selector:\n    app.kubernetes.io/name: mh\n    statefulset.kubernetes.io/pod-name: mh-0\n    apps.kubernetes.io/pod-index: \"0\"\n";
        std::fs::write(dir.path().join("service.yaml"), svc).unwrap();
        let config = Config::dark_tower();
        let out = crate::rules::testing::check_dir(&UnstableSelector, dir.path(), &config);
        assert!(out.is_empty(), "{out:?}");
        let sts = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: mh}\nspec:\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: mh\n      statefulset.kubernetes.io/pod-name: mh-0\n";
        std::fs::write(dir.path().join("service.yaml"), sts).unwrap();
        let out = crate::rules::testing::check_dir(&UnstableSelector, dir.path(), &config);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].message,
            "StatefulSet/mh selects on `statefulset.kubernetes.io/pod-name`"
        );
    }
}
