//! Index: Kubernetes objects found in the workspace, with typed accessors.
//!
//! Rules read objects through [`Resource`] rather than raw trees so that
//! "where is the pod template of this workload" is answered once.

use dtlint_yaml::Node;

use crate::config::Config;
use crate::flux::FluxPaths;
use crate::render::{RenderOutput, Rendered};
use crate::sops_index::SopsState;
use crate::source::FileId;
use crate::workspace::Workspace;

mod budgets;
mod build;
pub mod created;
pub mod namespaces;
mod ordinals;
mod resource;
mod selector;
mod stages;

pub use crate::workspace::generators::{ConfigKind, ConfigObject};
pub use created::Created;
pub use namespaces::{NamespaceSetter, Namespaces};
pub(crate) use ordinals::position_in;
pub use ordinals::statefulset_ordinal;
use resource::TEMPLATED;
pub use resource::{
    Container, Resource, STABLE_SELECTOR_LABELS, STANDARD_LABELS, STATEFULSET_POD_LABELS, api_group,
};
pub use selector::Selector;
pub use stages::{Held, Stages};

/// Label keys a kustomization adds to the objects it lists (`labels:`,
/// `commonLabels:`), so rules do not demand them in the listed files.
#[derive(Debug, Clone, Default)]
pub struct AddedLabels {
    pub object: Vec<String>,
    pub template: Vec<String>,
}

/// Where a pod's labels come from.
#[derive(Debug, Clone, Copy)]
enum PodLabels<'a> {
    /// A workload's pod template.
    Template(Option<&'a Node>),
    /// Synthesised for an operator-managed object (index into `operator_pods`).
    Operator(usize),
}

/// Label value pairs to candidate items, so selectors are matched against a
/// few candidates instead of every object.
#[derive(Debug, Default)]
pub(crate) struct LabelIndex {
    /// By a hash of (key, value): no copies of the strings; a collision only
    /// adds a candidate that the real match then rejects.
    by_pair: rustc_hash::FxHashMap<u64, Vec<u32>>,
    /// Items with kustomize-added keys: they match any value of those keys.
    with_added: Vec<u32>,
    all: Vec<u32>,
}

fn pair_hash(key: &str, value: &str) -> u64 {
    use std::hash::{BuildHasher as _, Hash as _, Hasher as _};
    let mut h = rustc_hash::FxBuildHasher.build_hasher();
    key.hash(&mut h);
    value.hash(&mut h);
    h.finish()
}

impl LabelIndex {
    pub(crate) fn add(&mut self, item: u32, labels: Option<&Node>, added: &[String]) {
        self.all.push(item);
        if !added.is_empty() {
            self.with_added.push(item);
        }
        for e in labels.into_iter().flat_map(Node::entries) {
            if let (Some(k), Some(v)) = (e.key.as_str(), e.value.as_str()) {
                self.by_pair.entry(pair_hash(k, v)).or_default().push(item);
            }
        }
    }

    /// Items that may match `sel` (a superset of the real matches).
    fn candidates(&self, sel: &Selector<'_>) -> Vec<u32> {
        self.pair_candidates(sel)
            .unwrap_or_else(|| self.all.clone())
    }

    /// Items that carry one of `sel`'s `matchLabels` pairs (or may, by a
    /// kustomize-added key), in order; `None` when `sel` names no pair
    /// these items' labels could hold.
    pub(crate) fn pair_candidates(&self, sel: &Selector<'_>) -> Option<Vec<u32>> {
        // Not on a label a controller sets on the pod itself: the template
        // does not hold it.
        let pair = sel
            .match_labels()
            .into_iter()
            .filter(|(k, _)| !STATEFULSET_POD_LABELS.contains(k))
            .find_map(|(k, v)| v.as_str().map(|v| pair_hash(k, v)))?;
        let mut c: Vec<u32> = self.by_pair.get(&pair).cloned().unwrap_or_default();
        c.extend(&self.with_added);
        c.sort_unstable();
        c.dedup();
        Some(c)
    }
}

