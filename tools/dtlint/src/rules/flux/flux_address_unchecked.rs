use dtlint_yaml::Node;

use crate::diag::{Finding, Label};
use crate::model::{Resource, api_group};
use crate::rules::flux::applied_by;
use crate::rules::{Context, Merged, Rule, RuleMeta, declare_rule};

declare_rule! {
    /// ## What it does
    /// With the overlays rendered as Flux applies them: reports a `Service`
    /// of `type: LoadBalancer` or a Gateway API `Gateway` whose Flux
    /// Kustomization waits for it (`wait: true`, or `healthChecks` naming
    /// it) but has no `healthCheckExprs` entry for its kind, so Flux counts
    /// it ready before it has an address.
    ///
    /// ## Why is this bad?
    /// Flux judges readiness with kstatus. kstatus calls a LoadBalancer
    /// Service current as soon as it has a cluster IP, and a Gateway as soon
    /// as it exists (its `Programmed` condition is not read). A balancer
    /// whose static address does not exist, is in use, or whose quota is
    /// spent stays `<pending>` for ever while the Kustomization says
    /// `Ready`, its dependants roll out, and no alert fires: the endpoint
    /// is simply unreachable from outside. A `healthCheckExprs` entry makes
    /// Flux wait for the address and report a timeout when it never comes.
    ///
    /// An environment whose clusters have no load balancer controller (a
    /// kind cluster) can turn the rule off for itself in `dtlint.toml`.
    ///
    /// ## Example
    /// ```yaml
    /// kind: Kustomization            # kustomize.toolkit.fluxcd.io
    /// spec:
    ///   path: ./overlays/production/media-handler   # holds type: LoadBalancer Services
    ///   wait: true
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// spec:
    ///   wait: true
    ///   healthCheckExprs:
    ///     - apiVersion: v1
    ///       kind: Service
    ///       current: "spec.type != 'LoadBalancer' || status.?loadBalancer.?ingress.orValue([]).size() > 0"
    /// ```
    ///
    /// ## References
    /// - Flux health checks with CEL: <https://fluxcd.io/flux/components/kustomize/kustomizations/#health-check-expressions>
    /// - kstatus rules: <https://github.com/kubernetes-sigs/cli-utils/blob/master/pkg/kstatus/README.md>
    pub struct FluxAddressUnchecked {
        id: "flux-address-unchecked",
        category: "flux",
        severity: Error,
        summary: "Flux waits for a LoadBalancer Service or Gateway but counts it ready before it has an address (no healthCheckExprs for its kind)",
        needs: Repository,
    }
}

/// How Flux can judge one kind that kstatus cannot: the CEL expression of
/// a `healthCheckExprs` entry, and what an object of the kind lacks until
/// it holds.
pub(crate) struct Judged {
    pub group: &'static str,
    pub kind: &'static str,
    /// Only objects of the kind that need it (a Service of type LoadBalancer).
    pub applies: fn(&Resource<'_>) -> bool,
    pub api_version: &'static str,
    pub current: &'static str,
    /// What has not happened yet when kstatus already says ready: "before
    /// {until}".
    pub until: &'static str,
}

fn load_balancer(r: &Resource<'_>) -> bool {
    r.spec().and_then(|s| s.get("type")).and_then(Node::as_str) == Some("LoadBalancer")
}

fn always(_: &Resource<'_>) -> bool {
    true
}

const ADDRESSES: &[Judged] = &[
    Judged {
        group: "",
        kind: "Service",
        applies: load_balancer,
        api_version: "v1",
        current: "spec.type != 'LoadBalancer' || status.?loadBalancer.?ingress.orValue([]).size() > 0",
        until: "an address is assigned (status.loadBalancer.ingress)",
    },
    Judged {
        group: "gateway.networking.k8s.io",
        kind: "Gateway",
        applies: always,
        api_version: "gateway.networking.k8s.io/v1",
        current: "status.?conditions.orValue([]).exists(c, c.type == 'Programmed' && c.status == 'True' && c.?observedGeneration.orValue(metadata.generation) == metadata.generation)",
        until: "an address is programmed (condition Programmed)",
    },
];

impl Rule for FluxAddressUnchecked {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        check_kinds(ctx, Self::META.id, ADDRESSES, out);
    }
}

