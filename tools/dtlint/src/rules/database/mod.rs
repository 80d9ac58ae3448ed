//! Rules about how services reach PostgreSQL: connection URLs that do not
//! verify the server, and services whose migrations share one database.
//!
//! Both read connection URLs (`postgres://` / `postgresql://`, libpq's
//! URI form) with [`PgUrl`]. `shared-migrated-database` also resolves a
//! container's `DATABASE_URL` as the kubelet would ([`EnvScope`],
//! [`resolve_env`]): a literal `value` with `$(VAR)` references to earlier
//! variables expanded, or the ConfigMap or Secret key it reads, merged with
//! the environment's patches and decrypted when the run has a key.

pub mod postgres_server_certificate;
pub mod postgres_tls_not_verified;
pub mod shared_migrated_database;

use std::collections::{HashMap, HashSet};

use dtlint_yaml::{Node, Span};

use crate::model::{ConfigKind, Container, Resource};
use crate::rules::Context;
use crate::rules::contract::expand;
use crate::rules::values::{decode_base64, decrypted_at, is_encrypted};
use crate::source::FileId;
use crate::workspace::Role;

/// The port libpq uses when the URL names none.
pub(crate) const DEFAULT_PORT: &str = "5432";

/// A PostgreSQL connection URI, split the way libpq reads it:
/// `postgres[ql]://[user[:password]@][host[:port][,...]][/dbname][?param=value&...]`.
/// Parameters in the query override the parts before it (`host`, `port`,
/// `dbname`, `user`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PgUrl<'t> {
    pub user: Option<&'t str>,
    /// Each host with its port, as written.
    pub hosts: Vec<(&'t str, Option<&'t str>)>,
    /// The path after `/`, as written.
    pub path: Option<&'t str>,
    /// The query parameters, percent-decoded, in order.
    pub params: Vec<(String, String)>,
}

impl<'t> PgUrl<'t> {
    /// Parse a URL; `None` when it is not a `postgres://` or
    /// `postgresql://` URL.
    pub fn parse(text: &'t str) -> Option<Self> {
        let text = text.trim();
        let (scheme, rest) = text.split_once("://")?;
        if !scheme.eq_ignore_ascii_case("postgres") && !scheme.eq_ignore_ascii_case("postgresql") {
            return None;
        }
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
        let (rest, query) = rest.split_once('?').map_or((rest, ""), |(r, q)| (r, q));
        let (authority, path) = rest
            .split_once('/')
            .map_or((rest, None), |(a, p)| (a, Some(p)));
        let (userinfo, hostlist) = authority
            .rsplit_once('@')
            .map_or((None, authority), |(u, h)| (Some(u), h));
        let user = userinfo.map(|u| u.split_once(':').map_or(u, |(user, _)| user));
        let hosts = hostlist
            .split(',')
            .filter(|h| !h.is_empty())
            .map(split_port)
            .collect();
        let params = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Some(Self {
            user,
            hosts,
            path,
            params,
        })
    }

    /// The last value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// True when the query still holds an unexpanded `$(VAR)`, so a
    /// parameter may come from a variable this run could not resolve.
    pub fn query_unresolved(&self) -> bool {
        self.params
            .iter()
            .any(|(k, v)| k.contains("$(") || v.contains("$("))
    }

    /// The server and database the URL connects to: (first host, port,
    /// database), with `host`, `port` and `dbname` parameters taking
    /// precedence and the database defaulting to the user name, as libpq
    /// does. `None` when any of them is missing or not literal.
    pub fn target(&self) -> Option<(String, String, String)> {
        let (url_host, url_port) = self.hosts.first().copied().unwrap_or(("", None));
        let host = self
            .param("host")
            .and_then(|h| h.split(',').next())
            .unwrap_or(url_host);
        let port = self
            .param("port")
            .and_then(|p| p.split(',').next())
            .or(url_port)
            .filter(|p| !p.is_empty())
            .unwrap_or(DEFAULT_PORT);
        let db = self
            .param("dbname")
            .or(self.path)
            .filter(|d| !d.is_empty())
            .or(self.param("user"))
            .or(self.user)
            .unwrap_or("");
        let literal = |s: &str| !s.is_empty() && !s.contains("$(");
        (literal(host) && literal(port) && literal(db))
            .then(|| (host.to_string(), port.to_string(), db.to_string()))
    }
}

/// `host:port`, `[v6]:port`, `host` or `[v6]`.
fn split_port(h: &str) -> (&str, Option<&str>) {
    if let Some(rest) = h.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((addr, tail)) => (addr, tail.strip_prefix(':')),
            None => (h, None),
        };
    }
    match h.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (h, None),
    }
}

