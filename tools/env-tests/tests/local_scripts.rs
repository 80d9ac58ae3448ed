//! Offline tests of `tools/local`: the scripts run in `--dry-run` mode
//! against stub tools and we check what they say they would do.
//!
//! Each test gets a sandbox: a `bin/` of stub executables (kind, kubectl,
//! docker, flux, ...) put first on PATH, a fake repo root whose rendered
//! development overlay the kubectl stub prints, and a private state dir. Every
//! stub appends its argv to a log, so a test also proves that a dry run made
//! no call that changes anything (only `kind get clusters`, `docker info` and
//! `kubectl kustomize` are allowed).

// Helpers outside #[test] fns panic on purpose: a panic is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use env_tests::cluster::skip_or_fail;

const SERVICES: [&str; 4] = [
    "ac-service",
    "global-controller",
    "meeting-controller",
    "media-handler",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn local_dir() -> PathBuf {
    repo_root().join("tools/local")
}

/// What the kubectl stub prints for `kubectl kustomize overlays/development`.
const RENDERED: &str = r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: ac-service
spec:
  template:
    spec:
      containers:
        - name: sidecar
          image: ghcr.io/example/ac-service-exporter:1.0.0
        - name: ac-service
          image: ghcr.io/dark-tower/dark-tower/ac-service:0.1.0
---
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      containers:
        - image: "ghcr.io/dark-tower/dark-tower/global-controller:0.1.0"
          name: global-controller
---
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      containers:
        - name: meeting-controller
          image: 'ghcr.io/dark-tower/dark-tower/meeting-controller:0.1.0'
---
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      containers:
        - name: media-handler
          image: ghcr.io/dark-tower/dark-tower/media-handler:0.1.0 # pinned
"#;

const STUB: &str = r#"#!/usr/bin/env bash
printf '%s\n' "$(basename "$0") $*" >> "$STUB_LOG"
case "$(basename "$0") ${1:-}" in
  "kind get") printf '%s\n' ${STUB_KIND_CLUSTERS:-}; exit 0 ;;
  "docker info" | "podman info") exit "${STUB_RUNTIME_RC:-0}" ;;
  "kubectl kustomize") cat "$STUB_RENDERED"; exit 0 ;;
esac
exit 0
"#;

/// Calls a dry run may make: all read-only.
const READ_ONLY: [&str; 4] = [
    "kind get clusters",
    "docker info",
    "podman info",
    "kubectl kustomize ",
];

struct Sandbox {
    dir: tempfile::TempDir,
    clusters: String,
    rendered: String,
}

impl Sandbox {
    fn new(tools: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for tool in tools {
            let path = bin.join(tool);
            std::fs::write(&path, STUB).unwrap();
            make_executable(&path);
        }
        for svc in SERVICES {
            std::fs::create_dir_all(dir.path().join("repo/overlays/development").join(svc))
                .unwrap();
        }
        std::fs::write(dir.path().join("log"), "").unwrap();
        Self {
            dir,
            clusters: String::new(),
            rendered: RENDERED.to_owned(),
        }
    }

    fn with_all_tools() -> Self {
        Self::new(&["kind", "kubectl", "docker", "flux", "jq", "curl"])
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn run(&self, script: &str, args: &[&str], extra_env: &[(&str, &str)]) -> Run {
        let rendered = self.dir.path().join("rendered.yaml");
        std::fs::write(&rendered, &self.rendered).unwrap();
        let path = format!("{}:/usr/bin:/bin", self.dir.path().join("bin").display());
        let mut cmd = Command::new("bash");
        cmd.arg(local_dir().join(script))
            .args(args)
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.dir.path())
            .env("DT_REPO_ROOT", self.repo())
            .env("DT_STATE_HOME", self.state())
            .env("STUB_LOG", self.dir.path().join("log"))
            .env("STUB_RENDERED", &rendered)
            .env("STUB_KIND_CLUSTERS", &self.clusters);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let output = cmd.output().unwrap();
        let calls = std::fs::read_to_string(self.dir.path().join("log"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        Run::new(&output, calls)
    }
}

#[cfg(unix)]
fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// argv of every stub call, in order.
    calls: Vec<String>,
}

impl Run {
    fn new(output: &Output, calls: Vec<String>) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            calls,
        }
    }

    fn ok(&self) -> &Self {
        assert_eq!(
            self.code,
            Some(0),
            "script failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    fn steps(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("==> step: "))
            .map(|l| l.split(':').next().unwrap_or_default())
            .collect()
    }

    fn commands(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("+ "))
            .collect()
    }

    /// Index of the first printed command containing every needle (a needle
    /// starting with `$` must end the command instead).
    fn position(&self, needles: &[&str]) -> usize {
        self.commands()
            .iter()
            .position(|c| needles.iter().all(|n| matches(c, n)))
            .unwrap_or_else(|| {
                panic!(
                    "no command contains {needles:?}; commands:\n{}",
                    self.commands().join("\n")
                )
            })
    }

    fn count(&self, needles: &[&str]) -> usize {
        self.commands()
            .iter()
            .filter(|c| needles.iter().all(|n| matches(c, n)))
            .count()
    }

    fn assert_made_no_changes(&self) {
        for call in &self.calls {
            assert!(
                READ_ONLY
                    .iter()
                    .any(|ok| call.starts_with(ok) || call == ok.trim_end()),
                "dry run called a tool that may change something: {call}\nall calls: {:#?}",
                self.calls
            );
        }
    }
}

