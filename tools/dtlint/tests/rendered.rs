//! Rendered mode on a copy of this repository: every overlay the clusters
//! apply is built with kustomize, and defects planted in the copy are
//! reported at the file and line that was changed, naming the environment.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

mod support;
use support::{copy, plant};

use dtlint::config::Config;
use dtlint::diag::Severity;
use dtlint::engine::{self, RenderOptions, Selection};

struct Found {
    rule: &'static str,
    path: String,
    line: u32,
    severity: Severity,
    envs: Vec<String>,
}

/// Every finding of a full, rendered run (no cache, no key).
fn check(root: &Path) -> Vec<Found> {
    let config = Config::load(&root.join("dtlint.toml")).unwrap();
    let render = RenderOptions {
        enabled: true,
        cache_dir: None,
        only_env: None,
    };
    let (ws, notes) = engine::prepare(root, &[root.to_path_buf()], &config, &render).unwrap();
    assert!(
        notes.render_skipped.is_none(),
        "kubectl or kustomize is needed: {:?}",
        notes.render_skipped
    );
    assert!(notes.builds >= 3, "every environment's overlays are built");
    engine::run(&ws, &config, &Selection::default())
        .findings
        .into_iter()
        .map(|f| Found {
            rule: f.rule,
            path: ws.sources.get(f.primary.file).path.clone(),
            line: f.primary.span.start.line,
            severity: f.severity,
            envs: f.envs,
        })
        .collect()
}

fn describe(found: &[Found]) -> String {
    found
        .iter()
        .map(|f| {
            format!(
                "{} {}:{} {:?} {:?}",
                f.rule, f.path, f.line, f.severity, f.envs
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_rendered_repository_is_clean() {
    let dir = copy();
    let found = check(dir.path());
    assert!(found.is_empty(), "{}", describe(&found));
}

#[test]
fn latest_in_a_production_overlay_is_an_error_at_the_override() {
    let dir = copy();
    let file = "overlays/production/global-controller/kustomization.yaml";
    let line = plant(dir.path(), file, "newTag: \"0.1.0\"", "newTag: latest", 0);
    let found = check(dir.path());
    let hit = found
        .iter()
        .find(|f| f.rule == "latest-tag" && f.path == file && f.line == line)
        .unwrap_or_else(|| panic!("{}", describe(&found)));
    assert_eq!(hit.severity, Severity::Error);
    assert_eq!(hit.envs, ["production"]);
}

#[test]
fn one_replica_in_production_is_found_at_the_patch() {
    let dir = copy();
    let file = "overlays/production/meeting-controller/patch-statefulset.yaml";
    let line = plant(dir.path(), file, "replicas: 3", "replicas: 1", 0);
    let found = check(dir.path());
    let hit = found
        .iter()
        .find(|f| f.rule == "replicas-per-environment" && f.path == file && f.line == line)
        .unwrap_or_else(|| panic!("{}", describe(&found)));
    assert_eq!(hit.envs, ["production"]);
}

#[test]
fn exemptions_judge_rendered_findings_by_source_path_and_object() {
    let dir = copy();
    let file = "overlays/production/meeting-controller/patch-statefulset.yaml";
    plant(dir.path(), file, "replicas: 3", "replicas: 1", 0);
    let exempt = |resource: &str| {
        let config = dir.path().join("dtlint.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        let text = text
            .split("\n# dtlint-test exemption")
            .next()
            .unwrap()
            .to_string();
        std::fs::write(
            &config,
            format!(
                "{text}\n# dtlint-test exemption\n[[exemption]]\nrule = \"replicas-per-environment\"\npath = \"overlays/production/meeting-controller/*\"\nresource = \"{resource}\"\nreason = \"load test\"\n"
            ),
        )
        .unwrap();
        check(dir.path())
            .into_iter()
            .filter(|f| f.rule == "replicas-per-environment" && f.path == file)
            .count()
    };
    // The path matches where the finding maps, but the object differs.
    assert_eq!(exempt("Deployment/global-controller"), 1);
    assert_eq!(exempt("StatefulSet/meeting-controller"), 0);
}

#[test]
fn a_missing_pdb_is_found_in_the_base_and_the_broken_builds_named() {
    let dir = copy();
    std::fs::remove_file(dir.path().join("base/media-handler/pdb.yaml")).unwrap();
    let kfile = "base/media-handler/kustomization.yaml";
    let text = std::fs::read_to_string(dir.path().join(kfile)).unwrap();
    let entry_line = text[..text.find("- pdb.yaml").unwrap()]
        .matches('\n')
        .count() as u32
        + 1;
    let found = check(dir.path());
    let d = describe(&found);
    assert!(
        found
            .iter()
            .any(|f| f.rule == "seven-file-pattern" && f.path == kfile),
        "{d}"
    );
    assert!(
        found.iter().any(|f| f.rule == "kustomization-missing-file"
            && f.path == kfile
            && f.line == entry_line),
        "{d}"
    );
    // Every environment's media-handler overlay fails to build, reported once
    // at the entry kustomize names, with all three environments in the order
    // dtlint.toml declares them.
    let build = found
        .iter()
        .find(|f| f.rule == "kustomize-build-failed" && f.path == kfile && f.line == entry_line)
        .unwrap_or_else(|| panic!("{d}"));
    assert_eq!(build.envs, ["development", "staging", "production"]);
}

#[test]
fn the_cli_says_how_many_overlays_it_built_and_reuses_them_from_the_cache() {
    let dir = copy();
    // A cache of its own: the default one (~/.cache/dtlint) is shared.
    let cache = tempfile::tempdir().unwrap();
    let run = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dtlint"))
            .arg("check")
            .current_dir(dir.path())
            .env_remove("SOPS_AGE_KEY_FILE")
            .env("DTLINT_CACHE_DIR", cache.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let stderr = String::from_utf8(out.stderr).unwrap();
        stderr
            .lines()
            .find(|l| l.contains("file(s) checked"))
            .unwrap_or_else(|| panic!("{stderr}"))
            .to_string()
    };
    // `dtlint: N file(s) checked, B overlay build(s) (C from cache): ...`
    let parse = |line: &str| -> (usize, usize, usize) {
        let num = |after: &str| -> usize {
            let rest = &line[line.find(after).unwrap() + after.len()..];
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        (num("dtlint: "), num("checked, "), num("build(s) ("))
    };
    let (files, builds, cached) = parse(&run());
    assert!(builds >= 3, "every environment's overlays are built");
    assert_eq!(cached, 0, "a fresh copy has no cache");
    let (files_again, builds_again, cached_again) = parse(&run());
    assert_eq!((files_again, builds_again), (files, builds));
    assert_eq!(
        cached_again, builds,
        "the second run reads every build from the cache"
    );
    // Builds are not files: the count is the repository's YAML files.
    assert!(files < 400, "{files}");
}
