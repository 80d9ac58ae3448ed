//! gRPC contracts between the Dark Tower services, generated at build time
//! from `proto/darktower/v1/*.proto` (see `build.rs`).
//!
//! - `GlobalControllerService { RegisterMc, Heartbeat }` and
//!   `MediaHandlerRegistry { RegisterMh, LoadReport }`: served by GC, called
//!   by MC and MH;
//! - `MeetingControllerService { HostMeeting }`: served by MC, called by GC.
//! - `MediaHandlerService { RemoveParticipant, GetMeetingMedia }`: served by
//!   MH, called by MC.
//!
//! Every call carries a service JWT from AC in the `authorization` metadata;
//! the scope each server requires is documented in the .proto files.

/// Generated code for package `darktower.v1`.
pub mod v1 {
    #![allow(
        clippy::pedantic,
        clippy::unwrap_used,
        clippy::expect_used,
        missing_docs,
        unreachable_pub
    )]
    tonic::include_proto!("darktower.v1");
}

pub use v1::global_controller_service_client::GlobalControllerServiceClient;
pub use v1::global_controller_service_server::{
    GlobalControllerService, GlobalControllerServiceServer,
};
pub use v1::media_handler_registry_client::MediaHandlerRegistryClient;
pub use v1::media_handler_registry_server::{MediaHandlerRegistry, MediaHandlerRegistryServer};
pub use v1::media_handler_service_client::MediaHandlerServiceClient;
pub use v1::media_handler_service_server::{MediaHandlerService, MediaHandlerServiceServer};
pub use v1::meeting_controller_service_client::MeetingControllerServiceClient;
pub use v1::meeting_controller_service_server::{
    MeetingControllerService, MeetingControllerServiceServer,
};

/// Fully qualified gRPC service names, e.g. for `tonic-health`.
pub mod service_names {
    pub const GLOBAL_CONTROLLER: &str = "darktower.v1.GlobalControllerService";
    pub const MEDIA_HANDLER_REGISTRY: &str = "darktower.v1.MediaHandlerRegistry";
    pub const MEETING_CONTROLLER: &str = "darktower.v1.MeetingControllerService";
    pub const MEDIA_HANDLER: &str = "darktower.v1.MediaHandlerService";
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;
    use tonic::server::NamedService;

    #[test]
    fn service_names_match_the_generated_servers() {
        assert_eq!(
            <GlobalControllerServiceServer<Unimpl> as NamedService>::NAME,
            service_names::GLOBAL_CONTROLLER
        );
        assert_eq!(
            <MediaHandlerRegistryServer<Unimpl> as NamedService>::NAME,
            service_names::MEDIA_HANDLER_REGISTRY
        );
        assert_eq!(
            <MeetingControllerServiceServer<Unimpl> as NamedService>::NAME,
            service_names::MEETING_CONTROLLER
        );
        assert_eq!(
            <MediaHandlerServiceServer<Unimpl> as NamedService>::NAME,
            service_names::MEDIA_HANDLER
        );
    }

    #[test]
    fn messages_round_trip_on_the_wire() {
        let req = v1::RegisterMcRequest {
            mc_id: "mc-0".into(),
            region: "local".into(),
            grpc_address: "10.0.0.5:50052".into(),
            webtransport_address: "mc-0.example:4433".into(),
            capacity: Some(v1::Capacity {
                max_meetings: 100,
                max_participants: 1000,
            }),
            version: "0.1.0".into(),
        };
        let bytes = req.encode_to_vec();
        assert_eq!(
            v1::RegisterMcRequest::decode(bytes.as_slice()).unwrap(),
            req
        );
        let host = v1::HostMeetingRequest {
            meeting_id: "m".into(),
            meeting_name: "n".into(),
            media_handlers: vec![v1::MediaHandlerAssignment {
                mh_id: "mh-0".into(),
                media_address: "mh-0:4434".into(),
                grpc_address: "mh-0:50053".into(),
            }],
            max_participants: 0,
        };
        let bytes = host.encode_to_vec();
        assert_eq!(
            v1::HostMeetingRequest::decode(bytes.as_slice()).unwrap(),
            host
        );
        assert_eq!(
            v1::HealthStatus::try_from(2).unwrap(),
            v1::HealthStatus::Degraded
        );
    }

    /// A server type for the name checks; never called.
    struct Unimpl;

    #[tonic::async_trait]
    impl GlobalControllerService for Unimpl {
        async fn register_mc(
            &self,
            _: tonic::Request<v1::RegisterMcRequest>,
        ) -> Result<tonic::Response<v1::RegisterMcResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("test"))
        }
        async fn heartbeat(
            &self,
            _: tonic::Request<v1::HeartbeatRequest>,
        ) -> Result<tonic::Response<v1::HeartbeatResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("test"))
        }
    }

    #[tonic::async_trait]
    impl MediaHandlerRegistry for Unimpl {
        async fn register_mh(
            &self,
            _: tonic::Request<v1::RegisterMhRequest>,
        ) -> Result<tonic::Response<v1::RegisterMhResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("test"))
        }
        async fn load_report(
            &self,
            _: tonic::Request<v1::LoadReportRequest>,
        ) -> Result<tonic::Response<v1::LoadReportResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("test"))
        }
    }

    #[tonic::async_trait]
    impl MediaHandlerService for Unimpl {
        async fn remove_participant(
            &self,
            _: tonic::Request<v1::RemoveParticipantRequest>,
        ) -> Result<tonic::Response<v1::RemoveParticipantResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("test"))
        }
        async fn get_meeting_media(
            &self,
            _: tonic::Request<v1::GetMeetingMediaRequest>,
        ) -> Result<tonic::Response<v1::GetMeetingMediaResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("test"))
        }
    }

    #[tonic::async_trait]
    impl MeetingControllerService for Unimpl {
        async fn host_meeting(
            &self,
            _: tonic::Request<v1::HostMeetingRequest>,
        ) -> Result<tonic::Response<v1::HostMeetingResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("test"))
        }
    }
}
