//! The Dark Tower HTTP APIs the smoke tests call, as SPEC.md's wire
//! contracts describe them.
//!
//! The services are reached from the test machine: AC through the
//! port-forward `tools/local/setup.sh` starts (localhost:8082), GC through
//! kind's port mapping (localhost:8080). `DT_AC_URL` / `DT_GC_URL` point the
//! tests elsewhere (a staging load balancer, another port-forward).

use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use serde::Deserialize;
use serde_json::Value;

use crate::DARK_TOWER_NAMESPACE;

pub const AC_URL_VAR: &str = "DT_AC_URL";
pub const GC_URL_VAR: &str = "DT_GC_URL";
pub const CLIENT_ID_VAR: &str = "DT_ENV_TESTS_CLIENT_ID";
pub const CLIENT_SECRET_VAR: &str = "DT_ENV_TESTS_CLIENT_SECRET";
/// The client the tests sign in as: the synthetic prober every environment
/// declares (`overlays/<env>/ac-service/clients.toml`, scopes
/// `meeting:create meeting:join`), whose secret is in this Secret under
/// [`CLIENT_SECRET_KEY`]. Nothing is registered by hand.
pub const CLIENT_SECRET_NAME: &str = "synthetic-prober-client";
pub const CLIENT_SECRET_KEY: &str = "CLIENT_SECRET";
pub const PROBER_CLIENT_ID: &str = "synthetic-prober";

const DEFAULT_AC_URL: &str = "http://localhost:8082";
const DEFAULT_GC_URL: &str = "http://localhost:8080";

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(
        "{what}: request to {url} failed: {source} (is the port-forward or port mapping up? see tools/local/status.sh)"
    )]
    Http {
        what: &'static str,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what}: {url} answered {status} with a body that is not the expected JSON: {body}")]
    Body {
        what: &'static str,
        url: String,
        status: u16,
        body: String,
    },
    #[error(
        "no env-tests credentials: set {CLIENT_ID_VAR}/{CLIENT_SECRET_VAR}, or deploy the environment (Secret {DARK_TOWER_NAMESPACE}/{CLIENT_SECRET_NAME}, key {CLIENT_SECRET_KEY}, comes with ac-service): {0}"
    )]
    Credentials(String),
    #[error("malformed JWT: {0}")]
    Jwt(String),
}

/// Base URLs of the services under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub ac: String,
    pub gc: String,
}

impl Endpoints {
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Self {
        let pick = |var: &str, default: &str| {
            get(var).filter(|v| !v.trim().is_empty()).map_or_else(
                || default.to_owned(),
                |v| v.trim().trim_end_matches('/').to_owned(),
            )
        };
        Self {
            ac: pick(AC_URL_VAR, DEFAULT_AC_URL),
            gc: pick(GC_URL_VAR, DEFAULT_GC_URL),
        }
    }
}

/// An OAuth 2.0 client of AC.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The env-tests client: from the environment, else the declared synthetic
/// prober with the secret from its Secret in the cluster.
pub async fn env_tests_credentials(
    client: &Client,
    get: impl Fn(&str) -> Option<String>,
) -> Result<ClientCredentials, ServiceError> {
    if let (Some(id), Some(secret)) = (get(CLIENT_ID_VAR), get(CLIENT_SECRET_VAR)) {
        return Ok(ClientCredentials { id, secret });
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), DARK_TOWER_NAMESPACE);
    let secret = secrets
        .get(CLIENT_SECRET_NAME)
        .await
        .map_err(|e| ServiceError::Credentials(e.to_string()))?;
    prober_credentials(&secret)
}

/// The synthetic prober's credentials from its Secret.
pub fn prober_credentials(secret: &Secret) -> Result<ClientCredentials, ServiceError> {
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(CLIENT_SECRET_KEY))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(CLIENT_SECRET_KEY))
                .cloned()
        })
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ServiceError::Credentials(format!("key {CLIENT_SECRET_KEY} missing or empty"))
        })?;
    Ok(ClientCredentials {
        id: PROBER_CLIENT_ID.to_owned(),
        secret: value,
    })
}

/// A plain-HTTP client with a bounded timeout for every call.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
}

/// AC's token response (RFC 6749 section 5.1).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    #[serde(default)]
    pub scope: String,
}

/// An HTTP status with its JSON body (when it had one).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub json: Value,
}

async fn answer(
    what: &'static str,
    url: &str,
    request: reqwest::RequestBuilder,
) -> Result<Answer, ServiceError> {
    let http = |source| ServiceError::Http {
        what,
        url: url.to_owned(),
        source,
    };
    let response = request.send().await.map_err(http)?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(http)?;
    let json = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).map_err(|_| ServiceError::Body {
            what,
            url: url.to_owned(),
            status,
            body: text.chars().take(500).collect(),
        })?
    };
    Ok(Answer { status, json })
}

/// `POST /api/v1/auth/service/token` with client credentials.
pub async fn request_token(
    http: &reqwest::Client,
    ac: &str,
    credentials: &ClientCredentials,
    scope: Option<&str>,
) -> Result<Answer, ServiceError> {
    let url = format!("{ac}/api/v1/auth/service/token");
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", credentials.id.as_str()),
        ("client_secret", credentials.secret.as_str()),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    answer("token request", &url, http.post(&url).form(&form)).await
}

