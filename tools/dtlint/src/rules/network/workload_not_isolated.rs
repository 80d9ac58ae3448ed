use std::collections::{BTreeMap, HashMap};

use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports a workload whose pods no allow NetworkPolicy selects: a
    /// policy with a non-empty `podSelector` that matches the pod template's
    /// labels (in the same namespace) and has at least one rule.
    /// Namespace-wide policies (`podSelector: {}`, such as the default-deny
    /// or a DNS allowance) do not count.
    ///
    /// ## Why is this bad?
    /// Under a default-deny such a workload can reach nothing and nothing
    /// can reach it; without one it is wide open. Either way nobody decided
    /// what it may talk to.
    ///
    /// ## Example
    /// ```yaml
    /// kind: NetworkPolicy
    /// spec:
    ///   podSelector:
    ///     matchLabels:
    ///       app.kubernetes.io/name: global-controler   # matches no pod
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// kind: NetworkPolicy
    /// spec:
    ///   podSelector:
    ///     matchLabels:
    ///       app.kubernetes.io/name: global-controller
    ///   policyTypes: [Ingress, Egress]
    ///   ingress:
    ///     - ports: [{protocol: TCP, port: 8080}]
    /// ```
    ///
    /// ## References
    /// - Network policies: <https://kubernetes.io/docs/concepts/services-networking/network-policies/>
    /// - SPEC.md, "Manifests", Network
    pub struct WorkloadNotIsolated {
        id: "workload-not-isolated",
        category: "network",
        severity: Error,
        summary: "a workload's pods are selected by no allow NetworkPolicy",
        needs: Repository,
    }
}

impl Rule for WorkloadNotIsolated {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let mut found: BTreeMap<(u32, u32), Finding> = BTreeMap::new();
        for net in ctx.nets() {
            let env = net.env;
            // Allow policies by the first label value their podSelector
            // requires, so each pod is tested against a few candidates rather
            // than every policy.
            let mut by_label: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
            let mut unkeyed: Vec<usize> = Vec::new();
            for (i, p) in net
                .policies
                .iter()
                .enumerate()
                .filter(|(_, p)| p.is_allow())
            {
                let key = p
                    .pod_selector
                    .and_then(|n| n.get("matchLabels"))
                    .and_then(|m| {
                        m.entries()
                            .find_map(|e| Some((e.key.as_str()?, e.value.as_str()?)))
                    });
                match key {
                    Some(k) => by_label.entry(k).or_default().push(i),
                    None => unkeyed.push(i),
                }
            }
            for pod in &net.pods {
                let keyed = pod
                    .labels
                    .into_iter()
                    .flat_map(Node::entries)
                    .filter_map(|e| by_label.get(&(e.key.as_str()?, e.value.as_str()?)))
                    .flatten();
                // Labels a kustomization adds have values we do not know here.
                let added: Vec<usize> = if pod.added.is_empty() {
                    Vec::new()
                } else {
                    by_label
                        .iter()
                        .filter(|((k, _), _)| pod.added.iter().any(|a| a == k))
                        .flat_map(|(_, v)| v.iter().copied())
                        .collect()
                };
                if keyed
                    .chain(&unkeyed)
                    .chain(&added)
                    .any(|&i| net.policies[i].selects(pod))
                {
                    continue;
                }
                let owner = pod.owner;
                let span = owner
                    .pod_template()
                    .and_then(|t| t.get("metadata"))
                    .and_then(|m| m.entry("labels"))
                    .map(|e| e.key.span)
                    .or_else(|| pod.labels.map(|l| l.span))
                    .unwrap_or_else(|| owner.anchor_span());
                let mut f = Finding::new(
                    Self::META.id,
                    Label::new(owner.file, span, "no allow policy selects these pods"),
                    format!("{} is selected by no allow NetworkPolicy", owner.id()),
                )
                .help("Add a NetworkPolicy whose podSelector matches these pods and opens exactly the traffic they need; namespace-wide policies (`podSelector: {}`) do not count.");
                // Allow policies that select no pod at all are the usual cause (a typo).
                for p in net.policies.iter().filter(|p| {
                    p.namespace == pod.namespace
                        && p.is_allow()
                        && !net.pods.iter().any(|q| p.selects(q))
                }) {
                    let at = p.pod_selector.map_or_else(|| p.r.anchor_span(), |s| s.span);
                    f = f.with(Label::new(
                        p.r.file,
                        at,
                        format!("{} selects no pod", p.r.id()),
                    ));
                }
                let slot = found.entry((owner.file.0, span.start.offset)).or_insert(f);
                if let Some(e) = env
                    && !slot.envs.iter().any(|x| x == e)
                {
                    slot.envs.push(e.to_string());
                }
            }
        }
        out.extend(found.into_values());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn run(policy: &str) -> Vec<Finding> {
        let dir = tempfile::tempdir().unwrap();
        let pod = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: gc}\nspec:\n  template:\n    metadata:\n      labels: {app.kubernetes.io/name: gc}\n    spec: {containers: [{name: gc}]}\n";
        std::fs::write(dir.path().join("d.yaml"), pod).unwrap();
        std::fs::write(dir.path().join("p.yaml"), policy).unwrap();
        crate::rules::testing::check_dir(&WorkloadNotIsolated, dir.path(), &Config::dark_tower())
    }

    #[test]
    fn namespace_wide_policies_do_not_count() {
        let wide = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: dns}\nspec:\n  podSelector: {}\n  egress: [{ports: [{port: 53, protocol: UDP}]}]\n";
        let out = run(wide);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (
                out[0].primary.span.start.line,
                out[0].primary.span.start.col
            ),
            (7, 7)
        );
        let own = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: gc}\nspec:\n  podSelector: {matchLabels: {app.kubernetes.io/name: gc}}\n  ingress: [{ports: [{port: 8080}]}]\n";
        assert!(run(own).is_empty());
        let no_rules = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: gc}\nspec:\n  podSelector: {matchLabels: {app.kubernetes.io/name: gc}}\n  policyTypes: [Ingress]\n";
        assert_eq!(
            run(no_rules).len(),
            1,
            "a policy without rules allows nothing"
        );
    }
}
