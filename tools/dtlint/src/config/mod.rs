//! `dtlint.toml`: rule severities, environments, exclusions, exemptions.
//!
//! The file is optional; without it every rule runs at its default severity.
//! A bad config is a usage error (exit 2) naming the file, the line and the
//! column: unknown keys and unknown rule ids (with the closest known one),
//! bad severities, invalid globs. An exemption whose `path` matches no file
//! is a warning ([`Config::warnings`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IgnoredAny;
use toml::Spanned;

use crate::diag::Severity;

pub mod network;
pub mod render;

pub const FILE_NAME: &str = "dtlint.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{col}: {message}")]
    Invalid {
        path: String,
        line: usize,
        col: usize,
        message: String,
    },
}

/// Something in `dtlint.toml` that is allowed but probably a mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub path: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: warning: {}",
            self.path, self.line, self.col, self.message
        )
    }
}

/// A rule's severity as configured: a level, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level(pub Option<Severity>);

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Severity::parse_setting(&s).map(Level).ok_or_else(|| {
            const LEVELS: [&str; 4] = ["error", "warning", "info", "off"];
            serde::de::Error::custom(match crate::suggest::closest(&s, LEVELS) {
                Some(level) => format!("unknown severity `{s}`; did you mean `{level}`?"),
                None => format!("unknown severity `{s}`; expected error, warning, info or off"),
            })
        })
    }
}

/// One environment: where its overlays live and how strict it is.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Directory holding one overlay per service, e.g. `overlays/production`.
    pub overlays: String,
    /// Flux cluster directory, e.g. `clusters/production`.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Severity overrides for this environment.
    #[serde(default)]
    pub rules: BTreeMap<String, Level>,
    /// Minimum replicas for every workload.
    #[serde(default)]
    pub min_replicas: Option<i64>,
    /// Expected requests and limits of our own containers, by service
    /// (`app.kubernetes.io/name`), with `"*"` for every other service.
    #[serde(default)]
    pub resources: BTreeMap<String, Sizing>,
}

/// Requests and limits, e.g. `requests = { cpu = "50m", memory = "128Mi" }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sizing {
    #[serde(default)]
    pub requests: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
}

/// `[certificates]`: what the certificate rules accept.
///
/// ```toml
/// [certificates]
/// min-validity-days = 30
/// self-signed-environments = ["development"]
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Certificates {
    /// A certificate that expires within this many days is reported.
    #[serde(default = "default_min_validity_days")]
    pub min_validity_days: u32,
    /// Environments where a self-signed certificate is acceptable; unset
    /// means `development` (see [`Certificates::allows_self_signed`]).
    #[serde(default)]
    pub self_signed_environments: Option<Vec<String>>,
}

fn default_min_validity_days() -> u32 {
    30
}

impl Default for Certificates {
    fn default() -> Self {
        Self {
            min_validity_days: default_min_validity_days(),
            self_signed_environments: None,
        }
    }
}

impl Certificates {
    /// May a certificate in `env` be self-signed?
    pub fn allows_self_signed(&self, env: &str) -> bool {
        match &self.self_signed_environments {
            Some(envs) => envs.iter().any(|e| e == env),
            None => env == "development",
        }
    }
}

