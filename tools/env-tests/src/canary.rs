//! `CanaryPod`: a throwaway busybox pod that probes the network from inside
//! the cluster, so `NetworkPolicy` tests see what a real pod sees.
//!
//! Everything talks to the API server through kube-rs (no `kubectl`):
//! - a bare pod (no Deployment, `restartPolicy: Never`) named
//!   `canary-<uuid8>`, image pinned ([`CANARY_IMAGE`]), labelled
//!   `app=canary,test=<name>,created-by=env-tests`, hardened like our own
//!   pods (non-root, read-only root filesystem, no capabilities);
//! - [`CanaryPod::deploy`] waits for `Running` and fails fast when the pod
//!   fails or its image cannot be pulled;
//! - [`CanaryPod::can_reach`] execs `wget --spider -T 5 <url>` over the
//!   exec WebSocket and reads the exit status;
//! - cleanup is a force delete (grace period 0, "not found" is success),
//!   done once: by [`CanaryPod::cleanup`] or, failing that, by `Drop`,
//!   guarded by an `AtomicBool`;
//! - namespaces: [`ensure_namespace`] treats "already exists" as success
//!   (parallel tests race to create the same one), and
//!   [`delete_test_namespace`] refuses any namespace without the
//!   [`TEST_NAMESPACE_PREFIX`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, Namespace, Pod, PodSecurityContext, PodSpec,
    SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{AttachParams, DeleteParams, PostParams, PropagationPolicy};
use kube::{Api, Client, Config};
use tokio::io::AsyncReadExt;

/// busybox with `wget` and `httpd`, pinned so a test run is reproducible.
pub const CANARY_IMAGE: &str = "busybox:1.36.1";
/// The only namespaces this module will delete start with this.
pub const TEST_NAMESPACE_PREFIX: &str = "canary-test-";
/// How long the pod may take to be Running (image pull included).
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Seconds `wget` waits for a connection before calling a target unreachable.
pub const PROBE_TIMEOUT_SECONDS: u32 = 5;
/// The port [`CanaryPod::deploy_http_server`] serves on.
pub const CANARY_HTTP_PORT: u16 = 8080;

const CONTAINER: &str = "canary";

#[derive(Debug, thiserror::Error)]
pub enum CanaryError {
    #[error("kubernetes API call failed while {action}: {source}")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error("pod {namespace}/{name} failed before it was Running: {reason}")]
    PodFailed {
        namespace: String,
        name: String,
        reason: String,
    },
    #[error("pod {namespace}/{name} was not Running within {}s (last phase: {phase})", timeout.as_secs())]
    Timeout {
        namespace: String,
        name: String,
        timeout: Duration,
        phase: String,
    },
    #[error(
        "refusing to delete namespace {0:?}: only namespaces named {TEST_NAMESPACE_PREFIX}* are test namespaces"
    )]
    ProtectedNamespace(String),
    #[error("refusing to probe {0:?}: expected an http:// or https:// URL without whitespace")]
    BadUrl(String),
    #[error("exec in pod {name} ended without an exit status")]
    NoExitStatus { name: String },
}

fn api_error(action: impl Into<String>) -> impl FnOnce(kube::Error) -> CanaryError {
    let action = action.into();
    move |source| CanaryError::Api { action, source }
}

/// `canary-` followed by the first 8 hex digits of a v4 UUID: a valid DNS
/// label, unique enough for concurrent test runs.
pub fn canary_name() -> String {
    format!("canary-{}", short_id())
}

/// A fresh test namespace name, `canary-test-<uuid8>`.
pub fn test_namespace_name() -> String {
    format!("{TEST_NAMESPACE_PREFIX}{}", short_id())
}

fn short_id() -> String {
    let mut id = uuid::Uuid::new_v4().simple().to_string();
    id.truncate(8);
    id
}

/// The labels every canary carries; `test` names the test that made it.
pub fn canary_labels(test: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app".to_owned(), "canary".to_owned()),
        ("test".to_owned(), sanitize_label_value(test)),
        ("created-by".to_owned(), "env-tests".to_owned()),
    ])
}

