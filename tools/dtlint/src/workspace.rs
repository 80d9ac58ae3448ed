//! Discover and parse: from paths on disk to documents with spans.
//!
//! `Workspace::load` walks the given paths (respecting `.gitignore` and the
//! config's `exclude`), reads every YAML file and `Kustomization`, parses
//! them in parallel, and records what each kustomization references so every
//! file gets a role. Nothing here decides what is a finding: problems found
//! while reading (bad UTF-8, a file too large, YAML errors) are kept for the
//! rules that report them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dtlint_yaml::{Limits, Node, Parsed, Pos, Span};
use rayon::prelude::*;

use crate::config::Config;
use crate::kustomize::{self, Kustomization, RefKind};
use crate::model::{ConfigKind, ConfigObject};
use crate::source::{FileId, SourceFile, Sources, display_path};

/// Why a file could not be parsed at all.
#[derive(Debug, Clone)]
pub enum ReadProblem {
    TooLarge { size: u64, limit: u64 },
    NotUtf8 { pos: Pos },
    Io(String),
}

/// How the repository uses a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A kustomization file.
    Kustomization,
    /// Listed under `resources:` (whole objects).
    Resource,
    /// Listed as a patch (partial objects).
    Patch,
    /// Read by a generator.
    GeneratorInput,
    /// Not referenced by any kustomization.
    Standalone,
    /// A non-YAML file read only for its SOPS content (see [`crate::sops_index`]).
    SopsData,
    /// The output of building an overlay (see [`crate::render`]).
    Rendered,
}

#[derive(Debug)]
pub struct Workspace {
    /// Repository root: paths are shown relative to it.
    pub root: PathBuf,
    pub sources: Sources,
    /// Parse results, indexed like `sources`.
    pub parsed: Vec<Parsed>,
    pub roles: Vec<Role>,
    pub kustomizations: Vec<Kustomization>,
    /// Files that were found but not parsed (kept in `sources` with what
    /// text could be recovered, so findings can point at them).
    pub unreadable: Vec<(FileId, ReadProblem)>,
    /// ConfigMaps and Secrets that kustomizations generate.
    pub generated: Vec<ConfigObject>,
    /// `.sops.yaml` and the SOPS files, decrypted once a key is given.
    pub sops: crate::sops_index::SopsState,
    /// The namespace each file's objects get from its kustomizations,
    /// computed on first use (see [`crate::netpol::Namespaces`]).
    pub namespace_setters: std::sync::OnceLock<HashMap<FileId, crate::netpol::NamespaceSetter>>,
    /// Index into `kustomizations` by directory.
    kustomization_dirs: rustc_hash::FxHashMap<PathBuf, usize>,
    /// Kustomizations (indices) that list a path under `resources:` or
    /// `components:`.
    listed_by: rustc_hash::FxHashMap<PathBuf, Vec<usize>>,
    /// Overlays built in rendered mode, one source file each.
    pub rendered: Vec<Rendered>,
    /// Overlays whose build failed, with kustomize's error.
    pub render_failures: Vec<crate::render::Build>,
    /// Source files whose objects were judged through a rendered build
    /// (origins and patches), so they are not judged a second time alone.
    pub covered: std::collections::HashSet<FileId>,
    /// What each Flux Kustomization's `spec.path` points at, by
    /// [`crate::flux::path_key`].
    pub flux_paths: std::collections::BTreeMap<String, crate::flux::PathInfo>,
    /// The services' config contracts (`contracts` in `dtlint.toml`).
    pub contracts: Vec<crate::contract::Contract>,
    /// What builds may read and how long they may run (see
    /// [`crate::render_guard`]).
    pub guard: crate::render_guard::Guard,
    /// Kustomization entries that reference what kustomize must not read
    /// (outside the repository, a device, a FIFO, a symlink loop, too big).
    pub unsafe_refs: Vec<crate::render_guard::UnsafeRef>,
}

/// One rendered overlay: its output is `file`, and `provenance[i]` tells
/// where the i-th document came from.
#[derive(Debug)]
pub struct Rendered {
    pub file: FileId,
    pub target: crate::render::Target,
    pub provenance: Vec<crate::render::Provenance>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: no such file or directory")]
    Missing { path: String },
    #[error("invalid exclude pattern `{pattern}`: {message}")]
    Exclude { pattern: String, message: String },
    #[error(transparent)]
    Contract(#[from] crate::contract::ContractError),
}

/// Is this a file dtlint reads?
pub fn is_yaml_name(name: &str) -> bool {
    let ext = std::path::Path::new(name).extension();
    ext.is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
        || name == "Kustomization"
}

fn first_invalid_utf8(bytes: &[u8]) -> Pos {
    let valid = match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        Err(e) => e.valid_up_to(),
    };
    // `valid` bytes are UTF-8 by definition, so this cannot fail.
    let prefix = std::str::from_utf8(&bytes[..valid]).unwrap_or("");
    let line = prefix.matches('\n').count() as u32 + 1;
    let col = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
    Pos {
        line,
        col,
        offset: valid as u32,
    }
}

