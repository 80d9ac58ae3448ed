//! `DTLINT_TIMINGS=1`: how long each stage and rule takes, on stderr, for
//! profiling a slow run.

use std::sync::OnceLock;
use std::time::Instant;

/// True when `DTLINT_TIMINGS` is set.
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("DTLINT_TIMINGS").is_some())
}

/// Run `f`, reporting its duration under `name` when timings are on.
pub fn stage<T>(name: &str, f: impl FnOnce() -> T) -> T {
    if !enabled() {
        return f();
    }
    let start = Instant::now();
    let v = f();
    report(name, start);
    v
}

/// Report the time since `start` under `name`.
pub fn report(name: &str, start: Instant) {
    if enabled() {
        eprintln!(
            "dtlint: timing: {name:<32} {:>8.1} ms",
            start.elapsed().as_secs_f64() * 1000.0
        );
    }
}
