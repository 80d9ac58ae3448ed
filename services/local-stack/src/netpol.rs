//! NetworkPolicies as nftables rules between the pods of a local run
//! (`up --enforce-network-policies`).
//!
//! For every ordered pair of pods the allowed `(protocol, ports)` are
//! computed with Kubernetes semantics: a pod selected by a policy with
//! `Ingress` (`Egress`) in its types is isolated in that direction, and then
//! only what some selecting policy's rule allows passes; a flow must be
//! allowed at both ends. Peers: `podSelector` (the policy's namespace),
//! `namespaceSelector` (namespace labels, `kubernetes.io/metadata.name`
//! included) alone or with a `podSelector`, `ipBlock` with `except`. Ports:
//! numbers, names (resolved on the destination pod), `endPort`, the default
//! TCP. The rules go into the node namespace's forward hook, so they judge
//! pod-to-pod traffic after Service DNAT; traffic from the node itself
//! (probes, the e2e client) is not filtered, as Calico exempts the host's
//! traffic to its own pods. What cannot be expressed here is reported:
//! peers in namespaces where nothing runs (`kube-system`, `monitoring`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use serde_json::Value;

use crate::manifest::Object;

/// A pod as the policies see it.
#[derive(Debug, Clone)]
pub struct Peer {
    pub namespace: String,
    pub ip: Ipv4Addr,
    pub labels: BTreeMap<String, String>,
    /// Container ports: name, number, protocol.
    pub ports: Vec<(Option<String>, u16, String)>,
}

/// Allowed ports between two pods: everything, or these ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ports {
    All,
    Some(Vec<(String, u16, u16)>),
}

impl Ports {
    fn intersect(&self, other: &Ports) -> Ports {
        match (self, other) {
            (Ports::All, x) | (x, Ports::All) => x.clone(),
            (Ports::Some(a), Ports::Some(b)) => {
                let mut out = Vec::new();
                for (pa, la, ha) in a {
                    for (pb, lb, hb) in b {
                        let (lo, hi) = ((*la).max(*lb), (*ha).min(*hb));
                        if pa == pb && lo <= hi && !out.contains(&(pa.clone(), lo, hi)) {
                            out.push((pa.clone(), lo, hi));
                        }
                    }
                }
                Ports::Some(out)
            }
        }
    }

    fn union(&mut self, other: Ports) {
        match (&mut *self, other) {
            (Ports::All, _) => {}
            (_, Ports::All) => *self = Ports::All,
            (Ports::Some(a), Ports::Some(b)) => {
                for r in b {
                    if !a.contains(&r) {
                        a.push(r);
                    }
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Ports::Some(v) if v.is_empty())
    }
}

fn label_selector_matches(selector: Option<&Value>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    if let Some(ml) = selector.get("matchLabels").and_then(Value::as_object)
        && !ml
            .iter()
            .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
    {
        return false;
    }
    for e in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let have = labels.get(key).map(String::as_str);
        let ok = match e.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" => have.is_some_and(|h| values.contains(&h)),
            "NotIn" => have.is_none_or(|h| !values.contains(&h)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

fn in_cidr(ip: Ipv4Addr, cidr: &str) -> bool {
    let (net, bits) = cidr.split_once('/').unwrap_or((cidr, "32"));
    let (Ok(net), Ok(bits)) = (net.parse::<Ipv4Addr>(), bits.parse::<u32>()) else {
        return false;
    };
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits.min(32))
    };
    u32::from(ip) & mask == u32::from(net) & mask
}

/// Everything a run's policies need: the policies and namespace labels.
#[derive(Debug)]
pub struct Policies<'a> {
    policies: Vec<&'a Value>,
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
}

impl<'a> Policies<'a> {
    pub fn new(objects: &'a [Value]) -> Self {
        let mut namespaces: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut policies = Vec::new();
        for v in objects {
            let Some(o) = Object::new(v) else { continue };
            match o.kind() {
                "Namespace" => {
                    let mut labels: BTreeMap<String, String> = o
                        .labels()
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect();
                    labels.insert("kubernetes.io/metadata.name".into(), o.name().to_owned());
                    namespaces.insert(o.name().to_owned(), labels);
                }
                "NetworkPolicy" if o.api_version() == "networking.k8s.io/v1" => policies.push(v),
                _ => {}
            }
        }
        Self {
            policies,
            namespaces,
        }
    }

    fn namespace_labels(&self, ns: &str) -> BTreeMap<String, String> {
        self.namespaces.get(ns).cloned().unwrap_or_else(|| {
            BTreeMap::from([("kubernetes.io/metadata.name".to_owned(), ns.to_owned())])
        })
    }

