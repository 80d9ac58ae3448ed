//! Deciding whether a live cluster is there to test, and connecting to it.
//!
//! The decision is split in two so that the part without a cluster is unit
//! tested: [`target_from_env`] reads the environment (pure), [`connect`]
//! loads the kubeconfig and asks the API server for its version with a short
//! timeout. [`cluster_or_skip`] is what each live test calls first.
//!
//! It is also where every test of this crate decides between skipping and
//! failing: a skip prints a `DT-SKIP: <test>: <reason>` line
//! ([`skip_line`]); `DT_REQUIRE_ALL` (set by `tools/ci/test-all.sh`) turns
//! every skip into a failure, `DT_ENV_TESTS_REQUIRE` those of the live tests.

use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Names the kubeconfig of the cluster under test; wins over `KUBECONFIG`.
pub const KUBECONFIG_VAR: &str = "DT_ENV_TESTS_KUBECONFIG";
/// Optional kubeconfig context (default: the file's current context).
pub const CONTEXT_VAR: &str = "DT_ENV_TESTS_CONTEXT";
/// When `1`/`true`, a missing or silent cluster fails the tests instead of
/// skipping them (for a CI job that has just created a cluster).
pub const REQUIRE_VAR: &str = "DT_ENV_TESTS_REQUIRE";
/// Set by `tools/ci/test-all.sh`: every test that cannot run fails instead of
/// skipping, in this crate and the others; implies [`REQUIRE_VAR`].
pub const REQUIRE_ALL_VAR: &str = "DT_REQUIRE_ALL";

/// How long the API server gets to answer the version probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the cluster under test is described: the kubeconfig files (merged
/// in order, like kubectl does for a `KUBECONFIG` list) and the variable that
/// named them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub paths: Vec<PathBuf>,
    pub origin: &'static str,
}

/// Why the live tests do not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    #[error(
        "no cluster configured: set {KUBECONFIG_VAR} (or KUBECONFIG) to the kubeconfig of a \
         running Dark Tower cluster, e.g. the one tools/local/setup.sh creates"
    )]
    NotConfigured,
    #[error("cannot load the kubeconfig ({origin}): {reason}")]
    BadKubeconfig { origin: String, reason: String },
    #[error("the cluster at {url} does not answer: {reason}")]
    Unreachable { url: String, reason: String },
}

/// A reachable cluster.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    /// Kept so that `Drop` implementations can build a fresh client on their
    /// own runtime (see `canary::CanaryPod`).
    pub config: Config,
    /// `major.minor` as the API server reports it.
    pub version: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("url", &self.config.cluster_url.to_string())
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// Reads which cluster to test from the environment (`get` is `std::env::var`
/// in real use). Empty values count as unset.
pub fn target_from_env(get: &impl Fn(&str) -> Option<String>) -> Option<Target> {
    for origin in [KUBECONFIG_VAR, "KUBECONFIG"] {
        if let Some(value) = non_empty(get(origin)) {
            let paths: Vec<PathBuf> = std::env::split_paths(&value)
                .filter(|p| !p.as_os_str().is_empty())
                .collect();
            if !paths.is_empty() {
                return Some(Target { paths, origin });
            }
        }
    }
    None
}

fn truthy(get: &impl Fn(&str) -> Option<String>, var: &str) -> bool {
    matches!(
        non_empty(get(var))
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref(),
        Some("1" | "true" | "yes")
    )
}

/// Whether every test must run: [`REQUIRE_ALL_VAR`].
pub fn require_all(get: &impl Fn(&str) -> Option<String>) -> bool {
    truthy(get, REQUIRE_ALL_VAR)
}

/// Whether a live test's skip must fail instead: [`REQUIRE_VAR`] or
/// [`REQUIRE_ALL_VAR`].
pub fn skip_is_failure(get: &impl Fn(&str) -> Option<String>) -> bool {
    truthy(get, REQUIRE_VAR) || require_all(get)
}

/// The line every skipped test of this crate prints to stderr, which
/// `tools/ci/test-all.sh` lists in its summary.
pub fn skip_line(test: &str, reason: &dyn std::fmt::Display) -> String {
    format!("DT-SKIP: {test}: {reason}")
}

