//! The harness the Dark Tower services' integration tests share (a
//! dev-dependency only, never part of a release binary).
//!
//! - [`Ac`]: a real ac-service in-process on a fresh `PostgreSQL` database
//!   (see `common::testing`), with the platform's clients registered;
//! - [`Gc`]: a real global-controller in-process, trusting that AC;
//! - [`service_token`], [`wait_ready`], [`wait_until`], [`lazy_channel`],
//!   [`free_tcp_port`], [`free_udp_port`]: the plumbing around them;
//! - [`require_redis`] (feature `redis`) and [`signaling::Client`] (feature
//!   `webtransport`) for the tests that run a meeting controller.
//!
//! Everything here panics on a broken fixture, with a message saying what
//! failed: a test must fail loudly, never pass silently.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::SecretString;
use common::shutdown::{self, ShutdownTrigger};
use common::testing;
use serde_json::Value;
use tokio::task::JoinHandle;

#[cfg(feature = "webtransport")]
pub mod signaling;

pub const GC_SECRET: &str = "gc-secret-0123456789abcdef";
pub const MC_SECRET: &str = "mc-secret-0123456789abcdef";
pub const MH_SECRET: &str = "mh-secret-0123456789abcdef";
pub const FRONTEND_SECRET: &str = "fe-secret-0123456789abcdef";

/// An OAuth client registered at AC: `(client_id, secret, scopes)`; the
/// service type is the client id.
pub type ClientSpec = (&'static str, &'static str, &'static str);

/// GC: asks AC for meeting tokens and calls MC.
pub const GC_CLIENT: ClientSpec = (
    "global-controller",
    GC_SECRET,
    "internal:meeting-token service.write.mc",
);
/// MC: calls GC and MH.
pub const MC_CLIENT: ClientSpec = (
    "meeting-controller",
    MC_SECRET,
    "service.write.gc service.write.mh",
);
/// MH: calls GC and MC.
pub const MH_CLIENT: ClientSpec = (
    "media-handler",
    MH_SECRET,
    "service.write.gc service.write.mc",
);
/// An end-user front end: creates and joins meetings.
pub const FRONTEND_CLIENT: ClientSpec =
    ("frontend", FRONTEND_SECRET, "meeting:create meeting:join");

/// A port on loopback that was free a moment ago (for a service whose
/// advertised address must be known before it starts).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("no free TCP port on loopback: {e}"))
        .port()
}

/// A UDP port on loopback that was free a moment ago.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .unwrap_or_else(|e| panic!("no free UDP port on loopback: {e}"))
        .port()
}

/// `127.0.0.1:port` as a socket address.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A gRPC channel to `addr` (plain HTTP/2) that connects on first use.
pub fn lazy_channel(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap_or_else(|e| panic!("bad gRPC address {addr}: {e}"))
        .connect_lazy()
}

/// Polls `check` every 100 ms until it holds; fails the test after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `{base}/ready` until it answers 200; fails the test after `limit`
/// with the last answer.
pub async fn wait_ready(what: &str, base: &str, limit: Duration) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + limit;
    loop {
        let (status, body) = match http.get(format!("{base}/ready")).send().await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        };
        if status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never became ready: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A service token from AC's client-credentials endpoint at `ac_base`;
/// fails the test unless AC answers 200 with an `access_token`.
pub async fn service_token(
    http: &reqwest::Client,
    ac_base: &str,
    id: &str,
    secret: &str,
) -> String {
    let r = http
        .post(format!("{ac_base}/api/v1/auth/service/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("token request for {id} failed: {e}"));
    assert_eq!(r.status(), 200, "token request for {id}");
    let body: Value = r
        .json()
        .await
        .unwrap_or_else(|e| panic!("token answer for {id} is not JSON: {e}"));
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("token answer for {id} has no access_token: {body}"))
        .to_owned()
}

/// Registers `clients` in AC's database (bcrypt cost 4: tests stay fast).
pub async fn register_clients(pool: &sqlx::PgPool, clients: &[ClientSpec]) {
    for &(id, secret, scopes) in clients {
        let scopes = ac_service::clients::parse_scopes(scopes)
            .unwrap_or_else(|e| panic!("scopes of {id}: {e}"));
        ac_service::clients::register(pool, id, secret, &scopes, id, 4)
            .await
            .unwrap_or_else(|e| panic!("registering client {id} failed: {e}"));
    }
}

/// A real AC on a fresh database, serving until dropped.
pub struct Ac {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// AC's signing keys, to read the active key id or sign with it.
    pub keys: ac_service::keys::KeyStore,
    pub http: reqwest::Client,
    _trigger: ShutdownTrigger,
}

impl Ac {
    /// Starts AC on port 0 with a fresh database named after
    /// `database_prefix`, the given master key and cluster name (the
    /// prefix of its key ids), and `clients` registered.
    pub async fn spawn(
        database_prefix: &str,
        master_key: [u8; 32],
        cluster_name: &str,
        clients: &[ClientSpec],
    ) -> Self {
        let url = testing::fresh_database(database_prefix).await;
        let app = ac_service::startup::Application::build(ac_service::config::Config {
            database_migration_url: SecretString::from(url.clone()),
            database_url: SecretString::from(url),
            bind_address: loopback(0),
            master_key: ac_service::config::MasterKey::from_bytes(master_key),
            cluster_name: cluster_name.into(),
            bcrypt_cost: 4,
            drain: Duration::ZERO,
            log_filter: "warn".into(),
            clients_file: None,
        })
        .await
        .unwrap_or_else(|e| panic!("AC does not start: {e:#}"));
        register_clients(&app.pool(), clients).await;
        let addr = app
            .local_addr()
            .unwrap_or_else(|e| panic!("AC address: {e}"));
        let keys = app.keys();
        let (trigger, signal) = shutdown::channel();
        tokio::spawn(app.run(signal));
        Self {
            base: format!("http://{addr}"),
            keys,
            http: reqwest::Client::new(),
            _trigger: trigger,
        }
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.base)
    }

    /// A service token for a registered client.
    pub async fn service_token(&self, id: &str, secret: &str) -> String {
        service_token(&self.http, &self.base, id, secret).await
    }
}