/// A finding that is accepted, with the reason why.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exemption {
    pub rule: String,
    /// Glob over the file path the finding points at (relative to the root).
    #[serde(default)]
    pub path: Option<String>,
    /// `Kind/name` of the resource, when only one resource is exempt.
    #[serde(default)]
    pub resource: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Globs (relative to the root) that are never read.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Default severity overrides.
    #[serde(default)]
    pub rules: BTreeMap<String, Level>,
    #[serde(default)]
    pub environments: BTreeMap<String, Environment>,
    #[serde(default, rename = "exemption")]
    pub exemptions: Vec<Exemption>,
    /// Container ports that carry QUIC and must be UDP.
    #[serde(default = "default_udp_ports")]
    pub udp_ports: Vec<i64>,
    /// Globs of service directories that must follow the seven-file pattern.
    #[serde(default)]
    pub service_dirs: Option<Vec<String>>,
    /// Globs excluded from `service_dirs`.
    #[serde(default)]
    pub service_dirs_skip: Option<Vec<String>>,
    /// Image prefixes of our own services: probe-path and similar house
    /// conventions are checked only for these; third-party sidecars only need
    /// the probes to exist.
    #[serde(default = "default_own_images")]
    pub own_images: Vec<String>,
    /// Largest file read, in bytes; bigger files are reported, not parsed.
    #[serde(default = "default_max_file_size")]
    pub max_file_size: u64,
    /// The expected traffic matrix (`traffic-matrix`, `dtlint graph`).
    #[serde(default)]
    pub network: Option<network::NetworkConfig>,
    /// Globs (relative to the root) of the services' config contracts.
    #[serde(default = "default_contracts")]
    pub contracts: Vec<String>,
    /// Certificates found in Secrets (`certificate-self-signed`,
    /// `certificate-expiring`).
    #[serde(default)]
    pub certificates: Certificates,
    /// Bounds on overlay builds (`[render]`: allow-paths, timeout-seconds,
    /// max-output-bytes); enforced by `render_guard`.
    #[serde(default)]
    pub render: render::RenderSettings,
    /// Where the file was read from, for messages.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// Environment names in the order `dtlint.toml` declares them: findings
    /// list their environments in this order (development, staging,
    /// production), not alphabetically.
    #[serde(skip)]
    environment_order: Vec<String>,
    /// Every rule id the file names, where (see [`Config::check_rule_ids`]).
    #[serde(skip)]
    rule_refs: Vec<RuleRef>,
    /// The file's name in messages.
    #[serde(skip)]
    shown: String,
    /// Where each exemption's `path` is written (line, column), for the
    /// warning about a glob that matches nothing.
    #[serde(skip)]
    exemption_path_at: Vec<Option<(usize, usize)>>,
    /// `service_dirs` and `service_dirs_skip`, compiled once.
    #[serde(skip)]
    service_dir_globs: std::sync::OnceLock<(globset::GlobSet, globset::GlobSet)>,
}

/// A rule id named in `dtlint.toml`: a key of `[rules]` or
/// `[environments.X.rules]`, or an exemption's `rule`.
#[derive(Debug, Clone)]
struct RuleRef {
    id: String,
    /// Line and column.
    at: (usize, usize),
    /// "in [rules]", for the message.
    place: String,
}

