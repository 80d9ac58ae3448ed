use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

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

impl Rule for MissingResources {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        for r in ctx.index.workloads() {
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
                let span = c
                    .node
                    .entry("resources")
                    .map_or_else(|| c.anchor_span(), |e| e.key.span);
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
}
