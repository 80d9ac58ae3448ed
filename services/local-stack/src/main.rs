//! `cargo run -p local-stack`: the whole Dark Tower platform on one machine.
//!
//! 1. PostgreSQL and Redis: used when they answer on loopback, started when
//!    installed but not running (PostgreSQL as the `postgres` user, data
//!    under /tmp), stopped again at the end only if started here;
//! 2. the AC and GC databases are created if missing;
//! 3. the service binaries are built (`cargo build`), meeting-controller
//!    included when its crate is in the workspace;
//! 4. the service clients are registered with `ac-service register-client`
//!    (secret on stdin, SPEC scopes), plus a front-end client for trying the
//!    meetings API;
//! 5. a development TLS certificate is generated for the QUIC endpoints;
//! 6. AC, GC, MC and MH start on loopback with their env (checked against
//!    each `config-contract.toml` first), in dependency order, each waited
//!    for until `/ready`;
//! 7. the endpoints are printed (and written to `<workdir>/stack.json`);
//!    Ctrl-C or SIGTERM stops everything: SIGTERM to each service (they
//!    drain), then the databases this program started.
//!
//! With `--measure-idle SECONDS` (a benchmark) it stays idle that long after
//! step 7, prints each service's resident memory and stops (`measure`).

mod e2e;
mod infra;
mod manifest;
mod measure;
mod net;
mod plan;
mod pod;
mod proc;
mod render;
mod services;
mod standin;
mod up;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use clap::Parser;
use rand::RngCore as _;

use crate::services::{FRONTEND_CLIENT, Ports, SERVICE_CLIENTS, Service, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "local-stack",
    about = "Run AC, GC, MC and MH on loopback against a real PostgreSQL and Redis; Ctrl-C stops everything"
)]
struct Cli {
    /// Admin URL of PostgreSQL (started here if it is loopback and down).
    #[arg(
        long,
        default_value = "postgres://postgres:postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// Redis URL (started here if it is loopback and down).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// State, certificates and logs.
    #[arg(long, default_value = "/tmp/dark-tower-local")]
    workdir: PathBuf,
    /// Data directory of a PostgreSQL cluster started here.
    #[arg(long, default_value = "/tmp/dark-tower-pg")]
    pg_data: PathBuf,
    /// Added to every service port (8082, 8080, 50051, ...), to run a
    /// second stack next to another.
    #[arg(long, default_value_t = 0)]
    port_offset: u16,
    /// Databases are `<prefix>_ac` and `<prefix>_gc`.
    #[arg(long, default_value = "dark_tower")]
    db_prefix: String,
    /// Use the binaries already in the target directory.
    #[arg(long)]
    no_build: bool,
    /// Build and run release binaries.
    #[arg(long)]
    release: bool,
    /// Leave meeting-controller out even if its crate exists.
    #[arg(long)]
    without_mc: bool,
    /// RUST_LOG of the services.
    #[arg(long, default_value = "info")]
    log: String,
    /// Benchmark: once everything is ready, stay idle this many seconds,
    /// print each service's VmRSS/VmHWM (from /proc), write
    /// `<workdir>/idle-memory.json`, then stop (use with --release).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(0..=600))]
    measure_idle: Option<u64>,
    #[command(subcommand)]
    command: Option<Subcommand>,
}

