use dtlint_yaml::{Node, Span};

use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::workloads::canary_target;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports a Secret that a Flagger `Canary`'s target workload reads
    /// (env `secretKeyRef`, `envFrom`, a `secret` or projected volume) and
    /// that another controller owns, when it does not carry the annotation
    /// `flagger.app/config-tracking: disabled`:
    ///
    /// - the Secret of a cert-manager `Certificate` (the annotation belongs
    ///   in its `secretTemplate.annotations`);
    /// - a password Secret a CloudNativePG `Cluster` reads
    ///   (`managed.roles[].passwordSecret`, `superuserSecret`,
    ///   `bootstrap.initdb.secret`);
    /// - a Secret the CloudNativePG operator makes for a Cluster
    ///   (`<cluster>-ca`, `-app`, `-superuser`, `-replication`, `-server`):
    ///   the annotation goes in the Cluster's `inheritedMetadata`.
    ///
    /// Reported at the object to annotate, with the workload's reference
    /// beside it.
    ///
    /// ## Why is this bad?
    /// Flagger copies every ConfigMap and Secret its target references into
    /// `<name>-primary` and points the primary pods at the copies, so a
    /// configuration change goes through the canary analysis. For a Secret
    /// another controller keeps current that is wrong twice over: the copy
    /// is owned by nobody (a CA's private key duplicated outside
    /// cert-manager), and it is refreshed only at the next canary run, so
    /// the primary keeps an expired certificate or a password the database
    /// no longer accepts.
    ///
    /// ## Example
    /// ```yaml
    /// kind: Certificate
    /// spec:
    ///   secretName: postgres-server-ca     # mounted by the canary's target
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// kind: Certificate
    /// spec:
    ///   secretName: postgres-server-ca
    ///   secretTemplate:
    ///     annotations:
    ///       flagger.app/config-tracking: disabled
    /// ```
    ///
    /// ## References
    /// - Flagger configuration tracking: <https://docs.flagger.app/usage/how-it-works#canary-target>
    pub struct CanaryCopiesManagedSecret {
        id: "canary-copies-managed-secret",
        category: "workloads",
        severity: Error,
        summary: "a Canary's target reads a Secret another controller keeps current, which Flagger would copy for the primary",
        needs: Repository,
    }
}

const ANNOTATION: &str = "flagger.app/config-tracking";

fn disabled(annotations: Option<&Node>) -> bool {
    annotations
        .and_then(|a| a.get(ANNOTATION))
        .and_then(Node::as_str)
        .is_some_and(|v| v == "disabled")
}

/// Every Secret name the pod template reads, with the node that names it.
fn secret_refs<'a>(w: &Resource<'a>) -> Vec<(&'a str, Span)> {
    let mut out = Vec::new();
    let mut add = |n: Option<&'a Node>| {
        if let Some(n) = n
            && let Some(s) = n.as_str()
        {
            out.push((s, n.span));
        }
    };
    for c in w.containers() {
        for e in c.node.get("env").into_iter().flat_map(Node::items) {
            add(e.path(&["valueFrom", "secretKeyRef", "name"]));
        }
        for e in c.node.get("envFrom").into_iter().flat_map(Node::items) {
            add(e.path(&["secretRef", "name"]));
        }
    }
    let volumes = w.pod_spec().and_then(|s| s.get("volumes"));
    for v in volumes.into_iter().flat_map(Node::items) {
        add(v.path(&["secret", "secretName"]));
        for source in v
            .path(&["projected", "sources"])
            .into_iter()
            .flat_map(Node::items)
        {
            add(source.path(&["secret", "name"]));
        }
    }
    out
}

/// The Secrets a CloudNativePG operator makes for a Cluster: its CA, the
/// `app` and superuser credentials, the replication certificate, and the
/// server certificate unless the Cluster names its own.
fn operator_secrets(cluster: &Resource<'_>) -> Vec<String> {
    let name = cluster.name;
    let mut out: Vec<String> = ["ca", "app", "superuser", "replication"]
        .iter()
        .map(|s| format!("{name}-{s}"))
        .collect();
    let own_server = cluster
        .spec()
        .and_then(|s| s.path(&["certificates", "serverTLSSecret"]))
        .and_then(Node::as_str)
        .is_some_and(|s| !s.is_empty());
    if !own_server {
        out.push(format!("{name}-server"));
    }
    out
}

