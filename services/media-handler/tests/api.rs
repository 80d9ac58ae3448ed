//! media-handler integration tests: a real AC and GC in-process on fresh
//! `PostgreSQL` databases, MH on loopback ports 0, and real QUIC clients
//! speaking the media protocol.

// Test helpers outside #[test] fns: panicking on a broken fixture is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    clippy::similar_names,
    clippy::struct_field_names
)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::SecretString;
use common::grpc::with_bearer;
use common::jwt::{self, MeetingClaims, TokenUse};
use common::shutdown::{self, ShutdownTrigger};
use ed25519_dalek::SigningKey;
use media_handler::client::{self, AttachError, Attached};
use media_handler::config::Config;
use media_handler::media::{Limits, close_code};
use media_handler::startup::Application;
use proto::MediaHandlerServiceClient;
use proto::v1::{GetMeetingMediaRequest, RemoveParticipantRequest};
use rustls::pki_types::CertificateDer;
use serde_json::{Value, json};
use sqlx::Row as _;
use test_support::{
    Ac, GC_CLIENT, GC_SECRET, Gc, MC_CLIENT, MC_SECRET, MH_CLIENT, MH_SECRET, lazy_channel,
    wait_until,
};
use tonic::transport::Channel;

const TIMEOUT: Duration = Duration::from_secs(10);

async fn spawn_ac() -> Ac {
    Ac::spawn(
        "mh_test_ac",
        [12; 32],
        "test",
        &[GC_CLIENT, MC_CLIENT, MH_CLIENT],
    )
    .await
}

/// Meeting tokens: issued by AC as GC asks for them, or signed by any key.
trait MeetingTokens {
    async fn meeting_token(
        &self,
        meeting_id: &str,
        participant_id: &str,
        mh_ids: &[&str],
    ) -> String;
    fn signed_token(
        &self,
        key: &SigningKey,
        participant_id: &str,
        mh_id: &str,
        exp_in: i64,
    ) -> String;
}

