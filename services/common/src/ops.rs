//! The operational endpoints every service serves (ADR-0012):
//! `/health` (liveness, no dependencies), `/ready` (readiness, checks the
//! service's critical dependencies and names the failing one) and
//! `/metrics` (Prometheus text).
//!
//! Readiness also goes false as the first step of a graceful shutdown, so
//! the load balancer stops sending traffic before the server stops.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use crate::metrics::Metrics;

/// What one dependency check found: a short status word either way
/// (`"healthy"`, `"available"` / `"unreachable"`, `"missing"`). Details go
/// to the log inside the check, never to the probe response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOutcome {
    Healthy(&'static str),
    Failing(&'static str),
}

pub type CheckFuture = Pin<Box<dyn Future<Output = CheckOutcome> + Send>>;
type CheckFn = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

struct Check {
    name: &'static str,
    run: CheckFn,
}

/// Readiness state shared by the `/ready` handler, the shutdown sequence and
/// anything else that can make the service unready.
#[derive(Clone)]
pub struct Readiness {
    inner: Arc<Inner>,
}

struct Inner {
    shutting_down: AtomicBool,
    checks: Vec<Check>,
    timeout: Duration,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.inner.checks.iter().map(|c| c.name).collect();
        f.debug_struct("Readiness")
            .field("checks", &names)
            .field("shutting_down", &self.is_shutting_down())
            .finish()
    }
}

#[derive(Default)]
pub struct ReadinessBuilder {
    checks: Vec<Check>,
    timeout: Option<Duration>,
}

impl ReadinessBuilder {
    /// Adds a dependency check. `name` is the dependency as operators know
    /// it (`"database"`, `"ac_jwks"`); it is the key in the JSON answer.
    #[must_use]
    pub fn check<F, Fut>(mut self, name: &'static str, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = CheckOutcome> + Send + 'static,
    {
        self.checks.push(Check {
            name,
            run: Arc::new(move || Box::pin(f())),
        });
        self
    }

    /// Adds a check of a flag the service keeps itself (registered with GC,
    /// port bound): `healthy` while `is_set` says so, `failing` otherwise.
    #[must_use]
    pub fn flag(
        self,
        name: &'static str,
        is_set: impl Fn() -> bool + Send + Sync + 'static,
        healthy: &'static str,
        failing: &'static str,
    ) -> Self {
        self.check(name, move || {
            let outcome = if is_set() {
                CheckOutcome::Healthy(healthy)
            } else {
                CheckOutcome::Failing(failing)
            };
            async move { outcome }
        })
    }

    /// Per-check timeout; a check that takes longer counts as `"timeout"`.
    /// Defaults to 2 s, below the 3 s readiness probe timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub fn build(self) -> Readiness {
        Readiness {
            inner: Arc::new(Inner {
                shutting_down: AtomicBool::new(false),
                checks: self.checks,
                timeout: self.timeout.unwrap_or(Duration::from_secs(2)),
            }),
        }
    }
}

/// The readiness verdict and the JSON body that explains it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadinessReport {
    pub ready: bool,
    pub body: Value,
}

impl Readiness {
    pub fn builder() -> ReadinessBuilder {
        ReadinessBuilder::default()
    }

    pub fn set_shutting_down(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }

