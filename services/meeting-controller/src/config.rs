//! meeting-controller configuration, from environment variables only.
//!
//! The variables are listed in `config-contract.toml` next to `Cargo.toml`;
//! the test at the bottom keeps the two identical. Limits that SPEC gives no
//! variable for (capacity, drain time) are constants here, and fields of
//! [`Config`] so tests can shrink them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::SecretString;
use common::config::{ConfigError, EnvReader, http_url};
use common::telemetry::DEFAULT_LOG_FILTER;

/// How long MC keeps serving, not ready and reported as draining to GC,
/// after SIGTERM before it closes the remaining sessions.
pub const DRAIN: Duration = Duration::from_secs(5);
/// Longest wait for sessions to finish closing after the drain.
pub const SESSION_CLOSE_WAIT: Duration = Duration::from_secs(10);
/// Meetings one MC hosts at once; beyond it HostMeeting answers
/// RESOURCE_EXHAUSTED and GC tries another MC.
pub const MAX_MEETINGS: u32 = 1_000;
/// Signaling sessions one MC serves at once.
pub const MAX_PARTICIPANTS: u32 = 10_000;
/// Per-meeting limit when GC's HostMeeting leaves `max_participants` at 0.
pub const DEFAULT_MEETING_PARTICIPANTS: u32 = 100;

#[derive(Debug, Clone)]
pub struct Config {
    pub redis_url: SecretString,
    pub gc_grpc_url: String,
    pub ac_endpoint: String,
    pub ac_jwks_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub region: String,
    pub grpc_bind_address: SocketAddr,
    pub health_bind_address: SocketAddr,
    pub webtransport_bind_address: SocketAddr,
    pub grpc_advertise_address: String,
    pub webtransport_advertise_address: String,
    pub tls_cert_path: PathBuf,
    pub tls_key_path: PathBuf,
    pub mc_id: String,
    pub log_filter: String,
    pub max_meetings: u32,
    pub max_participants: u32,
    pub default_meeting_participants: u32,
    pub drain: Duration,
    /// Longest a client may take to send its `join` line.
    pub join_timeout: Duration,
}

/// Ids and advertised addresses exactly as GC's registry accepts them.
pub use common::config::{valid_controller_id as valid_id, valid_host_port as valid_address};

