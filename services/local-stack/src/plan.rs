//! `local-stack plan --env E`: what running an environment from git means,
//! without running it. Every Flux Kustomization is built in `dependsOn`
//! order (SOPS files decrypted with the given age key, as kustomize-controller
//! does), and every pod of every Deployment and StatefulSet is planned
//! exactly as the kubelet would start it: its env after `$(VAR)` expansion,
//! its volumes and mounts, its security context and probes, its address, and
//! every Service's cluster IP with the kube-proxy rules that route to it.
//!
//! Secrets that a controller makes (cert-manager from a `Certificate`,
//! CloudNativePG from a `Cluster`) are not in git; the plan names each one
//! and the object that makes it, and plans the pod with placeholder content
//! of the right keys. A reference that nothing declares is an error, naming
//! the object and field, as it would leave the pod stuck in the cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::Context as _;
use serde_json::Value;

use crate::manifest::Object;
use crate::net::{self, Allocator, ServiceRule};
use crate::pod::{self, ImageConfig, Objects, PlanOptions, PodIdentity, ProbeAction, Workload};
use crate::render::{self, Applied};

/// The namespace objects land in when they name none.
const DEFAULT_NAMESPACE: &str = "default";
/// Our services' images: `<registry>/<name>:<tag>`, run as the workspace
/// binary `<name>`.
const OUR_IMAGES: &str = "ghcr.io/dark-tower/dark-tower/";

/// How many pods a workload starts with, as a cluster runs it before any
/// load: `spec.replicas`, else the `minReplicas` of the
/// HorizontalPodAutoscaler that scales it (same namespace), else 1.
pub fn initial_replicas(workload: &Value, all: &[Value]) -> u64 {
    if let Some(n) = workload.pointer("/spec/replicas").and_then(Value::as_u64) {
        return n;
    }
    let Some(w) = Object::new(workload) else {
        return 1;
    };
    let ns = w.namespace(DEFAULT_NAMESPACE);
    all.iter()
        .filter_map(|v| Object::new(v).map(|o| (o, v)))
        .find(|(o, v)| {
            o.kind() == "HorizontalPodAutoscaler"
                && o.namespace(DEFAULT_NAMESPACE) == ns
                && v.pointer("/spec/scaleTargetRef/kind")
                    .and_then(Value::as_str)
                    == Some(w.kind())
                && v.pointer("/spec/scaleTargetRef/name")
                    .and_then(Value::as_str)
                    == Some(w.name())
        })
        .map_or(1, |(_, v)| {
            v.pointer("/spec/minReplicas")
                .and_then(Value::as_u64)
                .unwrap_or(1)
        })
}

/// Secrets that controllers create from objects in git: name → (keys, maker).
pub fn controller_secrets(
    objects: &[Value],
) -> BTreeMap<(String, String), (Vec<&'static str>, String)> {
    let mut out = BTreeMap::new();
    for v in objects {
        let Some(o) = Object::new(v) else { continue };
        let ns = o.namespace(DEFAULT_NAMESPACE).to_owned();
        let spec = v.get("spec");
        match (o.api_version().split('/').next(), o.kind()) {
            (Some("cert-manager.io"), "Certificate") => {
                if let Some(secret) = spec
                    .and_then(|s| s.get("secretName"))
                    .and_then(Value::as_str)
                {
                    out.insert(
                        (ns, secret.to_owned()),
                        (
                            vec!["tls.crt", "tls.key", "ca.crt"],
                            format!("Certificate {}", o.name()),
                        ),
                    );
                }
            }
            (Some("postgresql.cnpg.io"), "Cluster") => {
                let name = o.name();
                let maker = format!("Cluster {name}");
                let given = |key: &str| crate::standin::cnpg_certificate_secret(v, key).is_some();
                // The operator's own CA signs client certificates unless
                // the Cluster names a client CA; it makes a server
                // certificate only when the Cluster names none.
                if !given("clientCASecret") {
                    out.insert(
                        (ns.clone(), format!("{name}-ca")),
                        (vec!["ca.crt", "ca.key"], maker.clone()),
                    );
                }
                if !given("serverTLSSecret") {
                    out.insert(
                        (ns.clone(), format!("{name}-server")),
                        (vec!["tls.crt", "tls.key"], maker.clone()),
                    );
                }
                out.insert(
                    (ns.clone(), format!("{name}-replication")),
                    (vec!["tls.crt", "tls.key"], maker.clone()),
                );
                if spec
                    .and_then(|s| s.pointer("/bootstrap/initdb/secret/name"))
                    .is_none()
                {
                    out.insert(
                        (ns, format!("{name}-app")),
                        (
                            vec![
                                "username", "password", "dbname", "host", "port", "uri",
                                "jdbc-uri", "pgpass",
                            ],
                            maker,
                        ),
                    );
                }
            }
            _ => {}
        }
    }
    out
}

