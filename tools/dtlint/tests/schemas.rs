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
        .args(["schemas", "list"])
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
        .args(["schemas", "list", "--json"])
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

fn check(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dtlint"))
        .current_dir(dir)
        .arg("check")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const WIDGET_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: integer}
";

#[test]
fn crds_listed_in_the_configuration_are_validated_against() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("vendor/crds")).unwrap();
    std::fs::create_dir_all(root.join("apps")).unwrap();
    std::fs::write(root.join("vendor/crds/widget.yaml"), WIDGET_CRD).unwrap();
    std::fs::write(
        root.join("apps/w.yaml"),
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  sise: 3\n",
    )
    .unwrap();
    std::fs::write(
        root.join("dtlint.toml"),
        "exclude = [\"vendor/**\"]\nschemas = [\"vendor/crds\"]\n",
    )
    .unwrap();
    let (code, _, stderr) = check(
        root,
        &[
            "--only",
            "schema-invalid,schema-unknown-kind",
            "--format",
            "json",
        ],
    );
    let (code2, stdout, _) = check(
        root,
        &[
            "--only",
            "schema-invalid,schema-unknown-kind",
            "--format",
            "json",
        ],
    );
    assert_eq!((code, code2), (1, 1), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let f = &v["findings"][0];
    assert_eq!(f["rule"], "schema-invalid", "{v:#}");
    assert_eq!(f["location"]["file"], "apps/w.yaml");
    assert_eq!(f["location"]["line"], 6);
    assert!(f["message"].as_str().unwrap().contains("spec.sise"), "{f}");

    // Without the listing the kind is unknown, said once.
    std::fs::write(root.join("dtlint.toml"), "exclude = [\"vendor/**\"]\n").unwrap();
    let (_, stdout, _) = check(
        root,
        &[
            "--only",
            "schema-invalid,schema-unknown-kind",
            "--format",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let rules: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["schema-unknown-kind"]);

    // A listed path that does not exist is an error of the configuration.
    std::fs::write(root.join("dtlint.toml"), "schemas = [\"vendor/nope\"]\n").unwrap();
    let (code, _, stderr) = check(root, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("schemas: vendor/nope: no such file or directory"),
        "{stderr}"
    );
}

#[test]
fn a_kubernetes_version_that_is_no_release_is_a_positioned_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dtlint.toml"),
        "# clusters\nkubernetes-version = \"v1.33.2\"\n",
    )
    .unwrap();
    let (code, _, stderr) = check(dir.path(), &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("dtlint.toml:2:") && stderr.contains("\"1.33\""),
        "{stderr}"
    );
}

#[test]
fn the_release_configured_per_environment_decides() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("old")).unwrap();
    std::fs::write(
        root.join("old/flow.yaml"),
        "apiVersion: flowcontrol.apiserver.k8s.io/v1beta3\nkind: FlowSchema\nmetadata:\n  name: f\nspec:\n  priorityLevelConfiguration:\n    name: exempt\n",
    )
    .unwrap();
    // 1.31 still serves v1beta3 (a warning: 1.32 removes it); 1.33 does not.
    for (version, rule) in [("1.31", "api-deprecated"), ("1.33", "api-removed")] {
        std::fs::write(
            root.join("dtlint.toml"),
            format!("kubernetes-version = \"{version}\"\n"),
        )
        .unwrap();
        let (_, stdout, _) = check(
            root,
            &["--only", "api-removed,api-deprecated", "--format", "json"],
        );
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(v["findings"][0]["rule"], rule, "{version}: {v:#}");
        assert_eq!(v["findings"].as_array().unwrap().len(), 1);
    }
}

#[test]
fn crd_validation_rules_are_evaluated_and_the_unevaluable_ones_named_in_verbose() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let crd = WIDGET_CRD.replace(
        "              properties:\n                size: {type: integer}\n",
        "              properties:\n                size: {type: integer}\n              x-kubernetes-validations:\n                - rule: self.size <= 10\n                  message: size is at most 10\n                - rule: self == oldSelf\n                  message: immutable\n",
    );
    std::fs::write(root.join("dtlint.toml"), "").unwrap();
    std::fs::write(root.join("crd.yaml"), crd).unwrap();
    std::fs::write(
        root.join("w.yaml"),
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  size: 11\n",
    )
    .unwrap();
    let (code, stdout, stderr) = check(
        root,
        &["--only", "schema-invalid", "--verbose", "--format", "json"],
    );
    assert_eq!(code, 1, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let f = &v["findings"][0];
    assert_eq!(v["findings"].as_array().unwrap().len(), 1, "{v:#}");
    assert_eq!(
        (
            f["location"]["file"].as_str(),
            f["location"]["line"].as_u64()
        ),
        (Some("w.yaml"), Some(5))
    );
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("size is at most 10"),
        "{f}"
    );
    assert!(
        stderr.contains("not checked (1×): CEL validation rule not evaluated: a transition rule"),
        "{stderr}"
    );
    // Without --verbose, no word about it.
    let (_, _, stderr) = check(root, &["--only", "schema-invalid"]);
    assert!(!stderr.contains("CEL"), "{stderr}");
}
