//! Problems found without a key, each at the node a human edits.

use dtlint_yaml::Span;

/// What kind of problem a [`Finding`] is, so the linter can map each kind to
/// a rule id and a severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FindingKind {
    /// The file is not readable in its format (YAML syntax, bad dotenv line).
    Syntax,
    /// A mapping repeats a key.
    DuplicateKey,
    /// The file has no `sops` metadata at all.
    NotEncrypted,
    /// A required metadata field (`mac`, `version`, `lastmodified`, keys) is
    /// missing.
    MissingMetadata,
    /// A metadata field is present but not something sops can read.
    InvalidMetadata,
    /// The documents of a multi-document file carry different `sops` blocks.
    InconsistentMetadata,
    /// A value the file's rules encrypt is plaintext.
    PlaintextValue,
    /// A value looks encrypted but is not a well-formed `ENC[...]`.
    MalformedValue,
    /// A value sops leaves plain (by the file's rules) is encrypted, so sops
    /// will hand the ciphertext to whoever reads the file.
    UnexpectedEncryptedValue,
    /// `apiVersion`, `kind` or `metadata` of a Kubernetes object is encrypted.
    EncryptedIdentity,
    /// An age stanza is not a well-formed armoured age file.
    MalformedStanza,
    /// The file's recipients differ from its `.sops.yaml` rule's.
    RecipientMismatch,
    /// The file's encryption selectors (`encrypted_regex`, ...) differ from
    /// its `.sops.yaml` rule's.
    RuleMismatch,
    /// A `.sops.yaml` problem (bad regex, bad recipient, unknown shape).
    Config,
}

/// One problem, positioned at the offending node.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: FindingKind,
    pub span: Span,
    /// A short lowercase fragment, without a final period.
    pub message: String,
    /// The sops key path of the value (`data:password:`), where there is one.
    pub value_path: Option<String>,
    /// A related place, such as the `.sops.yaml` rule a recipient list
    /// should equal.
    pub related: Option<(Span, String)>,
}

impl Finding {
    pub(crate) fn new(kind: FindingKind, span: Span, message: impl Into<String>) -> Self {
        Self {
            kind,
            span,
            message: message.into(),
            value_path: None,
            related: None,
        }
    }

    pub(crate) fn with_path(mut self, path: impl Into<String>) -> Self {
        self.value_path = Some(path.into());
        self
    }
}
