use dtlint_yaml::{Node, Span};

use crate::diag::{Finding, Label};
use crate::model::{ConfigKind, Resource};
use crate::rules::Merged;
use crate::rules::contract::{Source, key_exists, provided, targets};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};
use crate::source::FileId;

declare_rule! {
    /// ## What it does
    /// Compares each service's config contract
    /// (`services/<svc>/config-contract.toml`, located by `contracts` in
    /// `dtlint.toml`) with the workload whose `app.kubernetes.io/name` is
    /// the contract's `service`. Every required variable without a default
    /// must be provided by the service's container: by `value`, by
    /// `valueFrom` a ConfigMap or Secret key that exists, or by `envFrom`.
    /// A variable the contract marks `secret` must come from a Secret.
    /// Variables the contract does not list are `env-unused`'s findings.
    ///
    /// ```toml
    /// service = "global-controller"
    ///
    /// [[env]]
    /// name = "DATABASE_URL"
    /// required = true
    /// secret = true
    /// description = "PostgreSQL connection URL."
    /// ```
    ///
    /// ## Why is this bad?
    /// The service reads its configuration from the environment only and
    /// exits at start naming the missing variable: the rollout stalls in
    /// CrashLoopBackOff. A reference to a ConfigMap key that is not there
    /// fails the pod (`CreateContainerConfigError`) the same way.
    ///
    /// ## Example
    /// ```yaml
    /// env:
    ///   - name: GC_REGON            # the contract says GC_REGION
    ///     valueFrom:
    ///       configMapKeyRef: {name: global-controller-config, key: GC_REGION}
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
    /// - SPEC.md, "Services": env vars are the contract the manifests must satisfy
    /// - Environment variables: <https://kubernetes.io/docs/tasks/inject-data-application/define-environment-variable-container/>
    pub struct EnvContract {
        id: "env-contract",
        category: "contract",
        severity: Error,
        summary: "a workload does not provide a variable its service's config contract requires",
        needs: Repository,
    }
}

/// A key of the ConfigMap/Secret object itself that looks like `want`
/// misspelt: where a rename most likely happened.
fn near_key(
    ctx: &Context<'_>,
    w: &Resource<'_>,
    kind: ConfigKind,
    name: &str,
    want: &str,
) -> Option<(FileId, Span, String)> {
    ctx.index
        .of_kind(kind.as_str())
        .filter(|r| r.name == name && ctx.index.same_namespace(r, w))
        .flat_map(|r| {
            ["data", "stringData", "binaryData"]
                .into_iter()
                .filter_map(|k| r.root.get(k))
                .flat_map(Node::entries)
                .filter_map(move |e| Some((r.file, e.key.span, e.key.as_str()?.to_string())))
        })
        // The same bound as every other did-you-mean.
        .filter(|(_, _, k)| {
            k != want && strsim::levenshtein(k, want) <= crate::suggest::max_distance(want)
        })
        .min_by_key(|(_, _, k)| strsim::levenshtein(k, want))
}

impl Rule for EnvContract {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let idx = ctx.index;
        let mut merged = Merged::default();
        for contract in &idx.ws.contracts {
            for (w, c) in targets(idx, contract) {
                let have = provided(idx, w, &c);
                let env_span = c
                    .node
                    .entry("env")
                    .map_or_else(|| c.anchor_span(), |e| e.key.span);
                for var in &contract.env {
                    // The last definition wins in Kubernetes; `env` overrides `envFrom`.
                    let p = have
                        .iter()
                        .find(|p| p.name == var.name && !matches!(p.source, Source::EnvFrom { .. }))
                        .or_else(|| have.iter().find(|p| p.name == var.name));
                    match p {
                        None if var.must_be_provided() => {
                            merged.add(
                                Finding::new(
                                    Self::META.id,
                                    Label::new(w.file, env_span, format!("no `{}` here", var.name)),
                                    format!("{} does not set {}, which {} requires", w.id(), var.name, contract.service),
                                )
                                .help(format!("Set `{}` in the container's env (from the service's ConfigMap or Secret); {} says: {}", var.name, contract.path, var.description.trim_end_matches('.').to_string() + ".")),
                                w.env,
                            );
                        }
                        None => {}
                        Some(p) => {
                            if let Source::Key {
                                kind,
                                name,
                                key,
                                optional,
                            } = p.source
                                && let Some(k) = key.as_str()
                                // A ConfigMap/Secret that does not exist at
                                // all is the reference rule's finding.
                                && idx.config_objects(kind, name, w).next().is_some()
                                && !key_exists(idx, w, kind, name, k)
                                && (var.must_be_provided() || !optional)
                            {
                                let what = format!("{} {name}", kind.as_str());
                                // Where the names part: a key named after
                                // the variable is right, so a close key in
                                // the object is the rename; otherwise the
                                // `key:` is. The reference rule decides the
                                // same way, so one defect is one finding.
                                let near = near_key(ctx, w, kind, name, k);
                                let mut f = match near {
                                    Some((file, span, found)) if k == var.name => Finding::new(
                                        Self::META.id,
                                        Label::new(file, span, format!("`{found}`, not `{k}`")),
                                        format!(
                                            "{} reads {} from key {k}, but {what} has `{found}` instead",
                                            w.id(),
                                            var.name
                                        ),
                                    )
                                    .with(Label::new(w.file, key.span, "read here")),
                                    near => {
                                        let f = Finding::new(
                                            Self::META.id,
                                            Label::new(w.file, key.span, format!("not a key of {what}")),
                                            format!(
                                                "{} reads {} from key {k}, which {what} does not have",
                                                w.id(),
                                                var.name
                                            ),
                                        );
                                        match near {
                                            Some((file, span, found)) => f.did_you_mean(&found, file, span),
                                            None => f,
                                        }
                                    }
                                };
                                f = f.help(format!("Make the key names agree: the {} key and the `key:` that reads it.", kind.as_str()));
                                merged.add(f, w.env);
                            }
                            let plain = match p.source {
                                Source::Literal => Some("a literal value"),
                                Source::Key {
                                    kind: ConfigKind::ConfigMap,
                                    ..
                                }
                                | Source::EnvFrom {
                                    kind: ConfigKind::ConfigMap,
                                } => Some("a ConfigMap"),
                                _ => None,
                            };
                            if var.secret
                                && let Some(plain) = plain
                            {
                                merged.add(
                                    Finding::new(
                                        Self::META.id,
                                        Label::new(w.file, p.span, format!("set from {plain}")),
                                        format!("{} takes the secret {} from {plain}", w.id(), var.name),
                                    )
                                    .help("Read secret variables from the service's Secret (`secretKeyRef`), which staging and production encrypt with SOPS."),
                                    w.env,
                                );
                            }
                        }
                    }
                }
            }
        }
        out.extend(merged.into_findings());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const CONTRACT: &str = "service = \"gc\"\n[[env]]\nname = \"GC_REGION\"\nrequired = true\n[[env]]\nname = \"DB\"\nrequired = true\nsecret = true\n[[env]]\nname = \"LOG\"\nrequired = false\n[[env]]\nname = \"ID\"\nrequired = true\ndefault_from = \"HOSTNAME\"\n";

