//! Bounded rendering: hostile kustomization inputs give a positioned error,
//! quickly, under a 2 GiB address-space limit; kustomize gets a timeout and
//! an output cap; wrapper directories never outlive a run, Ctrl-C included;
//! the build cache notices every file kustomize reads.
//!
//! Builds that must not depend on a real kustomize use the stand-in
//! `tests/fixtures/_render/fake-kustomize` through `DTLINT_KUSTOMIZE`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::format_push_string
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const DTLINT: &str = env!("CARGO_BIN_EXE_dtlint");

fn fake_kustomize() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/_render/fake-kustomize")
}

/// `dtlint check --format json` in `dir`, under a 2 GiB address-space limit
/// (`ulimit -v` of the POSIX shell: no unsafe code, no extra tool).
fn capped_check(dir: &Path) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", "ulimit -v 2097152 && exec \"$@\"", "sh", DTLINT])
        .args(["check", "--format", "json", "--no-cache"])
        .current_dir(dir)
        .env_remove("DTLINT_KUSTOMIZE")
        .env_remove("DTLINT_CACHE_DIR");
    c
}

/// A scratch repository whose development overlay has `kustomization`.
fn repo_with_overlay(config: &str, kustomization: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    let overlay = root.join("overlays/development/app");
    std::fs::create_dir_all(&overlay).unwrap();
    std::fs::write(
        root.join("dtlint.toml"),
        format!("[environments.development]\noverlays = \"overlays/development\"\n{config}"),
    )
    .unwrap();
    std::fs::write(overlay.join("kustomization.yaml"), kustomization).unwrap();
    std::fs::write(
        overlay.join("configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  a: b\n",
    )
    .unwrap();
    (tmp, root)
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Findings of `rule` as `file:line`.
fn places(v: &serde_json::Value, rule: &str) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == rule)
        .map(|f| {
            format!(
                "{}:{}",
                f["location"]["file"].as_str().unwrap(),
                f["location"]["line"]
            )
        })
        .collect()
}

const KFILE: &str = "overlays/development/app/kustomization.yaml";

/// One hostile entry as the second resource of the overlay: a positioned
/// error at its line, exit 1, within seconds, under the memory cap.
fn assert_refused(setup: impl FnOnce(&Path) -> String, rule: &str, says: &str) {
    assert_refused_with("", setup, rule, says);
}

fn assert_refused_with(config: &str, setup: impl FnOnce(&Path) -> String, rule: &str, says: &str) {
    let (_tmp, root) = repo_with_overlay(config, "");
    let entry = setup(&root);
    std::fs::write(
        root.join(KFILE),
        format!("resources:\n  - configmap.yaml\n  - {entry}\n"),
    )
    .unwrap();
    let started = Instant::now();
    let out = capped_check(&root).output().unwrap();
    let took = started.elapsed();
    let v = json(&out);
    assert_eq!(out.status.code(), Some(1), "{v:#}");
    assert!(
        places(&v, rule).contains(&format!("{KFILE}:3")),
        "{rule} at {KFILE}:3 for `{entry}`: {v:#}"
    );
    let message = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == rule)
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains(says), "{message}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn dev_zero_is_refused() {
    assert_refused(
        |_| "/dev/zero".into(),
        "unsafe-kustomize-path",
        "outside the repository",
    );
}

#[test]
fn a_symlink_to_dev_zero_is_refused() {
    assert_refused(
        |root| {
            std::os::unix::fs::symlink(
                "/dev/zero",
                root.join("overlays/development/app/zero.yaml"),
            )
            .unwrap();
            "zero.yaml".into()
        },
        "unsafe-kustomize-path",
        "resolves to `/dev/zero`",
    );
}

#[test]
fn a_fifo_is_refused() {
    assert_refused(
        |root| {
            let fifo = root.join("overlays/development/app/pipe.yaml");
            let ok = Command::new("mkfifo").arg(&fifo).status().unwrap();
            assert!(ok.success());
            "pipe.yaml".into()
        },
        "unsafe-kustomize-path",
        "is a FIFO",
    );
}

