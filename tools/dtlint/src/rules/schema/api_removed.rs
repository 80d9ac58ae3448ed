use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};
use crate::schema::{Catalog, KubeRelease};

use super::{LocalSchemas, Lookup, Resolved, resolve};

declare_rule! {
    /// ## What it does
    /// Reports an `apiVersion` the cluster does not serve for the object's
    /// kind: removed from Kubernetes by the release the environment runs
    /// (`kubernetes-version` in `dtlint.toml`; the newest release dtlint
    /// knows otherwise), not served yet by it, or a version its
    /// CustomResourceDefinition does not have or marks `served: false`.
    /// The message names the release that removed it and what replaces it.
    ///
    /// ## Why is this bad?
    /// The API server refuses the object outright: Flux's apply fails and
    /// the whole Kustomization stalls, usually right after a cluster upgrade
    /// that nobody connected with the manifests.
    ///
    /// ## Example
    /// ```yaml
    /// apiVersion: policy/v1beta1   # removed in Kubernetes 1.25
    /// kind: PodDisruptionBudget
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// apiVersion: policy/v1
    /// kind: PodDisruptionBudget
    /// ```
    ///
    /// ## References
    /// - Deprecated API migration guide: <https://kubernetes.io/docs/reference/using-api/deprecation-guide/>
    /// - CRD versions: <https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definition-versioning/>
    pub struct ApiRemoved {
        id: "api-removed",
        category: "schema",
        severity: Error,
        summary: "an apiVersion the cluster's Kubernetes release or the kind's CRD does not serve",
    }
}

declare_rule! {
    /// ## What it does
    /// Reports an `apiVersion` that the cluster serves today but a later
    /// Kubernetes release removes (dtlint knows every release from 1.29),
    /// or that its CustomResourceDefinition marks `deprecated`, with the
    /// release that removes it and the replacement.
    ///
    /// ## Why is this bad?
    /// The next cluster upgrade turns it into an object the API server
    /// refuses; moving now is a one-line change, moving during an upgrade
    /// is an outage.
    ///
    /// ## Example
    /// ```yaml
    /// # kubernetes-version = "1.31"
    /// apiVersion: flowcontrol.apiserver.k8s.io/v1beta3   # removed in 1.32
    /// kind: FlowSchema
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// apiVersion: flowcontrol.apiserver.k8s.io/v1
    /// kind: FlowSchema
    /// ```
    ///
    /// ## References
    /// - Deprecated API migration guide: <https://kubernetes.io/docs/reference/using-api/deprecation-guide/>
    pub struct ApiDeprecated {
        id: "api-deprecated",
        category: "schema",
        severity: Warning,
        summary: "an apiVersion a later Kubernetes release removes, or its CRD deprecates",
    }
}

