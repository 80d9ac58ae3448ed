//! What one pod of a Deployment or StatefulSet would get, as a plan for
//! running its containers as local processes: for every container the argv,
//! the environment, the files mounted where, the user and groups, the ports
//! and the probes, exactly as the kubelet (v1.33) and the container runtime
//! would give them. No processes and no namespaces here: the caller
//! (`local-stack up`) launches what the plan says and bind-mounts each
//! [`MountPlan::host_path`] at its [`MountPlan::mount_path`].
//!
//! The one side effect is [`plan_pod`] writing the pod's volumes under
//! [`PlanOptions::volumes_dir`]: configMap, secret, downwardAPI and projected
//! volumes with the kubelet's atomic-writer layout (a `..<timestamp>`
//! directory, a `..data` link to it and one link per top-level entry), the
//! kubelet's file modes, and group ownership by `fsGroup`; emptyDir volumes
//! as fresh directories.
//!
//! Anything the plan cannot honour exactly is an error naming the object and
//! the field (`Deployment dark-tower/meeting-controller:
//! spec.template.spec.volumes[1]: volume type csi is not supported`), never a
//! silent default. What a pod would have but a local process cannot
//! (a service account token, service-link variables, lifecycle hooks) is
//! listed in [`PodPlan::warnings`].
//!
//! Where the kubelet's behaviour is undefined the plan picks one and says so:
//! the kubelet hands the runtime its environment in Go map order, the plan
//! keeps each variable where it was first defined (`envFrom` sources in
//! order, each source's keys sorted, then `env`).

// The orchestration of `local-stack up` is the caller; until it lands, parts
// of this module are used by its tests only.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::{self, Write as _};
use std::io;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, EnvFromSource, EnvVarSource, KeyToPath,
    ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceFieldSelector, Secret, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as KubeQuantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::manifest::Object;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A pod the plan cannot honour: `<Kind> <namespace>/<name>: <field>: <problem>`.
#[derive(Debug, thiserror::Error)]
#[error("{object}: {field}: {problem}")]
pub struct PlanError {
    /// "Deployment dark-tower/meeting-controller".
    pub object: String,
    /// "spec.template.spec.containers[0].env[3].valueFrom.secretKeyRef".
    pub field: String,
    pub problem: Problem,
}

/// What is wrong, without where.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("{kind} {name} not found")]
    MissingObject { kind: RefKind, name: String },
    #[error("{kind} {name} has no key {key}")]
    MissingKey {
        kind: RefKind,
        name: String,
        key: String,
    },
    #[error("{kind} {name} key {key} is not UTF-8 text, which this plan's environment cannot hold")]
    NotUtf8 {
        kind: RefKind,
        name: String,
        key: String,
    },
    #[error("volume type {0} is not supported")]
    UnsupportedVolume(String),
    #[error("{0} is not supported")]
    Unsupported(String),
    #[error("fieldPath {0} is not supported")]
    UnsupportedFieldPath(String),
    #[error("container {container} has no port named {port}")]
    NoSuchPort { container: String, port: String },
    #[error("no volume named {0}")]
    NoSuchVolume(String),
    #[error("no container named {0}")]
    NoSuchContainer(String),
    #[error("invalid quantity {quantity:?}: {reason}")]
    InvalidQuantity { quantity: String, reason: String },
    /// The kubelet's own refusal, in its words.
    #[error("{0}")]
    NonRoot(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The two kinds of object a pod reads configuration from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RefKind {
    ConfigMap,
    Secret,
}

impl fmt::Display for RefKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefKind::ConfigMap => "ConfigMap",
            RefKind::Secret => "Secret",
        })
    }
}

fn invalid(message: impl Into<String>) -> Problem {
    Problem::Invalid(message.into())
}

// ---------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
        })
    }
}

/// A Deployment or StatefulSet: what its pods are made from.
#[derive(Debug, Clone)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub template: PodTemplateSpec,
    /// StatefulSet `spec.serviceName`: the pods' DNS subdomain.
    pub service_name: Option<String>,
    /// StatefulSet `spec.volumeClaimTemplates[].metadata.name`.
    pub volume_claim_templates: Vec<String>,
}

impl Workload {
    /// Read a rendered Deployment or StatefulSet; `default_namespace` when
    /// it names none.
    pub fn from_value(value: &Value, default_namespace: &str) -> Result<Self, PlanError> {
        let object = Object::new(value).ok_or_else(|| PlanError {
            object: "object".to_owned(),
            field: "kind".to_owned(),
            problem: invalid("not a Kubernetes object"),
        })?;
        let id = object.id(default_namespace);
        let namespace = object.namespace(default_namespace).to_owned();
        let name = object.name().to_owned();
        match object.kind() {
            "Deployment" => {
                let d: Deployment = deserialize(value, &id)?;
                let spec = d.spec.ok_or_else(|| missing(&id, "spec"))?;
                Ok(Self {
                    kind: WorkloadKind::Deployment,
                    namespace,
                    name,
                    template: spec.template,
                    service_name: None,
                    volume_claim_templates: Vec::new(),
                })
            }
            "StatefulSet" => {
                let s: StatefulSet = deserialize(value, &id)?;
                let spec = s.spec.ok_or_else(|| missing(&id, "spec"))?;
                Ok(Self {
                    kind: WorkloadKind::StatefulSet,
                    namespace,
                    name,
                    template: spec.template,
                    service_name: spec.service_name.filter(|s| !s.is_empty()),
                    volume_claim_templates: spec
                        .volume_claim_templates
                        .unwrap_or_default()
                        .into_iter()
                        .map(|c| c.metadata.name.unwrap_or_default())
                        .collect(),
                })
            }
            other => Err(PlanError {
                object: id,
                field: "kind".to_owned(),
                problem: Problem::Unsupported(format!(
                    "kind {other} (only Deployment and StatefulSet)"
                )),
            }),
        }
    }

    /// "Deployment dark-tower/meeting-controller".
    pub fn id(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }

    fn spec(&self) -> Result<&PodSpec, PlanError> {
        self.template
            .spec
            .as_ref()
            .ok_or_else(|| missing(&self.id(), "spec.template.spec"))
    }
}

fn missing(object: &str, field: &str) -> PlanError {
    PlanError {
        object: object.to_owned(),
        field: field.to_owned(),
        problem: invalid("is required"),
    }
}

/// Deserialize with the path of the offending field in the error.
fn deserialize<T: k8s_openapi::serde::de::DeserializeOwned>(
    value: &Value,
    id: &str,
) -> Result<T, PlanError> {
    serde_path_to_error::deserialize(value).map_err(|e| PlanError {
        object: id.to_owned(),
        field: e.path().to_string(),
        problem: invalid(e.inner().to_string()),
    })
}

/// A ConfigMap's content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigMapContent {
    pub data: BTreeMap<String, String>,
    pub binary_data: BTreeMap<String, Vec<u8>>,
}

/// The ConfigMaps and Secrets of the pod's namespace, Secrets decrypted.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    config_maps: BTreeMap<String, ConfigMapContent>,
    secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

impl Objects {
    pub fn new() -> Self {
        Self::default()
    }

    /// The v1 ConfigMaps and Secrets of `namespace` among rendered objects
    /// (objects without a namespace are in `default_namespace`).
    pub fn from_manifests<'a>(
        values: impl IntoIterator<Item = &'a Value>,
        namespace: &str,
        default_namespace: &str,
    ) -> Result<Self, PlanError> {
        let mut objects = Self::new();
        for value in values {
            let Some(object) = Object::new(value) else {
                continue;
            };
            if object.api_version() != "v1" || object.namespace(default_namespace) != namespace {
                continue;
            }
            let id = object.id(default_namespace);
            match object.kind() {
                "ConfigMap" => {
                    let cm: ConfigMap = deserialize(value, &id)?;
                    objects.config_maps.insert(
                        object.name().to_owned(),
                        ConfigMapContent {
                            data: cm.data.unwrap_or_default(),
                            binary_data: cm
                                .binary_data
                                .unwrap_or_default()
                                .into_iter()
                                .map(|(k, v)| (k, v.0))
                                .collect(),
                        },
                    );
                }
                "Secret" => {
                    let secret: Secret = deserialize(value, &id)?;
                    // The API server merges stringData over data.
                    let mut data: BTreeMap<String, Vec<u8>> = secret
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect();
                    for (k, v) in secret.string_data.unwrap_or_default() {
                        data.insert(k, v.into_bytes());
                    }
                    objects.secrets.insert(object.name().to_owned(), data);
                }
                _ => {}
            }
        }
        Ok(objects)
    }

    pub fn insert_config_map(&mut self, name: impl Into<String>, content: ConfigMapContent) {
        self.config_maps.insert(name.into(), content);
    }

    pub fn insert_secret(&mut self, name: impl Into<String>, data: BTreeMap<String, Vec<u8>>) {
        self.secrets.insert(name.into(), data);
    }

    pub fn config_map(&self, name: &str) -> Option<&ConfigMapContent> {
        self.config_maps.get(name)
    }

    pub fn secret(&self, name: &str) -> Option<&BTreeMap<String, Vec<u8>>> {
        self.secrets.get(name)
    }

    /// Whether `name` of `kind` is here.
    /// Every key of a ConfigMap (`data` and `binaryData`) or Secret, as bytes.
    pub fn key_bytes(&self, kind: RefKind, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        match kind {
            RefKind::ConfigMap => self.config_maps.get(name).map(|cm| {
                cm.data
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
                    .chain(cm.binary_data.iter().map(|(k, v)| (k.clone(), v.clone())))
                    .collect()
            }),
            RefKind::Secret => self.secrets.get(name).cloned(),
        }
    }

    pub fn contains(&self, kind: RefKind, name: &str) -> bool {
        match kind {
            RefKind::ConfigMap => self.config_maps.contains_key(name),
            RefKind::Secret => self.secrets.contains_key(name),
        }
    }
}

/// Who the pod is: what the API server, scheduler and kubelet would have
/// decided, chosen by the caller (or by [`PodIdentity::generate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIdentity {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub pod_ip: String,
    /// `status.podIPs`; empty means just `pod_ip`.
    pub pod_ips: Vec<String>,
    pub host_ip: String,
    /// `status.hostIPs`; empty means just `host_ip`.
    pub host_ips: Vec<String>,
    pub node_name: String,
    pub service_account_name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl PodIdentity {
    /// Pod number `replica` of `workload` as its controller would create it:
    /// a Deployment pod is `<name>-<pod-template-hash>-<5 random>` with the
    /// `pod-template-hash` label (`replica` only matters to a StatefulSet);
    /// a StatefulSet pod is `<name>-<replica>` with the
    /// `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index`
    /// and `controller-revision-hash` labels. The hash is a stable FNV-1a
    /// of the template in the controllers' alphabet, not bit-identical to
    /// theirs (which hashes Go's dump of the object). The uid is a random
    /// UUID; the service account is the template's (`default` when unset).
    pub fn generate(
        workload: &Workload,
        replica: u32,
        pod_ip: &str,
        host_ip: &str,
        node_name: &str,
    ) -> Self {
        let metadata = workload.template.metadata.clone().unwrap_or_default();
        let mut labels = metadata.labels.unwrap_or_default();
        let hash = template_hash(&workload.template);
        let name = match workload.kind {
            WorkloadKind::Deployment => {
                labels.insert("pod-template-hash".to_owned(), hash.clone());
                format!("{}-{hash}-{}", workload.name, random_suffix(5))
            }
            WorkloadKind::StatefulSet => {
                let name = format!("{}-{replica}", workload.name);
                labels.insert(
                    "controller-revision-hash".to_owned(),
                    format!("{}-{hash}", workload.name),
                );
                labels.insert(
                    "statefulset.kubernetes.io/pod-name".to_owned(),
                    name.clone(),
                );
                labels.insert(
                    "apps.kubernetes.io/pod-index".to_owned(),
                    replica.to_string(),
                );
                name
            }
        };
        let spec = workload.template.spec.as_ref();
        let service_account_name = spec
            .and_then(|s| s.service_account_name.clone().or(s.service_account.clone()))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".to_owned());
        Self {
            name,
            namespace: workload.namespace.clone(),
            uid: uuid::Uuid::new_v4().to_string(),
            pod_ip: pod_ip.to_owned(),
            pod_ips: Vec::new(),
            host_ip: host_ip.to_owned(),
            host_ips: Vec::new(),
            node_name: node_name.to_owned(),
            service_account_name,
            labels,
            annotations: metadata.annotations.unwrap_or_default(),
        }
    }

    fn pod_ips(&self) -> String {
        if self.pod_ips.is_empty() {
            self.pod_ip.clone()
        } else {
            self.pod_ips.join(",")
        }
    }

    fn host_ips(&self) -> String {
        if self.host_ips.is_empty() {
            self.host_ip.clone()
        } else {
            self.host_ips.join(",")
        }
    }
}

/// The alphabet of Kubernetes' generated names (no vowels, no look-alikes).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `n` random characters, as the API server's `generateName` and the
/// ReplicaSet controller make them.
pub fn random_suffix(n: usize) -> String {
    use rand::Rng as _;
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| char::from(NAME_ALPHABET[rng.gen_range(0..NAME_ALPHABET.len())]))
        .collect()
}

/// A pod-template-hash-like label value: FNV-1a (32 bits) of the template's
/// JSON, its decimal digits mapped through [`NAME_ALPHABET`] as the
/// controllers' `SafeEncodeString` does.
pub fn template_hash(template: &PodTemplateSpec) -> String {
    let json = serde_json::to_vec(template).unwrap_or_default();
    let hash = json.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    });
    hash.to_string()
        .bytes()
        .map(|b| char::from(NAME_ALPHABET[usize::from(b) % NAME_ALPHABET.len()]))
        .collect()
}

/// What the image itself says, when the caller knows it (from the
/// Dockerfile or `docker inspect`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `USER` as written: `65532:65532`, `nonroot`, or empty for root.
    pub user: String,
    pub working_dir: Option<String>,
    /// `ENV`, which the runtime puts under the container's own variables.
    pub env: Vec<(String, String)>,
}

impl ImageConfig {
    /// The numeric uid and gid of `USER`, `None` for a user name.
    fn uid_gid(&self) -> (Option<i64>, Option<i64>) {
        let (user, group) = match self.user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (self.user.as_str(), None),
        };
        let uid = if user.is_empty() {
            Some(0)
        } else {
            user.parse().ok()
        };
        (uid, group.and_then(|g| g.parse().ok()))
    }
}

/// How `envFrom` keys are checked (see [`PlanOptions::env_names`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnvNameRule {
    /// Kubernetes 1.32+ (`RelaxedEnvironmentVariableValidation`, on by
    /// default): any printable ASCII character but `=`.
    #[default]
    Relaxed,
    /// Kubernetes before 1.32: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
    Strict,
}

impl EnvNameRule {
    fn accepts(self, name: &str) -> bool {
        match self {
            EnvNameRule::Relaxed => {
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| (b' '..=b'~').contains(&b) && b != b'=')
            }
            EnvNameRule::Strict => {
                let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
                name.bytes()
                    .next()
                    .is_some_and(|b| ok(b) && !b.is_ascii_digit())
                    && name.bytes().all(ok)
            }
        }
    }
}

/// What the plan needs besides the objects and the pod.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Each volume is written to `<volumes_dir>/<volume name>/`; the
    /// directory must not exist or be empty (a pod's volumes start fresh).
    pub volumes_dir: PathBuf,
    /// Image configurations by image reference, as written in the manifest.
    pub images: BTreeMap<String, ImageConfig>,
    /// What `limits.cpu`/`limits.memory` read as in the downward API when a
    /// container sets no limit (the kubelet uses the node's allocatable);
    /// [`PlanOptions::new`] says 2 CPUs and 4 GiB, set them from the host.
    pub node_cpu_millis: i64,
    pub node_memory_bytes: i64,
    /// `cluster.local` unless the cluster says otherwise.
    pub cluster_domain: String,
    pub env_names: EnvNameRule,
}

impl PlanOptions {
    pub fn new(volumes_dir: impl Into<PathBuf>) -> Self {
        Self {
            volumes_dir: volumes_dir.into(),
            images: BTreeMap::new(),
            node_cpu_millis: 2000,
            node_memory_bytes: 4 << 30,
            cluster_domain: "cluster.local".to_owned(),
            env_names: EnvNameRule::Relaxed,
        }
    }
}

// ---------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------

/// Everything needed to run one pod's containers as local processes.
#[derive(Debug, Clone, PartialEq)]
pub struct PodPlan {
    /// "Deployment dark-tower/meeting-controller".
    pub workload: String,
    pub pod_name: String,
    pub namespace: String,
    pub volumes_dir: PathBuf,
    pub volumes: Vec<VolumePlan>,
    /// Run in order, each to completion, before `containers` (except
    /// sidecars, [`ContainerPlan::sidecar`], which keep running).
    pub init_containers: Vec<ContainerPlan>,
    pub containers: Vec<ContainerPlan>,
    /// The pod's hostname (`HOSTNAME`, `/etc/hostname`).
    pub hostname: String,
    pub subdomain: Option<String>,
    /// `<subdomain>.<namespace>.svc.<cluster domain>` when there is a subdomain.
    pub host_domain: Option<String>,
    /// `spec.hostAliases`: extra `/etc/hosts` lines (ip, names).
    pub host_aliases: Vec<(String, Vec<String>)>,
    pub termination_grace_period: Duration,
    /// What a cluster would give the pod that this plan does not.
    pub warnings: Vec<String>,
}

/// One volume as written under `volumes_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumePlan {
    pub name: String,
    /// The manifest's type: `configMap`, `secret`, `projected`,
    /// `downwardAPI` or `emptyDir`.
    pub kind: &'static str,
    pub host_path: PathBuf,
    /// `emptyDir.medium: Memory`: a cluster backs it with tmpfs.
    pub memory: bool,
    pub size_limit_bytes: Option<i64>,
}

