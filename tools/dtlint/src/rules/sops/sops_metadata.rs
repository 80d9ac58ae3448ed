use dtlint_sops::FindingKind;

use crate::diag::{Finding, Label};
use crate::rules::sops::{from_library, structure_findings};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};
use crate::workspace::Role;

declare_rule! {
    /// ## What it does
    /// Checks, without a key, that every SOPS file's metadata is intact:
    /// the `sops` block has `mac`, `version`, `lastmodified` (RFC 3339) and
    /// keys; every age stanza is a complete armoured age file; every
    /// `ENC[...]` value is well formed; every document of a multi-document
    /// file carries the same block; `apiVersion`, `kind` and `metadata` of
    /// a Kubernetes object are not encrypted; and the file's encryption
    /// selectors (`encrypted_regex`, `mac_only_encrypted`, ...) equal its
    /// `.sops.yaml` rule's. Problems in `.sops.yaml` itself (a bad regex, a
    /// malformed recipient) and unreadable dotenv or JSON SOPS files are
    /// reported here too.
    ///
    /// ## Why is this bad?
    /// kustomize-controller refuses a file with broken metadata, and Flux
    /// stops reconciling the whole Kustomization. An encrypted `kind` or
    /// `metadata.name` leaves kustomize unable to match the patch to its
    /// base Secret. A rule/file selector mismatch means the next
    /// `sops` edit encrypts different keys than the last one did.
    ///
    /// ## Example
    /// ```yaml
    /// sops:
    ///   age: [...]
    ///   lastmodified: "yesterday"
    ///   version: 3.11.0
    /// ```
    ///
    /// ## Use instead
    /// Restore the file from git, or decrypt it with its key and encrypt it
    /// again with `dtlint sops encrypt --in-place`.
    ///
    /// ## References
    /// - SOPS file format: <https://getsops.io/docs/>
    pub struct SopsMetadata {
        id: "sops-metadata",
        category: "sops",
        severity: Error,
        summary: "SOPS metadata is missing, malformed or disagrees with the .sops.yaml rule",
    }
}

impl Rule for SopsMetadata {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let ws = ctx.index.ws;
        structure_findings(
            Self::META.id,
            ctx,
            &[
                FindingKind::MissingMetadata,
                FindingKind::InvalidMetadata,
                FindingKind::InconsistentMetadata,
                FindingKind::MalformedValue,
                FindingKind::MalformedStanza,
            ],
            |_| {
                "Restore the file from git, or decrypt it and encrypt it again with `dtlint sops encrypt --in-place`; never edit the `sops` block by hand.".into()
            },
            out,
        );
        structure_findings(
            Self::META.id,
            ctx,
            &[FindingKind::EncryptedIdentity],
            |_| {
                "Encrypt only `data` and `stringData`: set `encrypted_regex: ^(data|stringData)$` in the `.sops.yaml` rule and encrypt the file again.".into()
            },
            out,
        );
        structure_findings(
            Self::META.id,
            ctx,
            &[FindingKind::RuleMismatch],
            |_| {
                "Decrypt the file and encrypt it again with `dtlint sops encrypt --in-place` so it follows its `.sops.yaml` rule.".into()
            },
            out,
        );
        // Dotenv and JSON files are not read by the YAML rules.
        for e in ctx
            .index
            .sops
            .files
            .iter()
            .filter(|e| ws.role(e.id) == Role::SopsData)
        {
            for p in e
                .structure
                .iter()
                .filter(|p| matches!(p.kind, FindingKind::Syntax | FindingKind::DuplicateKey))
            {
                out.push(from_library(Self::META.id, e.id, None, p).help(format!(
                    "Fix the file so it reads as {}.",
                    e.file.format().name()
                )));
            }
        }
        if let Some(c) = &ctx.index.sops.config
            && let Ok(cfg) = &c.config
        {
            for p in &cfg.problems {
                out.push(
                    Finding::new(Self::META.id, Label::new(c.file, p.span, "in `.sops.yaml`"), p.message.clone())
                        .help("Fix the creation rule: sops refuses to run with it, and no file it should cover is checked against it."),
                );
            }
        }
    }
}
