//! Findings in rendered overlays moved to the source a human edits, or to
//! the kustomization entry that produced the object.

use dtlint_yaml::Span;

use super::suppress::inside;
use crate::diag::{Finding, Label};
use crate::kustomize::RefKind;
use crate::model::Index;
use crate::source::FileId;

/// Move a label from rendered output to its source; `false` when no source
/// could be found.
pub(super) fn map_label(index: &Index<'_>, l: &mut Label) -> bool {
    if index.rendered_of(l.file).is_none() {
        return true;
    }
    match crate::render::map_to_source(index.ws, index.render, l.file, l.span) {
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
pub fn to_source(index: &Index<'_>, f: &mut Finding) {
    if index.rendered_of(f.primary.file).is_some()
        && !map_label(index, &mut f.primary)
        && let Some((file, span)) = producing_entry(index, f.primary.file, f.primary.span)
    {
        f.primary.file = file;
        f.primary.span = span;
    }
    f.secondary.retain_mut(|l| map_label(index, l));
}

/// The entry of a rendered overlay's kustomization that produced the object
/// at `span`: the `resources:` (or `components:`) entry on the way to the
/// object's origin file, else the kustomization's first line.
pub fn producing_entry(index: &Index<'_>, file: FileId, span: Span) -> Option<(FileId, Span)> {
    let ws = index.ws;
    let rendered = index.rendered_of(file)?;
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