/// One container: what to exec and in what surroundings.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "the security context's own flags"
)]
pub struct ContainerPlan {
    pub name: String,
    pub image: String,
    /// `command` after `$(VAR)` expansion; empty means the image's ENTRYPOINT.
    pub command: Vec<String>,
    /// `args` after `$(VAR)` expansion; see [`ContainerPlan::argv`].
    pub args: Vec<String>,
    /// The container's variables as the kubelet computes them (envFrom,
    /// then env), without what the runtime adds (see [`ContainerPlan::process_env`]).
    pub env: Vec<(String, String)>,
    /// What the runtime sets under `env`: `HOSTNAME`, then the image's ENV.
    pub runtime_env: Vec<(String, String)>,
    /// In the order a runtime mounts them (shallower paths first).
    pub mounts: Vec<MountPlan>,
    pub working_dir: Option<String>,
    /// Effective uid: the security contexts', else the image's numeric
    /// USER when known; `None` means the image decides.
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub fs_group: Option<i64>,
    /// Supplementary groups of the process: fsGroup, then supplementalGroups.
    pub supplemental_groups: Vec<i64>,
    pub run_as_non_root: bool,
    pub read_only_root_filesystem: bool,
    /// False sets no_new_privs.
    pub allow_privilege_escalation: bool,
    pub privileged: bool,
    pub capabilities_add: Vec<String>,
    pub capabilities_drop: Vec<String>,
    /// `RuntimeDefault`, `Unconfined` or `Localhost/<profile>`.
    pub seccomp_profile: Option<String>,
    pub ports: Vec<PortPlan>,
    pub readiness: Option<ProbePlan>,
    pub liveness: Option<ProbePlan>,
    pub startup: Option<ProbePlan>,
    pub resources: ResourcesPlan,
    /// An init container with `restartPolicy: Always`.
    pub sidecar: bool,
}

impl ContainerPlan {
    /// The process's argv, as the runtime combines the container's command
    /// and args with the image's ENTRYPOINT and CMD: command replaces
    /// ENTRYPOINT and drops CMD, args replace CMD.
    pub fn argv(&self, image: &ImageConfig) -> Vec<String> {
        match (self.command.is_empty(), self.args.is_empty()) {
            (true, true) => [image.entrypoint.clone(), image.cmd.clone()].concat(),
            (true, false) => [image.entrypoint.clone(), self.args.clone()].concat(),
            (false, _) => [self.command.clone(), self.args.clone()].concat(),
        }
    }

    /// The process's whole environment: [`runtime_env`](Self::runtime_env)
    /// overridden by [`env`](Self::env).
    pub fn process_env(&self) -> Vec<(String, String)> {
        let mut env = EnvList::default();
        for (k, v) in self.runtime_env.iter().chain(&self.env) {
            env.set(k.clone(), v.clone());
        }
        env.vars
    }
}

/// A directory or file of a volume to bind-mount into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    pub volume: String,
    /// What to bind: the volume's directory, or with a subPath the path it
    /// resolves to (links followed, inside the volume).
    pub host_path: PathBuf,
    pub mount_path: String,
    /// The mount's `readOnly`, and always for configMap, secret,
    /// downwardAPI and projected volumes (the kubelet mounts them read-only).
    pub read_only: bool,
    /// The subPath (or expanded subPathExpr) applied, if any.
    pub sub_path_applied: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPlan {
    pub name: Option<String>,
    pub container_port: u16,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    pub host_port: Option<u16>,
}

/// A probe with Kubernetes' defaults applied and its port resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePlan {
    pub action: ProbeAction,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAction {
    Http {
        port: u16,
        path: String,
        /// `HTTP` or `HTTPS`.
        scheme: String,
        /// `None`: the pod IP.
        host: Option<String>,
        headers: Vec<(String, String)>,
    },
    Tcp {
        port: u16,
        host: Option<String>,
    },
    Grpc {
        port: u16,
        service: Option<String>,
    },
    Exec {
        command: Vec<String>,
    },
}

/// Parsed resources; requests default to limits as the API server defaults them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResourcesPlan {
    pub cpu_limit_millis: Option<i64>,
    pub memory_limit_bytes: Option<i64>,
    pub cpu_request_millis: Option<i64>,
    pub memory_request_bytes: Option<i64>,
}

/// A ConfigMap or Secret the pod template reads, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub kind: RefKind,
    pub name: String,
    /// The key read, or `None` when the whole object is (envFrom, a volume
    /// without items).
    pub key: Option<String>,
    pub optional: bool,
    pub field: String,
}

// ---------------------------------------------------------------------------
// Planning
// ---------------------------------------------------------------------------

const SPEC: &str = "spec.template.spec";

/// Plan the pod `pod` of `workload`, reading `objects`, and write its
/// volumes under `options.volumes_dir`.
pub fn plan_pod(
    workload: &Workload,
    objects: &Objects,
    pod: &PodIdentity,
    options: &PlanOptions,
) -> Result<PodPlan, PlanError> {
    let spec = workload.spec()?;
    let planner = Planner {
        id: workload.id(),
        workload,
        spec,
        objects,
        pod,
        options,
    };
    planner.plan()
}

/// Every ConfigMap and Secret the pod template of `workload` reads, in
/// template order: what must exist before [`plan_pod`] can succeed.
pub fn references(workload: &Workload) -> Vec<Reference> {
    let Some(spec) = workload.template.spec.as_ref() else {
        return Vec::new();
    };
    let mut refs = Vec::new();
    let mut add = |kind, name: &str, key: Option<&str>, optional: Option<bool>, field: String| {
        refs.push(Reference {
            kind,
            name: name.to_owned(),
            key: key.map(str::to_owned),
            optional: optional.unwrap_or(false),
            field,
        });
    };
    for (cf, c) in containers(spec) {
        for (i, from) in c.env_from.iter().flatten().enumerate() {
            if let Some(r) = &from.config_map_ref {
                add(
                    RefKind::ConfigMap,
                    &r.name,
                    None,
                    r.optional,
                    format!("{cf}.envFrom[{i}].configMapRef"),
                );
            }
            if let Some(r) = &from.secret_ref {
                add(
                    RefKind::Secret,
                    &r.name,
                    None,
                    r.optional,
                    format!("{cf}.envFrom[{i}].secretRef"),
                );
            }
        }
        for (i, var) in c.env.iter().flatten().enumerate() {
            let Some(from) = &var.value_from else {
                continue;
            };
            if let Some(r) = &from.config_map_key_ref {
                add(
                    RefKind::ConfigMap,
                    &r.name,
                    Some(&r.key),
                    r.optional,
                    format!("{cf}.env[{i}].valueFrom.configMapKeyRef"),
                );
            }
            if let Some(r) = &from.secret_key_ref {
                add(
                    RefKind::Secret,
                    &r.name,
                    Some(&r.key),
                    r.optional,
                    format!("{cf}.env[{i}].valueFrom.secretKeyRef"),
                );
            }
        }
    }
    let mut add_items =
        |kind, name: &str, items: Option<&Vec<KeyToPath>>, optional, field: String| match items {
            Some(items) if !items.is_empty() => {
                for (j, item) in items.iter().enumerate() {
                    add(
                        kind,
                        name,
                        Some(&item.key),
                        optional,
                        format!("{field}.items[{j}]"),
                    );
                }
            }
            _ => add(kind, name, None, optional, field),
        };
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let vf = format!("{SPEC}.volumes[{i}]");
        if let Some(cm) = &v.config_map {
            add_items(
                RefKind::ConfigMap,
                &cm.name,
                cm.items.as_ref(),
                cm.optional,
                format!("{vf}.configMap"),
            );
        }
        if let Some(s) = &v.secret {
            let name = s.secret_name.as_deref().unwrap_or("");
            add_items(
                RefKind::Secret,
                name,
                s.items.as_ref(),
                s.optional,
                format!("{vf}.secret"),
            );
        }
        for (j, source) in v
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
            .enumerate()
        {
            let sf = format!("{vf}.projected.sources[{j}]");
            if let Some(cm) = &source.config_map {
                add_items(
                    RefKind::ConfigMap,
                    &cm.name,
                    cm.items.as_ref(),
                    cm.optional,
                    format!("{sf}.configMap"),
                );
            }
            if let Some(s) = &source.secret {
                add_items(
                    RefKind::Secret,
                    &s.name,
                    s.items.as_ref(),
                    s.optional,
                    format!("{sf}.secret"),
                );
            }
        }
    }
    refs
}

/// Init containers then containers, each with its field path.
fn containers(spec: &PodSpec) -> impl Iterator<Item = (String, &Container)> {
    let init = spec.init_containers.iter().flatten().enumerate();
    let main = spec.containers.iter().enumerate();
    init.map(|(i, c)| (format!("{SPEC}.initContainers[{i}]"), c))
        .chain(main.map(|(i, c)| (format!("{SPEC}.containers[{i}]"), c)))
}

struct Planner<'a> {
    id: String,
    workload: &'a Workload,
    spec: &'a PodSpec,
    objects: &'a Objects,
    pod: &'a PodIdentity,
    options: &'a PlanOptions,
}

/// A volume before it is written.
struct PlannedVolume {
    name: String,
    field: String,
    kind: &'static str,
    content: VolumeContent,
}

enum VolumeContent {
    EmptyDir {
        memory: bool,
        size_limit_bytes: Option<i64>,
    },
    /// Files by path, with their modes, and the mode of the volume's root
    /// (tmpfs-backed volumes have tmpfs's 1777).
    Files {
        files: BTreeMap<String, (Vec<u8>, u32)>,
        root_mode: u32,
    },
}

/// A mount before its volume is written.
struct PendingMount {
    volume: String,
    mount_path: String,
    read_only: bool,
    sub_path: Option<String>,
    field: String,
}

