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
use toml::Spanned;

use crate::diag::Severity;

/// The workload files of a service directory (`seven-file-pattern`): one
/// of them is enough.
pub const SERVICE_WORKLOAD_FILES: [&str; 3] =
    ["deployment.yaml", "statefulset.yaml", "cluster.yaml"];

/// The other standard files of a service directory: each one is required.
pub const SERVICE_FILES: &[&str] = &[
    "service.yaml",
    "configmap.yaml",
    "secret.yaml",
    "network-policy.yaml",
    "service-monitor.yaml",
    "pdb.yaml",
];

pub mod network;
mod profile;
pub mod render;
mod validate;

pub use profile::{DARK_TOWER_RULES, Profile};

use validate::{RuleRef, Spans, explain_toml_error, find_line, line_col};

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

/// A kind that embeds a pod template (`metadata` and `spec` with
/// `containers`), such as a custom resource of the repository's own:
///
/// ```toml
/// [[workload]]
/// kind = "Worker"
/// group = "batch.example.com"
/// template = "spec.podTemplate"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadKind {
    pub kind: String,
    /// Its API group; any group when unset.
    #[serde(default)]
    pub group: Option<String>,
    /// The pod template's path from the object's root, keys joined by `.`.
    pub template: String,
    /// `template` split at `.`, once.
    #[serde(skip)]
    path: Vec<String>,
}

/// Objects a controller creates from each object of a kind:
///
/// ```toml
/// [[controller]]
/// kind = "Database"
/// group = "db.example.com"
/// creates = [
///   { kind = "Secret", name = "{name}-credentials" },
///   { kind = "Service", name = "{name}" },
/// ]
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Controller {
    /// The kind of the object that makes them.
    pub kind: String,
    /// Its API group; any group when unset.
    #[serde(default)]
    pub group: Option<String>,
    pub creates: Vec<CreatedKind>,
}

/// One object a [`Controller`] creates, in the creating object's namespace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatedKind {
    pub kind: String,
    /// Its API group (empty for the core group: Secret, Service).
    #[serde(default)]
    pub group: String,
    /// Its name, with `{name}` for the creating object's name; any name
    /// when unset.
    #[serde(default)]
    pub name: Option<String>,
}

/// What to do with template files (see `workspace::templates`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Templates {
    /// Not read: they are not manifests until a tool fills them in.
    #[default]
    Skip,
    /// Read and checked like any YAML file.
    Check,
}

/// One environment: where its overlays live and how strict it is.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Directory holding one overlay per service, e.g. `overlays/production`;
    /// empty (the default): wherever the cluster's Flux Kustomizations
    /// point.
    #[serde(default)]
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
    /// The Kubernetes minor release this environment's cluster runs
    /// (`"1.33"`): objects are validated against its schemas.
    #[serde(default, rename = "kubernetes-version")]
    pub kubernetes_version: Option<String>,
    /// Found by [`Config::discover_environments`], not declared.
    #[serde(skip)]
    pub discovered: bool,
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
    /// Which conventions apply beyond upstream Kubernetes and Flux
    /// semantics (see [`Profile`]): `generic` unless the file says
    /// `profile = "dark-tower"`.
    #[serde(default)]
    pub profile: Profile,
    /// Container ports that carry QUIC and must be UDP (see
    /// [`Config::udp_ports`]).
    #[serde(default)]
    udp_ports: Option<Vec<i64>>,
    /// Globs of service directories that must follow the seven-file pattern.
    #[serde(default)]
    pub service_dirs: Option<Vec<String>>,
    /// Globs excluded from `service_dirs`.
    #[serde(default)]
    pub service_dirs_skip: Option<Vec<String>>,
    /// Image prefixes of our own services: probe-path and similar house
    /// conventions are checked only for these; third-party sidecars only need
    /// the probes to exist.
    #[serde(default)]
    own_images: Option<Vec<String>>,
    /// Largest file read, in bytes; bigger files are reported, not parsed.
    #[serde(default = "default_max_file_size")]
    pub max_file_size: u64,
    /// The expected traffic matrix (`traffic-matrix`, `dtlint graph`).
    #[serde(default)]
    pub network: Option<network::NetworkConfig>,
    /// Globs (relative to the root) of the services' config contracts
    /// (see [`Config::contracts`]).
    #[serde(default)]
    contracts: Option<Vec<String>>,
    /// Certificates found in Secrets (`certificate-self-signed`,
    /// `certificate-expiring`).
    #[serde(default)]
    pub certificates: Certificates,
    /// Kinds of the repository's own that embed a pod template
    /// (`[[workload]]`): every pod rule applies to them.
    #[serde(default, rename = "workload")]
    pub workloads: Vec<WorkloadKind>,
    /// What the repository's own controllers create (`[[controller]]`),
    /// beside the ones dtlint knows (see `model::created`).
    #[serde(default, rename = "controller")]
    pub controllers: Vec<Controller>,
    /// Template files (`{{ }}` placeholders, a Helm chart's `templates/`):
    /// `skip` (the default) or `check`.
    #[serde(default)]
    pub templates: Templates,
    /// Bounds on overlay builds (`[render]`: allow-paths, timeout-seconds,
    /// max-output-bytes); enforced by `render_guard`.
    #[serde(default)]
    pub render: render::RenderSettings,
    /// The Kubernetes minor release the clusters run (`"1.33"`), unless an
    /// environment says otherwise: objects are validated against its
    /// schemas. Default: the newest release in dtlint's catalog.
    #[serde(default, rename = "kubernetes-version")]
    pub kubernetes_version: Option<String>,
    /// CustomResourceDefinition files or directories (relative to the
    /// root) whose kinds are validated like the catalog's: the CRDs of the
    /// charts the repository installs, kept wherever the team keeps them.
    #[serde(default)]
    pub schemas: Vec<String>,
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