/// Label values: at most 63 characters of `[A-Za-z0-9._-]`, starting and
/// ending alphanumeric. Test names are Rust identifiers, so usually this only
/// swaps `_` and `::` for `-`.
pub fn sanitize_label_value(raw: &str) -> String {
    let mapped: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let mut value: String = trimmed.chars().take(63).collect();
    while value.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        value.pop();
    }
    if value.is_empty() {
        "unnamed".to_owned()
    } else {
        value
    }
}

/// Whether `name` is a namespace this crate created and may delete.
pub fn is_test_namespace(name: &str) -> bool {
    name.strip_prefix(TEST_NAMESPACE_PREFIX)
        .is_some_and(|rest| {
            !rest.is_empty()
                && name.len() <= 63
                && rest
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !rest.ends_with('-')
        })
}

/// The pod a canary runs: `command` keeps it alive (sleep) or serves HTTP.
pub fn canary_pod(name: &str, namespace: &str, test: &str, command: &[&str]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(canary_labels(test)),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".to_owned()),
            automount_service_account_token: Some(false),
            termination_grace_period_seconds: Some(0),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(65532),
                run_as_group: Some(65532),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            containers: vec![Container {
                name: CONTAINER.to_owned(),
                image: Some(CANARY_IMAGE.to_owned()),
                image_pull_policy: Some("IfNotPresent".to_owned()),
                command: Some(command.iter().map(|s| (*s).to_owned()).collect()),
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(false),
                    read_only_root_filesystem: Some(true),
                    capabilities: Some(Capabilities {
                        drop: Some(vec!["ALL".to_owned()]),
                        ..Capabilities::default()
                    }),
                    ..SecurityContext::default()
                }),
                volume_mounts: Some(vec![VolumeMount {
                    name: "tmp".to_owned(),
                    mount_path: "/tmp".to_owned(),
                    ..VolumeMount::default()
                }]),
                ..Container::default()
            }],
            volumes: Some(vec![Volume {
                name: "tmp".to_owned(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            }]),
            ..PodSpec::default()
        }),
        status: None,
    }
}

/// One look at a pod while waiting for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhaseDecision {
    Running,
    Wait(String),
    Failed(String),
}

/// Container waiting reasons that will not fix themselves within a test.
const HOPELESS_WAITING_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
];

/// Decides from a pod's status whether to go on waiting.
pub fn classify_pod(pod: &Pod) -> PhaseDecision {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Unknown");
    match phase {
        "Running" => PhaseDecision::Running,
        "Failed" | "Succeeded" => {
            let why = status
                .and_then(|s| s.message.clone().or_else(|| s.reason.clone()))
                .unwrap_or_else(|| "the container exited".to_owned());
            PhaseDecision::Failed(format!("phase {phase}: {why}"))
        }
        _ => {
            let waiting = status
                .and_then(|s| s.container_statuses.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
                .find(|w| {
                    w.reason
                        .as_deref()
                        .is_some_and(|r| HOPELESS_WAITING_REASONS.contains(&r))
                });
            match waiting {
                Some(w) => PhaseDecision::Failed(format!(
                    "{}: {}",
                    w.reason.as_deref().unwrap_or_default(),
                    w.message.as_deref().unwrap_or("no message")
                )),
                None => PhaseDecision::Wait(phase.to_owned()),
            }
        }
    }
}

/// Polls the pod until it is Running, fails, or `timeout` passes.
pub async fn wait_for_running(
    pods: &Api<Pod>,
    name: &str,
    timeout: Duration,
    poll: Duration,
) -> Result<Pod, CanaryError> {
    let namespace = pods.namespace().unwrap_or_default().to_owned();
    let start = Instant::now();
    let mut last = "not created".to_owned();
    loop {
        if let Some(pod) = pods
            .get_opt(name)
            .await
            .map_err(api_error(format!("reading pod {name}")))?
        {
            match classify_pod(&pod) {
                PhaseDecision::Running => return Ok(pod),
                PhaseDecision::Failed(reason) => {
                    return Err(CanaryError::PodFailed {
                        namespace,
                        name: name.to_owned(),
                        reason,
                    });
                }
                PhaseDecision::Wait(phase) => last = phase,
            }
        }
        if start.elapsed() >= timeout {
            return Err(CanaryError::Timeout {
                namespace,
                name: name.to_owned(),
                timeout,
                phase: last,
            });
        }
        tokio::time::sleep(poll).await;
    }
}

/// Creates `name` unless it exists; "already exists" (a parallel test won
/// the race) is success.
pub async fn ensure_namespace(client: &Client, name: &str) -> Result<(), CanaryError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces
        .get_opt(name)
        .await
        .map_err(api_error(format!("reading namespace {name}")))?
        .is_some()
    {
        return Ok(());
    }
    let mut labels = BTreeMap::from([("created-by".to_owned(), "env-tests".to_owned())]);
    labels.insert(
        "app.kubernetes.io/part-of".to_owned(),
        "dark-tower-env-tests".to_owned(),
    );
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match namespaces.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_already_exists() || status.code == 409 => Ok(()),
        Err(e) => Err(api_error(format!("creating namespace {name}"))(e)),
    }
}

