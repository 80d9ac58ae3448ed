use std::path::Path;

use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::{ConfigKind, ConfigObject, Resource};
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks that every ConfigMap and Secret a pod refers to exists, and that
    /// every key it reads is in it: `configMapKeyRef`, `secretKeyRef`,
    /// `envFrom`, and `configMap`/`secret` volumes with `items`. Objects made
    /// by a kustomization's `configMapGenerator`/`secretGenerator` count,
    /// with the keys of their literals, env files and files, and so do the
    /// Secrets that controllers write from objects in the repository:
    /// cert-manager `Certificate`s (`spec.secretName`) and CloudNativePG
    /// `Cluster`s (`<cluster>-ca`, `-server`, `-replication`, `-app` unless
    /// `bootstrap.initdb.secret` names its own, `-superuser` with
    /// `enableSuperuserAccess`), `ExternalSecret`s (their target) and
    /// `ClusterExternalSecret`s. In a namespace a Flux `HelmRelease`
    /// installs a chart into, a Secret may be the chart's: unverifiable, so
    /// not reported. References marked `optional: true` are skipped.
    ///
    /// ## Why is this bad?
    /// The pod is created but its container never starts
    /// (`CreateContainerConfigError`), and the rollout hangs with
    /// `maxUnavailable: 0` until someone reads the events.
    ///
    /// ## Example
    /// ```yaml
    /// env:
    ///   - name: GC_REGION
    ///     valueFrom:
    ///       configMapKeyRef: {name: global-controller-config, key: REGION}
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// env:
    ///   - name: GC_REGION
    ///     valueFrom:
    ///       configMapKeyRef: {name: global-controller-config, key: GC_REGION}
    /// ```
    ///
    /// ## References
    /// - ConfigMaps as env: <https://kubernetes.io/docs/concepts/configuration/configmap/#configmaps-and-pods>
    pub struct DanglingConfigRef {
        id: "dangling-config-ref",
        category: "references",
        severity: Error,
        summary: "a pod refers to a ConfigMap, Secret or key that does not exist",
        needs: Repository,
    }
}

fn is_optional(n: &Node) -> bool {
    n.get("optional").and_then(Node::as_bool) == Some(true)
}

/// One `name` (and `key`) reference to a ConfigMap or Secret.
struct Ref<'n> {
    kind: ConfigKind,
    /// The mapping with the name (`configMapKeyRef`, `secretRef`, a volume source).
    node: &'n Node,
    key: Option<&'n Node>,
    /// `name` or `secretName`.
    name_key: &'static str,
    /// The variable a `valueFrom` reference sets.
    var: Option<&'n str>,
}

