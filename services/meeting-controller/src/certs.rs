//! Development TLS certificates for the WebTransport listener
//! (`meeting-controller gen-dev-cert --out DIR`).
//!
//! Browsers accept a self-signed WebTransport server when the page passes
//! the certificate's SHA-256 in `serverCertificateHashes`, but only for an
//! ECDSA (P-256) certificate valid for at most 14 days. This module makes
//! exactly such a certificate with rcgen; staging and production mount real
//! certificates instead (the same `MC_TLS_CERT_PATH` / `MC_TLS_KEY_PATH`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use sha2::{Digest as _, Sha256};

/// Validity of a development certificate: 13 days from one hour ago, so the
/// total stays under the 14 days browsers allow and a skewed clock still
/// accepts it.
pub const DEV_CERT_VALIDITY: Duration = Duration::from_hours(13 * 24);
const BACKDATE: Duration = Duration::from_hours(1);

/// Names a development certificate covers unless told otherwise.
pub const DEFAULT_SANS: &[&str] = &["localhost", "127.0.0.1", "::1"];

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A generated certificate and key.
pub struct DevCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
}

impl std::fmt::Debug for DevCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCert")
            .field("sha256", &self.sha256_hex())
            .finish_non_exhaustive()
    }
}

impl DevCert {
    /// SHA-256 of the DER certificate: the `serverCertificateHashes` value.
    pub fn sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.cert_der).into()
    }

    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256())
    }
}

/// Makes an ECDSA P-256 self-signed certificate for `sans`.
pub fn generate(sans: &[String]) -> Result<DevCert, CertError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(sans.to_vec())?;
    let mut name = DistinguishedName::new();
    name.push(
        DnType::CommonName,
        "Dark Tower meeting-controller (development)",
    );
    params.distinguished_name = name;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + DEV_CERT_VALIDITY;
    let cert = params.self_signed(&key)?;
    Ok(DevCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().to_vec(),
    })
}

fn write(path: &Path, contents: &str, private: bool) -> Result<(), CertError> {
    let wrap = |source| CertError::Write {
        path: path.to_owned(),
        source,
    };
    if private {
        return common::files::write_private(path, contents.as_bytes()).map_err(wrap);
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o644);
    }
    let mut file = options.open(path).map_err(wrap)?;
    std::io::Write::write_all(&mut file, contents.as_bytes()).map_err(wrap)
}

/// Writes `cert.pem` and `key.pem` into `dir` (created if missing).
pub fn write_to(dir: &Path, cert: &DevCert) -> Result<(PathBuf, PathBuf), CertError> {
    std::fs::create_dir_all(dir).map_err(|source| CertError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    write(&cert_path, &cert.cert_pem, false)?;
    write(&key_path, &cert.key_pem, true)?;
    Ok((cert_path, key_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_is_ecdsa_p256_and_short_lived() {
        let cert = generate(&["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        assert!(cert.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(cert.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(cert.sha256_hex().len(), 64);
        // The DER carries the P-256 curve OID (1.2.840.10045.3.1.7) and the
        // ecdsa-with-SHA256 signature OID (1.2.840.10045.4.3.2).
        let p256 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        let ecdsa_sha256 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
        assert!(cert.cert_der.windows(p256.len()).any(|w| w == p256));
        assert!(
            cert.cert_der
                .windows(ecdsa_sha256.len())
                .any(|w| w == ecdsa_sha256)
        );
        assert!(DEV_CERT_VALIDITY + BACKDATE <= Duration::from_hours(14 * 24));
    }

    #[test]
    fn files_are_written_key_private() {
        let dir = tempfile::tempdir().unwrap();
        let cert = generate(&["localhost".to_owned()]).unwrap();
        let (c, k) = write_to(&dir.path().join("tls"), &cert).unwrap();
        assert_eq!(std::fs::read_to_string(c).unwrap(), cert.cert_pem);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&k).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            // Written again over a key someone opened up: private again.
            std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o644)).unwrap();
            write_to(&dir.path().join("tls"), &cert).unwrap();
            let mode = std::fs::metadata(&k).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
