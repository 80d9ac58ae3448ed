//! Which pods a selector may match, without judging every pod: a label
//! index over the graph's pods, the policies isolating each pod, and the
//! pods each side of a policy may admit. [`Net::edges`] uses them to judge
//! only the pairs both sides may admit.

use std::collections::HashMap;

use dtlint_yaml::Node;

use super::graph::Net;
use super::{Direction, Pod, Policy};

/// Pod indices by (key, value) label pair; pods whose kustomization adds
/// label keys match any value of those keys, so they are always candidates.
#[derive(Debug, Default)]
pub(super) struct PodsByLabel {
    by_pair: HashMap<(String, String), Vec<usize>>,
    with_added: Vec<usize>,
    /// Pod indices by namespace.
    by_namespace: HashMap<String, Vec<usize>>,
}

impl<'i, 'a> Net<'i, 'a> {
    fn by_label(&self) -> &PodsByLabel {
        self.by_label.get_or_init(|| {
            let mut index = PodsByLabel::default();
            for (i, pod) in self.pods.iter().enumerate() {
                if !pod.added.is_empty() {
                    index.with_added.push(i);
                }
                index
                    .by_namespace
                    .entry(pod.namespace.clone())
                    .or_default()
                    .push(i);
                for e in pod.labels.into_iter().flat_map(Node::entries) {
                    if let (Some(k), Some(v)) = (e.key.as_str(), e.value.as_str()) {
                        index
                            .by_pair
                            .entry((k.to_string(), v.to_string()))
                            .or_default()
                            .push(i);
                    }
                }
            }
            index
        })
    }

    /// Pods a `podSelector` in namespace `ns` may select (a superset:
    /// callers still match), in index order.
    fn selector_candidates(&self, selector: Option<&Node>, ns: &str) -> Vec<usize> {
        let index = self.by_label();
        match label_pair(selector) {
            None => index.by_namespace.get(ns).cloned().unwrap_or_default(),
            Some(pair) => by_pair(index, pair),
        }
    }

    /// Pods a `from`/`to` item of a policy in `policy_ns` may admit (a
    /// superset: callers still match), in index order.
    fn peer_candidates(&self, peer: &Node, policy_ns: &str) -> Vec<usize> {
        let index = self.by_label();
        let pods = peer.get("podSelector");
        match (peer.get("namespaceSelector"), label_pair(pods)) {
            (_, Some(pair)) => by_pair(index, pair),
            (None, None) => index
                .by_namespace
                .get(policy_ns)
                .cloned()
                .unwrap_or_default(),
            (Some(namespaces), None) => {
                let mut c: Vec<usize> = index
                    .by_namespace
                    .iter()
                    .filter(|(ns, _)| self.namespace_matches(namespaces, ns))
                    .flat_map(|(_, pods)| pods.iter().copied())
                    .collect();
                c.sort_unstable();
                c
            }
        }
    }

    /// Policies that select `pod` and isolate it for `dir`.
    pub fn isolating(&self, pod: &Pod<'_, '_>, dir: Direction) -> Vec<&Policy<'i, 'a>> {
        let Some(i) = crate::model::position_in(&self.pods, pod) else {
            return self
                .policies
                .iter()
                .filter(|p| p.isolates(dir) && p.selects(pod))
                .collect();
        };
        let cache = self.isolating.get_or_init(|| {
            let mut per_pod = vec![[Vec::new(), Vec::new()]; self.pods.len()];
            for (k, policy) in self.policies.iter().enumerate() {
                for j in self.selector_candidates(policy.pod_selector, &policy.namespace) {
                    if policy.selects(&self.pods[j]) {
                        if policy.isolates(Direction::Egress) {
                            per_pod[j][0].push(k);
                        }
                        if policy.isolates(Direction::Ingress) {
                            per_pod[j][1].push(k);
                        }
                    }
                }
            }
            per_pod
        });
        let side = usize::from(matches!(dir, Direction::Ingress));
        cache[i][side].iter().map(|&k| &self.policies[k]).collect()
    }

    /// The pods (indices) that `subject`'s policies may admit for `dir`,
    /// ports aside; `None` when every pod may be (not isolated, or a rule
    /// without peers). Exactly the pods for which [`Net::allowed`] can be
    /// non-empty.
    pub(super) fn admitted_pods(
        &self,
        subject: &Pod<'_, '_>,
        dir: Direction,
    ) -> Option<Vec<usize>> {
        let policies = self.isolating(subject, dir);
        if policies.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        for p in policies {
            for rule in p.rules(dir) {
                let peers = super::graph::rule_peers(rule, dir);
                if peers.is_empty() {
                    return None;
                }
                for peer in peers {
                    if peer.get("ipBlock").is_some() {
                        continue;
                    }
                    for j in self.peer_candidates(peer, &p.namespace) {
                        if self.peer_admits_pod(peer, &p.namespace, &self.pods[j]) {
                            out.push(j);
                        }
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Some(out)
    }
}

/// The first `matchLabels` pair of a selector with a string value.
fn label_pair(selector: Option<&Node>) -> Option<(&str, &str)> {
    selector
        .and_then(|s| s.get("matchLabels"))
        .into_iter()
        .flat_map(Node::entries)
        .find_map(|e| Some((e.key.as_str()?, e.value.as_str()?)))
}

/// The pods carrying `pair`, or whose kustomization adds its key.
fn by_pair(index: &PodsByLabel, (k, v): (&str, &str)) -> Vec<usize> {
    let mut c = index
        .by_pair
        .get(&(k.to_string(), v.to_string()))
        .cloned()
        .unwrap_or_default();
    c.extend(&index.with_added);
    c.sort_unstable();
    c.dedup();
    c
}
