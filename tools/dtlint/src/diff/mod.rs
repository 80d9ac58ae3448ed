//! `dtlint diff --base <rev>`: what a change does to each cluster.
//!
//! The base revision's files are checked out through a private index into
//! a directory of their own (kept under the build cache and reused while the
//! base stays the same; the repository's own index, worktrees and working
//! tree are not touched), both trees are rendered the way `dtlint check` renders them (each with
//! its own `dtlint.toml`, sharing the build cache), and the objects each
//! environment receives are compared: added, removed, and changed with the
//! paths of the fields that differ. Encrypted SOPS values are masked on
//! both sides (with a key, as a digest of the plaintext under a key drawn
//! for the run, so a changed secret shows as a changed field and a mere
//! re-encryption does not), and the `sops` metadata is
//! left out.
//!
//! The change rules judge the difference itself (see [`changes`]).
//!
//! Output: `human` (a change that reaches several environments once,
//! naming them), `markdown` (for a pull-request comment, a collapsible
//! section per environment) and `json`, a contract documented in the
//! README: `{"environments": {"<env>": {"added": [OBJ], "removed": [OBJ],
//! "changed": [OBJ + "fields"]}}, "findings": [...]}` where OBJ is
//! `{"apiVersion", "kind", "namespace", "name", "source": "file:line"}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use dtlint_yaml::Node;
use serde_json::{Value as Json, json};

use crate::config::Config;
use crate::engine::{self, Prepared, RenderOptions};
use crate::subprocess::{self, Limits};
use secrets::{mask, sealed};

mod changes;
mod flows;
mod output;
mod secrets;

pub use changes::Change;

/// Output formats of `dtlint diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Markdown,
    Json,
    Sarif,
    Github,
}

/// One object an environment receives.
#[derive(Debug, Clone, PartialEq)]
pub struct Obj {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// `file:line` of the object in the file a human edits.
    pub source: String,
    /// The object, encrypted values masked.
    pub value: Json,
}

impl Obj {
    fn group(&self) -> &str {
        crate::model::api_group(&self.api_version)
    }

    /// `Kind namespace/name`, as the output names it.
    pub fn id(&self) -> String {
        if self.namespace.is_empty() {
            format!("{} {}", self.kind, self.name)
        } else {
            format!("{} {}/{}", self.kind, self.namespace, self.name)
        }
    }

    fn to_json(&self) -> Json {
        json!({
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "source": self.source,
        })
    }
}

/// The identity of an object in one environment: API group, kind,
/// namespace, name (a version change is a change, not a replacement).
type Key = (String, String, String, String);

/// What changed in one environment.
#[derive(Debug, Default)]
pub struct EnvDiff {
    pub added: Vec<Obj>,
    pub removed: Vec<Obj>,
    /// The new object, its base version, and the changed field paths.
    pub changed: Vec<(Obj, Obj, Vec<String>)>,
}

/// The whole difference, by environment, and what the change rules found.
#[derive(Debug, Default)]
pub struct Diff {
    pub environments: BTreeMap<String, EnvDiff>,
    pub changes: Vec<Change>,
    /// The environments, in the order `dtlint.toml` declares them.
    pub order: Vec<String>,
}

const GIT: Limits = Limits {
    timeout: Duration::from_mins(2),
    max_stdout: 16 * 1024 * 1024,
    max_stderr: 1024 * 1024,
};

fn git(repo: &Path, args: &[&str]) -> Result<String, String> {
    git_with(repo, args, None)
}