    fn run(env: &str, cm: &str) -> Vec<Finding> {
        let dir = tempfile::tempdir().unwrap();
        let d = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: gc}}\nspec:\n  template:\n    metadata:\n      labels: {{app.kubernetes.io/name: gc}}\n    spec:\n      containers:\n        - name: gc\n          env:\n{env}"
        );
        std::fs::create_dir_all(dir.path().join("services/gc")).unwrap();
        std::fs::write(
            dir.path().join("services/gc/config-contract.toml"),
            CONTRACT,
        )
        .unwrap();
        std::fs::write(dir.path().join("d.yaml"), d).unwrap();
        std::fs::write(
            dir.path().join("cm.yaml"),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: gc}}\ndata:\n{cm}"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("s.yaml"),
            "apiVersion: v1\nkind: Secret\nmetadata: {name: gc}\nstringData: {DB: ''}\n",
        )
        .unwrap();
        crate::rules::testing::check_dir(&EnvContract, dir.path(), &Config::dark_tower())
    }

    const GOOD: &str = "            - {name: GC_REGION, valueFrom: {configMapKeyRef: {name: gc, key: GC_REGION}}}\n            - {name: DB, valueFrom: {secretKeyRef: {name: gc, key: DB}}}\n";

    #[test]
    fn required_variables_must_be_provided() {
        assert!(run(GOOD, "  GC_REGION: eu\n").is_empty());
        let out = run(
            "            - {name: DB, valueFrom: {secretKeyRef: {name: gc, key: DB}}}\n",
            "  GC_REGION: eu\n",
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].message,
            "Deployment/gc does not set GC_REGION, which gc requires"
        );
        assert_eq!(out[0].primary.span.start.line, 11, "at `env:`");
    }

    #[test]
    fn a_renamed_configmap_key_is_found_at_the_rename() {
        let out = run(GOOD, "  GC_REGON: eu\n");
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].primary.message, "`GC_REGON`, not `GC_REGION`");
        assert_eq!(out[0].primary.span.start.line, 5);
        assert_eq!(out[0].secondary[0].message, "read here");
    }

    #[test]
    fn a_misspelt_key_read_is_found_at_the_read_with_a_did_you_mean() {
        let env = "            - name: GC_REGION\n              valueFrom: {configMapKeyRef: {name: gc, key: GC_REGON}}\n            - {name: DB, valueFrom: {secretKeyRef: {name: gc, key: DB}}}\n";
        let out = run(env, "  GC_REGION: eu\n");
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].primary.message, "not a key of ConfigMap gc");
        assert!(
            out[0].message.ends_with("; did you mean `GC_REGION`?"),
            "{}",
            out[0].message
        );
        assert_eq!(out[0].secondary[0].message, "`GC_REGION` is defined here");
        assert_eq!(out[0].secondary[0].span.start.line, 5);
    }

    #[test]
    fn secrets_come_from_secrets() {
        let env = "            - {name: GC_REGION, value: eu}\n            - {name: DB, value: postgres://}\n";
        let out = run(env, "  X: y\n");
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].message,
            "Deployment/gc takes the secret DB from a literal value"
        );
    }
}
