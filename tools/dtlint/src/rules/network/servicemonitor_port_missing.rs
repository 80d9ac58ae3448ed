use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::{Resource, Selector};
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks that every `endpoints[].port` of a ServiceMonitor names a port
    /// of the Services it selects.
    ///
    /// ## Why is this bad?
    /// The Prometheus operator matches endpoints by Service port *name*. A
    /// name that does not exist makes the target disappear from Prometheus
    /// without an error; dashboards go flat and alerts on absence are the
    /// only hint.
    ///
    /// ## Example
    /// ```yaml
    /// endpoints:
    ///   - port: http-metrics   # the Service calls it `metrics`
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// endpoints:
    ///   - port: metrics
    ///     path: /metrics
    /// ```
    ///
    /// ## References
    /// - ServiceMonitor endpoints: <https://prometheus-operator.dev/docs/api-reference/api/#monitoring.coreos.com/v1.Endpoint>
    pub struct ServiceMonitorPortMissing {
        id: "servicemonitor-port-missing",
        category: "network",
        severity: Error,
        summary: "a ServiceMonitor scrapes a port name its Service does not have",
        needs: Repository,
    }
}

impl Rule for ServiceMonitorPortMissing {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Kind("ServiceMonitor"))
    }

    fn check_object(&self, ctx: &Context<'_>, sm: &Resource<'_>, out: &mut Vec<Finding>) {
        let idx = ctx.index;
        let Some(spec) = sm.spec() else { return };
        let Some(sel_node) = spec.get("selector") else {
            return;
        };
        let sel = Selector {
            node: sel_node,
            structured: true,
        };
        let services = idx.services_matching(&sel, sm, false);
        if services.is_empty() {
            return;
        }
        for ep in spec.get("endpoints").into_iter().flat_map(Node::items) {
            let Some(port) = ep.get("port") else { continue };
            let Some(name) = port.as_str() else { continue };
            let found = services.iter().any(|s| {
                s.spec()
                    .and_then(|sp| sp.get("ports"))
                    .into_iter()
                    .flat_map(Node::items)
                    .any(|p| p.get("name").and_then(Node::as_str) == Some(name))
            });
            if !found {
                let s = services[0];
                let ports_span = s
                    .spec()
                    .and_then(|sp| sp.entry("ports"))
                    .map_or_else(|| s.anchor_span(), |e| e.key.span);
                let f = Finding::new(Self::META.id, Label::new(sm.file, port.span, "no Service port has this name"), format!("{} scrapes port `{name}`, which {} does not name", sm.id(), s.id()))
                    .with(Label::new(s.file, ports_span, "ports of the selected Service"))
                    .help("Use the name of the Service's metrics port (ServiceMonitors match ports by name).");
                let names = s
                    .spec()
                    .and_then(|sp| sp.get("ports"))
                    .into_iter()
                    .flat_map(Node::items)
                    .filter_map(|p| p.get("name"));
                out.push(match crate::rules::closest_node(name, names) {
                    Some(near) => f.did_you_mean(near.as_str().unwrap_or(""), s.file, near.span),
                    None => f,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_endpoint_port_says_which_port_was_meant() {
        let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: gc, labels: {app: gc}}\nspec:\n  selector: {app: gc}\n  ports:\n    - {name: http, port: 80}\n    - {name: metrics, port: 9090}\n";
        let sm = "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: gc}\nspec:\n  selector: {matchLabels: {app: gc}}\n  endpoints:\n    - port: metric\n";
        let out = crate::rules::testing::run(
            &ServiceMonitorPortMissing,
            &[("s.yaml", svc), ("sm.yaml", sm)],
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            out[0].message.ends_with("; did you mean `metrics`?"),
            "{}",
            out[0].message
        );
        assert_eq!(out[0].secondary[0].span.start.line, 8);
    }
}
