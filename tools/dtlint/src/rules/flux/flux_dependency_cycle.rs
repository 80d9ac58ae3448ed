use std::collections::BTreeMap;

use dtlint_yaml::{Node, Span};

use crate::diag::{Finding, Label};
use crate::netpol::Namespaces;
use crate::rules::Merged;
use crate::rules::flux::{Ref, all, resolve};
use crate::rules::{Context, Rule, RuleMeta, declare_rule};
use crate::source::FileId;

declare_rule! {
    /// ## What it does
    /// Reports Flux Kustomizations (or HelmReleases) whose `dependsOn`
    /// entries form a cycle, at the entry of the first object of the cycle,
    /// with the other entries as secondary labels.
    ///
    /// ## Why is this bad?
    /// Each object waits for the next one to become ready; none ever does,
    /// so nothing in the cycle is applied.
    ///
    /// ## Example
    /// ```yaml
    /// kind: Kustomization
    /// metadata: {name: postgres}
    /// spec:
    ///   dependsOn: [{name: ac-service}]   # and ac-service depends on postgres
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

struct Node_ {
    id: String,
    file: FileId,
    env: Option<String>,
    /// (target index, the dependsOn entry's name).
    deps: Vec<(usize, Span)>,
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
        let mut nodes: Vec<Node_> = Vec::new();
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
                    deps.push((t, re.name_span()));
                }
            }
            nodes.push(Node_ {
                id: format!("{}/{}", namespaces.of(r), r.name),
                file: r.file,
                env: r.env.map(str::to_string),
                deps,
            });
        }
        // Each cycle once: found from its smallest member, walking depth-first.
        let mut reported: BTreeMap<Vec<usize>, ()> = BTreeMap::new();
        let mut merged = Merged::default();
        for start in 0..nodes.len() {
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            let mut path: Vec<usize> = vec![start];
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                if *next >= nodes[node].deps.len() {
                    stack.pop();
                    path.pop();
                    continue;
                }
                let (target, _) = nodes[node].deps[*next];
                *next += 1;
                if target == start {
                    let mut key = path.clone();
                    key.sort_unstable();
                    if reported.insert(key, ()).is_none() {
                        merged_add(&mut merged, &nodes, &path);
                    }
                } else if target > start && !path.contains(&target) {
                    stack.push((target, 0));
                    path.push(target);
                }
            }
        }
        out.extend(merged.into_findings());
    }
}

fn merged_add(merged: &mut Merged, nodes: &[Node_], cycle: &[usize]) {
    let edge = |i: usize| {
        let from = cycle[i];
        let to = cycle[(i + 1) % cycle.len()];
        nodes[from]
            .deps
            .iter()
            .find(|(t, _)| *t == to)
            .map(|(_, s)| *s)
    };
    let names: Vec<&str> = cycle
        .iter()
        .chain(cycle.first())
        .map(|&i| nodes[i].id.as_str())
        .collect();
    let Some(first) = edge(0) else { return };
    let mut f = Finding::new(
        FluxDependencyCycle::META.id,
        Label::new(nodes[cycle[0]].file, first, format!("{} waits for {}", names[0], names[1])),
        format!("dependsOn cycle: {}", names.join(" → ")),
    )
    .help("Remove the dependsOn entry that points back up the service graph (platform, then postgres/redis, then AC, GC, MC, MH).");
    for i in 1..cycle.len() {
        if let Some(span) = edge(i) {
            f = f.with(Label::new(
                nodes[cycle[i]].file,
                span,
                format!("{} waits for {}", names[i], names[i + 1]),
            ));
        }
    }
    merged.add(f, nodes[cycle[0]].env.as_deref());
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
