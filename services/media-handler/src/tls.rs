//! TLS for the QUIC media endpoint: the server configuration from PEM files
//! (`MH_TLS_CERT_PATH`, `MH_TLS_KEY_PATH`, read again when cert-manager renews
//! them: [`common::tls_reload::ReloadingCert`]), a client configuration for
//! tests, tools and the benchmark, and development certificates.
//!
//! Only TLS 1.3 (QUIC requires it) with the `ring` provider; the ALPN is
//! fixed to [`ALPN`], so a client speaking anything else fails the handshake.
//! Development certificates are ECDSA P-256 and valid for less than 14 days,
//! which is what a browser's `serverCertificateHashes` accepts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use sha2::{Digest as _, Sha256};

/// The media protocol's ALPN id.
pub const ALPN: &[u8] = b"dt-media/1";

/// Validity of a development certificate: 13 days from one hour ago, under
/// the 14-day limit of `serverCertificateHashes`.
const DEV_CERT_DAYS: i64 = 13;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Load(#[from] common::tls_reload::TlsLoadError),
    #[error("the certificate and key are unusable: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("the TLS configuration has no QUIC cipher suite: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    #[error("generating the development certificate failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("writing {path} failed: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate and key of the media endpoint, followed as they renew.
pub fn load_certificate(
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<common::tls_reload::ReloadingCert>, TlsError> {
    Ok(common::tls_reload::ReloadingCert::load(
        cert_path,
        key_path,
        provider(),
    )?)
}

/// The QUIC server crypto for the media endpoint: every handshake gets the
/// certificate `cert` holds at that moment.
pub fn server_crypto(
    cert: &Arc<common::tls_reload::ReloadingCert>,
) -> Result<quinn::crypto::rustls::QuicServerConfig, TlsError> {
    let config = cert.server_config(ALPN)?;
    Ok(quinn::crypto::rustls::QuicServerConfig::try_from(config)?)
}

/// A QUIC client crypto that trusts exactly `roots` and speaks `dt-media/1`.
pub fn client_crypto(
    roots: &[CertificateDer<'static>],
) -> Result<quinn::crypto::rustls::QuicClientConfig, TlsError> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone())?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(quinn::crypto::rustls::QuicClientConfig::try_from(config)?)
}

/// A generated development certificate.
#[derive(Debug)]
pub struct DevCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: CertificateDer<'static>,
}

impl DevCert {
    /// SHA-256 of the DER certificate, hex: what a browser's
    /// `serverCertificateHashes` needs.
    pub fn sha256_hex(&self) -> String {
        hex::encode(Sha256::digest(self.cert_der.as_ref()))
    }
}

/// A self-signed ECDSA P-256 certificate for `names` (DNS names or IP
/// addresses), valid for 13 days.
pub fn generate_dev_cert(names: &[String]) -> Result<DevCert, TlsError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(DEV_CERT_DAYS);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Dark Tower development");
    let cert = params.self_signed(&key)?;
    Ok(DevCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().clone(),
    })
}

/// The names a local development certificate covers.
pub fn default_dev_names() -> Vec<String> {
    ["localhost", "127.0.0.1", "::1"]
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// Writes `cert.pem` and `key.pem` (mode 0600) into `dir` and returns their
/// paths.
pub fn write_dev_cert(dir: &Path, cert: &DevCert) -> Result<(PathBuf, PathBuf), TlsError> {
    let write = |path: PathBuf, text: &str, private: bool| -> Result<PathBuf, TlsError> {
        let io = |source| TlsError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        if private {
            common::files::write_private(&path, text.as_bytes()).map_err(io)?;
            return Ok(path);
        }
        let mut file = std::fs::File::create(&path).map_err(io)?;
        std::io::Write::write_all(&mut file, text.as_bytes()).map_err(io)?;
        Ok(path)
    };
    let cert_path = write(dir.join("cert.pem"), &cert.cert_pem, false)?;
    let key_path = write(dir.join("key.pem"), &cert.key_pem, true)?;
    Ok((cert_path, key_path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject as _;

    #[test]
    fn dev_cert_is_short_lived_ecdsa_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let cert = generate_dev_cert(&default_dev_names()).unwrap();
        assert_eq!(cert.sha256_hex().len(), 64);
        let (cert_path, key_path) = write_dev_cert(dir.path(), &cert).unwrap();
        let loaded = load_certificate(&cert_path, &key_path).unwrap();
        let certs = loaded.current().cert.clone();
        assert_eq!(certs.len(), 1);
        let key = PrivateKeyDer::from_pem_file(&key_path).unwrap();
        assert!(matches!(key, PrivateKeyDer::Pkcs8(_)));
        server_crypto(&loaded).unwrap();
        client_crypto(&certs).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            // Written again over a key someone opened up: private again.
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
            write_dev_cert(dir.path(), &cert).unwrap();
            let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // ECDSA P-256 with SHA-256: the OID 1.2.840.10045.4.3.2 in the DER.
        let ecdsa_with_sha256 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
        assert!(
            cert.cert_der
                .as_ref()
                .windows(ecdsa_with_sha256.len())
                .any(|w| w == ecdsa_with_sha256)
        );
    }

    #[test]
    fn unreadable_or_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let err = load_certificate(&missing, &missing).unwrap_err();
        assert!(err.to_string().contains("nope.pem"), "{err}");
        let cert = generate_dev_cert(&default_dev_names()).unwrap();
        let (cert_path, key_path) = write_dev_cert(dir.path(), &cert).unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem").unwrap();
        let err = load_certificate(&empty, &key_path).unwrap_err();
        assert!(err.to_string().contains("empty.pem"), "{err}");
        let err = load_certificate(&cert_path, &empty).unwrap_err();
        assert!(err.to_string().contains("empty.pem"), "{err}");
    }
}
