//! Machine-readable findings: one JSON object with every finding and counts.

use serde::Serialize;

use crate::diag::{Finding, Label, Severity};
use crate::engine::Outcome;
use crate::source::Sources;

#[derive(Serialize)]
struct Location<'a> {
    file: &'a str,
    line: u32,
    column: u32,
    end_line: u32,
    end_column: u32,
    #[serde(skip_serializing_if = "str::is_empty")]
    label: &'a str,
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    rule: &'a str,
    severity: Severity,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    help: Option<&'a str>,
    location: Location<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    related: Vec<Location<'a>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    environments: &'a [String],
}

#[derive(Serialize)]
struct Summary {
    errors: usize,
    warnings: usize,
    notes: usize,
    suppressed: usize,
}

#[derive(Serialize)]
struct Report<'a> {
    version: &'static str,
    findings: Vec<JsonFinding<'a>>,
    summary: Summary,
}

fn location<'a>(sources: &'a Sources, l: &'a Label) -> Location<'a> {
    Location {
        file: &sources.get(l.file).path,
        line: l.span.start.line,
        column: l.span.start.col,
        end_line: l.span.end.line,
        end_column: l.span.end.col,
        label: &l.message,
    }
}

fn one<'a>(f: &'a Finding, sources: &'a Sources) -> JsonFinding<'a> {
    JsonFinding {
        rule: f.rule,
        severity: f.severity,
        message: &f.message,
        help: f.help.as_deref(),
        location: location(sources, &f.primary),
        related: f.secondary.iter().map(|l| location(sources, l)).collect(),
        environments: &f.envs,
    }
}

pub fn render(outcome: &Outcome, sources: &Sources) -> String {
    let report = Report {
        version: env!("CARGO_PKG_VERSION"),
        findings: outcome.findings.iter().map(|f| one(f, sources)).collect(),
        summary: Summary {
            errors: outcome.count(Severity::Error),
            warnings: outcome.count(Severity::Warning),
            notes: outcome.count(Severity::Info),
            suppressed: outcome.suppressed,
        },
    };
    let mut s =
        serde_json::to_string_pretty(&report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}
