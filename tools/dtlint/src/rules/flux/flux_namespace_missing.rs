use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::flux::applied_by;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// With the overlays rendered as Flux applies them: reports an object of
    /// a namespaced kind that has no `metadata.namespace` when the Flux
    /// Kustomization applying it sets no `spec.targetNamespace` either. It
    /// points at the object's name, in the file that defines it, naming the
    /// environments and the Kustomization.
    ///
    /// A kind is cluster-scoped when Kubernetes defines it so (Namespace,
    /// ClusterRole, CustomResourceDefinition, ...), when its name starts with
    /// `Cluster`, when it is one of the platform's cluster-scoped custom
    /// kinds (GatewayClass, trust-manager's Bundle, ...), or when a
    /// CustomResourceDefinition in the repository says `scope: Cluster`.
    ///
    /// ## Why is this bad?
    /// `kubectl kustomize` prints the object happily, but kustomize-controller
    /// cannot apply a namespaced object without a namespace: the server-side
    /// apply of the whole Kustomization fails, so nothing in it is applied,
    /// and the objects that depend on it wait forever. A kustomization's
    /// `namespace:` only covers the resources it lists itself, not the ones
    /// an overlay adds beside its base.
    ///
    /// ## Example
    /// ```yaml
    /// # overlays/production/metric-templates.yaml, listed by
    /// # overlays/production/kustomization.yaml (no namespace: there)
    /// kind: MetricTemplate
    /// metadata:
    ///   name: error-rate-vs-primary
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// kind: MetricTemplate
    /// metadata:
    ///   name: error-rate-vs-primary
    ///   namespace: dark-tower
    /// ```
    ///
    /// ## References
    /// - Kustomization target namespace: <https://fluxcd.io/flux/components/kustomize/kustomizations/#target-namespace>
    pub struct FluxNamespaceMissing {
        id: "flux-namespace-missing",
        category: "flux",
        severity: Error,
        summary: "Flux would apply a namespaced object with no namespace (the whole Kustomization fails)",
        needs: Repository,
    }
}

/// Cluster-scoped kinds of Kubernetes and of the platform's components whose
/// names do not start with `Cluster`.
const CLUSTER_SCOPED: [&str; 20] = [
    "Namespace",
    "Node",
    "PersistentVolume",
    "CustomResourceDefinition",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "PriorityClass",
    "StorageClass",
    "CSIDriver",
    "CSINode",
    "VolumeAttachment",
    "RuntimeClass",
    "IngressClass",
    "CertificateSigningRequest",
    "FlowSchema",
    "GatewayClass",
    "Bundle",
];

impl Rule for FluxNamespaceMissing {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Objects)
    }

    fn check_object(&self, ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        if r.env.is_none() || !r.is_object() || r.namespace.is_some() {
            return;
        }
        if r.kind.starts_with("Cluster") || CLUSTER_SCOPED.contains(&r.kind) {
            return;
        }
        let idx = ctx.index;
        let crd_says_cluster = idx.of_kind("CustomResourceDefinition").any(|crd| {
            let spec = crd.spec();
            spec.and_then(|s| s.path(&["names", "kind"]))
                .and_then(Node::as_str)
                == Some(r.kind)
                && spec.and_then(|s| s.get("scope")).and_then(Node::as_str) == Some("Cluster")
        });
        if crd_says_cluster {
            return;
        }
        let Some(k) = applied_by(idx, r) else {
            return;
        };
        if k.spec()
            .and_then(|s| s.get("targetNamespace"))
            .and_then(Node::as_str)
            .is_some_and(|t| !t.is_empty())
        {
            return;
        }
        let at = r
            .metadata()
            .and_then(|m| m.get("name"))
            .map_or_else(|| r.anchor_span(), |n| n.span);
        let mut f = Finding::new(
            Self::META.id,
            Label::new(r.file, at, "no namespace"),
            format!(
                "{} has no namespace, and Flux Kustomization {} sets no targetNamespace: kustomize-controller cannot apply it",
                r.id(),
                k.name
            ),
        )
        .help("Set metadata.namespace on the object (or `namespace:` in the kustomization that lists it), or spec.targetNamespace on the Flux Kustomization.");
        if let Some(path) = k.spec().and_then(|s| s.get("path")) {
            f = f.with(Label::new(k.file, path.span, "applied from here"));
        }
        out.push(f);
    }
}
