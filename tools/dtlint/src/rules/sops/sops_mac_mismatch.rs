use dtlint_sops::ErrorKind;

use crate::diag::{Finding, Label};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// With an age key (`SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY` or
    /// `SOPS_AGE_KEY_CMD`), decrypts every SOPS file and verifies each
    /// value's authentication tag and the file's MAC. A value that does not
    /// authenticate is reported at that value; a MAC that does not match
    /// (values added, removed, reordered or edited, or `lastmodified`
    /// changed) at the `mac`. Without a key this rule reports nothing and
    /// `dtlint check` says once that decryption was skipped.
    ///
    /// ## Why is this bad?
    /// kustomize-controller refuses a file whose MAC does not verify, so the
    /// deploy fails in the cluster. A hand edit of an encrypted file is also
    /// exactly what tampering looks like; CI must be the first to notice.
    ///
    /// ## Example
    /// ```yaml
    /// stringData:
    ///   # one character of the ciphertext changed by hand
    ///   DATABASE_URL: ENC[AES256_GCM,data:e/HIKd4UHJKWpToXjI9qc6fMVzTiodoQmt/xShrtK1IKJF1YOx9LxsbcFB02uh2bK+2X89eGyRd8wPFduQj0uGrgJTcpemcOMiq59WHPyLUGPo8HDIqn1RBnmn9zM1mKaPrjNmwltb/vr04w8UmzkQTHRk9SH9vSUE0+ihC2IchitJvqs5+5kDGC,iv:...,tag:...,type:str]
    /// ```
    ///
    /// ## Use instead
    /// Restore the file from git, then change values with
    /// `dtlint sops decrypt` and `dtlint sops encrypt --in-place` (or `sops
    /// FILE`), never in the encrypted text.
    ///
    /// ## References
    /// - SOPS message authentication: <https://getsops.io/docs/#message-authentication-code>
    pub struct SopsMacMismatch {
        id: "sops-mac-mismatch",
        category: "sops",
        severity: Error,
        summary: "a SOPS value or MAC does not verify: the file was edited after encryption",
    }
}

impl Rule for SopsMacMismatch {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        for e in &ctx.index.sops.files {
            let Some(err) = e.error() else { continue };
            let label = match err.kind() {
                ErrorKind::ValueAuthentication | ErrorKind::NotUtf8 | ErrorKind::BadType(_) => {
                    match err.value_path() {
                        Some(p) => format!("value `{p}` does not decrypt"),
                        None => "does not decrypt".into(),
                    }
                }
                ErrorKind::MacMismatch => "the MAC over the values does not match".into(),
                ErrorKind::MacUnreadable => "the MAC does not decrypt".into(),
                _ => continue,
            };
            let span = err.span().unwrap_or_else(|| ctx.index.ws.file_span(e.id));
            out.push(
                Finding::new(Self::META.id, Label::new(e.id, span, label), err.kind().to_string())
                    .help("Restore the file from git and change values with `dtlint sops decrypt` + `dtlint sops encrypt --in-place` (or `sops FILE`), never in the encrypted text."),
            );
        }
    }
}
