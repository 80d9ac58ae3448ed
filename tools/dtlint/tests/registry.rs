//! The registry's invariants: unique kebab-case ids, complete docs, fresh
//! generated pages.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::path::Path;

use dtlint::rules;

#[test]
fn ids_are_unique_and_kebab_case() {
    let mut seen = HashSet::new();
    for r in rules::ALL {
        let id = r.meta().id;
        assert!(seen.insert(id), "duplicate rule id {id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !id.starts_with('-')
                && !id.ends_with('-'),
            "rule id {id} is not kebab-case"
        );
    }
}

#[test]
fn docs_have_every_heading_and_text_under_each() {
    for r in rules::ALL {
        let m = r.meta();
        let docs = m.docs_markdown();
        assert!(!m.summary.is_empty(), "{}: empty summary", m.id);
        let mut last = 0;
        for heading in [
            "## What it does",
            "## Why is this bad?",
            "## Example",
            "## Use instead",
            "## References",
        ] {
            let at = docs
                .find(heading)
                .unwrap_or_else(|| panic!("{}: docs lack `{heading}`", m.id));
            assert!(at >= last, "{}: `{heading}` out of order", m.id);
            last = at;
            let body = docs[at + heading.len()..].trim_start();
            assert!(
                !body.is_empty() && !body.starts_with("##"),
                "{}: `{heading}` is empty",
                m.id
            );
        }
    }
}

#[test]
fn generated_rule_docs_are_fresh() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/rules");
    let mut stale = Vec::new();
    for (name, want) in dtlint::docs::all_pages() {
        let have = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        if have != want {
            stale.push(name);
        }
    }
    let expected: HashSet<String> = dtlint::docs::all_pages()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !expected.contains(&name) {
            stale.push(format!("{name} (no such rule)"));
        }
    }
    assert!(
        stale.is_empty(),
        "docs/rules is stale; run `cargo xtask docs`: {stale:?}"
    );
}
