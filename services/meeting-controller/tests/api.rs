//! meeting-controller integration tests: a real Redis (`DT_TEST_REDIS_URL`,
//! default `redis://127.0.0.1:6379`), real AC and GC in-process on fresh
//! PostgreSQL databases (`DT_TEST_DATABASE_URL`), and real WebTransport
//! clients (wtransport) that verify MC's certificate by its SHA-256, as a
//! browser's `serverCertificateHashes` does.

// Test helpers outside #[test] fns: panicking on a broken fixture is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::SecretString;
use common::grpc::with_bearer;
use common::jwt::{self, MeetingClaims, TokenUse};
use common::shutdown::{self, ShutdownTrigger};
use common::testing::{self, TcpProxy};
use ed25519_dalek::SigningKey;
use meeting_controller::config::Config;
use meeting_controller::registration::Backoff;
use meeting_controller::startup::Application;
use meeting_controller::store::{JoinOutcome, Mode, Participant, Store};
use proto::MeetingControllerServiceClient;
use proto::v1::{Capacity, HostMeetingRequest, MediaHandlerAssignment, RegisterMhRequest};
use serde_json::{Value, json};
use test_support::signaling::Client;
use test_support::{
    Ac, FRONTEND_CLIENT, FRONTEND_SECRET, GC_CLIENT, GC_SECRET, Gc, MC_CLIENT, MC_SECRET,
    MH_CLIENT, MH_SECRET, free_tcp_port, free_udp_port, lazy_channel, require_redis, wait_until,
};
use tonic::Code;

// ---------------------------------------------------------------- fixtures

async fn spawn_ac() -> Ac {
    Ac::spawn(
        "mc_test_ac",
        [7; 32],
        "test",
        &[GC_CLIENT, MC_CLIENT, MH_CLIENT, FRONTEND_CLIENT],
    )
    .await
}

/// Meeting tokens signed by AC's real active key, with any claims (expired
/// ones included).
trait MeetingTokens {
    fn meeting_token(
        &self,
        meeting_id: &str,
        mc_id: &str,
        participant: &str,
        exp_in: i64,
    ) -> String;
}

impl MeetingTokens for Ac {
    fn meeting_token(
        &self,
        meeting_id: &str,
        mc_id: &str,
        participant: &str,
        exp_in: i64,
    ) -> String {
        let active = self.keys.active().unwrap();
        let now = jwt::now_unix();
        jwt::encode(
            &MeetingClaims {
                iss: jwt::ISSUER.into(),
                sub: participant.into(),
                aud: jwt::audience::MEETING.map(str::to_owned).to_vec(),
                iat: now.min(now + exp_in - 60),
                nbf: now.min(now + exp_in - 60),
                exp: now + exp_in,
                jti: uuid::Uuid::new_v4().to_string(),
                meeting_id: meeting_id.into(),
                mc_id: mc_id.into(),
                mh_ids: vec!["mh-0".into()],
                token_use: TokenUse::Meeting,
            },
            &active.kid,
            &active.signing,
        )
        .unwrap()
    }
}

async fn spawn_gc(ac: &Ac, grpc_port: u16, staleness: Duration) -> Gc {
    Gc::spawn(ac, "mc_test_gc", grpc_port, staleness).await
}

struct Mc {
    id: String,
    health: String,
    grpc: SocketAddr,
    wt_port: u16,
    cert_hash: [u8; 32],
    store: Store,
    readiness: common::ops::Readiness,
    trigger: ShutdownTrigger,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    key_path: std::path::PathBuf,
    _certs: tempfile::TempDir,
}

struct McOptions {
    gc_grpc_url: String,
    redis_url: String,
    max_meetings: u32,
}

async fn spawn_mc(ac: &Ac, options: McOptions) -> Mc {
    spawn_mc_with(ac, options, |_| {}).await
}