#[test]
fn a_symlink_loop_is_refused() {
    assert_refused(
        |root| {
            let dir = root.join("overlays/development/app");
            std::os::unix::fs::symlink("b.yaml", dir.join("a.yaml")).unwrap();
            std::os::unix::fs::symlink("a.yaml", dir.join("b.yaml")).unwrap();
            "a.yaml".into()
        },
        "unsafe-kustomize-path",
        "symbolic link loop",
    );
}

#[test]
fn a_relative_path_outside_the_repository_is_refused() {
    assert_refused(
        |root| {
            std::fs::write(
                root.parent().unwrap().join("outside.yaml"),
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: o\n",
            )
            .unwrap();
            "../../../../outside.yaml".into()
        },
        "unsafe-kustomize-path",
        "outside the repository",
    );
}

#[test]
fn an_absolute_path_outside_the_repository_is_refused() {
    assert_refused(
        |_| "/etc/passwd".into(),
        "unsafe-kustomize-path",
        "outside the repository",
    );
}

#[test]
fn a_huge_file_is_refused() {
    assert_refused(
        |root| {
            // Sparse: 4 GiB that take no disk and no time to make.
            let f = std::fs::File::create(root.join("overlays/development/app/huge.yaml")).unwrap();
            f.set_len(4 << 30).unwrap();
            "huge.yaml".into()
        },
        "unsafe-kustomize-path",
        "over the 16 MiB limit",
    );
}

#[test]
fn a_missing_file_is_positioned() {
    assert_refused(
        |_| "missing.yaml".into(),
        "kustomization-missing-file",
        "does not exist",
    );
}

#[test]
fn the_root_directory_under_a_flux_path_is_not_walked() {
    // Following `/` to look for SOPS files would walk the whole disk.
    assert_refused_with(
        "cluster = \"clusters/development\"\n",
        |root| {
            std::fs::create_dir_all(root.join("clusters/development")).unwrap();
            std::fs::write(
                root.join("clusters/development/app.yaml"),
                "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: app\n  namespace: flux-system\nspec:\n  interval: 10m\n  path: ./overlays/development/app\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n",
            )
            .unwrap();
            "/".into()
        },
        "unsafe-kustomize-path",
        "outside the repository",
    );
}

/// Names of `wrap-*` entries in `dir`.
fn wrappers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("wrap-"))
                .collect()
        })
        .unwrap_or_default()
}

/// `dtlint check` with the fake kustomize, its temporary directory and
/// cache in `scratch`.
fn fake_check(root: &Path, scratch: &Path, mode: &str, cache: bool) -> Command {
    let mut c = Command::new(DTLINT);
    c.args(["check", "--format", "json"])
        .current_dir(root)
        .env("DTLINT_KUSTOMIZE", fake_kustomize())
        .env("FAKE_KUSTOMIZE_MODE", mode)
        .env("FAKE_KUSTOMIZE_LOG", scratch.join("log"))
        .env("TMPDIR", scratch.join("tmp"))
        .env("DTLINT_CACHE_DIR", scratch.join("cache"))
        .stdin(Stdio::null());
    if !cache {
        c.arg("--no-cache");
    }
    std::fs::create_dir_all(scratch.join("tmp")).unwrap();
    c
}

