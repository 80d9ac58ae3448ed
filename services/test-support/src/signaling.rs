//! A participant's signaling session with MC, speaking the wire contract
//! directly: one WebTransport session, one bidirectional stream,
//! newline-delimited JSON, MC's certificate trusted by its SHA-256 as a
//! browser's `serverCertificateHashes` does.

use std::time::Duration;

use serde_json::{Value, json};
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Endpoint};

/// How long a read or a close may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Client {
    pub connection: wtransport::Connection,
    pub send: wtransport::SendStream,
    recv: wtransport::RecvStream,
    buf: Vec<u8>,
}

impl Client {
    /// Opens the session at `url` (`https://host:port/path`) and its
    /// stream; the error is the connection's, as text.
    pub async fn connect(url: &str, hash: [u8; 32]) -> Result<Self, String> {
        let config = ClientConfig::builder()
            .with_bind_address(crate::loopback(0))
            .with_server_certificate_hashes([Sha256Digest::new(hash)])
            .build();
        let endpoint = Endpoint::client(config).map_err(|e| e.to_string())?;
        let connection = endpoint.connect(url).await.map_err(|e| e.to_string())?;
        let (send, recv) = connection
            .open_bi()
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self {
            connection,
            send,
            recv,
            buf: Vec::new(),
        })
    }

    /// Sends `line` and its newline.
    pub async fn send_line(&mut self, line: &str) {
        self.send
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap_or_else(|e| panic!("sending a signaling line failed: {e}"));
    }

    /// Sends a `join` and returns MC's answer.
    pub async fn join(&mut self, meeting_id: &str, token: &str, name: &str) -> Value {
        let line =
            json!({"type": "join", "meeting_id": meeting_id, "token": token, "display_name": name});
        self.send_line(&line.to_string()).await;
        self.next()
            .await
            .unwrap_or_else(|| panic!("no answer to the join"))
    }

    /// The next line as JSON, `None` when the stream or session ends.
    pub async fn next(&mut self) -> Option<Value> {
        tokio::time::timeout(TIMEOUT, async {
            loop {
                if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = self.buf.drain(..=pos).collect();
                    return Some(
                        serde_json::from_slice(&line[..line.len() - 1]).unwrap_or_else(|e| {
                            panic!(
                                "MC sent a line that is not JSON ({e}): {}",
                                String::from_utf8_lossy(&line)
                            )
                        }),
                    );
                }
                let mut chunk = [0u8; 4096];
                match self.recv.read(&mut chunk).await {
                    Ok(Some(n)) => self.buf.extend_from_slice(&chunk[..n]),
                    _ => return None,
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no line nor the end of the stream within {TIMEOUT:?}"))
    }

    /// Waits for the session to close and returns why, as text.
    pub async fn closed_code(&self) -> String {
        tokio::time::timeout(TIMEOUT, self.connection.closed())
            .await
            .unwrap_or_else(|_| panic!("the session did not close within {TIMEOUT:?}"))
            .to_string()
    }
}
