//! Ed25519 signing keys, stored in `PostgreSQL` with the private half
//! encrypted (AES-256-GCM, AAD = key id) under `AC_MASTER_KEY`.
//!
//! At first start there is no key: one is generated and stored. Several AC
//! replicas starting at once take a transaction-scoped advisory lock, so
//! exactly one key becomes active. The active private key lives in memory
//! only; the JWKS publishes every key not retired.

use std::sync::{Arc, RwLock};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::RngCore as _;
use sqlx::{PgPool, Row as _};

use crate::config::MasterKey;
use common::jwt::{Jwk, JwkSet};

/// Advisory lock id serialising key creation across replicas ("ackeys").
const KEY_LOCK_ID: i64 = 0x6163_6b65_7973;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("database error while loading signing keys: {0}")]
    Database(#[from] sqlx::Error),
    #[error(
        "AC_MASTER_KEY cannot decrypt signing key {kid}: the key or the database is not the one it was created with"
    )]
    Decrypt { kid: String },
    #[error("signing key {kid} is corrupt: {reason}")]
    Corrupt { kid: String, reason: &'static str },
    #[error("encrypting a new signing key failed")]
    Encrypt,
}

/// The key tokens are signed with.
#[derive(Clone)]
pub struct ActiveKey {
    pub kid: String,
    pub signing: SigningKey,
}

impl std::fmt::Debug for ActiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct Published {
    kid: String,
    key: VerifyingKey,
}

/// In-memory view of the keys: the active signing key and the public set.
#[derive(Debug, Clone)]
pub struct KeyStore {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Debug)]
struct Inner {
    active: Option<ActiveKey>,
    published: Vec<Published>,
}

fn encrypt(
    master: &MasterKey,
    kid: &str,
    seed: &[u8; 32],
) -> Result<([u8; 12], Vec<u8>), KeyError> {
    let cipher = Aes256Gcm::new(master.bytes().into());
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: seed,
                aad: kid.as_bytes(),
            },
        )
        .map_err(|_| KeyError::Encrypt)?;
    Ok((nonce, ciphertext))
}

