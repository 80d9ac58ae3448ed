use crate::diag::{Finding, Label};
use crate::model::Resource;
use crate::rules::{Context, Rule, RuleMeta, Scope, declare_rule};
use crate::schema::validate::{Options, Schema, Validator};
use crate::schema::{Catalog, Ref};
use crate::workspace::Role;

use super::{Lookup, Resolved, describe, resolve};

declare_rule! {
    /// ## What it does
    /// Validates every object, and every patch of one, against the exact
    /// schema of its `apiVersion` and `kind`: the Kubernetes release the
    /// cluster runs (`kubernetes-version` in `dtlint.toml`, per environment
    /// if they differ; the newest release dtlint knows otherwise), Flux's
    /// CRDs, and the CustomResourceDefinitions the repository holds. It
    /// reports, each at the key or value to edit (through overlays, at the
    /// patch line that wrote it):
    ///
    /// - a field the schema does not have, with the closest real one;
    /// - a value of the wrong type (a string where an integer belongs);
    /// - a value outside an enum, a pattern, a format (`date-time`,
    ///   `duration`, a quantity) or a range;
    /// - a required field missing from a whole object (not from a patch);
    /// - a CRD validation rule the object breaks;
    /// - a kind its API group does not have (`kind: Deploymnet`).
    ///
    /// `x-kubernetes-int-or-string`, `x-kubernetes-preserve-unknown-fields`
    /// and embedded resources are honoured. SOPS-encrypted values and the
    /// `sops` block are not type-checked, and a Flux `${VAR}` placeholder is
    /// accepted wherever a scalar goes (`flux-substitute-unset` checks that
    /// it is set). A CRD's CEL rules (`x-kubernetes-validations`) are
    /// evaluated on whole objects, with the rule's message; the ones that
    /// need Kubernetes' own CEL functions or the previous object
    /// (`oldSelf`) are not, and `check --verbose` says how many and why.
    ///
    /// ## Why is this bad?
    /// The API server rejects an object with a wrong type or a bad enum, and
    /// Flux stalls on it; an unknown field is rejected under strict field
    /// validation or silently dropped, so `replics: 3` runs one replica.
    /// Either way the mistake surfaces in the cluster, long after the
    /// pull request was merged.
    ///
    /// ## Example
    /// ```yaml
    /// apiVersion: apps/v1
    /// kind: Deployment
    /// spec:
    ///   replics: 3            # not a field
    ///   strategy:
    ///     type: Rolling       # not RollingUpdate or Recreate
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// apiVersion: apps/v1
    /// kind: Deployment
    /// spec:
    ///   replicas: 3
    ///   strategy:
    ///     type: RollingUpdate
    /// ```
    ///
    /// ## References
    /// - API reference: <https://kubernetes.io/docs/reference/kubernetes-api/>
    /// - Strict field validation: <https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation>
    /// - Structural schemas and pruning: <https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema>
    pub struct SchemaInvalid {
        id: "schema-invalid",
        category: "schema",
        severity: Error,
        summary: "an object does not match its schema: unknown field, wrong type, bad value, missing field",
    }
}

/// A kind its API group does not have: one finding at `kind`.
fn unknown_kind(catalog: &Catalog, r: &Resource<'_>, out: &mut Vec<Finding>) {
    let group = r.group();
    let kinds = catalog.kinds_of_group(group);
    if kinds.contains(&r.kind) {
        // A version question, for `api-removed`.
        return;
    }
    let Some(kind) = r.root.get("kind") else {
        return;
    };
    let name = if group.is_empty() {
        "the core API group".to_string()
    } else {
        format!("the API group `{group}`")
    };
    let mut f = Finding::new(
        SchemaInvalid::META.id,
        Label::new(r.file, kind.span, "unknown kind"),
        format!("{name} has no kind `{}`", r.kind),
    );
    f = match crate::suggest::closest(r.kind, kinds.iter().copied()) {
        Some(near) => f.help(format!("Did you mean `{near}`?")),
        None => f.help("Check the kind's spelling and its apiVersion."),
    };
    out.push(f);
}

impl Rule for SchemaInvalid {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn scope(&self) -> Option<Scope> {
        Some(Scope::Documents)
    }

    fn check_object(&self, ctx: &Context<'_>, r: &Resource<'_>, out: &mut Vec<Finding>) {
        let Some(Resolved {
            catalog,
            release,
            lookup,
            ..
        }) = resolve(ctx, r)
        else {
            return;
        };
        let (schema, arena, crd) = match lookup {
            Lookup::Kube(n) => (n, catalog.nodes.as_slice(), false),
            Lookup::Crd(c, arena) => (c.root, arena, true),
            Lookup::Unserved => return unknown_kind(catalog, r, out),
            Lookup::Unknown => return,
        };
        let opts = Options {
            whole: r.is_complete(),
            patch: r.role == Role::Patch,
            sops: r.root.get("sops").is_some(),
        };
        let mut problems = Vec::new();
        let schema = Schema {
            root: Ref::Node(schema),
            arena,
            crd,
        };
        Validator::new(catalog, release).object(r.root, schema, &describe(r), opts, &mut problems);
        for p in problems {
            let mut f = Finding::new(
                Self::META.id,
                Label::new(r.file, p.span, p.label),
                p.message,
            );
            if let Some(h) = p.help {
                f = f.help(h);
            }
            f.replacement = p
                .replacement
                .map(|(text, safe)| crate::diag::Replacement::text(text, safe));
            out.push(f);
        }
    }
}