fn check_ref(ctx: &Context<'_>, r: &Resource<'_>, reference: &Ref<'_>, out: &mut Vec<Finding>) {
    let Ref {
        kind,
        node: reference,
        key,
        name_key,
        var,
    } = *reference;
    if is_optional(reference) {
        return;
    }
    let Some(name_node) = reference.get(name_key) else {
        return;
    };
    let Some(name) = name_node.as_str() else {
        return;
    };
    let objects: Vec<_> = ctx.index.config_objects(kind, name, r).collect();
    // Asked only when no object has the name (see `model::created`).
    let made_by_controller = || {
        let ns = crate::model::Namespaces::new(ctx.index).of(r);
        kind == ConfigKind::Secret
            && (ctx.index.made_by(r, ("", "Secret"), name, &ns).is_some()
                || ctx.index.chart_objects_in(r, &ns).is_some())
    };
    if objects.is_empty() && !made_by_controller() {
        // The name meant is one defined next to the reference: in the same
        // file (a rendered overlay holds the whole overlay) or directory.
        // Comparing with those only keeps this linear in the repository.
        let sources = &ctx.index.ws.sources;
        let dir = |f: crate::source::FileId| sources.get(f).abs.parent().map(Path::to_path_buf);
        let here = dir(r.file);
        let nearby: Vec<&ConfigObject> = ctx
            .index
            .configs
            .iter()
            .filter(|o| {
                o.kind == kind
                    && visible(o, r)
                    && (o.file == r.file || (here.is_some() && dir(o.file) == here))
            })
            .collect();
        let near = crate::suggest::closest(name, nearby.iter().map(|o| o.name.as_str()))
            .and_then(|near| nearby.iter().copied().find(|o| o.name == near));
        let f = Finding::new(
            DanglingConfigRef::META.id,
            Label::new(
                r.file,
                name_node.span,
                format!("no {} named `{name}`", kind.as_str()),
            ),
            format!(
                "{} refers to {} `{name}`, which does not exist",
                r.id(),
                kind.as_str()
            ),
        )
        .help(format!(
            "Create the {} (or a generator for it) or fix the name.",
            kind.as_str()
        ));
        out.push(match near {
            Some(o) => f.did_you_mean(&o.name, o.file, o.span),
            None => f,
        });
        return;
    }
    let Some(key_node) = key else { return };
    let Some(k) = key_node.as_str() else { return };
    if objects.iter().any(|o| o.keys.iter().any(|have| have == k)) {
        return;
    }
    let Some(o) = objects.first() else { return };
    let f = Finding::new(
        DanglingConfigRef::META.id,
        Label::new(r.file, key_node.span, format!("no key `{k}`")),
        format!("{} `{name}` has no key `{k}`", kind.as_str()),
    )
    .with(Label::new(
        o.file,
        o.span,
        format!("{} `{name}` defined here", kind.as_str()),
    ))
    .help(format!(
        "Add `{k}` to the {} or read a key it has.",
        kind.as_str()
    ));
    let near = crate::suggest::closest(
        k,
        objects
            .iter()
            .flat_map(|o| o.keys.iter().map(String::as_str)),
    )
    .and_then(|near| {
        let o = objects.iter().find(|o| o.keys.iter().any(|h| h == near))?;
        Some((near, o.file, key_span(ctx, o, near).unwrap_or(o.span)))
    });
    out.push(match near {
        // A key named after the variable it sets is right: the close key in
        // the object is the rename, and that is the line to edit.
        Some((near, file, span)) if var == Some(k) => Finding::new(
            DanglingConfigRef::META.id,
            Label::new(file, span, format!("`{near}`, not `{k}`")),
            format!(
                "{} `{name}` has no key `{k}`, but has `{near}`",
                kind.as_str()
            ),
        )
        .with(Label::new(r.file, key_node.span, "read here"))
        .help(format!(
            "Name the key `{k}` again, or read `{near}` where `{k}` is read."
        )),
        Some((near, file, span)) => f.did_you_mean(near, file, span),
        None => f,
    });
}

