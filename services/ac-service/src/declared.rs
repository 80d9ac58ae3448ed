//! Service clients declared in git and applied at every start.
//!
//! `AC_CLIENTS_FILE` names a TOML file (in a cluster: the `ac-service-clients`
//! ConfigMap, one per environment overlay) listing every client with its
//! scopes and the bcrypt hash of its secret:
//!
//! ```toml
//! [[client]]
//! id = "global-controller"
//! scopes = "internal:meeting-token service.write.mc"
//! secret_hash = "$2b$12$..."
//! # service_type = "global-controller"   (default: the id)
//! ```
//!
//! The secret itself lives in exactly one place, the client's own
//! (SOPS-encrypted) Secret; AC only ever needs the hash, so no Secret has to
//! be shared between services and no imperative registration step exists.
//! Applying is idempotent: a client whose stored hash, scopes and service
//! type already match is left alone, anything else is created or updated.
//! Several AC replicas starting at once apply the same rows; the upsert makes
//! that safe. Clients that are not declared are left as they are.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use serde::Deserialize;
use sqlx::{PgPool, Row as _};

use crate::clients::{self, ClientError, Registered};

/// The file is at most this big.
const MAX_FILE_BYTES: u64 = 256 * 1024;

/// One client read from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredClient {
    pub client_id: String,
    pub scopes: Vec<String>,
    pub service_type: String,
    pub secret_hash: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DeclaredError {
    #[error("AC_CLIENTS_FILE {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("AC_CLIENTS_FILE {path}: larger than {MAX_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("AC_CLIENTS_FILE {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("AC_CLIENTS_FILE {path}: client {index} ({id:?}): {reason}")]
    Invalid {
        path: PathBuf,
        index: usize,
        id: String,
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    client: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: String,
    scopes: String,
    secret_hash: String,
    service_type: Option<String>,
}

/// What applying did to one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Unchanged,
    Created,
    Updated,
}

impl Applied {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unchanged => "unchanged",
            Self::Created => "created",
            Self::Updated => "updated",
        }
    }
}

