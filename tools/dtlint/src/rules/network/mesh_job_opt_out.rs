use dtlint_yaml::{Node, Span};

use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::netpol::mesh::INJECT_ANNOTATION;
use crate::rules::{Context, Merged, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Finds pods that must run to completion but would get a Linkerd
    /// proxy: a `Job` or `CronJob` whose pods are meshed (their namespace
    /// says `linkerd.io/inject: enabled` and the template does not say
    /// `disabled`), and a CloudNativePG `Cluster` in such a namespace whose
    /// `spec.inheritedMetadata` does not opt out (the operator runs its
    /// initdb and join steps as Jobs with the Cluster's metadata).
    /// Proxies run as native sidecars
    /// (`config.beta.linkerd.io/proxy-enable-native-sidecar: "true"`, or the
    /// older `config.alpha` form, on the template or the namespace) stop
    /// with the job, so those pass.
    ///
    /// ## Why is this bad?
    /// A classic sidecar proxy keeps running after the job's container
    /// exits, so the pod never completes: the Job hangs, a CronJob piles up
    /// runs, and a CloudNativePG cluster never finishes bootstrapping.
    ///
    /// ## Example
    /// ```yaml
    /// # the namespace has linkerd.io/inject: enabled
    /// kind: Job
    /// spec:
    ///   template:
    ///     spec:
    ///       containers: [...]
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// kind: Job
    /// spec:
    ///   template:
    ///     metadata:
    ///       annotations:
    ///         linkerd.io/inject: disabled
    ///     spec:
    ///       containers: [...]
    /// ```
    ///
    /// ## References
    /// - Linkerd and Jobs: <https://linkerd.io/2-edge/tasks/graceful-shutdown/>
    /// - Native sidecars: <https://linkerd.io/2-edge/reference/proxy-configuration/>
    pub struct MeshJobOptOut {
        id: "mesh-job-opt-out",
        category: "network",
        severity: Error,
        summary: "a Job (or an operator's bootstrap Jobs) would get a Linkerd proxy and never complete",
        needs: Repository,
    }
}

/// The annotations that run the proxy as a native sidecar (beta now, alpha before).
const NATIVE_SIDECAR: [&str; 2] = [
    "config.beta.linkerd.io/proxy-enable-native-sidecar",
    "config.alpha.linkerd.io/proxy-enable-native-sidecar",
];

/// The annotations the pods of `owner` get, and where to point.
fn pod_metadata<'a>(owner: &Resource<'a>) -> Option<(Option<&'a Node>, Span, &'static str)> {
    if matches!(owner.kind, "Job" | "CronJob") {
        let template = owner.pod_template()?;
        let meta = template.get("metadata");
        let span = template
            .entry("metadata")
            .map_or(template.span, |e| e.key.span);
        return Some((meta.and_then(|m| m.get("annotations")), span, "its pods"));
    }
    if owner.group() == "postgresql.cnpg.io" && owner.kind == "Cluster" {
        let spec = owner.spec()?;
        let span = spec
            .entry("inheritedMetadata")
            .map_or_else(|| owner.anchor_span(), |e| e.key.span);
        let annotations = spec.path(&["inheritedMetadata", "annotations"]);
        return Some((annotations, span, "the operator's initdb and join Jobs"));
    }
    None
}

fn truthy(n: Option<&Node>) -> bool {
    n.and_then(Node::as_str) == Some("true")
}

