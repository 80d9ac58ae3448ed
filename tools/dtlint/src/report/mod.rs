//! Report: turn findings into what a user or a tool reads.
//!
//! Reporters never decide what is a finding; they only render.

use crate::diag::{Finding, Severity};
use crate::engine::Outcome;
use crate::source::Sources;

pub mod github;
pub mod human;
pub mod json;
pub mod junit;
pub mod sarif;

/// Output formats of `dtlint check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
    Sarif,
    Github,
    Junit,
}

/// Render `outcome` in `format`; human output is laid out for a terminal
/// `columns` wide.
pub fn render(
    format: Format,
    outcome: &Outcome,
    sources: &Sources,
    color: bool,
    columns: usize,
) -> String {
    match format {
        Format::Human => human::render(outcome, sources, color, columns),
        Format::Json => json::render(outcome, sources),
        Format::Sarif => sarif::render(outcome, sources),
        Format::Github => github::render(outcome, sources),
        Format::Junit => junit::render(outcome, sources),
    }
}

/// "1 error, 2 warnings" style counts.
pub fn summary(outcome: &Outcome) -> String {
    let plural = |n: usize, word: &str| {
        if n == 1 {
            format!("{n} {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    let mut parts = vec![
        plural(outcome.count(Severity::Error), "error"),
        plural(outcome.count(Severity::Warning), "warning"),
    ];
    let infos = outcome.count(Severity::Info);
    if infos > 0 {
        parts.push(plural(infos, "note"));
    }
    if outcome.suppressed > 0 {
        parts.push(format!("{} suppressed", outcome.suppressed));
    }
    parts.join(", ")
}

/// The message with its environments, as every format shows it.
pub fn message_with_envs(f: &Finding) -> String {
    if f.envs.is_empty() {
        f.message.clone()
    } else {
        format!("{} (in {})", f.message, f.envs.join(", "))
    }
}
