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
use std::fmt::{self, Write as _};
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

    /// What one end allows of the flow `src` → `dst`: `Ingress` judged at
    /// `dst`, `Egress` at `src`.
    fn side(&self, src: &Peer, dst: &Peer, direction: &str) -> Ports {
        let (pod, other, key, peers) = if direction == "Ingress" {
            (dst, src, "ingress", "from")
        } else {
            (src, dst, "egress", "to")
        };
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
                    list.is_empty() || list.iter().any(|peer| self.peer_matches(peer, ns, other))
                });
                if matches {
                    allowed.union(Self::rule_ports(rule, dst));
                }
            }
        }
        allowed
    }

    /// What `src` may send to `dst`.
    pub fn allowed(&self, src: &Peer, dst: &Peer) -> Ports {
        self.side(src, dst, "Ingress")
            .intersect(&self.side(src, dst, "Egress"))
    }

    /// Why the flow `src` → `dst` (`protocol` `TCP`/`UDP`, `port`) is not
    /// allowed: each end that refuses it (`Ingress` at the destination,
    /// `Egress` at the source) with the policies that isolate that end
    /// (one of which should have allowed it). Empty when it is allowed.
    pub fn refusing(
        &self,
        src: &Peer,
        dst: &Peer,
        protocol: &str,
        port: u16,
    ) -> Vec<(&'static str, Vec<&'a Value>)> {
        let mut out = Vec::new();
        for (direction, pod) in [("Ingress", dst), ("Egress", src)] {
            let allows = match self.side(src, dst, direction) {
                Ports::All => true,
                Ports::Some(ranges) => ranges.iter().any(|(pr, lo, hi)| {
                    pr.eq_ignore_ascii_case(protocol) && (*lo..=*hi).contains(&port)
                }),
            };
            if !allows {
                out.push((direction, self.selecting(pod, direction)));
            }
        }
        out
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
    // Every dropped TCP/UDP flow is remembered with a packet count in the
    // set `dropped` (`dropped`, below), so the run can name it: an nft `log`
    // would go to the kernel log, which a network namespace other than the
    // machine's does not write unless the machine says so.
    format!(
        "table ip {TABLE} {{}}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n  set {DROPPED_SET} {{ type ipv4_addr . ipv4_addr . inet_proto . inet_service; size 65535; flags dynamic; counter; }}\n  chain forward {{\n    type filter hook forward priority 0; policy accept;\n    ct state established,related accept\n{rules}    ip saddr {POD_CIDR} ip daddr {POD_CIDR} meta l4proto {{ tcp, udp }} update @{DROPPED_SET} {{ ip saddr . ip daddr . meta l4proto . th dport }}\n    ip saddr {POD_CIDR} ip daddr {POD_CIDR} counter drop\n  }}\n}}\n"
    )
}

const TABLE: &str = "dt-network-policy";
const DROPPED_SET: &str = "dropped";
const POD_CIDR: &str = "10.244.0.0/16";

/// A flow the policies dropped, with the packets dropped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dropped {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// `TCP` or `UDP`.
    pub protocol: String,
    pub port: u16,
    pub packets: u64,
}

/// The arguments of `nft` that list the dropped flows as JSON.
pub const LIST_DROPPED: [&str; 6] = ["-j", "list", "set", "ip", TABLE, DROPPED_SET];

/// The dropped flows in `nft -j list set` output ([`LIST_DROPPED`]).
pub fn parse_dropped(json: &str) -> anyhow::Result<Vec<Dropped>> {
    let v: Value = serde_json::from_str(json)?;
    let mut out = Vec::new();
    for item in v
        .get("nftables")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for elem in item
            .pointer("/set/elem")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            // `{"elem": {"val": {"concat": [...]}, "counter": {...}}}`, or
            // the bare value when the element has no statement.
            let e = elem.get("elem").unwrap_or(elem);
            let parts = e
                .pointer("/val/concat")
                .or_else(|| e.get("concat"))
                .and_then(Value::as_array);
            let Some([src, dst, proto, port]) = parts.map(Vec::as_slice) else {
                continue;
            };
            let (Some(src), Some(dst)) = (
                src.as_str().and_then(|s| s.parse().ok()),
                dst.as_str().and_then(|s| s.parse().ok()),
            ) else {
                continue;
            };
            let protocol = match proto {
                Value::String(p) => p.to_ascii_uppercase(),
                Value::Number(n) if n.as_u64() == Some(6) => "TCP".into(),
                Value::Number(n) if n.as_u64() == Some(17) => "UDP".into(),
                other => other.to_string(),
            };
            out.push(Dropped {
                src,
                dst,
                protocol,
                port: port
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .unwrap_or(0),
                packets: e
                    .pointer("/counter/packets")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
            });
        }
    }
    Ok(out)
}

