//! Source files: the bytes a human edits, with line tables for positions.
//!
//! Every finding points into a [`SourceFile`] by [`FileId`]; the reporters
//! turn spans into `path:line:column` and snippets from here.

use std::path::{Path, PathBuf};

use dtlint_yaml::{LineIndex, Pos, Span};

/// Index of a file in [`Sources`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub u32);

/// One file as read from disk (or produced by a build).
#[derive(Debug)]
pub struct SourceFile {
    /// Path as shown to the user: relative to the repository root when the
    /// file is inside it, with `/` separators.
    pub path: String,
    /// Path on disk.
    pub abs: PathBuf,
    pub text: String,
    pub lines: LineIndex,
}

impl SourceFile {
    pub fn new(path: String, abs: PathBuf, text: String) -> Self {
        let lines = LineIndex::new(&text);
        Self {
            path,
            abs,
            text,
            lines,
        }
    }

    /// The text of 1-based `line`, without its line break.
    pub fn line_text(&self, line: u32) -> &str {
        let start = self.lines.line_start(line) as usize;
        let rest = self.text.get(start..).unwrap_or("");
        let end = rest.find('\n').unwrap_or(rest.len());
        rest[..end].trim_end_matches('\r')
    }

    /// A span covering the first line of the file, for whole-file findings.
    pub fn head_span(&self) -> Span {
        let end = self.line_text(1).len();
        Span {
            start: Pos {
                line: 1,
                col: 1,
                offset: 0,
            },
            end: self.lines.pos_of_offset(&self.text, end),
        }
    }
}

/// All files of one run. Files are only ever added, so a [`FileId`] stays valid.
#[derive(Debug, Default)]
pub struct Sources {
    files: Vec<SourceFile>,
    by_abs: crate::pathmap::PathMap<FileId>,
}

impl Sources {
    /// Room for `n` more files without rehashing.
    pub fn reserve(&mut self, n: usize) {
        self.files.reserve(n);
        self.by_abs.reserve(n);
    }

    pub fn add(&mut self, file: SourceFile) -> FileId {
        let id = FileId(self.files.len() as u32);
        self.by_abs.insert(&file.abs, id);
        self.files.push(file);
        id
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn iter(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f))
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Show the file at `abs` under another name (standard input).
    pub fn rename(&mut self, abs: &Path, shown: &str) {
        if let Some(id) = self.find_abs(abs) {
            self.files[id.0 as usize].path = shown.to_string();
        }
    }

    /// The file whose disk path is `abs`, if it was read.
    pub fn find_abs(&self, abs: &Path) -> Option<FileId> {
        self.by_abs.get(abs).copied()
    }
}

/// `path` relative to `root` with `/` separators, or the path as given when
/// it is outside the root.
pub fn display_path(root: &Path, path: &Path) -> String {
    // The common case by bytes: `Path::strip_prefix` goes component by
    // component, and every file of a large repository passes here.
    let (r, p) = (
        root.as_os_str().as_encoded_bytes(),
        path.as_os_str().as_encoded_bytes(),
    );
    if !cfg!(windows)
        && p.len() > r.len() + 1
        && p.starts_with(r)
        && p[r.len()] == b'/'
        && !r.ends_with(b"/")
        && let Ok(rest) = std::str::from_utf8(&p[r.len() + 1..])
        && !rest.starts_with('/')
        && !rest.contains("//")
        && !rest.ends_with('/')
    {
        return rest.to_string();
    }
    let rel = path.strip_prefix(root).unwrap_or(path);
    let s = rel.to_string_lossy();
    let s = if s.contains('\\') {
        s.replace('\\', "/")
    } else {
        s.into_owned()
    };
    if s.is_empty() { ".".into() } else { s }
}

/// Standard input, bounded like any file, in a private directory of its own
/// (a lone manifest: no repository around it).
pub fn stdin_to_file(limit: u64) -> Result<(tempfile::TempDir, PathBuf), String> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read standard input: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "standard input is larger than the {limit}-byte limit (`max-file-size` in dtlint.toml)"
        ));
    }
    let dir = tempfile::Builder::new()
        .prefix("dtlint-stdin-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let file = dir.path().join("stdin.yaml");
    std::fs::write(&file, bytes).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok((dir, file))
}

#[cfg(test)]
mod tests {
    use super::display_path;
    use std::path::Path;

    #[test]
    fn display_paths_are_relative_with_slashes() {
        let root = Path::new("/w/repo");
        for (path, want) in [
            ("/w/repo/base/gc/deployment.yaml", "base/gc/deployment.yaml"),
            ("/w/repo", "."),
            ("/w/repo/", "."),
            ("/w/repo//base/x.yaml", "base/x.yaml"),
            ("/w/repository/x.yaml", "/w/repository/x.yaml"),
            ("/elsewhere/x.yaml", "/elsewhere/x.yaml"),
        ] {
            assert_eq!(display_path(root, Path::new(path)), want, "{path}");
        }
    }
}
