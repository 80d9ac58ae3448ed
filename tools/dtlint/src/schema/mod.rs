//! The schema catalog: every object's exact schema, offline.
//!
//! `cargo xtask schemas` converts the vendored sources under
//! `tools/dtlint/schemas/` (the Kubernetes OpenAPI definitions of each
//! supported minor release and the CustomResourceDefinitions of Flux and
//! every platform component) into one compact catalog, committed as
//! `tools/dtlint/schemas/catalog.json.gz` and embedded in the binary. The
//! catalog is read once, on the first object that needs it.
//!
//! Every schema is a [`Node`] in one arena. Identical nodes are stored once,
//! so the seven Kubernetes releases cost little more than one. A Kubernetes
//! definition refers to another by name ([`Ref::Def`]), resolved through
//! the release being validated against; a CRD's schema is inline.
//!
//! [`validate`] walks a parsed object beside its schema and reports each
//! problem at the key or value to edit.

pub mod build;
pub mod cel;
pub mod files;
pub mod generate;
mod scalar;
pub mod validate;

use std::collections::BTreeMap;
use std::io::Read as _;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// Bumped whenever the catalog's shape changes.
pub const FORMAT: u32 = 1;

/// The committed catalog, compressed.
static CATALOG_GZ: &[u8] = include_bytes!("../../schemas/catalog.json.gz");

/// Largest catalog accepted when decompressing (the real one is a few MB).
const MAX_CATALOG: u64 = 64 << 20;

/// JSON types a node admits, as bits.
pub mod types {
    pub const OBJECT: u8 = 1;
    pub const ARRAY: u8 = 2;
    pub const STRING: u8 = 4;
    pub const INTEGER: u8 = 8;
    pub const NUMBER: u8 = 16;
    pub const BOOLEAN: u8 = 32;
}

/// Kubernetes extensions that change how a node validates, as bits.
pub mod flags {
    /// `x-kubernetes-int-or-string`: an integer or a string.
    pub const INT_OR_STRING: u8 = 1;
    /// `x-kubernetes-preserve-unknown-fields`: any field is kept.
    pub const PRESERVE_UNKNOWN: u8 = 2;
    /// `x-kubernetes-embedded-resource`: an object with its own
    /// `apiVersion`, `kind` and `metadata`.
    pub const EMBEDDED: u8 = 4;
    /// A `resource.Quantity` (`500m`, `1Gi`).
    pub const QUANTITY: u8 = 8;
}

/// A reference to a schema: a node of the arena, or a Kubernetes definition
/// by name id (resolved per release).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ref {
    Node(u32),
    Def(u32),
}

// Stored as one integer: a node index, or `-(name id + 1)`.
impl Serialize for Ref {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Ref::Node(n) => s.serialize_i64(i64::from(n)),
            Ref::Def(d) => s.serialize_i64(-i64::from(d) - 1),
        }
    }
}

impl<'de> Deserialize<'de> for Ref {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        let out = if v >= 0 {
            u32::try_from(v).map(Ref::Node)
        } else {
            u32::try_from(-(v + 1)).map(Ref::Def)
        };
        out.map_err(serde::de::Error::custom)
    }
}

