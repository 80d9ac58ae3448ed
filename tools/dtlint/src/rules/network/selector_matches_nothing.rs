use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::{Resource, Selector};
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports selectors that match no pod (or, for a ServiceMonitor, no
    /// Service) among the objects checked: Service `spec.selector`,
    /// PodDisruptionBudget `spec.selector`, NetworkPolicy `spec.podSelector`
    /// and its `from`/`to` pod selectors (those without a
    /// `namespaceSelector`), and ServiceMonitor `spec.selector` (in the
    /// namespaces its `namespaceSelector.matchNames` lists, when it does:
    /// a list that rules out the only Service the selector matches is
    /// reported at the list; without a selector, the monitor watches every
    /// Service of the listed namespaces, and a list none of which holds a
    /// Service is reported). In a
    /// namespace a Flux `HelmRelease` installs a chart into, the chart makes
    /// pods and Services dtlint cannot see, so selectors there are not
    /// judged.
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
        needs: Repository,
    }
}

/// Report `sel`, pointing at the first requirement that alone matches
/// nothing (usually a misspelt value), or at the whole selector when only
/// the combination fails.
fn report(
    out: &mut Vec<Finding>,
    r: &Resource<'_>,
    sel: &Selector<'_>,
    what: &str,
    matches: &dyn Fn(&Selector<'_>) -> bool,
) {
    let target = if r.kind == "ServiceMonitor" {
        "Service"
    } else {
        "pod"
    };
    let culprit = crate::rules::selector_parts(sel)
        .into_iter()
        .find(|p| !matches(&p.selector()));
    let (span, label) = culprit.map_or_else(
        || {
            (
                sel.node.span,
                format!("no {target} has all of these labels"),
            )
        },
        |p| {
            let what = if p.expression {
                "satisfies this expression"
            } else {
                "has this label"
            };
            (p.span, format!("no {target} {what}"))
        },
    );
    out.push(
        Finding::new(
            SelectorMatchesNothing::META.id,
            Label::new(r.file, span, label),
            format!("{what} of {} matches no {target}", r.id()),
        )
        .help("Fix the labels so the selector matches what it is meant to; a selector that matches nothing disables the object silently."),
    );
}

impl Rule for SelectorMatchesNothing {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Objects)
    }

    fn check_object(&self, ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        let idx = ctx.index;
        if !matches!(
            r.kind,
            "Service" | "PodDisruptionBudget" | "NetworkPolicy" | "ServiceMonitor"
        ) {
            return;
        }
        // A chart installed into this namespace makes pods and Services
        // dtlint cannot see: whether the selector matches them is
        // unverifiable, not false.
        if idx.any_chart()
            && idx
                .chart_objects_in(r, &crate::model::Namespaces::new(idx).of(r))
                .is_some()
        {
            return;
        }
        let any_pod = |r: &Resource<'_>, sel: &Selector<'_>| !idx.pods_matching(sel, r).is_empty();
        match r.kind {
            "Service" | "PodDisruptionBudget" => {
                if let Some(sel) = idx.own_selector(r)
                    && !sel.is_empty()
                    && !any_pod(r, &sel)
                {
                    report(out, r, &sel, "selector", &|s| any_pod(r, s));
                }
            }
            "NetworkPolicy" => {
                let Some(spec) = r.spec() else { return };
                if let Some(ps) = spec.get("podSelector") {
                    let sel = Selector {
                        node: ps,
                        structured: true,
                    };
                    if !sel.is_empty() && !any_pod(r, &sel) {
                        report(out, r, &sel, "podSelector", &|s| any_pod(r, s));
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
                                report(out, r, &sel, &format!("{dir} peer"), &|s| any_pod(r, s));
                            }
                        }
                    }
                }
            }
            "ServiceMonitor" => {
                let Some(node) = r.spec().and_then(|s| s.get("selector")) else {
                    no_service_in_listed_namespaces(idx, r, out);
                    return;
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
                // `matchNames`: the Services must be in one of these.
                let match_names = r
                    .spec()
                    .and_then(|s| s.path(&["namespaceSelector", "matchNames"]))
                    .filter(|n| n.as_sequence().is_some());
                if let Some(names_node) = match_names {
                    let names: Vec<&str> = names_node.items().filter_map(Node::as_str).collect();
                    let namespaces = crate::model::Namespaces::new(idx);
                    let everywhere = idx.services_matching(&sel, r, true);
                    let listed = everywhere
                        .iter()
                        .any(|s| names.contains(&namespaces.of(s).as_str()));
                    if !sel.is_empty() && !listed {
                        if let Some(s) = everywhere.first() {
                            let ns = namespaces.of(s);
                            out.push(
                                Finding::new(
                                    Self::META.id,
                                    Label::new(r.file, names_node.span, format!("`{ns}` is not listed")),
                                    format!(
                                        "namespaceSelector of {} rules out {}, the Service its selector matches (namespace `{ns}`)",
                                        r.id(),
                                        s.id()
                                    ),
                                )
                                .with(Label::new(s.file, s.anchor_span(), "matched here"))
                                .help("Add the Service's namespace to `namespaceSelector.matchNames`, or remove the selector's namespace restriction."),
                            );
                        } else {
                            report(out, r, &sel, "selector", &|s| {
                                !idx.services_matching(s, r, true).is_empty()
                            });
                        }
                    }
                    return;
                }
                let found = !idx.services_matching(&sel, r, any_ns).is_empty();
                if !sel.is_empty() && !found {
                    report(out, r, &sel, "selector", &|s| {
                        !idx.services_matching(s, r, any_ns).is_empty()
                    });
                }
            }
            _ => {}
        }
    }
}

