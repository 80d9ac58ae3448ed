use std::collections::HashMap;

use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::rules::contract::expand;
use crate::rules::database::PgUrl;
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports a PostgreSQL connection URL (`postgres://` or
    /// `postgresql://`) that does not verify the server: `sslmode` absent,
    /// `disable`, `allow`, `prefer`, `require` or `verify-ca`, or
    /// `verify-full` without `sslrootcert`. URLs are read wherever they are
    /// written: container env `value`s (with `$(VAR)` references to earlier
    /// literal variables expanded; a query that still holds an unresolved
    /// reference is not judged), and every ConfigMap and Secret value
    /// (`data` base64-decoded, SOPS values after decryption when the run
    /// has an age key). It applies in every environment; this repository's
    /// `dtlint.toml` makes it a warning in development.
    ///
    /// ## Why is this bad?
    /// Only `verify-full` checks that the server's certificate is signed by
    /// the expected CA *and* names the host the client dialled. With
    /// anything less, whoever can answer on the database's address (a
    /// spoofed Service, a compromised node, a DNS mistake) receives the
    /// service's password and every query. `verify-full` without
    /// `sslrootcert` checks against a default trust store that does not
    /// hold the database's private CA, so the connection either
    /// fails or trusts the wrong authorities.
    ///
    /// ## Example
    /// ```yaml
    /// stringData:
    ///   DATABASE_URL: postgres://gc:secret@postgres-rw.dark-tower.svc:5432/gc?sslmode=require
    /// ```
    ///
    /// ## Use instead
    /// Mount `ca.crt` of the CA that signs the server certificate (the
    /// cert-manager CA Secret behind the Cluster's `serverTLSSecret`; see
    /// `postgres-server-certificate`) and point `sslrootcert` at it:
    /// ```yaml
    /// env:
    ///   - name: DB_PASSWORD
    ///     valueFrom: {secretKeyRef: {name: postgres-gc, key: password}}
    ///   - name: DATABASE_URL
    ///     value: postgres://gc:$(DB_PASSWORD)@postgres-rw.dark-tower.svc:5432/gc?sslmode=verify-full&sslrootcert=/etc/dark-tower/postgres-ca/ca.crt
    /// ```
    ///
    /// ## References
    /// - libpq SSL modes: <https://www.postgresql.org/docs/current/libpq-ssl.html#LIBPQ-SSL-PROTECTION>
    /// - CloudNativePG certificates: <https://cloudnative-pg.io/documentation/current/certificates/>
    pub struct PostgresTlsNotVerified {
        id: "postgres-tls-not-verified",
        category: "database",
        severity: Error,
        summary: "a PostgreSQL connection URL does not verify the server certificate (sslmode other than verify-full with sslrootcert)",
    }
}

/// What is wrong with a URL's TLS settings: (label, message tail).
fn problem(url: &PgUrl<'_>) -> Option<(String, String)> {
    let mode = url.param("sslmode");
    if mode.is_some_and(|m| m.contains("$(")) || (mode.is_none() && url.query_unresolved()) {
        return None;
    }
    let unchecked = "the server certificate is not checked";
    Some(match mode {
        None => (
            "no sslmode".into(),
            format!(
                "has no `sslmode` (the default, `prefer`, does not even require TLS): {unchecked}"
            ),
        ),
        Some(m @ ("disable" | "allow" | "prefer" | "require")) => (
            format!("sslmode={m}"),
            format!("has `sslmode={m}`: {unchecked}"),
        ),
        Some("verify-ca") => (
            "sslmode=verify-ca".into(),
            "has `sslmode=verify-ca`: the server certificate's host name is not checked".into(),
        ),
        Some("verify-full") => {
            let root = url.param("sslrootcert").unwrap_or("");
            if !root.is_empty() {
                return None;
            }
            (
                "sslmode=verify-full, no sslrootcert".into(),
                format!(
                    "has `sslmode=verify-full` without `sslrootcert`: {unchecked} against the database cluster's CA"
                ),
            )
        }
        Some(m) => (
            format!("sslmode={m}"),
            format!("has an unknown `sslmode={m}`: {unchecked}"),
        ),
    })
}

const HELP: &str = "Use `sslmode=verify-full&sslrootcert=<path of the server CA's ca.crt mounted in the pod>`, so the client checks that the server's certificate comes from the database's CA and names the host it dialled.";

