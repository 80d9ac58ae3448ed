//! dtlint: lints a Kubernetes/Kustomize/Flux/SOPS repository and reports
//! every finding at the file, line and column a human edits.
//!
//! The flow runs one way, each stage a module that uses only the ones
//! before it (`tests/architecture.rs` keeps it so):
//!
//! 1. [`workspace`] discovers, reads and parses the files (roles,
//!    kustomizations, generators, contracts, path facts), checking what
//!    kustomizations reference with [`render_guard`];
//! 2. [`flux`] and [`sops_index`] inspect Flux paths and SOPS files;
//!    [`render`] builds the overlays and returns its own output;
//! 3. [`model`] indexes the objects of all of it ([`model::Index`]);
//!    [`netpol`] reads the index as a network graph;
//! 4. [`rules`] check the index and the configuration, and touch no disk;
//! 5. [`engine`] runs them and applies configuration and suppressions, maps
//!    findings to sources and merges them;
//! 6. [`report`] renders the result.

pub mod config;
pub mod contract;
pub mod diag;
pub mod diff;
pub mod docs;
pub mod engine;
pub mod fix;
pub mod flux;
pub mod init;
pub mod kustomize;
pub mod lsp;
pub mod model;
pub mod netpol;
pub mod pathmap;
pub mod ports;
pub mod quantity;
pub mod render;
pub mod render_guard;
pub mod report;
pub mod rules;
pub mod schema;
pub mod sops_cli;
pub mod sops_index;
pub mod source;
pub mod subprocess;
pub mod suggest;
pub mod terraform;
pub mod timing;
pub mod workspace;

pub use dtlint_yaml as yaml;
