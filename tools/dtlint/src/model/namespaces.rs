//! The namespace of every object: its own, else the one the outermost
//! kustomization listing its file sets, else `default`.

use std::collections::HashMap;

use dtlint_yaml::Span;

use super::{Index, Resource};
use crate::source::FileId;
use crate::workspace::Workspace;

/// Where a kustomization sets the namespace of the files it lists.
#[derive(Debug, Clone)]
pub struct NamespaceSetter {
    pub namespace: String,
    /// The kustomization file and its `namespace:` value.
    pub file: FileId,
    pub span: Span,
}

/// The namespace each listed file gets from the outermost kustomization
/// that sets one, following `resources:` and `components:` from every
/// kustomization no other one lists.
pub fn kustomize_namespaces(ws: &Workspace) -> HashMap<FileId, NamespaceSetter> {
    use crate::kustomize::RefKind;
    let listed: crate::pathmap::PathSet = ws
        .kustomizations
        .iter()
        .flat_map(|k| &k.refs)
        .filter(|r| matches!(r.kind, RefKind::Resource | RefKind::Component))
        .map(|r| r.path.as_path())
        .collect();
    let mut out = HashMap::new();
    let mut roots: Vec<(&crate::kustomize::Kustomization, Option<NamespaceSetter>)> = ws
        .kustomizations
        .iter()
        .filter(|k| !listed.contains(k.dir.as_path()))
        .map(|k| (k, None))
        .collect();
    roots.sort_by_key(|(k, _)| ws.sources.get(k.file).path.clone());
    // A Flux Kustomization's `targetNamespace` is the outermost setter of
    // the kustomization its `spec.path` builds: first, so it wins.
    let (mut flux, generated) = flux_target_namespaces(ws);
    flux.sort_by_key(|(k, _)| ws.sources.get(k.file).path.clone());
    for (id, setter) in generated {
        out.entry(id).or_insert(setter);
    }
    for (root, outer) in flux.into_iter().chain(roots) {
        let mut stack = vec![(root, outer)];
        let mut seen = rustc_hash::FxHashSet::default();
        while let Some((k, outer)) = stack.pop() {
            if !seen.insert(k.file) {
                continue;
            }
            let own = ws
                .parsed(k.file)
                .documents
                .first()
                .and_then(|d| d.root.get("namespace"))
                .and_then(|n| {
                    Some(NamespaceSetter {
                        namespace: n.as_str()?.to_string(),
                        file: k.file,
                        span: n.span,
                    })
                });
            let setter = outer.or(own);
            for r in k
                .refs
                .iter()
                .filter(|r| matches!(r.kind, RefKind::Resource | RefKind::Component))
            {
                if let Some(sub) = ws.kustomization_in(&r.path) {
                    stack.push((sub, setter.clone()));
                } else if let (Some(id), Some(s)) = (ws.sources.find_abs(&r.path), &setter) {
                    out.entry(id).or_insert_with(|| s.clone());
                }
            }
        }
    }
    out
}

/// A kustomization with the namespace its builder sets.
type SetRoot<'w> = (&'w crate::kustomize::Kustomization, Option<NamespaceSetter>);

