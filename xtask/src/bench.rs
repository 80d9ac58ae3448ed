//! `cargo xtask bench`: dtlint's source lint against a bare parse of the same
//! bytes with the same YAML parser, in the same process, on generated corpora.
//!
//! Reported per corpus: documents/s and MB/s for both (medians of several
//! alternating rounds), their ratio (target: lint at least half as fast as
//! the bare parse), CPU time over wall time (both cores in use shows as ~2),
//! and the process's peak resident memory.
//! Run with `--release` numbers in mind: `cargo xtask bench` builds release.

// Figures for a report: precision past 52 bits does not matter.
#![allow(clippy::cast_precision_loss)]

use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, Result};
use rayon::prelude::*;

use crate::corpus;

/// CPU seconds (user + system) this process has used so far.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Field 14 is at index 11 after the state field (index 0 is field 3).
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set size of this process, in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Measure {
    secs: f64,
    cpu: f64,
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Measure) {
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    let v = f();
    let secs = t.elapsed().as_secs_f64();
    (
        v,
        Measure {
            secs,
            cpu: cpu_seconds() - cpu0,
        },
    )
}

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

/// Rounds per measurement: bare parse and lint alternate, and the medians
/// are reported, so a burst of disk writeback or another process on the
/// machine does not decide the ratio.
const ROUNDS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub fn run(sizes: &[usize], work: &Path) -> Result<()> {
    println!("| corpus | bare parse | lint | lint/parse | findings | CPU/wall (lint) | peak RSS |");
    println!("|---|---|---|---|---|---|---|");
    for &n in sizes {
        let dir = work.join(format!("corpus-{n}"));
        let bytes =
            corpus::generate(&dir, n).with_context(|| format!("generating {n} services"))?;
        // Warm the page cache so both measurements read from memory.
        let _ = bare(&dir)?;
        let config = dtlint::config::Config::defaults();
        let (mut parse_secs, mut lint_secs, mut lint_cpu, mut load) =
            (vec![], vec![], vec![], vec![]);
        let mut docs = 0;
        let mut findings = 0;
        for _ in 0..ROUNDS {
            let (bare_result, parse) = timed(|| bare(&dir));
            docs = bare_result?.0;
            parse_secs.push(parse.secs);
            let mut load_secs = 0.0;
            let (result, lint) = timed(|| -> Result<_> {
                let t = Instant::now();
                let ws =
                    dtlint::workspace::Workspace::load(&dir, std::slice::from_ref(&dir), &config)?;
                load_secs = t.elapsed().as_secs_f64();
                let outcome =
                    dtlint::engine::run(&ws, &config, &dtlint::engine::Selection::default());
                // Like `dtlint check`, which exits without freeing the tree,
                // the lint is done here: the workspace is dropped untimed.
                Ok((outcome, ws))
            });
            let (outcome, ws) = result?;
            drop(ws);
            findings = outcome.findings.len();
            lint_secs.push(lint.secs);
            lint_cpu.push(lint.cpu / lint.secs);
            load.push(load_secs);
        }
        let (parse, lint) = (median(parse_secs), median(lint_secs));
        let load = median(load);
        eprintln!(
            "  {n} services: discover+read+parse {load:.2}s, index+rules+report {:.2}s (medians of {ROUNDS})",
            lint - load
        );
        let mb = bytes as f64 / 1e6;
        println!(
            "| {} | {:.0} docs/s, {:.1} MB/s ({:.2}s) | {:.0} docs/s, {:.1} MB/s ({:.2}s) | {:.2} | {} | {:.2} | {:.0} MiB |",
            corpus::describe(n, bytes),
            docs as f64 / parse,
            mb / parse,
            parse,
            docs as f64 / lint,
            mb / lint,
            lint,
            parse / lint,
            findings,
            median(lint_cpu),
            peak_rss_mib(),
        );
    }
    Ok(())
}