fn log_lines(scratch: &Path) -> Vec<String> {
    std::fs::read_to_string(scratch.join("log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Is process `pid` gone (or a zombie nobody reaped yet)?
fn gone(pid: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let dead = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
        };
        if dead || Instant::now() > deadline {
            return dead;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn wrappers_are_removed_after_a_run() {
    let (_tmp, root) = repo_with_overlay("", "resources:\n  - configmap.yaml\n");
    let scratch = tempfile::tempdir().unwrap();
    for cache in [false, true] {
        let out = fake_check(&root, scratch.path(), "ok", cache)
            .output()
            .unwrap();
        assert!(out.status.code().is_some(), "{out:?}");
        assert_eq!(
            log_lines(scratch.path()).len(),
            1,
            "built once, then cached"
        );
        assert_eq!(wrappers(&scratch.path().join("tmp")), Vec::<String>::new());
        assert_eq!(
            wrappers(&scratch.path().join("cache")),
            Vec::<String>::new()
        );
        std::fs::remove_file(scratch.path().join("log")).unwrap();
    }
}

fn wait_with_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("dtlint did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ctrl_c_mid_build_kills_kustomize_and_removes_wrappers() {
    let (_tmp, root) = repo_with_overlay("", "resources:\n  - configmap.yaml\n");
    let scratch = tempfile::tempdir().unwrap();
    let mut child = fake_check(&root, scratch.path(), "sleep", true)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the build to be under way: the fake logs its sleeper's pid.
    let deadline = Instant::now() + Duration::from_secs(30);
    let sleeper = loop {
        if let Some(pid) = log_lines(scratch.path()).first() {
            break pid.clone();
        }
        assert!(Instant::now() < deadline, "the build never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(wrappers(&scratch.path().join("cache")).len(), 1);
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = wait_with_timeout(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(130));
    assert_eq!(
        wrappers(&scratch.path().join("cache")),
        Vec::<String>::new()
    );
    assert!(gone(&sleeper), "kustomize's child {sleeper} still runs");
}

#[test]
fn a_hanging_build_times_out() {
    let (_tmp, root) = repo_with_overlay(
        "[render]\ntimeout-seconds = 1\n",
        "resources:\n  - configmap.yaml\n",
    );
    let scratch = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = fake_check(&root, scratch.path(), "sleep", false)
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(15));
    let v = json(&out);
    assert_eq!(out.status.code(), Some(1), "{v:#}");
    let f = &v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "kustomize-build-failed")
        .unwrap_or_else(|| panic!("{v:#}"))["message"];
    assert!(f.as_str().unwrap().contains("killed after 1 s"), "{f}");
    assert_eq!(wrappers(&scratch.path().join("tmp")), Vec::<String>::new());
    let sleeper = log_lines(scratch.path()).first().cloned().unwrap();
    assert!(gone(&sleeper), "kustomize's child {sleeper} still runs");
}

#[test]
fn endless_output_is_cut() {
    let (_tmp, root) = repo_with_overlay(
        "[render]\nmax-output-bytes = 65536\n",
        "resources:\n  - configmap.yaml\n",
    );
    let scratch = tempfile::tempdir().unwrap();
    let out = capped(&fake_check(&root, scratch.path(), "flood", false))
        .output()
        .unwrap();
    let v = json(&out);
    assert_eq!(out.status.code(), Some(1), "{v:#}");
    let messages: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "kustomize-build-failed")
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("more than 64 KiB")),
        "{messages:?}"
    );
}

/// `cmd` under the 2 GiB address-space limit.
fn capped(cmd: &Command) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", "ulimit -v 2097152 && exec \"$@\"", "sh"])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .current_dir(cmd.get_current_dir().unwrap_or(Path::new(".")));
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

#[test]
fn every_file_kustomize_reads_is_in_the_cache_key() {
    let (_tmp, root) = repo_with_overlay(
        "",
        "resources:\n  - configmap.yaml\nreplacements:\n  - path: replacements.yaml\nopenapi:\n  path: schema.json\nconfigurations:\n  - name-reference.yaml\ntransformers:\n  - labels.yaml\n",
    );
    let overlay = root.join("overlays/development/app");
    let inputs = [
        "replacements.yaml",
        "schema.json",
        "name-reference.yaml",
        "labels.yaml",
    ];
    for f in inputs {
        std::fs::write(overlay.join(f), "# v1\n").unwrap();
    }
    let scratch = tempfile::tempdir().unwrap();
    let builds = || {
        fake_check(&root, scratch.path(), "ok", true)
            .output()
            .unwrap();
        log_lines(scratch.path()).len()
    };
    assert_eq!(builds(), 1);
    assert_eq!(builds(), 1, "unchanged inputs come from the cache");
    for (i, f) in inputs.iter().enumerate() {
        std::fs::write(overlay.join(f), "# v2\n").unwrap();
        assert_eq!(builds(), i + 2, "changing {f} rebuilds");
    }
}

