//! One finding per defect: the more specific rule absorbs the more general
//! one when both point at the same place.

use crate::diag::Finding;
use crate::source::FileId;

/// Rules that describe the same defect as a more general one when both point
/// at the same place: (more specific, more general). The general finding is
/// dropped and its environments and related locations join the specific one.
pub const SAME_DEFECT: &[(&str, &str)] = &[
    // A `key:` that names no key of its ConfigMap/Secret: the reference rule
    // shows the object and the keys it has; the contract rule only repeats it.
    ("dangling-config-ref", "env-contract"),
    // A value of the wrong type: the schema names the whole path and the
    // type found.
    ("schema-invalid", "wrong-type"),
    // A Flux interval that is no duration: the Flux rule explains the
    // syntax; the schema only quotes the pattern.
    ("flux-interval-format", "schema-invalid"),
];

/// Merge findings of [`SAME_DEFECT`] pairs that point at the same place.
pub(super) fn same_defect_once(findings: Vec<Finding>) -> Vec<Finding> {
    let place = |f: &Finding| (f.primary.file, f.primary.span.start.offset);
    let mut at: std::collections::HashMap<(FileId, u32), Vec<usize>> =
        std::collections::HashMap::new();
    for (i, f) in findings.iter().enumerate() {
        at.entry(place(f)).or_default().push(i);
    }
    // Which finding (index) absorbs which.
    let mut into: Vec<Option<usize>> = vec![None; findings.len()];
    for group in at.values().filter(|g| g.len() > 1) {
        for &general in group {
            let specific = group.iter().copied().find(|&other| {
                SAME_DEFECT
                    .iter()
                    .any(|&(s, g)| findings[other].rule == s && findings[general].rule == g)
            });
            if let Some(specific) = specific
                && into[specific].is_none()
            {
                into[general] = Some(specific);
            }
        }
    }
    let mut absorbed: Vec<Vec<Finding>> = vec![Vec::new(); findings.len()];
    let mut kept: Vec<(usize, Finding)> = Vec::with_capacity(findings.len());
    for (i, f) in findings.into_iter().enumerate() {
        match into[i] {
            Some(target) => absorbed[target].push(f),
            None => kept.push((i, f)),
        }
    }
    kept.into_iter()
        .map(|(i, mut f)| {
            for g in std::mem::take(&mut absorbed[i]) {
                for e in g.envs {
                    if !f.envs.contains(&e) {
                        f.envs.push(e);
                    }
                }
                for l in g.secondary {
                    if !f
                        .secondary
                        .iter()
                        .any(|x| x.file == l.file && x.span.start == l.span.start)
                    {
                        f.secondary.push(l);
                    }
                }
                f.severity = f.severity.min(g.severity);
            }
            f
        })
        .collect()
}
