//! Typed configuration from environment variables, and the env contract.
//!
//! Every service reads its configuration through an [`EnvReader`]. Each read
//! declares the variable (name, required or default, secret or not), so the
//! reader knows the full list of variables a loader consults. The service's
//! `config-contract.toml` is checked against that list by
//! [`check_contract`], which makes the contract file impossible to drift
//! from the code: a test loads the config and compares.
//!
//! Errors always name the variable; values of secret variables never appear
//! in errors or logs.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use secrecy::SecretString;
use serde::Deserialize;

/// A missing or malformed environment variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {name} is required but not set")]
    Missing { name: String },
    #[error("environment variable {name} is malformed: {reason}")]
    Malformed { name: String, reason: String },
}

impl ConfigError {
    /// The variable the error is about.
    pub fn variable(&self) -> &str {
        match self {
            Self::Missing { name } | Self::Malformed { name, .. } => name,
        }
    }

    pub fn malformed(name: &str, reason: impl Into<String>) -> Self {
        Self::Malformed {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }
}

/// How a variable was declared by the loader; compared with the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarSpec {
    pub name: String,
    pub required: bool,
    pub secret: bool,
    pub default: Option<String>,
    /// Another variable whose value is used when this one is unset
    /// (for example `MC_ID` falls back to `HOSTNAME`).
    pub default_from: Option<String>,
}

type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Reads variables from a lookup function and records every declaration.
pub struct EnvReader {
    lookup: Lookup,
    declared: Mutex<Vec<VarSpec>>,
}

impl fmt::Debug for EnvReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvReader").finish_non_exhaustive()
    }
}

impl EnvReader {
    /// Reads the process environment.
    pub fn from_process() -> Self {
        Self::new(|name| std::env::var(name).ok())
    }

    /// Reads from a map (tests, the contract check).
    pub fn from_map(map: HashMap<String, String>) -> Self {
        Self::new(move |name| map.get(name).cloned())
    }

    /// Reads from `(name, value)` pairs (the services' config tests).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self::from_map(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    pub fn new(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self {
            lookup: Box::new(lookup),
            declared: Mutex::new(Vec::new()),
        }
    }

    /// The variables declared so far, in declaration order.
    pub fn declared(&self) -> Vec<VarSpec> {
        self.declared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn declare(&self, spec: VarSpec) {
        let mut declared = self
            .declared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !declared.iter().any(|d| d.name == spec.name) {
            declared.push(spec);
        }
    }

    /// An empty value counts as unset: Kubernetes renders a Secret key with
    /// an empty value as an empty variable, which is never a useful value.
    fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// A required, non-secret variable parsed with `FromStr`.
    pub fn required<T>(&self, name: &str) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.declare(VarSpec {
            name: name.to_owned(),
            required: true,
            secret: false,
            default: None,
            default_from: None,
        });
        let raw = self.raw(name).ok_or_else(|| ConfigError::Missing {
            name: name.to_owned(),
        })?;
        parse(name, &raw)
    }

    /// An optional, non-secret variable with a default (also parsed, so a
    /// bad default is caught by the contract test).
    pub fn optional<T>(&self, name: &str, default: &str) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.declare(VarSpec {
            name: name.to_owned(),
            required: false,
            secret: false,
            default: Some(default.to_owned()),
            default_from: None,
        });
        let raw = self.raw(name).unwrap_or_else(|| default.to_owned());
        parse(name, &raw)
    }

    /// An optional variable that falls back to another variable's value.
    pub fn optional_from<T>(&self, name: &str, fallback: &str) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.declare(VarSpec {
            name: name.to_owned(),
            required: false,
            secret: false,
            default: None,
            default_from: Some(fallback.to_owned()),
        });
        if let Some(raw) = self.raw(name) {
            return parse(name, &raw);
        }
        let raw = self.raw(fallback).ok_or_else(|| ConfigError::Missing {
            name: format!("{name} (or {fallback})"),
        })?;
        parse(name, &raw)
    }

    /// A required secret. The value is wrapped at once and never printed.
    pub fn secret(&self, name: &str) -> Result<SecretString, ConfigError> {
        self.declare(VarSpec {
            name: name.to_owned(),
            required: true,
            secret: true,
            default: None,
            default_from: None,
        });
        self.raw(name)
            .map(SecretString::from)
            .ok_or_else(|| ConfigError::Missing {
                name: name.to_owned(),
            })
    }
}

