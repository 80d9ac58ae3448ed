//! Rules about TLS material in Secrets: values that must be PEM, and the
//! X.509 certificates in them (self-signed, expiring).
//!
//! They read [`crate::rules::Context::values`]: plaintext values, `data`
//! decoded from base64, and SOPS values decrypted when the run has a key.
//! Certificates are parsed with `x509-parser`; a value that does not parse
//! is `tls-secret-not-pem`'s finding, never a crash, and the other rules
//! skip it.

pub mod certificate_expiring;
pub mod certificate_self_signed;
pub mod tls_secret_not_pem;

use std::collections::HashSet;

use x509_parser::certificate::X509Certificate;
use x509_parser::pem::Pem;

use crate::model::ConfigKind;
use crate::rules::Context;
use crate::rules::values::ConfigValue;
use crate::source::FileId;

/// The PEM label of a certificate.
pub(crate) const CERTIFICATE: &str = "CERTIFICATE";

/// True when a value's key holds trust anchors (a CA bundle) rather than a
/// certificate the workload presents: `ca.crt`, `*-ca.pem`, `ca-bundle.crt`.
pub(crate) fn is_ca_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    let stem = k.rsplit_once('.').map_or(k.as_str(), |(s, _)| s);
    stem == "ca" || stem.ends_with("-ca") || stem.ends_with("_ca") || stem.contains("bundle")
}

/// The PEM blocks of a text, or why they cannot be read.
pub(crate) fn pem_blocks(text: &str) -> Result<Vec<Pem>, String> {
    Pem::iter_from_buffer(text.as_bytes())
        .map(|b| b.map_err(|e| e.to_string()))
        .collect()
}

/// A Secret value that holds PEM certificates, with the blocks decoded.
pub(crate) struct CertificateValue<'v, 'a> {
    pub value: &'v ConfigValue<'a>,
    /// The `CERTIFICATE` blocks, in order; parse them with
    /// [`CertificateValue::certificates`].
    blocks: Vec<Pem>,
}

impl CertificateValue<'_, '_> {
    /// The certificates that parse, in order, with their position among the
    /// value's certificates (0 is the leaf of a chain).
    pub fn certificates(&self) -> Vec<(usize, X509Certificate<'_>)> {
        self.blocks
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.parse_x509().ok().map(|c| (i, c)))
            .collect()
    }
}

/// Every Secret value whose text holds a well-formed PEM `CERTIFICATE`
/// block. Values whose PEM does not parse are skipped here.
pub(crate) fn certificate_values<'v, 'a>(ctx: &'v Context<'a>) -> Vec<CertificateValue<'v, 'a>> {
    ctx.values()
        .iter()
        .filter(|v| v.kind == ConfigKind::Secret)
        .filter_map(|value| {
            let text = value.text()?;
            if !text.contains("-----BEGIN CERTIFICATE") {
                return None;
            }
            let blocks: Vec<Pem> = pem_blocks(text)
                .ok()?
                .into_iter()
                .filter(|b| b.label == CERTIFICATE)
                .collect();
            (!blocks.is_empty()).then_some(CertificateValue { value, blocks })
        })
        .collect()
}

/// How a certificate is named in messages: its subject, else its first DNS
/// name, else its serial number.
pub(crate) fn describe(cert: &X509Certificate<'_>) -> String {
    let subject = cert.subject().to_string();
    if !subject.is_empty() {
        return subject;
    }
    let dns = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|san| {
            san.value.general_names.iter().find_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some(format!("DNS:{d}")),
                _ => None,
            })
        });
    dns.unwrap_or_else(|| format!("serial {}", cert.raw_serial_as_string()))
}

/// A certificate time in UTC, e.g. `2026-12-05 08:26:36 UTC`.
pub(crate) fn utc(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.format(&format).unwrap_or_else(|_| t.to_string())
}

/// The environments a file's objects are deployed to: the build they were
/// rendered in, or their environment directory's, else every environment
/// whose kustomizations include the file. Computed once per run of a rule.
pub(crate) struct Deployed<'c, 'a> {
    ctx: &'c Context<'a>,
    reached: Vec<(&'c str, HashSet<FileId>)>,
}

impl<'c, 'a> Deployed<'c, 'a> {
    pub fn new(ctx: &'c Context<'a>) -> Self {
        let reached = ctx
            .config
            .environments_in_order()
            .map(|(env, _)| (env, crate::rules::sops::reached_by_env(ctx, env)))
            .collect();
        Self { ctx, reached }
    }

