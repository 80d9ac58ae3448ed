//! SOPS v3 files for dtlint, in Rust: structure checks without a key, age
//! decryption with MAC verification, and encryption / key updates whose
//! output the Go `sops` binary reads.
//!
//! The flow mirrors the linter's: [`SopsFile::parse`] reads a file (YAML,
//! multi-document YAML, JSON, dotenv or sops's binary envelope) into
//! documents with a span on every node; [`check`] reports positioned
//! [`Finding`]s without a key; [`decrypt`] recovers the data key from the age
//! stanzas ([`AgeIdentities::from_env`] reads `SOPS_AGE_KEY_FILE`,
//! `SOPS_AGE_KEY` and `SOPS_AGE_KEY_CMD`), decrypts every value and verifies
//! the MAC, returning [`PlainNode`] trees that keep the source spans;
//! [`decrypt_to_plaintext`], [`encrypt`] and [`update_keys`] back the
//! `dtlint sops decrypt|encrypt|updatekeys` commands. [`SopsConfig`] reads
//! `.sops.yaml` creation rules.
//!
//! Encryption edits the source text in place (each value's text becomes its
//! `ENC[...]` string, a `sops` block is appended to every document), so key
//! order, comments and formatting survive; comments under encrypted keys are
//! encrypted, as sops does.
//!
//! Compatibility notes, all checked against real sops output in the tests:
//! AES-256-GCM with 32-byte IVs; associated data is the key path joined by
//! `:` with a trailing `:` (sequence items add nothing); the MAC is the
//! uppercase hex SHA-512 over the values' Go string forms in document order
//! (`True`/`False`, shortest floats), seeded with SHA-256("sops") when
//! `mac_only_encrypted` is set, and stored encrypted with the RFC 3339
//! `lastmodified` as associated data. Not supported: PGP, cloud KMS and
//! Vault keys (reported, never used), post-quantum age recipients, INI files,
//! `!!binary` values, and encrypting with the comment regexes.

mod check;
mod cipher;
mod config;
mod decrypt;
mod edit;
mod encrypt;
mod error;
mod file;
mod finding;
mod keys;
mod metadata;
mod tree;
mod value;

pub use check::check;
pub use cipher::ENC_PREFIX;
pub use config::{CreationRule, KeyGroupSpec, SopsConfig, Spanned};
pub use decrypt::{Decrypted, decrypt, decrypt_to_plaintext};
pub use dtlint_yaml::{Pos, Span};
pub use encrypt::{EncryptOptions, encrypt, update_keys};
pub use error::{Error, ErrorKind};
pub use file::{Format, SopsFile};
pub use finding::{Finding, FindingKind};
pub use keys::{AgeIdentities, ENV_AGE_KEY, ENV_AGE_KEY_CMD, ENV_AGE_KEY_FILE, KeysError};
pub use metadata::{
    AgeStanza, DEFAULT_UNENCRYPTED_SUFFIX, Field, KeyGroup, Metadata, OtherKey, Selectors,
    WRITTEN_VERSION,
};
pub use tree::{PlainEntry, PlainNode, PlainValue};
pub use value::Plain;