fn matches(command: &str, needle: &str) -> bool {
    match needle.strip_prefix('$') {
        Some(suffix) => command.ends_with(suffix),
        None => command.contains(needle),
    }
}

fn assert_in_order(run: &Run, sequence: &[&[&str]]) {
    let positions: Vec<usize> = sequence
        .iter()
        .map(|needles| run.position(needles))
        .collect();
    for (pair, names) in positions.windows(2).zip(sequence.windows(2)) {
        assert!(
            pair[0] < pair[1],
            "{:?} must come before {:?}\n{}",
            names[0],
            names[1],
            run.stdout
        );
    }
}

// ---- setup.sh -------------------------------------------------------------

#[test]
fn setup_dry_run_shows_the_whole_sequence_in_order() {
    let sandbox = Sandbox::with_all_tools();
    let run = sandbox.run("setup.sh", &["--dry-run"], &[]);
    run.ok();
    assert_eq!(
        run.steps(),
        [
            "cluster",
            "calico",
            "wait-ready",
            "images",
            "platform",
            "mesh",
            "overlay",
            "migrations",
            "rollout",
            "port-forwards"
        ]
    );
    let kind_config = local_dir().join("kind-config.yaml").display().to_string();
    let repo = sandbox.repo().display().to_string();
    let dev = format!("{repo}/overlays/development");
    let platform = format!("{repo}/overlays/development/platform");
    let flux_components = format!("{repo}/clusters/flux-system");
    assert_in_order(
        &run,
        &[
            &[
                "kind create cluster",
                "--name dark-tower",
                &format!("--config {kind_config}"),
            ],
            &[
                "kubectl --context kind-dark-tower apply",
                "projectcalico/calico",
                "calico.yaml",
            ],
            &["wait --for=condition=Ready nodes --all"],
            &[
                "docker build",
                "services/ac-service/Dockerfile",
                "-t ghcr.io/dark-tower/dark-tower/ac-service:0.1.0",
            ],
            &[
                "kind load docker-image ghcr.io/dark-tower/dark-tower/media-handler:0.1.0",
                "--name dark-tower",
            ],
            &[
                "kubectl --context kind-dark-tower apply",
                &format!("-k {flux_components}"),
            ],
            &["wait -n flux-system --for=condition=Available deployment --all"],
            &["apply", &format!("-k {platform}")],
            &["wait --for=condition=Ready helmreleases.helm.toolkit.fluxcd.io"],
            &["apply", &format!("$-k {dev}")],
            &["apply", "local-access.yaml"],
            &["rollout status", "statefulset/ac-service"],
            &["rollout status", "deployment/global-controller"],
            &["rollout status", "statefulset/meeting-controller"],
            &["rollout status", "statefulset/media-handler"],
            &["port-forward", "svc/ac-service 8082:8082"],
        ],
    );
    // Calico goes in before anything waits for Ready nodes, and the cluster
    // is created without kind's own wait (nodes cannot be Ready without a CNI).
    assert!(run.position(&["kind create cluster", "--wait 0s"]) < run.position(&["projectcalico"]));

    for svc in SERVICES {
        let image = format!("ghcr.io/dark-tower/dark-tower/{svc}:0.1.0");
        assert_eq!(
            run.count(&[
                "docker build",
                &format!("services/{svc}/Dockerfile"),
                &image
            ]),
            1,
            "{svc}"
        );
        assert_eq!(run.count(&["kind load docker-image", &image]), 1, "{svc}");
    }
    // Every client is declared (overlays/development/ac-service/clients.toml)
    // and applied by AC itself: nothing is registered or minted by hand.
    assert_eq!(run.count(&["register-client"]), 0, "{}", run.stdout);
    assert_eq!(run.count(&["create secret"]), 0, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("Dry run complete: nothing was changed.")
    );
    // Every kubectl call names the kind context, never the user's current one.
    for cmd in run
        .commands()
        .iter()
        .filter(|c| c.starts_with("kubectl") || c.starts_with("nohup kubectl"))
    {
        assert!(cmd.contains("--context kind-dark-tower"), "{cmd}");
    }
    run.assert_made_no_changes();
    assert!(
        !sandbox.state().exists(),
        "a dry run must not create the state dir"
    );
}

#[test]
fn setup_reuses_an_existing_cluster() {
    let mut sandbox = Sandbox::with_all_tools();
    sandbox.clusters = "other\ndark-tower".into();
    let run = sandbox.run("setup.sh", &["-n"], &[]);
    run.ok();
    assert_eq!(run.count(&["kind create cluster"]), 0, "{}", run.stdout);
    assert!(
        run.stderr.contains("already exists; reusing it"),
        "{}",
        run.stderr
    );
    run.assert_made_no_changes();
}

#[test]
fn setup_honours_the_cluster_name_everywhere() {
    let sandbox = Sandbox::with_all_tools();
    let run = sandbox.run("setup.sh", &["--dry-run", "--name", "dt-2"], &[]);
    run.ok();
    assert_eq!(run.count(&["kind create cluster --name dt-2"]), 1);
    assert!(
        run.commands()
            .iter()
            .all(|c| !c.contains("kind-dark-tower") && !c.contains("--name dark-tower")),
        "{}",
        run.stdout
    );
}