fn minor(v: &str) -> u32 {
    v.strip_prefix("1.")
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// The apiVersion serving `kind` of `group` in the newest release, GA first.
fn replacement(catalog: &Catalog, r: &Resource<'_>) -> Option<String> {
    let (group, kind) = (r.group(), r.kind);
    let newest = catalog.newest()?;
    let mut candidates: Vec<&str> = newest
        .kinds
        .iter()
        .filter(|(a, k, _)| k == kind && a != r.api_version)
        .map(|(a, _, _)| a.as_str())
        .collect();
    candidates.sort_by_key(|a| {
        let v = a.rsplit('/').next().unwrap_or("");
        (
            crate::model::api_group(a) != group,
            v.contains("alpha"),
            v.contains("beta"),
        )
    });
    candidates.first().map(|a| (*a).to_string())
}

fn use_instead(replacement: Option<&str>) -> String {
    match replacement {
        Some(r) => format!("; use `{r}`"),
        None => String::new(),
    }
}

/// The problem with a Kubernetes apiVersion `release` does not serve.
fn kube_unserved(catalog: &Catalog, release: &KubeRelease, r: &Resource<'_>) -> Option<String> {
    let (api, kind) = (r.api_version, r.kind);
    let here = minor(&release.version);
    let serving: Vec<u32> = catalog
        .releases_serving(api, kind)
        .map(|k| minor(&k.version))
        .collect();
    if let Some(&last) = serving.iter().filter(|&&m| m < here).max() {
        let removed = catalog
            .kubernetes
            .iter()
            .map(|k| minor(&k.version))
            .find(|&m| m > last)
            .unwrap_or(last + 1);
        let rep = replacement(catalog, r);
        return Some(format!(
            "`{api}` {kind} was removed in Kubernetes 1.{removed} (the cluster runs {}){}",
            release.version,
            use_instead(rep.as_deref())
        ));
    }
    if let Some(&first) = serving.iter().filter(|&&m| m > here).min() {
        return Some(format!(
            "`{api}` {kind} is not served before Kubernetes 1.{first} (the cluster runs {})",
            release.version
        ));
    }
    if let Some(a) = catalog
        .removed
        .iter()
        .find(|a| a.api_version == api && a.kind == kind)
    {
        return Some(format!(
            "`{api}` {kind} was removed in Kubernetes {} (deprecated since {}){}",
            a.removed,
            a.deprecated,
            use_instead(a.replacement.as_deref())
        ));
    }
    // Another version of the kind exists: this one never did.
    catalog.kinds_of_group(r.group()).contains(&kind).then(|| {
        let rep = replacement(catalog, r);
        format!(
            "Kubernetes {} does not serve {kind} as `{api}`{}",
            release.version,
            use_instead(rep.as_deref())
        )
    })
}

/// The problem with a CRD version that is not served.
fn crd_unserved(catalog: &Catalog, local: &LocalSchemas, r: &Resource<'_>) -> Option<String> {
    let (group, kind) = (r.group(), r.kind);
    let version = r.api_version.rsplit('/').next().unwrap_or("");
    let local_has = local.crds.iter().any(|c| c.group == group);
    let versions: Vec<&crate::schema::CrdVersion> = if local_has {
        local
            .crds
            .iter()
            .filter(|c| c.group == group && c.kind == kind)
            .collect()
    } else {
        catalog.crd_versions(group, kind).collect()
    };
    if versions.is_empty() {
        return None;
    }
    let served: Vec<&str> = versions
        .iter()
        .filter(|c| c.served)
        .map(|c| c.version.as_str())
        .collect();
    match versions.iter().find(|c| c.version == version) {
        Some(c) if c.served => None,
        Some(_) => Some(format!(
            "the CRD of {kind} ({group}) marks `{version}` `served: false`; it serves {}",
            served.join(", ")
        )),
        None => Some(format!(
            "the CRD of {kind} ({group}) has no version `{version}`; it serves {}",
            served.join(", ")
        )),
    }
}

/// A finding at the object's `apiVersion` value, when there is a message.
fn at_api_version(
    r: &Resource<'_>,
    rule: &'static str,
    label: &str,
    message: Option<String>,
    help: &str,
    out: &mut Vec<Finding>,
) {
    if let (Some(message), Some(at)) = (message, r.root.get("apiVersion")) {
        out.push(Finding::new(rule, Label::new(r.file, at.span, label), message).help(help));
    }
}

impl Rule for ApiRemoved {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Documents)
    }

    fn check_object(&self, ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        let Some(Resolved {
            catalog,
            release,
            local,
            lookup,
        }) = resolve(ctx, r)
        else {
            return;
        };
        let message = match lookup {
            Lookup::Crd(c, _) if !c.served => crd_unserved(catalog, local, r),
            Lookup::Unserved => {
                crd_unserved(catalog, local, r).or_else(|| kube_unserved(catalog, release, r))
            }
            _ => None,
        };
        at_api_version(
            r,
            Self::META.id,
            "not served",
            message,
            "Move the object to the apiVersion the cluster serves, converting the fields that changed.",
            out,
        );
    }
}

impl Rule for ApiDeprecated {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Documents)
    }

    fn check_object(&self, ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        let Some(Resolved {
            catalog,
            release,
            lookup,
            ..
        }) = resolve(ctx, r)
        else {
            return;
        };
        let message = match lookup {
            Lookup::Crd(c, _) if c.served && c.deprecated => Some(match &c.deprecation_warning {
                Some(w) => format!("the CRD of {} deprecates `{}`: {w}", r.kind, r.api_version),
                None => format!("the CRD of {} deprecates `{}`", r.kind, r.api_version),
            }),
            Lookup::Kube(_) => {
                let here = minor(&release.version);
                catalog
                    .kubernetes
                    .iter()
                    .filter(|k| minor(&k.version) > here)
                    .find(|k| catalog.kube_kind(k, r.api_version, r.kind).is_none())
                    .map(|gone| {
                        let rep = replacement(catalog, r);
                        format!(
                            "`{}` {} is removed in Kubernetes {} (the cluster runs {}){}",
                            r.api_version,
                            r.kind,
                            gone.version,
                            release.version,
                            use_instead(rep.as_deref())
                        )
                    })
            }
            _ => None,
        };
        at_api_version(
            r,
            Self::META.id,
            "deprecated",
            message,
            "Move to the replacement before the cluster is upgraded.",
            out,
        );
    }
}