/// `spawn_mc`, with `before_start` given the key file's path first.
async fn spawn_mc_with(
    ac: &Ac,
    options: McOptions,
    before_start: impl FnOnce(&std::path::Path),
) -> Mc {
    let certs = tempfile::tempdir().unwrap();
    let cert =
        meeting_controller::certs::generate(&["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_path, key_path) = meeting_controller::certs::write_to(certs.path(), &cert).unwrap();
    before_start(&key_path);
    let id = format!("mc-test-{}", uuid::Uuid::new_v4().simple());
    let grpc_port = free_tcp_port();
    let wt_port = free_udp_port();
    let config = Config {
        redis_url: SecretString::from(options.redis_url),
        gc_grpc_url: options.gc_grpc_url,
        ac_endpoint: ac.base.clone(),
        ac_jwks_url: format!("{}/.well-known/jwks.json", ac.base),
        client_id: "meeting-controller".into(),
        client_secret: SecretString::from(MC_SECRET.to_owned()),
        region: "test-region".into(),
        grpc_bind_address: format!("127.0.0.1:{grpc_port}").parse().unwrap(),
        health_bind_address: "127.0.0.1:0".parse().unwrap(),
        webtransport_bind_address: format!("127.0.0.1:{wt_port}").parse().unwrap(),
        grpc_advertise_address: format!("127.0.0.1:{grpc_port}"),
        webtransport_advertise_address: format!("127.0.0.1:{wt_port}"),
        tls_cert_path: cert_path,
        tls_key_path: key_path.clone(),
        mc_id: id.clone(),
        log_filter: "warn".into(),
        max_meetings: options.max_meetings,
        max_participants: 1000,
        default_meeting_participants: 100,
        drain: Duration::from_millis(500),
        join_timeout: Duration::from_secs(3),
    };
    let app = Application::build_with_backoff(
        config,
        Backoff::new(Duration::from_millis(100), Duration::from_millis(800)).with_jitter(0.8..=1.2),
    )
    .await
    .unwrap();
    let health = format!("http://{}", app.health_addr().unwrap());
    let grpc = app.grpc_addr().unwrap();
    let store = app.store();
    let readiness = app.readiness();
    let (trigger, signal) = shutdown::channel();
    let task = tokio::spawn(app.run(signal));
    Mc {
        id,
        health,
        grpc,
        wt_port,
        cert_hash: cert.sha256(),
        store,
        readiness,
        trigger,
        task,
        key_path,
        _certs: certs,
    }
}

/// AC + GC + MC, MC registered and ready.
struct Stack {
    ac: Ac,
    gc: Gc,
    mc: Mc,
}

async fn spawn_stack() -> Stack {
    let redis = require_redis().await;
    let ac = spawn_ac().await;
    let gc = spawn_gc(&ac, 0, Duration::from_secs(30)).await;
    let mc = spawn_mc(
        &ac,
        McOptions {
            gc_grpc_url: format!("http://{}", gc.grpc_addr),
            redis_url: redis,
            max_meetings: 100,
        },
    )
    .await;
    wait_ready(&mc).await;
    Stack { ac, gc, mc }
}

async fn ready(mc: &Mc) -> (u16, Value) {
    let r = reqwest::get(format!("{}/ready", mc.health)).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn wait_ready(mc: &Mc) {
    test_support::wait_ready("MC", &mc.health, Duration::from_secs(15)).await;
}

async fn metrics(mc: &Mc) -> String {
    reqwest::get(format!("{}/metrics", mc.health))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of one sample line of the Prometheus text, 0 when absent.
fn sample(metrics: &str, prefix: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn mc_client(mc: &Mc) -> MeetingControllerServiceClient<tonic::transport::Channel> {
    MeetingControllerServiceClient::new(lazy_channel(mc.grpc))
}

fn host_request(meeting_id: &str, max_participants: u32) -> HostMeetingRequest {
    HostMeetingRequest {
        meeting_id: meeting_id.into(),
        meeting_name: "standup".into(),
        media_handlers: vec![MediaHandlerAssignment {
            mh_id: "mh-0".into(),
            media_address: "127.0.0.1:4434".into(),
            grpc_address: "127.0.0.1:50053".into(),
        }],
        max_participants,
    }
}

async fn host(stack: &Stack, meeting_id: &str, max_participants: u32) {
    let token = SecretString::from(stack.ac.service_token("global-controller", GC_SECRET).await);
    mc_client(&stack.mc)
        .host_meeting(with_bearer(host_request(meeting_id, max_participants), &token).unwrap())
        .await
        .unwrap();
}

fn signaling_url(port: u16, path: &str) -> String {
    format!("https://127.0.0.1:{port}{path}")
}

async fn client(mc: &Mc) -> Client {
    Client::connect(&signaling_url(mc.wt_port, "/signaling"), mc.cert_hash)
        .await
        .unwrap()
}

// ------------------------------------------------------------------- tests

#[tokio::test]
async fn registers_with_gc_and_serves_health_ready_metrics() {
    let stack = spawn_stack().await;
    let (status, body) = ready(&stack.mc).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"status": "ready", "redis": "healthy", "gc_registration": "registered"})
    );
    let health = reqwest::get(format!("{}/health", stack.mc.health))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "OK");

    let row: (String, String, String) = sqlx::query_as(
        "SELECT grpc_address, webtransport_address, region FROM meeting_controllers WHERE mc_id = $1",
    )
    .bind(&stack.mc.id)
    .fetch_one(&stack.gc.pool)
    .await
    .unwrap();
    assert_eq!(row.0, stack.mc.grpc.to_string());
    assert_eq!(row.1, format!("127.0.0.1:{}", stack.mc.wt_port));
    assert_eq!(row.2, "test-region");

    let text = metrics(&stack.mc).await;
    assert!(
        text.contains("mc_gc_calls_total{code=\"ok\",method=\"RegisterMc\"} 1"),
        "{text}"
    );
    assert!(text.contains("mc_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/ready\""), "{text}");
    assert!(
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .all(|l| l.starts_with("mc_")),
        "every metric carries the mc_ prefix"
    );
    assert_eq!(stack.mc.store.mode(), Mode::Standalone);
}

#[cfg(unix)]
#[tokio::test]
async fn a_tls_key_open_to_others_is_set_to_0600_at_start_up() {
    use std::os::unix::fs::PermissionsExt as _;
    let redis = require_redis().await;
    let ac = spawn_ac().await;
    let gc = spawn_gc(&ac, 0, Duration::from_secs(30)).await;
    let mc = spawn_mc_with(
        &ac,
        McOptions {
            gc_grpc_url: format!("http://{}", gc.grpc_addr),
            redis_url: redis,
            max_meetings: 100,
        },
        |key| {
            std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o644)).unwrap();
        },
    )
    .await;
    let mode = std::fs::metadata(&mc.key_path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    wait_ready(&mc).await;
}

