//! Rules about Flux objects (`*.toolkit.fluxcd.io`): Kustomizations,
//! HelmReleases and their sources.

use dtlint_yaml::{Node, Span};

use crate::model::{Index, Resource};
use crate::netpol::Namespaces;

pub mod flux_address_unchecked;
pub mod flux_applied_twice;
pub mod flux_decryption_missing;
pub mod flux_dependency_cycle;
pub mod flux_health_unchecked;
pub mod flux_interval_format;
pub mod flux_kustomization_cycle;
pub mod flux_namespace_missing;
pub mod flux_path_missing;
pub mod flux_ref_unresolved;
pub mod flux_required_fields;
pub mod flux_substitute;
pub mod helm_chart_unpinned;

/// Complete Flux objects of one kind in one API group (`kustomize`, `helm`, `source`).
pub(crate) fn objects<'i, 'a>(
    idx: &'i Index<'a>,
    group: &'static str,
    kind: &'static str,
) -> impl Iterator<Item = &'i Resource<'a>> + 'i {
    idx.of_kind(kind)
        .filter(move |r| r.group() == format!("{group}.toolkit.fluxcd.io"))
}

/// Every complete Flux object.
pub(crate) fn all<'i, 'a>(idx: &'i Index<'a>) -> impl Iterator<Item = &'i Resource<'a>> + 'i {
    idx.objects().filter(|r| r.is_flux())
}

/// Where to point when a whole field is missing: `spec:`, else the kind.
pub(crate) fn spec_span(r: &Resource<'_>) -> Span {
    r.root
        .entry("spec")
        .map_or_else(|| r.anchor_span(), |e| e.key.span)
}

/// A reference to another Flux object: `{kind?, name, namespace?}`.
pub(crate) struct Ref<'n> {
    pub node: &'n Node,
    pub kind: Option<&'n str>,
    pub name: &'n str,
    pub namespace: Option<&'n str>,
}

impl<'n> Ref<'n> {
    pub fn read(node: &'n Node) -> Option<Self> {
        Some(Self {
            node,
            kind: node.get("kind").and_then(Node::as_str),
            name: node.get("name")?.as_str()?,
            namespace: node.get("namespace").and_then(Node::as_str),
        })
    }

    /// The `name` value, to point at.
    pub fn name_span(&self) -> Span {
        self.node.get("name").map_or(self.node.span, |n| n.span)
    }
}

/// The Flux object named by a reference from `from`: same namespace unless
/// the reference names one, and the same environment.
pub(crate) fn resolve<'i, 'a>(
    idx: &'i Index<'a>,
    namespaces: &Namespaces,
    from: &Resource<'_>,
    group: &str,
    kind: &str,
    r: &Ref<'_>,
) -> Option<&'i Resource<'a>> {
    let ns = r
        .namespace
        .map_or_else(|| namespaces.of(from), str::to_string);
    idx.objects().find(|o| {
        o.kind == kind
            && o.group() == group
            && o.name == r.name
            && namespaces.of(o) == ns
            && crate::netpol::compatible(o, from)
    })
}

/// The Flux Kustomization whose rendered build holds `r` (rendered mode:
/// the build the Kustomization's `spec.path` asked for).
pub(crate) fn applied_by<'i, 'a>(idx: &'i Index<'a>, r: &Resource<'_>) -> Option<&'i Resource<'a>> {
    let (file, span) = idx.rendered_of(r.file)?.target.requested_by?;
    objects(idx, "kustomize", "Kustomization").find(|k| {
        k.file == file
            && k.root.span.start.offset <= span.start.offset
            && span.end.offset <= k.root.span.end.offset
    })
}
