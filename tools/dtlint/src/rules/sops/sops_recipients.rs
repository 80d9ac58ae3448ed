use crate::diag::{Finding, Label};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Checks that every SOPS file is encrypted to exactly the age
    /// recipients of the `.sops.yaml` creation rule that covers it (first
    /// match wins, `path_regex` against the path relative to `.sops.yaml`),
    /// in the same key groups. The finding names both lists: the file's
    /// `sops.age` entries and the rule's.
    ///
    /// ## Why is this bad?
    /// A missing recipient is a cluster (or CI) that cannot decrypt the
    /// file: Flux fails the reconciliation at deploy time, not at review. An
    /// extra recipient is someone who can read production secrets and should
    /// not, typically a key that was rotated out of the rule but never out
    /// of the files.
    ///
    /// ## Example
    /// ```yaml
    /// # .sops.yaml: production cluster + CI
    /// sops:
    ///   age:
    ///     - recipient: age10uxfrnspkpsze382m7d5vd6p4cgppz0f8c6c0fpzxrd07ynywfdscecpzp
    ///       enc: |
    ///         ...
    ///     # the CI key is missing: CI cannot verify this file
    /// ```
    ///
    /// ## Use instead
    /// ```sh
    /// dtlint sops updatekeys --yes overlays/production/ac-service/secret.sops.yaml
    /// ```
    ///
    /// ## References
    /// - `sops updatekeys`: <https://getsops.io/docs/#updatekeys-command>
    pub struct SopsRecipients {
        id: "sops-recipients",
        category: "sops",
        severity: Error,
        summary: "a SOPS file's age recipients differ from its .sops.yaml rule's",
        needs: Repository,
    }
}

/// Key groups with their recipients sorted, for comparison.
fn groups(g: Vec<Vec<&str>>) -> Vec<Vec<&str>> {
    g.into_iter()
        .map(|mut v| {
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect()
}

fn list(items: &[&str]) -> String {
    if items.is_empty() {
        "no age recipient".into()
    } else {
        items.join(", ")
    }
}

impl Rule for SopsRecipients {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let sops = &ctx.index.sops;
        let Some(config) = &sops.config else { return };
        for e in &sops.files {
            let (Some(meta), Some(rule)) = (e.file.metadata(), sops.rule_of(e)) else {
                continue;
            };
            let have = groups(
                meta.key_groups
                    .iter()
                    .map(|g| g.age.iter().map(|s| s.recipient.value.trim()).collect())
                    .collect(),
            );
            let want = groups(
                rule.key_groups
                    .iter()
                    .map(|g| g.age.iter().map(|s| s.value.trim()).collect())
                    .collect(),
            );
            if have == want {
                continue;
            }
            let have_all: Vec<&str> = meta
                .age_recipients()
                .map(|s| s.recipient.value.trim())
                .collect();
            let want_all: Vec<&str> = rule.age_recipients().map(|s| s.value.trim()).collect();
            let missing = want_all.iter().filter(|r| !have_all.contains(r)).count();
            let extra: Vec<&dtlint_sops::AgeStanza> = meta
                .age_recipients()
                .filter(|s| !want_all.contains(&s.recipient.value.trim()))
                .collect();
            let detail = match (missing, extra.len()) {
                (0, 0) => "the key groups differ".to_string(),
                (m, 0) => format!("{m} missing"),
                (0, x) => format!("{x} not in the rule"),
                (m, x) => format!("{m} missing, {x} not in the rule"),
            };
            // Point at the stanza to remove, else at the `sops.age` entries.
            let span = extra
                .first()
                .map(|s| s.recipient.span)
                .or_else(|| meta.age_recipients().next().map(|s| s.recipient.span))
                .unwrap_or(meta.span);
            let path = &ctx.index.ws.sources.get(e.id).path;
            out.push(
                Finding::new(
                    Self::META.id,
                    Label::new(e.id, span, format!("encrypted to {}", list(&have_all))),
                    format!(
                        "age recipients differ from `.sops.yaml` rule {} ({detail})",
                        rule.index + 1
                    ),
                )
                .with(Label::new(
                    config.file,
                    rule.span,
                    format!("rule {} encrypts to {}", rule.index + 1, list(&want_all)),
                ))
                .help(format!(
                    "Run `dtlint sops updatekeys --yes {path}` with a key that can decrypt the file to re-encrypt its data key to the rule's recipients."
                )),
            );
        }
    }
}
