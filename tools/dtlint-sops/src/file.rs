//! Reading a (possibly) sops-encrypted file into documents with spans, its
//! comments and its metadata, for every format sops writes.

use std::borrow::Cow;
use std::ops::Range;
use std::path::{Path, PathBuf};

use dtlint_yaml::{
    Document, Entry, Limits, LineIndex, Node, Pos, ProblemKind, Scalar, Span, Style, Value,
};

use crate::finding::{Finding, FindingKind};
use crate::metadata::Metadata;
use crate::tree::{Visitor, walk_root};

/// A file format sops reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// YAML, one or more documents; each document gets the same `sops` block.
    Yaml,
    /// JSON with a top-level object.
    Json,
    /// `KEY=value` lines with `#` comments; metadata as flattened `sops_…` keys.
    Dotenv,
    /// Any other file: encrypted as one string under `data` in a JSON envelope.
    Binary,
}

impl Format {
    /// The format sops picks from a file name: `.yaml`/`.yml`, `.json`,
    /// `.env`, and binary for everything else (sops's INI store is not
    /// supported here; `.ini` files read as binary).
    pub fn from_path(path: &Path) -> Format {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("yaml" | "yml") => Format::Yaml,
            Some("json") => Format::Json,
            Some("env") => Format::Dotenv,
            _ => Format::Binary,
        }
    }

    /// The name sops uses for the format.
    pub fn name(self) -> &'static str {
        match self {
            Format::Yaml => "yaml",
            Format::Json => "json",
            Format::Dotenv => "dotenv",
            Format::Binary => "binary",
        }
    }
}

/// A comment in the source: `#` at `hash`, text up to `end` (exclusive).
#[derive(Debug, Clone)]
pub(crate) struct CommentLoc {
    pub hash: usize,
    pub end: usize,
    /// The mapping keys of the collection sops attaches the comment to.
    pub path: Vec<String>,
}

/// One parsed file. Parsing never fails: problems are findings with positions.
#[derive(Debug)]
pub struct SopsFile<'a> {
    path: PathBuf,
    src: Cow<'a, str>,
    format: Format,
    lines: LineIndex,
    documents: Vec<Document>,
    /// Per document, the index of the root's `sops` entry.
    sops_entries: Vec<Option<usize>>,
    metadata: Option<Metadata>,
    /// Dotenv: the comment lines (`#` offset, line end).
    dotenv_comments: Vec<(usize, usize)>,
    /// Dotenv: the byte range of every `sops_…` line, newline included.
    dotenv_meta_lines: Vec<Range<usize>>,
    problems: Vec<Finding>,
}

impl<'a> SopsFile<'a> {
    /// Parse `src`, choosing the format from `path` as sops does.
    pub fn parse(path: &Path, src: &'a str) -> Self {
        Self::parse_as(path, src, Format::from_path(path))
    }

    /// Parse `src` as `format`. A binary-format sops file is the JSON
    /// envelope sops writes.
    pub fn parse_as(path: &Path, src: &'a str, format: Format) -> Self {
        let lines = LineIndex::new(src);
        let mut f = SopsFile {
            path: path.to_path_buf(),
            src: Cow::Borrowed(src),
            format,
            lines,
            documents: Vec::new(),
            sops_entries: Vec::new(),
            metadata: None,
            dotenv_comments: Vec::new(),
            dotenv_meta_lines: Vec::new(),
            problems: Vec::new(),
        };
        match format {
            Format::Dotenv => f.load_dotenv(src),
            Format::Yaml | Format::Json | Format::Binary => f.load_tree(src),
        }
        f
    }

