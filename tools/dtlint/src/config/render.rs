//! `[render]` in `dtlint.toml`: what overlay builds may read and how long
//! they may run (enforced by `render_guard`).

use serde::Deserialize;

/// `[render]` in `dtlint.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RenderSettings {
    /// Paths outside the repository a kustomization may reference (absolute,
    /// or relative to the repository root), and prefixes of remote
    /// references dtlint may let kustomize fetch.
    #[serde(default)]
    pub allow_paths: Vec<String>,
    /// Longest one overlay build may run, in seconds.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// Most bytes one build may write to its standard output.
    #[serde(default = "default_max_output_bytes")]
    pub max_output_bytes: u64,
}

fn default_timeout_seconds() -> u64 {
    60
}

fn default_max_output_bytes() -> u64 {
    64 * 1024 * 1024
}

impl Default for RenderSettings {
    fn default() -> Self {
        Self {
            allow_paths: Vec::new(),
            timeout_seconds: default_timeout_seconds(),
            max_output_bytes: default_max_output_bytes(),
        }
    }
}
