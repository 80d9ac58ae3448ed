//! Stand-ins for the operators a local run has no cluster for, driven only
//! by the custom resources in git: what they create is what the real
//! operator would create from the same objects, and nothing else.
//!
//! - **cert-manager**: each `Certificate` becomes its Secret
//!   (`kubernetes.io/tls`: `tls.crt`, `tls.key`, `ca.crt`) with the declared
//!   names, lifetime, key algorithm and `secretTemplate` labels. `selfSigned`
//!   issuers self-sign, `ca` issuers sign with the CA a Certificate issued
//!   earlier in the run; an `acme` issuer cannot reach Let's Encrypt here, so
//!   a local "ACME" CA of this run signs instead (the fidelity limit). An
//!   issuer the manifests do not declare is an error.
//! - **CloudNativePG** (see `crate::up` for the instance process): the
//!   cluster CA (`<cluster>-ca`), the server certificate (the Secret named
//!   by `spec.certificates.serverTLSSecret`, or its own `<cluster>-server`
//!   for the `-rw`/`-ro`/`-r` Service names), the `<cluster>-app` credentials
//!   of the default `app` database, and the `-rw`/`-ro`/`-r` Services; each
//!   `Pooler` becomes real PgBouncer processes (one per instance) in front
//!   of the primary, with the Service the operator makes for it.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde_json::{Value, json};

use crate::manifest::Object;
use crate::render::go_duration;

/// A CA this run can sign with: its PEM certificate and key.
#[derive(Debug, Clone)]
pub struct Authority {
    pub cert_pem: String,
    key_pem: String,
}

impl Authority {
    /// A new self-signed ECDSA P-256 CA named `name`, valid ten years.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        params.not_after = params.not_before + time::Duration::days(3650);
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    fn issuer(&self) -> anyhow::Result<Issuer<'static, KeyPair>> {
        let key = KeyPair::from_pem(&self.key_pem)?;
        Ok(Issuer::from_ca_cert_pem(&self.cert_pem, key)?)
    }
}

/// What one issuance produced.
#[derive(Debug, Clone)]
pub struct Issued {
    /// PEM.
    pub certificate: String,
    /// PEM (PKCS#8).
    pub key: String,
    /// PEM of the CA that signed it (itself when self-signed).
    pub ca: String,
}

/// What a certificate should say.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub common_name: Option<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<std::net::IpAddr>,
    pub lifetime: time::Duration,
    pub is_ca: bool,
    pub client_auth: bool,
}

fn params(req: &Request) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(req.dns_names.clone())?;
    for ip in &req.ip_addresses {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    if let Some(cn) = &req.common_name {
        params
            .distinguished_name
            .push(DnType::CommonName, cn.clone());
    }
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::minutes(5);
    params.not_after = params.not_before + req.lifetime;
    if req.is_ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
    } else {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![if req.client_auth {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
    }
    Ok(params)
}

/// Signs `req` with `ca`, or self-signs it when `ca` is `None`.
pub fn issue(req: &Request, ca: Option<&Authority>) -> anyhow::Result<Issued> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let params = params(req)?;
    let (cert, ca_pem) = if let Some(ca) = ca {
        (params.signed_by(&key, &ca.issuer()?)?, ca.cert_pem.clone())
    } else {
        let cert = params.self_signed(&key)?;
        let pem = cert.pem();
        (cert, pem)
    };
    Ok(Issued {
        certificate: cert.pem(),
        key: key.serialize_pem(),
        ca: ca_pem,
    })
}

/// A `kubernetes.io/tls` Secret holding `issued`.
pub fn tls_secret(
    namespace: &str,
    name: &str,
    labels: &Value,
    issued: &Issued,
    extra: &[(&str, &str)],
) -> Value {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut data = serde_json::Map::new();
    data.insert("tls.crt".into(), b64(&issued.certificate).into());
    data.insert("tls.key".into(), b64(&issued.key).into());
    data.insert("ca.crt".into(), b64(&issued.ca).into());
    for (k, v) in extra {
        data.insert((*k).into(), b64(v).into());
    }
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "type": "kubernetes.io/tls",
        "data": data,
    })
}

/// The cert-manager stand-in: CAs issued so far, by `namespace/secret`.
#[derive(Debug, Default)]
pub struct CertManager {
    authorities: BTreeMap<String, Authority>,
    acme: Option<Authority>,
    issued: BTreeMap<String, Issued>,
}

impl CertManager {
    /// What was issued for `namespace/secret`.
    #[cfg(test)]
    pub fn issued(&self, namespace: &str, secret: &str) -> Option<&Issued> {
        self.issued.get(&format!("{namespace}/{secret}"))
    }

