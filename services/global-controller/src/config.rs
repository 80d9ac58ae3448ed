//! global-controller configuration, from environment variables only.
//!
//! The variables are listed in `config-contract.toml` next to `Cargo.toml`;
//! the test at the bottom keeps the two identical.

use std::net::SocketAddr;
use std::time::Duration;

use common::SecretString;
use common::config::{ConfigError, EnvReader, http_url, seconds_in_range};
use common::telemetry::DEFAULT_LOG_FILTER;

/// How long GC keeps serving, not ready, after SIGTERM (not configurable:
/// SPEC gives GC no drain variable; this fits the 30 s grace period).
pub const DRAIN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: SecretString,
    /// Where migrations run: a direct session to the primary (see
    /// `common::db::migrate`), never the transaction pooler of DATABASE_URL.
    pub database_migration_url: SecretString,
    pub bind_address: SocketAddr,
    pub grpc_bind_address: SocketAddr,
    pub region: String,
    pub ac_jwks_url: String,
    pub ac_internal_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub staleness_threshold: Duration,
    pub log_filter: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_reader(&EnvReader::from_process())
    }

    pub fn from_reader(env: &EnvReader) -> Result<Self, ConfigError> {
        let database_url = env.secret("DATABASE_URL")?;
        let database_migration_url = env.secret("DATABASE_MIGRATION_URL")?;
        let bind_address = env.optional("BIND_ADDRESS", "0.0.0.0:8080")?;
        let grpc_bind_address = env.optional("GC_GRPC_BIND_ADDRESS", "0.0.0.0:50051")?;
        let region: String = env.required("GC_REGION")?;
        let ac_jwks_url = http_url("AC_JWKS_URL", env.required("AC_JWKS_URL")?)?;
        let ac_internal_url = http_url("AC_INTERNAL_URL", env.required("AC_INTERNAL_URL")?)?;
        let client_id: String = env.required("GC_CLIENT_ID")?;
        let client_secret = env.secret("GC_CLIENT_SECRET")?;
        let staleness: u64 = env.optional("MC_STALENESS_THRESHOLD_SECONDS", "30")?;
        let staleness_threshold =
            seconds_in_range("MC_STALENESS_THRESHOLD_SECONDS", staleness, 5..=3600)?;
        let log_filter: String = env.optional("RUST_LOG", DEFAULT_LOG_FILTER)?;
        common::telemetry::parse_filter(&log_filter)?;
        Ok(Self {
            database_url,
            database_migration_url,
            bind_address,
            grpc_bind_address,
            region,
            ac_jwks_url,
            ac_internal_url,
            client_id,
            client_secret,
            staleness_threshold,
            log_filter,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::config::{Contract, check_contract};

    fn minimal() -> Vec<(&'static str, &'static str)> {
        vec![
            ("DATABASE_URL", "postgres://u:p@h/db"),
            ("DATABASE_MIGRATION_URL", "postgres://u:p@primary/db"),
            ("GC_REGION", "local"),
            (
                "AC_JWKS_URL",
                "http://ac-service.dark-tower:8082/.well-known/jwks.json",
            ),
            ("AC_INTERNAL_URL", "http://ac-service.dark-tower:8082"),
            ("GC_CLIENT_ID", "global-controller"),
            ("GC_CLIENT_SECRET", "s3cret-s3cret-s3cret"),
        ]
    }

    #[test]
    fn loader_matches_the_contract_file() {
        let contract = Contract::parse(include_str!("../config-contract.toml")).unwrap();
        assert_eq!(contract.service, "global-controller");
        let reader = EnvReader::from_pairs(&minimal());
        Config::from_reader(&reader).unwrap();
        check_contract(&contract, &reader.declared()).unwrap();
    }

    #[test]
    fn dockerfile_builds_this_binary_and_exposes_its_ports() {
        let contract = Contract::parse(include_str!("../config-contract.toml")).unwrap();
        let ports = common::testing::contract_ports(&contract);
        assert!(!ports.is_empty());
        common::testing::check_dockerfile(
            include_str!("../Dockerfile"),
            "global-controller",
            &ports,
        )
        .unwrap();
    }

    #[test]
    fn defaults() {
        let c = Config::from_reader(&EnvReader::from_pairs(&minimal())).unwrap();
        assert_eq!(c.bind_address, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.grpc_bind_address, "0.0.0.0:50051".parse().unwrap());
        assert_eq!(c.staleness_threshold, Duration::from_secs(30));
    }

    #[test]
    fn every_required_variable_is_named_when_missing() {
        for (missing, _) in minimal() {
            let pairs: Vec<_> = minimal()
                .into_iter()
                .filter(|(k, _)| *k != missing)
                .collect();
            let err = Config::from_reader(&EnvReader::from_pairs(&pairs)).unwrap_err();
            assert_eq!(err.variable(), missing);
        }
    }

    #[test]
    fn malformed_values_are_named() {
        for (name, value) in [
            ("BIND_ADDRESS", "8080"),
            ("GC_GRPC_BIND_ADDRESS", "localhost"),
            ("MC_STALENESS_THRESHOLD_SECONDS", "2"),
            ("MC_STALENESS_THRESHOLD_SECONDS", "thirty"),
            ("AC_JWKS_URL", "ac-service:8082/jwks"),
            ("AC_INTERNAL_URL", "ftp://ac"),
            ("RUST_LOG", "info,=["),
        ] {
            let mut pairs: Vec<_> = minimal().into_iter().filter(|(k, _)| *k != name).collect();
            pairs.push((name, value));
            let err = Config::from_reader(&EnvReader::from_pairs(&pairs)).unwrap_err();
            assert_eq!(err.variable(), name, "{name}={value}: {err}");
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let dbg = format!(
            "{:?}",
            Config::from_reader(&EnvReader::from_pairs(&minimal())).unwrap()
        );
        assert!(!dbg.contains("u:p@h"), "{dbg}");
        assert!(!dbg.contains("s3cret"), "{dbg}");
    }
}
