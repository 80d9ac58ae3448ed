//! `local-stack up --env E`: run an environment exactly as git declares it.
//!
//! The Flux Kustomizations of `clusters/<env>` are applied in `dependsOn`
//! order (`render`); the operators are replaced by stand-ins that read the
//! same custom resources (`standin`); every Deployment and StatefulSet pod is
//! planned as the kubelet would start it (`pod`) and run as local processes:
//!
//! - each pod in its own network namespace with its own address, routed
//!   through a node namespace in which this program itself runs (`net`);
//! - each container in its own mount namespace: an overlay of the machine's
//!   root (writes go to a tmpfs and vanish with the container), read-only
//!   when `readOnlyRootFilesystem` says so, the pod's volumes bind-mounted at
//!   their `mountPath`, `/etc/hosts` and `/etc/resolv.conf` of the pod, and
//!   the process started as `runAsUser`/`runAsGroup` with `fsGroup`;
//! - our four services run from the workspace's binaries (image
//!   `ghcr.io/dark-tower/dark-tower/<name>` runs `target/<profile>/<name>`);
//!   Redis runs with the machine's `redis-server` and the container's own
//!   command; an image with nothing local to run is named and not run;
//! - readiness and liveness probes (HTTP, TCP, exec) decide readiness and
//!   restarts; a pod is behind its Services only while ready (nftables DNAT
//!   for cluster IPs, `/etc/hosts` for names).
//!
//! Ctrl-C (or SIGTERM) stops every container (SIGTERM, then SIGKILL after
//! its grace period), and the outer process deletes every namespace it made.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::manifest::Object;
use crate::net::{self, Allocator};
use crate::pod::{
    self, ContainerPlan, ImageConfig, Objects, PlanOptions, PodIdentity, ProbeAction, ProbePlan,
    Workload,
};
use crate::proc::run_checked;
use crate::render::{self, FluxKustomization};
use crate::standin::{self, Authority, CertManager, Issued, Request};

/// Set in the re-executed runner: the node namespace it runs in.
const NODE_VAR: &str = "DT_LOCAL_STACK_NODE";
const DEFAULT_NS: &str = "default";
const OUR_IMAGES: &str = "ghcr.io/dark-tower/dark-tower/";
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const IP: &str = "/usr/sbin/ip";

/// What `up` was asked to do.
#[derive(Debug, Clone)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "each is a command-line switch of its own"
)]
pub struct Options {
    pub repo: PathBuf,
    pub env: String,
    pub age_key_file: Option<PathBuf>,
    pub workdir: PathBuf,
    pub binaries: PathBuf,
    /// Stop (successfully) once every pod is ready, instead of waiting for
    /// Ctrl-C.
    pub exit_when_ready: bool,
    /// Run the user flow (`crate::e2e`) once ready, then stop.
    pub e2e: bool,
    /// Enforce the NetworkPolicies between pods (`crate::netpol`).
    pub enforce_network_policies: bool,
    /// Print the measurements as one JSON object on stdout (progress goes
    /// to stderr).
    pub json: bool,
    /// How many times the e2e flow joins a fresh meeting.
    pub joins: usize,
}

/// Entry point: in the machine's namespace, make the node namespace and
/// re-execute there; in the node namespace, run the environment.
pub fn run(options: &Options) -> anyhow::Result<()> {
    match std::env::var(NODE_VAR) {
        Ok(node) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(inner(options, &node))
        }
        Err(_) => outer(),
    }
}

fn outer() -> anyhow::Result<()> {
    let uid = run_checked("/usr/bin/id", &["-u"], Duration::from_secs(5))?;
    if uid.trim() != "0" {
        bail!("`local-stack up` makes network and mount namespaces: run it as root");
    }
    let node = format!("dtn{}", std::process::id());
    net::add_netns(&node)?;
    let exe = std::env::current_exe()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = runtime.block_on(async {
        let mut child = tokio::process::Command::new(IP)
            .args(["netns", "exec", &node])
            .arg(&exe)
            .args(std::env::args_os().skip(1))
            .env(NODE_VAR, &node)
            .spawn()
            .context("starting the runner in the node namespace")?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                status = child.wait() => break Ok::<_, anyhow::Error>(status?),
                // The terminal's Ctrl-C reaches the runner too; wait for it.
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {
                    if let Some(pid) = child.id() {
                        let _ = run_checked("/bin/kill", &["-TERM", &pid.to_string()], Duration::from_secs(5));
                    }
                }
            }
        }
    });
    // Pods first (their veths live in the node namespace), then the node.
    let mut left = net::list_netns(&node);
    left.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for ns in &left {
        net::remove_netns(ns);
    }
    let status = status?;
    if !status.success() {
        bail!("the environment stopped with {status}");
    }
    Ok(())
}

/// A probe as the runner runs it.
#[derive(Debug, Clone)]
enum Check {
    Plan(ProbePlan),
    /// A command on the node (the PostgreSQL stand-in's `pg_isready`).
    Host(Vec<String>, Duration),
}

/// How a container is started.
#[derive(Debug, Clone)]
enum Launch {
    /// A planned container: argv in the pod's namespaces as its user.
    Container {
        argv: Vec<String>,
        env: Vec<(String, String)>,
        mounts: Vec<(PathBuf, String, bool)>,
        user: String,
        groups: Vec<i64>,
        read_only: bool,
        working_dir: String,
    },
    /// A command run in the pod's network namespace only (stand-ins).
    Host { argv: Vec<String> },
}

#[derive(Debug)]
struct Container {
    name: String,
    launch: Launch,
    readiness: Option<Check>,
    liveness: Option<Check>,
    log: PathBuf,
    child: Option<tokio::process::Child>,
    /// The container's process group (its main process leads it).
    pgid: Option<u32>,
    /// Bumped at every start: probe results of an older run are dropped.
    generation: u64,
    started: Option<Instant>,
    ready: bool,
    passes: u32,
    failures: u32,
    live_failures: u32,
    restarts: u32,
    next_start: Option<Instant>,
    last_problem: String,
    env: Vec<(String, String)>,
    /// Where each variable of `env` is set in the repository.
    sources: Vec<crate::origin::EnvSource>,
}

