//! An environment as Flux would apply it: the Flux `Kustomization`s under
//! `clusters/<env>` in `dependsOn` order, each one's path built with
//! kustomize, SOPS files decrypted first where the Kustomization asks for
//! decryption (as kustomize-controller does, with an age key).
//!
//! Decryption happens in a private copy of the repository's manifest
//! directories in the work directory (mode 0700, removed with it), never in
//! the repository. A Kustomization without `spec.decryption` is built from
//! the repository as it is, so an encrypted Secret reaching it shows up as
//! the error the cluster would report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;

use dtlint::kustomize::{normalize, relative};

use crate::manifest::{self, Object};
use crate::proc::run_checked;

const KUBECTL: &str = "kubectl";
const BUILD_TIMEOUT: Duration = Duration::from_mins(2);
/// A SOPS file larger than this is refused (they are small Secrets).
const MAX_SOPS_BYTES: u64 = 1 << 20;

/// One Flux Kustomization of the environment.
#[derive(Debug, Clone)]
pub struct FluxKustomization {
    pub name: String,
    pub path: String,
    pub depends_on: Vec<String>,
    pub decryption: bool,
    pub wait: bool,
    pub timeout: Duration,
    pub target_namespace: Option<String>,
}

/// The built objects of one Kustomization.
#[derive(Debug)]
pub struct Applied {
    pub kustomization: FluxKustomization,
    pub objects: Vec<Value>,
    /// Where each object came from, in the order of `objects`.
    pub provenance: Vec<Provenance>,
}

/// kustomize's build metadata: the file an object was read from, and the
/// kustomizations whose transformers (patches, generators) changed it.
/// Removed from the objects before anything else sees them.
pub const ORIGIN_ANNOTATION: &str = "config.kubernetes.io/origin";
pub const TRANSFORMATIONS_ANNOTATION: &str = "alpha.config.kubernetes.io/transformations";

/// Where a rendered object came from, as paths relative to the repository
/// (the files a human edits, also for SOPS files built from their
/// decrypted copy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    /// The file the object was read from (`None` for generated objects).
    pub origin: Option<PathBuf>,
    /// Kustomization files whose transformers changed the object, in the
    /// order they applied.
    pub configured_in: Vec<PathBuf>,
}

/// Parses a Go duration as Flux writes them (`5m0s`, `1h`, `30s`, `1m30s`).
pub fn go_duration(text: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    if text.is_empty() {
        return None;
    }
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = match (c, chars.peek()) {
            ('h', _) => 3600.0,
            ('m', Some('s')) => {
                chars.next();
                0.001
            }
            ('m', _) => 60.0,
            ('s', _) => 1.0,
            _ => return None,
        };
        let n: f64 = number.parse().ok()?;
        total += n * unit;
        number.clear();
    }
    if !number.is_empty() {
        return None;
    }
    Some(Duration::from_secs_f64(total))
}

/// The Flux Kustomizations `clusters/<env>` declares, in an order that
/// honours every `dependsOn` (declaration order among independent ones).
pub fn kustomizations(repo: &Path, env: &str) -> anyhow::Result<Vec<FluxKustomization>> {
    let dir = repo.join("clusters").join(env);
    if !dir.is_dir() {
        bail!(
            "{} does not exist: no environment named {env}",
            dir.display()
        );
    }
    let objects = build(&dir)?;
    let mut found = Vec::new();
    for value in &objects {
        let Some(o) = Object::new(value) else {
            continue;
        };
        if o.kind() != "Kustomization"
            || !o.api_version().starts_with("kustomize.toolkit.fluxcd.io/")
        {
            continue;
        }
        let spec = value.get("spec").cloned().unwrap_or(Value::Null);
        let name = o.name().to_owned();
        // The flux-system Kustomization applies clusters/<env> itself.
        if spec.get("path").and_then(Value::as_str).is_some_and(|p| {
            p.trim_start_matches("./").trim_end_matches('/') == format!("clusters/{env}")
        }) {
            continue;
        }
        let path = spec
            .get("path")
            .and_then(Value::as_str)
            .with_context(|| format!("Flux Kustomization {name}: spec.path is missing"))?
            .trim_start_matches("./")
            .to_owned();
        let timeout = spec
            .get("timeout")
            .and_then(Value::as_str)
            .map(|t| {
                go_duration(t).with_context(|| {
                    format!("Flux Kustomization {name}: spec.timeout {t:?} is not a duration")
                })
            })
            .transpose()?
            .unwrap_or(Duration::from_mins(5));
        found.push(FluxKustomization {
            depends_on: spec
                .get("dependsOn")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|d| d.get("name").and_then(Value::as_str))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            decryption: spec.get("decryption").is_some(),
            wait: spec.get("wait").and_then(Value::as_bool) == Some(true)
                || spec.get("healthChecks").is_some(),
            target_namespace: spec
                .get("targetNamespace")
                .and_then(Value::as_str)
                .map(str::to_owned),
            timeout,
            path,
            name,
        });
    }
    order(found)
}