/// The kustomizations that Flux Kustomizations of this repository build
/// (`spec.path`, from the root) with a `targetNamespace`, and that setter;
/// for a path without a kustomization, the files and kustomizations of the
/// one kustomize-controller generates.
fn flux_target_namespaces(ws: &Workspace) -> (Vec<SetRoot<'_>>, Vec<(FileId, NamespaceSetter)>) {
    let mut out = Vec::new();
    let mut files = Vec::new();
    for (id, f) in ws.sources.iter() {
        if memchr::memmem::find(f.text.as_bytes(), b"targetNamespace").is_none() {
            continue;
        }
        for doc in &ws.parsed(id).documents {
            let r = &doc.root;
            if !crate::flux::is_flux_kind(r, "kustomize", "Kustomization") {
                continue;
            }
            let (Some(path), Some(target)) = (
                r.path(&["spec", "path"])
                    .and_then(dtlint_yaml::Node::as_str),
                r.path(&["spec", "targetNamespace"]),
            ) else {
                continue;
            };
            let Some(namespace) = target.as_str() else {
                continue;
            };
            let dir = crate::kustomize::normalize(&ws.root, path);
            let setter = NamespaceSetter {
                namespace: namespace.to_string(),
                file: id,
                span: target.span,
            };
            if let Some(k) = ws.kustomization_in(&dir) {
                out.push((k, Some(setter)));
            } else if dir.starts_with(&ws.root) {
                for entry in crate::kustomize::generated_resources(&dir) {
                    if let Some(k) = ws.kustomization_in(&entry) {
                        out.push((k, Some(setter.clone())));
                    } else if let Some(f) = ws.sources.find_abs(&entry) {
                        files.push((f, setter.clone()));
                    }
                }
            }
        }
    }
    (out, files)
}

/// The resolved namespace of every object: its own, else the one its
/// kustomization sets, else `default`.
pub struct Namespaces<'w> {
    setters: &'w HashMap<FileId, NamespaceSetter>,
}

impl<'w> Namespaces<'w> {
    /// Computed once per index and shared by every rule that asks.
    pub fn new(index: &'w Index<'_>) -> Self {
        Self {
            setters: index
                .namespace_setters
                .get_or_init(|| kustomize_namespaces(index.ws)),
        }
    }

    pub fn of(&self, r: &Resource<'_>) -> String {
        r.namespace
            .map(str::to_string)
            .or_else(|| self.setters.get(&r.file).map(|s| s.namespace.clone()))
            .unwrap_or_else(|| "default".to_string())
    }

    pub fn setters(&self) -> impl Iterator<Item = &NamespaceSetter> {
        self.setters.values()
    }
}

/// A `Namespace` object in a file whose kustomization sets `namespace:`
/// (or a Flux Kustomization's `targetNamespace`) is renamed by kustomize to
/// that namespace, whatever its own name (`name: _` is a common
/// placeholder): its name is the setter's. Source files only; rendered ones
/// are already renamed.
pub(super) fn rename_namespaces<'a>(
    ws: &'a Workspace,
    resources: &mut [Resource<'a>],
    setters: &std::sync::OnceLock<std::collections::HashMap<FileId, NamespaceSetter>>,
) {
    if !resources
        .iter()
        .any(|r| r.kind == "Namespace" && r.group().is_empty())
    {
        return;
    }
    let setters = setters.get_or_init(|| kustomize_namespaces(ws));
    for r in resources
        .iter_mut()
        .filter(|r| r.kind == "Namespace" && r.group().is_empty())
    {
        let Some(setter) = setters.get(&r.file) else {
            continue;
        };
        // The setter's text, borrowed from its file like every name.
        let text = ws.parsed(setter.file).documents.iter().find_map(|d| {
            [
                d.root.get("namespace"),
                d.root.path(&["spec", "targetNamespace"]),
            ]
            .into_iter()
            .flatten()
            .find(|n| n.span == setter.span)?
            .as_str()
        });
        if let Some(name) = text {
            r.name = name;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Index, test_workspace};
    use crate::config::Config;

    #[test]
    fn a_namespace_object_takes_the_name_its_kustomization_sets() {
        let (_dir, ws) = test_workspace(
            &[
                (
                    "kustomization.yaml",
                    "namespace: media\nresources: [namespace.yaml]\n",
                ),
                (
                    "namespace.yaml",
                    "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: _\n",
                ),
            ],
            &Config::defaults(),
        );
        let index = Index::build(&ws);
        let ns = index.of_kind("Namespace").next().unwrap();
        assert_eq!(ns.id(), "Namespace/media");
        assert!(index.namespace_object("media", None).is_some());
    }
}