#[derive(Debug, clap::Subcommand)]
enum Subcommand {
    /// Render an environment the way Flux applies it (SOPS files decrypted
    /// with the age key) and print every pod exactly as the kubelet would
    /// start it: env, mounts, security context, probes, addresses, and every
    /// Service with its endpoints. Runs nothing.
    Plan {
        /// development, staging or production (a directory under clusters/).
        #[arg(long)]
        env: String,
        /// age identities for SOPS-encrypted files (default: SOPS_AGE_KEY_FILE).
        #[arg(long, env = "SOPS_AGE_KEY_FILE")]
        age_key_file: Option<PathBuf>,
        /// Print env values, not just names (secrets included: local use only).
        #[arg(long)]
        show_env: bool,
        /// Also print the nftables program that routes each Service.
        #[arg(long)]
        kube_proxy: bool,
    },
    /// Run an environment exactly as git declares it: every Flux
    /// Kustomization in dependsOn order, stand-ins for the operators, every
    /// pod as local processes in its own network and mount namespaces with
    /// its probes deciding readiness. Needs root. Ctrl-C stops everything.
    Up(RunArgs),
    /// `up`, then the user flow through the running environment (token,
    /// meeting, WebTransport join at MC, media through MH), then stop.
    E2e(RunArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// development, staging or production (a directory under clusters/).
    #[arg(long)]
    env: String,
    /// age identities for SOPS-encrypted files (default: SOPS_AGE_KEY_FILE).
    #[arg(long, env = "SOPS_AGE_KEY_FILE")]
    age_key_file: Option<PathBuf>,
    /// Logs, volumes and databases of the run (`<workdir>/<env>`, cleared at start).
    #[arg(long, default_value = "/tmp/dark-tower-up")]
    workdir: PathBuf,
    /// Use the binaries already in the target directory.
    #[arg(long)]
    no_build: bool,
    /// Build and run release binaries.
    #[arg(long)]
    release: bool,
    /// Stop as soon as every pod is ready (tests, benchmarks).
    #[arg(long)]
    exit_when_ready: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Subcommand::Up(args) | Subcommand::E2e(args)) = &cli.command {
        let e2e = matches!(cli.command, Some(Subcommand::E2e(_)));
        return match run_up(args, e2e) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("local-stack: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Subcommand::Plan {
        env,
        age_key_file,
        show_env,
        kube_proxy,
    }) = &cli.command
    {
        return match run_plan(env, age_key_file.as_deref(), *show_env, *kube_proxy) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("local-stack: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("local-stack: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("local-stack: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_up(args: &RunArgs, e2e: bool) -> anyhow::Result<()> {
    let root = repo_root();
    let profile = if args.release { "release" } else { "debug" };
    // Built once, in the machine's namespace, before the environment starts.
    if std::env::var_os("DT_LOCAL_STACK_NODE").is_none() && !args.no_build {
        build(&root, true, args.release)?;
    }
    up::run(&up::Options {
        repo: root.clone(),
        env: args.env.clone(),
        age_key_file: args.age_key_file.clone(),
        workdir: args.workdir.clone(),
        binaries: target_dir(&root).join(profile),
        exit_when_ready: args.exit_when_ready,
        e2e,
    })
}

fn run_plan(
    env: &str,
    age_key_file: Option<&Path>,
    show_env: bool,
    kube_proxy: bool,
) -> anyhow::Result<()> {
    let root = repo_root();
    let work = tempfile_dir("dt-plan")?;
    let decrypted = match age_key_file {
        Some(file) => {
            let ids = dtlint_sops::AgeIdentities::from_file(file)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let decrypted = render::decrypt_copy(&root, &work.join("src"), &ids)?;
            eprintln!("local-stack: {} SOPS file(s) decrypted", decrypted.files);
            Some(decrypted)
        }
        None => None,
    };
    let binaries = target_dir(&root).join("debug");
    let result = plan::plan(&root, env, decrypted.as_ref(), &work, &binaries);
    let _ = std::fs::remove_dir_all(&work);
    let plan = result?;
    print!("{}", plan::render_text(&plan, show_env));
    if kube_proxy {
        print!("\n{}", plan::kube_proxy(&plan));
    }
    Ok(())
}

/// A fresh private directory under the system temp dir.
fn tempfile_dir(prefix: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt as _;
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        random_secret()
    ));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

/// The repository root (this crate lives in services/local-stack).
fn repo_root() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    dir.ancestors()
        .nth(2)
        .map_or_else(|| dir.to_owned(), Path::to_owned)
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

fn random_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// AC encrypts its signing keys under the master key, and the AC database
/// outlives a run: keep the key in the workdir so the next run can read them.
fn master_key(workdir: &Path) -> anyhow::Result<String> {
    let path = workdir.join("ac-master-key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(existing.trim().to_owned());
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let key = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(file, "{key}")?;
    Ok(key)
}

/// Builds the service binaries; returns whether meeting-controller is in.
fn build(root: &Path, with_mc: bool, release: bool) -> anyhow::Result<bool> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let attempt = |mc: bool| -> anyhow::Result<bool> {
        let mut command = Command::new(&cargo);
        command.current_dir(root).arg("build");
        if release {
            command.arg("--release");
        }
        for package in ["ac-service", "global-controller", "media-handler"] {
            command.args(["-p", package]);
        }
        if mc {
            command.args(["-p", "meeting-controller"]);
        }
        eprintln!("local-stack: building the service binaries (cargo build)");
        Ok(command.status().context("cannot run cargo")?.success())
    };
    if attempt(with_mc)? {
        return Ok(with_mc);
    }
    if with_mc {
        eprintln!(
            "local-stack: WARNING: the build including meeting-controller failed; \
             retrying without it (the stack will run AC, GC and MH only)"
        );
        if attempt(false)? {
            return Ok(false);
        }
    }
    bail!("cargo build failed")
}

fn register_client(
    binary: &Path,
    settings: &Settings,
    client_id: &str,
    scopes: &str,
    secret: &str,
) -> anyhow::Result<()> {
    let mut child = Command::new(binary)
        .args([
            "register-client",
            "--client-id",
            client_id,
            "--scopes",
            scopes,
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(settings.ac_env())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run ac-service register-client")?;
    if let Some(mut stdin) = child.stdin.take() {
        writeln!(stdin, "{secret}")?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "ac-service register-client --client-id {client_id} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    eprintln!("local-stack: client {client_id} registered ({scopes})");
    Ok(())
}

/// What was started here, stopped in reverse order.
#[derive(Default)]
struct Stack {
    services: Vec<Service>,
    postgres: Option<infra::StartedPostgres>,
    redis: Option<infra::StartedRedis>,
}

impl Stack {
    async fn stop(&mut self) {
        // All at once: each drains (readiness false first) in parallel.
        for service in &self.services {
            service.terminate();
        }
        while let Some(mut service) = self.services.pop() {
            service.stop(Duration::from_secs(20)).await;
        }
        if let Some(mut redis) = self.redis.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &redis.child.id().to_string()])
                .status();
            let _ = redis.child.wait();
            eprintln!("local-stack: stopped Redis");
        }
        if let Some(pg) = self.postgres.take() {
            pg.stop();
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut stack = Stack::default();
    let result = tokio::select! {
        r = start(&cli, &mut stack) => r.map(Some),
        () = common::shutdown::os_signal() => Ok(None),
    };
    let result = match result {
        Ok(Some(())) => match cli.measure_idle {
            Some(secs) => {
                measure::idle_memory(&mut stack.services, Duration::from_secs(secs), &cli.workdir)
                    .await
            }
            None => watch(&mut stack).await,
        },
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    eprintln!("local-stack: stopping");
    stack.stop().await;
    result
}

/// Runs until Ctrl-C/SIGTERM, or fails when a service dies.
async fn watch(stack: &mut Stack) -> anyhow::Result<()> {
    let signal = common::shutdown::os_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            () = &mut signal => return Ok(()),
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        for service in &mut stack.services {
            if let Some(status) = service.child.try_wait()? {
                bail!(
                    "{} exited unexpectedly ({status}); end of {}:\n{}",
                    service.name,
                    service.log.display(),
                    service.log_tail(20)
                );
            }
        }
    }
}

async fn start(cli: &Cli, stack: &mut Stack) -> anyhow::Result<()> {
    let root = repo_root();
    let workdir = &cli.workdir;
    let logs = workdir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let ports = Ports::with_offset(cli.port_offset)?;

    // PostgreSQL and Redis.
    let pg_addr = infra::url_host_port(&cli.database_url, 5432)
        .context("--database-url has no usable host:port")?;
    let password = cli
        .database_url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map_or("postgres", |(_, p)| p)
        .to_owned();
    stack.postgres = infra::ensure_postgres(pg_addr, &cli.pg_data, &password)?;
    let redis_addr = infra::url_host_port(&cli.redis_url, 6379)
        .context("--redis-url has no usable host:port")?;
    stack.redis = infra::ensure_redis(redis_addr, &logs.join("redis.log"))?;
    let ac_db = format!("{}_ac", cli.db_prefix);
    let gc_db = format!("{}_gc", cli.db_prefix);
    infra::ensure_database(&cli.database_url, &ac_db).await?;
    infra::ensure_database(&cli.database_url, &gc_db).await?;

    // Binaries.
    let mc_present =
        root.join("services/meeting-controller/Cargo.toml").exists() && !cli.without_mc;
    let with_mc = if cli.no_build {
        mc_present
    } else {
        build(&root, mc_present, cli.release)?
    };
    let bin_dir = target_dir(&root).join(if cli.release { "release" } else { "debug" });
    let binary = |name: &str| -> anyhow::Result<PathBuf> {
        let path = bin_dir.join(name);
        if path.exists() {
            Ok(path)
        } else {
            bail!(
                "{} does not exist (build it, or drop --no-build)",
                path.display()
            )
        }
    };
    let ac_bin = binary("ac-service")?;
    let gc_bin = binary("global-controller")?;
    let mh_bin = binary("media-handler")?;
    let meeting_controller_bin = if with_mc {
        Some(binary("meeting-controller")?)
    } else {
        None
    };

    // Certificate for the QUIC endpoints (MC WebTransport and MH media).
    let tls_dir = workdir.join("tls");
    let cert_out = Command::new(&mh_bin)
        .args(["gen-dev-cert", "--out"])
        .arg(&tls_dir)
        .output()
        .context("cannot run media-handler gen-dev-cert")?;
    if !cert_out.status.success() {
        bail!(
            "media-handler gen-dev-cert failed: {}",
            String::from_utf8_lossy(&cert_out.stderr)
        );
    }
    let cert_sha256 = String::from_utf8_lossy(&cert_out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("sha256: "))
        .unwrap_or_default()
        .to_owned();

    let mut secrets: BTreeMap<&'static str, String> = BTreeMap::new();
    for (client, _) in SERVICE_CLIENTS {
        secrets.insert(client, random_secret());
    }
    let frontend_secret = random_secret();
    let settings = Settings {
        ports,
        ac_database_url: infra_db_url(&cli.database_url, &ac_db),
        gc_database_url: infra_db_url(&cli.database_url, &gc_db),
        redis_url: cli.redis_url.clone(),
        master_key: master_key(workdir)?,
        secrets,
        cert: tls_dir.join("cert.pem"),
        key: tls_dir.join("key.pem"),
        log_filter: cli.log.clone(),
    };

    // The env of each service matches its contract, before anything starts.
    let contract = |service: &str| -> anyhow::Result<String> {
        let path = root
            .join("services")
            .join(service)
            .join("config-contract.toml");
        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    let mut checks = vec![
        ("ac-service", settings.ac_env()),
        ("global-controller", settings.gc_env()),
        ("media-handler", settings.mh_env()),
    ];
    if with_mc {
        checks.push(("meeting-controller", settings.mc_env()));
    }
    for (service, env) in &checks {
        services::check_env_against_contract(&contract(service)?, env)
            .map_err(|e| anyhow::anyhow!("the local env of {service} is wrong:\n{e}"))?;
    }

    for (client, scopes) in SERVICE_CLIENTS {
        if client == "meeting-controller" && !with_mc {
            continue;
        }
        register_client(
            &ac_bin,
            &settings,
            client,
            scopes,
            &settings.secrets[client],
        )?;
    }
    register_client(
        &ac_bin,
        &settings,
        FRONTEND_CLIENT.0,
        FRONTEND_CLIENT.1,
        &frontend_secret,
    )?;

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    let ready = |port: u16| format!("http://127.0.0.1:{port}/ready");
    let within = Duration::from_secs(90);

    let mut ac = Service::spawn(
        "ac-service",
        &ac_bin,
        &settings.ac_env(),
        &logs,
        ready(ports.ac_http),
    )?;
    let ac_ready = ac.wait_ready(&http, within).await;
    stack.services.push(ac);
    ac_ready?;
    let mut gc = Service::spawn(
        "global-controller",
        &gc_bin,
        &settings.gc_env(),
        &logs,
        ready(ports.gc_http),
    )?;
    let gc_ready = gc.wait_ready(&http, within).await;
    stack.services.push(gc);
    gc_ready?;
    // MC and MH only need AC and GC: start both, then wait for both.
    stack.services.push(Service::spawn(
        "media-handler",
        &mh_bin,
        &settings.mh_env(),
        &logs,
        ready(ports.mh_health),
    )?);
    if let Some(meeting_controller_bin) = &meeting_controller_bin {
        stack.services.push(Service::spawn(
            "meeting-controller",
            meeting_controller_bin,
            &settings.mc_env(),
            &logs,
            ready(ports.mc_health),
        )?);
    }
    for service in stack.services.iter_mut().skip(2) {
        service.wait_ready(&http, within).await?;
    }

    let summary = serde_json::json!({
        "ac": {"http": settings.ac_base()},
        "gc": {"http": format!("http://127.0.0.1:{}", ports.gc_http), "grpc": format!("127.0.0.1:{}", ports.gc_grpc)},
        "mc": with_mc.then(|| serde_json::json!({
            "health": format!("http://127.0.0.1:{}", ports.mc_health),
            "grpc": format!("127.0.0.1:{}", ports.mc_grpc),
            "webtransport": format!("https://127.0.0.1:{}/signaling", ports.mc_webtransport),
        })),
        "mh": {
            "health": format!("http://127.0.0.1:{}", ports.mh_health),
            "grpc": format!("127.0.0.1:{}", ports.mh_grpc),
            "media": format!("127.0.0.1:{}", ports.mh_media),
        },
        "ready": stack.services.iter().map(|s| s.ready_url.clone()).collect::<Vec<_>>(),
        "frontend_client": {"client_id": FRONTEND_CLIENT.0, "client_secret": frontend_secret, "scopes": FRONTEND_CLIENT.1},
        "certificate": {"cert": settings.cert, "key": settings.key, "sha256": cert_sha256},
        "logs": logs,
    });
    let summary_path = workdir.join("stack.json");
    std::fs::write(&summary_path, serde_json::to_vec_pretty(&summary)?)
        .with_context(|| format!("cannot write {}", summary_path.display()))?;

    let mc_line = if with_mc {
        format!(
            "  meeting-controller  health http://127.0.0.1:{}  gRPC 127.0.0.1:{}  WebTransport https://127.0.0.1:{}/signaling",
            ports.mc_health, ports.mc_grpc, ports.mc_webtransport
        )
    } else {
        "  meeting-controller  NOT RUNNING (no services/meeting-controller crate, --without-mc, or it did not build)".to_owned()
    };
    let text = format!(
        "\nDark Tower local stack is ready (logs in {logs}):\n\
         \x20 ac-service          http://127.0.0.1:{ac}  (JWKS /.well-known/jwks.json)\n\
         \x20 global-controller   http://127.0.0.1:{gc}  gRPC 127.0.0.1:{gcg}\n\
         {mc_line}\n\
         \x20 media-handler       health http://127.0.0.1:{mhh}  gRPC 127.0.0.1:{mhg}  media QUIC 127.0.0.1:{mhm} (ALPN dt-media/1)\n\
         \x20 dev certificate     {cert} (sha256 {cert_sha256})\n\
         \x20 front-end client    {fe} / {frontend_secret} (scopes {fes})\n\
         \x20 summary             {summary}\n\n\
         Try:\n\
         \x20 TOKEN=$(curl -s -d grant_type=client_credentials -d client_id={fe} -d client_secret={frontend_secret} \
         http://127.0.0.1:{ac}/api/v1/auth/service/token | jq -r .access_token)\n\
         \x20 curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{{\"name\":\"standup\"}}' http://127.0.0.1:{gc}/api/v1/meetings\n\n\
         Press Ctrl-C to stop everything.\n",
        logs = logs.display(),
        ac = ports.ac_http,
        gc = ports.gc_http,
        gcg = ports.gc_grpc,
        mhh = ports.mh_health,
        mhg = ports.mh_grpc,
        mhm = ports.mh_media,
        cert = settings.cert.display(),
        fe = FRONTEND_CLIENT.0,
        fes = FRONTEND_CLIENT.1,
        summary = summary_path.display(),
    );
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    // A fixed marker line for scripts and the end-to-end test.
    writeln!(out, "local-stack: ready")?;
    out.flush()?;
    Ok(())
}

/// `admin_url` pointing at database `name`.
fn infra_db_url(admin_url: &str, name: &str) -> String {
    let (base, query) = admin_url
        .split_once('?')
        .map_or((admin_url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut url = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(
            infra_db_url("postgres://postgres:pw@127.0.0.1:5432/postgres", "dt_ac"),
            "postgres://postgres:pw@127.0.0.1:5432/dt_ac"
        );
        assert_eq!(
            infra_db_url("postgres://127.0.0.1/postgres?sslmode=disable", "x"),
            "postgres://127.0.0.1/x?sslmode=disable"
        );
    }

    #[test]
    fn master_key_is_kept_between_runs() {
        let dir = tempfile::tempdir().unwrap();
        let first = master_key(dir.path()).unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&first)
                .unwrap()
                .len(),
            32
        );
        assert_eq!(master_key(dir.path()).unwrap(), first);
    }

    #[test]
    fn the_repo_root_holds_the_services() {
        assert!(repo_root().join("services/ac-service/Cargo.toml").exists());
    }
}
