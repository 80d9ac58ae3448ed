//! Check and report preparation: run the rules, then apply configuration,
//! suppressions and exemptions, dedupe and sort.
//!
//! Rules only say what they saw; this module decides the final severity
//! (per rule, per environment), what is suppressed, and reports suppressions
//! that are malformed or suppress nothing.

use std::collections::BTreeSet;

use dtlint_yaml::{Node, Span};
use rayon::prelude::*;

use crate::config::Config;
use crate::diag::{Finding, Label, Severity};
use crate::kustomize::RefKind;
use crate::model::{Index, Resource};
use crate::rules::{self, Context, Rule};
use crate::source::FileId;
use crate::workspace::Workspace;

/// The annotation that suppresses a rule on one object: `rule=reason`,
/// several separated by `;` or new lines.
pub const IGNORE_ANNOTATION: &str = "dtlint.io/ignore";

/// Ids of the engine's own findings about suppressions.
pub const UNUSED_SUPPRESSION: &str = "unused-suppression";
pub const INVALID_SUPPRESSION: &str = "invalid-suppression";

/// Metadata of the engine's own findings, for `explain`, SARIF and the docs.
pub static ENGINE_RULES: [crate::rules::RuleMeta; 2] = [
    crate::rules::RuleMeta {
        id: UNUSED_SUPPRESSION,
        category: "suppression",
        severity: Severity::Warning,
        summary: "a dtlint.io/ignore suppression suppresses nothing",
        needs: crate::rules::Needs::File,
        docs: "## What it does\nReports a `dtlint.io/ignore: <rule>=<reason>` entry whose rule no longer fires on the object.\n\n## Why is this bad?\nA stale suppression hides the next real finding of that rule on the same object.\n\n## Example\n```yaml\nannotations:\n  dtlint.io/ignore: \"latest-tag=pinned upstream\"   # the image is pinned now\n```\n\n## Use instead\nRemove the entry.\n\n## References\n- `dtlint explain <rule>` for the suppressed rule\n",
    },
    crate::rules::RuleMeta {
        id: INVALID_SUPPRESSION,
        category: "suppression",
        severity: Severity::Error,
        summary: "a dtlint.io/ignore suppression has no reason or names an unknown rule",
        needs: crate::rules::Needs::File,
        docs: "## What it does\nReports `dtlint.io/ignore` entries without a reason (`rule=` or `rule`) or naming a rule that does not exist.\n\n## Why is this bad?\nA suppression is a decision; without its reason nobody can tell later whether it still holds. An unknown rule id suppresses nothing.\n\n## Example\n```yaml\nannotations:\n  dtlint.io/ignore: \"latest-tag\"\n```\n\n## Use instead\n```yaml\nannotations:\n  dtlint.io/ignore: \"latest-tag=image is pinned by digest in the overlay\"\n```\n\n## References\n- `dtlint rules` for the list of rule ids\n",
    },
];

/// Which rules run, and which findings are reported.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub only: Vec<String>,
    pub skip: Vec<String>,
    /// The paths (absolute) the user asked about. The whole repository is
    /// loaded as context, but only findings whose primary location lies
    /// inside one of these are reported (and counted, and suppressions
    /// outside them are not judged). Empty: everything.
    pub view: Vec<std::path::PathBuf>,
    /// Why there is no repository around the checked paths (a lone file,
    /// stdin), if there is none: rules that need one are then not run.
    pub no_repository: Option<String>,
}

impl Selection {
    pub fn includes(&self, id: &str) -> bool {
        (self.only.is_empty() || self.only.iter().any(|o| o == id))
            && !self.skip.iter().any(|s| s == id)
    }

    /// Is `path` (absolute) inside the view?
    pub fn in_view(&self, path: &std::path::Path) -> bool {
        self.view.is_empty() || self.view.iter().any(|v| path.starts_with(v))
    }
}

/// The outcome of a run.
#[derive(Debug, Default)]
pub struct Outcome {
    pub findings: Vec<Finding>,
    /// How many findings were suppressed by annotations or exemptions.
    pub suppressed: usize,
    /// Rules that were not run because they need a repository and there is
    /// none, with the reason ([`Selection::no_repository`]).
    pub skipped: Option<Skipped>,
    /// Environments with an overlay that was not built, and how many
    /// findings of whole-environment rules were left out there.
    pub incomplete: Vec<String>,
    pub incomplete_left_out: usize,
}

