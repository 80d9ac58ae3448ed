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
