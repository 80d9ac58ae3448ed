//! Builds global-controller from its config: database (migrations run
//! here), AC JWKS cache, AC client, HTTP router and gRPC server. `build`
//! binds both listeners (port 0 in tests); `run` serves until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use common::jwks::JwksCache;
use common::metrics::{Metrics, track_http};
use common::ops::{self, CheckOutcome, Readiness};
use common::shutdown::ShutdownSignal;
use common::startup::{BackgroundTasks, bind_tcp};
use common::token_client::ClientCredentials;
use prometheus::{IntCounter, IntCounterVec, IntGaugeVec, Opts};
use proto::{GlobalControllerServiceServer, MediaHandlerRegistryServer};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tonic::server::NamedService;

use crate::ac_client::AcClient;
use crate::config::Config;
use crate::grpc::GcGrpc;
use crate::mc_client::McClients;
use crate::meetings::{self, AppState};
use crate::registry;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

const DB_WAIT: Duration = Duration::from_secs(30);
/// JWKS refresh period (unknown key ids also trigger a refresh).
const JWKS_REFRESH: Duration = Duration::from_mins(5);
/// Least time between two refreshes triggered by unknown key ids.
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(10);

pub struct Application {
    http_listener: TcpListener,
    grpc_listener: TcpListener,
    router: Router,
    grpc: GcGrpc,
    readiness: Readiness,
    pool: PgPool,
    jwks: Arc<JwksCache>,
    background: BackgroundTasks,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("http", &self.http_listener.local_addr().ok())
            .field("grpc", &self.grpc_listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = common::db::connect(&config.database_url, 10, DB_WAIT)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to DATABASE_URL: {e}"))?;
        common::db::migrate(&MIGRATOR, &config.database_migration_url, DB_WAIT)
            .await
            .map_err(|e| anyhow::anyhow!("database migration failed: {e}"))?;

        let jwks = Arc::new(JwksCache::new(
            &config.ac_jwks_url,
            common::jwt::audience::GC,
            JWKS_MIN_REFRESH,
        )?);
        let credentials = ClientCredentials::new(
            &config.ac_internal_url,
            config.client_id.clone(),
            config.client_secret.clone(),
        )?;
        let ac = Arc::new(AcClient::new(&config.ac_internal_url, credentials)?);

        let metrics = Metrics::new("gc")?;
        let meetings_created = IntCounter::new("meetings_created_total", "Meetings created")?;
        let joins = IntCounterVec::new(
            Opts::new("meeting_joins_total", "Join requests by outcome"),
            &["outcome"],
        )?;
        let controllers = IntGaugeVec::new(
            Opts::new("controllers", "Registered controllers by kind and liveness"),
            &["kind", "state"],
        )?;
        metrics
            .registry()
            .register(Box::new(meetings_created.clone()))?;
        metrics.registry().register(Box::new(joins.clone()))?;
        metrics.registry().register(Box::new(controllers.clone()))?;

        let readiness = {
            let pool = pool.clone();
            let jwks = jwks.clone();
            Readiness::builder()
                .check("database", move || common::db::check(pool.clone()))
                .check("ac_jwks", move || {
                    let fetched = jwks.is_fetched();
                    async move {
                        if fetched {
                            CheckOutcome::Healthy("fetched")
                        } else {
                            CheckOutcome::Failing("not_fetched")
                        }
                    }
                })
                .build()
        };

        let state = AppState {
            pool: pool.clone(),
            jwks: jwks.clone(),
            ac,
            mcs: Arc::new(McClients::default()),
            region: Arc::from(config.region.as_str()),
            staleness: config.staleness_threshold,
            meetings_created,
            joins,
        };
        let router = Router::new()
            .route("/api/v1/meetings", post(meetings::create))
            .route("/api/v1/meetings/{meeting_id}", get(meetings::join))
            .with_state(state)
            .merge(ops::router(readiness.clone(), metrics.clone()))
            .layer(from_fn_with_state(metrics.clone(), track_http));

        let grpc = GcGrpc {
            pool: pool.clone(),
            jwks: jwks.clone(),
            metrics,
            region: config.region.clone(),
            staleness: config.staleness_threshold,
        };

        let http_listener = bind_tcp("BIND_ADDRESS", config.bind_address).await?;
        let grpc_listener = bind_tcp("GC_GRPC_BIND_ADDRESS", config.grpc_bind_address).await?;

        let background = BackgroundTasks::from(vec![
            tokio::spawn(jwks.clone().keep_fresh(JWKS_REFRESH)),
            tokio::spawn(sweep(pool.clone(), config.staleness_threshold, controllers)),
        ]);
        tracing::info!(
            http = %http_listener.local_addr()?,
            grpc = %grpc_listener.local_addr()?,
            region = %config.region,
            "global-controller listening"
        );
        Ok(Self {
            http_listener,
            grpc_listener,
            router,
            grpc,
            readiness,
            pool,
            jwks,
            background,
        })
    }

