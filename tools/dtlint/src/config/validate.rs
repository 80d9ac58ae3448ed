//! Validation of a parsed `dtlint.toml`: every problem positioned at its
//! line and column, with the closest known name.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde::de::IgnoredAny;
use toml::Spanned;

use super::{Config, ConfigError, ConfigWarning};

/// A rule id named in `dtlint.toml`: a key of `[rules]` or
/// `[environments.X.rules]`, or an exemption's `rule`.
#[derive(Debug, Clone)]
pub(super) struct RuleRef {
    pub(super) id: String,
    /// Line and column.
    pub(super) at: (usize, usize),
    /// "in [rules]", for the message.
    pub(super) place: String,
}

impl RuleRef {
    pub(super) fn new(id: &str, at: (usize, usize), place: String) -> Self {
        Self {
            id: id.to_string(),
            at,
            place,
        }
    }
}

/// Where things are written in a `dtlint.toml` that has already been read
/// into a [`Config`]: the keys and values validation points at. Lenient on
/// purpose (no `deny_unknown_fields`): the [`Config`] pass reported those.
/// Only the keys of `rules` tables are wanted (`IgnoredAny` values).
#[allow(clippy::zero_sized_map_values)]
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Spans {
    pub(super) exclude: Vec<Spanned<String>>,
    pub(super) rules: BTreeMap<Spanned<String>, IgnoredAny>,
    pub(super) environments: BTreeMap<Spanned<String>, EnvironmentSpans>,
    #[serde(rename = "exemption")]
    pub(super) exemptions: Vec<ExemptionSpans>,
    pub(super) service_dirs: Vec<Spanned<String>>,
    pub(super) service_dirs_skip: Vec<Spanned<String>>,
    pub(super) contracts: Vec<Spanned<String>>,
    pub(super) certificates: CertificateSpans,
    #[serde(rename = "kubernetes-version")]
    pub(super) kubernetes_version: Option<Spanned<String>>,
}

