//! The WebTransport signaling server (HTTP/3 over QUIC, `wtransport`).
//!
//! A client opens a WebTransport session at `/signaling` (other paths get
//! 404), then one bidirectional stream, and sends its `join` line
//! ([`crate::protocol`]). MC checks the meeting token against AC's JWKS
//! (signature, expiry, `token_use = meeting`, the meeting id the client
//! names, and this MC's id), takes a seat in Redis (which knows whether the
//! meeting is hosted here and whether it is full), answers `joined` with the
//! other participants and the MHs, and from then on pushes the meeting's
//! `participant_joined` / `participant_left` events. Closing the stream or
//! the session, or a `leave` line, gives the seat back.
//!
//! Every wait on the client is bounded (the join must arrive within the
//! join timeout, lines are size-limited), and nothing a client sends can
//! panic the server: bad input gets an `error` line and a closed session.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::auth::AuthError;
use common::jwks::JwksCache;
use common::shutdown::ShutdownSignal;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts};
use tokio::sync::broadcast;
use wtransport::endpoint::IncomingSession;
use wtransport::endpoint::endpoint_side::Server;
use wtransport::{Connection, Endpoint, RecvStream, SendStream, VarInt};

use crate::config::valid_id;
use crate::hub::{Event, Hub};
use crate::protocol::{
    ClientMessage, ErrorCode, LineBuffer, LineError, MhInfo, ParticipantInfo, ServerMessage,
    clean_display_name, parse_client_line,
};
use crate::store::{JoinOutcome, Participant, Store};

/// The one path MC serves WebTransport sessions on.
pub const SIGNALING_PATH: &str = "/signaling";
/// Application close codes of the WebTransport session.
pub mod close_code {
    /// Normal end: the client left, or its join was refused (see the line).
    pub const NORMAL: u32 = 0;
    /// MC is shutting down; reconnect through GC.
    pub const SHUTTING_DOWN: u32 = 1;
    /// The same participant joined from another session.
    pub const REPLACED: u32 = 2;
    /// Meeting state was unreachable (Redis); retry.
    pub const UNAVAILABLE: u32 = 3;
    /// The session fell too far behind the meeting's events.
    pub const LAGGED: u32 = 4;
}
/// How long MC waits for a refused client to read its error line.
const ERROR_FLUSH: Duration = Duration::from_secs(2);

/// Signaling metrics (prefix `mc_`): bounded labels only.
#[derive(Clone)]
pub struct SignalingMetrics {
    pub joins: IntCounterVec,
    pub join_seconds: Histogram,
    pub sessions: IntGauge,
    pub participants: IntGauge,
}

impl SignalingMetrics {
    pub fn register(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let joins = IntCounterVec::new(
            Opts::new("signaling_joins_total", "Join attempts by outcome"),
            &["outcome"],
        )?;
        let join_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "signaling_join_duration_seconds",
                "Time from the join line to the joined answer",
            )
            .buckets(vec![
                0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        )?;
        let sessions = IntGauge::new("signaling_sessions", "Open WebTransport sessions")?;
        let participants = IntGauge::new("participants", "Participants seated through this MC")?;
        registry.register(Box::new(joins.clone()))?;
        registry.register(Box::new(join_seconds.clone()))?;
        registry.register(Box::new(sessions.clone()))?;
        registry.register(Box::new(participants.clone()))?;
        Ok(Self {
            joins,
            join_seconds,
            sessions,
            participants,
        })
    }
}

/// What every session needs.
pub struct SessionContext {
    pub store: Store,
    pub jwks: Arc<JwksCache>,
    pub hub: Arc<Hub>,
    pub mc_id: String,
    pub join_timeout: Duration,
    /// Seats this MC serves at once (across meetings).
    pub max_participants: u32,
    pub metrics: SignalingMetrics,
}

impl std::fmt::Debug for SessionContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionContext")
            .field("mc_id", &self.mc_id)
            .finish_non_exhaustive()
    }
}

/// Accepts sessions until `shutdown` fires, then asks every session to
/// close, waits for them (bounded) and closes the endpoint.
pub async fn serve(
    endpoint: Endpoint<Server>,
    ctx: Arc<SessionContext>,
    shutdown: ShutdownSignal,
    close_wait: Duration,
) {
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let ctx = ctx.clone();
                tokio::spawn(async move { handle_incoming(incoming, ctx).await });
            }
            () = &mut stop => break,
        }
    }
    let live = ctx.hub.live_sessions();
    tracing::info!(live_sessions = live, "signaling: closing sessions");
    ctx.hub.close_all();
    if tokio::time::timeout(close_wait, ctx.hub.all_closed())
        .await
        .is_err()
    {
        tracing::warn!(
            live_sessions = ctx.hub.live_sessions(),
            "signaling: sessions still open after the wait; closing the endpoint"
        );
    }
    endpoint.close(
        VarInt::from_u32(close_code::SHUTTING_DOWN),
        b"shutting down",
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    tracing::info!("signaling stopped");
}

