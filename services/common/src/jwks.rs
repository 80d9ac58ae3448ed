//! A cache of AC's public keys (JWKS) and token verification against it.
//!
//! Keys are fetched from `AC_JWKS_URL` at start and periodically. A token
//! signed with a key id the cache does not know triggers one refresh, so a
//! key rotation at AC is picked up at once; refreshes are single-flight and
//! rate-limited (`min_refresh_interval`), so a flood of forged tokens with
//! random key ids cannot turn into a flood of requests to AC. The response
//! size and the number of keys kept are bounded too. Every token verified
//! through the cache must name the cache's `audience` (the service holding
//! it) in `aud`; see [`jwt::verify`] for the other claims required.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;

use crate::auth::AuthError;
use crate::backoff::Backoff;
use crate::jwt::{self, JwkSet, MeetingClaims, ServiceClaims, TokenUse};

/// Largest JWKS document accepted.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Most keys kept from one document.
pub const MAX_KEYS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("fetching the JWKS failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the JWKS endpoint answered HTTP {0}")]
    Status(u16),
    #[error("the JWKS document is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("the JWKS document is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the JWKS document holds no usable Ed25519 key")]
    NoKeys,
}

#[derive(Debug)]
pub struct JwksCache {
    url: String,
    /// The `aud` a token must carry to be accepted here.
    audience: String,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, VerifyingKey>>,
    fetched: AtomicBool,
    /// Time of the last fetch attempt; the lock makes refreshes single-flight.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
    min_refresh_interval: Duration,
}

impl JwksCache {
    /// A cache of the keys at `url` for the service `audience` (one of
    /// [`jwt::audience`]).
    pub fn new(
        url: impl Into<String>,
        audience: impl Into<String>,
        min_refresh_interval: Duration,
    ) -> Result<Self, JwksError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        Ok(Self {
            url: url.into(),
            audience: audience.into(),
            http,
            keys: RwLock::new(HashMap::new()),
            fetched: AtomicBool::new(false),
            last_attempt: tokio::sync::Mutex::new(None),
            min_refresh_interval,
        })
    }

    /// True once a fetch has succeeded (the readiness check).
    pub fn is_fetched(&self) -> bool {
        self.fetched.load(Ordering::SeqCst)
    }

    pub fn key_count(&self) -> usize {
        self.keys.read().map_or(0, |k| k.len())
    }

    /// Fetches now, whatever the rate limit says (start-up, periodic task).
    pub async fn refresh(&self) -> Result<usize, JwksError> {
        let mut last = self.last_attempt.lock().await;
        *last = Some(Instant::now());
        self.fetch_and_store().await
    }

    /// Fetches unless another fetch happened within the minimum interval.
    async fn refresh_rate_limited(&self) {
        let mut last = self.last_attempt.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.min_refresh_interval) {
            return;
        }
        *last = Some(Instant::now());
        if let Err(e) = self.fetch_and_store().await {
            tracing::warn!(error = %e, "JWKS refresh failed");
        }
    }

    async fn fetch_and_store(&self) -> Result<usize, JwksError> {
        let mut response = self.http.get(&self.url).send().await?;
        if !response.status().is_success() {
            return Err(JwksError::Status(response.status().as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_JWKS_BYTES as u64)
        {
            return Err(JwksError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(JwksError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let set: JwkSet = serde_json::from_slice(&body)?;
        let mut keys = HashMap::new();
        for jwk in set.keys.iter().take(MAX_KEYS) {
            let Some(kid) = jwk.kid.as_deref() else {
                continue;
            };
            match jwk.to_verifying_key() {
                Ok(key) => {
                    keys.insert(kid.to_owned(), key);
                }
                Err(reason) => tracing::debug!(kid, reason, "skipping JWK"),
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoKeys);
        }
        let count = keys.len();
        if let Ok(mut guard) = self.keys.write() {
            *guard = keys;
        }
        let first = !self.fetched.swap(true, Ordering::SeqCst);
        if first {
            tracing::info!(keys = count, "JWKS fetched");
        } else {
            tracing::debug!(keys = count, "JWKS refreshed");
        }
        Ok(count)
    }

    fn cached(&self, kid: &str) -> Option<VerifyingKey> {
        self.keys.read().ok().and_then(|k| k.get(kid).copied())
    }

    /// The key for `kid`, refreshing once (rate-limited) when unknown.
    pub async fn verifying_key(&self, kid: &str) -> Result<VerifyingKey, AuthError> {
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        self.refresh_rate_limited().await;
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        if self.is_fetched() {
            Err(AuthError::Invalid(jwt::JwtError::UnknownKey))
        } else {
            Err(AuthError::KeysUnavailable)
        }
    }

    /// Verifies a service token and checks it carries `required_scope`.
    pub async fn verify_service(
        &self,
        token: &str,
        required_scope: &str,
    ) -> Result<ServiceClaims, AuthError> {
        let kid = jwt::key_id(token)?;
        let key = self.verifying_key(&kid).await?;
        let claims: ServiceClaims = jwt::verify(token, &key, jwt::now_unix(), &self.audience)?;
        check_service_claims(&claims, required_scope)?;
        Ok(claims)
    }

    /// Verifies a meeting token (MC and MH check the meeting themselves).
    pub async fn verify_meeting(&self, token: &str) -> Result<MeetingClaims, AuthError> {
        let kid = jwt::key_id(token)?;
        let key = self.verifying_key(&kid).await?;
        let claims: MeetingClaims = jwt::verify(token, &key, jwt::now_unix(), &self.audience)?;
        if claims.token_use != TokenUse::Meeting {
            return Err(AuthError::WrongUse("meeting"));
        }
        Ok(claims)
    }

    /// Runs until the process ends: retries quickly until the first fetch
    /// succeeds, then refreshes every `period`.
    pub async fn keep_fresh(self: std::sync::Arc<Self>, period: Duration) {
        let backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
        let mut attempt = 0;
        loop {
            match self.refresh().await {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, url = %self.url, "initial JWKS fetch failed, retrying");
                    tokio::time::sleep(backoff.delay(attempt)).await;
                    attempt += 1;
                }
            }
        }
        loop {
            tokio::time::sleep(period).await;
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "periodic JWKS refresh failed; keeping cached keys");
            }
        }
    }
}