impl Rule for MeshJobOptOut {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let mut collected = Merged::default();
        for net in ctx.nets() {
            for pod in &net.pods {
                if !pod.meshed {
                    continue;
                }
                let Some((annotations, span, what)) = pod_metadata(pod.owner) else {
                    continue;
                };
                let namespace = ctx.index.namespace_object(&pod.namespace, net.env);
                let native = NATIVE_SIDECAR.iter().any(|key| {
                    annotations.and_then(|a| a.get(key)).map_or_else(
                        || truthy(namespace.and_then(|n| n.annotation(key))),
                        |v| truthy(Some(v)),
                    )
                });
                if native {
                    continue;
                }
                let by = if annotations.and_then(|a| a.get(INJECT_ANNOTATION)).is_some() {
                    "its own linkerd.io/inject".to_string()
                } else {
                    format!("namespace {}'s linkerd.io/inject", pod.namespace)
                };
                let mut finding = Finding::new(
                    Self::META.id,
                    Label::new(
                        pod.owner.file,
                        span,
                        format!("{what} get a Linkerd proxy ({by})"),
                    ),
                    format!(
                        "{} would never complete: {what} are meshed and the proxy outlives the work",
                        pod.owner.id()
                    ),
                )
                .help("Annotate the pods with `linkerd.io/inject: disabled` (for a CloudNativePG Cluster under spec.inheritedMetadata.annotations), or run the proxy as a native sidecar (config.beta.linkerd.io/proxy-enable-native-sidecar: \"true\").");
                if let Some(ns) = namespace
                    && let Some(v) = ns.annotation(INJECT_ANNOTATION)
                {
                    finding = finding.with(Label::new(
                        ns.file,
                        v.span,
                        "the namespace meshes every pod",
                    ));
                }
                collected.add(finding, net.env);
            }
        }
        out.extend(collected.into_findings());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;

    const NS: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: default\n  annotations: {linkerd.io/inject: enabled}\n";

    fn job(annotations: &str) -> String {
        format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: register}}\nspec:\n  template:\n    metadata:\n      annotations: {{{annotations}}}\n    spec: {{containers: [{{name: c}}]}}\n"
        )
    }

    fn cluster(inherited: &str) -> String {
        format!(
            "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata: {{name: pg}}\nspec:\n  instances: 1\n  inheritedMetadata:\n    labels: {{app.kubernetes.io/name: postgres}}\n{inherited}"
        )
    }

    #[test]
    fn a_meshed_job_is_reported_at_its_pod_metadata() {
        let j = job("");
        let out = run(&MeshJobOptOut, &[("ns.yaml", NS), ("job.yaml", &j)]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].message,
            "Job/register would never complete: its pods are meshed and the proxy outlives the work"
        );
        assert_eq!(out[0].primary.span.start.line, 6);
        assert_eq!(
            out[0].secondary[0].message,
            "the namespace meshes every pod"
        );
    }

    #[test]
    fn opted_out_native_sidecar_and_unmeshed_jobs_pass() {
        for j in [
            job("linkerd.io/inject: disabled"),
            job("config.alpha.linkerd.io/proxy-enable-native-sidecar: \"true\""),
            job("config.beta.linkerd.io/proxy-enable-native-sidecar: \"true\""),
        ] {
            assert!(run(&MeshJobOptOut, &[("ns.yaml", NS), ("job.yaml", &j)]).is_empty());
        }
        // No meshed namespace, no proxy.
        assert!(run(&MeshJobOptOut, &[("job.yaml", &job(""))]).is_empty());
        // A Deployment is not a job.
        let d = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec: {containers: [{name: c}]}\n";
        assert!(run(&MeshJobOptOut, &[("ns.yaml", NS), ("d.yaml", d)]).is_empty());
    }

    #[test]
    fn a_cloudnative_pg_cluster_must_opt_its_jobs_out() {
        let c = cluster("");
        let out = run(&MeshJobOptOut, &[("ns.yaml", NS), ("c.yaml", &c)]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].primary.message,
            "the operator's initdb and join Jobs get a Linkerd proxy (namespace default's linkerd.io/inject)"
        );
        assert_eq!(out[0].primary.span.start.line, 6, "at inheritedMetadata");
        let c = cluster("    annotations: {linkerd.io/inject: disabled}\n");
        assert!(run(&MeshJobOptOut, &[("ns.yaml", NS), ("c.yaml", &c)]).is_empty());
    }
}
