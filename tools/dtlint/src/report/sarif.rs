//! SARIF 2.1.0 for code scanning: rule metadata and real regions.

use serde_json::{Value, json};

use crate::diag::{Label, Severity};
use crate::engine::{ENGINE_RULES, Outcome};
use crate::rules;
use crate::source::Sources;

pub const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

fn location(sources: &Sources, l: &Label) -> Value {
    let file = sources.get(l.file);
    let mut loc = json!({
        "physicalLocation": {
            "artifactLocation": { "uri": file.path, "uriBaseId": "%SRCROOT%" },
            "region": {
                "startLine": l.span.start.line,
                "startColumn": l.span.start.col,
                "endLine": l.span.end.line.max(l.span.start.line),
                "endColumn": if l.span.end.line > l.span.start.line || l.span.end.col > l.span.start.col {
                    l.span.end.col
                } else {
                    l.span.start.col + 1
                },
                "snippet": { "text": file.line_text(l.span.start.line) }
            }
        }
    });
    if !l.message.is_empty() {
        loc["message"] = json!({ "text": l.message });
    }
    loc
}

fn rule_descriptors() -> Vec<Value> {
    let mut out: Vec<Value> = rules::ALL
        .iter()
        .map(|r| {
            let m = r.meta();
            json!({
                "id": m.id,
                "name": m.id,
                "shortDescription": { "text": m.summary },
                "fullDescription": { "text": m.summary },
                "help": { "text": m.docs_markdown(), "markdown": m.docs_markdown() },
                "helpUri": format!("https://github.com/dark-tower/platform/blob/main/docs/rules/{}.md", m.id),
                "defaultConfiguration": { "level": level(m.severity) },
                "properties": { "tags": [m.category] }
            })
        })
        .collect();
    out.extend(ENGINE_RULES.iter().map(|m| {
        json!({
            "id": m.id,
            "name": m.id,
            "shortDescription": { "text": m.summary },
            "fullDescription": { "text": m.summary },
            "help": { "text": m.docs_markdown(), "markdown": m.docs_markdown() },
            "defaultConfiguration": { "level": level(m.severity) },
            "properties": { "tags": [m.category] }
        })
    }));
    out
}

pub fn render(outcome: &Outcome, sources: &Sources) -> String {
    let descriptors = rule_descriptors();
    let index_of = |id: &str| descriptors.iter().position(|d| d["id"] == id);
    let results: Vec<Value> = outcome
        .findings
        .iter()
        .map(|f| {
            let mut text = super::message_with_envs(f);
            if let Some(h) = &f.help {
                text.push_str(". ");
                text.push_str(h);
            }
            let file = &sources.get(f.primary.file).path;
            let mut r = json!({
                "ruleId": f.rule,
                "level": level(f.severity),
                "message": { "text": text },
                "locations": [location(sources, &f.primary)],
                "partialFingerprints": {
                    "dtlint/v1": format!("{}:{}:{}", f.rule, file, f.message)
                }
            });
            if let Some(i) = index_of(f.rule) {
                r["ruleIndex"] = json!(i);
            }
            if !f.secondary.is_empty() {
                r["relatedLocations"] = Value::Array(
                    f.secondary
                        .iter()
                        .enumerate()
                        .map(|(i, l)| {
                            let mut loc = location(sources, l);
                            loc["id"] = json!(i + 1);
                            loc
                        })
                        .collect(),
                );
            }
            r
        })
        .collect();
    let doc = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "dtlint",
                "informationUri": "https://github.com/dark-tower/platform/tree/main/tools/dtlint",
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "version": env!("CARGO_PKG_VERSION"),
                "rules": descriptors
            }},
            "columnKind": "unicodeCodePoints",
            "originalUriBaseIds": { "%SRCROOT%": { "description": { "text": "The repository root." } } },
            "results": results
        }]
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}
