//! `cargo xtask render-bench`: a whole-repository `dtlint check` with every
//! overlay rendered (no cache) against the same `kubectl kustomize` builds
//! run one after another, in alternating rounds in one run; and `dtlint
//! check <one file>` on a warm cache.
//!
//! Targets (from issue 16): the whole check under 0.7x the sequential
//! builds; one file under 0.2 s warm. Reported as medians and their ratio.

// Figures for a report: precision past 52 bits does not matter.
#![allow(clippy::cast_precision_loss)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::measure::{self, median};

/// Every build gets this long before the bench gives up on it.
const BUILD_TIMEOUT: Duration = Duration::from_mins(2);

/// Run `cmd` to completion (output discarded), killing it after `timeout`;
/// its wall time.
fn timed_run(cmd: &mut Command, timeout: Duration) -> Result<Duration> {
    let m = measure::run(cmd, timeout, false)?;
    // dtlint exits 1 when it has findings; only a crash is an error.
    if m.status.code().is_none_or(|c| c > 1) {
        bail!("{cmd:?} failed: {}: {}", m.status, m.stderr.trim());
    }
    Ok(m.wall)
}

/// The overlay directories dtlint builds for this repository, from dtlint's
/// own target list (every environment's Flux Kustomization paths).
fn targets(root: &Path) -> Result<Vec<PathBuf>> {
    let config = dtlint::config::Config::load(&root.join(dtlint::config::FILE_NAME))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ws = dtlint::workspace::Workspace::load(root, &[root.to_path_buf()], &config)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(dtlint::render::targets(&ws, &config)
        .0
        .into_iter()
        .map(|t| t.dir)
        .collect())
}

pub fn run(root: &Path, rounds: usize) -> Result<()> {
    let dtlint = measure::dtlint_bin()?;
    let dirs = targets(root)?;
    if dirs.is_empty() {
        bail!("no overlays to build under {}", root.display());
    }
    let cache = tempfile_dir()?;
    println!(
        "{} overlays, {rounds} alternating rounds, {} cores",
        dirs.len(),
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    let (mut lint, mut builds) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let sequential = || -> Result<f64> {
            let mut total = Duration::ZERO;
            for d in &dirs {
                total += timed_run(
                    Command::new("kubectl")
                        .args(["kustomize", "--load-restrictor", "LoadRestrictionsNone"])
                        .arg(d),
                    BUILD_TIMEOUT,
                )?;
            }
            Ok(total.as_secs_f64())
        };
        let whole = || -> Result<f64> {
            Ok(timed_run(
                Command::new(&dtlint).current_dir(root).args([
                    "check",
                    "--no-cache",
                    "--format",
                    "json",
                ]),
                BUILD_TIMEOUT * 4,
            )?
            .as_secs_f64())
        };
        // Alternate which goes first, so neither always meets a cold cache.
        if round % 2 == 0 {
            builds.push(sequential()?);
            lint.push(whole()?);
        } else {
            lint.push(whole()?);
            builds.push(sequential()?);
        }
    }
    let (l, b) = (median(lint), median(builds));
    println!(
        "dtlint check, every overlay rendered (no cache): {l:>7.3} s (median)\n\
         kubectl kustomize, the same builds one by one:   {b:>7.3} s (median)\n\
         ratio: {:.2} (target: under 0.70)",
        l / b
    );

    // One file, warm cache: prime it once, then time.
    let one = root.join("base/global-controller/network-policy.yaml");
    let check_one = || {
        timed_run(
            Command::new(&dtlint)
                .current_dir(root)
                .env("DTLINT_CACHE_DIR", cache.path())
                .arg("check")
                .arg(&one),
            BUILD_TIMEOUT * 4,
        )
    };
    check_one()?;
    let warm: Vec<f64> = (0..rounds.max(5) * 2)
        .map(|_| check_one().map(|d| d.as_secs_f64()))
        .collect::<Result<_>>()?;
    println!(
        "dtlint check {} (warm cache): {:.3} s (median; target: under 0.2 s)",
        one.strip_prefix(root).unwrap_or(&one).display(),
        median(warm)
    );
    Ok(())
}

/// A private cache directory for the warm single-file runs.
fn tempfile_dir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("dtlint-bench-cache-")
        .tempdir()
        .context("creating a cache directory")
}
