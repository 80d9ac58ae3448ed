//! The adoption helpers work as written: the pre-commit hooks this
//! repository publishes run dtlint with arguments it accepts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

mod support;

#[derive(serde::Deserialize)]
struct Hook {
    id: String,
    entry: String,
    language: String,
    #[serde(default)]
    files: Option<String>,
}

#[test]
fn the_pre_commit_hooks_run_dtlint_with_arguments_it_accepts() {
    let text = std::fs::read_to_string(support::repo().join(".pre-commit-hooks.yaml")).unwrap();
    let hooks: Vec<Hook> = yaml_as(&text);
    assert!(hooks.iter().any(|h| h.id == "dtlint"));
    for h in &hooks {
        assert_eq!(h.language, "system", "{}", h.id);
        let mut words = h.entry.split_whitespace();
        assert_eq!(words.next(), Some("dtlint"), "{}", h.id);
        let args: Vec<&str> = words.collect();
        // `--help` after the hook's own arguments: clap parses them all
        // first, so an argument dtlint does not know fails here.
        let out = Command::new(env!("CARGO_BIN_EXE_dtlint"))
            .args(args.iter().filter(|a| !a.starts_with("origin/")))
            .args(args.contains(&"--changed-since").then_some("HEAD"))
            .arg("--help")
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}: {out:?}", h.id);
        if let Some(files) = &h.files {
            assert!(files.contains("ya?ml"), "{}: {files}", h.id);
        }
    }
}

/// The hooks file through dtlint's own YAML reader, as JSON.
fn yaml_as<T: serde::de::DeserializeOwned>(text: &str) -> T {
    let lines = dtlint_yaml::LineIndex::new(text);
    let parsed = dtlint_yaml::parse(text, &lines, dtlint_yaml::Limits::default());
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    serde_json::from_value(parsed.documents[0].root.to_json()).unwrap()
}

fn check(root: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dtlint"))
        .args(["check", "--no-render"])
        .args(args)
        .current_dir(root)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn junit_reports_a_suite_per_file_and_a_failure_per_finding() {
    let dir = support::fixture("_diff");
    let (code, xml) = check(dir.path(), &["--format", "junit"]);
    assert_eq!(code, 1, "{xml}");
    assert!(
        xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"dtlint\""),
        "{xml}"
    );
    let (_, json) = check(dir.path(), &["--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let n = v["findings"].as_array().unwrap().len();
    assert_eq!(xml.matches("<testcase ").count(), n, "{xml}");
    assert_eq!(xml.matches("<failure type=\"error\"").count(), n, "{xml}");
    assert!(
        xml.contains("<testsuite name=\"apps/base/web/api.yaml\""),
        "{xml}"
    );
    assert!(xml.contains("name=\"run-as-root at 16:"), "{xml}");
    // Balanced: every opened element is closed.
    assert_eq!(
        xml.matches("<testsuite ").count(),
        xml.matches("</testsuite>").count()
    );
    assert_eq!(
        xml.matches("<testcase ").count(),
        xml.matches("</testcase>").count()
    );
}

#[test]
fn statistics_count_findings_per_rule() {
    let dir = support::fixture("_diff");
    let (code, text) = check(dir.path(), &["--statistics"]);
    assert_eq!(code, 1, "{text}");
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("    2  error    "),
        "two of each container rule first: {text}"
    );
    assert!(text.contains("run-as-root"), "{text}");
    let total: usize = text
        .lines()
        .map(|l| {
            l.split_whitespace()
                .next()
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .sum();
    let (_, json) = check(dir.path(), &["--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(total, v["findings"].as_array().unwrap().len());
}
