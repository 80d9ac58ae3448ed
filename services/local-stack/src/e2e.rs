//! The user flow through a running environment, as the synthetic prober
//! declared in git does it: a token from AC (client `synthetic-prober`, its
//! secret from the Secret `synthetic-prober-client`), a meeting created and
//! joined twice through GC, both participants joined at their MC over
//! WebTransport, attached to the MH over QUIC, and datagrams delivered both
//! ways unchanged. It reaches AC and GC through their Services' cluster IPs,
//! MC and MH at the addresses GC hands out.
//!
//! MC's certificate is trusted the way a client of that environment would
//! trust it: by its SHA-256 (`serverCertificateHashes`) when it is valid for
//! at most 14 days, as development's is; otherwise through the issuer's CA
//! for the name the Certificate declares. A failure says which step failed,
//! with the service's answer.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::manifest::Object;
use crate::up::View;

const NAMESPACE: &str = "dark-tower";
const PROBER_ID: &str = "synthetic-prober";
const TIMEOUT: Duration = Duration::from_secs(15);

fn secret_value(view: &View, name: &str, key: &str) -> anyhow::Result<Vec<u8>> {
    let secret = view
        .objects
        .iter()
        .rev()
        .find(|v| {
            Object::new(v).is_some_and(|o| {
                o.kind() == "Secret" && o.name() == name && o.namespace("default") == NAMESPACE
            })
        })
        .with_context(|| format!("the environment has no Secret {NAMESPACE}/{name}"))?;
    if let Some(v) = secret
        .pointer(&format!("/stringData/{key}"))
        .and_then(Value::as_str)
    {
        return Ok(v.as_bytes().to_vec());
    }
    let b64 = secret
        .pointer(&format!("/data/{key}"))
        .and_then(Value::as_str)
        .with_context(|| format!("Secret {name} has no key {key}"))?;
    Ok(base64::engine::general_purpose::STANDARD.decode(b64)?)
}

fn certificate_name(view: &View, secret: &str) -> anyhow::Result<String> {
    view.objects
        .iter()
        .find(|v| {
            Object::new(v).is_some_and(|o| o.kind() == "Certificate")
                && v.pointer("/spec/secretName").and_then(Value::as_str) == Some(secret)
        })
        .and_then(|v| v.pointer("/spec/dnsNames/0").and_then(Value::as_str))
        .map(str::to_owned)
        .with_context(|| format!("no Certificate writes {secret} with a DNS name"))
}

fn pem_certificates(pem: &[u8]) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let text = String::from_utf8_lossy(pem);
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let body = &rest[start + 27..];
        let end = body
            .find("-----END CERTIFICATE-----")
            .context("an unterminated PEM certificate")?;
        let b64: String = body[..end].split_whitespace().collect();
        out.push(CertificateDer::from(
            base64::engine::general_purpose::STANDARD.decode(b64)?,
        ));
        rest = &body[end..];
    }
    if out.is_empty() {
        bail!("no PEM certificate");
    }
    Ok(out)
}

fn service_ip(view: &View, name: &str) -> anyhow::Result<Ipv4Addr> {
    view.service_ips
        .get(&format!("{NAMESPACE}/{name}"))
        .copied()
        .with_context(|| {
            format!("the environment has no Service {NAMESPACE}/{name} with a cluster IP")
        })
}

/// Checks the chain against the issuer's CA for the name the Certificate
/// declares, wherever the client connected (GC hands out addresses).
#[derive(Debug)]
struct DeclaredName {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl rustls::client::danger::ServerCertVerifier for DeclaredName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn webtransport_config(view: &View) -> anyhow::Result<wtransport::ClientConfig> {
    let leaf = pem_certificates(&secret_value(view, "meeting-controller-tls", "tls.crt")?)?;
    let leaf = leaf
        .first()
        .context("meeting-controller-tls has no certificate")?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| anyhow::anyhow!("meeting-controller-tls: {e}"))?;
    let validity = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    let builder = wtransport::ClientConfig::builder().with_bind_default();
    if validity <= 14 * 24 * 3600 {
        let hash: [u8; 32] = sha2::Sha256::digest(leaf.as_ref()).into();
        return Ok(builder
            .with_server_certificate_hashes([wtransport::tls::Sha256Digest::new(hash)])
            .build());
    }
    let mut roots = rustls::RootCertStore::empty();
    for ca in pem_certificates(&secret_value(view, "meeting-controller-tls", "ca.crt")?)? {
        roots.add(ca)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()?;
    let name = ServerName::try_from(certificate_name(view, "meeting-controller-tls")?)?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(DeclaredName { inner, name }))
        .with_no_client_auth();
    tls.alpn_protocols = vec![wtransport::tls::WEBTRANSPORT_ALPN.to_vec()];
    Ok(builder.with_custom_tls(tls).build())
}

