use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::database::{PgUrl, Resolved, canonical_host, resolve_listed, scopes};
use crate::rules::{Context, Merged, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Follows each CloudNativePG `Cluster`'s server certificate from the
    /// Cluster to the clients that verify it, in every environment:
    ///
    /// - a Cluster with no `spec.certificates.serverTLSSecret` serves a
    ///   certificate from the operator's own self-signed CA, outside
    ///   cert-manager;
    /// - `serverTLSSecret` without `serverCASecret` (the operator's webhook
    ///   rejects the Cluster);
    /// - a `serverTLSSecret` that no cert-manager `Certificate` (its
    ///   `secretName`) and no Secret in the same namespace makes: the
    ///   instances never start;
    /// - that Certificate's `secretTemplate` without the `cnpg.io/reload`
    ///   label: the instances keep serving the old certificate after
    ///   cert-manager renews it, until it expires;
    /// - a client URL (a container variable, resolved as the kubelet would)
    ///   that dials one of the Cluster's Services (`<cluster>-rw`, `-ro`,
    ///   `-r`) or one of its Poolers by a name the Certificate's `dnsNames`
    ///   do not list: `sslmode=verify-full` refuses the connection;
    /// - a client whose `sslrootcert` is mounted from a Secret other than
    ///   the one holding the server's CA (`serverCASecret`, the
    ///   Certificate's Secret or its CA issuer's Secret; the operator's
    ///   `<cluster>-ca` when the Cluster names no server certificate): the
    ///   client verifies against the wrong authority and never connects.
    ///
    /// ## Why is this bad?
    /// Each of these leaves a database that clients cannot reach or that
    /// stops being reachable on the day its certificate renews, while every
    /// manifest applies cleanly. The operator's own CA also keeps its
    /// private key in `<cluster>-ca`, the Secret clients would mount for
    /// `ca.crt`, and it signs the replication client certificate too: a
    /// pod that mounts the whole Secret can mint both.
    ///
    /// ## Example
    /// ```yaml
    /// kind: Cluster
    /// spec:
    ///   certificates:
    ///     serverTLSSecret: postgres-server-tls   # no serverCASecret
    /// ---
    /// kind: Certificate
    /// spec:
    ///   secretName: postgres-server-tls           # no cnpg.io/reload label
    ///   dnsNames: [postgres-rw.dark-tower.svc]    # clients dial postgres-pooler-rw.dark-tower.svc
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// kind: Cluster
    /// spec:
    ///   certificates:
    ///     serverTLSSecret: postgres-server-tls
    ///     serverCASecret: postgres-server-tls
    /// ---
    /// kind: Certificate
    /// spec:
    ///   secretName: postgres-server-tls
    ///   secretTemplate:
    ///     labels: {cnpg.io/reload: ""}
    ///   dnsNames: [postgres-rw.dark-tower.svc, postgres-pooler-rw.dark-tower.svc]
    ///   issuerRef: {kind: Issuer, name: postgres-server-ca}
    /// ```
    /// and mount `ca.crt` of the CA's Secret where `sslrootcert` points.
    ///
    /// ## References
    /// - CloudNativePG certificates: <https://cloudnative-pg.io/documentation/current/certificates/>
    /// - cert-manager Certificate: <https://cert-manager.io/docs/usage/certificate/>
    /// - libpq `verify-full`: <https://www.postgresql.org/docs/current/libpq-ssl.html#LIBPQ-SSL-SSL-SESSIONS>
    pub struct PostgresServerCertificate {
        id: "postgres-server-certificate",
        category: "database",
        severity: Error,
        summary: "a CloudNativePG Cluster's server certificate is not from cert-manager, cannot be made or renewed, does not name what clients dial, or clients verify it with another CA",
        needs: Repository,
    }
}

const RELOAD_LABEL: &str = "cnpg.io/reload";

fn is_cnpg(r: &Resource<'_>, kind: &str) -> bool {
    r.kind == kind && r.group() == "postgresql.cnpg.io"
}

fn is_cert_manager(r: &Resource<'_>, kind: &str) -> bool {
    r.kind == kind && r.group() == "cert-manager.io"
}

