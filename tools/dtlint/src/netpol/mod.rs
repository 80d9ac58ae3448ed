//! NetworkPolicy semantics: the traffic the policies of an index actually
//! allow, as a graph between services.
//!
//! The rules `missing-default-deny`, `workload-not-isolated` and
//! `traffic-matrix` and the `dtlint graph` command read the index through
//! this module, so "which pods does this policy isolate" and "which ports
//! may A open to B" are answered once, with Kubernetes' semantics:
//!
//! - a pod is isolated for a direction only when some policy selecting it
//!   has that direction in `policyTypes`; without `policyTypes`, Ingress is
//!   always implied and Egress when the policy has egress rules;
//! - an empty `podSelector` selects every pod of the policy's namespace;
//! - a peer with only a `podSelector` is in the policy's namespace; a
//!   `namespaceSelector` matches namespaces by their labels, among them
//!   `kubernetes.io/metadata.name` (`{}` matches every namespace);
//! - a rule without `from`/`to` admits every peer, one without `ports`
//!   every port; `protocol` defaults to TCP; `endPort` makes a range; a
//!   named port is resolved against the container ports of the pod that
//!   receives the traffic;
//! - A may reach B on a port only when A's egress AND B's ingress allow it.
//!
//! A service is the set of pods that share an `app.kubernetes.io/name`.
//! Pods in namespaces dtlint does not see are named after the selectors
//! that admit them (`monitoring/prometheus`, `linkerd/*`); `ipBlock` peers
//! and rules without peers stand for `outside`.

use dtlint_yaml::{Entry, Node, Scalar, Span, Style, Value};

pub use crate::config::network::{AllowEdge, NetworkConfig};
pub use crate::model::namespaces::{NamespaceSetter, Namespaces, kustomize_namespaces};
use crate::model::{Resource, Selector};
pub use crate::ports::{Port, PortSpec, Proto};

pub mod addresses;
mod candidates;
mod graph;
mod matrix;
pub mod mesh;
#[cfg(test)]
mod tests;

use crate::source::FileId;
pub use graph::{Edges, Net, port_list, scopes, types_text};
pub use matrix::{Matrix, matrices, nets};

/// The peer that stands for everything outside the cluster's known pods.
pub const OUTSIDE: &str = "outside";

/// The label that names a service.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";

/// The label every namespace carries with its own name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A transport protocol of a NetworkPolicy port.
/// Which way traffic flows relative to the selected pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn key(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }

    fn peers_key(self) -> &'static str {
        match self {
            Direction::Ingress => "from",
            Direction::Egress => "to",
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            Direction::Ingress => "Ingress",
            Direction::Egress => "Egress",
        }
    }
}

/// Where a piece of allowed traffic comes from in a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub file: FileId,
    /// `Kind/name` of the policy.
    pub policy: String,
    /// The rule (an item of `ingress`/`egress`).
    pub rule: Span,
    /// The `from`/`to` item that admits the peer; `None` when the rule has no peers.
    pub peer: Option<Span>,
    /// The `ports` item; `None` when the rule has no ports.
    pub port: Option<Span>,
}

impl Via {
    /// The most precise node to blame, and what it did.
    pub fn blame(&self) -> (Span, &'static str) {
        match (self.port, self.peer) {
            (Some(p), _) => (p, "this port admits it"),
            (None, Some(p)) => (p, "this peer is admitted on every port"),
            (None, None) => (self.rule, "this rule admits every peer on every port"),
        }
    }
}

/// Ports `from` may open on `to`, with the policy items that allow them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub port: PortSpec,
    /// The ingress rule of the receiving pods; `None` when they are not
    /// isolated for ingress (or are not ours to see).
    pub ingress: Option<Via>,
    /// The egress rule of the sending pods; `None` likewise.
    pub egress: Option<Via>,
}