/// A signaling session: one bidirectional stream of JSON lines.
struct Signaling {
    _connection: wtransport::Connection,
    send: wtransport::SendStream,
    recv: wtransport::RecvStream,
    buf: Vec<u8>,
}

impl Signaling {
    async fn open(config: wtransport::ClientConfig, url: &str) -> anyhow::Result<Self> {
        let endpoint = wtransport::Endpoint::client(config)?;
        let connection = tokio::time::timeout(TIMEOUT, endpoint.connect(url))
            .await
            .with_context(|| format!("MC at {url}: no WebTransport session within {TIMEOUT:?}"))?
            .with_context(|| format!("MC at {url}: WebTransport"))?;
        let (send, recv) = connection.open_bi().await?.await?;
        Ok(Self {
            _connection: connection,
            send,
            recv,
            buf: Vec::new(),
        })
    }

    async fn send(&mut self, value: &Value) -> anyhow::Result<()> {
        self.send.write_all(format!("{value}\n").as_bytes()).await?;
        Ok(())
    }

    async fn next(&mut self) -> anyhow::Result<Value> {
        tokio::time::timeout(TIMEOUT, async {
            loop {
                if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = self.buf.drain(..=pos).collect();
                    return Ok(serde_json::from_slice(&line[..line.len() - 1])?);
                }
                if self.buf.len() > 64 * 1024 {
                    bail!("MC sent a line longer than 64 KiB");
                }
                let mut chunk = [0u8; 4096];
                match self.recv.read(&mut chunk).await? {
                    Some(n) => self.buf.extend_from_slice(&chunk[..n]),
                    None => bail!("MC closed the signaling stream"),
                }
            }
        })
        .await
        .context("MC did not answer within the timeout")?
    }
}

/// Measured by one run of the flow.
#[derive(Debug)]
pub struct Timings {
    pub join_to_first_datagram: Duration,
    pub datagram_rounds: Vec<Duration>,
}

/// What the flow measured over every join of a run.
#[derive(Debug, Default)]
pub struct Measured {
    /// WebTransport join at MC to the first datagram through MH, per join.
    pub join_to_first_datagram: Vec<Duration>,
    /// One datagram from one participant to the other, every one of every join.
    pub datagram_rounds: Vec<Duration>,
}

/// The nearest-rank percentile of sorted `values`.
pub fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() - 1) * percent / 100]
}

/// Runs the flow `joins` times (a fresh meeting each time) and says what
/// it measured.
pub async fn run(view: &View, joins: usize) -> anyhow::Result<Measured> {
    let mut m = Measured::default();
    for _ in 0..joins.max(1) {
        let t = flow(view).await?;
        m.join_to_first_datagram.push(t.join_to_first_datagram);
        m.datagram_rounds.extend(t.datagram_rounds);
    }
    m.join_to_first_datagram.sort();
    m.datagram_rounds.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    crate::up::note(&format!(
        "e2e: {} join(s) of two participants, {} datagrams both ways; join to first datagram p50 {:.1} ms p99 {:.1} ms; datagram delivery p50 {:.2} ms p99 {:.2} ms",
        m.join_to_first_datagram.len(),
        m.datagram_rounds.len(),
        ms(percentile(&m.join_to_first_datagram, 50)),
        ms(percentile(&m.join_to_first_datagram, 99)),
        ms(percentile(&m.datagram_rounds, 50)),
        ms(percentile(&m.datagram_rounds, 99)),
    ));
    Ok(m)
}

