//! One Kubernetes object and its typed accessors.

use dtlint_yaml::{Node, Span};

use crate::source::FileId;
use crate::workspace::Role;

/// The six labels every resource and pod template carries.
pub const STANDARD_LABELS: [&str; 6] = [
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
];

/// Labels that identify a workload for its whole life; selectors use only these.
pub const STABLE_SELECTOR_LABELS: [&str; 2] =
    ["app.kubernetes.io/name", "app.kubernetes.io/instance"];

/// Labels the StatefulSet controller gives each pod (its name and its
/// ordinal), fixed for that ordinal across releases: a Service may select
/// one replica by them.
pub const STATEFULSET_POD_LABELS: [&str; 2] = [
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
];

/// Kinds whose pods come from `spec.template`: the built-in workloads,
/// OpenShift's `DeploymentConfig` and Argo Rollouts' `Rollout`.
pub(super) const TEMPLATED: [&str; 8] = [
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "DeploymentConfig",
    "Rollout",
];

/// The API group of an `apiVersion` (`apps` for `apps/v1`, empty for the
/// core group's `v1`).
pub fn api_group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// A Kubernetes object: one YAML document with `apiVersion` and `kind`.
#[derive(Debug, Clone, Copy)]
pub struct Resource<'a> {
    pub file: FileId,
    /// Position of the document in its file.
    pub doc: usize,
    pub root: &'a Node,
    pub api_version: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub namespace: Option<&'a str>,
    pub role: Role,
    /// The environment the object belongs to: the build it was rendered in,
    /// or the environment directory its file lives in.
    pub env: Option<&'a str>,
    /// Where the pod template is, for a kind `dtlint.toml` declares a
    /// workload (`[[workload]]`): its keys from the root.
    pub custom_template: Option<&'a [String]>,
    /// [`Resource::group`], worked out once: rules ask for it per object.
    group: &'a str,
    /// [`Resource::is_kubernetes_object`], likewise.
    kubernetes: bool,
}

impl<'a> Resource<'a> {
    pub fn from_node(file: FileId, doc: usize, root: &'a Node, role: Role) -> Option<Self> {
        let api_version = root.get("apiVersion")?.as_str()?;
        let kind = root.get("kind")?.as_str()?;
        let meta = root.get("metadata");
        let group = api_group(api_version);
        let kubernetes = !matches!(
            group,
            "kustomize.config.k8s.io" | "kind.x-k8s.io" | "ctlptl.dev" | "k3d.io"
        ) && !api_version.starts_with("skaffold/");
        Some(Self {
            file,
            doc,
            root,
            api_version,
            kind,
            group,
            kubernetes,
            name: meta
                .and_then(|m| m.get("name"))
                .and_then(Node::as_str)
                .unwrap_or(""),
            namespace: meta.and_then(|m| m.get("namespace")).and_then(Node::as_str),
            role,
            env: None,
            custom_template: None,
        })
    }

