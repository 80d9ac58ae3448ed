//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Set (to `1`) by `tools/ci/test-all.sh`: a test that cannot run fails
/// instead of skipping.
pub const REQUIRE_ALL_VAR: &str = "DT_REQUIRE_ALL";

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

/// Whether `DT_REQUIRE_ALL` asks every test to run (`1`, `true` or `yes`).
pub fn require_all() -> bool {
    std::env::var(REQUIRE_ALL_VAR)
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// The one place a test of this crate gives up for want of a key or a tool:
/// it prints `DT-SKIP: <test>: <reason>` to stderr (the line
/// `tools/ci/test-all.sh` collects) and the caller returns, or, with
/// `DT_REQUIRE_ALL` set, the test fails with the reason.
pub fn skip(reason: &str) {
    let current = std::thread::current();
    let test = current.name().unwrap_or("<unnamed test>");
    assert!(
        !require_all(),
        "{test} cannot run: {reason} ({REQUIRE_ALL_VAR} is set, so this is a failure)"
    );
    eprintln!("DT-SKIP: {test}: {reason}");
}

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
