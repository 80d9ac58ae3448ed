use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports an env var whose value is written in the manifest when its
    /// name says it is a secret (`*PASSWORD*`, `*SECRET*`, `*TOKEN*`,
    /// `*_KEY`, `*CREDENTIAL*`), its value is a URL with a password in it,
    /// or the value is a credential by its shape whatever the name: a PEM
    /// private key, an AWS access key, a GitHub, GitLab, Slack, npm or
    /// Google API token, a Stripe secret key, a JSON Web Token (each by the
    /// prefix and length its issuer documents).
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
/// A token format: (prefix, minimum length after it, its characters, what
/// it is).
type TokenFormat = (&'static str, usize, fn(char) -> bool, &'static str);

/// A value that is a credential by its shape, whatever the variable's
/// name: a private key, or a token of a well-known format (the prefixes
/// and lengths that issuers document, as gitleaks matches them). Each
/// needs its exact prefix and length of token characters, so prose and
/// placeholders do not match.
fn secret_by_content(v: &str) -> Option<&'static str> {
    if v.contains("-----BEGIN") && v.contains("PRIVATE KEY-----") {
        return Some("a private key");
    }
    let token = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    // (prefix, minimum length after it, characters, what it is)
    let formats: [TokenFormat; 12] = [
        (
            "AKIA",
            16,
            |c| c.is_ascii_uppercase() || c.is_ascii_digit(),
            "an AWS access key",
        ),
        (
            "ASIA",
            16,
            |c| c.is_ascii_uppercase() || c.is_ascii_digit(),
            "an AWS access key",
        ),
        ("ghp_", 36, |c| c.is_ascii_alphanumeric(), "a GitHub token"),
        ("gho_", 36, |c| c.is_ascii_alphanumeric(), "a GitHub token"),
        ("ghs_", 36, |c| c.is_ascii_alphanumeric(), "a GitHub token"),
        ("ghu_", 36, |c| c.is_ascii_alphanumeric(), "a GitHub token"),
        (
            "github_pat_",
            82,
            |c| c.is_ascii_alphanumeric() || c == '_',
            "a GitHub token",
        ),
        (
            "glpat-",
            20,
            |c| c.is_ascii_alphanumeric() || c == '_' || c == '-',
            "a GitLab token",
        ),
        (
            "xoxb-",
            24,
            |c| c.is_ascii_alphanumeric() || c == '-',
            "a Slack token",
        ),
        (
            "sk_live_",
            24,
            |c| c.is_ascii_alphanumeric(),
            "a Stripe secret key",
        ),
        (
            "AIza",
            35,
            |c| c.is_ascii_alphanumeric() || c == '_' || c == '-',
            "a Google API key",
        ),
        ("npm_", 36, |c| c.is_ascii_alphanumeric(), "an npm token"),
    ];
    let v = v.trim();
    for (prefix, len, chars, what) in formats {
        if let Some(rest) = v.strip_prefix(prefix) {
            let run = rest.chars().take_while(|c| chars(*c)).count();
            if run >= len && rest.chars().skip(run).all(|c| !token(c)) {
                return Some(what);
            }
        }
    }
    // A JSON Web Token: three base64url parts, the first two JSON objects.
    let parts: Vec<&str> = v.split('.').collect();
    if parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts[1].starts_with("eyJ")
        && parts.iter().all(|p| p.len() >= 8 && p.chars().all(token))
    {
        return Some("a JSON Web Token");
    }
    None
}

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
                let why = if let Some(what) = secret_by_content(text) {
                    what
                } else if url_with_password(text) {
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

    #[test]
    fn credentials_are_recognised_by_their_shape() {
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
        assert_eq!(secret_by_content(key), Some("a private key"));
        assert_eq!(
            secret_by_content("AKIAIOSFODNN7EXAMPLE"),
            Some("an AWS access key")
        );
        let gh = format!("ghp_{}", "a1B2".repeat(9));
        assert_eq!(secret_by_content(&gh), Some("a GitHub token"));
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert_eq!(secret_by_content(jwt), Some("a JSON Web Token"));
        // Prose, placeholders and short prefixes are not credentials.
        for v in [
            "AKIA",
            "ghp_short",
            "use the AKIA key from vault",
            "eyJ.eyJ.x",
            "http://example.com",
            "true",
        ] {
            assert_eq!(secret_by_content(v), None, "{v}");
        }
    }
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