#[test]
fn setup_with_podman_uses_the_podman_provider_and_image_archives() {
    let sandbox = Sandbox::new(&["kind", "kubectl", "podman", "flux", "jq"]);
    let run = sandbox.run("setup.sh", &["--dry-run"], &[]);
    run.ok();
    assert!(
        run.stderr.contains("container runtime: podman"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.count(&["env KIND_EXPERIMENTAL_PROVIDER=podman kind create cluster"]),
        1
    );
    assert_eq!(run.count(&["podman build"]), 4);
    assert_eq!(run.count(&["podman save -o"]), 4);
    assert_eq!(
        run.count(&["KIND_EXPERIMENTAL_PROVIDER=podman kind load image-archive"]),
        4
    );
    assert_eq!(run.count(&["docker"]), 0);
    run.assert_made_no_changes();
}

#[test]
fn setup_without_kind_stops_before_doing_anything_and_names_it() {
    let sandbox = Sandbox::new(&["kubectl", "docker", "flux", "jq"]);
    let run = sandbox.run("setup.sh", &[], &[]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("required tool 'kind' is not installed"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("kind.sigs.k8s.io"),
        "the error should say how to install it"
    );
    assert!(
        run.calls.is_empty(),
        "nothing may run before the tool check: {:?}",
        run.calls
    );
}

#[test]
fn setup_dry_run_without_tools_warns_and_still_shows_the_plan() {
    let sandbox = Sandbox::new(&[]);
    let run = sandbox.run("setup.sh", &["--dry-run"], &[]);
    run.ok();
    assert!(
        run.stderr
            .contains("required tool 'kind' is not installed (a real run stops here)"),
        "{}",
        run.stderr
    );
    // Flux's controllers come from git (clusters/flux-system), not a CLI.
    assert!(!run.stderr.contains("'flux'"), "{}", run.stderr);
    assert_eq!(run.steps().len(), 10);
}

#[test]
fn setup_refuses_a_digest_pinned_development_image() {
    let mut sandbox = Sandbox::with_all_tools();
    sandbox.rendered = RENDERED.replace(
        "ghcr.io/dark-tower/dark-tower/global-controller:0.1.0",
        "ghcr.io/dark-tower/dark-tower/global-controller@sha256:0000",
    );
    let run = sandbox.run("setup.sh", &["--dry-run"], &[]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("pins global-controller by digest"),
        "{}",
        run.stderr
    );
}

#[test]
fn setup_runtime_override_is_validated() {
    let sandbox = Sandbox::with_all_tools();
    let run = sandbox.run(
        "setup.sh",
        &["--dry-run"],
        &[("DT_CONTAINER_RUNTIME", "containerd")],
    );
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains("DT_CONTAINER_RUNTIME must be 'docker' or 'podman'"),
        "{}",
        run.stderr
    );
}

#[test]
fn setup_skip_build_and_no_port_forward_leave_those_steps_empty() {
    let sandbox = Sandbox::with_all_tools();
    let run = sandbox.run(
        "setup.sh",
        &["--dry-run", "--skip-build", "--no-port-forward"],
        &[],
    );
    run.ok();
    assert_eq!(run.count(&["docker build"]), 0);
    assert_eq!(run.count(&["port-forward"]), 0);
    assert!(
        !run.calls.iter().any(|c| c.starts_with("kubectl kustomize")),
        "--skip-build needs no image names"
    );
}

// ---- teardown.sh ------------------------------------------------------------

#[test]
fn teardown_deletes_the_named_cluster_and_only_its_port_forwards() {
    let sandbox = Sandbox::with_all_tools();
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = sleeper.id().to_string();
    let forwards = sandbox.state().join("dark-tower/dt-test/port-forwards");
    std::fs::create_dir_all(&forwards).unwrap();
    std::fs::write(forwards.join("ac-service.pid"), &pid).unwrap();

    let run = sandbox.run("teardown.sh", &["--dry-run", "--name=dt-test"], &[]);
    let alive = sleeper.try_wait().unwrap().is_none();
    sleeper.kill().ok();
    sleeper.wait().ok();
    run.ok();
    assert_eq!(run.steps(), ["port-forwards", "cluster", "state"]);
    assert_in_order(
        &run,
        &[
            &["kill", &pid],
            &["kind delete cluster --name dt-test"],
            &["rm -rf", "dark-tower/dt-test"],
        ],
    );
    assert_eq!(run.count(&["kind delete cluster"]), 1);
    assert_eq!(
        run.count(&["dark-tower/dark-tower"]),
        0,
        "must not touch the default cluster's state"
    );
    assert!(alive, "a dry run must not kill the port-forward");
    assert!(
        forwards.join("ac-service.pid").exists(),
        "a dry run must not remove pid files"
    );
    run.assert_made_no_changes();
}

#[test]
fn teardown_defaults_to_the_dark_tower_cluster() {
    let sandbox = Sandbox::with_all_tools();
    let run = sandbox.run("teardown.sh", &["--dry-run"], &[]);
    run.ok();
    assert_eq!(
        run.commands()
            .iter()
            .filter(|c| c.starts_with("kind delete"))
            .copied()
            .collect::<Vec<_>>(),
        ["kind delete cluster --name dark-tower"]
    );
}

#[test]
fn teardown_of_a_missing_cluster_deletes_nothing() {
    let sandbox = Sandbox::with_all_tools();
    let run = sandbox.run("teardown.sh", &[], &[]);
    run.ok();
    assert!(
        run.stderr.contains("does not exist; nothing to delete"),
        "{}",
        run.stderr
    );
    assert!(
        !run.calls.iter().any(|c| c.starts_with("kind delete")),
        "{:?}",
        run.calls
    );
}

// ---- restart.sh ---------------------------------------------------------------

fn restart(args: &[&str]) -> Run {
    let mut sandbox = Sandbox::with_all_tools();
    sandbox.clusters = "dark-tower".into();
    sandbox.run("restart.sh", args, &[])
}

#[test]
fn restart_rolls_the_named_service_by_alias_or_full_name() {
    for (arg, workload) in [
        ("ac", "statefulset/ac-service"),
        ("gc", "deployment/global-controller"),
        ("meeting-controller", "statefulset/meeting-controller"),
        ("mh", "statefulset/media-handler"),
    ] {
        let run = restart(&["--dry-run", arg]);
        run.ok();
        let cmds = run.commands();
        assert_eq!(
            cmds,
            [
                format!(
                    "kubectl --context kind-dark-tower rollout restart -n dark-tower {workload}"
                ),
                format!(
                    "kubectl --context kind-dark-tower rollout status -n dark-tower {workload} --timeout=5m"
                ),
            ],
            "{arg}"
        );
        run.assert_made_no_changes();
    }
}

#[test]
fn restart_without_a_service_rolls_all_four_in_dependency_order() {
    let run = restart(&["--dry-run"]);
    run.ok();
    assert_in_order(
        &run,
        &[
            &["rollout restart", "statefulset/ac-service"],
            &["rollout restart", "deployment/global-controller"],
            &["rollout restart", "statefulset/meeting-controller"],
            &["rollout restart", "statefulset/media-handler"],
        ],
    );
    assert_eq!(run.count(&["rollout restart"]), 4);
}

#[test]
fn restart_build_rebuilds_only_that_image_first() {
    let run = restart(&["--dry-run", "--build", "gc"]);
    run.ok();
    assert_in_order(
        &run,
        &[
            &["docker build", "services/global-controller/Dockerfile"],
            &["kind load docker-image ghcr.io/dark-tower/dark-tower/global-controller:0.1.0"],
            &["rollout restart", "deployment/global-controller"],
        ],
    );
    assert_eq!(run.count(&["docker build"]), 1);
}

#[test]
fn restart_rejects_unknown_services_and_extra_arguments() {
    let run = restart(&["--dry-run", "redis-cluster"]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("unknown service 'redis-cluster'"),
        "{}",
        run.stderr
    );
    let run = restart(&["gc", "mc"]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("only one SERVICE"), "{}", run.stderr);
}

#[test]
fn restart_needs_the_cluster() {
    let sandbox = Sandbox::with_all_tools();
    let run = sandbox.run("restart.sh", &["gc"], &[]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("run tools/local/setup.sh first"),
        "{}",
        run.stderr
    );
    assert!(
        !run.calls.iter().any(|c| c.contains("rollout")),
        "{:?}",
        run.calls
    );
}

// ---- status.sh --------------------------------------------------------------------

#[test]
fn status_dry_run_lists_its_reads_and_makes_none() {
    let sandbox = Sandbox::with_all_tools();
    let run = sandbox.run("status.sh", &["--dry-run"], &[]);
    run.ok();
    assert_eq!(
        run.steps(),
        [
            "cluster",
            "platform",
            "workloads",
            "port-forwards",
            "endpoints"
        ]
    );
    assert!(run.count(&["kubectl --context kind-dark-tower get nodes"]) == 1);
    assert!(run.count(&["curl", "http://localhost:8082/health"]) == 1);
    assert!(run.calls.is_empty(), "{:?}", run.calls);
}

#[test]
fn status_reports_a_missing_cluster() {
    let sandbox = Sandbox::with_all_tools();
    let run = sandbox.run("status.sh", &[], &[]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains("does not exist; run tools/local/setup.sh"),
        "{}",
        run.stderr
    );
}

// ---- every script -------------------------------------------------------------------

const SCRIPTS: [&str; 4] = ["setup.sh", "teardown.sh", "restart.sh", "status.sh"];

#[test]
fn every_script_has_help_and_rejects_unknown_flags() {
    for script in SCRIPTS {
        let sandbox = Sandbox::with_all_tools();
        let help = sandbox.run(script, &["--help"], &[]);
        help.ok();
        assert!(
            help.stdout.starts_with("Usage: "),
            "{script}: {}",
            help.stdout
        );
        assert!(help.stdout.contains("--dry-run"), "{script}");
        assert!(
            help.calls.is_empty(),
            "{script} --help ran {:?}",
            help.calls
        );

        let bad = sandbox.run(script, &["--dry-run", "--bogus"], &[]);
        assert_eq!(bad.code, Some(2), "{script}: {bad:?}");
        assert!(
            bad.stderr.contains("unknown option: --bogus"),
            "{script}: {}",
            bad.stderr
        );
        assert!(
            bad.calls.is_empty(),
            "{script} ran {:?} before rejecting a flag",
            bad.calls
        );

        let name = sandbox.run(script, &["--dry-run", "--name", "Not_Valid"], &[]);
        assert_eq!(name.code, Some(2), "{script}");
    }
}

#[test]
fn every_script_is_strict_bash_and_shares_the_library() {
    for script in SCRIPTS {
        let text = std::fs::read_to_string(local_dir().join(script)).unwrap();
        assert!(text.starts_with("#!/usr/bin/env bash\n"), "{script}");
        assert!(text.lines().any(|l| l == "set -euo pipefail"), "{script}");
        assert!(
            text.contains("source \"$(dirname \"${BASH_SOURCE[0]}\")/lib.sh\""),
            "{script}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(local_dir().join(script))
                .unwrap()
                .permissions()
                .mode();
            assert!(mode & 0o111 != 0, "{script} is not executable");
        }
    }
}

#[test]
fn scripts_pass_shellcheck() {
    let Ok(output) = Command::new("shellcheck").arg("--version").output() else {
        skip_or_fail(
            "scripts_pass_shellcheck",
            "shellcheck is not installed (apt-get install -y shellcheck)",
        );
        return;
    };
    assert!(output.status.success());
    let mut files: Vec<PathBuf> = SCRIPTS.iter().map(|s| local_dir().join(s)).collect();
    files.push(local_dir().join("lib.sh"));
    let out = Command::new("shellcheck")
        .arg("-x")
        .args(&files)
        .current_dir(local_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "shellcheck:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- kind-config.yaml, local-access.yaml, skaffold.yaml --------------------------------

/// `key: value` pairs of a simple YAML file, in order (enough for our flat
/// port lists; the files are ours and kept simple on purpose).
fn scalars(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let l = l.trim_start().trim_start_matches("- ");
            let (k, v) = l.split_once(':')?;
            Some((
                k.trim().to_owned(),
                v.split(" #").next().unwrap_or_default().trim().to_owned(),
            ))
        })
        .collect()
}

fn values<'a>(pairs: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn kind_config_disables_kindnet_and_maps_the_public_ports() {
    let text = std::fs::read_to_string(local_dir().join("kind-config.yaml")).unwrap();
    let pairs = scalars(&text);
    assert_eq!(values(&pairs, "disableDefaultCNI"), ["true"]);
    assert_eq!(
        values(&pairs, "podSubnet"),
        ["192.168.0.0/16"],
        "Calico's default pool"
    );
    assert_eq!(values(&pairs, "name"), ["dark-tower"]);
    assert_eq!(values(&pairs, "hostPort"), ["8080", "4433", "4434"]);
    assert_eq!(values(&pairs, "protocol"), ["TCP", "UDP", "UDP"]);
    assert!(
        values(&pairs, "listenAddress")
            .iter()
            .all(|a| *a == "127.0.0.1")
    );

    // Each mapped containerPort is the nodePort of a local-access Service
    // with the same protocol and the service's real port.
    let access = scalars(&std::fs::read_to_string(local_dir().join("local-access.yaml")).unwrap());
    assert_eq!(values(&pairs, "containerPort"), values(&access, "nodePort"));
    assert_eq!(values(&access, "protocol"), ["TCP", "UDP", "UDP"]);
    assert_eq!(values(&access, "targetPort"), ["8080", "4433", "4434"]);
}