/// A Kubernetes Service host name in one canonical form, so
/// `postgres-rw`, `postgres-rw.dark-tower`, `postgres-rw.dark-tower.svc`
/// and `postgres-rw.dark-tower.svc.cluster.local` compare equal from a pod
/// in `dark-tower` (the pod's DNS search path makes them the same name).
pub(crate) fn canonical_host(host: &str, namespace: Option<&str>) -> String {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    let h = match h.strip_suffix(".cluster.local") {
        Some(short) if short.rsplit('.').next() == Some("svc") => short.to_string(),
        _ => h,
    };
    if h.starts_with('/') || h == "localhost" {
        return h;
    }
    match h.matches('.').count() {
        0 => namespace.map_or(h.clone(), |ns| format!("{h}.{ns}.svc")),
        // `<service>.<namespace>`, through the `svc.cluster.local` search domain.
        1 => format!("{h}.svc"),
        _ => h,
    }
}

/// A variable's value as the container receives it, and where it is
/// written (the env `value`, or the ConfigMap or Secret value it reads).
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub text: String,
    pub file: FileId,
    pub span: Span,
}

/// The objects one environment deploys: those rendered for it or living in
/// its overlay directory, and base files its kustomizations include.
/// Without configured environments, one scope holds everything.
pub(crate) struct EnvScope<'c> {
    pub env: Option<&'c str>,
    reached: HashSet<FileId>,
}

impl EnvScope<'_> {
    pub fn includes(&self, r: &Resource<'_>) -> bool {
        match self.env {
            None => true,
            Some(env) => r.env == Some(env) || (r.env.is_none() && self.reached.contains(&r.file)),
        }
    }
}

/// One scope per configured environment, in declaration order.
pub(crate) fn scopes<'c>(ctx: &'c Context<'_>) -> Vec<EnvScope<'c>> {
    let scopes: Vec<EnvScope<'c>> = ctx
        .config
        .environments_in_order()
        .map(|(env, _)| EnvScope {
            env: Some(env),
            reached: crate::rules::sops::reached_by_env(ctx, env),
        })
        .collect();
    if scopes.is_empty() {
        vec![EnvScope {
            env: None,
            reached: HashSet::new(),
        }]
    } else {
        scopes
    }
}

/// The value of variable `name` in container `c` of workload `w`, as
/// environment `scope` deploys it; `None` when it is not set or cannot be
/// resolved (a downward-API field, an encrypted value without a key).
pub(crate) fn resolve_env(
    ctx: &Context<'_>,
    scope: &EnvScope<'_>,
    w: &Resource<'_>,
    c: &Container<'_>,
    name: &str,
) -> Option<Resolved> {
    match resolve_listed(ctx, scope, w, c)
        .into_iter()
        .find(|(var, _)| *var == name)
    {
        Some((_, v)) => v,
        None => from_env_from(ctx, scope, w, c, name),
    }
}

/// Every variable container `c` lists under `env`, in the order listed
/// and resolved in that order: each expanded with those defined before it
/// (a later definition of a name replaces an earlier one, as the kubelet
/// does); `None` where it cannot be resolved.
pub(crate) fn resolve_listed<'c>(
    ctx: &Context<'_>,
    scope: &EnvScope<'_>,
    w: &Resource<'_>,
    c: &Container<'c>,
) -> Vec<(&'c str, Option<Resolved>)> {
    let mut defined: HashMap<&str, Option<Resolved>> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for e in c.node.get("env").into_iter().flat_map(Node::items) {
        let Some(var) = e.get("name").and_then(Node::as_str) else {
            continue;
        };
        let value = if let Some(v) = e.get("value") {
            v.as_str().map(|text| Resolved {
                text: expand(text, |r| {
                    defined
                        .get(r)
                        .cloned()
                        .flatten()
                        .or_else(|| from_env_from(ctx, scope, w, c, r))
                        .map(|x| x.text)
                }),
                file: w.file,
                span: v.span,
            })
        } else {
            key_ref(e.get("valueFrom"))
                .and_then(|(kind, obj, key)| lookup(ctx, scope, w, kind, obj, key))
        };
        if defined.insert(var, value).is_none() {
            order.push(var);
        }
    }
    order
        .into_iter()
        .filter_map(|var| Some((var, defined.remove(var)?)))
        .collect()
}

/// `(kind, name, key)` of a `configMapKeyRef` or `secretKeyRef`.
fn key_ref(from: Option<&Node>) -> Option<(ConfigKind, &str, &str)> {
    let from = from?;
    [
        ("configMapKeyRef", ConfigKind::ConfigMap),
        ("secretKeyRef", ConfigKind::Secret),
    ]
    .into_iter()
    .find_map(|(k, kind)| {
        let r = from.get(k)?;
        Some((kind, r.get("name")?.as_str()?, r.get("key")?.as_str()?))
    })
}

