//! The schema catalog: committed equal to what its vendored sources give,
//! bounded on hostile schemas, and listed by `dtlint schemas`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use dtlint::schema::build::{BuildError, Builder, MAX_DEPTH};
use dtlint::schema::{Catalog, generate};

fn schemas_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

#[test]
fn the_committed_catalog_matches_its_sources() {
    let fresh = generate::generate(&schemas_dir()).unwrap();
    let committed = std::fs::read(schemas_dir().join("catalog.json.gz")).unwrap();
    let committed = Catalog::from_gz(&committed).unwrap();
    assert!(
        generate::to_json(&fresh).unwrap() == generate::to_json(&committed).unwrap(),
        "tools/dtlint/schemas/catalog.json.gz differs from its sources: run `cargo xtask schemas`"
    );
    // Every release from 1.29 on, and Flux.
    let releases: Vec<&str> = fresh
        .kubernetes
        .iter()
        .map(|r| r.version.as_str())
        .collect();
    for v in ["1.29", "1.30", "1.31", "1.32", "1.33", "1.34", "1.35"] {
        assert!(releases.contains(&v), "{releases:?}");
    }
    assert!(
        fresh
            .crds
            .iter()
            .any(|c| c.group == "kustomize.toolkit.fluxcd.io" && c.kind == "Kustomization")
    );
}

#[test]
fn the_embedded_catalog_loads() {
    let c = Catalog::embedded().unwrap();
    let newest = c.newest().unwrap();
    assert!(c.kube_kind(newest, "apps/v1", "Deployment").is_some());
    assert!(
        c.kube_kind(newest, "policy/v1beta1", "PodDisruptionBudget")
            .is_none()
    );
    assert!(c.object_meta.is_some());
}

#[test]
fn a_malformed_source_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("kubernetes")).unwrap();
    std::fs::write(
        dir.path().join("sources.toml"),
        "removed = \"kubernetes/removed.toml\"\nenums = \"kubernetes/enums.toml\"\n\n[[kubernetes]]\nversion = \"1.33\"\nfile = \"kubernetes/v1.33.json.gz\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("kubernetes/enums.toml"), "").unwrap();
    std::fs::write(dir.path().join("kubernetes/v1.33.json.gz"), b"not gzip").unwrap();
    let e = generate::generate(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("v1.33.json.gz") && e.contains("decompress"),
        "{e}"
    );

    // A CRD file that is not YAML names the file and the line.
    std::fs::write(
        dir.path().join("sources.toml"),
        "removed = \"kubernetes/removed.toml\"\nenums = \"kubernetes/enums.toml\"\nkubernetes = []\n\n[[crds]]\nproject = \"x\"\nrelease = \"1\"\ndir = \"crds\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("crds")).unwrap();
    std::fs::write(dir.path().join("crds/bad.yaml"), "kind: [unclosed\n").unwrap();
    let e = generate::generate(dir.path()).unwrap_err().to_string();
    assert!(e.contains("bad.yaml") && e.contains("line"), "{e}");
}

#[test]
fn a_schema_nested_past_the_limit_is_refused_without_exhausting_the_stack() {
    let mut schema = serde_json::json!({"type": "string"});
    for _ in 0..(MAX_DEPTH + 50) {
        schema = serde_json::json!({"type": "object", "properties": {"a": schema}});
    }
    let crd = serde_json::json!({
        "spec": {"group": "example.com", "names": {"kind": "Deep"},
                 "versions": [{"name": "v1", "schema": {"openAPIV3Schema": schema}}]}
    });
    let got = Builder::default().add_crd(&crd, 0);
    assert!(matches!(got, Err(BuildError::TooDeep { .. })), "{got:?}");
}

#[test]
fn dtlint_schemas_lists_the_releases_and_the_crds() {
    let out = Command::new(env!("CARGO_BIN_EXE_dtlint"))
        .arg("schemas")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("Kubernetes 1.29, 1.30"), "{text}");
    assert!(
        text.contains("kustomize.toolkit.fluxcd.io/v1: Kustomization"),
        "{text}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_dtlint"))
        .args(["schemas", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kubernetes"]["releases"][0], "1.29");
    assert!(
        v["crds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["kind"] == "HelmRelease")
    );
}
