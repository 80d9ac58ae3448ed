//! rustc-style output: the finding, the `file:line:column`, the source line with
//! the offending node underlined, related places, and a help sentence.
//!
//! Hand-written rather than `miette`: a dtlint finding's related places are
//! usually in other files (the ConfigMap a key is missing from, the policy
//! that isolates a pod, the base a patch merges into), while a miette
//! diagnostic's labels all belong to one source, so each would become a
//! separate "related" diagnostic with its own header; miette also prints a
//! source line whole, however long (one 100,000-character line fills the
//! terminal), and has no place for the environments a finding applies to.
//! Here a source line longer than the terminal is cut around the column with
//! `…` at the cut ends, so the underline stays under the node.

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
    /// Width of the line-number gutter.
    width: usize,
    sev: Severity,
    primary: bool,
    /// Columns available for the source line.
    room: usize,
}

/// The part of `line` to show so that the node starting at character
/// `start` (0-based) and `len` characters long is visible within `room`
/// characters: (text with `…` where it was cut, the node's start column in
/// that text, how much of the underline fits).
fn window(line: &str, start: usize, len: usize, room: usize) -> (String, usize, usize) {
    let chars: Vec<char> = line.chars().collect();
    let room = room.max(20);
    if chars.len() <= room {
        return (line.to_string(), start, len);
    }
    // Keep a little context before the node, then as much of it as fits.
    let before = (room / 4).min(start);
    let mut from = start - before;
    let mut to = (from + room).min(chars.len());
    if to - from < room {
        from = to.saturating_sub(room);
    }
    let cut_left = from > 0;
    let cut_right = to < chars.len();
    // The ellipses take a column each.
    if cut_left {
        from += 1;
    }
    if cut_right {
        to -= 1;
    }
    let mut text = String::new();
    if cut_left {
        text.push('…');
    }
    text.extend(&chars[from.min(to)..to]);
    if cut_right {
        text.push('…');
    }
    let col = start.saturating_sub(from) + usize::from(cut_left);
    let visible = len.min(to.saturating_sub(start.max(from))).max(1);
    (text, col, visible)
}

fn snippet(out: &mut String, p: &Paint, sources: &Sources, label: &Label, style: &Style) {
    let Style {
        width,
        sev,
        primary,
        ..
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
    let start = (label.span.start.col as usize).saturating_sub(1);
    let (shown, col, len) = window(line, start, underline_len(line, label), style.room);
    let _ = writeln!(
        out,
        "{} {} {}",
        p.blue(&format!("{line_no:>width$}")),
        p.blue("|"),
        shown
    );
    let indent: String = shown
        .chars()
        .take(col)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let marks: String = std::iter::repeat_n(mark, len).collect();
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

/// Render one finding for a terminal `columns` wide.
pub fn finding(out: &mut String, f: &Finding, sources: &Sources, color: bool, columns: usize) {
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
        room: columns.saturating_sub(width + 3),
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

/// Render every finding for a terminal `columns` wide (source lines longer
/// than that are cut around the node).
pub fn render(outcome: &Outcome, sources: &Sources, color: bool, columns: usize) -> String {
    let mut out = String::new();
    for f in &outcome.findings {
        finding(&mut out, f, sources, color, columns);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::window;

    #[test]
    fn short_lines_are_shown_whole() {
        assert_eq!(
            window("image: x:latest", 7, 8, 80),
            ("image: x:latest".into(), 7, 8)
        );
    }

    #[test]
    fn long_lines_are_cut_around_the_node() {
        let line = format!("{}NODE{}", "a".repeat(50_000), "b".repeat(50_000));
        let (text, col, len) = window(&line, 50_000, 4, 40);
        assert_eq!(text.chars().count(), 40);
        assert!(text.starts_with('…') && text.ends_with('…'), "{text}");
        assert_eq!(text.chars().skip(col).take(4).collect::<String>(), "NODE");
        assert_eq!(len, 4);
        // At the start and at the end: one ellipsis.
        let (text, col, _) = window(&line, 0, 4, 40);
        assert!(!text.starts_with('…') && text.ends_with('…'));
        assert_eq!(col, 0);
        let end = line.chars().count() - 1;
        let (text, col, len) = window(&line, end, 1, 40);
        assert!(text.starts_with('…') && !text.ends_with('…'));
        assert_eq!(text.chars().nth(col), Some('b'));
        assert_eq!(len, 1);
    }

    #[test]
    fn a_node_wider_than_the_room_is_underlined_to_the_cut() {
        let line = format!("key: {}", "v".repeat(1_000));
        let (text, col, len) = window(&line, 5, 1_000, 40);
        assert_eq!(col, 5);
        assert_eq!(col + len, text.chars().count() - 1);
    }
}
