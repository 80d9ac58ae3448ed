//! Registration with GC's `MediaHandlerRegistry` and the periodic load
//! report.
//!
//! At start MH calls `RegisterMh` with its own service token from AC,
//! retrying with capped exponential backoff (plus jitter) while GC or AC is
//! unavailable. Once registered it sends `LoadReport` every interval GC
//! asked for. A `NOT_FOUND` answer means GC has forgotten this MH (its row
//! expired or GC's database was reset): MH is not registered any more (so
//! not ready) until `RegisterMh` succeeds again. A refused token is
//! invalidated so the next attempt fetches a fresh one. When shutdown
//! starts (readiness false), the next report says `DRAINING`, at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::backoff::Backoff;
use common::grpc::with_bearer;
use common::ops::Readiness;
use common::shutdown::ShutdownSignal;
use common::token_client::ClientCredentials;
use proto::MediaHandlerRegistryClient;
use proto::v1::{Capacity, HealthStatus, Load, LoadReportRequest, RegisterMhRequest};
use tonic::transport::{Channel, Endpoint};

use crate::media::Sfu;

/// Bandwidth budget the utilization in load reports is measured against
/// (1 Gbit/s of forwarded payload).
pub const BANDWIDTH_BUDGET_BYTES_PER_SECOND: f64 = 125_000_000.0;
/// Utilization from which MH reports itself degraded (ADR-0012: GC
/// refuses new participants at 0.8).
const DEGRADED_AT: f64 = 0.8;
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// What MH tells GC about itself.
#[derive(Debug, Clone)]
pub struct Identity {
    pub mh_id: String,
    pub region: String,
    pub grpc_address: String,
    pub media_address: String,
}

/// Shared registration state: the readiness check reads it.
#[derive(Debug, Default)]
pub struct RegistrationState {
    registered: AtomicBool,
    registrations: std::sync::atomic::AtomicU64,
}

impl RegistrationState {
    pub fn is_registered(&self) -> bool {
        self.registered.load(Ordering::SeqCst)
    }

    /// How many times `RegisterMh` succeeded (tests watch re-registration).
    pub fn registrations(&self) -> u64 {
        self.registrations.load(Ordering::SeqCst)
    }
}

pub struct Registrar {
    pub identity: Identity,
    pub channel: Channel,
    pub credentials: Arc<ClientCredentials>,
    pub sfu: Arc<Sfu>,
    pub state: Arc<RegistrationState>,
    pub readiness: Readiness,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// A lazily connecting channel to GC's gRPC URL.
pub fn gc_channel(url: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect_lazy())
}

/// Registration retries: doubling from 250 ms up to 10 s, with up to 25 %
/// jitter.
fn register_backoff() -> Backoff {
    Backoff::new(BACKOFF_START, BACKOFF_MAX).with_jitter(1.0..=1.25)
}

enum Failure {
    /// GC does not know us: register again.
    Forgotten,
    Other,
}

impl Registrar {
    fn health(&self, utilization: f64) -> HealthStatus {
        if self.readiness.is_shutting_down() {
            HealthStatus::Draining
        } else if utilization >= DEGRADED_AT {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        }
    }

    fn load(&self) -> Load {
        let load = self.sfu.load();
        Load {
            current_meetings: u32::try_from(load.meetings).unwrap_or(u32::MAX),
            current_participants: u32::try_from(load.participants).unwrap_or(u32::MAX),
        }
    }

    async fn token(&self) -> Result<common::SecretString, Failure> {
        self.credentials.token().await.map_err(|e| {
            tracing::warn!(error = %e, "cannot get MH's service token from AC");
            Failure::Other
        })
    }

