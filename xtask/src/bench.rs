//! `cargo xtask bench`: `dtlint check` against a bare parse of the same
//! bytes with the same YAML parser, each a fresh process, on generated
//! corpora.
//!
//! Reported per corpus: documents/s and MB/s for both (medians of several
//! alternating rounds), their ratio (issue 16's target: 0.65 or better),
//! the lint's CPU time over wall time (both cores in use shows as ~2), and
//! both processes' peak resident memory. Both are whole processes, the way
//! a user or CI runs them: start-up, an empty heap and exit count.
//! Build both binaries with `--release` first (`cargo build --release -p
//! xtask -p dtlint`).

// Figures for a report: precision past 52 bits does not matter.
#![allow(clippy::cast_precision_loss)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use rayon::prelude::*;

use crate::corpus;
use crate::measure::{self, Measured, median};

/// Read and event-parse every YAML file, in parallel: the floor for any linter
/// built on this parser.
fn bare(dir: &Path) -> Result<(usize, u64)> {
    let files: Vec<_> = corpus::walk(dir)?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    let results: Vec<(usize, u64)> = files
        .par_iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            let docs = text.matches("\napiVersion:").count()
                + usize::from(text.starts_with("apiVersion:"));
            let _events = dtlint::yaml::bare_parse(&text).unwrap_or(0);
            (docs, text.len() as u64)
        })
        .collect();
    Ok(results
        .iter()
        .fold((0, 0), |(d, b), (d2, b2)| (d + d2, b + b2)))
}

/// `xtask bare-parse <dir>`: the bare parse as a process of its own; prints
/// the documents and bytes it read.
pub fn bare_cmd(dir: &Path) -> Result<()> {
    let (docs, bytes) = bare(dir)?;
    println!("{docs} {bytes}");
    Ok(())
}

/// Rounds per measurement: bare parse and lint alternate, and the medians
/// are reported, so a burst of disk writeback or another process on the
/// machine does not decide the ratio.
const ROUNDS: usize = 7;

/// No corpus here takes a minute; a hang fails the bench instead of blocking it.
const TIMEOUT: Duration = Duration::from_mins(5);

/// Findings in dtlint's summary line (`...: N errors, M warnings`).
fn findings(stderr: &str) -> usize {
    let Some(summary) = stderr.lines().rev().find(|l| l.starts_with("dtlint: ")) else {
        return 0;
    };
    // The counts follow the last colon: `1001 errors, 0 warnings`.
    let counts = summary.rsplit(':').next().unwrap_or("");
    let count = |word: &str| {
        counts
            .split(',')
            .find_map(|part| {
                let mut words = part.split_whitespace();
                let n = words.next()?.parse::<usize>().ok()?;
                words
                    .next()
                    .is_some_and(|w| w.starts_with(word))
                    .then_some(n)
            })
            .unwrap_or(0)
    };
    count("error") + count("warning")
}

pub fn run(sizes: &[usize], work: &Path) -> Result<()> {
    let dtlint = measure::dtlint_bin()?;
    let xtask = std::env::current_exe()?;
    println!(
        "| corpus | bare parse | dtlint check | lint/parse | findings | CPU/wall (lint) | peak RSS (parse / lint) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &n in sizes {
        let dir = work.join(format!("corpus-{n}"));
        let bytes =
            corpus::generate(&dir, n).with_context(|| format!("generating {n} services"))?;
        // Warm the page cache so both measurements read from memory.
        let _ = bare(&dir)?;
        let parse_once = || -> Result<(Measured, usize)> {
            let m = measure::run(
                Command::new(&xtask).arg("bare-parse").arg(&dir),
                TIMEOUT,
                true,
            )?;
            if !m.status.success() {
                bail!("bare parse failed: {}", m.stderr.trim());
            }
            let docs = m
                .stdout
                .split_whitespace()
                .next()
                .and_then(|d| d.parse().ok())
                .context("bare parse printed no document count")?;
            Ok((m, docs))
        };
        let lint_once = || -> Result<Measured> {
            let m = measure::run(Command::new(&dtlint).arg("check").arg(&dir), TIMEOUT, false)?;
            // dtlint exits 1 on findings (the corpus has planted defects).
            if m.status.code().is_none_or(|c| c > 1) {
                bail!("dtlint failed: {}: {}", m.status, m.stderr.trim());
            }
            Ok(m)
        };
        let (mut parse, mut lint) = (Vec::new(), Vec::new());
        let mut docs = 0;
        for round in 0..ROUNDS {
            // Alternate which goes first, so neither always follows the other.
            if round % 2 == 0 {
                let (m, d) = parse_once()?;
                parse.push(m);
                docs = d;
                lint.push(lint_once()?);
            } else {
                lint.push(lint_once()?);
                let (m, d) = parse_once()?;
                parse.push(m);
                docs = d;
            }
        }
        let found = lint.last().map_or(0, |m| findings(&m.stderr));
        let secs = |v: &[Measured]| median(v.iter().map(|m| m.wall.as_secs_f64()).collect());
        let (p, l) = (secs(&parse), secs(&lint));
        let cpu = median(
            lint.iter()
                .map(|m| m.cpu_secs / m.wall.as_secs_f64())
                .collect(),
        );
        let peak = |v: &[Measured]| median(v.iter().map(|m| m.peak_mib).collect());
        let mb = bytes as f64 / 1e6;
        println!(
            "| {} | {:.0} docs/s, {:.1} MB/s ({p:.2}s) | {:.0} docs/s, {:.1} MB/s ({l:.2}s) | {:.2} | {found} | {cpu:.2} | {:.0} / {:.0} MiB |",
            corpus::describe(n, bytes),
            docs as f64 / p,
            mb / p,
            docs as f64 / l,
            mb / l,
            p / l,
            peak(&parse),
            peak(&lint),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::findings;

    #[test]
    fn findings_are_read_from_the_summary() {
        let stderr = "dtlint: note: x\ndtlint: 80000 file(s) checked: 1001 errors, 2 warnings\n";
        assert_eq!(findings(stderr), 1003);
        assert_eq!(
            findings(
                "dtlint: 3 file(s) checked, 2 overlay build(s) (0 from cache): 1 error, 0 warnings"
            ),
            1
        );
        assert_eq!(findings("nothing"), 0);
    }
}
