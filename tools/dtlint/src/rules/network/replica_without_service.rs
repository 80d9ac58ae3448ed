use std::collections::BTreeMap;

use crate::diag::{Finding, Label};
use crate::model::{Resource, Selector, statefulset_ordinal};
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports a StatefulSet whose replicas are reached one by one, each
    /// through a Service of its own that selects it by
    /// `statefulset.kubernetes.io/pod-name` (or `apps.kubernetes.io/pod-index`),
    /// when some replica it runs has no such Service. It counts
    /// `spec.replicas`, or an autoscaler's `maxReplicas`, and points at that
    /// count, in the base or the overlay patch that writes it, naming the
    /// environments.
    ///
    /// ## Why is this bad?
    /// Per-replica Services exist because clients must reach one particular
    /// replica: the one that holds their meeting, at the name it advertises.
    /// A replica added without its Service (and its address and DNS name)
    /// starts, registers and is handed meetings that nobody outside the
    /// cluster can join. The opposite mistake, a Service for a replica that
    /// does not run, is `selector-matches-nothing`.
    ///
    /// ## Example
    /// ```yaml
    /// # overlays/production/media-handler/patch-statefulset.yaml
    /// spec:
    ///   replicas: 3        # public.yaml has media-handler-0 and -1 only
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// # overlays/production/media-handler/public.yaml, for each ordinal
    /// kind: Service
    /// metadata: {name: media-handler-2}
    /// spec:
    ///   type: LoadBalancer
    ///   selector:
    ///     app.kubernetes.io/name: media-handler
    ///     statefulset.kubernetes.io/pod-name: media-handler-2
    /// ```
    ///
    /// ## References
    /// - StatefulSet pod labels: <https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#pod-name-label>
    /// - docs/ingress.md, "UDP: one load balancer per replica"
    pub struct ReplicaWithoutService {
        id: "replica-without-service",
        category: "network",
        severity: Error,
        summary: "a StatefulSet whose replicas each have their own Service runs a replica that has none",
        needs: Repository,
    }
}

impl Rule for ReplicaWithoutService {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Objects)
    }

    fn check_object(&self, ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        if (r.kind, r.group()) != ("StatefulSet", "apps") {
            return;
        }
        let idx = ctx.index;
        // Ordinal -> the Services that select exactly that replica.
        let mut exposed: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for svc in idx.of_kind("Service") {
            if !svc.is_object() || !idx.same_namespace(r, svc) {
                continue;
            }
            let Some(node) = svc.spec().and_then(|s| s.get("selector")) else {
                continue;
            };
            let sel = Selector {
                node,
                structured: false,
            };
            let Some(ordinal) = statefulset_ordinal(&sel, r.name) else {
                continue;
            };
            let selects_r = idx
                .pods_matching(&sel, svc)
                .iter()
                .any(|(owner, _)| owner.file == r.file && owner.root.span == r.root.span);
            if selects_r {
                exposed
                    .entry(ordinal)
                    .or_default()
                    .push(svc.name.to_owned());
            }
        }
        if exposed.is_empty() {
            return;
        }
        let (ceiling, autoscaled) = idx.replicas_ceiling(r);
        let (runs, file, span) = (ceiling.count, ceiling.file, ceiling.span);
        let what = if autoscaled {
            "the autoscaler may run"
        } else {
            "runs"
        };
        let missing: Vec<String> = (0..runs)
            .filter(|n| !exposed.contains_key(n))
            .map(|n| format!("{}-{n}", r.name))
            .collect();
        if missing.is_empty() {
            return;
        }
        let have: Vec<String> = exposed.values().flatten().cloned().collect();
        out.push(
            Finding::new(
                Self::META.id,
                Label::new(file, span, format!("{} without a Service", missing.join(", "))),
                format!(
                    "{} {what} {runs} replica(s), but {} {} no Service of its own (the others have: {})",
                    r.id(),
                    missing.join(", "),
                    if missing.len() == 1 { "has" } else { "have" },
                    have.join(", ")
                ),
            )
            .help(format!(
                "Add a Service selecting `statefulset.kubernetes.io/pod-name: {}` like the others (with its address and name), or run fewer replicas.",
                missing[0]
            )),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;

    fn sts(replicas: u32) -> String {
        format!(
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: mh}}\nspec:\n  replicas: {replicas}\n  template:\n    metadata:\n      labels: {{app.kubernetes.io/name: mh}}\n    spec: {{containers: [{{name: mh}}]}}\n"
        )
    }

    fn services(ordinals: &[u32]) -> String {
        ordinals
            .iter()
            .map(|n| format!("apiVersion: v1\nkind: Service\nmetadata: {{name: mh-{n}}}\nspec:\n  type: LoadBalancer\n  selector:\n    app.kubernetes.io/name: mh\n    statefulset.kubernetes.io/pod-name: mh-{n}\n"))
            .collect::<Vec<_>>()
            .join("---\n")
    }

    #[test]
    fn a_replica_without_its_service_is_reported_at_the_count() {
        let out = run(
            &ReplicaWithoutService,
            &[("sts.yaml", &sts(3)), ("svc.yaml", &services(&[0, 1]))],
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].message,
            "StatefulSet/mh runs 3 replica(s), but mh-2 has no Service of its own (the others have: mh-0, mh-1)"
        );
        assert_eq!(out[0].primary.span.start.line, 5);
        let out = run(
            &ReplicaWithoutService,
            &[("sts.yaml", &sts(4)), ("svc.yaml", &services(&[1]))],
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            out[0].message.contains("mh-0, mh-2, mh-3 have no Service"),
            "{}",
            out[0].message
        );
    }

    #[test]
    fn an_autoscaler_counts_its_maximum() {
        let hpa = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: mh}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: StatefulSet, name: mh}\n  minReplicas: 2\n  maxReplicas: 3\n";
        let out = run(
            &ReplicaWithoutService,
            &[
                ("sts.yaml", &sts(2)),
                ("svc.yaml", &services(&[0, 1])),
                ("hpa.yaml", hpa),
            ],
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            out[0]
                .message
                .starts_with("StatefulSet/mh the autoscaler may run 3"),
            "{}",
            out[0].message
        );
        assert_eq!(out[0].primary.span.start.line, 7);
    }

    #[test]
    fn every_replica_exposed_or_none_passes() {
        assert!(
            run(
                &ReplicaWithoutService,
                &[("sts.yaml", &sts(2)), ("svc.yaml", &services(&[0, 1]))]
            )
            .is_empty()
        );
        // No per-replica Services at all: reached through one Service, fine.
        let one = "apiVersion: v1\nkind: Service\nmetadata: {name: mh}\nspec:\n  selector: {app.kubernetes.io/name: mh}\n";
        assert!(
            run(
                &ReplicaWithoutService,
                &[("sts.yaml", &sts(3)), ("svc.yaml", one)]
            )
            .is_empty()
        );
        // Another StatefulSet's per-replica Services are not this one's.
        let other = services(&[0]).replace("mh-0", "mhx-0");
        assert!(
            run(
                &ReplicaWithoutService,
                &[("sts.yaml", &sts(3)), ("svc.yaml", &other)]
            )
            .is_empty()
        );
    }
}
