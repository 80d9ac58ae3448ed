//! End-to-end tests of the Dark Tower services (see `tests/flow.rs`); this
//! library is intentionally empty.
//!
//! The test starts AC, GC, MC and MH in-process on loopback (port 0 or
//! freshly reserved ports), each against the real PostgreSQL
//! (`DT_TEST_DATABASE_URL`) and Redis (`DT_TEST_REDIS_URL`) the service
//! integration tests use, and drives them only through their public wire
//! contracts: AC's token endpoint, GC's meetings API, MC's WebTransport
//! signaling and MH's QUIC media protocol.
