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

use crate::diag::{Finding, Label, Replacement};
use crate::model::{Container, Resource};

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

/// A setting that should be the boolean `want` but is not. A quoted
/// `"false"` is a string, which the API server rejects, and says so.
pub(crate) fn wrong_bool(
    rule: &'static str,
    r: &Resource<'_>,
    c: &Container<'_>,
    key: &str,
    want: bool,
    n: &Node,
) -> Finding {
    let text = n.as_scalar().map_or("?", |s| s.text.as_str());
    if n.as_bool().is_some() {
        Finding::new(
            rule,
            Label::new(r.file, n.span, format!("must be {want}")),
            format!("container `{}` of {} sets {key}: {text}", c.name(), r.id()),
        )
    } else {
        Finding::new(
            rule,
            Label::new(r.file, n.span, format!("{}, not a boolean", n.type_name())),
            format!(
                "container `{}` of {} sets {key} to a non-boolean `{text}`",
                c.name(),
                r.id()
            ),
        )
    }
}

/// Shared shape of the "this boolean must be X" rules.
pub(crate) fn require_bool(
    r: &Resource<'_>,
    rule: &'static str,
    key: &str,
    want: bool,
    pod_level: bool,
    help: &str,
    out: &mut Vec<Finding>,
) {
    for c in r.containers() {
        let setting = effective(r, &c, key, pod_level);
        let mut f = match setting {
            Some(n) if n.as_bool() == Some(want) => continue,
            Some(n) => wrong_bool(rule, r, &c, key, want, n).help(help.to_string()),
            None => Finding::new(
                rule,
                Label::new(r.file, missing_span(&c), format!("no {key}: {want}")),
                format!(
                    "container `{}` of {} does not set {key}: {want}",
                    c.name(),
                    r.id()
                ),
            )
            .help(help.to_string()),
        };
        // Fixed in the container; a pod-level setting is the pod's to change.
        let own = c.node.path(&["securityContext", key]);
        if setting.is_none() || own.is_some() {
            f.replacement = Some(Replacement::in_container(
                &["securityContext", key],
                want.to_string(),
                own.is_some(),
            ));
        }
        out.push(f);
    }
}

#[cfg(test)]
mod tests {
    use dtlint_yaml::{Limits, LineIndex, parse};

    use super::*;
    use crate::source::FileId;
    use crate::workspace::Role;

    #[test]
    fn a_quoted_boolean_is_named_as_a_string() {
        let src = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - name: c\n      securityContext: {allowPrivilegeEscalation: \"false\", readOnlyRootFilesystem: false}\n";
        let parsed = parse(src, &LineIndex::new(src), Limits::default());
        let r =
            Resource::from_node(FileId(0), 0, &parsed.documents[0].root, Role::Standalone).unwrap();
        let c = r.containers().next().unwrap();
        let sc = c.node.get("securityContext").unwrap();
        let f = wrong_bool(
            "privilege-escalation",
            &r,
            &c,
            "allowPrivilegeEscalation",
            false,
            sc.get("allowPrivilegeEscalation").unwrap(),
        );
        assert_eq!(
            f.message,
            "container `c` of Pod/p sets allowPrivilegeEscalation to a non-boolean `false`"
        );
        assert_eq!(f.primary.message, "a string, not a boolean");
        let f = wrong_bool(
            "writable-root-fs",
            &r,
            &c,
            "readOnlyRootFilesystem",
            true,
            sc.get("readOnlyRootFilesystem").unwrap(),
        );
        assert_eq!(
            f.message,
            "container `c` of Pod/p sets readOnlyRootFilesystem: false"
        );
    }
}