impl Container {
    /// A container not started yet; `checks` are (readiness, liveness).
    fn new(
        name: &str,
        launch: Launch,
        checks: (Option<Check>, Option<Check>),
        log: PathBuf,
        env: Vec<(String, String)>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            launch,
            readiness: checks.0,
            liveness: checks.1,
            log,
            child: None,
            pgid: None,
            generation: 0,
            started: None,
            ready: false,
            passes: 0,
            failures: 0,
            live_failures: 0,
            restarts: 0,
            next_start: None,
            last_problem: String::new(),
            env,
            sources: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct Pod {
    name: String,
    /// "StatefulSet dark-tower/ac-service", or what a stand-in runs.
    workload: String,
    namespace: String,
    kustomization: String,
    ip: Ipv4Addr,
    netns: String,
    labels: BTreeMap<String, String>,
    /// Container ports: name, number, protocol.
    ports: Vec<(Option<String>, u16, String)>,
    hostname: String,
    subdomain: Option<String>,
    dir: PathBuf,
    containers: Vec<Container>,
    not_run: Vec<String>,
    grace: Duration,
    ready: bool,
    created: Instant,
}

impl Pod {
    fn state(&self) -> String {
        if self.ready {
            return "Ready".into();
        }
        let waiting: Vec<String> = self
            .containers
            .iter()
            .filter(|c| !c.ready)
            .map(|c| {
                let what = if c.child.is_none() {
                    "not running"
                } else {
                    "not ready"
                };
                if c.last_problem.is_empty() {
                    format!("{} {what}", c.name)
                } else {
                    format!("{} {what}: {}", c.name, c.last_problem)
                }
            })
            .collect();
        format!("Running ({})", waiting.join("; "))
    }
}

/// Everything the run holds.
#[derive(Debug)]
struct Cluster {
    node: String,
    workdir: PathBuf,
    objects: Vec<Value>,
    pods: Vec<Pod>,
    alloc: Allocator,
    next_link: u32,
    service_ips: BTreeMap<String, Ipv4Addr>,
    program: String,
    /// Where each rendered object came from (for failure reports).
    origins: crate::origin::Origins,
    /// The NetworkPolicy program, when enforced (`None`: not enforced).
    policy_program: Option<String>,
    /// Flows the NetworkPolicies dropped: packets counted by earlier
    /// programs (their set went with them) and by the loaded one.
    drops: BTreeMap<DropKey, (u64, u64)>,
    /// Dropped flows already said.
    drops_said: std::collections::BTreeSet<DropKey>,
    /// Policy peers already reported as not expressible here.
    reported: std::collections::BTreeSet<String>,
    started: Instant,
    stopping: bool,
}

type Shared = Arc<Mutex<Cluster>>;

/// A dropped flow: source, destination, protocol, port.
type DropKey = (Ipv4Addr, Ipv4Addr, String, u16);

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Cluster> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Set with `--json`: progress goes to stderr, stdout holds only the
/// measurements.
static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A line of progress.
pub fn note(text: &str) {
    if JSON.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
}

fn say(started: Instant, text: &str) {
    note(&format!(
        "[{:>6.1}s] {text}",
        started.elapsed().as_secs_f64()
    ));
}

async fn inner(options: &Options, node: &str) -> anyhow::Result<()> {
    JSON.store(options.json, std::sync::atomic::Ordering::Relaxed);
    net::init_node()?;
    let workdir = options.workdir.join(&options.env);
    if workdir.exists() {
        std::fs::remove_dir_all(&workdir)
            .with_context(|| format!("clearing {}", workdir.display()))?;
    }
    std::fs::create_dir_all(workdir.join("logs"))?;
    let started = Instant::now();
    let decrypted = match &options.age_key_file {
        Some(file) => {
            let ids = dtlint_sops::AgeIdentities::from_file(file)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            Some(render::decrypt_copy(
                &options.repo,
                &workdir.join("src"),
                &ids,
            )?)
        }
        None => None,
    };
    let applied = render::apply_all(&options.repo, &options.env, decrypted.as_ref())?;
    if let Some(d) = &decrypted {
        let _ = std::fs::remove_dir_all(&d.root);
    }
    let shared: Shared = Arc::new(Mutex::new(Cluster {
        node: node.to_owned(),
        workdir: workdir.clone(),
        objects: Vec::new(),
        pods: Vec::new(),
        alloc: Allocator::default(),
        next_link: 0,
        service_ips: BTreeMap::new(),
        program: String::new(),
        origins: crate::origin::Origins::new(&options.repo),
        policy_program: options.enforce_network_policies.then(String::new),
        reported: std::collections::BTreeSet::new(),
        drops: BTreeMap::new(),
        drops_said: std::collections::BTreeSet::new(),
        started,
        stopping: false,
    }));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let supervisor = tokio::spawn(supervise(shared.clone(), rx, tx.clone()));
    let result = tokio::select! {
        r = apply(options, &shared, applied, &tx) => r,
        () = shutdown_signal() => Err(anyhow::anyhow!("stopped before every pod was ready")),
    };
    let mut measured = serde_json::json!({"env": options.env});
    if result.is_ok() {
        measured["ready_seconds"] = started.elapsed().as_secs_f64().into();
        let (bytes, processes, pods) = resident_memory(&shared);
        measured["rss_bytes"] = bytes.into();
        measured["processes"] = processes.into();
        measured["pods"] = pods.into();
        let tenths = bytes * 10 / (1 << 20);
        say(
            started,
            &format!(
                "resident memory of the running environment: {}.{} MiB in {processes} processes of {pods} pods",
                tenths / 10,
                tenths % 10
            ),
        );
    }
    let result = match result {
        Ok(()) if options.e2e => {
            say(started, "every pod is ready; running the user flow");
            crate::e2e::run(&shared_view(&shared), options.joins)
                .await
                .map(|m| {
                    let ms = |v: &[Duration]| {
                        v.iter()
                            .map(|d| d.as_secs_f64() * 1e3)
                            .collect::<Vec<f64>>()
                    };
                    measured["join_to_first_datagram_ms"] = ms(&m.join_to_first_datagram).into();
                    measured["datagram_ms"] = ms(&m.datagram_rounds).into();
                })
        }
        Ok(()) if options.exit_when_ready => {
            say(started, "every pod is ready");
            Ok(())
        }
        Ok(()) => {
            say(started, "every pod is ready; Ctrl-C stops the environment");
            shutdown_signal().await;
            Ok(())
        }
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        report_failure(&shared, e);
    }
    if options.json && result.is_ok() {
        println!("{measured}");
    }
    stop_all(&shared).await;
    supervisor.abort();
    result
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// Applies each Kustomization in order, waiting for its pods when it says so.
async fn apply(
    options: &Options,
    shared: &Shared,
    applied: Vec<render::Applied>,
    tx: &Probes,
) -> anyhow::Result<()> {
    let mut cert_manager = CertManager::default();
    let mut cnpg_ca: BTreeMap<String, Authority> = BTreeMap::new();
    for render::Applied {
        kustomization,
        objects,
        provenance,
    } in applied
    {
        let started = lock(shared).started;
        let kinds = render::count_kinds(&objects);
        say(
            started,
            &format!(
                "Kustomization {} (./{}): {} object(s)",
                kustomization.name,
                kustomization.path,
                objects.len()
            ),
        );
        for kind in ["HelmRelease", "HelmRepository"] {
            if let Some(n) = kinds.get(kind) {
                say(
                    started,
                    &format!("  {n} {kind}: the operators they install are replaced by stand-ins"),
                );
            }
        }
        let all = {
            let mut c = lock(shared);
            for (v, p) in objects.iter().zip(provenance) {
                c.origins.insert(v, p, DEFAULT_NS);
            }
            c.objects.extend(objects.iter().cloned());
            c.objects.clone()
        };
        // cert-manager.
        let secrets = cert_manager.reconcile(&all, DEFAULT_NS)?;
        for s in &secrets {
            say(
                started,
                &format!(
                    "  cert-manager stand-in: {}",
                    Object::new(s).map(|o| o.id(DEFAULT_NS)).unwrap_or_default()
                ),
            );
        }
        lock(shared).objects.extend(secrets);
        // CloudNativePG clusters of this Kustomization.
        for v in &objects {
            let Some(o) = Object::new(v) else { continue };
            if o.kind() == "Cluster" && o.api_version().starts_with("postgresql.cnpg.io/") {
                start_postgres(shared, v, &kustomization, &mut cnpg_ca, tx)?;
            }
        }
        // Workloads.
        for v in &objects {
            let Some(o) = Object::new(v) else { continue };
            if matches!(o.kind(), "Deployment" | "StatefulSet") {
                start_workload(options, shared, v, &kustomization.name, tx)?;
            }
        }
        refresh_endpoints(shared)?;
        if kustomization.wait {
            wait_ready(shared, &kustomization).await?;
        }
        let declares_databases = objects.iter().any(|v| {
            Object::new(v).is_some_and(|o| {
                o.api_version().starts_with("postgresql.cnpg.io/")
                    && matches!(o.kind(), "Cluster" | "Database")
            })
        });
        if declares_databases {
            // Roles and databases need the instance up.
            wait_ready(shared, &kustomization).await?;
            reconcile_databases(shared)?;
        }
        // CloudNativePG poolers, once their cluster's roles exist.
        let mut poolers = false;
        for v in &objects {
            let Some(o) = Object::new(v) else { continue };
            if o.kind() == "Pooler" && o.api_version().starts_with("postgresql.cnpg.io/") {
                start_pooler(shared, v, &kustomization, tx)?;
                poolers = true;
            }
        }
        if poolers {
            refresh_endpoints(shared)?;
            wait_ready(shared, &kustomization).await?;
        }
    }
    // Anything not waited for above.
    let all = FluxKustomization {
        name: String::new(),
        path: String::new(),
        depends_on: Vec::new(),
        decryption: false,
        wait: true,
        timeout: Duration::from_mins(5),
        target_namespace: None,
    };
    wait_ready(shared, &all).await
}

/// Waits until every pod of `k` (every pod when its name is empty) is ready.
async fn wait_ready(shared: &Shared, k: &FluxKustomization) -> anyhow::Result<()> {
    let deadline = Instant::now() + k.timeout;
    loop {
        {
            let c = lock(shared);
            let pending: Vec<&Pod> = c
                .pods
                .iter()
                .filter(|p| (k.name.is_empty() || p.kustomization == k.name) && !p.ready)
                .collect();
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let lines: Vec<String> = pending
                    .iter()
                    .map(|p| format!("{}: {}", p.name, p.state()))
                    .collect();
                bail!(
                    "Kustomization {}: not ready within {}s: {}",
                    k.name,
                    k.timeout.as_secs(),
                    lines.join("; ")
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What runs for `image`: `Ok(None)` when nothing local stands in for it
/// (the container is named and not run); an error when it is one of our
/// images whose binary is missing.
fn image_config(image: &str, binaries: &Path) -> anyhow::Result<Option<ImageConfig>> {
    let env = vec![("PATH".to_owned(), PATH.to_owned())];
    if let Some(rest) = image.strip_prefix(OUR_IMAGES) {
        let name = rest.split([':', '@']).next().unwrap_or(rest);
        let binary = binaries.join(name);
        if !binary.is_file() {
            bail!(
                "image {image}: its binary {} does not exist (build it, or drop --no-build)",
                binary.display()
            );
        }
        return Ok(Some(ImageConfig {
            entrypoint: vec![binary.to_string_lossy().into_owned()],
            user: "65532:65532".into(),
            env,
            ..ImageConfig::default()
        }));
    }
    // The official Redis image: the machine's redis-server stands in.
    let repo = image.split([':', '@']).next().unwrap_or(image);
    if matches!(repo, "redis" | "docker.io/library/redis" | "library/redis")
        && Path::new("/usr/bin/redis-server").is_file()
    {
        return Ok(Some(ImageConfig {
            entrypoint: vec!["redis-server".into()],
            user: "999:999".into(),
            env,
            ..ImageConfig::default()
        }));
    }
    Ok(None)
}

fn objects_of(c: &Cluster, namespace: &str) -> anyhow::Result<Objects> {
    Objects::from_manifests(&c.objects, namespace, DEFAULT_NS).map_err(|e| anyhow::anyhow!("{e}"))
}

fn new_pod_network(c: &mut Cluster) -> anyhow::Result<(Ipv4Addr, String)> {
    let ip = c.alloc.pod_ip()?;
    c.next_link += 1;
    let netns = format!("{}p{}", c.node, c.next_link);
    let link = format!("dtv{}", c.next_link);
    net::add_pod_network(&netns, &link, ip)?;
    Ok((ip, netns))
}

fn start_workload(
    options: &Options,
    shared: &Shared,
    value: &Value,
    kustomization: &str,
    tx: &Probes,
) -> anyhow::Result<()> {
    let mut value = value.clone();
    crate::plan::claim_templates_as_directories(&mut value);
    let workload = Workload::from_value(&value, DEFAULT_NS).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut c = lock(shared);
    let replicas = crate::plan::initial_replicas(&value, &c.objects);
    let objects = objects_of(&c, &workload.namespace)?;
    for replica in 0..replicas {
        let (ip, netns) = new_pod_network(&mut c)?;
        let id = PodIdentity::generate(
            &workload,
            u32::try_from(replica).unwrap_or(u32::MAX),
            &ip.to_string(),
            &net::NODE_IP.to_string(),
            &c.node,
        );
        let dir = c.workdir.join("pods").join(&id.name);
        let mut plan_options = PlanOptions::new(dir.join("volumes"));
        let mut not_run = Vec::new();
        for cont in workload
            .template
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
        {
            let image = cont.image.clone().unwrap_or_default();
            match image_config(&image, &options.binaries)
                .with_context(|| format!("{}: container {}", workload.id(), cont.name))?
            {
                Some(cfg) => {
                    plan_options.images.insert(image, cfg);
                }
                None => not_run.push(cont.name.clone()),
            }
        }
        let plan = pod::plan_pod(&workload, &objects, &id, &plan_options)
            .map_err(|e| {
                // The line a human edits, where the field is in a file.
                match c.origins.field_line(&value, &e.field, DEFAULT_NS) {
                    Some(line) => anyhow::anyhow!("{e} (at {line})"),
                    None => anyhow::anyhow!("{e}"),
                }
            })
            .with_context(|| format!("Flux Kustomization {kustomization}"))?;
        std::fs::create_dir_all(&dir)?;
        let mut containers = Vec::new();
        let mut ports = Vec::new();
        for cp in &plan.containers {
            for p in &cp.ports {
                ports.push((p.name.clone(), p.container_port, p.protocol.clone()));
            }
            if not_run.contains(&cp.name) {
                continue;
            }
            let image = plan_options
                .images
                .get(&cp.image)
                .cloned()
                .unwrap_or_default();
            let mut container = container_from_plan(cp, &image, &dir, &id.name)?;
            let names: Vec<String> = container.env.iter().map(|(k, _)| k.clone()).collect();
            container.sources = c
                .origins
                .env_sources(&value, &cp.name, &names, &c.objects, DEFAULT_NS);
            containers.push(container);
        }
        let pod = Pod {
            name: id.name.clone(),
            workload: workload.id(),
            namespace: workload.namespace.clone(),
            kustomization: kustomization.to_owned(),
            ip,
            netns,
            labels: id.labels.clone(),
            ports,
            hostname: plan.hostname.clone(),
            subdomain: plan.subdomain.clone(),
            dir,
            containers,
            not_run,
            grace: plan.termination_grace_period,
            ready: false,
            created: Instant::now(),
        };
        say(
            c.started,
            &format!(
                "  pod {} ({}) at {ip}{}",
                pod.name,
                workload.id(),
                if pod.not_run.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", not run (no local binary for the image): {}",
                        pod.not_run.join(", ")
                    )
                }
            ),
        );
        write_pod_files(&c, &pod)?;
        c.pods.push(pod);
        refresh_policies(&mut c)?;
        let Some(pod) = c.pods.last_mut() else {
            continue;
        };
        for i in 0..pod.containers.len() {
            start_container(pod, i, tx)?;
        }
    }
    Ok(())
}

fn check(probe: Option<&ProbePlan>) -> Option<Check> {
    probe.cloned().map(Check::Plan)
}

fn container_from_plan(
    cp: &ContainerPlan,
    image: &ImageConfig,
    dir: &Path,
    pod: &str,
) -> anyhow::Result<Container> {
    let argv = cp.argv(image);
    if argv.is_empty() {
        bail!(
            "pod {pod}: container {} has no command and its image no entrypoint",
            cp.name
        );
    }
    let user = match (cp.run_as_user, cp.run_as_group) {
        (Some(u), Some(g)) => format!("{u}:{g}"),
        (Some(u), None) => format!("{u}:{u}"),
        _ => image.user.clone(),
    };
    let mut groups: Vec<i64> = cp.supplemental_groups.clone();
    if let Some(g) = cp.fs_group {
        groups.push(g);
    }
    let env = cp.process_env();
    let launch = Launch::Container {
        argv,
        env: env.clone(),
        mounts: cp
            .mounts
            .iter()
            .map(|m| (m.host_path.clone(), m.mount_path.clone(), m.read_only))
            .collect(),
        user,
        groups,
        read_only: cp.read_only_root_filesystem,
        working_dir: cp.working_dir.clone().unwrap_or_else(|| "/".into()),
    };
    Ok(Container::new(
        &cp.name,
        launch,
        (check(cp.readiness.as_ref()), check(cp.liveness.as_ref())),
        dir.join(format!("{}.log", cp.name)),
        env,
    ))
}

/// `'...'` quoting for sh.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The mount-namespace script that turns the machine's root into the
/// container's view and starts the process.
fn launch_script(launch: &Launch, pod_dir: &Path, container: &str) -> String {
    let Launch::Container {
        argv,
        mounts,
        user,
        groups,
        read_only,
        working_dir,
        ..
    } = launch
    else {
        return String::new();
    };
    let root = format!("/run/dt-{container}");
    let r = quote(&root);
    let mut s = String::from("set -e\n");
    let _ = writeln!(
        s,
        "/usr/bin/mkdir -p {r}\n/usr/bin/mount -t tmpfs tmpfs {r}"
    );
    let _ = writeln!(s, "/usr/bin/mkdir -p {r}/u {r}/w {r}/root");
    let _ = writeln!(
        s,
        "/usr/bin/mount -t overlay overlay -o lowerdir=/,upperdir={root}/u,workdir={root}/w {r}/root"
    );
    let rr = format!("{root}/root");
    let _ = writeln!(
        s,
        "/usr/bin/mount --rbind /dev {0}/dev\n/usr/bin/mount -t proc proc {0}/proc\n/usr/bin/mount --rbind /sys {0}/sys",
        quote(&rr)
    );
    let mut binds = vec![
        (pod_dir.join("hosts"), "/etc/hosts".to_owned(), true),
        (
            pod_dir.join("resolv.conf"),
            "/etc/resolv.conf".to_owned(),
            true,
        ),
    ];
    binds.extend(mounts.iter().cloned());
    for (src, dst, _) in &binds {
        let target = quote(&format!("{rr}{dst}"));
        if src.is_dir() {
            let _ = writeln!(
                s,
                "/usr/bin/rm -f {target} 2>/dev/null || true\n/usr/bin/mkdir -p {target}"
            );
        } else {
            let _ = writeln!(
                s,
                "/usr/bin/mkdir -p \"$(/usr/bin/dirname {target})\"\n/usr/bin/rm -rf {target}\n/usr/bin/touch {target}"
            );
        }
    }
    if *read_only {
        let _ = writeln!(s, "/usr/bin/mount -o remount,ro {}", quote(&rr));
    }
    for (src, dst, ro) in &binds {
        let target = quote(&format!("{rr}{dst}"));
        let _ = writeln!(
            s,
            "/usr/bin/mount --bind {} {target}",
            quote(&src.to_string_lossy())
        );
        if *ro {
            let _ = writeln!(s, "/usr/bin/mount -o remount,bind,ro {target}");
        }
    }
    let groups = if groups.is_empty() {
        String::new()
    } else {
        format!(
            " --groups={}",
            groups
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    let _ = write!(
        s,
        "exec /usr/sbin/chroot --userspec={user}{groups} {} /usr/bin/env -C {} --",
        quote(&rr),
        quote(working_dir)
    );
    for a in argv {
        s.push(' ');
        s.push_str(&quote(a));
    }
    s.push('\n');
    s
}

fn start_container(pod: &mut Pod, i: usize, tx: &Probes) -> anyhow::Result<()> {
    let netns = pod.netns.clone();
    let pod_dir = pod.dir.clone();
    let pod_name = pod.name.clone();
    let ip = pod.ip;
    let c = &mut pod.containers[i];
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&c.log)?;
    let mut cmd = tokio::process::Command::new(IP);
    cmd.args(["netns", "exec", &netns]);
    match &c.launch {
        launch @ Launch::Container { env, .. } => {
            let script = launch_script(launch, &pod_dir, &format!("{pod_name}-{}", c.name));
            cmd.args([
                "/usr/bin/unshare",
                "--mount",
                "--propagation",
                "private",
                "/bin/sh",
                "-c",
                &script,
            ])
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        Launch::Host { argv } => {
            cmd.args(argv);
        }
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .with_context(|| format!("pod {pod_name}: starting container {}", c.name))?;
    c.pgid = child.id();
    c.child = Some(child);
    c.generation += 1;
    c.started = Some(Instant::now());
    c.ready = c.readiness.is_none();
    c.passes = 0;
    c.failures = 0;
    c.live_failures = 0;
    c.next_start = None;
    let pid = c.child.as_ref().and_then(tokio::process::Child::id);
    for (kind, probe) in [
        (ProbeKind::Readiness, c.readiness.clone()),
        (ProbeKind::Liveness, c.liveness.clone()),
    ] {
        if let Some(probe) = probe {
            tokio::spawn(probe_loop(
                tx.clone(),
                ProbeTarget {
                    pod: pod_name.clone(),
                    container: c.name.clone(),
                    generation: c.generation,
                    ip,
                    pid,
                    env: c.env.clone(),
                },
                kind,
                probe,
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    Readiness,
    Liveness,
}

#[derive(Debug, Clone)]
struct ProbeTarget {
    pod: String,
    container: String,
    generation: u64,
    ip: Ipv4Addr,
    pid: Option<u32>,
    env: Vec<(String, String)>,
}

#[derive(Debug)]
struct ProbeResult {
    target: ProbeTarget,
    kind: ProbeKind,
    outcome: Result<(), String>,
}

type Probes = tokio::sync::mpsc::UnboundedSender<ProbeResult>;

async fn probe_loop(tx: Probes, target: ProbeTarget, kind: ProbeKind, check: Check) {
    let (delay, period) = match &check {
        Check::Plan(p) => (p.initial_delay, p.period),
        Check::Host(_, period) => (Duration::ZERO, *period),
    };
    tokio::time::sleep(delay).await;
    loop {
        let outcome = run_probe(&target, &check).await;
        if tx
            .send(ProbeResult {
                target: target.clone(),
                kind,
                outcome,
            })
            .is_err()
        {
            return;
        }
        tokio::time::sleep(period).await;
    }
}

async fn run_probe(target: &ProbeTarget, check: &Check) -> Result<(), String> {
    match check {
        Check::Host(command, _) => {
            let (program, rest) = command.split_first().ok_or("empty command")?;
            let program = program.clone();
            let rest = rest.to_vec();
            tokio::task::spawn_blocking(move || {
                let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
                run_checked(&program, &rest, Duration::from_secs(5)).map(|_| ())
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
        }
        Check::Plan(p) => match &p.action {
            ProbeAction::Http {
                port, path, scheme, ..
            } => {
                let url = format!(
                    "{}://{}:{port}{path}",
                    scheme.to_ascii_lowercase(),
                    target.ip
                );
                let client = reqwest::Client::builder()
                    .timeout(p.timeout)
                    .build()
                    .map_err(|e| e.to_string())?;
                let response = client
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| format!("GET {url}: {e}"))?;
                let status = response.status();
                if status.as_u16() >= 200 && status.as_u16() < 400 {
                    Ok(())
                } else {
                    let body = response.text().await.unwrap_or_default();
                    Err(format!(
                        "GET {url}: {status} {}",
                        body.chars().take(200).collect::<String>()
                    ))
                }
            }
            ProbeAction::Tcp { port, .. } => {
                let addr = (target.ip, *port);
                tokio::time::timeout(p.timeout, tokio::net::TcpStream::connect(addr))
                    .await
                    .map_err(|_| format!("TCP {}:{port}: timed out", target.ip))?
                    .map(|_| ())
                    .map_err(|e| format!("TCP {}:{port}: {e}", target.ip))
            }
            ProbeAction::Exec { command } => {
                let pid = target.pid.ok_or("container not running")?.to_string();
                let mut args: Vec<String> = ["-t", &pid, "-m", "-n", "-r", "-w", "--"]
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect();
                args.extend(command.iter().cloned());
                let env = target.env.clone();
                let timeout = p.timeout;
                tokio::task::spawn_blocking(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    let env: Vec<(&str, &str)> =
                        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    crate::proc::run_with_input("/usr/bin/nsenter", &args, None, &env, timeout)
                        .map(|_| ())
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
            }
            ProbeAction::Grpc { port, .. } => Err(format!(
                "gRPC probe on {port}: not supported by local-stack"
            )),
        },
    }
}

/// The pods' probe results, process exits and restarts, and the endpoints.
async fn supervise(
    shared: Shared,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<ProbeResult>,
    tx: Probes,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            Some(result) = rx.recv() => {
                let changed = apply_probe(&mut lock(&shared), &result);
                if changed {
                    refresh_or_say(&shared);
                }
            }
            _ = tick.tick() => {
                ticks += 1;
                let changed = {
                    let mut c = lock(&shared);
                    if c.stopping { return; }
                    if ticks.is_multiple_of(8) {
                        say_new_drops(&mut c);
                    }
                    reap_and_restart(&mut c, &tx)
                };
                if changed {
                    refresh_or_say(&shared);
                }
            }
        }
    }
}

fn refresh_or_say(shared: &Shared) {
    if let Err(e) = refresh_endpoints(shared) {
        let started = lock(shared).started;
        say(started, &format!("endpoints: {e:#}"));
    }
}

/// `(successThreshold, failureThreshold)` of a check.
fn thresholds(check: Option<&Check>) -> (u32, u32) {
    match check {
        Some(Check::Plan(p)) => (p.success_threshold, p.failure_threshold),
        _ => (1, 1),
    }
}

/// Records a probe result; true when the pod's readiness changed.
fn apply_probe(c: &mut Cluster, r: &ProbeResult) -> bool {
    let started = c.started;
    let Some(pod) = c.pods.iter_mut().find(|p| p.name == r.target.pod) else {
        return false;
    };
    let Some(i) = pod
        .containers
        .iter()
        .position(|x| x.name == r.target.container)
    else {
        return false;
    };
    let cont = &mut pod.containers[i];
    if cont.generation != r.target.generation || cont.child.is_none() {
        return false;
    }
    let (success_threshold, failure_threshold) = thresholds(match r.kind {
        ProbeKind::Readiness => cont.readiness.as_ref(),
        ProbeKind::Liveness => cont.liveness.as_ref(),
    });
    match (r.kind, &r.outcome) {
        (ProbeKind::Readiness, Ok(())) => {
            cont.failures = 0;
            cont.passes += 1;
            if cont.passes >= success_threshold {
                cont.ready = true;
                cont.last_problem.clear();
            }
        }
        (ProbeKind::Readiness, Err(e)) => {
            cont.passes = 0;
            cont.failures += 1;
            cont.last_problem.clone_from(e);
            if cont.failures >= failure_threshold {
                cont.ready = false;
            }
        }
        (ProbeKind::Liveness, Ok(())) => cont.live_failures = 0,
        (ProbeKind::Liveness, Err(e)) => {
            cont.live_failures += 1;
            if cont.live_failures >= failure_threshold {
                say(
                    started,
                    &format!(
                        "pod {}: container {} failed its liveness probe ({e}); restarting",
                        pod.name, cont.name
                    ),
                );
                if let Some(child) = cont.child.as_mut() {
                    let _ = child.start_kill();
                }
                cont.live_failures = 0;
            }
        }
    }
    update_pod_ready(pod, started)
}

/// True when the pod's readiness changed.
fn update_pod_ready(pod: &mut Pod, started: Instant) -> bool {
    let ready =
        !pod.containers.is_empty() && pod.containers.iter().all(|c| c.ready && c.child.is_some());
    if ready == pod.ready {
        return false;
    }
    pod.ready = ready;
    say(
        started,
        &format!(
            "pod {} {} after {:.1}s",
            pod.name,
            if ready { "Ready" } else { "not ready" },
            pod.created.elapsed().as_secs_f64()
        ),
    );
    true
}

/// Notices exited containers and restarts them with back-off (10 s,
/// doubling to 5 min, as the kubelet's CrashLoopBackOff).
fn reap_and_restart(c: &mut Cluster, tx: &Probes) -> bool {
    let started = c.started;
    let mut changed = false;
    for pod in &mut c.pods {
        for i in 0..pod.containers.len() {
            let cont = &mut pod.containers[i];
            if let Some(child) = cont.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                // The container is gone as a whole: what its main process
                // started goes with it, as when a PID namespace ends.
                if let Some(pgid) = cont.pgid.take() {
                    kill_group(pgid);
                }
                cont.child = None;
                cont.ready = false;
                cont.restarts += 1;
                let backoff = Duration::from_secs(10)
                    .saturating_mul(1 << cont.restarts.min(5).saturating_sub(1))
                    .min(Duration::from_mins(5));
                cont.next_start = Some(Instant::now() + backoff);
                let tail = crate::proc::log_tail(&cont.log, 5);
                cont.last_problem = format!("exited with {status}: {}", tail.replace('\n', " | "));
                say(
                    started,
                    &format!(
                        "pod {}: container {} exited ({status}); restart {} in {}s; log: {}",
                        pod.name,
                        cont.name,
                        cont.restarts,
                        backoff.as_secs(),
                        cont.log.display()
                    ),
                );
                changed = true;
            }
            if cont.child.is_none()
                && cont.next_start.is_some_and(|t| Instant::now() >= t)
                && let Err(e) = start_container(pod, i, tx)
            {
                pod.containers[i].last_problem = format!("{e:#}");
            }
        }
        changed |= update_pod_ready(pod, started);
    }
    changed
}

/// Names a pod resolves, given the Services and ready endpoints.
fn hosts_file(c: &Cluster, pod: &Pod) -> String {
    let mut s = String::from(
        "# Written by local-stack: the cluster's names for this pod.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    match &pod.subdomain {
        Some(sub) => {
            let _ = writeln!(
                s,
                "{}\t{}.{sub}.{ns}.svc.cluster.local\t{}",
                pod.ip,
                pod.hostname,
                pod.hostname,
                ns = pod.namespace
            );
        }
        None => {
            let _ = writeln!(s, "{}\t{}", pod.ip, pod.hostname);
        }
    }
    for v in &c.objects {
        let Some(o) = Object::new(v) else { continue };
        if o.kind() != "Service" || o.api_version() != "v1" {
            continue;
        }
        let ns = o.namespace(DEFAULT_NS);
        let key = format!("{ns}/{}", o.name());
        let names = net::service_names(o.name(), ns, &pod.namespace).join(" ");
        if let Some(ip) = c.service_ips.get(&key) {
            let _ = writeln!(s, "{ip}\t{names}");
            continue;
        }
        let not_ready_too = v
            .pointer("/spec/publishNotReadyAddresses")
            .and_then(Value::as_bool)
            == Some(true);
        for member in members(c, v) {
            if member.ready || not_ready_too {
                let _ = writeln!(s, "{}\t{names}", member.ip);
                // A pod's own name is already on its first line, as the kubelet
                // writes it; listed twice, `getent hosts` would answer twice.
                if member.subdomain.as_deref() == Some(o.name()) && member.name != pod.name {
                    let fqdn = format!("{}.{}.{ns}.svc.cluster.local", member.hostname, o.name());
                    let _ = writeln!(
                        s,
                        "{}\t{fqdn} {}.{}.{ns}.svc {}.{}.{ns}",
                        member.ip,
                        member.hostname,
                        o.name(),
                        member.hostname,
                        o.name()
                    );
                }
            }
        }
    }
    s
}

fn members<'c>(c: &'c Cluster, service: &Value) -> Vec<&'c Pod> {
    c.pods
        .iter()
        .filter(|p| net::selects(service, &p.namespace, &p.labels))
        .collect()
}

fn write_pod_files(c: &Cluster, pod: &Pod) -> anyhow::Result<()> {
    net::write_in_place(&pod.dir.join("hosts"), &hosts_file(c, pod))?;
    net::write_in_place(
        &pod.dir.join("resolv.conf"),
        &net::resolv_conf(&pod.namespace),
    )?;
    Ok(())
}

/// Loads the NetworkPolicy program for the pods of the run, when enforced
/// and when it changed (a pod was added). Called before a new pod's
/// containers start, so their first packets are judged by rules that know
/// the pod.
fn refresh_policies(c: &mut Cluster) -> anyhow::Result<()> {
    if let Some(current) = &c.policy_program {
        let peers: Vec<crate::netpol::Peer> = c
            .pods
            .iter()
            .map(|p| crate::netpol::Peer {
                namespace: p.namespace.clone(),
                ip: p.ip,
                labels: p.labels.clone(),
                ports: p.ports.clone(),
            })
            .collect();
        let policies = crate::netpol::Policies::new(&c.objects);
        let program = crate::netpol::program(&policies, &peers);
        if program != *current {
            for line in policies.unexpressible(&peers) {
                if !c.reported.contains(&line) {
                    say(
                        c.started,
                        &format!("NetworkPolicy not expressible here: {line}"),
                    );
                    c.reported.insert(line);
                }
            }
            // The set of dropped flows goes with the old program.
            read_drops(c);
            for (base, now) in c.drops.values_mut() {
                *base += std::mem::take(now);
            }
            net::apply_nft(&program, &c.workdir.join("network-policy.nft"))?;
            c.policy_program = Some(program);
        }
    }
    Ok(())
}

/// Cluster IPs for new Services, the kube-proxy program, every pod's hosts.
fn refresh_endpoints(shared: &Shared) -> anyhow::Result<()> {
    let mut c = lock(shared);
    let services: Vec<Value> = c
        .objects
        .iter()
        .filter(|v| {
            Object::new(v).is_some_and(|o| o.kind() == "Service" && o.api_version() == "v1")
        })
        .cloned()
        .collect();
    let mut rules = Vec::new();
    for v in &services {
        let Some(o) = Object::new(v) else { continue };
        let key = format!("{}/{}", o.namespace(DEFAULT_NS), o.name());
        if v.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None") {
            continue;
        }
        let ip = if let Some(ip) = c.service_ips.get(&key) {
            *ip
        } else {
            let ip = c.alloc.service_ip()?;
            c.service_ips.insert(key, ip);
            ip
        };
        let ready: Vec<_> = members(&c, v)
            .into_iter()
            .filter(|p| p.ready)
            .map(|p| {
                (
                    p.ip,
                    p.ports
                        .iter()
                        .map(|(n, port, _)| (n.clone(), *port))
                        .collect(),
                )
            })
            .collect();
        rules.extend(net::service_rules(v, ip, &ready));
    }
    let program = net::kube_proxy_program(&rules);
    if program != c.program {
        net::apply_kube_proxy(&program, &c.workdir)?;
        c.program = program;
    }
    refresh_policies(&mut c)?;
    for pod in &c.pods {
        let hosts = hosts_file(&c, pod);
        let path = pod.dir.join("hosts");
        if std::fs::read_to_string(&path).ok().as_deref() != Some(hosts.as_str()) {
            net::write_in_place(&path, &hosts)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- PostgreSQL

const PG_USER: &str = "postgres";

/// Makes `dir` the PostgreSQL user's alone (its files hold keys).
fn give_to_pg_user(dir: &Path) -> anyhow::Result<()> {
    let dir = dir.to_string_lossy();
    run_checked(
        "/usr/bin/chown",
        &["-R", PG_USER, &dir],
        Duration::from_secs(10),
    )?;
    run_checked(
        "/usr/bin/chmod",
        &["-R", "go-rwx", &dir],
        Duration::from_secs(10),
    )?;
    Ok(())
}

/// The readiness check of a server listening on the Unix socket directory
/// `sock` (port 5432), run as the PostgreSQL user.
fn pg_isready(sock: &Path) -> anyhow::Result<Vec<String>> {
    Ok(as_pg_user([
        pg_bin("pg_isready")?.to_string_lossy().into_owned(),
        "-q".into(),
        "-h".into(),
        sock.to_string_lossy().into_owned(),
        "-p".into(),
        "5432".into(),
    ]))
}

/// `argv` run as the PostgreSQL user.
fn as_pg_user(argv: impl IntoIterator<Item = String>) -> Vec<String> {
    ["/usr/sbin/runuser", "-u", PG_USER, "--"]
        .into_iter()
        .map(str::to_owned)
        .chain(argv)
        .collect()
}

fn pg_bin(name: &str) -> anyhow::Result<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (/usr/lib/postgresql): apt-get install postgresql")?
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.is_file())
        .collect();
    versions.sort();
    versions
        .pop()
        .with_context(|| format!("no PostgreSQL {name} under /usr/lib/postgresql"))
}

/// The CloudNativePG stand-in: one TLS-only primary instance per Cluster,
/// its CA, server certificate and Services, the default `app` database.
fn start_postgres(
    shared: &Shared,
    cluster: &Value,
    kustomization: &FluxKustomization,
    cas: &mut BTreeMap<String, Authority>,
    tx: &Probes,
) -> anyhow::Result<()> {
    let o = Object::new(cluster).context("a Cluster without metadata")?;
    let name = o.name().to_owned();
    let ns = o.namespace(DEFAULT_NS).to_owned();
    let started = lock(shared).started;
    let ca = Authority::new(&format!("{name} CloudNativePG stand-in CA"))?;
    // The server certificate and the CA clients verify it with: the
    // Secrets the Cluster names (cert-manager's, issued earlier in this
    // run), or the operator's own.
    let given = |key: &str| standin::cnpg_certificate_secret(cluster, key);
    let (server, server_ca) = if let Some(tls) = given("serverTLSSecret") {
        let ca_secret = given("serverCASecret").with_context(|| {
            format!("Cluster {ns}/{name}: spec.certificates.serverTLSSecret needs serverCASecret, as the operator's webhook requires")
        })?;
        let secrets = objects_of(&lock(shared), &ns)?;
        let key = |secret: &str, key: &str| -> anyhow::Result<String> {
            let data = secrets.secret(secret).with_context(|| {
                format!("Cluster {ns}/{name}: Secret {ns}/{secret} does not exist (no Certificate or Secret in this environment makes it)")
            })?;
            let v = data.get(key).with_context(|| {
                format!("Cluster {ns}/{name}: Secret {ns}/{secret} has no key {key}")
            })?;
            Ok(String::from_utf8_lossy(v).into_owned())
        };
        (
            Issued {
                certificate: key(tls, "tls.crt")?,
                key: key(tls, "tls.key")?,
                ca: key(ca_secret, "ca.crt")?,
            },
            key(ca_secret, "ca.crt")?,
        )
    } else {
        let server = standin::issue(
            &Request {
                common_name: Some(format!("{name}-rw")),
                dns_names: standin::cnpg_server_names(cluster, &name, &ns),
                lifetime: time::Duration::days(90),
                ..Request::default()
            },
            Some(&ca),
        )?;
        (server, ca.cert_pem.clone())
    };
    let replication = standin::issue(
        &Request {
            common_name: Some("streaming_replica".into()),
            lifetime: time::Duration::days(90),
            client_auth: true,
            ..Request::default()
        },
        Some(&ca),
    )?;
    let dir = lock(shared).workdir.join("postgres").join(&name);
    let data = dir.join("data");
    let sock = dir.join("run");
    std::fs::create_dir_all(&data)?;
    std::fs::create_dir_all(&sock)?;
    std::fs::write(dir.join("server.crt"), &server.certificate)?;
    std::fs::write(dir.join("server.key"), &server.key)?;
    std::fs::write(dir.join("ca.crt"), &server_ca)?;
    std::fs::write(dir.join("client-ca.crt"), &ca.cert_pem)?;
    let dir_s = dir.to_string_lossy().into_owned();
    give_to_pg_user(&dir)?;
    // The workdir's parents must be traversable by the postgres user.
    for parent in dir.ancestors().skip(1) {
        if parent == Path::new("/") {
            break;
        }
        let _ = run_checked(
            "/usr/bin/chmod",
            &["o+x", &parent.to_string_lossy()],
            Duration::from_secs(5),
        );
    }
    let initdb = pg_bin("initdb")?;
    run_checked(
        "/usr/sbin/runuser",
        &[
            "-u",
            PG_USER,
            "--",
            &initdb.to_string_lossy(),
            "-D",
            &data.to_string_lossy(),
            "-U",
            "postgres",
            "--auth-local=peer",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
        ],
        Duration::from_mins(2),
    )?;
    let hba = "# local-stack CloudNativePG stand-in: TLS only from the network.\nlocal all all peer\nhostssl all all 0.0.0.0/0 scram-sha-256\nhost all all 0.0.0.0/0 reject\n";
    std::fs::write(data.join("pg_hba.conf"), hba)?;
    let mut argv = as_pg_user([
        pg_bin("postgres")?.to_string_lossy().into_owned(),
        "-D".into(),
        data.to_string_lossy().into_owned(),
    ]);
    let mut params: BTreeMap<String, String> = BTreeMap::from([
        ("listen_addresses".into(), "*".into()),
        ("port".into(), "5432".into()),
        ("ssl".into(), "on".into()),
        ("ssl_cert_file".into(), format!("{dir_s}/server.crt")),
        ("ssl_key_file".into(), format!("{dir_s}/server.key")),
        ("ssl_ca_file".into(), format!("{dir_s}/client-ca.crt")),
        (
            "unix_socket_directories".into(),
            sock.to_string_lossy().into_owned(),
        ),
        ("password_encryption".into(), "scram-sha-256".into()),
    ]);
    if let Some(p) = cluster
        .pointer("/spec/postgresql/parameters")
        .and_then(Value::as_object)
    {
        for (k, v) in p {
            if let Some(v) = v.as_str() {
                params.insert(k.clone(), v.to_owned());
            }
        }
    }
    for (k, v) in &params {
        argv.push("-c".into());
        argv.push(format!("{k}={v}"));
    }
    let mut labels: BTreeMap<String, String> = cluster
        .pointer("/spec/inheritedMetadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let pod_name = format!("{name}-1");
    labels.insert("cnpg.io/cluster".into(), name.clone());
    labels.insert("cnpg.io/instanceName".into(), pod_name.clone());
    labels.insert("cnpg.io/instanceRole".into(), "primary".into());
    labels.insert("role".into(), "primary".into());
    labels.insert("cnpg.io/podRole".into(), "instance".into());
    let ready_cmd = pg_isready(&sock)?;
    let mut c = lock(shared);
    let (ip, netns) = new_pod_network(&mut c)?;
    let pod_dir = c.workdir.join("pods").join(&pod_name);
    std::fs::create_dir_all(&pod_dir)?;
    let instances = cluster
        .pointer("/spec/instances")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    say(
        started,
        &format!(
            "  CloudNativePG stand-in: Cluster {ns}/{name}: primary {pod_name} at {ip} (TLS only){}",
            if instances > 1 {
                format!("; {} replica(s) not run", instances - 1)
            } else {
                String::new()
            }
        ),
    );
    start_standin_pod(
        &mut c,
        StandinPod {
            name: pod_name,
            workload: format!("CloudNativePG stand-in for Cluster {ns}/{name}"),
            namespace: ns.clone(),
            kustomization: kustomization.name.clone(),
            ip,
            netns,
            labels,
            port: ("postgresql", 5432),
            container: "postgres",
            argv,
            ready: ready_cmd,
            dir: pod_dir,
        },
        tx,
    )?;
    // What the operator writes: the CA, server and replication certificates,
    // the Services.
    let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
    c.objects.push(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("{name}-ca"), "namespace": ns},
        "data": {"ca.crt": b64(&ca.cert_pem), "ca.key": b64("(kept by the stand-in)")},
    }));
    if given("serverTLSSecret").is_none() {
        c.objects.push(standin::tls_secret(
            &ns,
            &format!("{name}-server"),
            &serde_json::json!({}),
            &server,
            &[],
        ));
    }
    c.objects.push(standin::tls_secret(
        &ns,
        &format!("{name}-replication"),
        &serde_json::json!({}),
        &replication,
        &[],
    ));
    c.objects.extend(standin::cnpg_services(&name, &ns));
    cas.insert(format!("{ns}/{name}"), ca);
    drop(c);
    Ok(())
}

/// Names the PgBouncer binary the Pooler stand-in runs (default: Debian's,
/// `/usr/sbin/pgbouncer`). `tools/ci/test-all.sh` builds a PgBouncer recent
/// enough for transaction pooling with prepared statements and sets it.
const PGBOUNCER_ENV: &str = "DT_PGBOUNCER";

fn pgbouncer_bin() -> PathBuf {
    std::env::var_os(PGBOUNCER_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/usr/sbin/pgbouncer"), PathBuf::from)
}

/// A pod of an operator stand-in: one host process, ready when `ready`
/// succeeds.
struct StandinPod {
    name: String,
    workload: String,
    namespace: String,
    kustomization: String,
    ip: Ipv4Addr,
    netns: String,
    labels: BTreeMap<String, String>,
    /// The container port: name, number (TCP).
    port: (&'static str, u16),
    container: &'static str,
    argv: Vec<String>,
    ready: Vec<String>,
    dir: PathBuf,
}

/// Adds the pod, loads the NetworkPolicies that now select it, then starts
/// its process (as `start_workload` does for a workload's pods).
fn start_standin_pod(c: &mut Cluster, p: StandinPod, tx: &Probes) -> anyhow::Result<()> {
    let log = p.dir.join(format!("{}.log", p.container));
    c.pods.push(Pod {
        name: p.name.clone(),
        workload: p.workload,
        namespace: p.namespace,
        kustomization: p.kustomization,
        ip: p.ip,
        netns: p.netns,
        labels: p.labels,
        ports: vec![(Some(p.port.0.to_owned()), p.port.1, "TCP".into())],
        hostname: p.name,
        subdomain: None,
        dir: p.dir,
        containers: vec![Container::new(
            p.container,
            Launch::Host { argv: p.argv },
            (Some(Check::Host(p.ready, Duration::from_secs(1))), None),
            log,
            Vec::new(),
        )],
        not_run: Vec::new(),
        grace: Duration::from_secs(30),
        ready: false,
        created: Instant::now(),
    });
    refresh_policies(c)?;
    let Some(pod) = c.pods.last_mut() else {
        bail!("the stand-in pod just added is gone");
    };
    start_container(pod, 0, tx)
}

/// The CloudNativePG Pooler stand-in: `spec.instances` real PgBouncer
/// processes, each in its own pod network with the template's labels and
/// `cnpg.io/poolerName`, in front of the cluster's `-rw` Service, and the
/// Service the operator makes. Like the operator's: TLS to clients with the
/// cluster's server certificate (cert-manager's, which names the pooler's
/// Service, or the stand-in's own with `serverAltDNSNames`), TLS to the
/// server checked against the server CA, the pool mode and parameters of `spec.pgbouncer`. Where this differs,
/// it says so: the operator's auth_query user becomes an `auth_file` of the
/// managed roles' passwords; the server is reached by address, so its name is
/// not checked (`verify-ca`); and a PgBouncer older than 1.21 (Debian 12's
/// is 1.18; `DT_PGBOUNCER` names another) cannot keep prepared statements
/// across transactions, so `transaction` pooling runs as `session` pooling
/// there.
fn start_pooler(
    shared: &Shared,
    pooler: &Value,
    kustomization: &FluxKustomization,
    tx: &Probes,
) -> anyhow::Result<()> {
    let o = Object::new(pooler).context("a Pooler without metadata")?;
    let name = o.name().to_owned();
    let ns = o.namespace(DEFAULT_NS).to_owned();
    let cluster = pooler
        .pointer("/spec/cluster/name")
        .and_then(Value::as_str)
        .with_context(|| format!("Pooler {ns}/{name}: no spec.cluster.name"))?
        .to_owned();
    if pooler.pointer("/spec/type").and_then(Value::as_str) == Some("ro") {
        bail!(
            "Pooler {ns}/{name}: type ro needs replicas, which the CloudNativePG stand-in does not run"
        );
    }
    let bin = pgbouncer_bin();
    let bin = bin.as_path();
    if !bin.is_file() {
        bail!(
            "Pooler {ns}/{name}: no PgBouncer at {} (apt-get install pgbouncer, or set {PGBOUNCER_ENV} to a PgBouncer 1.21 or later)",
            bin.display()
        );
    }
    let version = run_checked(
        &bin.to_string_lossy(),
        &["--version"],
        Duration::from_secs(10),
    )?;
    let (major, minor) = standin::pgbouncer_version(&version)
        .with_context(|| format!("cannot read PgBouncer's version from {version:?}"))?;
    let keeps_prepared = (major, minor) >= (1, 21);

    let (objects, workdir, started) = {
        let c = lock(shared);
        (c.objects.clone(), c.workdir.clone(), c.started)
    };
    let cluster_value = objects
        .iter()
        .find(|v| {
            Object::new(v).is_some_and(|c| {
                c.kind() == "Cluster"
                    && c.api_version().starts_with("postgresql.cnpg.io/")
                    && c.name() == cluster
                    && c.namespace(DEFAULT_NS) == ns
            })
        })
        .with_context(|| format!("Pooler {ns}/{name}: Cluster {ns}/{cluster} is not declared"))?;
    let cluster_dir = workdir.join("postgres").join(&cluster);
    let server_ip = lock(shared)
        .service_ips
        .get(&format!("{ns}/{cluster}-rw"))
        .copied()
        .with_context(|| {
            format!("Pooler {ns}/{name}: Service {ns}/{cluster}-rw has no address yet")
        })?;

    // The roles a client may log in as, with their passwords.
    let secrets =
        Objects::from_manifests(&objects, &ns, DEFAULT_NS).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut users = String::new();
    for role in cluster_value
        .pointer("/spec/managed/roles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(rname), Some(ps)) = (
            role.get("name").and_then(Value::as_str),
            role.pointer("/passwordSecret/name").and_then(Value::as_str),
        ) else {
            continue;
        };
        let data = secrets
            .secret(ps)
            .with_context(|| format!("Pooler {ns}/{name}: Secret {ps} is not declared"))?;
        let password = data
            .get("password")
            .with_context(|| format!("Pooler {ns}/{name}: Secret {ps} has no key password"))?;
        users.push_str(&standin::pgbouncer_user(
            rname,
            &String::from_utf8_lossy(password),
        ));
    }

    let declared_mode = pooler
        .pointer("/spec/pgbouncer/poolMode")
        .and_then(Value::as_str)
        .unwrap_or("session");
    let mode = if declared_mode == "transaction" && !keeps_prepared {
        "session"
    } else {
        declared_mode
    };
    let cluster_s = cluster_dir.to_string_lossy().into_owned();
    let mut params: BTreeMap<String, String> = BTreeMap::from([
        ("listen_addr".into(), "*".into()),
        ("listen_port".into(), "5432".into()),
        ("auth_type".into(), "scram-sha-256".into()),
        ("pool_mode".into(), mode.to_owned()),
        ("client_tls_sslmode".into(), "prefer".into()),
        (
            "client_tls_cert_file".into(),
            format!("{cluster_s}/server.crt"),
        ),
        (
            "client_tls_key_file".into(),
            format!("{cluster_s}/server.key"),
        ),
        ("server_tls_sslmode".into(), "verify-ca".into()),
        ("server_tls_ca_file".into(), format!("{cluster_s}/ca.crt")),
        (
            "ignore_startup_parameters".into(),
            "extra_float_digits,options".into(),
        ),
        ("log_stats".into(), "0".into()),
    ]);
    let mut notes = Vec::new();
    if mode != declared_mode {
        notes.push(format!(
            "{declared_mode} pooling runs as {mode} pooling (PgBouncer {major}.{minor} keeps no prepared statements across transactions; 1.21 does)"
        ));
    }
    for (k, v) in pooler
        .pointer("/spec/pgbouncer/parameters")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let Some(v) = v.as_str() else { continue };
        match k.as_str() {
            "max_prepared_statements" if !keeps_prepared => {
                notes.push(format!("{k} not set (PgBouncer {major}.{minor})"));
            }
            "server_tls_sslmode" if v == "verify-full" => {
                notes.push("the server is reached by address: verify-ca, not verify-full".into());
            }
            _ => {
                params.insert(k.clone(), v.to_owned());
            }
        }
    }
    let instances = pooler
        .pointer("/spec/instances")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let mut labels: BTreeMap<String, String> = pooler
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    labels.insert("cnpg.io/poolerName".into(), name.clone());
    labels.insert("cnpg.io/podRole".into(), "pooler".into());
    for i in 0..instances {
        let pod_name = format!("{name}-{i}");
        let dir = workdir.join("poolers").join(&pod_name);
        let sock = dir.join("run");
        std::fs::create_dir_all(&sock)?;
        let mut ini = format!(
            "; local-stack CloudNativePG Pooler stand-in for Pooler {ns}/{name}\n[databases]\n* = host={server_ip} port=5432\n\n[pgbouncer]\n"
        );
        params.insert(
            "unix_socket_dir".into(),
            sock.to_string_lossy().into_owned(),
        );
        params.insert(
            "auth_file".into(),
            dir.join("userlist.txt").to_string_lossy().into_owned(),
        );
        for (k, v) in &params {
            let _ = writeln!(ini, "{k} = {v}");
        }
        std::fs::write(dir.join("pgbouncer.ini"), ini)?;
        std::fs::write(dir.join("userlist.txt"), &users)?;
        give_to_pg_user(&dir)?;
        let argv = as_pg_user([
            bin.to_string_lossy().into_owned(),
            dir.join("pgbouncer.ini").to_string_lossy().into_owned(),
        ]);
        let ready_cmd = pg_isready(&sock)?;
        let mut c = lock(shared);
        let (ip, netns) = new_pod_network(&mut c)?;
        let pod_dir = c.workdir.join("pods").join(&pod_name);
        std::fs::create_dir_all(&pod_dir)?;
        say(
            started,
            &format!(
                "  CloudNativePG stand-in: Pooler {ns}/{name}: PgBouncer {major}.{minor} {pod_name} at {ip}, {mode} pooling in front of {cluster}-rw{}",
                if notes.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", notes.join("; "))
                }
            ),
        );
        start_standin_pod(
            &mut c,
            StandinPod {
                name: pod_name,
                workload: format!("CloudNativePG stand-in for Pooler {ns}/{name}"),
                namespace: ns.clone(),
                kustomization: kustomization.name.clone(),
                ip,
                netns,
                labels: labels.clone(),
                port: ("pgbouncer", 5432),
                container: "pgbouncer",
                argv,
                ready: ready_cmd,
                dir: pod_dir,
            },
            tx,
        )?;
    }
    lock(shared)
        .objects
        .push(standin::pooler_service(&name, &ns));
    Ok(())
}

/// A SQL literal.
fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A SQL identifier.
fn sql_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Applies `managed.roles`, `Database`s and the default `app` database of
/// the clusters that are running, as the operator reconciles them.
fn reconcile_databases(shared: &Shared) -> anyhow::Result<()> {
    let (objects, workdir, started) = {
        let c = lock(shared);
        (c.objects.clone(), c.workdir.clone(), c.started)
    };
    for cluster in objects.iter().filter(|v| {
        Object::new(v).is_some_and(|o| {
            o.kind() == "Cluster" && o.api_version().starts_with("postgresql.cnpg.io/")
        })
    }) {
        let Some(o) = Object::new(cluster) else {
            continue;
        };
        let name = o.name();
        let ns = o.namespace(DEFAULT_NS);
        let sock = workdir.join("postgres").join(name).join("run");
        let secret = |secret_name: &str, key: &str| -> anyhow::Result<String> {
            let objects = Objects::from_manifests(&objects, ns, DEFAULT_NS)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let data = objects.secret(secret_name).with_context(|| {
                format!("Cluster {ns}/{name}: Secret {secret_name} is not declared")
            })?;
            let v = data.get(key).with_context(|| {
                format!("Cluster {ns}/{name}: Secret {secret_name} has no key {key}")
            })?;
            Ok(String::from_utf8_lossy(v).into_owned())
        };
        let mut sql = String::new();
        // The default initdb: database app owned by app, its credentials in <cluster>-app.
        let mut app_password = None;
        if cluster
            .pointer("/spec/bootstrap/initdb/secret/name")
            .is_none()
        {
            let password = crate::random_secret();
            let _ = writeln!(
                sql,
                "SELECT 'CREATE ROLE app LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app')\\gexec\nALTER ROLE app LOGIN PASSWORD {};\nSELECT 'CREATE DATABASE app OWNER app' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'app')\\gexec",
                sql_literal(&password)
            );
            app_password = Some(password);
        }
        for role in cluster
            .pointer("/spec/managed/roles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(rname) = role.get("name").and_then(Value::as_str) else {
                continue;
            };
            if role.get("ensure").and_then(Value::as_str) == Some("absent") {
                continue;
            }
            let login = if role.get("login").and_then(Value::as_bool) == Some(true) {
                "LOGIN"
            } else {
                "NOLOGIN"
            };
            let _ = writeln!(
                sql,
                "SELECT 'CREATE ROLE {ident}' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {lit})\\gexec\nALTER ROLE {ident} {login};",
                ident = sql_ident(rname),
                lit = sql_literal(rname)
            );
            if let Some(ps) = role.pointer("/passwordSecret/name").and_then(Value::as_str) {
                let user = secret(ps, "username")?;
                if user != rname {
                    bail!(
                        "Cluster {ns}/{name}: managed role {rname}: Secret {ps} names user {user:?}; the operator requires the role's name"
                    );
                }
                let _ = writeln!(
                    sql,
                    "ALTER ROLE {} PASSWORD {};",
                    sql_ident(rname),
                    sql_literal(&secret(ps, "password")?)
                );
            }
        }
        for db in objects.iter().filter(|v| {
            Object::new(v).is_some_and(|d| {
                d.kind() == "Database"
                    && d.api_version().starts_with("postgresql.cnpg.io/")
                    && d.namespace(DEFAULT_NS) == ns
            }) && v.pointer("/spec/cluster/name").and_then(Value::as_str) == Some(name)
        }) {
            let (Some(dname), Some(owner)) = (
                db.pointer("/spec/name").and_then(Value::as_str),
                db.pointer("/spec/owner").and_then(Value::as_str),
            ) else {
                bail!(
                    "Database {}: spec.name and spec.owner are required",
                    Object::new(db)
                        .map(|d| d.id(DEFAULT_NS))
                        .unwrap_or_default()
                );
            };
            let _ = writeln!(
                sql,
                "SELECT 'CREATE DATABASE {ident} OWNER {owner}' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = {lit})\\gexec",
                ident = sql_ident(dname),
                owner = sql_ident(owner),
                lit = sql_literal(dname)
            );
        }
        let psql = pg_bin("psql")?;
        crate::proc::run_with_input(
            "/usr/sbin/runuser",
            &[
                "-u",
                PG_USER,
                "--",
                &psql.to_string_lossy(),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &sock.to_string_lossy(),
                "-d",
                "postgres",
            ],
            Some(sql.as_bytes()),
            &[],
            Duration::from_mins(1),
        )
        .with_context(|| format!("Cluster {ns}/{name}: applying roles and databases"))?;
        say(
            started,
            &format!("  CloudNativePG stand-in: Cluster {ns}/{name}: roles and databases applied"),
        );
        if let Some(password) = app_password {
            let host = format!("{name}-rw.{ns}");
            let uri = format!("postgresql://app:{password}@{host}:5432/app");
            let b64 =
                |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
            let secret = serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": format!("{name}-app"), "namespace": ns},
                "type": "kubernetes.io/basic-auth",
                "data": {
                    "username": b64("app"), "password": b64(&password), "dbname": b64("app"),
                    "host": b64(&host), "port": b64("5432"), "uri": b64(&uri),
                    "jdbc-uri": b64(&format!("jdbc:postgresql://{host}:5432/app?password={password}&user=app")),
                    "pgpass": b64(&format!("{host}:5432:app:app:{password}\n")),
                },
            });
            let mut c = lock(shared);
            let id = format!("{name}-app");
            c.objects.retain(|v| {
                !(Object::new(v).is_some_and(|o| o.kind() == "Secret" && o.name() == id))
            });
            c.objects.push(secret);
        }
    }
    Ok(())
}

/// Resident memory of every process in every pod's network namespace:
/// bytes, processes, pods.
fn resident_memory(shared: &Shared) -> (u64, usize, usize) {
    let netns: Vec<String> = lock(shared).pods.iter().map(|p| p.netns.clone()).collect();
    let mut bytes = 0;
    let mut processes = 0;
    for ns in &netns {
        let pids =
            run_checked(IP, &["netns", "pids", ns], Duration::from_secs(5)).unwrap_or_default();
        for pid in pids.split_whitespace() {
            let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                continue;
            };
            if let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                bytes += kib * 1024;
                processes += 1;
            }
        }
    }
    (bytes, processes, netns.len())
}

// ---------------------------------------------------------------- stopping

/// SIGKILL to every process of a container's process group.
fn kill_group(pgid: u32) {
    let _ = run_checked(
        "/bin/kill",
        &["-KILL", "--", &format!("-{pgid}")],
        Duration::from_secs(5),
    );
}

/// Lines of a container's log shown in a failure report.
const REPORT_LOG_LINES: usize = 20;

/// What went wrong, for a human: every pod that is not ready, has
/// restarted, or is named by the error (an e2e step names the service it
/// talked to), each container with its log tail and the manifest lines of
/// its environment.
fn report_failure(shared: &Shared, error: &anyhow::Error) {
    let c = lock(shared);
    let text = format!("{error:#}");
    eprintln!("local-stack: {text}");
    for pod in &c.pods {
        let named = pod
            .labels
            .get("app.kubernetes.io/name")
            .is_some_and(|n| text.contains(n.as_str()));
        let restarted = pod.containers.iter().any(|x| x.restarts > 0);
        if pod.ready && !named && !restarted {
            continue;
        }
        eprintln!(
            "  pod {} ({}; Flux Kustomization {}): {}",
            pod.name,
            pod.workload,
            pod.kustomization,
            pod.state()
        );
        for cont in &pod.containers {
            let tail = crate::proc::log_tail(&cont.log, REPORT_LOG_LINES);
            eprint!("{}", container_report(cont, &tail));
        }
    }
    drop(c);
    let mut c = lock(shared);
    read_drops(&mut c);
    let keys: Vec<DropKey> = c.drops.keys().cloned().collect();
    for key in &keys {
        eprintln!("  {}", describe_drop(&c, key));
    }
}

/// Reads the flows the loaded NetworkPolicy program dropped.
fn read_drops(c: &mut Cluster) {
    if c.policy_program.as_ref().is_none_or(String::is_empty) {
        return;
    }
    let Ok(json) = run_checked(
        "/usr/sbin/nft",
        &crate::netpol::LIST_DROPPED,
        Duration::from_secs(5),
    ) else {
        return;
    };
    for d in crate::netpol::parse_dropped(&json).unwrap_or_default() {
        c.drops
            .entry((d.src, d.dst, d.protocol, d.port))
            .or_insert((0, 0))
            .1 = d.packets;
    }
}

/// Says each dropped flow once, as soon as it is seen.
fn say_new_drops(c: &mut Cluster) {
    read_drops(c);
    let new: Vec<DropKey> = c
        .drops
        .keys()
        .filter(|k| !c.drops_said.contains(*k))
        .cloned()
        .collect();
    for key in new {
        say(c.started, &describe_drop(c, &key));
        c.drops_said.insert(key);
    }
}

/// A dropped flow for a human (see [`crate::netpol::describe`]).
fn describe_drop(c: &Cluster, key: &DropKey) -> String {
    let (src, dst, protocol, port) = key;
    let flow = crate::netpol::Dropped {
        src: *src,
        dst: *dst,
        protocol: protocol.clone(),
        port: *port,
        packets: c.drops.get(key).map_or(0, |(b, n)| b + n),
    };
    let pods: Vec<(String, crate::netpol::Peer)> = c
        .pods
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                crate::netpol::Peer {
                    namespace: p.namespace.clone(),
                    ip: p.ip,
                    labels: p.labels.clone(),
                    ports: p.ports.clone(),
                },
            )
        })
        .collect();
    crate::netpol::describe(
        &flow,
        &pods,
        &crate::netpol::Policies::new(&c.objects),
        |policy| c.origins.declared(policy, DEFAULT_NS),
    )
}