/// `git -C repo args`, with `GIT_INDEX_FILE` set when `index` is given.
fn git_with(repo: &Path, args: &[&str], index: Option<&Path>) -> Result<String, String> {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(repo).args(args);
    if let Some(index) = index {
        cmd.env("GIT_INDEX_FILE", index);
    }
    let out =
        subprocess::run(&mut cmd, GIT).map_err(|e| format!("`git {}` {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The commit `rev` names, or why there is none.
fn resolve(repo: &Path, rev: &str) -> Result<String, String> {
    git(repo, &["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")]).map_err(|_| {
        let shallow =
            git(repo, &["rev-parse", "--is-shallow-repository"]).is_ok_and(|s| s == "true");
        if shallow {
            format!(
                "base revision `{rev}` is not in this shallow clone: fetch it first (`git fetch --deepen=50`, or `fetch-depth: 0` in GitHub Actions)"
            )
        } else {
            format!("base revision `{rev}` does not exist in this repository")
        }
    })
}

/// The files a change since `rev` touched, absolute: edited, added, renamed
/// or deleted in the working tree (staged or not), and new files git does
/// not ignore. What `dtlint check --changed-since` reports on: a finding on
/// a rendered object is placed at the source line that makes it, so a base
/// file's change brings the findings of every environment that renders it.
pub fn changed_files(repo: &Path, rev: &str) -> Result<Vec<PathBuf>, String> {
    let commit = resolve(repo, rev)?;
    let top = git(repo, &["rev-parse", "--show-toplevel"])?;
    let tracked = git(
        repo,
        &["diff", "--name-only", "--no-renames", &commit, "--"],
    )?;
    let untracked = git(
        repo,
        &["ls-files", "--others", "--exclude-standard", "--full-name"],
    )?;
    let mut out: Vec<PathBuf> = tracked
        .lines()
        .chain(untracked.lines())
        .filter(|l| !l.is_empty())
        .map(|l| Path::new(&top).join(l))
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// The view of `dtlint check --changed-since REV`: the changed files (within
/// the given view, when there is one); a view no file lies in when nothing
/// changed.
pub fn changed_view(
    repo: &Path,
    since: Option<&str>,
    view: Vec<PathBuf>,
) -> Result<Vec<PathBuf>, String> {
    let Some(rev) = since else {
        return Ok(view);
    };
    let mut out: Vec<PathBuf> = changed_files(repo, rev)?
        .into_iter()
        .filter(|c| view.is_empty() || view.iter().any(|v| c.starts_with(v)))
        .collect();
    if out.is_empty() {
        // An empty view is the whole repository: name a path nothing is in.
        out.push(repo.join(".dtlint: nothing changed"));
    }
    Ok(out)
}

/// `dtlint check --changed-since REV`, second half: drop the findings that
/// were there at `rev` already (by the baseline fingerprint: rule, file,
/// the text pointed at, message), so a new defect beside an old one is
/// reported alone. The base is checked and rendered like the working tree
/// (its own `dtlint.toml`, the shared build cache, SOPS decrypted with the
/// same key); a base that cannot be prepared keeps every finding and says
/// why.
pub fn drop_older(
    repo: &Path,
    rev: &str,
    render: &RenderOptions,
    findings: &mut Vec<crate::diag::Finding>,
    sources: &crate::source::Sources,
) -> Result<(), String> {
    use crate::engine::baseline;
    let tree = BaseTree::checkout(repo, rev, render.cache_dir.as_deref())?;
    let config = config_at(&tree.path)?;
    let (mut old, _) = match engine::prepare(
        &tree.path,
        std::slice::from_ref(&tree.path),
        &config,
        render,
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "dtlint: note: `{rev}` could not be checked ({e}): every finding of the changed files is reported"
            );
            return Ok(());
        }
    };
    if let Ok(Some(ids)) = crate::sops_index::identities_from_env() {
        old.sops.decrypt(&ids);
    }
    let before = engine::run(&old, &config, &engine::Selection::default());
    let entries = before
        .findings
        .iter()
        .map(|f| baseline::Entry {
            fingerprint: baseline::fingerprint(f, &old.ws.sources),
            rule: f.rule.to_string(),
            file: old.ws.sources.get(f.primary.file).path.clone(),
            message: f.message.clone(),
        })
        .collect();
    let at_base = baseline::Baseline {
        version: 1,
        findings: entries,
    };
    baseline::apply(&at_base, findings, sources);
    Ok(())
}

/// The files of one revision, checked out into a directory of their own
/// through a private index: the repository's worktrees, index and working
/// tree are not touched. Under the build cache the tree is kept, one per
/// repository, and reused while the base revision stays the same, so a
/// second `dtlint diff` neither checks out nor builds again (the build cache
/// keys hold the absolute paths a build reads); without a cache it lives in
/// a temporary directory removed when dropped.
struct BaseTree {
    path: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl BaseTree {
    fn checkout(repo: &Path, rev: &str, cache_dir: Option<&Path>) -> Result<Self, String> {
        let commit = resolve(repo, rev)?;
        let (path, dir) = if let Some(cache) = cache_dir {
            use sha2::Digest as _;
            let repo_hash = hex::encode(sha2::Sha256::digest(repo.as_os_str().as_encoded_bytes()));
            std::fs::create_dir_all(cache)
                .map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
            // A real path: the tree is the root of a whole run.
            let cache = cache.canonicalize().unwrap_or_else(|_| cache.to_path_buf());
            (cache.join(format!("diff-base-{}", &repo_hash[..16])), None)
        } else {
            let dir = tempfile::Builder::new()
                .prefix("dtlint-base-")
                .tempdir()
                .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
            (dir.path().join("tree"), Some(dir))
        };
        let marker = path.with_extension("commit");
        let current = std::fs::read_to_string(&marker).unwrap_or_default();
        if dir.is_some() || current.trim() != commit || !path.is_dir() {
            let _ = std::fs::remove_file(&marker);
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            let index = path.with_extension("index");
            let shown = path.to_string_lossy().into_owned();
            let checkout = git_with(repo, &["read-tree", &commit], Some(&index)).and_then(|_| {
                git_with(
                    repo,
                    &["--work-tree", &shown, "checkout-index", "--all", "--force"],
                    Some(&index),
                )
            });
            let _ = std::fs::remove_file(&index);
            checkout.map_err(|e| format!("cannot check out `{rev}`: {e}"))?;
            std::fs::write(&marker, &commit)
                .map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
        }
        Ok(Self { path, _dir: dir })
    }
}

/// The configuration of the tree at `root`: its own `dtlint.toml`, else
/// the defaults, with the environments found there.
fn config_at(root: &Path) -> Result<Config, String> {
    let mut config = match crate::config::find(root).filter(|p| p.starts_with(root)) {
        Some(p) => Config::load(&p).map_err(|e| e.to_string())?,
        None => Config::defaults(),
    };
    config.discover_environments(root);
    Ok(config)
}

/// Load, render and prepare one tree with its own configuration.
fn prepare(
    root: &Path,
    cache_dir: Option<&Path>,
    render: bool,
) -> Result<(Prepared, Config), String> {
    let config = config_at(root)?;
    let opts = RenderOptions {
        enabled: render,
        cache_dir: cache_dir.map(Path::to_path_buf),
        only_env: None,
    };
    let (mut prepared, _) =
        engine::prepare(root, &[root.to_path_buf()], &config, &opts).map_err(|e| e.to_string())?;
    // With a key, encrypted values are compared by what they hide.
    if let Ok(Some(ids)) = crate::sops_index::identities_from_env() {
        prepared.sops.decrypt(&ids);
    }
    // A build that failed would show its objects as removed or added.
    if let Some(b) = prepared.render.failures.first() {
        let why = b.output.as_ref().err().cloned().unwrap_or_default();
        return Err(format!(
            "`{}` does not build for {}: {why}",
            b.target.display, b.target.env
        ));
    }
    Ok((prepared, config))
}

/// The objects each environment receives: the rendered builds, or, with
/// nothing rendered, the repository's objects as written (environment
/// `(source)`).
fn objects(p: &Prepared, key: &[u8; 32]) -> BTreeMap<String, BTreeMap<Key, Obj>> {
    let ws = &p.ws;
    let sealed = sealed(p, key);
    let mut out: BTreeMap<String, BTreeMap<Key, Obj>> = BTreeMap::new();
    let mut add = |env: &str, root: &Node, source: String| {
        let (Some(api_version), Some(kind)) =
            (root.str_at(&["apiVersion"]), root.str_at(&["kind"]))
        else {
            return;
        };
        let mut value = root.to_json();
        mask(&mut value, &sealed);
        let obj = Obj {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            namespace: root
                .str_at(&["metadata", "namespace"])
                .unwrap_or("")
                .to_string(),
            name: root.str_at(&["metadata", "name"]).unwrap_or("").to_string(),
            source,
            value,
        };
        let key = (
            obj.group().to_string(),
            obj.kind.clone(),
            obj.namespace.clone(),
            obj.name.clone(),
        );
        out.entry(env.to_string()).or_default().insert(key, obj);
    };
    if p.render.rendered.is_empty() {
        for (id, f) in ws.sources.iter() {
            if !matches!(
                ws.role(id),
                crate::workspace::Role::Resource | crate::workspace::Role::Standalone
            ) {
                continue;
            }
            for doc in &ws.parsed(id).documents {
                add(
                    "(source)",
                    &doc.root,
                    format!("{}:{}", f.path, doc.root.span.start.line),
                );
            }
        }
        return out;
    }
    for r in &p.render.rendered {
        for (doc, prov) in ws.parsed(r.file).documents.iter().zip(&r.provenance) {
            let kind = doc.root.str_at(&["kind"]).unwrap_or("");
            let name = doc.root.str_at(&["metadata", "name"]).unwrap_or("");
            let source = prov
                .origin
                .as_deref()
                .and_then(|o| ws.sources.find_abs(o))
                .map_or_else(
                    || r.target.display.clone(),
                    |id| {
                        let f = ws.sources.get(id);
                        // The object's line in its file: the document of the
                        // same kind and name, else the first.
                        let line = ws
                            .document_named(id, Some(kind), name)
                            .or_else(|| ws.parsed(id).documents.first())
                            .map_or(1, |d| d.root.span.start.line);
                        format!("{}:{line}", f.path)
                    },
                );
            add(&r.target.env, &doc.root, source);
        }
    }
    out
}

/// The dotted paths of the fields that differ between `a` and `b`; list
/// items with a `name` are matched by it (`containers[web].image`), others
/// by position.
pub fn changed_fields(before: &Json, after: &Json, prefix: &str, out: &mut Vec<String>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match (before, after) {
        (Json::Object(old), Json::Object(new)) => {
            let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
            for k in keys {
                match (old.get(k), new.get(k)) {
                    (Some(va), Some(vb)) => changed_fields(va, vb, &join(k), out),
                    _ => out.push(join(k)),
                }
            }
        }
        (Json::Array(old), Json::Array(new)) => {
            let named = |items: &[Json]| -> Option<BTreeMap<String, Json>> {
                let m: BTreeMap<String, Json> = items
                    .iter()
                    .map(|i| Some((i.get("name")?.as_str()?.to_string(), i.clone())))
                    .collect::<Option<_>>()?;
                (m.len() == items.len()).then_some(m)
            };
            if let (Some(by_name_old), Some(by_name_new)) = (named(old), named(new)) {
                let keys: std::collections::BTreeSet<&String> =
                    by_name_old.keys().chain(by_name_new.keys()).collect();
                for k in keys {
                    let path = format!("{prefix}[{k}]");
                    match (by_name_old.get(k), by_name_new.get(k)) {
                        (Some(va), Some(vb)) => changed_fields(va, vb, &path, out),
                        _ => out.push(path),
                    }
                }
            } else if old.len() == new.len() {
                for (i, (va, vb)) in old.iter().zip(new).enumerate() {
                    changed_fields(va, vb, &format!("{prefix}[{i}]"), out);
                }
            } else {
                out.push(prefix.to_string());
            }
        }
        _ if before != after => out.push(prefix.to_string()),
        _ => {}
    }
}

/// `file:line` of `field` (a dotted path) of `o` in the new revision: the
/// deepest key of the path its source file has, else the object's line.
fn locate(p: &Prepared, o: &Obj, field: &str) -> String {
    let Some((path, _)) = o.source.rsplit_once(':') else {
        return o.source.clone();
    };
    let ws = &p.ws;
    let Some(doc) = ws
        .sources
        .find_abs(&ws.root.join(path))
        .and_then(|id| ws.document_named(id, Some(&o.kind), &o.name))
    else {
        return o.source.clone();
    };
    let mut node = &doc.root;
    let mut line = node.span.start.line;
    'walk: for segment in field.split('.') {
        let (key, item) = match segment.split_once('[') {
            Some((k, rest)) => (k, Some(rest.trim_end_matches(']'))),
            None => (segment, None),
        };
        let Some(e) = node.entry(key) else { break };
        line = e.key.span.start.line;
        node = &e.value;
        if let Some(item) = item {
            // A list item by its `name`, else by position.
            let found = node.items().enumerate().find(|(i, n)| {
                n.get("name").and_then(Node::as_str) == Some(item) || i.to_string() == item
            });
            let Some((_, n)) = found else { break 'walk };
            line = n.span.start.line;
            node = n;
        }
    }
    format!("{path}:{line}")
}

/// Compare the base revision `base` with the working tree at `root`.
pub fn diff(
    root: &Path,
    base: &str,
    cache_dir: Option<&Path>,
    render: bool,
) -> Result<Diff, String> {
    let tree = BaseTree::checkout(root, base, cache_dir)?;
    let (old, old_config) =
        prepare(&tree.path, cache_dir, render).map_err(|e| format!("at `{base}`: {e}"))?;
    let (new, config) =
        prepare(root, cache_dir, render).map_err(|e| format!("in the working tree: {e}"))?;
    // One key for both sides, drawn for this run only.
    let key: [u8; 32] = rand::random();
    let before = objects(&old, &key);
    let after = objects(&new, &key);
    drop(tree);
    let mut out = Diff::default();
    let envs: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let empty = BTreeMap::new();
    for env in envs {
        let b = before.get(env).unwrap_or(&empty);
        let a = after.get(env).unwrap_or(&empty);
        let mut d = EnvDiff::default();
        for (k, o) in a {
            match b.get(k) {
                None => d.added.push(o.clone()),
                Some(old) => {
                    let mut fields = Vec::new();
                    changed_fields(&old.value, &o.value, "", &mut fields);
                    if !fields.is_empty() {
                        d.changed.push((o.clone(), old.clone(), fields));
                    }
                }
            }
        }
        for (k, o) in b {
            if !a.contains_key(k) {
                d.removed.push(o.clone());
            }
        }
        if !(d.added.is_empty() && d.removed.is_empty() && d.changed.is_empty()) {
            let all: Vec<&Obj> = a.values().collect();
            out.changes
                .extend(changes::judge(env, &d, &all, &|o, f| locate(&new, o, f)));
            out.environments.insert(env.clone(), d);
        }
    }
    out.changes.extend(flows::opened(
        (&old, &old_config),
        (&new, &config),
        &out.environments,
        &|o, f| locate(&new, o, f),
    ));
    changes::merge(&mut out.changes);
    // Environments in the order dtlint.toml declares them.
    let rank = |e: &String| config.environment_rank(e);
    for c in &mut out.changes {
        c.envs.sort_by_key(rank);
    }
    out.order = out.environments.keys().cloned().collect();
    out.order.sort_by_key(rank);
    Ok(out)
}

/// `dtlint diff`: the text to print, and whether an error-level change was
/// found.
pub fn run(
    root: &Path,
    base: &str,
    format: Format,
    cache_dir: Option<&Path>,
    render: bool,
) -> Result<(String, bool), String> {
    let d = diff(root, base, cache_dir, render)?;
    let errors = d.changes.iter().any(|c| c.error);
    let text = match format {
        Format::Human => output::human(&d, base),
        Format::Markdown => output::markdown(&d, base),
        Format::Json => output::json(&d),
        Format::Sarif => output::sarif(&d),
        Format::Github => output::github(&d),
    };
    Ok((text, errors))
}

/// The `dtlint diff` command: print the report; exit 1 on an error-level
/// change, 2 when the diff cannot be made.
pub fn main(root: &Path, base: &str, format: Format, render: bool) -> std::process::ExitCode {
    use std::io::Write as _;
    let cache = crate::render::cache_dir(None);
    match run(root, base, format, Some(&cache), render) {
        Ok((text, errors)) => {
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            std::process::ExitCode::from(u8::from(errors))
        }
        Err(e) => {
            eprintln!("dtlint: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::changed_fields;
    use serde_json::json;

    #[test]
    fn fields_are_named_by_path_and_list_items_by_name() {
        let before = json!({"spec": {"replicas": 2, "containers": [{"name": "web", "image": "a:1"}, {"name": "log", "image": "b:1"}], "args": ["x", "y"]}});
        let after = json!({"spec": {"replicas": 3, "containers": [{"name": "log", "image": "b:1"}, {"name": "web", "image": "a:2"}], "args": ["x", "z"], "paused": true}});
        let mut out = Vec::new();
        changed_fields(&before, &after, "", &mut out);
        assert_eq!(
            out,
            [
                "spec.args[1]",
                "spec.containers[web].image",
                "spec.paused",
                "spec.replicas"
            ]
        );
    }
}
