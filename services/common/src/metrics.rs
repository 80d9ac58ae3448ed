//! Prometheus metrics with a per-service prefix (`ac_`, `gc_`, `mc_`, `mh_`).
//!
//! HTTP requests are counted and timed by [`track_http`], labelled by the
//! route *template* (`/api/v1/meetings/{meeting_id}`), never by the raw path,
//! so label cardinality stays bounded no matter what clients send. Services
//! register their own collectors on [`Metrics::registry`].

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Label used for requests that matched no route (404s, scanners).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Latency buckets in seconds: sub-millisecond up to the probe timeouts.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    grpc_requests: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// `prefix` without the trailing underscore, e.g. `"gc"`.
    pub fn new(prefix: &str) -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some(prefix.to_owned()), None)?;
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route template"),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route template",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "route"],
        )?;
        let grpc_requests = IntCounterVec::new(
            Opts::new("grpc_requests_total", "gRPC requests by method and code"),
            &["method", "code"],
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(grpc_requests.clone()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                registry,
                http_requests,
                http_duration,
                grpc_requests,
            }),
        })
    }

    /// The registry, for service-specific collectors (they get the prefix).
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Prometheus text exposition of everything registered.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let families = self.inner.registry.gather();
        if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    pub fn observe_http(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        self.inner
            .http_requests
            .with_label_values(&[method, route, status.as_str()])
            .inc();
        self.inner
            .http_duration
            .with_label_values(&[method, route])
            .observe(seconds);
    }

    /// Both labels must come from fixed sets: `method` from the proto's
    /// method names, `code` from `grpc::code_label`.
    pub fn observe_grpc(&self, method: &'static str, code: &'static str) {
        self.inner
            .grpc_requests
            .with_label_values(&[method, code])
            .inc();
    }
}

/// Bounded method label: anything outside the standard set is `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Axum middleware: count, time and log every request by route template.
/// Install with `Router::layer(axum::middleware::from_fn_with_state(...))`
/// so it runs after routing and sees [`MatchedPath`].
pub async fn track_http(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED_ROUTE.to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method());
    let start = Instant::now();
    let response = next.run(req).await;
    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    metrics.observe_http(method, &route, status, elapsed.as_secs_f64());
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    if matches!(route.as_str(), "/health" | "/ready" | "/metrics") {
        tracing::debug!(method, route, status, latency_ms, "request");
    } else {
        tracing::info!(method, route, status, latency_ms, "request");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix() {
        let m = Metrics::new("gc").unwrap();
        m.observe_http("GET", "/api/v1/meetings/{meeting_id}", 200, 0.01);
        m.observe_grpc("RegisterMc", "ok");
        let text = m.render();
        assert!(text.contains("gc_http_requests_total{method=\"GET\",route=\"/api/v1/meetings/{meeting_id}\",status=\"200\"} 1"), "{text}");
        assert!(
            text.contains("gc_http_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(
            text.contains("gc_grpc_requests_total{code=\"ok\",method=\"RegisterMc\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn unknown_methods_are_bounded() {
        let m = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&m), "other");
        assert_eq!(method_label(&Method::GET), "GET");
    }
}