/// Topological order by `dependsOn`; unknown names and cycles are errors.
fn order(items: Vec<FluxKustomization>) -> anyhow::Result<Vec<FluxKustomization>> {
    let names: BTreeSet<&str> = items.iter().map(|k| k.name.as_str()).collect();
    for k in &items {
        for d in &k.depends_on {
            if !names.contains(d.as_str()) {
                bail!(
                    "Flux Kustomization {} depends on {d}, which the environment does not declare",
                    k.name
                );
            }
        }
    }
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::with_capacity(items.len());
    let mut rest = items;
    while !rest.is_empty() {
        let before = rest.len();
        let mut next = Vec::new();
        for k in rest {
            if k.depends_on.iter().all(|d| done.contains(d)) {
                done.insert(k.name.clone());
                out.push(k);
            } else {
                next.push(k);
            }
        }
        if next.len() == before {
            let cycle: Vec<_> = next.iter().map(|k| k.name.as_str()).collect();
            bail!(
                "Flux Kustomizations depend on each other in a cycle: {}",
                cycle.join(", ")
            );
        }
        rest = next;
    }
    Ok(out)
}

/// `kubectl kustomize` of `dir`, parsed.
pub fn build(dir: &Path) -> anyhow::Result<Vec<Value>> {
    let dir_s = dir.to_string_lossy().into_owned();
    let yaml = run_checked(
        KUBECTL,
        &[
            "kustomize",
            "--load-restrictor",
            "LoadRestrictionsNone",
            &dir_s,
        ],
        BUILD_TIMEOUT,
    )?;
    manifest::parse_stream(&yaml).with_context(|| format!("the build of {dir_s}"))
}

/// `kubectl kustomize` of `dir` with kustomize's build metadata turned on
/// (through a wrapper kustomization in a scratch directory, so the output
/// is otherwise the same), parsed, each object with its [`Provenance`] and
/// the metadata annotations removed. `source_root` is the tree `dir` lives
/// in (the repository or its decrypted copy): provenance paths are made
/// relative to it.
pub fn build_traced(dir: &Path, source_root: &Path) -> anyhow::Result<Vec<(Value, Provenance)>> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("{}", dir.display()))?;
    let source_root = source_root
        .canonicalize()
        .with_context(|| format!("{}", source_root.display()))?;
    let scratch = std::env::temp_dir().join(format!(
        "dt-render-{}-{}",
        std::process::id(),
        crate::pod::random_suffix(10)
    ));
    std::fs::create_dir_all(&scratch)?;
    let result = (|| {
        let wrapper = scratch.canonicalize()?;
        let text = format!(
            "# written by local-stack: {} with kustomize's build metadata\nresources:\n  - {}\nbuildMetadata: [originAnnotations, transformerAnnotations]\n",
            dir.display(),
            relative(&wrapper, &dir).display()
        );
        std::fs::write(wrapper.join("kustomization.yaml"), text)?;
        let wrapper_s = wrapper.to_string_lossy().into_owned();
        let yaml = run_checked(
            KUBECTL,
            &[
                "kustomize",
                "--load-restrictor",
                "LoadRestrictionsNone",
                &wrapper_s,
            ],
            BUILD_TIMEOUT,
        )?;
        let objects = manifest::parse_stream(&yaml)
            .with_context(|| format!("the build of {}", dir.display()))?;
        Ok(objects
            .into_iter()
            .map(|mut v| {
                let p = take_provenance(&mut v, &wrapper, &source_root);
                (v, p)
            })
            .collect())
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// Reads and removes kustomize's build annotations of `object`; paths in
/// them are relative to `wrapper`, and are returned relative to `root`.
pub fn take_provenance(object: &mut Value, wrapper: &Path, root: &Path) -> Provenance {
    let mut prov = Provenance::default();
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return prov;
    };
    let Some(anns) = meta.get_mut("annotations").and_then(Value::as_object_mut) else {
        return prov;
    };
    let repo_path = |p: &str| {
        let abs = normalize(wrapper, p.trim());
        abs.strip_prefix(root)
            .map_or(abs.clone(), Path::to_path_buf)
    };
    if let Some(text) = anns.remove(ORIGIN_ANNOTATION) {
        for line in text.as_str().unwrap_or("").lines() {
            if let Some(p) = line.trim().strip_prefix("path:") {
                prov.origin = Some(repo_path(p));
            }
        }
    }
    if let Some(text) = anns.remove(TRANSFORMATIONS_ANNOTATION) {
        for line in text.as_str().unwrap_or("").lines() {
            if let Some(p) = line
                .trim()
                .trim_start_matches("- ")
                .strip_prefix("configuredIn:")
            {
                let path = repo_path(p);
                if !prov.configured_in.contains(&path) {
                    prov.configured_in.push(path);
                }
            }
        }
    }
    if anns.is_empty() {
        meta.remove("annotations");
    }
    prov
}

/// A private copy of the manifest directories with every SOPS file
/// decrypted; `None` when the environment needs no decryption.
#[derive(Debug)]
pub struct Decrypted {
    pub root: PathBuf,
    pub files: usize,
}

/// Copies `base`, `overlays` and `clusters` of `repo` to `into` and decrypts
/// every SOPS file there with `identities`.
pub fn decrypt_copy(
    repo: &Path,
    into: &Path,
    identities: &dtlint_sops::AgeIdentities,
) -> anyhow::Result<Decrypted> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(into)?;
    std::fs::set_permissions(into, std::fs::Permissions::from_mode(0o700))?;
    let mut files = 0;
    for top in ["base", "overlays", "clusters"] {
        copy_tree(&repo.join(top), &into.join(top), &mut |path, dest| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !name.contains(".sops.") {
                std::fs::copy(path, dest)?;
                return Ok(());
            }
            let len = std::fs::metadata(path)?.len();
            if len > MAX_SOPS_BYTES {
                bail!("{}: larger than {MAX_SOPS_BYTES} bytes", path.display());
            }
            let text = std::fs::read_to_string(path)?;
            let file = dtlint_sops::SopsFile::parse(path, &text);
            if !file.is_encrypted() {
                std::fs::copy(path, dest)?;
                return Ok(());
            }
            let plain = dtlint_sops::decrypt_to_plaintext(&file, identities)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            std::fs::write(dest, plain)?;
            files += 1;
            Ok(())
        })?;
    }
    Ok(Decrypted {
        root: into.to_owned(),
        files,
    })
}

