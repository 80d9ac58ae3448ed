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

use std::collections::{BTreeMap, BTreeSet, HashMap};

use dtlint_yaml::{Entry, Node, Scalar, Span, Style, Value};

pub use crate::config::network::{AllowEdge, NetworkConfig};
pub use crate::model::namespaces::{NamespaceSetter, Namespaces, kustomize_namespaces};
use crate::model::{Index, Resource, Selector};
pub use crate::ports::{Port, PortSpec, Proto};
use crate::source::FileId;

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

/// The pods and policies of one environment (or of the bases alone), and
/// what they allow.
pub struct Net<'i, 'a> {
    pub env: Option<&'a str>,
    pub primary: String,
    pub pods: Vec<Pod<'i, 'a>>,
    pub policies: Vec<Policy<'i, 'a>>,
    namespace_labels: HashMap<String, Node>,
    /// Namespaces with pods dtlint sees.
    known: BTreeSet<String>,
}

/// Environments to build a graph for: each environment some pod or policy
/// belongs to, or none when everything is shared.
pub fn scopes<'a>(index: &Index<'a>) -> Vec<Option<&'a str>> {
    let envs: BTreeSet<&'a str> = index
        .pods()
        .map(|(r, _, _)| r.env)
        .chain(index.of_kind("NetworkPolicy").map(|r| r.env))
        .flatten()
        .collect();
    if envs.is_empty() {
        vec![None]
    } else {
        envs.into_iter().map(Some).collect()
    }
}

fn pinned_namespaces(sel: &Node) -> Option<Vec<String>> {
    if let Some(v) = sel
        .path(&["matchLabels", NAMESPACE_NAME_LABEL])
        .and_then(Node::as_str)
    {
        return Some(vec![v.to_string()]);
    }
    sel.get("matchExpressions")
        .into_iter()
        .flat_map(Node::items)
        .find(|e| {
            e.get("key").and_then(Node::as_str) == Some(NAMESPACE_NAME_LABEL)
                && e.get("operator").and_then(Node::as_str) == Some("In")
        })
        .map(|e| {
            e.get("values")
                .into_iter()
                .flat_map(Node::items)
                .filter_map(Node::as_str)
                .map(str::to_string)
                .collect()
        })
}

/// A short name for a selector: its `app.kubernetes.io/name`-like label,
/// `*` when it selects everything, else its labels.
fn describe_selector(sel: Option<&Node>) -> String {
    let Some(sel) = sel else {
        return "*".into();
    };
    let s = Selector {
        node: sel,
        structured: true,
    };
    if s.is_empty() {
        return "*".into();
    }
    for key in [NAME_LABEL, "k8s-app", "app", "name"] {
        if let Some(v) = sel.path(&["matchLabels", key]).and_then(Node::as_str) {
            return v.to_string();
        }
    }
    let labels: Vec<String> = s
        .match_labels()
        .iter()
        .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
        .collect();
    if labels.is_empty() {
        "{expression}".into()
    } else {
        format!("{{{}}}", labels.join(","))
    }
}

/// Every port of every protocol.
fn all_ports() -> Vec<PortSpec> {
    Proto::ALL.into_iter().map(PortSpec::all).collect()
}

