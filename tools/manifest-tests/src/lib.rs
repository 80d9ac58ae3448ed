//! Offline checks of the repository's Kubernetes side: `base/`, `overlays/`, `clusters/` and
//! `.sops.yaml`.
//!
//! The library holds the plumbing (finding kustomization directories, running kustomize and
//! sops, reading YAML with positions through `dtlint-yaml`, the workspace's one YAML tree,
//! matching `.sops.yaml` rules, loading Flux CRD schemas);
//! `tests/manifests.rs` holds the checks. Every failure names the file, and the line when the
//! check reads a source file.
//!
//! External tools, all found on `PATH`: `kustomize` or `kubectl` (required), `sops` (needed
//! when an age key is set, see [`age_key_var`]), `kubernetes-validate` (the `PyPI` package of
//! that name). A check that cannot run goes through [`skip`]: it says so, or fails when
//! `DT_REQUIRE_ALL` is set (as `tools/ci/test-all.sh` does).

pub mod flux;
pub mod sops;
pub mod yaml;

use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use yaml::{Node, NodeExt, Pos, Value};

/// The environments, in promotion order.
pub const ENVIRONMENTS: [&str; 3] = ["development", "staging", "production"];

/// Top-level directories that hold manifests.
pub const MANIFEST_ROOTS: [&str; 3] = ["base", "overlays", "clusters"];

/// Errors from the plumbing; messages always name the file or command involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{source}")]
    Yaml { path: PathBuf, source: yaml::Error },
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("{0}")]
    Other(String),
}

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .nth(2)
        .map_or_else(|| here.to_path_buf(), Path::to_path_buf)
}

/// `path` relative to `root`, for messages.
pub fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Reads a file to a string.
pub fn read(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses every YAML document in a file.
pub fn load_yaml(path: &Path) -> Result<Vec<Node>, Error> {
    let text = read(path)?;
    yaml::parse(&text).map_err(|source| Error::Yaml {
        path: path.to_path_buf(),
        source,
    })
}

/// Set (to `1`) by `tools/ci/test-all.sh`: a test that cannot run fails instead of skipping.
pub const REQUIRE_ALL_VAR: &str = "DT_REQUIRE_ALL";

/// The variables the real `sops` reads age keys from.
pub const AGE_KEY_VARS: [&str; 3] = ["SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY_CMD"];

/// Whether `DT_REQUIRE_ALL` asks every test to run (`1`, `true` or `yes`).
pub fn require_all() -> bool {
    std::env::var(REQUIRE_ALL_VAR)
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// The one place a check of the manifests gives up (all or part of a test) for want of a key
/// or a tool: it prints `DT-SKIP: <test>: <reason>` to stderr, the line `tools/ci/test-all.sh`
/// lists in its summary, and returns; with `DT_REQUIRE_ALL` set it panics with the reason
/// instead, so the test fails naming what is missing.
pub fn skip(reason: &str) {
    let current = std::thread::current();
    let test = current.name().unwrap_or("<unnamed test>");
    assert!(
        !require_all(),
        "{test} cannot run: {reason} ({REQUIRE_ALL_VAR} is set, so this is a failure)"
    );
    eprintln!("DT-SKIP: {test}: {reason}");
}

/// The first non-empty variable of [`AGE_KEY_VARS`]: the one `sops` will decrypt with.
pub fn age_key_var() -> Option<&'static str> {
    AGE_KEY_VARS
        .into_iter()
        .find(|v| std::env::var_os(v).is_some_and(|value| !value.is_empty()))
}

/// Finds an executable on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Runs a command and returns its stdout, or an error carrying its stderr.
pub fn run(command: &mut Command) -> Result<String, Error> {
    let shown = format!("{command:?}");
    let out = command.output().map_err(|e| Error::Command {
        command: shown.clone(),
        detail: e.to_string(),
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let mut detail = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !stdout.trim().is_empty() {
            let _ = write!(detail, "\n{}", stdout.trim());
        }
        Err(Error::Command {
            command: shown,
            detail,
        })
    }
}

/// What a command run by [`run_with_timeout`] ended with.
#[derive(Debug)]
pub struct Finished {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a command to its end or until `timeout`, when it is killed and the run is an error
/// naming the command. Its output is read while it runs (a full pipe never stalls it).
pub fn run_with_timeout(
    command: &mut Command,
    timeout: std::time::Duration,
) -> Result<Finished, Error> {
    use std::process::Stdio;

    let shown = format!("{command:?}");
    let failed = |detail: String| Error::Command {
        command: shown.clone(),
        detail,
    };
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            text
        })
    };
    let stdout = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!("killed after {}s", timeout.as_secs())));
            }
            Err(e) => return Err(failed(e.to_string())),
        }
    };
    Ok(Finished {
        success: status.success(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Builds a kustomization directory offline, the way CI and dtlint do: standalone
/// `kustomize` when installed, otherwise `kubectl kustomize`.
pub fn kustomize_build(dir: &Path) -> Result<String, Error> {
    let mut command = if which("kustomize").is_some() {
        let mut c = Command::new("kustomize");
        c.arg("build");
        c
    } else {
        let mut c = Command::new("kubectl");
        c.arg("kustomize");
        c
    };
    command
        .args(["--load-restrictor", "LoadRestrictionsNone"])
        .arg(dir);
    run(&mut command)
}

/// Every directory under `base/`, `overlays/` and `clusters/` holding a `kustomization.yaml`,
/// sorted. A Kustomize Component (`kind: Component`) is not one: it builds only inside the
/// overlays that list it under `components`, which are here.
pub fn kustomization_dirs(root: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut found = Vec::new();
    let mut components = Vec::new();
    for top in MANIFEST_ROOTS {
        walk(&root.join(top), &mut |path| {
            if path.file_name().is_some_and(|n| n == "kustomization.yaml")
                && let Some(parent) = path.parent()
            {
                found.push(parent.to_path_buf());
            }
        })?;
    }
    for dir in &found {
        let text = read(&dir.join("kustomization.yaml"))?;
        if text.lines().any(|l| l.trim_end() == "kind: Component") {
            components.push(dir.clone());
        }
    }
    found.retain(|d| !components.contains(d));
    found.sort();
    Ok(found)
}

/// Every `.yaml` file under `dir`, sorted.
pub fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut found = Vec::new();
    walk(dir, &mut |path| {
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            found.push(path.to_path_buf());
        }
    })?;
    found.sort();
    Ok(found)
}

fn walk(dir: &Path, visit: &mut dyn FnMut(&Path)) -> Result<(), Error> {
    if !dir.is_dir() {
        return Ok(());
    }
    let entries = fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            walk(&path, visit)?;
        } else {
            visit(&path);
        }
    }
    Ok(())
}

