//! The catalog from its vendored sources (`tools/dtlint/schemas/`), for
//! `cargo xtask schemas` and the test that keeps the committed catalog equal
//! to what its sources give.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::build::Builder;
use super::{Catalog, RemovedApi, SourceInfo};

/// Largest source file read (the biggest CRD files are a few MB).
const MAX_SOURCE: u64 = 32 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sources {
    kubernetes: Vec<KubeSource>,
    removed: String,
    enums: String,
    #[serde(default)]
    crds: Vec<CrdSource>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KubeSource {
    version: String,
    file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CrdSource {
    project: String,
    release: String,
    dir: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemovedFile {
    api: Vec<RemovedEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RemovedEntry {
    api_version: String,
    kinds: Vec<String>,
    deprecated: String,
    removed: String,
    #[serde(default)]
    replacement: Option<String>,
}

/// A source that cannot be read or converted, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {what}", path.display())]
pub struct GenerateError {
    pub path: PathBuf,
    pub what: String,
}

fn err(path: &Path, what: impl std::fmt::Display) -> GenerateError {
    GenerateError {
        path: path.to_path_buf(),
        what: what.to_string(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, GenerateError> {
    super::files::read_bytes(path, MAX_SOURCE, "").map_err(|e| err(path, e))
}

fn read_gz(path: &Path) -> Result<Vec<u8>, GenerateError> {
    let packed = read(path)?;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(packed.as_slice())
        .take(MAX_SOURCE + 1)
        .read_to_end(&mut out)
        .map_err(|e| err(path, format!("does not decompress: {e}")))?;
    if out.len() as u64 > MAX_SOURCE {
        return Err(err(
            path,
            format!("decompresses to more than {MAX_SOURCE} bytes"),
        ));
    }
    Ok(out)
}

fn read_text(path: &Path) -> Result<String, GenerateError> {
    String::from_utf8(read(path)?).map_err(|_| err(path, "is not UTF-8"))
}

/// Every CRD document of a YAML stream, as JSON.
pub fn crd_documents(path: &Path, text: &str) -> Result<Vec<serde_json::Value>, GenerateError> {
    let lines = dtlint_yaml::LineIndex::new(text);
    let parsed = dtlint_yaml::parse(text, &lines, dtlint_yaml::Limits::default());
    if let Some(p) = parsed
        .problems
        .iter()
        .find(|p| p.kind != dtlint_yaml::ProblemKind::DuplicateKey)
    {
        return Err(err(
            path,
            format!("line {}: {}", p.span.start.line, p.message),
        ));
    }
    Ok(parsed
        .documents
        .iter()
        .filter(|d| {
            d.root.get("kind").and_then(dtlint_yaml::Node::as_str)
                == Some("CustomResourceDefinition")
        })
        .map(|d| d.root.to_json())
        .collect())
}

/// `enums.toml`: definition → property (`name[]` for a list's items) → values.
type Enums = std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<String>>>;

/// Write the enums of `enums.toml` into one release's definitions; returns
/// the `(definition, property)` pairs it found.
fn apply_enums(defs: &mut serde_json::Value, enums: &Enums) -> Vec<(String, String)> {
    let mut applied = Vec::new();
    let Some(table) = defs
        .get_mut("$defs")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return applied;
    };
    for (def, props) in enums {
        for (prop, values) in props {
            let (name, items) = match prop.strip_suffix("[]") {
                Some(n) => (n, true),
                None => (prop.as_str(), false),
            };
            let mut target = table
                .get_mut(def)
                .and_then(|d| d.pointer_mut(&format!("/properties/{name}")));
            if items {
                target = target.and_then(|t| t.get_mut("items"));
            }
            if let Some(serde_json::Value::Object(o)) = target {
                o.insert(
                    "enum".into(),
                    serde_json::Value::Array(
                        values
                            .iter()
                            .map(|v| serde_json::Value::String(v.clone()))
                            .collect(),
                    ),
                );
                applied.push((def.clone(), prop.clone()));
            }
        }
    }
    applied
}

/// Build the catalog from the sources listed in `dir/sources.toml`.
pub fn generate(dir: &Path) -> Result<Catalog, GenerateError> {
    let manifest = dir.join("sources.toml");
    let sources: Sources = toml::from_str(&read_text(&manifest)?).map_err(|e| err(&manifest, e))?;
    let enums_path = dir.join(&sources.enums);
    let enums: Enums = toml::from_str(&read_text(&enums_path)?).map_err(|e| err(&enums_path, e))?;
    let mut b = Builder::default();
    let mut infos = Vec::new();
    let mut releases = Vec::new();
    let mut applied = std::collections::BTreeSet::new();
    for k in &sources.kubernetes {
        let path = dir.join(&k.file);
        let mut defs: serde_json::Value =
            serde_json::from_slice(&read_gz(&path)?).map_err(|e| err(&path, e))?;
        applied.extend(apply_enums(&mut defs, &enums));
        releases.push(
            b.add_release(&k.version, &defs)
                .map_err(|e| err(&path, e))?,
        );
    }
    for (def, props) in &enums {
        if let Some(p) = props
            .keys()
            .find(|p| !applied.contains(&(def.clone(), (*p).clone())))
        {
            return Err(err(
                &enums_path,
                format!("`{def}` has no string property `{p}` in any release"),
            ));
        }
    }
    if let (Some(first), Some(last)) = (sources.kubernetes.first(), sources.kubernetes.last()) {
        infos.push(SourceInfo {
            project: "kubernetes".into(),
            release: format!("{} to {}", first.version, last.version),
        });
    }
    let mut crds = Vec::new();
    for c in &sources.crds {
        let source = infos.len() as u32;
        infos.push(SourceInfo {
            project: c.project.clone(),
            release: c.release.clone(),
        });
        let cdir = dir.join(&c.dir);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&cdir)
            .map_err(|e| err(&cdir, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(err(&cdir, "holds no CRD file"));
        }
        for path in files {
            let docs = crd_documents(&path, &read_text(&path)?)?;
            if docs.is_empty() {
                return Err(err(&path, "holds no CustomResourceDefinition"));
            }
            for d in &docs {
                crds.extend(b.add_crd(d, source).map_err(|e| err(&path, e))?);
            }
        }
    }
    let removed_path = dir.join(&sources.removed);
    let removed_file: RemovedFile =
        toml::from_str(&read_text(&removed_path)?).map_err(|e| err(&removed_path, e))?;
    let removed = removed_file
        .api
        .into_iter()
        .flat_map(|e| {
            e.kinds.into_iter().map(move |kind| RemovedApi {
                api_version: e.api_version.clone(),
                kind,
                removed: e.removed.clone(),
                deprecated: e.deprecated.clone(),
                replacement: e.replacement.clone(),
            })
        })
        .collect();
    Ok(b.into_catalog(releases, crds, infos, removed))
}

/// The catalog as the committed file holds it (before compression).
pub fn to_json(c: &Catalog) -> Result<String, serde_json::Error> {
    serde_json::to_string(c)
}

/// Compress the catalog's JSON the way the committed file is written.
pub fn compress(json: &str) -> std::io::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    enc.write_all(json.as_bytes())?;
    enc.finish()
}