impl<'i, 'a> Net<'i, 'a> {
    /// The pods and policies of `env` (objects outside any environment are
    /// in every one).
    pub fn build(
        index: &'i Index<'a>,
        namespaces: &Namespaces,
        primary: Option<&str>,
        env: Option<&'a str>,
    ) -> Self {
        let in_scope = |r: &Resource<'_>| env.is_none() || r.env.is_none() || r.env == env;
        let mut raw: Vec<(&'i Resource<'a>, Option<&'i Node>, &'i [String], String)> = index
            .pods()
            .filter(|(r, _, _)| in_scope(r))
            .map(|(r, l, a)| (r, l, a, namespaces.of(r)))
            .collect();
        raw.sort_by(|a, b| a.3.cmp(&b.3));
        let primary = primary.map_or_else(
            || {
                // The namespace with the most pods.
                let mut count: BTreeMap<&str, usize> = BTreeMap::new();
                for p in &raw {
                    *count.entry(p.3.as_str()).or_default() += 1;
                }
                count
                    .into_iter()
                    .max_by_key(|(_, n)| *n)
                    .map_or_else(|| "default".to_string(), |(ns, _)| ns.to_string())
            },
            str::to_string,
        );
        let pods: Vec<Pod<'i, 'a>> = raw
            .into_iter()
            .map(|(owner, labels, added, namespace)| {
                let app = labels
                    .and_then(|l| l.get(NAME_LABEL))
                    .and_then(Node::as_str)
                    .unwrap_or(owner.name);
                let node = if namespace == primary {
                    app.to_string()
                } else {
                    format!("{namespace}/{app}")
                };
                Pod {
                    owner,
                    labels,
                    added,
                    namespace,
                    node,
                }
            })
            .collect();
        let policies = index
            .of_kind("NetworkPolicy")
            .filter(|r| in_scope(r))
            .map(|r| {
                let spec = r.spec();
                let types: Option<Vec<&str>> = spec
                    .and_then(|s| s.get("policyTypes"))
                    .map(|t| t.items().filter_map(Node::as_str).collect());
                let has_egress = spec
                    .and_then(|s| s.get("egress"))
                    .is_some_and(|e| e.items().len() > 0);
                let (ingress_type, egress_type) = match types {
                    Some(t) if !t.is_empty() => (t.contains(&"Ingress"), t.contains(&"Egress")),
                    _ => (true, has_egress),
                };
                Policy {
                    r,
                    namespace: namespaces.of(r),
                    pod_selector: spec.and_then(|s| s.get("podSelector")),
                    ingress_type,
                    egress_type,
                }
            })
            .collect();
        let known: BTreeSet<String> = pods.iter().map(|p| p.namespace.clone()).collect();
        let mut namespace_labels = HashMap::new();
        let mut all_ns: BTreeSet<String> = known.clone();
        all_ns.insert(primary.clone());
        for ns in all_ns {
            let mut pairs = vec![(NAMESPACE_NAME_LABEL.to_string(), ns.clone())];
            if let Some(obj) = index
                .of_kind("Namespace")
                .find(|r| r.name == ns && in_scope(r))
            {
                for e in obj
                    .metadata()
                    .and_then(|m| m.get("labels"))
                    .into_iter()
                    .flat_map(Node::entries)
                {
                    if let (Some(k), Some(v)) = (e.key.as_str(), e.value.as_str())
                        && k != NAMESPACE_NAME_LABEL
                    {
                        pairs.push((k.to_string(), v.to_string()));
                    }
                }
            }
            namespace_labels.insert(ns, label_map(&pairs));
        }
        Self {
            env,
            primary,
            pods,
            policies,
            namespace_labels,
            known,
        }
    }

    /// Policies that select `pod` and isolate it for `dir`.
    pub fn isolating(&self, pod: &Pod<'_, '_>, dir: Direction) -> Vec<&Policy<'i, 'a>> {
        self.policies
            .iter()
            .filter(|p| p.isolates(dir) && p.selects(pod))
            .collect()
    }

    fn namespace_matches(&self, sel: &Node, ns: &str) -> bool {
        let labels = self.namespace_labels.get(ns);
        Selector {
            node: sel,
            structured: true,
        }
        .matches(labels)
    }

    /// Does a `from`/`to` item of a policy in `policy_ns` admit `pod`?
    pub fn peer_admits_pod(&self, peer: &Node, policy_ns: &str, pod: &Pod<'_, '_>) -> bool {
        if peer.get("ipBlock").is_some() {
            return false;
        }
        let pods = peer.get("podSelector");
        let ns_ok = match peer.get("namespaceSelector") {
            None if pods.is_none() => return false,
            None => pod.namespace == policy_ns,
            Some(sel) => self.namespace_matches(sel, &pod.namespace),
        };
        ns_ok
            && pods.is_none_or(|s| {
                Selector {
                    node: s,
                    structured: true,
                }
                .matches_with(pod.labels, pod.added)
            })
    }

    /// Names of the unseen pods a `from`/`to` item admits.
    pub fn external_names(&self, peer: &Node) -> Vec<String> {
        if peer.get("ipBlock").is_some() {
            return vec![OUTSIDE.to_string()];
        }
        let Some(ns_sel) = peer.get("namespaceSelector") else {
            return Vec::new();
        };
        let pods = describe_selector(peer.get("podSelector"));
        match pinned_namespaces(ns_sel) {
            Some(names) => names
                .into_iter()
                .filter(|n| !self.known.contains(n))
                .map(|n| format!("{n}/{pods}"))
                .collect(),
            None => vec![format!("{}/{pods}", describe_selector(Some(ns_sel)))],
        }
    }

