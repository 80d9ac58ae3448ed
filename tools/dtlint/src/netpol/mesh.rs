//! The Linkerd service mesh as the network rules see it: which pods carry a
//! proxy, the port meshed calls really arrive on, and the per-port
//! authorization (`Server`, `AuthorizationPolicy`, `MeshTLSAuthentication`,
//! `NetworkAuthentication`) that keeps a meshed caller to its ports.
//!
//! Between two meshed pods the client's proxy connects to the server's
//! proxy on its inbound port (4143) for opaque ports such as PostgreSQL's
//! and Redis' and, in current Linkerd, for every port; the server's proxy
//! then hands the connection to the application port. A NetworkPolicy
//! therefore has to open 4143 on both sides of every meshed edge, and once
//! it does, the port numbers in its rules no longer limit a meshed caller:
//! Linkerd's own policy resources do.

use dtlint_yaml::Node;

use super::Namespaces;
use crate::model::{Index, Resource, Selector};

/// The pod (template) or namespace annotation that asks for a proxy.
pub const INJECT_ANNOTATION: &str = "linkerd.io/inject";

/// The proxy's inbound port: what meshed callers connect to.
pub const PROXY_INBOUND_PORT: u32 = 4143;

/// The API group of Linkerd's policy resources.
pub const POLICY_GROUP: &str = "policy.linkerd.io";

/// The `linkerd.io/inject` value of a pod template or of the pods an
/// operator makes (a CloudNativePG `Cluster`'s `spec.inheritedMetadata`, a
/// `Pooler`'s `spec.template`).
pub fn pod_inject<'a>(owner: &Resource<'a>) -> Option<&'a Node> {
    match owner.pod_template() {
        Some(t) => t.path(&["metadata", "annotations", INJECT_ANNOTATION]),
        None if owner.kind == "Pooler" => {
            owner
                .spec()?
                .path(&["template", "metadata", "annotations", INJECT_ANNOTATION])
        }
        None => owner
            .spec()?
            .path(&["inheritedMetadata", "annotations", INJECT_ANNOTATION]),
    }
}

/// Does an inject value turn the proxy on?
pub fn injects(value: &str) -> bool {
    matches!(value, "enabled" | "ingress")
}

/// The namespace's own `linkerd.io/inject`, among the objects of `env`.
pub fn namespace_inject<'a>(
    index: &Index<'a>,
    namespace: &str,
    env: Option<&str>,
) -> Option<&'a Node> {
    index
        .namespace_object(namespace, env)
        .and_then(|r| r.annotation(INJECT_ANNOTATION))
}

/// Is a pod of `owner` in `namespace` meshed? Its own annotation decides,
/// else its namespace's.
pub fn is_meshed(owner: &Resource<'_>, namespace_value: Option<&Node>) -> bool {
    match pod_inject(owner).and_then(Node::as_str) {
        Some(v) => injects(v),
        None => namespace_value.and_then(Node::as_str).is_some_and(injects),
    }
}

/// A Linkerd `Server`: one port (or a named port) of the pods it selects.
#[derive(Debug, Clone)]
pub struct Server<'i, 'a> {
    pub r: &'i Resource<'a>,
    pub namespace: String,
    pub selector: Option<&'a Node>,
    /// `spec.port`: a number or a container port name.
    pub port: Option<&'a Node>,
}

impl Server<'_, '_> {
    /// Does it select a pod with these labels?
    pub fn selects(&self, labels: Option<&Node>, added: &[String]) -> bool {
        self.selector.is_some_and(|n| {
            Selector {
                node: n,
                structured: true,
            }
            .matches_with(labels, added)
        })
    }
}

/// Who an `AuthorizationPolicy` lets in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admits {
    /// Meshed callers with these ServiceAccounts (`namespace/name`).
    Accounts(Vec<String>),
    /// Every meshed caller (`identities: ["*"]`, a Namespace reference...).
    AnyMeshed,
    /// Callers by address, meshed or not (`NetworkAuthentication`), from
    /// the ranges it lists.
    Network(super::addresses::Networks),
}