#[test]
fn skaffold_builds_the_four_services_from_their_dockerfiles() {
    let text = std::fs::read_to_string(local_dir().join("skaffold.yaml")).unwrap();
    let pairs = scalars(&text);
    let images = values(&pairs, "image");
    assert_eq!(images.len(), 4);
    for (svc, image) in SERVICES.iter().zip(&images) {
        assert!(image.ends_with(&format!("/{svc}")), "{image}");
    }
    assert_eq!(
        values(&pairs, "dockerfile"),
        SERVICES
            .iter()
            .map(|s| format!("services/{s}/Dockerfile"))
            .collect::<Vec<_>>()
    );
    assert_eq!(values(&pairs, "push"), ["false"]);
    assert_eq!(values(&pairs, "kubeContext"), ["kind-dark-tower"]);
    assert!(text.contains("- ../../overlays/development\n"));
}

/// Skaffold deploys what Flux applies in development after the platform and the
/// mesh (setup.sh installs those once): every other overlay, in dependsOn order.
#[test]
fn skaffold_deploys_every_development_overlay_flux_applies() {
    let text = std::fs::read_to_string(local_dir().join("skaffold.yaml")).unwrap();
    let listed: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- ../../"))
        .map(str::to_owned)
        .collect();
    let flux = flux_kustomizations(&repo_root().join("clusters/development"));
    let wanted: Vec<&FluxKustomization> = flux
        .iter()
        .filter(|k| {
            k.path.starts_with("./overlays/development")
                && !k.path.starts_with("./overlays/development/platform")
        })
        .collect();
    assert!(wanted.len() >= 7, "{flux:#?}");
    for k in &wanted {
        let path = k.path.trim_start_matches("./");
        assert!(
            listed.iter().any(|l| l == path),
            "skaffold.yaml does not deploy {path} (Flux Kustomization {}): {listed:?}",
            k.name
        );
    }
    // Dependencies come first.
    let at = |name: &str| {
        let k = flux.iter().find(|k| k.name == name).unwrap();
        let path = k.path.trim_start_matches("./");
        listed.iter().position(|l| l == path)
    };
    for k in &wanted {
        for dep in &k.depends_on {
            if let (Some(d), Some(me)) = (at(dep), at(&k.name)) {
                assert!(d < me, "{dep} must come before {} in skaffold.yaml", k.name);
            }
        }
    }
}

