//! MC's registration with GC: `RegisterMc` at start, retried with
//! exponential backoff and jitter while GC (or AC, for MC's own token) is
//! unavailable; then `Heartbeat` at the interval GC asks for, carrying the
//! load and health. A heartbeat answered NOT_FOUND means GC has forgotten
//! this MC (its record expired, or GC's database was reset): MC registers
//! again at once and resumes. Once shutdown starts, the next heartbeat (sent
//! immediately) reports DRAINING so GC places no new meetings here.
//!
//! "Registered" (the readiness check) means GC accepted this MC and has not
//! since said it forgot it. A GC that is briefly unreachable does not make
//! MC unready: its sessions keep working, and GC's own staleness threshold
//! takes the MC out of placement if the silence lasts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::grpc::with_bearer;
use common::ops::Readiness;
use common::token_client::ClientCredentials;
use prometheus::{IntCounterVec, Opts};
use proto::GlobalControllerServiceClient;
use proto::v1::{Capacity, HealthStatus, HeartbeatRequest, Load, RegisterMcRequest};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use crate::hub::Hub;
use crate::store::Store;

/// Backoff of RegisterMc retries (the services' one retry policy).
pub use common::backoff::Backoff;

/// RegisterMc retries: doubling from 250 ms up to 15 s, ±20 % jitter.
pub fn register_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(250), Duration::from_secs(15)).with_jitter(0.8..=1.2)
}

/// What MC tells GC about itself.
#[derive(Debug, Clone)]
pub struct Identity {
    pub mc_id: String,
    pub region: String,
    pub grpc_address: String,
    pub webtransport_address: String,
    pub max_meetings: u32,
    pub max_participants: u32,
}

/// Registration state shared with readiness.
#[derive(Debug, Default)]
pub struct Registration {
    registered: AtomicBool,
}

impl Registration {
    pub fn is_registered(&self) -> bool {
        self.registered.load(Ordering::SeqCst)
    }

    fn set(&self, registered: bool) {
        self.registered.store(registered, Ordering::SeqCst);
    }
}

#[derive(Clone)]
pub struct GcMetrics {
    pub calls: IntCounterVec,
}

impl GcMetrics {
    pub fn register(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let calls = IntCounterVec::new(
            Opts::new("gc_calls_total", "Calls to GC by method and gRPC code"),
            &["method", "code"],
        )?;
        registry.register(Box::new(calls.clone()))?;
        Ok(Self { calls })
    }
}

/// Everything the registration loop needs.
pub struct Registrar {
    pub identity: Identity,
    pub client: GlobalControllerServiceClient<Channel>,
    pub credentials: Arc<ClientCredentials>,
    pub state: Arc<Registration>,
    pub store: Store,
    pub hub: Arc<Hub>,
    pub readiness: Readiness,
    pub backoff: Backoff,
    pub metrics: GcMetrics,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// A lazily connecting channel to GC's gRPC server.
pub fn gc_channel(gc_grpc_url: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(gc_grpc_url.to_owned())?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect_lazy())
}

