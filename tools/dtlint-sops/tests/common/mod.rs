//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The golden vectors written by the Go sops, vendored in
/// `tests/fixtures/sops-golden` (see its README). Always there: a checkout
/// without them is broken, and the test fails.
pub fn golden_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sops-golden");
    assert!(
        dir.join(".sops.yaml").is_file(),
        "the vendored SOPS golden vectors are missing at {}",
        dir.display()
    );
    dir
}

/// Skip or, with `DT_REQUIRE_ALL`, fail: the workspace's one helper for it.
pub use manifest_tests::skip;

/// A program on PATH, or `None` after [`skip`].
pub fn program(name: &str, install: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        skip(&format!("`{name}` is not on PATH ({install})"));
    }
    found
}
