//! Render: build every overlay the clusters apply, the way Flux will, and map
//! each rendered node back to the source a human edits.
//!
//! Each build runs `kustomize build` (or `kubectl kustomize`) with
//! `--load-restrictor LoadRestrictionsNone` on a throwaway wrapper
//! kustomization that lists the overlay and turns on kustomize's build
//! metadata, so every rendered object says which file it came from
//! (`config.kubernetes.io/origin`) and which kustomizations transformed it.
//! Builds run in parallel and are cached by a hash of every file they read.
//!
//! Builds are bounded: before kustomize runs, every path the overlay's
//! kustomizations reference is checked ([`crate::render_guard`]) and an
//! overlay that references a device, a FIFO, a symlink loop, a file over the
//! size limit or anything outside the repository is not built; kustomize
//! runs with a timeout and a cap on its output, and its wrapper directory is
//! removed on every exit path, Ctrl-C included ([`crate::subprocess`]).
//!
//! `DTLINT_KUSTOMIZE` names the program to build with (a `kustomize`, or a
//! `kubectl`), instead of looking for `kustomize` then `kubectl` on PATH.
//!
//! Mapping a rendered node to its source: the node's path in the rendered
//! object (keys, and list items by their `name` where they have one) is
//! looked up in the patches that kustomizations applied to the object (last
//! first), then in the kustomizations' own transformers (`images:`,
//! generators, `labels:`), then in the object's origin file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use dtlint_yaml::{Node, Span, Value};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::kustomize::{self, FILE_NAMES, RefKind};
use crate::render_guard::{Checked, UnsafeRef};
use crate::source::{FileId, display_path};
use crate::subprocess::{self, Limits};
use crate::workspace::Workspace;

/// Annotations kustomize adds for us; removed before rules see the object.
pub const ORIGIN_ANNOTATION: &str = "config.kubernetes.io/origin";
pub const TRANSFORMATIONS_ANNOTATION: &str = "alpha.config.kubernetes.io/transformations";

/// One overlay to build for one environment.
#[derive(Debug, Clone)]
pub struct Target {
    pub env: String,
    /// Overlay directory on disk.
    pub dir: PathBuf,
    /// The overlay as shown to users, relative to the root.
    pub display: String,
    /// What asked for this build: the Flux Kustomization's `spec.path`
    /// (file and span), when the cluster directory declares it.
    pub requested_by: Option<(FileId, Span)>,
}

/// The result of one build.
#[derive(Debug, Clone)]
pub struct Build {
    pub target: Target,
    /// Rendered YAML, or kustomize's own error text.
    pub output: Result<String, String>,
    pub cached: bool,
    /// The wrapper directory paths in the output are relative to.
    pub wrapper: PathBuf,
    /// Wall time of the build process (zero when cached).
    pub seconds: f64,
    /// Every file the build reads, per the kustomization graph.
    pub inputs: Vec<PathBuf>,
    /// Entries that kept the overlay from being built (the
    /// `unsafe-kustomize-path` rule reports them; `output` is then an error
    /// that no other rule repeats).
    pub refused: Vec<UnsafeRef>,
}

/// Which tool builds overlays.
#[derive(Debug, Clone)]
pub struct Builder {
    program: String,
    args: Vec<String>,
    /// `kustomize version` text, part of the cache key.
    version: String,
}

impl Builder {
    /// The program `DTLINT_KUSTOMIZE` names, else `kustomize` when it is on
    /// PATH, else `kubectl kustomize`, else `None`.
    pub fn detect() -> Option<Self> {
        let probe = |program: &str, args: &[&str]| {
            let limits = Limits {
                timeout: Duration::from_secs(20),
                max_stdout: 64 * 1024,
                max_stderr: 64 * 1024,
            };
            subprocess::run(Command::new(program).args(args), limits)
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let kustomize = |program: &str| {
            probe(program, &["version"]).map(|version| Self {
                program: program.into(),
                args: vec!["build".into()],
                version,
            })
        };
        let kubectl = |program: &str| {
            probe(program, &["version", "--client"]).map(|version| Self {
                program: program.into(),
                args: vec!["kustomize".into()],
                version,
            })
        };
        if let Some(program) = std::env::var_os("DTLINT_KUSTOMIZE").filter(|p| !p.is_empty()) {
            let program = program.to_string_lossy().into_owned();
            let is_kubectl = Path::new(&program)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("kubectl"));
            let found = if is_kubectl {
                kubectl(&program)
            } else {
                kustomize(&program)
            };
            // A program that cannot say its version is still used: its
            // builds fail and say why.
            return Some(found.unwrap_or_else(|| Self {
                program: program.clone(),
                args: vec![if is_kubectl { "kustomize" } else { "build" }.into()],
                version: format!("{program} (no version)"),
            }));
        }
        kustomize("kustomize").or_else(|| kubectl("kubectl"))
    }

