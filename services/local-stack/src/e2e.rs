//! The user flow through a running environment, as the synthetic prober
//! declared in git does it: a token from AC (client `synthetic-prober`, its
//! secret from the Secret `synthetic-prober-client`), a meeting created
//! through GC's Service and joined once through every GC replica (at least
//! twice), every participant joined at the MC over WebTransport, attached to
//! the MH over QUIC, and every datagram delivered unchanged to every other
//! participant. With several GC, MC and MH replicas (staging runs two of
//! each, production three) this proves that a meeting stays on one MC and
//! one MH whichever GC replica a participant reaches, and that each replica
//! advertises a name that reaches that replica. It reaches AC and GC
//! through their Services' cluster IPs and ports, each GC replica at its
//! pod's `http` port, MC and MH at the names GC hands out.
//!
//! Those names are public: each MC and MH replica is a StatefulSet ordinal
//! with its own UDP LoadBalancer Service declaring the name
//! (`dark-tower.io/public-name`, the DNS record Terraform makes for the
//! address it reserves). This machine has no cloud load balancer nor that
//! DNS zone, so the flow resolves a name to its Service's cluster IP, from
//! which the Service's rules forward to the one pod it selects, as the
//! balancer would; a name that no Service declares fails the run.
//!
//! MC's certificate is trusted the way a client of that environment would
//! trust it: by its SHA-256 (`serverCertificateHashes`) when it is valid for
//! at most 14 days, as development's is; otherwise through the issuer's CA
//! for the name the client dialled, as MH's always is. A failure says which
//! step failed, with the service's answer.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use rustls::pki_types::CertificateDer;
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

/// The public names the environment declares: each Service's
/// `dark-tower.io/public-name`, resolved to that Service's cluster IP (see
/// the module's header).
#[derive(Debug, Clone)]
struct PublicNames(Arc<std::collections::BTreeMap<String, Ipv4Addr>>);

const PUBLIC_NAME: &str = "dark-tower.io/public-name";

impl PublicNames {
    fn of(view: &View) -> anyhow::Result<Self> {
        let mut names = std::collections::BTreeMap::new();
        for v in &view.objects {
            let Some(o) = Object::new(v) else { continue };
            if o.kind() != "Service" {
                continue;
            }
            let Some(name) = v
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(PUBLIC_NAME))
                .and_then(Value::as_str)
            else {
                continue;
            };
            let ns = o.namespace("default");
            let ip = view
                .service_ips
                .get(&format!("{ns}/{}", o.name()))
                .copied()
                .with_context(|| {
                    format!(
                        "Service {ns}/{} ({PUBLIC_NAME} {name}) has no address",
                        o.name()
                    )
                })?;
            if let Some(other) = names.insert(name.to_ascii_lowercase(), ip)
                && other != ip
            {
                bail!("two Services declare the public name {name}");
            }
        }
        Ok(Self(Arc::new(names)))
    }

    /// `host:port` as a client outside the cluster would reach it.
    fn resolve(&self, host_port: &str) -> anyhow::Result<(String, SocketAddr)> {
        let (host, port) = host_port
            .rsplit_once(':')
            .with_context(|| format!("{host_port:?} is not host:port"))?;
        let port: u16 = port
            .parse()
            .with_context(|| format!("{host_port:?}: not a port"))?;
        let ip = self.0.get(&host.to_ascii_lowercase()).with_context(|| {
            format!(
                "{host} is advertised, but no Service of the environment declares it ({PUBLIC_NAME}): a client outside the cluster could not reach it"
            )
        })?;
        Ok((host.to_owned(), SocketAddr::from((*ip, port))))
    }
}

impl wtransport::config::DnsResolver for PublicNames {
    fn resolve(&self, host: &str) -> std::pin::Pin<Box<dyn wtransport::config::DnsLookupFuture>> {
        let found = PublicNames::resolve(self, host)
            .map(|(_, addr)| Some(addr))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::NotFound, format!("{e:#}")));
        Box::pin(async move { found })
    }
}

fn webtransport_config(
    view: &View,
    names: &PublicNames,
) -> anyhow::Result<wtransport::ClientConfig> {
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
            .dns_resolver(names.clone())
            .build());
    }
    let mut roots = rustls::RootCertStore::empty();
    for ca in pem_certificates(&secret_value(view, "meeting-controller-tls", "ca.crt")?)? {
        roots.add(ca)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![wtransport::tls::WEBTRANSPORT_ALPN.to_vec()];
    Ok(builder
        .with_custom_tls(tls)
        .dns_resolver(names.clone())
        .build())
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
    pub participants: usize,
}