impl Planner<'_> {
    fn err(&self, field: impl Into<String>, problem: Problem) -> PlanError {
        PlanError {
            object: self.id.clone(),
            field: field.into(),
            problem,
        }
    }

    fn plan(&self) -> Result<PodPlan, PlanError> {
        let mut warnings = self.pod_warnings();
        let volumes = self.plan_volumes()?;
        let mut init = Vec::new();
        for (i, c) in self.spec.init_containers.iter().flatten().enumerate() {
            init.push(self.plan_container(
                c,
                &format!("{SPEC}.initContainers[{i}]"),
                &volumes,
                &mut warnings,
            )?);
        }
        let mut main = Vec::new();
        for (i, c) in self.spec.containers.iter().enumerate() {
            main.push(self.plan_container(
                c,
                &format!("{SPEC}.containers[{i}]"),
                &volumes,
                &mut warnings,
            )?);
        }
        if main.is_empty() {
            return Err(self.err(
                format!("{SPEC}.containers"),
                invalid("must have at least one container"),
            ));
        }
        let (hostname, subdomain, host_domain) = self.hostname()?;
        let fs_group = self.spec.security_context.as_ref().and_then(|s| s.fs_group);
        let volume_plans = self.write_volumes(&volumes, fs_group, &mut warnings)?;
        let mut init_containers = Vec::new();
        for (c, pending) in init {
            init_containers.push(self.finish_container(c, pending, &hostname)?);
        }
        let mut containers = Vec::new();
        for (c, pending) in main {
            containers.push(self.finish_container(c, pending, &hostname)?);
        }
        let grace = self.spec.termination_grace_period_seconds.unwrap_or(30);
        let termination_grace_period =
            u64::try_from(grace).map(Duration::from_secs).map_err(|_| {
                self.err(
                    format!("{SPEC}.terminationGracePeriodSeconds"),
                    invalid("must not be negative"),
                )
            })?;
        Ok(PodPlan {
            workload: self.id.clone(),
            pod_name: self.pod.name.clone(),
            namespace: self.pod.namespace.clone(),
            volumes_dir: self.options.volumes_dir.clone(),
            volumes: volume_plans,
            init_containers,
            containers,
            hostname,
            subdomain,
            host_domain,
            host_aliases: self
                .spec
                .host_aliases
                .iter()
                .flatten()
                .map(|a| (a.ip.clone(), a.hostnames.clone().unwrap_or_default()))
                .collect(),
            termination_grace_period,
            warnings,
        })
    }

    /// What a cluster would add to the pod that this plan does not.
    fn pod_warnings(&self) -> Vec<String> {
        let s = self.spec;
        let mut w = Vec::new();
        if s.enable_service_links != Some(false) {
            w.push("enableServiceLinks is not false: a cluster would set <SERVICE>_SERVICE_HOST/_PORT variables for every Service in the namespace; none are set".to_owned());
        }
        if s.automount_service_account_token != Some(false) {
            w.push("automountServiceAccountToken is not false: a cluster would mount a service account token at /var/run/secrets/kubernetes.io/serviceaccount; none is mounted".to_owned());
        }
        for (flag, name) in [
            (s.host_network, "hostNetwork"),
            (s.host_pid, "hostPID"),
            (s.host_ipc, "hostIPC"),
            (s.share_process_namespace, "shareProcessNamespace"),
        ] {
            if flag == Some(true) {
                w.push(format!(
                    "{name} is true: the plan does not say how namespaces are shared"
                ));
            }
        }
        if s.dns_config.is_some() || s.dns_policy.as_deref().is_some_and(|p| p != "ClusterFirst") {
            w.push("dnsPolicy/dnsConfig are not applied: the caller's resolver is used".to_owned());
        }
        w
    }

    fn hostname(&self) -> Result<(String, Option<String>, Option<String>), PlanError> {
        // The StatefulSet controller names the pod's host and subdomain.
        let (hostname, subdomain) = match self.workload.kind {
            WorkloadKind::StatefulSet => (
                Some(self.pod.name.clone()),
                self.workload.service_name.clone(),
            ),
            WorkloadKind::Deployment => (self.spec.hostname.clone(), self.spec.subdomain.clone()),
        };
        let hostname = truncate_hostname(
            &hostname
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| self.pod.name.clone()),
        );
        let subdomain = subdomain.filter(|s| !s.is_empty());
        let domain = subdomain.as_ref().map(|s| {
            format!(
                "{s}.{}.svc.{}",
                self.pod.namespace, self.options.cluster_domain
            )
        });
        if self.spec.set_hostname_as_fqdn == Some(true)
            && let Some(d) = &domain
        {
            let fqdn = format!("{hostname}.{d}");
            if fqdn.len() > 64 {
                return Err(self.err(
                    format!("{SPEC}.setHostnameAsFQDN"),
                    invalid(format!("the FQDN {fqdn} is longer than 64 characters")),
                ));
            }
            return Ok((fqdn, subdomain, domain));
        }
        Ok((hostname, subdomain, domain))
    }

    // -- containers ---------------------------------------------------------

    /// Everything about a container that does not need its volumes on disk.
    fn plan_container(
        &self,
        c: &Container,
        cf: &str,
        volumes: &[PlannedVolume],
        warnings: &mut Vec<String>,
    ) -> Result<(ContainerPlan, Vec<PendingMount>), PlanError> {
        let image = c
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| self.err(format!("{cf}.image"), invalid("is required")))?;
        let image_config = self.options.images.get(&image);
        let env = self.container_env(c, cf, warnings)?;
        let final_env: HashMap<&str, &str> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let expand_all = |list: &Option<Vec<String>>| -> Vec<String> {
            list.iter()
                .flatten()
                .map(|s| expand(s, |name| lookup_or_literal(&final_env, name)))
                .collect()
        };
        let command = expand_all(&c.command);
        let args = expand_all(&c.args);
        let mounts = self.container_mounts(c, cf, volumes, &final_env)?;
        let ports = self.ports(c, cf)?;
        let probe = |p: &Option<Probe>, name: &str| {
            p.as_ref()
                .map(|p| self.probe(p, c, &format!("{cf}.{name}")))
                .transpose()
        };
        let readiness = probe(&c.readiness_probe, "readinessProbe")?;
        let liveness = probe(&c.liveness_probe, "livenessProbe")?;
        let startup = probe(&c.startup_probe, "startupProbe")?;
        let resources = self.resources(c, cf)?;
        if let Some(lifecycle) = &c.lifecycle
            && (lifecycle.post_start.is_some() || lifecycle.pre_stop.is_some())
        {
            warnings.push(format!(
                "{cf}.lifecycle: postStart/preStop hooks are not run"
            ));
        }
        let mut plan = ContainerPlan {
            name: c.name.clone(),
            image,
            command,
            args,
            env,
            runtime_env: Vec::new(),
            mounts: Vec::new(),
            working_dir: c
                .working_dir
                .clone()
                .filter(|w| !w.is_empty())
                .or_else(|| image_config.and_then(|i| i.working_dir.clone())),
            run_as_user: None,
            run_as_group: None,
            fs_group: None,
            supplemental_groups: Vec::new(),
            run_as_non_root: false,
            read_only_root_filesystem: false,
            allow_privilege_escalation: true,
            privileged: false,
            capabilities_add: Vec::new(),
            capabilities_drop: Vec::new(),
            seccomp_profile: None,
            ports,
            readiness,
            liveness,
            startup,
            resources,
            sidecar: c.restart_policy.as_deref() == Some("Always"),
        };
        self.security(&mut plan, c.security_context.as_ref(), image_config, cf)?;
        Ok((plan, mounts))
    }

    /// Bind the mounts to the written volumes and add what the runtime sets.
    fn finish_container(
        &self,
        mut plan: ContainerPlan,
        pending: Vec<PendingMount>,
        hostname: &str,
    ) -> Result<ContainerPlan, PlanError> {
        let mut mounts = Vec::with_capacity(pending.len());
        for m in pending {
            mounts.push(self.resolve_mount(m)?);
        }
        // containerd mounts shallower paths first, so a mount inside another
        // lands on top of it.
        mounts.sort_by_key(|m| Path::new(&m.mount_path).components().count());
        plan.mounts = mounts;
        plan.runtime_env
            .push(("HOSTNAME".to_owned(), hostname.to_owned()));
        if let Some(image) = self.options.images.get(&plan.image) {
            plan.runtime_env.extend(image.env.iter().cloned());
        }
        Ok(plan)
    }

    fn ports(&self, c: &Container, cf: &str) -> Result<Vec<PortPlan>, PlanError> {
        let mut ports = Vec::new();
        for (i, p) in c.ports.iter().flatten().enumerate() {
            let pf = format!("{cf}.ports[{i}]");
            let container_port = port_number(p.container_port).ok_or_else(|| {
                self.err(
                    format!("{pf}.containerPort"),
                    invalid(format!("{} is not between 1 and 65535", p.container_port)),
                )
            })?;
            let host_port = p
                .host_port
                .filter(|hp| *hp != 0)
                .map(|hp| {
                    port_number(hp).ok_or_else(|| {
                        self.err(
                            format!("{pf}.hostPort"),
                            invalid(format!("{hp} is not between 1 and 65535")),
                        )
                    })
                })
                .transpose()?;
            let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".to_owned());
            if !matches!(protocol.as_str(), "TCP" | "UDP" | "SCTP") {
                return Err(self.err(
                    format!("{pf}.protocol"),
                    invalid(format!("{protocol} is not TCP, UDP or SCTP")),
                ));
            }
            ports.push(PortPlan {
                name: p.name.clone().filter(|n| !n.is_empty()),
                container_port,
                protocol,
                host_port,
            });
        }
        Ok(ports)
    }

    // -- environment --------------------------------------------------------

    /// The container's variables, computed as the kubelet's
    /// `makeEnvironmentVariables` does.
    fn container_env(
        &self,
        c: &Container,
        cf: &str,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<(String, String)>, PlanError> {
        let mut env = EnvList::default();
        for (i, from) in c.env_from.iter().flatten().enumerate() {
            self.env_from(&mut env, from, &format!("{cf}.envFrom[{i}]"), warnings)?;
        }
        for (i, var) in c.env.iter().flatten().enumerate() {
            let ef = format!("{cf}.env[{i}]");
            if !self.options.env_names.accepts(&var.name) {
                return Err(self.err(
                    format!("{ef}.name"),
                    invalid(format!(
                        "{:?} is not a valid environment variable name",
                        var.name
                    )),
                ));
            }
            let value = match (
                var.value.as_deref().filter(|v| !v.is_empty()),
                &var.value_from,
            ) {
                (Some(_), Some(_)) => {
                    return Err(self.err(
                        format!("{ef}.valueFrom"),
                        invalid("may not be set when value is not empty"),
                    ));
                }
                // Only variables defined so far are expanded: a reference to
                // a later one stays literal.
                (Some(v), None) => expand(v, |name| lookup_or_literal(&env, name)),
                (None, Some(source)) => {
                    match self.env_source(source, c, &format!("{ef}.valueFrom"))? {
                        Some(v) => v,
                        // An optional reference to something missing: unset.
                        None => continue,
                    }
                }
                (None, None) => String::new(),
            };
            env.set(var.name.clone(), value);
        }
        Ok(env.vars)
    }

    fn env_from(
        &self,
        env: &mut EnvList,
        from: &EnvFromSource,
        field: &str,
        warnings: &mut Vec<String>,
    ) -> Result<(), PlanError> {
        let prefix = from.prefix.as_deref().unwrap_or("");
        let (kind, name, optional, sub) = match (&from.config_map_ref, &from.secret_ref) {
            (Some(r), None) => (RefKind::ConfigMap, &r.name, r.optional, "configMapRef"),
            (None, Some(r)) => (RefKind::Secret, &r.name, r.optional, "secretRef"),
            _ => {
                return Err(self.err(
                    field,
                    invalid("must set exactly one of configMapRef and secretRef"),
                ));
            }
        };
        let field = format!("{field}.{sub}");
        let pairs: Vec<(String, String)> = match kind {
            RefKind::ConfigMap => match self.objects.config_map(name) {
                Some(cm) => cm
                    .data
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                None if optional == Some(true) => return Ok(()),
                None => {
                    return Err(self.err(
                        field,
                        Problem::MissingObject {
                            kind,
                            name: name.clone(),
                        },
                    ));
                }
            },
            RefKind::Secret => match self.objects.secret(name) {
                Some(data) => data
                    .iter()
                    .map(|(k, v)| utf8(v, kind, name, k).map(|v| (k.clone(), v)))
                    .collect::<Result<_, _>>()
                    .map_err(|p| self.err(field.clone(), p))?,
                None if optional == Some(true) => return Ok(()),
                None => {
                    return Err(self.err(
                        field,
                        Problem::MissingObject {
                            kind,
                            name: name.clone(),
                        },
                    ));
                }
            },
        };
        let mut skipped = Vec::new();
        for (k, v) in pairs {
            let key = format!("{prefix}{k}");
            if self.options.env_names.accepts(&key) {
                env.set(key, v);
            } else {
                skipped.push(key);
            }
        }
        if !skipped.is_empty() {
            warnings.push(format!(
                "{field}: keys [{}] from {kind} {}/{name} were skipped since they are not valid environment variable names",
                skipped.join(", "),
                self.pod.namespace
            ));
        }
        Ok(())
    }

    /// A `valueFrom`; `None` for an optional reference to something missing.
    fn env_source(
        &self,
        source: &EnvVarSource,
        c: &Container,
        field: &str,
    ) -> Result<Option<String>, PlanError> {
        let set = [
            source.config_map_key_ref.is_some(),
            source.secret_key_ref.is_some(),
            source.field_ref.is_some(),
            source.resource_field_ref.is_some(),
        ];
        if set.iter().filter(|s| **s).count() != 1 {
            return Err(self.err(field, invalid("must set exactly one of configMapKeyRef, secretKeyRef, fieldRef and resourceFieldRef")));
        }
        if let Some(r) = &source.config_map_key_ref {
            let f = format!("{field}.configMapKeyRef");
            let optional = r.optional == Some(true);
            return match self.objects.config_map(&r.name) {
                None if optional => Ok(None),
                None => Err(self.err(
                    f,
                    Problem::MissingObject {
                        kind: RefKind::ConfigMap,
                        name: r.name.clone(),
                    },
                )),
                Some(cm) => match cm.data.get(&r.key) {
                    Some(v) => Ok(Some(v.clone())),
                    None if optional => Ok(None),
                    None => Err(self.err(
                        f,
                        Problem::MissingKey {
                            kind: RefKind::ConfigMap,
                            name: r.name.clone(),
                            key: r.key.clone(),
                        },
                    )),
                },
            };
        }
        if let Some(r) = &source.secret_key_ref {
            let f = format!("{field}.secretKeyRef");
            let optional = r.optional == Some(true);
            return match self.objects.secret(&r.name) {
                None if optional => Ok(None),
                None => Err(self.err(
                    f,
                    Problem::MissingObject {
                        kind: RefKind::Secret,
                        name: r.name.clone(),
                    },
                )),
                Some(data) => match data.get(&r.key) {
                    Some(v) => utf8(v, RefKind::Secret, &r.name, &r.key)
                        .map(Some)
                        .map_err(|p| self.err(f, p)),
                    None if optional => Ok(None),
                    None => Err(self.err(
                        f,
                        Problem::MissingKey {
                            kind: RefKind::Secret,
                            name: r.name.clone(),
                            key: r.key.clone(),
                        },
                    )),
                },
            };
        }
        if let Some(r) = &source.field_ref {
            return self
                .field_ref(r, &format!("{field}.fieldRef"), true)
                .map(Some);
        }
        if let Some(r) = &source.resource_field_ref {
            return self
                .resource_field_ref(r, Some(c), &format!("{field}.resourceFieldRef"))
                .map(Some);
        }
        Ok(None)
    }

    /// A downward-API field of the pod, for env (`for_env`) or a volume file.
    fn field_ref(
        &self,
        r: &ObjectFieldSelector,
        field: &str,
        for_env: bool,
    ) -> Result<String, PlanError> {
        if let Some(v) = r
            .api_version
            .as_deref()
            .filter(|v| !v.is_empty() && *v != "v1")
        {
            return Err(self.err(
                format!("{field}.apiVersion"),
                Problem::Unsupported(format!("apiVersion {v}")),
            ));
        }
        let path = r.field_path.as_str();
        let pod = self.pod;
        let unsupported = || {
            self.err(
                format!("{field}.fieldPath"),
                Problem::UnsupportedFieldPath(path.to_owned()),
            )
        };
        if let Some((map, key)) = subscript(path) {
            return match map {
                "metadata.labels" => Ok(pod.labels.get(key).cloned().unwrap_or_default()),
                "metadata.annotations" => Ok(pod.annotations.get(key).cloned().unwrap_or_default()),
                _ => Err(unsupported()),
            };
        }
        Ok(match (path, for_env) {
            ("metadata.name", _) => pod.name.clone(),
            ("metadata.namespace", _) => pod.namespace.clone(),
            ("metadata.uid", _) => pod.uid.clone(),
            ("metadata.labels", false) => format_map(&pod.labels),
            ("metadata.annotations", false) => format_map(&pod.annotations),
            ("spec.nodeName", true) => pod.node_name.clone(),
            ("spec.serviceAccountName", true) => pod.service_account_name.clone(),
            ("status.hostIP", true) => pod.host_ips().split(',').next().unwrap_or("").to_owned(),
            ("status.hostIPs", true) => pod.host_ips(),
            ("status.podIP", true) => pod.pod_ips().split(',').next().unwrap_or("").to_owned(),
            ("status.podIPs", true) => pod.pod_ips(),
            _ => return Err(unsupported()),
        })
    }

    /// `limits.cpu` & co. of a container, divided by the divisor and rounded
    /// up as the kubelet does; unset limits read as the node's allocatable.
    fn resource_field_ref(
        &self,
        r: &ResourceFieldSelector,
        this: Option<&Container>,
        field: &str,
    ) -> Result<String, PlanError> {
        let container = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => containers(self.spec)
                .map(|(_, c)| c)
                .find(|c| c.name == name)
                .ok_or_else(|| {
                    self.err(
                        format!("{field}.containerName"),
                        Problem::NoSuchContainer(name.to_owned()),
                    )
                })?,
            None => this.ok_or_else(|| {
                self.err(
                    format!("{field}.containerName"),
                    invalid("is required in a volume"),
                )
            })?,
        };
        let cf = containers(self.spec)
            .find(|(_, c)| c.name == container.name)
            .map_or_else(String::new, |(f, _)| f);
        let resources = self.resources(container, &cf)?;
        let divisor = match r
            .divisor
            .as_ref()
            .map(|d| d.0.as_str())
            .filter(|d| !d.is_empty())
        {
            None => Quantity::ONE,
            Some(d) => {
                let q = Quantity::parse(d).map_err(|reason| {
                    self.err(
                        format!("{field}.divisor"),
                        Problem::InvalidQuantity {
                            quantity: d.to_owned(),
                            reason,
                        },
                    )
                })?;
                // A zero divisor means "unset" to the kubelet.
                if q.is_zero() { Quantity::ONE } else { q }
            }
        };
        let quantity_err = |reason: String| {
            self.err(
                format!("{field}.divisor"),
                Problem::InvalidQuantity {
                    quantity: r.divisor.as_ref().map(|d| d.0.clone()).unwrap_or_default(),
                    reason,
                },
            )
        };
        let (value, per) = match r.resource.as_str() {
            "limits.cpu" => (
                resources
                    .cpu_limit_millis
                    .unwrap_or(self.options.node_cpu_millis),
                divisor.milli_value().map_err(quantity_err)?,
            ),
            "requests.cpu" => (
                resources.cpu_request_millis.unwrap_or(0),
                divisor.milli_value().map_err(quantity_err)?,
            ),
            "limits.memory" => (
                resources
                    .memory_limit_bytes
                    .unwrap_or(self.options.node_memory_bytes),
                divisor.value().map_err(quantity_err)?,
            ),
            "requests.memory" => (
                resources.memory_request_bytes.unwrap_or(0),
                divisor.value().map_err(quantity_err)?,
            ),
            other => {
                return Err(self.err(
                    format!("{field}.resource"),
                    Problem::Unsupported(format!("resource {other}")),
                ));
            }
        };
        if per <= 0 {
            return Err(self.err(format!("{field}.divisor"), invalid("must be positive")));
        }
        Ok(ceil_div(i128::from(value), i128::from(per)).to_string())
    }

    fn resources(&self, c: &Container, cf: &str) -> Result<ResourcesPlan, PlanError> {
        let Some(resources) = &c.resources else {
            return Ok(ResourcesPlan::default());
        };
        let limits = resources.limits.as_ref();
        let requests = resources.requests.as_ref();
        let limits_field = format!("{cf}.resources.limits");
        let requests_field = format!("{cf}.resources.requests");
        let cpu_limit_millis = self.resource_quantity(limits, &limits_field, "cpu")?;
        let memory_limit_bytes = self.resource_quantity(limits, &limits_field, "memory")?;
        Ok(ResourcesPlan {
            cpu_limit_millis,
            memory_limit_bytes,
            cpu_request_millis: self
                .resource_quantity(requests, &requests_field, "cpu")?
                .or(cpu_limit_millis),
            memory_request_bytes: self
                .resource_quantity(requests, &requests_field, "memory")?
                .or(memory_limit_bytes),
        })
    }

    /// One resource of a `limits` or `requests` map: millicores for cpu,
    /// otherwise the value rounded up (bytes for memory).
    fn resource_quantity(
        &self,
        section: Option<&BTreeMap<String, KubeQuantity>>,
        field: &str,
        resource: &str,
    ) -> Result<Option<i64>, PlanError> {
        let Some(quantity) = section.and_then(|m| m.get(resource)) else {
            return Ok(None);
        };
        let bad = |reason: String| {
            self.err(
                format!("{field}.{resource}"),
                Problem::InvalidQuantity {
                    quantity: quantity.0.clone(),
                    reason,
                },
            )
        };
        let parsed = Quantity::parse(&quantity.0).map_err(bad)?;
        let value = if resource == "cpu" {
            parsed.milli_value()
        } else {
            parsed.value()
        }
        .map_err(bad)?;
        if value < 0 {
            return Err(bad("must not be negative".to_owned()));
        }
        Ok(Some(value))
    }

    // -- security -----------------------------------------------------------

    /// The effective security context: container values over pod values
    /// (DetermineEffectiveSecurityContext), and the kubelet's non-root check.
    fn security(
        &self,
        plan: &mut ContainerPlan,
        sc: Option<&SecurityContext>,
        image: Option<&ImageConfig>,
        cf: &str,
    ) -> Result<(), PlanError> {
        let default_pod = PodSecurityContext::default();
        let default_container = SecurityContext::default();
        let pod = self.spec.security_context.as_ref().unwrap_or(&default_pod);
        let sc = sc.unwrap_or(&default_container);
        let (uid_of_image, gid_of_image) = image.map_or((None, None), ImageConfig::uid_gid);
        let run_as_user = sc.run_as_user.or(pod.run_as_user);
        plan.run_as_user = run_as_user.or(uid_of_image);
        plan.run_as_group = sc.run_as_group.or(pod.run_as_group).or(gid_of_image);
        plan.fs_group = pod.fs_group;
        plan.supplemental_groups = pod
            .fs_group
            .into_iter()
            .chain(pod.supplemental_groups.iter().flatten().copied())
            .fold(Vec::new(), |mut v, g| {
                if !v.contains(&g) {
                    v.push(g);
                }
                v
            });
        plan.run_as_non_root = sc.run_as_non_root.or(pod.run_as_non_root).unwrap_or(false);
        plan.read_only_root_filesystem = sc.read_only_root_filesystem.unwrap_or(false);
        plan.allow_privilege_escalation = sc.allow_privilege_escalation.unwrap_or(true);
        plan.privileged = sc.privileged.unwrap_or(false);
        if let Some(caps) = &sc.capabilities {
            plan.capabilities_add = caps.add.clone().unwrap_or_default();
            plan.capabilities_drop = caps.drop.clone().unwrap_or_default();
        }
        plan.seccomp_profile = sc
            .seccomp_profile
            .as_ref()
            .or(pod.seccomp_profile.as_ref())
            .map(|p| match (&*p.type_, &p.localhost_profile) {
                ("Localhost", Some(profile)) => format!("Localhost/{profile}"),
                (t, _) => t.to_owned(),
            });
        if !plan.run_as_non_root {
            return Ok(());
        }
        let field = if sc.run_as_non_root.is_some() {
            format!("{cf}.securityContext.runAsNonRoot")
        } else {
            format!("{SPEC}.securityContext.runAsNonRoot")
        };
        let container = &plan.name;
        let pod_name = format!("{}/{}", self.pod.namespace, self.pod.name);
        let refusal = match (run_as_user, image) {
            (Some(0), _) => Some(format!(
                "container's runAsUser breaks non-root policy (pod: {pod_name:?}, container: {container})"
            )),
            (Some(_), _) => None,
            (None, None) => Some(format!(
                "runAsNonRoot is true, runAsUser is unset and the image's user is unknown: cannot verify user is non-root (pod: {pod_name:?}, container: {container})"
            )),
            (None, Some(image)) => match uid_of_image {
                Some(0) => Some(format!(
                    "container has runAsNonRoot and image will run as root (pod: {pod_name:?}, container: {container})"
                )),
                Some(_) => None,
                None => Some(format!(
                    "container has runAsNonRoot and image has non-numeric user ({}), cannot verify user is non-root (pod: {pod_name:?}, container: {container})",
                    image.user
                )),
            },
        };
        match refusal {
            Some(message) => Err(self.err(field, Problem::NonRoot(message))),
            None => Ok(()),
        }
    }

    // -- probes -------------------------------------------------------------

    fn probe(&self, p: &Probe, c: &Container, field: &str) -> Result<ProbePlan, PlanError> {
        let handlers = [
            p.exec.is_some(),
            p.http_get.is_some(),
            p.tcp_socket.is_some(),
            p.grpc.is_some(),
        ];
        if handlers.iter().filter(|h| **h).count() != 1 {
            return Err(self.err(
                field,
                invalid("must set exactly one of exec, httpGet, tcpSocket and grpc"),
            ));
        }
        let action = if let Some(h) = &p.http_get {
            let scheme = h.scheme.clone().unwrap_or_else(|| "HTTP".to_owned());
            if !matches!(scheme.as_str(), "HTTP" | "HTTPS") {
                return Err(self.err(
                    format!("{field}.httpGet.scheme"),
                    invalid(format!("{scheme} is not HTTP or HTTPS")),
                ));
            }
            ProbeAction::Http {
                port: self.probe_port(&h.port, c, &format!("{field}.httpGet.port"))?,
                path: h
                    .path
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "/".to_owned()),
                scheme,
                host: h.host.clone().filter(|h| !h.is_empty()),
                headers: h
                    .http_headers
                    .iter()
                    .flatten()
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect(),
            }
        } else if let Some(t) = &p.tcp_socket {
            ProbeAction::Tcp {
                port: self.probe_port(&t.port, c, &format!("{field}.tcpSocket.port"))?,
                host: t.host.clone().filter(|h| !h.is_empty()),
            }
        } else if let Some(g) = &p.grpc {
            ProbeAction::Grpc {
                port: port_number(g.port).ok_or_else(|| {
                    self.err(
                        format!("{field}.grpc.port"),
                        invalid(format!("{} is not between 1 and 65535", g.port)),
                    )
                })?,
                service: g.service.clone(),
            }
        } else {
            // The kubelet expands an exec probe's command against the
            // container's literal `value`s only (valueFrom ones read as "").
            let statics: HashMap<&str, &str> = c
                .env
                .iter()
                .flatten()
                .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or("")))
                .collect();
            ProbeAction::Exec {
                command: p
                    .exec
                    .iter()
                    .flat_map(|e| e.command.iter().flatten())
                    .map(|s| expand(s, |n| lookup_or_literal(&statics, n)))
                    .collect(),
            }
        };
        let seconds = |v: Option<i32>, name: &str, default: u32| -> Result<u32, PlanError> {
            match v {
                None | Some(0) => Ok(default),
                Some(n) => u32::try_from(n).map_err(|_| {
                    self.err(format!("{field}.{name}"), invalid("must not be negative"))
                }),
            }
        };
        Ok(ProbePlan {
            action,
            initial_delay: Duration::from_secs(u64::from(seconds(
                p.initial_delay_seconds,
                "initialDelaySeconds",
                0,
            )?)),
            period: Duration::from_secs(u64::from(seconds(p.period_seconds, "periodSeconds", 10)?)),
            timeout: Duration::from_secs(u64::from(seconds(
                p.timeout_seconds,
                "timeoutSeconds",
                1,
            )?)),
            success_threshold: seconds(p.success_threshold, "successThreshold", 1)?,
            failure_threshold: seconds(p.failure_threshold, "failureThreshold", 3)?,
        })
    }

    /// A probe port, a number or the name of one of the container's ports
    /// (then, as the kubelet's last try, a number written as a string).
    fn probe_port(&self, port: &IntOrString, c: &Container, field: &str) -> Result<u16, PlanError> {
        let number = match port {
            IntOrString::Int(n) => *n,
            IntOrString::String(name) => match c
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
            {
                Some(p) => p.container_port,
                None => name.parse().map_err(|_| {
                    self.err(
                        field,
                        Problem::NoSuchPort {
                            container: c.name.clone(),
                            port: name.clone(),
                        },
                    )
                })?,
            },
        };
        port_number(number).ok_or_else(|| {
            self.err(
                field,
                invalid(format!("{number} is not between 1 and 65535")),
            )
        })
    }

    // -- volumes ------------------------------------------------------------

    fn plan_volumes(&self) -> Result<Vec<PlannedVolume>, PlanError> {
        if let Some(claim) = self.workload.volume_claim_templates.first() {
            return Err(self.err(
                "spec.volumeClaimTemplates[0]",
                Problem::UnsupportedVolume(format!(
                    "persistentVolumeClaim (claim template {claim})"
                )),
            ));
        }
        let mut volumes: Vec<PlannedVolume> = Vec::new();
        for (i, v) in self.spec.volumes.iter().flatten().enumerate() {
            let field = format!("{SPEC}.volumes[{i}]");
            if let Some(first) = volumes.iter().find(|p| p.name == v.name) {
                return Err(self.err(
                    format!("{field}.name"),
                    invalid(format!("{} is already the name of {}", v.name, first.field)),
                ));
            }
            if v.name.is_empty() || v.name.contains('/') || v.name == "." || v.name == ".." {
                return Err(self.err(
                    format!("{field}.name"),
                    invalid(format!("{:?} is not a valid volume name", v.name)),
                ));
            }
            volumes.push(self.plan_volume(v, field)?);
        }
        Ok(volumes)
    }

    fn plan_volume(&self, v: &Volume, field: String) -> Result<PlannedVolume, PlanError> {
        let types = volume_types(v);
        let (kind, content) = match types.as_slice() {
            // A volume with no source is an emptyDir (API defaulting).
            [] => (
                "emptyDir",
                VolumeContent::EmptyDir {
                    memory: false,
                    size_limit_bytes: None,
                },
            ),
            [_, _, ..] => {
                return Err(self.err(
                    &field,
                    invalid(format!(
                        "must set exactly one volume source, not {}",
                        types.join(", ")
                    )),
                ));
            }
            [t] => match t.as_str() {
                "emptyDir" => ("emptyDir", self.empty_dir(v, &field)?),
                "configMap" => ("configMap", self.config_map_volume(v, &field)?),
                "secret" => ("secret", self.secret_volume(v, &field)?),
                "downwardAPI" => ("downwardAPI", self.downward_api_volume(v, &field)?),
                "projected" => ("projected", self.projected_volume(v, &field)?),
                other => return Err(self.err(&field, Problem::UnsupportedVolume(other.to_owned()))),
            },
        };
        Ok(PlannedVolume {
            name: v.name.clone(),
            field,
            kind,
            content,
        })
    }

    fn empty_dir(&self, v: &Volume, field: &str) -> Result<VolumeContent, PlanError> {
        let e = v.empty_dir.clone().unwrap_or_default();
        let memory = match e.medium.as_deref() {
            None | Some("") => false,
            Some("Memory") => true,
            Some(other) => {
                return Err(self.err(
                    format!("{field}.emptyDir.medium"),
                    Problem::Unsupported(format!("medium {other}")),
                ));
            }
        };
        let size_limit_bytes = e
            .size_limit
            .map(|q| {
                Quantity::parse(&q.0)
                    .and_then(|p| p.value())
                    .map_err(|reason| {
                        self.err(
                            format!("{field}.emptyDir.sizeLimit"),
                            Problem::InvalidQuantity {
                                quantity: q.0.clone(),
                                reason,
                            },
                        )
                    })
            })
            .transpose()?;
        Ok(VolumeContent::EmptyDir {
            memory,
            size_limit_bytes,
        })
    }

    fn config_map_volume(&self, v: &Volume, field: &str) -> Result<VolumeContent, PlanError> {
        let cm = v.config_map.clone().unwrap_or_default();
        let field = format!("{field}.configMap");
        let mode = self.default_mode(cm.default_mode, &field)?;
        let mut files = BTreeMap::new();
        self.add_object_files(
            &mut files,
            RefKind::ConfigMap,
            &cm.name,
            cm.items.as_deref(),
            cm.optional,
            mode,
            &field,
        )?;
        // A configMap volume lives on disk; the kubelet's emptyDir is 0777.
        Ok(VolumeContent::Files {
            files,
            root_mode: 0o777,
        })
    }

    fn secret_volume(&self, v: &Volume, field: &str) -> Result<VolumeContent, PlanError> {
        let s = v.secret.clone().unwrap_or_default();
        let field = format!("{field}.secret");
        let mode = self.default_mode(s.default_mode, &field)?;
        let name = s.secret_name.unwrap_or_default();
        if name.is_empty() {
            return Err(self.err(format!("{field}.secretName"), invalid("is required")));
        }
        let mut files = BTreeMap::new();
        self.add_object_files(
            &mut files,
            RefKind::Secret,
            &name,
            s.items.as_deref(),
            s.optional,
            mode,
            &field,
        )?;
        // Secrets live on tmpfs, whose root is 1777.
        Ok(VolumeContent::Files {
            files,
            root_mode: 0o1777,
        })
    }

    fn downward_api_volume(&self, v: &Volume, field: &str) -> Result<VolumeContent, PlanError> {
        let d = v.downward_api.clone().unwrap_or_default();
        let field = format!("{field}.downwardAPI");
        let mode = self.default_mode(d.default_mode, &field)?;
        let mut files = BTreeMap::new();
        self.add_downward_files(&mut files, d.items.as_deref().unwrap_or(&[]), mode, &field)?;
        Ok(VolumeContent::Files {
            files,
            root_mode: 0o1777,
        })
    }

    fn projected_volume(&self, v: &Volume, field: &str) -> Result<VolumeContent, PlanError> {
        let p = v.projected.clone().unwrap_or_default();
        let field = format!("{field}.projected");
        let mode = self.default_mode(p.default_mode, &field)?;
        let mut files = BTreeMap::new();
        for (j, source) in p.sources.iter().flatten().enumerate() {
            let sf = format!("{field}.sources[{j}]");
            let kinds = [
                source.config_map.is_some(),
                source.secret.is_some(),
                source.downward_api.is_some(),
                source.service_account_token.is_some(),
                source.cluster_trust_bundle.is_some(),
            ];
            if kinds.iter().filter(|k| **k).count() != 1 {
                return Err(self.err(sf, invalid("must set exactly one projection")));
            }
            if let Some(cm) = &source.config_map {
                self.add_object_files(
                    &mut files,
                    RefKind::ConfigMap,
                    &cm.name,
                    cm.items.as_deref(),
                    cm.optional,
                    mode,
                    &format!("{sf}.configMap"),
                )?;
            } else if let Some(s) = &source.secret {
                self.add_object_files(
                    &mut files,
                    RefKind::Secret,
                    &s.name,
                    s.items.as_deref(),
                    s.optional,
                    mode,
                    &format!("{sf}.secret"),
                )?;
            } else if let Some(d) = &source.downward_api {
                self.add_downward_files(
                    &mut files,
                    d.items.as_deref().unwrap_or(&[]),
                    mode,
                    &format!("{sf}.downwardAPI"),
                )?;
            } else if source.service_account_token.is_some() {
                return Err(self.err(
                    format!("{sf}.serviceAccountToken"),
                    Problem::Unsupported("projected source serviceAccountToken".to_owned()),
                ));
            } else {
                return Err(self.err(
                    format!("{sf}.clusterTrustBundle"),
                    Problem::Unsupported("projected source clusterTrustBundle".to_owned()),
                ));
            }
        }
        Ok(VolumeContent::Files {
            files,
            root_mode: 0o1777,
        })
    }

    /// `defaultMode`, 0644 when unset.
    fn default_mode(&self, mode: Option<i32>, field: &str) -> Result<u32, PlanError> {
        file_mode(mode.unwrap_or(0o644)).ok_or_else(|| {
            self.err(
                format!("{field}.defaultMode"),
                invalid("must be a number between 0 and 0777 (octal), both inclusive"),
            )
        })
    }

    /// The files of a ConfigMap's or Secret's keys (all of them, or the
    /// `items`); a missing object is an error unless `optional`.
    #[allow(clippy::too_many_arguments)]
    fn add_object_files(
        &self,
        files: &mut BTreeMap<String, (Vec<u8>, u32)>,
        kind: RefKind,
        name: &str,
        items: Option<&[KeyToPath]>,
        optional: Option<bool>,
        mode: u32,
        field: &str,
    ) -> Result<(), PlanError> {
        let Some(data) = self.objects.key_bytes(kind, name) else {
            return if optional == Some(true) {
                Ok(())
            } else {
                Err(self.err(
                    field,
                    Problem::MissingObject {
                        kind,
                        name: name.to_owned(),
                    },
                ))
            };
        };
        let all: Vec<&String> = data.keys().collect();
        self.add_key_files(
            files,
            kind,
            name,
            &all,
            |k| data.get(k).cloned(),
            items,
            optional,
            mode,
            field,
        )
    }

    /// Files from keys, as the configMap and secret volume plugins'
    /// `MakePayload` does: every key at its own name with the default mode,
    /// or just the items at their paths with their own modes.
    #[allow(clippy::too_many_arguments)]
    fn add_key_files(
        &self,
        files: &mut BTreeMap<String, (Vec<u8>, u32)>,
        kind: RefKind,
        name: &str,
        all_keys: &[&String],
        get: impl Fn(&str) -> Option<Vec<u8>>,
        items: Option<&[KeyToPath]>,
        optional: Option<bool>,
        mode: u32,
        field: &str,
    ) -> Result<(), PlanError> {
        match items.filter(|i| !i.is_empty()) {
            None => {
                for key in all_keys {
                    let data = get(key).unwrap_or_default();
                    let path = self.payload_path(key, field)?;
                    files.insert(path, (data, mode));
                }
            }
            Some(items) => {
                for (j, item) in items.iter().enumerate() {
                    let f = format!("{field}.items[{j}]");
                    let Some(data) = get(&item.key) else {
                        if optional == Some(true) {
                            continue;
                        }
                        return Err(self.err(
                            f,
                            Problem::MissingKey {
                                kind,
                                name: name.to_owned(),
                                key: item.key.clone(),
                            },
                        ));
                    };
                    let item_mode = match item.mode {
                        None => mode,
                        Some(m) => file_mode(m).ok_or_else(|| {
                            self.err(
                                format!("{f}.mode"),
                                invalid(
                                    "must be a number between 0 and 0777 (octal), both inclusive",
                                ),
                            )
                        })?,
                    };
                    let path = self.payload_path(&item.path, &format!("{f}.path"))?;
                    files.insert(path, (data, item_mode));
                }
            }
        }
        Ok(())
    }

    fn add_downward_files(
        &self,
        files: &mut BTreeMap<String, (Vec<u8>, u32)>,
        items: &[DownwardAPIVolumeFile],
        mode: u32,
        field: &str,
    ) -> Result<(), PlanError> {
        for (j, item) in items.iter().enumerate() {
            let f = format!("{field}.items[{j}]");
            let value = match (&item.field_ref, &item.resource_field_ref) {
                (Some(r), None) => self.field_ref(r, &format!("{f}.fieldRef"), false)?,
                (None, Some(r)) => {
                    self.resource_field_ref(r, None, &format!("{f}.resourceFieldRef"))?
                }
                _ => {
                    return Err(self.err(
                        f,
                        invalid("must set exactly one of fieldRef and resourceFieldRef"),
                    ));
                }
            };
            let item_mode = match item.mode {
                None => mode,
                Some(m) => file_mode(m).ok_or_else(|| {
                    self.err(
                        format!("{f}.mode"),
                        invalid("must be a number between 0 and 0777 (octal), both inclusive"),
                    )
                })?,
            };
            let path = self.payload_path(&item.path, &format!("{f}.path"))?;
            files.insert(path, (value.into_bytes(), item_mode));
        }
        Ok(())
    }

    /// A path inside a volume as the kubelet's atomic writer accepts it.
    fn payload_path(&self, path: &str, field: &str) -> Result<String, PlanError> {
        let problem = if path.is_empty() {
            Some("must not be empty")
        } else if path.starts_with('/') {
            Some("must be a relative path")
        } else if path.split('/').any(|c| c == "..") {
            Some("must not contain '..'")
        } else if path.split('/').next().is_some_and(|c| c.starts_with("..")) {
            Some("must not start with '..'")
        } else {
            None
        };
        match problem {
            Some(p) => Err(self.err(field, invalid(format!("invalid path {path:?}: {p}")))),
            None => Ok(path
                .split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .collect::<Vec<_>>()
                .join("/")),
        }
    }

    // -- mounts -------------------------------------------------------------

    fn container_mounts(
        &self,
        c: &Container,
        cf: &str,
        volumes: &[PlannedVolume],
        env: &HashMap<&str, &str>,
    ) -> Result<Vec<PendingMount>, PlanError> {
        let mut mounts: Vec<PendingMount> = Vec::new();
        for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
            let mf = format!("{cf}.volumeMounts[{i}]");
            let volume = volumes.iter().find(|v| v.name == m.name).ok_or_else(|| {
                self.err(format!("{mf}.name"), Problem::NoSuchVolume(m.name.clone()))
            })?;
            if !m.mount_path.starts_with('/') {
                return Err(self.err(
                    format!("{mf}.mountPath"),
                    invalid(format!("{} is not an absolute path", m.mount_path)),
                ));
            }
            if let Some(other) = mounts.iter().find(|o| o.mount_path == m.mount_path) {
                return Err(self.err(
                    format!("{mf}.mountPath"),
                    invalid(format!(
                        "{} is already mounted by {}",
                        m.mount_path, other.field
                    )),
                ));
            }
            if m.mount_propagation.as_deref().is_some_and(|p| p != "None") {
                return Err(self.err(
                    format!("{mf}.mountPropagation"),
                    Problem::Unsupported(format!(
                        "mountPropagation {}",
                        m.mount_propagation.as_deref().unwrap_or("")
                    )),
                ));
            }
            let sub_path = self.sub_path(m, &mf, env)?;
            mounts.push(PendingMount {
                volume: volume.name.clone(),
                mount_path: m.mount_path.clone(),
                read_only: m.read_only == Some(true)
                    || matches!(
                        volume.kind,
                        "configMap" | "secret" | "downwardAPI" | "projected"
                    ),
                sub_path,
                field: mf,
            });
        }
        Ok(mounts)
    }

    /// `subPath`, or `subPathExpr` expanded against the container's env (a
    /// missing or empty variable is an error, as in the kubelet).
    fn sub_path(
        &self,
        m: &VolumeMount,
        mf: &str,
        env: &HashMap<&str, &str>,
    ) -> Result<Option<String>, PlanError> {
        let (sub, field) = match (
            m.sub_path.as_deref().filter(|s| !s.is_empty()),
            m.sub_path_expr.as_deref().filter(|s| !s.is_empty()),
        ) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(self.err(
                    format!("{mf}.subPathExpr"),
                    invalid("may not be set together with subPath"),
                ));
            }
            (Some(s), None) => (s.to_owned(), format!("{mf}.subPath")),
            (None, Some(expr)) => {
                let mut missing = BTreeSet::new();
                let expanded = expand(expr, |name| match env.get(name) {
                    Some(v) if !v.is_empty() => (*v).to_owned(),
                    _ => {
                        missing.insert(name.to_owned());
                        String::new()
                    }
                });
                let field = format!("{mf}.subPathExpr");
                if !missing.is_empty() {
                    let names: Vec<String> = missing.into_iter().collect();
                    return Err(self.err(
                        field,
                        invalid(format!("missing value for {}", names.join(", "))),
                    ));
                }
                (expanded, field)
            }
        };
        if sub.starts_with('/') {
            return Err(self.err(field, invalid(format!("{sub} must be a relative path"))));
        }
        if Path::new(&sub)
            .components()
            .any(|c| c == Component::ParentDir)
        {
            return Err(self.err(field, invalid(format!("{sub} must not contain '..'"))));
        }
        Ok(Some(sub))
    }

    /// The host path of a mount, once its volume is written: a subPath that
    /// does not exist is created as a directory with the volume's mode (as
    /// the kubelet does), links are followed and must stay in the volume.
    fn resolve_mount(&self, m: PendingMount) -> Result<MountPlan, PlanError> {
        let volume_dir = self.options.volumes_dir.join(&m.volume);
        let io_err = |path: &Path, source| {
            self.err(
                &m.field,
                Problem::Io {
                    path: path.to_owned(),
                    source,
                },
            )
        };
        let host_path = match &m.sub_path {
            None => volume_dir.clone(),
            Some(sub) => {
                let joined = volume_dir.join(sub);
                if !joined.exists() {
                    let mode = std::fs::metadata(&volume_dir)
                        .map_err(|e| io_err(&volume_dir, e))?
                        .permissions()
                        .mode()
                        & 0o7777;
                    make_dirs(&volume_dir, Path::new(sub), mode).map_err(|e| io_err(&joined, e))?;
                }
                let resolved = joined.canonicalize().map_err(|e| io_err(&joined, e))?;
                let root = volume_dir
                    .canonicalize()
                    .map_err(|e| io_err(&volume_dir, e))?;
                if !resolved.starts_with(&root) {
                    return Err(self.err(
                        format!("{}.subPath", m.field),
                        invalid(format!("{sub} resolves outside its volume")),
                    ));
                }
                resolved
            }
        };
        Ok(MountPlan {
            volume: m.volume,
            host_path,
            mount_path: m.mount_path,
            read_only: m.read_only,
            sub_path_applied: m.sub_path,
        })
    }

    // -- writing ------------------------------------------------------------

    fn write_volumes(
        &self,
        volumes: &[PlannedVolume],
        fs_group: Option<i64>,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<VolumePlan>, PlanError> {
        let dir = &self.options.volumes_dir;
        let io_err = |path: &Path, source| {
            self.err(
                format!("{SPEC}.volumes"),
                Problem::Io {
                    path: path.to_owned(),
                    source,
                },
            )
        };
        match std::fs::read_dir(dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(self.err(
                        format!("{SPEC}.volumes"),
                        invalid(format!(
                            "{} is not empty: a pod's volumes start fresh",
                            dir.display()
                        )),
                    ));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
            }
            Err(e) => return Err(io_err(dir, e)),
        }
        let Ok(gid) = fs_group.map(u32::try_from).transpose() else {
            return Err(self.err(
                format!("{SPEC}.securityContext.fsGroup"),
                invalid("must be between 0 and 4294967295"),
            ));
        };
        let mut plans = Vec::new();
        for v in volumes {
            let host_path = dir.join(&v.name);
            let io_err = |path: &Path, source| {
                self.err(
                    &v.field,
                    Problem::Io {
                        path: path.to_owned(),
                        source,
                    },
                )
            };
            let (memory, size_limit_bytes, read_only) = match &v.content {
                VolumeContent::EmptyDir {
                    memory,
                    size_limit_bytes,
                } => {
                    make_dir(&host_path, 0o777).map_err(|e| io_err(&host_path, e))?;
                    (*memory, *size_limit_bytes, false)
                }
                VolumeContent::Files { files, root_mode } => {
                    write_atomic_layout(&host_path, *root_mode, files)
                        .map_err(|(p, e)| io_err(&p, e))?;
                    (false, None, true)
                }
            };
            if let Some(gid) = gid {
                match set_volume_ownership(&host_path, gid, read_only) {
                    Ok(true) => {}
                    Ok(false) => warnings.push(format!(
                        "volume {}: not running as root, so its files could not be given group {gid} (fsGroup); a process running as another user may not read them",
                        v.name
                    )),
                    Err((p, e)) => return Err(io_err(&p, e)),
                }
            }
            plans.push(VolumePlan {
                name: v.name.clone(),
                kind: v.kind,
                host_path,
                memory,
                size_limit_bytes,
            });
        }
        Ok(plans)
    }
}

