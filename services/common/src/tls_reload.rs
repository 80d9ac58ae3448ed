//! A server certificate that follows its files: cert-manager renews a
//! certificate into its Secret well before it expires, and the kubelet
//! updates the mounted files, but a server that read them once at start
//! keeps the old one until it expires. [`ReloadingCert`] is a rustls
//! certificate resolver that re-reads the PEM files on a timer and answers
//! every new handshake with the newest valid pair; a half-written or broken
//! pair is refused with a warning and the previous one kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A PEM file larger than this is not a certificate or key.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TlsLoadError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: larger than {MAX_PEM_BYTES} bytes", path.display())]
    TooLarge { path: PathBuf },
    #[error("{}: no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: {message}", path.display())]
    Pem { path: PathBuf, message: String },
    #[error("{}: the key does not fit the certificate or is not usable: {message}", path.display())]
    Key { path: PathBuf, message: String },
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, TlsLoadError> {
    crate::files::read_bounded(path, MAX_PEM_BYTES).map_err(|e| match e {
        crate::files::BoundedReadError::Io(source) => TlsLoadError::Read {
            path: path.to_path_buf(),
            source,
        },
        crate::files::BoundedReadError::TooLarge => TlsLoadError::TooLarge {
            path: path.to_path_buf(),
        },
    })
}

/// The certificate chain and key of the files, checked against each other.
fn certified_key(
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsLoadError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsLoadError::Pem {
            path: cert_path.to_path_buf(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsLoadError::NoCertificate {
            path: cert_path.to_path_buf(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsLoadError::Pem {
        path: key_path.to_path_buf(),
        message: e.to_string(),
    })?;
    let key_error = |message: String| TlsLoadError::Key {
        path: key_path.to_path_buf(),
        message,
    };
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| key_error(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| key_error(e.to_string()))?;
    Ok(certified)
}

/// See the module documentation.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The file contents `current` was made from.
    loaded: Mutex<(Vec<u8>, Vec<u8>)>,
}

impl ReloadingCert {
    /// Reads the pair now: a server must not start without a valid one.
    pub fn load(
        cert_path: impl Into<PathBuf>,
        key_path: impl Into<PathBuf>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Arc<Self>, TlsLoadError> {
        let (cert_path, key_path) = (cert_path.into(), key_path.into());
        let cert_pem = read_bounded(&cert_path)?;
        let key_pem = read_bounded(&key_path)?;
        let key = certified_key(&cert_path, &cert_pem, &key_path, &key_pem, &provider)?;
        Ok(Arc::new(Self {
            cert_path,
            key_path,
            provider,
            current: RwLock::new(Arc::new(key)),
            loaded: Mutex::new((cert_pem, key_pem)),
        }))
    }

    /// Reads the files again; `Ok(true)` when they changed and the new
    /// pair is now served, `Ok(false)` when they did not change. On an
    /// error the pair served so far stays.
    pub fn reload(&self) -> Result<bool, TlsLoadError> {
        let cert_pem = read_bounded(&self.cert_path)?;
        let key_pem = read_bounded(&self.key_path)?;
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if loaded.0 == cert_pem && loaded.1 == key_pem {
            return Ok(false);
        }
        let key = certified_key(
            &self.cert_path,
            &cert_pem,
            &self.key_path,
            &key_pem,
            &self.provider,
        )?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
        *loaded = (cert_pem, key_pem);
        Ok(true)
    }

    /// The pair new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the files every `every` for as long as the runtime runs,
    /// logging each change and each refused pair.
    pub fn watch(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let files = (this.cert_path.clone(), this.key_path.clone());
                let that = Arc::clone(&this);
                match tokio::task::spawn_blocking(move || that.reload()).await {
                    Ok(Ok(true)) => tracing::info!(
                        cert = %files.0.display(),
                        "TLS certificate reloaded: new handshakes get the renewed certificate"
                    ),
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => tracing::warn!(
                        error = %e,
                        "TLS certificate files changed but cannot be used; still serving the previous certificate"
                    ),
                    Err(e) => tracing::warn!(error = %e, "TLS certificate reload task failed"),
                }
            }
        })
    }
}

impl ReloadingCert {
    /// A TLS 1.3 server configuration (QUIC allows nothing else) that
    /// speaks `alpn`, asks no client certificate, accepts no early data,
    /// and answers every handshake with the pair `self` holds then.
    pub fn server_config(
        self: &Arc<Self>,
        alpn: &[u8],
    ) -> Result<rustls::ServerConfig, rustls::Error> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![alpn.to_vec()];
        config.max_early_data_size = 0;
        Ok(config)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn leaf(c: &CertifiedKey) -> Vec<u8> {
        c.cert[0].as_ref().to_vec()
    }

    #[test]
    fn a_renewed_pair_is_served_and_a_broken_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let (a_cert, a_key) = pair("a.example");
        std::fs::write(&cert, &a_cert).unwrap();
        std::fs::write(&key, &a_key).unwrap();
        let r = ReloadingCert::load(&cert, &key, provider()).unwrap();
        let first = leaf(&r.current());
        assert!(!r.reload().unwrap(), "unchanged files are not reloaded");

        let (b_cert, b_key) = pair("b.example");
        // Half a renewal: the new certificate with the old key.
        std::fs::write(&cert, &b_cert).unwrap();
        let err = r.reload().unwrap_err();
        assert!(matches!(err, TlsLoadError::Key { .. }), "{err}");
        assert_eq!(leaf(&r.current()), first, "the previous pair stays");

        std::fs::write(&key, &b_key).unwrap();
        assert!(r.reload().unwrap());
        let second = leaf(&r.current());
        assert_ne!(second, first);

        std::fs::write(&cert, "not pem").unwrap();
        assert!(matches!(
            r.reload().unwrap_err(),
            TlsLoadError::NoCertificate { .. }
        ));
        assert_eq!(leaf(&r.current()), second);
    }

    #[test]
    fn the_server_config_speaks_tls13_and_the_alpn_only() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let (a_cert, a_key) = pair("a.example");
        std::fs::write(&cert, a_cert).unwrap();
        std::fs::write(&key, a_key).unwrap();
        let r = ReloadingCert::load(&cert, &key, provider()).unwrap();
        let config = r.server_config(b"dt-test/1").unwrap();
        assert_eq!(config.alpn_protocols, vec![b"dt-test/1".to_vec()]);
        assert_eq!(config.max_early_data_size, 0);
        assert!(
            config
                .crypto_provider()
                .cipher_suites
                .iter()
                .any(|s| s.version() == &rustls::version::TLS13)
        );
    }

    #[test]
    fn a_bad_pair_stops_the_start_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let err = ReloadingCert::load(&cert, &key, provider()).unwrap_err();
        assert!(err.to_string().contains("tls.crt"), "{err}");
        let (a_cert, _) = pair("a.example");
        let (_, b_key) = pair("b.example");
        std::fs::write(&cert, a_cert).unwrap();
        std::fs::write(&key, b_key).unwrap();
        let err = ReloadingCert::load(&cert, &key, provider()).unwrap_err();
        assert!(err.to_string().contains("tls.key"), "{err}");
        std::fs::write(&cert, vec![b'x'; 2 * 1024 * 1024]).unwrap();
        assert!(matches!(
            ReloadingCert::load(&cert, &key, provider()).unwrap_err(),
            TlsLoadError::TooLarge { .. }
        ));
    }
}