/// What the flow measured over every join of a run.
#[derive(Debug, Default)]
pub struct Measured {
    /// WebTransport join at MC to the first datagram through MH, per join.
    pub join_to_first_datagram: Vec<Duration>,
    /// One datagram from one participant to another, every one of every join.
    pub datagram_rounds: Vec<Duration>,
    /// Participants per meeting (one per GC replica, at least two).
    pub participants: usize,
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
        m.participants = t.participants;
        m.join_to_first_datagram.push(t.join_to_first_datagram);
        m.datagram_rounds.extend(t.datagram_rounds);
    }
    m.join_to_first_datagram.sort();
    m.datagram_rounds.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    crate::up::note(&format!(
        "e2e: {} join(s) of {} participants, {} datagram deliveries; join to first datagram p50 {:.1} ms p99 {:.1} ms; datagram delivery p50 {:.2} ms p99 {:.2} ms",
        m.join_to_first_datagram.len(),
        m.participants,
        m.datagram_rounds.len(),
        ms(percentile(&m.join_to_first_datagram, 50)),
        ms(percentile(&m.join_to_first_datagram, 99)),
        ms(percentile(&m.datagram_rounds, 50)),
        ms(percentile(&m.datagram_rounds, 99)),
    ));
    Ok(m)
}

/// The environment's object `kind` `name` in the application namespace.
fn object<'v>(view: &'v View, kind: &str, name: &str) -> Option<&'v Value> {
    view.objects.iter().find(|v| {
        Object::new(v).is_some_and(|o| {
            o.kind() == kind && o.name() == name && o.namespace("default") == NAMESPACE
        })
    })
}

/// The cluster address of Service `name`'s port `port_name`.
fn service_addr(view: &View, name: &str, port_name: &str) -> anyhow::Result<SocketAddr> {
    let ip = service_ip(view, name)?;
    let service = object(view, "Service", name)
        .with_context(|| format!("the environment has no Service {NAMESPACE}/{name}"))?;
    let port = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(port_name))
        .and_then(|p| p.get("port").and_then(Value::as_u64))
        .and_then(|p| u16::try_from(p).ok())
        .with_context(|| format!("Service {NAMESPACE}/{name} has no port named {port_name}"))?;
    Ok(SocketAddr::from((ip, port)))
}

/// Every ready pod of Deployment `name`, each with the address of its
/// container port `port_name`: a client that reaches one replica on purpose.
fn replica_addrs(
    view: &View,
    name: &str,
    port_name: &str,
) -> anyhow::Result<Vec<(String, SocketAddr)>> {
    let workload = format!("Deployment {NAMESPACE}/{name}");
    let mut out = Vec::new();
    for pod in view.pods.iter().filter(|p| p.workload == workload) {
        let port = pod
            .ports
            .iter()
            .find(|(n, _, proto)| n.as_deref() == Some(port_name) && proto == "TCP")
            .map(|(_, number, _)| *number)
            .with_context(|| format!("pod {} has no TCP port named {port_name}", pod.name))?;
        out.push((pod.name.clone(), SocketAddr::from((pod.ip, port))));
    }
    let declared = object(view, "Deployment", name)
        .map(|v| crate::plan::initial_replicas(v, &view.objects))
        .with_context(|| format!("the environment declares no {workload}"))?;
    if u64::try_from(out.len()).ok() != Some(declared) {
        bail!(
            "{workload}: {} ready pod(s), the environment runs {declared}: every replica must be reachable",
            out.len()
        );
    }
    Ok(out)
}

/// Round `round`'s datagram: every byte says which round it is, so a
/// receiver tells a late copy of an earlier round (a resend after a loss)
/// from a datagram the media handler changed.
fn datagram(round: u8) -> bytes::Bytes {
    // 200 to 473 bytes: well inside one QUIC datagram whatever the round.
    bytes::Bytes::from(vec![round; 200 + usize::from(round % 40) * 7])
}

/// What one participant's join answered.
struct Join {
    /// The GC replica that placed the participant.
    via: String,
    body: Value,
}