impl Workspace {
    /// Walk `paths` (files or directories) under `root` and parse what is found.
    pub fn load(root: &Path, paths: &[PathBuf], config: &Config) -> Result<Self, LoadError> {
        use crate::timing::stage;
        let files = stage("(discover)", || discover(root, paths, config))?;
        let limit = config.max_file_size;
        // Read, index lines and parse each file in one parallel pass.
        let parse_started = std::time::Instant::now();
        let loaded: Vec<(SourceFile, Option<ReadProblem>, Parsed)> = files
            .into_par_iter()
            .map(|abs| {
                let path = display_path(root, &abs);
                match read_file(&abs, limit) {
                    Ok(text) => {
                        let f = SourceFile::new(path, abs, text);
                        let parsed = if crate::sops_index::is_data_file(&f.abs) {
                            Parsed::default()
                        } else {
                            dtlint_yaml::parse(&f.text, &f.lines, Limits::default())
                        };
                        (f, None, parsed)
                    }
                    Err((problem, recovered)) => (
                        SourceFile::new(path, abs, recovered),
                        Some(problem),
                        Parsed::default(),
                    ),
                }
            })
            .collect();
        let mut sources = Sources::default();
        sources.reserve(loaded.len());
        let mut unreadable = Vec::new();
        let mut parsed = Vec::with_capacity(loaded.len());
        for (file, problem, p) in loaded {
            let id = sources.add(file);
            if let Some(problem) = problem {
                unreadable.push((id, problem));
            }
            parsed.push(p);
        }
        crate::timing::report("(parse)", parse_started);
        let mut ws = Self {
            root: root.to_path_buf(),
            roles: vec![Role::Standalone; sources.len()],
            sources,
            parsed,
            kustomizations: Vec::new(),
            unreadable,
            generated: Vec::new(),
            sops: crate::sops_index::SopsState::default(),
            namespace_setters: std::sync::OnceLock::new(),
            kustomization_dirs: rustc_hash::FxHashMap::default(),
            listed_by: rustc_hash::FxHashMap::default(),
            rendered: Vec::new(),
            render_failures: Vec::new(),
            covered: std::collections::HashSet::new(),
            flux_paths: std::collections::BTreeMap::new(),
            contracts: Vec::new(),
            guard: crate::render_guard::Guard::new(root, &config.render, limit),
            unsafe_refs: Vec::new(),
        };
        stage("(roles)", || ws.assign_roles());
        ws.unsafe_refs = stage("(kustomize paths)", || {
            ws.guard.unsafe_refs(
                ws.kustomizations
                    .iter()
                    .map(|k| (k, ws.sources.get(k.file).abs.clone())),
                &|p| ws.known_path(p),
            )
        });
        stage("(generators)", || ws.read_generators());
        ws.flux_paths = stage("(flux paths)", || crate::flux::inspect(&ws));
        ws.contracts = stage("(contracts)", || {
            crate::contract::load(root, &config.contracts)
        })?;
        ws.sops = stage("(sops)", || crate::sops_index::SopsState::read(&ws));
        Ok(ws)
    }