fn copy_tree(
    from: &Path,
    to: &Path,
    file: &mut dyn FnMut(&Path, &Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if !from.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(to)?;
    let mut entries: Vec<_> = std::fs::read_dir(from)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let dest = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&path, &dest, file)?;
        } else if kind.is_file() {
            file(&path, &dest)?;
        }
        // Symlinks are not followed: nothing outside the tree is read.
    }
    Ok(())
}

/// Builds every Kustomization of `env` in order: those with decryption from
/// `decrypted`, the others from the repository as it is.
pub fn apply_all(
    repo: &Path,
    env: &str,
    decrypted: Option<&Decrypted>,
) -> anyhow::Result<Vec<Applied>> {
    let mut out = Vec::new();
    for k in kustomizations(repo, env)? {
        let root = match (k.decryption, decrypted) {
            (true, Some(d)) => d.root.clone(),
            (true, None) => bail!(
                "Flux Kustomization {} decrypts SOPS files (spec.decryption) but no age key was given: pass --age-key-file or set SOPS_AGE_KEY_FILE",
                k.name
            ),
            (false, _) => repo.to_owned(),
        };
        let (mut objects, provenance): (Vec<Value>, Vec<Provenance>) =
            build_traced(&root.join(&k.path), &root)
                .with_context(|| format!("Flux Kustomization {} (path ./{})", k.name, k.path))?
                .into_iter()
                .unzip();
        for value in &objects {
            if let Some(o) = Object::new(value)
                && value.get("sops").is_some()
            {
                bail!(
                    "Flux Kustomization {}: {} is still SOPS-encrypted after the build; the Kustomization needs spec.decryption",
                    k.name,
                    o.id("default")
                );
            }
        }
        if let Some(ns) = &k.target_namespace {
            for value in &mut objects {
                if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.insert("namespace".into(), Value::String(ns.clone()));
                }
            }
        }
        out.push(Applied {
            kustomization: k,
            objects,
            provenance,
        });
    }
    Ok(out)
}