fn address(name: &str, value: String) -> Result<String, ConfigError> {
    if valid_address(&value) {
        Ok(value)
    } else {
        Err(ConfigError::malformed(
            name,
            format!("{value:?} is not host:port (no scheme, port 1-65535)"),
        ))
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_reader(&EnvReader::from_process())
    }

    pub fn from_reader(env: &EnvReader) -> Result<Self, ConfigError> {
        let redis_url = env.secret("REDIS_URL")?;
        {
            use common::ExposeSecret as _;
            let raw = redis_url.expose_secret();
            if !(raw.starts_with("redis://") || raw.starts_with("rediss://")) {
                // Never echo the value: it may hold a password.
                return Err(ConfigError::malformed(
                    "REDIS_URL",
                    "must start with redis:// or rediss://",
                ));
            }
        }
        let gc_grpc_url = http_url("GC_GRPC_URL", env.required("GC_GRPC_URL")?)?;
        let ac_endpoint = http_url("AC_ENDPOINT", env.required("AC_ENDPOINT")?)?;
        let ac_jwks_url = http_url("AC_JWKS_URL", env.required("AC_JWKS_URL")?)?;
        let client_id: String = env.required("MC_CLIENT_ID")?;
        let client_secret = env.secret("MC_CLIENT_SECRET")?;
        let region: String = env.required("MC_REGION")?;
        if region.len() > 64 || region.contains(char::is_whitespace) {
            return Err(ConfigError::malformed(
                "MC_REGION",
                "must be 1 to 64 characters without spaces",
            ));
        }
        let grpc_bind_address = env.optional("MC_GRPC_BIND_ADDRESS", "0.0.0.0:50052")?;
        let health_bind_address = env.optional("MC_HEALTH_BIND_ADDRESS", "0.0.0.0:8081")?;
        let webtransport_bind_address =
            env.optional("MC_WEBTRANSPORT_BIND_ADDRESS", "0.0.0.0:4433")?;
        let grpc_advertise_address = address(
            "MC_GRPC_ADVERTISE_ADDRESS",
            env.required("MC_GRPC_ADVERTISE_ADDRESS")?,
        )?;
        let webtransport_advertise_address = address(
            "MC_WEBTRANSPORT_ADVERTISE_ADDRESS",
            env.required("MC_WEBTRANSPORT_ADVERTISE_ADDRESS")?,
        )?;
        let tls_cert_path: PathBuf = env.required("MC_TLS_CERT_PATH")?;
        let tls_key_path: PathBuf = env.required("MC_TLS_KEY_PATH")?;
        let mc_id: String = env.optional_from("MC_ID", "HOSTNAME")?;
        if !valid_id(&mc_id) {
            return Err(ConfigError::malformed(
                "MC_ID",
                format!("{mc_id:?} must be 1 to 128 of A-Z a-z 0-9 - _ . :"),
            ));
        }
        let log_filter: String = env.optional("RUST_LOG", DEFAULT_LOG_FILTER)?;
        common::telemetry::parse_filter(&log_filter)?;
        Ok(Self {
            redis_url,
            gc_grpc_url,
            ac_endpoint,
            ac_jwks_url,
            client_id,
            client_secret,
            region,
            grpc_bind_address,
            health_bind_address,
            webtransport_bind_address,
            grpc_advertise_address,
            webtransport_advertise_address,
            tls_cert_path,
            tls_key_path,
            mc_id,
            log_filter,
            max_meetings: MAX_MEETINGS,
            max_participants: MAX_PARTICIPANTS,
            default_meeting_participants: DEFAULT_MEETING_PARTICIPANTS,
            drain: DRAIN,
            join_timeout: Duration::from_secs(10),
        })
    }

    /// The URL GC hands to clients (SPEC: `https://<advertise>/signaling`).
    pub fn webtransport_url(&self) -> String {
        format!("https://{}/signaling", self.webtransport_advertise_address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::config::{Contract, check_contract};

    fn minimal() -> Vec<(&'static str, &'static str)> {
        vec![
            ("REDIS_URL", "redis://:hunter2@redis.dark-tower:6379"),
            ("GC_GRPC_URL", "http://global-controller.dark-tower:50051"),
            ("AC_ENDPOINT", "http://ac-service.dark-tower:8082"),
            (
                "AC_JWKS_URL",
                "http://ac-service.dark-tower:8082/.well-known/jwks.json",
            ),
            ("MC_CLIENT_ID", "meeting-controller"),
            ("MC_CLIENT_SECRET", "s3cret-s3cret-s3cret"),
            ("MC_REGION", "local"),
            ("MC_GRPC_ADVERTISE_ADDRESS", "10.0.0.5:50052"),
            ("MC_WEBTRANSPORT_ADVERTISE_ADDRESS", "mc-0.example.org:4433"),
            ("MC_TLS_CERT_PATH", "/etc/dark-tower/tls/tls.crt"),
            ("MC_TLS_KEY_PATH", "/etc/dark-tower/tls/tls.key"),
            ("HOSTNAME", "meeting-controller-7d9f-abc"),
        ]
    }

    #[test]
    fn loader_matches_the_contract_file() {
        let contract = Contract::parse(include_str!("../config-contract.toml")).unwrap();
        assert_eq!(contract.service, "meeting-controller");
        let reader = EnvReader::from_pairs(&minimal());
        Config::from_reader(&reader).unwrap();
        check_contract(&contract, &reader.declared()).unwrap();
    }

    #[test]
    fn dockerfile_builds_this_binary_and_exposes_its_ports() {
        let contract = Contract::parse(include_str!("../config-contract.toml")).unwrap();
        let ports = common::testing::contract_ports(&contract);
        assert_eq!(ports.len(), 3, "{ports:?}");
        common::testing::check_dockerfile(
            include_str!("../Dockerfile"),
            "meeting-controller",
            &ports,
        )
        .unwrap();
        assert!(
            include_str!("../Dockerfile").contains("EXPOSE 8081 50052 4433/udp"),
            "WebTransport is UDP"
        );
    }

    #[test]
    fn defaults_and_mc_id_from_hostname() {
        let c = Config::from_reader(&EnvReader::from_pairs(&minimal())).unwrap();
        assert_eq!(c.grpc_bind_address, "0.0.0.0:50052".parse().unwrap());
        assert_eq!(c.health_bind_address, "0.0.0.0:8081".parse().unwrap());
        assert_eq!(c.webtransport_bind_address, "0.0.0.0:4433".parse().unwrap());
        assert_eq!(c.mc_id, "meeting-controller-7d9f-abc");
        assert_eq!(
            c.webtransport_url(),
            "https://mc-0.example.org:4433/signaling"
        );
        let mut pairs = minimal();
        pairs.push(("MC_ID", "mc-7"));
        assert_eq!(
            Config::from_reader(&EnvReader::from_pairs(&pairs))
                .unwrap()
                .mc_id,
            "mc-7"
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
                "MC_ID (or HOSTNAME)"
            } else {
                missing
            };
            assert_eq!(err.variable(), expected);
        }
    }

    #[test]
    fn malformed_values_are_named() {
        for (name, value) in [
            ("REDIS_URL", "http://redis:6379"),
            ("GC_GRPC_URL", "global-controller:50051"),
            ("AC_ENDPOINT", "ftp://ac"),
            ("AC_JWKS_URL", "ac/jwks"),
            ("MC_REGION", "two words"),
            ("MC_GRPC_BIND_ADDRESS", "50052"),
            ("MC_HEALTH_BIND_ADDRESS", "localhost"),
            ("MC_WEBTRANSPORT_BIND_ADDRESS", "0.0.0.0:99999"),
            ("MC_GRPC_ADVERTISE_ADDRESS", "http://10.0.0.5:50052"),
            ("MC_WEBTRANSPORT_ADVERTISE_ADDRESS", "mc-0:0"),
            ("MC_ID", "a b"),
            ("RUST_LOG", "info,=["),
        ] {
            let mut pairs: Vec<_> = minimal().into_iter().filter(|(k, _)| *k != name).collect();
            pairs.push((name, value));
            let err = Config::from_reader(&EnvReader::from_pairs(&pairs)).unwrap_err();
            assert_eq!(err.variable(), name, "{name}={value}: {err}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let c = Config::from_reader(&EnvReader::from_pairs(&minimal())).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!dbg.contains("s3cret"), "{dbg}");
        let mut pairs: Vec<_> = minimal()
            .into_iter()
            .filter(|(k, _)| *k != "REDIS_URL")
            .collect();
        pairs.push(("REDIS_URL", "http://:hunter2@redis"));
        let err = Config::from_reader(&EnvReader::from_pairs(&pairs))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn addresses() {
        assert!(valid_address("10.0.0.5:50052"));
        assert!(valid_address("[::1]:4433"));
        assert!(!valid_address("mc"));
        assert!(!valid_address("mc/x:4433"));
        assert!(valid_id("meeting-controller-0"));
        assert!(!valid_id(""));
    }
}
