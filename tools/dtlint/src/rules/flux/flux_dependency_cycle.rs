use std::collections::BTreeMap;

use dtlint_yaml::{Node, Span};

use crate::diag::{Finding, Label};
use crate::netpol::Namespaces;
use crate::rules::Merged;
use crate::rules::flux::{Ref, all, applied_by, resolve};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};
use crate::source::FileId;

declare_rule! {
    /// ## What it does
    /// Reports Flux Kustomizations (or HelmReleases) whose `dependsOn`
    /// entries form a cycle, at the entry of the first object of the cycle,
    /// with the other entries as secondary labels.
    ///
    /// With the overlays rendered it also follows what each Flux
    /// Kustomization applies: a Kustomization with `wait: true` (or a
    /// `healthChecks` entry) is ready only once the objects it applies are,
    /// and an object exists only once the Kustomization that applies it has
    /// started, which is after everything in its `dependsOn` is ready. So a
    /// HelmRelease that waits for one applied by a later Kustomization (one
    /// that depends on its own) closes a cycle too; it is reported at that
    /// HelmRelease's `dependsOn` entry.
    ///
    /// ## Why is this bad?
    /// Each object waits for the next one to become ready; none ever does,
    /// so nothing in the cycle is applied. Flux reports a dependency that is
    /// "not ready" and a timeout, never the cycle.
    ///
    /// ## Example
    /// ```yaml
    /// kind: Kustomization
    /// metadata: {name: postgres}
    /// spec:
    ///   dependsOn: [{name: ac-service}]   # and ac-service depends on postgres
    /// ---
    /// # applied by Kustomization `platform` (wait: true)
    /// kind: HelmRelease
    /// metadata: {name: flagger}
    /// spec:
    ///   dependsOn: [{name: linkerd, namespace: linkerd}]   # applied by `mesh`,
    ///                                                      # which depends on `platform`
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    /// kind: Kustomization
    /// metadata: {name: postgres}
    /// spec:
    ///   dependsOn: [{name: namespace}]
    /// ```
    ///
    /// ## References
    /// - Kustomization dependencies: <https://fluxcd.io/flux/components/kustomize/kustomizations/#dependencies>
    /// - SPEC.md, "Flux": `dependsOn` follows the service graph
    pub struct FluxDependencyCycle {
        id: "flux-dependency-cycle",
        category: "flux",
        severity: Error,
        summary: "Flux dependsOn entries form a cycle",
        needs: Repository,
    }
}

/// One wait in the graph: `from` is ready only after `to` is.
#[derive(Clone, Copy)]
struct Edge {
    to: usize,
    /// Where the wait is written (none for a Kustomization's own start).
    at: Option<(FileId, Span)>,
    kind: EdgeKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum EdgeKind {
    /// A `dependsOn` entry.
    DependsOn,
    /// A Kustomization waits for what it applies (`wait`, `healthChecks`).
    Waits,
    /// An object exists once the Kustomization applying it has started.
    AppliedBy,
    /// A Kustomization is ready only after it started.
    Started,
}

struct Node_ {
    id: String,
    file: FileId,
    env: Option<String>,
    deps: Vec<Edge>,
}

impl Rule for FluxDependencyCycle {
    fn meta(&self) -> &'static RuleMeta {
        &Self::META
    }

