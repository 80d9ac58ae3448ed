//! Findings: what a rule reports, where, and how bad it is.

use std::fmt;

use dtlint_yaml::Span;
use serde::Serialize;

use crate::source::FileId;

/// How bad a finding is. `Error` fails the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }

    /// Parse a severity as written in `dtlint.toml`; `off` is `None` inside `Some`.
    pub fn parse_setting(s: &str) -> Option<Option<Severity>> {
        match s {
            "error" | "deny" => Some(Some(Severity::Error)),
            "warning" | "warn" => Some(Some(Severity::Warning)),
            "info" | "note" => Some(Some(Severity::Info)),
            "off" | "allow" => Some(None),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A place in a file with a short explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub file: FileId,
    pub span: Span,
    pub message: String,
}

impl Label {
    pub fn new(file: FileId, span: Span, message: impl Into<String>) -> Self {
        Self {
            file,
            span,
            message: message.into(),
        }
    }
}

/// One problem found by one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule id, also the suppression key.
    pub rule: &'static str,
    pub severity: Severity,
    /// Short lowercase fragment, no final period.
    pub message: String,
    /// A full sentence saying how to fix it.
    pub help: Option<String>,
    /// The node a human should edit.
    pub primary: Label,
    /// Related places ("selector defined here").
    pub secondary: Vec<Label>,
    /// Environments the finding applies to, when it came from rendered output.
    pub envs: Vec<String>,
    /// How `dtlint fix` fixes it, when the rule knows.
    pub replacement: Option<Replacement>,
}

/// A fix a rule attaches to its finding, and whether applying it is safe
/// (cannot change what a correct manifest means).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    /// The YAML text to write.
    pub text: String,
    pub safe: bool,
    /// `None`: replace the primary span's text. `Some(keys)`: set this
    /// path below the container that holds the primary span.
    pub in_container: Option<Vec<String>>,
    /// A value of one environment: safe only in a file of that environment
    /// alone (in a shared base it would change the others).
    pub per_environment: bool,
}

impl Replacement {
    /// Replace the primary span's text with `text`.
    pub fn text(text: impl Into<String>, safe: bool) -> Self {
        Self {
            text: text.into(),
            safe,
            in_container: None,
            per_environment: false,
        }
    }

    /// Set `keys` below the container holding the primary span to `value`:
    /// safe when the container does not state it (a hardening setting
    /// added), unsafe when it states something else.
    pub fn in_container(keys: &[&str], value: impl Into<String>, stated: bool) -> Self {
        Self {
            text: value.into(),
            safe: !stated,
            in_container: Some(keys.iter().map(|k| (*k).to_string()).collect()),
            per_environment: false,
        }
    }
}

impl Finding {
    pub fn new(rule: &'static str, primary: Label, message: impl Into<String>) -> Self {
        Self {
            rule,
            severity: Severity::Error,
            message: message.into(),
            help: None,
            primary,
            secondary: Vec::new(),
            envs: Vec::new(),
            replacement: None,
        }
    }

    #[must_use]
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    #[must_use]
    pub fn with(mut self, label: Label) -> Self {
        self.secondary.push(label);
        self
    }

    /// An undefined name that is a typo of a defined one: "did you mean
    /// `near`?" joins the message (every output format shows it) and the
    /// place where `near` is defined becomes a related location.
    #[must_use]
    pub fn did_you_mean(mut self, near: &str, file: FileId, span: Span) -> Self {
        self.message = format!("{}; did you mean `{near}`?", self.message);
        self.secondary.insert(
            0,
            Label::new(file, span, format!("`{near}` is defined here")),
        );
        self
    }
}