/// A pod template (or an operator's pods) with everything the graph needs.
#[derive(Debug, Clone)]
pub struct Pod<'i, 'a> {
    pub owner: &'i Resource<'a>,
    pub labels: Option<&'i Node>,
    pub added: &'i [String],
    pub namespace: String,
    /// The graph node: the `app.kubernetes.io/name` label (or the owner's
    /// name), prefixed with the namespace outside the primary one.
    pub node: String,
    /// Does it run a Linkerd proxy (see [`mesh`])?
    pub meshed: bool,
}

/// A NetworkPolicy, read once.
#[derive(Debug, Clone)]
pub struct Policy<'i, 'a> {
    pub r: &'i Resource<'a>,
    pub namespace: String,
    pub pod_selector: Option<&'i Node>,
    pub ingress_type: bool,
    pub egress_type: bool,
}

impl<'i> Policy<'i, '_> {
    pub fn rules(&self, dir: Direction) -> std::slice::Iter<'i, Node> {
        let spec: Option<&'i Node> = self.r.spec();
        match spec.and_then(|s| s.get(dir.key())) {
            Some(n) => n.items(),
            None => [].iter(),
        }
    }

    pub fn isolates(&self, dir: Direction) -> bool {
        match dir {
            Direction::Ingress => self.ingress_type,
            Direction::Egress => self.egress_type,
        }
    }

    /// `podSelector: {}` (or none): every pod of the namespace.
    pub fn selects_all(&self) -> bool {
        self.pod_selector.is_none_or(|n| {
            Selector {
                node: n,
                structured: true,
            }
            .is_empty()
        })
    }

    /// A default-deny policy: every pod, both directions, no rules.
    pub fn is_default_deny(&self) -> bool {
        self.selects_all()
            && self.ingress_type
            && self.egress_type
            && self.rules(Direction::Ingress).len() == 0
            && self.rules(Direction::Egress).len() == 0
    }

    /// An allow policy: it names the pods it is for and opens something.
    pub fn is_allow(&self) -> bool {
        !self.selects_all()
            && (self.rules(Direction::Ingress).len() > 0 || self.rules(Direction::Egress).len() > 0)
    }

    pub fn selects(&self, pod: &Pod<'_, '_>) -> bool {
        pod.namespace == self.namespace
            && compatible(self.r, pod.owner)
            && self.pod_selector.is_none_or(|n| {
                Selector {
                    node: n,
                    structured: true,
                }
                .matches_with(pod.labels, pod.added)
            })
    }

    /// Where to point for "this policy's `ingress`/`egress` lacks something".
    pub fn section_span(&self, dir: Direction) -> Span {
        self.r
            .spec()
            .and_then(|s| s.entry(dir.key()))
            .map(|e| e.key.span)
            .or_else(|| self.r.root.entry("spec").map(|e| e.key.span))
            .unwrap_or_else(|| self.r.anchor_span())
    }
}

/// Objects of two environments never meet; objects outside any environment
/// (bases) belong to all.
pub fn compatible(a: &Resource<'_>, b: &Resource<'_>) -> bool {
    match (a.env, b.env) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

/// A synthetic label map, for namespaces.
fn label_map(pairs: &[(String, String)]) -> Node {
    let span = Span::default();
    let scalar = |t: &str| Node {
        span,
        value: Value::Scalar(Scalar {
            text: t.to_string().into(),
            style: Style::Plain,
            tag: None,
        }),
    };
    Node {
        span,
        value: Value::Mapping(
            pairs
                .iter()
                .map(|(k, v)| Entry {
                    key: scalar(k),
                    value: scalar(v),
                })
                .collect(),
        ),
    }
}

/// Where traffic goes to or comes from, seen from a pod.
#[derive(Debug, Clone, Copy)]
pub enum Peer<'p, 'i, 'a> {
    Pod(&'p Pod<'i, 'a>),
    /// Pods of namespaces dtlint does not see, by name.
    External(&'p str),
    Outside,
}
