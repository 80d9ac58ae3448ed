//! `cargo xtask`: repository chores that are code, not shell.
//!
//! - `docs`: regenerate `docs/rules/` from the docs on each dtlint rule.
//! - `corpus N DIR`: write a generated repository of N services to DIR.
//! - `bench [N...]`: lint generated corpora and compare with a bare parse.
//! - `stack-bench [--env E...] [--runs N]`: run each environment with
//!   `local-stack e2e` and tabulate time to ready, memory and e2e latency.
//! - `schemas [--check]`: regenerate dtlint's schema catalog from its
//!   vendored sources (`--check`: fail when the committed one differs).
//! - `agreement DIR`: dtlint against kube-linter on the fixtures of a
//!   kube-linter checkout at DIR.
//! - `render-bench [ROUNDS]`: dtlint with every overlay rendered against the
//!   same kustomize builds one by one, and one file on a warm cache.

mod agreement;
mod bench;
mod corpus;
mod measure;
mod render_bench;
mod stack_bench;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn docs() -> Result<()> {
    let dir = repo_root().join("docs/rules");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let pages = dtlint::docs::all_pages();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.extension().is_some_and(|e| e == "md") && !pages.iter().any(|(n, _)| *n == name) {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            println!("removed {}", path.display());
        }
    }
    for (name, text) in &pages {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// `cargo xtask schemas [--check]`: rebuild `tools/dtlint/schemas/catalog.json.gz`.
fn schemas(args: &[String]) -> Result<()> {
    let dir = repo_root().join("tools/dtlint/schemas");
    let catalog = dtlint::schema::generate::generate(&dir)?;
    let json = dtlint::schema::generate::to_json(&catalog)?;
    let path = dir.join("catalog.json.gz");
    let committed = std::fs::read(&path).ok();
    let same = committed
        .as_deref()
        .and_then(|b| dtlint::schema::Catalog::from_gz(b).ok())
        .and_then(|c| dtlint::schema::generate::to_json(&c).ok())
        .is_some_and(|old| old == json);
    if args.first().map(String::as_str) == Some("--check") {
        anyhow::ensure!(
            same,
            "{} differs from its sources; run `cargo xtask schemas`",
            path.display()
        );
        println!("{} matches its sources", path.display());
        return Ok(());
    }
    if same {
        println!("{} is up to date", path.display());
    } else {
        let packed = dtlint::schema::generate::compress(&json)?;
        std::fs::write(&path, &packed).with_context(|| format!("writing {}", path.display()))?;
        println!(
            "wrote {} ({} nodes, {} Kubernetes releases, {} CRD versions; {} KB, {} KB unpacked)",
            path.display(),
            catalog.nodes.len(),
            catalog.kubernetes.len(),
            catalog.crds.len(),
            packed.len() / 1024,
            json.len() / 1024
        );
    }
    Ok(())
}

fn corpus_cmd(args: &[String]) -> Result<()> {
    let (Some(n), Some(dir)) = (args.first(), args.get(1)) else {
        anyhow::bail!("usage: cargo xtask corpus <services> <dir>");
    };
    let n: usize = n.parse().context("the number of services")?;
    let bytes = corpus::generate(Path::new(dir), n)?;
    println!("{} in {dir}", corpus::describe(n, bytes));
    Ok(())
}

fn bench_cmd(args: &[String]) -> Result<()> {
    let sizes: Vec<usize> = if args.is_empty() {
        vec![100, 1_000, 10_000]
    } else {
        args.iter()
            .map(|a| a.parse().context("corpus sizes are numbers of services"))
            .collect::<Result<_>>()?
    };
    let work = repo_root().join("target/bench");
    bench::run(&sizes, &work)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("docs") => docs(),
        Some("corpus") => corpus_cmd(&args[1..]),
        Some("schemas") => schemas(&args[1..]),
        Some("agreement") => match args.get(1) {
            Some(dir) => agreement::run(Path::new(dir)),
            None => Err(anyhow::anyhow!(
                "usage: cargo xtask agreement <kube-linter checkout>"
            )),
        },
        Some("bench") => bench_cmd(&args[1..]),
        Some("bare-parse") => match args.get(1) {
            Some(dir) => bench::bare_cmd(Path::new(dir)),
            None => Err(anyhow::anyhow!("usage: cargo xtask bare-parse <dir>")),
        },
        Some("render-bench") => args
            .get(1)
            .map_or(Ok(5), |n| n.parse().context("rounds is a number"))
            .and_then(|rounds| render_bench::run(&repo_root(), rounds)),
        Some("stack-bench") => {
            stack_bench::Options::parse(&args[1..]).and_then(|o| stack_bench::run(&repo_root(), &o))
        }
        Some("help" | "--help" | "-h") => {
            print_help();
            Ok(())
        }
        Some(other) => {
            eprintln!("xtask: unknown command `{other}`; run `cargo xtask help`");
            return ExitCode::from(2);
        }
        None => {
            print_help();
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_help() {
    println!(
        "cargo xtask <command>\n\ncommands:\n  docs                 regenerate docs/rules/ from the dtlint rules\n  schemas [--check]    regenerate tools/dtlint/schemas/catalog.json.gz from its vendored sources\n  agreement <dir>      dtlint against kube-linter on the fixtures of a kube-linter checkout\n  corpus <n> <dir>     write a generated repository of n services\n  bench [n...]         lint generated corpora (default 100 1000 10000) against a bare parse\n                       (each a fresh process: `cargo build --release -p xtask -p dtlint`, then
                       `target/release/xtask bench`)\n  bare-parse <dir>     read and event-parse every YAML file under dir; print documents and bytes\n  render-bench [rounds] dtlint check with every overlay rendered vs the same kubectl kustomize\n                       builds one by one, and one file on a warm cache (build dtlint --release first)\n  stack-bench [--env E]... [--runs N] [--joins N] [--release] [--enforce-network-policies] [--age-key-file F]\n                       run each environment (default all three) with `local-stack e2e --json` and\n                       print time to every pod ready, resident memory and e2e latency side by side\n                       (needs root, PostgreSQL, redis-server, nftables; the age key for staging/production)\n  help                 this text"
    );
}
