//! Rules that validate objects against their exact schema: the Kubernetes
//! release the cluster runs, Flux, and the CRDs the catalog or the
//! repository holds (see [`crate::schema`]).

use crate::model::Resource;
use crate::rules::Context;
use crate::schema::build::Builder;
use crate::schema::{Catalog, CrdVersion, KubeRelease, Node};
use crate::workspace::Role;

pub mod api_removed;
pub mod helm_values_invalid;
pub mod schema_invalid;
pub mod schema_kind_missing;
pub mod schema_unknown_kind;

/// The CRDs the repository holds itself, converted once per run. They take
/// precedence over the catalog's: they are what the cluster runs.
#[derive(Debug, Default)]
pub struct LocalSchemas {
    pub nodes: Vec<Node>,
    pub crds: Vec<CrdVersion>,
}

impl LocalSchemas {
    /// Every `apiextensions.k8s.io/v1` CustomResourceDefinition among the
    /// objects (a CRD that does not convert is left out: the schema rules
    /// judge the CRD itself against its own schema).
    pub fn collect(ctx: &Context<'_>) -> Self {
        let mut b = Builder::default();
        let mut crds = Vec::new();
        let in_repository = ctx
            .index
            .of_kind("CustomResourceDefinition")
            .filter(|r| r.api_version == "apiextensions.k8s.io/v1")
            .map(|r| r.root.to_json());
        let listed = ctx
            .index
            .ws
            .schema_files
            .iter()
            .flat_map(|f| f.crds.iter().cloned());
        for crd in in_repository.chain(listed) {
            if let Ok(versions) = b.add_crd(&crd, u32::MAX) {
                for v in versions {
                    if !crds.iter().any(|c: &CrdVersion| {
                        c.group == v.group && c.kind == v.kind && c.version == v.version
                    }) {
                        crds.push(v);
                    }
                }
            }
        }
        LocalSchemas {
            nodes: b.nodes,
            crds,
        }
    }
}

/// The catalog's release nearest to `wanted` (`"1.33"`): itself, else the
/// oldest or newest the catalog has.
pub fn release_for<'c>(catalog: &'c Catalog, wanted: Option<&str>) -> Option<&'c KubeRelease> {
    let minor = |v: &str| v.strip_prefix("1.").and_then(|m| m.parse::<u32>().ok());
    let Some(want) = wanted.and_then(minor) else {
        return catalog.newest();
    };
    catalog
        .kubernetes
        .iter()
        .min_by_key(|r| minor(&r.version).map_or(u32::MAX, |m| m.abs_diff(want)))
}

/// The schema an object's `apiVersion` and `kind` name.
pub enum Lookup<'c> {
    /// A Kubernetes kind the release serves: its definition node.
    Kube(u32),
    /// A CRD version, with the arena its root is in.
    Crd(&'c CrdVersion, &'c [Node]),
    /// The group is a Kubernetes group or a known CRD's, but not this
    /// version or kind.
    Unserved,
    /// No schema at all: a custom resource nobody described.
    Unknown,
}

/// The objects the schema rules judge: Kubernetes objects and patches of
/// them, not tool configuration and not `kind: List`.
pub fn judged(r: &Resource<'_>) -> bool {
    r.is_kubernetes_object()
        && matches!(
            r.role,
            Role::Resource | Role::Standalone | Role::Rendered | Role::Patch
        )
        && !(r.kind == "List" && r.api_version == "v1")
}

/// What `r` is validated against.
pub fn lookup<'c>(
    catalog: &'c Catalog,
    release: &'c KubeRelease,
    local: &'c LocalSchemas,
    r: &Resource<'_>,
) -> Lookup<'c> {
    let group = r.group();
    let version = r.api_version.rsplit('/').next().unwrap_or("");
    let matches = |c: &&CrdVersion| c.group == group && c.kind == r.kind && c.version == version;
    if let Some(c) = local.crds.iter().find(matches) {
        return Lookup::Crd(c, &local.nodes);
    }
    if let Some(n) = catalog.kube_kind(release, r.api_version, r.kind) {
        return Lookup::Kube(n);
    }
    if !local.crds.iter().any(|c| c.group == group)
        && let Some(c) = catalog.crds.iter().find(matches)
    {
        return Lookup::Crd(c, &catalog.nodes);
    }
    let known_group = local.crds.iter().any(|c| c.group == group)
        || catalog.crds.iter().any(|c| c.group == group)
        || catalog.is_kube_group(group)
        || catalog
            .removed
            .iter()
            .any(|a| crate::model::api_group(&a.api_version) == group);
    if known_group {
        Lookup::Unserved
    } else {
        Lookup::Unknown
    }
}

impl Context<'_> {
    /// The embedded catalog and the repository's own CRDs, read on first
    /// use; `None` when the catalog does not load (reported once by
    /// `schema-invalid`).
    pub(crate) fn schemas(&self) -> Option<(&'static Catalog, &LocalSchemas)> {
        let catalog = Catalog::embedded().ok()?;
        let local = self
            .local_schemas
            .get_or_init(|| LocalSchemas::collect(self));
        Some((catalog, local))
    }
}

/// What the per-object schema rules start from: the catalog, the release
/// the object's environment runs, the repository's CRDs and the object's
/// schema; `None` for an object they do not judge.
pub struct Resolved<'c> {
    pub catalog: &'static Catalog,
    pub release: &'static KubeRelease,
    pub local: &'c LocalSchemas,
    pub lookup: Lookup<'c>,
}

pub fn resolve<'c>(ctx: &'c Context<'_>, r: &Resource<'_>) -> Option<Resolved<'c>> {
    if !judged(r) {
        return None;
    }
    let (catalog, local) = ctx.schemas()?;
    let release = release_for(catalog, ctx.config.kubernetes_version_of(r.env))?;
    Some(Resolved {
        catalog,
        release,
        local,
        lookup: lookup(catalog, release, local, r),
    })
}

/// `"Deployment (apps/v1)"`.
pub(crate) fn describe(r: &Resource<'_>) -> String {
    format!("{} ({})", r.kind, r.api_version)
}