/// A DNS name matches a certificate name exactly or through a leading
/// `*.` wildcard covering one label, case-insensitively.
fn name_covers(pattern: &str, host: &str) -> bool {
    let p = pattern.trim_end_matches('.').to_ascii_lowercase();
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    match p.strip_prefix("*.") {
        Some(rest) => h
            .split_once('.')
            .is_some_and(|(first, tail)| !first.is_empty() && tail == rest),
        None => p == h,
    }
}

/// One client URL: where it is written and what it says.
struct Client<'a> {
    workload: &'a Resource<'a>,
    container: crate::model::Container<'a>,
    var: String,
    at: Resolved,
}

impl Rule for PostgresServerCertificate {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let idx = ctx.index;
        let clusters: Vec<&Resource<'_>> = idx
            .of_kind("Cluster")
            .filter(|r| is_cnpg(r, "Cluster"))
            .collect();
        if clusters.is_empty() {
            return;
        }
        let mut merged = Merged::default();
        for scope in scopes(ctx) {
            // Every PostgreSQL URL a container of this environment receives.
            let mut clients: Vec<Client<'_>> = Vec::new();
            for w in idx.workloads().filter(|w| scope.includes(w)) {
                for c in w.containers() {
                    for (var, at) in resolve_listed(ctx, &scope, w, &c) {
                        let Some(at) = at else {
                            continue;
                        };
                        if PgUrl::parse(&at.text).is_some() {
                            clients.push(Client {
                                workload: w,
                                container: c,
                                var: var.to_string(),
                                at,
                            });
                        }
                    }
                }
            }
            for cluster in clusters.iter().copied().filter(|r| scope.includes(r)) {
                let mut add = |f: Finding| merged.add(f, scope.env);
                check_cluster(ctx, cluster, &clients, &|r| scope.includes(r), &mut add);
            }
        }
        out.extend(merged.into_findings());
    }
}