    fn check(&self, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let idx = ctx.index;
        let namespaces = Namespaces::new(idx);
        let objs: Vec<_> = all(idx)
            .filter(|r| matches!(r.kind, "Kustomization" | "HelmRelease") && r.spec().is_some())
            .collect();
        let pos = |r: &crate::model::Resource<'_>| {
            objs.iter().position(|o| o.file == r.file && o.doc == r.doc)
        };
        // Node i is object i ready; node objs.len() + i is Flux
        // Kustomization i started (applying its path).
        let n = objs.len();
        let mut nodes: Vec<Node_> = Vec::with_capacity(2 * n);
        for r in &objs {
            let mut deps = Vec::new();
            for d in r
                .spec()
                .and_then(|s| s.get("dependsOn"))
                .into_iter()
                .flat_map(Node::items)
            {
                let Some(re) = Ref::read(d) else { continue };
                if let Some(t) = resolve(idx, &namespaces, r, r.group(), r.kind, &re).and_then(&pos)
                {
                    deps.push(Edge {
                        to: t,
                        at: Some((r.file, re.name_span())),
                        kind: EdgeKind::DependsOn,
                    });
                }
            }
            nodes.push(Node_ {
                id: format!("{}/{}", namespaces.of(r), r.name),
                file: r.file,
                env: r.env.map(str::to_string),
                deps,
            });
        }
        for i in 0..n {
            // A Kustomization's dependsOn holds back its start; its
            // readiness needs the start. Other objects' start nodes stay
            // without edges.
            let start_deps = if objs[i].kind == "Kustomization" {
                let deps = std::mem::take(&mut nodes[i].deps);
                nodes[i].deps.push(Edge {
                    to: n + i,
                    at: None,
                    kind: EdgeKind::Started,
                });
                deps
            } else {
                Vec::new()
            };
            nodes.push(Node_ {
                id: nodes[i].id.clone(),
                file: nodes[i].file,
                env: nodes[i].env.clone(),
                deps: start_deps,
            });
        }
        // What each Flux Kustomization applies, from the rendered builds.
        let creators: Vec<Option<usize>> = objs
            .iter()
            .map(|r| applied_by(idx, r).and_then(&pos))
            .collect();
        for (o, r) in objs.iter().enumerate() {
            let Some(creator) = creators[o] else {
                continue;
            };
            let k = objs[creator];
            let path = k
                .spec()
                .and_then(|s| s.get("path"))
                .map(|p| (k.file, p.span));
            nodes[o].deps.push(Edge {
                to: n + creator,
                at: path,
                kind: EdgeKind::AppliedBy,
            });
            if let Some(at) = waits_for(k, r) {
                nodes[creator].deps.push(Edge {
                    to: o,
                    at: Some((k.file, at)),
                    kind: EdgeKind::Waits,
                });
            }
        }
        // Only nodes of one strongly connected component can be on a cycle:
        // a repository without cycles costs one linear pass. Within a
        // component, each cycle once, found from its smallest member,
        // walking depth-first along edges that stay in the component; the
        // walk is bounded, so a pathological graph still ends.
        let mut graph = petgraph::Graph::<(), ()>::with_capacity(nodes.len(), 0);
        let ids: Vec<_> = (0..nodes.len()).map(|_| graph.add_node(())).collect();
        for (from, node) in nodes.iter().enumerate() {
            for e in &node.deps {
                graph.add_edge(ids[from], ids[e.to], ());
            }
        }
        let mut component = vec![usize::MAX; nodes.len()];
        for (c, members) in petgraph::algo::tarjan_scc(&graph).into_iter().enumerate() {
            let looped = members.len() == 1 && {
                let only = members[0].index();
                nodes[only].deps.iter().any(|e| e.to == only)
            };
            if members.len() > 1 || looped {
                for m in members {
                    component[m.index()] = c;
                }
            }
        }
        let mut reported: BTreeMap<Vec<usize>, ()> = BTreeMap::new();
        let mut cycles: Vec<Vec<usize>> = Vec::new();
        let mut budget: usize = 100_000;
        for start in 0..nodes.len() {
            if component[start] == usize::MAX {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            let mut path: Vec<usize> = vec![start];
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                if *next >= nodes[node].deps.len() || budget == 0 {
                    stack.pop();
                    path.pop();
                    continue;
                }
                budget -= 1;
                let target = nodes[node].deps[*next].to;
                *next += 1;
                if component[target] != component[start] {
                    continue;
                }
                if target == start {
                    let mut key = path.clone();
                    key.sort_unstable();
                    if reported.insert(key, ()).is_none() {
                        cycles.push(path.clone());
                    }
                } else if target > start && !path.contains(&target) {
                    stack.push((target, 0));
                    path.push(target);
                }
            }
        }
        // One finding per line to edit: the shortest cycle through it.
        cycles.sort_by_key(Vec::len);
        let mut merged = Merged::default();
        let mut at: std::collections::HashSet<(FileId, u32, Option<String>)> =
            std::collections::HashSet::new();
        for cycle in &cycles {
            merged_add(&mut merged, &nodes, &creators, cycle, &mut at);
        }
        out.extend(merged.into_findings());
    }
}

/// Where Flux Kustomization `k` says it waits for `r`: `wait: true`, or a
/// `healthChecks` entry naming it.
fn waits_for(k: &crate::model::Resource<'_>, r: &crate::model::Resource<'_>) -> Option<Span> {
    let spec = k.spec()?;
    if let Some(w) = spec.get("wait")
        && w.as_bool() == Some(true)
    {
        return Some(w.span);
    }
    spec.get("healthChecks")
        .into_iter()
        .flat_map(Node::items)
        .find(|h| {
            h.get("kind").and_then(Node::as_str) == Some(r.kind)
                && h.get("name").and_then(Node::as_str) == Some(r.name)
        })
        .map(|h| h.span)
}

