//! Discover and parse: from paths on disk to documents with spans.
//!
//! `Workspace::load` walks the given paths (respecting `.gitignore` and the
//! config's `exclude`), reads every YAML file and `Kustomization`, parses
//! them in parallel, and records what each kustomization references so every
//! file gets a role. Nothing here decides what is a finding: problems found
//! while reading (bad UTF-8, a file too large, YAML errors) are kept for the
//! rules that report them.

use std::path::{Path, PathBuf};

use dtlint_yaml::{Limits, Parsed, Pos, Span};
use rayon::prelude::*;

use crate::config::Config;
use crate::kustomize::{self, Kustomization, RefKind};
pub mod discover;
pub mod generators;
pub mod paths;
pub mod templates;

use crate::source::{FileId, SourceFile, Sources, display_path};
pub use discover::{discover, find_repository, is_project, is_yaml_name};
use discover::{is_data_file, read_file};

/// Is this a Terraform file?
fn is_terraform(abs: &Path) -> bool {
    abs.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(crate::terraform::is_terraform_name)
}
pub use generators::{ConfigKind, ConfigObject, env_file_keys};
pub use paths::{PathFacts, PathKind};

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
    /// A non-YAML file read only for its SOPS content (see `sops_index`).
    SopsData,
    /// The output of building an overlay (see `render`).
    Rendered,
    /// A Terraform file (`*.tf`), read for its node pools (see `terraform`).
    Terraform,
}

