//! `local-stack up --env development` from the outside, as a user runs it:
//! every pod becomes ready from what git declares, and a SIGTERM (what
//! Ctrl-C amounts to) stops everything and leaves nothing behind: no
//! network namespace, no process of the run, no mount.
//!
//! Needs root (namespaces), PostgreSQL's binaries, redis-server and nft, as
//! `tools/ci/test-all.sh` installs them; it builds the service binaries
//! itself (`cargo build`, incremental).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const READY_WITHIN: Duration = Duration::from_mins(10);

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

fn netns_with(prefix: &str) -> Vec<String> {
    let out = Command::new("/usr/sbin/ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

fn processes_mentioning(text: &str) -> Vec<String> {
    let out = Command::new("pgrep").args(["-af", text]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("pgrep"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn development_becomes_ready_from_git_and_sigterm_leaves_nothing_behind() {
    if !is_root() {
        manifest_tests::skip("local-stack up makes network namespaces: needs root");
        return;
    }
    let workdir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_local-stack"));
    command
        .args(["up", "--env", "development", "--workdir"])
        .arg(workdir.path());
    // CI has built every service binary already (a workspace-wide test build): building
    // them again for one package would compile their dependencies a second time.
    if std::env::var_os("DT_LOCAL_STACK_PREBUILT").is_some() {
        command.arg("--no-build");
    }
    let mut child = command
        .env_remove("SOPS_AGE_KEY_FILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let node = format!("dtn{}", child.id());
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("[up] {line}");
            let _ = tx.send(line);
        }
    });
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[up:err] {line}");
        }
    });
    let deadline = Instant::now() + READY_WITHIN;
    let mut ready_pods = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) if line.contains("every pod is ready") => break,
            Ok(line) => {
                if let Some(name) = line.split("] pod ").nth(1).and_then(ready_pod) {
                    ready_pods.push(name);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!(
                    "local-stack up exited before every pod was ready: {:?}",
                    child.wait()
                );
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("local-stack up exited ({status}) before every pod was ready");
        }
        assert!(
            Instant::now() < deadline,
            "not ready within {READY_WITHIN:?}"
        );
    }
    for service in [
        "postgres-1",
        "redis-0",
        "ac-service-0",
        "global-controller-",
        "meeting-controller-",
        "media-handler-",
    ] {
        assert!(
            ready_pods.iter().any(|p| p.starts_with(service)),
            "{service} never became ready: {ready_pods:?}"
        );
    }
    // Running: the node and one namespace per pod.
    assert!(netns_with(&node).len() >= 7, "{:?}", netns_with(&node));

    // SIGTERM, as a service manager or Ctrl-C would stop it.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_mins(2);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "local-stack did not stop");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success(), "{status}");
    assert_eq!(netns_with(&node), Vec::<String>::new(), "namespaces left");
    let workdir_s = workdir.path().to_string_lossy().into_owned();
    assert_eq!(
        processes_mentioning(&workdir_s),
        Vec::<String>::new(),
        "processes left"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&workdir_s), "mounts left: {mounts}");
}

/// `"<name> Ready after 5.0s"` → `<name>`.
fn ready_pod(text: &str) -> Option<String> {
    let (name, rest) = text.split_once(' ')?;
    rest.starts_with("Ready after").then(|| name.to_owned())
}
