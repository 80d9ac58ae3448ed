//! The four services on loopback: their ports, their environment (checked
//! against each service's `config-contract.toml`), their processes and
//! their readiness.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use common::config::Contract;

/// The OAuth 2 clients of the platform, with the SPEC scopes.
pub const SERVICE_CLIENTS: [(&str, &str); 3] = [
    (
        "global-controller",
        "internal:meeting-token service.write.mc",
    ),
    ("meeting-controller", "service.write.gc service.write.mh"),
    ("media-handler", "service.write.gc service.write.mc"),
];
/// A front-end client for trying the meetings API by hand.
pub const FRONTEND_CLIENT: (&str, &str) = ("local-frontend", "meeting:create meeting:join");

/// Loopback ports: the SPEC defaults plus an offset (so a test can run a
/// second stack next to a developer's).
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub ac_http: u16,
    pub gc_http: u16,
    pub gc_grpc: u16,
    pub mc_health: u16,
    pub mc_grpc: u16,
    pub mc_webtransport: u16,
    pub mh_health: u16,
    pub mh_grpc: u16,
    pub mh_media: u16,
}

impl Ports {
    pub fn with_offset(offset: u16) -> anyhow::Result<Self> {
        let p = |base: u16| {
            base.checked_add(offset)
                .with_context(|| format!("--port-offset {offset} pushes port {base} past 65535"))
        };
        Ok(Self {
            ac_http: p(8082)?,
            gc_http: p(8080)?,
            gc_grpc: p(50051)?,
            mc_health: p(8081)?,
            mc_grpc: p(50052)?,
            mc_webtransport: p(4433)?,
            mh_health: p(8083)?,
            mh_grpc: p(50053)?,
            mh_media: p(4434)?,
        })
    }
}

/// Everything the environments are made of.
#[derive(Debug, Clone)]
pub struct Settings {
    pub ports: Ports,
    pub ac_database_url: String,
    pub gc_database_url: String,
    pub redis_url: String,
    pub master_key: String,
    pub secrets: BTreeMap<&'static str, String>,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub log_filter: String,
}

fn loopback(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

impl Settings {
    fn secret(&self, client: &str) -> String {
        self.secrets.get(client).cloned().unwrap_or_default()
    }

    pub fn ac_base(&self) -> String {
        format!("http://{}", loopback(self.ports.ac_http))
    }

    /// The environment of `ac-service` (also for `register-client`).
    pub fn ac_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DATABASE_URL", self.ac_database_url.clone()),
            ("BIND_ADDRESS", loopback(self.ports.ac_http)),
            ("AC_MASTER_KEY", self.master_key.clone()),
            ("CLUSTER_NAME", "local".to_owned()),
            ("AC_DRAIN_SECONDS", "1".to_owned()),
            ("RUST_LOG", self.log_filter.clone()),
        ]
    }

    pub fn gc_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DATABASE_URL", self.gc_database_url.clone()),
            ("BIND_ADDRESS", loopback(self.ports.gc_http)),
            ("GC_GRPC_BIND_ADDRESS", loopback(self.ports.gc_grpc)),
            ("GC_REGION", "local".to_owned()),
            (
                "AC_JWKS_URL",
                format!("{}/.well-known/jwks.json", self.ac_base()),
            ),
            ("AC_INTERNAL_URL", self.ac_base()),
            ("GC_CLIENT_ID", "global-controller".to_owned()),
            ("GC_CLIENT_SECRET", self.secret("global-controller")),
            ("MC_STALENESS_THRESHOLD_SECONDS", "15".to_owned()),
            ("RUST_LOG", self.log_filter.clone()),
        ]
    }

    pub fn mc_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("REDIS_URL", self.redis_url.clone()),
            (
                "GC_GRPC_URL",
                format!("http://{}", loopback(self.ports.gc_grpc)),
            ),
            ("AC_ENDPOINT", self.ac_base()),
            (
                "AC_JWKS_URL",
                format!("{}/.well-known/jwks.json", self.ac_base()),
            ),
            ("MC_CLIENT_ID", "meeting-controller".to_owned()),
            ("MC_CLIENT_SECRET", self.secret("meeting-controller")),
            ("MC_REGION", "local".to_owned()),
            ("MC_GRPC_BIND_ADDRESS", loopback(self.ports.mc_grpc)),
            ("MC_HEALTH_BIND_ADDRESS", loopback(self.ports.mc_health)),
            (
                "MC_WEBTRANSPORT_BIND_ADDRESS",
                loopback(self.ports.mc_webtransport),
            ),
            ("MC_GRPC_ADVERTISE_ADDRESS", loopback(self.ports.mc_grpc)),
            (
                "MC_WEBTRANSPORT_ADVERTISE_ADDRESS",
                loopback(self.ports.mc_webtransport),
            ),
            ("MC_TLS_CERT_PATH", self.cert.to_string_lossy().into_owned()),
            ("MC_TLS_KEY_PATH", self.key.to_string_lossy().into_owned()),
            ("MC_ID", "mc-local-0".to_owned()),
            ("RUST_LOG", self.log_filter.clone()),
        ]
    }

    pub fn mh_env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "GC_GRPC_URL",
                format!("http://{}", loopback(self.ports.gc_grpc)),
            ),
            ("AC_ENDPOINT", self.ac_base()),
            (
                "AC_JWKS_URL",
                format!("{}/.well-known/jwks.json", self.ac_base()),
            ),
            ("MH_CLIENT_ID", "media-handler".to_owned()),
            ("MH_CLIENT_SECRET", self.secret("media-handler")),
            ("MH_REGION", "local".to_owned()),
            ("MH_GRPC_BIND_ADDRESS", loopback(self.ports.mh_grpc)),
            ("MH_HEALTH_BIND_ADDRESS", loopback(self.ports.mh_health)),
            ("MH_MEDIA_BIND_ADDRESS", loopback(self.ports.mh_media)),
            ("MH_GRPC_ADVERTISE_ADDRESS", loopback(self.ports.mh_grpc)),
            ("MH_MEDIA_ADVERTISE_ADDRESS", loopback(self.ports.mh_media)),
            ("MH_TLS_CERT_PATH", self.cert.to_string_lossy().into_owned()),
            ("MH_TLS_KEY_PATH", self.key.to_string_lossy().into_owned()),
            ("MH_ID", "mh-local-0".to_owned()),
            ("RUST_LOG", self.log_filter.clone()),
        ]
    }
}

