//! `cargo xtask stack-bench`: each environment run by `local-stack e2e`
//! from git, side by side, and what its `--json` output measured:
//!
//! - time from `up` to every pod ready (the render, the stand-ins and every
//!   readiness probe; the service binaries are built once before);
//! - resident memory of the whole running topology (every process in every
//!   pod's network namespace, the PostgreSQL and Redis stand-ins included);
//! - e2e join (WebTransport at MC) to the first media datagram through MH,
//!   p50/p99 over every join of every run, and the datagram delivery p50/p99.
//!
//! A benchmark, not a test: it prints figures and fails only when a run
//! does. It needs what `local-stack up` needs (root, PostgreSQL, Redis,
//! nftables) and, for staging and production, the age key
//! (`--age-key-file` or `SOPS_AGE_KEY_FILE`).

// Figures for a report: precision past 52 bits does not matter.
#![allow(clippy::cast_precision_loss)]

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// One run of an environment must finish within this.
const RUN_TIMEOUT: Duration = Duration::from_mins(20);
/// The building of the binaries must finish within this.
const BUILD_TIMEOUT: Duration = Duration::from_hours(1);
/// The JSON line is small; stdout is read up to this.
const MAX_STDOUT: u64 = 1 << 20;

#[derive(Debug)]
pub struct Options {
    pub envs: Vec<String>,
    pub runs: usize,
    pub joins: usize,
    pub release: bool,
    pub enforce_network_policies: bool,
    pub age_key_file: Option<PathBuf>,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut o = Self {
            envs: Vec::new(),
            runs: 1,
            joins: 20,
            release: false,
            enforce_network_policies: false,
            age_key_file: None,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .with_context(|| format!("{name} needs a value"))
            };
            match arg.as_str() {
                "--env" => o.envs.push(value("--env")?),
                "--runs" => o.runs = value("--runs")?.parse().context("--runs")?,
                "--joins" => o.joins = value("--joins")?.parse().context("--joins")?,
                "--age-key-file" => o.age_key_file = Some(value("--age-key-file")?.into()),
                "--release" => o.release = true,
                "--enforce-network-policies" => o.enforce_network_policies = true,
                other => bail!("stack-bench: unknown argument `{other}`"),
            }
        }
        if o.envs.is_empty() {
            o.envs = ["development", "staging", "production"]
                .map(String::from)
                .to_vec();
        }
        if o.runs == 0 || o.joins == 0 {
            bail!("stack-bench: --runs and --joins must be at least 1");
        }
        Ok(o)
    }
}

/// What the runs of one environment measured.
#[derive(Debug, Default)]
struct Figures {
    pods: u64,
    ready_seconds: Vec<f64>,
    rss_bytes: Vec<f64>,
    join_ms: Vec<f64>,
    datagram_ms: Vec<f64>,
}

