//! The QUIC media endpoint: a pass-through SFU.
//!
//! Protocol (SPEC "MH media", ALPN `dt-media/1`): the client opens one
//! bidirectional stream and sends one JSON line
//! `{"type":"attach","token":"<meeting token>","participant_id":"..."}`. The
//! MH verifies the token against AC's JWKS (a meeting token whose `sub` is
//! the participant id and whose `mh_ids` name this MH) and answers
//! `{"type":"attached"}` or `{"type":"error","code":...,"message":...}`, after
//! which it closes the connection. Once attached, every QUIC datagram the
//! client sends is delivered, byte for byte, to every other participant of
//! the same meeting attached here. Nothing is decoded.
//!
//! Memory is bounded: at most [`Limits::max_connections`] connections (the
//! rest are refused before the handshake), [`Limits::max_participants_per_meeting`]
//! per meeting, small QUIC flow-control windows (the attach line is the only
//! stream data), and a fixed datagram buffer per connection in each
//! direction. A receiver whose send buffer is full (slow link, congestion)
//! loses the new datagram instead of queueing it, and the drop is counted in
//! `mh_datagrams_dropped_total{reason="slow_receiver"}`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use common::auth::AuthError;
use common::jwks::JwksCache;
use common::shutdown::ShutdownSignal;
use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use quinn::VarInt;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::tls::ALPN;

/// Largest attach line accepted (a token is at most 8 KiB).
pub const MAX_ATTACH_LINE_BYTES: usize = 16 * 1024;

/// Application close codes of a media connection (QUIC `APPLICATION_CLOSE`).
pub mod close_code {
    /// The MH shuts down, or the client closed normally.
    pub const NORMAL: u32 = 0;
    /// The attach was refused: see the error line for the reason.
    pub const REFUSED: u32 = 1;
    /// The same participant attached again on a newer connection.
    pub const REPLACED: u32 = 2;
    /// The meeting controller removed the participant.
    pub const REMOVED: u32 = 3;
}

/// Tunables, with production defaults; tests shrink them.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open QUIC connections (attached or attaching) at most.
    pub max_connections: usize,
    /// Participants of one meeting at most.
    pub max_participants_per_meeting: usize,
    /// Meetings at once (reported to GC as capacity).
    pub max_meetings: usize,
    /// Time from the first packet to the attach line.
    pub attach_timeout: Duration,
    /// Outgoing datagram buffer per connection, bytes.
    pub datagram_send_buffer: usize,
    /// Incoming datagram buffer per connection, bytes.
    pub datagram_receive_buffer: usize,
    /// Connection closed after this long without any packet.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1000,
            max_participants_per_meeting: 100,
            max_meetings: 500,
            attach_timeout: Duration::from_secs(5),
            datagram_send_buffer: 64 * 1024,
            datagram_receive_buffer: 64 * 1024,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// The media counters and gauges (prefix `mh_`, bounded labels only).
#[derive(Clone)]
pub struct MediaMetrics {
    pub datagrams_received: IntCounter,
    pub datagrams_forwarded: IntCounter,
    pub bytes_forwarded: IntCounter,
    pub datagrams_dropped: IntCounterVec,
    pub attaches: IntCounterVec,
    pub connections: IntGauge,
    pub participants: IntGauge,
    pub meetings: IntGauge,
    /// The budget load reports measure bandwidth against
    /// ([`crate::registration::BANDWIDTH_BUDGET_BYTES_PER_SECOND`]): the bandwidth alerts
    /// divide `rate(mh_bytes_forwarded_total)` by it (ADR-0012: 70% warns, 80% refuses).
    pub bandwidth_budget: Gauge,
}

/// Every reason a datagram is dropped for: each starts at 0 in `/metrics`, so a first drop
/// shows in `rate()` and the dashboards have a series before anything was dropped.
pub const DROP_REASONS: [&str; 4] = ["slow_receiver", "too_large", "unsupported", "closed"];

impl std::fmt::Debug for MediaMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaMetrics").finish_non_exhaustive()
    }
}

