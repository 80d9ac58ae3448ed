//! dtlint: lints a Kubernetes/Kustomize/Flux/SOPS repository and reports
//! every finding at the file, line and column a human edits.
//!
//! The flow runs one way: [`workspace`] discovers and parses files,
//! [`model`] indexes the objects in them, [`rules`] check the index,
//! [`engine`] applies configuration and suppressions, and [`report`]
//! renders the result.

pub mod config;
pub mod diag;
pub mod docs;
pub mod engine;
pub mod kustomize;
pub mod model;
pub mod report;
pub mod rules;
pub mod source;
pub mod workspace;

pub use dtlint_yaml as yaml;