fn parse<T>(name: &str, raw: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    // Only non-secret variables are parsed here, so echoing the value helps.
    raw.trim()
        .parse::<T>()
        .map_err(|e| ConfigError::malformed(name, format!("{e} (value {raw:?})")))
}

/// A whole number of seconds within bounds, for timeouts and thresholds.
pub fn seconds_in_range(
    name: &str,
    value: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<std::time::Duration, ConfigError> {
    if range.contains(&value) {
        Ok(std::time::Duration::from_secs(value))
    } else {
        Err(ConfigError::malformed(
            name,
            format!(
                "{value} is out of range {}..={} seconds",
                range.start(),
                range.end()
            ),
        ))
    }
}

/// `value` of variable `name` if it is an `http://` or `https://` URL (the
/// services' endpoints of AC and GC), else an error naming the variable.
pub fn http_url(name: &str, value: String) -> Result<String, ConfigError> {
    let ok = (value.starts_with("http://") || value.starts_with("https://"))
        && value.len() > "https://".len()
        && !value.contains(char::is_whitespace);
    if ok {
        Ok(value)
    } else {
        Err(ConfigError::malformed(
            name,
            format!("{value:?} is not an http:// or https:// URL"),
        ))
    }
}

/// One `[[env]]` entry of a service's `config-contract.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ContractEntry {
    pub name: String,
    pub required: bool,
    pub secret: bool,
    pub description: String,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub default_from: Option<String>,
}

/// A service's env contract: what the manifests must provide.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    pub service: String,
    pub env: Vec<ContractEntry>,
}

impl Contract {
    pub fn parse(text: &str) -> Result<Self, String> {
        let contract: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut seen = std::collections::HashSet::new();
        for entry in &contract.env {
            if !seen.insert(entry.name.as_str()) {
                return Err(format!("{} is listed twice", entry.name));
            }
            if entry.description.trim().is_empty() {
                return Err(format!("{} has an empty description", entry.name));
            }
            if entry.required && (entry.default.is_some() || entry.default_from.is_some()) {
                return Err(format!("{} is required but has a default", entry.name));
            }
        }
        Ok(contract)
    }
}

/// Ids of controllers (`MC_ID`/`MH_ID`, usually a pod name) as GC's
/// registry accepts them: 1 to 128 characters of `[A-Za-z0-9-_.:]`.
pub fn valid_controller_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// An advertised `host:port` as GC's registry accepts it: no scheme or path,
/// port 1..=65535, IPv6 hosts in brackets.
pub fn valid_host_port(address: &str) -> bool {
    if address.is_empty() || address.len() > 255 || address.contains("://") {
        return false;
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return false;
    };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    };
    port_ok && host_ok
}