    /// Every unseen peer any policy names.
    pub fn external_peers(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for p in &self.policies {
            for dir in [Direction::Ingress, Direction::Egress] {
                for rule in p.rules(dir) {
                    for peer in rule.get(dir.peers_key()).into_iter().flat_map(Node::items) {
                        out.extend(self.external_names(peer));
                    }
                }
            }
        }
        out.remove(OUTSIDE);
        out
    }

    /// The ports a rule's port item allows toward `target` (the receiving
    /// pod, when known).
    fn rule_ports(item: &Node, target: Option<&Pod<'_, '_>>) -> Option<PortSpec> {
        let proto = item
            .get("protocol")
            .and_then(Node::as_str)
            .map_or(Some(Proto::Tcp), Proto::parse)?;
        let Some(port) = item.get("port") else {
            return Some(PortSpec::all(proto));
        };
        if let Some(n) = port.as_i64() {
            let lo = u32::try_from(n).ok()?;
            let hi = item
                .get("endPort")
                .and_then(Node::as_i64)
                .and_then(|e| u32::try_from(e).ok())
                .filter(|&e| e >= lo)
                .unwrap_or(lo);
            return Some(PortSpec {
                proto,
                port: Port::Range(lo, hi),
            });
        }
        let name = port.as_str()?;
        let Some(target) = target else {
            return Some(PortSpec {
                proto,
                port: Port::Named(name.to_string()),
            });
        };
        // Resolved against the receiving pod's containers, protocol included.
        target.owner.containers().find_map(|c| {
            c.ports().find_map(|p| {
                let declared = p
                    .get("protocol")
                    .and_then(Node::as_str)
                    .map_or(Some(Proto::Tcp), Proto::parse)?;
                (p.get("name").and_then(Node::as_str) == Some(name) && declared == proto)
                    .then(|| p.get("containerPort").and_then(Node::as_i64))
                    .flatten()
                    .and_then(|n| u32::try_from(n).ok())
                    .map(|n| PortSpec::single(n, proto))
            })
        })
    }

    /// What the policies of `subject` allow in `dir` with `other`: `None`
    /// when `subject` is not isolated for `dir` (everything is allowed).
    pub fn allowed(
        &self,
        subject: &Pod<'_, '_>,
        dir: Direction,
        other: Peer<'_, '_, '_>,
    ) -> Option<Vec<(PortSpec, Via)>> {
        let policies = self.isolating(subject, dir);
        if policies.is_empty() {
            return None;
        }
        // The pod whose containers resolve named ports.
        let receiver = match (dir, other) {
            (Direction::Ingress, _) => Some(subject),
            (Direction::Egress, Peer::Pod(p)) => Some(p),
            (Direction::Egress, _) => None,
        };
        let mut out = Vec::new();
        for p in policies {
            for rule in p.rules(dir) {
                let peers: Vec<&Node> = rule
                    .get(dir.peers_key())
                    .into_iter()
                    .flat_map(Node::items)
                    .collect();
                let peer_span = if peers.is_empty() {
                    // A rule without peers admits everyone; unseen pods are
                    // then just part of `outside`, not a peer of their own.
                    if matches!(other, Peer::External(_)) {
                        continue;
                    }
                    None
                } else {
                    let hit = peers.iter().find(|peer| match other {
                        Peer::Pod(pod) => self.peer_admits_pod(peer, &p.namespace, pod),
                        Peer::External(name) => self.external_names(peer).iter().any(|n| n == name),
                        Peer::Outside => peer.get("ipBlock").is_some(),
                    });
                    match hit {
                        Some(h) => Some(h.span),
                        None => continue,
                    }
                };
                let via = |port: Option<Span>| Via {
                    file: p.r.file,
                    policy: p.r.id(),
                    rule: rule.span,
                    peer: peer_span,
                    port,
                };
                let items: Vec<&Node> = rule
                    .get("ports")
                    .into_iter()
                    .flat_map(Node::items)
                    .collect();
                if items.is_empty() {
                    out.extend(all_ports().into_iter().map(|ps| (ps, via(None))));
                }
                for item in items {
                    if let Some(ps) = Self::rule_ports(item, receiver) {
                        // Point at the port number (or name) itself.
                        out.push((
                            ps,
                            via(Some(item.get("port").map_or(item.span, |p| p.span))),
                        ));
                    }
                }
            }
        }
        Some(out)
    }