/// What to do with a mapping key the schema does not name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Additional {
    /// Any key, any value.
    #[default]
    #[serde(rename = "o")]
    Open,
    /// An unknown field: the API server rejects it (strict field
    /// validation) or drops it.
    #[serde(rename = "d")]
    Deny,
    /// Any key, each value valid against the schema.
    #[serde(rename = "s")]
    Schema(Ref),
}

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// One schema. Field names are short: the catalog holds tens of thousands.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Node {
    /// Admitted JSON types ([`types`]); 0 admits any.
    #[serde(rename = "t", default, skip_serializing_if = "is_zero")]
    pub types: u8,
    /// Named properties, sorted by name.
    #[serde(rename = "p", default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<(String, Ref)>,
    #[serde(rename = "a", default, skip_serializing_if = "is_zero")]
    pub additional: Additional,
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Ref>,
    #[serde(rename = "r", default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<String>,
    #[serde(rename = "e", default, skip_serializing_if = "Vec::is_empty")]
    pub enumeration: Vec<serde_json::Value>,
    #[serde(rename = "pt", default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// [`flags`].
    #[serde(rename = "x", default, skip_serializing_if = "is_zero")]
    pub flags: u8,
    #[serde(rename = "any", default, skip_serializing_if = "Vec::is_empty")]
    pub any_of: Vec<Ref>,
    #[serde(rename = "one", default, skip_serializing_if = "Vec::is_empty")]
    pub one_of: Vec<Ref>,
    #[serde(rename = "all", default, skip_serializing_if = "Vec::is_empty")]
    pub all_of: Vec<Ref>,
    #[serde(rename = "min", default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    #[serde(rename = "max", default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    /// `exclusiveMinimum`/`exclusiveMaximum` (draft 4 booleans), as bits 1 and 2.
    #[serde(rename = "xm", default, skip_serializing_if = "is_zero")]
    pub exclusive: u8,
    #[serde(rename = "minL", default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u64>,
    #[serde(rename = "maxL", default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    #[serde(rename = "minI", default, skip_serializing_if = "Option::is_none")]
    pub min_items: Option<u64>,
    #[serde(rename = "maxI", default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u64>,
    /// `x-kubernetes-validations`: CEL rules on this node's value.
    #[serde(rename = "cel", default, skip_serializing_if = "Vec::is_empty")]
    pub cel: Vec<CelRule>,
    /// The compiled [`Node::pattern`], on first use (`None`: it does not
    /// compile with the `regex` crate and is not checked).
    #[serde(skip)]
    pub compiled: OnceLock<Option<regex::Regex>>,
}

impl Node {
    /// The schema of property `name`, by binary search.
    pub fn property(&self, name: &str) -> Option<Ref> {
        self.properties
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()
            .map(|i| self.properties[i].1)
    }

    pub fn pattern_regex(&self) -> Option<&regex::Regex> {
        let p = self.pattern.as_deref()?;
        self.compiled
            .get_or_init(|| regex::RegexBuilder::new(p).size_limit(1 << 20).build().ok())
            .as_ref()
    }
}

/// One `x-kubernetes-validations` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CelRule {
    #[serde(rename = "r")]
    pub rule: String,
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One Kubernetes minor release.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct KubeRelease {
    /// `"1.33"`.
    pub version: String,
    /// The node of each definition, by name id (`u32::MAX`: absent).
    pub defs: Vec<u32>,
    /// `(apiVersion, kind, definition name id)` of every kind it serves,
    /// sorted.
    pub kinds: Vec<(String, String, u32)>,
}

/// One served (or unserved) version of a CustomResourceDefinition.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CrdVersion {
    pub group: String,
    pub kind: String,
    pub version: String,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub served: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deprecated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecation_warning: Option<String>,
    /// The root schema ([`Catalog::nodes`] or a workspace's own arena).
    pub root: u32,
    /// Index into [`Catalog::sources`].
    pub source: u32,
}

fn yes() -> bool {
    true
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
fn is_true(b: &bool) -> bool {
    *b
}

/// Where a part of the catalog came from, for `dtlint schemas list`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SourceInfo {
    /// `kubernetes`, `flux`, `cert-manager`, …
    pub project: String,
    /// The upstream release, e.g. `v1.19.1`.
    pub release: String,
}

/// An API version Kubernetes stopped serving before the oldest release in
/// the catalog (the ones in between the catalog knows itself).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RemovedApi {
    pub api_version: String,
    pub kind: String,
    /// The minor release that removed it, e.g. `"1.25"`.
    pub removed: String,
    /// The minor release that deprecated it.
    pub deprecated: String,
    /// What to use instead (`apiVersion`), if anything.
    #[serde(default)]
    pub replacement: Option<String>,
}

/// The whole catalog.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Catalog {
    pub format: u32,
    pub nodes: Vec<Node>,
    /// Kubernetes definition names, by id.
    pub names: Vec<String>,
    /// Oldest first.
    pub kubernetes: Vec<KubeRelease>,
    pub crds: Vec<CrdVersion>,
    pub sources: Vec<SourceInfo>,
    pub removed: Vec<RemovedApi>,
    /// The name id of `ObjectMeta`, found once when loading.
    #[serde(skip)]
    pub object_meta: Option<u32>,
    /// Every API group a release serves or served (the removed table's
    /// too), found once when loading: asked for every unknown object.
    #[serde(skip)]
    pub kube_groups: std::collections::HashSet<String>,
}

