//! Every rule has a `fail` and a `pass` fixture under `tests/fixtures/<rule-id>/`.
//! The failing fixture's findings for that rule are snapshotted exactly as a
//! user sees them; the passing fixture must produce none.
//!
//! Fixtures run with an age key, as CI does: the public sops test key in
//! `tests/fixtures/_keys/test.agekey` decrypts the SOPS files the `sops`
//! rules' fixtures encrypt to it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use dtlint::config::Config;
use dtlint::engine::{self, Selection};
use dtlint::report::human;
use dtlint::rules;

fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The public sops test key (never a real one).
fn test_key() -> dtlint_sops::AgeIdentities {
    let path = fixture_root().join("_keys/test.agekey");
    let text = std::fs::read_to_string(&path).unwrap();
    dtlint_sops::AgeIdentities::parse(&text, "test.agekey").unwrap()
}

/// Run one rule over a fixture directory and render its findings.
fn run(dir: &Path, rule: &str) -> (usize, String) {
    let config_path = dir.join("dtlint.toml");
    let config = if config_path.is_file() {
        Config::load(&config_path).unwrap()
    } else {
        // The rules' fixtures follow this repository's conventions.
        Config::dark_tower()
    };
    // Fixtures that declare environments are checked in rendered mode, as
    // `dtlint check` does; builds are not cached between test runs.
    let render = engine::RenderOptions {
        enabled: true,
        cache_dir: None,
        only_env: None,
    };
    let (mut ws, _) = engine::prepare(dir, &[dir.to_path_buf()], &config, &render).unwrap();
    ws.sops.decrypt(&test_key());
    let selection = Selection {
        only: vec![rule.to_string()],
        skip: vec![],
        ..Selection::default()
    };
    let outcome = engine::run(&ws, &config, &selection);
    let mine: Vec<_> = outcome.findings.iter().filter(|f| f.rule == rule).collect();
    let mut text = String::new();
    for f in &mine {
        human::finding(&mut text, f, &ws.sources, false, 120);
        text.push('\n');
    }
    (mine.len(), text)
}

#[test]
fn every_rule_has_fixtures_and_its_snapshot() {
    let mut problems = Vec::new();
    for r in rules::ALL {
        let id = r.meta().id;
        let fail = fixture_root().join(id).join("fail");
        let pass = fixture_root().join(id).join("pass");
        if !fail.is_dir() || !pass.is_dir() {
            problems.push(format!("{id}: missing tests/fixtures/{id}/fail or /pass"));
            continue;
        }
        let (n, text) = run(&fail, id);
        if n == 0 {
            problems.push(format!("{id}: the fail fixture produces no finding"));
        }
        insta::assert_snapshot!(format!("{id}-fail"), text);
        let (n, text) = run(&pass, id);
        if n != 0 {
            problems.push(format!(
                "{id}: the pass fixture produces {n} finding(s):\n{text}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_fixture_directory_without_a_rule() {
    for entry in std::fs::read_dir(fixture_root()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with('_') {
            continue; // shared inputs for CLI tests
        }
        assert!(
            rules::find(&name).is_some(),
            "tests/fixtures/{name} names no rule"
        );
    }
}
