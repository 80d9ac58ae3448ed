//! Flux, as the discover stage sees it: for every Flux Kustomization's
//! `spec.path`, whether it exists, whether it holds a kustomization, and
//! which SOPS-encrypted files its build reads.
//!
//! This needs the filesystem (directories with no YAML, dotenv files that
//! dtlint does not parse), so it runs while the workspace is loaded; the
//! `flux-*` rules only read the result.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use dtlint_yaml::{Limits, LineIndex, Node};

use crate::kustomize::{self, Kustomization, RefKind};
use crate::render_guard::Checked;
use crate::source::FileId;
use crate::workspace::Workspace;

/// Largest file inspected for SOPS metadata.
const MAX_SOPS_FILE: u64 = 16 * 1024 * 1024;

/// What a Flux Kustomization's `spec.path` points at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathInfo {
    pub exists: bool,
    pub is_dir: bool,
    /// The kustomization file of the directory, when it has one.
    pub kustomization: Option<PathBuf>,
    /// SOPS files the build reads (through `resources`, `components`,
    /// patches and generators; every YAML file below the directory when it
    /// has no kustomization, as Flux generates one).
    pub sops_files: Vec<PathBuf>,
}

/// `./overlays/production/` and `overlays/production` are the same path.
pub fn path_key(raw: &str) -> String {
    let t = raw.trim().trim_start_matches("./").trim_matches('/');
    if t == "." {
        String::new()
    } else {
        t.to_string()
    }
}

/// Is this a Flux object of `kind` in group `group` (e.g. `kustomize`)?
pub fn is_flux_kind(root: &Node, group: &str, kind: &str) -> bool {
    root.get("kind").and_then(Node::as_str) == Some(kind)
        && root
            .get("apiVersion")
            .and_then(Node::as_str)
            .is_some_and(|v| v.starts_with(&format!("{group}.toolkit.fluxcd.io/")))
}

/// The `sync` of a flux-operator `FluxInstance` (`spec.sync`) or of a
/// `HelmRelease` of the `flux-instance` chart (`spec.values.instance.sync`):
/// what the operator makes a GitRepository and a Kustomization of.
pub fn instance_sync(root: &Node) -> Option<&Node> {
    match root.str_at(&["kind"])? {
        "FluxInstance" => root.path(&["spec", "sync"]),
        "HelmRelease"
            if root
                .str_at(&["spec", "chart", "spec", "chart"])
                .or_else(|| root.str_at(&["spec", "chartRef", "name"]))
                .is_some_and(|c| c.contains("flux-instance")) =>
        {
            root.path(&["spec", "values", "instance", "sync"])
        }
        _ => None,
    }
}

/// What each Flux Kustomization's `spec.path` points at, by [`path_key`].
pub type FluxPaths = BTreeMap<String, PathInfo>;

/// Inspect the `spec.path` of every Flux Kustomization in the workspace,
/// relative to the repository root.
pub fn inspect(ws: &Workspace) -> FluxPaths {
    let mut out = BTreeMap::new();
    for (id, _) in ws.sources.iter() {
        for doc in &ws.parsed(id).documents {
            if !is_flux_kind(&doc.root, "kustomize", "Kustomization") {
                continue;
            }
            let Some(raw) = doc.root.path(&["spec", "path"]).and_then(Node::as_str) else {
                continue;
            };
            let key = path_key(raw);
            if out.contains_key(&key) {
                continue;
            }
            let abs = ws.root.join(&key);
            out.insert(key, inspect_in(&abs, &ws.guard, Some(ws)));
        }
    }
    out
}

/// What is at `abs`, and the SOPS files a build of it reads.
pub fn inspect_path(abs: &Path) -> PathInfo {
    let root = abs.parent().unwrap_or(abs);
    let guard = crate::render_guard::Guard::new(
        root,
        &crate::render_guard::RenderSettings::default(),
        u64::MAX,
    );
    inspect_path_within(abs, &guard)
}

