//! `local-stack`: the Dark Tower platform on one machine, from what git
//! declares and nothing else.
//!
//! - `plan --env E` renders the environment as Flux applies it and prints
//!   every pod exactly as the kubelet would start it (runs nothing);
//! - `up --env E` runs it: every Flux Kustomization in `dependsOn` order,
//!   stand-ins for the operators, each pod in its own network and mount
//!   namespaces with its probes deciding readiness (`up`);
//! - `e2e --env E` runs it and then the user flow through it (`e2e`).

mod e2e;
mod manifest;
mod net;
mod netpol;
mod origin;
mod plan;
mod pod;
mod proc;
mod render;
mod standin;
mod up;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use clap::Parser;
use rand::RngCore as _;

#[derive(Debug, Parser)]
#[command(
    name = "local-stack",
    about = "Run a Dark Tower environment on this machine exactly as its manifests declare it"
)]
struct Cli {
    #[command(subcommand)]
    command: Subcommand,
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
#[allow(
    clippy::struct_excessive_bools,
    reason = "each is a command-line switch of its own"
)]
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
    /// Enforce the rendered NetworkPolicies between the pods (nftables), so
    /// a flow the platform needs and the policies forbid fails the run.
    #[arg(long)]
    enforce_network_policies: bool,
    /// Print what the run measured (time to every pod ready, resident
    /// memory, e2e latencies) as one JSON object on stdout; progress goes
    /// to stderr. `cargo xtask stack-bench` reads it.
    #[arg(long)]
    json: bool,
    /// e2e: how many times the user flow joins a fresh meeting (each join
    /// is one join-to-first-datagram sample).
    #[arg(long, default_value_t = 1)]
    joins: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Subcommand::Plan {
            env,
            age_key_file,
            show_env,
            kube_proxy,
        } => run_plan(env, age_key_file.as_deref(), *show_env, *kube_proxy),
        Subcommand::Up(args) => run_up(args, false),
        Subcommand::E2e(args) => run_up(args, true),
    };
    match result {
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
        build(&root, args.release)?;
    }
    up::run(&up::Options {
        repo: root.clone(),
        env: args.env.clone(),
        age_key_file: args.age_key_file.clone(),
        workdir: args.workdir.clone(),
        binaries: target_dir(&root).join(profile),
        exit_when_ready: args.exit_when_ready,
        enforce_network_policies: args.enforce_network_policies,
        json: args.json,
        joins: args.joins,
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

/// Builds the four service binaries.
fn build(root: &Path, release: bool) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command.current_dir(root).arg("build");
    if release {
        command.arg("--release");
    }
    for package in [
        "ac-service",
        "global-controller",
        "meeting-controller",
        "media-handler",
    ] {
        command.args(["-p", package]);
    }
    eprintln!("local-stack: building the service binaries (cargo build)");
    if !command.status().context("cannot run cargo")?.success() {
        bail!("cargo build failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repo_root_holds_the_services() {
        assert!(repo_root().join("services/ac-service/Cargo.toml").exists());
    }
}
