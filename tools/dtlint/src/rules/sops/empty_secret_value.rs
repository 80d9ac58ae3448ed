use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::sops::{declared_keys, environment_of, reached_by_env, source_secrets};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// For every environment in `dtlint.toml`, merges each Secret the
    /// environment builds with the environment's patches of it (plaintext
    /// development placeholders and SOPS patches alike) and reports every key
    /// whose value is still empty, at the node that left it empty: the
    /// patch's value, or the base value no patch replaces. A SOPS value
    /// counts as set when it is encrypted (sops never encrypts an empty
    /// string); when the run has a key and the patch decrypts,
    /// `secret-key-missing` judges it instead, on the decrypted values.
    ///
    /// ## Why is this bad?
    /// The base declares every key with an empty value on purpose, so that
    /// an environment that forgets one is caught here and not by a service
    /// that starts without its database password.
    ///
    /// ## Example
    /// ```yaml
    /// # overlays/development/redis/patch-secret.yaml
    /// stringData:
    ///   REDIS_PASSWORD: ""
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// stringData:
    ///   REDIS_PASSWORD: dev-only-not-a-secret
    /// ```
    ///
    /// ## References
    /// - Kubernetes Secrets: <https://kubernetes.io/docs/concepts/configuration/secret/>
    pub struct EmptySecretValue {
        id: "empty-secret-value",
        category: "sops",
        severity: Error,
        summary: "a Secret key is empty in an environment after its patches are applied",
    }
}

fn is_empty(n: &Node) -> bool {
    n.is_null() || n.as_str() == Some("")
}

impl Rule for EmptySecretValue {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let all = source_secrets(ctx.index);
        for env in ctx.config.environments.keys() {
            let reached = reached_by_env(ctx, env);
            let in_env = |r: &Resource<'_>| environment_of(ctx, r.file) == Some(env.as_str());
            let patches: Vec<&Resource<'_>> = all
                .iter()
                .filter(|r| !r.is_complete() && in_env(r))
                .collect();
            // The Secrets the environment builds: base Secrets it includes,
            // and complete Secrets of its own.
            let mut targets: Vec<&Resource<'_>> = Vec::new();
            for r in all.iter().filter(|r| r.is_complete()) {
                let included = reached.contains(&r.file) || in_env(r);
                if included && !targets.iter().any(|t| t.file == r.file && t.doc == r.doc) {
                    targets.push(r);
                }
            }
            for base in targets {
                let mine: Vec<&&Resource<'_>> = patches
                    .iter()
                    .filter(|p| p.name == base.name && reached.contains(&p.file))
                    .collect();
                // A decrypted SOPS patch is secret-key-missing's to judge.
                if mine.iter().any(|p| {
                    ctx.index
                        .sops
                        .entry(p.file)
                        .is_some_and(|e| e.plain().is_some())
                }) {
                    continue;
                }
                for (key, key_node, base_value) in declared_keys(base.root) {
                    let last = mine.iter().rev().find_map(|p| {
                        declared_keys(p.root)
                            .into_iter()
                            .find(|(k, _, _)| *k == key)
                            .map(|(_, _, v)| (p, v))
                    });
                    let f = match last {
                        Some((p, v)) if is_empty(v) => Finding::new(
                            Self::META.id,
                            Label::new(p.file, v.span, "empty value"),
                            format!(
                                "Secret `{}` key `{key}` is empty in the `{env}` environment",
                                base.name
                            ),
                        )
                        .with(Label::new(
                            base.file,
                            key_node.span,
                            "declared in the base Secret here",
                        )),
                        None if is_empty(base_value) => {
                            let mut f = Finding::new(
                                Self::META.id,
                                Label::new(
                                    base.file,
                                    base_value.span,
                                    format!("empty, and no `{env}` patch sets it"),
                                ),
                                format!(
                                    "Secret `{}` key `{key}` is empty in the `{env}` environment",
                                    base.name
                                ),
                            );
                            if let Some(p) = mine.last() {
                                let span = ["stringData", "data"]
                                    .iter()
                                    .find_map(|k| p.root.entry(k))
                                    .map_or_else(|| p.anchor_span(), |e| e.key.span);
                                f = f.with(Label::new(
                                    p.file,
                                    span,
                                    format!("the `{env}` patch of `{}`", base.name),
                                ));
                            }
                            f
                        }
                        Some(_) | None => continue,
                    };
                    let mut f = f.help(format!(
                        "Give `{key}` a value in the `{env}` overlay's patch of Secret `{}` (a SOPS-encrypted one outside development).",
                        base.name
                    ));
                    f.envs = vec![env.clone()];
                    out.push(f);
                }
            }
        }
    }
}
