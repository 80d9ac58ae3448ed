//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The golden vectors: `DT_SOPS_GOLDEN_DIR`, or `../shared/testdata/sops-golden`
/// next to the repository root. `None` (with a printed reason) when absent.
pub fn golden_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("DT_SOPS_GOLDEN_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/sops-golden"),
        PathBuf::from,
    );
    if dir.join(".sops.yaml").is_file() {
        Some(dir)
    } else {
        println!(
            "SKIPPED: no SOPS golden vectors at {} (set DT_SOPS_GOLDEN_DIR)",
            dir.display()
        );
        None
    }
}

/// A program on PATH, or `None` with a printed reason.
pub fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let found = std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        println!("SKIPPED: `{name}` is not on PATH");
    }
    found
}
