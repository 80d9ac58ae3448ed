//! A client of the media protocol: what a participant (or a test, the
//! benchmark, the end-to-end test) does to attach to an MH.
//!
//! ```text
//! client                                   media-handler
//!   QUIC handshake, ALPN dt-media/1  ───▶
//!   open bidi stream, send
//!   {"type":"attach","token","participant_id"}\n ───▶  verify token
//!                                    ◀───  {"type":"attached"}\n
//!   datagrams  ◀──────────────────────▶   forwarded to the meeting's others
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use serde_json::json;

use crate::media::{MAX_ATTACH_LINE_BYTES, ServerLine, transport_config};
use crate::tls::{self, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("cannot connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("connection failed: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("control stream failed: {0}")]
    Stream(String),
    #[error("the media handler refused the attach: {code}: {message}")]
    Refused { code: String, message: String },
    #[error("the media handler answered something unexpected: {0}")]
    Protocol(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

impl AttachError {
    /// The error line's `code`, when the MH refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot bind the client UDP socket: {0}")]
    Bind(#[from] std::io::Error),
}

/// A client endpoint bound to `bind` that trusts `roots` for the MH's
/// certificate. Needs a tokio runtime.
pub fn endpoint(
    bind: SocketAddr,
    roots: &[CertificateDer<'static>],
) -> Result<quinn::Endpoint, EndpointError> {
    let crypto = tls::client_crypto(roots)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport_config(&crate::media::Limits::default())));
    let mut endpoint = quinn::Endpoint::client(bind)?;
    endpoint.set_default_client_config(config);
    Ok(endpoint)
}

/// An attached participant: send and receive datagrams on `connection`.
#[derive(Debug)]
pub struct Attached {
    pub connection: quinn::Connection,
    // Kept open for the life of the attachment.
    _send: quinn::SendStream,
    _recv: quinn::RecvStream,
}

impl Attached {
    pub fn send(&self, data: bytes::Bytes) -> Result<(), quinn::SendDatagramError> {
        self.connection.send_datagram(data)
    }

    pub async fn recv(&self) -> Result<bytes::Bytes, quinn::ConnectionError> {
        self.connection.read_datagram().await
    }

    pub fn close(&self) {
        self.connection.close(quinn::VarInt::from_u32(0), b"bye");
    }
}

/// Connects to the MH at `addr` (certificate name `server_name`) and
/// attaches with a meeting token, within `timeout`.
pub async fn attach(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    server_name: &str,
    token: &str,
    participant_id: &str,
    timeout: Duration,
) -> Result<Attached, AttachError> {
    tokio::time::timeout(timeout, async {
        let connection = endpoint.connect(addr, server_name)?.await?;
        let (mut send, mut recv) = connection.open_bi().await?;
        let mut line = serde_json::to_vec(&json!({
            "type": "attach",
            "token": token,
            "participant_id": participant_id,
        }))
        .map_err(|e| AttachError::Protocol(e.to_string()))?;
        line.push(b'\n');
        send.write_all(&line)
            .await
            .map_err(|e| AttachError::Stream(e.to_string()))?;
        let answer = read_answer(&mut recv).await?;
        match serde_json::from_slice::<ServerLine>(&answer) {
            Ok(ServerLine::Attached) => Ok(Attached {
                connection,
                _send: send,
                _recv: recv,
            }),
            Ok(ServerLine::Error { code, message }) => Err(AttachError::Refused { code, message }),
            Err(e) => Err(AttachError::Protocol(format!(
                "{e}: {}",
                String::from_utf8_lossy(&answer)
            ))),
        }
    })
    .await
    .map_err(|_| AttachError::Timeout(timeout))?
}

async fn read_answer(recv: &mut quinn::RecvStream) -> Result<Vec<u8>, AttachError> {
    let mut line = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match recv.read(&mut chunk).await {
            Ok(Some(n)) => {
                let chunk = &chunk[..n];
                if let Some(end) = chunk.iter().position(|b| *b == b'\n') {
                    line.extend_from_slice(&chunk[..end]);
                    return Ok(line);
                }
                line.extend_from_slice(chunk);
                if line.len() > MAX_ATTACH_LINE_BYTES {
                    return Err(AttachError::Protocol("answer line too long".to_owned()));
                }
            }
            Ok(None) if !line.is_empty() => return Ok(line),
            Ok(None) => {
                return Err(AttachError::Stream(
                    "stream ended without an answer".to_owned(),
                ));
            }
            Err(e) => return Err(AttachError::Stream(e.to_string())),
        }
    }
}
