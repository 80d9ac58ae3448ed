//! The whole Dark Tower flow, end to end, on loopback: AC, GC, MC and MH
//! in-process against a real PostgreSQL (`DT_TEST_DATABASE_URL`, default
//! `postgres://postgres:postgres@127.0.0.1:5432/postgres`) and a real Redis
//! (`DT_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`).
//!
//! A front end gets a token from AC, creates a meeting at GC and joins it
//! twice; both participants join through MC over WebTransport, attach to MH
//! over QUIC (ALPN `dt-media/1`) and exchange datagrams both ways, bytes
//! unchanged. A forged token is refused by AC, GC, MC and MH alike.
//!
//! Clients speak the wire contracts directly (wtransport, quinn + rustls),
//! not the services' own client helpers, so the test checks the contracts
//! and not just two halves of one implementation.

// Test helpers outside #[test] fns: panicking on a broken fixture is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// mc_* and mh_* bindings mirror the two services on purpose.
#![allow(clippy::similar_names)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::SecretString;
use common::jwt::{self, MeetingClaims, ServiceClaims, TokenUse};
use common::shutdown::{self, ShutdownTrigger};
use common::testing;
use ed25519_dalek::SigningKey;
use rand::RngCore as _;
use serde_json::{Value, json};
use test_support::signaling::Client;
use test_support::{
    Ac, FRONTEND_CLIENT, FRONTEND_SECRET, GC_CLIENT, Gc, MC_CLIENT, MC_SECRET, MH_CLIENT,
    MH_SECRET, free_tcp_port, free_udp_port, gc_config, require_redis, wait_ready,
};

const TIMEOUT: Duration = Duration::from_secs(10);

// ------------------------------------------------------------ the platform

struct Platform {
    ac: String,
    ac_kid: String,
    gc: String,
    mc_cert_hash: [u8; 32],
    mh_cert: rustls::pki_types::CertificateDer<'static>,
    mh_health: String,
    mc_health: String,
    _ac: Ac,
    _gc: Gc,
    _triggers: Vec<ShutdownTrigger>,
    _dirs: Vec<tempfile::TempDir>,
}

/// How long each service may take to become ready.
const READY_WAIT: Duration = Duration::from_secs(20);

