use crate::diag::{Finding, Label};
use crate::model::ConfigKind;
use crate::rules::certificates::{CERTIFICATE, pem_blocks};
use crate::rules::values::{ConfigValue, Content};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks the Secret values that must be PEM: `tls.crt` and `ca.crt`
    /// must hold PEM `CERTIFICATE` blocks that parse as X.509
    /// certificates, and `tls.key` an unencrypted PEM private key, in any
    /// Secret type (`kubernetes.io/tls` Secrets included). Any other value
    /// that starts a PEM block (`-----BEGIN …`) must be well-formed PEM, and
    /// its certificates must parse. `data` values are base64-decoded first
    /// (a value that is not base64 is reported too); `stringData` values are
    /// read as written. SOPS-encrypted values are checked after decryption
    /// when the run has an age key (`SOPS_AGE_KEY_FILE`), and skipped
    /// without one. Empty values are not reported: a base Secret declares
    /// its keys empty for the overlays to fill in, and a value still empty
    /// after rendering is `empty-secret-value`'s finding.
    ///
    /// ## Why is this bad?
    /// The workload fails when it loads the pair (a TLS server refuses to
    /// start, or starts without TLS), Kubernetes rejects a
    /// `kubernetes.io/tls` Secret whose values are not PEM, and a
    /// placeholder such as `dev-only-not-a-secret` in `tls.crt` only shows
    /// up when the first client connects. A private key in `tls.crt` is a
    /// leak: certificates are published, keys are not.
    ///
    /// ## Example
    /// ```yaml
    /// kind: Secret
    /// metadata:
    ///   name: meeting-controller-secrets
    /// stringData:
    ///   tls.crt: "dev-only-not-a-secret"
    ///   tls.key: "dev-only-not-a-secret"
    /// ```
    ///
    /// ## Use instead
    /// Let cert-manager issue the certificate and write the Secret; keep
    /// no certificate or key in git:
    /// ```yaml
    /// apiVersion: cert-manager.io/v1
    /// kind: Certificate
    /// metadata:
    ///   name: meeting-controller-tls
    /// spec:
    ///   secretName: meeting-controller-tls
    ///   dnsNames: [meeting-controller.dark-tower.svc]
    ///   issuerRef: {kind: Issuer, name: dark-tower-issuer}
    /// ```
    ///
    /// ## References
    /// - TLS Secrets: <https://kubernetes.io/docs/concepts/configuration/secret/#tls-secrets>
    /// - cert-manager Certificate resources: <https://cert-manager.io/docs/usage/certificate/>
    /// - PEM encoding of certificates and keys (RFC 7468): <https://www.rfc-editor.org/rfc/rfc7468>
    pub struct TlsSecretNotPem {
        id: "tls-secret-not-pem",
        category: "certificates",
        severity: Error,
        summary: "a Secret's tls.crt, tls.key or ca.crt (or any PEM-looking value) is not valid PEM",
    }
}

/// What a value must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// One or more certificates and nothing else (`tls.crt`, `ca.crt`).
    Certificates,
    /// A private key (`tls.key`).
    PrivateKey,
    /// Well-formed PEM, because it starts like PEM.
    AnyPem,
}

fn expectation(v: &ConfigValue<'_>) -> Option<Expect> {
    match v.key {
        "tls.crt" | "ca.crt" => Some(Expect::Certificates),
        "tls.key" => Some(Expect::PrivateKey),
        _ if v
            .text()
            .is_some_and(|t| t.lines().any(|l| l.starts_with("-----BEGIN "))) =>
        {
            Some(Expect::AnyPem)
        }
        _ => None,
    }
}

/// Labels of PEM private keys a TLS server reads without a passphrase.
const KEY_LABELS: [&str; 3] = ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"];

