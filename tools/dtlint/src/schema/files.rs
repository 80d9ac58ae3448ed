//! CustomResourceDefinitions a repository adds to the catalog by path
//! (`schemas = ["crds/", "vendor/cert-manager.crds.yaml"]` in
//! `dtlint.toml`): read with the workspace, converted by the schema rules.

use std::io::Read as _;
use std::path::{Path, PathBuf};

/// One CRD read from a `schemas` path.
#[derive(Debug, Clone)]
pub struct SchemaFile {
    /// The file, as `dtlint.toml` names it (relative to the root).
    pub path: String,
    /// Its CustomResourceDefinitions, as JSON.
    pub crds: Vec<serde_json::Value>,
}

/// A `schemas` entry that cannot be used: said with the file.
#[derive(Debug, thiserror::Error)]
#[error("dtlint.toml: schemas: {path}: {message}")]
pub struct SchemaFileError {
    pub path: String,
    pub message: String,
}

fn is_schema_file(p: &Path) -> bool {
    p.extension()
        .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
}

/// A file's bytes, at most `limit` of them (more is an error, which
/// `limit_name` names).
pub(super) fn read_bytes(path: &Path, limit: u64, limit_name: &str) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > limit {
        return Err(format!("larger than {limit} bytes{limit_name}"));
    }
    Ok(bytes)
}

fn read_bounded(path: &Path, limit: u64) -> Result<String, String> {
    let bytes = read_bytes(path, limit, " (`max_file_size`)")?;
    String::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())
}

/// Read every CRD the entries name: a file, or every YAML/JSON file under a
/// directory. A path that does not exist, a file that does not parse, and a
/// file that holds no CRD are errors.
pub fn load(
    root: &Path,
    entries: &[String],
    limit: u64,
) -> Result<Vec<SchemaFile>, SchemaFileError> {
    let mut out = Vec::new();
    for entry in entries {
        let abs = root.join(entry);
        let fail = |message: String| SchemaFileError {
            path: entry.clone(),
            message,
        };
        let files: Vec<PathBuf> = if abs.is_dir() {
            let mut files: Vec<PathBuf> = ignore::WalkBuilder::new(&abs)
                .hidden(true)
                .require_git(false)
                .build()
                .flatten()
                .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
                .map(ignore::DirEntry::into_path)
                .filter(|p| is_schema_file(p))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(fail("a directory with no YAML or JSON file".into()));
            }
            files
        } else if abs.is_file() {
            vec![abs.clone()]
        } else {
            return Err(fail("no such file or directory".into()));
        };
        for file in files {
            let shown = file
                .strip_prefix(root)
                .unwrap_or(&file)
                .to_string_lossy()
                .into_owned();
            let text = read_bounded(&file, limit).map_err(|m| SchemaFileError {
                path: shown.clone(),
                message: m,
            })?;
            let crds = if file.extension().is_some_and(|e| e == "json") {
                let v: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| SchemaFileError {
                        path: shown.clone(),
                        message: e.to_string(),
                    })?;
                match v {
                    serde_json::Value::Array(items) => items,
                    one => vec![one],
                }
                .into_iter()
                .filter(|d| {
                    d.get("kind").and_then(serde_json::Value::as_str)
                        == Some("CustomResourceDefinition")
                })
                .collect()
            } else {
                super::generate::crd_documents(&file, &text).map_err(|e| SchemaFileError {
                    path: shown.clone(),
                    message: e.what,
                })?
            };
            if crds.is_empty() {
                return Err(SchemaFileError {
                    path: shown,
                    message: "holds no CustomResourceDefinition".into(),
                });
            }
            out.push(SchemaFile { path: shown, crds });
        }
    }
    Ok(out)
}
