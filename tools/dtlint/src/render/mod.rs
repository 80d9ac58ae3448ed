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
//! kustomizations reference is checked (`render_guard`) and an
//! overlay that references a device, a FIFO, a symlink loop, a file over the
//! size limit or anything outside the repository is not built; kustomize
//! runs with a timeout and a cap on its output, and its wrapper directory is
//! removed on every exit path, Ctrl-C included (`subprocess`).
//!
//! kustomize runs with Go's collector off up to a heap limit and one
//! scheduler thread, unless the environment says otherwise: builds are
//! short and several run at once (`build::go_runtime_for_short_runs`).
//!
//! `DTLINT_KUSTOMIZE` names the program to build with (a `kustomize`, or a
//! `kubectl`), instead of looking for `kustomize` then `kubectl` on PATH.
//!
//! Mapping a rendered node to its source: the node's path in the rendered
//! object (keys, and list items by their `name` where they have one) is
//! looked up in the patches that kustomizations applied to the object (last
//! first), then in the kustomizations' own transformers (`images:`,
//! generators, `labels:`), then in the object's origin file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use dtlint_yaml::{Node, Span};

use crate::config::Config;
use crate::kustomize::{self, FILE_NAMES};
use crate::render_guard::UnsafeRef;
use crate::source::{FileId, display_path};
use crate::subprocess::{self, Limits};
use crate::workspace::Workspace;

mod build;
mod flux;
mod map;
mod provenance;
mod substitute;

pub use crate::kustomize::generated_resources;
pub use build::{Closure, build_all, closure};
pub use flux::{Cycle, FluxBuild, PostBuild, sync_roots, walk};
pub use map::{Step, follow, map_to_source, path_to};
pub use provenance::{Provenance, RenderOutput, Rendered, apply, take_provenance};
pub use substitute::{SubstituteFrom, Vars};

/// Annotations kustomize adds for us; removed before rules see the object.
pub const ORIGIN_ANNOTATION: &str = "config.kubernetes.io/origin";
pub const TRANSFORMATIONS_ANNOTATION: &str = "alpha.config.kubernetes.io/transformations";

/// The build cache: `--cache-dir`, `DTLINT_CACHE_DIR`, the platform cache
/// directory, else a directory under the system's temporary one. Entries
/// are keyed by the content of every file a build reads, so repositories
/// share it safely.
pub fn cache_dir(flag: Option<&Path>) -> PathBuf {
    let env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    flag.map(Path::to_path_buf)
        .or_else(|| env("DTLINT_CACHE_DIR"))
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("dtlint")))
        .or_else(|| env("HOME").map(|h| h.join(".cache/dtlint")))
        .unwrap_or_else(|| std::env::temp_dir().join("dtlint-cache"))
}

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
    /// What the Flux Kustomization that asked for this build adds to it;
    /// `None` for an overlay built as it is.
    pub flux: Option<Box<FluxBuild>>,
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
    /// `${NAME}`s of the output that `spec.postBuild` leaves without a
    /// value (Flux would substitute an empty string).
    pub unset_vars: Vec<String>,
    /// Substitutions (name, value) after which an object is no longer
    /// YAML: Flux fails the build. The object is kept unsubstituted.
    pub breaking_vars: Vec<(String, String)>,
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

/// A Flux Kustomization dtlint did not build, and why.
#[derive(Debug, Clone)]
pub struct NotBuilt {
    pub env: String,
    /// "Kustomization flux-system/apps (clusters/production/apps.yaml)".
    pub what: String,
    pub why: String,
}

/// The overlays each environment applies, and the Flux Kustomizations of
/// its cluster directory that name no overlay dtlint can build.
///
/// Each environment's overlays are the `spec.path` of every Flux
/// Kustomization under its cluster directory that builds from this
/// repository (see [`local_dir`]) and points into its overlay directory;
/// without a cluster directory, every overlay under the overlay directory.
pub fn targets(ws: &Workspace, config: &Config) -> (Vec<Target>, Vec<NotBuilt>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let generators = artifact_generators(ws);
    for (env, e) in config.environments_in_order() {
        let overlay_root = ws.root.join(&e.overlays);
        let mut seen: Vec<(PathBuf, FluxBuild)> = Vec::new();
        if let Some(cluster) = &e.cluster {
            let cluster_rel = cluster.trim_end_matches('/');
            for (id, f) in ws.sources.iter() {
                if !(f.path == cluster_rel || f.path.starts_with(&format!("{cluster_rel}/"))) {
                    continue;
                }
                for doc in &ws.parsed(id).documents {
                    let r = &doc.root;
                    if !crate::flux::is_flux_kind(r, "kustomize", "Kustomization") {
                        continue;
                    }
                    let what = || {
                        let name = r
                            .path(&["metadata", "name"])
                            .and_then(Node::as_str)
                            .unwrap_or("?");
                        format!("Kustomization {name} ({})", f.path)
                    };
                    let path_node = r.path(&["spec", "path"]);
                    let path = path_node.and_then(Node::as_str).unwrap_or("./");
                    let dir = match local_dir(ws, &generators, r, path) {
                        Ok(dir) => dir,
                        Err(why) => {
                            skipped.push(NotBuilt {
                                env: env.to_string(),
                                what: what(),
                                why,
                            });
                            continue;
                        }
                    };
                    if !dir.starts_with(&overlay_root) || !dir.is_dir() {
                        continue;
                    }
                    let flux = FluxBuild::from_node(r, &dir);
                    if !seen.iter().any(|(d, f)| *d == dir && *f == flux) {
                        seen.push((dir.clone(), flux.clone()));
                        out.push(Target {
                            env: env.to_string(),
                            display: display_path(&ws.root, &dir),
                            dir,
                            requested_by: Some((id, path_node.map_or(r.span, |n| n.span))),
                            flux: Some(Box::new(flux)),
                        });
                    }
                }
            }
        }
        if seen.is_empty() && !e.discovered {
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
                    flux: None,
                });
            }
        }
    }
    (out, skipped)
}