async fn handle_incoming(incoming: IncomingSession, ctx: Arc<SessionContext>) {
    let _guard = ctx.hub.session_started();
    ctx.metrics.sessions.inc();
    let remote = incoming.remote_address();
    let result = accept_and_run(incoming, &ctx).await;
    ctx.metrics.sessions.dec();
    if let Err(e) = result {
        tracing::debug!(%remote, error = %e, "signaling session ended early");
    }
}

async fn accept_and_run(incoming: IncomingSession, ctx: &SessionContext) -> anyhow::Result<()> {
    let request = tokio::time::timeout(ctx.join_timeout, incoming).await??;
    if request.path() != SIGNALING_PATH {
        request.not_found().await;
        return Ok(());
    }
    let connection = request.accept().await?;
    let (send, recv) = tokio::time::timeout(ctx.join_timeout, connection.accept_bi()).await??;
    Session {
        ctx,
        connection,
        send,
        recv,
        lines: LineBuffer::default(),
    }
    .run()
    .await;
    Ok(())
}

struct Session<'a> {
    ctx: &'a SessionContext,
    connection: Connection,
    send: SendStream,
    recv: RecvStream,
    lines: LineBuffer,
}

/// How a joined session ended.
enum End {
    Left,
    Replaced,
    ShuttingDown,
    Lagged,
}

/// Why a join was refused.
enum Refusal {
    Client(ErrorCode, String),
    /// Meeting state unreachable: no error code fits, close with
    /// [`close_code::UNAVAILABLE`].
    Unavailable,
}

struct Joined {
    meeting_id: String,
    participant_id: String,
    session: String,
    others: HashSet<String>,
    events: broadcast::Receiver<Event>,
    kicked: tokio::sync::oneshot::Receiver<()>,
}

enum Read {
    Line(Vec<u8>),
    Eof,
    Failed(String),
}