    /// The environments of a value. Empty when no environment builds it.
    pub fn envs(&self, value: &ConfigValue<'_>) -> Vec<&'c str> {
        let own = value
            .env
            .or_else(|| crate::rules::sops::environment_of(self.ctx, value.file));
        self.reached
            .iter()
            .filter(|(e, files)| match own {
                Some(env) => *e == env,
                None => files.contains(&value.file),
            })
            .map(|(e, _)| *e)
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod testdata {
    //! Certificates for the unit tests, made with Python's `cryptography`
    //! (ECDSA P-256): a self-signed one for `CN=self.example` valid from
    //! 2020-01-01 to 2020-02-01, and a leaf for `CN=leaf.example` valid until
    //! 9999-12-31, issued by `CN=Test CA` (self-signed, also until 9999).

    /// `text` indented as the body of a YAML block scalar under a key.
    pub fn indented(text: &str) -> String {
        let mut out = String::new();
        for line in text.lines() {
            out.push_str("    ");
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    pub const SELF_SIGNED_EXPIRED: &str = concat!(
        "-----BEGIN CERTIFICATE-----\n",
        "MIIBWDCB/6ADAgECAhR8yMq9sUeonwZnhcQoF2NZhm7ThjAKBggqhkjOPQQDAjAX\n",
        "MRUwEwYDVQQDDAxzZWxmLmV4YW1wbGUwHhcNMjAwMTAxMDAwMDAwWhcNMjAwMjAx\n",
        "MDAwMDAwWjAXMRUwEwYDVQQDDAxzZWxmLmV4YW1wbGUwWTATBgcqhkjOPQIBBggq\n",
        "hkjOPQMBBwNCAARrq5Ph/4Mwe4+GPl3D0SB8Tpd/2e2HHuuPd/QPhvsmOEkvGkBZ\n",
        "Rzw45EqxzjjE4D7a400ydVQnS4KnCdm4U2w3oykwJzAMBgNVHRMBAf8EAjAAMBcG\n",
        "A1UdEQQQMA6CDHNlbGYuZXhhbXBsZTAKBggqhkjOPQQDAgNIADBFAiBZaOx6uU4m\n",
        "WcpK8rq5h5ZVdRtKOyXdsHrUOAwnHdjT0QIhAIja77gZzv5q/YAAD4Cuq73cb0/R\n",
        "GsiyCGKpfM2v8rIV\n",
        "-----END CERTIFICATE-----\n",
    );
    pub const LEAF: &str = concat!(
        "-----BEGIN CERTIFICATE-----\n",
        "MIIBVTCB/KADAgECAhRMIR0xCtOws5GPdCffh3iPic6y4zAKBggqhkjOPQQDAjAS\n",
        "MRAwDgYDVQQDDAdUZXN0IENBMCAXDTIwMDEwMTAwMDAwMFoYDzk5OTkxMjMxMjM1\n",
        "OTU5WjAXMRUwEwYDVQQDDAxsZWFmLmV4YW1wbGUwWTATBgcqhkjOPQIBBggqhkjO\n",
        "PQMBBwNCAAQtV1vnITiTgofiNidjzxc87tEADVRiBSLen9CAYQpLdclt4cBa1Fe2\n",
        "IAioXDI51RBkk1Ua+XhgdaYXEw6Ky7mIoykwJzAMBgNVHRMBAf8EAjAAMBcGA1Ud\n",
        "EQQQMA6CDGxlYWYuZXhhbXBsZTAKBggqhkjOPQQDAgNIADBFAiEA80LDd87GkW+w\n",
        "oKkIEvr0m0PleHtR1mvBUvM6U8Qkoa0CIFBn8GBjhSNIjnywvDhjLpzpZ7xBeXH9\n",
        "xU1HCCuDMCgl\n",
        "-----END CERTIFICATE-----\n",
    );
    pub const CA: &str = concat!(
        "-----BEGIN CERTIFICATE-----\n",
        "MIIBOzCB4aADAgECAhQ0c/MA/udDJ0CDK/fV2AoLbZoSPDAKBggqhkjOPQQDAjAS\n",
        "MRAwDgYDVQQDDAdUZXN0IENBMCAXDTIwMDEwMTAwMDAwMFoYDzk5OTkxMjMxMjM1\n",
        "OTU5WjASMRAwDgYDVQQDDAdUZXN0IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcD\n",
        "QgAEOB6yLkGT0Q5FVg84WhjyABpprgsquDoITHzRh0m9pjwNWj3Dxdt6l5MfkgYx\n",
        "2d7YAEHYJ23w3SftX/uPX48aPKMTMBEwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjO\n",
        "PQQDAgNJADBGAiEAzPGYtjBxQRvNnhWrvYDnEEfEyFKKWWufJHDM2c3x9IMCIQDH\n",
        "i/14EOY6+4a0V4tFTePkXRqzviAjg8XPXxaWpIe/KA==\n",
        "-----END CERTIFICATE-----\n",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_keys_are_told_from_served_certificates() {
        for k in [
            "ca.crt",
            "CA.pem",
            "root-ca.crt",
            "ca-bundle.crt",
            "trust_ca.pem",
        ] {
            assert!(is_ca_key(k), "{k}");
        }
        for k in ["tls.crt", "cert.pem", "cacert-less.crt", "server.crt"] {
            assert!(!is_ca_key(k), "{k}");
        }
    }

    #[test]
    fn certificates_are_described_and_timed() {
        let blocks = pem_blocks(testdata::SELF_SIGNED_EXPIRED).unwrap();
        let cert = blocks[0].parse_x509().unwrap();
        assert_eq!(describe(&cert), "CN=self.example");
        assert_eq!(
            utc(cert.validity().not_after.to_datetime()),
            "2020-02-01 00:00:00 UTC"
        );
    }

    #[test]
    fn bad_pem_is_an_error_not_a_panic() {
        for text in [
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
            "-----BEGIN CERTIFICATE-----\nMIIB\n",
            "-----BEGIN CERTIFICATE-----",
            "-----BEGIN CERT\n",
        ] {
            assert!(pem_blocks(text).is_err(), "{text:?}");
        }
        let garbage = "-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n";
        let blocks = pem_blocks(garbage).unwrap();
        assert!(blocks[0].parse_x509().is_err());
        assert!(pem_blocks("plain text").unwrap().is_empty());
    }
}