/// The volume source types set on `v`, by their manifest names.
fn volume_types(v: &Volume) -> Vec<String> {
    match serde_json::to_value(v) {
        Ok(Value::Object(map)) => map
            .into_iter()
            .filter(|(k, v)| k != "name" && !v.is_null())
            .map(|(k, _)| k)
            .collect(),
        _ => Vec::new(),
    }
}

fn port_number(n: i32) -> Option<u16> {
    u16::try_from(n).ok().filter(|p| *p != 0)
}

fn file_mode(mode: i32) -> Option<u32> {
    u32::try_from(mode).ok().filter(|m| *m <= 0o777)
}

/// Secret bytes as an environment value.
fn utf8(bytes: &[u8], kind: RefKind, name: &str, key: &str) -> Result<String, Problem> {
    String::from_utf8(bytes.to_vec()).map_err(|_| Problem::NotUtf8 {
        kind,
        name: name.to_owned(),
        key: key.to_owned(),
    })
}

/// The kubelet's hostname: at most 63 characters, no trailing `-` or `.`.
fn truncate_hostname(name: &str) -> String {
    if name.len() <= 63 {
        return name.to_owned();
    }
    name[..63].trim_end_matches(['-', '.']).to_owned()
}

/// `metadata.labels['key']` → ("metadata.labels", "key"), as the kubelet's
/// `SplitMaybeSubscriptedPath`.
fn subscript(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_suffix("']")?;
    let (map, key) = inner.split_once("['")?;
    (!map.is_empty()).then_some((map, key))
}