/// Skaffold swaps images by name, so its artifact names must be exactly the
/// names the rendered development overlay uses.
#[test]
fn skaffold_images_match_the_development_overlay() {
    let overlays: Vec<PathBuf> = SERVICES
        .iter()
        .map(|s| repo_root().join("overlays/development").join(s))
        .collect();
    if let Some(missing) = overlays
        .iter()
        .find(|o| !o.join("kustomization.yaml").exists())
    {
        skip_or_fail(
            "skaffold_images_match_the_development_overlay",
            &format!("{} does not exist yet", missing.display()),
        );
        return;
    }
    let render = |overlay: &Path| {
        ["kustomize build", "kubectl kustomize"]
            .iter()
            .find_map(|cmd| {
                let mut parts = cmd.split(' ');
                let out = Command::new(parts.next()?)
                    .args(parts)
                    .arg(overlay)
                    .output()
                    .ok()?;
                out.status
                    .success()
                    .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
            })
    };
    let Some(rendered) = overlays
        .iter()
        .map(|o| render(o))
        .collect::<Option<Vec<String>>>()
    else {
        skip_or_fail(
            "skaffold_images_match_the_development_overlay",
            "neither kustomize nor kubectl can render the development overlays",
        );
        return;
    };
    let rendered = rendered.join("\n---\n");
    let rendered_images: Vec<String> = values(&scalars(&rendered), "image")
        .iter()
        .map(|i| i.trim_matches(['"', '\'']).to_owned())
        .collect();
    let skaffold = scalars(&std::fs::read_to_string(local_dir().join("skaffold.yaml")).unwrap());
    for image in values(&skaffold, "image") {
        assert!(
            rendered_images
                .iter()
                .any(|r| r.split(['@', ':']).next() == Some(image)
                    || r.rsplit_once(':').is_some_and(|(n, _)| n == image)),
            "skaffold artifact {image} is not an image of the development overlay: {rendered_images:?}"
        );
    }
}

