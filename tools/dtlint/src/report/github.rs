//! GitHub Actions workflow commands: annotations on the pull request diff.

use std::fmt::Write as _;

use crate::diag::Severity;
use crate::engine::Outcome;
use crate::source::Sources;

/// Escape a property value (`file=`, `title=`) per the workflow-command rules.
pub(crate) fn prop(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
        .replace(':', "%3A")
        .replace(',', "%2C")
}

/// Escape the message part.
pub(crate) fn data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

pub fn render(outcome: &Outcome, sources: &Sources) -> String {
    let mut out = String::new();
    for f in &outcome.findings {
        let level = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let l = &f.primary;
        let mut msg = super::message_with_envs(f);
        if let Some(h) = &f.help {
            msg.push('\n');
            msg.push_str(h);
        }
        // Annotations have one position: related places are named in the text.
        for r in &f.secondary {
            let _ = write!(
                msg,
                "\n{}:{}:{}: {}",
                sources.get(r.file).path,
                r.span.start.line,
                r.span.start.col,
                r.message
            );
        }
        let _ = writeln!(
            out,
            "::{level} file={},line={},col={},endLine={},endColumn={},title={}::{}",
            prop(&sources.get(l.file).path),
            l.span.start.line,
            l.span.start.col,
            l.span.end.line,
            l.span.end.col,
            prop(&format!("dtlint {}", f.rule)),
            data(&msg)
        );
    }
    out
}