    /// The same file owning its text, so it can be kept beyond the text's
    /// buffer (the linter's workspace holds every SOPS file it read).
    pub fn into_owned(self) -> SopsFile<'static> {
        let SopsFile {
            path,
            src,
            format,
            lines,
            documents,
            sops_entries,
            metadata,
            dotenv_comments,
            dotenv_meta_lines,
            problems,
        } = self;
        SopsFile {
            path,
            src: Cow::Owned(src.into_owned()),
            format,
            lines,
            documents,
            sops_entries,
            metadata,
            dotenv_comments,
            dotenv_meta_lines,
            problems,
        }
    }

    fn load_tree(&mut self, src: &str) {
        let parsed = dtlint_yaml::parse(src, &self.lines, Limits::default());
        for p in parsed.problems {
            let kind = match p.kind {
                ProblemKind::DuplicateKey => FindingKind::DuplicateKey,
                ProblemKind::Syntax | ProblemKind::Limit => FindingKind::Syntax,
            };
            let mut finding = Finding::new(kind, p.span, p.message);
            finding.related = p.related;
            self.problems.push(finding);
        }
        self.documents = parsed.documents;
        let mut first: Option<Metadata> = None;
        for doc in &self.documents {
            let idx = doc
                .root
                .as_mapping()
                .and_then(|m| m.iter().position(|e| e.key.as_str() == Some("sops")));
            self.sops_entries.push(idx);
            if !matches!(doc.root.value, Value::Mapping(_)) {
                self.problems.push(Finding::new(
                    FindingKind::Syntax,
                    doc.root.span,
                    format!(
                        "sops files must be mappings at the top level, found {}",
                        doc.root.type_name()
                    ),
                ));
            }
            let Some(entry) = idx.and_then(|i| doc.root.as_mapping().map(|m| &m[i])) else {
                continue;
            };
            let mut findings = Vec::new();
            let m = Metadata::from_node(&entry.value, entry.key.span, &mut findings);
            match &first {
                None => {
                    self.problems.extend(findings);
                    first = Some(m);
                }
                Some(f0) => {
                    let same = f0.mac.as_ref().map(|x| &x.value)
                        == m.mac.as_ref().map(|x| &x.value)
                        && f0.lastmodified.as_ref().map(|x| &x.value)
                            == m.lastmodified.as_ref().map(|x| &x.value)
                        && f0
                            .age_recipients()
                            .map(|a| &a.recipient.value)
                            .eq(m.age_recipients().map(|a| &a.recipient.value));
                    if !same {
                        let mut finding = Finding::new(
                            FindingKind::InconsistentMetadata,
                            entry.key.span,
                            "this document's `sops` block differs from the first document's; sops reads only the first",
                        );
                        finding.related = Some((f0.span, "first `sops` block".into()));
                        self.problems.push(finding);
                    }
                }
            }
        }
        if let Some(f0) = &first {
            for (doc, idx) in self.documents.iter().zip(&self.sops_entries) {
                if idx.is_none() && doc.root.as_mapping().is_some() {
                    let mut finding = Finding::new(
                        FindingKind::InconsistentMetadata,
                        Span::at(doc.root.span.start),
                        "this document has no `sops` block although the file is encrypted; sops writes one in every document",
                    );
                    finding.related = Some((f0.span, "first `sops` block".into()));
                    self.problems.push(finding);
                }
            }
        }
        self.metadata = first;
    }

    fn load_dotenv(&mut self, src: &str) {
        let mut entries = Vec::new();
        let mut meta: Vec<(String, Node, Span)> = Vec::new();
        let mut start = 0usize;
        while start < src.len() {
            let end = src[start..].find('\n').map_or(src.len(), |i| start + i);
            let next = (end + 1).min(src.len());
            let line = &src[start..end];
            if line.is_empty() {
                start = next;
                continue;
            }
            if line.starts_with('#') {
                self.dotenv_comments.push((start, end));
                start = next;
                continue;
            }
            let Some(eq) = line.find('=') else {
                let span = self.span(start, end);
                self.problems.push(Finding::new(
                    FindingKind::Syntax,
                    span,
                    "invalid dotenv line: expected `KEY=value` or a `#` comment",
                ));
                start = next;
                continue;
            };
            let key = &line[..eq];
            let value_text = line[eq + 1..].replace("\\n", "\n");
            let key_span = self.span(start, start + eq);
            let value_span = self.span(start + eq + 1, end);
            let value_node = Node {
                span: value_span,
                value: Value::Scalar(Scalar {
                    text: value_text.into(),
                    style: Style::DoubleQuoted,
                    tag: None,
                }),
            };
            if let Some(meta_key) = key.strip_prefix("sops_") {
                self.dotenv_meta_lines.push(start..next);
                meta.push((meta_key.to_owned(), value_node, key_span));
            } else {
                entries.push(Entry {
                    key: Node {
                        span: key_span,
                        value: Value::Scalar(Scalar {
                            text: key.to_owned().into(),
                            style: Style::Plain,
                            tag: None,
                        }),
                    },
                    value: value_node,
                });
            }
            start = next;
        }
        let root_span = self.span(0, src.len());
        self.documents.push(Document {
            index: 0,
            root: Node {
                span: root_span,
                value: Value::Mapping(entries),
            },
        });
        self.sops_entries.push(None);
        if let Some(first_span) = meta.first().map(|m| m.2) {
            let node = unflatten(meta, first_span);
            self.metadata = Some(Metadata::from_node(&node, first_span, &mut self.problems));
        }
    }

    fn span(&self, start: usize, end: usize) -> Span {
        Span {
            start: self.lines.pos_of_offset(&self.src, start),
            end: self.lines.pos_of_offset(&self.src, end),
        }
    }

    /// The position of a byte offset.
    pub fn pos(&self, offset: usize) -> Pos {
        self.lines.pos_of_offset(&self.src, offset)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn source(&self) -> &str {
        &self.src
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The documents (a dotenv file is one mapping document), `sops` entries
    /// included; use [`SopsFile::sops_entry`] to tell them apart.
    pub fn documents(&self) -> &[Document] {
        &self.documents
    }

    /// The `sops` entry of document `doc`, if it has one.
    pub fn sops_entry(&self, doc: usize) -> Option<&Entry> {
        let idx = (*self.sops_entries.get(doc)?)?;
        self.documents.get(doc)?.root.as_mapping()?.get(idx)
    }

    /// The metadata (of the first document, which is what sops reads).
    pub fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }

    /// True when the file carries sops metadata.
    pub fn is_encrypted(&self) -> bool {
        self.metadata.is_some()
    }

    /// Syntax, duplicate-key and metadata problems found while reading.
    pub fn problems(&self) -> &[Finding] {
        &self.problems
    }

    pub(crate) fn dotenv_meta_lines(&self) -> &[Range<usize>] {
        &self.dotenv_meta_lines
    }

    /// Every comment, with the path of keys sops attaches it to.
    pub(crate) fn comments(&self) -> Vec<CommentLoc> {
        match self.format {
            Format::Dotenv => self
                .dotenv_comments
                .iter()
                .map(|&(hash, end)| CommentLoc {
                    hash,
                    end,
                    path: Vec::new(),
                })
                .collect(),
            Format::Json | Format::Binary => Vec::new(),
            Format::Yaml => self.yaml_comments(),
        }
    }

    fn yaml_comments(&self) -> Vec<CommentLoc> {
        let src: &str = &self.src;
        let bytes = src.as_bytes();
        // Every scalar's range, and the `sops` blocks (comments there are ours to drop).
        let mut covered: Vec<Range<usize>> = Vec::new();
        for (i, doc) in self.documents.iter().enumerate() {
            collect_scalars(&doc.root, &mut covered);
            if let Some(e) = self.sops_entry(i) {
                covered.push(e.key.span.start.offset as usize..e.value.span.end.offset as usize);
            }
        }
        covered.sort_by_key(|r| r.start);
        let mut comments = Vec::new();
        let mut cursor = 0usize;
        let scan = |from: usize, to: usize, comments: &mut Vec<(usize, usize)>| {
            let mut i = from;
            while i < to {
                if bytes[i] == b'#'
                    && (i == 0 || matches!(bytes[i - 1], b' ' | b'\t' | b'\n' | b'\r'))
                {
                    let end = src[i..].find('\n').map_or(src.len(), |n| i + n);
                    let end = if end > i && bytes[end - 1] == b'\r' {
                        end - 1
                    } else {
                        end
                    };
                    comments.push((i, end));
                    i = end;
                } else {
                    i += 1;
                }
            }
        };
        for r in &covered {
            if r.start > cursor {
                scan(cursor, r.start.min(src.len()), &mut comments);
            }
            cursor = cursor.max(r.end);
        }
        if cursor < src.len() {
            scan(cursor, src.len(), &mut comments);
        }
        if comments.is_empty() {
            return Vec::new();
        }
        // Collections, with where their next sibling content starts.
        let mut containers = Vec::new();
        for doc in &self.documents {
            let mut c = Containers {
                src,
                out: &mut containers,
            };
            let _ = walk_root(&doc.root, src, &mut c);
        }
        let starts: Vec<usize> = covered.iter().map(|r| r.start).collect();
        let ends: Vec<usize> = {
            let mut e: Vec<usize> = covered.iter().map(|r| r.end).collect();
            e.sort_unstable();
            e
        };
        for c in &mut containers {
            // A collection owns the comments between its key and its first
            // entry, and those after its last entry that are indented at
            // least as far as its entries, up to the next content.
            let prev_end = match ends.binary_search(&c.start) {
                Ok(i) => Some(ends[i]),
                Err(0) => None,
                Err(i) => Some(ends[i - 1]),
            };
            c.ext_start = prev_end.unwrap_or(0).min(c.start);
            c.key_line = prev_end.map(|e| self.pos(e.saturating_sub(1)).line);
            c.ext_end = match starts.binary_search(&c.end) {
                Ok(i) | Err(i) => starts.get(i).copied().unwrap_or(src.len()),
            };
        }
        comments
            .into_iter()
            .map(|(hash, end)| {
                let pos = self.pos(hash);
                let mut best: Option<&Container> = None;
                for c in &containers {
                    let after_key = c.key_line.is_none_or(|l| l != pos.line) || hash >= c.start;
                    let inside = c.ext_start <= hash
                        && after_key
                        && (hash < c.end || (hash < c.ext_end && pos.col >= c.col));
                    if inside && best.is_none_or(|b| (c.depth, c.start) > (b.depth, b.start)) {
                        best = Some(c);
                    }
                }
                CommentLoc {
                    hash,
                    end,
                    path: best.map(|c| c.path.clone()).unwrap_or_default(),
                }
            })
            .collect()
    }
}

