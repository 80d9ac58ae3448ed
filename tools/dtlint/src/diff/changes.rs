//! The change rules of `dtlint diff`: what a difference does once Flux
//! applies it.
//!
//! - `immutable-field-changed` (error): a field the API server will not
//!   update changed (a workload's `spec.selector`, a StatefulSet's
//!   `volumeClaimTemplates`, `serviceName` or `podManagementPolicy`, a
//!   Job's `template`, a PVC's `storageClassName`, a Service's
//!   `clusterIP`): the apply fails and Flux stalls until someone deletes
//!   the object by hand.
//! - `pruned-data` (error): a PersistentVolumeClaim, Namespace, Secret or
//!   CloudNativePG Cluster is no longer declared: Flux prunes it, and the
//!   data with it.
//! - `flux-suspend-changed` (warning): a Flux object's `spec.suspend`
//!   turned on or off.
//! - `image-unpinned` (warning): an image that was pinned by digest now
//!   names a tag, or moved to an older SemVer tag.
//! - `replicas-below-budget` (error): replicas lowered to or under the
//!   `minAvailable` of a PodDisruptionBudget that selects the workload.
//! - `crd-version-removed` (error): a CustomResourceDefinition stopped
//!   serving a version that objects still use.
//! - `network-flow-opened` (warning, in `flows`): traffic allowed now and
//!   not before.

use serde_json::Value as Json;

use super::{EnvDiff, Obj};

/// One finding of a change rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub rule: &'static str,
    pub error: bool,
    pub message: String,
    /// `file:line` in the new revision (the base revision's, for a removal).
    pub source: String,
    pub envs: Vec<String>,
}

/// Fields no update may change, by (API group, kind).
fn immutable(group: &str, kind: &str) -> &'static [&'static str] {
    match (group, kind) {
        ("apps", "Deployment" | "DaemonSet" | "ReplicaSet") => &["spec.selector"],
        ("apps", "StatefulSet") => &[
            "spec.selector",
            "spec.volumeClaimTemplates",
            "spec.serviceName",
            "spec.podManagementPolicy",
        ],
        ("batch", "Job") => &["spec.selector", "spec.template"],
        ("", "PersistentVolumeClaim") => &["spec.storageClassName", "spec.volumeName"],
        ("", "Service") => &["spec.clusterIP"],
        _ => &[],
    }
}

fn within(field: &str, prefix: &str) -> bool {
    field == prefix
        || field
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with(['.', '[']))
}

fn pointer<'v>(v: &'v Json, dotted: &str) -> Option<&'v Json> {
    dotted.split('.').try_fold(v, |v, k| v.get(k))
}

/// Every image of an object's pod template, by container name.
fn images(v: &Json) -> Vec<(String, String)> {
    let spec = pointer(v, "spec.template.spec")
        .or_else(|| pointer(v, "spec.jobTemplate.spec.template.spec"))
        .or_else(|| pointer(v, "spec"));
    let mut out = Vec::new();
    for key in ["containers", "initContainers"] {
        for c in spec
            .and_then(|s| s.get(key))
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(n), Some(i)) = (
                c.get("name").and_then(Json::as_str),
                c.get("image").and_then(Json::as_str),
            ) {
                out.push((n.to_string(), i.to_string()));
            }
        }
    }
    out
}

fn tag_version(image: &str) -> Option<semver::Version> {
    let tag = image.rsplit_once(':')?.1;
    if tag.contains('/') {
        return None;
    }
    semver::Version::parse(tag.trim_start_matches('v')).ok()
}

