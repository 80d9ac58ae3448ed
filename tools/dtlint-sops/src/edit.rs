//! In-place text edits: how we change values while every other byte (key
//! order, comments, blank lines, quoting of untouched values) stays as it was.

use std::ops::Range;

/// Replacements of byte ranges of one source text.
#[derive(Debug, Default)]
pub(crate) struct Edits {
    list: Vec<(Range<usize>, String)>,
}

impl Edits {
    pub(crate) fn replace(&mut self, range: Range<usize>, text: impl Into<String>) {
        self.list.push((range, text.into()));
    }

    pub(crate) fn insert(&mut self, at: usize, text: impl Into<String>) {
        self.list.push((at..at, text.into()));
    }

    /// Apply every edit. Overlapping edits (which only aliases or merge keys
    /// can cause) are refused with the first overlapping range.
    pub(crate) fn apply(mut self, src: &str) -> Result<String, Range<usize>> {
        self.list.sort_by_key(|(r, _)| (r.start, r.end));
        let extra: usize = self.list.iter().map(|(_, t)| t.len()).sum();
        let mut out = String::with_capacity(src.len() + extra);
        let mut cursor = 0usize;
        for (r, text) in self.list {
            if r.start < cursor || r.end > src.len() || r.start > r.end {
                return Err(r);
            }
            out.push_str(&src[cursor..r.start]);
            out.push_str(&text);
            cursor = r.end;
        }
        out.push_str(&src[cursor..]);
        Ok(out)
    }
}

/// The start of the line holding `offset`.
pub(crate) fn line_start(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1)
}

/// The offset just past the newline ending the line holding `offset`.
pub(crate) fn line_end_incl(src: &str, offset: usize) -> usize {
    let offset = offset.min(src.len());
    src[offset..]
        .find('\n')
        .map_or(src.len(), |i| offset + i + 1)
}
