//! The three forms of `dtlint diff`'s report.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value as Json, json};

use super::{Change, Diff};

/// One line of the report: what happened to which object, where, and the
/// changed fields; grouped over the environments it reaches.
#[derive(PartialEq, Eq, PartialOrd, Ord, Clone)]
struct Entry {
    what: &'static str,
    id: String,
    source: String,
    fields: Vec<String>,
}

fn entries(d: &Diff) -> BTreeMap<Entry, Vec<String>> {
    let mut out: BTreeMap<Entry, Vec<String>> = BTreeMap::new();
    for env in &d.order {
        let Some(e) = d.environments.get(env) else {
            continue;
        };
        let mut add = |what, o: &super::Obj, fields: &[String]| {
            out.entry(Entry {
                what,
                id: o.id(),
                source: o.source.clone(),
                fields: fields.to_vec(),
            })
            .or_default()
            .push(env.clone());
        };
        for o in &e.added {
            add("added", o, &[]);
        }
        for o in &e.removed {
            add("removed", o, &[]);
        }
        for (o, _, fields) in &e.changed {
            add("changed", o, fields);
        }
    }
    out
}

fn finding_lines(out: &mut String, changes: &[Change]) {
    for c in changes {
        let level = if c.error { "error" } else { "warning" };
        let _ = writeln!(out, "{level}[{}]: {}", c.rule, c.message);
        let _ = writeln!(out, " --> {}", c.source);
        let _ = writeln!(out, "  = environments: {}\n", c.envs.join(", "));
    }
}

/// Plain text: each change once, with the environments it reaches.
pub fn human(d: &Diff, base: &str) -> String {
    let mut out = String::new();
    let all = entries(d);
    if all.is_empty() {
        let _ = writeln!(out, "dtlint diff: no object changes against `{base}`");
        return out;
    }
    let _ = writeln!(out, "dtlint diff against `{base}`:\n");
    for (e, envs) in &all {
        let mark = match e.what {
            "added" => '+',
            "removed" => '-',
            _ => '~',
        };
        let _ = writeln!(
            out,
            "{mark} {:<8} {}  ({})  [{}]",
            e.what,
            e.id,
            e.source,
            envs.join(", ")
        );
        for f in &e.fields {
            let _ = writeln!(out, "      {f}");
        }
    }
    out.push('\n');
    finding_lines(&mut out, &d.changes);
    let (errors, warnings) =
        d.changes.iter().fold(
            (0, 0),
            |(e, w), c| {
                if c.error { (e + 1, w) } else { (e, w + 1) }
            },
        );
    let _ = writeln!(
        out,
        "dtlint diff: {} change(s) in {} environment(s): {errors} error(s), {warnings} warning(s)",
        all.len(),
        d.environments.len()
    );
    out
}

/// Markdown for a pull-request comment: the change findings, then a
/// collapsible section per environment.
pub fn markdown(d: &Diff, base: &str) -> String {
    let mut out = format!("### dtlint diff against `{base}`\n\n");
    if d.environments.is_empty() {
        out.push_str("No object changes.\n");
        return out;
    }
    for c in &d.changes {
        let icon = if c.error { "❌" } else { "⚠️" };
        let _ = writeln!(
            out,
            "- {icon} **{}**: {} (`{}`; {})",
            c.rule,
            c.message.replace('|', "\\|"),
            c.source,
            c.envs.join(", ")
        );
    }
    if !d.changes.is_empty() {
        out.push('\n');
    }
    for env in &d.order {
        let Some(e) = d.environments.get(env) else {
            continue;
        };
        let _ = writeln!(
            out,
            "<details><summary><b>{env}</b>: {} added, {} removed, {} changed</summary>\n\n| | object | source | fields |\n|---|---|---|---|",
            e.added.len(),
            e.removed.len(),
            e.changed.len()
        );
        let mut row = |mark: &str, o: &super::Obj, fields: &[String]| {
            let fields: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
            let _ = writeln!(
                out,
                "| {mark} | {} | `{}` | {} |",
                o.id(),
                o.source,
                fields.join(", ")
            );
        };
        for o in &e.added {
            row("+", o, &[]);
        }
        for o in &e.removed {
            row("−", o, &[]);
        }
        for (o, _, fields) in &e.changed {
            row("~", o, fields);
        }
        out.push_str("\n</details>\n\n");
    }
    out
}

/// The JSON contract (see the module docs and the README).
pub fn json(d: &Diff) -> String {
    let mut envs = serde_json::Map::new();
    for (env, e) in &d.environments {
        let changed: Vec<Json> = e
            .changed
            .iter()
            .map(|(o, _, fields)| {
                let mut v = o.to_json();
                v["fields"] = json!(fields);
                v
            })
            .collect();
        envs.insert(
            env.clone(),
            json!({
                "added": e.added.iter().map(super::Obj::to_json).collect::<Vec<_>>(),
                "removed": e.removed.iter().map(super::Obj::to_json).collect::<Vec<_>>(),
                "changed": changed,
            }),
        );
    }
    let findings: Vec<Json> = d
        .changes
        .iter()
        .map(|c| {
            json!({
                "rule": c.rule,
                "severity": if c.error { "error" } else { "warning" },
                "message": c.message,
                "source": c.source,
                "environments": c.envs,
            })
        })
        .collect();
    serde_json::to_string_pretty(&json!({ "environments": envs, "findings": findings }))
        .unwrap_or_default()
        + "\n"
}

/// `file` and `line` of a change's `file:line` (a removal's carries
/// ` (base)`).
fn place(source: &str) -> (&str, u32) {
    let s = source.trim_end_matches(" (base)");
    s.rsplit_once(':')
        .and_then(|(f, l)| Some((f, l.parse().ok()?)))
        .unwrap_or((s, 1))
}

/// GitHub Actions workflow commands: an annotation per change finding.
pub fn github(d: &Diff) -> String {
    use crate::report::github::{data, prop};
    let mut out = String::new();
    for c in &d.changes {
        let (file, line) = place(&c.source);
        let level = if c.error { "error" } else { "warning" };
        let _ = writeln!(
            out,
            "::{level} file={},line={line},title={}::{}",
            prop(file),
            prop(c.rule),
            data(&format!(
                "{} (environments: {})",
                c.message,
                c.envs.join(", ")
            ))
        );
    }
    out
}

/// SARIF 2.1.0 for code scanning: a result per change finding.
pub fn sarif(d: &Diff) -> String {
    let mut rules: Vec<&str> = d.changes.iter().map(|c| c.rule).collect();
    rules.sort_unstable();
    rules.dedup();
    let results: Vec<Json> = d
        .changes
        .iter()
        .map(|c| {
            let (file, line) = place(&c.source);
            json!({
                "ruleId": c.rule,
                "level": if c.error { "error" } else { "warning" },
                "message": { "text": format!("{} (environments: {})", c.message, c.envs.join(", ")) },
                "locations": [{ "physicalLocation": {
                    "artifactLocation": { "uri": file, "uriBaseId": "%SRCROOT%" },
                    "region": { "startLine": line }
                }}]
            })
        })
        .collect();
    let doc = json!({
        "$schema": crate::report::sarif::SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "dtlint diff",
                "informationUri": "https://github.com/dark-tower/platform/tree/main/tools/dtlint",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules.iter().map(|r| json!({ "id": r })).collect::<Vec<_>>()
            }},
            "originalUriBaseIds": { "%SRCROOT%": { "description": { "text": "The repository root." } } },
            "results": results
        }]
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}