/// The leaf overlays: `overlays/<env>`, `overlays/<env>/<service>`, `overlays/<env>/platform`
/// and each platform component, i.e. every kustomization directory under `overlays/`.
pub fn overlay_dirs(root: &Path) -> Result<Vec<PathBuf>, Error> {
    let overlays = root.join("overlays");
    Ok(kustomization_dirs(root)?
        .into_iter()
        .filter(|d| d.starts_with(&overlays))
        .collect())
}

/// The environment an overlay or cluster path belongs to.
pub fn environment_of(root: &Path, path: &Path) -> Option<&'static str> {
    let relative = path.strip_prefix(root).ok()?;
    let mut parts = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy());
    let top = parts.next()?;
    if top != "overlays" && top != "clusters" {
        return None;
    }
    let env = parts.next()?;
    ENVIRONMENTS.into_iter().find(|e| *e == env)
}

/// Copies `base/` and `overlays/` into a temporary directory and decrypts every
/// `secret.sops.yaml` there with `sops`, so overlays can be rendered the way
/// kustomize-controller renders them. The repository itself is never touched.
pub fn decrypted_copy(root: &Path) -> Result<tempfile::TempDir, Error> {
    let tmp = tempfile::Builder::new()
        .prefix("dt-manifests-")
        .tempdir()
        .map_err(|source| Error::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    for top in ["base", "overlays"] {
        copy_tree(&root.join(top), &tmp.path().join(top))?;
    }
    for file in yaml_files(&tmp.path().join("overlays"))? {
        if file.file_name().is_some_and(|n| n == "secret.sops.yaml") {
            let plain = sops::decrypt(&file).map_err(|e| {
                Error::Other(format!(
                    "{}: {e}",
                    root.join(file.strip_prefix(tmp.path()).unwrap_or(&file))
                        .display()
                ))
            })?;
            fs::write(&file, plain).map_err(|source| Error::Io { path: file, source })?;
        }
    }
    Ok(tmp)
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    fs::create_dir_all(to).map_err(|source| Error::Io {
        path: to.to_path_buf(),
        source,
    })?;
    let mut files = Vec::new();
    walk(from, &mut |p| files.push(p.to_path_buf()))?;
    for file in files {
        let relative = file.strip_prefix(from).unwrap_or(&file);
        let target = to.join(relative);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|source| Error::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        fs::copy(&file, &target).map_err(|source| Error::Io { path: file, source })?;
    }
    Ok(())
}

/// `kind/name` (and namespace when set) of a Kubernetes object, for messages.
pub fn object_id(doc: &Node) -> String {
    let kind = doc.str_at(&["kind"]).unwrap_or("<no kind>");
    let name = doc.str_at(&["metadata", "name"]).unwrap_or("<no name>");
    match doc.str_at(&["metadata", "namespace"]) {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// The string values of a Secret's `data` and `stringData`, with their positions and keys.
pub fn secret_values(doc: &Node) -> Vec<(String, Pos, Option<String>)> {
    let mut out = Vec::new();
    for field in ["data", "stringData"] {
        if let Some(map) = doc.get(field) {
            for entry in map.entries() {
                let text = match entry.value.to_json() {
                    serde_json::Value::String(s) => Some(s),
                    serde_json::Value::Null => None,
                    other => Some(other.to_string()),
                };
                out.push((entry.key.json_key(), entry.value.pos(), text));
            }
        }
    }
    out
}
