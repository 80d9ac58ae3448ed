use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports pod volumes of type `hostPath`.
    ///
    /// ## Why is this bad?
    /// A hostPath volume exposes the node's filesystem to the pod: mounting
    /// `/var/run` or `/` hands over the node, and data written there is tied
    /// to one node and lost when the pod moves.
    ///
    /// ## Example
    /// ```yaml
    /// volumes:
    ///   - name: data
    ///     hostPath: {path: /var/lib/redis}
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// volumes:
    ///   - name: tmp
    ///     emptyDir: {}
    /// # or a PersistentVolumeClaim from volumeClaimTemplates for data
    /// ```
    ///
    /// ## References
    /// - hostPath: <https://kubernetes.io/docs/concepts/storage/volumes/#hostpath>
    pub struct HostPathVolume {
        id: "host-path-volume",
        category: "security",
        severity: Error,
        summary: "a pod mounts a directory of the node",
    }
}

impl Rule for HostPathVolume {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Workloads)
    }

    fn check_object(&self, _ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        for v in r
            .pod_spec()
            .and_then(|p| p.get("volumes"))
            .into_iter()
            .flat_map(Node::items)
        {
            if let Some(e) = v.entry("hostPath") {
                let path = e.value.get("path").and_then(Node::as_str).unwrap_or("?");
                out.push(
                    Finding::new(
                        Self::META.id,
                        Label::new(r.file, e.key.span, "node filesystem"),
                        format!(
                            "volume `{}` of {} mounts host path {path}",
                            v.get("name").and_then(Node::as_str).unwrap_or("?"),
                            r.id()
                        ),
                    )
                    .help("Use an emptyDir for scratch space or a PersistentVolumeClaim for data."),
                );
            }
        }
    }
}