/// Labels or annotations as a downward-API file: sorted `key="value"` lines
/// (Go's `%q`), no final newline.
fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's `strconv.Quote` for the characters labels and annotations hold:
/// `"` and `\` escaped, control characters as `\n`, `\t`, ... or `\xNN`,
/// other characters kept.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if u32::from(c) < 0x20 || u32::from(c) == 0x7f => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn ceil_div(a: i128, b: i128) -> i128 {
    let q = a / b;
    if (a % b != 0) && ((a < 0) == (b < 0)) {
        q + 1
    } else {
        q
    }
}

// ---------------------------------------------------------------------------
// Environment lists and `$(VAR)` expansion
// ---------------------------------------------------------------------------

/// Variables in order of first definition; setting one again replaces its
/// value in place.
#[derive(Debug, Default)]
struct EnvList {
    vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl EnvList {
    fn set(&mut self, name: String, value: String) {
        if let Some(&i) = self.index.get(&name) {
            self.vars[i].1 = value;
        } else {
            self.index.insert(name.clone(), self.vars.len());
            self.vars.push((name, value));
        }
    }
}

/// Where `$(NAME)` looks.
trait Lookup {
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl Lookup for EnvList {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.index.get(name).map(|&i| self.vars[i].1.as_str())
    }
}

impl Lookup for HashMap<&str, &str> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).copied()
    }
}

/// The kubelet's mapping: a defined variable's value, else the reference
/// itself, unexpanded.
fn lookup_or_literal(vars: &impl Lookup, name: &str) -> String {
    vars.lookup(name)
        .map_or_else(|| format!("$({name})"), str::to_owned)
}

/// Kubernetes' `$(VAR)` expansion (third_party/forked/golang/expansion):
/// `$(NAME)` is replaced by `mapping(NAME)`, `$$` is an escaped `$`, an
/// unclosed `$(` and any other `$x` are kept as written. One deliberate
/// difference: Go copies a `$` followed by a multi-byte character byte-wise
/// and produces invalid UTF-8; here the character is kept whole.
pub fn expand(input: &str, mut mapping: impl FnMut(&str) -> String) -> String {
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < input.len() {
        if input.as_bytes()[cursor] == b'$' && cursor + 1 < input.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            // How many bytes after the `$` are consumed, minus one.
            let advance = match rest.as_bytes()[0] {
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => {
                    if let Some(close) = rest.find(')') {
                        out.push_str(&mapping(&rest[1..close]));
                        close + 1
                    } else {
                        out.push_str("$(");
                        1
                    }
                }
                _ => {
                    let c = rest.chars().next().map_or(1, char::len_utf8);
                    out.push('$');
                    out.push_str(&rest[..c]);
                    c
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.push_str(&input[checkpoint.min(input.len())..]);
    out
}

// ---------------------------------------------------------------------------
// Quantities
// ---------------------------------------------------------------------------

/// A Kubernetes resource quantity, exactly: `mantissa × 10^exp10 × 2^exp2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    mantissa: i128,
    exp10: i32,
    exp2: u32,
}

impl Quantity {
    const ONE: Self = Self {
        mantissa: 1,
        exp10: 0,
        exp2: 0,
    };

    /// Parse `<sign><digits>[.<digits>]<suffix>`, the suffix one of the
    /// binary `Ki Mi Gi Ti Pi Ei`, the decimal `n u m k M G T P E`, or an
    /// exponent `e<n>`/`E<n>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let number_end = text
            .char_indices()
            .find(|(i, c)| {
                !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '+' || *c == '-')))
            })
            .map_or(text.len(), |(i, _)| i);
        let (number, suffix) = text.split_at(number_end);
        let (negative, unsigned) = match number.as_bytes().first() {
            Some(b'-') => (true, &number[1..]),
            Some(b'+') => (false, &number[1..]),
            _ => (false, number),
        };
        let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err("expected a number".to_owned());
        }
        let digits = format!("{whole}{fraction}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 30 {
            return Err("too many digits".to_owned());
        }
        let magnitude: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| "expected a number".to_owned())?
        };
        let fraction_digits =
            i32::try_from(fraction.len()).map_err(|_| "too many digits".to_owned())?;
        let (exp10, exp2) = match suffix {
            "" => (0, 0),
            "Ki" => (0, 10),
            "Mi" => (0, 20),
            "Gi" => (0, 30),
            "Ti" => (0, 40),
            "Pi" => (0, 50),
            "Ei" => (0, 60),
            "n" => (-9, 0),
            "u" => (-6, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            s if s.starts_with(['e', 'E']) => {
                let e: i32 = s[1..]
                    .parse()
                    .map_err(|_| format!("unknown suffix {s:?}"))?;
                if !(-100..=100).contains(&e) {
                    return Err("exponent out of range".to_owned());
                }
                (e, 0)
            }
            s => return Err(format!("unknown suffix {s:?}")),
        };
        Ok(Self {
            mantissa: if negative { -magnitude } else { magnitude },
            exp10: exp10 - fraction_digits,
            exp2,
        })
    }

    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// The value rounded up to an integer (Go's `Quantity.Value`): bytes.
    pub fn value(&self) -> Result<i64, String> {
        self.scaled(0)
    }

    /// The value in thousandths, rounded up (`Quantity.MilliValue`): millicores.
    pub fn milli_value(&self) -> Result<i64, String> {
        self.scaled(3)
    }

    fn scaled(&self, extra10: i32) -> Result<i64, String> {
        let too_large = || "too large".to_owned();
        let n = self
            .mantissa
            .checked_mul(1i128.checked_shl(self.exp2).ok_or_else(too_large)?)
            .ok_or_else(too_large)?;
        let e = self.exp10 + extra10;
        let v = if e >= 0 {
            let scale = 10i128.checked_pow(e.unsigned_abs()).ok_or_else(too_large)?;
            n.checked_mul(scale).ok_or_else(too_large)?
        } else {
            // ceil(ceil(n / a) / b) = ceil(n / ab): divide in steps that fit.
            let mut v = n;
            let mut left = e.unsigned_abs();
            while left > 0 {
                let step = left.min(38);
                v = ceil_div(v, 10i128.pow(step));
                left -= step;
            }
            v
        };
        i64::try_from(v).map_err(|_| too_large())
    }
}

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

fn make_dir(path: &Path, mode: u32) -> io::Result<()> {
    std::fs::create_dir(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Create each missing component of `sub` under `base` with `mode`.
fn make_dirs(base: &Path, sub: &Path, mode: u32) -> io::Result<()> {
    let mut path = base.to_path_buf();
    for component in sub.components() {
        path.push(component);
        if !path.exists() {
            make_dir(&path, mode)?;
        }
    }
    Ok(())
}

/// Write `files` as the kubelet's AtomicWriter does: into
/// `<dir>/..<UTC timestamp>.<random>/` (0755, subdirectories 0755, each
/// file with its mode), `<dir>/..data` linked to it, and each top-level
/// entry `<dir>/<x>` linked to `..data/<x>`.
fn write_atomic_layout(
    dir: &Path,
    root_mode: u32,
    files: &BTreeMap<String, (Vec<u8>, u32)>,
) -> Result<(), (PathBuf, io::Error)> {
    let at = |p: &Path| {
        let p = p.to_path_buf();
        move |e| (p, e)
    };
    make_dir(dir, root_mode).map_err(at(dir))?;
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "..[year]_[month]_[day]_[hour]_[minute]_[second]."
        ))
        .map_err(|e| (dir.to_path_buf(), io::Error::other(e)))?;
    let data_dir_name = format!("{stamp}{}", rand::random::<u32>());
    let data_dir = dir.join(&data_dir_name);
    make_dir(&data_dir, 0o755).map_err(at(&data_dir))?;
    let mut top_level = BTreeSet::new();
    for (path, (content, mode)) in files {
        let full = data_dir.join(path);
        if let Some(parent) = Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            make_dirs(&data_dir, parent, 0o755).map_err(at(&full))?;
        }
        std::fs::write(&full, content).map_err(at(&full))?;
        std::fs::set_permissions(&full, std::fs::Permissions::from_mode(*mode))
            .map_err(at(&full))?;
        if let Some(first) = path.split('/').next() {
            top_level.insert(first.to_owned());
        }
    }
    let data_link = dir.join("..data");
    symlink(&data_dir_name, &data_link).map_err(at(&data_link))?;
    for name in top_level {
        let link = dir.join(&name);
        symlink(Path::new("..data").join(&name), &link).map_err(at(&link))?;
    }
    Ok(())
}

/// The kubelet's `SetVolumeOwnership`: every entry group-owned by `gid`,
/// files given group read (and write unless `read_only`), directories also
/// setgid and group/other search. Returns false when the group could not be
/// changed because this process is not root (modes are still set).
fn set_volume_ownership(
    root: &Path,
    gid: u32,
    read_only: bool,
) -> Result<bool, (PathBuf, io::Error)> {
    let mask = if read_only { 0o440 } else { 0o660 };
    let mut chown_ok = true;
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let at = |e| (path.clone(), e);
        let meta = std::fs::symlink_metadata(&path).map_err(at)?;
        if chown_ok {
            match std::os::unix::fs::lchown(&path, None, Some(gid)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => chown_ok = false,
                Err(e) => return Err(at(e)),
            }
        }
        if meta.file_type().is_symlink() {
            continue;
        }
        let mut mode = meta.permissions().mode() & 0o7777 | mask;
        if meta.is_dir() {
            mode |= 0o2000 | 0o110;
            for entry in std::fs::read_dir(&path).map_err(at)? {
                stack.push(entry.map_err(at)?.path());
            }
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(at)?;
    }
    Ok(chown_ok)
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::os::unix::fs::MetadataExt as _;
    use std::process::{Command, Stdio};
    use std::time::Instant;

    use serde_json::json;

    use super::*;

    // -- fixtures -------------------------------------------------------------

    #[allow(clippy::needless_pass_by_value, reason = "tests pass json! literals")]
    fn workload(kind: &str, spec: Value) -> Workload {
        let mut object = json!({
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": {"name": "web", "namespace": "dark-tower"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}, "annotations": {"note": "a \"quoted\"\nvalue"}},
                    "spec": spec,
                },
            },
        });
        if kind == "StatefulSet" {
            object["spec"]["serviceName"] = json!("web-headless");
        }
        Workload::from_value(&object, "default").unwrap()
    }

    /// A pod spec with one container: `app` plus `container`'s fields.
    #[allow(clippy::needless_pass_by_value, reason = "tests pass json! literals")]
    fn spec_with(container: Value) -> Value {
        let mut c = json!({"name": "app", "image": "ghcr.io/dark-tower/app:1"});
        for (k, v) in container.as_object().unwrap() {
            c[k] = v.clone();
        }
        json!({"containers": [c]})
    }

    fn identity() -> PodIdentity {
        PodIdentity {
            name: "web-7d4b9c-x2x5k".to_owned(),
            namespace: "dark-tower".to_owned(),
            uid: "0b7e4c1e-5c33-4b9e-9d6b-2f1d3c4e5f60".to_owned(),
            pod_ip: "10.1.0.7".to_owned(),
            pod_ips: Vec::new(),
            host_ip: "192.168.1.2".to_owned(),
            host_ips: Vec::new(),
            node_name: "node-a".to_owned(),
            service_account_name: "web-sa".to_owned(),
            labels: BTreeMap::from([
                ("app".to_owned(), "web".to_owned()),
                ("tier".to_owned(), "front".to_owned()),
            ]),
            annotations: BTreeMap::from([("note".to_owned(), "a \"quoted\"\nvalue".to_owned())]),
        }
    }

    fn objects() -> Objects {
        let manifests = crate::manifest::parse_stream(
            r"
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config, namespace: dark-tower}
data:
  LOG: debug
  PORT: '8080'
  a=b: invalid-name
  nested.conf: |
    key = value
binaryData:
  blob.bin: AAEC
---
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: dark-tower}
data:
  user: YWRtaW4=
  password: b2xk
