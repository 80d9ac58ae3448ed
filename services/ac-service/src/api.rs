//! AC's HTTP API: the JWKS, OAuth 2 client credentials and meeting tokens.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use common::auth::{self, AuthError};
use common::body::{self, BodyError};
use common::jwt::{self, MeetingClaims, ServiceClaims, TokenUse};
use prometheus::IntCounterVec;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::clients;
use crate::error::ApiError;
use crate::keys::KeyStore;

/// Lifetime of a service token.
pub const SERVICE_TOKEN_TTL_SECONDS: i64 = 3600;
/// Default and maximum lifetime of a meeting token.
pub const MEETING_TOKEN_TTL_SECONDS: u64 = 600;
pub const MEETING_TOKEN_MAX_TTL_SECONDS: u64 = 900;
/// Largest token request body (form or JSON).
pub const MAX_BODY_BYTES: usize = 8 * 1024;
/// Longest client secret looked at; longer ones are refused without hashing.
const MAX_SECRET_INPUT: usize = 1024;
/// The scope required to ask for meeting tokens.
pub const MEETING_TOKEN_SCOPE: &str = "internal:meeting-token";

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub keys: KeyStore,
    pub issuer: Arc<str>,
    pub dummy_hash: Arc<str>,
    pub tokens_issued: IntCounterVec,
    pub token_errors: IntCounterVec,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = axum::Json(state.keys.jwks()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    response
}

#[derive(Debug, Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    scope: String,
}

/// Form parameters, each at most once (RFC 6749 §3.2).
fn parse_form(bytes: &[u8]) -> Result<HashMap<String, String>, ApiError> {
    let mut params = HashMap::new();
    for (key, value) in form_urlencoded::parse(bytes) {
        if params.insert(key.to_string(), value.into_owned()).is_some() {
            return Err(ApiError::invalid_request(format!(
                "parameter {key} is repeated"
            )));
        }
    }
    Ok(params)
}

/// Client credentials from `Authorization: Basic` (RFC 6749 §2.3.1: id and
/// secret are form-encoded before base64).
fn basic_credentials(value: &str) -> Result<(String, String), ApiError> {
    let bad = || ApiError::invalid_client("malformed HTTP Basic credentials");
    let (scheme, encoded) = value.trim().split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") || encoded.len() > 4 * MAX_SECRET_INPUT {
        return Err(ApiError::invalid_client(
            "client authentication must use HTTP Basic or form parameters",
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let decode = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok((decode(id), decode(secret)))
}

fn client_credentials(
    headers: &HeaderMap,
    params: &mut HashMap<String, String>,
) -> Result<(String, String), ApiError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        Some(value) => {
            let value = value
                .to_str()
                .map_err(|_| ApiError::invalid_client("malformed Authorization header"))?;
            Some(basic_credentials(value)?)
        }
        None => None,
    };
    let form_id = params.remove("client_id");
    let form_secret = params.remove("client_secret");
    match (basic, form_id, form_secret) {
        (Some(_), _, Some(_)) => Err(ApiError::invalid_request(
            "use exactly one client authentication method (HTTP Basic or form)",
        )),
        (Some((id, secret)), form_id, None) => {
            if form_id.is_some_and(|f| f != id) {
                return Err(ApiError::invalid_request(
                    "client_id differs from the HTTP Basic user",
                ));
            }
            Ok((id, secret))
        }
        (None, Some(id), Some(secret)) => Ok((id, secret)),
        (None, _, _) => Err(ApiError::invalid_client(
            "client authentication is required",
        )),
    }
}

/// `POST /api/v1/auth/service/token`: OAuth 2 client credentials grant.
pub async fn service_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match issue_service_token(&state, &headers, body).await {
        Ok(response) => {
            state.tokens_issued.with_label_values(&["service"]).inc();
            no_store(response)
        }
        Err(e) => {
            state.token_errors.with_label_values(&[e.code()]).inc();
            if matches!(
                e,
                ApiError::OAuth {
                    code: "invalid_client",
                    ..
                }
            ) {
                tracing::info!(reason = %e, "token request refused");
            }
            e.into_response()
        }
    }
}

async fn issue_service_token(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !body::has_content_type(headers, "application/x-www-form-urlencoded") {
        return Err(ApiError::invalid_request(
            "content type must be application/x-www-form-urlencoded",
        ));
    }
    let bytes = body::read_limited(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| ApiError::OAuth {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "invalid_request",
            description: e.to_string(),
        })?;
    let mut params = parse_form(&bytes)?;
    match params.get("grant_type").map(String::as_str) {
        None => return Err(ApiError::invalid_request("grant_type is required")),
        Some("client_credentials") => {}
        Some(other) => {
            return Err(ApiError::oauth(
                "unsupported_grant_type",
                format!("grant_type {other:?} is not supported; use client_credentials"),
            ));
        }
    }
    let (client_id, secret) = client_credentials(headers, &mut params)?;
    if client_id.is_empty() || secret.is_empty() || secret.len() > MAX_SECRET_INPUT {
        return Err(ApiError::invalid_client("client authentication failed"));
    }
    let client = clients::authenticate(&state.pool, &client_id, &secret, &state.dummy_hash)
        .await?
        .ok_or_else(|| ApiError::invalid_client("client authentication failed"))?;

    let scopes: Vec<String> = match params.get("scope").map(|s| s.trim()) {
        None | Some("") => client.scopes.clone(),
        Some(requested) => {
            let mut granted: Vec<String> = Vec::new();
            for scope in requested.split(' ').filter(|s| !s.is_empty()) {
                if !client.scopes.iter().any(|s| s == scope) {
                    return Err(ApiError::oauth(
                        "invalid_scope",
                        format!("scope {scope:?} is not granted to this client"),
                    ));
                }
                if !granted.iter().any(|s| s == scope) {
                    granted.push(scope.to_owned());
                }
            }
            granted
        }
    };
    let scope = scopes.join(" ");
    let active = state
        .keys
        .active()
        .ok_or_else(|| ApiError::Unavailable("no active signing key".into()))?;
    let now = jwt::now_unix();
    let claims = ServiceClaims {
        iss: state.issuer.to_string(),
        sub: client.client_id.clone(),
        aud: jwt::audiences_for_scopes(&scope),
        iat: now,
        nbf: now,
        exp: now + SERVICE_TOKEN_TTL_SECONDS,
        jti: uuid::Uuid::new_v4().to_string(),
        scope: scope.clone(),
        service_type: client.service_type.clone(),
        token_use: TokenUse::Service,
    };
    let access_token = jwt::encode(&claims, &active.kid, &active.signing)
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    tracing::info!(client_id = %client.client_id, scope, "service token issued");
    Ok(axum::Json(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: SERVICE_TOKEN_TTL_SECONDS,
        scope,
    })
    .into_response())
}