/// The Secrets a CloudNativePG Cluster reads passwords from.
fn cluster_secrets<'a>(cluster: &Resource<'a>) -> Vec<&'a str> {
    let Some(spec) = cluster.spec() else {
        return Vec::new();
    };
    let mut out: Vec<&str> = spec
        .path(&["managed", "roles"])
        .into_iter()
        .flat_map(Node::items)
        .filter_map(|r| r.path(&["passwordSecret", "name"]).and_then(Node::as_str))
        .collect();
    for path in [
        &["superuserSecret", "name"][..],
        &["bootstrap", "initdb", "secret", "name"][..],
    ] {
        if let Some(s) = spec.path(path).and_then(Node::as_str) {
            out.push(s);
        }
    }
    out
}

/// Where a Secret another controller keeps current is to be annotated,
/// and what to say about it.
struct Owned {
    file: crate::source::FileId,
    at: Span,
    label: &'static str,
    /// The message after "which reads Secret `x`".
    tail: String,
    help: String,
}

/// The controller that keeps `secret` current, when it is not opted out of
/// Flagger's config tracking; `at` is the workload's reference to it.
fn owned(ctx: &Context<'_>, workload: &Resource<'_>, secret: &str, at: Span) -> Option<Owned> {
    let idx = ctx.index;
    let same_ns = |o: &&Resource<'_>| idx.same_namespace(o, workload);
    let name_of = |o: &Resource<'_>| {
        o.metadata()
            .and_then(|m| m.get("name"))
            .map_or_else(|| o.anchor_span(), |n| n.span)
    };
    // A Certificate's Secret: annotated through its secretTemplate.
    if let Some(cert) = idx.of_kind("Certificate").filter(same_ns).find(|c| {
        c.group() == "cert-manager.io"
            && c.spec()
                .and_then(|s| s.get("secretName"))
                .and_then(Node::as_str)
                == Some(secret)
    }) {
        let spec = cert.spec();
        if disabled(spec.and_then(|s| s.path(&["secretTemplate", "annotations"]))) {
            return None;
        }
        return Some(Owned {
            file: cert.file,
            at: spec
                .and_then(|s| s.get("secretName"))
                .map_or_else(|| cert.anchor_span(), |n| n.span),
            label: "copied for the primary",
            tail: format!(
                " of {}: Flagger would copy it, key included, into `{secret}-primary`, which cert-manager never renews",
                cert.id()
            ),
            help: format!(
                "Add `secretTemplate: {{annotations: {{{ANNOTATION}: disabled}}}}` to {}.",
                cert.id()
            ),
        });
    }
    let clusters = || {
        idx.of_kind("Cluster")
            .filter(same_ns)
            .filter(|c| c.group() == "postgresql.cnpg.io")
    };
    // A Secret the database operator makes: annotated through the Cluster's
    // inheritedMetadata, which it copies onto what it makes.
    if let Some(cluster) = clusters().find(|c| operator_secrets(c).iter().any(|s| s == secret)) {
        let inherited = cluster
            .spec()
            .and_then(|s| s.path(&["inheritedMetadata", "annotations"]));
        if disabled(inherited) {
            return None;
        }
        return Some(Owned {
            file: cluster.file,
            at: name_of(cluster),
            label: "makes the Secret copied for the primary",
            tail: format!(
                " that {} makes: Flagger would copy it into `{secret}-primary`, which the operator never updates",
                cluster.id()
            ),
            help: format!(
                "Add `inheritedMetadata: {{annotations: {{{ANNOTATION}: disabled}}}}` to {} (the operator copies it onto the Secrets it makes), or mount a Secret of your own.",
                cluster.id()
            ),
        });
    }
    // A password a database cluster keeps its roles at.
    let cluster = clusters().find(|c| cluster_secrets(c).contains(&secret))?;
    let declared = idx
        .of_kind("Secret")
        .filter(same_ns)
        .find(|s| s.group().is_empty() && s.name == secret);
    if declared.is_some_and(|s| disabled(s.metadata().and_then(|m| m.get("annotations")))) {
        return None;
    }
    let (file, at) = declared.map_or((workload.file, at), |s| (s.file, name_of(s)));
    Some(Owned {
        file,
        at,
        label: "copied for the primary",
        tail: format!(
            ", the password {} sets its role to: Flagger would copy it into `{secret}-primary`, so a rotated password reaches the primary only at the next canary run",
            cluster.id()
        ),
        help: format!("Annotate Secret `{secret}` with `{ANNOTATION}: disabled`."),
    })
}

