//! Bounded rendering, while kustomize runs: a child process with a deadline
//! and a cap on what it may print, scratch directories that are removed on
//! every exit path, and a SIGINT/SIGTERM handler that kills the children and
//! removes the scratch directories before dtlint exits.
//!
//! Each child runs in its own process group, so killing the group also kills
//! whatever it started (kustomize runs helm, plugins). Scratch directories
//! and process groups are recorded in one registry; creating a directory,
//! spawning a child and the signal handler's clean-up all hold its lock, so
//! nothing is created that the handler does not see.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

#[derive(Debug, Default)]
struct Registry {
    next: u64,
    dirs: BTreeMap<u64, PathBuf>,
    groups: BTreeMap<u64, u32>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next: 0,
    dirs: BTreeMap::new(),
    groups: BTreeMap::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    // A panic elsewhere while holding the lock leaves the maps consistent
    // (each update is one insert or remove).
    REGISTRY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Registry {
    fn id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }
}

fn kill_group(pgid: u32) {
    if let Some(pid) = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        // Already gone is fine.
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Kill every child and remove every scratch directory.
fn clean_up(reg: &mut Registry) {
    for pgid in std::mem::take(&mut reg.groups).into_values() {
        kill_group(pgid);
    }
    for dir in std::mem::take(&mut reg.dirs).into_values() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Install the SIGINT/SIGTERM handler (once per process): it kills the
/// children, removes the scratch directories and exits with 128 + the
/// signal number (130 for Ctrl-C).
pub fn install_signal_handler() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
            // Without the handler the default action (exit) still applies;
            // only the clean-up is lost.
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("dtlint-signals".into())
            .spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    // Held until exit: no thread creates anything meanwhile.
                    let mut reg = registry();
                    clean_up(&mut reg);
                    eprintln!("dtlint: interrupted");
                    std::process::exit(128 + signal);
                }
            });
        if spawned.is_err() {
            eprintln!("dtlint: cannot watch for Ctrl-C; temporary directories may remain");
        }
    });
}

/// A temporary directory, removed when dropped or when dtlint is interrupted.
#[derive(Debug)]
pub struct ScratchDir {
    dir: Option<tempfile::TempDir>,
    id: u64,
}

impl ScratchDir {
    /// A new directory `<prefix>XXXXXX` in `base` (created if needed).
    pub fn new_in(base: &Path, prefix: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(base)?;
        let mut reg = registry();
        let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(base)?;
        let id = reg.id();
        reg.dirs.insert(id, dir.path().to_path_buf());
        Ok(Self { dir: Some(dir), id })
    }

    pub fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or(Path::new(""), tempfile::TempDir::path)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let mut reg = registry();
        if let Some(dir) = self.dir.take() {
            // A failure leaves a directory behind that nothing can fix now.
            let _ = dir.close();
        }
        reg.dirs.remove(&self.id);
    }
}

/// How long a child may run and how much it may print.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub max_stdout: u64,
    pub max_stderr: u64,
}

/// Why a child did not finish normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Spawn(String),
    TimedOut(Duration),
    TooMuchOutput { stream: &'static str, limit: u64 },
    Wait(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Spawn(e) => write!(f, "cannot run it: {e}"),
            Self::TimedOut(d) => write!(f, "killed after {} s without finishing", d.as_secs()),
            Self::TooMuchOutput { stream, limit } => write!(
                f,
                "killed after writing more than {} to its {stream}",
                human_size(*limit)
            ),
            Self::Wait(e) => write!(f, "lost track of it: {e}"),
        }
    }
}

/// What a child printed and how it exited.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Run `cmd` to completion within `limits`: in its own process group, with
/// no standard input; on timeout or too much output the whole group is
/// killed.
pub fn run(cmd: &mut Command, limits: Limits) -> Result<Finished, Failure> {
    use std::os::unix::process::CommandExt as _;
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (mut child, id) = {
        let mut reg = registry();
        let child = cmd.spawn().map_err(|e| Failure::Spawn(e.to_string()))?;
        let id = reg.id();
        reg.groups.insert(id, child.id());
        (child, id)
    };
    let result = supervise(&mut child, limits);
    registry().groups.remove(&id);
    result
}