/// A ServiceMonitor without a selector watches every Service of the
/// namespaces `namespaceSelector.matchNames` lists: reported when none of
/// them holds a Service dtlint can see, and no chart installs into one.
fn no_service_in_listed_namespaces(
    idx: &crate::model::Index<'_>,
    r: &Resource<'_>,
    out: &mut Vec<Finding>,
) {
    let Some(names_node) = r
        .spec()
        .and_then(|s| s.path(&["namespaceSelector", "matchNames"]))
        .filter(|n| n.as_sequence().is_some_and(|items| !items.is_empty()))
    else {
        return;
    };
    let names: Vec<&str> = names_node.items().filter_map(Node::as_str).collect();
    if names.len() != names_node.items().len()
        || names
            .iter()
            .any(|ns| idx.any_chart() && idx.chart_objects_in(r, ns).is_some())
    {
        return;
    }
    let namespaces = crate::model::Namespaces::new(idx);
    let any = idx
        .objects()
        .filter(|s| s.kind == "Service" && s.group().is_empty())
        .filter(|s| crate::model::same_env(s, r))
        .any(|s| names.contains(&namespaces.of(s).as_str()));
    if !any {
        out.push(
            Finding::new(
                SelectorMatchesNothing::META.id,
                Label::new(r.file, names_node.span, "no Service in these namespaces"),
                format!(
                    "namespaceSelector of {} matches no Service: it has no selector, and no Service is in {}",
                    r.id(),
                    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                ),
            )
            .help("List the namespace of the Services to monitor under `namespaceSelector.matchNames`, or select them with `selector`."),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn a_monitor_whose_namespaces_rule_out_its_service_is_reported_at_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: apps, labels: {app: web}}\nspec:\n  selector: {app: web}\n";
        let sm = "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: web, namespace: monitoring}\nspec:\n  namespaceSelector:\n    matchNames: [web]\n  selector:\n    matchLabels: {app: web}\n  endpoints: [{port: http}]\n";
        std::fs::write(dir.path().join("service.yaml"), svc).unwrap();
        std::fs::write(dir.path().join("monitor.yaml"), sm).unwrap();
        let config = Config::defaults();
        let out = crate::rules::testing::check_dir(&SelectorMatchesNothing, dir.path(), &config);
        let monitor: Vec<_> = out
            .iter()
            .filter(|f| f.message.contains("ServiceMonitor"))
            .collect();
        assert_eq!(monitor.len(), 1, "{out:?}");
        assert!(
            monitor[0].message.contains("rules out Service/web"),
            "{}",
            monitor[0].message
        );
        assert_eq!(monitor[0].primary.span.start.line, 6);
        // Listed: fine.
        std::fs::write(
            dir.path().join("monitor.yaml"),
            sm.replace("[web]", "[apps]"),
        )
        .unwrap();
        let out = crate::rules::testing::check_dir(&SelectorMatchesNothing, dir.path(), &config);
        assert!(
            out.iter().all(|f| !f.message.contains("ServiceMonitor")),
            "{out:?}"
        );
    }

    #[test]
    fn points_at_the_label_that_matches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let d = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: gc}\nspec:\n  template:\n    metadata:\n      labels: {app.kubernetes.io/name: gc, app.kubernetes.io/instance: gc-base}\n";
        let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: gc}\nspec:\n  selector:\n    app.kubernetes.io/name: gc\n    app.kubernetes.io/instance: gc-prod\n";
        std::fs::write(dir.path().join("deployment.yaml"), d).unwrap();
        std::fs::write(dir.path().join("service.yaml"), svc).unwrap();
        let config = Config::dark_tower();
        let out = crate::rules::testing::check_dir(&SelectorMatchesNothing, dir.path(), &config);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (
                out[0].primary.span.start.line,
                out[0].primary.span.start.col
            ),
            (7, 33)
        );
        assert_eq!(out[0].primary.message, "no pod has this label");
    }

    #[test]
    fn a_service_may_select_one_statefulset_replica_that_runs() {
        let dir = tempfile::tempdir().unwrap();
        let sts = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: mh}\nspec:\n  replicas: 2\n  template:\n    metadata:\n      labels: {app.kubernetes.io/name: mh}\n";
        std::fs::write(dir.path().join("statefulset.yaml"), sts).unwrap();
        let service = |name: &str, key: &str, value: &str| {
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector:\n    {key}: \"{value}\"\n    app.kubernetes.io/name: mh\n"
            )
        };
        let by_name = "statefulset.kubernetes.io/pod-name";
        let by_index = "apps.kubernetes.io/pod-index";
        let cases = [
            (service("mh-0", by_name, "mh-0"), true),
            (service("mh-1", by_name, "mh-1"), true),
            (service("idx-1", by_index, "1"), true),
            // Near misses: an ordinal past the replicas, another set's pod,
            // a name that only starts like one.
            (service("mh-2", by_name, "mh-2"), false),
            (service("idx-2", by_index, "2"), false),
            (service("other", by_name, "gc-0"), false),
            (service("plus", by_name, "mh-+1"), false),
            (service("long", by_name, "mhx-1"), false),
        ];
        let config = Config::dark_tower();
        for (svc, matches) in cases {
            std::fs::write(dir.path().join("service.yaml"), &svc).unwrap();
            let out =
                crate::rules::testing::check_dir(&SelectorMatchesNothing, dir.path(), &config);
            assert_eq!(out.is_empty(), matches, "{svc}: {out:?}");
        }
        // A Deployment's pods carry no such label.
        let deployment = sts.replace("StatefulSet", "Deployment");
        std::fs::write(dir.path().join("statefulset.yaml"), deployment).unwrap();
        std::fs::write(
            dir.path().join("service.yaml"),
            service("mh-0", by_name, "mh-0"),
        )
        .unwrap();
        let out = crate::rules::testing::check_dir(&SelectorMatchesNothing, dir.path(), &config);
        assert_eq!(out.len(), 1, "{out:?}");
    }
}