/// GC's config for tests: HTTP and gRPC on loopback port 0, region
/// `test-region`, trusting the AC at `ac_base`. Tests may go below the 5 s
/// staleness floor the env loader enforces.
pub fn gc_config(
    database_url: String,
    ac_base: &str,
    staleness: Duration,
) -> global_controller::config::Config {
    global_controller::config::Config {
        database_migration_url: SecretString::from(database_url.clone()),
        database_url: SecretString::from(database_url),
        bind_address: loopback(0),
        grpc_bind_address: loopback(0),
        region: "test-region".into(),
        ac_jwks_url: format!("{ac_base}/.well-known/jwks.json"),
        ac_internal_url: ac_base.to_owned(),
        client_id: "global-controller".into(),
        client_secret: SecretString::from(GC_SECRET.to_owned()),
        staleness_threshold: staleness,
        log_filter: "warn".into(),
    }
}

/// A real GC, serving until `trigger` fires or is dropped.
pub struct Gc {
    /// `http://127.0.0.1:<port>`.
    pub http: String,
    pub grpc_addr: SocketAddr,
    pub pool: sqlx::PgPool,
    pub trigger: ShutdownTrigger,
    pub task: JoinHandle<anyhow::Result<()>>,
}

impl Gc {
    /// Starts GC from `config`.
    pub async fn start(config: global_controller::config::Config) -> Self {
        let app = global_controller::startup::Application::build(config)
            .await
            .unwrap_or_else(|e| panic!("GC does not start: {e:#}"));
        let http = app
            .http_addr()
            .unwrap_or_else(|e| panic!("GC HTTP address: {e}"));
        let grpc_addr = app
            .grpc_addr()
            .unwrap_or_else(|e| panic!("GC gRPC address: {e}"));
        let pool = app.pool();
        let (trigger, signal) = shutdown::channel();
        let task = tokio::spawn(app.run(signal));
        Self {
            http: format!("http://{http}"),
            grpc_addr,
            pool,
            trigger,
            task,
        }
    }

    /// Starts GC ([`gc_config`]) on a fresh database named after
    /// `database_prefix`, its gRPC server on `grpc_port` (0: any).
    pub async fn spawn(
        ac: &Ac,
        database_prefix: &str,
        grpc_port: u16,
        staleness: Duration,
    ) -> Self {
        let url = testing::fresh_database(database_prefix).await;
        let mut config = gc_config(url, &ac.base, staleness);
        config.grpc_bind_address = loopback(grpc_port);
        Self::start(config).await
    }

    /// `http://<gRPC address>`, as MC and MH are configured with.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }
}

/// The Redis URL the integration tests use (`DT_TEST_REDIS_URL`, default
/// `redis://127.0.0.1:6379`).
pub fn redis_url() -> String {
    std::env::var("DT_TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

/// [`redis_url`], after checking that Redis answers PING: fails loudly
/// (never skips) when the test Redis is not there.
#[cfg(feature = "redis")]
pub async fn require_redis() -> String {
    let url = redis_url();
    let answer = async {
        let client = redis::Client::open(url.as_str()).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .ok()
    };
    let pong = tokio::time::timeout(Duration::from_secs(3), answer)
        .await
        .ok()
        .flatten();
    assert!(
        pong.as_deref() == Some("PONG"),
        "\n\nRedis is not reachable through DT_TEST_REDIS_URL (or the default \
         redis://127.0.0.1:6379).\nThese tests need a real Redis; start one, e.g.\n  \
         apt-get install -y redis-server\n  \
         redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save ''\n"
    );
    url
}