    /// Runs every check concurrently, each bounded by the timeout.
    pub async fn evaluate(&self) -> ReadinessReport {
        if self.is_shutting_down() {
            return ReadinessReport {
                ready: false,
                body: json!({"status": "shutting_down"}),
            };
        }
        let mut set = tokio::task::JoinSet::new();
        for (index, check) in self.inner.checks.iter().enumerate() {
            let fut = (check.run)();
            let timeout = self.inner.timeout;
            set.spawn(async move {
                let outcome = tokio::time::timeout(timeout, fut)
                    .await
                    .unwrap_or(CheckOutcome::Failing("timeout"));
                (index, outcome)
            });
        }
        let mut outcomes = vec![CheckOutcome::Failing("check_panicked"); self.inner.checks.len()];
        while let Some(joined) = set.join_next().await {
            if let Ok((index, outcome)) = joined {
                outcomes[index] = outcome;
            }
        }
        let mut body = Map::new();
        let mut failing = Vec::new();
        for (check, outcome) in self.inner.checks.iter().zip(outcomes) {
            let word = match outcome {
                CheckOutcome::Healthy(word) => word,
                CheckOutcome::Failing(word) => {
                    failing.push(Value::from(check.name));
                    word
                }
            };
            body.insert(check.name.to_owned(), Value::from(word));
        }
        let ready = failing.is_empty();
        body.insert(
            "status".to_owned(),
            Value::from(if ready { "ready" } else { "not_ready" }),
        );
        if !ready {
            body.insert("failing".to_owned(), Value::Array(failing));
        }
        ReadinessReport {
            ready,
            body: Value::Object(body),
        }
    }
}

#[derive(Clone)]
struct OpsState {
    readiness: Readiness,
    metrics: Metrics,
}

/// `/health`, `/ready` and `/metrics`, to merge into the service's router.
pub fn router(readiness: Readiness, metrics: Metrics) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_handler))
        .with_state(OpsState { readiness, metrics })
}

async fn health() -> &'static str {
    "OK"
}

async fn ready(State(state): State<OpsState>) -> Response {
    let report = state.readiness.evaluate().await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        tracing::warn!(report = %report.body, "not ready");
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report.body)).into_response()
}

async fn metrics_handler(State(state): State<OpsState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get_json(app: Router, path: &str) -> (StatusCode, String) {
        let response = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn health_is_ok_without_dependencies() {
        let readiness = Readiness::builder()
            .check("database", || async {
                CheckOutcome::Failing("unreachable")
            })
            .build();
        let app = router(readiness, Metrics::new("t").unwrap());
        assert_eq!(
            get_json(app, "/health").await,
            (StatusCode::OK, "OK".to_owned())
        );
    }

    #[tokio::test]
    async fn ready_names_the_failing_dependency() {
        let readiness = Readiness::builder()
            .check("database", || async {
                CheckOutcome::Failing("unreachable")
            })
            .check("signing_key", || async {
                CheckOutcome::Healthy("available")
            })
            .build();
        let app = router(readiness, Metrics::new("t").unwrap());
        let (status, body) = get_json(app, "/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "not_ready");
        assert_eq!(v["database"], "unreachable");
        assert_eq!(v["signing_key"], "available");
        assert_eq!(v["failing"], json!(["database"]));
    }

    #[tokio::test]
    async fn ready_when_all_checks_pass_and_not_after_shutdown() {
        let readiness = Readiness::builder()
            .check("database", || async { CheckOutcome::Healthy("healthy") })
            .build();
        let app = router(readiness.clone(), Metrics::new("t").unwrap());
        let (status, body) = get_json(app.clone(), "/ready").await;
        assert_eq!(status, StatusCode::OK);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v, json!({"status": "ready", "database": "healthy"}));
        readiness.set_shutting_down();
        let (status, body) = get_json(app, "/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("shutting_down"));
    }

    #[tokio::test]
    async fn slow_check_times_out() {
        let readiness = Readiness::builder()
            .timeout(Duration::from_millis(20))
            .check("redis", || async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                CheckOutcome::Healthy("healthy")
            })
            .build();
        let report = readiness.evaluate().await;
        assert!(!report.ready);
        assert_eq!(report.body["redis"], "timeout");
    }

    #[tokio::test]
    async fn metrics_endpoint_serves_prometheus_text() {
        let metrics = Metrics::new("ac").unwrap();
        metrics.observe_http("GET", "/health", 200, 0.001);
        let app = router(Readiness::builder().build(), metrics);
        let (status, body) = get_json(app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("ac_http_requests_total"), "{body}");
    }
}
