//! ac-service configuration, from environment variables only.
//!
//! The variables are listed in `config-contract.toml` next to `Cargo.toml`;
//! the test at the bottom keeps the two identical.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use common::config::{ConfigError, EnvReader, seconds_in_range};
use common::telemetry::DEFAULT_LOG_FILTER;
use common::{ExposeSecret, SecretString};

/// The AES-256-GCM key that encrypts signing keys at rest. Never printed.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses `AC_MASTER_KEY`: base64 (standard or URL-safe, padding
    /// optional) of exactly 32 bytes. The error never echoes the value.
    pub fn parse(secret: &SecretString) -> Result<Self, ConfigError> {
        let text = secret.expose_secret().trim();
        let decoded = [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or_else(|| ConfigError::malformed("AC_MASTER_KEY", "is not valid base64"))?;
        let len = decoded.len();
        let bytes: [u8; 32] = decoded.try_into().map_err(|_| {
            ConfigError::malformed(
                "AC_MASTER_KEY",
                format!("must decode to exactly 32 bytes, got {len}"),
            )
        })?;
        Ok(Self(bytes))
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: SecretString,
    /// Where migrations run: a direct session to the primary (see
    /// `common::db::migrate`), never the transaction pooler of DATABASE_URL.
    pub database_migration_url: SecretString,
    pub bind_address: SocketAddr,
    pub master_key: MasterKey,
    pub cluster_name: String,
    pub bcrypt_cost: u32,
    pub drain: Duration,
    pub log_filter: String,
    /// The service clients declared in git (`declared`).
    pub clients_file: Option<std::path::PathBuf>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_reader(&EnvReader::from_process())
    }

    pub fn from_reader(env: &EnvReader) -> Result<Self, ConfigError> {
        let database_url = env.secret("DATABASE_URL")?;
        let database_migration_url = env.secret("DATABASE_MIGRATION_URL")?;
        let bind_address = env.optional("BIND_ADDRESS", "0.0.0.0:8082")?;
        let master_key = MasterKey::parse(&env.secret("AC_MASTER_KEY")?)?;
        let cluster_name: String = env.required("CLUSTER_NAME")?;
        if !cluster_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            || cluster_name.len() > 63
        {
            return Err(ConfigError::malformed(
                "CLUSTER_NAME",
                "use at most 63 letters, digits, '-', '_' or '.'",
            ));
        }
        let bcrypt_cost: u32 = env.optional("BCRYPT_COST", "12")?;
        if !(4..=31).contains(&bcrypt_cost) {
            return Err(ConfigError::malformed(
                "BCRYPT_COST",
                format!("{bcrypt_cost} is out of range 4..=31"),
            ));
        }
        let drain: u64 = env.optional("AC_DRAIN_SECONDS", "10")?;
        let drain = seconds_in_range("AC_DRAIN_SECONDS", drain, 0..=300)?;
        let log_filter: String = env.optional("RUST_LOG", DEFAULT_LOG_FILTER)?;
        common::telemetry::parse_filter(&log_filter)?;
        let clients_file: String = env.optional("AC_CLIENTS_FILE", "")?;
        let clients_file = (!clients_file.is_empty()).then(|| clients_file.into());
        Ok(Self {
            database_url,
            database_migration_url,
            bind_address,
            master_key,
            cluster_name,
            bcrypt_cost,
            drain,
            log_filter,
            clients_file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::config::{Contract, check_contract};

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // bytes 0..32

    fn minimal() -> Vec<(&'static str, &'static str)> {
        vec![
            ("DATABASE_URL", "postgres://u:p@h/db"),
            ("DATABASE_MIGRATION_URL", "postgres://u:p@primary/db"),
            ("AC_MASTER_KEY", KEY),
            ("CLUSTER_NAME", "dev"),
        ]
    }

    #[test]
    fn loader_matches_the_contract_file() {
        let contract = Contract::parse(include_str!("../config-contract.toml")).unwrap();
        assert_eq!(contract.service, "ac-service");
        let reader = EnvReader::from_pairs(&minimal());
        Config::from_reader(&reader).unwrap();
        check_contract(&contract, &reader.declared()).unwrap();
    }

    #[test]
    fn dockerfile_builds_this_binary_and_exposes_its_ports() {
        let contract = Contract::parse(include_str!("../config-contract.toml")).unwrap();
        let ports = common::testing::contract_ports(&contract);
        assert!(!ports.is_empty());
        common::testing::check_dockerfile(include_str!("../Dockerfile"), "ac-service", &ports)
            .unwrap();
    }

    #[test]
    fn defaults() {
        let c = Config::from_reader(&EnvReader::from_pairs(&minimal())).unwrap();
        assert_eq!(c.bind_address, "0.0.0.0:8082".parse().unwrap());
        assert_eq!(c.bcrypt_cost, 12);
        assert_eq!(c.drain, Duration::from_secs(10));
        assert_eq!(c.master_key.bytes()[31], 31);
    }

    #[test]
    fn every_required_variable_is_named_when_missing() {
        for missing in [
            "DATABASE_URL",
            "DATABASE_MIGRATION_URL",
            "AC_MASTER_KEY",
            "CLUSTER_NAME",
        ] {
            let pairs: Vec<_> = minimal()
                .into_iter()
                .filter(|(k, _)| *k != missing)
                .collect();
            let err = Config::from_reader(&EnvReader::from_pairs(&pairs)).unwrap_err();
            assert_eq!(err.variable(), missing);
        }
    }

    #[test]
    fn bad_master_key_is_named_and_not_echoed() {
        let mut pairs = minimal();
        let key = pairs
            .iter()
            .position(|(k, _)| *k == "AC_MASTER_KEY")
            .unwrap();
        pairs[key] = ("AC_MASTER_KEY", "c2hvcnQ="); // "short"
        let err = Config::from_reader(&EnvReader::from_pairs(&pairs)).unwrap_err();
        assert_eq!(err.variable(), "AC_MASTER_KEY");
        assert!(err.to_string().contains("got 5"), "{err}");
        assert!(!err.to_string().contains("c2hvcnQ"));
        pairs[key] = ("AC_MASTER_KEY", "not base64 !!");
        let err = Config::from_reader(&EnvReader::from_pairs(&pairs)).unwrap_err();
        assert!(!err.to_string().contains("not base64 !!"));
    }

    #[test]
    fn malformed_values_are_named() {
        for (name, value) in [
            ("BIND_ADDRESS", "nowhere"),
            ("BCRYPT_COST", "3"),
            ("BCRYPT_COST", "many"),
            ("AC_DRAIN_SECONDS", "301"),
            ("CLUSTER_NAME", "a b"),
            ("RUST_LOG", "info,=["),
        ] {
            let mut pairs = minimal();
            pairs.push((name, value));
            if name == "CLUSTER_NAME" {
                pairs.retain(|(k, v)| *k != "CLUSTER_NAME" || *v == value);
            }
            let err = Config::from_reader(&EnvReader::from_pairs(&pairs)).unwrap_err();
            assert_eq!(err.variable(), name, "{name}={value}: {err}");
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let c = Config::from_reader(&EnvReader::from_pairs(&minimal())).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("u:p@h"), "{dbg}");
        assert!(!dbg.contains("[0, 1, 2"), "{dbg}");
    }
}