impl MediaMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            datagrams_received: IntCounter::new(
                "datagrams_received_total",
                "Datagrams received from attached participants",
            )?,
            datagrams_forwarded: IntCounter::new(
                "datagrams_forwarded_total",
                "Datagrams queued to another participant",
            )?,
            bytes_forwarded: IntCounter::new(
                "bytes_forwarded_total",
                "Datagram payload bytes queued to other participants",
            )?,
            datagrams_dropped: IntCounterVec::new(
                Opts::new(
                    "datagrams_dropped_total",
                    "Datagrams not forwarded to a participant, by reason",
                ),
                &["reason"],
            )?,
            attaches: IntCounterVec::new(
                Opts::new("attaches_total", "Attach attempts by outcome"),
                &["outcome"],
            )?,
            connections: IntGauge::new("connections", "Open media connections")?,
            participants: IntGauge::new("participants", "Attached participants")?,
            meetings: IntGauge::new("meetings", "Meetings with at least one participant")?,
            bandwidth_budget: Gauge::new(
                "bandwidth_budget_bytes_per_second",
                "Forwarded payload bytes per second this MH is sized for (load reports' 100%)",
            )?,
        };
        m.bandwidth_budget
            .set(crate::registration::BANDWIDTH_BUDGET_BYTES_PER_SECOND);
        for reason in DROP_REASONS {
            m.datagrams_dropped.with_label_values(&[reason]);
        }
        registry.register(Box::new(m.datagrams_received.clone()))?;
        registry.register(Box::new(m.datagrams_forwarded.clone()))?;
        registry.register(Box::new(m.bytes_forwarded.clone()))?;
        registry.register(Box::new(m.datagrams_dropped.clone()))?;
        registry.register(Box::new(m.attaches.clone()))?;
        registry.register(Box::new(m.connections.clone()))?;
        registry.register(Box::new(m.participants.clone()))?;
        registry.register(Box::new(m.meetings.clone()))?;
        registry.register(Box::new(m.bandwidth_budget.clone()))?;
        Ok(m)
    }
}

/// One attached participant, as the other participants' forwarders see it.
#[derive(Clone)]
struct Peer {
    /// `quinn::Connection::stable_id`, unique while the connection lives.
    key: usize,
    participant_id: Arc<str>,
    conn: quinn::Connection,
}

struct Meeting {
    peers: RwLock<Vec<Peer>>,
}

impl Meeting {
    fn peers(&self) -> std::sync::RwLockReadGuard<'_, Vec<Peer>> {
        self.peers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn peers_mut(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Peer>> {
        self.peers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why an attach was refused: the wire `code` and a safe message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachRefusal {
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("bad_request: {0}")]
    BadRequest(String),
    #[error("full: {0}")]
    Full(&'static str),
    #[error("unavailable: {0}")]
    Unavailable(&'static str),
}

impl AttachRefusal {
    /// The `code` of the error line.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "unauthorized",
            Self::BadRequest(_) => "bad_request",
            Self::Full(_) => "full",
            Self::Unavailable(_) => "unavailable",
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Unauthorized(m) | Self::BadRequest(m) => m.clone(),
            Self::Full(m) | Self::Unavailable(m) => (*m).to_owned(),
        }
    }
}

/// A line the client sends.
#[derive(Debug, Deserialize)]
struct AttachRequest {
    #[serde(rename = "type")]
    kind: String,
    token: String,
    participant_id: String,
}

/// A line the MH sends.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerLine {
    Attached,
    Error { code: String, message: String },
}

/// The meetings and their attached participants.
pub struct Sfu {
    mh_id: String,
    jwks: Arc<JwksCache>,
    limits: Limits,
    metrics: MediaMetrics,
    meetings: Mutex<HashMap<Arc<str>, Arc<Meeting>>>,
    connection_slots: Arc<Semaphore>,
    port_bound: AtomicBool,
}

impl std::fmt::Debug for Sfu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sfu")
            .field("mh_id", &self.mh_id)
            .finish_non_exhaustive()
    }
}

/// Current meetings and participants, for load reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Load {
    pub meetings: usize,
    pub participants: usize,
}

impl Sfu {
    pub fn new(mh_id: String, jwks: Arc<JwksCache>, limits: Limits, metrics: MediaMetrics) -> Self {
        let slots = limits.max_connections;
        Self {
            mh_id,
            jwks,
            limits,
            metrics,
            meetings: Mutex::new(HashMap::new()),
            connection_slots: Arc::new(Semaphore::new(slots)),
            port_bound: AtomicBool::new(false),
        }
    }