/// Deletes a test namespace (and everything in it). Refuses, without calling
/// the API, any name that is not `canary-test-*`.
pub async fn delete_test_namespace(client: &Client, name: &str) -> Result<(), CanaryError> {
    if !is_test_namespace(name) {
        return Err(CanaryError::ProtectedNamespace(name.to_owned()));
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(e) => Err(api_error(format!("deleting namespace {name}"))(e)),
    }
}

/// Force delete: no grace period, "not found" is success.
async fn force_delete(pods: &Api<Pod>, name: &str) -> Result<(), CanaryError> {
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    match pods.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(e) => Err(api_error(format!("deleting pod {name}"))(e)),
    }
}

fn check_url(url: &str) -> Result<(), CanaryError> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && !url.chars().any(char::is_whitespace)
        && url.len() < 2048;
    if ok {
        Ok(())
    } else {
        Err(CanaryError::BadUrl(url.to_owned()))
    }
}

/// The probe command `can_reach` runs inside the pod.
pub fn probe_command(url: &str) -> Vec<String> {
    vec![
        "wget".to_owned(),
        "--spider".to_owned(),
        "-q".to_owned(),
        "-T".to_owned(),
        PROBE_TIMEOUT_SECONDS.to_string(),
        url.to_owned(),
    ]
}

/// A running canary pod. Dropping it deletes the pod if `cleanup` was not
/// called.
pub struct CanaryPod {
    name: String,
    namespace: String,
    pods: Api<Pod>,
    /// When set, `Drop` builds its own client from it (the test's runtime
    /// may be busy or gone by then); otherwise it reuses `pods`.
    drop_config: Option<Config>,
    ip: Option<String>,
    cleaned_up: AtomicBool,
}