/// Everything the rules read: the workspace, what the later stages made of
/// it (rendered overlays, SOPS state, Flux paths), and the objects in it.
pub struct Index<'a> {
    pub ws: &'a Workspace,
    /// The render stage's output (empty when nothing was rendered).
    pub render: &'a RenderOutput,
    /// `.sops.yaml` and the SOPS files, decrypted once a key was given.
    pub sops: Held<'a, SopsState>,
    /// What each Flux Kustomization's `spec.path` points at.
    pub flux_paths: Held<'a, FluxPaths>,
    /// The namespace each file's objects get from its kustomizations,
    /// computed on first use (see [`Namespaces`]).
    pub(crate) namespace_setters:
        std::sync::OnceLock<std::collections::HashMap<FileId, NamespaceSetter>>,
    pub resources: Vec<Resource<'a>>,
    pub configs: Vec<ConfigObject>,
    added: std::collections::HashMap<FileId, AddedLabels>,
    no_labels: AddedLabels,
    /// (index into `resources`, synthetic pod labels) for operator-made pods.
    operator_pods: Vec<(usize, Node)>,
    /// Every pod label set: (index into `resources`, where the labels are).
    pods: Vec<(usize, PodLabels<'a>)>,
    pod_labels: LabelIndex,
    /// Indices into `resources` of complete Services.
    services: Vec<usize>,
    service_labels: LabelIndex,
    configs_by_name: std::collections::HashMap<(ConfigKind, String), Vec<usize>>,
    /// Indices into `resources` of the complete objects, by kind.
    by_kind: std::collections::HashMap<String, Vec<usize>>,
    /// Indices into `resources` of the complete objects (most rules walk
    /// them; deciding what is an object parses the apiVersion).
    object_ids: Vec<usize>,
    /// The PodDisruptionBudgets (indices into `resources`) selecting each
    /// workload's pods, by the workload's index; computed on first use.
    budgets: std::sync::OnceLock<std::collections::HashMap<usize, Vec<usize>>>,
    /// Every Secret in a source file, patches included, computed once for
    /// the SOPS rules that share it (see `rules::sops::source_secrets`).
    pub(crate) source_secrets: std::sync::OnceLock<Vec<Resource<'a>>>,
    /// What controllers create from the objects (see [`created`]),
    /// computed on first use.
    created: std::sync::OnceLock<Vec<Created>>,
    /// The configuration the index was built with (`[[controller]]`).
    config: Option<&'a Config>,
}

/// Can `a` and `b` meet: in the same environment, or either outside all?
pub fn same_env(a: &Resource<'_>, b: &Resource<'_>) -> bool {
    match (a.env, b.env) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

/// Pod labels of the pods a CloudNativePG object makes, as a YAML mapping
/// whose spans point at the object's name: a `Cluster`'s instances
/// (`cnpg.io/cluster` and `spec.inheritedMetadata.labels`) and a `Pooler`'s
/// PgBouncers (`cnpg.io/poolerName` and `spec.template.metadata.labels`).
fn cnpg_pod_labels(r: &Resource<'_>) -> Option<Node> {
    use dtlint_yaml::{Entry, Scalar, Style, Value};
    if r.group() != "postgresql.cnpg.io" {
        return None;
    }
    let (own, labels) = match r.kind {
        "Cluster" => ("cnpg.io/cluster", &["inheritedMetadata", "labels"][..]),
        "Pooler" => (
            "cnpg.io/poolerName",
            &["template", "metadata", "labels"][..],
        ),
        _ => return None,
    };
    let span = r
        .metadata()
        .and_then(|m| m.get("name"))
        .map_or_else(|| r.anchor_span(), |n| n.span);
    let scalar = |text: &str| Node {
        span,
        value: Value::Scalar(Scalar {
            text: text.to_string().into(),
            style: Style::Plain,
            tag: None,
        }),
    };
    let mut entries = vec![Entry {
        key: scalar(own),
        value: scalar(r.name),
    }];
    if let Some(inherited) = r.spec().and_then(|s| s.path(labels)) {
        entries.extend(inherited.entries().cloned());
    }
    Some(Node {
        span,
        value: Value::Mapping(entries),
    })
}

fn data_keys(root: &Node) -> Vec<String> {
    ["data", "stringData", "binaryData"]
        .iter()
        .filter_map(|k| root.get(k))
        .flat_map(Node::entries)
        .filter_map(|e| e.key.as_str().map(str::to_string))
        .collect()
}

/// The fewest pods a workload runs (see [`Index::replicas_floor`]).
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    pub count: i64,
    /// Whether `minReplicas` or `replicas` is written (else its default, 1).
    pub written: bool,
    /// Where to point: the number, or the `spec` of the HPA or workload.
    pub file: crate::source::FileId,
    pub span: dtlint_yaml::Span,
}