/// A successful token request, parsed.
pub async fn token(
    http: &reqwest::Client,
    ac: &str,
    credentials: &ClientCredentials,
    scope: Option<&str>,
) -> Result<TokenResponse, ServiceError> {
    let url = format!("{ac}/api/v1/auth/service/token");
    let got = request_token(http, ac, credentials, scope).await?;
    let body = || ServiceError::Body {
        what: "token request",
        url: url.clone(),
        status: got.status,
        body: got.json.to_string(),
    };
    if got.status != 200 {
        return Err(body());
    }
    serde_json::from_value(got.json.clone()).map_err(|_| body())
}

/// `GET /.well-known/jwks.json`.
pub async fn jwks(http: &reqwest::Client, ac: &str) -> Result<Answer, ServiceError> {
    let url = format!("{ac}/.well-known/jwks.json");
    answer("JWKS", &url, http.get(&url)).await
}

/// `POST /api/v1/meetings`.
pub async fn create_meeting(
    http: &reqwest::Client,
    gc: &str,
    bearer: Option<&str>,
    name: &str,
) -> Result<Answer, ServiceError> {
    let url = format!("{gc}/api/v1/meetings");
    let mut request = http.post(&url).json(&serde_json::json!({ "name": name }));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    answer("create meeting", &url, request).await
}

/// `GET /api/v1/meetings/{id}` (join).
pub async fn join_meeting(
    http: &reqwest::Client,
    gc: &str,
    bearer: Option<&str>,
    meeting_id: &str,
) -> Result<Answer, ServiceError> {
    let url = format!("{gc}/api/v1/meetings/{meeting_id}");
    let mut request = http.get(&url);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    answer("join meeting", &url, request).await
}

/// Decodes one base64url segment of a JWT into JSON (no signature check:
/// the tests compare the header's `kid` with AC's JWKS).
pub fn jwt_segment(token: &str, index: usize) -> Result<Value, ServiceError> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(ServiceError::Jwt(format!(
            "{} segments instead of 3",
            parts.len()
        )));
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[index].trim_end_matches('='))
        .map_err(|e| ServiceError::Jwt(e.to_string()))?;
    serde_json::from_slice(&raw).map_err(|e| ServiceError::Jwt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_default_to_the_local_forwards() {
        let e = Endpoints::from_env(|_| None);
        assert_eq!(e.ac, "http://localhost:8082");
        assert_eq!(e.gc, "http://localhost:8080");
    }

    #[test]
    fn endpoints_from_env_lose_their_trailing_slash() {
        let e = Endpoints::from_env(|k| match k {
            AC_URL_VAR => Some("https://ac.staging.example/".into()),
            GC_URL_VAR => Some("  ".into()),
            _ => None,
        });
        assert_eq!(e.ac, "https://ac.staging.example");
        assert_eq!(e.gc, "http://localhost:8080");
    }

    #[test]
    fn credentials_never_print_the_secret() {
        let c = ClientCredentials {
            id: "env-tests".into(),
            secret: "hunter2".into(),
        };
        let shown = format!("{c:?}");
        assert!(
            shown.contains("env-tests") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn jwt_segments_decode() {
        let enc = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let token = format!(
            "{}.{}.sig",
            enc(r#"{"alg":"EdDSA","typ":"JWT","kid":"k1"}"#),
            enc(r#"{"sub":"env-tests","scope":"meeting:create"}"#)
        );
        assert_eq!(jwt_segment(&token, 0).unwrap()["kid"], "k1");
        assert_eq!(jwt_segment(&token, 1).unwrap()["sub"], "env-tests");
        assert!(jwt_segment("a.b", 0).is_err());
        assert!(jwt_segment("!!.b.c", 0).is_err());
    }

    /// The names the tests sign in with are the ones git declares: the
    /// rendered development Secret holds the secret under that key, and the
    /// overlay's clients.toml declares that client with the scopes the
    /// join tests need.
    #[test]
    fn the_prober_credentials_are_the_declared_ones() {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = std::process::Command::new("timeout")
            .args(["120", "kubectl", "kustomize"])
            .arg(repo.join("overlays/development/ac-service"))
            .output()
            .expect("timeout/kubectl must be installed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let parsed = dtlint_yaml::parse(
            &text,
            &dtlint_yaml::LineIndex::new(&text),
            dtlint_yaml::Limits::default(),
        );
        let secret = parsed
            .documents
            .iter()
            .map(|d| d.root.to_json())
            .find(|v| v["kind"] == "Secret" && v["metadata"]["name"] == CLIENT_SECRET_NAME)
            .expect("development renders the prober's Secret");
        let secret: Secret = serde_json::from_value(secret).unwrap();
        let credentials = prober_credentials(&secret).unwrap();
        assert_eq!(credentials.id, PROBER_CLIENT_ID);
        assert!(credentials.secret.starts_with("dev-only-"));

        let clients =
            std::fs::read_to_string(repo.join("overlays/development/ac-service/clients.toml"))
                .unwrap();
        let clients: toml::Value = toml::from_str(&clients).unwrap();
        let prober = clients["client"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"].as_str() == Some(PROBER_CLIENT_ID))
            .expect("clients.toml declares the synthetic prober");
        let scopes: Vec<&str> = prober["scopes"].as_str().unwrap().split(' ').collect();
        for needed in ["meeting:create", "meeting:join"] {
            assert!(scopes.contains(&needed), "{scopes:?}");
        }
        let empty = Secret::default();
        assert!(prober_credentials(&empty).is_err());
    }
}
