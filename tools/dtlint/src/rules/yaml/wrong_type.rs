use dtlint_yaml::{Node, Value};

use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks the type of the fields that most often hold the wrong one:
    /// `metadata` and its `name`, `labels` and `annotations` (string values
    /// only), `spec.replicas`, container lists, `containerPort`, and env
    /// `value` (always a string).
    ///
    /// ## Why is this bad?
    /// The API server rejects the whole object, and only when Flux applies it:
    /// `value: 8080` in an env var or a label `enabled: true` passes review
    /// and `kustomize build`, then fails in the cluster.
    ///
    /// ## Example
    /// ```yaml
    /// env:
    ///   - name: PORT
    ///     value: 8080
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// env:
    ///   - name: PORT
    ///     value: "8080"
    /// ```
    ///
    /// ## References
    /// - EnvVar: <https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#environment-variables>
    /// - Labels: <https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set>
    pub struct WrongType {
        id: "wrong-type",
        category: "yaml",
        severity: Error,
        summary: "a well-known field holds a value of the wrong type",
    }
}

/// A float under the YAML 1.2 core schema.
fn is_core_float(t: &str) -> bool {
    let body = t.strip_prefix(['-', '+']).unwrap_or(t);
    if matches!(body, ".inf" | ".Inf" | ".INF") || matches!(t, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((a, b)) => {
            (digits(a) || a.is_empty())
                && (b.is_empty() || digits(b))
                && !(a.is_empty() && b.is_empty())
        }
        None => digits(mantissa),
    };
    let exp_ok = exp.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exp_ok
}

#[derive(Clone, Copy)]
enum Want {
    Mapping,
    Sequence,
    String,
    Integer,
}

impl Want {
    fn ok(self, n: &Node) -> bool {
        match (self, &n.value) {
            (Want::Mapping, Value::Mapping(_)) | (Want::Sequence, Value::Sequence(_)) => true,
            (Want::String, Value::Scalar(s)) => {
                !s.is_plain()
                    || (n.as_bool().is_none() && n.as_i64().is_none() && !is_core_float(&s.text))
            }
            // `replicas: null` is how a patch hands replicas to an autoscaler.
            (Want::Integer, Value::Scalar(_)) => n.as_i64().is_some() || n.is_null(),
            _ => n.is_null(),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Want::Mapping => "a mapping",
            Want::Sequence => "a sequence",
            Want::String => "a string",
            Want::Integer => "an integer",
        }
    }
}

/// What a value is, for "found …": like [`Node::type_name`], but a plain
/// `2.5` is a number here, not a string.
fn found(n: &Node) -> &'static str {
    match n.as_scalar() {
        Some(s) if s.is_plain() && is_core_float(&s.text) => "a number",
        _ => n.type_name(),
    }
}

/// `field` names the field for the message; it is only built for a finding,
/// so the common, correct case allocates nothing.
fn expect(
    r: &Resource<'_>,
    node: Option<&Node>,
    want: Want,
    field: impl FnOnce() -> String,
    out: &mut Vec<Finding>,
) {
    let Some(n) = node else { return };
    if want.ok(n) {
        return;
    }
    let field = field();
    let help = match want {
        Want::String => format!("Quote the value so `{field}` is a string."),
        _ => format!("Write `{field}` as {}.", want.name()),
    };
    out.push(
        Finding::new(
            WrongType::META.id,
            Label::new(r.file, n.span, format!("found {}", found(n))),
            format!("`{field}` must be {}", want.name()),
        )
        .help(help),
    );
}

impl Rule for WrongType {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Documents)
    }

    fn check_object(&self, _ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        let meta = r.root.get("metadata");
        expect(r, meta, Want::Mapping, || "metadata".into(), out);
        // Every kind's `spec` is an object (a Pod written with `spec:` as
        // a list is rejected, or its containers silently lost).
        expect(r, r.root.get("spec"), Want::Mapping, || "spec".into(), out);
        // The pod template's metadata is named by its path, so a label
        // on the pods is not mistaken for one on the object.
        let template_path = match r.kind {
            "Pod" => None,
            "CronJob" => Some("spec.jobTemplate.spec.template.metadata"),
            _ => Some("spec.template.metadata"),
        };
        let template_meta =
            template_path.and_then(|p| Some((p, r.pod_template()?.get("metadata")?)));
        let metas = meta
            .map(|m| ("metadata", m))
            .into_iter()
            .chain(template_meta);
        for (path, m) in metas {
            expect(
                r,
                m.get("name"),
                Want::String,
                || format!("{path}.name"),
                out,
            );
            for key in ["labels", "annotations"] {
                let Some(map) = m.get(key) else { continue };
                expect(r, Some(map), Want::Mapping, || format!("{path}.{key}"), out);
                for e in map.entries() {
                    let field = || format!("{path}.{key}.{}", e.key.as_str().unwrap_or("?"));
                    expect(r, Some(&e.value), Want::String, field, out);
                }
            }
        }
        if r.is_workload() {
            expect(
                r,
                r.spec().and_then(|s| s.get("replicas")),
                Want::Integer,
                || "spec.replicas".into(),
                out,
            );
            if let Some(ps) = r.pod_spec() {
                for key in ["containers", "initContainers"] {
                    expect(r, ps.get(key), Want::Sequence, || key.into(), out);
                }
            }
            for c in r.containers() {
                expect(
                    r,
                    Some(c.node),
                    Want::Mapping,
                    || "containers[]".into(),
                    out,
                );
                for p in c.ports() {
                    expect(
                        r,
                        p.get("containerPort"),
                        Want::Integer,
                        || "ports[].containerPort".into(),
                        out,
                    );
                }
                for env in c.node.get("env").into_iter().flat_map(Node::items) {
                    expect(
                        r,
                        env.get("value"),
                        Want::String,
                        || "env[].value".into(),
                        out,
                    );
                }
            }
        }
        if r.kind == "ConfigMap" {
            for e in r.root.get("data").into_iter().flat_map(Node::entries) {
                let field = || format!("data.{}", e.key.as_str().unwrap_or("?"));
                expect(r, Some(&e.value), Want::String, field, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_spec_written_as_a_list_is_reported() {
        let pod =
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  - name: c\n    image: x:1\n";
        let out = crate::rules::testing::run(&WrongType, &[("p.yaml", pod)]);
        assert!(
            out.iter().any(|f| f.message == "`spec` must be a mapping"),
            "{out:?}"
        );
    }
    use dtlint_yaml::{Limits, LineIndex, parse};

    use super::*;

    fn node(text: &str) -> Node {
        let src = format!("v: {text}\n");
        let parsed = parse(&src, &LineIndex::new(&src), Limits::default());
        parsed.documents[0].root.get("v").unwrap().clone()
    }

    #[test]
    fn null_replicas_and_float_names() {
        assert!(Want::Integer.ok(&node("null")));
        assert!(Want::Integer.ok(&node("3")));
        assert!(!Want::Integer.ok(&node("\"3\"")));
        assert_eq!(found(&node("2.5")), "a number");
        assert_eq!(found(&node("\"2.5\"")), "a string");
        assert_eq!(found(&node("true")), "a boolean");
    }
}
