//! `MeetingControllerService { HostMeeting }`, called by GC with a service
//! token carrying `service.write.mc`.
//!
//! Hosting stores the meeting and its MH assignments in Redis (idempotent:
//! hosting again refreshes the assignment). RESOURCE_EXHAUSTED when this MC
//! hosts its maximum of meetings, UNAVAILABLE while draining or when Redis
//! is unreachable: GC tries another MC for both.

use std::sync::Arc;

use common::grpc::{authorize, code_label};
use common::jwks::JwksCache;
use common::metrics::Metrics;
use common::ops::Readiness;
use proto::v1::{HostMeetingRequest, HostMeetingResponse};
use tonic::{Request, Response, Status};

use crate::config::{valid_address, valid_id};
use crate::store::{HostOutcome, MhAssignment, Store};

/// The scope GC's token needs.
pub const MC_WRITE_SCOPE: &str = "service.write.mc";
/// Most media handlers one meeting may be given.
const MAX_MEDIA_HANDLERS: usize = 16;
/// Longest meeting name, in characters (GC allows 200).
const MAX_NAME_CHARS: usize = 200;

#[derive(Clone)]
pub struct McGrpc {
    pub store: Store,
    pub jwks: Arc<JwksCache>,
    pub metrics: Metrics,
    pub readiness: Readiness,
    pub mc_id: String,
    pub webtransport_url: String,
    pub max_meetings: u32,
    /// Ceiling for a meeting's participants, and the value used when GC
    /// sends 0.
    pub max_participants: u32,
    pub default_meeting_participants: u32,
}

impl std::fmt::Debug for McGrpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McGrpc")
            .field("mc_id", &self.mc_id)
            .finish_non_exhaustive()
    }
}

/// Checks GC's request and turns it into what Redis stores.
fn validate(req: &HostMeetingRequest) -> Result<Vec<MhAssignment>, Status> {
    if !valid_id(&req.meeting_id) {
        return Err(Status::invalid_argument(
            "meeting_id must be 1 to 128 id characters",
        ));
    }
    if req.meeting_name.chars().count() > MAX_NAME_CHARS {
        return Err(Status::invalid_argument(
            "meeting_name is longer than 200 characters",
        ));
    }
    if req.media_handlers.is_empty() || req.media_handlers.len() > MAX_MEDIA_HANDLERS {
        return Err(Status::invalid_argument(
            "media_handlers must list 1 to 16 media handlers",
        ));
    }
    req.media_handlers
        .iter()
        .map(|mh| {
            if !valid_id(&mh.mh_id) {
                return Err(Status::invalid_argument("media_handlers: bad mh_id"));
            }
            if !valid_address(&mh.media_address) {
                return Err(Status::invalid_argument(
                    "media_handlers: media_address must be host:port",
                ));
            }
            if !mh.grpc_address.is_empty() && !valid_address(&mh.grpc_address) {
                return Err(Status::invalid_argument(
                    "media_handlers: grpc_address must be host:port",
                ));
            }
            Ok(MhAssignment {
                mh_id: mh.mh_id.clone(),
                media_address: mh.media_address.clone(),
                grpc_address: mh.grpc_address.clone(),
            })
        })
        .collect()
}

impl McGrpc {
    async fn host(
        &self,
        request: Request<HostMeetingRequest>,
    ) -> Result<HostMeetingResponse, Status> {
        let caller = authorize(&self.jwks, request.metadata(), MC_WRITE_SCOPE).await?;
        if self.readiness.is_shutting_down() {
            return Err(Status::unavailable(
                "this meeting controller is draining; try another",
            ));
        }
        let req = request.into_inner();
        let mh = validate(&req)?;
        let max_participants = match req.max_participants {
            0 => self.default_meeting_participants,
            n => n.min(self.max_participants),
        };
        let outcome = self
            .store
            .host_meeting(
                &req.meeting_id,
                req.meeting_name.trim(),
                &mh,
                max_participants,
                self.max_meetings,
            )
            .await
            .map_err(|e| {
                tracing::error!(error = %e, meeting_id = %req.meeting_id, "HostMeeting: Redis failed");
                Status::unavailable("meeting state temporarily unavailable")
            })?;
        match outcome {
            HostOutcome::AtCapacity => Err(Status::resource_exhausted(
                "this meeting controller hosts its maximum of meetings",
            )),
            HostOutcome::Hosted => {
                tracing::info!(
                    meeting_id = %req.meeting_id,
                    mh_ids = ?mh.iter().map(|m| m.mh_id.as_str()).collect::<Vec<_>>(),
                    max_participants,
                    caller = %caller.sub,
                    "hosting meeting"
                );
                Ok(HostMeetingResponse {
                    mc_id: self.mc_id.clone(),
                    webtransport_url: self.webtransport_url.clone(),
                })
            }
        }
    }
}

#[tonic::async_trait]
impl proto::MeetingControllerService for McGrpc {
    async fn host_meeting(
        &self,
        request: Request<HostMeetingRequest>,
    ) -> Result<Response<HostMeetingResponse>, Status> {
        let result = self.host(request).await;
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        };
        self.metrics.observe_grpc("HostMeeting", code_label(code));
        if let Err(status) = &result {
            tracing::info!(
                code = code_label(code),
                message = status.message(),
                "HostMeeting refused"
            );
        }
        result.map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::v1::MediaHandlerAssignment;

    fn request() -> HostMeetingRequest {
        HostMeetingRequest {
            meeting_id: "0b6c5c1e-8a7e-4f52-9b43-0c1d2e3f4a5b".into(),
            meeting_name: "standup".into(),
            media_handlers: vec![MediaHandlerAssignment {
                mh_id: "mh-0".into(),
                media_address: "127.0.0.1:4434".into(),
                grpc_address: "127.0.0.1:50053".into(),
            }],
            max_participants: 0,
        }
    }

    #[test]
    fn validation() {
        assert_eq!(validate(&request()).unwrap().len(), 1);
        let mut r = request();
        r.meeting_id = "{evil}".into();
        assert_eq!(
            validate(&r).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        let mut r = request();
        r.media_handlers.clear();
        assert!(validate(&r).is_err());
        let mut r = request();
        r.media_handlers[0].media_address = "quic://mh:4434".into();
        assert!(validate(&r).is_err());
        let mut r = request();
        r.meeting_name = "x".repeat(201);
        assert!(validate(&r).is_err());
    }
}
