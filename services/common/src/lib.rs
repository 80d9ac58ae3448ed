//! Building blocks shared by the Dark Tower services (AC, GC, MC, MH).
//!
//! - [`config`]: typed env config, secrets that never print, the env contract;
//! - [`body`]: size-limited JSON/form bodies with clear 4xx answers;
//! - [`files`]: size-bounded reads of files the service does not control;
//! - [`ops`]: `/health`, `/ready` (naming the failing dependency), `/metrics`;
//! - [`metrics`]: Prometheus registry with the service prefix and the HTTP
//!   middleware labelling by route template;
//! - [`telemetry`]: JSON logs honouring `RUST_LOG`;
//! - [`shutdown`]: SIGTERM/ctrl-c → not ready → drain → stop;
//! - [`startup`]: listeners bound with the variable named on error, and the
//!   background tasks that live as long as the application;
//! - [`jwt`], [`jwks`], [`auth`]: Ed25519 JWTs, AC's key set and its cache;
//! - [`backoff`]: the one retry policy (capped exponential, with jitter);
//! - [`token_client`]: client credentials for service-to-service calls;
//! - [`grpc`] (feature `grpc`), [`db`] (feature `postgres`), [`testing`]
//!   (feature `testing`, integration tests only);
//! - [`tls_reload`] (feature `tls-reload`): a server certificate that follows
//!   its files, so a renewal reaches new handshakes without a restart.

pub mod auth;
pub mod backoff;
pub mod body;
pub mod config;
#[cfg(feature = "postgres")]
pub mod db;
pub mod files;
#[cfg(feature = "grpc")]
pub mod grpc;
pub mod jwks;
pub mod jwt;
pub mod metrics;
pub mod ops;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "tls-reload")]
pub mod tls_reload;
pub mod token_client;

pub use secrecy::{ExposeSecret, SecretString};