impl Rule for CanaryCopiesManagedSecret {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Objects)
    }

    fn check_object(&self, ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        let Some((_, workload)) = canary_target(ctx, r) else {
            return;
        };
        let mut seen: Vec<&str> = Vec::new();
        for (secret, at) in secret_refs(workload) {
            if seen.contains(&secret) {
                continue;
            }
            seen.push(secret);
            let Some(o) = owned(ctx, workload, secret, at) else {
                continue;
            };
            out.push(
                Finding::new(
                    Self::META.id,
                    Label::new(o.file, o.at, o.label),
                    format!(
                        "{} shifts traffic to {}, which reads Secret `{secret}`{}",
                        r.id(),
                        workload.id(),
                        o.tail
                    ),
                )
                .with(Label::new(
                    workload.file,
                    at,
                    format!("{} reads it", workload.id()),
                ))
                .help(o.help),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;

    const CANARY: &str = "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: gc}\nspec:\n  targetRef: {apiVersion: apps/v1, kind: Deployment, name: gc}\n";
    const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: gc}\nspec:\n  template:\n    spec:\n      containers:\n        - name: gc\n          env:\n            - {name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: pg-gc, key: password}}}\n            - {name: OWN, valueFrom: {secretKeyRef: {name: gc-secrets, key: token}}}\n      volumes:\n        - name: ca\n          secret: {secretName: pg-ca}\n";
    const CLUSTER: &str = "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata: {name: pg}\nspec:\n  managed:\n    roles:\n      - {name: gc, passwordSecret: {name: pg-gc}}\n";

    fn certificate(template: &str) -> String {
        format!(
            "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: pg-ca}}\nspec:\n  secretName: pg-ca\n{template}"
        )
    }

    fn secret(annotations: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: pg-gc\n{annotations}type: kubernetes.io/basic-auth\n"
        )
    }

    /// The canary, its target and the database, with this Certificate and Secret.
    fn with_canary(cert: &str, secret: &str) -> Vec<Finding> {
        run(
            &CanaryCopiesManagedSecret,
            &[
                ("canary.yaml", CANARY),
                ("d.yaml", DEPLOYMENT),
                ("cluster.yaml", CLUSTER),
                ("cert.yaml", cert),
                ("secret.yaml", secret),
            ],
        )
    }

    #[test]
    fn managed_secrets_must_opt_out_of_config_tracking() {
        let cert = certificate("");
        let s = secret("");
        let out = with_canary(&cert, &s);
        let messages: Vec<&str> = out.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "Canary/gc shifts traffic to Deployment/gc, which reads Secret `pg-gc`, the password Cluster/pg sets its role to: Flagger would copy it into `pg-gc-primary`, so a rotated password reaches the primary only at the next canary run",
                "Canary/gc shifts traffic to Deployment/gc, which reads Secret `pg-ca` of Certificate/pg-ca: Flagger would copy it, key included, into `pg-ca-primary`, which cert-manager never renews",
            ]
        );
        // At the objects to annotate.
        assert_eq!(out[0].primary.span.start.line, 4);
        assert_eq!(out[1].primary.span.start.line, 5);
    }

    #[test]
    fn the_operators_own_secrets_are_annotated_through_the_cluster() {
        let deployment = DEPLOYMENT.replace("secretName: pg-ca", "secretName: pg-app");
        let out = run(
            &CanaryCopiesManagedSecret,
            &[
                ("canary.yaml", CANARY),
                ("d.yaml", &deployment),
                ("cluster.yaml", CLUSTER),
            ],
        );
        assert!(
            out.iter().any(|f| f
                .message
                .contains("reads Secret `pg-app` that Cluster/pg makes")),
            "{out:?}"
        );
        let cluster = format!(
            "{CLUSTER}  inheritedMetadata:\n    annotations: {{flagger.app/config-tracking: disabled}}\n"
        );
        let out = run(
            &CanaryCopiesManagedSecret,
            &[
                ("canary.yaml", CANARY),
                ("d.yaml", &deployment),
                ("cluster.yaml", &cluster),
            ],
        );
        assert!(out.iter().all(|f| !f.message.contains("pg-app")), "{out:?}");
    }

    #[test]
    fn annotated_secrets_and_the_workloads_own_pass() {
        let cert = certificate(
            "  secretTemplate:\n    annotations: {flagger.app/config-tracking: disabled}\n",
        );
        let s = secret("  annotations: {flagger.app/config-tracking: disabled}\n");
        let out = with_canary(&cert, &s);
        assert!(out.is_empty(), "{out:?}");
        // Without a Canary, Flagger copies nothing.
        let cert = certificate("");
        let out = run(
            &CanaryCopiesManagedSecret,
            &[
                ("d.yaml", DEPLOYMENT),
                ("cluster.yaml", CLUSTER),
                ("cert.yaml", &cert),
            ],
        );
        assert!(out.is_empty(), "{out:?}");
    }
}
