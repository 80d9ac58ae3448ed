//! Kustomization files: what they reference and how.
//!
//! A YAML file's role comes from the kustomization that lists it: a
//! `resources:` entry is a whole object, a `patches:` entry is a partial one
//! (rules that want a complete workload must not judge it), a generator's
//! `files:`/`envs:` entry is data.

use std::path::{Path, PathBuf};

use dtlint_yaml::{Node, Span};

use crate::source::FileId;

/// File names kustomize recognises as a kustomization, in its lookup order.
pub const FILE_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// How a kustomization refers to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    /// `resources:` (a file or a directory with its own kustomization).
    Resource,
    /// `components:`.
    Component,
    /// `patches:`, `patchesStrategicMerge:`, `patchesJson6902:`.
    Patch,
    /// A generator's `files:` or `envs:`/`env:`.
    GeneratorInput,
    /// `crds:`, `configurations:`, `openapi`, `replacements` paths and other
    /// inputs that must exist but are not manifests we lint.
    Other,
}

/// One path entry of a kustomization, with the node that wrote it.
#[derive(Debug, Clone)]
pub struct PathRef {
    pub kind: RefKind,
    /// As written.
    pub raw: String,
    /// Resolved against the kustomization's directory (lexically; no symlinks).
    pub path: PathBuf,
    pub span: Span,
}

/// A parsed kustomization file.
#[derive(Debug, Clone)]
pub struct Kustomization {
    pub file: FileId,
    pub dir: PathBuf,
    pub refs: Vec<PathRef>,
    /// Remote references (git, http) as written, with their nodes: never
    /// fetched by dtlint (see `render_guard`).
    pub remote: Vec<(String, Span)>,
}

/// True when `raw` is a remote reference (git, http) rather than a local path.
pub fn is_remote(raw: &str) -> bool {
    raw.contains("://")
        || raw.starts_with("github.com/")
        || raw.starts_with("git@")
        || raw.starts_with("gitlab.com/")
        || raw.starts_with("bitbucket.org/")
}

/// Join `rel` onto `dir`, resolving `.` and `..` without touching the disk.
pub fn normalize(dir: &Path, rel: &str) -> PathBuf {
    // Most references name a file plainly (`deployment.yaml`,
    // `patches/replicas.yaml`): joined as written when neither side has a
    // `.`, `..` or empty component to resolve.
    if !rel.is_empty()
        && !rel.starts_with('/')
        && rel.split('/').all(|c| !matches!(c, "" | "." | ".."))
        && dir.components().all(|c| {
            !matches!(
                c,
                std::path::Component::CurDir | std::path::Component::ParentDir
            )
        })
    {
        return dir.join(rel);
    }
    let mut out = PathBuf::new();
    for comp in dir.join(rel).components() {
        match comp {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The generators under `field` (`configMapGenerator`, `secretGenerator`)
/// of a kustomization document that may have made the object `name`
/// (kustomize appends a hash to the generator's name).
pub fn generators_for<'a>(
    kustomization: &'a Node,
    field: &str,
    name: &'a str,
) -> impl Iterator<Item = &'a Node> + 'a {
    kustomization
        .get(field)
        .into_iter()
        .flat_map(Node::items)
        .filter(move |g| {
            let gname = g.get("name").and_then(Node::as_str).unwrap_or("");
            !gname.is_empty() && name.starts_with(gname)
        })
}

/// The `literals:` item of a generator that sets `key` (`key=value`).
pub fn generator_literal<'a>(generator: &'a Node, key: &str) -> Option<&'a Node> {
    generator
        .get("literals")
        .into_iter()
        .flat_map(Node::items)
        .find(|lit| {
            lit.as_str()
                .and_then(|l| l.split_once('='))
                .is_some_and(|(lk, _)| lk.trim() == key)
        })
}

/// Relative path from `from` (a directory) to `to`, both absolute: what a
/// wrapper kustomization lists under `resources:` (kustomize refuses
/// absolute resource paths).
pub fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<_> = from.components().collect();
    let to_c: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to_c).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to_c[common..] {
        out.push(c.as_os_str());
    }
    out
}