/// One planned pod.
#[derive(Debug)]
pub struct PlannedPod {
    pub kustomization: String,
    pub ip: Ipv4Addr,
    pub labels: BTreeMap<String, String>,
    pub plan: pod::PodPlan,
    /// Containers whose image has no local binary (named, not run).
    pub not_run: Vec<String>,
}

/// A Service: `namespace/name`, its cluster IP (none when headless) and
/// the kube-proxy rule of each port.
pub type PlannedService = (String, Option<Ipv4Addr>, Vec<ServiceRule>);

/// The whole environment, planned.
#[derive(Debug)]
pub struct EnvPlan {
    pub applied: Vec<(render::FluxKustomization, BTreeMap<String, usize>)>,
    pub made_by_controllers: Vec<(String, String)>,
    pub pods: Vec<PlannedPod>,
    pub services: Vec<PlannedService>,
}

fn image_config(image: &str, binaries: &Path) -> Option<ImageConfig> {
    let name = image.strip_prefix(OUR_IMAGES)?;
    let name = name.split([':', '@']).next()?;
    Some(ImageConfig {
        entrypoint: vec![binaries.join(name).to_string_lossy().into_owned()],
        user: "65532:65532".into(),
        ..ImageConfig::default()
    })
}

/// Plans `env` of the repository at `repo`.
pub fn plan(
    repo: &Path,
    env: &str,
    decrypted: Option<&render::Decrypted>,
    workdir: &Path,
    binaries: &Path,
) -> anyhow::Result<EnvPlan> {
    let applied = render::apply_all(repo, env, decrypted)?;
    let all: Vec<Value> = applied
        .iter()
        .flat_map(|a| a.objects.iter().cloned())
        .collect();
    let made = controller_secrets(&all);
    let mut alloc = Allocator::default();
    let mut pods = Vec::new();
    for Applied {
        kustomization,
        objects,
        ..
    } in &applied
    {
        for value in objects {
            let Some(o) = Object::new(value) else {
                continue;
            };
            if !matches!(o.kind(), "Deployment" | "StatefulSet") {
                continue;
            }
            let mut value = value.clone();
            claim_templates_as_directories(&mut value);
            let workload = Workload::from_value(&value, DEFAULT_NAMESPACE)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut objects = Objects::from_manifests(&all, &workload.namespace, DEFAULT_NAMESPACE)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            for ((ns, name), (keys, _)) in &made {
                if *ns == workload.namespace && objects.secret(name).is_none() {
                    objects.insert_secret(
                        name.clone(),
                        keys.iter()
                            .map(|k| {
                                (
                                    (*k).to_owned(),
                                    b"(made by the controller at run time)".to_vec(),
                                )
                            })
                            .collect(),
                    );
                }
            }
            let replicas = initial_replicas(&value, &all);
            for replica in 0..replicas {
                let ip = alloc.pod_ip()?;
                let id = PodIdentity::generate(
                    &workload,
                    u32::try_from(replica).unwrap_or(u32::MAX),
                    &ip.to_string(),
                    &net::NODE_IP.to_string(),
                    "local-node",
                );
                let mut options = PlanOptions::new(workdir.join("pods").join(&id.name));
                let mut not_run = Vec::new();
                for c in workload.template.spec.iter().flat_map(|s| {
                    s.containers
                        .iter()
                        .chain(s.init_containers.iter().flatten())
                }) {
                    let image = c.image.clone().unwrap_or_default();
                    match image_config(&image, binaries) {
                        Some(config) => {
                            options.images.insert(image, config);
                        }
                        None => not_run.push(format!("{} ({image})", c.name)),
                    }
                }
                let plan = pod::plan_pod(&workload, &objects, &id, &options)
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .with_context(|| format!("Flux Kustomization {}", kustomization.name))?;
                pods.push(PlannedPod {
                    kustomization: kustomization.name.clone(),
                    ip,
                    labels: id.labels.clone(),
                    plan,
                    not_run,
                });
            }
        }
    }
    let services = plan_services(&all, &pods, &mut alloc)?;
    Ok(EnvPlan {
        applied: applied
            .iter()
            .map(|a| (a.kustomization.clone(), render::count_kinds(&a.objects)))
            .collect(),
        made_by_controllers: made
            .into_iter()
            .map(|((ns, name), (_, maker))| (format!("{ns}/{name}"), maker))
            .collect(),
        pods,
        services,
    })
}