/// The objects one Flux Kustomization waits for without an expression for
/// their kind.
struct Unchecked<'i, 'a> {
    kustomization: &'i Resource<'a>,
    waiting_at: &'a Node,
    judged: &'static Judged,
    objects: Vec<&'i Resource<'a>>,
    env: Option<&'a str>,
}

/// Report each Flux Kustomization that waits for objects of a kind in
/// `table` without a `healthCheckExprs` entry for it: once per
/// Kustomization and kind, at its `wait` (or the `healthChecks` item).
pub(crate) fn check_kinds(
    ctx: &Context<'_>,
    id: &'static str,
    table: &'static [Judged],
    out: &mut Vec<Finding>,
) {
    let idx = ctx.index;
    // By (Kustomization, kind, environment), in the order first seen.
    let mut groups: Vec<Unchecked<'_, '_>> = Vec::new();
    for r in idx.objects().filter(|r| r.env.is_some()) {
        let Some(judged) = table
            .iter()
            .find(|j| j.kind == r.kind && j.group == r.group() && (j.applies)(r))
        else {
            continue;
        };
        let Some(k) = applied_by(idx, r) else {
            continue;
        };
        let spec = k.spec();
        let wait = spec.and_then(|s| s.get("wait"));
        let listed = spec
            .and_then(|s| s.get("healthChecks"))
            .into_iter()
            .flat_map(Node::items)
            .find(|h| {
                h.get("kind").and_then(Node::as_str) == Some(r.kind)
                    && h.get("name").and_then(Node::as_str) == Some(r.name)
                    && api_group(h.get("apiVersion").and_then(Node::as_str).unwrap_or(""))
                        == r.group()
            });
        let waits = wait.filter(|w| w.as_bool() == Some(true));
        let Some(waiting_at) = waits.or(listed) else {
            continue;
        };
        let checked = spec
            .and_then(|s| s.get("healthCheckExprs"))
            .into_iter()
            .flat_map(Node::items)
            .any(|e| {
                e.get("kind").and_then(Node::as_str) == Some(r.kind)
                    && api_group(e.get("apiVersion").and_then(Node::as_str).unwrap_or(""))
                        == r.group()
                    && e.get("current")
                        .and_then(Node::as_str)
                        .is_some_and(|c| !c.trim().is_empty())
            });
        if checked {
            continue;
        }
        let same = |g: &&mut Unchecked<'_, '_>| {
            g.kustomization.file == k.file
                && g.kustomization.doc == k.doc
                && std::ptr::eq(g.judged, judged)
                && g.env == r.env
        };
        if let Some(g) = groups.iter_mut().find(same) {
            g.objects.push(r);
        } else {
            groups.push(Unchecked {
                kustomization: k,
                waiting_at,
                judged,
                objects: vec![r],
                env: r.env,
            });
        }
    }
    let mut merged = Merged::default();
    for g in groups {
        let j = g.judged;
        let kind = j.kind;
        let names: Vec<String> = g.objects.iter().map(|o| o.id()).collect();
        let k = g.kustomization;
        let mut f = Finding::new(
            id,
            Label::new(
                k.file,
                g.waiting_at.span,
                "waits without a healthCheckExprs entry",
            ),
            format!(
                "Flux Kustomization {} waits for {}, but without a healthCheckExprs entry for {kind} it counts {} ready before {}",
                k.name,
                names.join(", "),
                if names.len() == 1 { "it" } else { "them" },
                j.until,
            ),
        )
        .help(format!(
            "Add to Flux Kustomization {}: `healthCheckExprs: [{{apiVersion: {}, kind: {kind}, current: \"{}\"}}]`.",
            k.name, j.api_version, j.current
        ));
        for o in &g.objects {
            let at = if o.kind == "Service" {
                o.spec().and_then(|s| s.get("type"))
            } else {
                o.metadata().and_then(|m| m.get("name"))
            }
            .map_or_else(|| o.anchor_span(), |n| n.span);
            f = f.with(Label::new(
                o.file,
                at,
                format!("{}: ready to Flux before {}", o.id(), j.until),
            ));
        }
        merged.add(f, g.env);
    }
    out.extend(merged.into_findings());
}
