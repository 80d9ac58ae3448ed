use crate::diag::Finding;
use crate::model::Resource;
use crate::rules::flux::flux_address_unchecked::{Judged, check_kinds};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// With the overlays rendered as Flux applies them: reports a Flux
    /// Kustomization that waits (`wait: true`, or `healthChecks` naming the
    /// object) for a cert-manager `Certificate`, `Issuer` or
    /// `ClusterIssuer`, a CloudNativePG `Cluster` or `Database`, a Flagger `Canary`, a
    /// Gateway API `HTTPRoute` or a trust-manager `Bundle` without a
    /// `healthCheckExprs` entry for its kind. Reported once per
    /// Kustomization and kind, at its `wait`, naming the objects.
    ///
    /// ## Why is this bad?
    /// Flux judges readiness with kstatus, which reads only
    /// `status.observedGeneration` and the `Reconciling` and `Stalled`
    /// conditions of a custom resource. None of these kinds sets them, so
    /// each counts as ready the moment it exists: a certificate ACME never
    /// issues, a database cluster whose instances never start, a canary
    /// whose analysis failed and rolled back all leave the Kustomization
    /// `Ready`, the Kustomizations that depend on it proceed, and no alert
    /// fires. A `healthCheckExprs` entry (CEL over the object) tells Flux
    /// what ready means for the kind.
    ///
    /// ## Example
    /// ```yaml
    /// kind: Kustomization            # kustomize.toolkit.fluxcd.io
    /// spec:
    ///   path: ./overlays/production/postgres   # a CNPG Cluster, Certificates
    ///   wait: true
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// spec:
    ///   wait: true
    ///   healthCheckExprs:
    ///     - apiVersion: postgresql.cnpg.io/v1
    ///       kind: Cluster
    ///       current: "status.?conditions.orValue([]).exists(c, c.type == 'Ready' && c.status == 'True' && c.?observedGeneration.orValue(metadata.generation) == metadata.generation)"
    ///     - apiVersion: cert-manager.io/v1
    ///       kind: Certificate
    ///       current: "status.?conditions.orValue([]).exists(c, c.type == 'Ready' && c.status == 'True' && c.?observedGeneration.orValue(metadata.generation) == metadata.generation)"
    /// ```
    ///
    /// ## References
    /// - Flux health checks with CEL: <https://fluxcd.io/flux/components/kustomize/kustomizations/#health-check-expressions>
    /// - Flux CEL cheatsheet: <https://fluxcd.io/flux/cheatsheets/cel-healthchecks/>
    /// - kstatus rules: <https://github.com/kubernetes-sigs/cli-utils/blob/master/pkg/kstatus/README.md>
    pub struct FluxHealthUnchecked {
        id: "flux-health-unchecked",
        category: "flux",
        severity: Error,
        summary: "Flux waits for a custom resource kstatus cannot judge (Certificate, CNPG Cluster, Canary, HTTPRoute...) without healthCheckExprs for its kind",
        needs: Repository,
    }
}

fn always(_: &Resource<'_>) -> bool {
    true
}

const READY: &str = "status.?conditions.orValue([]).exists(c, c.type == 'Ready' && c.status == 'True' && c.?observedGeneration.orValue(metadata.generation) == metadata.generation)";

const KINDS: &[Judged] = &[
    Judged {
        group: "cert-manager.io",
        kind: "Certificate",
        applies: always,
        api_version: "cert-manager.io/v1",
        current: READY,
        until: "the certificate is issued (condition Ready)",
    },
    Judged {
        group: "cert-manager.io",
        kind: "Issuer",
        applies: always,
        api_version: "cert-manager.io/v1",
        current: READY,
        until: "the issuer can sign (condition Ready)",
    },
    Judged {
        group: "cert-manager.io",
        kind: "ClusterIssuer",
        applies: always,
        api_version: "cert-manager.io/v1",
        current: READY,
        until: "the issuer can sign (condition Ready)",
    },
    Judged {
        group: "postgresql.cnpg.io",
        kind: "Cluster",
        applies: always,
        api_version: "postgresql.cnpg.io/v1",
        current: READY,
        until: "the instances are up (condition Ready)",
    },
    Judged {
        group: "postgresql.cnpg.io",
        kind: "Database",
        applies: always,
        api_version: "postgresql.cnpg.io/v1",
        current: "status.?applied.orValue(false)",
        until: "the database exists (status.applied)",
    },
    Judged {
        group: "flagger.app",
        kind: "Canary",
        applies: always,
        api_version: "flagger.app/v1beta1",
        current: "status.?phase.orValue('') in ['Initialized', 'Succeeded']",
        until: "the canary is initialised or its last analysis succeeded (phase Initialized or Succeeded)",
    },
    Judged {
        group: "gateway.networking.k8s.io",
        kind: "HTTPRoute",
        applies: always,
        api_version: "gateway.networking.k8s.io/v1",
        current: "status.?parents.orValue([]).size() > 0 && status.parents.all(p, p.conditions.exists(c, c.type == 'Accepted' && c.status == 'True'))",
        until: "a Gateway accepts it (condition Accepted)",
    },
    Judged {
        group: "trust.cert-manager.io",
        kind: "Bundle",
        applies: always,
        api_version: "trust.cert-manager.io/v1alpha1",
        current: "status.?conditions.orValue([]).exists(c, c.type == 'Synced' && c.status == 'True')",
        until: "the bundle is written (condition Synced)",
    },
];

impl Rule for FluxHealthUnchecked {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        check_kinds(ctx, Self::META.id, KINDS, out);
    }
}