/// [`inspect_path`], following only the paths `guard` allows (never the
/// whole disk through `resources: [/]`, never a FIFO or a device).
pub fn inspect_path_within(abs: &Path, guard: &crate::render_guard::Guard) -> PathInfo {
    inspect_in(abs, guard, None)
}

/// [`inspect_path_within`], answering from `ws` what it already read (its
/// kustomizations, parsed; its files' text) and from the disk the rest.
fn inspect_in(abs: &Path, guard: &crate::render_guard::Guard, ws: Option<&Workspace>) -> PathInfo {
    let mut info = PathInfo {
        exists: abs.exists(),
        is_dir: abs.is_dir(),
        kustomization: find_kustomization(abs),
        sops_files: Vec::new(),
    };
    if info.is_dir {
        let mut seen = HashSet::new();
        if guard.check(abs, &|p| ws.and_then(|w| w.known_path(p))) == Ok(Checked::Dir) {
            collect_sops(abs, guard, ws, &mut seen, &mut info.sops_files);
        }
        info.sops_files.sort();
        info.sops_files.dedup();
    }
    info
}

fn find_kustomization(dir: &Path) -> Option<PathBuf> {
    kustomize::FILE_NAMES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// Follow a kustomization directory's inputs, recording SOPS files.
fn collect_sops(
    dir: &Path,
    guard: &crate::render_guard::Guard,
    ws: Option<&Workspace>,
    seen: &mut HashSet<PathBuf>,
    out: &mut Vec<PathBuf>,
) {
    if !seen.insert(dir.to_path_buf()) {
        return;
    }
    // Paths discovery reached and found safe need no system call.
    let known = |p: &Path| ws.and_then(|w| w.known_path(p));
    let read;
    let k = if let Some(k) = ws.and_then(|w| w.kustomization_in(dir)) {
        k
    } else {
        match read_kustomization(dir, guard) {
            Ok(Some(k)) => {
                read = k;
                &read
            }
            Ok(None) => return,
            Err(NoKustomization) => {
                // Flux generates a kustomization of every manifest below the directory.
                let walker = ignore::WalkBuilder::new(dir)
                    .hidden(false)
                    .git_ignore(false)
                    .require_git(false)
                    .build();
                for entry in walker.flatten() {
                    if entry.file_type().is_some_and(|t| t.is_file()) && is_sops_file(entry.path())
                    {
                        out.push(entry.into_path());
                    }
                }
                return;
            }
        }
    };
    for r in &k.refs {
        // Outside the repository, a device, a loop: `unsafe-kustomize-path`.
        let Ok(checked) = guard.check(&r.path, &known) else {
            continue;
        };
        match r.kind {
            RefKind::Resource | RefKind::Component if checked == Checked::Dir => {
                collect_sops(&r.path, guard, ws, seen, out);
            }
            RefKind::Resource | RefKind::Component | RefKind::Patch | RefKind::GeneratorInput => {
                if is_sops_in(&r.path, ws) {
                    out.push(r.path.clone());
                }
            }
            RefKind::Other => {}
        }
    }
}

/// `dir` has no kustomization file: Flux would generate one.
struct NoKustomization;

/// The kustomization of `dir` read from the disk: `Ok(None)` when its file
/// is unsafe or unreadable (reported elsewhere).
fn read_kustomization(
    dir: &Path,
    guard: &crate::render_guard::Guard,
) -> Result<Option<Kustomization>, NoKustomization> {
    let kfile = find_kustomization(dir).ok_or(NoKustomization)?;
    if guard.check(&kfile, &|_| None) != Ok(Checked::File) {
        return Ok(None);
    }
    let Some(text) = crate::render_guard::read_bounded_text(&kfile, guard.max_file_size) else {
        return Ok(None);
    };
    let parsed = dtlint_yaml::parse(&text, &LineIndex::new(&text), Limits::default());
    Ok(parsed
        .documents
        .first()
        .map(|doc| Kustomization::from_node(FileId(u32::MAX), dir, &doc.root)))
}

/// [`is_sops_file`], from the text `ws` read when it read the file whole.
fn is_sops_in(path: &Path, ws: Option<&Workspace>) -> bool {
    if let Some(ws) = ws
        && let Some(id) = ws.sources.find_abs(path)
        && !ws.unreadable.iter().any(|(u, _)| *u == id)
    {
        let text = &ws.sources.get(id).text;
        return text.len() as u64 <= MAX_SOPS_FILE && is_sops_text(text);
    }
    is_sops_file(path)
}

/// A SOPS file: YAML (or JSON) with a top-level `sops:` mapping holding a
/// `mac`, or a dotenv file with a `sops_mac=` line.
pub fn is_sops_file(path: &Path) -> bool {
    if std::fs::metadata(path).map_or(true, |m| !m.is_file() || m.len() > MAX_SOPS_FILE) {
        return false;
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    is_sops_text(&text)
}

/// See [`is_sops_file`].
pub fn is_sops_text(text: &str) -> bool {
    if text
        .lines()
        .any(|l| l.trim_start().starts_with("sops_mac="))
    {
        return true;
    }
    if !text.contains("sops") || !text.contains("mac") {
        return false;
    }
    let parsed = dtlint_yaml::parse(text, &LineIndex::new(text), Limits::default());
    parsed.documents.iter().any(|d| {
        d.root
            .get("sops")
            .is_some_and(|s| s.as_mapping().is_some() && s.get("mac").is_some())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sops_files_are_recognised_by_their_metadata() {
        assert!(is_sops_text(
            "data:\n  a: ENC[x]\nsops:\n  mac: ENC[y]\n  version: 3.9.0\n"
        ));
        assert!(
            !is_sops_text("data: {a: b}\nsops: {version: 3.9.0}\n"),
            "no mac"
        );
        assert!(
            !is_sops_text("spec:\n  sops:\n    mac: x\n"),
            "not top level"
        );
        assert!(is_sops_text(
            "A=ENC[x]\nsops_version=3.9.0\nsops_mac=ENC[y]\n"
        ));
        assert!(!is_sops_text("A=b\n"));
    }

    #[test]
    fn sops_files_are_followed_through_kustomizations() {
        let d = tempfile::tempdir().unwrap();
        let w = |p: &str, t: &str| {
            let p = d.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        };
        let sops = "kind: Secret\nsops:\n  mac: ENC[x]\n";
        w(
            "overlay/kustomization.yaml",
            "resources: [../base]\ncomponents: [../comp]\npatches:\n  - path: secret.sops.yaml\nsecretGenerator:\n  - name: s\n    envs: [s.env]\n",
        );
        w("overlay/secret.sops.yaml", sops);
        w("overlay/s.env", "A=ENC[x]\nsops_mac=ENC[y]\n");
        w("overlay/unlisted.sops.yaml", sops);
        w("base/kustomization.yaml", "resources: [deep]\n");
        w("base/deep/kustomization.yaml", "resources: [x.yaml]\n");
        w("base/deep/x.yaml", sops);
        w(
            "comp/kustomization.yaml",
            "kind: Component\nresources: [plain.yaml]\n",
        );
        w("comp/plain.yaml", "kind: ConfigMap\n");
        let info = inspect_path(&d.path().join("overlay"));
        let names: Vec<String> = info
            .sops_files
            .iter()
            .map(|p| p.strip_prefix(d.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "base/deep/x.yaml",
                "overlay/s.env",
                "overlay/secret.sops.yaml"
            ]
        );
        let none = inspect_path(&d.path().join("comp"));
        assert!(none.sops_files.is_empty() && none.kustomization.is_some());
        // Without a kustomization, every file below counts.
        w("raw/a/b.yaml", sops);
        let raw = inspect_path(&d.path().join("raw"));
        assert_eq!(raw.sops_files.len(), 1);
        assert!(raw.kustomization.is_none());
        assert!(!inspect_path(&d.path().join("nope")).exists);
    }

    #[test]
    fn path_keys_ignore_dot_slash_and_trailing_slash() {
        assert_eq!(path_key("./overlays/production/"), "overlays/production");
        assert_eq!(path_key("overlays/production"), "overlays/production");
        assert_eq!(path_key("./"), "");
    }
}
