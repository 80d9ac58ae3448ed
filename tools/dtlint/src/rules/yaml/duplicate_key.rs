use dtlint_yaml::ProblemKind;

use crate::diag::{Finding, Label};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports a mapping that repeats a key.
    ///
    /// ## Why is this bad?
    /// YAML forbids duplicate keys, but tools disagree on what to do with them:
    /// some keep the first value, some the last, and Kubernetes' strict decoder
    /// rejects the object. Which value you get depends on the tool, so the file
    /// means different things in review, in `kustomize build` and in the cluster.
    ///
    /// ## Example
    /// ```yaml
    /// resources:
    ///   limits:
    ///     memory: 256Mi
    ///   limits:
    ///     cpu: 100m
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// resources:
    ///   limits:
    ///     memory: 256Mi
    ///     cpu: 100m
    /// ```
    ///
    /// ## References
    /// - YAML 1.2.2, section 3.2.1.1 (keys are unique): <https://yaml.org/spec/1.2.2/#3211-nodes>
    pub struct DuplicateKey {
        id: "duplicate-key",
        category: "yaml",
        severity: Error,
        summary: "a mapping repeats a key",
    }
}

impl Rule for DuplicateKey {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let ws = ctx.index.ws;
        for (id, _) in ws.sources.iter() {
            for p in ws
                .parsed(id)
                .problems
                .iter()
                .filter(|p| p.kind == ProblemKind::DuplicateKey)
            {
                let mut f = Finding::new(
                    Self::META.id,
                    Label::new(id, p.span, "repeated here"),
                    p.message.clone(),
                )
                .help("Merge the two entries into one; tools disagree on which value wins.");
                if let Some((span, msg)) = &p.related {
                    f = f.with(Label::new(id, *span, msg.clone()));
                }
                out.push(f);
            }
        }
    }
}
