//! Check and report preparation: run the rules, then apply configuration,
//! suppressions and exemptions, dedupe and sort.
//!
//! Rules only say what they saw; this module decides the final severity
//! (per rule, per environment), what is suppressed, and reports suppressions
//! that are malformed or suppress nothing.

use std::collections::BTreeSet;

use dtlint_yaml::{Node, Span};

use crate::config::Config;
use crate::diag::{Finding, Label, Severity};
use crate::flux::FluxPaths;
use crate::model::{Held, Index, Resource, Stages};
use crate::render::{RenderOutput, Rendered};
use crate::rules::{self, Context, Rule};
use crate::sops_index::SopsState;
use crate::source::FileId;
use crate::workspace::Workspace;

pub mod baseline;
mod merge;
mod pass;
mod suppress;
mod to_source;

pub use merge::SAME_DEFECT;
use merge::same_defect_once;
use pass::run_rules;
pub use rules::suppression_meta::{ENGINE_RULES, INVALID_SUPPRESSION, UNUSED_SUPPRESSION};
pub use suppress::IGNORE_ANNOTATION;
use suppress::{collect_suppressions, inside};
use to_source::map_label;
pub use to_source::{producing_entry, to_source};

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
    /// What the run left out, and why, for the user.
    pub fn notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.incomplete_left_out > 0 {
            out.push(format!(
                "{} incomplete (an overlay was not built): {} finding(s) of rules that judge a whole environment were left out there",
                self.incomplete.join(", "),
                self.incomplete_left_out
            ));
        }
        if let Some(skipped) = self.skipped.as_ref().filter(|s| !s.rules.is_empty()) {
            out.push(format!(
                "{} rule(s) that need the whole repository were not run ({}): {}",
                skipped.rules.len(),
                skipped.reason,
                skipped.rules.join(", ")
            ));
        }
        out
    }

    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }
}

/// Resolve the configured severity of a rule for a finding.
/// A rule that `--only` names runs even where the profile leaves it off.
fn severity_for(
    config: &Config,
    rule: &str,
    default: Severity,
    envs: &[String],
    named: bool,
) -> Option<Severity> {
    let base = config.rules.get(rule).map_or_else(
        || {
            if named {
                Some(default)
            } else {
                config.default_level(rule, default)
            }
        },
        |l| l.0,
    );
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
    /// Flux Kustomizations of the environments' clusters whose overlays
    /// were not built, and why.
    pub not_built: Vec<crate::render::NotBuilt>,
    pub builds: usize,
    pub cached: usize,
    /// Sum of the build processes' wall times.
    pub build_seconds: f64,
    /// With no environment configured or under `clusters/`: the
    /// directories a Flux sync applies, rendered as environments.
    pub sync_roots: Vec<String>,
}

/// What every stage before the index produced, each stage's output in its
/// own field. Reads as the workspace it wraps.
#[derive(Debug)]
pub struct Prepared {
    /// Discover, read, parse (and the rendered streams, as files).
    pub ws: Workspace,
    pub flux_paths: FluxPaths,
    pub sops: SopsState,
    pub render: RenderOutput,
}

impl Prepared {
    /// The rendered overlay a file is the output of.
    pub fn rendered_of(&self, id: FileId) -> Option<&Rendered> {
        self.render.rendered_of(id)
    }
}

impl std::ops::Deref for Prepared {
    type Target = Workspace;
    fn deref(&self) -> &Workspace {
        &self.ws
    }
}

impl std::ops::DerefMut for Prepared {
    fn deref_mut(&mut self) -> &mut Workspace {
        &mut self.ws
    }
}

impl<'a> From<&'a Prepared> for Stages<'a> {
    fn from(p: &'a Prepared) -> Self {
        Self {
            ws: &p.ws,
            render: &p.render,
            sops: Held::Borrowed(&p.sops),
            flux_paths: Held::Borrowed(&p.flux_paths),
        }
    }
}

/// Discover, parse, inspect Flux paths and SOPS files, and (when
/// environments are configured) render: everything the index needs.
pub fn prepare(
    root: &std::path::Path,
    paths: &[std::path::PathBuf],
    config: &Config,
    render: &RenderOptions,
) -> Result<(Prepared, PrepareNotes), crate::workspace::LoadError> {
    prepare_with(
        root,
        paths,
        config,
        render,
        &crate::workspace::Buffers::default(),
    )
}