impl Session<'_> {
    async fn run(mut self) {
        let started = Instant::now();
        let joined = match self.first_line().await {
            Read::Line(line) => self.join(&line).await,
            Read::Eof => Err(Refusal::Client(
                ErrorCode::Unauthorized,
                "the session must start with a join message".into(),
            )),
            Read::Failed(why) => Err(Refusal::Client(ErrorCode::Unauthorized, why)),
        };
        let joined = match joined {
            Ok(joined) => joined,
            Err(refusal) => {
                self.refuse(refusal).await;
                return;
            }
        };
        self.ctx.metrics.joins.with_label_values(&["joined"]).inc();
        self.ctx
            .metrics
            .join_seconds
            .observe(started.elapsed().as_secs_f64());
        self.ctx.metrics.participants.inc();
        tracing::info!(
            meeting_id = %joined.meeting_id,
            participant_id = %joined.participant_id,
            join_ms = started.elapsed().as_secs_f64() * 1000.0,
            "participant joined"
        );
        let meeting_id = joined.meeting_id.clone();
        let participant_id = joined.participant_id.clone();
        let session = joined.session.clone();
        let end = self.serve_joined(joined).await;
        self.ctx.metrics.participants.dec();

        let held = self
            .ctx
            .hub
            .release_seat(&meeting_id, &participant_id, &session);
        if held {
            if let Err(e) = self
                .ctx
                .store
                .leave(&meeting_id, &participant_id, &session)
                .await
            {
                tracing::warn!(%meeting_id, %participant_id, error = %e, "could not give the seat back in Redis");
            }
            self.ctx.hub.publish(
                &meeting_id,
                Event::Left {
                    participant_id: participant_id.clone(),
                },
            );
        }
        self.ctx.hub.forget_if_idle(&meeting_id);
        let (code, reason, why): (u32, &[u8], &str) = match end {
            End::Left => (close_code::NORMAL, b"bye", "left"),
            End::Replaced => (
                close_code::REPLACED,
                b"joined from another session",
                "replaced",
            ),
            End::ShuttingDown => (close_code::SHUTTING_DOWN, b"shutting down", "shutting_down"),
            End::Lagged => (close_code::LAGGED, b"too far behind", "lagged"),
        };
        tracing::info!(%meeting_id, %participant_id, reason = why, "participant left");
        let _ = tokio::time::timeout(ERROR_FLUSH, self.send.finish()).await;
        self.connection.close(VarInt::from_u32(code), reason);
    }

    /// The first line, within the join timeout.
    async fn first_line(&mut self) -> Read {
        match tokio::time::timeout(
            self.ctx.join_timeout,
            read_line(&mut self.recv, &mut self.lines),
        )
        .await
        {
            Ok(read) => read,
            Err(_) => Read::Failed("no join message within the join timeout".into()),
        }
    }

    async fn write(&mut self, message: &ServerMessage) -> bool {
        self.send.write_all(&message.to_line()).await.is_ok()
    }

    async fn refuse(mut self, refusal: Refusal) {
        match refusal {
            Refusal::Client(code, message) => {
                self.ctx
                    .metrics
                    .joins
                    .with_label_values(&[code.as_str()])
                    .inc();
                tracing::info!(code = code.as_str(), %message, "join refused");
                let _ = self.write(&ServerMessage::error(code, message)).await;
                // Wait until the client has the line (finish completes on
                // the peer's acknowledgement), then close the session.
                let _ = tokio::time::timeout(ERROR_FLUSH, self.send.finish()).await;
                self.connection.close(
                    VarInt::from_u32(close_code::NORMAL),
                    code.as_str().as_bytes(),
                );
            }
            Refusal::Unavailable => {
                self.ctx
                    .metrics
                    .joins
                    .with_label_values(&["unavailable"])
                    .inc();
                self.connection.close(
                    VarInt::from_u32(close_code::UNAVAILABLE),
                    b"meeting state temporarily unavailable; retry",
                );
            }
        }
    }

    async fn join(&mut self, line: &[u8]) -> Result<Joined, Refusal> {
        let unauthorized = |m: &str| Refusal::Client(ErrorCode::Unauthorized, m.to_owned());
        let (meeting_id, token, display_name) = match parse_client_line(line) {
            Ok(ClientMessage::Join {
                meeting_id,
                token,
                display_name,
            }) => (meeting_id, token, display_name),
            Ok(ClientMessage::Leave) => {
                return Err(unauthorized("the first message must be a join"));
            }
            Err(LineError::TooLong) => return Err(unauthorized("the join message is too long")),
            Err(LineError::Malformed(_)) => {
                return Err(unauthorized(
                    "the first message must be {\"type\":\"join\",\"meeting_id\",\"token\",\"display_name\"}",
                ));
            }
        };
        let display_name = clean_display_name(&display_name).map_err(unauthorized)?;
        let claims = match self.ctx.jwks.verify_meeting(&token).await {
            Ok(claims) => claims,
            Err(AuthError::KeysUnavailable) => {
                return Err(unauthorized(
                    "token keys are not available yet; retry shortly",
                ));
            }
            Err(e) => return Err(unauthorized(&format!("invalid meeting token: {e}"))),
        };
        if claims.meeting_id != meeting_id {
            return Err(unauthorized("the token is for another meeting"));
        }
        if !claims.mc_id.is_empty() && claims.mc_id != self.ctx.mc_id {
            return Err(unauthorized("the token is for another meeting controller"));
        }
        if !valid_id(&meeting_id) || !valid_id(&claims.sub) {
            return Err(unauthorized(
                "the token names an invalid meeting or participant",
            ));
        }
        let participant_id = claims.sub;
        if self.ctx.hub.seated() >= self.ctx.max_participants as usize {
            return Err(Refusal::Client(
                ErrorCode::Full,
                "this meeting controller is at capacity".into(),
            ));
        }

        // Subscribe before taking the seat, so every event after the
        // participant list we read is seen (duplicates are filtered below).
        let events = self.ctx.hub.subscribe(&meeting_id);
        let session = self.ctx.hub.new_session_id();
        let record = Participant {
            participant_id: participant_id.clone(),
            display_name: display_name.clone(),
            joined_at: common::jwt::now_unix(),
            session: session.clone(),
        };
        let outcome = self.ctx.store.join(&meeting_id, &record).await;
        let (mh, participants) = match outcome {
            Ok(JoinOutcome::Joined { mh, participants }) => (mh, participants),
            Ok(JoinOutcome::MeetingNotFound) => {
                drop(events);
                self.ctx.hub.forget_if_idle(&meeting_id);
                return Err(Refusal::Client(
                    ErrorCode::MeetingNotFound,
                    "this meeting controller does not host that meeting".into(),
                ));
            }
            Ok(JoinOutcome::Full { max_participants }) => {
                drop(events);
                self.ctx.hub.forget_if_idle(&meeting_id);
                return Err(Refusal::Client(
                    ErrorCode::Full,
                    format!("the meeting is full ({max_participants} participants)"),
                ));
            }
            Err(e) => {
                tracing::error!(%meeting_id, error = %e, "join failed: Redis");
                drop(events);
                self.ctx.hub.forget_if_idle(&meeting_id);
                return Err(Refusal::Unavailable);
            }
        };
        let kicked = self
            .ctx
            .hub
            .take_seat(&meeting_id, &participant_id, &session);
        self.ctx.hub.publish(
            &meeting_id,
            Event::Joined {
                participant_id: participant_id.clone(),
                display_name,
            },
        );
        let others: Vec<ParticipantInfo> = participants
            .into_iter()
            .filter(|p| p.participant_id != participant_id)
            .map(|p| ParticipantInfo {
                participant_id: p.participant_id,
                display_name: p.display_name,
            })
            .collect();
        let joined_line = ServerMessage::Joined {
            participant_id: participant_id.clone(),
            participants: others.clone(),
            mh: mh
                .into_iter()
                .map(|m| MhInfo {
                    mh_id: m.mh_id,
                    endpoint: m.media_address,
                })
                .collect(),
        };
        let joined = Joined {
            meeting_id,
            participant_id,
            session,
            others: others.into_iter().map(|p| p.participant_id).collect(),
            events,
            kicked,
        };
        // A client gone before it reads `joined` still leaves cleanly: the
        // joined loop sees the broken stream at once.
        let _ = self.write(&joined_line).await;
        Ok(joined)
    }

    async fn serve_joined(&mut self, mut joined: Joined) -> End {
        let mut closing = self.ctx.hub.closing();
        if *closing.borrow() {
            return End::ShuttingDown;
        }
        loop {
            tokio::select! {
                read = read_line(&mut self.recv, &mut self.lines) => match read {
                    Read::Line(line) => match parse_client_line(&line) {
                        Ok(ClientMessage::Leave) => return End::Left,
                        Ok(ClientMessage::Join { .. }) => {
                            tracing::debug!("ignoring a second join on a joined session");
                        }
                        Err(e) => tracing::debug!(error = %e, "ignoring an unreadable client line"),
                    },
                    Read::Eof | Read::Failed(_) => return End::Left,
                },
                event = joined.events.recv() => {
                    let message = match event {
                        Ok(event) => forward(&mut joined, event),
                        Err(broadcast::error::RecvError::Lagged(_)) => return End::Lagged,
                        Err(broadcast::error::RecvError::Closed) => return End::ShuttingDown,
                    };
                    if let Some(message) = message
                        && self.send.write_all(&message.to_line()).await.is_err()
                    {
                        return End::Left;
                    }
                }
                _ = &mut joined.kicked => return End::Replaced,
                () = async { let _ = closing.wait_for(|c| *c).await; } => return End::ShuttingDown,
                _ = self.connection.closed() => return End::Left,
            }
        }
    }
}

