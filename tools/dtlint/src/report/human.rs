//! rustc-style output: the finding, the `file:line:column`, the source line with
//! the offending node underlined, related places, and a help sentence.

use std::fmt::Write as _;

use crate::diag::{Finding, Label, Severity};
use crate::engine::Outcome;
use crate::source::Sources;

struct Paint {
    on: bool,
}

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn severity(&self, sev: Severity, s: &str) -> String {
        let code = match sev {
            Severity::Error => "1;31",
            Severity::Warning => "1;33",
            Severity::Info => "1;36",
        };
        self.wrap(code, s)
    }
    fn blue(&self, s: &str) -> String {
        self.wrap("1;34", s)
    }
    fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }
}

fn gutter_width(f: &Finding) -> usize {
    std::iter::once(&f.primary)
        .chain(&f.secondary)
        .map(|l| l.span.start.line.to_string().len())
        .max()
        .unwrap_or(1)
}

/// Underline length in characters for a label on its first line.
fn underline_len(line: &str, label: &Label) -> usize {
    let start = label.span.start.col as usize;
    let line_chars = line.chars().count();
    let len = if label.span.end.line == label.span.start.line {
        (label.span.end.col as usize).saturating_sub(start)
    } else {
        line_chars.saturating_sub(start - 1)
    };
    len.max(1)
}

/// How a label is drawn: the primary label in the severity's colour with `^`,
/// related labels in blue with `-`.
#[derive(Clone, Copy)]
struct Style {
    width: usize,
    sev: Severity,
    primary: bool,
}

fn snippet(out: &mut String, p: &Paint, sources: &Sources, label: &Label, style: &Style) {
    let Style {
        width,
        sev,
        primary,
    } = *style;
    let mark = if primary { '^' } else { '-' };
    let file = sources.get(label.file);
    let line_no = label.span.start.line;
    let line = file.line_text(line_no);
    let pad = " ".repeat(width);
    let arrow = if primary { "-->" } else { ":::" };
    let _ = writeln!(
        out,
        "{pad}{} {}:{}:{}",
        p.blue(arrow),
        file.path,
        line_no,
        label.span.start.col
    );
    let _ = writeln!(out, "{pad} {}", p.blue("|"));
    let _ = writeln!(
        out,
        "{} {} {}",
        p.blue(&format!("{line_no:>width$}")),
        p.blue("|"),
        line
    );
    let indent: String = line
        .chars()
        .take((label.span.start.col as usize).saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let marks: String = std::iter::repeat_n(mark, underline_len(line, label)).collect();
    let text = if label.message.is_empty() {
        marks
    } else {
        format!("{marks} {}", label.message)
    };
    let text = if primary {
        p.severity(sev, &text)
    } else {
        p.blue(&text)
    };
    let _ = writeln!(out, "{pad} {} {indent}{text}", p.blue("|"));
}

/// Render one finding.
pub fn finding(out: &mut String, f: &Finding, sources: &Sources, color: bool) {
    let p = Paint { on: color };
    let width = gutter_width(f);
    let head = format!("{}[{}]", f.severity, f.rule);
    let _ = writeln!(
        out,
        "{}{} {}",
        p.severity(f.severity, &head),
        p.bold(":"),
        p.bold(&f.message)
    );
    let primary = Style {
        width,
        sev: f.severity,
        primary: true,
    };
    snippet(out, &p, sources, &f.primary, &primary);
    let related = Style {
        primary: false,
        ..primary
    };
    for l in &f.secondary {
        snippet(out, &p, sources, l, &related);
    }
    let pad = " ".repeat(width);
    let _ = writeln!(out, "{pad} {}", p.blue("|"));
    if !f.envs.is_empty() {
        let _ = writeln!(
            out,
            "{pad} {} {}: {}",
            p.blue("="),
            p.bold("environments"),
            f.envs.join(", ")
        );
    }
    if let Some(help) = &f.help {
        let _ = writeln!(out, "{pad} {} {}: {help}", p.blue("="), p.bold("help"));
    }
    let _ = writeln!(
        out,
        "{pad} {} {}: `dtlint explain {}`",
        p.blue("="),
        p.bold("docs"),
        f.rule
    );
}

pub fn render(outcome: &Outcome, sources: &Sources, color: bool) -> String {
    let mut out = String::new();
    for f in &outcome.findings {
        finding(&mut out, f, sources, color);
        out.push('\n');
    }
    out
}