    fn assign_roles(&mut self) {
        // Reading each kustomization's references is independent work.
        let files: Vec<(FileId, &SourceFile)> = self.sources.iter().collect();
        let found: Vec<Kustomization> = files
            .par_iter()
            .filter_map(|&(id, f)| {
                let name = f.abs.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if !kustomize::FILE_NAMES.contains(&name) {
                    return None;
                }
                let doc = self.parsed[id.0 as usize].documents.first()?;
                let dir = f.abs.parent().unwrap_or(Path::new(""));
                Some(Kustomization::from_node(id, dir, &doc.root))
            })
            .collect();
        for k in &found {
            self.roles[k.file.0 as usize] = Role::Kustomization;
        }
        self.kustomizations = found;
        for (id, f) in self.sources.iter() {
            if crate::sops_index::is_data_file(&f.abs) {
                self.roles[id.0 as usize] = Role::SopsData;
            }
        }
        self.kustomization_dirs = self
            .kustomizations
            .iter()
            .enumerate()
            .map(|(i, k)| (k.dir.clone(), i))
            .collect();
        let mut listed_by: rustc_hash::FxHashMap<PathBuf, Vec<usize>> =
            rustc_hash::FxHashMap::default();
        listed_by.reserve(self.kustomizations.len() * 2);
        for (i, k) in self.kustomizations.iter().enumerate() {
            for r in k
                .refs
                .iter()
                .filter(|r| matches!(r.kind, RefKind::Resource | RefKind::Component))
            {
                listed_by.entry(r.path.clone()).or_default().push(i);
            }
        }
        self.listed_by = listed_by;
        for k in &self.kustomizations {
            for r in &k.refs {
                let Some(target) = self.sources.find_abs(&r.path) else {
                    continue;
                };
                let role = match r.kind {
                    RefKind::Resource => Role::Resource,
                    RefKind::Patch => Role::Patch,
                    RefKind::GeneratorInput => Role::GeneratorInput,
                    RefKind::Component | RefKind::Other => continue,
                };
                let slot = &mut self.roles[target.0 as usize];
                // A file listed as a resource anywhere is judged as one.
                if *slot != Role::Resource && *slot != Role::Kustomization {
                    *slot = role;
                }
            }
        }
    }