/// A StatefulSet's `volumeClaimTemplates` become one directory per pod, as
/// a local-path provisioner would give them.
pub(crate) fn claim_templates_as_directories(value: &mut Value) {
    let Some(claims) = value
        .pointer_mut("/spec/volumeClaimTemplates")
        .and_then(Value::as_array_mut)
        .map(std::mem::take)
    else {
        return;
    };
    let Some(volumes) = value
        .pointer_mut("/spec/template/spec")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let list = volumes
        .entry("volumes")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Some(list) = list.as_array_mut() {
        for claim in claims {
            if let Some(name) = claim.pointer("/metadata/name").and_then(Value::as_str) {
                list.push(serde_json::json!({"name": name, "emptyDir": {}}));
            }
        }
    }
}

fn plan_services(
    all: &[Value],
    pods: &[PlannedPod],
    alloc: &mut Allocator,
) -> anyhow::Result<Vec<PlannedService>> {
    let mut out = Vec::new();
    for v in all {
        let Some(o) = Object::new(v) else { continue };
        if o.kind() != "Service" || o.api_version() != "v1" {
            continue;
        }
        let ns = o.namespace(DEFAULT_NAMESPACE);
        let headless = v.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
        let ip = if headless {
            None
        } else {
            Some(alloc.service_ip()?)
        };
        let endpoints: Vec<_> = pods
            .iter()
            .filter(|p| net::selects(v, &p.plan.namespace, &p.labels))
            .map(|p| {
                let ports = p
                    .plan
                    .containers
                    .iter()
                    .flat_map(|c| &c.ports)
                    .map(|cp| (cp.name.clone(), cp.container_port))
                    .collect();
                (p.ip, ports)
            })
            .collect();
        let rules = ip.map_or_else(Vec::new, |ip| net::service_rules(v, ip, &endpoints));
        out.push((format!("{ns}/{}", o.name()), ip, rules));
    }
    Ok(out)
}