#[derive(Debug)]
pub struct Workspace {
    /// Repository root: paths are shown relative to it.
    pub root: PathBuf,
    pub sources: Sources,
    /// Parse results, indexed like `sources`.
    pub parsed: Vec<Parsed>,
    pub roles: Vec<Role>,
    /// Template files (see [`templates`]): their objects count as declared,
    /// but no finding points into them.
    pub templates: rustc_hash::FxHashSet<FileId>,
    pub kustomizations: Vec<Kustomization>,
    /// Files that were found but not parsed (kept in `sources` with what
    /// text could be recovered, so findings can point at them).
    pub unreadable: Vec<(FileId, ReadProblem)>,
    /// ConfigMaps and Secrets that kustomizations generate.
    pub generated: Vec<ConfigObject>,
    /// Index into `kustomizations` by directory.
    kustomization_dirs: crate::pathmap::PathMap<usize>,
    /// Kustomizations (indices) that list a path under `resources:` or
    /// `components:`.
    /// Which kustomizations list a path under `resources:`/`components:`:
    /// built on first use (few rules ask).
    listed_by: std::sync::OnceLock<crate::pathmap::PathMap<Vec<usize>>>,
    /// The services' config contracts (`contracts` in `dtlint.toml`).
    pub contracts: Vec<crate::contract::Contract>,
    /// CRDs added to the schema catalog (`schemas` in `dtlint.toml`).
    pub schema_files: Vec<crate::schema::files::SchemaFile>,
    /// What builds may read and how long they may run (see
    /// [`crate::render_guard`]).
    pub guard: crate::render_guard::Guard,
    /// Kustomization entries that reference what kustomize must not read
    /// (outside the repository, a device, a FIFO, a symlink loop, too big).
    pub unsafe_refs: Vec<crate::render_guard::UnsafeRef>,
    /// What the paths the rules ask about are (see [`paths`]).
    pub paths: PathFacts,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: no such file or directory")]
    Missing { path: String },
    #[error("invalid exclude pattern `{pattern}`: {message}")]
    Exclude { pattern: String, message: String },
    #[error(transparent)]
    Contract(#[from] crate::contract::ContractError),
    #[error(transparent)]
    Schema(#[from] crate::schema::files::SchemaFileError),
}

/// Files' text held by an editor, by absolute path (see
/// [`Workspace::load_with`]).
pub type Buffers = std::collections::HashMap<PathBuf, String>;

impl Workspace {
    /// Walk `paths` (files or directories) under `root` and parse what is found.
    pub fn load(root: &Path, paths: &[PathBuf], config: &Config) -> Result<Self, LoadError> {
        Self::load_with(root, paths, config, &Buffers::default())
    }

    /// [`Workspace::load`], reading the files in `buffers` (an editor's
    /// unsaved text, by absolute path) from there instead of the disk.
    pub fn load_with(
        root: &Path,
        paths: &[PathBuf],
        config: &Config,
        buffers: &Buffers,
    ) -> Result<Self, LoadError> {
        use crate::timing::stage;
        let files = stage("(discover)", || discover(root, paths, config))?;
        let limit = config.max_file_size;
        // Read, index lines and parse each file in one parallel pass.
        let parse_started = std::time::Instant::now();
        let skip_templates = config.templates == crate::config::Templates::Skip;
        let loaded: Vec<(SourceFile, Option<ReadProblem>, Parsed, bool)> = files
            .into_par_iter()
            .filter_map(|abs| {
                let path = display_path(root, &abs);
                let read = match buffers.get(&abs) {
                    Some(text) => Ok(text.clone()),
                    None => read_file(&abs, limit),
                };
                Some(match read {
                    Ok(text) => {
                        // JSON is read when it is a manifest, not for every
                        // package.json or dashboard.
                        let bytes = abs.as_os_str().as_encoded_bytes();
                        let json = bytes.len() > 5
                            && bytes[bytes.len() - 5..].eq_ignore_ascii_case(b".json");
                        let manifest = text.contains("\"apiVersion\"") && text.contains("\"kind\"");
                        // A chart's values schema is read for its HelmReleases.
                        let values_schema = bytes.ends_with(b"/values.schema.json");
                        if json && !manifest && !values_schema && !text.contains("\"sops\"") {
                            return None;
                        }
                        let f = SourceFile::new(path, abs, text);
                        let parsed = if is_data_file(&f.abs) || is_terraform(&f.abs) {
                            Parsed::default()
                        } else {
                            dtlint_yaml::parse(&f.text, &f.lines, Limits::default())
                        };
                        let template =
                            skip_templates && templates::is_template(&f.abs, &f.text, &parsed);
                        (f, None, parsed, template)
                    }
                    Err((problem, recovered)) => (
                        SourceFile::new(path, abs, recovered),
                        Some(problem),
                        Parsed::default(),
                        false,
                    ),
                })
            })
            .collect();
        let mut sources = Sources::default();
        sources.reserve(loaded.len());
        let mut unreadable = Vec::new();
        let mut parsed = Vec::with_capacity(loaded.len());
        let mut template_files = rustc_hash::FxHashSet::default();
        for (file, problem, p, template) in loaded {
            let id = sources.add(file);
            if let Some(problem) = problem {
                unreadable.push((id, problem));
            }
            if template {
                template_files.insert(id);
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
            kustomization_dirs: crate::pathmap::PathMap::default(),
            listed_by: std::sync::OnceLock::new(),
            contracts: Vec::new(),
            schema_files: Vec::new(),
            guard: crate::render_guard::Guard::new(root, &config.render, limit),
            paths: PathFacts::default(),
            unsafe_refs: Vec::new(),
            templates: template_files,
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
        ws.paths = stage("(path facts)", || ws.find_path_facts(config));
        ws.contracts = stage("(contracts)", || {
            crate::contract::load(root, &config.contracts())
        })?;
        ws.schema_files = stage("(schemas)", || {
            crate::schema::files::load(root, &config.schemas, limit)
        })?;
        Ok(ws)
    }

    fn assign_roles(&mut self) {
        // Each file's role by its name, and each kustomization's
        // references: independent work per file.
        let files: Vec<(FileId, &SourceFile)> = self.sources.iter().collect();
        let per_file: Vec<(Role, Option<Kustomization>)> = files
            .par_iter()
            .map(|&(id, f)| {
                let name = f.abs.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if kustomize::FILE_NAMES.contains(&name)
                    && let Some(doc) = self.parsed[id.0 as usize].documents.first()
                {
                    let dir = f.abs.parent().unwrap_or(Path::new(""));
                    return (
                        Role::Kustomization,
                        Some(Kustomization::from_node(id, dir, &doc.root)),
                    );
                }
                let role = if crate::terraform::is_terraform_name(name) {
                    Role::Terraform
                } else if discover::is_yaml_name(name) {
                    Role::Standalone
                } else {
                    Role::SopsData
                };
                (role, None)
            })
            .collect();
        let mut found = Vec::new();
        for (slot, (role, k)) in self.roles.iter_mut().zip(per_file) {
            *slot = role;
            found.extend(k);
        }
        self.kustomizations = found;
        self.kustomization_dirs = self
            .kustomizations
            .iter()
            .enumerate()
            .map(|(i, k)| (k.dir.as_path(), i))
            .collect();
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

    /// Add a file made by a later stage (an overlay's rendered output), so
    /// findings can point into it like into any other file.
    pub fn add_file(&mut self, file: SourceFile, parsed: Parsed, role: Role) -> FileId {
        let id = self.sources.add(file);
        self.parsed.push(parsed);
        self.roles.push(role);
        id
    }

    /// The kustomizations that list `path` (a file or a directory) under
    /// `resources:` or `components:`.
    pub fn listing(&self, path: &Path) -> impl Iterator<Item = &Kustomization> {
        self.listed_by
            .get_or_init(|| {
                let mut listed_by: crate::pathmap::PathMap<Vec<usize>> =
                    crate::pathmap::PathMap::default();
                for (i, k) in self.kustomizations.iter().enumerate() {
                    for r in k
                        .refs
                        .iter()
                        .filter(|r| matches!(r.kind, RefKind::Resource | RefKind::Component))
                    {
                        listed_by.get_or_insert_with(&r.path, Vec::new).push(i);
                    }
                }
                listed_by
            })
            .get(path)
            .into_iter()
            .flatten()
            .map(|&i| &self.kustomizations[i])
    }

    /// Is `path` a file? Answered from the files read and the path facts
    /// found while discovering: no system call.
    pub fn is_file(&self, path: &Path) -> bool {
        self.sources.find_abs(path).is_some() || self.paths.get(path) == Some(PathKind::File)
    }

    /// Is `path` a directory (from the path facts)?
    pub fn is_dir(&self, path: &Path) -> bool {
        self.kustomization_dirs.contains_key(path) || self.paths.get(path) == Some(PathKind::Dir)
    }

    /// Does `dir` hold a kustomization file?
    pub fn has_kustomization(&self, dir: &Path) -> bool {
        self.kustomization_dirs.contains_key(dir)
            || kustomize::FILE_NAMES
                .iter()
                .any(|n| self.is_file(&dir.join(n)))
    }

    /// Does `path` exist, as a file or a directory?
    pub fn exists(&self, path: &Path) -> bool {
        self.is_file(path) || self.is_dir(path) || self.paths.get(path) == Some(PathKind::Other)
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

    pub fn role(&self, id: FileId) -> Role {
        self.roles[id.0 as usize]
    }

    pub fn parsed(&self, id: FileId) -> &Parsed {
        &self.parsed[id.0 as usize]
    }

    /// The document of file `id` that declares the object `name` (a missing
    /// name reads as empty), of `kind` when one is given.
    pub fn document_named(
        &self,
        id: FileId,
        kind: Option<&str>,
        name: &str,
    ) -> Option<&dtlint_yaml::Document> {
        self.parsed(id).documents.iter().find(|d| {
            kind.is_none_or(|k| d.root.str_at(&["kind"]) == Some(k))
                && d.root.str_at(&["metadata", "name"]).unwrap_or("") == name
        })
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
