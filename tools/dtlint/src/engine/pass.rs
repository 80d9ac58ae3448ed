//! The rule pass: whole-index rules and the fused per-object pass, in
//! parallel.

use rayon::prelude::*;

use crate::diag::Finding;
use crate::rules::{self, Context, Rule};

/// Objects per task of the per-object pass: enough to amortise scheduling,
/// few enough to spread a small repository over both cores.
const OBJECTS_PER_TASK: usize = 64;

/// Run the rules: whole-index rules one task each, and the per-object rules
/// fused into one pass over the objects (each object is judged by all of them
/// in a row, while its nodes are in cache), both in parallel. Findings carry
/// their rule's default severity; the order is deterministic.
pub(super) fn run_rules(ctx: &Context<'_>, selected: &[&dyn Rule]) -> Vec<Finding> {
    let (per_object, whole): (Vec<&dyn Rule>, Vec<&dyn Rule>) =
        selected.iter().partition(|r| r.scope().is_some());
    let scoped: Vec<(rules::Scope, &dyn Rule)> = per_object
        .iter()
        .filter_map(|r| Some((r.scope()?, *r)))
        .collect();
    let timings = crate::timing::enabled();
    let spent: Vec<std::sync::atomic::AtomicU64> = scoped
        .iter()
        .map(|_| std::sync::atomic::AtomicU64::new(0))
        .collect();
    let stamp = |out: &mut [Finding], meta: &rules::RuleMeta| {
        for f in out {
            f.severity = meta.severity;
        }
    };
    let pass_started = std::time::Instant::now();
    let (mut whole_findings, object_findings) = rayon::join(
        || {
            whole
                .par_iter()
                .flat_map_iter(|rule| {
                    let mut out = Vec::new();
                    let started = std::time::Instant::now();
                    rule.check(ctx, &mut out);
                    let meta = rule.meta();
                    crate::timing::report(meta.id, started);
                    stamp(&mut out, meta);
                    out
                })
                .collect::<Vec<Finding>>()
        },
        || {
            ctx.index
                .resources
                .par_chunks(OBJECTS_PER_TASK)
                .flat_map_iter(|chunk| {
                    let mut out = Vec::new();
                    for r in chunk {
                        let object = r.is_object();
                        for (i, (scope, rule)) in scoped.iter().enumerate() {
                            if !scope.includes(r, object) {
                                continue;
                            }
                            let before = out.len();
                            let started = timings.then(std::time::Instant::now);
                            rule.check_object(ctx, r, &mut out);
                            if let Some(t) = started {
                                let nanos = u64::try_from(t.elapsed().as_nanos()).unwrap_or(0);
                                spent[i].fetch_add(nanos, std::sync::atomic::Ordering::Relaxed);
                            }
                            stamp(&mut out[before..], rule.meta());
                        }
                    }
                    out
                })
                .collect::<Vec<Finding>>()
        },
    );
    if timings {
        crate::timing::report("(all rules)", pass_started);
        for ((_, rule), nanos) in scoped.iter().zip(&spent) {
            let spent =
                std::time::Duration::from_nanos(nanos.load(std::sync::atomic::Ordering::Relaxed));
            let ms = spent.as_secs_f64() * 1000.0;
            eprintln!(
                "dtlint: timing: {:<32} {ms:>8.1} ms (per object)",
                rule.meta().id
            );
        }
    }
    // The final sort is stable and keys on the rule, so only each rule's own
    // order matters, and that is object order in both passes.
    whole_findings.extend(object_findings);
    whole_findings
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::Config;
    use crate::model::Index;
    use crate::workspace::Workspace;

    /// The fused per-object pass finds exactly what each rule finds when it
    /// runs alone over the whole index, on every fixture at once.
    #[test]
    fn the_fused_pass_finds_what_each_rule_finds_alone() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let config = Config::dark_tower();
        let ws = Workspace::load(&dir, std::slice::from_ref(&dir), &config).unwrap();
        let index = Index::build_with(&ws, Some(&config));
        let ctx = Context::new(&index, &config);
        let key = |f: &Finding| {
            (
                f.rule,
                f.primary.file,
                f.primary.span.start.offset,
                f.message.clone(),
            )
        };
        let mut fused: Vec<_> = run_rules(&ctx, rules::ALL).iter().map(key).collect();
        let mut alone = Vec::new();
        for rule in rules::ALL {
            let mut out = Vec::new();
            rule.check(&ctx, &mut out);
            alone.extend(out.iter().map(key));
        }
        fused.sort();
        alone.sort();
        assert!(
            rules::ALL.iter().filter(|r| r.scope().is_some()).count() > 20,
            "most rules judge one object at a time"
        );
        assert!(fused.len() > 100, "the fixtures hold many findings");
        assert_eq!(fused, alone);
    }
}
