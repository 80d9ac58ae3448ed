//! `dtlint.io/ignore` annotations: read, validated and matched to findings.

use dtlint_yaml::Span;

use crate::diag::{Finding, Label};
use crate::model::Index;
use crate::rules::{self, suppression_meta::INVALID_SUPPRESSION};
use crate::source::FileId;

/// The annotation that suppresses a rule on one object: `rule=reason`,
/// several separated by `;` or new lines.
pub const IGNORE_ANNOTATION: &str = "dtlint.io/ignore";

pub(super) struct Suppression {
    pub(super) file: FileId,
    /// The object's whole span: findings inside it are covered.
    pub(super) scope: Span,
    pub(super) rule: String,
    /// The annotation value, to point at when it is unused.
    pub(super) at: Span,
    pub(super) used: bool,
}

pub(super) fn collect_suppressions(index: &Index<'_>, out: &mut Vec<Finding>) -> Vec<Suppression> {
    let mut sups = Vec::new();
    for r in &index.resources {
        let Some(node) = r.annotation(IGNORE_ANNOTATION) else {
            continue;
        };
        let text = node.as_str().unwrap_or("");
        for part in text
            .split([';', '\n'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (rule, reason) = part.split_once('=').unwrap_or((part, ""));
            let (rule, reason) = (rule.trim(), reason.trim());
            if reason.is_empty() {
                out.push(
                    Finding::new(
                        INVALID_SUPPRESSION,
                        Label::new(r.file, node.span, "no reason given"),
                        format!("suppression of `{rule}` without a reason"),
                    )
                    .help(format!(
                        "Write `{IGNORE_ANNOTATION}: {rule}=<why this is acceptable>` so reviewers know why the finding stands."
                    )),
                );
                continue;
            }
            if rules::find(rule).is_none() {
                let guess = crate::suggest::closest(rule, rules::ids());
                out.push(
                    Finding::new(
                        INVALID_SUPPRESSION,
                        Label::new(r.file, node.span, "not a rule id"),
                        format!(
                            "suppression names unknown rule `{rule}`{}",
                            guess.map_or_else(String::new, |g| format!("; did you mean `{g}`?"))
                        ),
                    )
                    .help(guess.map_or_else(
                        || "Run `dtlint rules` for the list of rule ids.".to_string(),
                        |g| {
                            format!(
                                "Write `{g}=<reason>`; run `dtlint rules` for the list of rule ids."
                            )
                        },
                    )),
                );
                continue;
            }
            sups.push(Suppression {
                file: r.file,
                scope: r.root.span,
                rule: rule.to_string(),
                at: node.span,
                used: false,
            });
        }
    }
    sups
}

pub(super) fn inside(outer: Span, inner: Span) -> bool {
    outer.start.offset <= inner.start.offset && inner.end.offset <= outer.end.offset
}