    pub fn describe(&self) -> String {
        format!("{} {}", self.program, self.args.join(" "))
    }
}

/// The overlays each environment applies: the `spec.path` of every Flux
/// Kustomization under the environment's cluster directory that points into
/// its overlay directory; without a cluster directory, every overlay under
/// the environment's overlay directory.
pub fn targets(ws: &Workspace, config: &Config) -> Vec<Target> {
    let mut out = Vec::new();
    for (env, e) in config.environments_in_order() {
        let overlay_root = ws.root.join(&e.overlays);
        let mut seen = BTreeSet::new();
        if let Some(cluster) = &e.cluster {
            let cluster_rel = cluster.trim_end_matches('/');
            for (id, f) in ws.sources.iter() {
                if !(f.path == cluster_rel || f.path.starts_with(&format!("{cluster_rel}/"))) {
                    continue;
                }
                for doc in &ws.parsed(id).documents {
                    let r = &doc.root;
                    let flux = r
                        .get("apiVersion")
                        .and_then(Node::as_str)
                        .is_some_and(|a| a.starts_with("kustomize.toolkit.fluxcd.io/"));
                    if !flux || r.get("kind").and_then(Node::as_str) != Some("Kustomization") {
                        continue;
                    }
                    let Some(path_node) = r.path(&["spec", "path"]) else {
                        continue;
                    };
                    let Some(path) = path_node.as_str() else {
                        continue;
                    };
                    let dir = kustomize::normalize(&ws.root, path);
                    if !dir.starts_with(&overlay_root) || !has_kustomization(&dir) {
                        continue;
                    }
                    if seen.insert(dir.clone()) {
                        out.push(Target {
                            env: env.to_string(),
                            display: display_path(&ws.root, &dir),
                            dir,
                            requested_by: Some((id, path_node.span)),
                        });
                    }
                }
            }
        }
        if seen.is_empty() {
            let mut dirs: Vec<PathBuf> = std::fs::read_dir(&overlay_root)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir() && has_kustomization(p))
                .collect();
            dirs.sort();
            if has_kustomization(&overlay_root) {
                dirs.insert(0, overlay_root.clone());
            }
            for dir in dirs {
                out.push(Target {
                    env: env.to_string(),
                    display: display_path(&ws.root, &dir),
                    dir,
                    requested_by: None,
                });
            }
        }
    }
    out
}

fn has_kustomization(dir: &Path) -> bool {
    FILE_NAMES.iter().any(|n| dir.join(n).is_file())
}

/// Every file a build of `dir` reads, as far as the kustomization graph
/// says, and the entries that make it unsafe to build.
#[derive(Debug, Default)]
pub struct Closure {
    /// Kustomization files, resources, patches, generator inputs, plugin
    /// configurations, replacements, OpenAPI schemas, CRDs, Helm values,
    /// recursively through resource, component and plugin directories.
    /// Sorted, for a stable cache key.
    pub files: Vec<PathBuf>,
    /// Entries that reference what kustomize must not read.
    pub refused: Vec<UnsafeRef>,
}

/// The entry that led to a directory: its kustomization, as written, where.
type Via = Option<(PathBuf, String, Span)>;

