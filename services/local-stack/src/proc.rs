//! Running short helper commands (`ip`, `nft`, `kubectl`, `psql`, ...) with a
//! timeout and bounded output, so that a stuck tool fails the run with its
//! name instead of hanging it.

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// Output kept from one command (the rest is dropped).
const MAX_OUTPUT: u64 = 64 << 20;

/// Runs `program args`, feeding `stdin`, and returns its stdout; a non-zero
/// exit or a timeout is an error quoting the end of stderr.
pub fn run_with_input(
    program: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
    envs: &[(&str, &str)],
    timeout: Duration,
) -> anyhow::Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input)
            .with_context(|| format!("writing to {program}"))?;
    }
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.take(MAX_OUTPUT).read_to_end(&mut buf);
        }
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.take(MAX_OUTPUT).read_to_end(&mut buf);
        }
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{program} {} did not finish within {}s",
                args.join(" "),
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if !status.success() {
        let err = String::from_utf8_lossy(&err);
        let tail: Vec<&str> = err.lines().rev().take(8).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "{program} {} failed ({status}): {}",
            args.join(" "),
            tail.join("\n")
        );
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// [`run_with_input`] without input or extra environment.
pub fn run_checked(program: &str, args: &[&str], timeout: Duration) -> anyhow::Result<String> {
    run_with_input(program, args, None, &[], timeout)
}

/// The last `lines` lines of a log file (read from its last 64 KiB).
pub fn log_tail(path: &std::path::Path, lines: usize) -> String {
    use std::io::Seek as _;
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let _ = f.seek(std::io::SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut text = String::new();
    let _ = f.take(64 * 1024).read_to_string(&mut text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_errors_and_timeouts() {
        assert_eq!(
            run_checked("/bin/sh", &["-c", "echo hi"], Duration::from_secs(5)).unwrap(),
            "hi\n"
        );
        let err = run_checked(
            "/bin/sh",
            &["-c", "echo bad >&2; exit 3"],
            Duration::from_secs(5),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("failed") && err.contains("bad"), "{err}");
        let err = run_checked("/bin/sh", &["-c", "sleep 5"], Duration::from_millis(200))
            .unwrap_err()
            .to_string();
        assert!(err.contains("did not finish within 0s"), "{err}");
        let out =
            run_with_input("/bin/cat", &[], Some(b"in"), &[], Duration::from_secs(5)).unwrap();
        assert_eq!(out, "in");
    }
}