/// Rules left out of a run, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Skipped {
    pub rules: Vec<&'static str>,
    pub reason: String,
}

impl Outcome {
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }
}

struct Suppression {
    file: FileId,
    /// The object's whole span: findings inside it are covered.
    scope: Span,
    rule: String,
    /// The annotation value, to point at when it is unused.
    at: Span,
    used: bool,
}

fn collect_suppressions(index: &Index<'_>, out: &mut Vec<Finding>) -> Vec<Suppression> {
    let mut sups = Vec::new();
    for r in &index.resources {
        let Some(node) = r.annotation(IGNORE_ANNOTATION) else {
            continue;
        };
        let text = node.as_str().unwrap_or("");
        for part in text
            .split([';', '\n'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (rule, reason) = part.split_once('=').unwrap_or((part, ""));
            let (rule, reason) = (rule.trim(), reason.trim());
            if reason.is_empty() {
                out.push(
                    Finding::new(
                        INVALID_SUPPRESSION,
                        Label::new(r.file, node.span, "no reason given"),
                        format!("suppression of `{rule}` without a reason"),
                    )
                    .help(format!(
                        "Write `{IGNORE_ANNOTATION}: {rule}=<why this is acceptable>` so reviewers know why the finding stands."
                    )),
                );
                continue;
            }
            if rules::find(rule).is_none() {
                let guess = crate::suggest::closest(rule, rules::ids());
                out.push(
                    Finding::new(
                        INVALID_SUPPRESSION,
                        Label::new(r.file, node.span, "not a rule id"),
                        format!(
                            "suppression names unknown rule `{rule}`{}",
                            guess.map_or_else(String::new, |g| format!("; did you mean `{g}`?"))
                        ),
                    )
                    .help(guess.map_or_else(
                        || "Run `dtlint rules` for the list of rule ids.".to_string(),
                        |g| {
                            format!(
                                "Write `{g}=<reason>`; run `dtlint rules` for the list of rule ids."
                            )
                        },
                    )),
                );
                continue;
            }
            sups.push(Suppression {
                file: r.file,
                scope: r.root.span,
                rule: rule.to_string(),
                at: node.span,
                used: false,
            });
        }
    }
    sups
}

fn inside(outer: Span, inner: Span) -> bool {
    outer.start.offset <= inner.start.offset && inner.end.offset <= outer.end.offset
}

/// Resolve the configured severity of a rule for a finding.
fn severity_for(
    config: &Config,
    rule: &str,
    default: Severity,
    envs: &[String],
) -> Option<Severity> {
    let base = config.rules.get(rule).map_or(Some(default), |l| l.0);
    // With several environments, the strictest setting wins.
    let mut per_env = envs
        .iter()
        .filter_map(|e| config.environments.get(e))
        .filter_map(|e| e.rules.get(rule))
        .map(|l| l.0)
        .peekable();
    if per_env.peek().is_none() {
        return base;
    }
    per_env.flatten().min()
}

/// How `prepare` treats overlays.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// Build the overlays of every configured environment.
    pub enabled: bool,
    /// Where builds are cached; `None` disables the cache.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Build only this environment's overlays.
    pub only_env: Option<String>,
}

/// What `prepare` noticed that the user should know.
#[derive(Debug, Default)]
pub struct PrepareNotes {
    /// Why rendered mode did not run, when it was wanted.
    pub render_skipped: Option<String>,
    pub builds: usize,
    pub cached: usize,
    /// Sum of the build processes' wall times.
    pub build_seconds: f64,
}

