//! media-handler configuration, from environment variables only.
//!
//! The variables are listed in `config-contract.toml` next to `Cargo.toml`;
//! the test at the bottom keeps the two identical.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::SecretString;
use common::config::{ConfigError, EnvReader, http_url};
use common::telemetry::DEFAULT_LOG_FILTER;

/// How long MH keeps forwarding, not ready, after SIGTERM before it closes
/// the media connections (SPEC gives MH no drain variable; fits the 30 s
/// grace period).
pub const DRAIN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Config {
    pub gc_grpc_url: String,
    pub ac_endpoint: String,
    pub ac_jwks_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub region: String,
    pub grpc_bind_address: SocketAddr,
    pub health_bind_address: SocketAddr,
    pub media_bind_address: SocketAddr,
    pub grpc_advertise_address: String,
    pub media_advertise_address: String,
    pub tls_cert_path: PathBuf,
    pub tls_key_path: PathBuf,
    pub mh_id: String,
    pub log_filter: String,
}

/// `host:port` as GC's registry accepts it, so a bad address fails here,
/// named, rather than at registration.
fn host_port(name: &str, value: String) -> Result<String, ConfigError> {
    if common::config::valid_host_port(&value) {
        Ok(value)
    } else {
        Err(ConfigError::malformed(
            name,
            format!("{value:?} is not host:port"),
        ))
    }
}