/// Runs `command` with a deadline; stdout (bounded) is returned, stderr
/// goes to `log`.
fn run_with_timeout(command: &mut Command, log: &Path, timeout: Duration) -> Result<String> {
    let log_file =
        std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("starting {command:?}"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.take(MAX_STDOUT).read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            // SIGTERM first: local-stack stops its pods and namespaces.
            let _ = Command::new("/bin/kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_mins(1));
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "did not finish within {}s; its log: {}",
                timeout.as_secs(),
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        bail!("failed ({status}); its log: {}", log.display());
    }
    Ok(out)
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// The nearest-rank percentile of `values`.
fn percentile(values: &[f64], percent: usize) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get((v.len().saturating_sub(1)) * percent / 100)
        .copied()
        .unwrap_or(f64::NAN)
}

fn numbers(v: &Value, key: &str) -> Vec<f64> {
    v.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .collect()
}

pub fn run(root: &Path, o: &Options) -> Result<()> {
    let profile = if o.release { "release" } else { "debug" };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let work = target_dir(root).join("stack-bench");
    std::fs::create_dir_all(&work)?;
    eprintln!("stack-bench: building local-stack and the four services ({profile})");
    let mut build = Command::new(&cargo);
    build.current_dir(root).args(["build", "--quiet"]);
    if o.release {
        build.arg("--release");
    }
    for p in [
        "local-stack",
        "ac-service",
        "global-controller",
        "meeting-controller",
        "media-handler",
    ] {
        build.args(["-p", p]);
    }
    run_with_timeout(&mut build, &work.join("build.log"), BUILD_TIMEOUT).context("cargo build")?;
    let binary = target_dir(root).join(profile).join("local-stack");

    let mut all = Vec::new();
    for env in &o.envs {
        let mut f = Figures::default();
        for n in 0..o.runs {
            eprintln!("stack-bench: {env}, run {} of {}", n + 1, o.runs);
            let mut c = Command::new(&binary);
            c.current_dir(root).args([
                "e2e",
                "--env",
                env,
                "--no-build",
                "--json",
                "--joins",
                &o.joins.to_string(),
            ]);
            if o.release {
                c.arg("--release");
            }
            if o.enforce_network_policies {
                c.arg("--enforce-network-policies");
            }
            if let Some(key) = &o.age_key_file {
                c.arg("--age-key-file").arg(key);
            }
            let log = work.join(format!("{env}-{n}.log"));
            let out = run_with_timeout(&mut c, &log, RUN_TIMEOUT)
                .with_context(|| format!("local-stack e2e --env {env}"))?;
            let v: Value = out
                .lines()
                .rev()
                .find_map(|l| serde_json::from_str(l).ok())
                .with_context(|| format!("local-stack e2e --env {env} printed no measurements"))?;
            f.pods = v.get("pods").and_then(Value::as_u64).unwrap_or(0);
            f.ready_seconds
                .extend(v.get("ready_seconds").and_then(Value::as_f64));
            f.rss_bytes
                .extend(v.get("rss_bytes").and_then(Value::as_f64));
            f.join_ms.extend(numbers(&v, "join_to_first_datagram_ms"));
            f.datagram_ms.extend(numbers(&v, "datagram_ms"));
        }
        all.push((env.clone(), f));
    }
    print!("{}", table(o, profile, &all));
    Ok(())
}

/// The side-by-side table.
fn table(o: &Options, profile: &str, all: &[(String, Figures)]) -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mut s = format!(
        "local-stack e2e, {profile} binaries, {} run(s) per environment, {} join(s) per run, {cores} core(s){}\n",
        o.runs,
        o.joins,
        if o.enforce_network_policies {
            ", NetworkPolicies enforced"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "{:<12} {:>5} {:>16} {:>14} {:>26} {:>22}",
        "environment",
        "pods",
        "ready (s) p50",
        "RSS (MiB) p50",
        "join->1st datagram p50/p99",
        "datagram p50/p99 (ms)"
    );
    for (env, f) in all {
        let _ = writeln!(
            s,
            "{:<12} {:>5} {:>16.1} {:>14.1} {:>20.1}/{:<5.1} {:>15.2}/{:<6.2}",
            env,
            f.pods,
            percentile(&f.ready_seconds, 50),
            percentile(&f.rss_bytes, 50) / f64::from(1u32 << 20),
            percentile(&f.join_ms, 50),
            percentile(&f.join_ms, 99),
            percentile(&f.datagram_ms, 50),
            percentile(&f.datagram_ms, 99),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_default_to_every_environment_once() {
        let o = Options::parse(&[]).unwrap();
        assert_eq!(o.envs, ["development", "staging", "production"]);
        assert_eq!((o.runs, o.joins, o.release), (1, 20, false));
        let o = Options::parse(&["--env", "staging", "--runs", "3", "--release"].map(String::from))
            .unwrap();
        assert_eq!(o.envs, ["staging"]);
        assert_eq!((o.runs, o.release), (3, true));
        assert!(Options::parse(&["--runs".into()]).is_err());
        assert!(Options::parse(&["--bogus".into()]).is_err());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert!((percentile(&v, 50) - 50.0).abs() < f64::EPSILON);
        assert!((percentile(&v, 99) - 99.0).abs() < f64::EPSILON);
        assert!(percentile(&[], 50).is_nan());
    }
}