/// Why the embedded catalog could not be read (a build defect, not user input).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the schema catalog does not decompress: {0}")]
    Decompress(std::io::Error),
    #[error("the schema catalog is larger than {MAX_CATALOG} bytes")]
    TooLarge,
    #[error("the schema catalog does not parse: {0}")]
    Parse(serde_json::Error),
    #[error("the schema catalog has format {found}, this dtlint reads {FORMAT}")]
    Format { found: u32 },
}

impl Catalog {
    /// Decompress and parse a catalog (`catalog.json.gz`).
    pub fn from_gz(bytes: &[u8]) -> Result<Self, LoadError> {
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(MAX_CATALOG + 1)
            .read_to_end(&mut text)
            .map_err(LoadError::Decompress)?;
        if text.len() as u64 > MAX_CATALOG {
            return Err(LoadError::TooLarge);
        }
        let c: Catalog = serde_json::from_slice(&text).map_err(LoadError::Parse)?;
        if c.format != FORMAT {
            return Err(LoadError::Format { found: c.format });
        }
        let mut c = c;
        c.kube_groups = c
            .kubernetes
            .iter()
            .flat_map(|r| r.kinds.iter().map(|(a, _, _)| a.as_str()))
            .chain(c.removed.iter().map(|a| a.api_version.as_str()))
            .map(|a| a.rsplit_once('/').map_or("", |(g, _)| g).to_string())
            .collect();
        c.object_meta = c
            .names
            .iter()
            .position(|n| n == build::OBJECT_META_DEF)
            .map(|i| i as u32);
        Ok(c)
    }

    /// The catalog built into dtlint, read on first use.
    pub fn embedded() -> Result<&'static Catalog, &'static LoadError> {
        static CATALOG: OnceLock<Result<Catalog, LoadError>> = OnceLock::new();
        CATALOG
            .get_or_init(|| Catalog::from_gz(CATALOG_GZ))
            .as_ref()
    }

    /// The release `version` (`"1.33"`), if the catalog has it.
    pub fn release(&self, version: &str) -> Option<&KubeRelease> {
        self.kubernetes.iter().find(|r| r.version == version)
    }

    /// The newest release: what dtlint validates against unless
    /// `kubernetes-version` says otherwise.
    pub fn newest(&self) -> Option<&KubeRelease> {
        self.kubernetes.last()
    }

    /// The definition node of `apiVersion`/`kind` in `release`.
    pub fn kube_kind(&self, release: &KubeRelease, api_version: &str, kind: &str) -> Option<u32> {
        let i = release
            .kinds
            .binary_search_by(|(a, k, _)| (a.as_str(), k.as_str()).cmp(&(api_version, kind)))
            .ok()?;
        release.node_of(release.kinds[i].2)
    }