/// The wait from the `i`th node of `cycle` to the next one.
fn edge_at(nodes: &[Node_], cycle: &[usize], i: usize) -> Option<Edge> {
    let from = cycle[i % cycle.len()];
    let to = cycle[(i + 1) % cycle.len()];
    nodes[from].deps.iter().find(|e| e.to == to).copied()
}

fn merged_add(
    merged: &mut Merged,
    nodes: &[Node_],
    creators: &[Option<usize>],
    cycle: &[usize],
    reported_at: &mut std::collections::HashSet<(FileId, u32, Option<String>)>,
) {
    // Start at a `dependsOn` entry: the line to edit. Prefer one between
    // objects that different Flux Kustomizations apply.
    let len = cycle.len();
    let is_dep = |i: usize| edge_at(nodes, cycle, i).is_some_and(|e| e.kind == EdgeKind::DependsOn);
    let creator = |node: usize| creators.get(node).copied().flatten();
    let first = (0..len)
        .find(|&i| {
            is_dep(i) && {
                let (a, b) = (cycle[i], cycle[(i + 1) % len]);
                creator(a).is_some() && creator(b).is_some() && creator(a) != creator(b)
            }
        })
        .or_else(|| (0..len).find(|&i| is_dep(i)));
    let Some(first) = first else { return };
    let rotated: Vec<usize> = (0..len).map(|i| cycle[(first + i) % len]).collect();
    let edge = |i: usize| edge_at(nodes, &rotated, i);
    let mut names: Vec<&str> = Vec::new();
    for &i in rotated.iter().chain(rotated.first()) {
        if names.last() != Some(&nodes[i].id.as_str()) {
            names.push(nodes[i].id.as_str());
        }
    }
    let crosses = (0..len).any(|i| edge(i).is_some_and(|e| e.kind == EdgeKind::AppliedBy));
    let describe = |i: usize, e: Edge| {
        let from = &nodes[rotated[i]].id;
        let to = &nodes[rotated[(i + 1) % len]].id;
        match e.kind {
            EdgeKind::DependsOn => format!("{from} waits for {to}"),
            EdgeKind::Waits => format!("{from} waits for {to}, which it applies"),
            EdgeKind::AppliedBy => format!("{from} is applied by {to}"),
            EdgeKind::Started => format!("{from} starts first"),
        }
    };
    let Some(e0) = edge(0) else { return };
    let Some((file, span)) = e0.at else { return };
    if !reported_at.insert((file, span.start.offset, nodes[rotated[0]].env.clone())) {
        return;
    }
    let mut f = Finding::new(
        FluxDependencyCycle::META.id,
        Label::new(file, span, describe(0, e0)),
        format!("dependsOn cycle: {}", names.join(" → ")),
    )
    .help(if crosses {
        "An object cannot wait for one that a later Flux Kustomization applies: remove this dependsOn entry, or move one of the two objects so that the Kustomization applying it comes first."
    } else {
        "Remove the dependsOn entry that points back up the service graph (platform, then postgres/redis, then AC, GC, MC, MH)."
    });
    for i in 1..len {
        if let Some(e) = edge(i)
            && let Some((file, span)) = e.at
        {
            f = f.with(Label::new(file, span, describe(i, e)));
        }
    }
    merged.add(f, nodes[rotated[0]].env.as_deref());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;

    fn ks(name: &str, deps: &str) -> String {
        format!(
            "---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {{name: {name}, namespace: flux-system}}\nspec:\n  interval: 10m\n  path: ./x\n  prune: true\n  sourceRef: {{kind: GitRepository, name: flux-system}}\n  dependsOn: [{deps}]\n"
        )
    }

    #[test]
    fn cycles_are_reported_once() {
        let chain = ks("a", "") + &ks("b", "{name: a}") + &ks("c", "{name: b}, {name: a}");
        assert!(run(&FluxDependencyCycle, &[("k.yaml", &chain)]).is_empty());
        let cycle = ks("a", "{name: c}") + &ks("b", "{name: a}") + &ks("c", "{name: b}");
        let out = run(&FluxDependencyCycle, &[("k.yaml", &cycle)]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].message,
            "dependsOn cycle: flux-system/a → flux-system/c → flux-system/b → flux-system/a"
        );
        assert_eq!(out[0].secondary.len(), 2);
        let own = ks("a", "{name: a}");
        assert_eq!(run(&FluxDependencyCycle, &[("k.yaml", &own)]).len(), 1);
    }
}
