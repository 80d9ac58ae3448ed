//! `cargo xtask agreement <kube-linter checkout>`: agreement with
//! kube-linter on kube-linter's own check fixtures (`tests/checks/*.yml` of
//! a stackrox/kube-linter checkout, read where it is; nothing of it is kept
//! in this repository). `agreement/kube-linter-cases.toml` pairs each check
//! with the dtlint rule that judges the same defect and lists what
//! kube-linter reports (as its `e2etests/bats-tests.sh` expects): per
//! object, or per container for per-container checks, does dtlint's rule
//! report the same? Every difference must be listed with its reason;
//! agreement must stay at 95% or more.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result, ensure};
use dtlint::config::Config;
use dtlint::engine::{self, RenderOptions, Selection};
use dtlint::yaml::Node;
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

/// Every subject of the fixture with its span, and which of them dtlint's
/// `rule` reports.
fn judge(checks: &Path, case: &Case) -> Result<(Vec<String>, BTreeSet<String>)> {
    let tmp = tempfile::tempdir()?;
    let from = checks.join(&case.file);
    std::fs::copy(&from, tmp.path().join(&case.file))
        .with_context(|| format!("copying {}", from.display()))?;
    let root = tmp.path();
    let config = Config::defaults();
    let render = RenderOptions {
        enabled: false,
        cache_dir: None,
        only_env: None,
    };
    let (prepared, _) = engine::prepare(root, &[root.to_path_buf()], &config, &render)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let selection = Selection {
        only: vec![case.rule.clone()],
        ..Selection::default()
    };
    let outcome = engine::run(&prepared, &config, &selection);
    let ws = &prepared.ws;
    let (id, _) = ws
        .sources
        .iter()
        .next()
        .context("the fixture was not read")?;
    // Subjects in document order, with the span each covers.
    let mut subjects: Vec<(String, dtlint::yaml::Span)> = Vec::new();
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
    let inside = |outer: dtlint::yaml::Span, inner: dtlint::yaml::Span| {
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
    Ok((subjects.into_iter().map(|(k, _)| k).collect(), flagged))
}

/// `cargo xtask agreement <kube-linter checkout>`: run every case and
/// print the table; fail on an unlisted difference or under 95%.
pub fn run(kube_linter: &Path) -> Result<()> {
    let checks = kube_linter.join("tests/checks");
    let cases_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("agreement/kube-linter-cases.toml");
    let text = std::fs::read_to_string(&cases_path)
        .with_context(|| format!("reading {}", cases_path.display()))?;
    let cases: Cases =
        toml::from_str(&text).with_context(|| format!("reading {}", cases_path.display()))?;
    let (mut total, mut agree) = (0usize, 0usize);
    let mut problems = Vec::new();
    let mut table = String::new();
    for case in &cases.case {
        let (subjects, flagged) = judge(&checks, case)?;
        for want in &case.flagged {
            ensure!(
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
            ensure!(
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
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    ensure!(
        agree * 100 >= total * 95,
        "agreement {agree}/{total} is under 95%"
    );
    Ok(())
}