/// What an offline test calls when a tool or input it needs is missing:
/// prints [`skip_line`] and returns (the caller then returns), or, with
/// [`REQUIRE_ALL_VAR`] set, fails the test naming what is missing.
pub fn skip_or_fail(test: &str, reason: &str) {
    assert!(
        !require_all(&env_var),
        "{test} cannot run: {reason} ({REQUIRE_ALL_VAR} is set, so this is a failure)"
    );
    eprintln!("{}", skip_line(test, &reason));
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

async fn load_config(target: &Target, context: Option<String>) -> Result<Config, Skip> {
    let bad = |reason: String| Skip::BadKubeconfig {
        origin: format!(
            "{}={}",
            target.origin,
            std::env::join_paths(&target.paths)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        ),
        reason,
    };
    let mut merged: Option<Kubeconfig> = None;
    for path in &target.paths {
        let next = Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
        merged = Some(match merged {
            None => next,
            Some(first) => first.merge(next).map_err(|e| bad(e.to_string()))?,
        });
    }
    let kubeconfig = merged.ok_or_else(|| bad("no kubeconfig file named".to_owned()))?;
    let options = KubeConfigOptions {
        context,
        ..KubeConfigOptions::default()
    };
    Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| bad(e.to_string()))
}

/// Connects to the cluster the environment (`get`) names and checks that it
/// answers.
pub async fn connect(get: impl Fn(&str) -> Option<String>) -> Result<Cluster, Skip> {
    let target = target_from_env(&get).ok_or(Skip::NotConfigured)?;
    let config = load_config(&target, non_empty(get(CONTEXT_VAR))).await?;
    let url = config.cluster_url.to_string();
    let client = Client::try_from(config.clone()).map_err(|e| Skip::Unreachable {
        url: url.clone(),
        reason: e.to_string(),
    })?;
    let info = tokio::time::timeout(PROBE_TIMEOUT, client.apiserver_version())
        .await
        .map_err(|_| Skip::Unreachable {
            url: url.clone(),
            reason: format!("no answer within {}s", PROBE_TIMEOUT.as_secs()),
        })?
        .map_err(|e| Skip::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        })?;
    Ok(Cluster {
        client,
        config,
        version: format!("{}.{}", info.major, info.minor),
    })
}

/// A live test that found no cluster while `DT_ENV_TESTS_REQUIRE` or
/// `DT_REQUIRE_ALL` is set.
#[derive(Debug, thiserror::Error)]
#[error("{test}: {skip} ({REQUIRE_VAR} or {REQUIRE_ALL_VAR} is set, so this is a failure)")]
pub struct Required {
    pub test: String,
    pub skip: Skip,
}

/// What every live test calls first: `Ok(Some(cluster))` to run,
/// `Ok(None)` after printing why it is skipped, `Err` when skipping is not
/// allowed.
pub async fn cluster_or_skip(test: &str) -> Result<Option<Cluster>, Required> {
    Ok(match cluster_or_skip_with(test, env_var).await? {
        Ok(cluster) => Some(cluster),
        Err(skip) => {
            eprintln!("{}", skip_line(test, &skip));
            None
        }
    })
}