/// What a user reads: one block per pod, then the Services.
pub fn render_text(plan: &EnvPlan, show_env: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Flux Kustomizations, in the order they apply:");
    for (k, kinds) in &plan.applied {
        let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let wait = if k.wait {
            format!("waits up to {}s for health", k.timeout.as_secs())
        } else {
            "does not wait".to_owned()
        };
        let _ = writeln!(
            s,
            "  {} (./{}, {wait}): {}",
            k.name,
            k.path,
            kinds.join(", ")
        );
    }
    let _ = writeln!(s, "\nSecrets made by controllers (stand-ins at run time):");
    for (secret, maker) in &plan.made_by_controllers {
        let _ = writeln!(s, "  {secret} <- {maker}");
    }
    let _ = writeln!(s, "\nPods:");
    for p in &plan.pods {
        let _ = writeln!(
            s,
            "  {} ({}, {}) {}",
            p.plan.pod_name, p.plan.workload, p.kustomization, p.ip
        );
        for c in &p.plan.containers {
            let user = c
                .run_as_user
                .map_or_else(|| "image".to_owned(), |u| u.to_string());
            let argv = [c.command.clone(), c.args.clone()].concat();
            let argv = if argv.is_empty() {
                "the image's entrypoint".to_owned()
            } else {
                format!("{argv:?}")
            };
            let _ = writeln!(
                s,
                "    container {}: user {user}, read-only root {}, runs {argv}",
                c.name, c.read_only_root_filesystem,
            );
            if let Some(r) = &c.readiness {
                let _ = writeln!(s, "      readiness {}", describe(&r.action));
            }
            for m in &c.mounts {
                let _ = writeln!(
                    s,
                    "      mount {} <- volume {}{}",
                    m.mount_path,
                    m.volume,
                    if m.read_only { " (ro)" } else { "" }
                );
            }
            if show_env {
                for (k, v) in &c.env {
                    let _ = writeln!(s, "      env {k}={v}");
                }
            } else {
                let names: BTreeSet<&str> = c.env.iter().map(|(k, _)| k.as_str()).collect();
                let _ = writeln!(
                    s,
                    "      env {}",
                    names.into_iter().collect::<Vec<_>>().join(" ")
                );
            }
        }
        for c in &p.not_run {
            let _ = writeln!(s, "    image of {c}: not one of this workspace's binaries");
        }
    }
    let _ = writeln!(s, "\nServices:");
    for (name, ip, rules) in &plan.services {
        let ip = ip.map_or_else(|| "headless".to_owned(), |ip| ip.to_string());
        let ports: Vec<String> = rules
            .iter()
            .map(|r| {
                format!(
                    "{}/{} -> {} endpoint(s)",
                    r.port,
                    r.protocol,
                    r.endpoints.len()
                )
            })
            .collect();
        let _ = writeln!(s, "  {name} {ip} {}", ports.join(", "));
    }
    s
}

fn describe(action: &ProbeAction) -> String {
    match action {
        ProbeAction::Http { port, path, .. } => format!("HTTP GET :{port}{path}"),
        ProbeAction::Tcp { port, .. } => format!("TCP :{port}"),
        ProbeAction::Grpc { port, .. } => format!("gRPC :{port}"),
        ProbeAction::Exec { command } => format!("exec {command:?}"),
    }
}

