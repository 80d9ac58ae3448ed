//! MH's gRPC service for meeting controllers: `MediaHandlerService`. Every
//! call must carry a service token with the scope `service.write.mh`.

use std::sync::Arc;

use common::grpc::authorize;
use common::jwks::JwksCache;
use common::metrics::Metrics;
use proto::v1::{
    GetMeetingMediaRequest, GetMeetingMediaResponse, RemoveParticipantRequest,
    RemoveParticipantResponse,
};
use tonic::{Request, Response, Status};

use crate::media::Sfu;

/// The scope MC tokens need for every call to MH.
pub const MH_WRITE_SCOPE: &str = "service.write.mh";

#[derive(Clone)]
pub struct MhGrpc {
    pub sfu: Arc<Sfu>,
    pub jwks: Arc<JwksCache>,
    pub metrics: Metrics,
}

impl std::fmt::Debug for MhGrpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MhGrpc").finish_non_exhaustive()
    }
}

fn check_id(field: &'static str, id: &str) -> Result<(), Status> {
    if (1..=128).contains(&id.len()) {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "{field} must be 1 to 128 characters"
        )))
    }
}

impl MhGrpc {
    fn record<T>(&self, method: &'static str, result: &Result<T, Status>) {
        common::grpc::record_call(&self.metrics, method, result);
    }
}

#[tonic::async_trait]
impl proto::MediaHandlerService for MhGrpc {
    async fn remove_participant(
        &self,
        request: Request<RemoveParticipantRequest>,
    ) -> Result<Response<RemoveParticipantResponse>, Status> {
        let result = async {
            let caller = authorize(&self.jwks, request.metadata(), MH_WRITE_SCOPE).await?;
            let req = request.get_ref();
            check_id("meeting_id", &req.meeting_id)?;
            check_id("participant_id", &req.participant_id)?;
            let removed = self
                .sfu
                .remove_participant(&req.meeting_id, &req.participant_id);
            tracing::info!(
                meeting_id = %req.meeting_id,
                participant_id = %req.participant_id,
                removed,
                caller = %caller.sub,
                "participant removed by the meeting controller"
            );
            Ok(Response::new(RemoveParticipantResponse { removed }))
        }
        .await;
        self.record("RemoveParticipant", &result);
        result
    }

    async fn get_meeting_media(
        &self,
        request: Request<GetMeetingMediaRequest>,
    ) -> Result<Response<GetMeetingMediaResponse>, Status> {
        let result = async {
            authorize(&self.jwks, request.metadata(), MH_WRITE_SCOPE).await?;
            let req = request.get_ref();
            check_id("meeting_id", &req.meeting_id)?;
            Ok(Response::new(GetMeetingMediaResponse {
                participant_ids: self.sfu.participants(&req.meeting_id),
            }))
        }
        .await;
        self.record("GetMeetingMedia", &result);
        result
    }
}
