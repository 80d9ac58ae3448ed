//! JSON structured logs via `tracing`, filtered by `RUST_LOG`.
//!
//! One JSON object per line on stdout (what Loki/Promtail ingest). The
//! filter string comes from the service config (which reads `RUST_LOG`
//! through the env contract), so a malformed filter is a config error that
//! names the variable rather than a silently ignored directive.

use tracing_subscriber::EnvFilter;

use crate::config::ConfigError;

/// The default when `RUST_LOG` is unset.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// Parses a `RUST_LOG`-style filter, naming the variable on error.
pub fn parse_filter(filter: &str) -> Result<EnvFilter, ConfigError> {
    EnvFilter::try_new(filter).map_err(|e| ConfigError::malformed("RUST_LOG", e.to_string()))
}

/// Installs the global JSON subscriber. Calling it twice is harmless (the
/// second call is ignored), which keeps tests that start several apps simple.
pub fn init(filter: &str) -> Result<(), ConfigError> {
    let filter = parse_filter(filter)?;
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(true)
        .with_env_filter(filter)
        .try_init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_filter_names_rust_log() {
        let err = parse_filter("info,=[").unwrap_err();
        assert_eq!(err.variable(), "RUST_LOG");
    }

    #[test]
    fn good_filters_parse() {
        parse_filter("info,sqlx=warn").unwrap();
        parse_filter(DEFAULT_LOG_FILTER).unwrap();
    }
}