/// The kube-proxy program for every Service of the plan.
pub fn kube_proxy(plan: &EnvPlan) -> String {
    let rules: Vec<ServiceRule> = plan
        .services
        .iter()
        .flat_map(|(_, _, r)| r.iter().cloned())
        .collect();
    net::kube_proxy_program(&rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[test]
    fn development_plans_every_service_pod_from_git_alone() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(&repo(), "development", None, dir.path(), Path::new("/bin")).unwrap();
        let workloads: BTreeSet<&str> =
            plan.pods.iter().map(|p| p.plan.workload.as_str()).collect();
        for w in [
            "StatefulSet dark-tower/ac-service",
            "Deployment dark-tower/global-controller",
            "StatefulSet dark-tower/meeting-controller",
            "StatefulSet dark-tower/media-handler",
            "StatefulSet dark-tower/redis",
        ] {
            assert!(workloads.contains(w), "{w} missing from {workloads:?}");
        }
        let made: BTreeSet<&str> = plan
            .made_by_controllers
            .iter()
            .map(|(s, _)| s.as_str())
            .collect();
        for s in [
            "dark-tower/postgres-ca",
            "dark-tower/postgres-server-ca",
            "dark-tower/postgres-server-tls",
            "dark-tower/meeting-controller-tls",
            "dark-tower/media-handler-tls",
        ] {
            assert!(made.contains(s), "{s} missing from {made:?}");
        }
        // The Cluster names its server certificate: the operator makes none.
        assert!(!made.contains("dark-tower/postgres-server"), "{made:?}");
        let ac = plan
            .pods
            .iter()
            .find(|p| p.plan.pod_name == "ac-service-0")
            .unwrap();
        let env: BTreeMap<&str, &str> = ac.plan.containers[0]
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let url = env["DATABASE_URL"];
        assert!(url.starts_with("postgres://ac:dev-only-"), "{url}");
        assert!(url.ends_with("@postgres-pooler-rw.dark-tower.svc:5432/ac?sslmode=verify-full&sslrootcert=/etc/dark-tower/postgres-ca/ca.crt"), "{url}");
        let url = env["DATABASE_MIGRATION_URL"];
        assert!(url.starts_with("postgres://ac:dev-only-"), "{url}");
        assert!(url.ends_with("@postgres-rw.dark-tower.svc:5432/ac?sslmode=verify-full&sslrootcert=/etc/dark-tower/postgres-ca/ca.crt"), "{url}");
        let mc = plan
            .pods
            .iter()
            .find(|p| p.plan.workload == "StatefulSet dark-tower/meeting-controller")
            .unwrap();
        let env: BTreeMap<&str, &str> = mc.plan.containers[0]
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        // The replica's own public name (public.yaml's per-ordinal Service).
        assert_eq!(mc.plan.pod_name, "meeting-controller-0");
        assert_eq!(
            env["MC_WEBTRANSPORT_ADVERTISE_ADDRESS"],
            "meeting-controller-0.media.dev.dark-tower.example:4433"
        );
        assert!(
            plan.services
                .iter()
                .any(|(name, ip, _)| name == "dark-tower/meeting-controller-0" && ip.is_some()),
            "{:?}",
            plan.services
        );
        let text = render_text(&plan, false);
        assert!(text.contains("readiness HTTP GET :8082/ready"), "{text}");
        let program = kube_proxy(&plan);
        assert!(program.contains("udp dport 4433 dnat ip to"), "{program}");
    }

    #[test]
    fn an_autoscaled_workload_starts_with_its_minimum() {
        let deployment = |replicas: &str| -> Value {
            serde_json::from_str(&format!(
                r#"{{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {{"name": "gc", "namespace": "ns"}}, "spec": {{{replicas}}}}}"#
            ))
            .unwrap()
        };
        let hpa = |ns: &str, kind: &str| -> Value {
            serde_json::from_str(&format!(
                r#"{{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {{"name": "gc", "namespace": "{ns}"}}, "spec": {{"scaleTargetRef": {{"kind": "{kind}", "name": "gc"}}, "minReplicas": 3}}}}"#
            ))
            .unwrap()
        };
        let all = vec![hpa("ns", "Deployment")];
        assert_eq!(initial_replicas(&deployment(""), &all), 3);
        // A written count wins (the cluster starts there).
        assert_eq!(initial_replicas(&deployment(r#""replicas": 2"#), &all), 2);
        // Another namespace's or another kind's autoscaler is not this one's.
        assert_eq!(
            initial_replicas(&deployment(""), &[hpa("other", "Deployment")]),
            1
        );
        assert_eq!(
            initial_replicas(&deployment(""), &[hpa("ns", "StatefulSet")]),
            1
        );
    }

    #[test]
    fn production_runs_three_replicas_of_each_service() {
        let Some(key) = std::env::var_os("SOPS_AGE_KEY_FILE") else {
            manifest_tests::skip("SOPS_AGE_KEY_FILE is not set");
            return;
        };
        let ids = dtlint_sops::AgeIdentities::from_file(Path::new(&key)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let decrypted = render::decrypt_copy(&repo(), &dir.path().join("src"), &ids).unwrap();
        assert!(decrypted.files >= 12, "{}", decrypted.files);
        let plan = plan(
            &repo(),
            "production",
            Some(&decrypted),
            dir.path(),
            Path::new("/bin"),
        )
        .unwrap();
        for w in [
            "ac-service",
            "global-controller",
            "meeting-controller",
            "media-handler",
        ] {
            let n = plan
                .pods
                .iter()
                .filter(|p| p.plan.workload.ends_with(&format!("/{w}")))
                .count();
            assert!(n >= 3, "{w}: {n} pods");
        }
        let gc = plan
            .pods
            .iter()
            .find(|p| p.plan.workload.ends_with("/global-controller"))
            .unwrap();
        let secret = gc.plan.containers[0]
            .env
            .iter()
            .find(|(k, _)| k == "GC_CLIENT_SECRET")
            .unwrap();
        assert!(!secret.1.starts_with("ENC["), "decrypted");
    }
}