/// Same id alphabet as GC's registry, so a bad id fails here, named.
fn controller_id(name: &str, value: String) -> Result<String, ConfigError> {
    if common::config::valid_controller_id(&value) {
        Ok(value)
    } else {
        Err(ConfigError::malformed(
            name,
            "must be 1 to 128 characters of [A-Za-z0-9-_.:]",
        ))
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_reader(&EnvReader::from_process())
    }

    pub fn from_reader(env: &EnvReader) -> Result<Self, ConfigError> {
        let gc_grpc_url = http_url("GC_GRPC_URL", env.required("GC_GRPC_URL")?)?;
        let ac_endpoint = http_url("AC_ENDPOINT", env.required("AC_ENDPOINT")?)?;
        let ac_jwks_url = http_url("AC_JWKS_URL", env.required("AC_JWKS_URL")?)?;
        let client_id: String = env.required("MH_CLIENT_ID")?;
        let client_secret = env.secret("MH_CLIENT_SECRET")?;
        let region: String = env.required("MH_REGION")?;
        let grpc_bind_address = env.optional("MH_GRPC_BIND_ADDRESS", "0.0.0.0:50053")?;
        let health_bind_address = env.optional("MH_HEALTH_BIND_ADDRESS", "0.0.0.0:8083")?;
        let media_bind_address = env.optional("MH_MEDIA_BIND_ADDRESS", "0.0.0.0:4434")?;
        let grpc_advertise_address = host_port(
            "MH_GRPC_ADVERTISE_ADDRESS",
            env.required("MH_GRPC_ADVERTISE_ADDRESS")?,
        )?;
        let media_advertise_address = host_port(
            "MH_MEDIA_ADVERTISE_ADDRESS",
            env.required("MH_MEDIA_ADVERTISE_ADDRESS")?,
        )?;
        let tls_cert_path: PathBuf = env.required("MH_TLS_CERT_PATH")?;
        let tls_key_path: PathBuf = env.required("MH_TLS_KEY_PATH")?;
        let mh_id = controller_id("MH_ID", env.optional_from("MH_ID", "HOSTNAME")?)?;
        let log_filter: String = env.optional("RUST_LOG", DEFAULT_LOG_FILTER)?;
        common::telemetry::parse_filter(&log_filter)?;
        Ok(Self {
            gc_grpc_url,
            ac_endpoint,
            ac_jwks_url,
            client_id,
            client_secret,
            region,
            grpc_bind_address,
            health_bind_address,
            media_bind_address,
            grpc_advertise_address,
            media_advertise_address,
            tls_cert_path,
            tls_key_path,
            mh_id,
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
            ("GC_GRPC_URL", "http://global-controller.dark-tower:50051"),
            ("AC_ENDPOINT", "http://ac-service.dark-tower:8082"),
            (
                "AC_JWKS_URL",
                "http://ac-service.dark-tower:8082/.well-known/jwks.json",
            ),
            ("MH_CLIENT_ID", "media-handler"),
            ("MH_CLIENT_SECRET", "s3cret-s3cret-s3cret"),
            ("MH_REGION", "local"),
            ("MH_GRPC_ADVERTISE_ADDRESS", "10.0.0.7:50053"),
            ("MH_MEDIA_ADVERTISE_ADDRESS", "mh-0.example.com:4434"),
            ("MH_TLS_CERT_PATH", "/etc/mh/tls.crt"),
            ("MH_TLS_KEY_PATH", "/etc/mh/tls.key"),
            ("HOSTNAME", "media-handler-7d9f-abc"),
        ]
    }

    #[test]
    fn loader_matches_the_contract_file() {
        let contract = Contract::parse(include_str!("../config-contract.toml")).unwrap();
        assert_eq!(contract.service, "media-handler");
        let reader = EnvReader::from_pairs(&minimal());
        Config::from_reader(&reader).unwrap();
        check_contract(&contract, &reader.declared()).unwrap();
    }

    #[test]
    fn dockerfile_builds_this_binary_and_exposes_its_ports() {
        let contract = Contract::parse(include_str!("../config-contract.toml")).unwrap();
        let mut ports = common::testing::contract_ports(&contract);
        ports.sort_unstable();
        assert_eq!(ports, [4434, 8083, 50053]);
        common::testing::check_dockerfile(include_str!("../Dockerfile"), "media-handler", &ports)
            .unwrap();
        assert!(
            include_str!("../Dockerfile").contains("4434/udp"),
            "the media port is UDP"
        );
    }

    #[test]
    fn defaults_and_hostname_fallback() {
        let c = Config::from_reader(&EnvReader::from_pairs(&minimal())).unwrap();
        assert_eq!(c.grpc_bind_address, "0.0.0.0:50053".parse().unwrap());
        assert_eq!(c.health_bind_address, "0.0.0.0:8083".parse().unwrap());
        assert_eq!(c.media_bind_address, "0.0.0.0:4434".parse().unwrap());
        assert_eq!(c.mh_id, "media-handler-7d9f-abc");
        let mut pairs = minimal();
        pairs.push(("MH_ID", "mh-7"));
        assert_eq!(
            Config::from_reader(&EnvReader::from_pairs(&pairs))
                .unwrap()
                .mh_id,
            "mh-7"
        );
    }

    #[test]
    fn every_required_variable_is_named_when_missing() {
        for (missing, _) in minimal() {
            let pairs: Vec<_> = minimal()
                .into_iter()
                .filter(|(k, _)| *k != missing)
                .collect();
            let err = Config::from_reader(&EnvReader::from_pairs(&pairs)).unwrap_err();
            let expected = if missing == "HOSTNAME" {
                "MH_ID (or HOSTNAME)"
            } else {
                missing
            };
            assert_eq!(err.variable(), expected);
        }
    }

    #[test]
    fn malformed_values_are_named() {
        for (name, value) in [
            ("MH_HEALTH_BIND_ADDRESS", "8083"),
            ("MH_GRPC_BIND_ADDRESS", "localhost"),
            ("MH_MEDIA_BIND_ADDRESS", "0.0.0.0:99999"),
            ("GC_GRPC_URL", "global-controller:50051"),
            ("AC_ENDPOINT", "ftp://ac"),
            ("AC_JWKS_URL", "ac/jwks"),
            ("MH_MEDIA_ADVERTISE_ADDRESS", "https://mh:4434"),
            ("MH_GRPC_ADVERTISE_ADDRESS", "mh"),
            // Refused by GC's registry, so refused here too.
            ("MH_MEDIA_ADVERTISE_ADDRESS", "[not-ipv6]:4434"),
            ("MH_ID", "mh 0"),
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
        assert!(!dbg.contains("s3cret"), "{dbg}");
    }
}