/// Reads and checks the file (size-bounded).
pub fn read_file(path: &Path) -> Result<Vec<DeclaredClient>, DeclaredError> {
    let io = |source| DeclaredError::Io {
        path: path.to_owned(),
        source,
    };
    let bytes = common::files::read_bounded(path, MAX_FILE_BYTES).map_err(|e| match e {
        common::files::BoundedReadError::Io(source) => io(source),
        common::files::BoundedReadError::TooLarge => DeclaredError::TooLarge { path: path.into() },
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    parse(path, &text)
}

/// Parses the file's text; errors name the file and the client.
pub fn parse(path: &Path, text: &str) -> Result<Vec<DeclaredClient>, DeclaredError> {
    let file: File = toml::from_str(text).map_err(|e| DeclaredError::Syntax {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(file.client.len());
    for (index, entry) in file.client.into_iter().enumerate() {
        let invalid = |reason: String| DeclaredError::Invalid {
            path: path.to_owned(),
            index: index + 1,
            id: entry.id.clone(),
            reason,
        };
        if !clients::valid_client_id(&entry.id) {
            return Err(invalid(
                ClientError::InvalidId(entry.id.clone()).to_string(),
            ));
        }
        if !seen.insert(entry.id.clone()) {
            return Err(invalid("declared twice".to_owned()));
        }
        let scopes = clients::parse_scopes(&entry.scopes).map_err(|e| invalid(e.to_string()))?;
        let service_type = entry
            .service_type
            .clone()
            .unwrap_or_else(|| entry.id.clone());
        if !clients::valid_client_id(&service_type) {
            return Err(invalid(format!(
                "service_type: {}",
                ClientError::InvalidId(service_type)
            )));
        }
        let parts = bcrypt::HashParts::from_str(&entry.secret_hash).map_err(|_| {
            invalid("secret_hash is not a bcrypt hash ($2b$<cost>$<salt+hash>)".to_owned())
        })?;
        if !(4..=31).contains(&parts.get_cost()) {
            return Err(invalid(format!(
                "secret_hash has cost {}, outside 4..=31",
                parts.get_cost()
            )));
        }
        out.push(DeclaredClient {
            client_id: entry.id,
            scopes,
            service_type,
            secret_hash: entry.secret_hash,
        });
    }
    Ok(out)
}

/// Makes the stored clients match the declared ones (never removes others).
pub async fn apply(
    pool: &PgPool,
    declared: &[DeclaredClient],
) -> Result<Vec<(String, Applied)>, ClientError> {
    let mut out = Vec::with_capacity(declared.len());
    for client in declared {
        let applied = if matches_stored(pool, client).await? {
            Applied::Unchanged
        } else {
            match clients::store(
                pool,
                &client.client_id,
                &client.secret_hash,
                &client.scopes,
                &client.service_type,
            )
            .await?
            {
                Registered::Created => Applied::Created,
                Registered::Updated => Applied::Updated,
            }
        };
        tracing::info!(
            client_id = %client.client_id,
            outcome = applied.as_str(),
            "declared client applied"
        );
        out.push((client.client_id.clone(), applied));
    }
    Ok(out)
}

async fn matches_stored(pool: &PgPool, client: &DeclaredClient) -> Result<bool, ClientError> {
    let row = sqlx::query(
        "SELECT secret_hash, scopes, service_type, enabled FROM service_clients
         WHERE client_id = $1",
    )
    .bind(&client.client_id)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    Ok(row.try_get::<bool, _>("enabled")?
        && row.try_get::<String, _>("secret_hash")? == client.secret_hash
        && row.try_get::<Vec<String>, _>("scopes")? == client.scopes
        && row.try_get::<String, _>("service_type")? == client.service_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2b$04$EGdrhbKUv8Oc9vGiXX0HQOxSg445d458Muh7DAHskb6QbtCvdxcie";

    fn parse_text(text: &str) -> Result<Vec<DeclaredClient>, String> {
        parse(Path::new("clients.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_clients_in_order_with_defaults() {
        let text = format!(
            "[[client]]\nid = \"global-controller\"\nscopes = \"internal:meeting-token service.write.mc\"\nsecret_hash = \"{HASH}\"\n\n[[client]]\nid = \"prober\"\nscopes = \"meeting:create meeting:join\"\nsecret_hash = \"{HASH}\"\nservice_type = \"synthetic\"\n"
        );
        let clients = parse_text(&text).unwrap();
        assert_eq!(clients.len(), 2);
        assert_eq!(clients[0].client_id, "global-controller");
        assert_eq!(clients[0].service_type, "global-controller");
        assert_eq!(
            clients[0].scopes,
            ["internal:meeting-token", "service.write.mc"]
        );
        assert_eq!(clients[1].service_type, "synthetic");
        assert_eq!(parse_text("").unwrap(), []);
    }

    #[test]
    fn errors_name_the_file_and_the_client() {
        let cases = [
            (
                format!("[[client]]\nid = \"gc\"\nscopes = \"admin\"\nsecret_hash = \"{HASH}\"\n"),
                "clients.toml: client 1 (\"gc\"): unknown scope \"admin\"",
            ),
            (
                "[[client]]\nid = \"gc\"\nscopes = \"meeting:join\"\nsecret_hash = \"plaintext-secret\"\n".to_owned(),
                "client 1 (\"gc\"): secret_hash is not a bcrypt hash",
            ),
            (
                format!("[[client]]\nid = \"a b\"\nscopes = \"meeting:join\"\nsecret_hash = \"{HASH}\"\n"),
                "invalid client id \"a b\"",
            ),
            (
                format!("[[client]]\nid = \"gc\"\nscopes = \"meeting:join\"\nsecret_hash = \"{HASH}\"\n[[client]]\nid = \"gc\"\nscopes = \"meeting:join\"\nsecret_hash = \"{HASH}\"\n"),
                "client 2 (\"gc\"): declared twice",
            ),
            (
                format!("[[client]]\nid = \"gc\"\nscope = \"meeting:join\"\nsecret_hash = \"{HASH}\"\n"),
                "TOML parse error at line 3, column 1",
            ),
            (
                "[[client]\n".to_owned(),
                "clients.toml: TOML parse error at line 1",
            ),
        ];
        for (text, want) in cases {
            let err = parse_text(&text).unwrap_err();
            if text.contains("scope =") && !text.contains("scopes") {
                assert!(err.contains("unknown field `scope`"), "{err}");
            }
            assert!(err.contains(want), "{err} does not contain {want}");
            assert!(err.starts_with("AC_CLIENTS_FILE clients.toml: "), "{err}");
        }
    }

    #[test]
    fn file_errors_are_bounded_and_named() {
        let err = read_file(Path::new("/nonexistent/clients.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("AC_CLIENTS_FILE /nonexistent/clients.toml: "),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("clients.toml");
        std::fs::write(&big, "#".repeat(300 * 1024)).unwrap();
        let err = read_file(&big).unwrap_err().to_string();
        assert!(err.contains("larger than 262144 bytes"), "{err}");
    }
}
