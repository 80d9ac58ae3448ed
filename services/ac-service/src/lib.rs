//! ac-service, the Dark Tower authentication controller.
//!
//! Holds the platform's Ed25519 signing keys in `PostgreSQL` (private halves
//! encrypted under `AC_MASTER_KEY`), publishes the public halves at
//! `GET /.well-known/jwks.json`, and issues Ed25519 (`EdDSA`) JWTs:
//! service tokens via OAuth 2 client credentials at
//! `POST /api/v1/auth/service/token`, and short-lived meeting tokens at
//! `POST /api/v1/auth/internal/meeting-token` (for GC). Clients are
//! registered with `ac-service register-client`.
//!
//! Layout: [`config`] (env) → [`startup`] (db, migrations, keys, router)
//! → [`api`] (handlers) over [`keys`] and [`clients`]; [`error`] maps
//! failures to RFC 6749 answers.

pub mod api;
pub mod clients;
pub mod config;
pub mod declared;
pub mod error;
pub mod keys;
pub mod startup;
