use dtlint_sops::FindingKind;

use crate::diag::{Finding, Label};
use crate::rules::sops::{
    declared_keys, environment_of, must_encrypt, source_secrets, structure_findings,
};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports secret values that reach git in plaintext: a file a
    /// `.sops.yaml` creation rule covers that is not encrypted, a value an
    /// encrypted file's rules encrypt that is plaintext (added by hand after
    /// encryption), and a Secret with a non-empty value in the overlay
    /// directory of an environment other than development (staging,
    /// production) that is not a SOPS file.
    ///
    /// ## Why is this bad?
    /// Whatever is pushed stays in the history of every clone. A credential
    /// committed in plaintext once must be rotated, not merely re-encrypted.
    ///
    /// ## Example
    /// ```yaml
    /// # overlays/production/ac-service/secret.sops.yaml, never encrypted
    /// apiVersion: v1
    /// kind: Secret
    /// metadata:
    ///   name: ac-service-secrets
    /// stringData:
    ///   DATABASE_URL: postgres://ac:hunter2@postgres-rw:5432/ac
    /// ```
    ///
    /// ## Use instead
    /// ```sh
    /// dtlint sops encrypt --in-place overlays/production/ac-service/secret.sops.yaml
    /// ```
    /// and rotate the credential if the plaintext was ever pushed.
    ///
    /// ## References
    /// - SOPS creation rules: <https://getsops.io/docs/#using-sops-yaml-conf-to-select-kms-pgp-and-age-for-new-files>
    /// - Flux SOPS decryption: <https://fluxcd.io/flux/guides/mozilla-sops/>
    pub struct SopsNotEncrypted {
        id: "sops-not-encrypted",
        category: "sops",
        severity: Error,
        summary: "a secret file or value that must be SOPS-encrypted is plaintext",
        needs: Repository,
    }
}

impl Rule for SopsNotEncrypted {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let sops = &ctx.index.sops;
        structure_findings(
            Self::META.id,
            ctx,
            &[FindingKind::NotEncrypted, FindingKind::PlaintextValue],
            |p| {
                match p.kind {
                FindingKind::NotEncrypted => "Encrypt the file with `dtlint sops encrypt --in-place FILE`, and rotate anything that was pushed in plaintext.".into(),
                _ => "Re-create the file with `dtlint sops encrypt` from its decrypted form; never add values to an encrypted file by hand.".into(),
            }
            },
            out,
        );
        // A Secret in a staging or production overlay that no creation rule
        // covers and nothing encrypts.
        for r in source_secrets(ctx.index) {
            let Some(env) = environment_of(ctx, r.file) else {
                continue;
            };
            if !must_encrypt(env) {
                continue;
            }
            if sops
                .entry(r.file)
                .is_some_and(|e| e.is_encrypted() || e.rule.is_some())
            {
                continue; // encrypted, or reported above from its rule
            }
            let plaintext = declared_keys(r.root).into_iter().find(|(_, _, v)| {
                v.as_str().is_some_and(|s| !s.is_empty())
                    && !v
                        .as_str()
                        .is_some_and(|s| s.starts_with(dtlint_sops::ENC_PREFIX))
            });
            let Some((key, _, value)) = plaintext else {
                continue;
            };
            out.push(
                Finding::new(
                    Self::META.id,
                    Label::new(r.file, value.span, "plaintext secret value"),
                    format!("Secret `{}` carries `{key}` in plaintext in the `{env}` environment", r.name),
                )
                .help("Move the values into a `secret.sops.yaml` patch covered by a `.sops.yaml` rule and encrypt it with `dtlint sops encrypt --in-place`; only development may hold plaintext placeholders."),
            );
        }
    }
}
