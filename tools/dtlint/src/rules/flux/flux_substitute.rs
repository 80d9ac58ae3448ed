use dtlint_yaml::Span;

use crate::diag::{Finding, Label};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};
use crate::source::FileId;

declare_rule! {
    /// ## What it does
    /// In rendered mode, applies each Flux Kustomization's
    /// `spec.postBuild.substitute` and `substituteFrom` (the ConfigMaps and
    /// Secrets of the repository) to its build, as kustomize-controller
    /// does, and reports every `${NAME}` left without a value and without a
    /// default, at the line that uses it. Variables dtlint cannot read (held
    /// by a SOPS-encrypted Secret, or by a ConfigMap or Secret a controller
    /// makes or that lives outside the repository) are not reported.
    ///
    /// ## Why is this bad?
    /// Since kustomize-controller 1.9 (Flux 2.9), `StrictPostBuildSubstitutions`
    /// is on by default and the whole Kustomization fails to build. With the
    /// gate off, Flux replaces the variable with an empty string and applies
    /// the result: `name: ${APP}-config` becomes `name: -config`,
    /// `replicas: ${REPLICAS}` becomes `replicas:` (null), and the cluster
    /// either rejects the object or runs something nobody wrote. A shell
    /// script in a ConfigMap is the usual victim: its own `${VAR}` must be
    /// written `$${VAR}`.
    ///
    /// ## Example
    /// ```yaml
    /// # clusters/production/apps.yaml
    /// spec:
    ///   path: ./apps/atuin
    ///   postBuild:
    ///     substitute:
    ///       APP: atuin
    /// # apps/atuin/pvc.yaml
    /// storageClassName: ${STORAGE_CLASS}
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    ///     substitute:
    ///       APP: atuin
    ///       STORAGE_CLASS: ceph-block
    /// # or give the variable a default where it is used:
    /// storageClassName: ${STORAGE_CLASS:=ceph-block}
    /// ```
    ///
    /// ## References
    /// - Flux post-build variable substitution: <https://fluxcd.io/flux/components/kustomize/kustomizations/#post-build-variable-substitution>
    pub struct FluxSubstituteUnset {
        id: "flux-substitute-unset",
        category: "flux",
        severity: Error,
        summary: "a `${NAME}` that Flux's post-build substitution has no value for",
        needs: Repository,
    }
}

declare_rule! {
    /// ## What it does
    /// In rendered mode, reports a `${NAME}` whose value, substituted by
    /// Flux's post-build substitution, makes the object invalid YAML: a
    /// value such as `>=1.0.0`, `*.example.com` or `a: b` in place of an
    /// unquoted placeholder.
    ///
    /// ## Why is this bad?
    /// kustomize-controller substitutes into the object's YAML text and
    /// parses the result; when that fails, the whole Kustomization fails
    /// and nothing in it is applied, including the changes that had nothing
    /// to do with the variable.
    ///
    /// ## Example
    /// ```yaml
    ///       version: ${CHART_VERSION}    # CHART_VERSION: ">=1.0.0"
    /// ```
    ///
    /// ## Use instead
    /// Quote the value itself: kustomize drops the quotes around a
    /// placeholder (`"${CHART_VERSION}"`) before Flux substitutes, so they
    /// do not help (fluxcd/kustomize-controller#554).
    /// ```yaml
    ///   postBuild:
    ///     substitute:
    ///       CHART_VERSION: '">=1.0.0"'
    /// ```
    ///
    /// ## References
    /// - Flux post-build variable substitution: <https://fluxcd.io/flux/components/kustomize/kustomizations/#post-build-variable-substitution>
    pub struct FluxSubstituteInvalid {
        id: "flux-substitute-invalid",
        category: "flux",
        severity: Error,
        summary: "a post-build substitution that makes an object invalid YAML",
        needs: Repository,
    }
}

impl Rule for FluxSubstituteUnset {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        report(Self::META.id, ctx, out, |r| {
            r.unset_vars
                .iter()
                .map(|name| {
                    let who = who(&r.target);
                    Problem {
                        name: name.clone(),
                        message: format!(
                            "`${{{name}}}` has no value in the post-build substitution of {who}: Flux fails the build (or, without strict substitution, writes an empty string)"
                        ),
                        label: "no value for this".into(),
                        help: format!(
                            "Set `{name}` under `spec.postBuild.substitute` (or in a ConfigMap or Secret of `substituteFrom`), give it a default where it is used (`${{{name}:=value}}`), or, if it is meant for a shell or another tool, escape it as `$${{{name}}}`."
                        ),
                    }
                })
                .collect()
        });
    }
}