#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("getting MC's own token from AC failed: {0}")]
    Token(#[from] common::token_client::TokenClientError),
    #[error("{0}")]
    Status(#[from] tonic::Status),
}

impl CallError {
    fn code(&self) -> Code {
        match self {
            Self::Token(_) => Code::Unavailable,
            Self::Status(s) => s.code(),
        }
    }
}

impl Registrar {
    /// Runs until the process ends (the task is aborted at shutdown).
    pub async fn run(mut self) {
        loop {
            let interval = self.register_with_backoff().await;
            self.heartbeat_until_forgotten(interval).await;
            self.state.set(false);
            tracing::warn!(mc_id = %self.identity.mc_id, "GC forgot this MC; registering again");
        }
    }

    fn record(&self, method: &str, code: Code) {
        self.metrics
            .calls
            .with_label_values(&[method, common::grpc::code_label(code)])
            .inc();
    }

    async fn after_refusal(&self, error: &CallError) {
        if error.code() == Code::Unauthenticated {
            // AC may have rotated keys or our token expired early.
            self.credentials.invalidate().await;
        }
    }

    async fn register_once(&mut self) -> Result<Duration, CallError> {
        let token = self.credentials.token().await?;
        let request = RegisterMcRequest {
            mc_id: self.identity.mc_id.clone(),
            region: self.identity.region.clone(),
            grpc_address: self.identity.grpc_address.clone(),
            webtransport_address: self.identity.webtransport_address.clone(),
            capacity: Some(Capacity {
                max_meetings: self.identity.max_meetings,
                max_participants: self.identity.max_participants,
            }),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let response = self
            .client
            .register_mc(with_bearer(request, &token)?)
            .await?
            .into_inner();
        Ok(Duration::from_secs(u64::from(
            response.heartbeat_interval_seconds.clamp(1, 300),
        )))
    }

    /// Registers, retrying with backoff; returns the heartbeat interval.
    async fn register_with_backoff(&mut self) -> Duration {
        let mut attempt = 0u32;
        loop {
            match self.register_once().await {
                Ok(interval) => {
                    self.record("RegisterMc", Code::Ok);
                    self.state.set(true);
                    tracing::info!(
                        mc_id = %self.identity.mc_id,
                        heartbeat_seconds = interval.as_secs(),
                        attempts = attempt + 1,
                        "registered with GC"
                    );
                    return interval;
                }
                Err(e) => {
                    self.record("RegisterMc", e.code());
                    self.after_refusal(&e).await;
                    let delay = self.backoff.delay(attempt);
                    tracing::warn!(
                        error = %e,
                        retry_in_ms = delay.as_millis(),
                        attempt = attempt + 1,
                        "RegisterMc failed"
                    );
                    tokio::time::sleep(delay).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }

    async fn heartbeat_once(&mut self, draining: bool) -> Result<Duration, CallError> {
        let active = self.hub.active_meetings();
        if let Err(e) = self.store.touch_meetings(&active).await {
            tracing::warn!(error = %e, "could not refresh meeting activity in Redis");
        }
        let meetings = match self.store.hosted_meetings().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "could not count hosted meetings in Redis");
                u32::try_from(active.len()).unwrap_or(u32::MAX)
            }
        };
        let participants = u32::try_from(self.hub.seated()).unwrap_or(u32::MAX);
        let health = if draining {
            HealthStatus::Draining
        } else if participants >= self.identity.max_participants
            || meetings >= self.identity.max_meetings
        {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        };
        let token = self.credentials.token().await?;
        let request = HeartbeatRequest {
            mc_id: self.identity.mc_id.clone(),
            load: Some(Load {
                current_meetings: meetings,
                current_participants: participants,
            }),
            health: health as i32,
        };
        let response = self
            .client
            .heartbeat(with_bearer(request, &token)?)
            .await?
            .into_inner();
        Ok(Duration::from_secs(u64::from(
            response.heartbeat_interval_seconds.clamp(1, 300),
        )))
    }

    /// Heartbeats until GC answers NOT_FOUND.
    async fn heartbeat_until_forgotten(&mut self, mut interval: Duration) {
        let mut reported_draining = false;
        loop {
            // Sleep the interval, waking early when shutdown starts so GC
            // hears DRAINING at once.
            let deadline = tokio::time::Instant::now() + interval;
            while tokio::time::Instant::now() < deadline
                && (reported_draining || !self.readiness.is_shutting_down())
            {
                let step = deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .min(Duration::from_millis(200));
                tokio::time::sleep(step).await;
            }
            let draining = self.readiness.is_shutting_down();
            match self.heartbeat_once(draining).await {
                Ok(next) => {
                    self.record("Heartbeat", Code::Ok);
                    interval = next;
                    if draining && !reported_draining {
                        tracing::info!("reported DRAINING to GC");
                    }
                    reported_draining = draining;
                }
                Err(e) if e.code() == Code::NotFound => {
                    self.record("Heartbeat", Code::NotFound);
                    return;
                }
                Err(e) => {
                    self.record("Heartbeat", e.code());
                    self.after_refusal(&e).await;
                    tracing::warn!(error = %e, "heartbeat failed; will retry");
                    // Retry sooner than a full interval, but do not spin.
                    interval = (interval / 2).max(Duration::from_millis(500));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_backoff_doubles_with_jitter_and_caps() {
        let b = register_backoff();
        for _ in 0..50 {
            let d0 = b.delay(0).as_secs_f64();
            assert!((0.2..=0.3).contains(&d0), "{d0}");
            let d3 = b.delay(3).as_secs_f64();
            assert!((1.6..=2.4).contains(&d3), "{d3}");
            let big = b.delay(40).as_secs_f64();
            assert!((12.0..=18.0).contains(&big), "{big}");
        }
    }
}