/// Discover, parse and (when environments are configured) render: everything
/// the rules need.
pub fn prepare(
    root: &std::path::Path,
    paths: &[std::path::PathBuf],
    config: &Config,
    render: &RenderOptions,
) -> Result<(Workspace, PrepareNotes), crate::workspace::LoadError> {
    let mut ws = Workspace::load(root, paths, config)?;
    let mut notes = PrepareNotes::default();
    if render.enabled && !config.environments.is_empty() {
        match crate::render::Builder::detect() {
            None => {
                notes.render_skipped = Some(
                    "neither `kustomize` nor `kubectl` is installed: overlays are not built, only source files are checked".into(),
                );
            }
            Some(builder) => {
                let mut targets = crate::render::targets(&ws, config);
                if let Some(env) = &render.only_env {
                    targets.retain(|t| &t.env == env);
                }
                let builds = crate::render::build_all(
                    &ws,
                    &builder,
                    &targets,
                    root,
                    render.cache_dir.as_deref(),
                );
                notes.builds = builds.len();
                notes.cached = builds.iter().filter(|b| b.cached).count();
                notes.build_seconds = builds.iter().map(|b| b.seconds).sum();
                ws.add_builds(builds);
            }
        }
    }
    Ok((ws, notes))
}

/// Run the selected rules over a loaded workspace.
pub fn run(ws: &Workspace, config: &Config, selection: &Selection) -> Outcome {
    let index_started = std::time::Instant::now();
    let index = Index::build_with(ws, Some(config));
    if std::env::var_os("DTLINT_TIMINGS").is_some() {
        eprintln!(
            "dtlint: timing: {:<32} {:>8.1} ms",
            "(index)",
            index_started.elapsed().as_secs_f64() * 1000.0
        );
    }
    let ctx = Context::new(&index, config);
    let (selected, left_out): (Vec<&dyn Rule>, Vec<&dyn Rule>) = rules::ALL
        .iter()
        .copied()
        .filter(|r| selection.includes(r.meta().id))
        .partition(|r| selection.no_repository.is_none() || r.meta().needs == rules::Needs::File);
    let skipped = selection.no_repository.as_ref().map(|reason| Skipped {
        rules: left_out.iter().map(|r| r.meta().id).collect(),
        reason: reason.clone(),
    });
    let mut raw = run_rules(&ctx, &selected);

    // An environment with an overlay that was not built (refused or failed)
    // is incomplete: what a rule concludes from the whole of it (a selector
    // that matches nothing, a reference to an object of the missing overlay)
    // would be false. Those findings are left out, and the run says so.
    let incomplete: BTreeSet<&str> = ws
        .render_failures
        .iter()
        .map(|b| b.target.env.as_str())
        .collect();
    let mut incomplete_left_out = 0;
    if !incomplete.is_empty() {
        raw.retain(|f| {
            let whole_environment = rules::find(f.rule).is_some_and(|r| {
                r.meta().needs == rules::Needs::Repository && r.meta().category != "gitops"
            });
            let seen_in_incomplete = ws
                .rendered_of(f.primary.file)
                .is_some_and(|r| incomplete.contains(r.target.env.as_str()))
                || (!f.envs.is_empty() && f.envs.iter().all(|e| incomplete.contains(e.as_str())));
            let drop = whole_environment && seen_in_incomplete;
            incomplete_left_out += usize::from(drop);
            !drop
        });
    }

    let mut engine_findings = Vec::new();
    let mut sups = collect_suppressions(&index, &mut engine_findings);

    // Environments of a finding: given by the rule (rendered output), or from
    // where its file lives.
    for f in &mut raw {
        if f.envs.is_empty() {
            if let Some(r) = ws.rendered_of(f.primary.file) {
                f.envs.push(r.target.env.clone());
            } else if let Some(env) = config.environment_of(&ws.sources.get(f.primary.file).path) {
                f.envs.push(env.to_string());
            }
        }
    }

    // Each exemption's path glob, compiled once: `None` matches every path,
    // `Some(None)` (an invalid glob) matches none.
    let exemption_paths: Vec<Option<Option<globset::GlobMatcher>>> = config
        .exemptions
        .iter()
        .map(|ex| {
            ex.path
                .as_deref()
                .map(|p| globset::Glob::new(p).ok().map(|g| g.compile_matcher()))
        })
        .collect();
    let mut suppressed = 0;
    let mut findings = Vec::with_capacity(raw.len());
    for mut f in raw {
        // The rule loop above stamped each finding with its rule's default.
        let Some(sev) = severity_for(config, f.rule, f.severity, &f.envs) else {
            continue;
        };
        f.severity = sev;
        let suppression = sups.iter_mut().find(|s| {
            s.rule == f.rule && s.file == f.primary.file && inside(s.scope, f.primary.span)
        });
        // Findings in rendered overlays point at the source a human edits,
        // and exemptions name source paths: map once, here. The object is
        // found where the rule saw it.
        let (seen_in, seen_at) = (f.primary.file, f.primary.span);
        to_source(ws, &mut f);
        let in_view = selection.in_view(&ws.sources.get(f.primary.file).abs);
        if let Some(s) = suppression {
            s.used = true;
            suppressed += usize::from(in_view);
            continue;
        }
        let path = &ws.sources.get(f.primary.file).path;
        let exempt = config
            .exemptions
            .iter()
            .zip(&exemption_paths)
            .any(|(ex, matcher)| {
                ex.rule == f.rule
                    && matcher
                        .as_ref()
                        .is_none_or(|m| m.as_ref().is_some_and(|m| m.is_match(path)))
                    && ex.resource.as_deref().is_none_or(|want| {
                        resource_at(&index, seen_in, seen_at).is_some_and(|r| r.id() == want)
                    })
            });
        if exempt {
            suppressed += usize::from(in_view);
            continue;
        }
        if in_view {
            findings.push(f);
        }
    }

    let mut unused = Vec::new();
    if selection.includes(UNUSED_SUPPRESSION) {
        for s in sups
            .iter()
            // A rule that did not run (not selected, or it needs a
            // repository there is none of) leaves its suppressions unjudged.
            .filter(|s| {
                !s.used
                    && selection.includes(&s.rule)
                    && !skipped
                        .as_ref()
                        .is_some_and(|k| k.rules.contains(&s.rule.as_str()))
            })
        {
            let mut f = Finding::new(
                UNUSED_SUPPRESSION,
                Label::new(s.file, s.at, "suppresses nothing"),
                format!("suppression of `{}` is unused", s.rule),
            )
            .help("Remove the suppression: the rule no longer fires here.".to_string());
            f.severity = Severity::Warning;
            if let Some(r) = ws.rendered_of(s.file) {
                f.envs.push(r.target.env.clone());
            }
            unused.push((f, s.rule.as_str()));
        }
    }
    if selection.includes(INVALID_SUPPRESSION) {
        for mut f in engine_findings {
            to_source(ws, &mut f);
            if selection.in_view(&ws.sources.get(f.primary.file).abs) {
                findings.push(f);
            }
        }
    }

    // Unused suppressions in rendered overlays point at the source too.
    for (f, _) in &mut unused {
        to_source(ws, f);
    }
    // A suppression rendered into several environments is unused only if it
    // is unused in all of them.
    let used_at: BTreeSet<(FileId, u32, &str)> = sups
        .iter()
        .filter(|s| s.used)
        .map(|s| {
            let mut l = Label::new(s.file, s.at, "");
            map_label(ws, &mut l);
            (l.file, l.span.start.offset, s.rule.as_str())
        })
        .collect();
    // Keyed by rule too: one annotation can suppress several rules. Only
    // suppressions inside the view are judged.
    findings.extend(
        unused
            .into_iter()
            .filter(|(f, rule)| {
                !used_at.contains(&(f.primary.file, f.primary.span.start.offset, *rule))
                    && selection.in_view(&ws.sources.get(f.primary.file).abs)
            })
            .map(|(f, _)| f),
    );

    // The same defect found in several environments is reported once, at the
    // source, naming every environment.
    let mut merged: Vec<Finding> = Vec::with_capacity(findings.len());
    let mut at: std::collections::HashMap<(&'static str, FileId, u32, String), usize> =
        std::collections::HashMap::new();
    for f in findings {
        let key = (
            f.rule,
            f.primary.file,
            f.primary.span.start.offset,
            f.message.clone(),
        );
        if let Some(&i) = at.get(&key) {
            let existing: &mut Finding = &mut merged[i];
            for e in f.envs {
                if !existing.envs.contains(&e) {
                    existing.envs.push(e);
                }
            }
            existing.severity = existing.severity.min(f.severity);
        } else {
            at.insert(key, merged.len());
            merged.push(f);
        }
    }
    let mut findings = same_defect_once(merged);
    for f in &mut findings {
        f.envs.sort_by_key(|e| config.environment_rank(e));
    }
    findings.sort_by(|a, b| {
        let pa = &ws.sources.get(a.primary.file).path;
        let pb = &ws.sources.get(b.primary.file).path;
        (pa, a.primary.span.start, a.rule).cmp(&(pb, b.primary.span.start, b.rule))
    });
    Outcome {
        findings,
        suppressed,
        skipped,
        incomplete: incomplete.iter().map(|e| (*e).to_string()).collect(),
        incomplete_left_out,
    }
}

/// Rules that describe the same defect as a more general one when both point
/// at the same place: (more specific, more general). The general finding is
/// dropped and its environments and related locations join the specific one.
pub const SAME_DEFECT: &[(&str, &str)] = &[
    // A `key:` that names no key of its ConfigMap/Secret: the reference rule
    // shows the object and the keys it has; the contract rule only repeats it.
    ("dangling-config-ref", "env-contract"),
];

/// Merge findings of [`SAME_DEFECT`] pairs that point at the same place.
fn same_defect_once(findings: Vec<Finding>) -> Vec<Finding> {
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

/// Objects per task of the per-object pass: enough to amortise scheduling,
/// few enough to spread a small repository over both cores.
const OBJECTS_PER_TASK: usize = 64;

/// Run the rules: whole-index rules one task each, and the per-object rules
/// fused into one pass over the objects (each object is judged by all of them
/// in a row, while its nodes are in cache), both in parallel. Findings carry
/// their rule's default severity; the order is deterministic.
fn run_rules(ctx: &Context<'_>, selected: &[&dyn Rule]) -> Vec<Finding> {
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

/// Move a label from rendered output to its source; `false` when no source
/// could be found.
fn map_label(ws: &Workspace, l: &mut Label) -> bool {
    if ws.rendered_of(l.file).is_none() {
        return true;
    }
    match crate::render::map_to_source(ws, l.file, l.span) {
        Some((file, span)) => {
            l.file = file;
            l.span = span;
            true
        }
        None => false,
    }
}

/// Point a finding's labels at sources. An unmappable primary label falls
/// back to the overlay kustomization's entry that brought the object in (or
/// the kustomization itself); unmappable related labels are dropped. No
/// label is left in a rendered stream.
fn to_source(ws: &Workspace, f: &mut Finding) {
    if ws.rendered_of(f.primary.file).is_some()
        && !map_label(ws, &mut f.primary)
        && let Some((file, span)) = producing_entry(ws, f.primary.file, f.primary.span)
    {
        f.primary.file = file;
        f.primary.span = span;
    }
    f.secondary.retain_mut(|l| map_label(ws, l));
}

/// The entry of a rendered overlay's kustomization that produced the object
/// at `span`: the `resources:` (or `components:`) entry on the way to the
/// object's origin file, else the kustomization's first line.
fn producing_entry(ws: &Workspace, file: FileId, span: Span) -> Option<(FileId, Span)> {
    let rendered = ws.rendered_of(file)?;
    let kust = ws.kustomization_in(&rendered.target.dir)?;
    let origin = ws
        .parsed(file)
        .documents
        .iter()
        .position(|d| inside(d.root.span, span))
        .and_then(|i| rendered.provenance.get(i))
        .and_then(|p| p.origin.as_deref());
    let entry = origin.and_then(|o| {
        kust.refs
            .iter()
            .filter(|r| matches!(r.kind, RefKind::Resource | RefKind::Component))
            .filter(|r| o.starts_with(&r.path))
            // The longest (most specific) path wins.
            .max_by_key(|r| r.path.components().count())
    });
    Some(match entry {
        Some(r) => (kust.file, r.span),
        None => (kust.file, ws.file_span(kust.file)),
    })
}

/// The object whose document contains `span`.
fn resource_at<'a>(index: &'a Index<'a>, file: FileId, span: Span) -> Option<&'a Resource<'a>> {
    index
        .resources
        .iter()
        .find(|r| r.file == file && inside(r.root.span, span))
}

/// Convenience for rules: is this node a non-empty scalar?
pub fn has_text(node: Option<&Node>) -> bool {
    node.and_then(Node::as_str).is_some_and(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The fused per-object pass finds exactly what each rule finds when it
    /// runs alone over the whole index, on every fixture at once.
    #[test]
    fn the_fused_pass_finds_what_each_rule_finds_alone() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let config = Config::defaults();
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
