//! Rules about containers in pod templates: resources, probes and env.
pub mod missing_liveness_probe;
pub mod missing_readiness_probe;
pub mod missing_resources;
pub mod probe_port_undeclared;
pub mod secret_in_env_literal;

use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::{Container, Resource};

/// The two probe rules on one workload: every main container of a
/// long-running workload (Jobs run to completion and are not probed).
pub(crate) fn check_probes(
    ctx: &crate::rules::Context<'_>,
    rule: &'static str,
    r: &Resource<'_>,
    key: &str,
    path: &str,
    out: &mut Vec<Finding>,
) {
    if matches!(r.kind, "Job" | "CronJob") {
        return;
    }
    for c in r.main_containers() {
        check_probe(ctx, rule, r, &c, key, path, out);
    }
}

/// Shared check for the two probe rules: the probe exists and, when it is an
/// HTTP probe, uses the standard path.
pub(crate) fn check_probe(
    ctx: &crate::rules::Context<'_>,
    rule: &'static str,
    r: &Resource<'_>,
    c: &Container<'_>,
    key: &str,
    path: &str,
    out: &mut Vec<Finding>,
) {
    let own = c
        .node
        .get("image")
        .and_then(Node::as_str)
        .is_some_and(|i| ctx.config.is_own_image(i));
    let Some(probe) = c.node.get(key) else {
        // Our services serve the standard path; a third-party image gets
        // whatever probe suits it.
        let help = if own {
            format!("Add a {key} with `httpGet: {{path: {path}, port: <http port name>}}`.")
        } else {
            format!(
                "Add a {key} that fits the image: `httpGet`, `tcpSocket`, or an `exec` command such as a client ping."
            )
        };
        out.push(
            Finding::new(
                rule,
                Label::new(r.file, c.anchor_span(), format!("no {key}")),
                format!("container `{}` of {} has no {key}", c.name(), r.id()),
            )
            .help(help),
        );
        return;
    };
    if own
        && let Some(p) = probe.path(&["httpGet", "path"])
        && p.as_str() != Some(path)
    {
        out.push(
            Finding::new(
                rule,
                Label::new(r.file, p.span, format!("expected {path}")),
                format!(
                    "{key} of container `{}` uses `{}` instead of `{path}`",
                    c.name(),
                    p.as_str().unwrap_or("")
                ),
            )
            .help(format!(
                "Point the {key} at `{path}`, the endpoint every Dark Tower service serves for it."
            )),
        );
    }
}

/// The port a probe targets, if any.
pub(crate) fn probe_port(probe: &Node) -> Option<&Node> {
    ["httpGet", "tcpSocket", "grpc"]
        .iter()
        .find_map(|k| probe.get(k).and_then(|h| h.get("port")))
}