/// A variable set by the container's `envFrom` (the last source wins).
fn from_env_from(
    ctx: &Context<'_>,
    scope: &EnvScope<'_>,
    w: &Resource<'_>,
    c: &Container<'_>,
    name: &str,
) -> Option<Resolved> {
    c.node
        .get("envFrom")
        .into_iter()
        .flat_map(Node::items)
        .filter_map(|item| {
            let prefix = item.get("prefix").and_then(Node::as_str).unwrap_or("");
            let key = name.strip_prefix(prefix)?;
            [
                ("configMapRef", ConfigKind::ConfigMap),
                ("secretRef", ConfigKind::Secret),
            ]
            .into_iter()
            .find_map(|(k, kind)| {
                let obj = item.get(k)?.get("name")?.as_str()?;
                lookup(ctx, scope, w, kind, obj, key)
            })
        })
        .last()
}

/// The value of `key` in the ConfigMap or Secret `name` that `w` sees in
/// `scope`: complete objects first, then the environment's patches, the
/// last one that sets the key winning. Encrypted values are decrypted when
/// the run has a key; `data` is base64-decoded.
pub(crate) fn lookup(
    ctx: &Context<'_>,
    scope: &EnvScope<'_>,
    w: &Resource<'_>,
    kind: ConfigKind,
    name: &str,
    key: &str,
) -> Option<Resolved> {
    let candidates = || {
        ctx.index.resources.iter().filter(|r| {
            r.kind == kind.as_str()
                && r.name == name
                && r.group().is_empty()
                && r.role != Role::Kustomization
                && scope.includes(r)
                && ctx.index.same_namespace(r, w)
        })
    };
    let fields: &[(&str, bool)] = match kind {
        // `stringData` is merged over `data` by the API server.
        ConfigKind::Secret => &[("stringData", false), ("data", true)],
        ConfigKind::ConfigMap => &[("data", false), ("binaryData", true)],
    };
    let (r, node, base64) = candidates()
        .filter(|r| r.is_complete())
        .chain(candidates().filter(|r| !r.is_complete()))
        .filter_map(|r| {
            fields
                .iter()
                .find_map(|(f, b64)| Some((r, r.root.get(f)?.get(key)?, *b64)))
        })
        .last()?;
    let text = node.as_str().filter(|t| !t.is_empty())?;
    let (file, span, text) = if is_encrypted(text) {
        let (file, plain) = decrypted_at(ctx.index, r.file, node.span)?;
        let bytes = plain.as_plain()?.to_bytes();
        (
            file,
            plain.span,
            String::from_utf8(bytes.into_owned()).ok()?,
        )
    } else {
        (r.file, node.span, text.to_string())
    };
    let text = if base64 {
        String::from_utf8(decode_base64(&text)?).ok()?
    } else {
        text
    };
    Some(Resolved { text, file, span })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_as_libpq_reads_them() {
        let u = PgUrl::parse("postgres://gc:$(DB_PASSWORD)@postgres-rw.dark-tower.svc:5432/gc?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.crt").unwrap();
        assert_eq!(u.user, Some("gc"));
        assert_eq!(u.hosts, [("postgres-rw.dark-tower.svc", Some("5432"))]);
        assert_eq!(u.param("sslmode"), Some("verify-full"));
        assert_eq!(u.param("sslrootcert"), Some("/etc/ca.crt"));
        assert_eq!(
            u.target(),
            Some((
                "postgres-rw.dark-tower.svc".into(),
                "5432".into(),
                "gc".into()
            ))
        );
        let u = PgUrl::parse("postgresql://[::1],b:6432/?dbname=x&host=h").unwrap();
        assert_eq!(u.hosts, [("::1", None), ("b", Some("6432"))]);
        assert_eq!(u.target(), Some(("h".into(), "5432".into(), "x".into())));
        let u = PgUrl::parse("postgres://app@db").unwrap();
        assert_eq!(
            u.target(),
            Some(("db".into(), "5432".into(), "app".into())),
            "dbname defaults to the user"
        );
        assert_eq!(PgUrl::parse("postgres://$(U)@db").unwrap().target(), None);
        assert_eq!(
            PgUrl::parse("postgres://u@$(HOST)/db").unwrap().target(),
            None
        );
        assert!(PgUrl::parse("redis://h").is_none());
        assert!(PgUrl::parse("not a url").is_none());
    }

    #[test]
    fn service_hosts_compare_in_one_form() {
        let ns = Some("dark-tower");
        let want = "postgres-rw.dark-tower.svc";
        for h in [
            "postgres-rw",
            "postgres-rw.dark-tower",
            "postgres-rw.dark-tower.svc",
            "Postgres-RW.dark-tower.svc.cluster.local.",
        ] {
            assert_eq!(canonical_host(h, ns), want, "{h}");
        }
        assert_eq!(canonical_host("db.example.com", ns), "db.example.com");
        assert_eq!(canonical_host("localhost", ns), "localhost");
    }
}