    /// The CRD versions of `group`/`kind`.
    pub fn crd_versions<'s>(
        &'s self,
        group: &'s str,
        kind: &'s str,
    ) -> impl Iterator<Item = &'s CrdVersion> + 's {
        self.crds
            .iter()
            .filter(move |c| c.group == group && c.kind == kind)
    }

    /// The releases (oldest first) that serve `apiVersion`/`kind`.
    pub fn releases_serving<'s>(
        &'s self,
        api_version: &'s str,
        kind: &'s str,
    ) -> impl Iterator<Item = &'s KubeRelease> + 's {
        self.kubernetes
            .iter()
            .filter(move |r| self.kube_kind(r, api_version, kind).is_some())
    }

    /// Every kind of `group` anyone describes: the releases' kinds, the
    /// removed ones and the CRDs'.
    pub fn kinds_of_group<'s>(&'s self, group: &'s str) -> Vec<&'s str> {
        let g = |a: &str| a.rsplit_once('/').map_or("", |(g, _)| g).to_string();
        let mut out: Vec<&str> = self
            .kubernetes
            .iter()
            .flat_map(|r| r.kinds.iter())
            .filter(|(a, _, _)| g(a) == group)
            .map(|(_, k, _)| k.as_str())
            .chain(
                self.removed
                    .iter()
                    .filter(|a| g(&a.api_version) == group)
                    .map(|a| a.kind.as_str()),
            )
            .chain(
                self.crds
                    .iter()
                    .filter(|c| c.group == group)
                    .map(|c| c.kind.as_str()),
            )
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Is `group` served by Kubernetes itself (in any release, or before
    /// the oldest)?
    pub fn is_kube_group(&self, group: &str) -> bool {
        self.kube_groups.contains(group)
    }

    /// Kinds per source, for `dtlint schemas list`: (project, release,
    /// `group/version: kinds`).
    pub fn summary(&self) -> BTreeMap<(String, String), BTreeMap<String, Vec<String>>> {
        let mut out: BTreeMap<(String, String), BTreeMap<String, Vec<String>>> = BTreeMap::new();
        for c in &self.crds {
            let s = &self.sources[c.source as usize];
            let gv = format!("{}/{}", c.group, c.version);
            let kinds = out
                .entry((s.project.clone(), s.release.clone()))
                .or_default()
                .entry(gv)
                .or_default();
            if !kinds.contains(&c.kind) {
                kinds.push(c.kind.clone());
            }
        }
        out
    }
}

impl KubeRelease {
    /// The node of definition `name` in this release.
    pub fn node_of(&self, name: u32) -> Option<u32> {
        self.defs
            .get(name as usize)
            .copied()
            .filter(|&n| n != u32::MAX)
    }
}

/// `dtlint schemas list`: what the embedded catalog holds, as text or JSON.
pub fn listing(json: bool) -> Result<String, String> {
    let c = Catalog::embedded().map_err(ToString::to_string)?;
    let releases: Vec<&str> = c.kubernetes.iter().map(|r| r.version.as_str()).collect();
    let newest = c.newest().map_or("", |r| r.version.as_str());
    if json {
        let crds: Vec<serde_json::Value> = c
            .crds
            .iter()
            .map(|v| {
                let s = &c.sources[v.source as usize];
                serde_json::json!({
                    "project": s.project,
                    "release": s.release,
                    "apiVersion": format!("{}/{}", v.group, v.version),
                    "kind": v.kind,
                    "served": v.served,
                    "deprecated": v.deprecated,
                })
            })
            .collect();
        let kinds: serde_json::Map<String, serde_json::Value> = c
            .kubernetes
            .iter()
            .map(|r| (r.version.clone(), serde_json::json!(r.kinds.len())))
            .collect();
        let out = serde_json::json!({
            "kubernetes": {"releases": releases, "default": newest, "kinds": kinds},
            "crds": crds,
            "removedBefore": c.removed.iter().map(|a| serde_json::json!({
                "apiVersion": a.api_version, "kind": a.kind, "removed": a.removed,
                "replacement": a.replacement,
            })).collect::<Vec<_>>(),
        });
        return serde_json::to_string_pretty(&out).map_err(|e| e.to_string());
    }
    let mut s = format!(
        "Kubernetes {} (default {newest}; `kubernetes-version` in dtlint.toml picks another)\n",
        releases.join(", ")
    );
    for r in &c.kubernetes {
        let _ = std::fmt::Write::write_fmt(
            &mut s,
            format_args!("  {}: {} kinds\n", r.version, r.kinds.len()),
        );
    }
    let _ = std::fmt::Write::write_fmt(
        &mut s,
        format_args!(
            "  and {} API versions removed before {}\n",
            c.removed.len(),
            releases.first().unwrap_or(&"")
        ),
    );
    for ((project, release), groups) in c.summary() {
        let _ = std::fmt::Write::write_fmt(&mut s, format_args!("{project} {release}\n"));
        for (gv, kinds) in groups {
            let _ =
                std::fmt::Write::write_fmt(&mut s, format_args!("  {gv}: {}\n", kinds.join(", ")));
        }
    }
    s.push_str(
        "CustomResourceDefinitions in the repository are read at each run and take precedence.\n",
    );
    Ok(s)
}