    pub fn http_addr(&self) -> std::io::Result<SocketAddr> {
        self.http_listener.local_addr()
    }

    pub fn grpc_addr(&self) -> std::io::Result<SocketAddr> {
        self.grpc_listener.local_addr()
    }

    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    pub fn pool(&self) -> PgPool {
        self.pool.clone()
    }

    pub fn jwks(&self) -> Arc<JwksCache> {
        self.jwks.clone()
    }

    /// The HTTP router, for `Router::oneshot` tests.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves HTTP and gRPC until `shutdown` fires; both finish in-flight
    /// requests. gRPC health reports NOT_SERVING once readiness is false.
    pub async fn run(self, shutdown: ShutdownSignal) -> anyhow::Result<()> {
        let Self {
            http_listener,
            grpc_listener,
            router,
            grpc,
            readiness,
            pool,
            jwks: _,
            mut background,
        } = self;
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_serving::<GlobalControllerServiceServer<GcGrpc>>()
            .await;
        reporter
            .set_serving::<MediaHandlerRegistryServer<GcGrpc>>()
            .await;
        background.push(common::grpc::not_serving_on_shutdown(
            reporter,
            readiness,
            &[
                <GlobalControllerServiceServer<GcGrpc> as NamedService>::NAME,
                <MediaHandlerRegistryServer<GcGrpc> as NamedService>::NAME,
            ],
        ));

        let grpc_server = tonic::transport::Server::builder()
            .timeout(Duration::from_secs(10))
            .add_service(health)
            .add_service(GlobalControllerServiceServer::new(grpc.clone()))
            .add_service(MediaHandlerRegistryServer::new(grpc))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(grpc_listener),
                shutdown.clone().wait(),
            );
        let http_server =
            axum::serve(http_listener, router).with_graceful_shutdown(shutdown.wait());
        let (grpc_result, http_result) = tokio::join!(grpc_server, http_server);
        drop(background);
        grpc_result?;
        http_result?;
        pool.close().await;
        tracing::info!("global-controller stopped");
        Ok(())
    }
}

/// Periodically forgets long-silent controllers and updates the gauge.
async fn sweep(pool: PgPool, staleness: Duration, gauge: IntGaugeVec) {
    loop {
        match registry::forget_silent(&pool, staleness).await {
            Ok((0, 0)) => {}
            Ok((mcs, mhs)) => tracing::info!(mcs, mhs, "forgot silent controllers"),
            Err(e) => tracing::warn!(error = %e, "registry sweep failed"),
        }
        if let Ok(counts) = registry::counts(&pool, staleness).await {
            for (kind, state, n) in counts {
                gauge.with_label_values(&[kind, state]).set(n);
            }
        }
        tokio::time::sleep(staleness.min(Duration::from_secs(30))).await;
    }
}
