use dtlint_sops::ErrorKind;

use crate::diag::{Finding, Label};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// With an age key given, reports a SOPS file that none of the given
    /// identities can decrypt: none of its recipients is a key of this run.
    /// Its values and MAC are then unchecked. Without a key this rule
    /// reports nothing.
    ///
    /// ## Why is this bad?
    /// CI's key is meant to be a recipient of every secret so it can prove
    /// they are intact and complete; a file CI cannot open is one it cannot
    /// vouch for. It is a warning because the key of this run may simply not
    /// be the one meant for the file (a developer's key, say).
    ///
    /// ## Example
    /// ```yaml
    /// sops:
    ///   age:
    ///     - recipient: age10uxfrnspkpsze382m7d5vd6p4cgppz0f8c6c0fpzxrd07ynywfdscecpzp
    ///       # production cluster only: CI cannot decrypt
    /// ```
    ///
    /// ## Use instead
    /// Add the CI recipient to the file's `.sops.yaml` rule and run
    /// `dtlint sops updatekeys --yes FILE`.
    ///
    /// ## References
    /// - age keys with sops: <https://getsops.io/docs/#encrypting-using-age>
    pub struct SopsUndecryptable {
        id: "sops-undecryptable",
        category: "sops",
        severity: Warning,
        summary: "no key of this run can decrypt a SOPS file, so its values are unchecked",
    }
}

impl Rule for SopsUndecryptable {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        for e in &ctx.index.sops.files {
            let Some(err) = e.error() else { continue };
            let ErrorKind::NoMatchingIdentity { identities, .. } = err.kind() else {
                continue;
            };
            let span = err
                .span()
                .or_else(|| e.file.metadata().map(|m| m.span))
                .unwrap_or_else(|| ctx.index.ws.file_span(e.id));
            let recipients = e.file.metadata().map_or(0, |m| m.age_recipients().count());
            out.push(
                Finding::new(
                    Self::META.id,
                    Label::new(
                        e.id,
                        span,
                        format!("none of {recipients} recipient(s) is a key of this run"),
                    ),
                    format!(
                        "no key for this file: none of the {identities} age {} of this run can decrypt it",
                        if *identities == 1 { "identity" } else { "identities" }
                    ),
                )
                .help("Run with the CI key in SOPS_AGE_KEY_FILE, or add its recipient to the `.sops.yaml` rule and run `dtlint sops updatekeys --yes FILE`."),
            );
        }
    }
}