fn floor_of(owner: &Resource<'_>, key: &str) -> Floor {
    let node = owner.spec().and_then(|s| s.get(key));
    Floor {
        count: node.and_then(Node::as_i64).unwrap_or(1),
        written: node.is_some(),
        file: owner.file,
        span: node.map_or_else(
            || {
                owner
                    .root
                    .entry("spec")
                    .map_or_else(|| owner.anchor_span(), |e| e.key.span)
            },
            |n| n.span,
        ),
    }
}

impl<'a> Index<'a> {
    /// The index of a workspace, without environments for source files.
    pub fn build(input: impl Into<Stages<'a>>) -> Self {
        Self::build_with(input, None)
    }

    /// The index of a workspace; `config` assigns source files to
    /// environments by their directory.
    pub fn build_with(input: impl Into<Stages<'a>>, config: Option<&'a Config>) -> Self {
        let Stages {
            ws,
            render,
            sops,
            flux_paths,
        } = input.into();
        let files: Vec<_> = ws.sources.iter().collect();
        // The namespace kustomize gives each file, which most
        // whole-repository rules ask for, is worked out beside the objects.
        let namespace_setters = std::sync::OnceLock::new();
        let ((), per_file) = rayon::join(
            || {
                namespace_setters.get_or_init(|| namespaces::kustomize_namespaces(ws));
            },
            || Self::objects_of(ws, render, config, &files),
        );
        let mut resources = Vec::with_capacity(per_file.iter().map(Vec::len).sum());
        for v in per_file {
            resources.extend(v);
        }
        namespaces::rename_namespaces(ws, &mut resources, &namespace_setters);
        Self::assemble(
            ws,
            render,
            sops,
            flux_paths,
            config,
            resources,
            namespace_setters,
        )
    }