    fn selecting(&self, pod: &Peer, direction: &str) -> Vec<&'a Value> {
        self.policies
            .iter()
            .copied()
            .filter(|p| {
                let ns = Object::new(p).map_or("default", |o| o.namespace("default"));
                // Without policyTypes: Ingress, and Egress when egress rules exist.
                let types: Vec<&str> = p
                    .pointer("/spec/policyTypes")
                    .and_then(Value::as_array)
                    .map_or_else(
                        || {
                            if p.pointer("/spec/egress").is_some() {
                                vec!["Ingress", "Egress"]
                            } else {
                                vec!["Ingress"]
                            }
                        },
                        |a| a.iter().filter_map(Value::as_str).collect(),
                    );
                ns == pod.namespace
                    && types.contains(&direction)
                    && label_selector_matches(p.pointer("/spec/podSelector"), &pod.labels)
            })
            .collect()
    }

    fn peer_matches(&self, peer: &Value, policy_ns: &str, other: &Peer) -> bool {
        if let Some(block) = peer.get("ipBlock") {
            let cidr = block.get("cidr").and_then(Value::as_str).unwrap_or("");
            let excepted = block
                .get("except")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .any(|c| in_cidr(other.ip, c));
            return in_cidr(other.ip, cidr) && !excepted;
        }
        let ns_ok = match peer.get("namespaceSelector") {
            Some(sel) => {
                label_selector_matches(Some(sel), &self.namespace_labels(&other.namespace))
            }
            None => other.namespace == policy_ns,
        };
        ns_ok && label_selector_matches(peer.get("podSelector"), &other.labels)
    }

    /// What `rule` (an ingress or egress rule) allows to `dest`'s ports.
    fn rule_ports(rule: &Value, dest: &Peer) -> Ports {
        let Some(ports) = rule.get("ports").and_then(Value::as_array) else {
            return Ports::All;
        };
        if ports.is_empty() {
            return Ports::All;
        }
        let mut out = Vec::new();
        for p in ports {
            let proto = p
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP")
                .to_owned();
            match p.get("port") {
                None => out.push((proto, 1, u16::MAX)),
                Some(Value::Number(n)) => {
                    let lo = u16::try_from(n.as_u64().unwrap_or(0)).unwrap_or(0);
                    let hi = p
                        .get("endPort")
                        .and_then(Value::as_u64)
                        .and_then(|e| u16::try_from(e).ok())
                        .unwrap_or(lo);
                    out.push((proto, lo, hi));
                }
                Some(Value::String(name)) => {
                    for (n, number, pr) in &dest.ports {
                        if n.as_deref() == Some(name.as_str()) && *pr == proto {
                            out.push((proto.clone(), *number, *number));
                        }
                    }
                }
                Some(_) => {}
            }
        }
        Ports::Some(out)
    }

