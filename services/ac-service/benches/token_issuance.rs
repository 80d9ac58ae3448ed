//! AC token issuance benchmark (not a timed test): tokens per second and
//! p50/p99 latency of `POST /api/v1/auth/service/token`, and JWKS fetches
//! per second, under 1, 8 and 32 concurrent clients on loopback.
//!
//! `cargo bench -p ac-service --bench token_issuance` (add `-- --quick` for a
//! shorter run, `-- --costs 12,4` to choose the bcrypt costs).
//!
//! It runs the real `ac-service` binary (built with the bench profile, that
//! is release) as its own process against the real PostgreSQL
//! (`DT_TEST_DATABASE_URL`, default the local server), in a fresh database
//! per bcrypt cost that is dropped at the end. The client is registered with
//! `ac-service register-client` at that `BCRYPT_COST`, so every token request
//! pays one bcrypt verification at that cost: the production cost (12) and a
//! low one (4) separate hashing from the rest of the path (HTTP, form
//! parsing, one PostgreSQL query, Ed25519 signing, the JSON log line); one
//! bcrypt verification is also timed alone, in this process, so the rest of
//! the path is the difference.
//!
//! Load: each of N clients holds its own keep-alive connection and sends
//! requests back to back; a scenario stops after a bounded number of
//! requests or a bounded time, whichever comes first. Latency is client-side
//! (request sent to body read). The load generator shares the machine with
//! AC, so on a small machine the figures are a floor. "AC CPU" is the
//! server process's user+system CPU time during the scenario (from
//! `/proc/<pid>/stat`) per request.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::RngCore as _;
use sqlx::Connection as _;

const AC_BIN: &str = env!("CARGO_BIN_EXE_ac-service");
const CLIENT_ID: &str = "bench-client";
const CONCURRENCY: [usize; 3] = [1, 8, 32];

/// Bounds of one scenario: at most `requests`, at most `time`.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    requests: u64,
    time: Duration,
}

fn bounds_for_cost(cost: u32, quick: bool) -> Bounds {
    let scale = if quick { 3 } else { 1 };
    // bcrypt doubles with every cost step: ~0.2-0.3 s per verification at
    // 12 on one core, well under a millisecond at 4.
    if cost >= 10 {
        Bounds {
            requests: 400 / scale,
            time: Duration::from_secs(20 / scale),
        }
    } else {
        Bounds {
            requests: 40_000 / scale,
            time: Duration::from_secs(10 / scale),
        }
    }
}

fn jwks_bounds(quick: bool) -> Bounds {
    let scale = if quick { 3 } else { 1 };
    Bounds {
        requests: 500_000 / scale,
        time: Duration::from_secs(6 / scale),
    }
}