/// The change findings of one environment's difference.
/// `all` is every object the environment receives after the change;
/// `locate` gives the `file:line` of a field of a new object.
pub fn judge(
    env: &str,
    d: &EnvDiff,
    all: &[&Obj],
    locate: &dyn Fn(&Obj, &str) -> String,
) -> Vec<Change> {
    let mut out = Vec::new();
    let mut push = |rule, error, message: String, source: &str| {
        out.push(Change {
            rule,
            error,
            message,
            source: source.to_string(),
            envs: vec![env.to_string()],
        });
    };
    for (new, old, fields) in &d.changed {
        for prefix in immutable(new.group(), &new.kind) {
            // A Service's cluster IP may be set where it was empty (the
            // API server assigns one); changing an assigned one is refused.
            if *prefix == "spec.clusterIP"
                && pointer(&old.value, "spec.clusterIP")
                    .and_then(Json::as_str)
                    .is_none_or(str::is_empty)
            {
                continue;
            }
            if let Some(field) = fields.iter().find(|f| within(f, prefix)) {
                push(
                    "immutable-field-changed",
                    true,
                    format!(
                        "`{prefix}` of {} changed: the API server refuses to update it, and Flux stalls until the object is deleted and created again",
                        new.id()
                    ),
                    &locate(new, field),
                );
            }
        }
        if new.group().ends_with("toolkit.fluxcd.io") && fields.iter().any(|f| f == "spec.suspend")
        {
            let on = pointer(&new.value, "spec.suspend").and_then(Json::as_bool) == Some(true);
            push(
                "flux-suspend-changed",
                false,
                format!(
                    "{} is {}: Flux {} reconciling it",
                    new.id(),
                    if on { "suspended" } else { "resumed" },
                    if on { "stops" } else { "starts" }
                ),
                &locate(new, "spec.suspend"),
            );
        }
        let before: std::collections::BTreeMap<String, String> =
            images(&old.value).into_iter().collect();
        for (container, image) in images(&new.value) {
            let Some(was) = before.get(&container) else {
                continue;
            };
            if was == &image {
                continue;
            }
            let why = if was.contains("@sha256:") && !image.contains("@sha256:") {
                Some(format!(
                    "was pinned by digest (`{was}`), now a tag (`{image}`)"
                ))
            } else {
                match (tag_version(was), tag_version(&image)) {
                    (Some(a), Some(b)) if b < a => {
                        Some(format!("moved to an older version, `{was}` to `{image}`"))
                    }
                    _ => None,
                }
            };
            if let Some(why) = why {
                let suffix = format!("[{container}].image");
                let at = fields
                    .iter()
                    .find(|f| f.ends_with(&suffix))
                    .map_or_else(|| new.source.clone(), |f| locate(new, f));
                push(
                    "image-unpinned",
                    false,
                    format!("image of container `{container}` in {} {why}", new.id()),
                    &at,
                );
            }
        }
    }
    for (new, old, _) in &d.changed {
        if let Some(c) = below_budget(new, old, all) {
            push(
                "replicas-below-budget",
                true,
                c,
                &locate(new, "spec.replicas"),
            );
        }
        for (version, users) in removed_versions(new, old, all) {
            push(
                "crd-version-removed",
                true,
                format!(
                    "{} no longer serves `{version}`, which {} still use{}",
                    new.id(),
                    users.join(", "),
                    if users.len() == 1 { "s" } else { "" }
                ),
                &locate(new, "spec.versions"),
            );
        }
    }
    for old in &d.removed {
        let holds_data = matches!(
            (old.group(), old.kind.as_str()),
            ("", "PersistentVolumeClaim" | "Namespace" | "Secret")
                | ("postgresql.cnpg.io", "Cluster")
        );
        if holds_data {
            push(
                "pruned-data",
                true,
                format!(
                    "{} is no longer declared: Flux prunes it (with `prune: true`), and its data with it",
                    old.id()
                ),
                &format!("{} (base)", old.source),
            );
        }
    }
    out
}

/// One finding per rule, message and place, naming every environment.
pub fn merge(changes: &mut Vec<Change>) {
    let mut out: Vec<Change> = Vec::new();
    for c in changes.drain(..) {
        if let Some(o) = out
            .iter_mut()
            .find(|o| o.rule == c.rule && o.message == c.message && o.source == c.source)
        {
            for e in c.envs {
                if !o.envs.contains(&e) {
                    o.envs.push(e);
                }
            }
        } else {
            out.push(c);
        }
    }
    *changes = out;
}

/// `spec.replicas` lowered to or under the `minAvailable` of a
/// PodDisruptionBudget that selects the workload: no pod may be evicted,
/// so every node drain stalls.
fn below_budget(new: &Obj, old: &Obj, all: &[&Obj]) -> Option<String> {
    let replicas = |o: &Obj| pointer(&o.value, "spec.replicas").and_then(Json::as_i64);
    let (now, was) = (replicas(new)?, replicas(old).unwrap_or(1));
    if now >= was {
        return None;
    }
    let labels = pointer(&new.value, "spec.template.metadata.labels")?.as_object()?;
    all.iter()
        .filter(|p| p.kind == "PodDisruptionBudget" && p.namespace == new.namespace)
        .find_map(|p| {
            let min = pointer(&p.value, "spec.minAvailable")?.as_i64()?;
            let wanted = pointer(&p.value, "spec.selector.matchLabels")?.as_object()?;
            let selects = !wanted.is_empty() && wanted.iter().all(|(k, v)| labels.get(k) == Some(v));
            (selects && min >= now).then(|| {
                format!(
                    "{} goes from {was} to {now} replicas, but PodDisruptionBudget {} keeps {min} available: no pod can be evicted, and node drains stall",
                    new.id(),
                    p.name
                )
            })
        })
}

/// Versions a CustomResourceDefinition stopped serving while objects of the
/// environment still use them.
fn removed_versions(new: &Obj, old: &Obj, all: &[&Obj]) -> Vec<(String, Vec<String>)> {
    if new.kind != "CustomResourceDefinition" {
        return Vec::new();
    }
    let served = |o: &Obj| -> Vec<String> {
        pointer(&o.value, "spec.versions")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter(|v| v.get("served").and_then(Json::as_bool) != Some(false))
            .filter_map(|v| v.get("name")?.as_str().map(str::to_string))
            .collect()
    };
    let Some(group) = pointer(&new.value, "spec.group").and_then(Json::as_str) else {
        return Vec::new();
    };
    let Some(kind) = pointer(&new.value, "spec.names.kind").and_then(Json::as_str) else {
        return Vec::new();
    };
    let now = served(new);
    served(old)
        .into_iter()
        .filter(|v| !now.contains(v))
        .filter_map(|v| {
            let api = format!("{group}/{v}");
            let users: Vec<String> = all
                .iter()
                .filter(|o| o.kind == kind && o.api_version == api)
                .map(|o| o.id())
                .collect();
            (!users.is_empty()).then_some((api, users))
        })
        .collect()
}
