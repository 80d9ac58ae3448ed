//! dtlint: lints a Kubernetes/Kustomize/Flux/SOPS repository and reports
//! every finding at the file, line and column a human edits.
//!
//! The flow runs one way: [`workspace`] discovers and parses files,
//! [`model`] indexes the objects in them, [`rules`] check the index,
//! [`engine`] applies configuration and suppressions, and [`report`]
//! renders the result.

pub mod config;
pub mod contract;
pub mod diag;
pub mod docs;
pub mod engine;
pub mod flux;
pub mod kustomize;
pub mod model;
pub mod netpol;
pub mod ports;
pub mod quantity;
pub mod render;
pub mod render_guard;
pub mod report;
pub mod rules;
pub mod sops_cli;
pub mod sops_index;
pub mod source;
pub mod subprocess;
pub mod suggest;
pub mod timing;
pub mod workspace;

pub use dtlint_yaml as yaml;