impl RuleRef {
    fn new(id: &str, at: (usize, usize), place: String) -> Self {
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
struct Spans {
    exclude: Vec<Spanned<String>>,
    rules: BTreeMap<Spanned<String>, IgnoredAny>,
    environments: BTreeMap<Spanned<String>, EnvironmentSpans>,
    #[serde(rename = "exemption")]
    exemptions: Vec<ExemptionSpans>,
    service_dirs: Vec<Spanned<String>>,
    service_dirs_skip: Vec<Spanned<String>>,
    contracts: Vec<Spanned<String>>,
    certificates: CertificateSpans,
}

#[allow(clippy::zero_sized_map_values)]
#[derive(Default, Deserialize)]
#[serde(default)]
struct EnvironmentSpans {
    rules: BTreeMap<Spanned<String>, IgnoredAny>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ExemptionSpans {
    rule: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    reason: Option<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
struct CertificateSpans {
    self_signed_environments: Vec<Spanned<String>>,
}

fn default_udp_ports() -> Vec<i64> {
    vec![4433, 4434]
}

fn default_own_images() -> Vec<String> {
    vec!["ghcr.io/dark-tower/".into()]
}

fn default_max_file_size() -> u64 {
    16 * 1024 * 1024
}

fn default_contracts() -> Vec<String> {
    vec!["services/*/config-contract.toml".into()]
}

impl Config {
    /// The defaults used when there is no `dtlint.toml`.
    pub fn defaults() -> Self {
        Self {
            udp_ports: default_udp_ports(),
            own_images: default_own_images(),
            max_file_size: default_max_file_size(),
            contracts: default_contracts(),
            ..Self::default()
        }
    }

    pub fn service_dirs(&self) -> Vec<String> {
        self.service_dirs
            .clone()
            .unwrap_or_else(|| vec!["base/*".into()])
    }

    pub fn service_dirs_skip(&self) -> Vec<String> {
        self.service_dirs_skip
            .clone()
            .unwrap_or_else(|| vec!["base/platform".into(), "base/platform/**".into()])
    }

    /// The compiled `service_dirs` and `service_dirs_skip` globs. `*` stops
    /// at `/`: `base/*` is `base/ac-service`, not a kustomization nested
    /// inside it such as `base/ac-service/migrations`.
    pub fn service_dir_globs(&self) -> &(globset::GlobSet, globset::GlobSet) {
        self.service_dir_globs.get_or_init(|| {
            let compile = |pats: Vec<String>| {
                let mut b = globset::GlobSetBuilder::new();
                for p in pats {
                    // An invalid glob matches nothing, as before.
                    if let Ok(g) = globset::GlobBuilder::new(&p)
                        .literal_separator(true)
                        .build()
                    {
                        b.add(g);
                    }
                }
                b.build().unwrap_or_else(|_| globset::GlobSet::empty())
            };
            (
                compile(self.service_dirs()),
                compile(self.service_dirs_skip()),
            )
        })
    }

    /// Is `image` one of our own service images?
    pub fn is_own_image(&self, image: &str) -> bool {
        self.own_images
            .iter()
            .any(|p| image.starts_with(p.as_str()))
    }

    /// Read `dtlint.toml` from `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_as(path, &path.display().to_string())
    }

    /// Read `dtlint.toml` from `path`, naming it `display` in messages (a
    /// path relative to the current directory reads best).
    pub fn load_as(path: &Path, display: &str) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: display.to_string(),
            source,
        })?;
        Self::parse(&text, display).map(|mut c| {
            c.source = Some(path.to_path_buf());
            c
        })
    }

    pub fn parse(text: &str, display: &str) -> Result<Self, ConfigError> {
        let invalid = |offset: usize, message: String| {
            let (line, col) = line_col(text, offset);
            ConfigError::Invalid {
                path: display.to_string(),
                line,
                col,
                message,
            }
        };
        let mut config: Config = toml::from_str(text).map_err(|e| {
            invalid(
                e.span().map_or(0, |s| s.start),
                explain_toml_error(e.message()),
            )
        })?;
        // The same text again, for the positions of what is checked below.
        // It parsed as a `Config`, so it parses as the lenient `Spans`.
        let spans: Spans = toml::from_str(text).unwrap_or_default();
        if let Some((offset, message)) = config.validate(&spans) {
            return Err(invalid(offset, message));
        }
        if let Some(net) = &config.network
            && let Err((needle, message)) = net.validate()
        {
            return Err(ConfigError::Invalid {
                path: display.to_string(),
                line: find_line(text, &needle),
                col: 1,
                message,
            });
        }
        let mut envs: Vec<_> = spans.environments.keys().collect();
        envs.sort_by_key(|k| k.span().start);
        config.environment_order = envs
            .into_iter()
            .map(|k| k.get_ref().clone())
            .filter(|e| config.environments.contains_key(e))
            .collect();
        let at = |s: &Spanned<String>| line_col(text, s.span().start);
        let mut refs: Vec<RuleRef> = spans
            .rules
            .keys()
            .map(|k| RuleRef::new(k.get_ref(), at(k), "in [rules]".into()))
            .collect();
        for (env, e) in &spans.environments {
            refs.extend(e.rules.keys().map(|k| {
                let place = format!("in [environments.{}.rules]", env.get_ref());
                RuleRef::new(k.get_ref(), at(k), place)
            }));
        }
        refs.extend(spans.exemptions.iter().filter_map(|e| {
            let rule = e.rule.as_ref()?;
            Some(RuleRef::new(
                rule.get_ref(),
                at(rule),
                "in an exemption".into(),
            ))
        }));
        refs.sort_by_key(|r| r.at);
        config.rule_refs = refs;
        config.shown = display.to_string();
        config.exemption_path_at = spans
            .exemptions
            .iter()
            .map(|e| e.path.as_ref().map(|p| line_col(text, p.span().start)))
            .collect();
        Ok(config)
    }

