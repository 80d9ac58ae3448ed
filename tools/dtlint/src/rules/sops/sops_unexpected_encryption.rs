use dtlint_sops::FindingKind;

use crate::diag::{Finding, Label};
use crate::rules::sops::structure_findings;
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports a SOPS-encrypted file that no `.sops.yaml` creation rule
    /// covers, and an encrypted value under a key the file's own rules leave
    /// plain (`encrypted_regex`, `unencrypted_suffix`, ...).
    ///
    /// ## Why is this bad?
    /// Nobody can say who should be able to read a file no rule covers:
    /// `sops` and `dtlint sops updatekeys` cannot re-key it when a cluster
    /// key rotates, and CI cannot check its recipients. A value encrypted
    /// where the rules say plain is never decrypted: kustomize-controller
    /// hands the `ENC[...]` text to the application.
    ///
    /// ## Example
    /// ```yaml
    /// # overlays/staging/redis/extra-secret.yaml: encrypted, but the
    /// # rules only cover `*.sops.yaml`
    /// stringData:
    ///   REDIS_PASSWORD: ENC[AES256_GCM,data:...,type:str]
    /// sops: { ... }
    /// ```
    ///
    /// ## Use instead
    /// Rename the file so a rule covers it (`extra-secret.sops.yaml`), or add
    /// a creation rule for its path, then run `dtlint sops updatekeys`.
    ///
    /// ## References
    /// - SOPS creation rules: <https://getsops.io/docs/#using-sops-yaml-conf-to-select-kms-pgp-and-age-for-new-files>
    pub struct SopsUnexpectedEncryption {
        id: "sops-unexpected-encryption",
        category: "sops",
        severity: Error,
        summary: "a SOPS-encrypted file or value that no .sops.yaml rule accounts for",
        needs: Repository,
    }
}

impl Rule for SopsUnexpectedEncryption {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let sops = &ctx.index.sops;
        for e in sops.files.iter().filter(|e| e.rule.is_none()) {
            let Some(meta) = e.file.metadata() else {
                continue;
            };
            let mut f = Finding::new(
                Self::META.id,
                Label::new(e.id, meta.span, "sops metadata"),
                "file is encrypted with sops but no `.sops.yaml` creation rule covers it",
            )
            .help("Name the file so a `.sops.yaml` `path_regex` matches it (`*.sops.yaml`), or add a creation rule for it, then run `dtlint sops updatekeys FILE`.");
            if let Some(c) = &sops.config {
                f = f.with(Label::new(
                    c.file,
                    ctx.index.ws.file_span(c.file),
                    "no creation rule here matches the file's path",
                ));
            }
            out.push(f);
        }
        structure_findings(
            Self::META.id,
            ctx,
            &[FindingKind::UnexpectedEncryptedValue],
            |_| {
                "Decrypt the file, then encrypt it again with `dtlint sops encrypt` so only the keys its rules select are encrypted.".into()
            },
            out,
        );
    }
}