/// One meeting, as many participants as GC has replicas (at least two),
/// participant `i` joined through GC replica `i`: every GC replica must
/// place it on the same MC and MH (the placement is in PostgreSQL, not in
/// any one GC), and every datagram a participant sends through MH must
/// reach every other participant unchanged.
async fn flow(view: &View) -> anyhow::Result<Timings> {
    let http = reqwest::Client::builder().timeout(TIMEOUT).build()?;
    let ac = format!("http://{}", service_addr(view, "ac-service", "http")?);
    let gc = format!(
        "http://{}",
        service_addr(view, "global-controller", "http")?
    );
    let gc_replicas = replica_addrs(view, "global-controller", "http")?;
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

    let participants = gc_replicas.len().max(2);
    let mut joins: Vec<Join> = Vec::new();
    for i in 0..participants {
        let (pod, addr) = &gc_replicas[i % gc_replicas.len()];
        let r = http
            .get(format!("http://{addr}/api/v1/meetings/{meeting}"))
            .bearer_auth(&token)
            .send()
            .await
            .with_context(|| format!("global-controller replica {pod}: join"))?;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status != 200 {
            bail!(
                "global-controller replica {pod} did not place participant {i} ({status}): {body}"
            );
        }
        if let Some(first) = joins.first()
            && (first.body["mc"] != body["mc"] || first.body["mh"] != body["mh"])
        {
            bail!(
                "one meeting on two MCs or MHs: replica {} placed it on {} / {}, replica {pod} on {} / {}",
                first.via,
                first.body["mc"],
                first.body["mh"],
                body["mc"],
                body["mh"]
            );
        }
        joins.push(Join {
            via: pod.clone(),
            body,
        });
    }
    let url = joins[0].body["mc"]["webtransport_url"]
        .as_str()
        .context("no webtransport_url")?
        .to_owned();
    let names = PublicNames::of(view)?;
    let (mh_name, mh) = names.resolve(
        joins[0].body["mh"][0]["endpoint"]
            .as_str()
            .context("no MH endpoint")?,
    )?;

    let started = Instant::now();
    let mut ids = Vec::new();
    let mut sessions = Vec::new();
    for (i, join) in joins.iter().enumerate() {
        let mut s = Signaling::open(webtransport_config(view, &names)?, &url).await?;
        s.send(&json!({"type": "join", "meeting_id": meeting, "token": join.body["token"], "display_name": format!("prober-{i}")}))
            .await?;
        let answer = s.next().await?;
        if answer["type"] != "joined" {
            bail!(
                "meeting-controller refused participant {i} (placed by {}): {answer}",
                join.via
            );
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
    let endpoint = media_handler::client::endpoint((Ipv4Addr::UNSPECIFIED, 0).into(), &roots)?;
    let mut attached = Vec::new();
    for (join, id) in joins.iter().zip(&ids) {
        let a = media_handler::client::attach(
            &endpoint,
            mh,
            &mh_name,
            join.body["token"].as_str().unwrap_or_default(),
            id,
            TIMEOUT,
        )
        .await
        .with_context(|| format!("media-handler at {mh_name} ({mh}): attach"))?;
        attached.push(a);
    }
    let mut rounds = Vec::new();
    let mut first = None;
    let total = u8::try_from(20 * participants).unwrap_or(u8::MAX);
    for round in 0..total {
        let payload = datagram(round);
        let from = usize::from(round) % participants;
        let mut pending: Vec<usize> = (0..participants).filter(|p| *p != from).collect();
        let sent = Instant::now();
        for _ in 0..5 {
            if pending.is_empty() {
                break;
            }
            attached[from].send(payload.clone())?;
            let mut missed = Vec::new();
            for to in pending {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
                let got = loop {
                    match tokio::time::timeout_at(deadline, attached[to].recv()).await {
                        Err(_) => break false,
                        Ok(received) => {
                            let received = received?;
                            if received == payload {
                                break true;
                            }
                            let late = received
                                .first()
                                .is_some_and(|r| *r < round && received == datagram(*r));
                            if !late {
                                bail!(
                                    "media-handler changed a datagram from participant {from} to participant {to}"
                                );
                            }
                        }
                    }
                };
                if got {
                    rounds.push(sent.elapsed());
                    first.get_or_insert_with(|| started.elapsed());
                } else {
                    missed.push(to);
                }
            }
            pending = missed;
        }
        if !pending.is_empty() {
            bail!(
                "a datagram from participant {from} never reached participant(s) {pending:?} through media-handler"
            );
        }
    }
    for a in &attached {
        a.close();
    }
    drop(sessions);
    let vias: Vec<&str> = joins.iter().map(|j| j.via.as_str()).collect();
    crate::up::note(&format!(
        "e2e: {participants} participants placed by GC replicas [{}] on MC {} and MH {}",
        vias.join(", "),
        joins[0].body["mc"]["mc_id"].as_str().unwrap_or("?"),
        joins[0].body["mh"][0]["mh_id"].as_str().unwrap_or("?"),
    ));
    Ok(Timings {
        join_to_first_datagram: first.unwrap_or_default(),
        datagram_rounds: rounds,
        participants,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_name_resolves_to_its_service_or_fails_the_run() {
        let names = PublicNames(Arc::new(
            [(
                "media-handler-1.media.staging.dark-tower.example".to_owned(),
                Ipv4Addr::new(10, 96, 0, 12),
            )]
            .into(),
        ));
        let (host, addr) = names
            .resolve("Media-Handler-1.media.staging.dark-tower.example:4434")
            .unwrap();
        assert_eq!(host, "Media-Handler-1.media.staging.dark-tower.example");
        assert_eq!(addr, "10.96.0.12:4434".parse().unwrap());
        let err = names
            .resolve("media-handler-2.media.staging.dark-tower.example:4434")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no Service of the environment declares it"),
            "{err}"
        );
        assert!(
            names
                .resolve("media-handler-1.media.staging.dark-tower.example")
                .is_err()
        );
        assert!(
            names
                .resolve("media-handler-1.media.staging.dark-tower.example:x")
                .is_err()
        );
    }
}