impl MeetingTokens for Ac {
    /// A meeting token issued by AC exactly as GC asks for one.
    async fn meeting_token(
        &self,
        meeting_id: &str,
        participant_id: &str,
        mh_ids: &[&str],
    ) -> String {
        let gc = self.service_token("global-controller", GC_SECRET).await;
        let r = self
            .http
            .post(format!("{}/api/v1/auth/internal/meeting-token", self.base))
            .bearer_auth(gc)
            .json(&json!({
                "meeting_id": meeting_id,
                "participant_id": participant_id,
                "mc_id": "mc-test",
                "mh_ids": mh_ids,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A token signed with `key` under AC's current key id.
    fn signed_token(
        &self,
        key: &SigningKey,
        participant_id: &str,
        mh_id: &str,
        exp_in: i64,
    ) -> String {
        let active = self.keys.active().unwrap();
        let now = jwt::now_unix();
        jwt::encode(
            &MeetingClaims {
                iss: jwt::ISSUER.into(),
                sub: participant_id.into(),
                aud: jwt::audience::MEETING.map(str::to_owned).to_vec(),
                iat: now - 7200,
                nbf: now - 7200,
                exp: now + exp_in,
                jti: "j".into(),
                meeting_id: "m-signed".into(),
                mc_id: "mc-test".into(),
                mh_ids: vec![mh_id.into()],
                token_use: TokenUse::Meeting,
            },
            &active.kid,
            key,
        )
        .unwrap()
    }
}

async fn spawn_gc(ac: &Ac, staleness: Duration) -> Gc {
    Gc::spawn(ac, "mh_test_gc", 0, staleness).await
}

struct Mh {
    app_health: String,
    grpc: Channel,
    media: SocketAddr,
    mh_id: String,
    cert: CertificateDer<'static>,
    registration: std::sync::Arc<media_handler::registration::RegistrationState>,
    readiness: common::ops::Readiness,
    trigger: ShutdownTrigger,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    http: reqwest::Client,
    key_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn spawn_mh(ac: &Ac, gc_grpc_url: &str, mh_id: &str, limits: Limits) -> Mh {
    spawn_mh_with(ac, gc_grpc_url, mh_id, limits, |_| {}).await
}

/// `spawn_mh`, with `before_start` given the key file's path first.
async fn spawn_mh_with(
    ac: &Ac,
    gc_grpc_url: &str,
    mh_id: &str,
    limits: Limits,
    before_start: impl FnOnce(&std::path::Path),
) -> Mh {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        media_handler::tls::generate_dev_cert(&media_handler::tls::default_dev_names()).unwrap();
    let (cert_path, key_path) = media_handler::tls::write_dev_cert(dir.path(), &cert).unwrap();
    before_start(&key_path);
    let config = Config {
        gc_grpc_url: gc_grpc_url.to_owned(),
        ac_endpoint: ac.base.clone(),
        ac_jwks_url: format!("{}/.well-known/jwks.json", ac.base),
        client_id: "media-handler".into(),
        client_secret: SecretString::from(MH_SECRET.to_owned()),
        region: "test-region".into(),
        grpc_bind_address: "127.0.0.1:0".parse().unwrap(),
        health_bind_address: "127.0.0.1:0".parse().unwrap(),
        media_bind_address: "127.0.0.1:0".parse().unwrap(),
        grpc_advertise_address: "127.0.0.1:50053".into(),
        media_advertise_address: "localhost:4434".into(),
        tls_cert_path: cert_path,
        tls_key_path: key_path.clone(),
        mh_id: mh_id.into(),
        log_filter: "warn".into(),
    };
    let app = Application::build_with_limits(config, limits)
        .await
        .unwrap();
    let app_health = format!("http://{}", app.health_addr().unwrap());
    let grpc = lazy_channel(app.grpc_addr().unwrap());
    let media = app.media_addr().unwrap();
    let registration = app.registration();
    let readiness = app.readiness();
    let (trigger, signal) = shutdown::channel();
    let task = tokio::spawn(app.run(signal));
    Mh {
        app_health,
        grpc,
        media,
        mh_id: mh_id.into(),
        cert: cert.cert_der,
        registration,
        readiness,
        trigger,
        task,
        http: reqwest::Client::new(),
        key_path,
        _dir: dir,
    }
}

/// AC + GC (staleness 3 s, so load reports every second) + one MH.
async fn stack(limits: Limits) -> (Ac, Gc, Mh) {
    let ac = spawn_ac().await;
    let gc = spawn_gc(&ac, Duration::from_secs(3)).await;
    let mh = spawn_mh(&ac, &gc.grpc_url(), "mh-test-0", limits).await;
    mh.wait_ready().await;
    (ac, gc, mh)
}

impl Mh {
    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.app_health))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn wait_ready(&self) {
        test_support::wait_ready("MH", &self.app_health, Duration::from_secs(20)).await;
    }

    fn endpoint(&self) -> quinn::Endpoint {
        client::endpoint(
            "127.0.0.1:0".parse().unwrap(),
            std::slice::from_ref(&self.cert),
        )
        .unwrap()
    }

    async fn attach(&self, token: &str, participant_id: &str) -> Result<Attached, AttachError> {
        client::attach(
            &self.endpoint(),
            self.media,
            "localhost",
            token,
            participant_id,
            TIMEOUT,
        )
        .await
    }

    fn grpc_client(&self) -> MediaHandlerServiceClient<Channel> {
        MediaHandlerServiceClient::new(self.grpc.clone())
    }
}

async fn attach_ok(ac: &Ac, mh: &Mh, meeting: &str, participant: &str) -> Attached {
    let token = ac.meeting_token(meeting, participant, &[&mh.mh_id]).await;
    mh.attach(&token, participant).await.unwrap()
}

async fn gc_row(gc: &Gc, mh_id: &str) -> Option<(String, i32, String)> {
    sqlx::query(
        "SELECT media_address, current_participants, health FROM media_handlers WHERE mh_id = $1",
    )
    .bind(mh_id)
    .fetch_optional(&gc.pool)
    .await
    .unwrap()
    .map(|r| {
        (
            r.get("media_address"),
            r.get("current_participants"),
            r.get("health"),
        )
    })
}

async fn eventually<F, Fut>(what: &str, f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_until(what, Duration::from_secs(15), f).await;
}

/// Collects datagrams for up to `wait`, stopping early at `want`.
async fn collect(p: &Attached, want: usize, wait: Duration) -> Vec<Bytes> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while got.len() < want {
        match tokio::time::timeout_at(deadline, p.recv()).await {
            Ok(Ok(d)) => got.push(d),
            Ok(Err(_)) | Err(_) => break,
        }
    }
    got
}

/// Distinct payloads with every byte value, up to the datagram limit.
fn payloads(tag: u8, count: usize, max: usize) -> Vec<Bytes> {
    (0..count)
        .map(|i| {
            let len = 1 + (i * 97) % max;
            let mut v: Vec<u8> = (0..len)
                .map(|j| (j as u8).wrapping_mul(31).wrapping_add(i as u8))
                .collect();
            v[0] = tag;
            if len > 1 {
                v[1] = i as u8;
            }
            Bytes::from(v)
        })
        .collect()
}

async fn send_all(p: &Attached, data: &[Bytes]) {
    for d in data {
        p.send(d.clone()).unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn registers_with_gc_and_is_ready_with_health_and_grpc_health() {
    let (_ac, gc, mh) = stack(Limits::default()).await;
    let (status, body) = mh.get("/health").await;
    assert_eq!((status, body.as_str()), (200, "OK"));
    let (status, body) = mh.get("/ready").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        json!({"status": "ready", "gc_registration": "registered", "media_port": "bound"})
    );
    let (addr, participants, health) = gc_row(&gc, "mh-test-0").await.unwrap();
    assert_eq!(addr, "localhost:4434");
    assert_eq!(participants, 0);
    assert_eq!(health, "healthy");

    let mut health_client = tonic_health::pb::health_client::HealthClient::new(mh.grpc.clone());
    let answer = health_client
        .check(tonic_health::pb::HealthCheckRequest {
            service: proto::service_names::MEDIA_HANDLER.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_tls_key_open_to_others_is_set_to_0600_at_start_up() {
    use std::os::unix::fs::PermissionsExt as _;
    let ac = spawn_ac().await;
    let gc = spawn_gc(&ac, Duration::from_secs(3)).await;
    let mh = spawn_mh_with(
        &ac,
        &gc.grpc_url(),
        "mh-test-key",
        Limits::default(),
        |key| {
            std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o604)).unwrap();
        },
    )
    .await;
    let mode = std::fs::metadata(&mh.key_path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    mh.wait_ready().await;
}

#[tokio::test]
async fn not_ready_while_gc_is_unreachable() {
    let ac = spawn_ac().await;
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let mh = spawn_mh(&ac, &dead, "mh-lonely", Limits::default()).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (status, body) = mh.get("/ready").await;
    assert_eq!(status, 503, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["gc_registration"], "not_registered");
    assert_eq!(v["media_port"], "bound");
    assert_eq!(v["failing"], json!(["gc_registration"]));
    assert!(!mh.registration.is_registered());
}

#[tokio::test]
async fn registers_again_when_gc_forgets_it_and_reports_load() {
    let (ac, gc, mh) = stack(Limits::default()).await;
    assert_eq!(mh.registration.registrations(), 1);
    sqlx::query("DELETE FROM media_handlers WHERE mh_id = $1")
        .bind("mh-test-0")
        .execute(&gc.pool)
        .await
        .unwrap();
    eventually("MH registers again after GC forgot it", || async {
        mh.registration.registrations() >= 2 && gc_row(&gc, "mh-test-0").await.is_some()
    })
    .await;
    mh.wait_ready().await;

    // Load reports carry the attached participants.
    let _a = attach_ok(&ac, &mh, "m-load", "p1").await;
    let _b = attach_ok(&ac, &mh, "m-load", "p2").await;
    eventually("GC sees two participants", || async {
        gc_row(&gc, "mh-test-0").await.is_some_and(|r| r.1 == 2)
    })
    .await;
}

#[tokio::test]
async fn attach_accepts_valid_tokens_and_refuses_the_rest() {
    let (ac, _gc, mh) = stack(Limits::default()).await;
    let good = ac.meeting_token("m-auth", "alice", &[&mh.mh_id]).await;
    mh.attach(&good, "alice").await.unwrap();

    // Signed by someone else under AC's key id.
    let forged = ac.signed_token(&SigningKey::from_bytes(&[7; 32]), "alice", &mh.mh_id, 600);
    // Signed by AC's real key but long expired.
    let expired = ac.signed_token(
        &ac.keys.active().unwrap().signing,
        "alice",
        &mh.mh_id,
        -3600,
    );
    // Alice's token presented for bob.
    let other_participant = ac.meeting_token("m-auth", "alice", &[&mh.mh_id]).await;
    // A token for another media handler.
    let other_mh = ac.meeting_token("m-auth", "alice", &["mh-elsewhere"]).await;
    // A service token is not a meeting token.
    let service = ac.service_token("meeting-controller", MC_SECRET).await;
    for (name, token, participant) in [
        ("forged", forged.as_str(), "alice"),
        ("expired", expired.as_str(), "alice"),
        ("other participant", other_participant.as_str(), "bob"),
        ("other MH", other_mh.as_str(), "alice"),
        ("service token", service.as_str(), "alice"),
        ("garbage", "not-a-jwt", "alice"),
    ] {
        let err = mh.attach(token, participant).await.unwrap_err();
        assert_eq!(err.code(), Some("unauthorized"), "{name}: {err}");
    }
    if let Err(AttachError::Refused { message, .. }) = mh.attach(&expired, "alice").await {
        assert!(message.contains("expired"), "{message}");
    }

    // Not JSON / wrong type: bad_request.
    let endpoint = mh.endpoint();
    let conn = endpoint
        .connect(mh.media, "localhost")
        .unwrap()
        .await
        .unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(b"hello\n").await.unwrap();
    let answer = recv.read_to_end(4096).await.unwrap();
    let v: Value = serde_json::from_slice(answer.trim_ascii_end()).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["code"], "bad_request");
    let closed = conn.closed().await;
    assert!(
        matches!(&closed, quinn::ConnectionError::ApplicationClosed(c) if c.error_code == quinn::VarInt::from_u32(close_code::REFUSED)),
        "{closed:?}"
    );

    let (_, metrics) = mh.get("/metrics").await;
    assert!(
        metrics.contains(r#"mh_attaches_total{outcome="attached"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"mh_attaches_total{outcome="unauthorized"} 7"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"mh_attaches_total{outcome="bad_request"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn wrong_alpn_is_refused() {
    let (_ac, _gc, mh) = stack(Limits::default()).await;
    let mut store = rustls::RootCertStore::empty();
    store.add(mh.cert.clone()).unwrap();
    let mut crypto = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    crypto.alpn_protocols = vec![b"h3".to_vec()];
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap(),
    )));
    let result = endpoint.connect(mh.media, "localhost").unwrap().await;
    assert!(
        result.is_err(),
        "a client without dt-media/1 must not connect"
    );
}

#[tokio::test]
async fn forwards_unchanged_datagrams_within_meetings_only() {
    let (ac, _gc, mh) = stack(Limits::default()).await;
    // Meeting A has three participants, meeting B two.
    let a1 = attach_ok(&ac, &mh, "m-a", "a1").await;
    let a2 = attach_ok(&ac, &mh, "m-a", "a2").await;
    let a3 = attach_ok(&ac, &mh, "m-a", "a3").await;
    let b1 = attach_ok(&ac, &mh, "m-b", "b1").await;
    let b2 = attach_ok(&ac, &mh, "m-b", "b2").await;
    let max = a1
        .connection
        .max_datagram_size()
        .unwrap()
        .min(a2.connection.max_datagram_size().unwrap());
    assert!(max >= 1000, "datagram limit {max}");

    let from_a1 = payloads(0xA1, 30, max);
    send_all(&a1, &from_a1).await;
    let sent: HashSet<Bytes> = from_a1.iter().cloned().collect();
    for (name, p) in [("a2", &a2), ("a3", &a3)] {
        let got = collect(p, from_a1.len(), Duration::from_secs(5)).await;
        let got_set: HashSet<Bytes> = got.iter().cloned().collect();
        assert_eq!(
            got.len(),
            from_a1.len(),
            "{name} got {} of {}",
            got.len(),
            from_a1.len()
        );
        assert_eq!(got_set, sent, "{name}: bytes changed or mixed up");
    }
    // The sender does not hear itself; meeting B hears nothing of A.
    for (name, p) in [("a1", &a1), ("b1", &b1), ("b2", &b2)] {
        let got = collect(p, 1, Duration::from_millis(300)).await;
        assert!(
            got.is_empty(),
            "{name} received {} datagrams of meeting A",
            got.len()
        );
    }

    // Two participants: b2 -> b1 only.
    let from_b2 = payloads(0xB2, 10, max);
    send_all(&b2, &from_b2).await;
    let got = collect(&b1, from_b2.len(), Duration::from_secs(5)).await;
    assert_eq!(got, from_b2, "b1 gets b2's datagrams, in order on loopback");
    for (name, p) in [("a1", &a1), ("a2", &a2), ("a3", &a3), ("b2", &b2)] {
        assert!(
            collect(p, 1, Duration::from_millis(200)).await.is_empty(),
            "{name} received meeting B's datagram"
        );
    }

    // A participant that leaves stops receiving; the others still do.
    a3.close();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let one = payloads(0xA2, 1, max);
    send_all(&a2, &one).await;
    assert_eq!(collect(&a1, 1, Duration::from_secs(5)).await, one);

    let (_, metrics) = mh.get("/metrics").await;
    assert!(
        metrics.contains("mh_datagrams_forwarded_total 71"),
        "{metrics}"
    );
    assert!(metrics.contains("mh_participants 4"), "{metrics}");
    assert!(metrics.contains("mh_meetings 2"), "{metrics}");
}

#[tokio::test]
async fn slow_receivers_lose_datagrams_instead_of_buffering_them() {
    let limits = Limits {
        datagram_send_buffer: 2_000,
        ..Limits::default()
    };
    let (ac, _gc, mh) = stack(limits).await;
    let sender = attach_ok(&ac, &mh, "m-slow", "fast").await;
    let receiver = attach_ok(&ac, &mh, "m-slow", "slow").await;
    let payload = Bytes::from(vec![0x5a; 1000]);
    // A burst far beyond what 2 kB of buffer holds, without pacing.
    let mut sent = 0;
    for _ in 0..3000 {
        if sender.send(payload.clone()).is_ok() {
            sent += 1;
        }
        if sent % 200 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let got = collect(&receiver, sent, Duration::from_secs(2)).await;
    assert!(got.iter().all(|d| *d == payload));
    let (_, metrics) = mh.get("/metrics").await;
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"mh_datagrams_dropped_total{reason="slow_receiver"} "#))
        .map_or(0, |n| n.parse().unwrap());
    assert!(
        dropped > 0,
        "no drop counted; received {} of {sent}\n{metrics}",
        got.len()
    );
    assert!(got.len() < sent);
}

#[tokio::test]
async fn meeting_capacity_is_enforced_and_reattach_replaces() {
    let limits = Limits {
        max_participants_per_meeting: 2,
        ..Limits::default()
    };
    let (ac, _gc, mh) = stack(limits).await;
    let p1 = attach_ok(&ac, &mh, "m-cap", "p1").await;
    let _p2 = attach_ok(&ac, &mh, "m-cap", "p2").await;
    let token = ac.meeting_token("m-cap", "p3", &[&mh.mh_id]).await;
    let err = mh.attach(&token, "p3").await.unwrap_err();
    assert_eq!(err.code(), Some("full"), "{err}");
    // p1 again, on a new connection: the old one is closed, no slot used.
    let p1_again = attach_ok(&ac, &mh, "m-cap", "p1").await;
    let closed = tokio::time::timeout(TIMEOUT, p1.connection.closed())
        .await
        .unwrap();
    assert!(
        matches!(&closed, quinn::ConnectionError::ApplicationClosed(c) if c.error_code == quinn::VarInt::from_u32(close_code::REPLACED)),
        "{closed:?}"
    );
    assert!(p1_again.connection.close_reason().is_none());
}

#[tokio::test]
async fn meeting_controllers_list_and_remove_participants_over_grpc() {
    let (ac, _gc, mh) = stack(Limits::default()).await;
    let p1 = attach_ok(&ac, &mh, "m-grpc", "p1").await;
    let _p2 = attach_ok(&ac, &mh, "m-grpc", "p2").await;
    let mc = SecretString::from(ac.service_token("meeting-controller", MC_SECRET).await);
    let mut client = mh.grpc_client();

    let listed = client
        .get_meeting_media(
            with_bearer(
                GetMeetingMediaRequest {
                    meeting_id: "m-grpc".into(),
                },
                &mc,
            )
            .unwrap(),
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.participant_ids, ["p1", "p2"]);

    let removed = client
        .remove_participant(
            with_bearer(
                RemoveParticipantRequest {
                    meeting_id: "m-grpc".into(),
                    participant_id: "p1".into(),
                },
                &mc,
            )
            .unwrap(),
        )
        .await
        .unwrap()
        .into_inner();
    assert!(removed.removed);
    let closed = tokio::time::timeout(TIMEOUT, p1.connection.closed())
        .await
        .unwrap();
    assert!(
        matches!(&closed, quinn::ConnectionError::ApplicationClosed(c) if c.error_code == quinn::VarInt::from_u32(close_code::REMOVED)),
        "{closed:?}"
    );
    let again = client
        .remove_participant(
            with_bearer(
                RemoveParticipantRequest {
                    meeting_id: "m-grpc".into(),
                    participant_id: "p1".into(),
                },
                &mc,
            )
            .unwrap(),
        )
        .await
        .unwrap()
        .into_inner();
    assert!(!again.removed, "idempotent");

    // No token, or a token without service.write.mh.
    let err = client
        .get_meeting_media(GetMeetingMediaRequest {
            meeting_id: "m-grpc".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let mh_token = SecretString::from(ac.service_token("media-handler", MH_SECRET).await);
    let err = client
        .get_meeting_media(
            with_bearer(
                GetMeetingMediaRequest {
                    meeting_id: "m-grpc".into(),
                },
                &mh_token,
            )
            .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let forged =
        SecretString::from(ac.signed_token(&SigningKey::from_bytes(&[7; 32]), "x", "y", 60));
    let err = client
        .get_meeting_media(
            with_bearer(
                GetMeetingMediaRequest {
                    meeting_id: "m-grpc".into(),
                },
                &forged,
            )
            .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn shutdown_reports_draining_then_closes_media() {
    let (ac, gc, mh) = stack(Limits::default()).await;
    let p1 = attach_ok(&ac, &mh, "m-bye", "p1").await;
    mh.readiness.set_shutting_down();
    let (status, body) = mh.get("/ready").await;
    assert_eq!(status, 503);
    assert!(body.contains("shutting_down"), "{body}");
    eventually("GC sees the MH draining", || async {
        gc_row(&gc, "mh-test-0")
            .await
            .is_some_and(|r| r.2 == "draining")
    })
    .await;
    // Still forwarding while draining: nothing was cut yet.
    assert!(p1.connection.close_reason().is_none());
    mh.trigger.fire();
    let closed = tokio::time::timeout(TIMEOUT, p1.connection.closed())
        .await
        .unwrap();
    assert!(
        matches!(&closed, quinn::ConnectionError::ApplicationClosed(c) if c.error_code == quinn::VarInt::from_u32(close_code::NORMAL)),
        "{closed:?}"
    );
    tokio::time::timeout(TIMEOUT, mh.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        reqwest::get(format!("{}/health", mh.app_health))
            .await
            .is_err(),
        "HTTP stopped"
    );
}