/// One container of a failure report: restarts, the log tail, and the
/// variables responsible where the log tells (named in it, or a value of
/// theirs in it), else every variable, each with its `file:line`.
fn container_report(cont: &Container, tail: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "    container {}{}: log {}",
        cont.name,
        if cont.restarts > 0 {
            format!(" (restarted {} times)", cont.restarts)
        } else {
            String::new()
        },
        cont.log.display()
    );
    if tail.is_empty() {
        let _ = writeln!(out, "      (the log is empty)");
    }
    for line in tail.lines() {
        let _ = writeln!(out, "      | {line}");
    }
    if cont.sources.is_empty() {
        return out;
    }
    let values: BTreeMap<&str, &str> = cont
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // A value is evidence only when it is distinctive enough to be in the
    // log because of this variable (never printed: it may be a secret).
    let mentioned = |name: &str| {
        tail.contains(name)
            || values
                .get(name)
                .is_some_and(|v| v.len() >= 6 && tail.contains(v))
    };
    let responsible: Vec<&crate::origin::EnvSource> = cont
        .sources
        .iter()
        .filter(|s| !s.runtime && mentioned(&s.name))
        .collect();
    if responsible.is_empty() {
        let _ = writeln!(
            out,
            "      the log names none of its variables; where each is set:"
        );
        for s in cont.sources.iter().filter(|s| !s.runtime) {
            let _ = writeln!(out, "        {s}");
        }
    } else {
        let _ = writeln!(out, "      the log points at:");
        for s in responsible {
            let _ = writeln!(out, "        {s}");
        }
    }
    out
}