async fn flow(view: &View) -> anyhow::Result<Timings> {
    let http = reqwest::Client::builder().timeout(TIMEOUT).build()?;
    let ac = format!("http://{}:8082", service_ip(view, "ac-service")?);
    let gc = format!("http://{}:8080", service_ip(view, "global-controller")?);
    let secret = String::from_utf8(secret_value(
        view,
        "synthetic-prober-client",
        "CLIENT_SECRET",
    )?)?;

    let r = http
        .post(format!("{ac}/api/v1/auth/service/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", PROBER_ID),
            ("client_secret", secret.as_str()),
        ])
        .send()
        .await
        .context("ac-service: token request")?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if status != 200 {
        bail!("ac-service refused the synthetic-prober token ({status}): {body}");
    }
    let token = body["access_token"]
        .as_str()
        .context("ac-service: no access_token")?
        .to_owned();

    let r = http
        .post(format!("{gc}/api/v1/meetings"))
        .bearer_auth(&token)
        .json(&json!({"name": "local-stack e2e"}))
        .send()
        .await
        .context("global-controller: create meeting")?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if status != 201 {
        bail!("global-controller did not create the meeting ({status}): {body}");
    }
    let meeting = body["meeting_id"]
        .as_str()
        .context("no meeting_id")?
        .to_owned();

    let mut joins = Vec::new();
    for _ in 0..2 {
        let r = http
            .get(format!("{gc}/api/v1/meetings/{meeting}"))
            .bearer_auth(&token)
            .send()
            .await
            .context("global-controller: join")?;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status != 200 {
            bail!("global-controller did not place the participant ({status}): {body}");
        }
        joins.push(body);
    }
    if joins[0]["mc"] != joins[1]["mc"] || joins[0]["mh"] != joins[1]["mh"] {
        bail!(
            "global-controller put one meeting on two MCs or MHs: {} / {}",
            joins[0],
            joins[1]
        );
    }
    let url = joins[0]["mc"]["webtransport_url"]
        .as_str()
        .context("no webtransport_url")?
        .to_owned();
    let mh: SocketAddr = joins[0]["mh"][0]["endpoint"]
        .as_str()
        .context("no MH endpoint")?
        .parse()
        .context("the MH endpoint is not an address")?;

    let started = Instant::now();
    let mut ids = Vec::new();
    let mut sessions = Vec::new();
    for (i, join) in joins.iter().enumerate() {
        let mut s = Signaling::open(webtransport_config(view)?, &url).await?;
        s.send(&json!({"type": "join", "meeting_id": meeting, "token": join["token"], "display_name": format!("prober-{i}")}))
            .await?;
        let answer = s.next().await?;
        if answer["type"] != "joined" {
            bail!("meeting-controller refused the join: {answer}");
        }
        ids.push(
            answer["participant_id"]
                .as_str()
                .context("no participant_id")?
                .to_owned(),
        );
        sessions.push(s);
    }

    let roots = pem_certificates(&secret_value(view, "media-handler-tls", "ca.crt")?)?;
    let name = certificate_name(view, "media-handler-tls")?;
    let endpoint = media_handler::client::endpoint((Ipv4Addr::UNSPECIFIED, 0).into(), &roots)?;
    let mut attached = Vec::new();
    for (join, id) in joins.iter().zip(&ids) {
        let a = media_handler::client::attach(
            &endpoint,
            mh,
            &name,
            join["token"].as_str().unwrap_or_default(),
            id,
            TIMEOUT,
        )
        .await
        .with_context(|| format!("media-handler at {mh}: attach"))?;
        attached.push(a);
    }
    let mut rounds = Vec::new();
    let mut first = None;
    for i in 0..40u8 {
        let payload = bytes::Bytes::from(vec![i; 200 + usize::from(i) * 20]);
        let (from, to) = if i % 2 == 0 {
            (&attached[0], &attached[1])
        } else {
            (&attached[1], &attached[0])
        };
        let mut delivered = None;
        for _ in 0..5 {
            let sent = Instant::now();
            from.send(payload.clone())?;
            if let Ok(received) = tokio::time::timeout(Duration::from_secs(1), to.recv()).await {
                if received? != payload {
                    bail!("media-handler changed a datagram on the way");
                }
                delivered = Some(sent.elapsed());
                break;
            }
        }
        let took = delivered.context("a datagram never arrived through media-handler")?;
        first.get_or_insert_with(|| started.elapsed());
        rounds.push(took);
    }
    for a in &attached {
        a.close();
    }
    drop(sessions);
    Ok(Timings {
        join_to_first_datagram: first.unwrap_or_default(),
        datagram_rounds: rounds,
    })
}
