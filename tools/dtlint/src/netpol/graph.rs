//! The network graph of one environment: which pods each policy isolates,
//! and which ports one service may open on another.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use dtlint_yaml::{Node, Span};

use super::mesh::{self, Authz};
use super::{
    Direction, NAME_LABEL, NAMESPACE_NAME_LABEL, Namespaces, OUTSIDE, Peer, Piece, Pod, Policy,
    Port, PortSpec, Proto, Via, label_map,
};
use crate::model::{Index, Resource, Selector};

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
    /// Linkerd's policy objects.
    pub authz: Authz<'i, 'a>,
    /// The edges, computed once on first use (see [`Net::edges`]).
    edges: std::sync::OnceLock<Edges>,
    /// Per pod (index into `pods`): the policies isolating it, for egress
    /// and ingress; computed once on first use.
    pub(super) isolating: std::sync::OnceLock<Vec<[Vec<usize>; 2]>>,
    /// Pods by label pair, so a selector is matched against a few
    /// candidates instead of every pod.
    pub(super) by_label: std::sync::OnceLock<super::candidates::PodsByLabel>,
    /// Pod indices by graph node; computed on first use.
    pub(super) by_node: std::sync::OnceLock<HashMap<String, Vec<usize>>>,
}

/// The traffic the policies allow, by (from, to) node.
pub type Edges = BTreeMap<(String, String), Vec<Piece>>;

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
                let meshed = mesh::is_meshed(owner, mesh::namespace_inject(index, &namespace, env));
                Pod {
                    owner,
                    labels,
                    added,
                    namespace,
                    node,
                    meshed,
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
            if let Some(obj) = index.namespace_object(&ns, env) {
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
            authz: Authz::build(index, namespaces, in_scope),
            edges: std::sync::OnceLock::new(),
            isolating: std::sync::OnceLock::new(),
            by_label: std::sync::OnceLock::new(),
            by_node: std::sync::OnceLock::new(),
        }
    }

    pub(super) fn namespace_matches(&self, sel: &Node, ns: &str) -> bool {
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
                let peers = rule_peers(rule, dir);
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

    /// The edges of the graph, by (from, to): computed on first use and
    /// shared by every rule (and `dtlint graph`) that asks.
    pub fn edges(&self) -> &Edges {
        self.edges.get_or_init(|| self.compute_edges())
    }

    fn compute_edges(&self) -> Edges {
        let mut edges: Edges = BTreeMap::new();
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
        // Only pairs both sides may admit can have an edge: the others'
        // pieces are empty. Each side's admitted pods come from the label
        // index, so a repository of thousands of services is not judged
        // pair by pair.
        let egress: Vec<Option<Vec<usize>>> = self
            .pods
            .iter()
            .map(|a| self.admitted_pods(a, Direction::Egress))
            .collect();
        let ingress: Vec<Option<Vec<usize>>> = self
            .pods
            .iter()
            .map(|b| self.admitted_pods(b, Direction::Ingress))
            .collect();
        let all: Vec<usize> = (0..self.pods.len()).collect();
        for (i, a) in self.pods.iter().enumerate() {
            for &j in egress[i].as_deref().unwrap_or(&all) {
                if ingress[j]
                    .as_deref()
                    .is_some_and(|from| from.binary_search(&i).is_err())
                {
                    continue;
                }
                let b = &self.pods[j];
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

    /// The peers a node name stands for, seen from pods: its pods, an
    /// unseen peer, or `outside`.
    pub fn peers_named<'s>(&'s self, name: &'s str) -> Vec<Peer<'s, 'i, 'a>> {
        if name == OUTSIDE {
            return vec![Peer::Outside];
        }
        let pods: Vec<Peer<'s, 'i, 'a>> = self.pods_of(name).map(Peer::Pod).collect();
        if pods.is_empty() {
            vec![Peer::External(name)]
        } else {
            pods
        }
    }

    /// Does `subject`'s side (its egress or ingress) allow all of `ports`
    /// with `other`, for some pod of each?
    pub fn side_allows(
        &self,
        subject: &str,
        dir: Direction,
        other: &str,
        ports: &[PortSpec],
    ) -> bool {
        let others = self.peers_named(other);
        self.pods_of(subject).any(|s| {
            others.iter().any(|o| match self.allowed(s, dir, *o) {
                None => true,
                Some(allowed) => {
                    let have: Vec<&PortSpec> = allowed.iter().map(|(p, _)| p).collect();
                    ports.iter().all(|p| p.minus(&have).is_empty())
                }
            })
        })
    }

    /// Does any pod run a Linkerd proxy? Without one the mesh rules have
    /// nothing to judge, and need not compute the edges.
    pub fn has_meshed_pods(&self) -> bool {
        self.pods.iter().any(|p| p.meshed)
    }

    /// Does every pod of a node (and at least one) run a Linkerd proxy?
    pub fn meshed_node(&self, name: &str) -> bool {
        let mut pods = self.pods_of(name).peekable();
        pods.peek().is_some() && pods.all(|p| p.meshed)
    }

    /// The pods of a node.
    pub fn pods_of<'s>(&'s self, node: &'s str) -> impl Iterator<Item = &'s Pod<'i, 'a>> + 's {
        let by_node = self.by_node.get_or_init(|| {
            let mut map: HashMap<String, Vec<usize>> = HashMap::new();
            for (i, p) in self.pods.iter().enumerate() {
                map.entry(p.node.clone()).or_default().push(i);
            }
            map
        });
        by_node
            .get(node)
            .into_iter()
            .flatten()
            .map(|&i| &self.pods[i])
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

/// The `from` (ingress) or `to` (egress) items of a policy rule.
pub(super) fn rule_peers(rule: &Node, dir: Direction) -> Vec<&Node> {
    rule.get(dir.peers_key())
        .into_iter()
        .flat_map(Node::items)
        .collect()
}
