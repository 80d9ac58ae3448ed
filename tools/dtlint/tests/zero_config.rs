//! `dtlint check` at the root of a Flux repository with no `dtlint.toml`,
//! as a newcomer runs it: the environments are found from `clusters/*`,
//! the overlays their Flux Kustomizations apply are rendered (through an
//! ArtifactGenerator's copies too), a defect that only the rendered
//! overlay shows is found at the patch line, and what is not rendered is
//! said once with the reason. The fixture is shaped like the official
//! `fluxcd/flux2-kustomize-helm-example`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

mod support;

fn fixture() -> tempfile::TempDir {
    support::fixture("_zero-config")
}

fn check(root: &Path, extra: &[&str]) -> (i32, String, String) {
    support::check_in(root, extra)
}

#[test]
fn a_flux_repository_is_rendered_without_configuration() {
    let dir = fixture();
    let (code, stdout, stderr) = check(dir.path(), &[]);
    insta::assert_snapshot!(format!(
        "exit code: {code}\n--- stdout\n{stdout}--- stderr\n{stderr}"
    ));
    assert!(
        !dir.path().join(".dtlint-cache").exists() && !dir.path().join("dtlint.toml").exists(),
        "nothing written into the repository"
    );
}

#[test]
fn the_base_alone_is_not_blamed_for_what_its_overlays_set() {
    // Source mode: the base HelmRelease has no version, which the overlay
    // sets; nothing to report without the rendered view.
    let dir = fixture();
    let (code, stdout, _) = check(dir.path(), &["--no-render"]);
    assert_eq!(code, 0, "{stdout}");
}

#[test]
fn init_writes_down_what_discovery_found() {
    let dir = fixture();
    let init = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_dtlint"))
            .arg("init")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = init(&[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = std::fs::read_to_string(dir.path().join("dtlint.toml")).unwrap();
    let config = dtlint::config::Config::parse(&text, "dtlint.toml").unwrap();
    assert_eq!(
        config.environments["production"].cluster.as_deref(),
        Some("clusters/production")
    );
    // It does not overwrite a configuration.
    let again = init(&[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    // With it, the same findings, and no note about guessing.
    let (code, stdout, stderr) = check(dir.path(), &[]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("`>=1.0.0` of HelmRelease/podinfo"),
        "{stdout}"
    );
    assert!(!stderr.contains("no environments declared"), "{stderr}");
}
