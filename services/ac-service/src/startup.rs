//! Builds ac-service from its config: database (migrations run here), keys,
//! router, listener. `build` binds (port 0 in tests) and returns the bound
//! address; `run` serves until the shutdown signal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use common::metrics::{Metrics, track_http};
use common::ops::{self, CheckOutcome, Readiness};
use common::shutdown::ShutdownSignal;
use prometheus::{IntCounterVec, Opts};
use rand::RngCore as _;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::config::Config;
use crate::keys::KeyStore;

/// Embedded migrations, run at every start (idempotent, advisory-locked).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long start-up waits for `PostgreSQL` before giving up.
const DB_WAIT: Duration = Duration::from_secs(30);

pub struct Application {
    listener: TcpListener,
    router: Router,
    readiness: Readiness,
    pool: PgPool,
    keys: KeyStore,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// Connects and migrates (shared with the `register-client` subcommand).
pub async fn connect_and_migrate(config: &Config) -> anyhow::Result<PgPool> {
    let pool = common::db::connect(&config.database_url, 10, DB_WAIT)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to DATABASE_URL: {e}"))?;
    common::db::migrate(&MIGRATOR, &config.database_migration_url, DB_WAIT)
        .await
        .map_err(|e| anyhow::anyhow!("database migration failed: {e}"))?;
    Ok(pool)
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = connect_and_migrate(&config).await?;
        if let Some(file) = &config.clients_file {
            // Before anything is served: a broken declaration stops the
            // start-up with the file named, instead of serving without clients.
            let declared = crate::declared::read_file(file)?;
            crate::declared::apply(&pool, &declared)
                .await
                .map_err(|e| anyhow::anyhow!("applying AC_CLIENTS_FILE failed: {e}"))?;
        }
        let keys =
            KeyStore::load_or_create(&pool, &config.master_key, &config.cluster_name).await?;

        // A hash to verify against when the client id is unknown, so that
        // unknown ids take as long as wrong secrets.
        let cost = config.bcrypt_cost;
        let dummy_hash = tokio::task::spawn_blocking(move || {
            let mut random = [0u8; 24];
            rand::rngs::OsRng.fill_bytes(&mut random);
            bcrypt::hash(random, cost)
        })
        .await??;

        let metrics = Metrics::new("ac")?;
        let tokens_issued = IntCounterVec::new(
            Opts::new("tokens_issued_total", "Tokens issued, by kind"),
            &["kind"],
        )?;
        let token_errors = IntCounterVec::new(
            Opts::new(
                "token_errors_total",
                "Token requests refused, by OAuth 2 error code",
            ),
            &["error"],
        )?;
        metrics
            .registry()
            .register(Box::new(tokens_issued.clone()))?;
        metrics
            .registry()
            .register(Box::new(token_errors.clone()))?;

        let readiness = {
            let pool = pool.clone();
            let keys = keys.clone();
            Readiness::builder()
                .check("database", move || common::db::check(pool.clone()))
                .check("signing_key", move || {
                    let available = keys.active().is_some();
                    async move {
                        if available {
                            CheckOutcome::Healthy("available")
                        } else {
                            CheckOutcome::Failing("missing")
                        }
                    }
                })
                .build()
        };

        let state = AppState {
            pool: pool.clone(),
            keys: keys.clone(),
            issuer: Arc::from(common::jwt::ISSUER),
            dummy_hash: Arc::from(dummy_hash),
            tokens_issued,
            token_errors,
        };
        let router = Router::new()
            .route("/.well-known/jwks.json", get(api::jwks))
            .route("/api/v1/auth/service/token", post(api::service_token))
            .route(
                "/api/v1/auth/internal/meeting-token",
                post(api::meeting_token),
            )
            .with_state(state)
            .merge(ops::router(readiness.clone(), metrics.clone()))
            .layer(from_fn_with_state(metrics, track_http));

        let listener = common::startup::bind_tcp("BIND_ADDRESS", config.bind_address).await?;
        tracing::info!(
            addr = %listener.local_addr()?,
            kid = keys.active().map(|k| k.kid).unwrap_or_default(),
            "ac-service listening"
        );
        Ok(Self {
            listener,
            router,
            readiness,
            pool,
            keys,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    pub fn pool(&self) -> PgPool {
        self.pool.clone()
    }

    pub fn keys(&self) -> KeyStore {
        self.keys.clone()
    }

    /// The router, for `Router::oneshot` tests.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves until `shutdown` fires, then finishes in-flight requests.
    pub async fn run(self, shutdown: ShutdownSignal) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.wait())
            .await?;
        self.pool.close().await;
        tracing::info!("ac-service stopped");
        Ok(())
    }
}