/// What is wrong with a value: (label at the value, message tail).
fn problem(v: &ConfigValue<'_>, expect: Expect) -> Option<(String, String)> {
    let what = match expect {
        Expect::Certificates => "a PEM certificate",
        Expect::PrivateKey => "a PEM private key",
        Expect::AnyPem => "PEM",
    };
    let bytes = match &v.content {
        Content::NotBase64 => {
            return Some((
                "not base64".into(),
                format!("is not valid base64, so not {what} either"),
            ));
        }
        Content::Bytes(b) => b,
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Some((
            "binary data (DER?), not PEM text".into(),
            format!("is binary data, not {what}"),
        ));
    };
    let blocks = match pem_blocks(text) {
        Ok(b) => b,
        Err(e) => {
            return Some((
                format!("damaged PEM: {e}"),
                "holds a damaged PEM block".into(),
            ));
        }
    };
    if blocks.is_empty() {
        let wanted = match expect {
            Expect::PrivateKey => "no `-----BEGIN PRIVATE KEY-----` block",
            Expect::Certificates => "no `-----BEGIN CERTIFICATE-----` block",
            // Not PEM after all (a `-----BEGIN` inside a line): not ours.
            Expect::AnyPem => return None,
        };
        return Some((wanted.into(), format!("is not {what}")));
    }
    for b in blocks.iter().filter(|b| b.label == CERTIFICATE) {
        if let Err(e) = b.parse_x509() {
            return Some((
                format!("not an X.509 certificate: {e}"),
                "holds a CERTIFICATE block that does not parse".into(),
            ));
        }
    }
    match expect {
        Expect::Certificates => blocks.iter().find(|b| b.label != CERTIFICATE).map(|b| {
            let leak = if b.label.ends_with("PRIVATE KEY") {
                ", and a private key does not belong next to the certificates"
            } else {
                ""
            };
            (
                format!("a `{}` block", b.label),
                format!(
                    "holds a `{}` block where only certificates belong{leak}",
                    b.label
                ),
            )
        }),
        Expect::PrivateKey => {
            if blocks
                .iter()
                .any(|b| KEY_LABELS.contains(&b.label.as_str()))
            {
                return None;
            }
            let label = &blocks[0].label;
            Some(if label == "ENCRYPTED PRIVATE KEY" {
                (
                    "an encrypted private key".into(),
                    "holds a passphrase-encrypted private key, which TLS servers and ingress controllers cannot read".into(),
                )
            } else {
                (
                    format!("a `{label}` block"),
                    format!("holds a `{label}` block, not a private key"),
                )
            })
        }
        Expect::AnyPem => None,
    }
}

impl Rule for TlsSecretNotPem {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        for v in ctx.values().iter().filter(|v| v.kind == ConfigKind::Secret) {
            let Some(expect) = expectation(v) else {
                continue;
            };
            let Some((label, tail)) = problem(v, expect) else {
                continue;
            };
            let help = match expect {
                Expect::Certificates | Expect::PrivateKey => format!(
                    "Put the PEM certificate chain (`-----BEGIN CERTIFICATE-----`) in `tls.crt`, its unencrypted PEM private key in `tls.key` and PEM CA certificates in `ca.crt`; better, let a cert-manager `Certificate` write {}, so no certificate or key is kept in git.",
                    v.owner()
                ),
                Expect::AnyPem => format!(
                    "Fix the PEM in `{}` (each block between `-----BEGIN …-----` and `-----END …-----` lines, base64 inside), or let cert-manager write {} instead of keeping it in git.",
                    v.key,
                    v.owner()
                ),
            };
            out.push(
                Finding::new(
                    Self::META.id,
                    Label::new(v.file, v.span, label),
                    format!("`{}` of {} {tail}", v.path(), v.owner()),
                )
                .help(help),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::certificates::testdata::{CA, LEAF};

    fn secret(entries: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\ntype: kubernetes.io/tls\n{entries}"
        )
    }

    fn messages(entries: &str) -> Vec<String> {
        crate::rules::testing::run(&TlsSecretNotPem, &[("s.yaml", &secret(entries))])
            .into_iter()
            .map(|f| f.message)
            .collect()
    }

    use crate::rules::certificates::testdata::indented as block;

    #[test]
    fn placeholders_and_broken_pem_are_found() {
        let out = messages(
            "stringData:\n  tls.crt: dev-only-not-a-secret\n  tls.key: |\n    -----BEGIN CERTIFICATE-----\n    Z2FyYmFnZQ==\n    -----END CERTIFICATE-----\ndata:\n  ca.crt: '%%%'\n  other.pem: LS0tLS1CRUdJTiBYLS0tLS0K\n",
        );
        assert_eq!(
            out,
            [
                "`data.ca.crt` of Secret `s` is not valid base64, so not a PEM certificate either",
                "`data.other.pem` of Secret `s` holds a damaged PEM block",
                "`stringData.tls.crt` of Secret `s` is not a PEM certificate",
                "`stringData.tls.key` of Secret `s` holds a CERTIFICATE block that does not parse",
            ]
        );
    }

    #[test]
    fn keys_and_certificates_in_the_wrong_place() {
        let key = "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n";
        let out = messages(&format!(
            "stringData:\n  tls.crt: |\n{}{}  tls.key: |\n{}",
            block(LEAF),
            block(key),
            block(CA)
        ));
        assert_eq!(
            out,
            [
                "`stringData.tls.crt` of Secret `s` holds a `PRIVATE KEY` block where only certificates belong, and a private key does not belong next to the certificates",
                "`stringData.tls.key` of Secret `s` holds a `CERTIFICATE` block, not a private key",
            ]
        );
    }

    #[test]
    fn valid_pem_and_empty_values_pass() {
        let key = "-----BEGIN EC PRIVATE KEY-----\nMAA=\n-----END EC PRIVATE KEY-----\n";
        let out = messages(&format!(
            "stringData:\n  tls.crt: |\n{}{}  ca.crt: |\n{}  tls.key: |\n{}  note: plain text\ndata:\n  empty: ''\n",
            block(LEAF),
            block(CA),
            block(CA),
            block(key)
        ));
        assert!(out.is_empty(), "{out:?}");
        assert!(messages("stringData:\n  tls.crt: ''\n  tls.key:\n").is_empty());
    }
}
