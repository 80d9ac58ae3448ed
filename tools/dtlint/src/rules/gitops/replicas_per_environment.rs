use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks every workload against its environment's `min_replicas` in
    /// `dtlint.toml` (production at least 3, staging at least 2 here).
    /// Deployments and StatefulSets count `spec.replicas` (1 when unset), or
    /// the `minReplicas` of the HorizontalPodAutoscaler that scales them; a
    /// CloudNativePG `Cluster` or `Pooler` counts `spec.instances`. In rendered mode the
    /// finding points at the overlay patch that sets the number.
    ///
    /// ## Why is this bad?
    /// One replica in production means every node drain, rollout or crash is
    /// an outage, and a PodDisruptionBudget either blocks the drain or
    /// protects nothing.
    ///
    /// ## Example
    /// ```yaml
    /// # overlays/production/meeting-controller/patch-deployment.yaml
    /// spec:
    ///   replicas: 1
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// spec:
    ///   replicas: 3
    /// ```
    ///
    /// ## References
    /// - ADR-0012 and the SPEC environment table
    pub struct ReplicasPerEnvironment {
        id: "replicas-per-environment",
        category: "gitops",
        severity: Error,
        summary: "a workload runs fewer replicas than its environment requires",
        needs: Repository,
    }
}

impl Rule for ReplicasPerEnvironment {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Objects)
    }

    fn check_object(&self, ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        let Some(env) = r.env else { return };
        let Some(min) = ctx
            .config
            .environments
            .get(env)
            .and_then(|e| e.min_replicas)
        else {
            return;
        };
        let field = match (r.kind, r.group()) {
            ("Deployment" | "StatefulSet", "apps") => "replicas",
            ("Cluster" | "Pooler", "postgresql.cnpg.io") => "instances",
            _ => return,
        };
        // An autoscaled workload runs its HPA's minReplicas at least.
        let (n, file, span) = if field == "replicas" {
            let floor = ctx.index.replicas_floor(r);
            (floor.count, floor.file, floor.span)
        } else {
            let node = r.spec().and_then(|s| s.get(field));
            let span = node.map_or_else(
                || r.root.entry("spec").map_or(r.anchor_span(), |e| e.key.span),
                |n| n.span,
            );
            (node.and_then(Node::as_i64).unwrap_or(1), r.file, span)
        };
        if n >= min {
            return;
        }
        let autoscaled = field == "replicas" && ctx.index.autoscaler_of(r).is_some();
        let key = if autoscaled { "minReplicas" } else { field };
        let field = if autoscaled {
            "replicas (its HPA's minReplicas)"
        } else {
            field
        };
        out.push(
            Finding::new(
                Self::META.id,
                Label::new(file, span, format!("{env} needs at least {min}")),
                format!("{} runs {n} {field} in {env}", r.id()),
            )
            .help(format!("Set `{key}: {min}` or more in the {env} overlay.")),
        );
    }
}