/// [`prepare`] with some files' text from an editor's buffers (`dtlint
/// lsp`); overlays are still built from the files on disk.
pub fn prepare_with(
    root: &std::path::Path,
    paths: &[std::path::PathBuf],
    config: &Config,
    render: &RenderOptions,
    buffers: &crate::workspace::Buffers,
) -> Result<(Prepared, PrepareNotes), crate::workspace::LoadError> {
    use crate::timing::stage;
    let mut ws = Workspace::load_with(root, paths, config, buffers)?;
    let flux_paths = stage("(flux paths)", || crate::flux::inspect(&ws));
    let sops = stage("(sops)", || SopsState::read(&ws));
    let mut output = RenderOutput::default();
    let mut notes = PrepareNotes::default();
    // Without environments, the directories a Flux sync applies are ones.
    let with_roots;
    let config = if config.environments.is_empty() && render.enabled {
        let roots = crate::render::sync_roots(&ws);
        notes.sync_roots = roots
            .iter()
            .map(|(env, path, from)| format!("`{path}` (environment `{env}`), synced by {from}"))
            .collect();
        let mut c = config.clone();
        for (env, path, _) in &roots {
            c.add_discovered(env, path);
        }
        with_roots = c;
        &with_roots
    } else {
        config
    };
    if render.enabled && !config.environments.is_empty() {
        match crate::render::Builder::detect() {
            None => {
                notes.render_skipped = Some(
                    "neither `kustomize` nor `kubectl` is installed: overlays are not built, only source files are checked".into(),
                );
            }
            Some(builder) => {
                // Builds name files by paths relative to the cache
                // directory: it must be a real path (no `..`, no link).
                let cache = render.cache_dir.as_deref().map(|d| {
                    let _ = std::fs::create_dir_all(d);
                    d.canonicalize().unwrap_or_else(|_| d.to_path_buf())
                });
                let (mut targets, mut not_built) = crate::render::targets(&ws, config);
                if let Some(env) = &render.only_env {
                    targets.retain(|t| &t.env == env);
                }
                let (builds, deeper, cycles) =
                    crate::render::walk(&ws, config, &builder, targets, root, cache.as_deref());
                not_built.extend(deeper);
                notes.not_built = not_built;
                notes.builds = builds.len();
                notes.cached = builds.iter().filter(|b| b.cached).count();
                notes.build_seconds = builds.iter().map(|b| b.seconds).sum();
                output = crate::render::apply(&mut ws, builds);
                output.cycles = cycles;
            }
        }
    }
    let prepared = Prepared {
        ws,
        flux_paths,
        sops,
        render: output,
    };
    Ok((prepared, notes))
}

/// Run the selected rules over a prepared workspace (or a bare one, checked
/// without rendering).
pub fn run<'a>(input: impl Into<Stages<'a>>, config: &'a Config, selection: &Selection) -> Outcome {
    let input = input.into();
    let index_started = std::time::Instant::now();
    let index = Index::build_with(input, Some(config));
    let ws = index.ws;
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
    let incomplete: BTreeSet<&str> = index
        .render
        .failures
        .iter()
        .map(|b| b.target.env.as_str())
        .collect();
    let mut incomplete_left_out = 0;
    if !incomplete.is_empty() {
        raw.retain(|f| {
            let whole_environment = rules::find(f.rule).is_some_and(|r| {
                r.meta().needs == rules::Needs::Repository && r.meta().category != "gitops"
            });
            let seen_in_incomplete = index
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
            if let Some(r) = index.rendered_of(f.primary.file) {
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
        // A template's placeholders are not defects (`workspace::templates`).
        if ws.templates.contains(&f.primary.file) {
            continue;
        }
        // The rule loop above stamped each finding with its rule's default.
        let named = selection.only.iter().any(|o| o == f.rule);
        let Some(sev) = severity_for(config, f.rule, f.severity, &f.envs, named) else {
            continue;
        };
        f.severity = sev;
        let suppressed_here = sups
            .iter_mut()
            .find(|s| {
                s.rule == f.rule && s.file == f.primary.file && inside(s.scope, f.primary.span)
            })
            .map(|s| s.used = true)
            .is_some();
        // Without a view every suppressed finding counts; no need to map it.
        if suppressed_here && selection.view.is_empty() {
            suppressed += 1;
            continue;
        }
        // Findings in rendered overlays point at the source a human edits,
        // and exemptions and views name source paths: map once, here. The
        // object is found where the rule saw it.
        let (seen_in, seen_at) = (f.primary.file, f.primary.span);
        to_source(&index, &mut f);
        let in_view = selection.in_view(&ws.sources.get(f.primary.file).abs);
        if suppressed_here {
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
            if let Some(r) = index.rendered_of(s.file) {
                f.envs.push(r.target.env.clone());
            }
            unused.push((f, s.rule.as_str()));
        }
    }
    if selection.includes(INVALID_SUPPRESSION) {
        for mut f in engine_findings {
            to_source(&index, &mut f);
            if selection.in_view(&ws.sources.get(f.primary.file).abs) {
                findings.push(f);
            }
        }
    }

    // Unused suppressions in rendered overlays point at the source too.
    for (f, _) in &mut unused {
        to_source(&index, f);
    }
    // A suppression rendered into several environments is unused only if it
    // is unused in all of them.
    let used_at: BTreeSet<(FileId, u32, &str)> = sups
        .iter()
        .filter(|s| s.used)
        .map(|s| {
            let mut l = Label::new(s.file, s.at, "");
            map_label(&index, &mut l);
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
