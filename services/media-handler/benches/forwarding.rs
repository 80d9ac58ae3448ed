//! Forwarding benchmark (not a timed test): throughput in datagrams/s and
//! latency through the MH, on loopback.
//!
//! `cargo bench -p media-handler --bench forwarding` (add `-- --quick` for a
//! shorter run). Needs no database: it serves its own JWKS and signs meeting
//! tokens with its own key, then runs the real media endpoint (`Sfu` +
//! `MediaServer`) and real QUIC clients in one process. Every loop is
//! bounded in count and time.
//!
//! Scenarios:
//! - throughput 1→1 and 1→2 (a meeting of 2 and of 3 participants): the
//!   sender pushes datagrams as fast as its congestion window allows
//!   (`send_datagram_wait`), receivers count what arrives;
//! - latency: a paced stream (2,000 datagrams/s), each carrying its send
//!   time; the receiver records the one-way time through the MH (the same
//!   process clock, so no clock skew). This is the whole path, client QUIC
//!   stack → MH → client QUIC stack, so an upper bound on what MH adds.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use common::jwks::JwksCache;
use common::jwt::{self, JwkSet, MeetingClaims, TokenUse};
use common::metrics::Metrics;
use ed25519_dalek::SigningKey;
use media_handler::client::{self, Attached};
use media_handler::media::{Limits, MediaMetrics, MediaServer, Sfu};
use media_handler::tls;

const MH_ID: &str = "mh-bench";
const PAYLOAD: usize = 1000;

struct Bench {
    key: SigningKey,
    media: std::net::SocketAddr,
    cert: rustls::pki_types::CertificateDer<'static>,
    sfu: Arc<Sfu>,
    _trigger: common::shutdown::ShutdownTrigger,
}