    /// Record the ConfigMaps and Secrets each kustomization generates, with
    /// their keys (literals, env files, files).
    fn read_generators(&mut self) {
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

    /// Add the builds of rendered mode: each output becomes a source file
    /// whose objects carry their provenance; failed builds are kept for the
    /// `kustomize-build-failed` rule.
    pub fn add_builds(&mut self, builds: Vec<crate::render::Build>) {
        for build in builds {
            let Ok(text) = build.output.clone() else {
                self.render_failures.push(build);
                continue;
            };
            let abs = build
                .target
                .dir
                .join(format!(".dtlint-rendered-{}.yaml", build.target.env));
            let path = format!(
                "{} (rendered for {})",
                build.target.display, build.target.env
            );
            let id = self.sources.add(SourceFile::new(path, abs, text));
            let f = self.sources.get(id);
            let mut parsed = dtlint_yaml::parse(&f.text, &f.lines, Limits::default());
            let provenance = parsed
                .documents
                .iter_mut()
                .map(|d| crate::render::take_provenance(&mut d.root, &build.wrapper))
                .collect::<Vec<_>>();
            for p in &provenance {
                if let Some(o) = p.origin.as_ref().and_then(|o| self.sources.find_abs(o)) {
                    self.covered.insert(o);
                }
            }
            for k in &self.kustomizations {
                if build.inputs.contains(&self.sources.get(k.file).abs) {
                    for r in k.refs.iter().filter(|r| r.kind == RefKind::Patch) {
                        if let Some(pid) = self.sources.find_abs(&r.path) {
                            self.covered.insert(pid);
                        }
                    }
                }
            }
            self.parsed.push(parsed);
            self.roles.push(Role::Rendered);
            self.rendered.push(Rendered {
                file: id,
                target: build.target,
                provenance,
            });
        }
    }

    /// The kustomizations that list `path` (a file or a directory) under
    /// `resources:` or `components:`.
    pub fn listing(&self, path: &Path) -> impl Iterator<Item = &Kustomization> {
        self.listed_by
            .get(path)
            .into_iter()
            .flatten()
            .map(|&i| &self.kustomizations[i])
    }

    /// Is `path` a file? Answered from the files already read when it is one
    /// of them; only other paths cost a `stat`.
    pub fn is_file(&self, path: &Path) -> bool {
        self.sources.find_abs(path).is_some() || path.is_file()
    }

    /// Does `dir` hold a kustomization file?
    pub fn has_kustomization(&self, dir: &Path) -> bool {
        self.kustomization_dirs.contains_key(dir)
            || kustomize::FILE_NAMES.iter().any(|n| dir.join(n).is_file())
    }

    /// Does `path` exist, as a file or a directory?
    pub fn exists(&self, path: &Path) -> bool {
        self.sources.find_abs(path).is_some()
            || self.kustomization_dirs.contains_key(path)
            || path.exists()
    }

    /// What discovery knows of `path` without a system call: a file it
    /// read within the size limit, or a kustomization directory; both were
    /// reached through real directories from the root (see
    /// [`crate::render_guard::Known`]).
    pub fn known_path(&self, path: &Path) -> Option<crate::render_guard::Checked> {
        use crate::render_guard::Checked;
        if let Some(id) = self.sources.find_abs(path) {
            let too_large = self
                .unreadable
                .iter()
                .any(|(u, p)| *u == id && matches!(p, ReadProblem::TooLarge { .. }));
            return (!too_large).then_some(Checked::File);
        }
        self.kustomization_dirs
            .contains_key(path)
            .then_some(Checked::Dir)
    }

    /// The rendered overlay a file is the output of.
    pub fn rendered_of(&self, id: FileId) -> Option<&Rendered> {
        self.rendered.iter().find(|r| r.file == id)
    }

    pub fn role(&self, id: FileId) -> Role {
        self.roles[id.0 as usize]
    }

    pub fn parsed(&self, id: FileId) -> &Parsed {
        &self.parsed[id.0 as usize]
    }

    /// The kustomization of directory `dir`, if one was read.
    pub fn kustomization_in(&self, dir: &Path) -> Option<&Kustomization> {
        self.kustomization_dirs
            .get(dir)
            .map(|&i| &self.kustomizations[i])
    }

    /// A span at the start of a file, for file-level findings.
    pub fn file_span(&self, id: FileId) -> Span {
        self.sources.get(id).head_span()
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

/// A file's text, or why it could not be read with whatever text can be shown.
type ReadResult = Result<String, (ReadProblem, String)>;

/// Read a file, or say why not with whatever text can be shown.
fn read_file(abs: &Path, limit: u64) -> ReadResult {
    use std::io::Read as _;
    let io = |e: std::io::Error| (ReadProblem::Io(e.to_string()), String::new());
    // One open, then the size from the open file: no second path lookup.
    let file = std::fs::File::open(abs).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > limit {
        return Err((ReadProblem::TooLarge { size, limit }, String::new()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0).saturating_add(1));
    // Read no more than the limit even if the file grows meanwhile.
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err((
            ReadProblem::TooLarge {
                size: bytes.len() as u64,
                limit,
            },
            String::new(),
        ));
    }
    match String::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(e) => {
            let pos = first_invalid_utf8(e.as_bytes());
            Err((
                ReadProblem::NotUtf8 { pos },
                String::from_utf8_lossy(e.as_bytes()).into_owned(),
            ))
        }
    }
}

/// Every YAML file under `paths`, sorted, deduplicated.
pub fn discover(
    root: &Path,
    paths: &[PathBuf],
    config: &Config,
) -> Result<Vec<PathBuf>, LoadError> {
    let mut overrides = ignore::overrides::OverrideBuilder::new(root);
    for pattern in &config.exclude {
        overrides
            .add(&format!("!{pattern}"))
            .map_err(|e| LoadError::Exclude {
                pattern: pattern.clone(),
                message: e.to_string(),
            })?;
    }
    let overrides = overrides.build().map_err(|e| LoadError::Exclude {
        pattern: config.exclude.join(", "),
        message: e.to_string(),
    })?;
    let sops = crate::sops_index::Discovery::new(root);
    let mut out = Vec::new();
    for given in paths {
        // Absolute and clean once per argument: every path found under it
        // is then absolute and clean too.
        let p = &std::path::absolute(given).unwrap_or_else(|_| given.clone());
        if !p.exists() {
            return Err(LoadError::Missing {
                path: given.display().to_string(),
            });
        }
        if p.is_file() {
            // A file named on the command line is read even if excluded.
            out.push(p.clone());
            continue;
        }
        // Walked in parallel; the result is sorted below.
        let found = std::sync::Mutex::new(Vec::new());
        ignore::WalkBuilder::new(p)
            .overrides(overrides.clone())
            .hidden(true)
            .git_ignore(true)
            .git_global(false)
            .git_exclude(false)
            .require_git(false)
            .build_parallel()
            .run(|| {
                let found = &found;
                let sops = &sops;
                Box::new(move |entry| {
                    if let Ok(entry) = entry
                        && entry.file_type().is_some_and(|t| t.is_file())
                    {
                        let name = entry.file_name().to_string_lossy();
                        if (is_yaml_name(&name) || sops.wants(entry.path()))
                            && let Ok(mut v) = found.lock()
                        {
                            v.push(entry.into_path());
                        }
                    }
                    ignore::WalkState::Continue
                })
            });
        out.extend(found.into_inner().unwrap_or_default());
        // `.sops.yaml` is hidden but it is ours to check.
        let sops = p.join(".sops.yaml");
        if sops.is_file() {
            out.push(sops);
        }
    }
    // Any total order makes file ids deterministic (findings are sorted by
    // displayed path later); comparing bytes is much cheaper than comparing
    // paths component by component.
    out.sort_unstable_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
    out.dedup();
    Ok(out)
}
