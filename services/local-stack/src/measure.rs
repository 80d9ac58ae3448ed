//! `--measure-idle SECONDS`: the memory of each idle service (a benchmark,
//! not a test). Once every service is ready, `/proc/<pid>/status` is read
//! (VmRSS, VmHWM, threads), the stack is left idle for the given time (MC
//! and MH keep heartbeating GC, as in production), read again, printed as a
//! table and written to `<workdir>/idle-memory.json`; then the stack stops.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::services::Service;

/// The memory fields of `/proc/<pid>/status`, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcMemory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub threads: u64,
}

impl ProcMemory {
    /// Parses the text of `/proc/<pid>/status`.
    pub fn parse(status: &str) -> Option<Self> {
        let field = |name: &str| -> Option<u64> {
            status.lines().find_map(|line| {
                let value = line.strip_prefix(name)?.strip_prefix(':')?;
                value.split_whitespace().next()?.parse().ok()
            })
        };
        Some(Self {
            rss_kib: field("VmRSS")?,
            hwm_kib: field("VmHWM")?,
            threads: field("Threads").unwrap_or(0),
        })
    }

    pub fn read(pid: u32) -> anyhow::Result<Self> {
        let path = format!("/proc/{pid}/status");
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        Self::parse(&text).with_context(|| format!("{path} has no VmRSS/VmHWM"))
    }
}

// KiB of a process fit in f64's 52-bit mantissa.
#[allow(clippy::cast_precision_loss)]
fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Samples at ready, idles for `idle` (or until Ctrl-C), samples again,
/// prints the table and writes the JSON next to the logs.
pub async fn idle_memory(
    services: &mut [Service],
    idle: Duration,
    workdir: &Path,
) -> anyhow::Result<()> {
    let mut at_ready = Vec::new();
    for service in services.iter() {
        at_ready.push(ProcMemory::read(service.child.id())?);
    }
    eprintln!(
        "local-stack: all ready; measuring memory after {}s idle",
        idle.as_secs()
    );
    tokio::select! {
        () = tokio::time::sleep(idle) => {}
        () = common::shutdown::os_signal() => bail!("interrupted before the idle period ended"),
    }
    let mut rows = Vec::new();
    for (service, ready) in services.iter_mut().zip(&at_ready) {
        if let Some(status) = service.child.try_wait()? {
            bail!("{} exited while idle ({status})", service.name);
        }
        let idle = ProcMemory::read(service.child.id())?;
        rows.push((service.name, *ready, idle));
    }

    let mut text = format!(
        "\nIdle memory ({}s after all services were ready):\n\
         | service            | RSS at ready (MiB) | RSS idle (MiB) | HWM (MiB) | threads |\n\
         |--------------------|--------------------|----------------|-----------|---------|\n",
        idle.as_secs()
    );
    let mut total = 0;
    for (name, ready, idle) in &rows {
        total += idle.rss_kib;
        writeln!(
            text,
            "| {name:<18} | {:>18} | {:>14} | {:>9} | {:>7} |",
            mib(ready.rss_kib),
            mib(idle.rss_kib),
            mib(idle.hwm_kib),
            idle.threads
        )?;
    }
    writeln!(
        text,
        "| {:<18} | {:>18} | {:>14} | {:>9} | {:>7} |",
        "total",
        "",
        mib(total),
        "",
        ""
    )?;
    print!("{text}");

    let json = serde_json::json!({
        "idle_seconds": idle.as_secs(),
        "services": rows.iter().map(|(name, ready, idle)| serde_json::json!({
            "service": name,
            "rss_kib_at_ready": ready.rss_kib,
            "rss_kib_idle": idle.rss_kib,
            "hwm_kib": idle.hwm_kib,
            "threads": idle.threads,
        })).collect::<Vec<_>>(),
    });
    let path = workdir.join("idle-memory.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&json)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("local-stack: idle memory written to {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let status = "Name:\tac-service\nVmPeak:\t  900000 kB\nVmHWM:\t   20480 kB\n\
                      VmRSS:\t   18432 kB\nThreads:\t5\n";
        assert_eq!(
            ProcMemory::parse(status),
            Some(ProcMemory {
                rss_kib: 18_432,
                hwm_kib: 20_480,
                threads: 5
            })
        );
        assert_eq!(ProcMemory::parse("Name:\tx\n"), None);
    }

    #[test]
    fn reads_this_process() {
        let me = ProcMemory::read(std::process::id()).unwrap();
        assert!(me.rss_kib > 0 && me.hwm_kib >= me.rss_kib && me.threads >= 1);
    }
}