    pub fn mh_id(&self) -> &str {
        &self.mh_id
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn metrics(&self) -> &MediaMetrics {
        &self.metrics
    }

    /// True while the media UDP socket is bound and accepting.
    pub fn is_port_bound(&self) -> bool {
        self.port_bound.load(Ordering::SeqCst)
    }

    fn meetings(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Arc<Meeting>>> {
        self.meetings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn load(&self) -> Load {
        let meetings = self.meetings();
        Load {
            meetings: meetings.len(),
            participants: meetings.values().map(|m| m.peers().len()).sum(),
        }
    }

    /// The participants of `meeting_id` attached here, sorted.
    pub fn participants(&self, meeting_id: &str) -> Vec<String> {
        let meeting = self.meetings().get(meeting_id).cloned();
        let mut ids: Vec<String> = meeting
            .map(|m| {
                m.peers()
                    .iter()
                    .map(|p| p.participant_id.to_string())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// Closes the participant's connection; true when one was attached.
    pub fn remove_participant(&self, meeting_id: &str, participant_id: &str) -> bool {
        let Some(meeting) = self.meetings().get(meeting_id).cloned() else {
            return false;
        };
        let removed: Vec<Peer> = {
            let mut peers = meeting.peers_mut();
            let (gone, kept) = peers
                .drain(..)
                .partition(|p| &*p.participant_id == participant_id);
            *peers = kept;
            gone
        };
        for peer in &removed {
            peer.conn
                .close(VarInt::from_u32(close_code::REMOVED), b"removed");
        }
        self.forget_if_empty(meeting_id, &meeting);
        self.refresh_gauges();
        !removed.is_empty()
    }

    fn refresh_gauges(&self) {
        let load = self.load();
        self.metrics
            .meetings
            .set(i64::try_from(load.meetings).unwrap_or(i64::MAX));
        self.metrics
            .participants
            .set(i64::try_from(load.participants).unwrap_or(i64::MAX));
    }

    /// Verifies an attach request; returns the meeting id.
    async fn authorize(&self, request: &AttachRequest) -> Result<String, AttachRefusal> {
        if request.kind != "attach" {
            return Err(AttachRefusal::BadRequest(
                "the first line must be {\"type\":\"attach\",...}".to_owned(),
            ));
        }
        let claims = self
            .jwks
            .verify_meeting(&request.token)
            .await
            .map_err(|e| match e {
                AuthError::KeysUnavailable => {
                    AttachRefusal::Unavailable("token keys are not available yet; retry")
                }
                other => AttachRefusal::Unauthorized(other.to_string()),
            })?;
        if claims.sub != request.participant_id {
            return Err(AttachRefusal::Unauthorized(
                "participant_id does not match the token".to_owned(),
            ));
        }
        if !claims.mh_ids.contains(&self.mh_id) {
            return Err(AttachRefusal::Unauthorized(
                "the token is not valid for this media handler".to_owned(),
            ));
        }
        if claims.meeting_id.is_empty() {
            return Err(AttachRefusal::Unauthorized(
                "the token names no meeting".to_owned(),
            ));
        }
        Ok(claims.meeting_id)
    }

    /// Adds the peer to its meeting, replacing an older connection of the
    /// same participant. Returns the meeting.
    fn join(&self, meeting_id: &str, peer: Peer) -> Result<Arc<Meeting>, AttachRefusal> {
        let mut meetings = self.meetings();
        let meeting = if let Some(m) = meetings.get(meeting_id) {
            m.clone()
        } else {
            if meetings.len() >= self.limits.max_meetings {
                return Err(AttachRefusal::Full(
                    "this media handler hosts no more meetings",
                ));
            }
            let m = Arc::new(Meeting {
                peers: RwLock::new(Vec::new()),
            });
            meetings.insert(Arc::from(meeting_id), m.clone());
            m
        };
        let mut peers = meeting.peers_mut();
        if let Some(old) = peers
            .iter()
            .position(|p| p.participant_id == peer.participant_id)
        {
            let old = peers.swap_remove(old);
            old.conn
                .close(VarInt::from_u32(close_code::REPLACED), b"replaced");
        } else if peers.len() >= self.limits.max_participants_per_meeting {
            drop(peers);
            if meeting.peers().is_empty() {
                meetings.remove(meeting_id);
            }
            return Err(AttachRefusal::Full(
                "the meeting is full on this media handler",
            ));
        }
        peers.push(peer);
        drop(peers);
        Ok(meeting)
    }

    fn leave(&self, meeting_id: &str, meeting: &Arc<Meeting>, key: usize) {
        meeting.peers_mut().retain(|p| p.key != key);
        self.forget_if_empty(meeting_id, meeting);
        self.refresh_gauges();
    }

    fn forget_if_empty(&self, meeting_id: &str, meeting: &Arc<Meeting>) {
        let mut meetings = self.meetings();
        // Only the same meeting object: a new one may have replaced it.
        if meeting.peers().is_empty()
            && meetings
                .get(meeting_id)
                .is_some_and(|m| Arc::ptr_eq(m, meeting))
        {
            meetings.remove(meeting_id);
        }
    }

    /// Queues `data` to every other peer of the meeting. Never waits: a
    /// receiver whose datagram buffer cannot take it loses it (counted).
    fn forward(&self, meeting: &Meeting, from: usize, data: &Bytes) {
        let len = data.len();
        let mut forwarded = 0u64;
        for peer in meeting.peers().iter() {
            if peer.key == from {
                continue;
            }
            if peer.conn.datagram_send_buffer_space() < len {
                self.drop_datagram("slow_receiver");
                continue;
            }
            match peer.conn.send_datagram(data.clone()) {
                Ok(()) => forwarded += 1,
                Err(quinn::SendDatagramError::TooLarge) => self.drop_datagram("too_large"),
                Err(
                    quinn::SendDatagramError::UnsupportedByPeer
                    | quinn::SendDatagramError::Disabled,
                ) => self.drop_datagram("unsupported"),
                Err(quinn::SendDatagramError::ConnectionLost(_)) => self.drop_datagram("closed"),
            }
        }
        if forwarded > 0 {
            self.metrics.datagrams_forwarded.inc_by(forwarded);
            self.metrics.bytes_forwarded.inc_by(forwarded * len as u64);
        }
    }

    fn drop_datagram(&self, reason: &'static str) {
        self.metrics
            .datagrams_dropped
            .with_label_values(&[reason])
            .inc();
    }

    fn attach_outcome(&self, outcome: &'static str) {
        self.metrics.attaches.with_label_values(&[outcome]).inc();
    }

    /// Runs one connection from the handshake until it closes.
    async fn handle(self: Arc<Self>, incoming: quinn::Incoming) {
        let Ok(_slot) = self.connection_slots.clone().try_acquire_owned() else {
            self.attach_outcome("over_capacity");
            incoming.refuse();
            return;
        };
        let remote = incoming.remote_address();
        let conn = match tokio::time::timeout(self.limits.attach_timeout, async {
            incoming.accept()?.await
        })
        .await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                tracing::debug!(%remote, error = %e, "media handshake failed");
                self.attach_outcome("handshake_failed");
                return;
            }
            Err(_) => {
                self.attach_outcome("timeout");
                return;
            }
        };
        let alpn_ok = conn
            .handshake_data()
            .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
            .and_then(|d| d.protocol)
            .is_some_and(|p| p == ALPN);
        if !alpn_ok {
            self.attach_outcome("bad_alpn");
            conn.close(
                VarInt::from_u32(close_code::REFUSED),
                b"ALPN dt-media/1 required",
            );
            return;
        }
        self.metrics.connections.inc();
        self.clone().attached_session(conn, remote).await;
        self.metrics.connections.dec();
    }

    async fn attached_session(self: Arc<Self>, conn: quinn::Connection, remote: SocketAddr) {
        let attach = tokio::time::timeout(self.limits.attach_timeout, async {
            let (send, mut recv) = conn.accept_bi().await.ok()?;
            let line = read_line(&mut recv).await;
            Some((send, recv, line))
        })
        .await;
        let (mut send, recv, line) = match attach {
            Ok(Some(parts)) => parts,
            Ok(None) => {
                self.attach_outcome("no_stream");
                return;
            }
            Err(_) => {
                self.attach_outcome("timeout");
                conn.close(VarInt::from_u32(close_code::REFUSED), b"attach timeout");
                return;
            }
        };
        let verdict = match line {
            Err(refusal) => Err(refusal),
            Ok(line) => match serde_json::from_slice::<AttachRequest>(&line) {
                Err(e) => Err(AttachRefusal::BadRequest(format!(
                    "the attach line is not valid JSON: {e}"
                ))),
                Ok(request) => self
                    .authorize(&request)
                    .await
                    .map(|meeting_id| (meeting_id, request.participant_id)),
            },
        };
        let (meeting_id, participant_id) = match verdict {
            Ok(ok) => ok,
            Err(refusal) => {
                tracing::info!(%remote, code = refusal.code(), reason = %refusal, "attach refused");
                self.attach_outcome(refusal.code());
                refuse(&conn, &mut send, &refusal).await;
                return;
            }
        };
        let key = conn.stable_id();
        let peer = Peer {
            key,
            participant_id: Arc::from(participant_id.as_str()),
            conn: conn.clone(),
        };
        let meeting = match self.join(&meeting_id, peer) {
            Ok(m) => m,
            Err(refusal) => {
                self.attach_outcome(refusal.code());
                refuse(&conn, &mut send, &refusal).await;
                return;
            }
        };
        // From here on the peer is in the meeting: make sure it leaves.
        let _leave = LeaveGuard {
            sfu: &self,
            meeting_id: &meeting_id,
            meeting: &meeting,
            key,
        };
        self.refresh_gauges();
        if write_line(&mut send, &ServerLine::Attached).await.is_err() {
            self.attach_outcome("closed");
            return;
        }
        self.attach_outcome("attached");
        tracing::info!(%meeting_id, %participant_id, %remote, "participant attached");
        loop {
            match conn.read_datagram().await {
                Ok(data) => {
                    self.metrics.datagrams_received.inc();
                    self.forward(&meeting, key, &data);
                }
                Err(e) => {
                    tracing::info!(%meeting_id, %participant_id, reason = %e, "participant detached");
                    break;
                }
            }
        }
        // The control stream lives as long as the attachment.
        drop((send, recv));
    }
}

struct LeaveGuard<'a> {
    sfu: &'a Sfu,
    meeting_id: &'a str,
    meeting: &'a Arc<Meeting>,
    key: usize,
}

impl Drop for LeaveGuard<'_> {
    fn drop(&mut self) {
        self.sfu.leave(self.meeting_id, self.meeting, self.key);
    }
}

/// Reads the first line of the control stream (without the newline).
async fn read_line(recv: &mut quinn::RecvStream) -> Result<Vec<u8>, AttachRefusal> {
    let mut line = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        match recv.read(&mut chunk).await {
            Ok(Some(n)) => {
                let chunk = &chunk[..n];
                if let Some(end) = chunk.iter().position(|b| *b == b'\n') {
                    line.extend_from_slice(&chunk[..end]);
                    return check_len(line);
                }
                line.extend_from_slice(chunk);
                check_len_so_far(&line)?;
            }
            // A finished stream without a newline still carries one line.
            Ok(None) if !line.is_empty() => return check_len(line),
            Ok(None) | Err(_) => {
                return Err(AttachRefusal::BadRequest(
                    "the control stream ended before the attach line".to_owned(),
                ));
            }
        }
    }
}

fn check_len_so_far(line: &[u8]) -> Result<(), AttachRefusal> {
    if line.len() > MAX_ATTACH_LINE_BYTES {
        Err(AttachRefusal::BadRequest(format!(
            "the attach line is longer than {MAX_ATTACH_LINE_BYTES} bytes"
        )))
    } else {
        Ok(())
    }
}

fn check_len(line: Vec<u8>) -> Result<Vec<u8>, AttachRefusal> {
    check_len_so_far(&line)?;
    Ok(line)
}

async fn write_line(send: &mut quinn::SendStream, line: &ServerLine) -> Result<(), ()> {
    let mut bytes = serde_json::to_vec(line).map_err(|_| ())?;
    bytes.push(b'\n');
    send.write_all(&bytes).await.map_err(|_| ())
}

/// Sends the error line, lets it reach the client, then closes.
async fn refuse(conn: &quinn::Connection, send: &mut quinn::SendStream, refusal: &AttachRefusal) {
    let line = ServerLine::Error {
        code: refusal.code().to_owned(),
        message: refusal.message(),
    };
    if write_line(send, &line).await.is_ok() && send.finish().is_ok() {
        // Wait (briefly) until the client has read the line: closing the
        // connection at once would discard it.
        let _ = tokio::time::timeout(Duration::from_secs(1), send.stopped()).await;
    }
    conn.close(
        VarInt::from_u32(close_code::REFUSED),
        refusal.code().as_bytes(),
    );
}

/// The QUIC transport settings of the media endpoint: one control stream,
/// small stream windows, bounded datagram buffers.
pub fn transport_config(limits: &Limits) -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(1))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .stream_receive_window(VarInt::from_u32(
            u32::try_from(MAX_ATTACH_LINE_BYTES * 2).unwrap_or(u32::MAX),
        ))
        .receive_window(VarInt::from_u32(
            u32::try_from(MAX_ATTACH_LINE_BYTES * 4).unwrap_or(u32::MAX),
        ))
        .send_window(64 * 1024)
        .datagram_receive_buffer_size(Some(limits.datagram_receive_buffer))
        .datagram_send_buffer_size(limits.datagram_send_buffer)
        .keep_alive_interval(Some(Duration::from_secs(5)))
        .max_idle_timeout(
            quinn::IdleTimeout::try_from(limits.idle_timeout)
                .ok()
                .or(Some(quinn::IdleTimeout::from(VarInt::from_u32(30_000)))),
        );
    transport
}