// ---- agreement with the Flux configuration ----------------------------------------------

#[derive(Debug)]
struct FluxKustomization {
    name: String,
    path: String,
    depends_on: Vec<String>,
}

/// The Flux Kustomizations of one cluster dir. The files are ours, written
/// in one block style, so a line scanner is enough (and needs no YAML crate).
fn flux_kustomizations(cluster_dir: &Path) -> Vec<FluxKustomization> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(cluster_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in text.split("\n---") {
            if !doc.contains("apiVersion: kustomize.toolkit.fluxcd.io/")
                || !doc.contains("\nkind: Kustomization")
            {
                continue;
            }
            let mut name = None;
            let mut flux_path = None;
            let mut depends_on = Vec::new();
            let mut in_depends = false;
            for line in doc.lines() {
                if line.starts_with("  name: ") && name.is_none() {
                    name = Some(line["  name: ".len()..].trim().to_owned());
                } else if let Some(p) = line.strip_prefix("  path: ") {
                    flux_path = Some(p.trim().trim_matches('"').to_owned());
                }
                if line == "  dependsOn:" {
                    in_depends = true;
                } else if in_depends {
                    match line.strip_prefix("    - name: ") {
                        Some(dep) => depends_on.push(dep.trim().to_owned()),
                        None if line.starts_with("      ") => {}
                        None => in_depends = false,
                    }
                }
            }
            if let (Some(name), Some(flux_path)) = (name, flux_path) {
                out.push(FluxKustomization {
                    name,
                    path: flux_path,
                    depends_on,
                });
            }
        }
    }
    out
}

#[test]
fn setup_applies_every_development_overlay_in_flux_dependency_order() {
    let cluster_dir = repo_root().join("clusters/development");
    if !cluster_dir.exists() {
        skip_or_fail(
            "setup_applies_every_development_overlay_in_flux_dependency_order",
            &format!("{} does not exist yet", cluster_dir.display()),
        );
        return;
    }
    let flux: Vec<FluxKustomization> = flux_kustomizations(&cluster_dir)
        .into_iter()
        .filter(|k| k.path.starts_with("./overlays/development"))
        .collect();
    assert!(
        flux.len() >= 8,
        "expected platform, namespace, postgres, redis and four services: {flux:#?}"
    );

    let sandbox = Sandbox::with_all_tools();
    let run = sandbox.run("setup.sh", &["--dry-run"], &[]);
    run.ok();
    let repo = sandbox.repo().display().to_string();
    let apply_of = |flux_path: &str| {
        let dir = format!("{repo}/{}", flux_path.trim_start_matches("./"));
        let needle = format!("$--field-manager=dt-local -k {dir}");
        assert_eq!(
            run.count(&[&needle]),
            1,
            "{flux_path} must be applied exactly once:\n{}",
            run.stdout
        );
        run.position(&[&needle])
    };
    for k in &flux {
        let at = apply_of(&k.path);
        for dep in &k.depends_on {
            let dep = flux
                .iter()
                .find(|d| &d.name == dep)
                .unwrap_or_else(|| panic!("{} depends on unknown {dep}", k.name));
            assert!(
                apply_of(&dep.path) < at,
                "{} must be applied after {}",
                k.path,
                dep.path
            );
        }
    }
}

