//! Tests against a live Dark Tower cluster, and the helpers they share.
//!
//! The live tests (`tests/cluster_health.rs`, `tests/auth_smoke.rs`,
//! `tests/join_flow.rs`, `tests/network_policy.rs`) run only when a cluster is
//! named and answers: `DT_ENV_TESTS_KUBECONFIG` (or else `KUBECONFIG`) points
//! at a kubeconfig whose API server responds. Otherwise each test prints why
//! it is skipped and passes, so `cargo nextest run --workspace` works on any
//! machine. Set `DT_ENV_TESTS_REQUIRE=1` (a CI job that created a cluster)
//! to turn a skip into a failure.
//!
//! The offline tests of this crate check the rest of the path from a laptop
//! to the cloud: `tests/local_scripts.rs` runs the `tools/local` scripts in
//! dry-run mode and checks the commands they would run, and
//! `tests/terraform.rs` parses every `.tf` file under `terraform/`.
//!
//! Modules:
//! - [`cluster`]: is there a cluster to test, and a client for it;
//! - [`canary`]: `CanaryPod`, a throwaway busybox pod that probes the network
//!   from inside the cluster, for the `NetworkPolicy` tests;
//! - [`services`]: the Dark Tower HTTP APIs the smoke tests call.

pub mod canary;
pub mod cluster;
pub mod services;

/// The namespace every Dark Tower environment deploys into.
pub const DARK_TOWER_NAMESPACE: &str = "dark-tower";
