//! Building overlays: the files a build reads (its closure, checked by the
//! path guard), the cache key over them, and the bounded kustomize run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use dtlint_yaml::Span;
use rayon::prelude::*;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use super::{Build, Builder, Target};
use crate::kustomize::{self, FILE_NAMES, RefKind, relative};
use crate::render_guard::{Checked, UnsafeRef};
use crate::source::{FileId, display_path};
use crate::subprocess::{self, Limits};
use crate::workspace::Workspace;

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
    closure_from(
        ws,
        vec![(dir.to_path_buf(), None)],
        BTreeSet::new(),
        Vec::new(),
    )
}

/// The closure of a target: its overlay's, or, for a Flux Kustomization,
/// that of the entries of the kustomization kustomize-controller generates
/// (each checked like a kustomization's entry, positioned at the Flux
/// Kustomization's `spec.path`) and of its components.
pub fn closure_of(ws: &Workspace, target: &Target) -> Closure {
    let Some(flux) = &target.flux else {
        return closure(ws, &target.dir);
    };
    let via: Via = target.requested_by.map(|(id, span)| {
        (
            ws.sources.get(id).abs.clone(),
            display_path(&ws.root, &target.dir),
            span,
        )
    });
    let mut dirs: Vec<(PathBuf, Via)> = flux
        .components
        .iter()
        .map(|c| (c.clone(), via.clone()))
        .collect();
    let mut files = BTreeSet::new();
    let mut refused = Vec::new();
    if super::has_kustomization(&target.dir) {
        dirs.push((target.dir.clone(), None));
    } else {
        let known = |p: &Path| ws.known_path(p);
        for entry in super::generated_resources(&target.dir) {
            match ws.guard.check(&entry, &known) {
                Ok(crate::render_guard::Checked::Dir) => dirs.push((entry, via.clone())),
                Ok(_) => {
                    files.insert(entry);
                }
                Err(problem) => {
                    if let Some((kustomization, raw, span)) = &via {
                        refused.push(UnsafeRef {
                            kustomization: kustomization.clone(),
                            raw: format!("{raw} ({})", display_path(&ws.root, &entry)),
                            span: *span,
                            problem,
                        });
                    }
                }
            }
        }
    }
    closure_from(ws, dirs, files, refused)
}

fn closure_from(
    ws: &Workspace,
    // Each directory with the entry that led to it.
    mut dirs: Vec<(PathBuf, Via)>,
    mut files: BTreeSet<PathBuf>,
    mut refused: Vec<UnsafeRef>,
) -> Closure {
    let guard = &ws.guard;
    let known = |p: &Path| ws.known_path(p);
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
const BUILD_RECIPE: &str = "dtlint-wrapper-v3 --load-restrictor LoadRestrictionsNone";

/// The wrapper kustomization of a build in `wrapper` (a directory directly
/// in the cache directory, so relative paths do not depend on its name):
/// the overlay, or the entries kustomize-controller would generate for a
/// path with no kustomization, plus what the Flux Kustomization adds; with
/// kustomize's build metadata turned on, so every object says where it
/// came from. JSON, which is YAML.
fn wrapper_text(target: &Target, wrapper: &Path) -> String {
    let rel = |p: &Path| Json::String(relative(wrapper, p).display().to_string());
    let resources: Vec<Json> = if super::has_kustomization(&target.dir) {
        vec![rel(&target.dir)]
    } else {
        super::generated_resources(&target.dir)
            .iter()
            .map(|p| rel(p))
            .collect()
    };
    let mut k = serde_json::Map::new();
    k.insert("resources".into(), Json::Array(resources));
    if let Some(flux) = &target.flux {
        k.extend(flux.fields.clone());
        if !flux.components.is_empty() {
            k.insert(
                "components".into(),
                flux.components.iter().map(|c| rel(c)).collect(),
            );
        }
    }
    k.insert(
        "buildMetadata".into(),
        serde_json::json!(["originAnnotations", "transformerAnnotations"]),
    );
    format!(
        "# written by dtlint to build {} with origin annotations\n{}\n",
        target.display,
        serde_json::to_string_pretty(&Json::Object(k)).unwrap_or_default()
    )
}

/// The cache key of a build: the builder (program, arguments, version), the
/// wrapper recipe, the repository's absolute root (the output names files
/// by paths from the cache directory, so two clones of one repository,
/// which share the cache, must not share entries), the overlay, and the
/// path and content of every file the build reads. Inputs were checked before (regular files within the size
/// limit); a read is bounded all the same.
fn cache_key(
    builder: &Builder,
    target: &Target,
    wrapper: &str,
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
        wrapper,
    ] {
        h.update(part.as_bytes());
        h.update(b"\0");
    }
    h.update(root.as_os_str().as_encoded_bytes());
    h.update(b"\0");
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
    } = closure_of(ws, target);
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
            unset_vars: Vec::new(),
            breaking_vars: Vec::new(),
        };
    }
    let guard = &ws.guard;
    let wrapper_kustomization = wrapper_text(target, &base.join("wrap"));
    let key = cache_key(
        builder,
        target,
        &wrapper_kustomization,
        root,
        &inputs,
        guard.max_file_size,
    );
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
                unset_vars: Vec::new(),
                breaking_vars: Vec::new(),
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
        std::fs::write(dir.join("kustomization.yaml"), &wrapper_kustomization)
            .map_err(|e| format!("cannot write the wrapper kustomization: {e}"))?;
        let limits = Limits {
            timeout: guard.timeout,
            max_stdout: guard.max_output,
            max_stderr: 1024 * 1024,
        };
        let mut command = Command::new(&builder.program);
        command
            .args(&builder.args)
            .arg("--load-restrictor")
            .arg("LoadRestrictionsNone")
            .arg(dir);
        go_runtime_for_short_runs(&mut command);
        let out = subprocess::run(&mut command, limits).map_err(|e| {
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
        unset_vars: Vec::new(),
        breaking_vars: Vec::new(),
    }
}

/// The Go runtime settings a build runs with, where the user's environment
/// does not set them. kustomize (and kubectl) are Go programs; a build lives
/// for a tenth of a second, in which the collector's background workers
/// spend about as much CPU as the build (measured on this repository's
/// overlays: 0.18 CPU seconds per build by default, 0.11 with collection
/// off). So collection is off until the heap reaches `GOMEMLIMIT`, where it
/// resumes and keeps a large build bounded, and each build uses one
/// scheduler thread, as several run side by side (see [`build_all`]).
fn go_runtime_for_short_runs(command: &mut Command) {
    for (name, value) in GO_RUNTIME {
        if std::env::var_os(name).is_none() {
            command.env(name, value);
        }
    }
}

/// See [`go_runtime_for_short_runs`].
const GO_RUNTIME: [(&str, &str); 3] =
    [("GOGC", "off"), ("GOMEMLIMIT", "1GiB"), ("GOMAXPROCS", "1")];

/// kustomize's error with the wrapper's relative paths made repository paths
/// and the logging prefix removed.
pub(super) fn clean_error(stderr: &str, wrapper: &Path, root: &Path) -> String {
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
    let build = || {
        targets
            .par_iter()
            .map(|t| build_one(ws, builder, t, root, cache_dir))
            .collect()
    };
    // A build is mostly a child process starting (a large binary mapped,
    // its runtime set up) and reading files: twice as many builds as cores
    // at a time keep both cores busy while the others wait.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get() * BUILDS_PER_CORE);
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => pool.install(build),
        Err(_) => build(),
    }
}

/// Concurrent kustomize builds per core (see [`build_all`]).
const BUILDS_PER_CORE: usize = 2;
