//! Agreement with kube-linter on kube-linter's own check fixtures
//! (`tests/agreement/kube-linter`, vendored with its source and license):
//! per object, or per container for per-container checks, does dtlint's
//! corresponding rule report what kube-linter reports? Every difference
//! must be listed in `cases.toml` with the reason; agreement stays at 95%
//! or more.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use dtlint::config::Config;
use dtlint::engine::{self, RenderOptions, Selection};
use dtlint_yaml::Node;
use serde::Deserialize;

#[derive(Deserialize)]
struct Cases {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    check: String,
    rule: String,
    file: String,
    /// `object` or `container`.
    per: String,
    flagged: Vec<String>,
    /// Only these kinds are judged (the others are context).
    #[serde(default)]
    kinds: Vec<String>,
    #[serde(default)]
    differs: Vec<Differs>,
}

#[derive(Deserialize)]
struct Differs {
    subject: String,
    reason: String,
}

fn dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/agreement/kube-linter")
}

/// Every subject of the fixture with its span, and which of them dtlint's
/// `rule` reports.
fn judge(case: &Case) -> (Vec<String>, BTreeSet<String>) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(dir().join(&case.file), tmp.path().join(&case.file)).unwrap();
    let root = tmp.path();
    let config = Config::defaults();
    let render = RenderOptions {
        enabled: false,
        cache_dir: None,
        only_env: None,
    };
    let (prepared, _) = engine::prepare(root, &[root.to_path_buf()], &config, &render).unwrap();
    let selection = Selection {
        only: vec![case.rule.clone()],
        ..Selection::default()
    };
    let outcome = engine::run(&prepared, &config, &selection);
    let ws = &prepared.ws;
    let (id, _) = ws.sources.iter().next().unwrap();
    // Subjects in document order, with the span each covers.
    let mut subjects: Vec<(String, dtlint_yaml::Span)> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for doc in &ws.parsed(id).documents {
        let r = &doc.root;
        let Some(kind) = r.get("kind").and_then(Node::as_str) else {
            continue;
        };
        let name = r
            .path(&["metadata", "name"])
            .and_then(Node::as_str)
            .unwrap_or("");
        let base = format!("{kind}/{name}");
        let n = seen.entry(base.clone()).or_default();
        *n += 1;
        let key = if *n == 1 { base } else { format!("{base}#{n}") };
        if !case.kinds.is_empty() && !case.kinds.iter().any(|k| k == kind) {
            continue;
        }
        if case.per == "container" {
            let containers = r
                .path(&["spec", "template", "spec", "containers"])
                .into_iter()
                .flat_map(Node::items);
            for c in containers {
                let cname = c.get("name").and_then(Node::as_str).unwrap_or("");
                subjects.push((format!("{key}:{cname}"), c.span));
            }
        } else {
            subjects.push((key, r.span));
        }
    }
    let inside = |outer: dtlint_yaml::Span, inner: dtlint_yaml::Span| {
        outer.start.offset <= inner.start.offset && inner.end.offset <= outer.end.offset
    };
    let mut flagged = BTreeSet::new();
    for f in outcome.findings.iter().filter(|f| f.rule == case.rule) {
        // The innermost subject holding the finding (a container's span
        // lies inside its object's).
        if let Some((key, _)) = subjects
            .iter()
            .filter(|(_, s)| f.primary.file == id && inside(*s, f.primary.span))
            .min_by_key(|(_, s)| s.end.offset - s.start.offset)
        {
            flagged.insert(key.clone());
        }
    }
    (subjects.into_iter().map(|(k, _)| k).collect(), flagged)
}

#[test]
fn dtlint_agrees_with_kube_linter_on_its_fixtures() {
    let text = std::fs::read_to_string(dir().join("cases.toml")).unwrap();
    let cases: Cases = toml::from_str(&text).unwrap();
    let (mut total, mut agree) = (0usize, 0usize);
    let mut problems = Vec::new();
    let mut table = String::new();
    for case in &cases.case {
        let (subjects, flagged) = judge(case);
        for want in &case.flagged {
            assert!(
                subjects.contains(want),
                "{}: `{want}` is no subject of {} ({subjects:?})",
                case.check,
                case.file
            );
        }
        let mut differ = Vec::new();
        for s in &subjects {
            total += 1;
            let theirs = case.flagged.contains(s);
            let ours = flagged.contains(s);
            if theirs == ours {
                agree += 1;
            } else {
                differ.push(s.clone());
                if !case.differs.iter().any(|d| &d.subject == s) {
                    problems.push(format!(
                        "{} ({}): kube-linter {} `{s}`, dtlint {}",
                        case.check,
                        case.rule,
                        if theirs { "reports" } else { "does not report" },
                        if ours { "does" } else { "does not" }
                    ));
                }
            }
        }
        for d in &case.differs {
            assert!(
                !d.reason.trim().is_empty(),
                "{}: a reason for {}",
                case.check,
                d.subject
            );
            if !differ.contains(&d.subject) {
                problems.push(format!(
                    "{}: `{}` is listed as a difference but both agree now",
                    case.check, d.subject
                ));
            }
        }
        let _ = writeln!(
            table,
            "{:<32} {:<26} {}/{}",
            case.check,
            case.rule,
            subjects.len() - differ.len(),
            subjects.len()
        );
    }
    println!("{table}agreement: {agree}/{total}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        agree * 100 >= total * 95,
        "agreement {agree}/{total} is under 95%"
    );
}
