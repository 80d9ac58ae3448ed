//! `PostgreSQL` helpers shared by AC and GC: connecting with a bounded retry
//! at start, running the migrations over a direct session, and the
//! readiness check.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::backoff::Backoff;
use crate::ops::CheckOutcome;

/// Connects, retrying with backoff for up to `wait` (`PostgreSQL` may still be
/// starting next to us). Errors never contain the URL.
pub async fn connect(
    url: &SecretString,
    max_connections: u32,
    wait: Duration,
) -> Result<PgPool, sqlx::Error> {
    let deadline = Instant::now() + wait;
    let backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
    let mut retry = 0;
    loop {
        let delay = backoff.delay(retry);
        let attempt = PgPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(3))
            .idle_timeout(Duration::from_mins(5))
            .connect(url.expose_secret())
            .await;
        match attempt {
            Ok(pool) => return Ok(pool),
            Err(e) if Instant::now() + delay < deadline => {
                tracing::warn!(error = %e, "database not reachable yet, retrying");
                tokio::time::sleep(delay).await;
                retry += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Runs `migrator` over its own single connection to `url`, closed
/// afterwards. That URL is a direct session to the primary
/// (`DATABASE_MIGRATION_URL`), not the pooler that serves the queries:
/// sqlx holds a session-level advisory lock for the whole run, which a
/// transaction-mode pooler (PgBouncer) would hand to another client's
/// transaction after the first statement, so the URL is its own required
/// variable rather than a fallback to the pooler's. Retries the connection
/// like [`connect`]; errors never contain the URL.
pub async fn migrate(
    migrator: &sqlx::migrate::Migrator,
    url: &SecretString,
    wait: Duration,
) -> Result<(), sqlx::migrate::MigrateError> {
    let pool = connect(url, 1, wait).await?;
    let result = migrator.run(&pool).await;
    pool.close().await;
    result
}

/// Readiness: one round trip to the database, answered within 1.5 s (below
/// the readiness check's own 2 s limit, so an unreachable server reads as
/// `unreachable` rather than a generic timeout).
pub async fn check(pool: PgPool) -> CheckOutcome {
    let query = sqlx::query("SELECT 1").execute(&pool);
    match tokio::time::timeout(Duration::from_millis(1500), query).await {
        Ok(Ok(_)) => CheckOutcome::Healthy("healthy"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            CheckOutcome::Failing("unreachable")
        }
        Err(_) => {
            tracing::warn!("readiness: database did not answer within 1.5 s");
            CheckOutcome::Failing("unreachable")
        }
    }
}
