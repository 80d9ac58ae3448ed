//! Which pods a selector may match, without judging every pod: a label
//! index over the graph's pods, the policies isolating each pod, and the
//! pods each side of a policy may admit. [`Net::edges`] uses them to judge
//! only the pairs both sides may admit.

use std::collections::HashMap;

use dtlint_yaml::Node;

use super::graph::Net;
use super::{Direction, Pod, Policy};
use crate::model::{LabelIndex, Selector};

/// The graph's pods (indices into `pods`) by label pair, the same index
/// the model keeps of every pod, and by namespace.
#[derive(Debug, Default)]
pub(super) struct PodsByLabel {
    labels: LabelIndex,
    by_namespace: HashMap<String, Vec<usize>>,
}

impl PodsByLabel {
    /// The pods carrying one of `selector`'s `matchLabels` pairs, when it
    /// names one.
    fn by_pair(&self, selector: Option<&Node>) -> Option<Vec<usize>> {
        let sel = Selector {
            node: selector?,
            structured: true,
        };
        let found = self.labels.pair_candidates(&sel)?;
        Some(found.into_iter().map(|i| i as usize).collect())
    }
}

impl<'i, 'a> Net<'i, 'a> {
    fn by_label(&self) -> &PodsByLabel {
        self.by_label.get_or_init(|| {
            let mut index = PodsByLabel::default();
            for (i, pod) in self.pods.iter().enumerate() {
                index.labels.add(i as u32, pod.labels, pod.added);
                index
                    .by_namespace
                    .entry(pod.namespace.clone())
                    .or_default()
                    .push(i);
            }
            index
        })
    }

    /// Pods a `podSelector` in namespace `ns` may select (a superset:
    /// callers still match), in index order.
    fn selector_candidates(&self, selector: Option<&Node>, ns: &str) -> Vec<usize> {
        let index = self.by_label();
        index
            .by_pair(selector)
            .unwrap_or_else(|| index.by_namespace.get(ns).cloned().unwrap_or_default())
    }

    /// Pods a `from`/`to` item of a policy in `policy_ns` may admit (a
    /// superset: callers still match), in index order.
    fn peer_candidates(&self, peer: &Node, policy_ns: &str) -> Vec<usize> {
        let index = self.by_label();
        if let Some(c) = index.by_pair(peer.get("podSelector")) {
            return c;
        }
        match peer.get("namespaceSelector") {
            None => index
                .by_namespace
                .get(policy_ns)
                .cloned()
                .unwrap_or_default(),
            Some(namespaces) => {
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
