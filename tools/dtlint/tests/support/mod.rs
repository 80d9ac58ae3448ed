//! Shared by the integration tests that plant defects in a copy of this
//! repository: copying the manifests, config and contracts, and editing one
//! line of the copy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::path::{Path, PathBuf};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A copy of the manifests, the config and the services' contracts.
pub fn copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for d in ["base", "overlays", "clusters"] {
        copy_dir(&repo().join(d), &dir.path().join(d));
    }
    for f in ["dtlint.toml", ".sops.yaml"] {
        std::fs::copy(repo().join(f), dir.path().join(f)).unwrap();
    }
    for e in std::fs::read_dir(repo().join("services")).unwrap() {
        let e = e.unwrap();
        let contract = e.path().join("config-contract.toml");
        if contract.is_file() {
            let to = dir.path().join("services").join(e.file_name());
            std::fs::create_dir_all(&to).unwrap();
            std::fs::copy(contract, to.join("config-contract.toml")).unwrap();
        }
    }
    dir
}

/// Replace the `nth` (0-based) occurrence of `old` in `file`; return its 1-based line.
pub fn plant(root: &Path, file: &str, old: &str, new: &str, nth: usize) -> u32 {
    let p = root.join(file);
    let text = std::fs::read_to_string(&p).unwrap();
    let (at, _) = text
        .match_indices(old)
        .nth(nth)
        .unwrap_or_else(|| panic!("{old:?} not in {file}"));
    let line = text[..at].matches('\n').count() as u32 + 1;
    let changed = format!("{}{new}{}", &text[..at], &text[at + old.len()..]);
    std::fs::write(&p, changed).unwrap();
    line
}

/// A copy of `tests/fixtures/<name>` in a temporary directory.
pub fn fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
        dir.path(),
    );
    dir
}

/// `dtlint check --no-cache --color never <extra>` run in `root` as a user
/// runs it: the exit code, standard output and standard error.
pub fn check_in(root: &Path, extra: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dtlint"))
        .args(["check", "--no-cache", "--color", "never"])
        .args(extra)
        .current_dir(root)
        .env_remove("DTLINT_KUSTOMIZE")
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}
