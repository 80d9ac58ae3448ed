//! Building the index: the objects of every file, then everything around
//! them.

use dtlint_yaml::Node;

use super::{
    AddedLabels, ConfigKind, ConfigObject, Held, Index, LabelIndex, NamespaceSetter, Resource,
    cnpg_pod_labels, data_keys,
};
use crate::config::Config;
use crate::flux::FluxPaths;
use crate::render::RenderOutput;
use crate::sops_index::SopsState;
use crate::source::FileId;
use crate::workspace::{Role, Workspace};

impl<'a> Index<'a> {
    /// The objects of every file, per file in parallel, in file order.
    pub(super) fn objects_of(
        ws: &'a Workspace,
        render: &'a RenderOutput,
        config: Option<&'a Config>,
        files: &[(FileId, &'a crate::source::SourceFile)],
    ) -> Vec<Vec<Resource<'a>>> {
        use rayon::prelude::*;
        files
            .par_iter()
            .map(|&(id, f)| {
                let role = ws.role(id);
                // Objects judged through a rendered build are not judged alone.
                if render.covered.contains(&id) && role != Role::Kustomization {
                    return Vec::new();
                }
                let env = match render.rendered_of(id) {
                    Some(r) => Some(r.target.env.as_str()),
                    None => config.and_then(|c| c.environment_of(&f.path)),
                };
                ws.parsed(id)
                    .documents
                    .iter()
                    .filter_map(|doc| {
                        let mut r = Resource::from_node(id, doc.index, &doc.root, role)?;
                        r.env = env;
                        r.custom_template =
                            config.and_then(|c| c.workload_template(r.kind, r.group()));
                        Some(r)
                    })
                    .collect()
            })
            .collect()
    }

    /// The index around `resources`: configuration objects, the labels
    /// kustomizations add, the lookups.
    pub(super) fn assemble(
        ws: &'a Workspace,
        render: &'a RenderOutput,
        sops: Held<'a, SopsState>,
        flux_paths: Held<'a, FluxPaths>,
        config: Option<&'a Config>,
        resources: Vec<Resource<'a>>,
        namespace_setters: std::sync::OnceLock<std::collections::HashMap<FileId, NamespaceSetter>>,
    ) -> Self {
        let mut configs: Vec<ConfigObject> = resources
            .iter()
            .filter_map(|r| {
                let kind = match r.kind {
                    "ConfigMap" => ConfigKind::ConfigMap,
                    "Secret" => ConfigKind::Secret,
                    _ => return None,
                };
                let span = r
                    .metadata()
                    .and_then(|m| m.get("name"))
                    .map_or_else(|| r.anchor_span(), |n| n.span);
                Some(ConfigObject {
                    kind,
                    name: r.name.to_string(),
                    namespace: r.namespace.map(str::to_string),
                    keys: data_keys(r.root),
                    file: r.file,
                    span,
                })
            })
            .collect();
        configs.extend(ws.generated.iter().cloned());
        let mut added: std::collections::HashMap<FileId, AddedLabels> =
            std::collections::HashMap::new();
        for k in &ws.kustomizations {
            let Some(doc) = ws.parsed(k.file).documents.first() else {
                continue;
            };
            let mut labels = AddedLabels::default();
            for e in doc
                .root
                .get("commonLabels")
                .into_iter()
                .flat_map(Node::entries)
            {
                if let Some(key) = e.key.as_str() {
                    labels.object.push(key.to_string());
                    labels.template.push(key.to_string());
                }
            }
            for l in doc.root.get("labels").into_iter().flat_map(Node::items) {
                // `includeSelectors: true` writes the labels into templates too.
                let templates = ["includeTemplates", "includeSelectors"]
                    .iter()
                    .any(|k| l.get(k).and_then(Node::as_bool) == Some(true));
                for e in l.get("pairs").into_iter().flat_map(Node::entries) {
                    if let Some(key) = e.key.as_str() {
                        labels.object.push(key.to_string());
                        if templates {
                            labels.template.push(key.to_string());
                        }
                    }
                }
            }
            if labels.object.is_empty() {
                continue;
            }
            for r in &k.refs {
                if let Some(id) = ws.sources.find_abs(&r.path) {
                    let slot = added.entry(id).or_default();
                    slot.object.extend(labels.object.iter().cloned());
                    slot.template.extend(labels.template.iter().cloned());
                }
            }
        }
        let operator_pods: Vec<(usize, Node)> = resources
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_complete())
            .filter_map(|(i, r)| cnpg_pod_labels(r).map(|n| (i, n)))
            .collect();
        let mut index = Self {
            ws,
            render,
            sops,
            flux_paths,
            namespace_setters,
            resources,
            configs,
            added,
            no_labels: AddedLabels::default(),
            operator_pods,
            pods: Vec::new(),
            pod_labels: LabelIndex::default(),
            services: Vec::new(),
            service_labels: LabelIndex::default(),
            configs_by_name: std::collections::HashMap::new(),
            by_kind: std::collections::HashMap::new(),
            object_ids: Vec::new(),
            budgets: std::sync::OnceLock::new(),
            source_secrets: std::sync::OnceLock::new(),
            created: std::sync::OnceLock::new(),
            config,
        };
        index.build_lookups();
        index
    }
}
