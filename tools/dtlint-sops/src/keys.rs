//! age identities and recipients, and the data key's age stanzas.
//!
//! sops encrypts the 32-byte data key once per age recipient, as an armoured
//! age file (`-----BEGIN AGE ENCRYPTED FILE-----`). Identities come from the
//! same places sops reads them: `SOPS_AGE_KEY` (the key text),
//! `SOPS_AGE_KEY_FILE` (a key file) and `SOPS_AGE_KEY_CMD` (a command printing
//! keys). Only native X25519 identities are supported; post-quantum
//! (`AGE-SECRET-KEY-PQ-1…`) and plugin identities are skipped and counted.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::str::FromStr as _;

use age::armor::{ArmoredReader, ArmoredWriter, Format as ArmorFormat};
use age::secrecy::ExposeSecret as _;

/// The environment variables sops reads age identities from.
pub const ENV_AGE_KEY: &str = "SOPS_AGE_KEY";
pub const ENV_AGE_KEY_FILE: &str = "SOPS_AGE_KEY_FILE";
pub const ENV_AGE_KEY_CMD: &str = "SOPS_AGE_KEY_CMD";

/// Why identities could not be loaded. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
    #[error("cannot read the age key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("line {line} of {origin} is not an age identity")]
    BadLine { origin: String, line: usize },
    #[error("{origin} holds no age identity")]
    Empty { origin: String },
    #[error("running {ENV_AGE_KEY_CMD} failed: {0}")]
    Command(String),
}

/// A set of age X25519 identities (private keys).
pub struct AgeIdentities {
    ids: Vec<age::x25519::Identity>,
    skipped: usize,
}

impl std::fmt::Debug for AgeIdentities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgeIdentities")
            .field("identities", &self.ids.len())
            .field("skipped", &self.skipped)
            .finish()
    }
}

impl AgeIdentities {
    /// Parse identity text in age's key-file format: one
    /// `AGE-SECRET-KEY-1…` per line, `#` comments and blank lines ignored.
    /// `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, KeysError> {
        let mut out = Self {
            ids: Vec::new(),
            skipped: 0,
        };
        out.add(text, origin)?;
        if out.ids.is_empty() && out.skipped == 0 {
            return Err(KeysError::Empty {
                origin: origin.into(),
            });
        }
        Ok(out)
    }

    fn add(&mut self, text: &str, origin: &str) -> Result<(), KeysError> {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with("AGE-SECRET-KEY-PQ-") || line.starts_with("AGE-PLUGIN-") {
                self.skipped += 1;
                continue;
            }
            let id = age::x25519::Identity::from_str(line).map_err(|_| KeysError::BadLine {
                origin: origin.into(),
                line: i + 1,
            })?;
            self.ids.push(id);
        }
        Ok(())
    }

    /// Read an age key file.
    pub fn from_file(path: &Path) -> Result<Self, KeysError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeysError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Identities from sops's variables: `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`
    /// and `SOPS_AGE_KEY_CMD` (run with `sh -c`); all that are set are used.
    /// `Ok(None)` when none is set.
    pub fn from_env() -> Result<Option<Self>, KeysError> {
        Self::from_vars(
            std::env::var(ENV_AGE_KEY).ok(),
            std::env::var_os(ENV_AGE_KEY_FILE),
            std::env::var(ENV_AGE_KEY_CMD).ok(),
        )
    }

    fn from_vars(
        key: Option<String>,
        file: Option<std::ffi::OsString>,
        cmd: Option<String>,
    ) -> Result<Option<Self>, KeysError> {
        let mut out = Self {
            ids: Vec::new(),
            skipped: 0,
        };
        let mut any = false;
        if let Some(key) = key.filter(|k| !k.trim().is_empty()) {
            out.add(&key, ENV_AGE_KEY)?;
            any = true;
        }
        if let Some(file) = file.filter(|f| !f.is_empty()) {
            let path = Path::new(&file);
            let text = std::fs::read_to_string(path).map_err(|source| KeysError::Read {
                path: path.display().to_string(),
                source,
            })?;
            out.add(&text, &path.display().to_string())?;
            any = true;
        }
        if let Some(cmd) = cmd.filter(|c| !c.trim().is_empty()) {
            let output = std::process::Command::new("sh")
                .arg("-c")
                .arg(&cmd)
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| KeysError::Command(e.to_string()))?;
            if !output.status.success() {
                return Err(KeysError::Command(format!("exit status {}", output.status)));
            }
            let text = String::from_utf8(output.stdout)
                .map_err(|_| KeysError::Command("output is not UTF-8".into()))?;
            out.add(&text, ENV_AGE_KEY_CMD)?;
            any = true;
        }
        Ok(any.then_some(out))
    }

    /// A fresh random identity (for tests and tooling). Returns the
    /// identities and the matching public recipient (`age1…`).
    pub fn generate() -> (Self, String) {
        let id = age::x25519::Identity::generate();
        let recipient = id.to_public().to_string();
        (
            Self {
                ids: vec![id],
                skipped: 0,
            },
            recipient,
        )
    }

    /// The identity as key-file text (`AGE-SECRET-KEY-1…` lines), for tests
    /// that hand a generated key to another program. Handle with care.
    pub fn to_key_file_text(&self) -> String {
        let mut s = String::new();
        for id in &self.ids {
            s.push_str(id.to_string().expose_secret());
            s.push('\n');
        }
        s
    }

    /// The public recipients of these identities.
    pub fn recipients(&self) -> Vec<String> {
        self.ids.iter().map(|i| i.to_public().to_string()).collect()
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Identities that were skipped because they are not X25519 keys.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Open one armoured age stanza. `Ok(None)` when no identity matches.
    pub(crate) fn unwrap_stanza(&self, enc: &str) -> Result<Option<Vec<u8>>, String> {
        let decryptor = age::Decryptor::new_buffered(ArmoredReader::new(enc.as_bytes()))
            .map_err(|e| describe(&e))?;
        let ids = self.ids.iter().map(|i| i as &dyn age::Identity);
        match decryptor.decrypt(ids) {
            Ok(mut reader) => {
                let mut out = Vec::with_capacity(33);
                reader
                    .by_ref()
                    .take(4096)
                    .read_to_end(&mut out)
                    .map_err(|e| format!("the payload does not decrypt: {e}"))?;
                Ok(Some(out))
            }
            Err(age::DecryptError::NoMatchingKeys) => Ok(None),
            Err(e) => Err(describe(&e)),
        }
    }
}