/// Compares what a loader declared with the contract file. Returns every
/// difference, one per line, so a failing test says exactly what drifted.
pub fn check_contract(contract: &Contract, declared: &[VarSpec]) -> Result<(), String> {
    let in_contract: BTreeMap<&str, &ContractEntry> =
        contract.env.iter().map(|e| (e.name.as_str(), e)).collect();
    let in_code: BTreeMap<&str, &VarSpec> = declared.iter().map(|d| (d.name.as_str(), d)).collect();
    let mut problems = Vec::new();
    for (name, spec) in &in_code {
        let Some(entry) = in_contract.get(name) else {
            problems.push(format!(
                "{name}: read by the loader but missing from the contract"
            ));
            continue;
        };
        if entry.required != spec.required {
            problems.push(format!(
                "{name}: contract says required = {}, loader says {}",
                entry.required, spec.required
            ));
        }
        if entry.secret != spec.secret {
            problems.push(format!(
                "{name}: contract says secret = {}, loader says {}",
                entry.secret, spec.secret
            ));
        }
        if entry.default != spec.default {
            problems.push(format!(
                "{name}: contract default {:?}, loader default {:?}",
                entry.default, spec.default
            ));
        }
        if entry.default_from != spec.default_from {
            problems.push(format!(
                "{name}: contract default_from {:?}, loader default_from {:?}",
                entry.default_from, spec.default_from
            ));
        }
    }
    for name in in_contract.keys() {
        if !in_code.contains_key(name) {
            problems.push(format!(
                "{name}: in the contract but never read by the loader"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn missing_required_names_the_variable() {
        let r = EnvReader::from_pairs(&[]);
        let err = r.required::<String>("GC_REGION").unwrap_err();
        assert_eq!(err.variable(), "GC_REGION");
        assert!(err.to_string().contains("GC_REGION"));
    }

    #[test]
    fn empty_value_counts_as_missing() {
        let r = EnvReader::from_pairs(&[("GC_REGION", "  ")]);
        assert!(matches!(
            r.required::<String>("GC_REGION"),
            Err(ConfigError::Missing { .. })
        ));
    }

    #[test]
    fn malformed_names_variable_and_value() {
        let r = EnvReader::from_pairs(&[("MC_STALENESS_THRESHOLD_SECONDS", "soon")]);
        let err = r
            .optional::<u64>("MC_STALENESS_THRESHOLD_SECONDS", "30")
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("MC_STALENESS_THRESHOLD_SECONDS"), "{msg}");
        assert!(msg.contains("soon"), "{msg}");
    }

    #[test]
    fn default_applies_when_unset() {
        let r = EnvReader::from_pairs(&[]);
        let v: u64 = r.optional("X", "30").unwrap();
        assert_eq!(v, 30);
    }

    #[test]
    fn fallback_variable_is_used() {
        let r = EnvReader::from_pairs(&[("HOSTNAME", "mc-0")]);
        let v: String = r.optional_from("MC_ID", "HOSTNAME").unwrap();
        assert_eq!(v, "mc-0");
        let r = EnvReader::from_pairs(&[("HOSTNAME", "mc-0"), ("MC_ID", "mc-7")]);
        let v: String = r.optional_from("MC_ID", "HOSTNAME").unwrap();
        assert_eq!(v, "mc-7");
    }

    #[test]
    fn secrets_never_print() {
        let r = EnvReader::from_pairs(&[("DATABASE_URL", "postgres://u:hunter2@db/x")]);
        let s = r.secret("DATABASE_URL").unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.expose_secret(), "postgres://u:hunter2@db/x");
    }

    #[test]
    fn contract_check_reports_every_drift() {
        let contract = Contract::parse(
            r#"
service = "x"
[[env]]
name = "A"
required = true
secret = true
description = "a"
[[env]]
name = "B"
required = false
secret = false
default = "1"
description = "b"
[[env]]
name = "GONE"
required = true
secret = false
description = "never read"
"#,
        )
        .unwrap();
        let r = EnvReader::from_pairs(&[("A", "x"), ("NEW", "y")]);
        let _ = r.secret("A");
        let _ = r.optional::<u32>("B", "2");
        let _ = r.required::<String>("NEW");
        let err = check_contract(&contract, &r.declared()).unwrap_err();
        assert!(err.contains("B: contract default"), "{err}");
        assert!(err.contains("NEW: read by the loader"), "{err}");
        assert!(
            err.contains("GONE: in the contract but never read"),
            "{err}"
        );
    }

    #[test]
    fn contract_rejects_required_with_default_and_duplicates() {
        let dup = "service = \"x\"\n[[env]]\nname = \"A\"\nrequired = false\nsecret = false\ndescription = \"a\"\n[[env]]\nname = \"A\"\nrequired = false\nsecret = false\ndescription = \"a\"\n";
        assert!(Contract::parse(dup).unwrap_err().contains("twice"));
        let bad = "service = \"x\"\n[[env]]\nname = \"A\"\nrequired = true\nsecret = false\ndefault = \"1\"\ndescription = \"a\"\n";
        assert!(Contract::parse(bad).unwrap_err().contains("default"));
    }

    #[test]
    fn range_check_names_variable() {
        let err = seconds_in_range("AC_DRAIN_SECONDS", 9999, 0..=300).unwrap_err();
        assert!(err.to_string().contains("AC_DRAIN_SECONDS"));
        assert_eq!(
            seconds_in_range("AC_DRAIN_SECONDS", 5, 0..=300).unwrap(),
            std::time::Duration::from_secs(5)
        );
    }
}
