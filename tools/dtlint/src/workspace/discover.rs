//! Discover and read: which files under the given paths dtlint reads
//! (YAML, Terraform, and the non-YAML files SOPS covers), and their text
//! within the size limit.

use std::path::{Path, PathBuf};

use dtlint_sops::{SopsConfig, SopsFile};
use dtlint_yaml::Pos;

use super::{LoadError, ReadProblem};
use crate::config::Config;

/// Is this a file dtlint reads?
pub fn is_yaml_name(name: &str) -> bool {
    let ext = std::path::Path::new(name).extension();
    ext.is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
        || name == "Kustomization"
}

/// A JSON file: read as YAML (JSON is YAML) when it holds a manifest.
pub fn is_json_name(name: &str) -> bool {
    std::path::Path::new(name)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
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

/// A file's text, or why it could not be read with whatever text can be shown.
type ReadResult = Result<String, (ReadProblem, String)>;

/// Read a file, or say why not with whatever text can be shown.
pub(super) fn read_file(abs: &Path, limit: u64) -> ReadResult {
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
    let sops = Discovery::new(root);
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
                        if (is_yaml_name(&name)
                            || is_json_name(&name)
                            || crate::terraform::is_terraform_name(&name)
                            || sops.wants(entry.path()))
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

/// The name of sops's configuration file.
pub const CONFIG_NAME: &str = ".sops.yaml";

/// Which non-YAML files discovery reads for their SOPS content.
#[derive(Debug, Default)]
pub struct Discovery {
    config: Option<SopsConfig>,
}

impl Discovery {
    /// Read `root/.sops.yaml`, if there is one (a broken one is reported
    /// later, from the parsed source).
    pub fn new(root: &Path) -> Self {
        let path = root.join(CONFIG_NAME);
        let path = std::path::absolute(&path).unwrap_or(path);
        let config = path
            .is_file()
            .then(|| SopsConfig::load(&path).ok())
            .flatten();
        Self { config }
    }

    /// Should a file that is not YAML be read? Yes when a creation rule
    /// covers it, or when it is a dotenv or JSON file that carries sops
    /// metadata (an encrypted file no rule covers is a finding).
    pub fn wants(&self, abs: &Path) -> bool {
        if self
            .config
            .as_ref()
            .is_some_and(|c| c.rule_for(abs).is_some())
        {
            return true;
        }
        let ext = abs
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if !matches!(ext.as_deref(), Some("env" | "json")) {
            return false;
        }
        // Encrypted files are small; anything big is not ours.
        if std::fs::metadata(abs).map_or(true, |m| m.len() > 4 * 1024 * 1024) {
            return false;
        }
        let Ok(text) = std::fs::read_to_string(abs) else {
            return false;
        };
        text.contains("sops") && SopsFile::parse(abs, &text).is_encrypted()
    }
}

/// True for files read only for their SOPS content: everything discovery
/// returns that is not a YAML file.
pub fn is_data_file(abs: &Path) -> bool {
    let name = abs.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !is_yaml_name(name) && !is_json_name(name) && !crate::terraform::is_terraform_name(name)
}

/// A directory that is a project of its own, outside any repository: it has
/// a kustomization or a `.sops.yaml`, subdirectories, or several manifests.
/// A directory holding one manifest is that manifest, judged alone.
pub fn is_project(dir: &Path) -> bool {
    if !dir.is_dir() {
        return false;
    }
    if crate::kustomize::FILE_NAMES
        .iter()
        .chain(&[".sops.yaml"])
        .any(|n| dir.join(n).is_file())
    {
        return true;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut manifests = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        match e.file_type() {
            Ok(t) if t.is_dir() => return true,
            Ok(t) if t.is_file() && is_yaml_name(&name) => manifests += 1,
            _ => {}
        }
        if manifests > 1 {
            return true;
        }
    }
    false
}

/// The repository around `start`: the nearest directory with `dtlint.toml`
/// or `.git`.
pub fn find_repository(start: &Path) -> Option<std::path::PathBuf> {
    start
        .ancestors()
        .find(|d| d.join(crate::config::FILE_NAME).is_file() || d.join(".git").exists())
        .map(Path::to_path_buf)
}