/// SIGTERM to every container (services first, in reverse start order),
/// then SIGKILL after each pod's grace period.
async fn stop_all(shared: &Shared) {
    let mut children = Vec::new();
    {
        let mut c = lock(shared);
        c.stopping = true;
        let started = c.started;
        say(started, "stopping every pod");
        for pod in c.pods.iter_mut().rev() {
            for cont in &mut pod.containers {
                if let Some(child) = cont.child.take() {
                    if let Some(pid) = child.id() {
                        let _ = run_checked(
                            "/bin/kill",
                            &["-TERM", &pid.to_string()],
                            Duration::from_secs(5),
                        );
                    }
                    children.push((pod.name.clone(), pod.grace, child, cont.pgid.take()));
                }
            }
        }
    }
    for (pod, grace, mut child, pgid) in children {
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            eprintln!(
                "local-stack: pod {pod} did not stop within {}s; killing it",
                grace.as_secs()
            );
            let _ = child.kill().await;
        }
        if let Some(pgid) = pgid {
            kill_group(pgid);
        }
    }
}

// ---------------------------------------------------------------- for e2e

/// What the user flow needs from the running environment.
#[derive(Debug, Clone)]
pub struct View {
    pub objects: Vec<Value>,
    pub service_ips: BTreeMap<String, Ipv4Addr>,
    /// Every ready pod, in the order it was started.
    pub pods: Vec<PodView>,
}

