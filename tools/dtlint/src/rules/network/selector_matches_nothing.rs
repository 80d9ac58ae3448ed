use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::{Resource, Selector};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports selectors that match no pod (or, for a ServiceMonitor, no
    /// Service) among the objects checked: Service `spec.selector`,
    /// PodDisruptionBudget `spec.selector`, NetworkPolicy `spec.podSelector`
    /// and its `from`/`to` pod selectors (those without a
    /// `namespaceSelector`), and ServiceMonitor `spec.selector`.
    ///
    /// ## Why is this bad?
    /// Nothing fails: the Service has no endpoints, the budget protects
    /// nothing, the policy opens or guards nothing, Prometheus scrapes
    /// nothing. A typo in one label value silently turns the object off.
    ///
    /// ## Example
    /// ```yaml
    /// kind: Service
    /// spec:
    ///   selector:
    ///     app.kubernetes.io/name: global-controler
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// kind: Service
    /// spec:
    ///   selector:
    ///     app.kubernetes.io/name: global-controller
    ///     app.kubernetes.io/instance: global-controller-production
    /// ```
    ///
    /// ## References
    /// - Labels and selectors: <https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/>
    pub struct SelectorMatchesNothing {
        id: "selector-matches-nothing",
        category: "network",
        severity: Error,
        summary: "a Service, PDB, NetworkPolicy or ServiceMonitor selector matches nothing",
    }
}

fn report(out: &mut Vec<Finding>, r: &Resource<'_>, sel: &Selector<'_>, what: &str) {
    out.push(
        Finding::new(
            SelectorMatchesNothing::META.id,
            Label::new(r.file, sel.node.span, "matches nothing"),
            format!("{what} of {} matches no {}", r.id(), if r.kind == "ServiceMonitor" { "Service" } else { "pod" }),
        )
        .help("Fix the labels so the selector matches what it is meant to; a selector that matches nothing disables the object silently."),
    );
}

impl Rule for SelectorMatchesNothing {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let idx = ctx.index;
        let any_pod = |r: &Resource<'_>, sel: &Selector<'_>| !idx.pods_matching(sel, r).is_empty();
        for r in idx.objects() {
            match r.kind {
                "Service" | "PodDisruptionBudget" => {
                    if let Some(sel) = idx.own_selector(r)
                        && !sel.is_empty()
                        && !any_pod(r, &sel)
                    {
                        report(out, r, &sel, "selector");
                    }
                }
                "NetworkPolicy" => {
                    let Some(spec) = r.spec() else { continue };
                    if let Some(ps) = spec.get("podSelector") {
                        let sel = Selector {
                            node: ps,
                            structured: true,
                        };
                        if !sel.is_empty() && !any_pod(r, &sel) {
                            report(out, r, &sel, "podSelector");
                        }
                    }
                    for dir in ["ingress", "egress"] {
                        let peers = if dir == "ingress" { "from" } else { "to" };
                        for rule in spec.get(dir).into_iter().flat_map(Node::items) {
                            for peer in rule.get(peers).into_iter().flat_map(Node::items) {
                                if peer.get("namespaceSelector").is_some() {
                                    continue;
                                }
                                let Some(ps) = peer.get("podSelector") else {
                                    continue;
                                };
                                let sel = Selector {
                                    node: ps,
                                    structured: true,
                                };
                                if !sel.is_empty() && !any_pod(r, &sel) {
                                    report(out, r, &sel, &format!("{dir} peer"));
                                }
                            }
                        }
                    }
                }
                "ServiceMonitor" => {
                    let Some(node) = r.spec().and_then(|s| s.get("selector")) else {
                        continue;
                    };
                    let sel = Selector {
                        node,
                        structured: true,
                    };
                    let any_ns = r
                        .spec()
                        .and_then(|s| s.path(&["namespaceSelector", "any"]))
                        .and_then(Node::as_bool)
                        == Some(true);
                    let found = !idx.services_matching(&sel, r, any_ns).is_empty();
                    if !sel.is_empty() && !found {
                        report(out, r, &sel, "selector");
                    }
                }
                _ => {}
            }
        }
    }
}