impl Bench {
    async fn start() -> Self {
        let key = SigningKey::from_bytes(&[42; 32]);
        let doc = serde_json::to_string(&JwkSet {
            keys: vec![jwt::Jwk::from_verifying_key("bench", &key.verifying_key())],
        })
        .unwrap();
        let app = Router::new().route("/jwks", get(move || async move { doc }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let jwks_url = format!("http://{}/jwks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let jwks =
            Arc::new(JwksCache::new(jwks_url, jwt::audience::MH, Duration::from_secs(10)).unwrap());
        jwks.refresh().await.unwrap();

        let cert = tls::generate_dev_cert(&tls::default_dev_names()).unwrap();
        let dir = std::env::temp_dir().join(format!("mh-bench-{}", std::process::id()));
        let (cert_path, key_path) = tls::write_dev_cert(&dir, &cert).unwrap();
        let crypto =
            tls::server_crypto(&tls::load_certificate(&cert_path, &key_path).unwrap()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);

        let metrics = Metrics::new("mh").unwrap();
        let media_metrics = MediaMetrics::register(metrics.registry()).unwrap();
        let sfu = Arc::new(Sfu::new(
            MH_ID.into(),
            jwks,
            Limits::default(),
            media_metrics,
        ));
        let server =
            MediaServer::bind("127.0.0.1:0".parse().unwrap(), crypto, sfu.clone()).unwrap();
        let media = server.local_addr().unwrap();
        let (trigger, signal) = common::shutdown::channel();
        tokio::spawn(server.run(signal));
        Self {
            key,
            media,
            cert: cert.cert_der,
            sfu,
            _trigger: trigger,
        }
    }

    async fn attach(&self, meeting: &str, participant: &str) -> Attached {
        let now = jwt::now_unix();
        let token = jwt::encode(
            &MeetingClaims {
                iss: jwt::ISSUER.into(),
                sub: participant.into(),
                aud: jwt::audience::MEETING.map(str::to_owned).to_vec(),
                iat: now,
                nbf: now,
                exp: now + 600,
                jti: participant.into(),
                meeting_id: meeting.into(),
                mc_id: "mc".into(),
                mh_ids: vec![MH_ID.into()],
                token_use: TokenUse::Meeting,
            },
            "bench",
            &self.key,
        )
        .unwrap();
        let endpoint = client::endpoint(
            "127.0.0.1:0".parse().unwrap(),
            std::slice::from_ref(&self.cert),
        )
        .unwrap();
        client::attach(
            &endpoint,
            self.media,
            "localhost",
            &token,
            participant,
            Duration::from_secs(5),
        )
        .await
        .unwrap()
    }

    fn dropped(&self) -> u64 {
        let m = &self.sfu.metrics().datagrams_dropped;
        ["slow_receiver", "too_large", "closed", "unsupported"]
            .iter()
            .map(|r| m.with_label_values(&[r]).get())
            .sum()
    }
}

/// Counts datagrams until `want` arrived or nothing came for `idle`.
async fn count(receiver: &Attached, want: u64, idle: Duration) -> (u64, Instant) {
    let mut n = 0;
    let mut last = Instant::now();
    while n < want {
        match tokio::time::timeout(idle, receiver.recv()).await {
            Ok(Ok(_)) => {
                n += 1;
                last = Instant::now();
            }
            _ => break,
        }
    }
    (n, last)
}

async fn throughput(bench: &Bench, meeting: &str, receivers: usize, total: u64) {
    let sender = bench.attach(meeting, "sender").await;
    let mut rx = Vec::new();
    for i in 0..receivers {
        rx.push(Arc::new(bench.attach(meeting, &format!("r{i}")).await));
    }
    let dropped_before = bench.dropped();
    let start = Instant::now();
    let counters: Vec<_> = rx
        .iter()
        .map(|r| {
            let r = r.clone();
            tokio::spawn(async move { count(&r, total, Duration::from_secs(1)).await })
        })
        .collect();
    let payload = Bytes::from(vec![0xab; PAYLOAD]);
    for _ in 0..total {
        if sender
            .connection
            .send_datagram_wait(payload.clone())
            .await
            .is_err()
        {
            break;
        }
    }
    let sent_in = start.elapsed();
    let mut delivered = 0;
    let mut end = start;
    for c in counters {
        let (n, last) = c.await.unwrap();
        delivered += n;
        end = end.max(last);
    }
    let secs = end.duration_since(start).as_secs_f64();
    println!(
        "throughput 1->{receivers}: sent {total} x {PAYLOAD} B in {:.2} s ({:.0}/s); delivered {delivered} \
         ({:.1} %) = {:.0} datagrams/s out of the MH ({:.1} MB/s); MH dropped {}",
        sent_in.as_secs_f64(),
        total as f64 / sent_in.as_secs_f64(),
        100.0 * delivered as f64 / (total as f64 * receivers as f64),
        delivered as f64 / secs,
        delivered as f64 * PAYLOAD as f64 / secs / 1e6,
        bench.dropped() - dropped_before,
    );
    sender.close();
    for r in rx {
        r.close();
    }
}

async fn latency(bench: &Bench, total: u64, rate: u64) {
    let sender = bench.attach("m-latency", "sender").await;
    let receiver = bench.attach("m-latency", "receiver").await;
    let origin = Instant::now();
    let recv_task = tokio::spawn(async move {
        let mut samples = Vec::with_capacity(usize::try_from(total).unwrap());
        while (samples.len() as u64) < total {
            match tokio::time::timeout(Duration::from_secs(1), receiver.recv()).await {
                Ok(Ok(d)) if d.len() >= 8 => {
                    let sent_ns = u64::from_be_bytes(d[..8].try_into().unwrap());
                    let now_ns = origin.elapsed().as_nanos() as u64;
                    samples.push(now_ns.saturating_sub(sent_ns));
                }
                Ok(Ok(_)) => {}
                _ => break,
            }
        }
        samples
    });
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for _ in 0..total {
        ticker.tick().await;
        let mut payload = vec![0u8; 200];
        let now_ns = origin.elapsed().as_nanos() as u64;
        payload[..8].copy_from_slice(&now_ns.to_be_bytes());
        let _ = sender.send(Bytes::from(payload));
    }
    let mut samples = recv_task.await.unwrap();
    samples.sort_unstable();
    let pct = |p: f64| {
        let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples.get(i).map_or(f64::NAN, |ns| *ns as f64 / 1000.0)
    };
    println!(
        "latency through MH at {rate}/s: {} of {total} delivered; p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        samples.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0),
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // Cargo passes `--bench`; ignore everything else.
    let (total, latency_total) = if quick {
        (20_000, 2_000)
    } else {
        (100_000, 10_000)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let bench = Bench::start().await;
        println!(
            "media-handler forwarding benchmark: loopback, {PAYLOAD}-byte datagrams, {} worker threads",
            2
        );
        throughput(&bench, "m-1to1", 1, total).await;
        throughput(&bench, "m-1to2", 2, total).await;
        latency(&bench, latency_total, 2_000).await;
    });
}