/// A dropped flow for a human: the pods at both ends (by name, from
/// `pods`), the port (and its name on the destination), and for each end
/// that refused it the NetworkPolicies isolating that end, each with the
/// line `locate` finds for it (its repository `file:line`).
pub fn describe<L: fmt::Display>(
    flow: &Dropped,
    pods: &[(String, Peer)],
    policies: &Policies<'_>,
    locate: impl Fn(&Value) -> Option<L>,
) -> String {
    let pod_at = |ip: Ipv4Addr| pods.iter().find(|(_, p)| p.ip == ip);
    let name = |ip: Ipv4Addr| pod_at(ip).map_or_else(|| ip.to_string(), |(n, _)| n.clone());
    let port_name = pod_at(flow.dst)
        .and_then(|(_, p)| {
            p.ports
                .iter()
                .find(|(_, n, pr)| *n == flow.port && *pr == flow.protocol)
                .and_then(|(name, _, _)| name.clone())
        })
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    let mut text = format!(
        "NetworkPolicy dropped {} -> {}:{}/{}{port_name} ({} packet(s))",
        name(flow.src),
        name(flow.dst),
        flow.port,
        flow.protocol,
        flow.packets
    );
    let (Some((src_name, src)), Some((dst_name, dst))) = (pod_at(flow.src), pod_at(flow.dst))
    else {
        return text;
    };
    let refusing = policies.refusing(src, dst, &flow.protocol, flow.port);
    if refusing.is_empty() {
        text.push_str(
            "; the policies allow it: it was dropped before the rules for one of the pods were loaded",
        );
    }
    for (direction, isolating) in refusing {
        let at = if direction == "Ingress" {
            dst_name
        } else {
            src_name
        };
        let names: Vec<String> = isolating
            .iter()
            .map(|p| {
                let id = Object::new(p).map(|o| o.id("default")).unwrap_or_default();
                match locate(p) {
                    Some(line) => format!("{id} ({line})"),
                    None => id,
                }
            })
            .collect();
        let _ = write!(
            text,
            "; no {direction} rule allows it at {at}, isolated by {}",
            names.join(", ")
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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

    /// Network namespaces of one test, deleted when it ends (pass or fail).
    struct Namespaces(Vec<String>);

    impl Drop for Namespaces {
        fn drop(&mut self) {
            for ns in &self.0 {
                crate::net::remove_netns(ns);
            }
        }
    }

    fn sh(args: &[&str]) -> String {
        crate::proc::run_checked("/usr/sbin/ip", args, std::time::Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("ip {}: {e:#}", args.join(" ")))
    }

    /// A TCP connect from `netns` to `ip:port`: `Ok` when the destination
    /// answered (nothing listens: refused, but it got there), `Err` when
    /// nothing came back within the timeout (dropped).
    fn connect(netns: &str, ip: Ipv4Addr, port: u16) -> Result<(), ()> {
        let out = std::process::Command::new("/usr/sbin/ip")
            .args(["netns", "exec", netns, "timeout", "2", "bash", "-c"])
            .arg(format!("echo > /dev/tcp/{ip}/{port}"))
            .output()
            .unwrap();
        // timeout(1) exits 124 when the connect hung: the SYN was dropped.
        if out.status.code() == Some(124) {
            Err(())
        } else {
            Ok(())
        }
    }

    #[test]
    fn a_flow_the_policies_deny_is_dropped_and_named_with_its_policy_file() {
        let root = std::process::Command::new("/usr/bin/id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout == b"0\n");
        if !root {
            manifest_tests::skip("network namespaces and nftables need root");
            return;
        }
        for tool in [
            "/usr/sbin/ip",
            "/usr/sbin/nft",
            "/bin/bash",
            "/usr/bin/timeout",
        ] {
            if !Path::new(tool).is_file() {
                manifest_tests::skip(&format!("{tool} is not installed"));
                return;
            }
        }
        // A repository with the policies in a file, as the render records it.
        let repo = tempfile::tempdir().unwrap();
        let yaml = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: default-deny\n  namespace: dt\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: ac\n  namespace: dt\nspec:\n  podSelector: {matchLabels: {app: ac}}\n  policyTypes: [Ingress]\n  ingress:\n    - from: [{podSelector: {matchLabels: {app: gc}}}]\n      ports: [{port: http}]\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: gc\n  namespace: dt\nspec:\n  podSelector: {matchLabels: {app: gc}}\n  policyTypes: [Egress]\n  egress:\n    - to: [{podSelector: {matchLabels: {app: ac}}}]\n";
        std::fs::write(repo.path().join("policies.yaml"), yaml).unwrap();
        let objects = policies(yaml);
        let mut origins = crate::origin::Origins::new(repo.path());
        for o in &objects {
            origins.insert(
                o,
                crate::render::Provenance {
                    origin: Some("policies.yaml".into()),
                    configured_in: Vec::new(),
                },
                "default",
            );
        }
        let p = Policies::new(&objects);

        // A node namespace routing two pod namespaces, as `up` lays them out.
        let tag = std::process::id() % 100_000;
        let node = format!("dtnpt{tag}");
        let (gc_ns, ac_ns) = (format!("{node}g"), format!("{node}a"));
        let _guard = Namespaces(vec![gc_ns.clone(), ac_ns.clone(), node.clone()]);
        let octet = u8::try_from(tag % 200 + 20).unwrap();
        let gc = Peer {
            ip: Ipv4Addr::new(10, 244, octet, 2),
            ..pod(0, "gc", &[("http", 8080, "TCP")])
        };
        let ac = Peer {
            ip: Ipv4Addr::new(10, 244, octet, 3),
            ..pod(0, "ac", &[("http", 8082, "TCP")])
        };
        for ns in [&node, &gc_ns, &ac_ns] {
            sh(&["netns", "add", ns]);
        }
        sh(&["-n", &node, "link", "set", "lo", "up"]);
        sh(&["-n", &node, "addr", "add", "169.254.1.1/32", "dev", "lo"]);
        sh(&[
            "netns",
            "exec",
            &node,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        for (i, (ns, peer)) in [(&gc_ns, &gc), (&ac_ns, &ac)].into_iter().enumerate() {
            let link = format!("dtnpt{i}");
            let cidr = format!("{}/32", peer.ip);
            sh(&[
                "-n", &node, "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns",
                ns,
            ]);
            sh(&["-n", &node, "link", "set", &link, "up"]);
            sh(&["-n", &node, "route", "add", &cidr, "dev", &link]);
            sh(&[
                "netns",
                "exec",
                &node,
                "sysctl",
                "-qw",
                &format!("net.ipv4.conf.{link}.proxy_arp=1"),
            ]);
            sh(&["-n", ns, "link", "set", "lo", "up"]);
            sh(&["-n", ns, "addr", "add", &cidr, "dev", "eth0"]);
            sh(&["-n", ns, "link", "set", "eth0", "up"]);
            sh(&[
                "-n",
                ns,
                "route",
                "add",
                "169.254.1.1",
                "dev",
                "eth0",
                "scope",
                "link",
            ]);
            sh(&[
                "-n",
                ns,
                "route",
                "add",
                "default",
                "via",
                "169.254.1.1",
                "dev",
                "eth0",
            ]);
        }
        let text = program(&p, &[gc.clone(), ac.clone()]);
        let file = repo.path().join("policy.nft");
        std::fs::write(&file, &text).unwrap();
        sh(&["netns", "exec", &node, "nft", "-f", &file.to_string_lossy()]);

        // Allowed: gc to ac's named port reaches ac (refused: nothing listens).
        assert_eq!(connect(&gc_ns, ac.ip, 8082), Ok(()), "{text}");
        // Denied at ac's end: another port; denied at both ends: ac to gc.
        assert_eq!(connect(&gc_ns, ac.ip, 9999), Err(()), "{text}");
        assert_eq!(connect(&ac_ns, gc.ip, 8080), Err(()), "{text}");

        let mut args = vec!["netns", "exec", &node, "nft"];
        args.extend(LIST_DROPPED);
        let dropped = parse_dropped(&sh(&args)).unwrap();
        let flows: Vec<(Ipv4Addr, Ipv4Addr, &str, u16)> = dropped
            .iter()
            .map(|d| (d.src, d.dst, d.protocol.as_str(), d.port))
            .collect();
        assert!(flows.contains(&(gc.ip, ac.ip, "TCP", 9999)), "{dropped:?}");
        assert!(flows.contains(&(ac.ip, gc.ip, "TCP", 8080)), "{dropped:?}");
        assert!(!flows.iter().any(|f| f.3 == 8082), "{dropped:?}");
        assert!(dropped.iter().all(|d| d.packets >= 1), "{dropped:?}");

        let pods = [
            ("gc-0".to_owned(), gc.clone()),
            ("ac-0".to_owned(), ac.clone()),
        ];
        let locate = |v: &Value| origins.declared(v, "default");
        let find = |src, port| {
            let d = dropped
                .iter()
                .find(|d| d.src == src && d.port == port)
                .unwrap();
            describe(d, &pods, &p, locate)
        };
        let gc_to_ac = find(gc.ip, 9999);
        assert!(
            gc_to_ac.starts_with("NetworkPolicy dropped gc-0 -> ac-0:9999/TCP ("),
            "{gc_to_ac}"
        );
        assert!(
            gc_to_ac.ends_with("; no Ingress rule allows it at ac-0, isolated by NetworkPolicy dt/default-deny (policies.yaml:4), NetworkPolicy dt/ac (policies.yaml:13)"),
            "{gc_to_ac}"
        );
        let ac_to_gc = find(ac.ip, 8080);
        assert!(
            ac_to_gc.contains("ac-0 -> gc-0:8080/TCP (http)"),
            "{ac_to_gc}"
        );
        assert!(
            ac_to_gc.contains("no Ingress rule allows it at gc-0, isolated by NetworkPolicy dt/default-deny (policies.yaml:4)"),
            "{ac_to_gc}"
        );
        assert!(
            ac_to_gc.contains("no Egress rule allows it at ac-0, isolated by NetworkPolicy dt/default-deny (policies.yaml:4)"),
            "{ac_to_gc}"
        );
    }
}
