//! global-controller, the Dark Tower entry point for meetings.
//!
//! HTTP (`BIND_ADDRESS`, 8080): `POST /api/v1/meetings` creates a meeting,
//! `GET /api/v1/meetings/{meeting_id}` joins one: GC picks a healthy meeting
//! controller with capacity and a media handler, asks the MC over gRPC to
//! host the meeting, and returns the MC's WebTransport URL, the MH endpoint
//! and a meeting token from AC. Callers present AC service tokens, checked
//! against AC's JWKS (cached, refreshed on unknown key ids).
//!
//! gRPC (`GC_GRPC_BIND_ADDRESS`, 50051): the MC and MH registry with
//! heartbeats and staleness, every call authorised by a service token with
//! scope `service.write.gc`; plus `grpc.health.v1`.
//!
//! Layout: [`config`] → [`startup`] → [`meetings`] (HTTP) and [`grpc`],
//! over [`registry`] (`PostgreSQL`), [`mc_client`] and [`ac_client`].

pub mod ac_client;
pub mod config;
pub mod error;
pub mod grpc;
pub mod mc_client;
pub mod meetings;
pub mod registry;
pub mod startup;
