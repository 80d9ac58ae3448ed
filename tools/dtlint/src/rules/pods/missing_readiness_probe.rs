use crate::diag::Finding;
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks that every main container has a readiness probe and that an
    /// HTTP readiness probe of one of our own images (`own_images` in
    /// `dtlint.toml`) uses `/ready`.
    ///
    /// ## Why is this bad?
    /// Without a readiness probe a pod receives traffic the moment its
    /// process starts, before it has connected to its database or registered
    /// with the global controller, and keeps receiving it while it drains on
    /// shutdown. Rolling updates with `maxUnavailable: 0` also rely on
    /// readiness to know when a new pod can replace an old one.
    ///
    /// ## Example
    /// ```yaml
    /// readinessProbe:
    ///   httpGet: {path: /health, port: http}
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// readinessProbe:
    ///   httpGet: {path: /ready, port: http}
    ///   initialDelaySeconds: 5
    ///   periodSeconds: 5
    ///   timeoutSeconds: 3
    ///   failureThreshold: 3
    /// ```
    ///
    /// ## References
    /// - Probes: <https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/>
    /// - ADR-0012, "Standard Operational Endpoints"
    pub struct MissingReadinessProbe {
        id: "missing-readiness-probe",
        category: "pods",
        severity: Error,
        summary: "a container has no readiness probe, or it does not use /ready",
    }
}

impl Rule for MissingReadinessProbe {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Workloads)
    }

    fn check_object(&self, ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        super::check_probes(ctx, Self::META.id, r, "readinessProbe", "/ready", out);
    }
}