fn supervise(child: &mut Child, limits: Limits) -> Result<Finished, Failure> {
    let pgid = child.id();
    let overflow: Mutex<Option<(&'static str, u64)>> = Mutex::new(None);
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let stopped = AtomicBool::new(false);
    std::thread::scope(|s| {
        let read = |pipe: Option<Box<dyn Read + Send>>, stream: &'static str, limit: u64| {
            let overflow = &overflow;
            let stopped = &stopped;
            s.spawn(move || {
                let mut buf = Vec::new();
                let Some(pipe) = pipe else { return buf };
                // An error reading the pipe ends the output; the exit status
                // still tells whether the build worked.
                let _ = pipe.take(limit.saturating_add(1)).read_to_end(&mut buf);
                if buf.len() as u64 > limit {
                    buf.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
                    if let Ok(mut o) = overflow.lock() {
                        o.get_or_insert((stream, limit));
                    }
                    if !stopped.load(Ordering::SeqCst) {
                        kill_group(pgid);
                    }
                }
                buf
            })
        };
        let out = read(
            stdout.map(|p| Box::new(p) as Box<dyn Read + Send>),
            "standard output",
            limits.max_stdout,
        );
        let err = read(
            stderr.map(|p| Box::new(p) as Box<dyn Read + Send>),
            "standard error",
            limits.max_stderr,
        );
        // A thread waits for the child, so its exit is seen at once (no
        // polling); on timeout the group is killed and the wait returns.
        let (done, exited) = std::sync::mpsc::channel();
        let waiter = s.spawn(move || {
            let status = child.wait();
            let _ = done.send(());
            status
        });
        let timed_out = match exited.recv_timeout(limits.timeout) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                kill_group(pgid);
                true
            }
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => false,
        };
        let status = match waiter.join() {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(e)) => Err(Failure::Wait(e.to_string())),
            Err(_) => Err(Failure::Wait("the waiting thread panicked".into())),
        };
        // Whatever the child left running still holds the pipes open: end it
        // so the readers see the end of their streams. The group id stays
        // reserved while any member lives, so this reaches no stranger.
        kill_group(pgid);
        stopped.store(true, Ordering::SeqCst);
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        let status = status?;
        if timed_out {
            return Err(Failure::TimedOut(limits.timeout));
        }
        if let Some((stream, limit)) = overflow.lock().ok().and_then(|o| *o) {
            return Err(Failure::TooMuchOutput { stream, limit });
        }
        Ok(Finished {
            status,
            stdout,
            stderr,
        })
    })
}

/// `1.5 MiB`, `300 B`.
pub fn human_size(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB {
        #[allow(clippy::cast_precision_loss)]
        let mib = bytes as f64 / MIB as f64;
        if bytes.is_multiple_of(MIB) {
            format!("{} MiB", bytes / MIB)
        } else {
            format!("{mib:.1} MiB")
        }
    } else if bytes >= 1024 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn limits(ms: u64, out: u64) -> Limits {
        Limits {
            timeout: Duration::from_millis(ms),
            max_stdout: out,
            max_stderr: 1024,
        }
    }

    #[test]
    fn output_is_collected() {
        let f = run(
            Command::new("sh").args(["-c", "echo hi; echo err >&2"]),
            limits(10_000, 1024),
        )
        .unwrap();
        assert!(f.status.success());
        assert_eq!(f.stdout, b"hi\n");
        assert_eq!(f.stderr, b"err\n");
    }

    #[test]
    fn a_slow_child_is_killed_with_its_group() {
        let started = Instant::now();
        let e = run(
            Command::new("sh").args(["-c", "sleep 30 & sleep 30"]),
            limits(300, 1024),
        )
        .unwrap_err();
        assert_eq!(e, Failure::TimedOut(Duration::from_millis(300)));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn endless_output_is_cut() {
        let e = run(Command::new("yes").arg("y"), limits(10_000, 1 << 20)).unwrap_err();
        assert_eq!(
            e,
            Failure::TooMuchOutput {
                stream: "standard output",
                limit: 1 << 20
            }
        );
    }

    #[test]
    fn scratch_dirs_are_removed() {
        let base = tempfile::tempdir().unwrap();
        let path = {
            let d = ScratchDir::new_in(base.path(), "wrap-").unwrap();
            assert!(d.path().is_dir());
            d.path().to_path_buf()
        };
        assert!(!path.exists());
        assert!(registry().dirs.values().all(|d| *d != path));
    }
}