/// The checks every service applies to a verified service token.
pub fn check_service_claims(claims: &ServiceClaims, required_scope: &str) -> Result<(), AuthError> {
    if claims.token_use != TokenUse::Service {
        return Err(AuthError::WrongUse("service"));
    }
    if !claims.has_scope(required_scope) {
        return Err(AuthError::InsufficientScope {
            required: required_scope.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::{Jwk, JwtError};
    use axum::Router;
    use axum::routing::get;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ed25519_dalek::SigningKey;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    /// A real HTTP server on loopback serving whatever JWKS the test sets.
    async fn serve_jwks(doc: Arc<std::sync::Mutex<String>>, hits: Arc<AtomicUsize>) -> String {
        let app = Router::new().route(
            "/.well-known/jwks.json",
            get(move || {
                let doc = doc.clone();
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    doc.lock().unwrap().clone()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/.well-known/jwks.json")
    }

    fn doc_for(keys: &[(&str, &SigningKey)]) -> String {
        let set = JwkSet {
            keys: keys
                .iter()
                .map(|(kid, k)| Jwk::from_verifying_key(kid, &k.verifying_key()))
                .collect(),
        };
        serde_json::to_string(&set).unwrap()
    }

    fn service_token(k: &SigningKey, kid: &str, scope: &str) -> String {
        let now = jwt::now_unix();
        jwt::encode(
            &ServiceClaims {
                iss: jwt::ISSUER.into(),
                sub: "mc".into(),
                aud: jwt::audiences_for_scopes(scope),
                iat: now,
                nbf: now,
                exp: now + 60,
                jti: "j".into(),
                scope: scope.into(),
                service_type: "meeting-controller".into(),
                token_use: TokenUse::Service,
            },
            kid,
            k,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn unknown_kid_refreshes_once_and_is_rate_limited() {
        let k1 = SigningKey::from_bytes(&[1; 32]);
        let k2 = SigningKey::from_bytes(&[2; 32]);
        let doc = Arc::new(std::sync::Mutex::new(doc_for(&[("k1", &k1)])));
        let hits = Arc::new(AtomicUsize::new(0));
        let url = serve_jwks(doc.clone(), hits.clone()).await;
        let cache = JwksCache::new(url, jwt::audience::GC, Duration::from_millis(300)).unwrap();
        assert!(!cache.is_fetched());
        cache.refresh().await.unwrap();
        assert!(cache.is_fetched());
        let t1 = service_token(&k1, "k1", "service.write.gc");
        cache.verify_service(&t1, "service.write.gc").await.unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 1, "known kid needs no fetch");

        // AC rotates: k2 appears. Wait out the rate limit window first.
        *doc.lock().unwrap() = doc_for(&[("k1", &k1), ("k2", &k2)]);
        tokio::time::sleep(Duration::from_millis(350)).await;
        let t2 = service_token(&k2, "k2", "service.write.gc");
        cache.verify_service(&t2, "service.write.gc").await.unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 2);

        // Forged tokens with random kids: at most one fetch per interval.
        tokio::time::sleep(Duration::from_millis(350)).await;
        let attacker_key = SigningKey::from_bytes(&[9; 32]);
        for i in 0..20 {
            let forged = service_token(&attacker_key, &format!("evil{i}"), "service.write.gc");
            assert_eq!(
                cache.verify_service(&forged, "service.write.gc").await,
                Err(AuthError::Invalid(JwtError::UnknownKey))
            );
        }
        assert_eq!(hits.load(Ordering::SeqCst), 3, "one refresh for the flood");
    }

    #[tokio::test]
    async fn forged_alg_none_wrong_audience_and_wrong_scope_are_refused() {
        let k1 = SigningKey::from_bytes(&[1; 32]);
        let doc = Arc::new(std::sync::Mutex::new(doc_for(&[("k1", &k1)])));
        let url = serve_jwks(doc, Arc::new(AtomicUsize::new(0))).await;
        let cache = JwksCache::new(url, jwt::audience::GC, Duration::from_secs(10)).unwrap();
        cache.refresh().await.unwrap();
        let attacker_key = SigningKey::from_bytes(&[9; 32]);
        let forged = service_token(&attacker_key, "k1", "service.write.gc");
        assert_eq!(
            cache.verify_service(&forged, "service.write.gc").await,
            Err(AuthError::Invalid(JwtError::BadSignature))
        );
        // Meant for GC (meeting:join is spent there) but without the scope.
        let good = service_token(&k1, "k1", "meeting:join");
        assert_eq!(
            cache.verify_service(&good, "service.write.gc").await,
            Err(AuthError::InsufficientScope {
                required: "service.write.gc".into()
            })
        );
        // Signed by AC and carrying the scope's name, but meant for MH.
        let for_mh = service_token(&k1, "k1", "service.write.mh");
        assert_eq!(
            cache.verify_service(&for_mh, "service.write.mh").await,
            Err(AuthError::Invalid(JwtError::WrongAudience(
                jwt::audience::GC.into()
            )))
        );
        let alg_none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#),
            good.split('.').nth(1).unwrap()
        );
        assert_eq!(
            cache.verify_service(&alg_none, "service.write.mh").await,
            Err(AuthError::Invalid(JwtError::UnsupportedAlgorithm(
                "none".into()
            )))
        );
        let err = cache.verify_meeting(&good).await.unwrap_err();
        assert!(
            matches!(&err, AuthError::Invalid(JwtError::InvalidClaims(m)) if m.contains("meeting_id")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn unreachable_jwks_means_keys_unavailable() {
        // A port nothing listens on: bind, note the port, drop the listener.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let cache = JwksCache::new(
            format!("http://{addr}/jwks"),
            jwt::audience::GC,
            Duration::ZERO,
        )
        .unwrap();
        assert!(cache.refresh().await.is_err());
        let k1 = SigningKey::from_bytes(&[1; 32]);
        let t = service_token(&k1, "k1", "x");
        assert_eq!(
            cache.verify_service(&t, "x").await,
            Err(AuthError::KeysUnavailable)
        );
    }

    #[tokio::test]
    async fn oversized_or_empty_documents_are_rejected() {
        let doc = Arc::new(std::sync::Mutex::new(format!(
            "{{\"keys\":[],\"pad\":\"{}\"}}",
            "x".repeat(MAX_JWKS_BYTES)
        )));
        let url = serve_jwks(doc.clone(), Arc::new(AtomicUsize::new(0))).await;
        let cache = JwksCache::new(url, jwt::audience::GC, Duration::ZERO).unwrap();
        assert!(matches!(cache.refresh().await, Err(JwksError::TooLarge)));
        *doc.lock().unwrap() = "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r\"}]}".into();
        assert!(matches!(cache.refresh().await, Err(JwksError::NoKeys)));
        assert!(!cache.is_fetched());
    }
}
