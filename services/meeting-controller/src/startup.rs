//! Builds meeting-controller from its config: TLS identity, Redis (mode
//! detected), AC JWKS cache and MC's own token client, the health/metrics
//! router, the gRPC server and the WebTransport endpoint. `build` binds all
//! three listeners (port 0 in tests); `run` serves until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware::from_fn_with_state;
use common::jwks::JwksCache;
use common::metrics::{Metrics, track_http};
use common::ops::{self, CheckOutcome, Readiness};
use common::shutdown::ShutdownSignal;
use common::startup::{BackgroundTasks, bind_tcp};
use common::token_client::ClientCredentials;
use proto::{GlobalControllerServiceClient, MeetingControllerServiceServer};
use tokio::net::TcpListener;
use tonic::server::NamedService;
use wtransport::endpoint::endpoint_side::Server;
use wtransport::{Endpoint, ServerConfig};

use crate::config::{Config, SESSION_CLOSE_WAIT};
use crate::grpc::McGrpc;
use crate::hub::Hub;
use crate::registration::{self, Backoff, GcMetrics, Registrar, Registration};
use crate::signaling::{self, SessionContext, SignalingMetrics};
use crate::store::Store;

/// How long start-up waits for Redis before giving up.
const REDIS_WAIT: Duration = Duration::from_secs(30);
const JWKS_REFRESH: Duration = Duration::from_mins(5);
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(10);
/// QUIC keep-alive and idle timeout of signaling sessions: a vanished
/// client is noticed (and leaves the meeting) within the idle timeout.
const KEEP_ALIVE: Duration = Duration::from_secs(5);
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Application {
    health_listener: TcpListener,
    grpc_listener: TcpListener,
    endpoint: Endpoint<Server>,
    router: Router,
    grpc: McGrpc,
    readiness: Readiness,
    registration: Arc<Registration>,
    registrar: Option<Registrar>,
    sessions: Arc<SessionContext>,
    store: Store,
    jwks: Arc<JwksCache>,
    background: BackgroundTasks,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("health", &self.health_listener.local_addr().ok())
            .field("grpc", &self.grpc_listener.local_addr().ok())
            .field("webtransport", &self.endpoint.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// How often the WebTransport certificate files are read again: cert-manager
/// renews days before expiry, so a minute is plenty.
const CERT_RELOAD_EVERY: Duration = Duration::from_mins(1);

/// The WebTransport TLS configuration: TLS 1.3, the WebTransport ALPN, and
/// the certificate and key of MC_TLS_CERT_PATH / MC_TLS_KEY_PATH, re-read
/// when cert-manager renews them (each new session gets the newest pair).
/// A key file open to others is set to 0600 first, or refused.
fn webtransport_tls(
    config: &Config,
) -> anyhow::Result<(
    wtransport::tls::rustls::ServerConfig,
    Arc<common::tls_reload::ReloadingCert>,
)> {
    common::files::tighten_key_file(&config.tls_key_path)
        .map_err(|e| anyhow::anyhow!("MC_TLS_KEY_PATH: {e}"))?;
    let provider = Arc::new(wtransport::tls::rustls::crypto::ring::default_provider());
    let cert = common::tls_reload::ReloadingCert::load(
        &config.tls_cert_path,
        &config.tls_key_path,
        provider,
    )
    .map_err(|e| anyhow::anyhow!("cannot load MC_TLS_CERT_PATH/MC_TLS_KEY_PATH: {e}"))?;
    let tls = cert
        .server_config(wtransport::tls::WEBTRANSPORT_ALPN)
        .map_err(|e| anyhow::anyhow!("TLS 1.3: {e}"))?;
    Ok((tls, cert))
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_backoff(config, registration::register_backoff()).await
    }

    /// `build` with a custom RegisterMc backoff (tests shorten it).
    pub async fn build_with_backoff(config: Config, backoff: Backoff) -> anyhow::Result<Self> {
        let (tls, certificate) = webtransport_tls(&config)?;
        let store = Store::connect(&config.redis_url, &config.mc_id, REDIS_WAIT)
            .await
            .map_err(|e| anyhow::anyhow!("cannot use REDIS_URL: {e}"))?;
        match store.clear_stale_sessions().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(seats = n, "removed seats left by a previous run"),
            Err(e) => tracing::warn!(error = %e, "could not clear seats of a previous run"),
        }

        let jwks = Arc::new(JwksCache::new(
            &config.ac_jwks_url,
            common::jwt::audience::MC,
            JWKS_MIN_REFRESH,
        )?);
        let credentials = Arc::new(ClientCredentials::new(
            &config.ac_endpoint,
            config.client_id.clone(),
            config.client_secret.clone(),
        )?);

        let metrics = Metrics::new("mc")?;
        let signaling_metrics = SignalingMetrics::register(metrics.registry())?;
        let gc_metrics = GcMetrics::register(metrics.registry())?;
        let hub = Arc::new(Hub::new());
        let registration = Arc::new(Registration::default());

        let readiness = {
            let store = store.clone();
            let registration = registration.clone();
            Readiness::builder()
                .check("redis", move || {
                    let store = store.clone();
                    async move {
                        match store.ping().await {
                            Ok(()) => CheckOutcome::Healthy("healthy"),
                            Err(e) => {
                                tracing::warn!(error = %e, "readiness: Redis PING failed");
                                CheckOutcome::Failing("unreachable")
                            }
                        }
                    }
                })
                .flag(
                    "gc_registration",
                    move || registration.is_registered(),
                    "registered",
                    "not_registered",
                )
                .build()
        };

        let router = ops::router(readiness.clone(), metrics.clone())
            .layer(from_fn_with_state(metrics.clone(), track_http));

        let health_listener =
            bind_tcp("MC_HEALTH_BIND_ADDRESS", config.health_bind_address).await?;
        let grpc_listener = bind_tcp("MC_GRPC_BIND_ADDRESS", config.grpc_bind_address).await?;
        let server_config = ServerConfig::builder()
            .with_bind_address(config.webtransport_bind_address)
            .with_custom_tls(tls)
            .keep_alive_interval(Some(KEEP_ALIVE))
            .max_idle_timeout(Some(IDLE_TIMEOUT))
            .map_err(|e| anyhow::anyhow!("QUIC idle timeout: {e}"))?
            .build();
        let endpoint = Endpoint::server(server_config).map_err(|e| {
            anyhow::anyhow!(
                "cannot bind MC_WEBTRANSPORT_BIND_ADDRESS {}: {e}",
                config.webtransport_bind_address
            )
        })?;

        let grpc = McGrpc {
            store: store.clone(),
            jwks: jwks.clone(),
            metrics: metrics.clone(),
            readiness: readiness.clone(),
            mc_id: config.mc_id.clone(),
            webtransport_url: config.webtransport_url(),
            max_meetings: config.max_meetings,
            max_participants: config.max_participants,
            default_meeting_participants: config.default_meeting_participants,
        };
        let sessions = Arc::new(SessionContext {
            store: store.clone(),
            jwks: jwks.clone(),
            hub: hub.clone(),
            mc_id: config.mc_id.clone(),
            join_timeout: config.join_timeout,
            max_participants: config.max_participants,
            metrics: signaling_metrics,
        });
        let registrar = Registrar {
            identity: registration::Identity {
                mc_id: config.mc_id.clone(),
                region: config.region.clone(),
                grpc_address: config.grpc_advertise_address.clone(),
                webtransport_address: config.webtransport_advertise_address.clone(),
                max_meetings: config.max_meetings,
                max_participants: config.max_participants,
            },
            client: GlobalControllerServiceClient::new(
                registration::gc_channel(&config.gc_grpc_url)
                    .map_err(|e| anyhow::anyhow!("GC_GRPC_URL: {e}"))?,
            ),
            credentials,
            state: registration.clone(),
            store: store.clone(),
            hub,
            readiness: readiness.clone(),
            backoff,
            metrics: gc_metrics,
        };

        let background = BackgroundTasks::from(vec![
            tokio::spawn(jwks.clone().keep_fresh(JWKS_REFRESH)),
            certificate.watch(CERT_RELOAD_EVERY),
        ]);
        tracing::info!(
            mc_id = %config.mc_id,
            health = %health_listener.local_addr()?,
            grpc = %grpc_listener.local_addr()?,
            webtransport = %endpoint.local_addr()?,
            redis_mode = store.mode().as_str(),
            "meeting-controller listening"
        );
        Ok(Self {
            health_listener,
            grpc_listener,
            endpoint,
            router,
            grpc,
            readiness,
            registration,
            registrar: Some(registrar),
            sessions,
            store,
            jwks,
            background,
        })
    }

    pub fn health_addr(&self) -> std::io::Result<SocketAddr> {
        self.health_listener.local_addr()
    }

    pub fn grpc_addr(&self) -> std::io::Result<SocketAddr> {
        self.grpc_listener.local_addr()
    }

    pub fn webtransport_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    pub fn registration(&self) -> Arc<Registration> {
        self.registration.clone()
    }

    pub fn store(&self) -> Store {
        self.store.clone()
    }

    pub fn jwks(&self) -> Arc<JwksCache> {
        self.jwks.clone()
    }

    pub fn hub(&self) -> Arc<Hub> {
        self.sessions.hub.clone()
    }

    /// Serves health, gRPC and WebTransport until `shutdown` fires (after
    /// the drain, see `main`), then closes the remaining sessions (each
    /// gives its seat back), waits for them, and stops.
    pub async fn run(self, shutdown: ShutdownSignal) -> anyhow::Result<()> {
        let Self {
            health_listener,
            grpc_listener,
            endpoint,
            router,
            grpc,
            readiness,
            registration: _,
            registrar,
            sessions,
            store: _,
            jwks: _,
            mut background,
        } = self;
        if let Some(registrar) = registrar {
            background.push(tokio::spawn(registrar.run()));
        }
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_serving::<MeetingControllerServiceServer<McGrpc>>()
            .await;
        background.push(common::grpc::not_serving_on_shutdown(
            reporter,
            readiness,
            &[<MeetingControllerServiceServer<McGrpc> as NamedService>::NAME],
        ));

        let grpc_server = tonic::transport::Server::builder()
            .timeout(Duration::from_secs(10))
            .add_service(health)
            .add_service(MeetingControllerServiceServer::new(grpc))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(grpc_listener),
                shutdown.clone().wait(),
            );
        let http_server =
            axum::serve(health_listener, router).with_graceful_shutdown(shutdown.clone().wait());
        let signaling = signaling::serve(endpoint, sessions, shutdown, SESSION_CLOSE_WAIT);
        let (grpc_result, http_result, ()) = tokio::join!(grpc_server, http_server, signaling);
        drop(background);
        grpc_result?;
        http_result?;
        tracing::info!("meeting-controller stopped");
        Ok(())
    }
}