    /// The rendered overlay a file is the output of.
    pub fn rendered_of(&self, id: FileId) -> Option<&'a Rendered> {
        self.render.rendered_of(id)
    }

    fn build_lookups(&mut self) {
        for (i, r) in self.resources.iter().enumerate() {
            if r.is_object() && r.is_workload() {
                self.pods.push((i, PodLabels::Template(r.pod_labels())));
            }
        }
        for k in 0..self.operator_pods.len() {
            self.pods
                .push((self.operator_pods[k].0, PodLabels::Operator(k)));
        }
        for (n, &(i, labels)) in self.pods.iter().enumerate() {
            let r = &self.resources[i];
            let (node, added) = match labels {
                PodLabels::Template(node) => (
                    node,
                    self.added
                        .get(&r.file)
                        .map_or(&[][..], |a| a.template.as_slice()),
                ),
                PodLabels::Operator(k) => (
                    Some(&self.operator_pods[k].1),
                    self.added
                        .get(&r.file)
                        .map_or(&[][..], |a| a.object.as_slice()),
                ),
            };
            self.pod_labels.add(n as u32, node, added);
        }
        for (i, r) in self.resources.iter().enumerate() {
            if r.is_object() && r.kind == "Service" {
                let added = self
                    .added
                    .get(&r.file)
                    .map_or(&[][..], |a| a.object.as_slice());
                self.service_labels.add(
                    self.services.len() as u32,
                    r.metadata().and_then(|m| m.get("labels")),
                    added,
                );
                self.services.push(i);
            }
        }
        for (i, r) in self.resources.iter().enumerate() {
            if r.is_object() {
                self.by_kind.entry(r.kind.to_string()).or_default().push(i);
                self.object_ids.push(i);
            }
        }
        for (i, c) in self.configs.iter().enumerate() {
            self.configs_by_name
                .entry((c.kind, c.name.clone()))
                .or_default()
                .push(i);
        }
    }

    /// Pods (owner, labels) in `near`'s namespace that `sel` selects.
    pub fn pods_matching(
        &self,
        sel: &Selector<'_>,
        near: &Resource<'_>,
    ) -> Vec<(&Resource<'a>, Option<&Node>)> {
        self.pod_labels
            .candidates(sel)
            .into_iter()
            .filter_map(|n| {
                let (i, labels) = self.pods[n as usize];
                let r = &self.resources[i];
                let (node, added) = match labels {
                    PodLabels::Template(node) => (node, &self.added_labels(r.file).template),
                    PodLabels::Operator(k) => (
                        Some(&self.operator_pods[k].1),
                        &self.added_labels(r.file).object,
                    ),
                };
                let implied = match labels {
                    PodLabels::Template(_) => self.ordinal_labels(sel, r),
                    PodLabels::Operator(_) => Vec::new(),
                };
                (self.same_namespace(near, r) && sel.matches_implied(node, added, &implied))
                    .then_some((r, node))
            })
            .collect()
    }

    /// Every pod label set: its owner (a workload, or an operator-managed
    /// object such as a CloudNativePG Cluster), its labels, and the label
    /// keys kustomizations add to them.
    pub fn pods(&self) -> impl Iterator<Item = (&Resource<'a>, Option<&Node>, &[String])> + '_ {
        self.pods.iter().map(|&(i, labels)| {
            let r = &self.resources[i];
            match labels {
                PodLabels::Template(node) => {
                    (r, node, self.added_labels(r.file).template.as_slice())
                }
                PodLabels::Operator(k) => (
                    r,
                    Some(&self.operator_pods[k].1),
                    self.added_labels(r.file).object.as_slice(),
                ),
            }
        })
    }

    /// Services that `sel` selects by their labels, in `near`'s namespace
    /// unless `any_namespace`.
    pub fn services_matching(
        &self,
        sel: &Selector<'_>,
        near: &Resource<'_>,
        any_namespace: bool,
    ) -> Vec<&Resource<'a>> {
        self.service_labels
            .candidates(sel)
            .into_iter()
            .map(|n| &self.resources[self.services[n as usize]])
            .filter(|s| {
                (any_namespace || self.same_namespace(near, s))
                    && sel.matches_with(
                        s.metadata().and_then(|m| m.get("labels")),
                        &self.added_labels(s.file).object,
                    )
            })
            .collect()
    }

    /// Labels kustomizations add to the objects of `file`.
    pub fn added_labels(&self, file: FileId) -> &AddedLabels {
        self.added.get(&file).unwrap_or(&self.no_labels)
    }

    /// Namespaces match when both are written and equal, or either is left to
    /// the kustomization (`namespace:`) to set.
    ///
    /// Objects of two different environments never see each other.
    /// The `Namespace` object named `name` among the objects of `env`
    /// (objects outside any environment belong to all).
    pub fn namespace_object(&self, name: &str, env: Option<&str>) -> Option<&Resource<'a>> {
        self.of_kind("Namespace")
            .find(|r| r.name == name && (env.is_none() || r.env.is_none() || r.env == env))
    }

    /// The HorizontalPodAutoscaler that scales `r` (its `scaleTargetRef`
    /// names `r`'s kind and name, in `r`'s namespace and environment).
    pub fn autoscaler_of(&self, r: &Resource<'_>) -> Option<&Resource<'a>> {
        self.of_kind("HorizontalPodAutoscaler").find(|h| {
            let target = h.spec().and_then(|s| s.get("scaleTargetRef"));
            let field = |k: &str| target.and_then(|t| t.get(k)).and_then(Node::as_str);
            field("kind") == Some(r.kind)
                && field("name") == Some(r.name)
                && self.same_namespace(h, r)
        })
    }

    /// How many pods a workload runs at least: its HPA's `minReplicas`
    /// (1 when unset) when one scales it, else `spec.replicas` (1 when
    /// unset), with the place that says so.
    pub fn replicas_floor(&self, r: &Resource<'_>) -> Floor {
        match self.autoscaler_of(r) {
            Some(h) => floor_of(h, "minReplicas"),
            None => floor_of(r, "replicas"),
        }
    }

    pub fn same_namespace(&self, a: &Resource<'_>, b: &Resource<'_>) -> bool {
        if let (Some(x), Some(y)) = (a.env, b.env)
            && x != y
        {
            return false;
        }
        match (a.namespace, b.namespace) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
    }

    /// The selector an object uses for its own pods: a workload's
    /// `spec.selector`, a Service's `spec.selector`, a PDB's `spec.selector`.
    pub fn own_selector<'s>(&self, r: &Resource<'s>) -> Option<Selector<'s>> {
        let node = r.spec()?.get("selector")?;
        match r.kind {
            "Service" => Some(Selector {
                node,
                structured: false,
            }),
            "PodDisruptionBudget" => Some(Selector {
                node,
                structured: true,
            }),
            // A ReplicationController's and a DeploymentConfig's selector
            // is a plain label map, the others' a LabelSelector.
            k if TEMPLATED.contains(&k) => Some(Selector {
                node,
                structured: !matches!(k, "ReplicationController" | "DeploymentConfig"),
            }),
            _ => None,
        }
    }

    /// Workloads whose pods a Service (or PDB) selects.
    pub fn selected_workloads(&self, r: &Resource<'_>) -> Vec<&Resource<'a>> {
        let Some(sel) = self.own_selector(r).filter(|s| !s.is_empty()) else {
            return Vec::new();
        };
        self.pods_matching(&sel, r)
            .into_iter()
            .map(|(w, _)| w)
            .filter(|w| w.is_workload())
            .collect()
    }

    /// ConfigMaps or Secrets named `name` that `from` can see.
    pub fn config_objects<'s>(
        &'s self,
        kind: ConfigKind,
        name: &str,
        from: &'s Resource<'_>,
    ) -> impl Iterator<Item = &'s ConfigObject> + 's {
        self.configs_by_name
            .get(&(kind, name.to_string()))
            .into_iter()
            .flatten()
            .map(|&i| &self.configs[i])
            .filter(move |c| match (&c.namespace, from.namespace) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            })
    }

    /// Complete Kubernetes objects (resources and standalone manifests; not
    /// patches, not tool configuration).
    pub fn objects(&self) -> impl Iterator<Item = &Resource<'a>> {
        self.object_ids.iter().map(|&i| &self.resources[i])
    }

    /// Complete workloads.
    pub fn workloads(&self) -> impl Iterator<Item = &Resource<'a>> {
        self.objects().filter(|r| r.is_workload())
    }

    /// Complete objects of one kind.
    pub fn of_kind<'s>(&'s self, kind: &'s str) -> impl Iterator<Item = &'s Resource<'a>> + 's {
        self.by_kind
            .get(kind)
            .into_iter()
            .flatten()
            .map(|&i| &self.resources[i])
    }
}

/// The workspace of a temporary repository holding `files`, for the
/// model's tests (the directory lives as long as the first value).
#[cfg(test)]
pub(crate) fn test_workspace(
    files: &[(&str, &str)],
    config: &Config,
) -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let ws = Workspace::load(dir.path(), &[dir.path().to_path_buf()], config).unwrap();
    (dir, ws)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn include_selectors_adds_labels_to_templates() {
        let (_dir, ws) = test_workspace(
            &[
                (
                    "kustomization.yaml",
                    "labels:\n  - pairs: {app.kubernetes.io/instance: mc-dev}\n    includeSelectors: true\n  - pairs: {team: media}\nresources: [deployment.yaml]\n",
                ),
                (
                    "deployment.yaml",
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: mc}\n",
                ),
            ],
            &Config::dark_tower(),
        );
        let index = Index::build(&ws);
        let deployment = index
            .resources
            .iter()
            .find(|r| r.kind == "Deployment")
            .unwrap();
        let added = index.added_labels(deployment.file);
        assert_eq!(added.object, ["app.kubernetes.io/instance", "team"]);
        assert_eq!(added.template, ["app.kubernetes.io/instance"]);
    }
}