// ---------------------------------------------------------------- tools/ci/kind-flux.sh

const KIND_FLUX: &str = "../ci/kind-flux.sh";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn github_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_REPOSITORY", "dark-tower/platform"),
        ("GITHUB_REF", "refs/pull/7/merge"),
        ("GITHUB_SHA", SHA),
    ]
}

/// Every document of a YAML text as JSON (the workspace's YAML reader).
fn yaml_documents(text: &str) -> Vec<serde_json::Value> {
    let parsed = dtlint_yaml::parse(
        text,
        &dtlint_yaml::LineIndex::new(text),
        dtlint_yaml::Limits::default(),
    );
    assert!(parsed.problems.is_empty(), "{:?}\n{text}", parsed.problems);
    parsed.documents.iter().map(|d| d.root.to_json()).collect()
}

fn kind_sandbox() -> Sandbox {
    Sandbox::new(&["kind", "kubectl", "docker", "jq", "cargo"])
}

#[test]
fn kind_flux_dry_run_lets_flux_reconcile_the_commit_and_waits_for_everything() {
    let sandbox = kind_sandbox();
    let mut env = github_env();
    env.push(("DT_GIT_TOKEN", "ghs_token"));
    let run = sandbox.run(KIND_FLUX, &["--dry-run"], &env);
    run.ok();
    let repo = sandbox.repo().display().to_string();
    assert_eq!(
        run.steps(),
        [
            "cluster",
            "calico",
            "wait-ready",
            "images",
            "flux",
            "source",
            "sync",
            "converge",
            "access",
            "env-tests"
        ]
    );
    assert_in_order(
        &run,
        &[
            &["kind create cluster", "--name dark-tower-flux"],
            &["projectcalico/calico", "calico.yaml"],
            &["kind load docker-image", "media-handler"],
            &["apply", &format!("-k {repo}/clusters/flux-system")],
            &["wait -n flux-system --for=condition=Available deployment --all"],
            &[
                "create secret generic -n flux-system flux-system",
                "--from-file=password=/dev/stdin",
                "# stdin: DT_GIT_TOKEN",
            ],
            &[
                "apply --server-side --field-manager=dt-ci -f -",
                "# stdin: GitRepository flux-system: https://github.com/dark-tower/platform refs/pull/7/merge",
            ],
            &["wait -n flux-system gitrepositories.source.toolkit.fluxcd.io/flux-system"],
            &[&format!("-f {repo}/clusters/development/platform.yaml")],
            &[&format!("-f {repo}/clusters/development/apps.yaml")],
            &[
                "wait -n flux-system kustomizations.kustomize.toolkit.fluxcd.io --all --for=condition=Ready",
            ],
            &[
                "wait helmreleases.helm.toolkit.fluxcd.io --all --all-namespaces --for=condition=Ready",
            ],
            &["port-forward -n dark-tower svc/ac-service 8082:8082"],
            &["port-forward -n dark-tower svc/global-controller 8080:8080"],
            &["$cargo nextest run --profile ci -p env-tests"],
        ],
    );
    // Flux applies the overlays, not the script; the token is never printed.
    assert_eq!(run.count(&["-k", "/overlays/"]), 0, "{}", run.stdout);
    assert!(!run.stdout.contains("ghs_token") && !run.stderr.contains("ghs_token"));
    run.assert_made_no_changes();

    // Without a token (a public repository) the source has no secret.
    let run = sandbox.run(KIND_FLUX, &["--dry-run"], &github_env());
    run.ok();
    assert_eq!(run.count(&["create secret generic -n flux-system"]), 0);
}

#[test]
fn kind_flux_refuses_to_run_without_the_commit_under_test() {
    let sandbox = kind_sandbox();
    for (drop, says) in [
        ("GITHUB_SHA", "GITHUB_SHA '' is not a commit id"),
        ("GITHUB_REF", "GITHUB_REF '' is not a full ref"),
        (
            "GITHUB_REPOSITORY",
            "GITHUB_REPOSITORY (owner/name) is not set",
        ),
    ] {
        let env: Vec<_> = github_env()
            .into_iter()
            .filter(|(k, _)| *k != drop)
            .collect();
        let run = sandbox.run(KIND_FLUX, &["--dry-run"], &env);
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(run.stderr.contains(says), "{}", run.stderr);
        assert!(run.calls.is_empty(), "{:?}", run.calls);
    }
}

/// A kubectl stub that answers what the real run reads from the cluster:
/// the fetched revision and the prober's secret; `apply -f -` keeps its
/// stdin (the GitRepository) for the test.
const KUBECTL_CLUSTER: &str = r#"#!/usr/bin/env bash
printf '%s\n' "kubectl $*" >> "$STUB_LOG"
case "$*" in
  *"apply"*"-f -"*) cat > "$STUB_LOG.stdin" ;;
  *"get -n flux-system gitrepositories"*) printf '%s' "$STUB_REVISION" ;;
  *"get secret -n dark-tower synthetic-prober-client"*) printf '%s' "cHJvYmVyLXMzY3JldA==" ;;
  *"kustomize"*) cat "$STUB_RENDERED" ;;