fn decrypt(
    master: &MasterKey,
    kid: &str,
    nonce: &[u8],
    ciphertext: &[u8],
) -> Result<SigningKey, KeyError> {
    if nonce.len() != 12 {
        return Err(KeyError::Corrupt {
            kid: kid.to_owned(),
            reason: "nonce is not 12 bytes",
        });
    }
    let cipher = Aes256Gcm::new(master.bytes().into());
    let seed = cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: kid.as_bytes(),
            },
        )
        .map_err(|_| KeyError::Decrypt {
            kid: kid.to_owned(),
        })?;
    let seed: [u8; 32] = seed.try_into().map_err(|_| KeyError::Corrupt {
        kid: kid.to_owned(),
        reason: "decrypted seed is not 32 bytes",
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

fn new_kid(cluster: &str) -> String {
    let date = time_prefix();
    let mut random = [0u8; 4];
    rand::rngs::OsRng.fill_bytes(&mut random);
    format!(
        "{cluster}-{date}-{:02x}{:02x}{:02x}{:02x}",
        random[0], random[1], random[2], random[3]
    )
}

/// `YYYYMMDD` of today (UTC).
fn time_prefix() -> String {
    let d = time::OffsetDateTime::now_utc().date();
    format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
}

impl KeyStore {
    /// Loads the keys, creating the first one when the table is empty.
    pub async fn load_or_create(
        pool: &PgPool,
        master: &MasterKey,
        cluster: &str,
    ) -> Result<Self, KeyError> {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(KEY_LOCK_ID)
            .execute(&mut *tx)
            .await?;
        let active =
            sqlx::query("SELECT kid FROM signing_keys WHERE is_active AND retired_at IS NULL")
                .fetch_optional(&mut *tx)
                .await?;
        if active.is_none() {
            let mut seed = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut seed);
            let signing = SigningKey::from_bytes(&seed);
            let kid = new_kid(cluster);
            let (nonce, ciphertext) = encrypt(master, &kid, &seed)?;
            sqlx::query(
                "INSERT INTO signing_keys (kid, public_key, private_key_nonce, private_key_ciphertext, is_active)
                 VALUES ($1, $2, $3, $4, TRUE)",
            )
            .bind(&kid)
            .bind(signing.verifying_key().as_bytes().as_slice())
            .bind(nonce.as_slice())
            .bind(&ciphertext)
            .execute(&mut *tx)
            .await?;
            tracing::info!(kid, "created the first signing key");
        }
        tx.commit().await?;
        let store = Self {
            inner: Arc::new(RwLock::new(Inner {
                active: None,
                published: Vec::new(),
            })),
        };
        store.reload(pool, master).await?;
        Ok(store)
    }

    /// Re-reads the keys from the database.
    pub async fn reload(&self, pool: &PgPool, master: &MasterKey) -> Result<(), KeyError> {
        let rows = sqlx::query(
            "SELECT kid, public_key, private_key_nonce, private_key_ciphertext, is_active
             FROM signing_keys
             WHERE retired_at IS NULL OR retired_at > now() - interval '1 day'
             ORDER BY created_at DESC",
        )
        .fetch_all(pool)
        .await?;
        let mut active = None;
        let mut published = Vec::new();
        for row in rows {
            let kid: String = row.try_get("kid")?;
            let public: Vec<u8> = row.try_get("public_key")?;
            let public: [u8; 32] = public.try_into().map_err(|_| KeyError::Corrupt {
                kid: kid.clone(),
                reason: "public key is not 32 bytes",
            })?;
            let key = VerifyingKey::from_bytes(&public).map_err(|_| KeyError::Corrupt {
                kid: kid.clone(),
                reason: "public key is not an Ed25519 point",
            })?;
            if row.try_get::<bool, _>("is_active")? {
                let nonce: Vec<u8> = row.try_get("private_key_nonce")?;
                let ciphertext: Vec<u8> = row.try_get("private_key_ciphertext")?;
                let signing = decrypt(master, &kid, &nonce, &ciphertext)?;
                if signing.verifying_key() != key {
                    return Err(KeyError::Corrupt {
                        kid,
                        reason: "private key does not match the public key",
                    });
                }
                active = Some(ActiveKey {
                    kid: kid.clone(),
                    signing,
                });
            }
            published.push(Published { kid, key });
        }
        let mut inner = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.active = active;
        inner.published = published;
        Ok(())
    }

    pub fn active(&self) -> Option<ActiveKey> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .active
            .clone()
    }

    /// The public key for `kid`, to verify tokens AC issued itself.
    pub fn verifying_key(&self, kid: &str) -> Option<VerifyingKey> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .published
            .iter()
            .find(|p| p.kid == kid)
            .map(|p| p.key)
    }

    pub fn jwks(&self) -> JwkSet {
        let inner = self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        JwkSet {
            keys: inner
                .published
                .iter()
                .map(|p| Jwk::from_verifying_key(&p.kid, &p.key))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encryption_round_trip_binds_the_kid() {
        let master = MasterKey::from_bytes([7; 32]);
        let seed = [3u8; 32];
        let (nonce, ct) = encrypt(&master, "k1", &seed).unwrap();
        assert!(
            !ct.windows(32).any(|w| w == seed),
            "seed must not appear in clear"
        );
        let key = decrypt(&master, "k1", &nonce, &ct).unwrap();
        assert_eq!(key.to_bytes(), seed);
        assert!(matches!(
            decrypt(&master, "k2", &nonce, &ct),
            Err(KeyError::Decrypt { .. })
        ));
        let other = MasterKey::from_bytes([8; 32]);
        assert!(matches!(
            decrypt(&other, "k1", &nonce, &ct),
            Err(KeyError::Decrypt { .. })
        ));
    }

    #[test]
    fn kid_shape() {
        let kid = new_kid("dev");
        let parts: Vec<_> = kid.split('-').collect();
        assert_eq!(parts.len(), 3, "{kid}");
        assert_eq!(parts[0], "dev");
        assert_eq!(parts[1].len(), 8);
        assert!(parts[1].starts_with("20"), "{kid}");
        assert_eq!(parts[2].len(), 8);
    }
}