/// Reads until a complete line, the end of the stream, or an error.
/// Cancel-safe: bytes already read stay in the buffer.
async fn read_line(recv: &mut RecvStream, lines: &mut LineBuffer) -> Read {
    let mut chunk = [0u8; 4096];
    loop {
        match lines.next_line() {
            Ok(Some(line)) => return Read::Line(line),
            Ok(None) => {}
            Err(e) => return Read::Failed(e.to_string()),
        }
        match recv.read(&mut chunk).await {
            Ok(Some(n)) => lines.push(&chunk[..n]),
            Ok(None) => return Read::Eof,
            Err(e) => return Read::Failed(e.to_string()),
        }
    }
}

/// The push for `event`, if this session should see it: never about
/// itself, a join only for someone it does not know yet, a leave only for
/// someone it knows.
fn forward(joined: &mut Joined, event: Event) -> Option<ServerMessage> {
    match event {
        Event::Joined {
            participant_id,
            display_name,
        } => (participant_id != joined.participant_id
            && joined.others.insert(participant_id.clone()))
        .then_some(ServerMessage::ParticipantJoined {
            participant_id,
            display_name,
        }),
        Event::Left { participant_id } => joined
            .others
            .remove(&participant_id)
            .then_some(ServerMessage::ParticipantLeft { participant_id }),
    }
}
