use std::collections::BTreeMap;

use crate::diag::{Finding, Label};
use crate::netpol::{Namespaces, Pod, types_text};
use crate::rules::{Context, Merged, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports a namespace that runs workloads but has no default-deny
    /// NetworkPolicy: one with `podSelector: {}`, `policyTypes: [Ingress,
    /// Egress]` and no rules. A policy's namespace is its own
    /// `metadata.namespace`, else the `namespace:` of the kustomization that
    /// lists it, else `default`. The finding points at the namespace's
    /// Namespace object, or at the kustomization that puts the workloads
    /// there.
    ///
    /// ## Why is this bad?
    /// Without it every pod that no allow policy selects accepts traffic
    /// from anywhere and may send it anywhere, and each allow policy only
    /// closes the direction it names. A default-deny that lands in another
    /// namespace (a kustomization without `namespace:`) protects nothing.
    ///
    /// ## Example
    /// ```yaml
    /// # base/kustomization.yaml: no `namespace:`, and the policy has none
    /// resources: [namespace.yaml, network-policy-default-deny.yaml]
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// namespace: dark-tower
    /// resources: [namespace.yaml, network-policy-default-deny.yaml]
    /// ---
    /// apiVersion: networking.k8s.io/v1
    /// kind: NetworkPolicy
    /// metadata:
    ///   name: default-deny
    /// spec:
    ///   podSelector: {}
    ///   policyTypes: [Ingress, Egress]
    /// ```
    ///
    /// ## References
    /// - Default policies: <https://kubernetes.io/docs/concepts/services-networking/network-policies/#default-policies>
    /// - SPEC.md, "Manifests", Network
    pub struct MissingDefaultDeny {
        id: "missing-default-deny",
        category: "network",
        severity: Error,
        summary: "a namespace with workloads has no default-deny NetworkPolicy",
        needs: Repository,
    }
}

impl Rule for MissingDefaultDeny {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let idx = ctx.index;
        let namespaces = Namespaces::new(idx);
        let mut found = Merged::default();
        for net in ctx.nets() {
            let env = net.env;
            let mut by_ns: BTreeMap<&str, Vec<&Pod<'_, '_>>> = BTreeMap::new();
            for p in &net.pods {
                by_ns.entry(p.namespace.as_str()).or_default().push(p);
            }
            for (ns, pods) in by_ns {
                let policies: Vec<_> = net.policies.iter().filter(|p| p.namespace == ns).collect();
                if policies.iter().any(|p| p.is_default_deny()) {
                    continue;
                }
                let first = pods[0].owner;
                let namespace_object = idx
                    .of_kind("Namespace")
                    .filter(|r| r.name == ns && (env.is_none() || r.env.is_none() || r.env == env))
                    .find_map(|r| Some((r.file, r.metadata()?.get("name")?.span)));
                let mut setters: Vec<_> = namespaces
                    .setters()
                    .filter(|s| s.namespace == ns)
                    .map(|s| (idx.ws.sources.get(s.file).path.as_str(), s.file, s.span))
                    .collect();
                setters.sort();
                let (file, span, label) = if let Some((file, span)) = namespace_object {
                    (file, span, "this namespace has no default-deny policy")
                } else if let Some(&(_, file, span)) = setters.first() {
                    (file, span, "workloads are put in this namespace here")
                } else {
                    let span = first
                        .metadata()
                        .and_then(|m| m.get("namespace"))
                        .map_or_else(|| first.anchor_span(), |n| n.span);
                    (
                        first.file,
                        span,
                        "this workload's namespace has no default-deny policy",
                    )
                };
                let mut f = Finding::new(
                    Self::META.id,
                    Label::new(file, span, label),
                    format!("namespace {ns} has workloads but no default-deny NetworkPolicy"),
                )
                .help("Add a NetworkPolicy with `podSelector: {}`, `policyTypes: [Ingress, Egress]` and no rules to this namespace, so that only what the allow policies open is reachable.")
                .with(Label::new(
                    first.file,
                    first.anchor_span(),
                    format!("{} runs in {ns}", first.id()),
                ));
                for p in &policies {
                    if !p.selects_all() {
                        continue;
                    }
                    let why = if p.ingress_type && p.egress_type {
                        "selects every pod but has rules, so it is not a default-deny".to_string()
                    } else {
                        format!(
                            "selects every pod but isolates only {}",
                            match types_text(p).as_str() {
                                "" => "nothing".to_string(),
                                t => t.to_string(),
                            }
                        )
                    };
                    let at =
                        p.r.spec()
                            .and_then(|s| s.entry("policyTypes"))
                            .map_or_else(|| p.r.anchor_span(), |e| e.key.span);
                    f = f.with(Label::new(p.r.file, at, why));
                }
                for p in net
                    .policies
                    .iter()
                    .filter(|p| p.namespace != ns && p.is_default_deny())
                {
                    f = f.with(Label::new(
                        p.r.file,
                        p.r.anchor_span(),
                        format!("this default-deny applies to namespace {}", p.namespace),
                    ));
                }
                found.add(f, env);
            }
        }
        out.extend(found.into_findings());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(files: &[(&str, &str)]) -> Vec<Finding> {
        crate::rules::testing::run(&MissingDefaultDeny, files)
    }

    const POD: &str =
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: a}]}\n";

    #[test]
    fn the_kustomization_namespace_places_the_policy() {
        let deny = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n";
        // Both in `app` through the kustomization: clean.
        let ok = run(&[
            (
                "kustomization.yaml",
                "namespace: app\nresources: [pod.yaml, deny.yaml]\n",
            ),
            ("pod.yaml", POD),
            ("deny.yaml", deny),
        ]);
        assert!(ok.is_empty(), "{ok:?}");
        // The policy outside the kustomization stays in `default`.
        let bad = run(&[
            (
                "kustomization.yaml",
                "namespace: app\nresources: [pod.yaml]\n",
            ),
            ("pod.yaml", POD),
            ("deny.yaml", deny),
        ]);
        assert_eq!(bad.len(), 1);
        assert_eq!(
            bad[0].message,
            "namespace app has workloads but no default-deny NetworkPolicy"
        );
        assert_eq!(
            bad[0].primary.span.start.line, 1,
            "at the kustomization's namespace"
        );
        assert!(
            bad[0]
                .secondary
                .iter()
                .any(|l| l.message == "this default-deny applies to namespace default")
        );
    }

    #[test]
    fn ingress_only_is_not_enough() {
        let half = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress]\n";
        let bad = run(&[("pod.yaml", POD), ("deny.yaml", half)]);
        assert_eq!(bad.len(), 1);
        assert!(
            bad[0]
                .secondary
                .iter()
                .any(|l| l.message == "selects every pod but isolates only Ingress")
        );
    }
}