#[allow(clippy::zero_sized_map_values)]
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct EnvironmentSpans {
    pub(super) rules: BTreeMap<Spanned<String>, IgnoredAny>,
    #[serde(rename = "kubernetes-version")]
    pub(super) kubernetes_version: Option<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct ExemptionSpans {
    pub(super) rule: Option<Spanned<String>>,
    pub(super) path: Option<Spanned<String>>,
    pub(super) reason: Option<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub(super) struct CertificateSpans {
    pub(super) self_signed_environments: Vec<Spanned<String>>,
}

impl Config {
    /// The first problem serde cannot see, as (byte offset, message): empty
    /// exemption reasons, invalid globs, unknown environments. Rule ids are
    /// checked by [`Config::check_rule_ids`] (this module does not know the
    /// rules).
    pub(super) fn validate(&self, spans: &Spans) -> Option<(usize, String)> {
        let mut problems: Vec<(usize, String)> = Vec::new();
        for (ex, at) in self.exemptions.iter().zip(&spans.exemptions) {
            let offset = |s: Option<&Spanned<String>>| s.map_or(0, |s| s.span().start);
            if ex.reason.trim().is_empty() {
                problems.push((
                    offset(at.reason.as_ref()),
                    format!("exemption for `{}` needs a non-empty reason", ex.rule),
                ));
            }
            if let (Some(glob), Some(at)) = (&ex.path, &at.path)
                && let Err(e) = globset::Glob::new(glob)
            {
                problems.push((
                    at.span().start,
                    format!("invalid glob `{glob}` in exemption `path`: {}", e.kind()),
                ));
            }
        }
        for (key, globs) in [
            ("service_dirs", &spans.service_dirs),
            ("service_dirs_skip", &spans.service_dirs_skip),
            ("contracts", &spans.contracts),
        ] {
            for g in globs {
                if let Err(e) = globset::Glob::new(g.get_ref()) {
                    problems.push((
                        g.span().start,
                        format!("invalid glob `{}` in `{key}`: {}", g.get_ref(), e.kind()),
                    ));
                }
            }
        }
        // `exclude` is read as gitignore-style overrides (see
        // `workspace::discover`): check it the same way.
        for g in &spans.exclude {
            if let Err(e) = ignore::overrides::OverrideBuilder::new("/")
                .add(&format!("!{}", g.get_ref()))
                .and_then(|b| b.build())
            {
                let why = globset::Glob::new(g.get_ref())
                    .err()
                    .map_or_else(|| e.to_string(), |e| e.kind().to_string());
                problems.push((
                    g.span().start,
                    format!("invalid glob `{}` in `exclude`: {why}", g.get_ref()),
                ));
            }
        }
        // `kubernetes-version`: a minor release, "1.33".
        let versions = spans.kubernetes_version.iter().chain(
            spans
                .environments
                .values()
                .filter_map(|e| e.kubernetes_version.as_ref()),
        );
        for v in versions {
            let ok = v
                .get_ref()
                .strip_prefix("1.")
                .is_some_and(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()));
            if !ok {
                problems.push((
                    v.span().start,
                    format!(
                        "`kubernetes-version` is a Kubernetes minor release such as \"1.33\", not `{}`",
                        v.get_ref()
                    ),
                ));
            }
        }
        if !self.environments.is_empty() {
            for env in &spans.certificates.self_signed_environments {
                let name = env.get_ref();
                if !self.environments.contains_key(name) {
                    problems.push((
                        env.span().start,
                        format!(
                            "`self-signed-environments` names `{name}`, which is not one of the [environments]{}",
                            hint(name, self.environments.keys().map(String::as_str))
                        ),
                    ));
                }
            }
        }
        problems.into_iter().min_by_key(|(offset, _)| *offset)
    }

    /// Every rule id the file names must be one of `known` (the rules' and
    /// the engine's ids): the first that is not is an error at its line and
    /// column, with the closest known id.
    pub fn check_rule_ids(&self, known: &[&str]) -> Result<(), ConfigError> {
        let Some(bad) = self
            .rule_refs
            .iter()
            .find(|r| !known.contains(&r.id.as_str()))
        else {
            return Ok(());
        };
        Err(ConfigError::Invalid {
            path: self.shown.clone(),
            line: bad.at.0,
            col: bad.at.1,
            message: format!(
                "unknown rule `{}` {}{}",
                bad.id,
                bad.place,
                hint(&bad.id, known.iter().copied())
            ),
        })
    }

    /// What is allowed but probably a mistake: an exemption `path` that
    /// matches no file under `root` (each reported once, at its line).
    /// Files are found as `dtlint check` finds them (`.gitignore` and hidden
    /// files skipped); the walk stops as soon as every glob has matched.
    pub fn warnings(&self, root: &Path) -> Vec<ConfigWarning> {
        let mut pending: Vec<(usize, globset::GlobMatcher)> = self
            .exemptions
            .iter()
            .enumerate()
            .filter_map(|(i, ex)| {
                let glob = globset::Glob::new(ex.path.as_deref()?).ok()?;
                Some((i, glob.compile_matcher()))
            })
            .collect();
        if pending.is_empty() {
            return Vec::new();
        }
        let walk = ignore::WalkBuilder::new(root)
            .hidden(true)
            .git_ignore(true)
            .git_global(false)
            .git_exclude(false)
            .require_git(false)
            .build();
        for entry in walk.flatten() {
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let Ok(rel) = entry.path().strip_prefix(root) else {
                continue;
            };
            let rel = rel.to_string_lossy().replace('\\', "/");
            pending.retain(|(_, m)| !m.is_match(&rel));
            if pending.is_empty() {
                return Vec::new();
            }
        }
        pending
            .into_iter()
            .map(|(i, _)| {
                let (line, col) = self
                    .exemption_path_at
                    .get(i)
                    .copied()
                    .flatten()
                    .unwrap_or((1, 1));
                ConfigWarning {
                    path: self.shown.clone(),
                    line,
                    col,
                    message: format!(
                        "exemption path `{}` (rule `{}`) matches no file in the repository",
                        self.exemptions[i].path.as_deref().unwrap_or_default(),
                        self.exemptions[i].rule
                    ),
                }
            })
            .collect()
    }
}

pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// `"; did you mean `x`?"`, or nothing when no option is close.
pub(super) fn hint<'a>(name: &str, options: impl IntoIterator<Item = &'a str>) -> String {
    crate::suggest::did_you_mean(name, options)
}

/// serde's "unknown field `x`, expected one of `a`, `b`" as a TOML user
/// reads it: "unknown key `x`; did you mean `a`?" when one is close.
pub(super) fn explain_toml_error(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some((field, expected)) = rest.split_once('`') else {
        return message.to_string();
    };
    // The expected names are the backquoted words after the field.
    let options = expected.split('`').skip(1).step_by(2);
    match crate::suggest::closest(field, options) {
        Some(known) => format!("unknown key `{field}`; did you mean `{known}`?"),
        None => format!("unknown key `{field}`{expected}"),
    }
}

pub(super) fn find_line(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map_or(1, |i| i + 1)
}
