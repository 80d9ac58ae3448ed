//! Builds media-handler from its config: TLS, AC JWKS cache, AC client
//! credentials, the QUIC media endpoint, the gRPC server, the health HTTP
//! server and the GC registrar. `build` binds all three sockets (port 0 in
//! tests); `run` serves until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware::from_fn_with_state;
use common::jwks::JwksCache;
use common::metrics::{Metrics, track_http};
use common::ops::{self, Readiness};
use common::shutdown::ShutdownSignal;
use common::startup::{BackgroundTasks, bind_tcp};
use common::token_client::ClientCredentials;
use proto::MediaHandlerServiceServer;
use tokio::net::TcpListener;
use tonic::server::NamedService;

use crate::config::Config;
use crate::grpc::MhGrpc;
use crate::media::{Limits, MediaMetrics, MediaServer, Sfu};
use crate::registration::{self, Identity, Registrar, RegistrationState};
use crate::tls;

/// JWKS refresh period (unknown key ids also trigger a refresh).
const JWKS_REFRESH: Duration = Duration::from_mins(5);
/// Least time between two refreshes triggered by unknown key ids.
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(10);

pub struct Application {
    health_listener: TcpListener,
    grpc_listener: TcpListener,
    media: MediaServer,
    router: Router,
    grpc: MhGrpc,
    readiness: Readiness,
    registrar: Registrar,
    registration: Arc<RegistrationState>,
    sfu: Arc<Sfu>,
    jwks: Arc<JwksCache>,
    background: BackgroundTasks,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("health", &self.health_listener.local_addr().ok())
            .field("grpc", &self.grpc_listener.local_addr().ok())
            .field("media", &self.media.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_limits(config, Limits::default()).await
    }

    pub async fn build_with_limits(config: Config, limits: Limits) -> anyhow::Result<Self> {
        // A key file open to others is set to 0600 first, or refused.
        common::files::tighten_key_file(&config.tls_key_path)
            .map_err(|e| anyhow::anyhow!("MH_TLS_KEY_PATH: {e}"))?;
        let certificate = tls::load_certificate(&config.tls_cert_path, &config.tls_key_path)
            .map_err(|e| anyhow::anyhow!("MH_TLS_CERT_PATH/MH_TLS_KEY_PATH: {e}"))?;
        let crypto = tls::server_crypto(&certificate)
            .map_err(|e| anyhow::anyhow!("MH_TLS_CERT_PATH/MH_TLS_KEY_PATH: {e}"))?;

        let jwks = Arc::new(JwksCache::new(
            &config.ac_jwks_url,
            common::jwt::audience::MH,
            JWKS_MIN_REFRESH,
        )?);
        let credentials = Arc::new(ClientCredentials::new(
            &config.ac_endpoint,
            config.client_id.clone(),
            config.client_secret.clone(),
        )?);
        let channel = registration::gc_channel(&config.gc_grpc_url)
            .map_err(|e| anyhow::anyhow!("GC_GRPC_URL: {e}"))?;

        let metrics = Metrics::new("mh")?;
        let media_metrics = MediaMetrics::register(metrics.registry())?;
        let sfu = Arc::new(Sfu::new(
            config.mh_id.clone(),
            jwks.clone(),
            limits,
            media_metrics,
        ));
        let media =
            MediaServer::bind(config.media_bind_address, crypto, sfu.clone()).map_err(|e| {
                anyhow::anyhow!(
                    "cannot bind MH_MEDIA_BIND_ADDRESS {} (UDP): {e}",
                    config.media_bind_address
                )
            })?;

        let registration = Arc::new(RegistrationState::default());
        let readiness = {
            let registration = registration.clone();
            let sfu = sfu.clone();
            Readiness::builder()
                .flag(
                    "gc_registration",
                    move || registration.is_registered(),
                    "registered",
                    "not_registered",
                )
                .flag(
                    "media_port",
                    move || sfu.is_port_bound(),
                    "bound",
                    "not_bound",
                )
                .build()
        };

        let router = ops::router(readiness.clone(), metrics.clone())
            .layer(from_fn_with_state(metrics.clone(), track_http));
        let grpc = MhGrpc {
            sfu: sfu.clone(),
            jwks: jwks.clone(),
            metrics,
        };
        let registrar = Registrar {
            identity: Identity {
                mh_id: config.mh_id.clone(),
                region: config.region.clone(),
                grpc_address: config.grpc_advertise_address.clone(),
                media_address: config.media_advertise_address.clone(),
            },
            channel,
            credentials,
            sfu: sfu.clone(),
            state: registration.clone(),
            readiness: readiness.clone(),
        };

        let health_listener =
            bind_tcp("MH_HEALTH_BIND_ADDRESS", config.health_bind_address).await?;
        let grpc_listener = bind_tcp("MH_GRPC_BIND_ADDRESS", config.grpc_bind_address).await?;
        // cert-manager renews the certificate days before it expires; a minute
        // is plenty to pick it up.
        let background = BackgroundTasks::from(vec![
            tokio::spawn(jwks.clone().keep_fresh(JWKS_REFRESH)),
            certificate.watch(Duration::from_mins(1)),
        ]);
        tracing::info!(
            mh_id = %config.mh_id,
            health = %health_listener.local_addr()?,
            grpc = %grpc_listener.local_addr()?,
            media = %media.local_addr()?,
            media_advertised = %config.media_advertise_address,
            region = %config.region,
            "media-handler listening"
        );
        Ok(Self {
            health_listener,
            grpc_listener,
            media,
            router,
            grpc,
            readiness,
            registrar,
            registration,
            sfu,
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

    pub fn media_addr(&self) -> std::io::Result<SocketAddr> {
        self.media.local_addr()
    }

    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    pub fn registration(&self) -> Arc<RegistrationState> {
        self.registration.clone()
    }

    pub fn sfu(&self) -> Arc<Sfu> {
        self.sfu.clone()
    }

    pub fn jwks(&self) -> Arc<JwksCache> {
        self.jwks.clone()
    }

    /// The health/metrics router, for `Router::oneshot` tests.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves media, gRPC and HTTP and keeps the GC registration until
    /// `shutdown` fires. gRPC health reports NOT_SERVING once readiness is
    /// false.
    pub async fn run(self, shutdown: ShutdownSignal) -> anyhow::Result<()> {
        let Self {
            health_listener,
            grpc_listener,
            media,
            router,
            grpc,
            readiness,
            registrar,
            registration: _,
            sfu: _,
            jwks: _,
            mut background,
        } = self;
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_serving::<MediaHandlerServiceServer<MhGrpc>>()
            .await;
        background.push(common::grpc::not_serving_on_shutdown(
            reporter,
            readiness,
            &[<MediaHandlerServiceServer<MhGrpc> as NamedService>::NAME],
        ));
        background.push(tokio::spawn(registrar.run(shutdown.clone())));

        let grpc_server = tonic::transport::Server::builder()
            .timeout(Duration::from_secs(10))
            .add_service(health)
            .add_service(MediaHandlerServiceServer::new(grpc))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(grpc_listener),
                shutdown.clone().wait(),
            );
        let http_server =
            axum::serve(health_listener, router).with_graceful_shutdown(shutdown.clone().wait());
        let media_server = media.run(shutdown);
        let (grpc_result, http_result, ()) = tokio::join!(grpc_server, http_server, media_server);
        drop(background);
        grpc_result?;
        http_result?;
        tracing::info!("media-handler stopped");
        Ok(())
    }
}