impl Rule for FluxSubstituteInvalid {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        report(Self::META.id, ctx, out, |r| {
            r.breaking_vars
                .iter()
                .map(|(name, value)| {
                    let who = who(&r.target);
                    Problem {
                        name: name.clone(),
                        message: format!(
                            "`${{{name}}}` becomes `{value}`, which is not valid YAML here: Flux fails {who}"
                        ),
                        label: format!("`{value}` lands here unquoted"),
                        help: format!(
                            "kustomize drops the quotes around a placeholder before Flux substitutes, so quoting `${{{name}}}` does not help: quote the value itself (`{name}: '\"{value}\"'`)."
                        ),
                    }
                })
                .collect()
        });
    }
}

/// One variable's problem, before it is placed.
struct Problem {
    name: String,
    message: String,
    label: String,
    help: String,
}

fn who(t: &crate::render::Target) -> String {
    t.flux.as_ref().map_or_else(
        || t.display.clone(),
        |f| format!("Kustomization {}", f.name),
    )
}

/// Place each problem `of` a rendered build at every line of the files it
/// read that uses the variable (else at the Flux Kustomization's
/// `spec.path`), once per place with every environment named.
fn report(
    rule: &'static str,
    ctx: &Context<'_>,
    out: &mut Vec<Finding>,
    of: impl Fn(&crate::render::Rendered) -> Vec<Problem>,
) {
    let ws = ctx.index.ws;
    let mut found: Vec<Finding> = Vec::new();
    for rendered in &ctx.index.render.rendered {
        let problems = of(rendered);
        if problems.is_empty() {
            continue;
        }
        let t = &rendered.target;
        // The files the build read objects from, in order.
        let mut origins: Vec<FileId> = Vec::new();
        for p in &rendered.provenance {
            if let Some(id) = p.origin.as_deref().and_then(|o| ws.sources.find_abs(o))
                && !origins.contains(&id)
            {
                origins.push(id);
            }
        }
        for p in problems {
            let mut at: Vec<(FileId, Span)> = origins
                .iter()
                .flat_map(|&id| uses(ws.sources.get(id), &p.name).map(move |s| (id, s)))
                .collect();
            if at.is_empty()
                && let Some(requested) = t.requested_by
            {
                at.push(requested);
            }
            for (file, span) in at {
                if let Some(f) = found.iter_mut().find(|f| {
                    f.primary.file == file && f.primary.span == span && f.message == p.message
                }) {
                    if !f.envs.contains(&t.env) {
                        f.envs.push(t.env.clone());
                    }
                    continue;
                }
                let mut f = Finding::new(
                    rule,
                    Label::new(file, span, p.label.clone()),
                    p.message.clone(),
                )
                .help(p.help.clone());
                f.envs.push(t.env.clone());
                if let Some((rf, rs)) = t.requested_by.filter(|r| *r != (file, span)) {
                    f = f.with(Label::new(rf, rs, format!("built by {}", who(t))));
                }
                found.push(f);
            }
        }
    }
    out.extend(found);
}

/// Where file `f` writes `${name}` (with or without an operator).
fn uses<'f>(f: &'f crate::source::SourceFile, name: &'f str) -> impl Iterator<Item = Span> + 'f {
    let needle = format!("${{{name}");
    let text = f.text.as_str();
    let mut from = 0;
    std::iter::from_fn(move || {
        loop {
            let i = from + text[from..].find(&needle)?;
            from = i + needle.len();
            // `${APP}` but not `${APPS}`; an escaped `$${APP}` is no use.
            let next = text.as_bytes().get(from).copied();
            let escaped = i > 0 && text.as_bytes()[i - 1] == b'$';
            if escaped || next.is_some_and(|c| c == b'_' || c.is_ascii_alphanumeric()) {
                continue;
            }
            let end = text[from..].find('}').map_or(from, |j| from + j + 1);
            return Some(Span {
                start: f.lines.pos_of_offset(text, i),
                end: f.lines.pos_of_offset(text, end),
            });
        }
    })
}