    /// The edges of the graph, by (from, to).
    pub fn edges(&self) -> BTreeMap<(String, String), Vec<Piece>> {
        let mut edges: BTreeMap<(String, String), Vec<Piece>> = BTreeMap::new();
        let mut add = |from: &str, to: &str, pieces: Vec<Piece>| {
            if pieces.is_empty() {
                return;
            }
            let slot = edges.entry((from.to_string(), to.to_string())).or_default();
            for p in pieces {
                if !slot.contains(&p) {
                    slot.push(p);
                }
            }
        };
        let external = self.external_peers();
        for a in &self.pods {
            for b in &self.pods {
                let eg = self.allowed(a, Direction::Egress, Peer::Pod(b));
                let ing = self.allowed(b, Direction::Ingress, Peer::Pod(a));
                add(&a.node, &b.node, combine(eg, ing));
            }
            // To unseen peers and outside: only our side's egress decides.
            for x in &external {
                if let Some(eg) = self.allowed(a, Direction::Egress, Peer::External(x)) {
                    add(&a.node, x, one_sided(eg, Direction::Egress));
                }
            }
            let eg = self.allowed(a, Direction::Egress, Peer::Outside);
            add(
                &a.node,
                OUTSIDE,
                eg.map_or_else(unrestricted, |eg| one_sided(eg, Direction::Egress)),
            );
            for x in &external {
                if let Some(ing) = self.allowed(a, Direction::Ingress, Peer::External(x)) {
                    add(x, &a.node, one_sided(ing, Direction::Ingress));
                }
            }
            let ing = self.allowed(a, Direction::Ingress, Peer::Outside);
            add(
                OUTSIDE,
                &a.node,
                ing.map_or_else(unrestricted, |ing| one_sided(ing, Direction::Ingress)),
            );
        }
        edges
    }

    /// Every node: services first, then unseen peers and `outside`.
    pub fn nodes(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut out: Vec<String> = self
            .pods
            .iter()
            .filter(|p| seen.insert(p.node.clone()))
            .map(|p| p.node.clone())
            .collect();
        out.sort();
        out.extend(self.external_peers());
        out.push(OUTSIDE.to_string());
        out
    }

    /// The pods of a node.
    pub fn pods_of<'s>(&'s self, node: &'s str) -> impl Iterator<Item = &'s Pod<'i, 'a>> + 's {
        self.pods.iter().filter(move |p| p.node == node)
    }
}

fn unrestricted() -> Vec<Piece> {
    all_ports()
        .into_iter()
        .map(|port| Piece {
            port,
            ingress: None,
            egress: None,
        })
        .collect()
}

fn one_sided(allowed: Vec<(PortSpec, Via)>, dir: Direction) -> Vec<Piece> {
    allowed
        .into_iter()
        .map(|(port, via)| match dir {
            Direction::Ingress => Piece {
                port,
                ingress: Some(via),
                egress: None,
            },
            Direction::Egress => Piece {
                port,
                ingress: None,
                egress: Some(via),
            },
        })
        .collect()
}

/// The traffic both sides allow.
fn combine(
    egress: Option<Vec<(PortSpec, Via)>>,
    ingress: Option<Vec<(PortSpec, Via)>>,
) -> Vec<Piece> {
    match (egress, ingress) {
        (None, None) => unrestricted(),
        (Some(eg), None) => one_sided(eg, Direction::Egress),
        (None, Some(ing)) => one_sided(ing, Direction::Ingress),
        (Some(eg), Some(ing)) => {
            let mut out = Vec::new();
            for (ip, iv) in &ing {
                for (ep, ev) in &eg {
                    if let Some(port) = ip.intersect(ep) {
                        out.push(Piece {
                            port,
                            ingress: Some(iv.clone()),
                            egress: Some(ev.clone()),
                        });
                    }
                }
            }
            out
        }
    }
}