    /// The first problem serde cannot see, as (byte offset, message): empty
    /// exemption reasons, invalid globs, unknown environments. Rule ids are
    /// checked by [`Config::check_rule_ids`] (this module does not know the
    /// rules).
    fn validate(&self, spans: &Spans) -> Option<(usize, String)> {
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

    /// Environments in declaration order (see [`Config::environment_order`]).
    pub fn environments_in_order(&self) -> impl Iterator<Item = (&str, &Environment)> {
        let declared = self
            .environment_order
            .iter()
            .filter_map(|n| Some((n.as_str(), self.environments.get(n)?)));
        // Environments added in code (tests) after parsing come last.
        let rest = self
            .environments
            .iter()
            .filter(|(n, _)| !self.environment_order.contains(n))
            .map(|(n, e)| (n.as_str(), e));
        declared.chain(rest)
    }

    /// Position of `env` in declaration order, for sorting.
    pub fn environment_rank(&self, env: &str) -> usize {
        self.environments_in_order()
            .position(|(n, _)| n == env)
            .unwrap_or(usize::MAX)
    }

    /// The environment whose overlay directory contains `path` (relative to the root).
    pub fn environment_of(&self, path: &str) -> Option<&str> {
        self.environments.iter().find_map(|(name, env)| {
            let dir = env.overlays.trim_end_matches('/');
            let cluster = env.cluster.as_deref().map(|c| c.trim_end_matches('/'));
            let inside = |d: &str| path == d || path.starts_with(&format!("{d}/"));
            (inside(dir) || cluster.is_some_and(inside)).then_some(name.as_str())
        })
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// `"; did you mean `x`?"`, or nothing when no option is close.
fn hint<'a>(name: &str, options: impl IntoIterator<Item = &'a str>) -> String {
    crate::suggest::did_you_mean(name, options)
}

/// serde's "unknown field `x`, expected one of `a`, `b`" as a TOML user
/// reads it: "unknown key `x`; did you mean `a`?" when one is close.
fn explain_toml_error(message: &str) -> String {
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

fn find_line(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map_or(1, |i| i + 1)
}

/// Find `dtlint.toml` in `start` or its ancestors.
pub fn find(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join(FILE_NAME))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_severity_is_positioned() {
        let err = Config::parse("[rules]\nlatest-tag = \"loud\"\n", "dtlint.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("dtlint.toml:2:"), "{msg}");
        assert!(msg.contains("unknown severity `loud`"), "{msg}");
    }

    #[test]
    fn exemptions_need_a_reason() {
        let err = Config::parse(
            "[[exemption]]\nrule = \"latest-tag\"\nreason = \" \"\n",
            "dtlint.toml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("needs a non-empty reason"));
        let err = Config::parse("[[exemption]]\nrule = \"latest-tag\"\n", "d.toml").unwrap_err();
        assert!(err.to_string().contains("reason"), "{err}");
    }

    #[test]
    fn certificates_have_defaults_and_name_known_environments() {
        let c = Config::parse("[environments.staging]\noverlays = \"o/s\"\n", "d.toml").unwrap();
        assert_eq!(c.certificates.min_validity_days, 30);
        assert!(c.certificates.allows_self_signed("development"));
        assert!(!c.certificates.allows_self_signed("staging"));
        let c = Config::parse(
            "[environments.qa]\noverlays = \"o/q\"\n[certificates]\nmin-validity-days = 7\nself-signed-environments = [\"qa\"]\n",
            "d.toml",
        )
        .unwrap();
        assert_eq!(c.certificates.min_validity_days, 7);
        assert!(c.certificates.allows_self_signed("qa"));
        assert!(!c.certificates.allows_self_signed("development"));
        let err = Config::parse(
            "[environments.qa]\noverlays = \"o/q\"\n[certificates]\nself-signed-environments = [\"dev\"]\n",
            "d.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("d.toml:4:"), "{err}");
        assert!(err.contains("`dev`"), "{err}");
        let err = Config::parse("[certificates]\nmin_validity_days = 7\n", "d.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("min_validity_days"), "{err}");
    }

    #[test]
    fn rule_ids_are_checked_against_the_known_ones_at_their_position() {
        let known = ["latest-tag", "run-as-root"];
        let c = Config::parse(
            "[rules]\nlatest-tag = \"off\"\n[environments.p]\noverlays = \"o/p\"\n[environments.p.rules]\nrun-as-root = \"error\"\n[[exemption]]\nrule = \"latest-tag\"\nreason = \"r\"\n",
            "d.toml",
        )
        .unwrap();
        c.check_rule_ids(&known).unwrap();
        let err = |text: &str| {
            Config::parse(text, "d.toml")
                .unwrap()
                .check_rule_ids(&known)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("[rules]\nlatest-tagg = \"off\"\n"),
            "d.toml:2:1: unknown rule `latest-tagg` in [rules]; did you mean `latest-tag`?"
        );
        assert_eq!(
            err("[[exemption]]\nrule = \"nothing-like-it\"\nreason = \"r\"\n"),
            "d.toml:2:8: unknown rule `nothing-like-it` in an exemption"
        );
        // The first in the file, whatever table it is in.
        assert!(
            err("[environments.p]\noverlays = \"o\"\n[environments.p.rules]\nrun-as-rot = \"off\"\n[rules]\nlatest-tagg = \"off\"\n")
                .starts_with("d.toml:4:1: unknown rule `run-as-rot` in [environments.p.rules]")
        );
    }

    #[test]
    fn unknown_keys_name_the_closest_key() {
        let err = Config::parse("[[exemption]]\nrul = \"x\"\nreason = \"r\"\n", "d.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "d.toml:2:1: unknown key `rul`; did you mean `rule`?");
        let err = Config::parse("[network]\nnamespce = \"x\"\n", "d.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "d.toml:2:1: unknown key `namespce`; did you mean `namespace`?"
        );
    }

    #[test]
    fn exemption_globs_that_match_nothing_are_warnings() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("base/gc")).unwrap();
        std::fs::write(dir.join("base/gc/deployment.yaml"), "").unwrap();
        let c = Config::parse(
            "[[exemption]]\nrule = \"a\"\npath = \"base/**/deployment.yaml\"\nreason = \"r\"\n[[exemption]]\nrule = \"b\"\nreason = \"r\"\n[[exemption]]\nrule = \"c\"\npath = \"overlays/**\"\nreason = \"r\"\n",
            "d.toml",
        )
        .unwrap();
        let warnings: Vec<String> = c.warnings(dir).iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [
                "d.toml:10:8: warning: exemption path `overlays/**` (rule `c`) matches no file in the repository"
            ]
        );
    }

    #[test]
    fn environments_keep_their_declaration_order() {
        let c = Config::parse(
            "[environments.development]\noverlays = \"o/d\"\n[environments.staging]\noverlays = \"o/s\"\n[environments.production]\noverlays = \"o/p\"\n[environments.staging.resources]\n",
            "d.toml",
        )
        .unwrap();
        let names: Vec<&str> = c.environments_in_order().map(|(n, _)| n).collect();
        assert_eq!(names, ["development", "staging", "production"]);
        assert!(c.environment_rank("staging") < c.environment_rank("production"));
        assert_eq!(c.environment_rank("qa"), usize::MAX);
    }

    #[test]
    fn environments_match_by_directory() {
        let c = Config::parse(
            "[environments.production]\noverlays = \"overlays/production\"\ncluster = \"clusters/production\"\n",
            "d.toml",
        )
        .unwrap();
        assert_eq!(
            c.environment_of("overlays/production/gc/k.yaml"),
            Some("production")
        );
        assert_eq!(
            c.environment_of("clusters/production/apps.yaml"),
            Some("production")
        );
        assert_eq!(c.environment_of("overlays/production-old/x.yaml"), None);
    }
}
