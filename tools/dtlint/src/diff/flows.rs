//! `network-flow-opened`: traffic the NetworkPolicies allow after the
//! change and did not before, from the difference of the two revisions'
//! traffic matrices (what `dtlint graph` prints).

use std::collections::BTreeMap;

use super::{Change, EnvDiff, Obj};
use crate::config::Config;
use crate::engine::Prepared;

/// (environment, namespace) -> (from, to) -> ports.
type Matrices = BTreeMap<(Option<String>, String), BTreeMap<(String, String), Vec<String>>>;

fn matrices(p: &Prepared, config: &Config) -> Matrices {
    let index = crate::model::Index::build_with(p, Some(config));
    crate::netpol::matrices(&index, config)
        .into_iter()
        .map(|m| ((m.env, m.namespace), m.cells))
        .collect()
}

/// Where to point for an opened flow: the first NetworkPolicy the change
/// added or edited in that environment (at its first changed field), else
/// the first object it changed (pods that moved under a policy).
fn culprit(d: Option<&EnvDiff>, locate: &dyn Fn(&Obj, &str) -> String) -> String {
    let Some(d) = d else {
        return String::new();
    };
    let policy = |o: &Obj| o.kind == "NetworkPolicy";
    if let Some((o, _, fields)) = d.changed.iter().find(|(o, _, _)| policy(o)) {
        return fields
            .first()
            .map_or_else(|| o.source.clone(), |f| locate(o, f));
    }
    if let Some(o) = d.added.iter().find(|o| policy(o)) {
        return o.source.clone();
    }
    d.changed
        .first()
        .map(|(o, _, _)| o.source.clone())
        .or_else(|| d.added.first().map(|o| o.source.clone()))
        .unwrap_or_default()
}

/// Every flow allowed after the change and not before.
pub fn opened(
    old: (&Prepared, &Config),
    new: (&Prepared, &Config),
    envs: &BTreeMap<String, EnvDiff>,
    locate: &dyn Fn(&Obj, &str) -> String,
) -> Vec<Change> {
    let before = matrices(old.0, old.1);
    let after = matrices(new.0, new.1);
    let empty = BTreeMap::new();
    let mut out = Vec::new();
    for ((env, namespace), cells) in &after {
        let was = before
            .get(&(env.clone(), namespace.clone()))
            .unwrap_or(&empty);
        let env = env.clone().unwrap_or_else(|| "(source)".into());
        for ((from, to), ports) in cells {
            let old_ports = was.get(&(from.clone(), to.clone()));
            let opened: Vec<&str> = ports
                .iter()
                .filter(|p| old_ports.is_none_or(|o| !o.contains(p)))
                .map(String::as_str)
                .collect();
            if opened.is_empty() {
                continue;
            }
            out.push(Change {
                rule: "network-flow-opened",
                error: false,
                message: format!(
                    "now allowed in namespace `{namespace}`: {from} → {to}:{}",
                    opened.join(",")
                ),
                source: culprit(envs.get(&env), locate),
                envs: vec![env.clone()],
            });
        }
    }
    out
}