esac
exit 0
"#;

const CARGO_ENV: &str = r#"#!/usr/bin/env bash
printf '%s\n' "cargo $* id=$DT_ENV_TESTS_CLIENT_ID secret=$DT_ENV_TESTS_CLIENT_SECRET context=$DT_ENV_TESTS_CONTEXT require=$DT_ENV_TESTS_REQUIRE" >> "$STUB_LOG"
exit 0
"#;

#[test]
fn kind_flux_checks_flux_fetched_this_commit_and_hands_the_tests_the_declared_prober() {
    let sandbox = kind_sandbox();
    let bin = sandbox.dir.path().join("bin");
    std::fs::write(bin.join("kubectl"), KUBECTL_CLUSTER).unwrap();
    std::fs::write(bin.join("cargo"), CARGO_ENV).unwrap();
    make_executable(&bin.join("kubectl"));
    make_executable(&bin.join("cargo"));
    let mut env = github_env();
    env.push(("DT_GIT_TOKEN", "ghs_token"));

    // The ref moved on: Flux fetched another commit.
    let mut moved = env.clone();
    moved.push((
        "STUB_REVISION",
        "refs/pull/7/merge@sha1:fedcba9876543210fedcba9876543210fedcba98",
    ));
    let run = sandbox.run(KIND_FLUX, &[], &moved);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("the ref moved on"), "{}", run.stderr);
    // The failure shows the state of the Flux objects.
    assert!(
        run.calls
            .iter()
            .any(|c| c.contains("get kustomizations.kustomize.toolkit.fluxcd.io --all-namespaces")),
        "{:#?}",
        run.calls
    );
    let source = std::fs::read_to_string(sandbox.dir.path().join("log.stdin")).unwrap();
    let git = yaml_documents(&source).remove(0);
    assert_eq!(git["kind"], "GitRepository");
    assert_eq!(git["metadata"]["name"], "flux-system");
    assert_eq!(git["spec"]["url"], "https://github.com/dark-tower/platform");
    assert_eq!(git["spec"]["ref"]["name"], "refs/pull/7/merge");
    assert_eq!(git["spec"]["secretRef"]["name"], "flux-system");

    // Flux fetched this commit: the tests run as the prober git declares.
    std::fs::write(sandbox.dir.path().join("log"), "").unwrap();
    let mut fetched = env;
    let revision = format!("refs/pull/7/merge@sha1:{SHA}");
    fetched.push(("STUB_REVISION", revision.as_str()));
    let run = sandbox.run(KIND_FLUX, &[], &fetched);
    run.ok();
    let tests = run
        .calls
        .iter()
        .find(|c| c.starts_with("cargo nextest"))
        .unwrap_or_else(|| panic!("{:#?}", run.calls));
    assert!(
        tests.ends_with(
            "id=synthetic-prober secret=prober-s3cret context=kind-dark-tower-flux require=1"
        ),
        "{tests}"
    );
    assert!(!run.stdout.contains("prober-s3cret") && !run.stderr.contains("prober-s3cret"));
}

/// The script applies the Flux sync objects of clusters/development, all of
/// them but flux-system itself (whose gotk-sync.yaml would point Flux back
/// at the main branch).
#[test]
fn kind_flux_applies_every_sync_file_of_the_development_cluster() {
    let script = std::fs::read_to_string(repo_root().join("tools/ci/kind-flux.sh")).unwrap();
    let listed: Vec<&str> = script
        .lines()
        .find_map(|l| l.strip_prefix("FLUX_SYNC_FILES=("))
        .and_then(|l| l.strip_suffix(')'))
        .unwrap()
        .split_whitespace()
        .collect();
    let kustomization =
        std::fs::read_to_string(repo_root().join("clusters/development/kustomization.yaml"))
            .unwrap();
    let resources = yaml_documents(&kustomization).remove(0)["resources"].clone();
    let wanted: Vec<&str> = resources
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .filter(|r| *r != "flux-system")
        .collect();
    // Order does not matter: Flux follows each Kustomization's dependsOn.
    let mut listed = listed;
    let mut wanted = wanted;
    listed.sort_unstable();
    wanted.sort_unstable();
    assert_eq!(listed, wanted);
}

/// The GitHub workflow runs the kind job with the checkout's token (the
/// script shows the cluster's state itself when it fails).
#[test]
fn the_workflow_has_a_kind_job_running_the_script() {
    let text = std::fs::read_to_string(repo_root().join(".github/workflows/ci.yaml")).unwrap();
    let workflow = yaml_documents(&text).remove(0);
    let steps = workflow["jobs"]["kind"]["steps"]
        .as_array()
        .expect("a job named kind with steps");
    let run_of = |needle: &str| {
        steps
            .iter()
            .find(|s| s["run"].as_str().is_some_and(|r| r.contains(needle)))
            .unwrap_or_else(|| panic!("no step runs {needle}: {steps:#?}"))
    };
    let main = run_of("tools/ci/kind-flux.sh");
    assert_eq!(main["env"]["DT_GIT_TOKEN"], "${{ secrets.GITHUB_TOKEN }}");
    assert!(steps.iter().any(|s| {
        s["run"]
            .as_str()
            .is_some_and(|r| r.contains("cargo install --locked cargo-nextest"))
    }));
}