    /// Issues every Certificate of `objects` not issued yet and returns the
    /// new Secrets. A Certificate whose CA issuer's Secret does not exist yet
    /// waits for the next call, as cert-manager would retry it.
    pub fn reconcile(&mut self, objects: &[Value], default_ns: &str) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        loop {
            let mut progressed = false;
            for v in objects {
                let Some(o) = Object::new(v) else { continue };
                if o.kind() != "Certificate" || !o.api_version().starts_with("cert-manager.io/") {
                    continue;
                }
                let ns = o.namespace(default_ns);
                let spec = v.get("spec").cloned().unwrap_or(Value::Null);
                let id = o.id(default_ns);
                let secret = spec
                    .get("secretName")
                    .and_then(Value::as_str)
                    .with_context(|| format!("{id}: spec.secretName is missing"))?;
                let key = format!("{ns}/{secret}");
                if self.issued.contains_key(&key) {
                    continue;
                }
                let signer = match self.signer(objects, &spec, ns, &id)? {
                    Signer::NotYet => continue,
                    Signer::SelfSigned => None,
                    Signer::By(ca) => Some(ca),
                };
                let req = request(&spec, &id)?;
                let issued = issue(&req, signer.as_ref())?;
                if req.is_ca {
                    self.authorities.insert(
                        key.clone(),
                        Authority {
                            cert_pem: issued.certificate.clone(),
                            key_pem: issued.key.clone(),
                        },
                    );
                }
                let labels = spec
                    .pointer("/secretTemplate/labels")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                out.push(tls_secret(ns, secret, &labels, &issued, &[]));
                self.issued.insert(key, issued);
                progressed = true;
            }
            if !progressed {
                return Ok(out);
            }
        }
    }

    /// Who signs for an issuer reference.
    fn signer(
        &mut self,
        objects: &[Value],
        spec: &Value,
        ns: &str,
        id: &str,
    ) -> anyhow::Result<Signer> {
        let kind = spec
            .pointer("/issuerRef/kind")
            .and_then(Value::as_str)
            .unwrap_or("Issuer");
        let name = spec
            .pointer("/issuerRef/name")
            .and_then(Value::as_str)
            .with_context(|| format!("{id}: spec.issuerRef.name is missing"))?;
        let issuer = objects.iter().find(|v| {
            Object::new(v).is_some_and(|o| {
                o.kind() == kind
                    && o.api_version().starts_with("cert-manager.io/")
                    && o.name() == name
                    && (kind == "ClusterIssuer" || o.namespace(ns) == ns)
            })
        });
        let Some(issuer) = issuer else {
            bail!("{id}: spec.issuerRef: {kind} {name} is not declared in this environment");
        };
        let ispec = issuer.get("spec").cloned().unwrap_or(Value::Null);
        if ispec.get("selfSigned").is_some() {
            return Ok(Signer::SelfSigned);
        }
        if let Some(secret) = ispec.pointer("/ca/secretName").and_then(Value::as_str) {
            // A ClusterIssuer's CA Secret lives in cert-manager's namespace.
            let key = if kind == "ClusterIssuer" {
                format!("cert-manager/{secret}")
            } else {
                format!("{ns}/{secret}")
            };
            return Ok(self
                .authorities
                .get(&key)
                .map_or(Signer::NotYet, |a| Signer::By(a.clone())));
        }
        if ispec.get("acme").is_some() {
            if self.acme.is_none() {
                self.acme = Some(Authority::new("local-stack stand-in for ACME")?);
            }
            return Ok(self.acme.clone().map_or(Signer::NotYet, Signer::By));
        }
        bail!("{id}: {kind} {name}: only selfSigned, ca and acme issuers have a stand-in");
    }
}

/// Who signs a Certificate.
#[derive(Debug)]
enum Signer {
    SelfSigned,
    By(Authority),
    /// The CA's own Secret is not issued yet: try again later.
    NotYet,
}

