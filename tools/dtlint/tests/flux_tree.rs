//! `dtlint check` with no configuration at the root of a repository laid out
//! like the large home-lab Flux repositories: no `clusters/` directory, a
//! flux-operator `FluxInstance` (here the `flux-instance` chart's values)
//! syncing `kubernetes/flux/cluster`, a parent Kustomization whose
//! `spec.patches` give every child a `postBuild.substituteFrom`, app paths
//! without a `kustomization.yaml`, components relative to the path, and
//! `${VAR}` placeholders. Rendered the way kustomize-controller renders,
//! level by level, with real `kubectl kustomize` builds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

mod support;

fn fixture() -> tempfile::TempDir {
    support::fixture("_flux-tree")
}

fn check(root: &Path, extra: &[&str]) -> (i32, String, String) {
    support::check_in(root, extra)
}

#[test]
fn a_flux_operator_repository_is_rendered_level_by_level() {
    let dir = fixture();
    let (code, stdout, stderr) = check(dir.path(), &[]);
    insta::assert_snapshot!(format!(
        "exit code: {code}\n--- stdout\n{stdout}--- stderr\n{stderr}"
    ));
    let left: Vec<_> = walkdir(dir.path())
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(".dtlint") || name.starts_with("wrap-") || name == "dtlint.toml"
        })
        .collect();
    assert!(left.is_empty(), "left in the repository: {left:?}");
}

#[test]
fn without_rendering_placeholders_are_not_judged() {
    // Source mode: `${ECHO_CHART_VERSION}` is no version, but nothing says
    // what it becomes; neither the chart rule nor the substitution rules
    // speak.
    let dir = fixture();
    let (code, stdout, _) = check(dir.path(), &["--no-render"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(!stdout.contains("helm-chart-unpinned"), "{stdout}");
}

#[test]
fn a_kustomization_cycle_ends() {
    // `a` applies `./loop`, whose Kustomization `b` applies the cluster
    // directory again, which holds `a`: each is built once.
    let dir = fixture();
    let root = dir.path();
    std::fs::create_dir_all(root.join("kubernetes/loop")).unwrap();
    let ks = |name: &str, path: &str| {
        format!(
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\n  namespace: flux-system\nspec:\n  interval: 1h\n  path: {path}\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n"
        )
    };
    std::fs::write(
        root.join("kubernetes/flux/cluster/a.yaml"),
        ks("a", "./kubernetes/loop"),
    )
    .unwrap();
    std::fs::write(
        root.join("kubernetes/loop/b.yaml"),
        ks("b", "./kubernetes/flux/cluster"),
    )
    .unwrap();
    let (_, stdout, stderr) = check(root, &[]);
    // cluster-apps and a; below them flux-instance, echo, podinfo and b.
    // `b` builds the cluster directory once; what that holds (`a`,
    // `cluster-apps`) was built already and is not built again.
    assert!(stderr.contains("6 overlay build(s)"), "{stderr}\n{stdout}");
    // The circle is one finding, at `b`'s spec.path, naming it.
    let cycle: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("error[flux-kustomization-cycle]"))
        .collect();
    assert_eq!(cycle.len(), 1, "{stdout}");
    assert!(
        cycle[0].contains("Kustomization flux-system/b applies Kustomization flux-system/a again: flux-system/a → flux-system/b → flux-system/a"),
        "{stdout}"
    );
    assert!(stdout.contains("--> kubernetes/loop/b.yaml:8:"), "{stdout}");
}

#[test]
fn a_variable_from_an_encrypted_secret_is_not_reported() {
    // The value is unreadable, but the name is there: nothing to say.
    let dir = fixture();
    let root = dir.path();
    std::fs::write(
        root.join("kubernetes/flux/cluster/secret.sops.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: cluster-secrets\n  namespace: default\nstringData:\n  BACKUP_SCHEDULE: ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAA,type:str]\nsops:\n  age: []\n  lastmodified: \"2026-01-01T00:00:00Z\"\n  mac: ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAA,type:str]\n  version: 3.9.0\n",
    )
    .unwrap();
    support::plant(
        root,
        "kubernetes/flux/cluster/ks.yaml",
        "                name: cluster-settings\n",
        "                name: cluster-settings\n              - kind: Secret\n                name: cluster-secrets\n",
        0,
    );
    let (_, stdout, _) = check(root, &["--only", "flux-substitute-unset"]);
    assert!(!stdout.contains("BACKUP_SCHEDULE"), "{stdout}");
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn init_writes_down_the_synced_directory() {
    let dir = fixture();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dtlint"))
        .arg("init")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = std::fs::read_to_string(dir.path().join("dtlint.toml")).unwrap();
    let config = dtlint::config::Config::parse(&text, "dtlint.toml").unwrap();
    assert_eq!(
        config.environments["cluster"].cluster.as_deref(),
        Some("kubernetes/flux/cluster")
    );
    // The same findings, now from the configuration, with no note of guessing.
    let (code, stdout, stderr) = check(dir.path(), &[]);
    assert_eq!(code, 1);
    for rule in [
        "flux-substitute-invalid",
        "flux-substitute-unset",
        "helm-chart-unpinned",
    ] {
        assert!(stdout.contains(rule), "{rule}: {stdout}");
    }
    assert!(!stderr.contains("no environments declared"), "{stderr}");
}