/// The files a build of `dir` reads (see [`Closure`]). Kustomizations the
/// workspace already parsed are not read again; ones outside it (an overlay
/// reaching beyond the checked paths) are read from disk, each path checked
/// first.
pub fn closure(ws: &Workspace, dir: &Path) -> Closure {
    let guard = &ws.guard;
    let known = |p: &Path| ws.known_path(p);
    let mut files = BTreeSet::new();
    let mut refused = Vec::new();
    // Each directory with the entry that led to it.
    let mut dirs: Vec<(PathBuf, Via)> = vec![(dir.to_path_buf(), None)];
    let mut visited = BTreeSet::new();
    while let Some((d, via)) = dirs.pop() {
        if !visited.insert(d.clone()) {
            continue;
        }
        let parsed;
        let (k, kfile) = if let Some(k) = ws.kustomization_in(&d) {
            (k, ws.sources.get(k.file).abs.clone())
        } else {
            let Some(kfile) = FILE_NAMES
                .iter()
                .map(|n| d.join(n))
                .find(|p| p.symlink_metadata().is_ok())
            else {
                continue;
            };
            let checked = guard.check(&kfile, &known);
            let text = match checked {
                Ok(Checked::File) => {
                    crate::render_guard::read_bounded_text(&kfile, guard.max_file_size)
                }
                Ok(_) => None,
                Err(problem) => {
                    if let Some((from, raw, span)) = &via {
                        refused.push(UnsafeRef {
                            kustomization: from.clone(),
                            raw: raw.clone(),
                            span: *span,
                            problem,
                        });
                    }
                    continue;
                }
            };
            let Some(text) = text else { continue };
            let lines = dtlint_yaml::LineIndex::new(&text);
            let doc = dtlint_yaml::parse(&text, &lines, dtlint_yaml::Limits::default());
            let Some(doc) = doc.documents.first() else {
                files.insert(kfile);
                continue;
            };
            parsed = kustomize::Kustomization::from_node(FileId(u32::MAX), &d, &doc.root);
            (&parsed, kfile)
        };
        files.insert(kfile.clone());
        guard.check_kustomization(
            k,
            &kfile,
            &known,
            &mut |r, checked| match checked {
                Checked::Dir => {
                    if matches!(
                        r.kind,
                        RefKind::Resource | RefKind::Component | RefKind::Other
                    ) {
                        dirs.push((r.path.clone(), Some((kfile.clone(), r.raw.clone(), r.span))));
                    }
                }
                Checked::File | Checked::Missing => {
                    files.insert(r.path.clone());
                }
            },
            &mut refused,
        );
    }
    Closure {
        files: files.into_iter().collect(),
        refused,
    }
}

/// Bumped when the wrapper kustomization or the flags change, so old cache
/// entries are not reused.
const BUILD_RECIPE: &str = "dtlint-wrapper-v2 --load-restrictor LoadRestrictionsNone buildMetadata: [originAnnotations, transformerAnnotations]";

/// The cache key of a build: the builder (program, arguments, version), the
/// wrapper recipe, the overlay, and the path and content of every file the
/// build reads. Inputs were checked before (regular files within the size
/// limit); a read is bounded all the same.
fn cache_key(
    builder: &Builder,
    target: &Target,
    root: &Path,
    inputs: &[PathBuf],
    limit: u64,
) -> String {
    let mut h = Sha256::new();
    for part in [
        builder.program.as_str(),
        &builder.args.join(" "),
        &builder.version,
        BUILD_RECIPE,
    ] {
        h.update(part.as_bytes());
        h.update(b"\0");
    }
    h.update(display_path(root, &target.dir).as_bytes());
    for f in inputs {
        h.update(b"\0");
        h.update(display_path(root, f).as_bytes());
        h.update(b"\0");
        match crate::render_guard::read_bounded(f, limit) {
            Some(bytes) => {
                h.update(b"+");
                h.update(bytes);
            }
            None => h.update(b"-"),
        }
    }
    hex::encode(h.finalize())
}