/// A list setting as written, else the profile's default.
fn or_profile(written: Option<&[String]>, default: &[&str]) -> Vec<String> {
    written.map_or_else(
        || default.iter().map(|s| (*s).to_string()).collect(),
        <[String]>::to_vec,
    )
}

fn default_max_file_size() -> u64 {
    16 * 1024 * 1024
}

impl Config {
    /// The defaults used when there is no `dtlint.toml`: the generic
    /// profile.
    pub fn defaults() -> Self {
        Self {
            max_file_size: default_max_file_size(),
            ..Self::default()
        }
    }

    /// The defaults of the `dark-tower` profile, as a `dtlint.toml` with
    /// only `profile = "dark-tower"` gives them.
    pub fn dark_tower() -> Self {
        Self {
            profile: Profile::DarkTower,
            ..Self::defaults()
        }
    }

    /// Container ports that carry QUIC and must be UDP: `udp_ports`, else
    /// the profile's (none in the generic profile).
    pub fn udp_ports(&self) -> &[i64] {
        self.udp_ports
            .as_deref()
            .unwrap_or(self.profile.defaults().udp_ports)
    }

    /// Globs of the services' config contracts: `contracts`, else the
    /// profile's.
    pub fn contracts(&self) -> Vec<String> {
        or_profile(self.contracts.as_deref(), self.profile.defaults().contracts)
    }

    pub fn service_dirs(&self) -> Vec<String> {
        or_profile(
            self.service_dirs.as_deref(),
            self.profile.defaults().service_dirs,
        )
    }

    pub fn service_dirs_skip(&self) -> Vec<String> {
        or_profile(
            self.service_dirs_skip.as_deref(),
            self.profile.defaults().service_dirs_skip,
        )
    }

    /// The pod template path of `kind` (in `group`) when `[[workload]]`
    /// declares it.
    pub fn workload_template(&self, kind: &str, group: &str) -> Option<&[String]> {
        self.workloads
            .iter()
            .find(|w| w.kind == kind && w.group.as_deref().is_none_or(|g| g == group))
            .map(|w| w.path.as_slice())
    }

    /// A rule's severity where `dtlint.toml` does not set it: the rule's
    /// default, or off when it is a convention of a profile this
    /// configuration does not use.
    pub fn default_level(&self, rule: &str, default: Severity) -> Option<Severity> {
        self.profile.enables(rule).then_some(default)
    }

    /// The compiled `service_dirs` and `service_dirs_skip` globs. `*` stops
    /// at `/`: `base/*` is `base/ac-service`, not a kustomization nested
    /// inside it such as `base/ac-service/migrations`.
    /// Is `dir` (relative to the root, `/`-separated) a service directory
    /// per `service_dirs`?
    pub fn is_service_dir(&self, dir: &str) -> bool {
        let (include, skip) = self.service_dir_globs();
        include.is_match(dir) && !skip.is_match(dir)
    }

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
        match &self.own_images {
            Some(own) => own.iter().any(|p| image.starts_with(p.as_str())),
            None => self
                .profile
                .defaults()
                .own_images
                .iter()
                .any(|p| image.starts_with(p)),
        }
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
        for w in &mut config.workloads {
            w.path = w.template.split('.').map(str::to_string).collect();
            if w.path.iter().any(String::is_empty) {
                return Err(ConfigError::Invalid {
                    path: display.to_string(),
                    line: find_line(text, &format!("\"{}\"", w.template)),
                    col: 1,
                    message: format!(
                        "workload template `{}` must be keys joined by `.`, such as `spec.template`",
                        w.template
                    ),
                });
            }
        }
        config.exemption_path_at = spans
            .exemptions
            .iter()
            .map(|e| e.path.as_ref().map(|p| line_col(text, p.span().start)))
            .collect();
        Ok(config)
    }

    /// Without declared environments, one per Flux cluster directory
    /// (`clusters/<name>/`), the layout `flux bootstrap` writes: its Flux
    /// Kustomizations say which overlays the cluster applies. Returns the
    /// names found; none when `dtlint.toml` declares environments.
    pub fn discover_environments(&mut self, root: &Path) -> Vec<String> {
        if !self.environments.is_empty() {
            return Vec::new();
        }
        let mut names: Vec<String> = std::fs::read_dir(root.join("clusters"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        for name in &names {
            self.add_discovered(name, &format!("clusters/{name}"));
        }
        names
    }

    /// An environment dtlint found rather than read: what the Flux
    /// Kustomizations of `cluster` apply.
    pub fn add_discovered(&mut self, name: &str, cluster: &str) {
        self.environments.insert(
            name.to_string(),
            Environment {
                cluster: Some(cluster.to_string()),
                discovered: true,
                ..Environment::default()
            },
        );
        self.environment_order.push(name.to_string());
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
    /// The Kubernetes release `env` runs, as configured (see
    /// [`Config::kubernetes_version`]).
    pub fn kubernetes_version_of(&self, env: Option<&str>) -> Option<&str> {
        env.and_then(|e| self.environments.get(e))
            .and_then(|e| e.kubernetes_version.as_deref())
            .or(self.kubernetes_version.as_deref())
    }

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
            let inside =
                |d: &str| !d.is_empty() && (path == d || path.starts_with(&format!("{d}/")));
            (inside(dir) || cluster.is_some_and(inside)).then_some(name.as_str())
        })
    }
}

/// Find `dtlint.toml` in `start` or its ancestors.
pub fn find(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join(FILE_NAME))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests;