    /// `Kind/name`, as users write it.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    /// The API group (`apps` for `apps/v1`, empty for the core group).
    pub fn group(&self) -> &'a str {
        self.group
    }

    /// True for a complete object (not a patch, not a kustomization).
    pub fn is_complete(&self) -> bool {
        matches!(
            self.role,
            Role::Resource | Role::Standalone | Role::Rendered
        )
    }

    /// False for configuration files of tools that merely look like objects
    /// (kustomize, kind, skaffold): they are never applied to a cluster.
    pub fn is_kubernetes_object(&self) -> bool {
        self.kubernetes
    }

    /// A complete Kubernetes object: what [`super::Index::objects`] yields and most
    /// rules judge.
    pub fn is_object(&self) -> bool {
        self.is_complete() && self.is_kubernetes_object()
    }

    /// True for Flux's own objects (sources, Kustomizations, HelmReleases):
    /// they steer the cluster rather than run the application.
    pub fn is_flux(&self) -> bool {
        self.group().ends_with("toolkit.fluxcd.io")
    }

    pub fn metadata(&self) -> Option<&'a Node> {
        self.root.get("metadata")
    }

    pub fn spec(&self) -> Option<&'a Node> {
        self.root.get("spec")
    }

    /// The span to point at when something is missing from the whole object:
    /// its `kind` value, which names what the object is.
    pub fn anchor_span(&self) -> Span {
        self.root.get("kind").map_or(self.root.span, |k| k.span)
    }

    /// The span of `metadata:` (its key), or the object's anchor.
    pub fn metadata_span(&self) -> Span {
        self.root
            .entry("metadata")
            .map_or_else(|| self.anchor_span(), |e| e.key.span)
    }

    /// An annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&'a Node> {
        self.metadata()?.get("annotations")?.get(key)
    }

    /// True for workload kinds that run pods.
    pub fn is_workload(&self) -> bool {
        TEMPLATED.contains(&self.kind)
            || self.kind == "CronJob"
            || self.kind == "Pod"
            || self.custom_template.is_some()
    }

    /// The pod template (`metadata` + `spec`) of a workload. For a bare Pod
    /// this is the object itself.
    pub fn pod_template(&self) -> Option<&'a Node> {
        if TEMPLATED.contains(&self.kind) {
            self.spec()?.get("template")
        } else if self.kind == "CronJob" {
            self.spec()?.path(&["jobTemplate", "spec", "template"])
        } else if self.kind == "Pod" {
            Some(self.root)
        } else if let Some(path) = self.custom_template {
            path.iter().try_fold(self.root, |n, k| n.get(k))
        } else {
            None
        }
    }

    pub fn pod_spec(&self) -> Option<&'a Node> {
        self.pod_template()?.get("spec")
    }

    /// Labels of the pod template.
    pub fn pod_labels(&self) -> Option<&'a Node> {
        self.pod_template()?.path(&["metadata", "labels"])
    }

    /// Every container of the pod: init containers first, then the main ones.
    pub fn containers(&self) -> impl Iterator<Item = Container<'a>> + 'a {
        let spec = self.pod_spec();
        ["initContainers", "containers"]
            .into_iter()
            .flat_map(move |key| {
                spec.and_then(|s| s.get(key))
                    .into_iter()
                    .flat_map(Node::items)
                    .map(move |node| Container {
                        node,
                        init: key == "initContainers",
                    })
            })
    }

    /// Main containers only (init containers run to completion and are not probed).
    pub fn main_containers(&self) -> impl Iterator<Item = Container<'a>> + 'a {
        self.containers().filter(|c| !c.init)
    }

    /// `spec.replicas` when written as an integer.
    pub fn replicas(&self) -> Option<i64> {
        self.spec()?.get("replicas")?.as_i64()
    }
}

/// A container of a pod template.
#[derive(Debug, Clone, Copy)]
pub struct Container<'a> {
    pub node: &'a Node,
    pub init: bool,
}

impl<'a> Container<'a> {
    pub fn name(&self) -> &'a str {
        self.node.get("name").and_then(Node::as_str).unwrap_or("")
    }

    /// Where to point for something missing from this container: its name.
    pub fn anchor_span(&self) -> Span {
        self.node.get("name").map_or(self.node.span, |n| n.span)
    }

    pub fn ports(&self) -> impl Iterator<Item = &'a Node> + 'a {
        self.node.get("ports").into_iter().flat_map(Node::items)
    }

    /// Does this container declare `port` (a number or a port name)?
    pub fn declares_port(&self, port: &Node) -> bool {
        if let Some(n) = port.as_i64() {
            self.ports()
                .any(|p| p.get("containerPort").and_then(Node::as_i64) == Some(n))
        } else if let Some(name) = port.as_str() {
            self.ports()
                .any(|p| p.get("name").and_then(Node::as_str) == Some(name))
        } else {
            false
        }
    }
}
