//! GC's gRPC services: `GlobalControllerService` (MC registry) and
//! `MediaHandlerRegistry` (MH registry). Every call must carry a service
//! token with the scope `service.write.gc`.

use std::sync::Arc;
use std::time::Duration;

use common::grpc::authorize;
use common::jwks::JwksCache;
use common::metrics::Metrics;
use proto::v1::{
    HeartbeatRequest, HeartbeatResponse, LoadReportRequest, LoadReportResponse, RegisterMcRequest,
    RegisterMcResponse, RegisterMhRequest, RegisterMhResponse,
};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::registry::{self, RegistryError};

/// The scope MC and MH tokens need for every call to GC.
pub const GC_WRITE_SCOPE: &str = "service.write.gc";

#[derive(Clone)]
pub struct GcGrpc {
    pub pool: PgPool,
    pub jwks: Arc<JwksCache>,
    pub metrics: Metrics,
    pub region: String,
    pub staleness: Duration,
}

impl std::fmt::Debug for GcGrpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcGrpc")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl From<RegistryError> for Status {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Invalid(i) => Status::invalid_argument(i.to_string()),
            RegistryError::NotFound => {
                Status::not_found("unknown controller: register again, then resume heartbeats")
            }
            RegistryError::Database(db) => {
                tracing::error!(error = %db, "registry database error");
                Status::unavailable("registry temporarily unavailable")
            }
        }
    }
}

impl GcGrpc {
    /// Heartbeats three times per staleness window.
    fn interval_seconds(&self) -> u32 {
        u32::try_from((self.staleness.as_secs() / 3).max(1)).unwrap_or(10)
    }

    fn staleness_seconds(&self) -> u32 {
        u32::try_from(self.staleness.as_secs()).unwrap_or(u32::MAX)
    }

    fn record<T>(&self, method: &'static str, result: &Result<T, Status>) {
        common::grpc::record_call(&self.metrics, method, result);
    }
}

#[tonic::async_trait]
impl proto::GlobalControllerService for GcGrpc {
    async fn register_mc(
        &self,
        request: Request<RegisterMcRequest>,
    ) -> Result<Response<RegisterMcResponse>, Status> {
        let result = async {
            let caller = authorize(&self.jwks, request.metadata(), GC_WRITE_SCOPE).await?;
            let req = request.get_ref();
            registry::register_mc(&self.pool, req).await?;
            tracing::info!(
                mc_id = %req.mc_id,
                region = %req.region,
                grpc_address = %req.grpc_address,
                webtransport_address = %req.webtransport_address,
                caller = %caller.sub,
                "meeting controller registered"
            );
            Ok(Response::new(RegisterMcResponse {
                heartbeat_interval_seconds: self.interval_seconds(),
                staleness_threshold_seconds: self.staleness_seconds(),
                gc_region: self.region.clone(),
            }))
        }
        .await;
        self.record("RegisterMc", &result);
        result
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let result = async {
            authorize(&self.jwks, request.metadata(), GC_WRITE_SCOPE).await?;
            registry::mc_heartbeat(&self.pool, request.get_ref()).await?;
            Ok(Response::new(HeartbeatResponse {
                heartbeat_interval_seconds: self.interval_seconds(),
            }))
        }
        .await;
        self.record("Heartbeat", &result);
        result
    }
}

#[tonic::async_trait]
impl proto::MediaHandlerRegistry for GcGrpc {
    async fn register_mh(
        &self,
        request: Request<RegisterMhRequest>,
    ) -> Result<Response<RegisterMhResponse>, Status> {
        let result = async {
            let caller = authorize(&self.jwks, request.metadata(), GC_WRITE_SCOPE).await?;
            let req = request.get_ref();
            registry::register_mh(&self.pool, req).await?;
            tracing::info!(
                mh_id = %req.mh_id,
                region = %req.region,
                media_address = %req.media_address,
                caller = %caller.sub,
                "media handler registered"
            );
            Ok(Response::new(RegisterMhResponse {
                load_report_interval_seconds: self.interval_seconds(),
                staleness_threshold_seconds: self.staleness_seconds(),
                gc_region: self.region.clone(),
            }))
        }
        .await;
        self.record("RegisterMh", &result);
        result
    }

    async fn load_report(
        &self,
        request: Request<LoadReportRequest>,
    ) -> Result<Response<LoadReportResponse>, Status> {
        let result = async {
            authorize(&self.jwks, request.metadata(), GC_WRITE_SCOPE).await?;
            registry::mh_load_report(&self.pool, request.get_ref()).await?;
            Ok(Response::new(LoadReportResponse {
                load_report_interval_seconds: self.interval_seconds(),
            }))
        }
        .await;
        self.record("LoadReport", &result);
        result
    }
}