/// Relative path from `from` (a directory) to `to`, for the wrapper's
/// `resources:` (kustomize refuses absolute resource paths).
fn relative(from: &Path, to: &Path) -> PathBuf {
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

fn build_one(
    ws: &Workspace,
    builder: &Builder,
    target: &Target,
    root: &Path,
    cache_dir: Option<&Path>,
) -> Build {
    let Closure {
        files: inputs,
        refused,
    } = closure(ws, &target.dir);
    let base = cache_dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
    if !refused.is_empty() {
        let reasons: Vec<String> = refused.iter().map(UnsafeRef::message).collect();
        return Build {
            target: target.clone(),
            output: Err(format!("not built: {}", reasons.join("; "))),
            cached: false,
            wrapper: base,
            seconds: 0.0,
            inputs,
            refused,
        };
    }
    let guard = &ws.guard;
    let key = cache_key(builder, target, root, &inputs, guard.max_file_size);
    // Where the wrapper is as far as the output's relative paths go: every
    // wrapper is a directory directly in `base`.
    let wrapper = base.join(format!("wrap-{}", &key[..16]));
    if let Some(dir) = cache_dir {
        let cached = dir.join(format!("{key}.yaml"));
        if let Some(text) = crate::render_guard::read_bounded_text(&cached, guard.max_output) {
            return Build {
                target: target.clone(),
                output: Ok(text),
                cached: true,
                wrapper,
                seconds: 0.0,
                inputs,
                refused,
            };
        }
    }
    let start = std::time::Instant::now();
    let output = (|| -> Result<String, String> {
        // Removed when this closure returns, and by the signal handler on
        // Ctrl-C.
        let scratch = subprocess::ScratchDir::new_in(&base, "wrap-")
            .map_err(|e| format!("cannot create a directory in {}: {e}", base.display()))?;
        let dir = scratch.path();
        let rel = relative(dir, &target.dir);
        let text = format!(
            "# written by dtlint to build {} with origin annotations\nresources:\n  - {}\nbuildMetadata: [originAnnotations, transformerAnnotations]\n",
            target.display,
            rel.display()
        );
        std::fs::write(dir.join("kustomization.yaml"), text)
            .map_err(|e| format!("cannot write the wrapper kustomization: {e}"))?;
        let limits = Limits {
            timeout: guard.timeout,
            max_stdout: guard.max_output,
            max_stderr: 1024 * 1024,
        };
        let out = subprocess::run(
            Command::new(&builder.program)
                .args(&builder.args)
                .arg("--load-restrictor")
                .arg("LoadRestrictionsNone")
                .arg(dir),
            limits,
        )
        .map_err(|e| {
            let hint = match e {
                subprocess::Failure::TimedOut(_) => " (`[render] timeout-seconds` in dtlint.toml)",
                subprocess::Failure::TooMuchOutput { .. } => {
                    " (`[render] max-output-bytes` in dtlint.toml)"
                }
                _ => "",
            };
            format!("`{}` {e}{hint}", builder.describe())
        })?;
        if out.status.success() {
            Ok(String::from_utf8(out.stdout)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
        } else {
            Err(clean_error(
                &String::from_utf8_lossy(&out.stderr),
                dir,
                root,
            ))
        }
    })();
    if let (Some(dir), Ok(text)) = (cache_dir, &output) {
        // A failed cache write only costs the next run a rebuild.
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::write(dir.join(format!("{key}.yaml")), text);
    }
    Build {
        target: target.clone(),
        output,
        cached: false,
        wrapper,
        seconds: start.elapsed().as_secs_f64(),
        inputs,
        refused,
    }
}

/// kustomize's error with the wrapper's relative paths made repository paths
/// and the logging prefix removed.
fn clean_error(stderr: &str, wrapper: &Path, root: &Path) -> String {
    let mut text = stderr.trim().to_string();
    if let Some(i) = text.find("err=\"") {
        text = text[i + 5..].trim_end_matches('"').to_string();
    } else if let Some(rest) = text.strip_prefix("Error: ") {
        text = rest.to_string();
    }
    // Paths in the message are relative to the wrapper directory, or absolute.
    let rel_root = relative(wrapper, root);
    text = text.replace(&format!("{}/", rel_root.display()), "");
    text = text.replace(&format!("{}/", root.display()), "");
    text = text
        .replace("\\\"", "\"")
        .replace("\\n", " ")
        .replace("\\t", " ");
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = text.trim_end_matches(['"', '>', ' ']).to_string();
    // kustomize wraps the cause in every layer it passed through; the
    // innermost cause is what a human can act on.
    match text.rfind("`: ").or_else(|| text.rfind("': ")) {
        Some(i) if i + 3 < text.len() => text[i + 3..].to_string(),
        _ => text,
    }
}

/// Build every target in parallel. Ctrl-C (or SIGTERM) meanwhile kills the
/// builds, removes their directories and exits with 130 (143).
pub fn build_all(
    ws: &Workspace,
    builder: &Builder,
    targets: &[Target],
    root: &Path,
    cache_dir: Option<&Path>,
) -> Vec<Build> {
    subprocess::install_signal_handler();
    targets
        .par_iter()
        .map(|t| build_one(ws, builder, t, root, cache_dir))
        .collect()
}

/// Where a rendered object came from, read from kustomize's annotations.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    /// The file the object was read from, if any (generated objects have none).
    pub origin: Option<PathBuf>,
    /// Kustomization files whose transformers changed the object, in order.
    pub configured_in: Vec<PathBuf>,
}

/// Read and remove kustomize's build annotations from a rendered object.
pub fn take_provenance(root: &mut Node, wrapper: &Path) -> Provenance {
    let mut prov = Provenance::default();
    let Value::Mapping(top) = &mut root.value else {
        return prov;
    };
    let Some(meta) = top.iter_mut().find(|e| e.key.as_str() == Some("metadata")) else {
        return prov;
    };
    let Value::Mapping(meta_entries) = &mut meta.value.value else {
        return prov;
    };
    let Some(ann_idx) = meta_entries
        .iter()
        .position(|e| e.key.as_str() == Some("annotations"))
    else {
        return prov;
    };
    if let Value::Mapping(anns) = &mut meta_entries[ann_idx].value.value {
        for e in anns.iter() {
            let Some(text) = e.value.as_str() else {
                continue;
            };
            match e.key.as_str() {
                Some(ORIGIN_ANNOTATION) => {
                    for line in text.lines() {
                        if let Some(p) = line.trim().strip_prefix("path:") {
                            prov.origin = Some(kustomize::normalize(wrapper, p.trim()));
                        }
                    }
                }
                Some(TRANSFORMATIONS_ANNOTATION) => {
                    for line in text.lines() {
                        if let Some(p) = line
                            .trim()
                            .trim_start_matches("- ")
                            .strip_prefix("configuredIn:")
                        {
                            let path = kustomize::normalize(wrapper, p.trim());
                            if !prov.configured_in.contains(&path) {
                                prov.configured_in.push(path);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        anns.retain(|e| {
            !matches!(
                e.key.as_str(),
                Some(ORIGIN_ANNOTATION | TRANSFORMATIONS_ANNOTATION)
            )
        });
        if anns.is_empty() {
            meta_entries.remove(ann_idx);
        }
    }
    prov
}

/// A step from a node to one of its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    /// A list item: its index, and its identity (`name`, `containerPort`, …)
    /// when it has one, which survives patches that reorder lists.
    Item(usize, Option<(String, String)>),
}

/// Keys that identify list items, in kustomize's merge-key spirit.
const IDENTITY_KEYS: [&str; 6] = ["name", "containerPort", "mountPath", "port", "key", "ip"];

fn identity(item: &Node) -> Option<(String, String)> {
    IDENTITY_KEYS.iter().find_map(|k| {
        item.get(k)
            .and_then(|v| v.as_scalar())
            .map(|s| ((*k).to_string(), s.text.to_string()))
    })
}

/// The path to the deepest node of `root` that contains `span`, and whether
/// the span is on a mapping key (rather than on a value).
pub fn path_to(root: &Node, span: Span) -> (Vec<Step>, bool) {
    let mut steps = Vec::new();
    let mut node = root;
    let inside = |outer: Span| {
        outer.start.offset <= span.start.offset
            && span.start.offset < outer.end.offset.max(outer.start.offset + 1)
    };
    loop {
        match &node.value {
            Value::Mapping(entries) => {
                if let Some(e) = entries
                    .iter()
                    .find(|e| inside(e.key.span) && e.key.span.start == span.start)
                {
                    steps.push(Step::Key(e.key.as_str().unwrap_or("").to_string()));
                    return (steps, true);
                }
                let Some(e) = entries
                    .iter()
                    .find(|e| inside(e.value.span) || e.value.span.start == span.start)
                else {
                    return (steps, false);
                };
                steps.push(Step::Key(e.key.as_str().unwrap_or("").to_string()));
                node = &e.value;
            }
            Value::Sequence(items) => {
                let Some((i, item)) = items
                    .iter()
                    .enumerate()
                    .find(|(_, n)| inside(n.span) || n.span.start == span.start)
                else {
                    return (steps, false);
                };
                steps.push(Step::Item(i, identity(item)));
                node = item;
            }
            Value::Scalar(_) => return (steps, false),
        }
    }
}

/// Follow `steps` in a source document. Returns the deepest node reached and
/// how many steps matched.
pub fn follow<'n>(
    root: &'n Node,
    steps: &[Step],
) -> (&'n Node, Option<&'n dtlint_yaml::Entry>, usize) {
    let mut node = root;
    let mut entry = None;
    for (n, step) in steps.iter().enumerate() {
        let next = match step {
            Step::Key(k) => node.entry(k).map(|e| {
                entry = Some(e);
                &e.value
            }),
            Step::Item(i, id) => {
                entry = None;
                let items = node.as_sequence().unwrap_or(&[]);
                match id {
                    Some((k, v)) => items.iter().find(|it| {
                        it.get(k)
                            .and_then(|x| x.as_scalar())
                            .is_some_and(|s| s.text == *v)
                    }),
                    None => items.get(*i),
                }
            }
        };
        match next {
            Some(n2) => node = n2,
            None => return (node, entry, n),
        }
    }
    (node, entry, steps.len())
}

/// The kind and name a source document must have to be the origin (or a
/// patch) of a rendered object. Rendered names may carry a `namePrefix`,
/// `nameSuffix` or a generator's hash.
fn same_object(doc: &Node, kind: &str, name: &str) -> bool {
    let dk = doc.get("kind").and_then(Node::as_str);
    let dn = doc
        .path(&["metadata", "name"])
        .and_then(Node::as_str)
        .unwrap_or("");
    dk == Some(kind) && !dn.is_empty() && (dn == name || name.contains(dn))
}

fn docs_of(ws: &Workspace, file: FileId) -> impl Iterator<Item = &Node> {
    ws.parsed(file).documents.iter().map(|d| &d.root)
}

/// The span to report for a node reached by `follow`: the key when the
/// finding was on a key, else the value.
fn spot(node: &Node, entry: Option<&dtlint_yaml::Entry>, on_key: bool) -> Span {
    match (on_key, entry) {
        (true, Some(e)) => e.key.span,
        _ => node.span,
    }
}

fn scalar_text(n: &Node) -> Option<&str> {
    n.as_scalar().map(|s| s.text.as_str())
}

/// The kustomization parsed from `path`, if it is one we read.
fn kustomization_doc<'w>(ws: &'w Workspace, path: &Path) -> Option<(FileId, &'w Node)> {
    let id = ws.sources.find_abs(path)?;
    Some((id, &ws.parsed(id).documents.first()?.root))
}

/// Transformer settings in kustomizations that explain a rendered value:
/// `images:` for an image, generator literals for ConfigMap data, `labels:`
/// and `commonLabels:` for labels, `namespace:` for the namespace.
fn from_transformers(
    ws: &Workspace,
    prov: &Provenance,
    steps: &[Step],
    rendered_leaf: Option<&str>,
    kind: &str,
    name: &str,
) -> Option<(FileId, Span)> {
    let last = match steps.last() {
        Some(Step::Key(k)) => k.as_str(),
        _ => return None,
    };
    for kpath in prov.configured_in.iter().rev() {
        let Some((kust_file, k)) = kustomization_doc(ws, kpath) else {
            continue;
        };
        if last == "image" {
            let image = rendered_leaf.unwrap_or("");
            let repo = image.split('@').next().unwrap_or(image);
            let repo = match repo.rsplit_once(':') {
                Some((r, t)) if !t.contains('/') => r,
                _ => repo,
            };
            for entry in k.get("images").into_iter().flat_map(Node::items) {
                let names = [entry.get("newName"), entry.get("name")];
                if names.iter().flatten().any(|n| n.as_str() == Some(repo)) {
                    let node = entry
                        .get("digest")
                        .or_else(|| entry.get("newTag"))
                        .or_else(|| entry.get("newName"));
                    if let Some(n) = node {
                        return Some((kust_file, n.span));
                    }
                }
            }
        }
        if steps.len() >= 2 && steps.iter().any(|s| *s == Step::Key("labels".into())) {
            for pairs in k
                .get("labels")
                .into_iter()
                .flat_map(Node::items)
                .filter_map(|l| l.get("pairs"))
                .chain(k.get("commonLabels"))
            {
                if let Some(e) = pairs.entry(last) {
                    return Some((kust_file, e.value.span));
                }
            }
        }
        if steps == [Step::Key("metadata".into()), Step::Key("namespace".into())]
            && let Some(ns) = k.get("namespace")
        {
            return Some((kust_file, ns.span));
        }
        if matches!(kind, "ConfigMap" | "Secret")
            && steps.len() == 2
            && matches!(&steps[0], Step::Key(d) if d == "data" || d == "stringData")
        {
            let key = if kind == "ConfigMap" {
                "configMapGenerator"
            } else {
                "secretGenerator"
            };
            for g in k.get(key).into_iter().flat_map(Node::items) {
                let gname = g.get("name").and_then(Node::as_str).unwrap_or("");
                if gname.is_empty() || !name.starts_with(gname) {
                    continue;
                }
                for lit in g.get("literals").into_iter().flat_map(Node::items) {
                    if lit
                        .as_str()
                        .is_some_and(|l| l.split_once('=').is_some_and(|(lk, _)| lk.trim() == last))
                    {
                        return Some((kust_file, lit.span));
                    }
                }
            }
        }
    }
    None
}

/// Does `steps` end at the value that identifies its object or list item
/// (`metadata.name`, `kind`, or the merge key of a list item such as a
/// container's `name`)?
fn names_its_item(steps: &[Step]) -> bool {
    match steps {
        [Step::Key(k)] => k == "kind" || k == "apiVersion",
        [Step::Key(m), Step::Key(n)] if m == "metadata" && n == "name" => true,
        [.., Step::Item(_, Some((id, _))), Step::Key(k)] => id == k,
        _ => false,
    }
}

/// Map a span in a rendered overlay to the source a human edits: the patch
/// that set the value, a kustomization transformer, or the origin file.
pub fn map_to_source(ws: &Workspace, file: FileId, span: Span) -> Option<(FileId, Span)> {
    let rendered = ws.rendered_of(file)?;
    let parsed = ws.parsed(file);
    let (doc_i, doc) = parsed.documents.iter().enumerate().find(|(_, d)| {
        d.root.span.start.offset <= span.start.offset && span.start.offset <= d.root.span.end.offset
    })?;
    let prov = rendered.provenance.get(doc_i)?;
    let kind = doc.root.get("kind").and_then(Node::as_str).unwrap_or("");
    let name = doc
        .root
        .path(&["metadata", "name"])
        .and_then(Node::as_str)
        .unwrap_or("");
    let (steps, on_key) = path_to(&doc.root, span);
    let (rendered_node, _, _) = follow(&doc.root, &steps);
    let leaf = scalar_text(rendered_node);

    // Patches listed by the kustomizations that transformed the object, the
    // last applied first; then the origin document.
    let mut candidates: Vec<(FileId, &Node)> = Vec::new();
    for kpath in prov.configured_in.iter().rev() {
        let Some(k) = ws
            .kustomizations
            .iter()
            .find(|k| ws.sources.get(k.file).abs == *kpath)
        else {
            continue;
        };
        for r in k.refs.iter().rev().filter(|r| r.kind == RefKind::Patch) {
            let Some(pid) = ws.sources.find_abs(&r.path) else {
                continue;
            };
            candidates.extend(
                docs_of(ws, pid)
                    .filter(|d| same_object(d, kind, name))
                    .map(|d| (pid, d)),
            );
        }
    }
    let origin = prov
        .origin
        .as_ref()
        .and_then(|o| ws.sources.find_abs(o))
        .and_then(|oid| {
            let docs: Vec<&Node> = docs_of(ws, oid).collect();
            let same_kind: Vec<&Node> = docs
                .iter()
                .copied()
                .filter(|d| d.get("kind").and_then(Node::as_str) == Some(kind))
                .collect();
            docs.iter()
                .copied()
                .find(|d| same_object(d, kind, name))
                .or_else(|| (same_kind.len() == 1).then(|| same_kind[0]))
                .map(|d| (oid, d))
        });

    // 1. A source that writes this very value at this very path. A value
    //    that only names its object or list item (`metadata.name`, a
    //    container's `name`) or a whole mapping is written by every patch
    //    that merges into it, so the origin, where it is declared, goes
    //    first: a finding about what the object lacks belongs where the
    //    object is declared, once for every environment.
    let declares = leaf.is_none() || names_its_item(&steps);
    let ordered: Vec<(FileId, &Node)> = if declares {
        origin.iter().chain(candidates.iter()).copied().collect()
    } else {
        candidates.iter().chain(origin.iter()).copied().collect()
    };
    for &(fid, d) in &ordered {
        let (node, entry, matched) = follow(d, &steps);
        if matched == steps.len() && (on_key || leaf.is_none() || scalar_text(node) == leaf) {
            return Some((fid, spot(node, entry, on_key)));
        }
    }
    // 2. A kustomization transformer that sets it.
    if let Some(found) = from_transformers(ws, prov, &steps, leaf, kind, name) {
        return Some(found);
    }
    // 3. The path exists in the origin (the value came from elsewhere), or the
    //    nearest enclosing node that does.
    let mut best: Option<(FileId, Span, usize)> = None;
    for &(fid, d) in origin.iter().chain(candidates.iter()) {
        let (node, entry, matched) = follow(d, &steps);
        if matched == steps.len() {
            return Some((fid, spot(node, entry, on_key)));
        }
        let span = entry.map_or(node.span, |e| e.key.span);
        if best.is_none_or(|(_, _, m)| matched > m) {
            best = Some((fid, span, matched));
        }
    }
    if let Some((fid, span, _)) = best {
        return Some((fid, span));
    }
    // 4. A generated object: the generator that made it.
    for kpath in prov.configured_in.iter().rev() {
        let Some((kust_file, k)) = kustomization_doc(ws, kpath) else {
            continue;
        };
        for key in ["configMapGenerator", "secretGenerator"] {
            for g in k.get(key).into_iter().flat_map(Node::items) {
                if let Some(n) = g
                    .get("name")
                    .filter(|n| n.as_str().is_some_and(|gn| name.starts_with(gn)))
                {
                    return Some((kust_file, n.span));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Node {
        let lines = dtlint_yaml::LineIndex::new(src);
        dtlint_yaml::parse(src, &lines, dtlint_yaml::Limits::default())
            .documents
            .remove(0)
            .root
    }

    #[test]
    fn paths_follow_list_items_by_name() {
        let rendered = parse(
            "spec:\n  containers:\n    - name: b\n      image: x:1\n    - name: a\n      image: y:latest\n",
        );
        let image = rendered
            .path(&["spec", "containers"])
            .unwrap()
            .as_sequence()
            .unwrap()[1]
            .get("image")
            .unwrap();
        let (steps, on_key) = path_to(&rendered, image.span);
        assert!(!on_key);
        assert_eq!(steps[2], Step::Item(1, Some(("name".into(), "a".into()))));
        let source = parse("spec:\n  containers:\n    - name: a\n      image: y:1\n");
        let (node, _, matched) = follow(&source, &steps);
        assert_eq!(matched, steps.len());
        assert_eq!(node.as_str(), Some("y:1"));
    }

    #[test]
    fn key_spans_are_recognised() {
        let rendered = parse("metadata:\n  labels:\n    a: b\n");
        let key = rendered
            .get("metadata")
            .unwrap()
            .entry("labels")
            .unwrap()
            .key
            .span;
        let (steps, on_key) = path_to(&rendered, key);
        assert!(on_key);
        assert_eq!(
            steps,
            vec![Step::Key("metadata".into()), Step::Key("labels".into())]
        );
    }

    #[test]
    fn provenance_is_read_and_removed() {
        let mut doc = parse(
            "kind: Deployment\nmetadata:\n  name: gc\n  annotations:\n    config.kubernetes.io/origin: |\n      path: ../repo/base/gc/deployment.yaml\n    alpha.config.kubernetes.io/transformations: |\n      - configuredIn: ../repo/overlays/p/gc/kustomization.yaml\n        configuredBy:\n          kind: PatchTransformer\n",
        );
        let p = take_provenance(&mut doc, Path::new("/w/wrap"));
        assert_eq!(
            p.origin.as_deref(),
            Some(Path::new("/w/repo/base/gc/deployment.yaml"))
        );
        assert_eq!(
            p.configured_in,
            vec![PathBuf::from("/w/repo/overlays/p/gc/kustomization.yaml")]
        );
        assert!(doc.get("metadata").unwrap().get("annotations").is_none());
    }

    #[test]
    fn relative_paths_for_the_wrapper() {
        assert_eq!(
            relative(Path::new("/a/b/c"), Path::new("/a/x/y")),
            PathBuf::from("../../x/y")
        );
    }

    #[test]
    fn kustomize_errors_are_cleaned() {
        let e = clean_error(
            "E1122 run.go:72] \"command failed\" err=\"accumulating resources: missing ../../repo/overlays/x\"",
            Path::new("/tmp/w/wrap"),
            Path::new("/tmp/repo"),
        );
        assert_eq!(e, "accumulating resources: missing overlays/x");
    }
}