/// One reference of an `AuthorizationPolicy`, resolved.
#[derive(Debug, Clone)]
pub struct Grant<'a> {
    pub policy: &'a Node,
    /// The node that grants it: an `identityRefs`/`identities` item, or
    /// the `requiredAuthenticationRefs` item.
    pub at: &'a Node,
    pub admits: Admits,
    /// The file of `at`.
    pub file: crate::source::FileId,
}

/// The service account identity Linkerd gives a caller: `namespace/name`.
pub fn account_of(owner: &Resource<'_>, namespace: &str) -> String {
    let name = owner
        .pod_spec()
        .and_then(|s| {
            s.get("serviceAccountName")
                .or_else(|| s.get("serviceAccount"))
        })
        .and_then(Node::as_str)
        .unwrap_or("default");
    format!("{namespace}/{name}")
}

/// A Linkerd identity string (`sa.ns.serviceaccount.identity.linkerd.<domain>`)
/// as `ns/sa`; `None` for patterns.
fn identity_account(identity: &str) -> Option<String> {
    let mut parts = identity.split('.');
    let sa = parts.next()?;
    let ns = parts.next()?;
    (parts.next() == Some("serviceaccount") && !sa.contains('*') && !ns.contains('*'))
        .then(|| format!("{ns}/{sa}"))
}

/// The grants of `before` that `next` also admits: both references of
/// one policy are required.
fn narrow<'a>(before: Vec<Grant<'a>>, next: Vec<Grant<'a>>) -> Vec<Grant<'a>> {
    let any = |grants: &[Grant<'_>]| grants.iter().any(|g| g.admits == Admits::AnyMeshed);
    // One side admits every meshed caller: the other decides.
    if any(&before) {
        return next;
    }
    if any(&next) {
        return before;
    }
    let admitted = |account: &String| {
        next.iter()
            .any(|g| matches!(&g.admits, Admits::Accounts(a) if a.contains(account)))
    };
    before
        .into_iter()
        .filter_map(|mut g| {
            if let Admits::Accounts(a) = &g.admits {
                let kept: Vec<String> = a.iter().filter(|x| admitted(x)).cloned().collect();
                if kept.is_empty() {
                    return None;
                }
                g.admits = Admits::Accounts(kept);
            }
            Some(g)
        })
        .collect()
}

/// What one authentication object (`MeshTLSAuthentication` or
/// `NetworkAuthentication`) admits, item by item.
fn authentication<'a>(authn: &Resource<'a>, namespace: &str) -> Vec<(&'a Node, Admits)> {
    let Some(spec) = authn.spec() else {
        return Vec::new();
    };
    if authn.kind == "NetworkAuthentication" {
        return vec![(
            spec,
            Admits::Network(super::addresses::Networks::read(spec)),
        )];
    }
    let mut out = Vec::new();
    for item in spec.get("identities").into_iter().flat_map(Node::items) {
        let admits = item
            .as_str()
            .and_then(identity_account)
            .map_or(Admits::AnyMeshed, |a| Admits::Accounts(vec![a]));
        out.push((item, admits));
    }
    for item in spec.get("identityRefs").into_iter().flat_map(Node::items) {
        let kind = item.get("kind").and_then(Node::as_str).unwrap_or("");
        let name = item.get("name").and_then(Node::as_str);
        let ns = item
            .get("namespace")
            .and_then(Node::as_str)
            .unwrap_or(namespace);
        let admits = match (kind, name) {
            ("ServiceAccount", Some(n)) if n != "*" => Admits::Accounts(vec![format!("{ns}/{n}")]),
            _ => Admits::AnyMeshed,
        };
        out.push((item, admits));
    }
    out
}

/// Linkerd's policy objects of one environment.
pub struct Authz<'i, 'a> {
    pub servers: Vec<Server<'i, 'a>>,
    policies: Vec<(&'i Resource<'a>, String)>,
    authns: Vec<(&'i Resource<'a>, String)>,
}