/// The certificate a `Certificate` spec asks for.
fn request(spec: &Value, id: &str) -> anyhow::Result<Request> {
    let strings = |key: &str| -> Vec<String> {
        spec.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let lifetime = match spec.get("duration").and_then(Value::as_str) {
        Some(d) => go_duration(d)
            .with_context(|| format!("{id}: spec.duration {d:?} is not a duration"))?,
        None => std::time::Duration::from_hours(90 * 24),
    };
    let algorithm = spec
        .pointer("/privateKey/algorithm")
        .and_then(Value::as_str)
        .unwrap_or("RSA");
    let size = spec
        .pointer("/privateKey/size")
        .and_then(Value::as_u64)
        .unwrap_or(256);
    if algorithm != "ECDSA" || size != 256 {
        bail!(
            "{id}: spec.privateKey: the stand-in issues ECDSA P-256 keys only, not {algorithm} {size}"
        );
    }
    let ip_addresses = strings("ipAddresses")
        .iter()
        .map(|s| {
            s.parse()
                .with_context(|| format!("{id}: spec.ipAddresses: {s:?}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let usages = strings("usages");
    Ok(Request {
        common_name: spec
            .get("commonName")
            .and_then(Value::as_str)
            .map(str::to_owned),
        dns_names: strings("dnsNames"),
        ip_addresses,
        lifetime: time::Duration::try_from(lifetime).unwrap_or(time::Duration::days(90)),
        is_ca: spec.get("isCA").and_then(Value::as_bool) == Some(true),
        client_auth: usages.iter().any(|u| u == "client auth")
            && !usages.iter().any(|u| u == "server auth"),
    })
}

/// A Secret a CloudNativePG Cluster names in `spec.certificates` (`key`:
/// `serverTLSSecret`, `serverCASecret`, `clientCASecret`...); `None` when it
/// names none there, so the operator makes its own.
pub fn cnpg_certificate_secret<'v>(cluster: &'v Value, key: &str) -> Option<&'v str> {
    cluster
        .pointer(&format!("/spec/certificates/{key}"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The Services CloudNativePG makes for a Cluster, selecting its instances.
pub fn cnpg_services(cluster: &str, namespace: &str) -> Vec<Value> {
    [("rw", Some("primary")), ("ro", Some("replica")), ("r", None)]
        .into_iter()
        .map(|(suffix, role)| {
            let mut selector = json!({"cnpg.io/cluster": cluster});
            if let Some(role) = role {
                selector["cnpg.io/instanceRole"] = json!(role);
            }
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": format!("{cluster}-{suffix}"), "namespace": namespace},
                "spec": {
                    "selector": selector,
                    "ports": [{"name": "postgres", "port": 5432, "protocol": "TCP", "targetPort": 5432}],
                },
            })
        })
        .collect()
}

/// The DNS names of a CloudNativePG server certificate: the `-rw`, `-ro`
/// and `-r` Services in their four spellings, then the Cluster's
/// `spec.certificates.serverAltDNSNames` (a Pooler presents this
/// certificate, so that is where its Service's names go).
pub fn cnpg_server_names(cluster: &Value, name: &str, namespace: &str) -> Vec<String> {
    let mut names: Vec<String> = ["rw", "ro", "r"]
        .into_iter()
        .flat_map(|s| {
            let svc = format!("{name}-{s}");
            [
                svc.clone(),
                format!("{svc}.{namespace}"),
                format!("{svc}.{namespace}.svc"),
                format!("{svc}.{namespace}.svc.cluster.local"),
            ]
        })
        .collect();
    names.extend(
        cluster
            .pointer("/spec/certificates/serverAltDNSNames")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned),
    );
    names
}

/// The Service CloudNativePG makes for a Pooler: its name, port 5432
/// (`pgbouncer`), selecting the pooler's pods.
pub fn pooler_service(pooler: &str, namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": pooler, "namespace": namespace},
        "spec": {
            "selector": {"cnpg.io/poolerName": pooler},
            "ports": [{"name": "pgbouncer", "port": 5432, "protocol": "TCP", "targetPort": 5432}],
        },
    })
}

/// The version PgBouncer prints first (`PgBouncer 1.18.0`): (major, minor).
pub fn pgbouncer_version(output: &str) -> Option<(u32, u32)> {
    let v = output.lines().next()?.strip_prefix("PgBouncer ")?;
    let mut parts = v.trim().split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// A PgBouncer `auth_file` line: both fields double-quoted, a `"` doubled.
pub fn pgbouncer_user(name: &str, password: &str) -> String {
    format!(
        "\"{}\" \"{}\"\n",
        name.replace('"', "\"\""),
        password.replace('"', "\"\"")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(name: &str, secret: &str, issuer: &str, extra: &str) -> Value {
        crate::manifest::parse_stream(&format!(
            "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: {name}, namespace: ns}}\nspec:\n  secretName: {secret}\n  duration: 312h0m0s\n  privateKey: {{algorithm: ECDSA, size: 256}}\n  dnsNames: [{name}.ns.svc]\n  issuerRef: {{kind: Issuer, name: {issuer}}}\n{extra}"
        ))
        .unwrap()
        .remove(0)
    }

    fn issuer(name: &str, spec: &str) -> Value {
        crate::manifest::parse_stream(&format!(
            "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {{name: {name}, namespace: ns}}\nspec: {spec}\n"
        ))
        .unwrap()
        .remove(0)
    }

    fn parse_cert(pem: &str) -> Vec<u8> {
        let start = pem.find("-----BEGIN CERTIFICATE-----").unwrap();
        let body: String = pem[start..]
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    }

    #[test]
    fn a_ca_chain_is_issued_in_dependency_order_and_verifies() {
        use rustls::client::danger::ServerCertVerifier as _;
        let objects = vec![
            certificate("leaf", "leaf-tls", "ca-issuer", ""),
            issuer("ca-issuer", "{ca: {secretName: root-ca}}"),
            certificate("root", "root-ca", "self", "  isCA: true\n"),
            issuer("self", "{selfSigned: {}}"),
        ];
        let mut cm = CertManager::default();
        let secrets = cm.reconcile(&objects, "default").unwrap();
        let names: Vec<&str> = secrets
            .iter()
            .map(|s| s.pointer("/metadata/name").and_then(Value::as_str).unwrap())
            .collect();
        assert_eq!(names, ["root-ca", "leaf-tls"]);
        let leaf = cm.issued("ns", "leaf-tls").unwrap();
        let root = cm.issued("ns", "root-ca").unwrap();
        assert_eq!(leaf.ca, root.certificate);
        // The leaf verifies against the root with rustls' verifier, for its name.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(parse_cert(&root.certificate).into()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let leaf_der = rustls::pki_types::CertificateDer::from(parse_cert(&leaf.certificate));
        verifier
            .verify_server_cert(
                &leaf_der,
                &[],
                &rustls::pki_types::ServerName::try_from("leaf.ns.svc").unwrap(),
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .unwrap();
        // Nothing new on the next call.
        assert!(cm.reconcile(&objects, "default").unwrap().is_empty());
    }

    #[test]
    fn undeclared_issuers_and_unsupported_keys_are_errors() {
        let mut cm = CertManager::default();
        let err = cm
            .reconcile(&[certificate("leaf", "leaf-tls", "nowhere", "")], "default")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "Certificate ns/leaf: spec.issuerRef: Issuer nowhere is not declared in this environment"
        );
        let rsa = certificate("leaf", "leaf-tls", "self", "")
            .to_string()
            .replace("ECDSA", "RSA");
        let rsa: Value = serde_json::from_str(&rsa).unwrap();
        let err = cm
            .reconcile(&[rsa, issuer("self", "{selfSigned: {}}")], "default")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ECDSA P-256 keys only, not RSA 256"), "{err}");
    }

    #[test]
    fn pgbouncer_version_and_auth_file_lines() {
        assert_eq!(
            pgbouncer_version("PgBouncer 1.18.0\nlibevent 2.1.12-stable\n"),
            Some((1, 18))
        );
        assert_eq!(pgbouncer_version("PgBouncer 1.25.1"), Some((1, 25)));
        assert_eq!(pgbouncer_version("pgbouncer version 1"), None);
        assert_eq!(pgbouncer_user("ac", "p\"w"), "\"ac\" \"p\"\"w\"\n");
    }

    #[test]
    fn cnpg_names_and_services() {
        let cluster = json!({"spec": {"certificates": {"serverAltDNSNames": ["postgres-pooler-rw.dark-tower.svc"]}}});
        let names = cnpg_server_names(&cluster, "postgres", "dark-tower");
        assert!(names.contains(&"postgres-rw.dark-tower.svc".to_owned()));
        assert!(names.contains(&"postgres-r.dark-tower.svc.cluster.local".to_owned()));
        assert_eq!(
            names.last().map(String::as_str),
            Some("postgres-pooler-rw.dark-tower.svc")
        );
        assert_eq!(cnpg_server_names(&json!({}), "pg", "ns").len(), 12);
        let pooler = pooler_service("postgres-pooler-rw", "dark-tower");
        assert_eq!(
            pooler["spec"]["selector"]["cnpg.io/poolerName"],
            "postgres-pooler-rw"
        );
        assert_eq!(pooler["spec"]["ports"][0]["port"], 5432);
        let services = cnpg_services("postgres", "dark-tower");
        assert_eq!(
            services[0]["spec"]["selector"]["cnpg.io/instanceRole"],
            "primary"
        );
        assert!(
            services[2]["spec"]["selector"]
                .get("cnpg.io/instanceRole")
                .is_none()
        );
    }
}
