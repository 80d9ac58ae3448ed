//! OAuth 2 client-credentials client for service-to-service calls.
//!
//! Gets a service token from AC's `POST /api/v1/auth/service/token` with the
//! service's own client id and secret, caches it and renews it well before
//! it expires. Callers that receive a 401 downstream call
//! [`ClientCredentials::invalidate`] so the next call fetches a fresh token.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Path of the token endpoint under AC's base URL.
pub const TOKEN_PATH: &str = "/api/v1/auth/service/token";

#[derive(Debug, thiserror::Error)]
pub enum TokenClientError {
    #[error("token request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("AC refused the token request: HTTP {status} {error}")]
    Rejected { status: u16, error: String },
    #[error("AC answered with a malformed token response: {0}")]
    Malformed(String),
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    expires_in: u64,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
}

struct Cached {
    token: SecretString,
    renew_at: Instant,
}

pub struct ClientCredentials {
    token_url: String,
    client_id: String,
    client_secret: SecretString,
    http: reqwest::Client,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl ClientCredentials {
    /// `ac_base_url` is AC's base URL (`AC_INTERNAL_URL` / `AC_ENDPOINT`).
    pub fn new(
        ac_base_url: &str,
        client_id: impl Into<String>,
        client_secret: SecretString,
    ) -> Result<Self, TokenClientError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        Ok(Self {
            token_url: format!("{}{TOKEN_PATH}", ac_base_url.trim_end_matches('/')),
            client_id: client_id.into(),
            client_secret,
            http,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// A valid access token, from the cache or freshly issued.
    pub async fn token(&self) -> Result<SecretString, TokenClientError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.renew_at
        {
            return Ok(c.token.clone());
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Forgets the cached token (after a downstream 401).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(&self) -> Result<Cached, TokenClientError> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose_secret()),
        ];
        let response = self.http.post(&self.token_url).form(&form).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            let error = serde_json::from_slice::<ErrorResponse>(&body)
                .map_or_else(|_| "unknown".to_owned(), |e| e.error);
            return Err(TokenClientError::Rejected {
                status: status.as_u16(),
                error,
            });
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| TokenClientError::Malformed(e.to_string()))?;
        if !parsed.token_type.eq_ignore_ascii_case("bearer") || parsed.expires_in == 0 {
            return Err(TokenClientError::Malformed(format!(
                "token_type {:?}, expires_in {}",
                parsed.token_type, parsed.expires_in
            )));
        }
        // Renew at half the lifetime, and at least a minute early.
        let lifetime = parsed.expires_in;
        let renew_in = (lifetime / 2).min(lifetime.saturating_sub(60)).max(1);
        Ok(Cached {
            token: SecretString::from(parsed.access_token),
            renew_at: Instant::now() + Duration::from_secs(renew_in),
        })
    }
}
