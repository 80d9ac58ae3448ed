//! meeting-controller, the Dark Tower signaling server.
//!
//! - WebTransport over HTTP/3 (`MC_WEBTRANSPORT_BIND_ADDRESS`, UDP 4433) at
//!   `/signaling`: participants join a meeting with the meeting token GC
//!   gave them, learn which media handler to attach to, and get pushes when
//!   others join or leave ([`signaling`], [`protocol`], [`hub`]).
//! - gRPC (`MC_GRPC_BIND_ADDRESS`, 50052): `HostMeeting`, called by GC with
//!   a service token carrying `service.write.mc` ([`grpc`]); plus
//!   `grpc.health.v1`.
//! - HTTP (`MC_HEALTH_BIND_ADDRESS`, 8081): `/health`, `/ready` (Redis PING
//!   and registration with GC), `/metrics` (prefix `mc_`).
//!
//! Meeting and participant state lives in Redis, standalone or cluster
//! ([`store`]). MC registers with GC and heartbeats ([`registration`]).
//! Layout: [`config`] → [`startup`] → the servers above.

pub mod certs;
pub mod config;
pub mod grpc;
pub mod hub;
pub mod protocol;
pub mod registration;
pub mod signaling;
pub mod startup;
pub mod store;
