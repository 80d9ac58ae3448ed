use crate::diag::{Finding, Label};
use crate::rules::sops::{
    base_secrets, declared_keys, environment_of, plain_is_empty, plain_secrets, reached_by_env,
    source_secrets,
};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// With an age key, decrypts each environment's SOPS patch of a Secret
    /// and checks that every key the base Secret declares (its `data` and
    /// `stringData` keys, empty in the base by convention) gets a non-empty
    /// value. A missing key is reported at the patch's `stringData:`, an
    /// empty value at the value, each with a secondary label at the key in
    /// the base Secret. The base Secret is the one with the same name that
    /// the environment's kustomizations include from outside its overlay
    /// directory. Without a key this rule reports nothing.
    ///
    /// ## Why is this bad?
    /// The base declares every key the service reads. A key left out of the
    /// encrypted patch keeps the base's empty value, and the service starts
    /// with an empty password or signing key: a crash loop at best, an
    /// unauthenticated database connection at worst.
    ///
    /// ## Example
    /// ```yaml
    /// # base/ac-service/secret.yaml declares AC_MASTER_KEY and DATABASE_URL;
    /// # overlays/staging/ac-service/secret.sops.yaml, decrypted:
    /// stringData:
    ///   DATABASE_URL: postgres://...
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// stringData:
    ///   AC_MASTER_KEY: <the staging master key>
    ///   DATABASE_URL: postgres://...
    /// ```
    /// edited with `sops overlays/staging/ac-service/secret.sops.yaml`.
    ///
    /// ## References
    /// - Kustomize patches: <https://kubectl.docs.kubernetes.io/references/kustomize/kustomization/patches/>
    pub struct SecretKeyMissing {
        id: "secret-key-missing",
        category: "sops",
        severity: Error,
        summary: "a SOPS patch gives a key of the base Secret no value, or an empty one",
        needs: Repository,
    }
}

impl Rule for SecretKeyMissing {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let ws = ctx.index.ws;
        let all = source_secrets(ctx.index);
        for e in &ctx.index.sops.files {
            let secrets = plain_secrets(e);
            if secrets.is_empty() {
                continue;
            }
            let Some(env) = environment_of(ctx, e.id) else {
                continue;
            };
            let reached = reached_by_env(ctx, env);
            for s in &secrets {
                for base in base_secrets(ctx, all, env, &reached, s.name) {
                    for (key, key_node, _) in declared_keys(base.root) {
                        let base_label = Label::new(
                            base.file,
                            key_node.span,
                            "declared in the base Secret here",
                        );
                        let (span, what) = match s.value(key) {
                            None => (s.data_key_span().unwrap_or(s.root.span), "has no value for"),
                            Some(v) if plain_is_empty(v) => (v.span, "gives an empty value to"),
                            Some(_) => continue,
                        };
                        out.push(
                            Finding::new(
                                Self::META.id,
                                Label::new(e.id, span, format!("`{key}` needed here")),
                                format!("the `{env}` SOPS patch of Secret `{}` {what} `{key}`", s.name),
                            )
                            .with(base_label)
                            .help(format!(
                                "Set `{key}` with `sops {}` (or decrypt, edit and `dtlint sops encrypt --in-place`).",
                                ws.sources.get(e.id).path
                            )),
                        );
                    }
                }
            }
        }
    }
}
