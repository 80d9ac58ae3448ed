use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports an env var whose value is written in the manifest when its
    /// name says it is a secret (`*PASSWORD*`, `*SECRET*`, `*TOKEN*`,
    /// `*_KEY`, `*CREDENTIAL*`) or its value is a URL with a password in it.
    ///
    /// ## Why is this bad?
    /// The value is in git history forever, in every `kubectl get -o yaml`,
    /// and in every log line that prints the pod spec. Secrets belong in a
    /// Secret (SOPS-encrypted in staging and production) referenced with
    /// `secretKeyRef`.
    ///
    /// ## Example
    /// ```yaml
    /// env:
    ///   - name: DATABASE_URL
    ///     value: postgres://ac:hunter2@postgres:5432/ac
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// env:
    ///   - name: DATABASE_URL
    ///     valueFrom:
    ///       secretKeyRef: {name: ac-service-secrets, key: DATABASE_URL}
    /// ```
    ///
    /// ## References
    /// - Secrets as env vars: <https://kubernetes.io/docs/concepts/configuration/secret/#using-secrets-as-environment-variables>
    pub struct SecretInEnvLiteral {
        id: "secret-in-env-literal",
        category: "pods",
        severity: Error,
        summary: "a secret is written as a literal env value",
    }
}

fn secret_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    // Names that mention a secret but hold something about it: where it is,
    // how long it lives, who it belongs to.
    let about = [
        "PATH", "FILE", "DIR", "URL", "ENDPOINT", "TTL", "SECONDS", "EXPIRY", "LIFETIME", "ID",
        "NAME", "HEADER", "ISSUER",
    ];
    if n.rsplit('_')
        .next()
        .is_some_and(|last| about.contains(&last))
    {
        return false;
    }
    [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "CREDENTIAL",
        "PRIVATE_KEY",
        "API_KEY",
        "MASTER_KEY",
    ]
    .iter()
    .any(|w| n.contains(w))
        || n.ends_with("_KEY")
}

/// `scheme://user:password@host` with a non-empty password written out (a
/// password that is only `$(VAR)` expansions comes from elsewhere, such as a
/// `secretKeyRef` variable, and is not in the manifest).
fn url_with_password(v: &str) -> bool {
    let Some((_, rest)) = v.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .is_some_and(|(_, pw)| !pw.is_empty() && !only_expansions(pw))
}

fn only_expansions(text: &str) -> bool {
    let mut any = false;
    let rest = crate::rules::contract::expand(text, |_| {
        any = true;
        Some(String::new())
    });
    any && rest.is_empty()
}

impl Rule for SecretInEnvLiteral {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::WorkloadDocuments)
    }

    fn check_object(&self, _ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        for c in r.containers() {
            for env in c.node.get("env").into_iter().flat_map(Node::items) {
                let name = env.get("name").and_then(Node::as_str).unwrap_or("");
                let Some(value) = env.get("value") else {
                    continue;
                };
                let Some(text) = value.as_str() else { continue };
                if text.is_empty() {
                    continue;
                }
                let why = if url_with_password(text) {
                    "a URL with a password"
                } else if secret_name(name) {
                    "a secret by its name"
                } else {
                    continue;
                };
                out.push(
                    Finding::new(
                        Self::META.id,
                        Label::new(r.file, value.span, "literal value"),
                        format!("env var `{name}` of container `{}` holds {why} in plain text", c.name()),
                    )
                    .help(format!("Move the value into a Secret and use `valueFrom: {{secretKeyRef: {{name: <secret>, key: {name}}}}}`.")),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_urls() {
        assert!(secret_name("GC_CLIENT_SECRET"));
        assert!(secret_name("AC_MASTER_KEY"));
        assert!(!secret_name("GC_CLIENT_ID"));
        assert!(!secret_name("KEYCLOAK_URL"));
        assert!(!secret_name("AC_TOKEN_URL"));
        assert!(!secret_name("MC_TOKEN_TTL_SECONDS"));
        assert!(!secret_name("MC_CLIENT_SECRET_FILE"));
        assert!(!secret_name("MC_TLS_KEY_PATH"));
        assert!(secret_name("GRAFANA_API_TOKEN"));
        assert!(secret_name("REDIS_PASSWORD"));
        assert!(url_with_password("redis://:pw@redis:6379"));
        assert!(url_with_password("postgres://u:p@h/db"));
        assert!(!url_with_password("postgres://u@h/db"));
        assert!(!url_with_password(
            "postgres://$(DB_USER):$(DB_PASSWORD)@h/db?sslmode=verify-full"
        ));
        assert!(url_with_password("postgres://u:pre$(DB_PASSWORD)@h/db"));
        assert!(!url_with_password(
            "http://ac-service:8082/.well-known/jwks.json"
        ));
    }
}
