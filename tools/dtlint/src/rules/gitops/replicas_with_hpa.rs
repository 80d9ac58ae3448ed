use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports a Deployment or StatefulSet that writes `spec.replicas`
    /// while a HorizontalPodAutoscaler (in the same namespace and
    /// environment) scales it. In rendered mode the finding points at the
    /// line that writes the count, in the base or an overlay patch.
    ///
    /// ## Why is this bad?
    /// Flux applies the manifest again at every reconcile (and at every
    /// commit): the written count replaces whatever the autoscaler decided,
    /// so a service scaled out under load drops back to the written number
    /// every ten minutes. The HPA's `minReplicas` is the floor to write
    /// instead.
    ///
    /// ## Example
    /// ```yaml
    /// # the Deployment, with hpa.yaml scaling it
    /// spec:
    ///   replicas: 3
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// # the Deployment: no replicas; in hpa.yaml (or the overlay's patch)
    /// spec:
    ///   minReplicas: 3
    ///   maxReplicas: 10
    /// ```
    ///
    /// ## References
    /// - Flux and HPA: <https://fluxcd.io/flux/faq/#can-i-use-flux-with-horizontalpodautoscaler>
    /// - Horizontal Pod Autoscaling: <https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/>
    pub struct ReplicasWithHpa {
        id: "replicas-with-hpa",
        category: "gitops",
        severity: Error,
        summary: "a workload writes spec.replicas although an HPA scales it (Flux undoes the autoscaler)",
        needs: Repository,
    }
}

impl Rule for ReplicasWithHpa {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Objects)
    }

    fn check_object(&self, ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        if !matches!((r.kind, r.group()), ("Deployment" | "StatefulSet", "apps")) {
            return;
        }
        let Some(replicas) = r.spec().and_then(|s| s.get("replicas")) else {
            return;
        };
        let Some(hpa) = ctx.index.autoscaler_of(r) else {
            return;
        };
        let count = replicas.as_str().unwrap_or("?");
        out.push(
            Finding::new(
                Self::META.id,
                Label::new(r.file, replicas.span, "Flux applies this at every reconcile"),
                format!(
                    "{} writes replicas: {count}, but {} scales it: every reconcile resets the count",
                    r.id(),
                    hpa.id()
                ),
            )
            .with(Label::new(hpa.file, hpa.anchor_span(), "the autoscaler"))
            .help("Remove `replicas` from the workload (base and overlay patches) and set the floor as the HPA's minReplicas."),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;

    const HPA: &str = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: gc}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: gc}\n  minReplicas: 2\n  maxReplicas: 4\n";

    fn deployment(spec: &str) -> String {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: gc}}\nspec:\n{spec}  template: {{spec: {{containers: [{{name: gc}}]}}}}\n"
        )
    }

    #[test]
    fn a_written_count_under_an_autoscaler_is_reported_at_the_count() {
        let d = deployment("  replicas: 3\n");
        let out = run(&ReplicasWithHpa, &[("d.yaml", &d), ("hpa.yaml", HPA)]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].message,
            "Deployment/gc writes replicas: 3, but HorizontalPodAutoscaler/gc scales it: every reconcile resets the count"
        );
        assert_eq!(out[0].primary.span.start.line, 5);
    }

    #[test]
    fn no_count_or_no_autoscaler_passes() {
        let d = deployment("");
        assert!(run(&ReplicasWithHpa, &[("d.yaml", &d), ("hpa.yaml", HPA)]).is_empty());
        let d = deployment("  replicas: 3\n");
        assert!(run(&ReplicasWithHpa, &[("d.yaml", &d)]).is_empty());
        // An autoscaler of another workload is not this one's.
        let other = HPA.replace("name: gc}", "name: mc}");
        assert!(run(&ReplicasWithHpa, &[("d.yaml", &d), ("hpa.yaml", &other)]).is_empty());
    }
}