async fn start_platform() -> Platform {
    let redis = require_redis().await;
    let mut triggers = Vec::new();
    let mut dirs = Vec::new();

    // AC, with the platform's clients and an end-user front end.
    let ac_app = Ac::spawn(
        "e2e_ac",
        [21; 32],
        "e2e",
        &[GC_CLIENT, MC_CLIENT, MH_CLIENT, FRONTEND_CLIENT],
    )
    .await;
    let ac = ac_app.base.clone();
    let ac_kid = ac_app.keys.active().unwrap().kid;
    wait_ready("AC", &ac, READY_WAIT).await;

    // GC.
    let mut config = gc_config(
        testing::fresh_database("e2e_gc").await,
        &ac,
        Duration::from_secs(30),
    );
    config.region = "e2e".into();
    let gc_app = Gc::start(config).await;
    let gc = gc_app.http.clone();
    let gc_grpc = gc_app.grpc_url();
    wait_ready("GC", &gc, READY_WAIT).await;

    // MH: its advertised media address must be where it really listens,
    // so the port is reserved first.
    let mh_dir = tempfile::tempdir().unwrap();
    let mh_cert =
        media_handler::tls::generate_dev_cert(&media_handler::tls::default_dev_names()).unwrap();
    let (cert_path, key_path) =
        media_handler::tls::write_dev_cert(mh_dir.path(), &mh_cert).unwrap();
    let mh_grpc_port = free_tcp_port();
    let mh_media_port = free_udp_port();
    let mh_app = media_handler::startup::Application::build(media_handler::config::Config {
        gc_grpc_url: gc_grpc.clone(),
        ac_endpoint: ac.clone(),
        ac_jwks_url: format!("{ac}/.well-known/jwks.json"),
        client_id: "media-handler".into(),
        client_secret: SecretString::from(MH_SECRET.to_owned()),
        region: "e2e".into(),
        grpc_bind_address: format!("127.0.0.1:{mh_grpc_port}").parse().unwrap(),
        health_bind_address: "127.0.0.1:0".parse().unwrap(),
        media_bind_address: format!("127.0.0.1:{mh_media_port}").parse().unwrap(),
        grpc_advertise_address: format!("127.0.0.1:{mh_grpc_port}"),
        media_advertise_address: format!("127.0.0.1:{mh_media_port}"),
        tls_cert_path: cert_path,
        tls_key_path: key_path,
        mh_id: "mh-e2e-0".into(),
        log_filter: "warn".into(),
    })
    .await
    .unwrap();
    let mh_health = format!("http://{}", mh_app.health_addr().unwrap());
    let (trigger, signal) = shutdown::channel();
    tokio::spawn(mh_app.run(signal));
    triggers.push(trigger);
    dirs.push(mh_dir);

    // MC, likewise on reserved ports.
    let mc_dir = tempfile::tempdir().unwrap();
    let mc_cert =
        meeting_controller::certs::generate(&["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_path, key_path) =
        meeting_controller::certs::write_to(mc_dir.path(), &mc_cert).unwrap();
    let mc_grpc_port = free_tcp_port();
    let mc_wt_port = free_udp_port();
    let mc_app =
        meeting_controller::startup::Application::build(meeting_controller::config::Config {
            redis_url: SecretString::from(redis),
            gc_grpc_url: gc_grpc,
            ac_endpoint: ac.clone(),
            ac_jwks_url: format!("{ac}/.well-known/jwks.json"),
            client_id: "meeting-controller".into(),
            client_secret: SecretString::from(MC_SECRET.to_owned()),
            region: "e2e".into(),
            grpc_bind_address: format!("127.0.0.1:{mc_grpc_port}").parse().unwrap(),
            health_bind_address: "127.0.0.1:0".parse().unwrap(),
            webtransport_bind_address: format!("127.0.0.1:{mc_wt_port}").parse().unwrap(),
            grpc_advertise_address: format!("127.0.0.1:{mc_grpc_port}"),
            webtransport_advertise_address: format!("127.0.0.1:{mc_wt_port}"),
            tls_cert_path: cert_path,
            tls_key_path: key_path,
            mc_id: format!("mc-e2e-{}", uuid::Uuid::new_v4().simple()),
            log_filter: "warn".into(),
            max_meetings: meeting_controller::config::MAX_MEETINGS,
            max_participants: meeting_controller::config::MAX_PARTICIPANTS,
            default_meeting_participants: meeting_controller::config::DEFAULT_MEETING_PARTICIPANTS,
            drain: Duration::from_millis(200),
            join_timeout: Duration::from_secs(5),
        })
        .await
        .unwrap();
    let mc_health = format!("http://{}", mc_app.health_addr().unwrap());
    let (trigger, signal) = shutdown::channel();
    tokio::spawn(mc_app.run(signal));
    triggers.push(trigger);
    dirs.push(mc_dir);

    wait_ready("MH", &mh_health, READY_WAIT).await;
    wait_ready("MC", &mc_health, READY_WAIT).await;
    Platform {
        ac,
        ac_kid,
        gc,
        mc_cert_hash: mc_cert.sha256(),
        mh_cert: mh_cert.cert_der,
        mh_health,
        mc_health,
        _ac: ac_app,
        _gc: gc_app,
        _triggers: triggers,
        _dirs: dirs,
    }
}

impl Platform {
    async fn frontend_token(&self) -> String {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/auth/service/token", self.ac))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "frontend"),
                ("client_secret", FRONTEND_SECRET),
                ("scope", "meeting:create meeting:join"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        body["access_token"].as_str().unwrap().to_owned()
    }
}

// ----------------------------------------------------------------- clients

/// A participant's signaling session with MC (WebTransport, one bidi stream,
/// newline-delimited JSON), trusting MC's certificate by its SHA-256 as a
/// browser's `serverCertificateHashes` does.
async fn open_signaling(url: &str, hash: [u8; 32]) -> Client {
    Client::connect(url, hash).await.unwrap()
}

/// A participant's media connection to MH (QUIC, ALPN `dt-media/1`).
struct Media {
    connection: quinn::Connection,
    _control: (quinn::SendStream, quinn::RecvStream),
}

fn media_endpoint(mh_cert: &rustls::pki_types::CertificateDer<'static>) -> quinn::Endpoint {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(mh_cert.clone()).unwrap();
    let mut crypto = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    crypto.alpn_protocols = vec![b"dt-media/1".to_vec()];
    let config = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap(),
    ));
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(config);
    endpoint
}

/// Attaches; returns the MH's answer line and, when attached, the media
/// connection.
async fn attach(
    endpoint: &quinn::Endpoint,
    mh: SocketAddr,
    token: &str,
    participant_id: &str,
) -> (Value, Option<Media>) {
    tokio::time::timeout(TIMEOUT, async {
        let connection = endpoint.connect(mh, "127.0.0.1").unwrap().await.unwrap();
        let (mut send, mut recv) = connection.open_bi().await.unwrap();
        let mut line = serde_json::to_vec(
            &json!({"type": "attach", "token": token, "participant_id": participant_id}),
        )
        .unwrap();
        line.push(b'\n');
        send.write_all(&line).await.unwrap();
        let mut answer = Vec::new();
        let mut chunk = [0u8; 1024];
        while !answer.contains(&b'\n') {
            match recv.read(&mut chunk).await {
                Ok(Some(n)) => answer.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
        let end = answer
            .iter()
            .position(|b| *b == b'\n')
            .unwrap_or(answer.len());
        let value: Value = serde_json::from_slice(&answer[..end]).unwrap();
        let media = (value["type"] == "attached").then(|| Media {
            connection,
            _control: (send, recv),
        });
        (value, media)
    })
    .await
    .expect("MH answers the attach")
}

/// Sends `payload` from `from` until `to` receives it (datagrams may be
/// dropped), then checks it arrived byte for byte. Returns the round time.
async fn deliver(from: &Media, to: &Media, payload: &[u8]) -> Duration {
    let payload = Bytes::copy_from_slice(payload);
    for _ in 0..5 {
        let sent = Instant::now();
        from.connection.send_datagram(payload.clone()).unwrap();
        if let Ok(received) =
            tokio::time::timeout(Duration::from_secs(1), to.connection.read_datagram()).await
        {
            let received = received.unwrap();
            assert_eq!(received, payload, "MH must forward datagrams unchanged");
            return sent.elapsed();
        }
    }
    panic!("a datagram never arrived through MH");
}

fn forged_service_token(kid: &str, scope: &str) -> String {
    let now = jwt::now_unix();
    jwt::encode(
        &ServiceClaims {
            iss: jwt::ISSUER.into(),
            sub: "frontend".into(),
            aud: jwt::audiences_for_scopes(scope),
            iat: now,
            nbf: now,
            exp: now + 300,
            jti: "forged".into(),
            scope: scope.into(),
            service_type: "frontend".into(),
            token_use: TokenUse::Service,
        },
        kid,
        &SigningKey::from_bytes(&[66; 32]),
    )
    .unwrap()
}

fn forged_meeting_token(kid: &str, meeting_id: &str, mc_id: &str, mh_id: &str) -> String {
    let now = jwt::now_unix();
    jwt::encode(
        &MeetingClaims {
            iss: jwt::ISSUER.into(),
            sub: "p-forged".into(),
            aud: jwt::audience::MEETING.map(str::to_owned).to_vec(),
            iat: now,
            nbf: now,
            exp: now + 300,
            jti: "forged".into(),
            meeting_id: meeting_id.into(),
            mc_id: mc_id.into(),
            mh_ids: vec![mh_id.into()],
            token_use: TokenUse::Meeting,
        },
        kid,
        &SigningKey::from_bytes(&[66; 32]),
    )
    .unwrap()
}

// -------------------------------------------------------------------- test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_participants_meet_and_exchange_media() {
    let platform = start_platform().await;
    meet_and_exchange_media(&platform).await;
}

/// A front end creates a meeting, two participants join it through GC and MC, attach at MH
/// and exchange datagrams both ways; one leaves.
async fn meet_and_exchange_media(platform: &Platform) {
    let http = reqwest::Client::new();

    // A front end creates a meeting and joins it twice.
    let frontend = platform.frontend_token().await;
    let r = http
        .post(format!("{}/api/v1/meetings", platform.gc))
        .bearer_auth(&frontend)
        .json(&json!({"name": "end to end"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let meeting_id = r.json::<Value>().await.unwrap()["meeting_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut placements = Vec::new();
    for _ in 0..2 {
        let started = Instant::now();
        let r = http
            .get(format!("{}/api/v1/meetings/{meeting_id}", platform.gc))
            .bearer_auth(&frontend)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        placements.push((r.json::<Value>().await.unwrap(), started.elapsed()));
    }
    let (ada, gc_first_join) = &placements[0];
    let (bo, gc_second_join) = &placements[1];
    assert_eq!(ada["mc"], bo["mc"], "one meeting, one MC");
    assert_eq!(ada["mh"], bo["mh"], "one meeting, one MH");
    let wt_url = ada["mc"]["webtransport_url"].as_str().unwrap();
    let mc_id = ada["mc"]["mc_id"].as_str().unwrap();
    let mh_id = ada["mh"][0]["mh_id"].as_str().unwrap();
    let mh_addr: SocketAddr = ada["mh"][0]["endpoint"].as_str().unwrap().parse().unwrap();

    // Both join through MC over WebTransport.
    let started = Instant::now();
    let mut sig_a = open_signaling(wt_url, platform.mc_cert_hash).await;
    let joined_a = sig_a
        .join(&meeting_id, ada["token"].as_str().unwrap(), "Ada")
        .await;
    let mc_join = started.elapsed();
    assert_eq!(joined_a["type"], "joined", "{joined_a}");
    assert_eq!(joined_a["mh"], ada["mh"], "MC names the MH GC chose");
    let ada_id = joined_a["participant_id"].as_str().unwrap().to_owned();
    let mut sig_b = open_signaling(wt_url, platform.mc_cert_hash).await;
    let joined_b = sig_b
        .join(&meeting_id, bo["token"].as_str().unwrap(), "Bo")
        .await;
    assert_eq!(joined_b["type"], "joined", "{joined_b}");
    let bo_id = joined_b["participant_id"].as_str().unwrap().to_owned();
    assert_eq!(
        joined_b["participants"],
        json!([{"participant_id": ada_id, "display_name": "Ada"}])
    );
    assert_eq!(
        sig_a.next().await.unwrap(),
        json!({"type": "participant_joined", "participant_id": bo_id, "display_name": "Bo"})
    );

    // Both attach to the MH MC named, with the same meeting tokens.
    let endpoint = media_endpoint(&platform.mh_cert);
    let (answer, media_a) =
        attach(&endpoint, mh_addr, ada["token"].as_str().unwrap(), &ada_id).await;
    assert_eq!(answer, json!({"type": "attached"}));
    let (answer, media_b) = attach(&endpoint, mh_addr, bo["token"].as_str().unwrap(), &bo_id).await;
    assert_eq!(answer, json!({"type": "attached"}));
    let (media_a, media_b) = (media_a.unwrap(), media_b.unwrap());

    // Datagrams both ways, bytes unchanged (binary, every byte value).
    let mut rounds = Vec::new();
    for i in 0..20u8 {
        let mut payload = vec![0u8; 200 + usize::from(i) * 40];
        rand::thread_rng().fill_bytes(&mut payload);
        payload[0] = i;
        rounds.push(deliver(&media_a, &media_b, &payload).await);
        rounds.push(deliver(&media_b, &media_a, &payload).await);
    }
    let all: Vec<u8> = (0..=255).collect();
    deliver(&media_a, &media_b, &all).await;
    rounds.sort();

    // Bo leaves: Ada hears it from MC.
    sig_b.connection.close(0u32.into(), b"bye");
    assert_eq!(
        sig_a.next().await.unwrap(),
        json!({"type": "participant_left", "participant_id": bo_id})
    );
    media_b.connection.close(0u32.into(), b"bye");

    // Every service reports the traffic in its own metrics.
    let mc_metrics = reqwest::get(format!("{}/metrics", platform.mc_health))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(mc_metrics.contains("mc_signaling_joins_total{outcome=\"joined\"} 2"));
    let mh_metrics = reqwest::get(format!("{}/metrics", platform.mh_health))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(mh_metrics.lines().any(|l| l.starts_with("mh_")));

    eprintln!(
        "e2e figures: GC join {gc_first_join:?} (first, places the meeting) / {gc_second_join:?}; \
         MC WebTransport open+join {mc_join:?}; datagram one-way through MH median {:?}, max {:?} \
         ({} deliveries, mc {mc_id}, mh {mh_id})",
        rounds[rounds.len() / 2],
        rounds[rounds.len() - 1],
        rounds.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_token_is_refused_everywhere() {
    let platform = start_platform().await;
    refuse_forged_tokens(&platform).await;
}

/// Forged tokens and credentials at AC, GC, MC and MH, each refused; the genuine token still
/// works at MC and MH.
async fn refuse_forged_tokens(platform: &Platform) {
    let http = reqwest::Client::new();

    // AC: a forged service token cannot get meeting tokens.
    let forged = forged_service_token(&platform.ac_kid, "internal:meeting-token");
    let r = http
        .post(format!(
            "{}/api/v1/auth/internal/meeting-token",
            platform.ac
        ))
        .bearer_auth(&forged)
        .json(&json!({"meeting_id": "m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "AC");
    // AC: forged client credentials.
    let r = http
        .post(format!("{}/api/v1/auth/service/token", platform.ac))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "frontend"),
            ("client_secret", "not-the-secret-at-all"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "AC credentials");
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");

    // GC: neither creating nor joining with the forged token.
    let forged = forged_service_token(&platform.ac_kid, "meeting:create meeting:join");
    let r = http
        .post(format!("{}/api/v1/meetings", platform.gc))
        .bearer_auth(&forged)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "GC create");
    let frontend = platform.frontend_token().await;
    let meeting_id = http
        .post(format!("{}/api/v1/meetings", platform.gc))
        .bearer_auth(&frontend)
        .json(&json!({"name": "guarded"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["meeting_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = http
        .get(format!("{}/api/v1/meetings/{meeting_id}", platform.gc))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "GC join");

    // A real placement, to aim the forged meeting token at the real MC/MH.
    let placed: Value = http
        .get(format!("{}/api/v1/meetings/{meeting_id}", platform.gc))
        .bearer_auth(&frontend)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mc_id = placed["mc"]["mc_id"].as_str().unwrap();
    let mh_id = placed["mh"][0]["mh_id"].as_str().unwrap();
    let mh_addr: SocketAddr = placed["mh"][0]["endpoint"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let forged_meeting = forged_meeting_token(&platform.ac_kid, &meeting_id, mc_id, mh_id);

    // MC.
    let mut sig = open_signaling(
        placed["mc"]["webtransport_url"].as_str().unwrap(),
        platform.mc_cert_hash,
    )
    .await;
    let answer = sig.join(&meeting_id, &forged_meeting, "Mallory").await;
    assert_eq!(answer["type"], "error", "MC: {answer}");
    assert_eq!(answer["code"], "unauthorized", "MC: {answer}");
    assert_eq!(sig.next().await, None, "MC closes the refused session");

    // MH.
    let endpoint = media_endpoint(&platform.mh_cert);
    let (answer, media) = attach(&endpoint, mh_addr, &forged_meeting, "p-forged").await;
    assert!(media.is_none(), "MH must refuse: {answer}");
    assert_eq!(answer["type"], "error", "MH: {answer}");
    assert_eq!(answer["code"], "unauthorized", "MH: {answer}");

    // The genuine token still works at both, so the refusals above were
    // about the forgery.
    let mut sig = open_signaling(
        placed["mc"]["webtransport_url"].as_str().unwrap(),
        platform.mc_cert_hash,
    )
    .await;
    let joined = sig
        .join(&meeting_id, placed["token"].as_str().unwrap(), "Real")
        .await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let participant = joined["participant_id"].as_str().unwrap();
    let (answer, media) = attach(
        &endpoint,
        mh_addr,
        placed["token"].as_str().unwrap(),
        participant,
    )
    .await;
    assert_eq!(answer, json!({"type": "attached"}));
    assert!(media.is_some());
}

// ------------------------------------------------------------ metric names

/// The repository root (two levels above this crate).
fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// Every PromQL expression of the alert rules (`expr:` of the PrometheusRule YAML files) and
/// the dashboards (`expr` of the dashboard JSON files) in `base/platform/monitoring`, with the
/// file each is in.
fn monitoring_queries() -> Vec<(String, String)> {
    let dir = repo_root().join("base/platform/monitoring");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .chain(std::fs::read_dir(dir.join("dashboards")).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let shown = file
            .strip_prefix(repo_root())
            .unwrap()
            .display()
            .to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        match file.extension().and_then(|e| e.to_str()) {
            Some("json") => {
                let mut exprs = Vec::new();
                json_exprs(&serde_json::from_str(&text).unwrap(), &mut exprs);
                out.extend(exprs.into_iter().map(|e| (shown.clone(), e)));
            }
            Some("yaml") if text.contains("kind: PrometheusRule") => {
                out.extend(yaml_exprs(&text).into_iter().map(|e| (shown.clone(), e)));
            }
            _ => {}
        }
    }
    out
}

fn json_exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    _ => json_exprs(inner, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| json_exprs(v, out)),
        _ => {}
    }
}

/// The `expr:` values of a rule file: a block scalar (every more-indented line after it) or
/// a plain one-line value.
fn yaml_exprs(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let Some(value) = trimmed.strip_prefix("expr:") else {
            continue;
        };
        let indent = line.len() - trimmed.len();
        let value = value.trim();
        if value.starts_with('|') || value.starts_with('>') {
            let block: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .copied()
                .collect();
            out.push(block.join("\n"));
        } else {
            out.push(value.trim_matches(|c| c == '"' || c == '\'').to_owned());
        }
    }
    out
}

/// The metric names of our services (`ac_`, `gc_`, `mc_`, `mh_`) a PromQL expression reads:
/// its identifiers outside string literals.
fn service_metric_names(expr: &str) -> Vec<String> {
    let mut bare = String::new();
    let mut quote = None;
    let mut escaped = false;
    for c in expr.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if matches!(c, '"' | '\'' | '`') => {
                quote = Some(c);
                bare.push(' ');
            }
            None => bare.push(c),
        }
    }
    bare.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| {
            ["ac_", "gc_", "mc_", "mh_"]
                .iter()
                .any(|p| word.starts_with(p))
        })
        .map(str::to_owned)
        .collect()
}

/// The sample names in a Prometheus text exposition.
fn exported_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// Every metric of a Dark Tower service that an alert or a dashboard reads is in that
/// service's `/metrics`, scraped from the real services after a meeting and the refusals
/// (labelled series appear once something was counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_and_dashboards_read_only_metrics_the_services_export() {
    let platform = start_platform().await;
    meet_and_exchange_media(&platform).await;
    refuse_forged_tokens(&platform).await;

    let mut exported = BTreeMap::new();
    for (prefix, base) in [
        ("ac_", &platform.ac),
        ("gc_", &platform.gc),
        ("mc_", &platform.mc_health),
        ("mh_", &platform.mh_health),
    ] {
        let text = reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        exported.insert(prefix, exported_names(&text));
    }

    let queries = monitoring_queries();
    assert!(
        queries.len() > 30,
        "expected the rules' and dashboards' queries, found {}",
        queries.len()
    );
    let mut referenced: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, expr) in &queries {
        for name in service_metric_names(expr) {
            referenced.entry(name).or_default().insert(file.clone());
        }
    }
    for prefix in ["ac_", "gc_", "mc_", "mh_"] {
        assert!(
            referenced.keys().any(|n| n.starts_with(prefix)),
            "no alert or dashboard reads a {prefix} metric"
        );
    }
    let missing: Vec<String> = referenced
        .iter()
        .filter(|(name, _)| !exported[&name[..3]].contains(name.as_str()))
        .map(|(name, files)| {
            format!(
                "{name} (read in {}) is not in the service's /metrics",
                files.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