/// A running pod as a client sees it: its workload, name, address and
/// declared container ports.
#[derive(Debug, Clone)]
pub struct PodView {
    /// "Deployment dark-tower/global-controller".
    pub workload: String,
    pub name: String,
    pub ip: Ipv4Addr,
    /// Container ports: name, number, protocol.
    pub ports: Vec<(Option<String>, u16, String)>,
}

fn shared_view(shared: &Shared) -> View {
    let c = lock(shared);
    View {
        objects: c.objects.clone(),
        service_ips: c.service_ips.clone(),
        pods: c
            .pods
            .iter()
            .filter(|p| p.ready)
            .map(|p| PodView {
                workload: p.workload.clone(),
                name: p.name.clone(),
                ip: p.ip,
                ports: p.ports.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_run_our_binaries_or_a_stand_in_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ac-service"), "").unwrap();
        let ac = image_config("ghcr.io/dark-tower/dark-tower/ac-service:0.1.0", dir.path())
            .unwrap()
            .unwrap();
        assert_eq!(
            ac.entrypoint,
            [dir.path().join("ac-service").to_string_lossy()]
        );
        assert_eq!(ac.user, "65532:65532");
        let err = image_config(
            "ghcr.io/dark-tower/dark-tower/global-controller@sha256:ab",
            dir.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("global-controller does not exist"), "{err}");
        assert!(
            image_config("docker.io/oliver006/redis_exporter:v1.67.0", dir.path())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_launch_script_quotes_everything_it_passes() {
        let launch = Launch::Container {
            argv: vec!["/bin/echo".into(), "it's $(not) expanded".into()],
            env: Vec::new(),
            mounts: vec![(PathBuf::from("/tmp/v o l"), "/etc/dark tower".into(), true)],
            user: "65532:65532".into(),
            groups: vec![65532],
            read_only: true,
            working_dir: "/".into(),
        };
        let script = launch_script(&launch, Path::new("/tmp/pod"), "p-c");
        assert!(script.contains("'it'\\''s $(not) expanded'"), "{script}");
        assert!(
            script.contains("--userspec=65532:65532 --groups=65532"),
            "{script}"
        );
        assert!(
            script.contains("mount -o remount,ro '/run/dt-p-c/root'"),
            "{script}"
        );
        assert!(
            script.contains("mount --bind '/tmp/v o l' '/run/dt-p-c/root/etc/dark tower'"),
            "{script}"
        );
        // The script is valid sh.
        let out = std::process::Command::new("/bin/sh")
            .args(["-n", "-c", &script])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }

    #[test]
    fn a_failure_report_names_the_variable_the_log_mentions_and_its_line() {
        use crate::origin::{EnvSource, Line};
        let source = |name: &str, file: &str, line: u32| EnvSource {
            name: name.into(),
            at: Some(Line {
                file: file.into(),
                line,
            }),
            via: None,
            runtime: false,
        };
        let mut cont = Container::new(
            "ac-service",
            Launch::Host { argv: Vec::new() },
            (None, None),
            PathBuf::from("/tmp/pod/ac-service.log"),
            vec![
                ("DATABASE_URL".into(), "postgres://u:p@db/ac".into()),
                ("BIND_ADDRESS".into(), "0.0.0.0:8082".into()),
                ("HOSTNAME".into(), "ac-service-0".into()),
            ],
        );
        cont.restarts = 3;
        cont.sources = vec![
            source("DATABASE_URL", "base/ac-service/statefulset.yaml", 104),
            source("BIND_ADDRESS", "base/ac-service/statefulset.yaml", 70),
            EnvSource {
                name: "HOSTNAME".into(),
                at: None,
                via: None,
                runtime: true,
            },
        ];
        // The log names the variable.
        let tail = "starting\nError: invalid DATABASE_URL: relative URL without a base";
        let report = container_report(&cont, tail);
        assert!(
            report.contains("container ac-service (restarted 3 times)"),
            "{report}"
        );
        assert!(report.contains("| Error: invalid DATABASE_URL"), "{report}");
        assert!(
            report.contains(
                "the log points at:\n        DATABASE_URL at base/ac-service/statefulset.yaml:104\n"
            ),
            "{report}"
        );
        assert!(!report.contains("BIND_ADDRESS"), "{report}");
        // The log holds a variable's value, not its name: the same.
        let report = container_report(&cont, "cannot bind 0.0.0.0:8082: address in use");
        assert!(
            report.contains(
                "the log points at:\n        BIND_ADDRESS at base/ac-service/statefulset.yaml:70\n"
            ),
            "{report}"
        );
        // Nothing in the log: every variable from the manifest, with its line.
        let report = container_report(&cont, "panicked");
        assert!(report.contains("names none of its variables"), "{report}");
        assert!(
            report.contains("DATABASE_URL at base/ac-service/statefulset.yaml:104"),
            "{report}"
        );
        assert!(
            report.contains("BIND_ADDRESS at base/ac-service/statefulset.yaml:70"),
            "{report}"
        );
        assert!(!report.contains("HOSTNAME"), "{report}");
        // Values are never printed.
        assert!(!report.contains("postgres://"), "{report}");
    }
}