fn random_string(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Clock ticks per second for `/proc/<pid>/stat`.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU seconds of `pid` so far.
fn cpu_seconds(pid: u32, ticks: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (field(11), field(12)) {
        (Some(u), Some(s)) => (u + s) / ticks,
        _ => f64::NAN,
    }
}

/// One `ac-service` process on loopback, with its own database.
struct Ac {
    child: Child,
    base: String,
    database: String,
    log: PathBuf,
}

impl Ac {
    async fn start(cost: u32, secret: &str, workdir: &Path) -> Self {
        let url = common::testing::fresh_database("ac_bench").await;
        let database = url
            .split('?')
            .next()
            .and_then(|u| u.rsplit('/').next())
            .unwrap()
            .to_owned();
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let port = free_port();
        let env = [
            ("DATABASE_URL", url.clone()),
            ("BIND_ADDRESS", format!("127.0.0.1:{port}")),
            (
                "AC_MASTER_KEY",
                base64::engine::general_purpose::STANDARD.encode(key),
            ),
            ("CLUSTER_NAME", "bench".to_owned()),
            ("BCRYPT_COST", cost.to_string()),
            ("AC_DRAIN_SECONDS", "0".to_owned()),
            // Production default: one JSON line per issued token.
            ("RUST_LOG", "info".to_owned()),
        ];
        let command = |args: &[&str]| {
            let mut c = Command::new(AC_BIN);
            c.args(args)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
            c
        };

        let mut register = command(&[
            "register-client",
            "--client-id",
            CLIENT_ID,
            "--scopes",
            "service.write.gc",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        writeln!(register.stdin.take().unwrap(), "{secret}").unwrap();
        let out = register.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "register-client failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let log = workdir.join(format!("ac-cost{cost}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = command(&[])
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let ac = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            database,
            log,
        };
        ac.wait_ready().await;
        ac
    }

    async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_mins(1);
        loop {
            if let Ok(r) = http.get(format!("{}/ready", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ac-service not ready within 60 s; see {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, wait, then drop the database.
    async fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Ok(mut conn) = sqlx::PgConnection::connect(&common::testing::admin_url()).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.database
            ))
            .execute(&mut conn)
            .await;
            let _ = conn.close().await;
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Request {
    Token,
    Jwks,
}

struct Outcome {
    ok: u64,
    errors: u64,
    secs: f64,
    latencies_us: Vec<u64>,
    cpu_per_request_ms: f64,
}

/// Nearest-rank percentile of sorted samples, in milliseconds.
fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted_us.len() as f64).ceil() as usize;
    sorted_us[rank.clamp(1, sorted_us.len()) - 1] as f64 / 1000.0
}

async fn run_load(
    ac: &Ac,
    kind: Request,
    body: &Arc<str>,
    clients: usize,
    bounds: Bounds,
    ticks: f64,
) -> Outcome {
    let issued = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let pid = ac.child.id();
    let cpu_before = cpu_seconds(pid, ticks);
    let start = Instant::now();
    let deadline = start + bounds.time;
    let mut workers = Vec::new();
    for _ in 0..clients {
        // One client (one keep-alive connection) per worker.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1)
            .build()
            .unwrap();
        let issued = issued.clone();
        let errors = errors.clone();
        let body = body.clone();
        let token_url = format!("{}/api/v1/auth/service/token", ac.base);
        let jwks_url = format!("{}/.well-known/jwks.json", ac.base);
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline
                && issued.fetch_add(1, Ordering::Relaxed) < bounds.requests
            {
                let sent = Instant::now();
                let request = match kind {
                    Request::Token => http
                        .post(&token_url)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(body.to_string()),
                    Request::Jwks => http.get(&jwks_url),
                };
                let ok = match request.send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    latencies.push(sent.elapsed().as_micros() as u64);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    let mut latencies_us = Vec::new();
    for w in workers {
        latencies_us.extend(w.await.unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid, ticks) - cpu_before;
    latencies_us.sort_unstable();
    let ok = latencies_us.len() as u64;
    let errors = errors.load(Ordering::Relaxed);
    Outcome {
        ok,
        errors,
        secs,
        latencies_us,
        cpu_per_request_ms: cpu * 1000.0 / (ok + errors).max(1) as f64,
    }
}

fn print_row(what: &str, cost: &str, clients: usize, o: &Outcome) {
    println!(
        "| {what:<6} | {cost:>4} | {clients:>7} | {:>8} | {:>6} | {:>6.1} | {:>9.1} | {:>8.2} | {:>8.2} | {:>8.2} | {:>11.3} |",
        o.ok,
        o.errors,
        o.secs,
        o.ok as f64 / o.secs,
        percentile_ms(&o.latencies_us, 0.50),
        percentile_ms(&o.latencies_us, 0.99),
        percentile_ms(&o.latencies_us, 1.0),
        o.cpu_per_request_ms,
    );
}

/// One bcrypt verification at `cost` alone, single-threaded in this
/// process (what each token request pays before anything else), in ms.
fn bcrypt_verify_ms(cost: u32) -> f64 {
    let secret = random_string(24);
    let hash = bcrypt::hash(&secret, cost).unwrap();
    let rounds: u32 = if cost >= 10 { 5 } else { 500 };
    let start = Instant::now();
    for _ in 0..rounds {
        assert!(bcrypt::verify(&secret, &hash).unwrap());
    }
    start.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds)
}

fn parse_costs() -> Vec<u32> {
    // Cargo passes `--bench`; other arguments are ours or ignored.
    let args: Vec<String> = std::env::args().collect();
    let value = args
        .iter()
        .position(|a| a == "--costs")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            args.iter()
                .find_map(|a| a.strip_prefix("--costs=").map(str::to_owned))
        });
    value.map_or_else(
        || vec![12, 4],
        |v| {
            v.split(',')
                .map(|c| c.trim().parse().expect("--costs takes e.g. 12,4"))
                .collect()
        },
    )
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let costs = parse_costs();
    let ticks = clock_ticks();
    let workdir = std::env::temp_dir().join(format!("ac-bench-{}", std::process::id()));
    std::fs::create_dir_all(&workdir).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
        println!(
            "ac-service token issuance benchmark: {AC_BIN} on loopback, PostgreSQL {}, {cpus} CPUs, load generator in this process (2 threads){}",
            common::testing::admin_url()
                .rsplit_once('@')
                .map_or("(default)", |(_, host)| host),
            if quick { ", --quick" } else { "" },
        );
        println!(
            "| what   | cost | clients | requests | errors |  secs  |   req/s   |  p50 ms  |  p99 ms  |  max ms  | AC CPU ms/r |"
        );
        println!(
            "|--------|------|---------|----------|--------|--------|-----------|----------|----------|----------|-------------|"
        );
        let mut last: Option<Ac> = None;
        for (i, &cost) in costs.iter().enumerate() {
            let secret = random_string(24);
            let ac = Ac::start(cost, &secret, &workdir).await;
            let body: Arc<str> = Arc::from(format!(
                "grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={secret}"
            ));
            // Warm-up (connections, PostgreSQL plan cache) and a sanity check.
            let warm = run_load(
                &ac,
                Request::Token,
                &body,
                2,
                Bounds {
                    requests: 4,
                    time: Duration::from_secs(30),
                },
                ticks,
            )
            .await;
            assert_eq!(warm.errors, 0, "token requests fail; see {}", ac.log.display());
            let bounds = bounds_for_cost(cost, quick);
            for clients in CONCURRENCY {
                let outcome = run_load(&ac, Request::Token, &body, clients, bounds, ticks).await;
                print_row("token", &cost.to_string(), clients, &outcome);
            }
            if i + 1 == costs.len() {
                last = Some(ac);
            } else {
                ac.stop().await;
            }
        }
        if let Some(ac) = last {
            let empty: Arc<str> = Arc::from("");
            for clients in CONCURRENCY {
                let outcome =
                    run_load(&ac, Request::Jwks, &empty, clients, jwks_bounds(quick), ticks).await;
                print_row("jwks", "-", clients, &outcome);
            }
            ac.stop().await;
        }
        for &cost in &costs {
            println!(
                "bcrypt verify alone at cost {cost}: {:.3} ms (one thread, this process)",
                bcrypt_verify_ms(cost)
            );
        }
    });
    let _ = std::fs::remove_dir_all(&workdir);
}
