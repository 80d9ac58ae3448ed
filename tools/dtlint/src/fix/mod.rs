//! `dtlint fix`: the fixes of a check's findings, applied in place or shown
//! as a diff, every untouched byte kept.
//!
//! A fix is safe when it cannot change what a correct manifest means:
//! adding a hardening setting that is missing (`readOnlyRootFilesystem:
//! true`, `allowPrivilegeEscalation: false`, `capabilities.drop: [ALL]`, a
//! `RuntimeDefault` seccomp profile), or correcting the case of an enum
//! value (`imagePullPolicy: always`). Anything else (turning a setting a
//! manifest states the other way around, renaming an unknown field to the
//! closest real one) is unsafe and applied only with `--unsafe-fixes`.
//!
//! Each rule attaches the fix it knows to its finding
//! ([`crate::diag::Replacement`]); this module only places and applies it.

pub mod edit;

use dtlint_yaml::{Node, Span, Value};

use crate::diag::Finding;
use crate::source::FileId;
use crate::workspace::Workspace;
use edit::Edit;

/// One file's fixes.
#[derive(Debug)]
pub struct FileFix {
    pub file: FileId,
    pub path: String,
    pub before: String,
    pub after: String,
    /// The rules whose findings were fixed, one entry per fix.
    pub fixed: Vec<&'static str>,
}

/// What `dtlint fix` would do.
#[derive(Debug, Default)]
pub struct Plan {
    pub files: Vec<FileFix>,
    /// Findings with an unsafe fix that was not applied.
    pub unsafe_left: usize,
}

fn contains(outer: Span, inner: Span) -> bool {
    outer.start.offset <= inner.start.offset && inner.end.offset <= outer.end.offset
}

/// The container (an item of `containers`, `initContainers` or
/// `ephemeralContainers`) whose text holds `at`.
fn container_at<'n>(node: &'n Node, at: Span, parent_key: Option<&str>) -> Option<&'n Node> {
    if !contains(node.span, at) {
        return None;
    }
    match &node.value {
        Value::Sequence(items) => {
            let containers = matches!(
                parent_key,
                Some("containers" | "initContainers" | "ephemeralContainers")
            );
            items.iter().find_map(|it| {
                if containers && it.as_mapping().is_some() && contains(it.span, at) {
                    Some(it)
                } else {
                    container_at(it, at, None)
                }
            })
        }
        Value::Mapping(entries) => entries
            .iter()
            .find_map(|e| container_at(&e.value, at, e.key.as_str())),
        Value::Scalar(_) => None,
    }
}

/// The container of the finding's source file that holds its primary span.
fn container_of<'w>(ws: &'w Workspace, f: &Finding) -> Option<&'w Node> {
    ws.parsed(f.primary.file)
        .documents
        .iter()
        .find_map(|d| container_at(&d.root, f.primary.span, None))
}

/// A per-environment value (the sizing table's) is safe to write only in a
/// file of that one environment: written in a base, it would change the
/// others too.
fn environment_own(ws: &Workspace, f: &Finding) -> bool {
    let path = &ws.sources.get(f.primary.file).path;
    matches!(f.envs.as_slice(), [env] if path.split('/').any(|c| c == env))
}

/// A fix for one finding (the one its rule attached): the edit, in the
/// finding's source file, and whether it is safe.
pub fn fix_of(ws: &Workspace, f: &Finding) -> Option<(Edit, bool)> {
    let r = f.replacement.as_ref()?;
    let text = &ws.sources.get(f.primary.file).text;
    let safe = r.safe && (!r.per_environment || environment_own(ws, f));
    let Some(keys) = &r.in_container else {
        return Some((
            Edit {
                start: f.primary.span.start.offset as usize,
                end: f.primary.span.end.offset as usize,
                text: r.text.clone(),
            },
            safe,
        ));
    };
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let container = container_of(ws, f)?;
    Some((edit::set_path(text, container, &keys, &r.text)?, safe))
}