/// Every variable in `env` is in the contract, and every required one is
/// set: the stack fails before starting a service it configured wrong.
pub fn check_env_against_contract(
    contract_text: &str,
    env: &[(&'static str, String)],
) -> Result<(), String> {
    let contract = Contract::parse(contract_text)?;
    let mut problems = Vec::new();
    for (name, value) in env {
        if !contract.env.iter().any(|e| e.name == *name) {
            problems.push(format!(
                "{name} is not in the {} contract",
                contract.service
            ));
        }
        if value.trim().is_empty() {
            problems.push(format!("{name} is empty"));
        }
    }
    for entry in contract.env.iter().filter(|e| e.required) {
        if !env.iter().any(|(n, _)| *n == entry.name) {
            problems.push(format!(
                "{} requires {} and the local stack does not set it",
                contract.service, entry.name
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// One service process, its log and its `/ready` URL.
#[derive(Debug)]
pub struct Service {
    pub name: &'static str,
    pub child: Child,
    pub log: PathBuf,
    pub ready_url: String,
}

impl Service {
    pub fn spawn(
        name: &'static str,
        binary: &Path,
        env: &[(&'static str, String)],
        logs: &Path,
        ready_url: String,
    ) -> anyhow::Result<Self> {
        let log = logs.join(format!("{name}.log"));
        let file =
            File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOSTNAME", name)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        eprintln!(
            "local-stack: started {name} (pid {}, log {})",
            child.id(),
            log.display()
        );
        Ok(Self {
            name,
            child,
            log,
            ready_url,
        })
    }

    /// The end of the log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits until `/ready` answers 200, failing early if the process exits.
    pub async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        within: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before it was ready; end of {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail(20)
                );
            }
            let last = match http.get(&self.ready_url).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => format!("HTTP {} {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                bail!(
                    "{} was not ready within {within:?} ({last}); end of {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Sends SIGTERM (the services drain, then exit).
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// SIGTERM, then up to `grace` for the drain, then SIGKILL.
    pub async fn stop(&mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            eprintln!("local-stack: {} stopped", self.name);
            return;
        }
        self.terminate();
        let deadline = Instant::now() + grace;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    eprintln!("local-stack: {} stopped ({status})", self.name);
                    return;
                }
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => {
                    eprintln!(
                        "local-stack: {} did not stop within {grace:?}, killing it",
                        self.name
                    );
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            ports: Ports::with_offset(0).unwrap(),
            ac_database_url: "postgres://postgres:postgres@127.0.0.1:5432/dt_ac".into(),
            gc_database_url: "postgres://postgres:postgres@127.0.0.1:5432/dt_gc".into(),
            redis_url: "redis://127.0.0.1:6379".into(),
            master_key: "a2V5".into(),
            secrets: SERVICE_CLIENTS
                .iter()
                .map(|(id, _)| (*id, format!("{id}-secret")))
                .collect(),
            cert: "/tmp/cert.pem".into(),
            key: "/tmp/key.pem".into(),
            log_filter: "info".into(),
        }
    }

    #[test]
    fn environments_satisfy_the_service_contracts() {
        let s = settings();
        check_env_against_contract(
            include_str!("../../ac-service/config-contract.toml"),
            &s.ac_env(),
        )
        .unwrap();
        check_env_against_contract(
            include_str!("../../global-controller/config-contract.toml"),
            &s.gc_env(),
        )
        .unwrap();
        check_env_against_contract(
            include_str!("../../media-handler/config-contract.toml"),
            &s.mh_env(),
        )
        .unwrap();
        // meeting-controller is checked at run time (it may not exist yet).
        let mc = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../meeting-controller/config-contract.toml");
        if let Ok(text) = std::fs::read_to_string(&mc) {
            check_env_against_contract(&text, &s.mc_env()).unwrap();
        }
    }

    #[test]
    fn contract_check_names_missing_and_unknown_variables() {
        let contract = include_str!("../../media-handler/config-contract.toml");
        let mut env = settings().mh_env();
        env.retain(|(n, _)| *n != "MH_REGION");
        env.push(("MH_TYPO", "x".into()));
        let err = check_env_against_contract(contract, &env).unwrap_err();
        assert!(err.contains("requires MH_REGION"), "{err}");
        assert!(
            err.contains("MH_TYPO is not in the media-handler contract"),
            "{err}"
        );
    }

    #[test]
    fn ports_follow_the_spec_defaults_plus_offset() {
        let p = Ports::with_offset(0).unwrap();
        assert_eq!(
            [
                p.ac_http,
                p.gc_http,
                p.gc_grpc,
                p.mc_health,
                p.mc_grpc,
                p.mc_webtransport,
                p.mh_health,
                p.mh_grpc,
                p.mh_media
            ],
            [8082, 8080, 50051, 8081, 50052, 4433, 8083, 50053, 4434]
        );
        assert_eq!(Ports::with_offset(10_000).unwrap().mh_media, 14_434);
        assert!(Ports::with_offset(20_000).is_err());
    }
}