fn describe(e: &age::DecryptError) -> String {
    match e {
        age::DecryptError::Io(io) => format!("not a readable armoured age file ({io})"),
        age::DecryptError::InvalidHeader => "the age header is invalid or truncated".into(),
        age::DecryptError::InvalidMac => "the age header MAC does not verify".into(),
        age::DecryptError::UnknownFormat => "unknown age format version".into(),
        other => other.to_string(),
    }
}

/// Check, without a key, that `enc` is a well-formed armoured age file and
/// return the stanza types of its header (`X25519`, `mlkem768x25519`, ...).
pub(crate) fn inspect_stanza(enc: &str) -> Result<(), String> {
    if !enc
        .trim_start()
        .starts_with("-----BEGIN AGE ENCRYPTED FILE-----")
    {
        return Err("it does not start with `-----BEGIN AGE ENCRYPTED FILE-----`".into());
    }
    let decryptor = age::Decryptor::new_buffered(ArmoredReader::new(enc.as_bytes()))
        .map_err(|e| describe(&e))?;
    drop(decryptor);
    // The header parsed; make sure the armour's body is complete too.
    let mut sink = Vec::new();
    ArmoredReader::new(enc.as_bytes())
        .read_to_end(&mut sink)
        .map_err(|e| format!("the armour is damaged or truncated ({e})"))?;
    Ok(())
}

/// Parse an age recipient (`age1…`).
pub(crate) fn parse_recipient(s: &str) -> Result<age::x25519::Recipient, String> {
    age::x25519::Recipient::from_str(s.trim()).map_err(|e| {
        if s.trim().starts_with("age1pq1") {
            "post-quantum age recipients are not supported by this implementation".into()
        } else {
            format!("not an age X25519 recipient: {e}")
        }
    })
}

/// Encrypt `secret` to one recipient as an armoured age file, as sops does.
pub(crate) fn wrap(secret: &[u8], recipient: &age::x25519::Recipient) -> Result<String, String> {
    let recipients = [recipient as &dyn age::Recipient];
    let encryptor =
        age::Encryptor::with_recipients(recipients.into_iter()).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(400);
    let armor =
        ArmoredWriter::wrap_output(&mut out, ArmorFormat::AsciiArmor).map_err(|e| e.to_string())?;
    let mut writer = encryptor.wrap_output(armor).map_err(|e| e.to_string())?;
    writer.write_all(secret).map_err(|e| e.to_string())?;
    writer
        .finish()
        .and_then(ArmoredWriter::finish)
        .map_err(|e| e.to_string())?;
    String::from_utf8(out).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_parse_and_skip_pq_keys() {
        let (ids, recipient) = AgeIdentities::generate();
        let text = format!(
            "# created: now\n# public key: {recipient}\n{}\nAGE-SECRET-KEY-PQ-1ABC\n",
            ids.to_key_file_text().trim()
        );
        let parsed = AgeIdentities::parse(&text, "test").unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed.skipped(), 1);
        assert_eq!(parsed.recipients(), vec![recipient]);
        let err = AgeIdentities::parse("not a key\n", "keys.txt").unwrap_err();
        assert_eq!(err.to_string(), "line 1 of keys.txt is not an age identity");
        assert!(AgeIdentities::parse("# nothing\n", "k").is_err());
    }

    #[test]
    fn wrap_and_unwrap_a_data_key() {
        let (ids, recipient) = AgeIdentities::generate();
        let r = parse_recipient(&recipient).unwrap();
        let armored = wrap(&[7u8; 32], &r).unwrap();
        assert!(armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"));
        inspect_stanza(&armored).unwrap();
        assert_eq!(ids.unwrap_stanza(&armored).unwrap().unwrap(), vec![7u8; 32]);
        let (other, _) = AgeIdentities::generate();
        assert_eq!(other.unwrap_stanza(&armored).unwrap(), None);
        let truncated = &armored[..armored.len() / 2];
        assert!(inspect_stanza(truncated).is_err());
        assert!(ids.unwrap_stanza(truncated).is_err());
    }

    #[test]
    fn env_variables_are_read_in_sops_order() {
        let (ids, recipient) = AgeIdentities::generate();
        let key = ids.to_key_file_text();
        let got = AgeIdentities::from_vars(Some(key), None, None)
            .unwrap()
            .unwrap();
        assert_eq!(got.recipients(), vec![recipient.clone()]);
        let cmd = format!("printf '%s\\n' '{}'", ids.to_key_file_text().trim());
        let got = AgeIdentities::from_vars(None, None, Some(cmd))
            .unwrap()
            .unwrap();
        assert_eq!(got.recipients(), vec![recipient]);
        assert!(
            AgeIdentities::from_vars(None, None, None)
                .unwrap()
                .is_none()
        );
        let err =
            AgeIdentities::from_vars(None, Some("/nonexistent/keys.txt".into()), None).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/keys.txt"));
    }
}