impl std::fmt::Debug for CanaryPod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CanaryPod")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("ip", &self.ip)
            .field("cleaned_up", &self.cleaned_up.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl CanaryPod {
    /// Deploys a canary that sleeps (an hour at most) and waits until it is
    /// Running.
    pub async fn deploy(
        client: &Client,
        config: Option<Config>,
        namespace: &str,
        test: &str,
    ) -> Result<Self, CanaryError> {
        Self::deploy_with(
            client,
            config,
            namespace,
            test,
            &["sleep", "3600"],
            DEFAULT_READY_TIMEOUT,
            Duration::from_secs(1),
        )
        .await
    }

    /// Deploys a canary that answers HTTP on [`CANARY_HTTP_PORT`]: a target
    /// for the positive control of the `NetworkPolicy` tests.
    pub async fn deploy_http_server(
        client: &Client,
        config: Option<Config>,
        namespace: &str,
        test: &str,
    ) -> Result<Self, CanaryError> {
        let script = format!(
            "mkdir -p /tmp/www && echo ok > /tmp/www/index.html && exec httpd -f -p {CANARY_HTTP_PORT} -h /tmp/www"
        );
        Self::deploy_with(
            client,
            config,
            namespace,
            test,
            &["sh", "-c", &script],
            DEFAULT_READY_TIMEOUT,
            Duration::from_secs(1),
        )
        .await
    }

    /// The general form: any command, any timeout and poll interval.
    pub async fn deploy_with(
        client: &Client,
        config: Option<Config>,
        namespace: &str,
        test: &str,
        command: &[&str],
        timeout: Duration,
        poll: Duration,
    ) -> Result<Self, CanaryError> {
        let name = canary_name();
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        pods.create(
            &PostParams::default(),
            &canary_pod(&name, namespace, test, command),
        )
        .await
        .map_err(api_error(format!("creating pod {namespace}/{name}")))?;
        // From here on the pod exists: if waiting fails, Drop removes it.
        let mut canary = Self {
            name: name.clone(),
            namespace: namespace.to_owned(),
            pods,
            drop_config: config,
            ip: None,
            cleaned_up: AtomicBool::new(false),
        };
        let pod = wait_for_running(&canary.pods, &name, timeout, poll).await?;
        canary.ip = pod.status.and_then(|s| s.pod_ip);
        Ok(canary)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The pod IP once Running.
    pub fn ip(&self) -> Option<&str> {
        self.ip.as_deref()
    }

    /// Whether an HTTP GET of `url` from inside this pod succeeds within
    /// [`PROBE_TIMEOUT_SECONDS`]. `Ok(false)` covers a refused connection, a
    /// timeout (what a `NetworkPolicy` drop looks like) and an HTTP error;
    /// `Err` means the probe itself could not run.
    pub async fn can_reach(&self, url: &str) -> Result<bool, CanaryError> {
        check_url(url)?;
        let params = AttachParams::default()
            .container(CONTAINER)
            .stdin(false)
            .stdout(false)
            .stderr(true);
        let mut process = self
            .pods
            .exec(&self.name, probe_command(url), &params)
            .await
            .map_err(api_error(format!("exec in pod {}", self.name)))?;
        // Drain stderr so the exec stream never blocks on a full buffer.
        let mut stderr = String::new();
        if let Some(mut reader) = process.stderr() {
            let _ = reader.read_to_string(&mut stderr).await;
        }
        let status = match process.take_status() {
            Some(status) => status.await,
            None => None,
        };
        let _ = process.join().await;
        let status = status.ok_or_else(|| CanaryError::NoExitStatus {
            name: self.name.clone(),
        })?;
        Ok(status.status.as_deref() == Some("Success"))
    }

    /// Force-deletes the pod. Idempotent: only the first call (or `Drop`)
    /// talks to the API server.
    pub async fn cleanup(&self) -> Result<(), CanaryError> {
        if self.cleaned_up.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        force_delete(&self.pods, &self.name).await
    }
}

impl Drop for CanaryPod {
    fn drop(&mut self) {
        if self.cleaned_up.swap(true, Ordering::SeqCst) {
            return;
        }
        // Drop cannot await, and the test's runtime may be the one calling
        // us: do the delete on a thread with its own runtime, best effort.
        let name = self.name.clone();
        let namespace = self.namespace.clone();
        let pods = self.pods.clone();
        let config = self.drop_config.clone();
        let handle = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let Ok(runtime) = runtime else {
                return Err(format!("no runtime to delete pod {namespace}/{name}"));
            };
            runtime.block_on(async move {
                let pods = match config.map(Client::try_from) {
                    Some(Ok(client)) => Api::namespaced(client, &namespace),
                    Some(Err(e)) => {
                        return Err(format!("no client to delete pod {namespace}/{name}: {e}"));
                    }
                    None => pods,
                };
                match tokio::time::timeout(Duration::from_secs(15), force_delete(&pods, &name))
                    .await
                {
                    Ok(result) => result.map_err(|e| e.to_string()),
                    Err(_) => Err(format!("deleting pod {namespace}/{name} timed out")),
                }
            })
        });
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: canary cleanup in Drop failed: {e}"),
            Err(_) => eprintln!("warning: canary cleanup thread panicked"),
        }
    }
}

#[cfg(test)]
mod tests;