impl<'i, 'a> Authz<'i, 'a> {
    pub fn build(
        index: &'i Index<'a>,
        namespaces: &Namespaces,
        in_scope: impl Fn(&Resource<'a>) -> bool,
    ) -> Self {
        let linkerd = |kind: &'static str| {
            index
                .of_kind(kind)
                .filter(|r| r.group() == POLICY_GROUP && in_scope(r))
                .map(|r| (r, namespaces.of(r)))
        };
        Self {
            servers: linkerd("Server")
                .map(|(r, namespace)| Server {
                    r,
                    namespace,
                    selector: r.spec().and_then(|s| s.get("podSelector")),
                    port: r.spec().and_then(|s| s.get("port")),
                })
                .collect(),
            policies: linkerd("AuthorizationPolicy").collect(),
            authns: linkerd("MeshTLSAuthentication")
                .chain(linkerd("NetworkAuthentication"))
                .collect(),
        }
    }

    /// Does any Linkerd policy object exist here?
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.policies.is_empty()
    }

    /// Every grant of every `AuthorizationPolicy` that targets `server`
    /// (by name, or its whole namespace).
    pub fn grants(&self, server: &Server<'_, 'a>) -> Vec<Grant<'a>> {
        let mut out = Vec::new();
        for (p, ns) in &self.policies {
            if *ns != server.namespace {
                continue;
            }
            let Some(spec) = p.spec() else { continue };
            let target = spec.get("targetRef");
            let kind = target.and_then(|t| t.get("kind")).and_then(Node::as_str);
            let name = target.and_then(|t| t.get("name")).and_then(Node::as_str);
            let applies = match kind {
                Some("Server") => name == Some(server.r.name),
                Some("Namespace") => true,
                _ => false,
            };
            if !applies {
                continue;
            }
            let refs: Vec<&'a Node> = spec
                .get("requiredAuthenticationRefs")
                .into_iter()
                .flat_map(Node::items)
                .collect();
            // All references are required together: each identity reference
            // narrows who is admitted, and a network reference adds nothing
            // when an identity is also required.
            let mut identities: Option<Vec<Grant<'a>>> = None;
            let mut network: Option<Grant<'a>> = None;
            let mut unresolved = false;
            for item in refs {
                let kind = item.get("kind").and_then(Node::as_str).unwrap_or("");
                let name = item.get("name").and_then(Node::as_str).unwrap_or("");
                let ref_ns = item
                    .get("namespace")
                    .and_then(Node::as_str)
                    .unwrap_or(ns.as_str());
                let grants: Vec<Grant<'a>> = if kind == "ServiceAccount" {
                    vec![Grant {
                        policy: p.root,
                        at: item,
                        admits: Admits::Accounts(vec![format!("{ref_ns}/{name}")]),
                        file: p.file,
                    }]
                } else {
                    let Some((authn, authn_ns)) = self
                        .authns
                        .iter()
                        .find(|(a, a_ns)| a.kind == kind && a.name == name && a_ns == ref_ns)
                    else {
                        // A reference Linkerd cannot resolve: the policy admits nobody.
                        unresolved = true;
                        break;
                    };
                    authentication(authn, authn_ns)
                        .into_iter()
                        .map(|(at, admits)| Grant {
                            policy: p.root,
                            at,
                            admits,
                            file: authn.file,
                        })
                        .collect()
                };
                if grants
                    .iter()
                    .all(|g| matches!(g.admits, Admits::Network(_)))
                {
                    network = network.or_else(|| grants.into_iter().next());
                    continue;
                }
                identities = Some(match identities {
                    None => grants,
                    Some(before) => narrow(before, grants),
                });
            }
            if unresolved {
                continue;
            }
            match identities {
                Some(ids) => out.extend(ids),
                None => out.extend(network),
            }
        }
        out
    }
}
