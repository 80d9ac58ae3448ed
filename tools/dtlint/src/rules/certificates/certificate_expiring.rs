use x509_parser::certificate::X509Certificate;

use crate::diag::{Finding, Label};
use crate::rules::certificates::{certificate_values, describe, utc};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports a Secret value holding a PEM certificate that has expired,
    /// or that expires within `min-validity-days` (30 unless configured),
    /// naming its `notAfter` in UTC. Every certificate of the value counts
    /// (leaf, intermediates and CA bundles); the one that expires first is
    /// reported. SOPS-encrypted values are read after decryption when the
    /// run has an age key (`SOPS_AGE_KEY_FILE`).
    ///
    /// ```toml
    /// [certificates]
    /// min-validity-days = 30
    /// ```
    ///
    /// ## Why is this bad?
    /// An expired certificate fails every handshake: the service is down
    /// for its clients although every pod is healthy. A certificate kept
    /// in git expires silently, because nothing renews it.
    ///
    /// ## Example
    /// ```yaml
    /// # overlays/staging/meeting-controller/secret.sops.yaml, decrypted
    /// stringData:
    ///   tls.crt: |
    ///     -----BEGIN CERTIFICATE-----   # notAfter 2026-12-05 08:26:36 UTC
    /// ```
    ///
    /// ## Use instead
    /// Certificates belong to cert-manager, not to git: a `Certificate`
    /// writes the Secret and renews it `renewBefore` its expiry.
    /// ```yaml
    /// apiVersion: cert-manager.io/v1
    /// kind: Certificate
    /// metadata:
    ///   name: meeting-controller-tls
    /// spec:
    ///   secretName: meeting-controller-tls
    ///   duration: 2160h
    ///   renewBefore: 720h
    ///   dnsNames: [mc.example]
    ///   issuerRef: {kind: Issuer, name: dark-tower-issuer}
    /// ```
    ///
    /// ## References
    /// - cert-manager Certificate resources: <https://cert-manager.io/docs/usage/certificate/>
    /// - Certificate validity (RFC 5280, 4.1.2.5): <https://www.rfc-editor.org/rfc/rfc5280#section-4.1.2.5>
    pub struct CertificateExpiring {
        id: "certificate-expiring",
        category: "certificates",
        severity: Error,
        summary: "a certificate in a Secret has expired or expires within min-validity-days",
    }
}

/// How a certificate's validity compares with `now` and the window.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Expired,
    Expiring,
    Valid,
}

fn verdict(not_after: i64, now: i64, min_validity_days: u32) -> Verdict {
    if not_after <= now {
        Verdict::Expired
    } else if not_after < now.saturating_add(i64::from(min_validity_days) * 86_400) {
        Verdict::Expiring
    } else {
        Verdict::Valid
    }
}

/// The finding for one value, if its first-expiring certificate is due.
fn judge<'c, 'd>(
    certs: &'c [(usize, X509Certificate<'d>)],
    now: i64,
    days: u32,
) -> Option<(Verdict, &'c X509Certificate<'d>)> {
    let (_, first) = certs
        .iter()
        .min_by_key(|(_, c)| c.validity().not_after.timestamp())?;
    match verdict(first.validity().not_after.timestamp(), now, days) {
        Verdict::Valid => None,
        v => Some((v, first)),
    }
}

impl Rule for CertificateExpiring {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let days = ctx.config.certificates.min_validity_days;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for cv in certificate_values(ctx) {
            let v = cv.value;
            let certs = cv.certificates();
            let Some((verdict, cert)) = judge(&certs, now, days) else {
                continue;
            };
            let not_after = utc(cert.validity().not_after.to_datetime());
            let when = match verdict {
                Verdict::Expired => format!("expired on {not_after}"),
                _ => format!(
                    "expires on {not_after}, within the {days} days `min-validity-days` requires"
                ),
            };
            out.push(
                Finding::new(
                    Self::META.id,
                    Label::new(v.file, v.span, format!("notAfter {not_after}")),
                    format!(
                        "certificate `{}` in `{}` of {} {when}",
                        describe(cert),
                        v.path(),
                        v.owner()
                    ),
                )
                .help(format!(
                    "Renew it; better, certificates belong to cert-manager, not to git: a cert-manager `Certificate` writes {} and renews it before it expires (`renewBefore`).",
                    v.owner()
                )),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::certificates::pem_blocks;
    use crate::rules::certificates::testdata::{CA, LEAF, SELF_SIGNED_EXPIRED, indented};

    #[test]
    fn the_window_is_counted_in_days() {
        let day = 86_400;
        assert_eq!(verdict(100, 100, 30), Verdict::Expired);
        assert_eq!(verdict(100 + 29 * day, 100, 30), Verdict::Expiring);
        assert_eq!(verdict(100 + 30 * day, 100, 30), Verdict::Valid);
        assert_eq!(verdict(101, 100, 0), Verdict::Valid);
    }

    #[test]
    fn the_certificate_that_expires_first_is_judged() {
        let text = format!("{LEAF}{SELF_SIGNED_EXPIRED}{CA}");
        let blocks = pem_blocks(&text).unwrap();
        let certs: Vec<_> = blocks
            .iter()
            .enumerate()
            .map(|(i, b)| (i, b.parse_x509().unwrap()))
            .collect();
        let now = time::macros::datetime!(2026-12-06 00:00 UTC).unix_timestamp();
        let (v, cert) = judge(&certs, now, 30).unwrap();
        assert_eq!(v, Verdict::Expired);
        assert_eq!(describe(cert), "CN=self.example");
        assert!(judge(&certs[..1], now, 30).is_none(), "valid until 9999");
    }

    #[test]
    fn expired_certificates_in_secrets_are_reported_with_their_date() {
        let body = indented(SELF_SIGNED_EXPIRED);
        let out = crate::rules::testing::run(
            &CertificateExpiring,
            &[(
                "s.yaml",
                &format!(
                    "apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\nstringData:\n  tls.crt: |\n{body}"
                ),
            )],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].message,
            "certificate `CN=self.example` in `stringData.tls.crt` of Secret `s` expired on 2020-02-01 00:00:00 UTC"
        );
    }
}