fn check_cluster(
    ctx: &Context<'_>,
    cluster: &Resource<'_>,
    clients: &[Client<'_>],
    in_scope: &dyn Fn(&Resource<'_>) -> bool,
    add: &mut dyn FnMut(Finding),
) {
    let idx = ctx.index;
    let id = PostgresServerCertificate::META.id;
    let certs = cluster.spec().and_then(|n| n.get("certificates"));
    let given = |key: &str| {
        certs
            .and_then(|n| n.get(key))
            .filter(|n| n.as_str().is_some_and(|s| !s.is_empty()))
    };
    let tls = given("serverTLSSecret");
    let same_ns = |r: &&Resource<'_>| in_scope(r) && idx.same_namespace(r, cluster);

    // The names clients may dial: the operator's Services and the Poolers'.
    let mut services: Vec<String> = ["rw", "ro", "r"]
        .iter()
        .map(|s| format!("{}-{s}", cluster.name))
        .collect();
    services.extend(
        idx.of_kind("Pooler")
            .filter(|p| is_cnpg(p, "Pooler") && same_ns(p))
            .filter(|p| {
                p.spec()
                    .and_then(|n| n.path(&["cluster", "name"]))
                    .and_then(Node::as_str)
                    == Some(cluster.name)
            })
            .map(|p| p.name.to_string()),
    );
    let canonical: Vec<String> = services
        .iter()
        .map(|s| canonical_host(s, cluster.namespace))
        .collect();
    let dialling: Vec<(&Client<'_>, String, PgUrl<'_>)> = clients
        .iter()
        .filter_map(|c| {
            let url = PgUrl::parse(&c.at.text)?;
            let (host, _, _) = url.target()?;
            canonical
                .contains(&canonical_host(&host, c.workload.namespace))
                .then_some((c, host, url))
        })
        .collect();

    let Some(tls) = tls else {
        let at = certs.map_or_else(
            || cluster.spec().map_or(cluster.anchor_span(), |s| s.span),
            |n| n.span,
        );
        add(Finding::new(
            id,
            Label::new(cluster.file, at, "no serverTLSSecret"),
            format!(
                "{} serves a certificate from the operator's own self-signed CA, outside cert-manager",
                cluster.id()
            ),
        )
        .help("Issue the server certificate with a cert-manager `Certificate` (a private CA Issuer: clients dial cluster-internal names) and name its Secret in `spec.certificates.serverTLSSecret` and `serverCASecret`; clients mount only the CA's `ca.crt`."));
        check_roots(
            cluster,
            &dialling,
            &[format!("{}-ca", cluster.name)],
            None,
            add,
        );
        return;
    };
    let tls_name = tls.as_str().unwrap_or_default();
    // What the operator's admission webhook refuses: (at, label, why, help).
    let mut rejected = |at: &Node, label: &str, why: &str, help: String| {
        add(Finding::new(
            id,
            Label::new(cluster.file, at.span, label),
            format!(
                "{} {why}: the operator's webhook rejects the Cluster",
                cluster.id()
            ),
        )
        .help(help));
    };
    if let Some(alt) = certs.and_then(|n| n.get("serverAltDNSNames")) {
        rejected(
            alt,
            "serverAltDNSNames with serverTLSSecret",
            "names its own server certificate and also asks the operator for extra names in it",
            format!(
                "Move these names to the `dnsNames` of the Certificate that makes `{tls_name}`, and drop `serverAltDNSNames`."
            ),
        );
    }
    let ca_given = given("serverCASecret");
    if ca_given.is_none() {
        rejected(
            tls,
            "serverTLSSecret without serverCASecret",
            "names its server certificate but not the CA that signs it",
            format!("Add `serverCASecret: {tls_name}` (a cert-manager Secret carries `ca.crt`)."),
        );
    }
    let certificate = idx
        .of_kind("Certificate")
        .filter(|r| is_cert_manager(r, "Certificate") && same_ns(r))
        .find(|r| {
            r.spec()
                .and_then(|n| n.get("secretName"))
                .and_then(Node::as_str)
                == Some(tls_name)
        });
    let Some(certificate) = certificate else {
        let declared = idx
            .of_kind("Secret")
            .any(|s| s.group().is_empty() && s.name == tls_name && same_ns(&s));
        if !declared {
            add(Finding::new(
                id,
                Label::new(cluster.file, tls.span, "nothing makes this Secret"),
                format!(
                    "{}'s server certificate Secret `{tls_name}` is made by no Certificate and declared nowhere in its namespace: the instances never start",
                    cluster.id()
                ),
            )
            .help(format!("Declare a cert-manager `Certificate` with `secretName: {tls_name}`.")));
        }
        return;
    };
    let spec = certificate.spec();
    let labels = spec.and_then(|n| n.path(&["secretTemplate", "labels"]));
    if labels.and_then(|l| l.get(RELOAD_LABEL)).is_none() {
        let at = labels
            .or_else(|| spec.and_then(|n| n.get("secretName")))
            .map_or(certificate.anchor_span(), |n| n.span);
        add(Finding::new(
            id,
            Label::new(certificate.file, at, format!("no {RELOAD_LABEL} label")),
            format!(
                "{}'s Secret `{tls_name}` does not carry `{RELOAD_LABEL}`: {} keeps serving the old certificate after cert-manager renews it",
                certificate.id(),
                cluster.id()
            ),
        )
        .with(Label::new(cluster.file, tls.span, "served by this Cluster"))
        .help(format!("Add `secretTemplate: {{labels: {{{RELOAD_LABEL}: \"\"}}}}` to the Certificate, so the operator reloads PostgreSQL and the poolers when the Secret changes.")));
    }
    let names = spec.and_then(|n| n.get("dnsNames"));
    let listed: Vec<&str> = names
        .into_iter()
        .flat_map(Node::items)
        .filter_map(Node::as_str)
        .collect();
    for (client, host, url) in &dialling {
        // Only verify-full compares the dialled name with the certificate.
        if url.param("sslmode") != Some("verify-full")
            || listed.iter().any(|n| name_covers(n, host))
        {
            continue;
        }
        let mut f = Finding::new(
            id,
            Label::new(client.at.file, client.at.span, format!("dials {host}")),
            format!(
                "`{}` of container `{}` in {} dials `{host}`, which the `dnsNames` of {} do not list: sslmode=verify-full refuses the server",
                client.var,
                client.container.name(),
                client.workload.id(),
                certificate.id()
            ),
        )
        .help(format!("Add `{host}` to the `dnsNames` of {}.", certificate.id()));
        if let Some(n) = names {
            f = f.with(Label::new(certificate.file, n.span, "the names it lists"));
        }
        add(f);
    }
    // Secrets that hold the CA which signed the server certificate: the
    // certificate's own Secret (cert-manager writes the signer's `ca.crt`
    // into it) and a CA issuer's key pair.
    let mut roots: Vec<String> = vec![tls_name.to_string()];
    let issuer = (
        spec.and_then(|n| n.path(&["issuerRef", "kind"]))
            .and_then(Node::as_str)
            .unwrap_or("Issuer"),
        spec.and_then(|n| n.path(&["issuerRef", "name"]))
            .and_then(Node::as_str)
            .unwrap_or(""),
    );
    if let Some(secret) = idx
        .of_kind(issuer.0)
        .filter(|r| is_cert_manager(r, issuer.0) && in_scope(r))
        .filter(|r| issuer.0 == "ClusterIssuer" || idx.same_namespace(r, certificate))
        .find(|r| r.name == issuer.1)
        .and_then(|r| r.spec().and_then(|n| n.path(&["ca", "secretName"])))
        .and_then(Node::as_str)
    {
        roots.push(secret.to_string());
    } else if issuer.0 == "ClusterIssuer" {
        // A ClusterIssuer's CA Secret lives in cert-manager's namespace:
        // no client mount can be judged against it here.
        return;
    }
    roots.dedup();
    if let Some(ca) = ca_given
        && let Some(name) = ca.as_str()
        && !roots.iter().any(|r| r == name)
    {
        add(Finding::new(
            id,
            Label::new(cluster.file, ca.span, "not the server certificate's CA"),
            format!(
                "{}'s serverCASecret `{name}` does not hold the CA that signs its server certificate ({} issues it): replicas, the pooler and clients verifying with it refuse the server",
                cluster.id(),
                certificate.id()
            ),
        )
        .help(format!("Set `serverCASecret: {tls_name}` (its `ca.crt` is the signer's).")));
    }
    check_roots(cluster, &dialling, &roots, Some(certificate), add);
}

/// Each client's `sslrootcert` must come from one of `roots`.
fn check_roots(
    cluster: &Resource<'_>,
    dialling: &[(&Client<'_>, String, PgUrl<'_>)],
    roots: &[String],
    certificate: Option<&Resource<'_>>,
    add: &mut dyn FnMut(Finding),
) {
    // One finding per mounted Secret, for the first URL that uses it.
    let mut reported: Vec<(crate::source::FileId, u32)> = Vec::new();
    for (client, host, url) in dialling {
        // Only verify-ca and verify-full check the server against the root.
        if !matches!(url.param("sslmode"), Some("verify-ca" | "verify-full")) {
            continue;
        }
        let Some(path) = url.param("sslrootcert").filter(|p| p.starts_with('/')) else {
            continue;
        };
        let Some(node) = mounted_secret(client.workload, &client.container, path) else {
            continue;
        };
        let secret = node.as_str().unwrap_or_default();
        let key = (client.workload.file, node.span.start.offset);
        if roots.iter().any(|r| r == secret) || reported.contains(&key) {
            continue;
        }
        reported.push(key);
        let signer = certificate.map_or_else(
            || format!("`{}-ca`, the operator's CA", cluster.name),
            |c| format!("the CA of {} (`{}`)", c.id(), roots.join("`, `")),
        );
        add(Finding::new(
            PostgresServerCertificate::META.id,
            Label::new(client.workload.file, node.span, format!("Secret {secret}")),
            format!(
                "`{}` of container `{}` in {} verifies `{host}` against Secret `{secret}`, but {}'s server certificate is signed by {signer}",
                client.var,
                client.container.name(),
                client.workload.id(),
                cluster.id()
            ),
        )
        .with(Label::new(client.at.file, client.at.span, "sslrootcert"))
        .help(format!("Mount `ca.crt` of `{}` at {path}.", roots.last().map_or("", String::as_str))));
    }
}

/// The Secret name node a file path in a container comes from, through its
/// volume mount; `None` when the path is not on a Secret volume.
fn mounted_secret<'a>(
    w: &Resource<'a>,
    c: &crate::model::Container<'a>,
    path: &str,
) -> Option<&'a Node> {
    let mount = c
        .node
        .get("volumeMounts")
        .into_iter()
        .flat_map(Node::items)
        .filter(|m| {
            m.get("mountPath").and_then(Node::as_str).is_some_and(|mp| {
                let mp = mp.trim_end_matches('/');
                path.strip_prefix(mp)
                    .is_some_and(|rest| rest.starts_with('/'))
            })
        })
        .max_by_key(|m| {
            m.get("mountPath")
                .and_then(Node::as_str)
                .map_or(0, str::len)
        })?;
    let volume_name = mount.get("name").and_then(Node::as_str)?;
    let volume = w
        .pod_spec()?
        .get("volumes")
        .into_iter()
        .flat_map(Node::items)
        .find(|v| v.get("name").and_then(Node::as_str) == Some(volume_name))?;
    volume.path(&["secret", "secretName"])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;

    const CLUSTER: &str = "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata: {name: pg}\nspec:\n  instances: 1\n  certificates:\n    serverTLSSecret: pg-tls\n    serverCASecret: pg-tls\n";
    const POOLER: &str = "apiVersion: postgresql.cnpg.io/v1\nkind: Pooler\nmetadata: {name: pg-pooler}\nspec:\n  cluster: {name: pg}\n";
    const ISSUER: &str = "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: pg-ca}\nspec:\n  ca: {secretName: pg-ca}\n";

    fn certificate(names: &str, labels: &str) -> String {
        format!(
            "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: pg-server}}\nspec:\n  secretName: pg-tls\n{labels}  dnsNames: [{names}]\n  issuerRef: {{kind: Issuer, name: pg-ca}}\n"
        )
    }

    const RELOAD: &str = "  secretTemplate:\n    labels: {cnpg.io/reload: \"\"}\n";

    fn client(host: &str, secret: &str) -> String {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app}}\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          env:\n            - {{name: DATABASE_URL, value: 'postgres://u@{host}:5432/db?sslmode=verify-full&sslrootcert=/etc/pg/ca.crt'}}\n          volumeMounts:\n            - {{name: ca, mountPath: /etc/pg}}\n      volumes:\n        - name: ca\n          secret: {{secretName: {secret}}}\n"
        )
    }

    fn messages(files: &[(&str, &str)]) -> Vec<String> {
        run(&PostgresServerCertificate, files)
            .into_iter()
            .map(|f| f.message)
            .collect()
    }

    #[test]
    fn a_cert_manager_certificate_naming_every_dialled_host_passes() {
        let cert = certificate("pg-rw, pg-pooler.ns.svc", RELOAD);
        for (host, secret) in [("pg-rw", "pg-ca"), ("pg-pooler.ns.svc", "pg-tls")] {
            let app = client(host, secret);
            let out = messages(&[
                ("c.yaml", CLUSTER),
                ("p.yaml", POOLER),
                ("i.yaml", ISSUER),
                ("cert.yaml", &cert),
                ("d.yaml", &app),
            ]);
            assert!(out.is_empty(), "{host}: {out:?}");
        }
        // Another server entirely is not this rule's business.
        let app = client("elsewhere.example", "other");
        let out = messages(&[
            ("c.yaml", CLUSTER),
            ("i.yaml", ISSUER),
            ("cert.yaml", &cert),
            ("d.yaml", &app),
        ]);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn each_break_in_the_chain_is_reported() {
        // A dialled name the certificate does not list, and the wrong CA mounted.
        let cert = certificate("pg-rw", RELOAD);
        let app = client("pg-pooler", "pg-ca-operator");
        let out = messages(&[
            ("c.yaml", CLUSTER),
            ("p.yaml", POOLER),
            ("i.yaml", ISSUER),
            ("cert.yaml", &cert),
            ("d.yaml", &app),
        ]);
        assert_eq!(
            out,
            [
                "`DATABASE_URL` of container `app` in Deployment/app dials `pg-pooler`, which the `dnsNames` of Certificate/pg-server do not list: sslmode=verify-full refuses the server",
                "`DATABASE_URL` of container `app` in Deployment/app verifies `pg-pooler` against Secret `pg-ca-operator`, but Cluster/pg's server certificate is signed by the CA of Certificate/pg-server (`pg-tls`, `pg-ca`)",
            ]
        );
        // No reload label.
        let cert = certificate("pg-rw", "");
        let out = messages(&[
            ("c.yaml", CLUSTER),
            ("i.yaml", ISSUER),
            ("cert.yaml", &cert),
        ]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            out[0].contains("does not carry `cnpg.io/reload`"),
            "{out:?}"
        );
        // No Certificate and no Secret makes the Secret.
        let out = messages(&[("c.yaml", CLUSTER)]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].contains("the instances never start"), "{out:?}");
        // A declared Secret is enough to start.
        let secret =
            "apiVersion: v1\nkind: Secret\nmetadata: {name: pg-tls}\ntype: kubernetes.io/tls\n";
        assert!(messages(&[("c.yaml", CLUSTER), ("s.yaml", secret)]).is_empty());
        // No CA secret named.
        let cluster = CLUSTER.replace("    serverCASecret: pg-tls\n", "");
        let out = messages(&[
            ("c.yaml", &cluster),
            ("i.yaml", ISSUER),
            ("cert.yaml", &certificate("pg-rw", RELOAD)),
        ]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].contains("webhook rejects"), "{out:?}");
    }

    #[test]
    fn the_operators_own_ca_is_reported_and_its_clients_judged_against_it() {
        let cluster = "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata: {name: pg}\nspec:\n  instances: 1\n";
        let out = run(&PostgresServerCertificate, &[("c.yaml", cluster)]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].message,
            "Cluster/pg serves a certificate from the operator's own self-signed CA, outside cert-manager"
        );
        assert_eq!(out[0].primary.span.start.line, 5);
        let app = client("pg-rw", "pg-server");
        let out = messages(&[("c.yaml", cluster), ("d.yaml", &app)]);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(
            out[1].contains("signed by `pg-ca`, the operator's CA"),
            "{out:?}"
        );
        let app = client("pg-rw", "pg-ca");
        assert_eq!(messages(&[("c.yaml", cluster), ("d.yaml", &app)]).len(), 1);
    }

    #[test]
    fn the_namespace_spelling_counts_and_only_verify_full_checks_names() {
        // Everything in namespace `ns`.
        let ns = |y: &str| y.replace("metadata: {name: ", "metadata: {namespace: ns, name: ");
        let (cluster, issuer) = (ns(CLUSTER), ns(ISSUER));
        let cert = ns(&certificate("pg-rw", RELOAD));
        let judge = |app: &str| {
            messages(&[
                ("c.yaml", &cluster),
                ("i.yaml", &issuer),
                ("cert.yaml", &cert),
                ("d.yaml", app),
            ])
        };
        // `<service>.<namespace>` is the same Service.
        let app = ns(&client("pg-rw.ns", "pg-ca"));
        let out = judge(&app);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].contains("dials `pg-rw.ns`"), "{out:?}");
        // `require` does not compare names (postgres-tls-not-verified says so).
        let out = judge(&app.replace("sslmode=verify-full", "sslmode=require"));
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn the_ca_secret_must_be_the_signers_and_alt_names_are_refused() {
        let cert = certificate("pg-rw", RELOAD);
        let cluster = CLUSTER.replace("serverCASecret: pg-tls", "serverCASecret: pg-operator-ca");
        let out = messages(&[
            ("c.yaml", &cluster),
            ("i.yaml", ISSUER),
            ("cert.yaml", &cert),
        ]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            out[0].contains("serverCASecret `pg-operator-ca` does not hold the CA"),
            "{out:?}"
        );
        // The CA issuer's own Secret is the signer too.
        let cluster = CLUSTER.replace("serverCASecret: pg-tls", "serverCASecret: pg-ca");
        assert!(
            messages(&[
                ("c.yaml", &cluster),
                ("i.yaml", ISSUER),
                ("cert.yaml", &cert)
            ])
            .is_empty()
        );
        let cluster = format!("{CLUSTER}    serverAltDNSNames: [pg-pooler]\n");
        let out = messages(&[
            ("c.yaml", &cluster),
            ("i.yaml", ISSUER),
            ("cert.yaml", &cert),
        ]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].contains("webhook rejects"), "{out:?}");
    }

    #[test]
    fn wildcards_cover_one_label() {
        assert!(name_covers("*.ns.svc", "pg-rw.ns.svc"));
        assert!(name_covers("PG-RW.ns.svc.", "pg-rw.ns.svc"));
        assert!(!name_covers("*.ns.svc", "a.pg-rw.ns.svc"));
        assert!(!name_covers("*.ns.svc", "ns.svc"));
    }
}