    /// What `src` may send to `dst`.
    pub fn allowed(&self, src: &Peer, dst: &Peer) -> Ports {
        let side =
            |pod: &Peer, other: &Peer, direction: &str, key: &str, peers: &str, dest: &Peer| {
                let selecting = self.selecting(pod, direction);
                if selecting.is_empty() {
                    return Ports::All;
                }
                let mut allowed = Ports::Some(Vec::new());
                for p in selecting {
                    let ns = Object::new(p).map_or("default", |o| o.namespace("default"));
                    for rule in p
                        .pointer(&format!("/spec/{key}"))
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let from = rule.get(peers).and_then(Value::as_array);
                        let matches = from.is_none_or(|list| {
                            list.is_empty()
                                || list.iter().any(|peer| self.peer_matches(peer, ns, other))
                        });
                        if matches {
                            allowed.union(Self::rule_ports(rule, dest));
                        }
                    }
                }
                allowed
            };
        let ingress = side(dst, src, "Ingress", "ingress", "from", dst);
        let egress = side(src, dst, "Egress", "egress", "to", dst);
        ingress.intersect(&egress)
    }

    /// Peers that name namespaces in which no pod of the run lives.
    pub fn unexpressible(&self, pods: &[Peer]) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.policies {
            let id = Object::new(p).map(|o| o.id("default")).unwrap_or_default();
            for key in ["ingress", "egress"] {
                for rule in p
                    .pointer(&format!("/spec/{key}"))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    for peer in rule
                        .get(if key == "ingress" { "from" } else { "to" })
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(sel) = peer.get("namespaceSelector") {
                            let any = pods.iter().any(|pod| {
                                label_selector_matches(
                                    Some(sel),
                                    &self.namespace_labels(&pod.namespace),
                                )
                            });
                            let text =
                                format!("{id}: {key} peer {sel} selects no namespace of this run");
                            if !any && !out.contains(&text) {
                                out.push(text);
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// The forward-hook table for every ordered pair of pods.
pub fn program(policies: &Policies<'_>, pods: &[Peer]) -> String {
    let mut rules = String::new();
    for src in pods {
        for dst in pods {
            if src.ip == dst.ip {
                continue;
            }
            match policies.allowed(src, dst) {
                Ports::All => {
                    let _ = writeln!(rules, "    ip saddr {} ip daddr {} accept", src.ip, dst.ip);
                }
                ports if ports.is_empty() => {}
                Ports::Some(ranges) => {
                    for (proto, lo, hi) in ranges {
                        let proto = proto.to_ascii_lowercase();
                        let range = if lo == hi {
                            lo.to_string()
                        } else {
                            format!("{lo}-{hi}")
                        };
                        let _ = writeln!(
                            rules,
                            "    ip saddr {} ip daddr {} {proto} dport {range} accept",
                            src.ip, dst.ip
                        );
                    }
                }
            }
        }
    }
    format!(
        "table ip dt-network-policy {{}}\ndelete table ip dt-network-policy\ntable ip dt-network-policy {{\n  chain forward {{\n    type filter hook forward priority 0; policy accept;\n    ct state established,related accept\n{rules}    ip saddr 10.244.0.0/16 ip daddr 10.244.0.0/16 counter drop\n  }}\n}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ip: u8, app: &str, ports: &[(&str, u16, &str)]) -> Peer {
        Peer {
            namespace: "dt".into(),
            ip: Ipv4Addr::new(10, 244, 0, ip),
            labels: BTreeMap::from([("app".to_owned(), app.to_owned())]),
            ports: ports
                .iter()
                .map(|(n, p, pr)| (Some((*n).to_owned()), *p, (*pr).to_owned()))
                .collect(),
        }
    }

    fn policies(yaml: &str) -> Vec<Value> {
        crate::manifest::parse_stream(yaml).unwrap()
    }

    #[test]
    fn isolation_both_ends_named_ports_and_default_deny() {
        let objects = policies(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: dt}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: ac, namespace: dt}\nspec:\n  podSelector: {matchLabels: {app: ac}}\n  policyTypes: [Ingress]\n  ingress:\n    - from: [{podSelector: {matchLabels: {app: gc}}}]\n      ports: [{port: http}]\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: gc, namespace: dt}\nspec:\n  podSelector: {matchLabels: {app: gc}}\n  policyTypes: [Egress]\n  egress:\n    - to: [{podSelector: {matchLabels: {app: ac}}}]\n      ports: [{port: 8082, protocol: TCP}, {port: 9000, endPort: 9010}]\n",
        );
        let p = Policies::new(&objects);
        let ac = pod(2, "ac", &[("http", 8082, "TCP")]);
        let gc = pod(3, "gc", &[("http", 8080, "TCP")]);
        let mc = pod(4, "mc", &[]);
        assert_eq!(
            p.allowed(&gc, &ac),
            Ports::Some(vec![("TCP".into(), 8082, 8082)])
        );
        assert_eq!(p.allowed(&mc, &ac), Ports::Some(vec![]));
        assert_eq!(p.allowed(&ac, &gc), Ports::Some(vec![]));
        let text = program(&p, &[ac, gc, mc]);
        assert!(
            text.contains("ip saddr 10.244.0.3 ip daddr 10.244.0.2 tcp dport 8082 accept"),
            "{text}"
        );
        assert!(
            !text.contains("ip saddr 10.244.0.4 ip daddr 10.244.0.2"),
            "{text}"
        );
    }

    #[test]
    fn namespace_selectors_ip_blocks_and_expressions() {
        let objects = policies(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: dt, labels: {team: media}}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: dt}\nspec:\n  podSelector: {matchExpressions: [{key: app, operator: In, values: [ac]}]}\n  ingress:\n    - from: [{namespaceSelector: {matchLabels: {team: media}}, podSelector: {matchLabels: {app: gc}}}]\n    - from: [{ipBlock: {cidr: 10.244.0.0/24, except: [10.244.0.4/32]}}]\n      ports: [{port: 1, endPort: 100, protocol: UDP}]\n    - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]\n",
        );
        let p = Policies::new(&objects);
        let ac = pod(2, "ac", &[]);
        let gc = pod(3, "gc", &[]);
        let mc = pod(4, "mc", &[]);
        let mh = pod(5, "mh", &[]);
        assert_eq!(p.allowed(&gc, &ac), Ports::All);
        assert_eq!(p.allowed(&mc, &ac), Ports::Some(vec![]));
        assert_eq!(
            p.allowed(&mh, &ac),
            Ports::Some(vec![("UDP".into(), 1, 100)])
        );
        assert_eq!(p.allowed(&ac, &gc), Ports::All, "gc is not selected");
        let missing = p.unexpressible(&[ac]);
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert!(missing[0].contains("monitoring"), "{missing:?}");
    }
}