/// The fixes of `findings` (already mapped to source files): safe ones, and
/// unsafe ones when `unsafe_fixes`.
pub fn plan(ws: &Workspace, findings: &[Finding], unsafe_fixes: bool) -> Plan {
    let mut per_file: std::collections::BTreeMap<FileId, Vec<(Edit, &'static str)>> =
        std::collections::BTreeMap::new();
    let mut out = Plan::default();
    for f in findings {
        // Only files on disk: not standard input, not a rendered stream.
        if ws.sources.get(f.primary.file).abs.as_os_str().is_empty() {
            continue;
        }
        let Some((e, safe)) = fix_of(ws, f) else {
            continue;
        };
        if !safe && !unsafe_fixes {
            out.unsafe_left += 1;
            continue;
        }
        let edits = per_file.entry(f.primary.file).or_default();
        if !edits.iter().any(|(x, _)| *x == e) {
            edits.push((e, f.rule));
        }
    }
    for (file, edits) in per_file {
        let src = ws.sources.get(file);
        // Two findings inserting at the same place in one mapping (say
        // readOnlyRootFilesystem and allowPrivilegeEscalation under a new
        // securityContext) share the parent lines they both write.
        let (mut chosen, mut rules): (Vec<Edit>, Vec<&'static str>) = (Vec::new(), Vec::new());
        for (e, rule) in edits {
            if e.start == e.end
                && let Some(prev) = chosen
                    .iter_mut()
                    .find(|p| p.start == e.start && p.end == p.start)
            {
                prev.text = merge_inserts(&prev.text, &e.text);
            } else {
                chosen.push(e);
            }
            rules.push(rule);
        }
        let (after, applied) = edit::apply(&src.text, &mut chosen);
        if applied == 0 || after == src.text {
            continue;
        }
        out.files.push(FileFix {
            file,
            path: src.path.clone(),
            before: src.text.clone(),
            after,
            fixed: rules,
        });
    }
    out
}

/// Two inserted blocks at one place as one: the leading key-only lines
/// they share (`securityContext:`) are written once.
fn merge_inserts(a: &str, b: &str) -> String {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let shared = la
        .iter()
        .zip(&lb)
        .take_while(|(x, y)| x == y && x.trim_end().ends_with(':'))
        .count();
    let mut out = String::new();
    // The first block whole, then the second's own lines, which belong
    // right after the shared parents: at the end of the first block's
    // lines under them (its deeper lines end it, so appending is right).
    for l in la.iter().chain(&lb[shared..]) {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// The plan as a unified diff (`--diff`).
pub fn unified_diff(plan: &Plan) -> String {
    let mut out = String::new();
    for f in &plan.files {
        let diff = similar::TextDiff::from_lines(&f.before, &f.after);
        out.push_str(
            &diff
                .unified_diff()
                .context_radius(3)
                .header(&format!("a/{}", f.path), &format!("b/{}", f.path))
                .to_string(),
        );
    }
    out
}

/// `dtlint fix`: apply the plan (or print it with `diff`) and say what was
/// done. `Ok(true)` when findings with fixes are left unfixed (unsafe ones
/// without `--unsafe-fixes`), so scripts can tell.
pub fn run(
    ws: &Workspace,
    findings: &[Finding],
    unsafe_fixes: bool,
    diff: bool,
) -> Result<bool, String> {
    let plan = plan(ws, findings, unsafe_fixes);
    let fixes: usize = plan.files.iter().map(|f| f.fixed.len()).sum();
    if diff {
        print!("{}", unified_diff(&plan));
    } else {
        for f in &plan.files {
            let abs = &ws.sources.get(f.file).abs;
            std::fs::write(abs, &f.after).map_err(|e| format!("cannot write {}: {e}", f.path))?;
        }
    }
    let verb = if diff { "would fix" } else { "fixed" };
    eprintln!(
        "dtlint: {verb} {fixes} finding(s) in {} file(s){}",
        plan.files.len(),
        if plan.unsafe_left > 0 {
            format!(
                "; {} more with an unsafe fix (`--unsafe-fixes` applies them)",
                plan.unsafe_left
            )
        } else {
            String::new()
        }
    );
    Ok(plan.unsafe_left > 0)
}
