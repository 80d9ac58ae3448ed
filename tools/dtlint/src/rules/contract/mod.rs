//! Rules about the config contract: the environment variables a service
//! reads (`services/<svc>/config-contract.toml`) against what its workload
//! provides.

use dtlint_yaml::{Node, Span};

use crate::contract::Contract;
use crate::model::{ConfigKind, Container, Index, Resource};

pub mod env_contract;
pub mod env_unused;

/// Where a variable's value comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'n> {
    /// `value:` (or nothing).
    Literal,
    /// A `value:` that expands (`$(VAR)`) a variable set earlier from a
    /// Secret, such as a URL built around a password: the secret part never
    /// appears in the manifest.
    ExpandsSecret,
    /// `valueFrom.configMapKeyRef` / `secretKeyRef`.
    Key {
        kind: ConfigKind,
        name: &'n str,
        key: &'n Node,
        optional: bool,
    },
    /// `fieldRef`, `resourceFieldRef`.
    Downward,
    /// A key of an `envFrom` ConfigMap or Secret.
    EnvFrom { kind: ConfigKind },
}

/// One variable the container sets.
#[derive(Debug, Clone)]
pub(crate) struct Provided<'n> {
    pub name: String,
    /// The `name` value of the env entry, or the `envFrom` item.
    pub span: Span,
    pub source: Source<'n>,
}

/// The workloads that run `contract.service`, with the container that runs it.
pub(crate) fn targets<'i, 'a>(
    idx: &'i Index<'a>,
    contract: &'i Contract,
) -> impl Iterator<Item = (&'i Resource<'a>, Container<'a>)> + 'i {
    idx.workloads().filter_map(move |w| {
        let name = w.pod_labels()?.get(crate::netpol::NAME_LABEL)?.as_str()?;
        if name != contract.service {
            return None;
        }
        let c = w
            .main_containers()
            .find(|c| c.name() == contract.service)
            .or_else(|| w.main_containers().next())?;
        Some((w, c))
    })
}

/// Kubernetes `$(VAR)` expansion of an env `value`: a reference to a
/// variable `lookup` knows is replaced, `$$` is a literal `$`, anything
/// else (an unknown variable included) is left as written.
pub(crate) fn expand(template: &str, mut lookup: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            if let Some(v) = lookup(name) {
                out.push_str(&v);
            } else {
                out.push_str("$(");
                out.push_str(name);
                out.push(')');
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The names a Kubernetes env value expands: `$(NAME)`, not the escaped
/// `$$(NAME)`.
pub(crate) fn expanded_names(value: &str) -> Vec<String> {
    let mut names = Vec::new();
    expand(value, |name| {
        names.push(name.to_owned());
        None
    });
    names
}

/// Whether a literal `value` expands a variable that an earlier entry reads
/// from a Secret (Kubernetes expands only variables defined before).
fn expands_secret(value: Option<&Node>, earlier: &[Provided<'_>]) -> bool {
    let Some(text) = value.and_then(Node::as_str) else {
        return false;
    };
    expanded_names(text).into_iter().any(|name| {
        earlier.iter().any(|p| {
            p.name == *name
                && matches!(
                    p.source,
                    Source::Key {
                        kind: ConfigKind::Secret,
                        ..
                    } | Source::EnvFrom {
                        kind: ConfigKind::Secret
                    }
                )
        })
    })
}

/// Every variable a container sets, `env` first, then `envFrom` keys.
pub(crate) fn provided<'n>(
    idx: &Index<'_>,
    w: &Resource<'_>,
    c: &Container<'n>,
) -> Vec<Provided<'n>> {
    let mut out = Vec::new();
    for e in c.node.get("env").into_iter().flat_map(Node::items) {
        let Some(name_node) = e.get("name") else {
            continue;
        };
        let Some(name) = name_node.as_str() else {
            continue;
        };
        let from = e.get("valueFrom");
        let source = match from {
            None if expands_secret(e.get("value"), &out) => Source::ExpandsSecret,
            None => Source::Literal,
            Some(v) => {
                let key_ref = [
                    ("configMapKeyRef", ConfigKind::ConfigMap),
                    ("secretKeyRef", ConfigKind::Secret),
                ]
                .into_iter()
                .find_map(|(k, kind)| Some((v.get(k)?, kind)));
                match key_ref {
                    Some((r, kind)) => match (r.get("name").and_then(Node::as_str), r.get("key")) {
                        (Some(name), Some(key)) => Source::Key {
                            kind,
                            name,
                            key,
                            optional: r.get("optional").and_then(Node::as_bool) == Some(true),
                        },
                        _ => continue,
                    },
                    None => Source::Downward,
                }
            }
        };
        out.push(Provided {
            name: name.to_string(),
            span: name_node.span,
            source,
        });
    }
    for item in c.node.get("envFrom").into_iter().flat_map(Node::items) {
        let prefix = item.get("prefix").and_then(Node::as_str).unwrap_or("");
        for (key, kind) in [
            ("configMapRef", ConfigKind::ConfigMap),
            ("secretRef", ConfigKind::Secret),
        ] {
            let Some(name) = item
                .get(key)
                .and_then(|r| r.get("name"))
                .and_then(Node::as_str)
            else {
                continue;
            };
            for obj in idx.config_objects(kind, name, w) {
                for k in &obj.keys {
                    out.push(Provided {
                        name: format!("{prefix}{k}"),
                        span: item.span,
                        source: Source::EnvFrom { kind },
                    });
                }
            }
        }
    }
    out
}

/// Does the ConfigMap/Secret key a variable reads exist?
pub(crate) fn key_exists(
    idx: &Index<'_>,
    w: &Resource<'_>,
    kind: ConfigKind,
    name: &str,
    key: &str,
) -> bool {
    idx.config_objects(kind, name, w)
        .any(|c| c.keys.iter().any(|k| k == key))
}

#[cfg(test)]
mod expansion_tests {
    use super::{expand, expanded_names};

    #[test]
    fn kubernetes_expansion() {
        let vars = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(expand("$(A)-$(B)-$$(A)-$-$(", vars), "x-$(B)-$(A)-$-$(");
        assert_eq!(expand("", vars), "");
        assert_eq!(expand("$", vars), "$");
    }

    #[test]
    fn names_a_value_expands() {
        assert_eq!(
            expanded_names("postgres://$(DB_USER):$(DB_PASSWORD)@h/db"),
            ["DB_USER", "DB_PASSWORD"]
        );
        assert_eq!(expanded_names("$$(NOT_ME) $(ME) $(unclosed"), ["ME"]);
        assert!(expanded_names("plain").is_empty());
    }
}
