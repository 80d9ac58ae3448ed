//! Every view is the repository's view: `dtlint check <file | dir | overlay>`
//! judges the given paths in the context of the repository around them and
//! reports only what lies inside them; a lone manifest (no repository, or
//! standard input) gets only the rules that can judge one file. And one
//! defect is one finding, at the line to edit.
//!
//! These run the real binary on a copy of this repository, with the
//! overlays rendered by the real kustomize (`kubectl kustomize`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use insta_cmd::get_cargo_bin;

mod support;
use support::{copy, plant};

struct Run {
    code: i32,
    json: serde_json::Value,
    stderr: String,
}

impl Run {
    /// (rule, file, line, environments) of every finding.
    fn findings(&self) -> Vec<(String, String, u64, Vec<String>)> {
        self.json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["rule"].as_str().unwrap().to_string(),
                    f["location"]["file"].as_str().unwrap().to_string(),
                    f["location"]["line"].as_u64().unwrap(),
                    f["environments"]
                        .as_array()
                        .map(|a| a.iter().map(|e| e.as_str().unwrap().to_string()).collect())
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    /// No location, primary or related, names a rendered stream or a file
    /// outside the repository's own paths.
    fn assert_positions_are_editable(&self) {
        for f in self.json["findings"].as_array().unwrap() {
            let related = f["related"].as_array().cloned().unwrap_or_default();
            for loc in std::iter::once(&f["location"]).chain(related.iter()) {
                let file = loc["file"].as_str().unwrap();
                assert!(
                    !file.contains("rendered") && !file.starts_with('/'),
                    "a position no editor can open: {file} in {f}"
                );
            }
        }
    }
}

fn dtlint(dir: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(get_cargo_bin("dtlint"));
    cmd.current_dir(dir)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        // One cache per copy: the first run builds, the others reuse.
        .env("DTLINT_CACHE_DIR", dir.join(".cache"))
        .args(["check", "--format", "json"])
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let run = Run {
        code: out.status.code().unwrap(),
        json,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    run.assert_positions_are_editable();
    run
}

#[test]
fn a_file_a_directory_and_an_overlay_are_judged_in_their_repository() {
    let dir = copy();
    let root = dir.path();
    for view in [
        // Listed by base/global-controller/kustomization.yaml: not an orphan.
        "base/global-controller/network-policy.yaml",
        // A base directory: suppressions elsewhere (base/redis) are not its business.
        "base/global-controller",
        "overlays/production",
        "overlays/production/redis",
        "clusters/staging",
    ] {
        let run = dtlint(root, &[view], None);
        assert_eq!(
            (run.code, run.findings()),
            (0, vec![]),
            "{view}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("were not run"), "{}", run.stderr);
    }
}

#[test]
fn only_findings_inside_the_view_are_reported_and_counted() {
    let dir = copy();
    let root = dir.path();
    let line = plant(
        root,
        "base/ac-service/statefulset.yaml",
        "readOnlyRootFilesystem: true",
        "readOnlyRootFilesystem: false",
        0,
    );
    // Outside the view: nothing, exit 0.
    let run = dtlint(root, &["base/global-controller"], None);
    assert_eq!((run.code, run.findings()), (0, vec![]), "{}", run.stderr);
    assert_eq!(run.json["summary"]["errors"], 0);
    // Inside the view: found at the line changed, exit 1.
    let run = dtlint(root, &["base/ac-service/statefulset.yaml"], None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let found = run.findings();
    assert!(
        found
            .iter()
            .any(|(rule, file, l, _)| rule == "writable-root-fs"
                && file == "base/ac-service/statefulset.yaml"
                && *l == u64::from(line)),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .all(|(_, file, _, _)| file == "base/ac-service/statefulset.yaml"),
        "{found:?}"
    );
}

#[test]
fn a_lone_manifest_gets_the_rules_that_can_judge_one_file() {
    let repo = support::repo();
    let lone = tempfile::tempdir().unwrap();
    let text =
        std::fs::read_to_string(repo.join("base/global-controller/deployment.yaml")).unwrap();
    let file = lone.path().join("deployment.yaml");
    std::fs::write(&file, &text).unwrap();

    // Clean but alone: no repository rule speaks, and dtlint says once why.
    let run = dtlint(lone.path(), &["deployment.yaml"], None);
    assert_eq!((run.code, run.findings()), (0, vec![]), "{}", run.stderr);
    assert_eq!(
        run.stderr.matches("need the whole repository").count(),
        1,
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("missing-default-deny"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("dangling-config-ref"), "{}", run.stderr);

    // The same when the directory is named: it is not a project.
    let run = dtlint(lone.path(), &["."], None);
    assert_eq!((run.code, run.findings()), (0, vec![]), "{}", run.stderr);
    assert!(
        run.stderr.contains("need the whole repository"),
        "{}",
        run.stderr
    );

    // A defect one file shows is still found, at its line.
    let pinned = "global-controller:0.1.0";
    let at = text.find(pinned).unwrap();
    let image_line = text[..at].matches('\n').count() as u64 + 1;
    let broken = text.replacen(pinned, "global-controller:latest", 1);
    std::fs::write(&file, &broken).unwrap();
    let run = dtlint(lone.path(), &["deployment.yaml"], None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.findings()
            .iter()
            .map(|(r, f, l, _)| (r.as_str(), f.as_str(), *l))
            .collect::<Vec<_>>(),
        vec![("latest-tag", "deployment.yaml", image_line)]
    );

    // The same from standard input, shown under the name the editor gives.
    let run = dtlint(
        lone.path(),
        &["-", "--stdin-filename", "gc/deployment.yaml"],
        Some(&broken),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.findings()
            .iter()
            .map(|(r, f, l, _)| (r.as_str(), f.as_str(), *l))
            .collect::<Vec<_>>(),
        vec![("latest-tag", "gc/deployment.yaml", image_line)]
    );
    assert!(run.stderr.contains("standard input"), "{}", run.stderr);
}

#[test]
fn what_the_base_lacks_is_reported_once_at_the_base_naming_every_environment() {
    let dir = copy();
    let root = dir.path();
    let file = "base/meeting-controller/statefulset.yaml";
    let text = std::fs::read_to_string(root.join(file)).unwrap();
    let start = text.find("          readinessProbe:\n").unwrap();
    let rest = &text[start + "          readinessProbe:\n".len()..];
    let len = rest
        .lines()
        .take_while(|l| l.starts_with("            "))
        .map(|l| l.len() + 1)
        .sum::<usize>();
    let cut = format!("{}{}", &text[..start], &rest[len..]);
    std::fs::write(root.join(file), &cut).unwrap();
    let container_line = cut[..cut.find("- name: meeting-controller").unwrap()]
        .matches('\n')
        .count() as u64
        + 1;

    let run = dtlint(root, &[], None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let probes: Vec<_> = run
        .findings()
        .into_iter()
        .filter(|(rule, ..)| rule == "missing-readiness-probe")
        .collect();
    assert_eq!(
        probes,
        vec![(
            "missing-readiness-probe".to_string(),
            file.to_string(),
            container_line,
            vec![
                "development".to_string(),
                "staging".to_string(),
                "production".to_string()
            ]
        )]
    );
}

#[test]
fn a_renamed_configmap_key_is_one_finding() {
    let dir = copy();
    let root = dir.path();
    let line = plant(
        root,
        "base/global-controller/configmap.yaml",
        "  MC_STALENESS_THRESHOLD_SECONDS:",
        "  MC_STALENESS_THRESHOLD_SECS:",
        0,
    );
    let run = dtlint(root, &["base/global-controller"], None);
    let found = run.findings();
    // One finding (the reference rule; the contract rule said the same), at
    // the rename, with the read as a related place.
    assert_eq!(
        found,
        vec![(
            "dangling-config-ref".to_string(),
            "base/global-controller/configmap.yaml".to_string(),
            u64::from(line),
            vec![
                "development".to_string(),
                "staging".to_string(),
                "production".to_string()
            ]
        )],
        "{}",
        run.stderr
    );
    let related = &run.json["findings"][0]["related"][0];
    assert_eq!(related["file"], "base/global-controller/deployment.yaml");
    assert_eq!(related["label"], "read here");
}

#[test]
fn a_misspelt_configmap_name_says_which_one_was_meant_and_where_it_is() {
    let dir = copy();
    let root = dir.path();
    let line = plant(
        root,
        "base/global-controller/deployment.yaml",
        "name: global-controller-config",
        "name: global-controller-confg",
        0,
    );
    let run = dtlint(root, &["base/global-controller"], None);
    let f = run.json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["location"]["line"] == u64::from(line))
        .unwrap_or_else(|| panic!("{}", run.json));
    assert_eq!(f["rule"], "dangling-config-ref");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .ends_with("did you mean `global-controller-config`?"),
        "{f}"
    );
    assert_eq!(
        f["related"][0]["file"],
        "base/global-controller/configmap.yaml"
    );
    assert_eq!(f["related"][0]["line"], 5);
}

/// A 100,000-character line is cut around the node, with `…` where it was
/// cut, and the underline stays under the node.
#[test]
fn a_very_long_line_is_cut_around_the_finding() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dtlint.toml"), "").unwrap();
    let long = "x".repeat(100_000);
    std::fs::write(
        dir.path().join("cm.yaml"),
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x, annotations: {{a: \"{long}\", b: \"1\", b: \"2\"}}}}\n"),
    )
    .unwrap();
    let out = Command::new(get_cargo_bin("dtlint"))
        .current_dir(dir.path())
        .args([
            "check",
            "cm.yaml",
            "--only",
            "duplicate-key",
            "--color",
            "never",
            "--width",
            "72",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.lines().all(|l| l.chars().count() <= 80), "{stdout}");
    insta::assert_snapshot!(stdout);
}

/// An overlay that is not built leaves its environment incomplete: the one
/// finding is the refused entry, not what whole-environment rules would
/// conclude from the objects that are missing.
#[test]
fn a_refused_overlay_is_one_finding_not_a_cascade() {
    let dir = copy();
    let root = dir.path();
    let file = "overlays/production/global-controller/kustomization.yaml";
    let line = plant(root, file, "resources:\n", "resources:\n  - /dev/zero\n", 0) + 1;
    let run = dtlint(root, &[], None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.findings(),
        vec![(
            "unsafe-kustomize-path".to_string(),
            file.to_string(),
            u64::from(line),
            vec!["production".to_string()]
        )],
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("production incomplete"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_schema_defect_is_found_once_in_a_base_and_at_the_patch_line_in_an_overlay() {
    let dir = copy();
    let root = dir.path();
    // A misspelt field in a base: one finding, naming every environment.
    let base_line = plant(
        root,
        "base/meeting-controller/statefulset.yaml",
        "      containers:",
        "      containerz: []\n      containers:",
        0,
    );
    // A bad enum and an unknown field written by a production patch.
    let patch_line = plant(
        root,
        "overlays/production/global-controller/patch-deployment.yaml",
        "whenUnsatisfiable: ScheduleAnyway",
        "whenUnsatisfiable: ScheduleAnywhere\n          maxSkeww: 2",
        0,
    );
    let run = dtlint(root, &["--only", "schema-invalid"], None);
    let all = |e: &[&str]| e.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
    assert_eq!(
        run.findings(),
        vec![
            (
                "schema-invalid".into(),
                "base/meeting-controller/statefulset.yaml".into(),
                u64::from(base_line),
                all(&["development", "staging", "production"])
            ),
            (
                "schema-invalid".into(),
                "overlays/production/global-controller/patch-deployment.yaml".into(),
                u64::from(patch_line),
                all(&["production"])
            ),
            (
                "schema-invalid".into(),
                "overlays/production/global-controller/patch-deployment.yaml".into(),
                u64::from(patch_line) + 1,
                all(&["production"])
            ),
        ],
        "{}",
        run.stderr
    );
    assert_eq!(run.code, 1);
}