/// The bound media endpoint.
pub struct MediaServer {
    endpoint: quinn::Endpoint,
    sfu: Arc<Sfu>,
}

impl std::fmt::Debug for MediaServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaServer")
            .field("addr", &self.endpoint.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl MediaServer {
    /// Binds the UDP socket (port 0 in tests). Needs a tokio runtime.
    pub fn bind(
        addr: SocketAddr,
        crypto: quinn::crypto::rustls::QuicServerConfig,
        sfu: Arc<Sfu>,
    ) -> std::io::Result<Self> {
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config
            .transport_config(Arc::new(transport_config(sfu.limits())))
            // Handshakes in flight at most: bounded like the connections.
            .max_incoming(sfu.limits().max_connections.max(1))
            .migration(true);
        let endpoint = quinn::Endpoint::server(config, addr)?;
        sfu.port_bound.store(true, Ordering::SeqCst);
        Ok(Self { endpoint, sfu })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    pub fn sfu(&self) -> Arc<Sfu> {
        self.sfu.clone()
    }

    /// Accepts connections until `shutdown`, then closes every connection
    /// and waits (bounded) for the close to reach the clients.
    pub async fn run(self, shutdown: ShutdownSignal) {
        let Self { endpoint, sfu } = self;
        let mut sessions = tokio::task::JoinSet::new();
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                incoming = endpoint.accept() => match incoming {
                    Some(incoming) => {
                        sessions.spawn(sfu.clone().handle(incoming));
                    }
                    None => break,
                },
                () = &mut stop => break,
            }
            while sessions.try_join_next().is_some() {}
        }
        sfu.port_bound.store(false, Ordering::SeqCst);
        endpoint.close(
            VarInt::from_u32(close_code::NORMAL),
            b"media handler shutting down",
        );
        let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
        sessions.shutdown().await;
        tracing::info!("media endpoint closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_show_the_bandwidth_budget_and_every_drop_reason_from_the_start() {
        let registry = Registry::new_custom(Some("mh".into()), None).unwrap();
        let _metrics = MediaMetrics::register(&registry).unwrap();
        let mut text = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &registry.gather(),
            &mut text,
        )
        .unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("mh_bandwidth_budget_bytes_per_second 125000000\n"),
            "{text}"
        );
        for reason in DROP_REASONS {
            assert!(
                text.contains(&format!(
                    "mh_datagrams_dropped_total{{reason=\"{reason}\"}} 0\n"
                )),
                "{text}"
            );
        }
    }

    #[test]
    fn server_lines_have_the_wire_shape() {
        assert_eq!(
            serde_json::to_string(&ServerLine::Attached).unwrap(),
            r#"{"type":"attached"}"#
        );
        let refusal = AttachRefusal::Unauthorized("token has expired".into());
        let line = ServerLine::Error {
            code: refusal.code().into(),
            message: refusal.message(),
        };
        assert_eq!(
            serde_json::to_value(&line).unwrap(),
            serde_json::json!({"type": "error", "code": "unauthorized", "message": "token has expired"})
        );
    }

    #[test]
    fn attach_line_length_is_bounded() {
        assert!(check_len(vec![b'a'; MAX_ATTACH_LINE_BYTES]).is_ok());
        assert_eq!(
            check_len(vec![b'a'; MAX_ATTACH_LINE_BYTES + 1])
                .unwrap_err()
                .code(),
            "bad_request"
        );
    }

    #[test]
    fn transport_config_builds_with_defaults() {
        let _ = transport_config(&Limits::default());
    }
}