/// Where a node's own text ends (block collections' spans reach to the next
/// token; this stops at their last value, or past a flow closing bracket).
fn tight_end(node: &Node, src: &str) -> usize {
    let flow = crate::tree::is_flow(node, src);
    let last = match &node.value {
        Value::Scalar(_) => return node.span.end.offset as usize,
        Value::Sequence(items) => items.last().map(|n| tight_end(n, src)),
        Value::Mapping(entries) => entries.last().map(|e| tight_end(&e.value, src)),
    };
    if flow {
        let bytes = src.as_bytes();
        let mut i = last
            .unwrap_or(node.span.start.offset as usize + 1)
            .max(node.span.end.offset as usize);
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        return (i + 1).min(src.len());
    }
    last.unwrap_or(node.span.end.offset as usize)
}

fn collect_scalars(node: &Node, out: &mut Vec<Range<usize>>) {
    match &node.value {
        Value::Scalar(_) => out.push(node.span.range()),
        Value::Sequence(items) => items.iter().for_each(|n| collect_scalars(n, out)),
        Value::Mapping(entries) => {
            for e in entries {
                collect_scalars(&e.key, out);
                collect_scalars(&e.value, out);
            }
        }
    }
}

struct Container {
    start: usize,
    end: usize,
    ext_start: usize,
    ext_end: usize,
    key_line: Option<u32>,
    col: u32,
    depth: usize,
    path: Vec<String>,
}