impl Rule for PostgresTlsNotVerified {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        for v in ctx.values() {
            let Some(url) = v.text().and_then(PgUrl::parse) else {
                continue;
            };
            let Some((label, tail)) = problem(&url) else {
                continue;
            };
            out.push(
                Finding::new(
                    Self::META.id,
                    Label::new(v.file, v.span, label),
                    format!("PostgreSQL URL in `{}` of {} {tail}", v.path(), v.owner()),
                )
                .help(HELP),
            );
        }
        for r in ctx.index.resources.iter().filter(|r| r.is_workload()) {
            for c in r.containers() {
                // Literal variables defined so far, for `$(VAR)` expansion.
                let mut literal: HashMap<&str, String> = HashMap::new();
                for e in c.node.get("env").into_iter().flat_map(Node::items) {
                    let Some(name) = e.get("name").and_then(Node::as_str) else {
                        continue;
                    };
                    let Some(value) = e.get("value") else {
                        literal.remove(name);
                        continue;
                    };
                    let Some(text) = value.as_str() else { continue };
                    let expanded = expand(text, |n| literal.get(n).cloned());
                    if let Some(url) = PgUrl::parse(&expanded)
                        && let Some((label, tail)) = problem(&url)
                    {
                        out.push(
                            Finding::new(
                                Self::META.id,
                                Label::new(r.file, value.span, label),
                                format!(
                                    "PostgreSQL URL in env `{name}` of container `{}` {tail}",
                                    c.name()
                                ),
                            )
                            .help(HELP),
                        );
                    }
                    literal.insert(name, expanded);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(url: &str) -> Option<String> {
        problem(&PgUrl::parse(url).unwrap()).map(|(_, t)| t)
    }

    #[test]
    fn only_verify_full_with_a_root_certificate_passes() {
        let base = "postgres://u:p@db:5432/app";
        assert_eq!(
            tail(&format!("{base}?sslmode=verify-full&sslrootcert=/ca.crt")),
            None
        );
        for mode in ["disable", "allow", "prefer", "require"] {
            assert_eq!(
                tail(&format!("{base}?sslmode={mode}")).unwrap(),
                format!("has `sslmode={mode}`: the server certificate is not checked")
            );
        }
        assert!(tail(base).unwrap().starts_with("has no `sslmode`"));
        assert!(
            tail(&format!("{base}?sslmode=verify-ca&sslrootcert=/ca.crt"))
                .unwrap()
                .contains("host name")
        );
        assert!(
            tail(&format!("{base}?sslmode=verify-full"))
                .unwrap()
                .contains("without `sslrootcert`")
        );
        assert!(
            tail(&format!("{base}?sslmode=verify_full"))
                .unwrap()
                .contains("unknown")
        );
        assert_eq!(
            tail(&format!("{base}?sslmode=$(MODE)")),
            None,
            "not resolved"
        );
        assert_eq!(tail(&format!("{base}?$(PARAMS)")), None, "not resolved");
    }

    #[test]
    fn env_values_are_expanded_and_secret_values_read() {
        let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: gc}\nspec:\n  template:\n    spec:\n      containers:\n        - name: gc\n          env:\n            - {name: MODE, value: require}\n            - {name: OK, value: 'postgres://h/db?sslmode=verify-full&sslrootcert=/ca.crt'}\n            - {name: DATABASE_URL, value: 'postgres://h/db?sslmode=$(MODE)'}\n            - {name: OTHER, value: 'postgres://h/db?sslmode=$(UNSET)'}\n";
        let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  URL: cG9zdGdyZXNxbDovL2gvZGI=\n";
        let out = crate::rules::testing::run(
            &PostgresTlsNotVerified,
            &[("d.yaml", deployment), ("s.yaml", secret)],
        );
        let messages: Vec<&str> = out.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "PostgreSQL URL in `data.URL` of Secret `s` has no `sslmode` (the default, `prefer`, does not even require TLS): the server certificate is not checked",
                "PostgreSQL URL in env `DATABASE_URL` of container `gc` has `sslmode=require`: the server certificate is not checked",
            ]
        );
        assert_eq!(out[1].primary.span.start.line, 12);
    }
}
