//! media-handler, the Dark Tower pass-through SFU.
//!
//! QUIC media (`MH_MEDIA_BIND_ADDRESS`, UDP 4434, ALPN `dt-media/1`):
//! participants attach with their meeting token and every datagram they
//! send is forwarded unchanged to the other participants of their meeting
//! ([`media`]; the client side is in [`client`]).
//!
//! gRPC (`MH_GRPC_BIND_ADDRESS`, 50053): `MediaHandlerService` for meeting
//! controllers (scope `service.write.mh`) and `grpc.health.v1` ([`grpc`]).
//!
//! HTTP (`MH_HEALTH_BIND_ADDRESS`, 8083): `/health`, `/ready` (registered
//! with GC and media port bound), `/metrics` (prefix `mh_`).
//!
//! MH registers with GC's `MediaHandlerRegistry` and reports its load
//! ([`registration`]).
//!
//! Layout: [`config`] → [`startup`] → [`media`], [`grpc`], [`registration`],
//! with TLS and development certificates in [`tls`].

pub mod client;
pub mod config;
pub mod grpc;
pub mod media;
pub mod registration;
pub mod startup;
pub mod tls;