#[test]
fn builds_run_with_collection_off_unless_the_user_says_otherwise() {
    let (_tmp, root) = repo_with_overlay("", "resources:\n  - configmap.yaml\n");
    let scratch = tempfile::tempdir().unwrap();
    let out = fake_check(&root, scratch.path(), "env", false)
        .env_remove("GOGC")
        .env_remove("GOMEMLIMIT")
        .env_remove("GOMAXPROCS")
        .output()
        .unwrap();
    assert!(out.status.code().is_some(), "{out:?}");
    assert_eq!(
        log_lines(scratch.path()),
        ["GOGC=off GOMEMLIMIT=1GiB GOMAXPROCS=1"]
    );
    std::fs::remove_file(scratch.path().join("log")).unwrap();
    let out = fake_check(&root, scratch.path(), "env", false)
        .env("GOGC", "200")
        .env_remove("GOMEMLIMIT")
        .env("GOMAXPROCS", "4")
        .output()
        .unwrap();
    assert!(out.status.code().is_some(), "{out:?}");
    assert_eq!(
        log_lines(scratch.path()),
        ["GOGC=200 GOMEMLIMIT=1GiB GOMAXPROCS=4"]
    );
}

#[test]
fn the_cache_lives_outside_the_repository() {
    let (_tmp, root) = repo_with_overlay("", "resources:\n  - configmap.yaml\n");
    let scratch = tempfile::tempdir().unwrap();
    let home = scratch.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let before = list_tree(&root);
    let run = |extra: &[&str]| {
        let out = Command::new(DTLINT)
            .args(["check", "--format", "json"])
            .args(extra)
            .current_dir(&root)
            .env("DTLINT_KUSTOMIZE", fake_kustomize())
            .env("FAKE_KUSTOMIZE_LOG", scratch.path().join("log"))
            .env("HOME", &home)
            .env_remove("XDG_CACHE_HOME")
            .env_remove("DTLINT_CACHE_DIR")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.code().is_some(), "{out:?}");
    };
    run(&[]);
    assert_eq!(
        list_tree(&root),
        before,
        "nothing written into the repository"
    );
    let cached = |dir: &Path| {
        std::fs::read_dir(dir).map_or(0, |rd| {
            rd.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
                .count()
        })
    };
    assert_eq!(cached(&home.join(".cache/dtlint")), 1);
    let chosen = scratch.path().join("chosen");
    run(&["--cache-dir", chosen.to_str().unwrap()]);
    assert_eq!(cached(&chosen), 1);
    assert_eq!(list_tree(&root), before);
}

/// Every path under `dir`, sorted.
fn list_tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
            out.push(e.path());
        }
    }
    out.sort();
    out
}

#[test]
fn two_clones_sharing_the_cache_do_not_share_builds() {
    // The output names files by paths from the cache directory: an entry
    // of one clone would point the other's findings into the first.
    let (_a, first) = repo_with_overlay("", "resources:\n  - configmap.yaml\n");
    let (_b, second) = repo_with_overlay("", "resources:\n  - configmap.yaml\n");
    let scratch = tempfile::tempdir().unwrap();
    for root in [&first, &second, &first] {
        let out = fake_check(root, scratch.path(), "ok", true)
            .output()
            .unwrap();
        assert!(out.status.code().is_some(), "{out:?}");
    }
    assert_eq!(
        log_lines(scratch.path()).len(),
        2,
        "each clone built once, the first one's build then reused"
    );
}
