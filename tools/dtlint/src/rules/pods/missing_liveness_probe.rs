use crate::diag::Finding;
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks that every main container has a liveness probe and that an
    /// HTTP liveness probe of one of our own images (`own_images` in
    /// `dtlint.toml`) uses `/health`.
    ///
    /// ## Why is this bad?
    /// Without a liveness probe a deadlocked process keeps its pod forever and
    /// keeps receiving traffic it never answers. `/health` is the endpoint
    /// every Dark Tower service serves for liveness: it checks no
    /// dependencies, so a database outage does not restart every pod.
    ///
    /// ## Example
    /// ```yaml
    /// containers:
    ///   - name: global-controller
    ///     image: ghcr.io/dark-tower/dark-tower/global-controller:1.4.2
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// containers:
    ///   - name: global-controller
    ///     livenessProbe:
    ///       httpGet: {path: /health, port: http}
    ///       initialDelaySeconds: 10
    ///       periodSeconds: 10
    ///       timeoutSeconds: 5
    ///       failureThreshold: 3
    /// ```
    ///
    /// ## References
    /// - Probes: <https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/>
    /// - ADR-0012, "Standard Operational Endpoints"
    pub struct MissingLivenessProbe {
        id: "missing-liveness-probe",
        category: "pods",
        severity: Error,
        summary: "a container has no liveness probe, or it does not use /health",
    }
}

impl Rule for MissingLivenessProbe {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Workloads)
    }

    fn check_object(&self, ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        super::check_probes(ctx, Self::META.id, r, "livenessProbe", "/health", out);
    }
}
