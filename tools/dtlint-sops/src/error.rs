//! Typed errors. Every error names the file it is about and, where it can be
//! known, the position and the sops key path (`data:password:`) of the value.

use std::fmt;
use std::path::{Path, PathBuf};

use dtlint_yaml::Span;

/// What went wrong, without the where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The text could not be read as the file's format.
    #[error("cannot read the file as {format}: {message}")]
    Syntax {
        format: &'static str,
        message: String,
    },
    /// The file has no `sops` metadata: it is not a SOPS file.
    #[error("no sops metadata: the file is not encrypted with sops")]
    NotEncrypted,
    /// The file already carries `sops` metadata.
    #[error("the file is already encrypted with sops")]
    AlreadyEncrypted,
    /// The metadata is missing a field or has one sops cannot read.
    #[error("invalid sops metadata: {0}")]
    InvalidMetadata(String),
    /// Something valid that this implementation does not handle.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// No usable age identity was given.
    #[error("no age identity available: set SOPS_AGE_KEY_FILE, SOPS_AGE_KEY or SOPS_AGE_KEY_CMD")]
    NoIdentities,
    /// None of the identities opens any age stanza of a key group.
    #[error(
        "none of the {identities} age identities can decrypt the data key (recipients: {recipients})"
    )]
    NoMatchingIdentity {
        identities: usize,
        recipients: String,
    },
    /// An age stanza (`enc`) is not a well-formed armoured age file.
    #[error("the age stanza for {recipient} is malformed: {reason}")]
    MalformedStanza { recipient: String, reason: String },
    /// A value is not in sops's `ENC[AES256_GCM,...]` format.
    #[error("malformed encrypted value: {0}")]
    MalformedValue(String),
    /// A value's authentication tag does not verify.
    #[error(
        "encrypted value does not authenticate: it was tampered with, moved to another key, or encrypted with another data key"
    )]
    ValueAuthentication,
    /// A value sops must have encrypted is plaintext.
    #[error("value is not encrypted, but the file's rules say it must be")]
    PlaintextValue,
    /// A decrypted value does not read as its declared type.
    #[error("decrypted value is not a valid {0}")]
    BadType(String),
    /// A decrypted string is not UTF-8.
    #[error("decrypted value is not valid UTF-8")]
    NotUtf8,
    /// The MAC itself does not decrypt: `mac` or `lastmodified` was edited.
    #[error("the MAC does not decrypt: `mac` or `lastmodified` was edited by hand")]
    MacUnreadable,
    /// The MAC over the decrypted values does not match the stored one.
    #[error(
        "MAC mismatch: the file was modified after it was encrypted (a value was added, removed, reordered or edited)"
    )]
    MacMismatch,
    /// `.sops.yaml` problems that stop an operation.
    #[error("{0}")]
    Config(String),
    /// Encryption failed (randomness or age).
    #[error("encryption failed: {0}")]
    Crypto(String),
    /// Reading a key file or running a key command failed.
    #[error("{0}")]
    Keys(String),
}

/// An error about one file, with the position and key path where known.
#[derive(Debug)]
pub struct Error(Box<Inner>);

#[derive(Debug)]
struct Inner {
    file: PathBuf,
    span: Option<Span>,
    key_path: Option<String>,
    kind: ErrorKind,
}

impl Error {
    pub(crate) fn new(file: &Path, kind: ErrorKind) -> Self {
        Self(Box::new(Inner {
            file: file.to_path_buf(),
            span: None,
            key_path: None,
            kind,
        }))
    }

    pub(crate) fn at(mut self, span: Span) -> Self {
        self.0.span = Some(span);
        self
    }

    pub(crate) fn key_path(mut self, path: impl Into<String>) -> Self {
        self.0.key_path = Some(path.into());
        self
    }

    /// The file the error is about.
    pub fn file(&self) -> &Path {
        &self.0.file
    }

    /// Where in the file, when known.
    pub fn span(&self) -> Option<Span> {
        self.0.span
    }

    /// The sops key path of the value (`data:password:`), when known.
    pub fn value_path(&self) -> Option<&str> {
        self.0.key_path.as_deref()
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.file.display())?;
        if let Some(span) = self.0.span {
            write!(f, ":{}", span.start)?;
        }
        write!(f, ": {}", self.0.kind)?;
        if let Some(path) = &self.0.key_path {
            write!(f, " (value `{path}`)")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0.kind)
    }
}
