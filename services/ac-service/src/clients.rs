//! OAuth 2 service clients: registration (the `register-client` subcommand)
//! and authentication at the token endpoint.
//!
//! Secrets are stored as bcrypt hashes with the configured cost. bcrypt runs
//! on the blocking pool so a burst of token requests cannot stall the
//! runtime. Unknown client ids still cost one bcrypt verification, against
//! a dummy hash, so response times do not reveal which ids exist.

use sqlx::{PgPool, Row as _};

/// Scopes a client may be registered with (SPEC "Scopes used").
pub const KNOWN_SCOPES: &[&str] = &[
    "meeting:create",
    "meeting:join",
    "service.write.gc",
    "service.write.mc",
    "service.write.mh",
    "internal:meeting-token",
];

/// bcrypt only reads the first 72 bytes; longer secrets are refused rather
/// than silently truncated. 16 bytes minimum for service credentials.
pub const SECRET_LEN: std::ops::RangeInclusive<usize> = 16..=72;

/// At most this many bcrypt verifications run at once.
static HASH_PERMITS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(8);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid client id {0:?}: use 1 to 64 letters, digits, '-', '_' or '.'")]
    InvalidId(String),
    #[error("client secret must be {min} to {max} bytes, got {len}", min = SECRET_LEN.start(), max = SECRET_LEN.end())]
    SecretLength { len: usize },
    #[error("unknown scope {0:?}; known scopes: {known}", known = KNOWN_SCOPES.join(" "))]
    UnknownScope(String),
    #[error("at least one scope is required")]
    NoScopes,
    #[error("hashing failed: {0}")]
    Hash(#[from] bcrypt::BcryptError),
    #[error("hashing task failed")]
    Join,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

pub fn valid_client_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Splits and checks a space-separated scope list; duplicates collapse.
pub fn parse_scopes(scopes: &str) -> Result<Vec<String>, ClientError> {
    let mut out: Vec<String> = Vec::new();
    for scope in scopes.split_ascii_whitespace() {
        if !KNOWN_SCOPES.contains(&scope) {
            return Err(ClientError::UnknownScope(scope.to_owned()));
        }
        if !out.iter().any(|s| s == scope) {
            out.push(scope.to_owned());
        }
    }
    if out.is_empty() {
        return Err(ClientError::NoScopes);
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    Created,
    Updated,
}

/// Creates the client or, when it exists, replaces its secret and scopes.
pub async fn register(
    pool: &PgPool,
    client_id: &str,
    secret: &str,
    scopes: &[String],
    service_type: &str,
    cost: u32,
) -> Result<Registered, ClientError> {
    if !valid_client_id(client_id) {
        return Err(ClientError::InvalidId(client_id.to_owned()));
    }
    if !valid_client_id(service_type) {
        return Err(ClientError::InvalidId(service_type.to_owned()));
    }
    if !SECRET_LEN.contains(&secret.len()) {
        return Err(ClientError::SecretLength { len: secret.len() });
    }
    if scopes.is_empty() {
        return Err(ClientError::NoScopes);
    }
    let secret = secret.to_owned();
    let hash = tokio::task::spawn_blocking(move || bcrypt::hash(secret, cost))
        .await
        .map_err(|_| ClientError::Join)??;
    store(pool, client_id, &hash, scopes, service_type).await
}

/// Creates or updates a client whose secret is already hashed (the clients
/// declared in git carry bcrypt hashes, never secrets).
pub async fn store(
    pool: &PgPool,
    client_id: &str,
    secret_hash: &str,
    scopes: &[String],
    service_type: &str,
) -> Result<Registered, ClientError> {
    let row = sqlx::query(
        "INSERT INTO service_clients (client_id, secret_hash, scopes, service_type)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (client_id) DO UPDATE
           SET secret_hash = EXCLUDED.secret_hash,
               scopes = EXCLUDED.scopes,
               service_type = EXCLUDED.service_type,
               enabled = TRUE,
               updated_at = now()
         RETURNING (xmax = 0) AS inserted",
    )
    .bind(client_id)
    .bind(secret_hash)
    .bind(scopes)
    .bind(service_type)
    .fetch_one(pool)
    .await?;
    Ok(if row.try_get::<bool, _>("inserted")? {
        Registered::Created
    } else {
        Registered::Updated
    })
}

/// An authenticated client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub client_id: String,
    pub scopes: Vec<String>,
    pub service_type: String,
}

/// Checks the credentials. `Ok(None)` means bad credentials (unknown id,
/// disabled client or wrong secret: indistinguishable to the caller).
pub async fn authenticate(
    pool: &PgPool,
    client_id: &str,
    secret: &str,
    dummy_hash: &str,
) -> Result<Option<Client>, ClientError> {
    let row = if valid_client_id(client_id) {
        sqlx::query(
            "SELECT secret_hash, scopes, service_type FROM service_clients
             WHERE client_id = $1 AND enabled",
        )
        .bind(client_id)
        .fetch_optional(pool)
        .await?
    } else {
        None
    };
    let (hash, client) = match row {
        Some(row) => (
            row.try_get::<String, _>("secret_hash")?,
            Some(Client {
                client_id: client_id.to_owned(),
                scopes: row.try_get("scopes")?,
                service_type: row.try_get("service_type")?,
            }),
        ),
        None => (dummy_hash.to_owned(), None),
    };
    // Over-long secrets cannot match (registration refuses them); verify
    // anyway, truncated, to keep the timing uniform.
    let too_long = secret.len() > *SECRET_LEN.end();
    let secret = secret.as_bytes()[..secret.len().min(*SECRET_LEN.end())].to_vec();
    // Bound concurrent bcrypt work: a flood of token requests queues here
    // instead of spawning hundreds of blocking threads.
    let _permit = HASH_PERMITS
        .acquire()
        .await
        .map_err(|_| ClientError::Join)?;
    let matches = tokio::task::spawn_blocking(move || bcrypt::verify(secret, &hash))
        .await
        .map_err(|_| ClientError::Join)?
        .unwrap_or(false);
    Ok(client.filter(|_| matches && !too_long))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids() {
        assert!(valid_client_id("global-controller"));
        assert!(valid_client_id("mc_1.a"));
        assert!(!valid_client_id(""));
        assert!(!valid_client_id("a b"));
        assert!(!valid_client_id(&"a".repeat(65)));
    }

    #[test]
    fn scopes_are_checked_and_deduplicated() {
        assert_eq!(
            parse_scopes(" service.write.gc  service.write.mh service.write.gc").unwrap(),
            vec!["service.write.gc", "service.write.mh"]
        );
        assert!(matches!(
            parse_scopes("service.write.gc admin"),
            Err(ClientError::UnknownScope(s)) if s == "admin"
        ));
        assert!(matches!(parse_scopes("  "), Err(ClientError::NoScopes)));
    }
}
