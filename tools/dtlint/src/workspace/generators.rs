//! The ConfigMaps and Secrets kustomizations generate, with their keys
//! (literals, env files, files): read here, where files are read.

use dtlint_yaml::{Node, Span};

use super::Workspace;
use crate::kustomize;
use crate::source::FileId;

/// ConfigMap or Secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigKind {
    ConfigMap,
    Secret,
}

impl ConfigKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigKind::ConfigMap => "ConfigMap",
            ConfigKind::Secret => "Secret",
        }
    }
}

/// A ConfigMap or Secret, written as an object or made by a generator.
#[derive(Debug, Clone)]
pub struct ConfigObject {
    pub kind: ConfigKind,
    pub name: String,
    pub namespace: Option<String>,
    pub keys: Vec<String>,
    /// Where it is defined (the object's name, or the generator's).
    pub file: FileId,
    pub span: Span,
}

impl Workspace {
    /// Record the ConfigMaps and Secrets each kustomization generates, with
    /// their keys (literals, env files, files).
    pub(super) fn read_generators(&mut self) {
        let mut out = Vec::new();
        for k in &self.kustomizations {
            let Some(doc) = self.parsed[k.file.0 as usize].documents.first() else {
                continue;
            };
            let namespace = doc
                .root
                .get("namespace")
                .and_then(Node::as_str)
                .map(str::to_string);
            for (key, kind) in [
                ("configMapGenerator", ConfigKind::ConfigMap),
                ("secretGenerator", ConfigKind::Secret),
            ] {
                for g in doc.root.get(key).into_iter().flat_map(Node::items) {
                    let Some(name_node) = g.get("name") else {
                        continue;
                    };
                    let Some(name) = name_node.as_str() else {
                        continue;
                    };
                    let mut keys = Vec::new();
                    for lit in g
                        .get("literals")
                        .into_iter()
                        .flat_map(Node::items)
                        .filter_map(Node::as_str)
                    {
                        if let Some((k, _)) = lit.split_once('=') {
                            keys.push(k.trim().to_string());
                        }
                    }
                    let envs = g
                        .get("envs")
                        .into_iter()
                        .flat_map(Node::items)
                        .chain(g.get("env"));
                    for env in envs.filter_map(Node::as_str) {
                        let path = kustomize::normalize(&k.dir, env);
                        // An unreadable env file is the missing-file rule's
                        // finding; a device, a FIFO or a huge file is
                        // `unsafe-kustomize-path`'s, and never read.
                        let text = self
                            .guard
                            .check(&path, &|p| self.known_path(p))
                            .ok()
                            .filter(|c| *c == crate::render_guard::Checked::File)
                            .and_then(|_| {
                                crate::render_guard::read_bounded_text(
                                    &path,
                                    self.guard.max_file_size,
                                )
                            })
                            .unwrap_or_default();
                        keys.extend(env_file_keys(&text));
                    }
                    for f in g
                        .get("files")
                        .into_iter()
                        .flat_map(Node::items)
                        .filter_map(Node::as_str)
                    {
                        let key = f.split_once('=').map_or_else(
                            || f.rsplit('/').next().unwrap_or(f).to_string(),
                            |(k, _)| k.to_string(),
                        );
                        keys.push(key);
                    }
                    out.push(ConfigObject {
                        kind,
                        name: name.to_string(),
                        namespace: namespace.clone(),
                        keys,
                        file: k.file,
                        span: name_node.span,
                    });
                }
            }
        }
        self.generated = out;
    }
}

/// Keys of a dotenv file as kustomize reads it (`KEY=value`, `#` comments).
pub fn env_file_keys(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once('=').map_or(l, |(k, _)| k).trim().to_string())
        .collect()
}