stringData:
  password: s3cret
---
apiVersion: v1
kind: Secret
metadata: {name: other-namespace, namespace: elsewhere}
stringData: {x: z}
",
        )
        .unwrap();
        Objects::from_manifests(&manifests, "dark-tower", "default").unwrap()
    }

    struct Planned {
        dir: tempfile::TempDir,
        result: Result<PodPlan, PlanError>,
    }

    impl Planned {
        fn ok(self) -> (tempfile::TempDir, PodPlan) {
            match self.result {
                Ok(plan) => (self.dir, plan),
                Err(e) => panic!("{e}"),
            }
        }

        fn err(self) -> String {
            match self.result {
                Ok(plan) => panic!("expected an error, got {plan:#?}"),
                Err(e) => e.to_string(),
            }
        }
    }

    fn plan_kind(kind: &str, spec: Value, options: impl FnOnce(&mut PlanOptions)) -> Planned {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = PlanOptions::new(dir.path().join("volumes"));
        opts.node_cpu_millis = 4000;
        opts.node_memory_bytes = 8 << 30;
        options(&mut opts);
        let result = plan_pod(&workload(kind, spec), &objects(), &identity(), &opts);
        Planned { dir, result }
    }

    fn plan(spec: Value) -> Planned {
        plan_kind("Deployment", spec, |_| {})
    }

    fn env_of(container: Value) -> Vec<(String, String)> {
        let (_dir, plan) = plan(spec_with(container)).ok();
        plan.containers[0].env.clone()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    // -- expansion ------------------------------------------------------------

    #[test]
    fn expansion_follows_the_kubelet() {
        let vars: HashMap<&str, &str> = HashMap::from([("A", "a"), ("B", "b"), ("E", "")]);
        let cases = [
            ("$(A)", "a"),
            ("x$(A)y$(B)z", "xaybz"),
            ("$(E)", ""),
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("$$(A)", "$(A)"),
            ("$$$(A)", "$a"),
            ("$$", "$"),
            ("$$$$", "$$"),
            ("$", "$"),
            ("a$", "a$"),
            ("$x", "$x"),
            ("$(", "$("),
            ("$(A", "$(A"),
            ("$()", "$()"),
            ("$(A)$(", "a$("),
            ("(A)", "(A)"),
            ("$é$(A)", "$éa"),
            ("ü$(A)ü", "üaü"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(
                expand(input, |n| lookup_or_literal(&vars, n)),
                want,
                "{input:?}"
            );
        }
    }

    #[test]
    fn env_values_expand_only_variables_defined_before_them() {
        let env = env_of(json!({"env": [
            {"name": "EARLY", "value": "[$(LATE)]"},
            {"name": "LATE", "value": "late"},
            {"name": "BOTH", "value": "$(EARLY)+$(LATE)"},
            {"name": "ESCAPED", "value": "$$(LATE)"},
            {"name": "FROM_ENVFROM", "value": "$(PORT)"},
            {"name": "UNKNOWN", "value": "$(NOPE)"},
        ], "envFrom": [{"configMapRef": {"name": "app-config"}}]}));
        let get = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!(get("EARLY"), Some("[$(LATE)]"));
        assert_eq!(get("BOTH"), Some("[$(LATE)]+late"));
        assert_eq!(get("ESCAPED"), Some("$(LATE)"));
        assert_eq!(get("FROM_ENVFROM"), Some("8080"));
        assert_eq!(get("UNKNOWN"), Some("$(NOPE)"));
    }

    #[test]
    fn command_and_args_expand_against_the_final_env() {
        let (_dir, plan) = plan(spec_with(json!({
            "command": ["/bin/app", "--port=$(PORT)"],
            "args": ["--late=$(LATE)", "$$(LATE)", "$(MISSING)"],
            "env": [{"name": "PORT", "value": "1"}, {"name": "PORT", "value": "2"}, {"name": "LATE", "value": "x"}],
        })))
        .ok();
        let c = &plan.containers[0];
        assert_eq!(c.command, ["/bin/app", "--port=2"]);
        assert_eq!(c.args, ["--late=x", "$(LATE)", "$(MISSING)"]);
        let image = ImageConfig {
            entrypoint: vec!["/entry".to_owned()],
            cmd: vec!["--default".to_owned()],
            ..ImageConfig::default()
        };
        assert_eq!(
            c.argv(&image),
            ["/bin/app", "--port=2", "--late=x", "$(LATE)", "$(MISSING)"]
        );
        let mut only_args = c.clone();
        only_args.command.clear();
        assert_eq!(only_args.argv(&image)[0], "/entry");
        only_args.args.clear();
        assert_eq!(only_args.argv(&image), ["/entry", "--default"]);
    }

    // -- environment sources --------------------------------------------------

    #[test]
    fn env_sources() {
        let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
            // envFrom: sorted keys of each source, prefix, invalid names skipped.
            (
                json!({"envFrom": [{"configMapRef": {"name": "app-config"}, "prefix": "CFG_"}]}),
                vec![
                    ("CFG_LOG", "debug"),
                    ("CFG_PORT", "8080"),
                    ("CFG_nested.conf", "key = value\n"),
                ],
            ),
            (
                json!({"envFrom": [{"secretRef": {"name": "db"}}]}),
                vec![("password", "s3cret"), ("user", "admin")],
            ),
            (
                json!({"envFrom": [
                    {"configMapRef": {"name": "absent", "optional": true}},
                    {"secretRef": {"name": "absent", "optional": true}},
                ]}),
                vec![],
            ),
            // env overrides envFrom in place; later env entries override earlier.
            (
                json!({
                    "envFrom": [{"configMapRef": {"name": "app-config"}}],
                    "env": [{"name": "PORT", "value": "9090"}, {"name": "X", "value": "1"}, {"name": "X", "value": "2"}],
                }),
                vec![
                    ("LOG", "debug"),
                    ("PORT", "9090"),
                    ("nested.conf", "key = value\n"),
                    ("X", "2"),
                ],
            ),
            // Key references, optional ones unset when missing.
            (
                json!({"env": [
                    {"name": "LOG", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "LOG"}}},
                    {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                    {"name": "NO_KEY", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "nope", "optional": true}}},
                    {"name": "NO_CM", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k", "optional": true}}},
                    {"name": "NO_SECRET_KEY", "valueFrom": {"secretKeyRef": {"name": "db", "key": "nope", "optional": true}}},
                    {"name": "NO_SECRET", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k", "optional": true}}},
                    {"name": "EMPTY", "value": ""},
                ]}),
                vec![("LOG", "debug"), ("PASS", "s3cret"), ("EMPTY", "")],
            ),
            // The downward API.
            (
                json!({"env": [
                    {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace", "apiVersion": "v1"}}},
                    {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "NONE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['none']"}}},
                    {"name": "NOTE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
                    {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                    {"name": "HOST_IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIPs"}}},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "POD_IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}},
                    {"name": "ADDR", "value": "$(POD_IP):50052"},
                ]}),
                vec![
                    ("NAME", "web-7d4b9c-x2x5k"),
                    ("NS", "dark-tower"),
                    ("UID", "0b7e4c1e-5c33-4b9e-9d6b-2f1d3c4e5f60"),
                    ("APP", "web"),
                    ("NONE", ""),
                    ("NOTE", "a \"quoted\"\nvalue"),
                    ("NODE", "node-a"),
                    ("SA", "web-sa"),
                    ("HOST_IP", "192.168.1.2"),
                    ("HOST_IPS", "192.168.1.2"),
                    ("POD_IP", "10.1.0.7"),
                    ("POD_IPS", "10.1.0.7"),
                    ("ADDR", "10.1.0.7:50052"),
                ],
            ),
            // Resources: divisors round up; unset limits are the node's;
            // requests default to limits, else read 0.
            (
                json!({
                    "resources": {"limits": {"cpu": "250m", "memory": "100Mi"}},
                    "env": [
                        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                        {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
                        {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                        {"name": "MEM_G", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1G"}}},
                        {"name": "REQ_CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
                        {"name": "REQ_MEM", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory", "divisor": "1Ki"}}},
                        {"name": "ZERO_DIVISOR", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "0"}}},
                        {"name": "SIDE_CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "containerName": "app", "divisor": "1m"}}},
                    ],
                }),
                vec![
                    ("CPU", "1"),
                    ("CPU_M", "250"),
                    ("MEM", "104857600"),
                    ("MEM_MI", "100"),
                    ("MEM_G", "1"),
                    ("REQ_CPU", "250"),
                    ("REQ_MEM", "102400"),
                    ("ZERO_DIVISOR", "1"),
                    ("SIDE_CPU", "250"),
                ],
            ),
            (
                json!({"env": [
                    {"name": "NODE_CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                    {"name": "NODE_MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Gi"}}},
                    {"name": "REQ_CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
                ]}),
                vec![("NODE_CPU", "4000"), ("NODE_MEM", "8"), ("REQ_CPU", "0")],
            ),
        ];
        for (container, want) in cases {
            assert_eq!(env_of(container.clone()), pairs(&want), "{container}");
        }
    }

    #[test]
    fn env_from_keys_that_are_not_env_names_are_skipped_with_a_warning() {
        let container =
            json!({"envFrom": [{"configMapRef": {"name": "app-config"}, "prefix": "1"}]});
        let (_dir, relaxed) = plan(spec_with(container.clone())).ok();
        assert_eq!(relaxed.containers[0].env.len(), 3);
        assert!(
            relaxed.warnings.contains(&"spec.template.spec.containers[0].envFrom[0].configMapRef: keys [1a=b] from ConfigMap dark-tower/app-config were skipped since they are not valid environment variable names".to_owned()),
            "{:?}",
            relaxed.warnings
        );
        let (_dir, strict) = plan_kind("Deployment", spec_with(container), |o| {
            o.env_names = EnvNameRule::Strict;
        })
        .ok();
        assert!(strict.containers[0].env.is_empty());
        assert!(
            strict
                .warnings
                .iter()
                .any(|w| w.contains("keys [1LOG, 1PORT, 1a=b, 1nested.conf]"))
        );
        assert!(EnvNameRule::Strict.accepts("a.b-c_D"));
        assert!(!EnvNameRule::Strict.accepts("A B"));
        assert!(EnvNameRule::Relaxed.accepts("A B"));
        assert!(!EnvNameRule::Relaxed.accepts("A\u{7f}"));
        assert!(!EnvNameRule::Relaxed.accepts(""));
    }

    #[test]
    fn runtime_env_comes_under_the_container_env() {
        let (_dir, plan) = plan_kind(
            "Deployment",
            spec_with(json!({"env": [{"name": "PATH", "value": "/mine"}]})),
            |o| {
                o.images.insert(
                    "ghcr.io/dark-tower/app:1".to_owned(),
                    ImageConfig {
                        env: pairs(&[
                            ("PATH", "/usr/bin"),
                            ("SSL_CERT_FILE", "/etc/ssl/certs.pem"),
                        ]),
                        working_dir: Some("/srv".to_owned()),
                        ..ImageConfig::default()
                    },
                );
            },
        )
        .ok();
        let c = &plan.containers[0];
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(
            c.process_env(),
            pairs(&[
                ("HOSTNAME", "web-7d4b9c-x2x5k"),
                ("PATH", "/mine"),
                ("SSL_CERT_FILE", "/etc/ssl/certs.pem")
            ])
        );
    }

    // -- volumes --------------------------------------------------------------

    #[test]
    fn config_map_volume_with_every_key_uses_the_atomic_writer_layout() {
        let (_dir, plan) = plan(json!({
            "containers": [{"name": "app", "image": "i", "volumeMounts": [{"name": "cfg", "mountPath": "/etc/app"}]}],
            "volumes": [{"name": "cfg", "configMap": {"name": "app-config"}}],
        }))
        .ok();
        let root = plan.volumes_dir.join("cfg");
        assert_eq!(plan.volumes[0].kind, "configMap");
        assert_eq!(mode(&root), 0o777);
        let data = std::fs::read_link(root.join("..data")).unwrap();
        let data = data.to_str().unwrap();
        assert!(
            data.starts_with("..20") && data.len() > "..2026_01_01_00_00_00.".len(),
            "{data}"
        );
        assert_eq!(mode(&root.join(data)), 0o755);
        for (key, content) in [
            ("LOG", "debug"),
            ("PORT", "8080"),
            ("a=b", "invalid-name"),
            ("nested.conf", "key = value\n"),
        ] {
            assert_eq!(
                std::fs::read_link(root.join(key)).unwrap(),
                Path::new("..data").join(key)
            );
            assert_eq!(std::fs::read_to_string(root.join(key)).unwrap(), content);
            assert_eq!(mode(&root.join(key)), 0o644, "{key}");
        }
        assert_eq!(std::fs::read(root.join("blob.bin")).unwrap(), [0, 1, 2]);
        let m = &plan.containers[0].mounts[0];
        assert_eq!(
            (
                m.host_path.as_path(),
                m.mount_path.as_str(),
                m.read_only,
                m.sub_path_applied.as_deref()
            ),
            (root.as_path(), "/etc/app", true, None)
        );
    }

    #[test]
    fn items_modes_sub_paths_and_fs_group() {
        let (_dir, plan) = plan(json!({
            "securityContext": {"fsGroup": 2000, "runAsUser": 1000, "supplementalGroups": [3000, 2000]},
            "containers": [{"name": "app", "image": "i", "volumeMounts": [
                {"name": "creds", "mountPath": "/run/creds"},
                {"name": "creds", "mountPath": "/run/pass.txt", "subPath": "nested/pass.txt"},
                {"name": "cfg", "mountPath": "/etc/app/app.conf", "subPath": "conf/app.conf"},
                {"name": "scratch", "mountPath": "/var/cache", "subPath": "cache/app"},
                {"name": "scratch", "mountPath": "/scratch", "readOnly": true},
            ]}],
            "volumes": [
                {"name": "creds", "secret": {"secretName": "db", "defaultMode": 0o400, "items": [
                    {"key": "password", "path": "nested/pass.txt"},
                    {"key": "user", "path": "user", "mode": 0o600},
                ]}},
                {"name": "cfg", "configMap": {"name": "app-config", "items": [{"key": "nested.conf", "path": "conf/app.conf"}]}},
                {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
            ],
        }))
        .ok();
        let creds = plan.volumes_dir.join("creds");
        // tmpfs root 1777, plus setgid and group bits from fsGroup.
        assert_eq!(mode(&creds), 0o3777);
        // defaultMode 0400 gains group read from fsGroup; 0600 gains 0040.
        assert_eq!(mode(&creds.join("nested/pass.txt")), 0o440);
        assert_eq!(mode(&creds.join("user")), 0o640);
        assert_eq!(mode(&creds.join("nested")), 0o2755);
        assert_eq!(
            std::fs::read_to_string(creds.join("nested/pass.txt")).unwrap(),
            "s3cret"
        );
        assert_eq!(
            std::fs::read_link(creds.join("nested")).unwrap(),
            Path::new("..data/nested")
        );
        for entry in ["", "nested/pass.txt", "user", "..data"] {
            let meta = std::fs::symlink_metadata(creds.join(entry)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (0, 2000), "{entry}");
        }
        let scratch = plan.volumes_dir.join("scratch");
        assert_eq!(mode(&scratch), 0o2777);
        assert_eq!(std::fs::metadata(&scratch).unwrap().gid(), 2000);
        assert_eq!(
            plan.volumes[2],
            VolumePlan {
                name: "scratch".to_owned(),
                kind: "emptyDir",
                host_path: scratch.clone(),
                memory: true,
                size_limit_bytes: Some(64 << 20),
            }
        );

        let c = &plan.containers[0];
        let mounts: Vec<(&str, PathBuf, bool)> = c
            .mounts
            .iter()
            .map(|m| (m.mount_path.as_str(), m.host_path.clone(), m.read_only))
            .collect();
        let real = |p: PathBuf| p.canonicalize().unwrap();
        assert_eq!(
            mounts,
            vec![
                // Shallower mount paths first.
                ("/scratch", scratch.clone(), true),
                ("/run/creds", creds.clone(), true),
                ("/run/pass.txt", real(creds.join("nested/pass.txt")), true),
                ("/var/cache", real(scratch.join("cache/app")), false),
                (
                    "/etc/app/app.conf",
                    real(plan.volumes_dir.join("cfg/conf/app.conf")),
                    true
                ),
            ]
        );
        // A subPath that does not exist is created as a directory with the volume's mode.
        assert_eq!(mode(&scratch.join("cache/app")), 0o2777);
        assert!(
            c.mounts[2]
                .host_path
                .to_str()
                .unwrap()
                .contains("/creds/..20")
        );
        assert_eq!(
            c.mounts[2].sub_path_applied.as_deref(),
            Some("nested/pass.txt")
        );
        assert_eq!(
            (c.fs_group, c.supplemental_groups.clone()),
            (Some(2000), vec![2000, 3000])
        );
        assert!(
            plan.warnings
                .iter()
                .all(|w| !w.contains("not running as root"))
        );
    }

    #[test]
    fn downward_api_projected_and_optional_volumes() {
        let (_dir, plan) = plan(json!({
            "containers": [{"name": "app", "image": "i", "resources": {"limits": {"memory": "64Mi"}}}],
            "volumes": [
                {"name": "info", "downwardAPI": {"defaultMode": 0o444, "items": [
                    {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}, "mode": 0o400},
                    {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
                    {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}},
                ]}},
                {"name": "all", "projected": {"defaultMode": 0o440, "sources": [
                    {"configMap": {"name": "app-config", "items": [{"key": "LOG", "path": "log"}]}},
                    {"secret": {"name": "db", "items": [{"key": "user", "path": "db/user", "mode": 0o400}]}},
                    {"secret": {"name": "absent", "optional": true}},
                    {"downwardAPI": {"items": [{"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}}]}},
                ]}},
                {"name": "maybe", "secret": {"secretName": "absent", "optional": true}},
                {"name": "maybe-key", "configMap": {"name": "app-config", "optional": true, "items": [{"key": "absent", "path": "x"}]}},
                {"name": "plain"},
            ],
        }))
        .ok();
        let dir = &plan.volumes_dir;
        let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap();
        assert_eq!(read("info/name"), "web-7d4b9c-x2x5k");
        assert_eq!(read("info/labels"), "app=\"web\"\ntier=\"front\"");
        assert_eq!(
            read("info/annotations"),
            "note=\"a \\\"quoted\\\"\\nvalue\""
        );
        assert_eq!(read("info/app"), "web");
        assert_eq!(read("info/mem"), "64");
        assert_eq!(mode(&dir.join("info/name")), 0o444);
        assert_eq!(mode(&dir.join("info/annotations")), 0o400);
        assert_eq!(mode(&dir.join("info")), 0o1777);
        assert_eq!(read("all/log"), "debug");
        assert_eq!(read("all/db/user"), "admin");
        assert_eq!(read("all/uid"), "0b7e4c1e-5c33-4b9e-9d6b-2f1d3c4e5f60");
        assert_eq!(mode(&dir.join("all/log")), 0o440);
        assert_eq!(mode(&dir.join("all/db/user")), 0o400);
        let names = |v: &str| {
            let mut n: Vec<String> = std::fs::read_dir(dir.join(v))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| !n.starts_with(".."))
                .collect();
            n.sort();
            n
        };
        assert!(names("maybe").is_empty());
        assert!(names("maybe-key").is_empty());
        let kinds: Vec<&str> = plan.volumes.iter().map(|v| v.kind).collect();
        assert_eq!(
            kinds,
            [
                "downwardAPI",
                "projected",
                "secret",
                "configMap",
                "emptyDir"
            ]
        );
        assert_eq!(mode(&dir.join("plain")), 0o777);
    }

    #[test]
    fn sub_path_expr_expands_against_the_container_env() {
        let spec = |expr: &str| {
            json!({
                "containers": [{"name": "app", "image": "i",
                    "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}, {"name": "EMPTY", "value": ""}],
                    "volumeMounts": [{"name": "logs", "mountPath": "/logs", "subPathExpr": expr}]}],
                "volumes": [{"name": "logs", "emptyDir": {}}],
            })
        };
        let (_dir, plan) = plan(spec("pods/$(POD)")).ok();
        let m = &plan.containers[0].mounts[0];
        assert_eq!(m.sub_path_applied.as_deref(), Some("pods/web-7d4b9c-x2x5k"));
        assert!(m.host_path.ends_with("logs/pods/web-7d4b9c-x2x5k") && m.host_path.is_dir());
        assert_eq!(
            super::tests::plan(spec("$(NOPE)/$(EMPTY)/$(POD)")).err(),
            "Deployment dark-tower/web: spec.template.spec.containers[0].volumeMounts[0].subPathExpr: missing value for EMPTY, NOPE"
        );
    }

    #[test]
    fn sub_paths_must_stay_inside_their_volume() {
        let spec = json!({
            "containers": [{"name": "app", "image": "i", "volumeMounts": [{"name": "cfg", "mountPath": "/x", "subPath": "link"}]}],
            "volumes": [{"name": "cfg", "downwardAPI": {"items": [{"path": "link", "fieldRef": {"fieldPath": "metadata.name"}}]}}],
        });
        // `link` is the writer's own link into ..data: fine.
        let (_dir, planned) = plan(spec).ok();
        assert!(
            planned.containers[0].mounts[0]
                .host_path
                .starts_with(planned.volumes_dir.join("cfg").canonicalize().unwrap())
        );
        let dir = tempfile::tempdir().unwrap();
        let volume = dir.path().join("v");
        std::fs::create_dir(&volume).unwrap();
        symlink("/etc", volume.join("escape")).unwrap();
        let mut opts = PlanOptions::new(dir.path());
        opts.volumes_dir = dir.path().to_path_buf();
        let w = workload(
            "Deployment",
            json!({"containers": [{"name": "app", "image": "i"}]}),
        );
        let resolver = Planner {
            id: w.id(),
            workload: &w,
            spec: w.spec().unwrap(),
            objects: &Objects::new(),
            pod: &identity(),
            options: &opts,
        };
        let err = resolver
            .resolve_mount(PendingMount {
                volume: "v".to_owned(),
                mount_path: "/m".to_owned(),
                read_only: false,
                sub_path: Some("escape".to_owned()),
                field: "f".to_owned(),
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Deployment dark-tower/web: f.subPath: escape resolves outside its volume"
        );
    }

    #[test]
    fn volumes_dir_must_start_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("leftover"), "x").unwrap();
        let opts = PlanOptions::new(dir.path());
        let err = plan_pod(
            &workload(
                "Deployment",
                json!({"containers": [{"name": "app", "image": "i"}]}),
            ),
            &objects(),
            &identity(),
            &opts,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Deployment dark-tower/web: spec.template.spec.volumes: {} is not empty: a pod's volumes start fresh",
                dir.path().display()
            )
        );
    }

    // -- security -------------------------------------------------------------

    #[test]
    fn security_context_container_values_override_pod_values() {
        let (_dir, plan) = plan(json!({
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": true, "fsGroup": 3000, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {"name": "a", "image": "i", "securityContext": {
                    "runAsUser": 2000, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                    "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/app.json"},
                }},
                {"name": "b", "image": "i"},
            ],
        }))
        .ok();
        let a = &plan.containers[0];
        assert_eq!(
            (a.run_as_user, a.run_as_group, a.fs_group),
            (Some(2000), Some(1000), Some(3000))
        );
        assert!(
            a.run_as_non_root
                && a.read_only_root_filesystem
                && !a.allow_privilege_escalation
                && !a.privileged
        );
        assert_eq!(
            (a.capabilities_add.clone(), a.capabilities_drop.clone()),
            (vec!["NET_BIND_SERVICE".to_owned()], vec!["ALL".to_owned()])
        );
        assert_eq!(
            a.seccomp_profile.as_deref(),
            Some("Localhost/profiles/app.json")
        );
        let b = &plan.containers[1];
        assert_eq!((b.run_as_user, b.run_as_group), (Some(1000), Some(1000)));
        assert!(!b.read_only_root_filesystem && b.allow_privilege_escalation);
        assert_eq!(b.seccomp_profile.as_deref(), Some("RuntimeDefault"));
        assert_eq!(b.supplemental_groups, [3000]);
    }

    #[test]
    fn run_as_non_root_is_checked_as_the_kubelet_does() {
        let non_root = |container_sc: Value, image_user: Option<&str>| {
            let spec = json!({"securityContext": {"runAsNonRoot": true}, "containers": [{"name": "app", "image": "img", "securityContext": container_sc}]});
            plan_kind("Deployment", spec, |o| {
                if let Some(user) = image_user {
                    o.images.insert(
                        "img".to_owned(),
                        ImageConfig {
                            user: user.to_owned(),
                            ..ImageConfig::default()
                        },
                    );
                }
            })
        };
        let (_dir, ok) = non_root(json!({}), Some("65532:65533")).ok();
        assert_eq!(
            (ok.containers[0].run_as_user, ok.containers[0].run_as_group),
            (Some(65532), Some(65533))
        );
        let (_dir, ok) = non_root(json!({"runAsUser": 7}), None).ok();
        assert_eq!(ok.containers[0].run_as_user, Some(7));
        let (_dir, ok) = non_root(json!({"runAsNonRoot": false, "runAsUser": 0}), None).ok();
        assert_eq!(ok.containers[0].run_as_user, Some(0));
        let pod = "pod: \"dark-tower/web-7d4b9c-x2x5k\", container: app";
        let cases = [
            (
                json!({"runAsUser": 0}),
                None,
                format!(
                    "spec.template.spec.securityContext.runAsNonRoot: container's runAsUser breaks non-root policy ({pod})"
                ),
            ),
            (
                json!({"runAsNonRoot": true, "runAsUser": 0}),
                Some("65532"),
                format!(
                    "spec.template.spec.containers[0].securityContext.runAsNonRoot: container's runAsUser breaks non-root policy ({pod})"
                ),
            ),
            (
                json!({}),
                None,
                format!(
                    "spec.template.spec.securityContext.runAsNonRoot: runAsNonRoot is true, runAsUser is unset and the image's user is unknown: cannot verify user is non-root ({pod})"
                ),
            ),
            (
                json!({}),
                Some(""),
                format!(
                    "spec.template.spec.securityContext.runAsNonRoot: container has runAsNonRoot and image will run as root ({pod})"
                ),
            ),
            (
                json!({}),
                Some("0:0"),
                format!(
                    "spec.template.spec.securityContext.runAsNonRoot: container has runAsNonRoot and image will run as root ({pod})"
                ),
            ),
            (
                json!({}),
                Some("nonroot"),
                format!(
                    "spec.template.spec.securityContext.runAsNonRoot: container has runAsNonRoot and image has non-numeric user (nonroot), cannot verify user is non-root ({pod})"
                ),
            ),
        ];
        for (sc, user, want) in cases {
            assert_eq!(
                non_root(sc.clone(), user).err(),
                format!("Deployment dark-tower/web: {want}"),
                "{sc} {user:?}"
            );
        }
    }

    // -- probes ---------------------------------------------------------------

    #[test]
    fn probes_resolve_named_ports_and_take_defaults() {
        let (_dir, plan) = plan(spec_with(json!({
            "ports": [{"name": "http", "containerPort": 8081}, {"name": "grpc", "containerPort": 50052}, {"containerPort": 4433, "protocol": "UDP", "hostPort": 4433}],
            "env": [{"name": "A", "value": "x"}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http", "httpHeaders": [{"name": "X-Probe", "value": "1"}]}, "periodSeconds": 5},
            "livenessProbe": {"tcpSocket": {"port": "50052"}, "timeoutSeconds": 0},
            "startupProbe": {"exec": {"command": ["check", "$(A)", "$(B)", "$(C)"]}, "failureThreshold": 30, "initialDelaySeconds": 2, "successThreshold": 1},
        })))
        .ok();
        let c = &plan.containers[0];
        assert_eq!(
            c.ports,
            vec![
                PortPlan {
                    name: Some("http".to_owned()),
                    container_port: 8081,
                    protocol: "TCP".to_owned(),
                    host_port: None
                },
                PortPlan {
                    name: Some("grpc".to_owned()),
                    container_port: 50052,
                    protocol: "TCP".to_owned(),
                    host_port: None
                },
                PortPlan {
                    name: None,
                    container_port: 4433,
                    protocol: "UDP".to_owned(),
                    host_port: Some(4433)
                },
            ]
        );
        let defaults = |action| ProbePlan {
            action,
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
        };
        assert_eq!(
            c.readiness,
            Some(ProbePlan {
                period: Duration::from_secs(5),
                ..defaults(ProbeAction::Http {
                    port: 8081,
                    path: "/ready".to_owned(),
                    scheme: "HTTP".to_owned(),
                    host: None,
                    headers: pairs(&[("X-Probe", "1")])
                })
            })
        );
        assert_eq!(
            c.liveness,
            Some(defaults(ProbeAction::Tcp {
                port: 50052,
                host: None
            }))
        );
        // Exec probes expand against literal values only: valueFrom reads "".
        assert_eq!(
            c.startup,
            Some(ProbePlan {
                initial_delay: Duration::from_secs(2),
                failure_threshold: 30,
                ..defaults(ProbeAction::Exec {
                    command: vec![
                        "check".to_owned(),
                        "x".to_owned(),
                        String::new(),
                        "$(C)".to_owned()
                    ]
                })
            })
        );
        let (_dir, plan) = super::tests::plan(spec_with(json!({"readinessProbe": {"grpc": {"port": 50052, "service": "health"}}, "livenessProbe": {"httpGet": {"port": 8080, "scheme": "HTTPS", "host": "127.0.0.1"}}}))).ok();
        assert_eq!(
            plan.containers[0].readiness.as_ref().unwrap().action,
            ProbeAction::Grpc {
                port: 50052,
                service: Some("health".to_owned())
            }
        );
        assert_eq!(
            plan.containers[0].liveness.as_ref().unwrap().action,
            ProbeAction::Http {
                port: 8080,
                path: "/".to_owned(),
                scheme: "HTTPS".to_owned(),
                host: Some("127.0.0.1".to_owned()),
                headers: vec![]
            }
        );
    }

    // -- errors ---------------------------------------------------------------

    #[test]
    fn every_problem_names_the_object_and_field() {
        let with_volume = |volume: Value| json!({"containers": [{"name": "app", "image": "i"}], "volumes": [{"name": "ok", "emptyDir": {}}, volume]});
        let c0 = "spec.template.spec.containers[0]";
        let cases: Vec<(&str, Value, String)> = vec![
            ("Deployment", with_volume(json!({"name": "data", "csi": {"driver": "x"}})), "spec.template.spec.volumes[1]: volume type csi is not supported".to_owned()),
            ("Deployment", with_volume(json!({"name": "host", "hostPath": {"path": "/var"}})), "spec.template.spec.volumes[1]: volume type hostPath is not supported".to_owned()),
            ("Deployment", with_volume(json!({"name": "pvc", "persistentVolumeClaim": {"claimName": "x"}})), "spec.template.spec.volumes[1]: volume type persistentVolumeClaim is not supported".to_owned()),
            ("Deployment", with_volume(json!({"name": "two", "emptyDir": {}, "configMap": {"name": "app-config"}})), "spec.template.spec.volumes[1]: must set exactly one volume source, not configMap, emptyDir".to_owned()),
            ("Deployment", with_volume(json!({"name": "ok", "emptyDir": {}})), "spec.template.spec.volumes[1].name: ok is already the name of spec.template.spec.volumes[0]".to_owned()),
            ("Deployment", with_volume(json!({"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}})), "spec.template.spec.volumes[1].projected.sources[0].serviceAccountToken: projected source serviceAccountToken is not supported".to_owned()),
            ("Deployment", with_volume(json!({"name": "s", "secret": {"secretName": "absent"}})), "spec.template.spec.volumes[1].secret: Secret absent not found".to_owned()),
            ("Deployment", with_volume(json!({"name": "s", "secret": {"secretName": "db", "items": [{"key": "token", "path": "t"}]}})), "spec.template.spec.volumes[1].secret.items[0]: Secret db has no key token".to_owned()),
            ("Deployment", with_volume(json!({"name": "c", "configMap": {"name": "absent"}})), "spec.template.spec.volumes[1].configMap: ConfigMap absent not found".to_owned()),
            ("Deployment", with_volume(json!({"name": "c", "configMap": {"name": "app-config", "items": [{"key": "LOG", "path": "../x"}]}})), "spec.template.spec.volumes[1].configMap.items[0].path: invalid path \"../x\": must not contain '..'".to_owned()),
            ("Deployment", with_volume(json!({"name": "c", "configMap": {"name": "app-config", "defaultMode": 0o1777}})), "spec.template.spec.volumes[1].configMap.defaultMode: must be a number between 0 and 0777 (octal), both inclusive".to_owned()),
            ("Deployment", with_volume(json!({"name": "d", "downwardAPI": {"items": [{"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}}]}})), "spec.template.spec.volumes[1].downwardAPI.items[0].fieldRef.fieldPath: fieldPath status.podIP is not supported".to_owned()),
            ("Deployment", with_volume(json!({"name": "d", "downwardAPI": {"items": [{"path": "cpu", "resourceFieldRef": {"resource": "limits.cpu"}}]}})), "spec.template.spec.volumes[1].downwardAPI.items[0].resourceFieldRef.containerName: is required in a volume".to_owned()),
            ("Deployment", with_volume(json!({"name": "e", "emptyDir": {"sizeLimit": "lots"}})), "spec.template.spec.volumes[1].emptyDir.sizeLimit: invalid quantity \"lots\": expected a number".to_owned()),
            ("Deployment", spec_with(json!({"env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "token"}}}]})), format!("{c0}.env[0].valueFrom.secretKeyRef: Secret db has no key token")),
            ("Deployment", spec_with(json!({"env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]})), format!("{c0}.env[0].valueFrom.secretKeyRef: Secret absent not found")),
            ("Deployment", spec_with(json!({"env": [{"name": "P", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "nope"}}}]})), format!("{c0}.env[0].valueFrom.configMapKeyRef: ConfigMap app-config has no key nope")),
            ("Deployment", spec_with(json!({"env": [{"name": "P", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]})), format!("{c0}.env[0].valueFrom.configMapKeyRef: ConfigMap absent not found")),
            ("Deployment", spec_with(json!({"envFrom": [{"secretRef": {"name": "absent"}}]})), format!("{c0}.envFrom[0].secretRef: Secret absent not found")),
            ("Deployment", spec_with(json!({"envFrom": [{"configMapRef": {"name": "absent"}}]})), format!("{c0}.envFrom[0].configMapRef: ConfigMap absent not found")),
            ("Deployment", spec_with(json!({"env": [{"name": "P", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels"}}}]})), format!("{c0}.env[0].valueFrom.fieldRef.fieldPath: fieldPath metadata.labels is not supported")),
            ("Deployment", spec_with(json!({"env": [{"name": "P", "valueFrom": {"fieldRef": {"fieldPath": "spec.hostname"}}}]})), format!("{c0}.env[0].valueFrom.fieldRef.fieldPath: fieldPath spec.hostname is not supported")),
            ("Deployment", spec_with(json!({"env": [{"name": "P", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name", "apiVersion": "v2"}}}]})), format!("{c0}.env[0].valueFrom.fieldRef.apiVersion: apiVersion v2 is not supported")),
            ("Deployment", spec_with(json!({"env": [{"name": "P", "valueFrom": {"resourceFieldRef": {"resource": "limits.nvidia.com/gpu"}}}]})), format!("{c0}.env[0].valueFrom.resourceFieldRef.resource: resource limits.nvidia.com/gpu is not supported")),
            ("Deployment", spec_with(json!({"env": [{"name": "P", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "containerName": "ghost"}}}]})), format!("{c0}.env[0].valueFrom.resourceFieldRef.containerName: no container named ghost")),
            ("Deployment", spec_with(json!({"env": [{"name": "P", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1x"}}}]})), format!("{c0}.env[0].valueFrom.resourceFieldRef.divisor: invalid quantity \"1x\": unknown suffix \"x\"")),
            ("Deployment", spec_with(json!({"env": [{"name": "P", "value": "v", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]})), format!("{c0}.env[0].valueFrom: may not be set when value is not empty")),
            ("Deployment", spec_with(json!({"env": [{"name": "P", "valueFrom": {}}]})), format!("{c0}.env[0].valueFrom: must set exactly one of configMapKeyRef, secretKeyRef, fieldRef and resourceFieldRef")),
            ("Deployment", spec_with(json!({"env": [{"name": "A=B", "value": "v"}]})), format!("{c0}.env[0].name: \"A=B\" is not a valid environment variable name")),
            ("Deployment", spec_with(json!({"resources": {"limits": {"cpu": "1.5.0"}}})), format!("{c0}.resources.limits.cpu: invalid quantity \"1.5.0\": expected a number")),
            ("Deployment", spec_with(json!({"resources": {"requests": {"memory": "-1Gi"}}})), format!("{c0}.resources.requests.memory: invalid quantity \"-1Gi\": must not be negative")),
            ("Deployment", spec_with(json!({"readinessProbe": {"httpGet": {"port": "http"}}})), format!("{c0}.readinessProbe.httpGet.port: container app has no port named http")),
            ("Deployment", spec_with(json!({"livenessProbe": {"tcpSocket": {"port": 70000}}})), format!("{c0}.livenessProbe.tcpSocket.port: 70000 is not between 1 and 65535")),
            ("Deployment", spec_with(json!({"livenessProbe": {"periodSeconds": 5}})), format!("{c0}.livenessProbe: must set exactly one of exec, httpGet, tcpSocket and grpc")),
            ("Deployment", spec_with(json!({"startupProbe": {"exec": {"command": ["x"]}, "periodSeconds": -1}})), format!("{c0}.startupProbe.periodSeconds: must not be negative")),
            ("Deployment", spec_with(json!({"ports": [{"containerPort": 0}]})), format!("{c0}.ports[0].containerPort: 0 is not between 1 and 65535")),
            ("Deployment", spec_with(json!({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]})), format!("{c0}.volumeMounts[0].name: no volume named nope")),
            ("Deployment", json!({"containers": [{"name": "app", "image": "i", "volumeMounts": [{"name": "v", "mountPath": "/x", "subPath": "../up"}]}], "volumes": [{"name": "v"}]}), format!("{c0}.volumeMounts[0].subPath: ../up must not contain '..'")),
            ("Deployment", json!({"containers": [{"name": "app", "image": "i", "volumeMounts": [{"name": "v", "mountPath": "/x"}, {"name": "v", "mountPath": "/x"}]}], "volumes": [{"name": "v"}]}), format!("{c0}.volumeMounts[1].mountPath: /x is already mounted by {c0}.volumeMounts[0]")),
            ("Deployment", json!({"containers": [{"name": "app"}]}), format!("{c0}.image: is required")),
            ("Deployment", json!({"containers": []}), "spec.template.spec.containers: must have at least one container".to_owned()),
            ("StatefulSet", json!({"containers": [{"name": "app", "image": "i"}]}), String::new()),
        ];
        for (kind, spec, want) in cases {
            let planned = plan_kind(kind, spec.clone(), |_| {});
            if want.is_empty() {
                planned.ok();
                continue;
            }
            assert_eq!(
                planned.err(),
                format!("{kind} dark-tower/web: {want}"),
                "{spec}"
            );
        }
    }

    #[test]
    fn stateful_set_claim_templates_and_other_kinds_are_refused() {
        let object = json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "ac-service"},
            "spec": {"serviceName": "ac", "selector": {}, "template": {"spec": {"containers": [{"name": "a", "image": "i"}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"}}]},
        });
        let w = Workload::from_value(&object, "dark-tower").unwrap();
        assert_eq!(w.service_name.as_deref(), Some("ac"));
        let dir = tempfile::tempdir().unwrap();
        let err = plan_pod(
            &w,
            &Objects::new(),
            &identity(),
            &PlanOptions::new(dir.path()),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "StatefulSet dark-tower/ac-service: spec.volumeClaimTemplates[0]: volume type persistentVolumeClaim (claim template data) is not supported"
        );
        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "ns"}});
        assert_eq!(
            Workload::from_value(&job, "x").unwrap_err().to_string(),
            "Job ns/j: kind: kind Job (only Deployment and StatefulSet) is not supported"
        );
        let bad = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": true}]}]}}}});
        assert_eq!(
            Workload::from_value(&bad, "ns").unwrap_err().to_string(),
            "Deployment ns/d: spec.template.spec.containers[0].ports[0].containerPort: invalid type: boolean `true`, expected i32"
        );
    }

    // -- identity, hostnames, references, quantities ---------------------------

    #[test]
    fn generated_identities_look_like_the_controllers() {
        let spec = json!({"serviceAccountName": "mc", "containers": [{"name": "a", "image": "i"}]});
        let d = workload("Deployment", spec.clone());
        let pod = PodIdentity::generate(&d, 0, "10.0.0.1", "10.0.0.254", "node");
        let hash = template_hash(&d.template);
        assert_eq!(hash, template_hash(&d.template));
        assert!(!hash.is_empty() && hash.bytes().all(|b| NAME_ALPHABET.contains(&b)));
        let suffix = pod.name.strip_prefix(&format!("web-{hash}-")).unwrap();
        assert!(
            suffix.len() == 5 && suffix.bytes().all(|b| NAME_ALPHABET.contains(&b)),
            "{}",
            pod.name
        );
        assert_eq!(pod.labels.get("pod-template-hash"), Some(&hash));
        assert_eq!(pod.labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(
            (pod.service_account_name.as_str(), pod.namespace.as_str()),
            ("mc", "dark-tower")
        );
        assert_eq!(
            uuid::Uuid::parse_str(&pod.uid).unwrap().get_version_num(),
            4
        );
        let s = workload(
            "StatefulSet",
            json!({"containers": [{"name": "a", "image": "i"}]}),
        );
        let pod = PodIdentity::generate(&s, 2, "10.0.0.2", "10.0.0.254", "node");
        assert_eq!(pod.name, "web-2");
        assert_eq!(pod.service_account_name, "default");
        assert_eq!(
            pod.labels
                .get("statefulset.kubernetes.io/pod-name")
                .map(String::as_str),
            Some("web-2")
        );
        assert_eq!(
            pod.labels
                .get("apps.kubernetes.io/pod-index")
                .map(String::as_str),
            Some("2")
        );
        assert!(pod.labels["controller-revision-hash"].starts_with("web-"));
    }

    #[test]
    fn hostnames_and_subdomains() {
        let (_dir, sts) = plan_kind("StatefulSet", json!({"hostname": "ignored", "containers": [{"name": "a", "image": "i"}], "terminationGracePeriodSeconds": 45}), |_| {}).ok();
        assert_eq!(
            (sts.hostname.as_str(), sts.subdomain.as_deref()),
            ("web-7d4b9c-x2x5k", Some("web-headless"))
        );
        assert_eq!(
            sts.host_domain.as_deref(),
            Some("web-headless.dark-tower.svc.cluster.local")
        );
        assert_eq!(sts.termination_grace_period, Duration::from_secs(45));
        let (_dir, d) = plan(json!({"hostname": "box", "subdomain": "sub", "setHostnameAsFQDN": true, "hostAliases": [{"ip": "10.9.9.9", "hostnames": ["a", "b"]}], "containers": [{"name": "a", "image": "i"}]})).ok();
        assert_eq!(d.hostname, "box.sub.dark-tower.svc.cluster.local");
        assert_eq!(
            d.host_aliases,
            vec![("10.9.9.9".to_owned(), vec!["a".to_owned(), "b".to_owned()])]
        );
        assert_eq!(d.termination_grace_period, Duration::from_secs(30));
        assert_eq!(
            d.containers[0].process_env()[0],
            (
                "HOSTNAME".to_owned(),
                "box.sub.dark-tower.svc.cluster.local".to_owned()
            )
        );
        assert_eq!(
            truncate_hostname(&format!("{}-{}", "a".repeat(62), "b")),
            "a".repeat(62)
        );
        assert!(
            d.warnings
                .iter()
                .any(|w| w.starts_with("enableServiceLinks"))
        );
        assert!(
            d.warnings
                .iter()
                .any(|w| w.starts_with("automountServiceAccountToken"))
        );
    }

    #[test]
    fn init_containers_and_sidecars() {
        let (_dir, plan) = plan(json!({
            "initContainers": [
                {"name": "migrate", "image": "i", "command": ["migrate"]},
                {"name": "proxy", "image": "p", "restartPolicy": "Always", "lifecycle": {"preStop": {"exec": {"command": ["x"]}}}},
            ],
            "enableServiceLinks": false, "automountServiceAccountToken": false,
            "containers": [{"name": "a", "image": "i"}],
        }))
        .ok();
        assert_eq!(
            plan.init_containers
                .iter()
                .map(|c| (c.name.as_str(), c.sidecar))
                .collect::<Vec<_>>(),
            [("migrate", false), ("proxy", true)]
        );
        assert_eq!(
            plan.warnings,
            ["spec.template.spec.initContainers[1].lifecycle: postStart/preStop hooks are not run"]
        );
    }

    #[test]
    fn references_list_every_config_source() {
        let w = workload(
            "Deployment",
            json!({
                "initContainers": [{"name": "i", "image": "i", "envFrom": [{"secretRef": {"name": "s1", "optional": true}}]}],
                "containers": [{"name": "a", "image": "i",
                    "envFrom": [{"configMapRef": {"name": "c1"}}],
                    "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s2", "key": "k"}}}, {"name": "Y", "value": "y"}]}],
                "volumes": [
                    {"name": "v1", "secret": {"secretName": "tls", "items": [{"key": "tls.crt", "path": "c"}, {"key": "tls.key", "path": "k"}]}},
                    {"name": "v2", "projected": {"sources": [{"configMap": {"name": "c2"}}]}},
                ],
            }),
        );
        let got: Vec<(RefKind, String, Option<String>, bool, String)> = references(&w)
            .into_iter()
            .map(|r| (r.kind, r.name, r.key, r.optional, r.field))
            .collect();
        let s = |x: &str| x.to_owned();
        assert_eq!(
            got,
            vec![
                (
                    RefKind::Secret,
                    s("s1"),
                    None,
                    true,
                    s("spec.template.spec.initContainers[0].envFrom[0].secretRef")
                ),
                (
                    RefKind::ConfigMap,
                    s("c1"),
                    None,
                    false,
                    s("spec.template.spec.containers[0].envFrom[0].configMapRef")
                ),
                (
                    RefKind::Secret,
                    s("s2"),
                    Some(s("k")),
                    false,
                    s("spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef")
                ),
                (
                    RefKind::Secret,
                    s("tls"),
                    Some(s("tls.crt")),
                    false,
                    s("spec.template.spec.volumes[0].secret.items[0]")
                ),
                (
                    RefKind::Secret,
                    s("tls"),
                    Some(s("tls.key")),
                    false,
                    s("spec.template.spec.volumes[0].secret.items[1]")
                ),
                (
                    RefKind::ConfigMap,
                    s("c2"),
                    None,
                    false,
                    s("spec.template.spec.volumes[1].projected.sources[0].configMap")
                ),
            ]
        );
    }

    #[test]
    fn objects_merge_string_data_over_data_and_stay_in_their_namespace() {
        let o = objects();
        assert_eq!(o.secret("db").unwrap()["password"], b"s3cret");
        assert_eq!(o.secret("db").unwrap()["user"], b"admin");
        assert!(o.secret("other-namespace").is_none());
        assert!(
            o.contains(RefKind::ConfigMap, "app-config")
                && !o.contains(RefKind::Secret, "app-config")
        );
        let bad = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "not base64!"}});
        let err = Objects::from_manifests([&bad], "default", "default")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("Secret default/s: data.k: "), "{err}");
    }

    #[test]
    fn quantities() {
        let cases: &[(&str, i64, i64)] = &[
            ("1", 1000, 1),
            ("0", 0, 0),
            ("100m", 100, 1),
            ("1.5", 1500, 2),
            ("0.1m", 1, 1),
            ("250m", 250, 1),
            ("2k", 2_000_000, 2000),
            ("1Ki", 1_024_000, 1024),
            ("256Mi", 268_435_456_000, 268_435_456),
            ("1.5Gi", 1_610_612_736_000, 1_610_612_736),
            ("1e3", 1_000_000, 1000),
            ("1E3", 1_000_000, 1000),
            ("12n", 1, 1),
            ("5u", 1, 1),
            (".5", 500, 1),
            ("5.", 5000, 5),
            ("+2", 2000, 2),
            ("-1", -1000, -1),
            ("-1.5", -1500, -1),
            ("0.0000000000000000000000000000000000000000001", 1, 1),
        ];
        for (text, milli, value) in cases {
            let q = Quantity::parse(text).unwrap();
            assert_eq!(
                (q.milli_value().unwrap(), q.value().unwrap()),
                (*milli, *value),
                "{text}"
            );
        }
        for (text, error) in [
            ("", "expected a number"),
            ("Mi", "expected a number"),
            ("1.2.3", "expected a number"),
            ("1 Mi", "unknown suffix \" Mi\""),
            ("1e", "unknown suffix \"e\""),
            ("1KiB", "unknown suffix \"KiB\""),
            ("+", "expected a number"),
            ("1e999", "exponent out of range"),
        ] {
            assert_eq!(Quantity::parse(text).unwrap_err(), error, "{text:?}");
        }
        assert_eq!(
            Quantity::parse("10E").unwrap().milli_value().unwrap_err(),
            "too large"
        );
        assert_eq!(
            Quantity::parse("8Ei").unwrap().value().unwrap_err(),
            "too large"
        );
        assert_eq!(Quantity::parse("7Ei").unwrap().value().unwrap(), 7 << 60);
        let exa = Quantity::parse("1E").unwrap();
        assert_eq!(exa.value().unwrap(), 1_000_000_000_000_000_000);
        assert_eq!(exa.milli_value().unwrap_err(), "too large");
    }

    // -- the real development manifests -----------------------------------------

    /// Run `cmd`, killing it after `timeout`.
    fn output_within(cmd: &mut Command, timeout: Duration) -> std::process::Output {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let read = |mut pipe: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                pipe.read_to_end(&mut bytes).map(|_| bytes)
            })
        };
        let stdout = read(Box::new(child.stdout.take().unwrap()));
        let stderr = read(Box::new(child.stderr.take().unwrap()));
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd:?} did not finish within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        std::process::Output {
            status,
            stdout: stdout.join().unwrap().unwrap(),
            stderr: stderr.join().unwrap().unwrap(),
        }
    }

    #[test]
    fn the_development_meeting_controller_pod_gets_its_contract_and_probes() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = output_within(
            Command::new("kubectl")
                .args([
                    "kustomize",
                    "--load-restrictor",
                    "LoadRestrictionsNone",
                    "overlays/development/meeting-controller",
                ])
                .current_dir(&repo),
            Duration::from_mins(2),
        );
        assert!(
            out.status.success(),
            "kubectl kustomize failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let manifests =
            crate::manifest::parse_stream(std::str::from_utf8(&out.stdout).unwrap()).unwrap();
        let deployment = manifests
            .iter()
            .find(|v| v["kind"] == "StatefulSet" && v["metadata"]["name"] == "meeting-controller")
            .expect("a meeting-controller StatefulSet");
        let workload = Workload::from_value(deployment, "dark-tower").unwrap();
        let mut objects =
            Objects::from_manifests(&manifests, &workload.namespace, "dark-tower").unwrap();
        // Secrets made in the cluster (cert-manager's TLS Secret) are not in
        // the rendered output: stand-ins with every key the pod reads.
        let rendered = objects.clone();
        for r in references(&workload) {
            if r.kind != RefKind::Secret || r.optional || rendered.contains(r.kind, &r.name) {
                continue;
            }
            let mut data = objects.secret(&r.name).cloned().unwrap_or_default();
            if let Some(key) = r.key {
                data.insert(key, b"placeholder".to_vec());
            }
            objects.insert_secret(r.name, data);
        }
        let pod = PodIdentity::generate(
            &workload,
            0,
            "10.244.0.17",
            "172.18.0.2",
            "dark-tower-control-plane",
        );
        let dir = tempfile::tempdir().unwrap();
        let plan = plan_pod(
            &workload,
            &objects,
            &pod,
            &PlanOptions::new(dir.path().join("volumes")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mc = plan
            .containers
            .iter()
            .find(|c| c.name == "meeting-controller")
            .expect("the meeting-controller container");

        let contract_text =
            std::fs::read_to_string(repo.join("services/meeting-controller/config-contract.toml"))
                .unwrap();
        let contract = common::config::Contract::parse(&contract_text).unwrap();
        let env: BTreeMap<&str, &str> = mc
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let required: Vec<&str> = contract
            .env
            .iter()
            .filter(|e| e.required)
            .map(|e| e.name.as_str())
            .collect();
        assert!(!required.is_empty());
        let missing: Vec<&&str> = required
            .iter()
            .filter(|name| !env.contains_key(**name))
            .collect();
        assert!(
            missing.is_empty(),
            "required by the contract but not in the pod's env: {missing:?}"
        );
        assert_eq!(env["MC_GRPC_ADVERTISE_ADDRESS"], "10.244.0.17:50052");
        assert_eq!(
            env["MC_WEBTRANSPORT_ADVERTISE_ADDRESS"],
            format!("{}.media.dev.dark-tower.example:4433", pod.name)
        );
        let readiness = mc.readiness.as_ref().expect("a readiness probe");
        assert!(
            matches!(&readiness.action, ProbeAction::Http { port: 8081, path, .. } if path == "/ready"),
            "{readiness:?}"
        );
    }
}
