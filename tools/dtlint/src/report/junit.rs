//! JUnit XML, for CI systems that show test reports: a test suite per file
//! with findings, a failing test case per finding (`<failure>` for errors
//! and warnings alike; notes are skipped test cases).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::diag::{Finding, Severity};
use crate::engine::Outcome;
use crate::source::Sources;

/// Text made safe for an XML attribute or element.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab and newline are not XML.
            c if c.is_control() && c != '\t' && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

pub fn render(outcome: &Outcome, sources: &Sources) -> String {
    let mut by_file: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in &outcome.findings {
        by_file
            .entry(sources.get(f.primary.file).path.as_str())
            .or_default()
            .push(f);
    }
    let failures = outcome
        .findings
        .iter()
        .filter(|f| f.severity != Severity::Info)
        .count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"dtlint\" tests=\"{}\" failures=\"{failures}\">",
        outcome.findings.len()
    );
    for (file, findings) in &by_file {
        let failed = findings
            .iter()
            .filter(|f| f.severity != Severity::Info)
            .count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\">",
            xml(file),
            findings.len()
        );
        for f in findings {
            let pos = f.primary.span.start;
            let _ = writeln!(
                out,
                "    <testcase classname=\"{}\" name=\"{} at {}:{}\" file=\"{}\" line=\"{}\">",
                xml(f.rule),
                xml(f.rule),
                pos.line,
                pos.col,
                xml(file),
                pos.line
            );
            let mut detail = format!("{file}:{}:{}: {}", pos.line, pos.col, f.message);
            if !f.envs.is_empty() {
                let _ = write!(detail, "\nenvironments: {}", f.envs.join(", "));
            }
            if let Some(h) = &f.help {
                let _ = write!(detail, "\nhelp: {h}");
            }
            if f.severity == Severity::Info {
                let _ = writeln!(out, "      <skipped message=\"{}\"/>", xml(&f.message));
            } else {
                let _ = writeln!(
                    out,
                    "      <failure type=\"{}\" message=\"{}\">{}</failure>",
                    f.severity.as_str(),
                    xml(&f.message),
                    xml(&detail)
                );
            }
            out.push_str("    </testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// `--statistics`: findings per rule, most first, with the rule's summary.
pub fn statistics(outcome: &Outcome) -> String {
    let mut counts: BTreeMap<(&str, Severity), usize> = BTreeMap::new();
    for f in &outcome.findings {
        *counts.entry((f.rule, f.severity)).or_default() += 1;
    }
    let mut rows: Vec<((&str, Severity), usize)> = counts.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let width = rows.iter().map(|((r, _), _)| r.len()).max().unwrap_or(0);
    let mut out = String::new();
    for ((rule, severity), n) in rows {
        let summary = crate::rules::find_meta(rule).map_or("", |m| m.summary);
        let _ = writeln!(
            out,
            "{n:>5}  {:<7}  {rule:<width$}  {summary}",
            severity.as_str()
        );
    }
    out
}