/// One `copy` of an `ArtifactGenerator` artifact: files under `from` (a
/// directory of this repository) land under `to` in the artifact.
pub(super) struct ArtifactCopy {
    from: String,
    to: String,
}

/// The artifacts of the ArtifactGenerators that copy from this repository
/// (a source named `flux-system`), by artifact name.
pub(super) fn artifact_generators(
    ws: &Workspace,
) -> std::collections::HashMap<String, Vec<ArtifactCopy>> {
    let mut out: std::collections::HashMap<String, Vec<ArtifactCopy>> =
        std::collections::HashMap::new();
    for (id, _) in ws.sources.iter() {
        for doc in &ws.parsed(id).documents {
            let r = &doc.root;
            if r.get("kind").and_then(Node::as_str) != Some("ArtifactGenerator") {
                continue;
            }
            let Some(spec) = r.get("spec") else { continue };
            // The aliases of sources that are this repository.
            let own: Vec<&str> = spec
                .get("sources")
                .into_iter()
                .flat_map(Node::items)
                .filter(|s| {
                    s.get("name").and_then(Node::as_str) == Some("flux-system")
                        && s.get("kind").and_then(Node::as_str) == Some("GitRepository")
                })
                .filter_map(|s| s.get("alias").and_then(Node::as_str))
                .collect();
            for a in spec.get("artifacts").into_iter().flat_map(Node::items) {
                let Some(name) = a.get("name").and_then(Node::as_str) else {
                    continue;
                };
                for c in a.get("copy").into_iter().flat_map(Node::items) {
                    let (Some(from), Some(to)) = (
                        c.get("from").and_then(Node::as_str),
                        c.get("to").and_then(Node::as_str),
                    ) else {
                        continue;
                    };
                    // `@alias/dir/**` to `@artifact/dest/`: whole directories only.
                    let Some((alias, rest)) =
                        from.strip_prefix('@').and_then(|f| f.split_once('/'))
                    else {
                        continue;
                    };
                    let (Some(dir), Some(dest)) =
                        (rest.strip_suffix("/**"), to.strip_prefix("@artifact/"))
                    else {
                        continue;
                    };
                    if own.contains(&alias) {
                        out.entry(name.to_string()).or_default().push(ArtifactCopy {
                            from: dir.trim_matches('/').to_string(),
                            to: dest.trim_matches('/').to_string(),
                        });
                    }
                }
            }
        }
    }
    out
}

/// The directory of this repository a Flux Kustomization builds: its
/// `spec.path` from the root when its source is this repository's
/// `flux-system` GitRepository (what `flux bootstrap` and a FluxInstance
/// sync), or mapped back through the `copy` of the ArtifactGenerator that
/// makes its ExternalArtifact. Other sources (another repository, an OCI
/// artifact, a bucket) are not in this repository: the reason.
pub(super) fn local_dir(
    ws: &Workspace,
    generators: &std::collections::HashMap<String, Vec<ArtifactCopy>>,
    ks: &Node,
    path: &str,
) -> Result<PathBuf, String> {
    let kind = ks
        .path(&["spec", "sourceRef", "kind"])
        .and_then(Node::as_str)
        .unwrap_or("?");
    let name = ks
        .path(&["spec", "sourceRef", "name"])
        .and_then(Node::as_str)
        .unwrap_or("?");
    match kind {
        "GitRepository" if name == "flux-system" => Ok(kustomize::normalize(&ws.root, path)),
        "ExternalArtifact" => {
            let Some(copies) = generators.get(name) else {
                return Err(format!(
                    "its source, ExternalArtifact {name}, is made by no ArtifactGenerator copying from this repository"
                ));
            };
            let want = path.trim_start_matches("./").trim_matches('/');
            // The copy whose destination holds the path, the deepest first.
            copies
                .iter()
                .filter_map(|c| {
                    let rest = if c.to.is_empty() {
                        want
                    } else if want == c.to {
                        ""
                    } else {
                        want.strip_prefix(&format!("{}/", c.to))?
                    };
                    Some((c.to.len(), format!("{}/{rest}", c.from)))
                })
                .max_by_key(|(depth, _)| *depth)
                .map(|(_, repo_path)| kustomize::normalize(&ws.root, &repo_path))
                .ok_or_else(|| {
                    format!("`{path}` of ExternalArtifact {name} is copied from no directory of this repository")
                })
        }
        _ => Err(format!(
            "its source, {kind} {name}, is not this repository: its paths are not checked"
        )),
    }
}

pub(super) fn has_kustomization(dir: &Path) -> bool {
    FILE_NAMES.iter().any(|n| dir.join(n).is_file())
}

#[cfg(test)]
mod tests {
    use super::build::clean_error;
    use super::*;
    use crate::kustomize::relative;

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