    async fn on_status(&self, call: &'static str, status: &tonic::Status) -> Failure {
        tracing::warn!(call, code = ?status.code(), message = status.message(), "GC refused or failed");
        match status.code() {
            tonic::Code::NotFound => Failure::Forgotten,
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
                self.credentials.invalidate().await;
                Failure::Other
            }
            _ => Failure::Other,
        }
    }

    /// One `RegisterMh`; returns GC's load report interval.
    async fn register(&self) -> Result<Duration, Failure> {
        let token = self.token().await?;
        let limits = self.sfu.limits();
        let request = RegisterMhRequest {
            mh_id: self.identity.mh_id.clone(),
            region: self.identity.region.clone(),
            grpc_address: self.identity.grpc_address.clone(),
            media_address: self.identity.media_address.clone(),
            capacity: Some(Capacity {
                max_meetings: u32::try_from(limits.max_meetings).unwrap_or(u32::MAX),
                max_participants: u32::try_from(limits.max_connections).unwrap_or(u32::MAX),
            }),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let request = with_bearer(request, &token).map_err(|_| Failure::Other)?;
        let mut client = MediaHandlerRegistryClient::new(self.channel.clone());
        match client.register_mh(request).await {
            Ok(response) => {
                let response = response.into_inner();
                self.state.registered.store(true, Ordering::SeqCst);
                self.state.registrations.fetch_add(1, Ordering::SeqCst);
                tracing::info!(
                    mh_id = %self.identity.mh_id,
                    gc_region = %response.gc_region,
                    interval_seconds = response.load_report_interval_seconds,
                    "registered with GC"
                );
                Ok(interval(response.load_report_interval_seconds))
            }
            Err(status) => Err(self.on_status("RegisterMh", &status).await),
        }
    }

    /// One `LoadReport`; returns GC's (possibly new) interval.
    async fn report(&self, utilization: f64) -> Result<Duration, Failure> {
        let token = self.token().await?;
        let request = LoadReportRequest {
            mh_id: self.identity.mh_id.clone(),
            load: Some(self.load()),
            health: self.health(utilization).into(),
            bandwidth_utilization: utilization,
        };
        let request = with_bearer(request, &token).map_err(|_| Failure::Other)?;
        let mut client = MediaHandlerRegistryClient::new(self.channel.clone());
        match client.load_report(request).await {
            Ok(response) => Ok(interval(response.into_inner().load_report_interval_seconds)),
            Err(status) => Err(self.on_status("LoadReport", &status).await),
        }
    }

    /// Registers, then reports load, until `shutdown`.
    pub async fn run(self, shutdown: ShutdownSignal) {
        let backoff = register_backoff();
        let mut retry = 0;
        let mut period: Option<Duration> = None;
        let mut meter = BandwidthMeter::new(&self.sfu);
        let mut reported_draining = false;
        loop {
            if shutdown.is_fired() {
                break;
            }
            match period {
                None => {
                    if let Ok(p) = self.register().await {
                        retry = 0;
                        period = Some(p);
                        meter = BandwidthMeter::new(&self.sfu);
                    } else {
                        let delay = backoff.delay(retry);
                        retry = retry.saturating_add(1);
                        if !sleep_or_shutdown(delay, &shutdown).await {
                            break;
                        }
                    }
                }
                Some(p) => {
                    // Wake early when shutdown starts, to report DRAINING.
                    let draining_now = self.readiness.is_shutting_down() && !reported_draining;
                    if !draining_now && !self.wait_period(p, &shutdown).await {
                        break;
                    }
                    reported_draining |= self.readiness.is_shutting_down();
                    let utilization = meter.utilization(&self.sfu);
                    match self.report(utilization).await {
                        Ok(p) => period = Some(p),
                        Err(Failure::Forgotten) => {
                            self.state.registered.store(false, Ordering::SeqCst);
                            tracing::warn!("GC has forgotten this MH: registering again");
                            period = None;
                        }
                        Err(Failure::Other) => {}
                    }
                }
            }
        }
        self.state.registered.store(false, Ordering::SeqCst);
    }

    /// Sleeps `period`, waking early when shutdown starts or fires. False
    /// when the shutdown fired.
    async fn wait_period(&self, period: Duration, shutdown: &ShutdownSignal) -> bool {
        let deadline = tokio::time::Instant::now() + period;
        let was_draining = self.readiness.is_shutting_down();
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return true;
            }
            let step = (deadline - now).min(Duration::from_millis(250));
            if !sleep_or_shutdown(step, shutdown).await {
                return false;
            }
            if !was_draining && self.readiness.is_shutting_down() {
                return true;
            }
        }
    }
}

/// GC's interval, kept within 1..=60 s whatever it says.
fn interval(seconds: u32) -> Duration {
    Duration::from_secs(u64::from(seconds.clamp(1, 60)))
}

async fn sleep_or_shutdown(delay: Duration, shutdown: &ShutdownSignal) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = shutdown.clone().wait() => false,
    }
}

/// Forwarded bytes per second since the last report, as a share of the
/// budget.
struct BandwidthMeter {
    bytes: u64,
    at: Instant,
}

impl BandwidthMeter {
    fn new(sfu: &Sfu) -> Self {
        Self {
            bytes: sfu.metrics().bytes_forwarded.get(),
            at: Instant::now(),
        }
    }

    #[allow(clippy::cast_precision_loss)] // byte counts far below 2^52
    fn utilization(&mut self, sfu: &Sfu) -> f64 {
        let bytes = sfu.metrics().bytes_forwarded.get();
        let seconds = self.at.elapsed().as_secs_f64().max(0.001);
        let rate = bytes.saturating_sub(self.bytes) as f64 / seconds;
        self.bytes = bytes;
        self.at = Instant::now();
        (rate / BANDWIDTH_BUDGET_BYTES_PER_SECOND).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let b = register_backoff();
        let first = b.delay(0);
        assert!(first >= BACKOFF_START && first <= BACKOFF_START.mul_f64(1.25));
        for retry in 0..20 {
            let d = b.delay(retry);
            assert!(d >= b.base(retry) && d <= BACKOFF_MAX.mul_f64(1.25));
        }
        assert!(b.delay(20) >= BACKOFF_MAX);
    }

    #[test]
    fn gc_interval_is_clamped() {
        assert_eq!(interval(0), Duration::from_secs(1));
        assert_eq!(interval(10), Duration::from_secs(10));
        assert_eq!(interval(100_000), Duration::from_mins(1));
    }
}
