//! One command run as a fresh process and measured from outside: wall time,
//! CPU time and peak resident memory (sampled from `/proc/<pid>` while it
//! runs), its standard error, and a timeout after which it is killed.
//!
//! The benches compare whole processes, as a user runs them: start-up,
//! allocation from an empty heap and exit are part of what they wait for.

// Figures for a report: precision past 52 bits does not matter.
#![allow(clippy::cast_precision_loss)]

use std::io::Read as _;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// How a finished process did.
#[derive(Debug)]
pub struct Measured {
    pub status: ExitStatus,
    pub wall: Duration,
    /// User plus system CPU seconds, as last sampled (within [`SAMPLE`]).
    pub cpu_secs: f64,
    /// Peak resident set (`VmHWM`), as last sampled, in MiB.
    pub peak_mib: f64,
    /// Standard output, when asked for (otherwise discarded).
    pub stdout: String,
    /// Standard error, up to [`KEEP`] bytes.
    pub stderr: String,
}

/// How often `/proc/<pid>` is read while the process runs.
const SAMPLE: Duration = Duration::from_millis(10);
/// How often the process is checked for exit: the wall time's resolution.
const POLL: Duration = Duration::from_micros(500);
/// Output kept from each stream.
const KEEP: u64 = 1 << 20;

/// CPU seconds (user + system) and peak RSS in MiB of a running process.
fn sample(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: the state is field 3, so
    // utime (14) and stime (15) are at indexes 11 and 12.
    let rest = stat.rsplit_once(')').map(|(_, r)| r)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    let cpu = (ticks(11)? + ticks(12)?) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kib = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())?;
    Some((cpu, hwm_kib / 1024.0))
}

/// Read a stream to its end on its own thread, keeping at most [`KEEP`] bytes.
fn drain(stream: Option<impl std::io::Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        if let Some(mut s) = stream {
            let _ = s.by_ref().take(KEEP).read_to_end(&mut kept);
            // Whatever is past the limit is read and dropped, so the child never blocks.
            let _ = std::io::copy(&mut s, &mut std::io::sink());
        }
        String::from_utf8_lossy(&kept).into_owned()
    })
}

/// Run `cmd` to completion, killing it after `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration, keep_stdout: bool) -> Result<Measured> {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(if keep_stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let pid = child.id();
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let (mut cpu_secs, mut peak_mib) = (0.0, 0.0);
    let mut sampled = Instant::now()
        .checked_sub(SAMPLE)
        .unwrap_or_else(Instant::now);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if sampled.elapsed() >= SAMPLE {
            if let Some((c, p)) = sample(pid) {
                (cpu_secs, peak_mib) = (c, p);
            }
            sampled = Instant::now();
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{cmd:?} took longer than {timeout:?}");
        }
        std::thread::sleep(POLL);
    };
    let wall = started.elapsed();
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok(Measured {
        status,
        wall,
        cpu_secs,
        peak_mib,
        stdout,
        stderr,
    })
}

/// The release `dtlint` next to this xtask binary.
pub fn dtlint_bin() -> Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    exe.parent()
        .map(|d| d.join("dtlint"))
        .filter(|p| p.is_file())
        .context("build dtlint first: cargo build --release -p dtlint")
}

/// The median of `v` (the upper one of an even count); 0 when empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_process_and_keeps_its_output() {
        let m = run(
            Command::new("sh").args(["-c", "echo out; echo err >&2; sleep 0.05"]),
            Duration::from_secs(10),
            true,
        )
        .unwrap();
        assert!(m.status.success());
        assert_eq!(m.stdout, "out\n");
        assert_eq!(m.stderr, "err\n");
        assert!(m.wall >= Duration::from_millis(50), "{:?}", m.wall);
        assert!(m.peak_mib > 0.0, "sampled at least once while it slept");
    }

    #[test]
    fn kills_a_process_past_its_timeout() {
        let started = Instant::now();
        let e = run(
            Command::new("sleep").arg("30"),
            Duration::from_millis(100),
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("took longer than"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert!((median(vec![3.0, 1.0, 2.0]) - 2.0).abs() < f64::EPSILON);
        assert!((median(vec![4.0, 1.0, 3.0, 2.0]) - 3.0).abs() < f64::EPSILON);
        assert!(median(vec![]).abs() < f64::EPSILON);
    }
}