impl Kustomization {
    /// Read the path references of a kustomization document.
    pub fn from_node(file: FileId, dir: &Path, root: &Node) -> Self {
        let refs = std::cell::RefCell::new(Vec::new());
        let remote = std::cell::RefCell::new(Vec::new());
        let push_raw = |kind: RefKind, raw: &str, span: Span| {
            if is_remote(raw) {
                remote.borrow_mut().push((raw.to_string(), span));
                return;
            }
            refs.borrow_mut().push(PathRef {
                kind,
                raw: raw.to_string(),
                path: normalize(dir, raw),
                span,
            });
        };
        let push = |kind: RefKind, node: &Node| {
            if let Some(raw) = node.as_str() {
                push_raw(kind, raw, node.span);
            }
        };
        for n in root.get("resources").into_iter().flat_map(Node::items) {
            push(RefKind::Resource, n);
        }
        for n in root.get("bases").into_iter().flat_map(Node::items) {
            push(RefKind::Resource, n);
        }
        for n in root.get("components").into_iter().flat_map(Node::items) {
            push(RefKind::Component, n);
        }
        for n in root
            .get("patchesStrategicMerge")
            .into_iter()
            .flat_map(Node::items)
        {
            // Entries may also be inline patches; only plain paths are files.
            if n.as_str().is_some_and(|s| !s.contains('\n')) {
                push(RefKind::Patch, n);
            }
        }
        for key in ["patches", "patchesJson6902"] {
            for n in root.get(key).into_iter().flat_map(Node::items) {
                if let Some(p) = n.get("path") {
                    push(RefKind::Patch, p);
                }
            }
        }
        for key in ["configMapGenerator", "secretGenerator"] {
            for generator in root.get(key).into_iter().flat_map(Node::items) {
                for n in generator.get("files").into_iter().flat_map(Node::items) {
                    if let Some(s) = n.as_str() {
                        // `key=path` names the key; the file is after `=`.
                        let file_part = s.split_once('=').map_or(s, |(_, f)| f);
                        push_raw(RefKind::GeneratorInput, file_part, n.span);
                    }
                }
                for n in generator.get("envs").into_iter().flat_map(Node::items) {
                    push(RefKind::GeneratorInput, n);
                }
                if let Some(n) = generator.get("env") {
                    push(RefKind::GeneratorInput, n);
                }
            }
        }
        for key in ["crds", "configurations"] {
            for n in root.get(key).into_iter().flat_map(Node::items) {
                push(RefKind::Other, n);
            }
        }
        // Plugin configurations: a file, a kustomization directory, or an
        // inline configuration (a multi-line string) that is no path.
        for key in ["transformers", "generators", "validators"] {
            for n in root.get(key).into_iter().flat_map(Node::items) {
                if n.as_str().is_some_and(|s| !s.contains('\n')) {
                    push(RefKind::Other, n);
                }
            }
        }
        if let Some(p) = root.path(&["openapi", "path"]) {
            push(RefKind::Other, p);
        }
        for n in root.get("replacements").into_iter().flat_map(Node::items) {
            if let Some(p) = n.get("path") {
                push(RefKind::Other, p);
            }
        }
        for chart in root.get("helmCharts").into_iter().flat_map(Node::items) {
            if let Some(p) = chart.get("valuesFile") {
                push(RefKind::Other, p);
            }
            for n in chart
                .get("additionalValuesFiles")
                .into_iter()
                .flat_map(Node::items)
            {
                push(RefKind::Other, n);
            }
        }
        Self {
            file,
            dir: dir.to_path_buf(),
            refs: refs.into_inner(),
            remote: remote.into_inner(),
        }
    }
}

/// Entries kustomize-controller's generated kustomization lists for a path
/// without one: `.yaml`/`.yml` files, recursively, and subdirectories with
/// their own kustomization as a whole, in the order of Go's lexical walk.
/// Bounded in depth and count, like every walk dtlint makes.
pub fn generated_resources(dir: &Path) -> Vec<PathBuf> {
    fn visit(d: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for e in entries {
            if out.len() >= MAX_ENTRIES {
                return;
            }
            let path = e.path();
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                if FILE_NAMES.iter().any(|n| path.join(n).is_file()) {
                    out.push(path);
                } else if depth < MAX_DEPTH {
                    visit(&path, depth + 1, out);
                }
            } else if path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(path);
            }
        }
    }
    const MAX_ENTRIES: usize = 10_000;
    const MAX_DEPTH: usize = 32;
    let mut out = Vec::new();
    visit(dir, 0, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::{generated_resources, normalize};
    use std::path::Path;

    #[test]
    fn normalize_resolves_dots_on_either_side_and_joins_plain_names() {
        let dir = Path::new("/repo/overlays/production/gc");
        let cases = [
            (
                "deployment.yaml",
                "/repo/overlays/production/gc/deployment.yaml",
            ),
            (
                "patches/r.yaml",
                "/repo/overlays/production/gc/patches/r.yaml",
            ),
            (
                "./deployment.yaml",
                "/repo/overlays/production/gc/deployment.yaml",
            ),
            ("../../../base/gc", "/repo/base/gc"),
            ("a//b.yaml", "/repo/overlays/production/gc/a/b.yaml"),
            ("a/./b.yaml", "/repo/overlays/production/gc/a/b.yaml"),
            ("/elsewhere/x.yaml", "/elsewhere/x.yaml"),
        ];
        for (rel, want) in cases {
            assert_eq!(normalize(dir, rel), Path::new(want), "{rel}");
        }
        // A directory given with `..` (a relative argument made absolute)
        // is resolved too, plain name or not.
        let unclean = Path::new("/repo/tools/../base/gc");
        assert_eq!(
            normalize(unclean, "service.yaml"),
            Path::new("/repo/base/gc/service.yaml")
        );
        assert_eq!(
            normalize(unclean, "./service.yaml"),
            Path::new("/repo/base/gc/service.yaml")
        );
    }

    #[test]
    fn generated_kustomizations_list_files_and_kustomized_subdirectories() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::create_dir_all(d.join("a/kust")).unwrap();
        std::fs::create_dir_all(d.join("b")).unwrap();
        std::fs::write(d.join("a/kust/kustomization.yaml"), "resources: []\n").unwrap();
        std::fs::write(d.join("a/kust/x.yaml"), "").unwrap();
        std::fs::write(d.join("a/one.yml"), "").unwrap();
        std::fs::write(d.join("b/two.yaml"), "").unwrap();
        std::fs::write(d.join("b/readme.md"), "").unwrap();
        std::fs::write(d.join("top.yaml"), "").unwrap();
        let got: Vec<String> = generated_resources(d)
            .iter()
            .map(|p| crate::source::display_path(d, p))
            .collect();
        assert_eq!(got, ["a/kust", "a/one.yml", "b/two.yaml", "top.yaml"]);
    }
}