/// The distinct ports of some pieces, merged and sorted for display.
pub fn port_list(pieces: &[Piece]) -> Vec<PortSpec> {
    let mut specs: Vec<PortSpec> = pieces.iter().map(|p| p.port.clone()).collect();
    specs.sort();
    let mut out: Vec<PortSpec> = Vec::new();
    for s in specs {
        if let (Some(last), Port::Range(lo, hi)) = (out.last_mut(), &s.port)
            && last.proto == s.proto
            && let Port::Range(_, lhi) = &mut last.port
            && *lo <= lhi.saturating_add(1)
        {
            *lhi = (*lhi).max(*hi);
            continue;
        }
        out.push(s);
    }
    out
}

/// Which policy types a policy declares, for messages.
pub fn types_text(p: &Policy<'_, '_>) -> String {
    [Direction::Ingress, Direction::Egress]
        .into_iter()
        .filter(|d| p.isolates(*d))
        .map(Direction::type_name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One graph per environment, rendered for `dtlint graph`.
pub struct Matrix {
    pub env: Option<String>,
    pub namespace: String,
    pub nodes: Vec<String>,
    /// (from, to) → ports.
    pub cells: BTreeMap<(String, String), Vec<String>>,
}

/// The pods and policies of every environment (see [`scopes`]), with the
/// `[network]` namespace as the primary one.
pub fn nets<'a>(index: &'a Index<'a>, config: &crate::config::Config) -> Vec<Net<'a, 'a>> {
    let namespaces = Namespaces::new(index);
    let primary = config.network.as_ref().and_then(|n| n.namespace.as_deref());
    scopes(index)
        .into_iter()
        .map(|env| Net::build(index, &namespaces, primary, env))
        .collect()
}

/// The matrices of an index: one per environment.
pub fn matrices<'a>(index: &'a Index<'a>, config: &'a crate::config::Config) -> Vec<Matrix> {
    nets(index, config)
        .iter()
        .map(|net| {
            let cells = net
                .edges()
                .into_iter()
                .map(|(k, pieces)| {
                    (
                        k,
                        port_list(&pieces).iter().map(ToString::to_string).collect(),
                    )
                })
                .collect();
            Matrix {
                env: net.env.map(str::to_string),
                namespace: net.primary.clone(),
                nodes: net.nodes(),
                cells,
            }
        })
        .collect()
}