/// Objects by kind, for a summary line.
pub fn count_kinds(objects: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for v in objects {
        if let Some(o) = Object::new(v) {
            *counts.entry(o.kind().to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("5m0s"), Some(Duration::from_mins(5)));
        assert_eq!(go_duration("1h"), Some(Duration::from_hours(1)));
        assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(go_duration("312h0m0s"), Some(Duration::from_hours(312)));
        assert_eq!(go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(go_duration("5"), None);
        assert_eq!(go_duration("5x"), None);
        assert_eq!(go_duration(""), None);
    }

    fn k(name: &str, deps: &[&str]) -> FluxKustomization {
        FluxKustomization {
            name: name.into(),
            path: String::new(),
            depends_on: deps.iter().map(|d| (*d).to_owned()).collect(),
            decryption: false,
            wait: true,
            timeout: Duration::from_secs(1),
            target_namespace: None,
        }
    }

    #[test]
    fn depends_on_order_unknown_names_and_cycles() {
        let names = |v: Vec<FluxKustomization>| v.into_iter().map(|k| k.name).collect::<Vec<_>>();
        assert_eq!(
            names(
                order(vec![
                    k("gc", &["ac"]),
                    k("ac", &["pg"]),
                    k("pg", &[]),
                    k("redis", &[])
                ])
                .unwrap()
            ),
            ["pg", "redis", "ac", "gc"]
        );
        let err = order(vec![k("gc", &["ac"])]).unwrap_err().to_string();
        assert!(
            err.contains("gc depends on ac, which the environment does not declare"),
            "{err}"
        );
        let err = order(vec![k("a", &["b"]), k("b", &["a"]), k("c", &[])])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cycle: a, b"), "{err}");
    }

    #[test]
    fn every_environment_declares_its_services_in_dependency_order() {
        for env in ["development", "staging", "production"] {
            let ks = kustomizations(&repo(), env).unwrap();
            let pos = |n: &str| {
                ks.iter()
                    .position(|k| k.name == n)
                    .unwrap_or_else(|| panic!("{env}: no Kustomization {n}"))
            };
            assert!(pos("platform") < pos("postgres"));
            assert!(pos("postgres") < pos("ac-service"));
            assert!(pos("ac-service") < pos("global-controller"));
            assert!(pos("global-controller") < pos("meeting-controller"));
            assert!(pos("meeting-controller") < pos("media-handler"));
            assert_eq!(
                ks.iter().any(|k| k.decryption),
                env != "development",
                "{env}: decryption"
            );
        }
    }

    #[test]
    fn development_builds_without_a_key_and_staging_refuses_without_one() {
        let applied = apply_all(&repo(), "development", None).unwrap();
        let all: Vec<Value> = applied.into_iter().flat_map(|a| a.objects).collect();
        let kinds = count_kinds(&all);
        // MC's and MH's endpoints, PostgreSQL's server, Linkerd's trust anchor and issuer,
        // the Gateway's.
        assert_eq!(kinds.get("Certificate"), Some(&8), "{kinds:?}");
        assert!(kinds.contains_key("Database"), "{kinds:?}");
        let err = apply_all(&repo(), "staging", None).unwrap_err().to_string();
        assert!(err.contains("no age key was given"), "{err}");
    }

    #[test]
    fn the_traced_build_is_the_plain_build_plus_where_each_object_came_from() {
        let repo = repo().canonicalize().unwrap();
        for k in kustomizations(&repo, "development").unwrap() {
            let dir = repo.join(&k.path);
            let plain = build(&dir).unwrap();
            let (traced, provenance): (Vec<Value>, Vec<Provenance>) =
                build_traced(&dir, &repo).unwrap().into_iter().unzip();
            assert_eq!(
                traced, plain,
                "{}: the metadata must leave no trace",
                k.path
            );
            for (v, p) in traced.iter().zip(&provenance) {
                let o = Object::new(v).unwrap();
                // Every object but a generated one comes from a file, and
                // every path is one of the repository's files.
                for path in p.origin.iter().chain(&p.configured_in) {
                    assert!(
                        path.is_relative(),
                        "{}: {}",
                        o.id("default"),
                        path.display()
                    );
                    assert!(
                        repo.join(path).is_file(),
                        "{}: {}",
                        o.id("default"),
                        path.display()
                    );
                }
                if o.kind() == "StatefulSet" && o.name() == "ac-service" {
                    assert_eq!(
                        p.origin.as_deref(),
                        Some(Path::new("base/ac-service/statefulset.yaml"))
                    );
                    assert!(p.configured_in.contains(&PathBuf::from(
                        "overlays/development/ac-service/kustomization.yaml"
                    )));
                }
            }
        }
    }
}