#[tokio::test]
async fn registration_backs_off_until_gc_appears() {
    let redis = require_redis().await;
    let ac = spawn_ac().await;
    // GC's gRPC port is chosen now; GC itself starts later.
    let gc_port = free_tcp_port();
    let mc = spawn_mc(
        &ac,
        McOptions {
            gc_grpc_url: format!("http://127.0.0.1:{gc_port}"),
            redis_url: redis,
            max_meetings: 100,
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = ready(&mc).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["gc_registration"], "not_registered");
    assert_eq!(body["failing"], json!(["gc_registration"]));
    let failures = sample(
        &metrics(&mc).await,
        "mc_gc_calls_total{code=\"unavailable\",method=\"RegisterMc\"}",
    );
    // 100 ms doubling (±20 %): about 4 attempts in 1.5 s (2 to 8 allowing
    // for a loaded machine), not a tight loop.
    assert!((2..=8).contains(&failures), "{failures} attempts");

    let gc = spawn_gc(&ac, gc_port, Duration::from_secs(30)).await;
    wait_ready(&mc).await;
    let registered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM meeting_controllers WHERE mc_id = $1")
            .bind(&mc.id)
            .fetch_one(&gc.pool)
            .await
            .unwrap();
    assert_eq!(registered, 1);
}

#[tokio::test]
async fn re_registers_when_gc_forgets_it() {
    let redis = require_redis().await;
    let ac = spawn_ac().await;
    // 3 s staleness: GC asks for a heartbeat every second.
    let gc = spawn_gc(&ac, 0, Duration::from_secs(3)).await;
    let mc = spawn_mc(
        &ac,
        McOptions {
            gc_grpc_url: format!("http://{}", gc.grpc_addr),
            redis_url: redis,
            max_meetings: 100,
        },
    )
    .await;
    wait_ready(&mc).await;
    // GC forgets every controller (as after a database reset).
    sqlx::query("DELETE FROM meeting_controllers")
        .execute(&gc.pool)
        .await
        .unwrap();
    wait_until("MC registered again", Duration::from_secs(10), || async {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM meeting_controllers WHERE mc_id = $1")
                .bind(&mc.id)
                .fetch_one(&gc.pool)
                .await
                .unwrap();
        n == 1
    })
    .await;
    let text = metrics(&mc).await;
    assert!(
        sample(
            &text,
            "mc_gc_calls_total{code=\"not_found\",method=\"Heartbeat\"}"
        ) >= 1,
        "{text}"
    );
    assert!(
        sample(
            &text,
            "mc_gc_calls_total{code=\"ok\",method=\"RegisterMc\"}"
        ) >= 2,
        "{text}"
    );
    wait_ready(&mc).await;

    // GC restarted on the same address with an empty database: MC's next
    // heartbeat is refused (or NOT_FOUND) and MC registers with the new GC.
    let port = gc.grpc_addr.port();
    gc.trigger.fire();
    tokio::time::timeout(Duration::from_secs(15), gc.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let restarted = spawn_gc(&ac, port, Duration::from_secs(3)).await;
    wait_until(
        "MC registered with the restarted GC",
        Duration::from_secs(10),
        || async {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM meeting_controllers WHERE mc_id = $1")
                    .bind(&mc.id)
                    .fetch_one(&restarted.pool)
                    .await
                    .unwrap();
            n == 1
        },
    )
    .await;
    wait_ready(&mc).await;
}

#[tokio::test]
async fn host_meeting_needs_gc_scope_and_is_idempotent_and_bounded() {
    let redis = require_redis().await;
    let ac = spawn_ac().await;
    let gc = spawn_gc(&ac, 0, Duration::from_secs(30)).await;
    let mc = spawn_mc(
        &ac,
        McOptions {
            gc_grpc_url: format!("http://{}", gc.grpc_addr),
            redis_url: redis,
            max_meetings: 1,
        },
    )
    .await;
    wait_ready(&mc).await;
    let meeting = uuid::Uuid::new_v4().to_string();
    let mut client = mc_client(&mc);

    // No token, a token without the scope, MC's own token, a forged token.
    let err = client
        .host_meeting(host_request(&meeting, 0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    for (id, secret) in [
        ("frontend", FRONTEND_SECRET),
        ("meeting-controller", MC_SECRET),
    ] {
        let token = SecretString::from(ac.service_token(id, secret).await);
        let err = client
            .host_meeting(with_bearer(host_request(&meeting, 0), &token).unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{id}");
    }
    let kid = ac.keys.active().unwrap().kid;
    let now = jwt::now_unix();
    let forged = jwt::encode(
        &jwt::ServiceClaims {
            iss: jwt::ISSUER.into(),
            sub: "global-controller".into(),
            aud: jwt::audiences_for_scopes("service.write.mc"),
            iat: now,
            nbf: now,
            exp: now + 60,
            jti: "x".into(),
            scope: "service.write.mc".into(),
            service_type: "global-controller".into(),
            token_use: TokenUse::Service,
        },
        &kid,
        &SigningKey::from_bytes(&[42; 32]),
    )
    .unwrap();
    let err = client
        .host_meeting(with_bearer(host_request(&meeting, 0), &SecretString::from(forged)).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    let gc_token = SecretString::from(ac.service_token("global-controller", GC_SECRET).await);
    let response = client
        .host_meeting(with_bearer(host_request(&meeting, 0), &gc_token).unwrap())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.mc_id, mc.id);
    assert_eq!(
        response.webtransport_url,
        format!("https://127.0.0.1:{}/signaling", mc.wt_port)
    );
    let mh = mc.store.meeting_mh(&meeting).await.unwrap().unwrap();
    assert_eq!(mh[0].mh_id, "mh-0");
    assert_eq!(mh[0].media_address, "127.0.0.1:4434");

    // Idempotent: hosting again refreshes the MH assignment.
    let mut again = host_request(&meeting, 0);
    again.media_handlers[0].mh_id = "mh-1".into();
    client
        .host_meeting(with_bearer(again, &gc_token).unwrap())
        .await
        .unwrap();
    assert_eq!(
        mc.store.meeting_mh(&meeting).await.unwrap().unwrap()[0].mh_id,
        "mh-1"
    );

    // This MC hosts at most one meeting: the next one is refused so GC
    // tries another MC.
    let other = uuid::Uuid::new_v4().to_string();
    let err = client
        .host_meeting(with_bearer(host_request(&other, 0), &gc_token).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);

    // Malformed requests.
    let mut bad = host_request("not{a}uuid", 0);
    let err = client
        .host_meeting(with_bearer(bad.clone(), &gc_token).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    bad.meeting_id = meeting.clone();
    bad.media_handlers.clear();
    let err = client
        .host_meeting(with_bearer(bad, &gc_token).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let text = metrics(&mc).await;
    assert!(
        text.contains(
            "mc_grpc_requests_total{code=\"resource_exhausted\",method=\"HostMeeting\"} 1"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn participants_join_through_gc_and_see_each_other() {
    let stack = spawn_stack().await;
    // A media handler GC can place the meeting on.
    let mh_token = SecretString::from(stack.ac.service_token("media-handler", MH_SECRET).await);
    proto::MediaHandlerRegistryClient::new(
        tonic::transport::Channel::from_shared(format!("http://{}", stack.gc.grpc_addr))
            .unwrap()
            .connect_lazy(),
    )
    .register_mh(
        with_bearer(
            RegisterMhRequest {
                mh_id: "mh-e2e".into(),
                region: "test-region".into(),
                grpc_address: "127.0.0.1:50053".into(),
                media_address: "127.0.0.1:4434".into(),
                capacity: Some(Capacity {
                    max_meetings: 10,
                    max_participants: 100,
                }),
                version: "test".into(),
            },
            &mh_token,
        )
        .unwrap(),
    )
    .await
    .unwrap();

    let http = reqwest::Client::new();
    let frontend = stack.ac.service_token("frontend", FRONTEND_SECRET).await;
    let created: Value = http
        .post(format!("{}/api/v1/meetings", stack.gc.http))
        .bearer_auth(&frontend)
        .json(&json!({"name": "standup"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let meeting_id = created["meeting_id"].as_str().unwrap().to_owned();
    let join = || async {
        let r = http
            .get(format!("{}/api/v1/meetings/{meeting_id}", stack.gc.http))
            .bearer_auth(&frontend)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()
    };
    let ada = join().await;
    let bo = join().await;
    assert_eq!(ada["mc"]["mc_id"], stack.mc.id);
    let url = ada["mc"]["webtransport_url"].as_str().unwrap();
    assert_eq!(
        url,
        format!("https://127.0.0.1:{}/signaling", stack.mc.wt_port)
    );

    let mut a = client(&stack.mc).await;
    let started = Instant::now();
    let joined_a = a
        .join(&meeting_id, ada["token"].as_str().unwrap(), "Ada")
        .await;
    let join_latency = started.elapsed();
    assert_eq!(joined_a["type"], "joined", "{joined_a}");
    let ada_id = joined_a["participant_id"].as_str().unwrap().to_owned();
    assert_eq!(joined_a["participants"], json!([]));
    assert_eq!(
        joined_a["mh"],
        json!([{"mh_id": "mh-e2e", "endpoint": "127.0.0.1:4434"}])
    );

    let mut b = client(&stack.mc).await;
    let joined_b = b
        .join(&meeting_id, bo["token"].as_str().unwrap(), "Bo")
        .await;
    assert_eq!(joined_b["type"], "joined", "{joined_b}");
    let bo_id = joined_b["participant_id"].as_str().unwrap().to_owned();
    assert_ne!(ada_id, bo_id);
    assert_eq!(
        joined_b["participants"],
        json!([{"participant_id": ada_id, "display_name": "Ada"}])
    );
    assert_eq!(
        a.next().await.unwrap(),
        json!({"type": "participant_joined", "participant_id": bo_id, "display_name": "Bo"})
    );
    let seated = stack.mc.store.participants(&meeting_id).await.unwrap();
    assert_eq!(seated.len(), 2);

    // Bo leaves by closing the session: Ada hears it, Redis forgets Bo.
    b.connection.close(0u32.into(), b"bye");
    assert_eq!(
        a.next().await.unwrap(),
        json!({"type": "participant_left", "participant_id": bo_id})
    );
    let seated = stack.mc.store.participants(&meeting_id).await.unwrap();
    assert_eq!(
        seated
            .iter()
            .map(|p| p.participant_id.as_str())
            .collect::<Vec<_>>(),
        vec![ada_id.as_str()]
    );
    // Ada leaves with a leave line.
    a.send_line(r#"{"type":"leave"}"#).await;
    assert_eq!(a.next().await, None);
    wait_until("Ada's seat is released", Duration::from_secs(5), || async {
        stack
            .mc
            .store
            .participants(&meeting_id)
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    let text = metrics(&stack.mc).await;
    assert_eq!(
        sample(&text, "mc_signaling_joins_total{outcome=\"joined\"}"),
        2
    );
    eprintln!("join latency (WebTransport session open excluded): {join_latency:?}");
}

#[tokio::test]
async fn bad_tokens_unknown_meetings_and_full_meetings_are_refused() {
    let stack = spawn_stack().await;
    let meeting = uuid::Uuid::new_v4().to_string();
    host(&stack, &meeting, 1).await;
    let mc = &stack.mc;

    let refused = |code: &'static str| {
        move |v: Value| {
            assert_eq!(v["type"], "error", "{v}");
            assert_eq!(v["code"], code, "{v}");
            assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    };

    // Forged: AC's key id, someone else's key.
    let kid = stack.ac.keys.active().unwrap().kid;
    let now = jwt::now_unix();
    let forged = jwt::encode(
        &MeetingClaims {
            iss: jwt::ISSUER.into(),
            sub: "p-forged".into(),
            aud: jwt::audience::MEETING.map(str::to_owned).to_vec(),
            iat: now,
            nbf: now,
            exp: now + 60,
            jti: "j".into(),
            meeting_id: meeting.clone(),
            mc_id: mc.id.clone(),
            mh_ids: vec![],
            token_use: TokenUse::Meeting,
        },
        &kid,
        &SigningKey::from_bytes(&[42; 32]),
    )
    .unwrap();
    let expired = stack.ac.meeting_token(&meeting, &mc.id, "p-expired", -3600);
    let other_meeting =
        stack
            .ac
            .meeting_token(&uuid::Uuid::new_v4().to_string(), &mc.id, "p-other", 300);
    let other_mc = stack
        .ac
        .meeting_token(&meeting, "mc-elsewhere", "p-mc", 300);
    let service_token = stack.ac.service_token("frontend", FRONTEND_SECRET).await;
    for (what, token) in [
        ("forged", forged.as_str()),
        ("expired", expired.as_str()),
        ("wrong meeting", other_meeting.as_str()),
        ("wrong mc", other_mc.as_str()),
        ("service token", service_token.as_str()),
        ("garbage", "not-a-jwt"),
    ] {
        let mut c = client(mc).await;
        let answer = c.join(&meeting, token, "Eve").await;
        refused("unauthorized")(answer);
        assert_eq!(c.next().await, None, "{what}: the stream ends");
        let closed = c.closed_code().await;
        assert!(
            closed.ends_with("unauthorized (code 0)"),
            "{what}: {closed}"
        );
    }

    // Malformed first lines.
    for line in [
        "{\"type\":\"leave\"}",
        "hello",
        "{\"type\":\"join\",\"meeting_id\":\"m\"}",
    ] {
        let mut c = client(mc).await;
        c.send_line(line).await;
        refused("unauthorized")(c.next().await.unwrap());
    }
    // An overlong line without a newline is cut off, not buffered forever.
    let mut c = client(mc).await;
    c.send.write_all(&vec![b'x'; 40 * 1024]).await.unwrap();
    refused("unauthorized")(c.next().await.unwrap());

    // A valid token for a meeting this MC does not host.
    let unknown = uuid::Uuid::new_v4().to_string();
    let mut c = client(mc).await;
    let token = stack.ac.meeting_token(&unknown, &mc.id, "p-unknown", 300);
    refused("meeting_not_found")(c.join(&unknown, &token, "Al").await);

    // max_participants = 1: the first joins, the second is refused, and a
    // reconnect with the first one's token takes its seat back.
    let first = stack.ac.meeting_token(&meeting, &mc.id, "p-first", 300);
    let mut c1 = client(mc).await;
    assert_eq!(c1.join(&meeting, &first, "First").await["type"], "joined");
    let second = stack.ac.meeting_token(&meeting, &mc.id, "p-second", 300);
    let mut c2 = client(mc).await;
    refused("full")(c2.join(&meeting, &second, "Second").await);
    let mut again = client(mc).await;
    let rejoined = again.join(&meeting, &first, "First").await;
    assert_eq!(rejoined["type"], "joined", "{rejoined}");
    assert_eq!(c1.next().await, None, "the replaced session is closed");
    let closed = c1.closed_code().await;
    assert!(
        closed.ends_with("joined from another session (code 2)"),
        "{closed}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stack.mc.store.participants(&meeting).await.unwrap().len(),
        1,
        "the replaced session's exit keeps the new seat"
    );

    let text = metrics(mc).await;
    assert!(sample(&text, "mc_signaling_joins_total{outcome=\"unauthorized\"}") >= 10);
    assert_eq!(
        sample(
            &text,
            "mc_signaling_joins_total{outcome=\"meeting_not_found\"}"
        ),
        1
    );
    assert_eq!(
        sample(&text, "mc_signaling_joins_total{outcome=\"full\"}"),
        1
    );
}

#[tokio::test]
async fn other_paths_are_not_found() {
    let stack = spawn_stack().await;
    let err = Client::connect(
        &signaling_url(stack.mc.wt_port, "/other"),
        stack.mc.cert_hash,
    )
    .await
    .err()
    .expect("only /signaling is served");
    assert!(err.contains("rejected"), "{err}");
    // A client that does not know the certificate's hash cannot connect.
    let err = Client::connect(&signaling_url(stack.mc.wt_port, "/signaling"), [0; 32])
        .await
        .err()
        .expect("wrong certificate hash");
    assert!(!err.is_empty());
}

#[tokio::test]
async fn redis_outage_makes_mc_not_ready_and_it_recovers() {
    let redis = require_redis().await;
    let upstream = testing::socket_addr_of(&redis).await;
    let proxy = TcpProxy::start(upstream).await;
    let ac = spawn_ac().await;
    let gc = spawn_gc(&ac, 0, Duration::from_secs(30)).await;
    let mc = spawn_mc(
        &ac,
        McOptions {
            gc_grpc_url: format!("http://{}", gc.grpc_addr),
            redis_url: testing::with_host_port(&redis, proxy.addr()),
            max_meetings: 100,
        },
    )
    .await;
    wait_ready(&mc).await;
    proxy.stop();
    wait_until("MC not ready", Duration::from_secs(10), || async {
        ready(&mc).await.0 == 503
    })
    .await;
    let (_, body) = ready(&mc).await;
    assert_eq!(body["redis"], "unreachable", "{body}");
    assert_eq!(body["failing"], json!(["redis"]));
    assert_eq!(body["gc_registration"], "registered");
    proxy.resume().await;
    wait_ready(&mc).await;
}

#[tokio::test]
async fn sigterm_sequence_drains_then_closes_sessions_and_frees_seats() {
    let stack = spawn_stack().await;
    let meeting = uuid::Uuid::new_v4().to_string();
    host(&stack, &meeting, 0).await;
    let token = stack
        .ac
        .meeting_token(&meeting, &stack.mc.id, "p-stay", 300);
    let mut c = client(&stack.mc).await;
    assert_eq!(c.join(&meeting, &token, "Stay").await["type"], "joined");

    // What main does on SIGTERM: not ready, drain, then stop.
    let (go, until) = tokio::sync::oneshot::channel::<()>();
    let Mc {
        readiness,
        trigger,
        task,
        health,
        ..
    } = stack.mc;
    let drain = tokio::spawn(shutdown::drain_then_fire(
        async {
            let _ = until.await;
        },
        readiness,
        Duration::from_secs(4),
        trigger,
    ));
    go.send(()).unwrap();
    wait_until("MC not ready", Duration::from_secs(2), || async {
        let r = reqwest::get(format!("{health}/ready")).await.unwrap();
        r.status() == 503 && r.json::<Value>().await.unwrap()["status"] == "shutting_down"
    })
    .await;
    // GC hears DRAINING at once and stops placing meetings here.
    wait_until(
        "GC sees the MC draining",
        Duration::from_secs(3),
        || async {
            let health: String = sqlx::query_scalar(
                "SELECT health FROM meeting_controllers ORDER BY registered_at DESC LIMIT 1",
            )
            .fetch_one(&stack.gc.pool)
            .await
            .unwrap();
            health == "draining"
        },
    )
    .await;
    // HostMeeting is refused while draining.
    let gc_token = SecretString::from(stack.ac.service_token("global-controller", GC_SECRET).await);
    let err = MeetingControllerServiceClient::new(
        tonic::transport::Channel::from_shared(format!("http://{}", stack.mc.grpc))
            .unwrap()
            .connect_lazy(),
    )
    .host_meeting(with_bearer(host_request(&meeting, 0), &gc_token).unwrap())
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    // The session still works during the drain...
    assert!(c.send.write_all(b"{\"type\":\"ping\"}\n").await.is_ok());
    // ...and is closed after it, its seat given back.
    assert_eq!(c.next().await, None);
    let closed = c.closed_code().await;
    assert!(closed.ends_with("shutting down (code 1)"), "{closed}");
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    drain.await.unwrap();
    assert!(
        stack
            .mc
            .store
            .participants(&meeting)
            .await
            .unwrap()
            .is_empty()
    );
    stack.gc.trigger.fire();
    let _ = stack.gc.task.await;
}

/// Runs a throwaway single-node Redis Cluster (all 16384 slots on one
/// node) with the `redis-server` binary, for the cluster-mode test.
struct ClusterRedis {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for ClusterRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[allow(clippy::zombie_processes)] // ClusterRedis::drop kills and waits
async fn start_cluster_redis() -> ClusterRedis {
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            &dir.path().join("nodes.conf").display().to_string(),
            "--cluster-announce-ip",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir.path().display().to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server must be installed for the cluster-mode test (apt-get install -y redis-server)");
    let url = format!("redis://127.0.0.1:{port}");
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = None;
    for _ in 0..50 {
        if let Ok(c) = client.get_multiplexed_async_connection().await {
            conn = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut conn = conn.expect("the cluster-mode redis-server started");
    let _: () = redis::cmd("CLUSTER")
        .arg("ADDSLOTSRANGE")
        .arg(0)
        .arg(16383)
        .query_async(&mut conn)
        .await
        .unwrap();
    for _ in 0..100 {
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async(&mut conn)
            .await
            .unwrap();
        if info.contains("cluster_state:ok") {
            return ClusterRedis {
                child,
                url,
                _dir: dir,
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the single-node cluster never reached cluster_state:ok");
}

/// The same store operations against standalone Redis and Redis Cluster.
async fn exercise_store(url: &str, expected: Mode) {
    let mc_id = format!("mc-store-{}", uuid::Uuid::new_v4().simple());
    let store = Store::connect(
        &SecretString::from(url.to_owned()),
        &mc_id,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(store.mode(), expected);
    store.ping().await.unwrap();
    let meeting = uuid::Uuid::new_v4().to_string();
    let person = |id: &str, session: &str| Participant {
        participant_id: id.into(),
        display_name: id.to_uppercase(),
        joined_at: jwt::now_unix(),
        session: session.into(),
    };
    assert_eq!(
        store.join(&meeting, &person("p1", "s1")).await.unwrap(),
        JoinOutcome::MeetingNotFound
    );
    let mh = vec![meeting_controller::store::MhAssignment {
        mh_id: "mh-0".into(),
        media_address: "127.0.0.1:4434".into(),
        grpc_address: String::new(),
    }];
    store.host_meeting(&meeting, "n", &mh, 2, 10).await.unwrap();
    assert_eq!(store.hosted_meetings().await.unwrap(), 1);
    let JoinOutcome::Joined {
        mh: got,
        participants,
    } = store.join(&meeting, &person("p1", "s1")).await.unwrap()
    else {
        panic!("p1 should join");
    };
    assert_eq!(got, mh);
    assert_eq!(participants.len(), 1);
    store.join(&meeting, &person("p2", "s2")).await.unwrap();
    assert_eq!(
        store.join(&meeting, &person("p3", "s3")).await.unwrap(),
        JoinOutcome::Full {
            max_participants: 2
        }
    );
    // Leave only frees a seat held by the same session.
    assert!(!store.leave(&meeting, "p1", "other").await.unwrap());
    assert!(store.leave(&meeting, "p1", "s1").await.unwrap());
    assert_eq!(store.participants(&meeting).await.unwrap().len(), 1);
    // A restarted MC clears the seats its previous run left.
    assert_eq!(store.clear_stale_sessions().await.unwrap(), 1);
    assert!(store.participants(&meeting).await.unwrap().is_empty());
}

#[tokio::test]
async fn store_works_on_standalone_redis() {
    let url = require_redis().await;
    exercise_store(&url, Mode::Standalone).await;
}

#[tokio::test]
async fn store_detects_and_works_on_redis_cluster() {
    let cluster = start_cluster_redis().await;
    exercise_store(&cluster.url, Mode::Cluster).await;
}
