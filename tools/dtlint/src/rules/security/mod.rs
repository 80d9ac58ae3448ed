//! Rules about pod and container security contexts.
pub mod capabilities_not_dropped;
pub mod host_namespace;
pub mod host_path_volume;
pub mod missing_seccomp;
pub mod privilege_escalation;
pub mod privileged_container;
pub mod run_as_root;
pub mod writable_root_fs;

use dtlint_yaml::{Node, Span};

use crate::diag::{Finding, Label};
use crate::model::{Container, Resource};
use crate::rules::Context;

/// A container's setting, falling back to the pod's when `pod_level` is true.
pub(crate) fn effective<'a>(
    r: &Resource<'a>,
    c: &Container<'a>,
    key: &str,
    pod_level: bool,
) -> Option<&'a Node> {
    c.node
        .get("securityContext")
        .and_then(|s| s.get(key))
        .or_else(|| {
            pod_level
                .then(|| {
                    r.pod_spec()
                        .and_then(|p| p.get("securityContext"))
                        .and_then(|s| s.get(key))
                })
                .flatten()
        })
}

/// Where to point when a container's security setting is missing.
pub(crate) fn missing_span(c: &Container<'_>) -> Span {
    c.node
        .entry("securityContext")
        .map_or_else(|| c.anchor_span(), |e| e.key.span)
}

/// Shared shape of the "this boolean must be X" rules.
pub(crate) fn require_bool(
    ctx: &Context<'_>,
    rule: &'static str,
    key: &str,
    want: bool,
    pod_level: bool,
    help: &str,
    out: &mut Vec<Finding>,
) {
    for r in ctx.index.workloads() {
        for c in r.containers() {
            match effective(r, &c, key, pod_level) {
                Some(n) if n.as_bool() == Some(want) => {}
                Some(n) => out.push(
                    Finding::new(
                        rule,
                        Label::new(r.file, n.span, format!("must be {want}")),
                        format!(
                            "container `{}` of {} sets {key}: {}",
                            c.name(),
                            r.id(),
                            n.as_scalar().map_or("?", |s| s.text.as_str())
                        ),
                    )
                    .help(help.to_string()),
                ),
                None => out.push(
                    Finding::new(
                        rule,
                        Label::new(r.file, missing_span(&c), format!("no {key}: {want}")),
                        format!(
                            "container `{}` of {} does not set {key}: {want}",
                            c.name(),
                            r.id()
                        ),
                    )
                    .help(help.to_string()),
                ),
            }
        }
    }
}