impl Matrix {
    /// A table: rows are sources, columns destinations, cells ports.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let env = self.env.as_deref().unwrap_or("all environments");
        let _ = writeln!(out, "# namespace {} ({env})", self.namespace);
        let froms: Vec<&String> = self
            .nodes
            .iter()
            .filter(|n| self.cells.keys().any(|(f, _)| f == *n))
            .collect();
        let tos: Vec<&String> = self
            .nodes
            .iter()
            .filter(|n| self.cells.keys().any(|(_, t)| t == *n))
            .collect();
        let cell = |f: &str, t: &str| {
            self.cells
                .get(&(f.to_string(), t.to_string()))
                .map_or_else(|| "-".to_string(), |p| p.join(" "))
        };
        let first = froms.iter().map(|f| f.len()).max().unwrap_or(4).max(11);
        let widths: Vec<usize> = tos
            .iter()
            .map(|t| {
                froms
                    .iter()
                    .map(|f| cell(f, t).len())
                    .max()
                    .unwrap_or(1)
                    .max(t.len())
            })
            .collect();
        let _ = write!(out, "{:<first$}", "from \\ to");
        for (t, w) in tos.iter().zip(&widths) {
            let _ = write!(out, " | {t:<w$}");
        }
        out.push('\n');
        for f in &froms {
            let _ = write!(out, "{f:<first$}");
            for (t, w) in tos.iter().zip(&widths) {
                let _ = write!(out, " | {:<w$}", cell(f, t));
            }
            out.push('\n');
        }
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "environment": self.env,
            "namespace": self.namespace,
            "nodes": self.nodes,
            "edges": self.cells.iter().map(|((f, t), p)| serde_json::json!({"from": f, "to": t, "ports": p})).collect::<Vec<_>>(),
        })
    }

    pub fn to_dot(&self) -> String {
        use std::fmt::Write;
        let name = self.env.as_deref().unwrap_or("all");
        let mut out = format!("digraph \"{}-{name}\" {{\n  rankdir=LR;\n", self.namespace);
        for n in &self.nodes {
            let shape = if n.contains('/') || n == OUTSIDE {
                "ellipse"
            } else {
                "box"
            };
            let _ = writeln!(out, "  \"{n}\" [shape={shape}];");
        }
        for ((f, t), p) in &self.cells {
            let _ = writeln!(out, "  \"{f}\" -> \"{t}\" [label=\"{}\"];", p.join("\\n"));
        }
        out.push_str("}\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::workspace::Workspace;

    fn ws(files: &[(&str, &str)]) -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let ws =
            Workspace::load(dir.path(), &[dir.path().to_path_buf()], &Config::defaults()).unwrap();
        (dir, ws)
    }

    fn deploy(name: &str, ports: &str) -> String {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: ns}}\nspec:\n  template:\n    metadata:\n      labels: {{app.kubernetes.io/name: {name}}}\n    spec:\n      containers:\n        - name: {name}\n          ports: {ports}\n"
        )
    }

    fn cells(files: &[(&str, &str)]) -> BTreeMap<(String, String), Vec<String>> {
        let (_d, ws) = ws(files);
        let index = Index::build(&ws);
        let mut config = Config::defaults();
        config.network = Some(NetworkConfig {
            namespace: Some("ns".into()),
            ..NetworkConfig::default()
        });
        matrices(&index, &config).remove(0).cells
    }

    fn cell(c: &BTreeMap<(String, String), Vec<String>>, f: &str, t: &str) -> Vec<String> {
        c.get(&(f.to_string(), t.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    const DENY: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: ns}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n";

    #[test]
    fn no_policy_allows_everything() {
        let a = deploy("a", "[]");
        let c = cells(&[("a.yaml", &a)]);
        assert_eq!(cell(&c, "a", "a"), ["*/TCP", "*/UDP", "*/SCTP"]);
        assert_eq!(cell(&c, "outside", "a"), ["*/TCP", "*/UDP", "*/SCTP"]);
    }

    #[test]
    fn an_edge_needs_both_egress_and_ingress() {
        let a = deploy("a", "[]");
        let b = deploy("b", "[{name: grpc, containerPort: 50051}]");
        // b admits a on its named port; a may not send yet.
        let ingress = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: b, namespace: ns}\nspec:\n  podSelector: {matchLabels: {app.kubernetes.io/name: b}}\n  ingress:\n    - from: [{podSelector: {matchLabels: {app.kubernetes.io/name: a}}}]\n      ports: [{port: grpc}]\n";
        let c = cells(&[
            ("a.yaml", &a),
            ("b.yaml", &b),
            ("deny.yaml", DENY),
            ("pb.yaml", ingress),
        ]);
        assert!(
            cell(&c, "a", "b").is_empty(),
            "the default-deny isolates a's egress"
        );
        assert!(cell(&c, "b", "outside").is_empty());
        let egress = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a, namespace: ns}\nspec:\n  podSelector: {matchLabels: {app.kubernetes.io/name: a}}\n  egress:\n    - to: [{podSelector: {}}]\n      ports: [{port: 50000, endPort: 50100}]\n";
        let c = cells(&[
            ("a.yaml", &a),
            ("b.yaml", &b),
            ("deny.yaml", DENY),
            ("pb.yaml", ingress),
            ("pa.yaml", egress),
        ]);
        assert_eq!(cell(&c, "a", "b"), ["50051/TCP"]);
        assert!(cell(&c, "b", "a").is_empty());
    }

    #[test]
    fn policy_types_default_from_the_rules() {
        let a = deploy("a", "[]");
        // No policyTypes, no egress: isolates ingress only, so egress stays open.
        let p = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a, namespace: ns}\nspec:\n  podSelector: {}\n  ingress:\n    - ports: [{port: 8080}]\n";
        let c = cells(&[("a.yaml", &a), ("p.yaml", p)]);
        assert_eq!(cell(&c, "a", "outside"), ["*/TCP", "*/UDP", "*/SCTP"]);
        assert_eq!(cell(&c, "outside", "a"), ["8080/TCP"]);
        assert_eq!(cell(&c, "a", "a"), ["8080/TCP"]);
        // With egress rules, Egress is implied.
        let p = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a, namespace: ns}\nspec:\n  podSelector: {}\n  egress:\n    - ports: [{port: 53, protocol: UDP}]\n";
        let c = cells(&[("a.yaml", &a), ("p.yaml", p)]);
        assert_eq!(cell(&c, "a", "outside"), ["53/UDP"]);
        assert!(
            cell(&c, "outside", "a").is_empty(),
            "Ingress is always implied"
        );
    }

    #[test]
    fn namespace_selectors_match_by_metadata_name() {
        let a = deploy("a", "[]");
        let pol = |peer: &str| {
            format!(
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: a, namespace: ns}}\nspec:\n  podSelector: {{}}\n  policyTypes: [Ingress, Egress]\n  ingress:\n    - from: [{peer}]\n      ports: [{{port: 9090}}]\n"
            )
        };
        // Another namespace, named: an unseen peer.
        let c = cells(&[
            ("a.yaml", &a),
            (
                "p.yaml",
                &pol(
                    "{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}, podSelector: {matchLabels: {app.kubernetes.io/name: prometheus}}}",
                ),
            ),
        ]);
        assert_eq!(cell(&c, "monitoring/prometheus", "a"), ["9090/TCP"]);
        assert!(cell(&c, "a", "a").is_empty());
        // Our own namespace by name: the pods of this namespace.
        let c = cells(&[
            ("a.yaml", &a),
            (
                "p.yaml",
                &pol("{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ns}}}"),
            ),
        ]);
        assert!(
            cell(&c, "a", "a").is_empty(),
            "egress is isolated with no rules"
        );
        assert_eq!(c.keys().filter(|(f, _)| f.contains('/')).count(), 0);
        // `{}`: every namespace, ours included, and every unseen one.
        let c = cells(&[("a.yaml", &a), ("p.yaml", &pol("{namespaceSelector: {}}"))]);
        assert_eq!(cell(&c, "*/*", "a"), ["9090/TCP"]);
        // ipBlock is outside.
        let c = cells(&[
            ("a.yaml", &a),
            ("p.yaml", &pol("{ipBlock: {cidr: 0.0.0.0/0}}")),
        ]);
        assert_eq!(cell(&c, "outside", "a"), ["9090/TCP"]);
    }

    #[test]
    fn named_ports_resolve_with_their_protocol() {
        let a = deploy("a", "[]");
        let b = deploy(
            "b",
            "[{name: quic, containerPort: 4433, protocol: UDP}, {name: web, containerPort: 8080}]",
        );
        let ing = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: b, namespace: ns}\nspec:\n  podSelector: {matchLabels: {app.kubernetes.io/name: b}}\n  ingress:\n    - ports: [{port: quic, protocol: UDP}, {port: web, protocol: UDP}, {port: web}]\n";
        let c = cells(&[("a.yaml", &a), ("b.yaml", &b), ("p.yaml", ing)]);
        assert_eq!(cell(&c, "a", "b"), ["8080/TCP", "4433/UDP"]);
    }

    #[test]
    fn port_set_arithmetic() {
        let all = PortSpec::all(Proto::Tcp);
        let one = PortSpec::parse("8080/TCP").unwrap();
        let left = all.minus(&[&one]);
        assert_eq!(
            left.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["1-8079/TCP", "8081-65535/TCP"]
        );
        assert!(one.minus(&[&all]).is_empty());
        assert_eq!(
            one.minus(&[&PortSpec::parse("8080/UDP").unwrap()]),
            std::slice::from_ref(&one)
        );
        assert_eq!(
            PortSpec::parse("8000-8010/udp").unwrap().to_string(),
            "8000-8010/UDP"
        );
        assert_eq!(PortSpec::parse("53").unwrap().to_string(), "53/TCP");
        assert!(PortSpec::parse("70000/TCP").is_err());
        assert!(PortSpec::parse("80/HTTP").is_err());
        assert!(PortSpec::parse("90-80").is_err());
        assert_eq!(
            PortSpec::parse("8000-8010").unwrap().intersect(&one),
            None,
            "disjoint"
        );
    }

    #[test]
    fn outer_kustomization_namespace_wins() {
        let (_d, ws) = ws(&[
            (
                "overlay/kustomization.yaml",
                "namespace: outer\nresources: [../base]\n",
            ),
            (
                "base/kustomization.yaml",
                "namespace: inner\nresources: [np.yaml]\n",
            ),
            ("base/np.yaml", DENY),
        ]);
        let map = kustomize_namespaces(&ws);
        let ns: Vec<&str> = map.values().map(|s| s.namespace.as_str()).collect();
        assert_eq!(ns, ["outer"]);
    }
}
