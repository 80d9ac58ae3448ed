use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::{Container, Resource};
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks that every container sets `requests` and `limits` for both
    /// `cpu` and `memory`.
    ///
    /// ## Why is this bad?
    /// Without requests the scheduler packs pods onto nodes that cannot run
    /// them; without a memory limit one leaking pod takes its neighbours down
    /// with the node. A media handler without requests gets scheduled next to
    /// another and both drop packets.
    ///
    /// ## Example
    /// ```yaml
    /// resources:
    ///   requests:
    ///     memory: 128Mi
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// resources:
    ///   requests: {cpu: 50m, memory: 128Mi}
    ///   limits: {cpu: 100m, memory: 256Mi}
    /// ```
    ///
    /// ## References
    /// - Resource management: <https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/>
    /// - ADR-0012, "Resource Sizing"
    pub struct MissingResources {
        id: "missing-resources",
        category: "pods",
        severity: Error,
        summary: "a container lacks cpu/memory requests or limits",
    }
}

/// The node to edit: `requests:` or `limits:` when everything missing is
/// under that one key, else `resources:`, else the container's name.
fn missing_span(c: &Container<'_>, missing: &[String]) -> dtlint_yaml::Span {
    let Some(res) = c.node.entry("resources") else {
        return c.anchor_span();
    };
    let kinds: Vec<&str> = missing
        .iter()
        .filter_map(|m| m.split_once('.'))
        .map(|(k, _)| k)
        .collect();
    let one_kind = kinds.first().filter(|k| kinds.iter().all(|x| x == *k));
    one_kind
        .and_then(|k| res.value.entry(k))
        .map_or(res.key.span, |e| e.key.span)
}

impl Rule for MissingResources {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Workloads)
    }

    fn check_object(&self, _ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        for c in r.containers() {
            let res = c.node.get("resources");
            let mut missing = Vec::new();
            for kind in ["requests", "limits"] {
                for what in ["cpu", "memory"] {
                    let v = res.and_then(|x| x.get(kind)).and_then(|x| x.get(what));
                    if v.and_then(Node::as_scalar)
                        .is_none_or(dtlint_yaml::Scalar::is_null)
                    {
                        missing.push(format!("{kind}.{what}"));
                    }
                }
            }
            if missing.is_empty() {
                continue;
            }
            let span = missing_span(&c, &missing);
            out.push(
                Finding::new(
                    Self::META.id,
                    Label::new(r.file, span, format!("missing {}", missing.join(", "))),
                    format!("container `{}` of {} does not set {}", c.name(), r.id(), missing.join(", ")),
                )
                .help("Set requests and limits for cpu and memory (see the environment sizing table)."),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use dtlint_yaml::{Limits, LineIndex, parse};

    use super::*;

    #[test]
    fn points_at_the_incomplete_key() {
        let src =
            "name: mh\nresources:\n  requests: {memory: 1Gi}\n  limits: {cpu: 1, memory: 1Gi}\n";
        let parsed = parse(src, &LineIndex::new(src), Limits::default());
        let c = Container {
            node: &parsed.documents[0].root,
            init: false,
        };
        let span = missing_span(&c, &["requests.cpu".to_string()]);
        assert_eq!((span.start.line, span.start.col), (3, 3));
        let span = missing_span(&c, &["requests.cpu".to_string(), "limits.cpu".to_string()]);
        assert_eq!((span.start.line, span.start.col), (2, 1));
    }
}
