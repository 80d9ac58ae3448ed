//! The Flux objects of the rule fixtures are realistic: every passing
//! fixture validates against the Flux CRD schemas, and the failing fixtures
//! of the rules that mirror a schema constraint (required fields, duration
//! format) are rejected by it too. The schemas are only read here; dtlint
//! itself never needs them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use manifest_tests::flux;

type Validators = BTreeMap<(String, String), jsonschema::Validator>;

fn validators() -> Option<Validators> {
    let dir = flux::schema_dir(&manifest_tests::repo_root());
    if !dir.is_dir() {
        println!(
            "skipping: no Flux CRD schemas at {} (set DT_FLUX_CRDS_DIR)",
            dir.display()
        );
        return None;
    }
    let schemas = flux::load(&dir).unwrap();
    Some(
        schemas
            .by_type
            .iter()
            .map(|(k, s)| (k.clone(), jsonschema::draft7::new(s).unwrap()))
            .collect(),
    )
}

fn fixture_dirs(kind: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("flux-") || n == "helm-chart-unpinned")
        .map(|n| root.join(n).join(kind))
        .collect();
    out.sort();
    out
}

/// Schema errors of every Flux object under `dir`, with how many were checked.
fn errors(dir: &Path, v: &Validators) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut out = Vec::new();
    for file in manifest_tests::yaml_files(dir).unwrap() {
        if file.to_string_lossy().contains(".sops.") {
            continue;
        }
        for doc in manifest_tests::load_yaml(&file).unwrap() {
            let Some(api) = doc.str_at(&["apiVersion"]) else {
                continue;
            };
            if !flux::is_flux(api) {
                continue;
            }
            let kind = doc.str_at(&["kind"]).unwrap_or_default();
            let validator = v
                .get(&(api.to_owned(), kind.to_owned()))
                .unwrap_or_else(|| panic!("{}: no schema for {api} {kind}", file.display()));
            checked += 1;
            for e in validator.iter_errors(&doc.to_json()) {
                out.push(format!(
                    "{}: {} {e}",
                    file.display(),
                    e.instance_path().as_str()
                ));
            }
        }
    }
    (checked, out)
}

#[test]
fn passing_fixtures_validate_against_the_flux_crds() {
    let Some(v) = validators() else { return };
    let mut total = 0;
    for dir in fixture_dirs("pass") {
        let (n, errs) = errors(&dir, &v);
        assert!(errs.is_empty(), "{errs:#?}");
        assert!(n > 0, "{}: no Flux object", dir.display());
        total += n;
    }
    assert!(total >= 14, "only {total} Flux objects");
}

#[test]
fn the_schemas_reject_what_the_schema_mirroring_rules_reject() {
    let Some(v) = validators() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for rule in ["flux-interval-format", "flux-required-fields"] {
        let (_, errs) = errors(&root.join(rule).join("fail"), &v);
        assert!(
            !errs.is_empty(),
            "{rule}: the CRDs accept the failing fixture"
        );
    }
    let (_, errs) = errors(&root.join("flux-interval-format/fail"), &v);
    assert!(errs.iter().any(|e| e.contains("10 minutes")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("\"1d\"")), "{errs:#?}");
}