/// Verifies a service token AC issued itself (no JWKS round trip).
fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    scope: &str,
) -> Result<ServiceClaims, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?
        .to_str()
        .map_err(|_| AuthError::NotBearer)?;
    let token = auth::bearer(value)?;
    let kid = jwt::key_id(token).map_err(AuthError::from)?;
    let key = state
        .keys
        .verifying_key(&kid)
        .ok_or(AuthError::Invalid(jwt::JwtError::UnknownKey))?;
    let claims: ServiceClaims =
        jwt::verify(token, &key, jwt::now_unix(), jwt::audience::AC).map_err(AuthError::from)?;
    common::jwks::check_service_claims(&claims, scope)?;
    Ok(claims)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeetingTokenRequest {
    pub meeting_id: String,
    #[serde(default)]
    pub participant_id: Option<String>,
    #[serde(default)]
    pub mc_id: Option<String>,
    #[serde(default)]
    pub mh_ids: Vec<String>,
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

#[derive(Debug, Serialize)]
struct MeetingTokenResponse {
    token: String,
    token_type: &'static str,
    expires_in: u64,
    participant_id: String,
}

fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// `POST /api/v1/auth/internal/meeting-token` (scope `internal:meeting-token`).
pub async fn meeting_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match issue_meeting_token(&state, &headers, body).await {
        Ok(response) => {
            state.tokens_issued.with_label_values(&["meeting"]).inc();
            no_store(response)
        }
        Err(e) => {
            state.token_errors.with_label_values(&[e.code()]).inc();
            e.into_response()
        }
    }
}

async fn issue_meeting_token(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = authorize(state, headers, MEETING_TOKEN_SCOPE)?;
    let request: MeetingTokenRequest = body::json(headers, body, MAX_BODY_BYTES).await?;
    let bad = |what: &str| ApiError::Body(BodyError::Malformed(what.to_owned()));
    if !valid_id(&request.meeting_id) {
        return Err(bad("meeting_id must be 1 to 128 id characters"));
    }
    let participant_id = match request.participant_id {
        Some(p) if valid_id(&p) => p,
        Some(_) => return Err(bad("participant_id must be 1 to 128 id characters")),
        None => uuid::Uuid::new_v4().to_string(),
    };
    let mc_id = request.mc_id.unwrap_or_default();
    if !mc_id.is_empty() && !valid_id(&mc_id) {
        return Err(bad("mc_id must be 1 to 128 id characters"));
    }
    if request.mh_ids.len() > 16 || !request.mh_ids.iter().all(|m| valid_id(m)) {
        return Err(bad("mh_ids must be at most 16 ids"));
    }
    let ttl = request.ttl_seconds.unwrap_or(MEETING_TOKEN_TTL_SECONDS);
    if !(30..=MEETING_TOKEN_MAX_TTL_SECONDS).contains(&ttl) {
        return Err(bad("ttl_seconds must be between 30 and 900"));
    }
    let active = state
        .keys
        .active()
        .ok_or_else(|| ApiError::Unavailable("no active signing key".into()))?;
    let now = jwt::now_unix();
    let claims = MeetingClaims {
        iss: state.issuer.to_string(),
        sub: participant_id.clone(),
        aud: jwt::audience::MEETING.map(str::to_owned).to_vec(),
        iat: now,
        nbf: now,
        exp: now + i64::try_from(ttl).unwrap_or(i64::MAX),
        jti: uuid::Uuid::new_v4().to_string(),
        meeting_id: request.meeting_id,
        mc_id,
        mh_ids: request.mh_ids,
        token_use: TokenUse::Meeting,
    };
    let token = jwt::encode(&claims, &active.kid, &active.signing)
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    tracing::info!(caller = %caller.sub, meeting_id = %claims.meeting_id, "meeting token issued");
    Ok(axum::Json(MeetingTokenResponse {
        token,
        token_type: "Bearer",
        expires_in: ttl,
        participant_id,
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("my%20client:p%3Ass+w");
        let (id, secret) = basic_credentials(&format!("Basic {encoded}")).unwrap();
        assert_eq!(id, "my client");
        assert_eq!(secret, "p:ss w");
        assert!(basic_credentials("Basic !!!").is_err());
        assert!(basic_credentials("Bearer abc").is_err());
        let no_colon = base64::engine::general_purpose::STANDARD.encode("nocolon");
        assert!(basic_credentials(&format!("Basic {no_colon}")).is_err());
    }

    #[test]
    fn repeated_form_parameters_are_refused() {
        assert!(parse_form(b"grant_type=a&grant_type=b").is_err());
        let p = parse_form(b"grant_type=client_credentials&scope=a+b").unwrap();
        assert_eq!(p["scope"], "a b");
    }
}