/// Can `from` see `o`? (Same namespace, or either is unknown.)
fn visible(o: &ConfigObject, from: &Resource<'_>) -> bool {
    match (&o.namespace, from.namespace) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// Where key `key` of `o` is written: the entry under `data`, `stringData`
/// or `binaryData` of the object, or (for a generator) its literal.
fn key_span(ctx: &Context<'_>, o: &ConfigObject, key: &str) -> Option<dtlint_yaml::Span> {
    let object = ctx
        .index
        .resources
        .iter()
        .filter(|r| r.file == o.file && r.kind == o.kind.as_str() && r.name == o.name)
        .find_map(|r| {
            ["data", "stringData", "binaryData"]
                .into_iter()
                .filter_map(|d| r.root.get(d))
                .find_map(|d| d.entry(key))
                .map(|e| e.key.span)
        });
    object.or_else(|| {
        let k = ctx.index.ws.parsed(o.file).documents.first()?;
        ["configMapGenerator", "secretGenerator"]
            .into_iter()
            .filter_map(|g| k.root.get(g))
            .flat_map(Node::items)
            .filter(|g| g.get("name").and_then(Node::as_str) == Some(o.name.as_str()))
            .flat_map(|g| g.get("literals").into_iter().flat_map(Node::items))
            .find(|l| {
                l.as_str()
                    .and_then(|t| t.split_once('='))
                    .is_some_and(|(lk, _)| lk.trim() == key)
            })
            .map(|l| l.span)
    })
}

impl Rule for DanglingConfigRef {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Workloads)
    }

    fn check_object(&self, ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        for c in r.containers() {
            for env in c.node.get("env").into_iter().flat_map(Node::items) {
                let Some(from) = env.get("valueFrom") else {
                    continue;
                };
                let var = env.get("name").and_then(Node::as_str);
                for (field, kind) in [
                    ("configMapKeyRef", ConfigKind::ConfigMap),
                    ("secretKeyRef", ConfigKind::Secret),
                ] {
                    if let Some(node) = from.get(field) {
                        let key = node.get("key");
                        let rf = Ref {
                            kind,
                            node,
                            key,
                            name_key: "name",
                            var,
                        };
                        check_ref(ctx, r, &rf, out);
                    }
                }
            }
            for src in c.node.get("envFrom").into_iter().flat_map(Node::items) {
                for (field, kind) in [
                    ("configMapRef", ConfigKind::ConfigMap),
                    ("secretRef", ConfigKind::Secret),
                ] {
                    if let Some(node) = src.get(field) {
                        let rf = Ref {
                            kind,
                            node,
                            key: None,
                            name_key: "name",
                            var: None,
                        };
                        check_ref(ctx, r, &rf, out);
                    }
                }
            }
        }
        for v in r
            .pod_spec()
            .and_then(|p| p.get("volumes"))
            .into_iter()
            .flat_map(Node::items)
        {
            for (field, kind, name_key) in [
                ("configMap", ConfigKind::ConfigMap, "name"),
                ("secret", ConfigKind::Secret, "secretName"),
            ] {
                let Some(src) = v.get(field) else { continue };
                let items: Vec<&Node> =
                    src.get("items").into_iter().flat_map(Node::items).collect();
                let keys: Vec<Option<&Node>> = if items.is_empty() {
                    vec![None]
                } else {
                    items.iter().map(|i| i.get("key")).collect()
                };
                for key in keys {
                    let rf = Ref {
                        kind,
                        node: src,
                        key,
                        name_key,
                        var: None,
                    };
                    check_ref(ctx, r, &rf, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn a_certificate_makes_its_secret() {
        let dir = tempfile::tempdir().unwrap();
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: mc}\nspec:\n  containers: [{name: mc}]\n  volumes:\n    - {name: tls, secret: {secretName: mc-tls}}\n    - {name: other, secret: {secretName: mc-other}}\n";
        let cert = "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: mc}\nspec: {secretName: mc-tls}\n";
        std::fs::write(dir.path().join("pod.yaml"), pod).unwrap();
        std::fs::write(dir.path().join("certificate.yaml"), cert).unwrap();
        let config = Config::dark_tower();
        let out = crate::rules::testing::check_dir(&DanglingConfigRef, dir.path(), &config);
        let messages: Vec<_> = out.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(
            messages,
            ["Pod/mc refers to Secret `mc-other`, which does not exist"]
        );
    }
}

#[cfg(test)]
mod cnpg_tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn a_cloudnative_pg_cluster_makes_its_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let volumes = [
            "pg-ca",
            "pg-server",
            "pg-replication",
            "pg-app",
            "pg-superuser",
            "pg-other",
            "other-ca",
        ]
        .iter()
        .enumerate()
        .fold(String::new(), |mut out, (i, s)| {
            use std::fmt::Write as _;
            let _ = writeln!(out, "    - {{name: v{i}, secret: {{secretName: {s}}}}}");
            out
        });
        let pod = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: gc}}\nspec:\n  containers: [{{name: gc}}]\n  volumes:\n{volumes}"
        );
        let cluster = "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata: {name: pg}\nspec: {instances: 1}\n";
        std::fs::write(dir.path().join("pod.yaml"), pod).unwrap();
        std::fs::write(dir.path().join("cluster.yaml"), cluster).unwrap();
        let config = Config::dark_tower();
        // The Secret names reported missing, sorted.
        let missing = || {
            let out = crate::rules::testing::check_dir(&DanglingConfigRef, dir.path(), &config);
            let mut names: Vec<_> = out
                .iter()
                .map(|f| f.message.split('`').nth(1).unwrap_or_default().to_owned())
                .collect();
            names.sort();
            names
        };
        // -superuser only with enableSuperuserAccess; other names are not the operator's.
        assert_eq!(missing(), ["other-ca", "pg-other", "pg-superuser"]);

        let own_secret = "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata: {name: pg}\nspec:\n  enableSuperuserAccess: true\n  bootstrap: {initdb: {database: a, owner: a, secret: {name: mine}}}\n";
        std::fs::write(dir.path().join("cluster.yaml"), own_secret).unwrap();
        assert_eq!(missing(), ["other-ca", "pg-app", "pg-other"]);
    }
}