/// [`cluster_or_skip`]'s decision with the environment passed in: the
/// reason to skip is returned (`Ok(Err(skip))`), not printed.
pub async fn cluster_or_skip_with(
    test: &str,
    get: impl Fn(&str) -> Option<String>,
) -> Result<Result<Cluster, Skip>, Required> {
    match connect(&get).await {
        Err(skip) if skip_is_failure(&get) => Err(Required {
            test: test.to_owned(),
            skip,
        }),
        result => Ok(result),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    /// A kubeconfig whose server is a loopback port nobody listens on.
    fn kubeconfig_for_closed_port(dir: &std::path::Path) -> PathBuf {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let path = dir.join("kubeconfig.yaml");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  \
                 cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: c\n  \
                 context:\n    cluster: k\n    user: u\nusers:\n- name: u\n  user: {{}}\n"
            ),
        )
        .unwrap();
        path
    }

    #[test]
    fn nothing_set_means_no_target() {
        assert_eq!(target_from_env(&env(&[])), None);
    }

    #[test]
    fn empty_values_count_as_unset() {
        assert_eq!(
            target_from_env(&env(&[(KUBECONFIG_VAR, " "), ("KUBECONFIG", "")])),
            None
        );
    }

    #[test]
    fn dedicated_variable_wins_over_kubeconfig() {
        let target = target_from_env(&env(&[
            (KUBECONFIG_VAR, "/tmp/dt.yaml"),
            ("KUBECONFIG", "/home/me/.kube/config"),
        ]))
        .unwrap();
        assert_eq!(target.paths, vec![PathBuf::from("/tmp/dt.yaml")]);
        assert_eq!(target.origin, KUBECONFIG_VAR);
    }

    #[test]
    fn kubeconfig_lists_are_split_like_kubectl_does() {
        let target = target_from_env(&env(&[("KUBECONFIG", "/a::/b")])).unwrap();
        assert_eq!(target.paths, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(target.origin, "KUBECONFIG");
    }

    #[test]
    fn require_accepts_common_truthy_values_only() {
        for yes in ["1", "true", "TRUE", "yes"] {
            assert!(skip_is_failure(&env(&[(REQUIRE_VAR, yes)])), "{yes}");
        }
        for no in ["", "0", "false", "no", "later"] {
            assert!(!skip_is_failure(&env(&[(REQUIRE_VAR, no)])), "{no}");
        }
        assert!(!skip_is_failure(&env(&[])));
    }

    #[test]
    fn require_all_implies_the_cluster_requirement() {
        assert!(skip_is_failure(&env(&[(REQUIRE_ALL_VAR, "1")])));
        assert!(require_all(&env(&[(REQUIRE_ALL_VAR, "true")])));
        assert!(!require_all(&env(&[(REQUIRE_VAR, "1")])));
        assert!(!skip_is_failure(&env(&[(REQUIRE_ALL_VAR, "0")])));
    }

    #[test]
    fn skip_lines_carry_the_marker_and_the_test() {
        assert_eq!(
            skip_line("t", &Skip::NotConfigured),
            format!("DT-SKIP: t: {}", Skip::NotConfigured)
        );
    }

    #[test]
    fn skip_messages_say_what_to_do() {
        let msg = Skip::NotConfigured.to_string();
        assert!(
            msg.contains(KUBECONFIG_VAR) && msg.contains("KUBECONFIG"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn no_configuration_skips() {
        let result = cluster_or_skip_with("t", env(&[])).await;
        assert!(matches!(result, Ok(Err(Skip::NotConfigured))), "{result:?}");
    }

    #[tokio::test]
    async fn no_configuration_fails_when_required() {
        let err = cluster_or_skip_with("my-test", env(&[(REQUIRE_VAR, "1")]))
            .await
            .unwrap_err();
        assert_eq!(err.skip, Skip::NotConfigured);
        assert!(
            err.to_string()
                .starts_with("my-test: no cluster configured"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn no_configuration_fails_when_everything_is_required() {
        let err = cluster_or_skip_with("my-test", env(&[(REQUIRE_ALL_VAR, "1")]))
            .await
            .unwrap_err();
        assert_eq!(err.skip, Skip::NotConfigured);
        assert!(err.to_string().contains(REQUIRE_ALL_VAR), "{err}");
    }

    #[tokio::test]
    async fn unreadable_kubeconfig_is_a_skip_reason_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.yaml");
        let path_str = path.display().to_string();
        let err = connect(env(&[(KUBECONFIG_VAR, &path_str)]))
            .await
            .unwrap_err();
        match err {
            Skip::BadKubeconfig { origin, .. } => {
                assert_eq!(origin, format!("{KUBECONFIG_VAR}={path_str}"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn silent_api_server_is_unreachable_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = kubeconfig_for_closed_port(dir.path()).display().to_string();
        let err = connect(env(&[(KUBECONFIG_VAR, &path)])).await.unwrap_err();
        assert!(
            matches!(&err, Skip::Unreachable { url, .. } if url.starts_with("http://127.0.0.1:")),
            "{err:?}"
        );
        let result = cluster_or_skip_with("t", env(&[(KUBECONFIG_VAR, &path)])).await;
        assert!(
            matches!(result, Ok(Err(Skip::Unreachable { .. }))),
            "{result:?}"
        );
    }
}