struct Containers<'o, 's> {
    src: &'s str,
    out: &'o mut Vec<Container>,
}

impl<'n> Visitor<'n> for Containers<'_, '_> {
    type Err = std::convert::Infallible;

    fn leaf(
        &mut self,
        _: &[&'n str],
        _: &'n Node,
        _: &'n Scalar,
        _: bool,
    ) -> Result<(), Self::Err> {
        Ok(())
    }

    fn enter(&mut self, path: &[&'n str], node: &'n Node, _: bool) -> Result<(), Self::Err> {
        let start = node.span.start.offset as usize;
        self.out.push(Container {
            start,
            end: tight_end(node, self.src),
            ext_start: start,
            ext_end: start,
            key_line: None,
            col: node.span.start.col,
            depth: path.len(),
            path: path.iter().map(|s| (*s).to_owned()).collect(),
        });
        Ok(())
    }
}

/// Rebuild sops's flattened dotenv metadata (`age__list_0__map_enc`) as a
/// tree, so one reader handles every format.
fn unflatten(items: Vec<(String, Node, Span)>, span: Span) -> Node {
    enum Tmp {
        Leaf(Node),
        Map(Vec<(String, Span, Tmp)>),
        List(Vec<(usize, Tmp)>),
    }
    enum Tok {
        Key(String),
        Index(usize),
    }
    fn tokenize(path: &str) -> Vec<Tok> {
        let mut toks = Vec::new();
        let mut rest = path;
        let mut current = Tok::Key(String::new());
        loop {
            let map = rest.find("__map_");
            let list = rest.find("__list_");
            let next = match (map, list) {
                (Some(m), Some(l)) => Some(m.min(l)),
                (m, l) => m.or(l),
            };
            let (head, tail) = match next {
                Some(i) => (&rest[..i], Some(&rest[i..])),
                None => (rest, None),
            };
            match &mut current {
                Tok::Key(k) => k.push_str(head),
                Tok::Index(i) => *i = head.parse().unwrap_or(0),
            }
            toks.push(std::mem::replace(&mut current, Tok::Index(0)));
            match tail {
                None => break,
                Some(t) if t.starts_with("__map_") => {
                    current = Tok::Key(String::new());
                    rest = &t[6..];
                }
                Some(t) => {
                    current = Tok::Index(0);
                    rest = &t[7..];
                }
            }
        }
        toks
    }
    fn insert(tmp: &mut Tmp, toks: &[Tok], leaf: Node, span: Span) {
        let Some((first, rest)) = toks.split_first() else {
            return;
        };
        let make = |rest: &[Tok], leaf: Node| match rest.first() {
            None => Tmp::Leaf(leaf),
            Some(Tok::Key(_)) => Tmp::Map(Vec::new()),
            Some(Tok::Index(_)) => Tmp::List(Vec::new()),
        };
        match (tmp, first) {
            (Tmp::Map(entries), Tok::Key(k)) => {
                let idx = if let Some(i) = entries.iter().position(|e| &e.0 == k) {
                    i
                } else {
                    entries.push((k.clone(), span, make(rest, leaf.clone())));
                    entries.len() - 1
                };
                insert(&mut entries[idx].2, rest, leaf, span);
            }
            (Tmp::List(items), Tok::Index(n)) => {
                let idx = if let Some(i) = items.iter().position(|e| e.0 == *n) {
                    i
                } else {
                    items.push((*n, make(rest, leaf.clone())));
                    items.len() - 1
                };
                insert(&mut items[idx].1, rest, leaf, span);
            }
            _ => {}
        }
    }
    fn to_node(tmp: Tmp, span: Span) -> Node {
        match tmp {
            Tmp::Leaf(n) => n,
            Tmp::Map(entries) => Node {
                span,
                value: Value::Mapping(
                    entries
                        .into_iter()
                        .map(|(k, s, t)| Entry {
                            key: Node {
                                span: s,
                                value: Value::Scalar(Scalar {
                                    text: k.into(),
                                    style: Style::Plain,
                                    tag: None,
                                }),
                            },
                            value: to_node(t, s),
                        })
                        .collect(),
                ),
            },
            Tmp::List(mut items) => {
                items.sort_by_key(|i| i.0);
                Node {
                    span,
                    value: Value::Sequence(
                        items.into_iter().map(|(_, t)| to_node(t, span)).collect(),
                    ),
                }
            }
        }
    }
    let mut root = Tmp::Map(Vec::new());
    for (key, node, key_span) in items {
        let toks = tokenize(&key);
        insert(&mut root, &toks, node, key_span);
    }
    to_node(root, span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_sops_extensions() {
        assert_eq!(
            Format::from_path(Path::new("a/secret.sops.yaml")),
            Format::Yaml
        );
        assert_eq!(Format::from_path(Path::new("x.YML")), Format::Yaml);
        assert_eq!(Format::from_path(Path::new("x.json")), Format::Json);
        assert_eq!(Format::from_path(Path::new("x.env")), Format::Dotenv);
        assert_eq!(Format::from_path(Path::new("file.txt")), Format::Binary);
    }

    #[test]
    fn dotenv_metadata_is_unflattened() {
        let src = "# c\nkey=value\nsops_age__list_0__map_recipient=age1abc\nsops_age__list_0__map_enc=x\\ny\nsops_mac=M\nsops_version=3.9.0\nsops_lastmodified=2024-01-01T00:00:00Z\n";
        let f = SopsFile::parse(Path::new("a.env"), src);
        assert!(f.problems().is_empty(), "{:?}", f.problems());
        let m = f.metadata().unwrap();
        let stanza = m.age_recipients().next().unwrap();
        assert_eq!(stanza.recipient.value, "age1abc");
        assert_eq!(stanza.enc.value, "x\ny");
        assert_eq!(stanza.recipient.span.start.line, 3);
        assert_eq!(m.mac.as_ref().unwrap().value, "M");
        let root = &f.documents()[0].root;
        assert_eq!(root.get("key").unwrap().as_str(), Some("value"));
        assert_eq!(root.get("key").unwrap().span.start.col, 5);
        assert_eq!(f.comments().len(), 1);
    }

    #[test]
    fn dotenv_lines_without_equals_are_positioned() {
        let f = SopsFile::parse(Path::new("a.env"), "A=1\nsecret-without-equals\n");
        let p = &f.problems()[0];
        assert_eq!(p.kind, FindingKind::Syntax);
        assert_eq!(p.span.start.line, 2);
        assert!(!p.message.contains("secret"));
    }

    #[test]
    fn yaml_comments_are_attached_to_their_collection() {
        let src = "# top\na: 1\ndata:\n  # head\n  k: v # line\n  nested:\n    x: y\n  # foot\nafter: 2 # tail\n";
        let f = SopsFile::parse(Path::new("a.yaml"), src);
        let c = f.comments();
        let paths: Vec<(String, Vec<String>)> = c
            .iter()
            .map(|c| (src[c.hash..c.end].to_owned(), c.path.clone()))
            .collect();
        assert_eq!(
            paths,
            vec![
                ("# top".into(), vec![]),
                ("# head".into(), vec!["data".to_string()]),
                ("# line".into(), vec!["data".to_string()]),
                ("# foot".into(), vec!["data".to_string()]),
                ("# tail".into(), vec![]),
            ]
        );
    }
}
