//! YAML documents with a span on every node, for dtlint and its SOPS support.
//!
//! We build our own tree from saphyr-parser's event stream instead of using a
//! generic loader because a linter needs things a loader throws away or gets
//! wrong for us: the exact span of every key and value, every duplicate key
//! (Kubernetes' Go YAML rejects them, a map type silently keeps the last one),
//! a hard bound on alias expansion (an "alias bomb" must cost a diagnostic,
//! not the machine's memory), a nesting limit, and `<<` merge keys the way
//! Kubernetes reads them.
//!
//! Positions: lines and columns are 1-based and count characters, as editors
//! and SARIF do; `offset` is a byte offset into the source, so callers can
//! slice and edit the text (SOPS encryption rewrites values in place).
//!
//! [`Node::to_json`] gives a node's data as JSON (YAML 1.2 core schema), and
//! [`Node::locate`] the node behind a JSON pointer, for JSON Schema checks.

use std::borrow::Cow;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle};

mod json;
pub use json::ScalarKind;

/// Limits that keep hostile input from costing unbounded time or memory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Nodes that alias expansion may add to one file.
    pub max_alias_nodes: usize,
    /// Maximum nesting depth of collections.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_alias_nodes: 100_000,
            max_depth: 128,
        }
    }
}

/// A position in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub col: u32,
    /// Byte offset from the start of the file.
    pub offset: u32,
}

/// A half-open range of a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    pub start: Pos,
    pub end: Pos,
}

impl Span {
    /// An empty span at `pos`.
    pub fn at(pos: Pos) -> Self {
        Self {
            start: pos,
            end: pos,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        (self.end.offset.saturating_sub(self.start.offset)) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The byte range of the span, for slicing the source.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start.offset as usize..self.end.offset as usize
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// How a scalar was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
    Folded,
}

impl From<ScalarStyle> for Style {
    fn from(s: ScalarStyle) -> Self {
        match s {
            ScalarStyle::Plain => Style::Plain,
            ScalarStyle::SingleQuoted => Style::SingleQuoted,
            ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
            ScalarStyle::Literal => Style::Literal,
            ScalarStyle::Folded => Style::Folded,
        }
    }
}

/// A scalar's text as written (after unescaping and folding) and its style.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    /// Inline up to 24 bytes (most scalars), so reading a manifest does not
    /// allocate once per value.
    pub text: compact_str::CompactString,
    pub style: Style,
    /// An explicit tag such as `!!str`, written as `!!str` or `!custom`
    /// (see [`Scalar::tag`]). Rare, so kept behind one thin pointer: a
    /// scalar, and with it every node, stays 8 bytes smaller.
    #[allow(clippy::box_collection)] // the point: a thin pointer, not a fat `Box<str>`
    pub tag: Option<Box<String>>,
}

impl Scalar {
    /// The explicit tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref().map(String::as_str)
    }

    /// True when the scalar is a YAML null under the core schema.
    pub fn is_null(&self) -> bool {
        self.style == Style::Plain
            && self.tag.is_none()
            && matches!(self.text.as_str(), "" | "~" | "null" | "Null" | "NULL")
    }

    /// True when the scalar is plain (unquoted, untagged), so its type is
    /// decided by the schema rather than by the author.
    pub fn is_plain(&self) -> bool {
        self.style == Style::Plain && self.tag.is_none()
    }
}

/// One key/value pair of a mapping; both keep their own spans.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: Node,
    pub value: Node,
}

/// The shape of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(Scalar),
    Sequence(Vec<Node>),
    Mapping(Vec<Entry>),
}

/// A YAML node and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub span: Span,
    pub value: Value,
}

impl Node {
    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.value)
    }

    /// The entry of `key` in a mapping, to point at the key itself.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        match &self.value {
            // Compare the key's text directly: this is the hottest lookup in
            // dtlint, and no caller asks for a null key.
            Value::Mapping(entries) => entries
                .iter()
                .find(|e| matches!(&e.key.value, Value::Scalar(s) if s.text.as_str() == key)),
            _ => None,
        }
    }

    /// Follow a path of mapping keys.
    pub fn path(&self, keys: &[&str]) -> Option<&Node> {
        keys.iter().try_fold(self, |node, key| node.get(key))
    }

    /// The scalar text at a path of mapping keys (see [`Node::as_str`]).
    pub fn str_at(&self, keys: &[&str]) -> Option<&str> {
        self.path(keys)?.as_str()
    }

    /// A scalar's text, or `None` for a collection. Nulls read as `None` too,
    /// so `key:` with no value is treated like a missing key.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) if !s.is_null() => Some(&s.text),
            _ => None,
        }
    }

    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_mapping(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Mapping(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_sequence(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Sequence(s) => Some(s),
            _ => None,
        }
    }

    /// Iterate a sequence's items; a missing or non-sequence node yields none.
    pub fn items(&self) -> std::slice::Iter<'_, Node> {
        self.as_sequence().unwrap_or(&[]).iter()
    }

    /// Iterate a mapping's entries; anything else yields none.
    pub fn entries(&self) -> std::slice::Iter<'_, Entry> {
        self.as_mapping().unwrap_or(&[]).iter()
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(s) if s.is_null())
    }

    /// A boolean under the YAML 1.2 core schema (what Kubernetes accepts too).
    pub fn as_bool(&self) -> Option<bool> {
        let s = self.as_scalar()?;
        if !s.is_plain() && s.tag() != Some("!!bool") {
            return None;
        }
        match s.text.as_str() {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => None,
        }
    }

    /// An integer under the YAML 1.2 core schema.
    pub fn as_i64(&self) -> Option<i64> {
        let s = self.as_scalar()?;
        if !s.is_plain() && s.tag() != Some("!!int") {
            return None;
        }
        let t = s.text.as_str();
        if let Some(hex) = t.strip_prefix("0x") {
            return i64::from_str_radix(hex, 16).ok();
        }
        if let Some(oct) = t.strip_prefix("0o") {
            return i64::from_str_radix(oct, 8).ok();
        }
        t.parse().ok()
    }

    /// A short name for the node's type, for messages ("expected a mapping, found a string").
    pub fn type_name(&self) -> &'static str {
        match &self.value {
            Value::Mapping(_) => "a mapping",
            Value::Sequence(_) => "a sequence",
            Value::Scalar(s) if s.is_null() => "null",
            Value::Scalar(_) if self.as_bool().is_some() => "a boolean",
            Value::Scalar(_) if self.as_i64().is_some() => "a number",
            Value::Scalar(_) => "a string",
        }
    }
}

/// One document of a (possibly multi-document) YAML file.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// 0-based position of the document in its file.
    pub index: usize,
    pub root: Node,
}

/// Something about the YAML itself that a user must fix.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub span: Span,
    pub message: String,
    /// A related place, such as the first occurrence of a duplicated key.
    pub related: Option<(Span, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The text is not YAML; parsing stopped here.
    Syntax,
    /// A mapping repeats a key.
    DuplicateKey,
    /// Alias expansion or nesting exceeded a limit; parsing stopped here.
    Limit,
}

/// The result of parsing one file: every complete document, and every problem.
#[derive(Debug, Default)]
pub struct Parsed {
    pub documents: Vec<Document>,
    pub problems: Vec<Problem>,
    /// Plain scalar values (not keys) that YAML 1.1 reads differently from
    /// YAML 1.2, in source order. Found while parsing, when the text is at
    /// hand, so nobody has to walk every node again to find them.
    pub yaml11: Vec<Yaml11Value>,
}

/// A plain scalar value that YAML 1.1 (Kubernetes) and YAML 1.2 read
/// differently; see [`yaml11_reading`].
#[derive(Debug, Clone, PartialEq)]
pub struct Yaml11Value {
    pub span: Span,
    pub text: compact_str::CompactString,
    /// What YAML 1.1 reads it as ("the boolean `true`").
    pub reading: String,
}

/// What YAML 1.1 reads a plain scalar as, when YAML 1.2 reads it as
/// something else: `yes`/`no`/`on`/`off`/`y`/`n` (booleans in 1.1, strings
/// in 1.2), numbers with a leading zero such as `0755` (octal in 1.1) and
/// sexagesimal numbers such as `1:30` (90 in 1.1).
pub fn yaml11_reading(text: &str) -> Option<String> {
    // Every ambiguous form starts with one of these; most scalars do not.
    if !matches!(
        text.as_bytes().first(),
        Some(b'y' | b'Y' | b'n' | b'N' | b'o' | b'O' | b'0'..=b'9' | b'-' | b'+')
    ) {
        return None;
    }
    if let "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" = text {
        return Some("the boolean `true`".into());
    }
    if let "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" = text {
        return Some("the boolean `false`".into());
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.len() > 1
        && digits.starts_with('0')
        && digits.bytes().all(|b| (b'0'..b'8').contains(&b))
    {
        let v = i64::from_str_radix(digits, 8).ok()?;
        return Some(format!("the octal number {v}"));
    }
    if digits.contains(':')
        && digits
            .split(':')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && digits.split(':').skip(1).all(|p| p.len() == 2 && p < "60")
        && !digits.starts_with('0')
    {
        let v = digits
            .split(':')
            .try_fold(0i64, |acc, p| p.parse::<i64>().ok().map(|n| acc * 60 + n))?;
        return Some(format!("the number {v}"));
    }
    None
}

/// Start-of-line byte offsets, for turning parser markers into [`Pos`].
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<u32>,
    ascii: bool,
}

impl LineIndex {
    pub fn new(src: &str) -> Self {
        let mut starts = Vec::with_capacity(src.len() / 32 + 1);
        starts.push(0);
        starts.extend(memchr::memchr_iter(b'\n', src.as_bytes()).map(|i| (i + 1) as u32));
        Self {
            starts,
            ascii: src.is_ascii(),
        }
    }

    /// Byte offset of the start of 1-based `line`, clamped to the file.
    pub fn line_start(&self, line: u32) -> u32 {
        let i = (line.max(1) - 1) as usize;
        self.starts
            .get(i)
            .copied()
            .unwrap_or_else(|| self.starts.last().copied().unwrap_or(0))
    }

    pub fn line_count(&self) -> usize {
        self.starts.len()
    }

    /// The position of a byte offset.
    pub fn pos_of_offset(&self, src: &str, offset: usize) -> Pos {
        let offset = offset.min(src.len());
        let line_idx = match self.starts.binary_search(&(offset as u32)) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.starts.get(line_idx).copied().unwrap_or(0) as usize;
        let col = if self.ascii {
            offset - start
        } else {
            src.get(start..offset)
                .map_or(offset - start, |s| s.chars().count())
        };
        Pos {
            line: line_idx as u32 + 1,
            col: col as u32 + 1,
            offset: offset as u32,
        }
    }

    fn pos(&self, src: &str, m: saphyr_parser::Marker) -> Pos {
        let line = m.line().max(1) as u32;
        let offset = if self.ascii {
            m.index()
        } else {
            let start = self.line_start(line) as usize;
            let rest = src.get(start..).unwrap_or("");
            start
                + rest
                    .char_indices()
                    .nth(m.col())
                    .map_or(rest.len(), |(i, _)| i)
        };
        Pos {
            line,
            col: m.col() as u32 + 1,
            offset: offset.min(src.len()) as u32,
        }
    }
}

/// An open collection. Its children wait on the builder's shared scratch
/// stacks (`items` from `base` on, or `entries` from `base` on) and move into
/// one exactly sized allocation when it closes: no growing vector per
/// collection, no capacity slack kept in the tree.
enum Frame {
    Seq {
        start: Pos,
        anchor: usize,
        base: usize,
    },
    Map {
        start: Pos,
        anchor: usize,
        base: usize,
        pending_key: Option<Node>,
    },
}

struct Builder<'a> {
    src: &'a str,
    lines: &'a LineIndex,
    limits: Limits,
    stack: Vec<Frame>,
    items: Vec<Node>,
    entries: Vec<Entry>,
    anchors: Vec<(usize, Node)>,
    alias_nodes: usize,
    problems: Vec<Problem>,
    yaml11: Vec<Yaml11Value>,
}

fn count_nodes(n: &Node) -> usize {
    match &n.value {
        Value::Scalar(_) => 1,
        Value::Sequence(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Value::Mapping(entries) => {
            1 + entries
                .iter()
                .map(|e| count_nodes(&e.key) + count_nodes(&e.value))
                .sum::<usize>()
        }
    }
}

#[allow(clippy::box_collection)] // what `Scalar::tag` holds, a thin pointer
fn tag_text(tag: Option<&Cow<'_, saphyr_parser::Tag>>) -> Option<Box<String>> {
    tag.map(|t| {
        let s = if t.handle == "tag:yaml.org,2002:" {
            format!("!!{}", t.suffix)
        } else if t.handle == "!" {
            format!("!{}", t.suffix)
        } else {
            format!("{}{}", t.handle, t.suffix)
        };
        Box::new(s)
    })
}

/// Why building stopped early.
struct Stop(Problem);

impl Builder<'_> {
    fn span(&self, s: saphyr_parser::Span) -> Span {
        Span {
            start: self.lines.pos(self.src, s.start),
            end: self.lines.pos(self.src, s.end),
        }
    }

    /// The parser ends a block scalar's span where the next token starts,
    /// after that line's indentation; the scalar's own text ends with its
    /// last line break.
    fn block_scalar_end(&self, span: Span) -> Pos {
        let text = self.src.get(span.range()).unwrap_or("");
        match text.rfind('\n') {
            Some(i) if text[i + 1..].bytes().all(|b| b == b' ' || b == b'\t') => self
                .lines
                .pos_of_offset(self.src, span.start.offset as usize + i + 1),
            _ => span.end,
        }
    }

    fn register_anchor(&mut self, anchor: usize, node: &Node) {
        if anchor > 0 {
            // Later anchors with the same id shadow earlier ones (ids are unique
            // per anchor name and the parser reuses them when a name repeats).
            self.anchors.push((anchor, node.clone()));
        }
    }

    /// True when the next node pushed becomes a mapping key.
    fn next_is_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Map {
                pending_key: None,
                ..
            })
        )
    }

    /// Note a plain scalar value that YAML 1.1 reads differently.
    fn note_yaml11(&mut self, node: &Node) {
        if let Value::Scalar(s) = &node.value
            && s.is_plain()
            && !self.next_is_key()
            && let Some(reading) = yaml11_reading(&s.text)
        {
            self.yaml11.push(Yaml11Value {
                span: node.span,
                text: s.text.clone(),
                reading,
            });
        }
    }

    /// Add a finished node to the enclosing collection, or return it as the
    /// document root.
    fn push(&mut self, node: Node) -> Option<Node> {
        match self.stack.last_mut() {
            None => Some(node),
            Some(Frame::Seq { .. }) => {
                self.items.push(node);
                None
            }
            Some(Frame::Map { pending_key, .. }) => {
                match pending_key.take() {
                    None => *pending_key = Some(node),
                    Some(key) => self.entries.push(Entry { key, value: node }),
                }
                None
            }
        }
    }

    fn check_depth(&self, at: Pos) -> Result<(), Stop> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(Stop(Problem {
                kind: ProblemKind::Limit,
                span: Span::at(at),
                message: format!(
                    "nesting deeper than {} levels; refusing to read further",
                    self.limits.max_depth
                ),
                related: None,
            }));
        }
        Ok(())
    }

    fn event(&mut self, ev: Event<'_>, sp: saphyr_parser::Span) -> Result<Option<Node>, Stop> {
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let mut span = self.span(sp);
                if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) {
                    span.end = self.block_scalar_end(span);
                }
                let node = Node {
                    span,
                    value: Value::Scalar(Scalar {
                        text: compact_str::CompactString::from(text.as_ref()),
                        style: style.into(),
                        tag: tag_text(tag.as_ref()),
                    }),
                };
                self.register_anchor(anchor, &node);
                self.note_yaml11(&node);
                Ok(self.push(node))
            }
            Event::Alias(id) => {
                let span = self.span(sp);
                let Some((_, target)) = self.anchors.iter().rev().find(|(a, _)| *a == id) else {
                    return Err(Stop(Problem {
                        kind: ProblemKind::Syntax,
                        span,
                        message: "alias to an unknown anchor".into(),
                        related: None,
                    }));
                };
                let added = count_nodes(target);
                self.alias_nodes = self.alias_nodes.saturating_add(added);
                if self.alias_nodes > self.limits.max_alias_nodes {
                    return Err(Stop(Problem {
                        kind: ProblemKind::Limit,
                        span,
                        message: format!(
                            "aliases expand to more than {} nodes; refusing to expand further (alias bomb?)",
                            self.limits.max_alias_nodes
                        ),
                        related: None,
                    }));
                }
                let mut node = target.clone();
                // The copy is reported at the alias, where the reader sees it.
                node.span = span;
                self.note_yaml11(&node);
                Ok(self.push(node))
            }
            Event::SequenceStart(anchor, _) => {
                let start = self.span(sp).start;
                self.check_depth(start)?;
                self.stack.push(Frame::Seq {
                    start,
                    anchor,
                    base: self.items.len(),
                });
                Ok(None)
            }
            Event::MappingStart(anchor, _) => {
                let start = self.span(sp).start;
                self.check_depth(start)?;
                self.stack.push(Frame::Map {
                    start,
                    anchor,
                    base: self.entries.len(),
                    pending_key: None,
                });
                Ok(None)
            }
            Event::SequenceEnd => {
                let end = self.span(sp).start;
                let Some(Frame::Seq {
                    start,
                    anchor,
                    base,
                }) = self.stack.pop()
                else {
                    return Ok(None);
                };
                let items: Vec<Node> = self.items.drain(base..).collect();
                let end = items.last().map_or(end, |n| n.span.end.max(end));
                let node = Node {
                    span: Span { start, end },
                    value: Value::Sequence(items),
                };
                self.register_anchor(anchor, &node);
                Ok(self.push(node))
            }
            Event::MappingEnd => {
                let end = self.span(sp).start;
                let Some(Frame::Map {
                    start,
                    anchor,
                    base,
                    ..
                }) = self.stack.pop()
                else {
                    return Ok(None);
                };
                let entries: Vec<Entry> = self.entries.drain(base..).collect();
                let entries = self.finish_mapping(entries);
                let end = entries.last().map_or(end, |e| e.value.span.end.max(end));
                let node = Node {
                    span: Span { start, end },
                    value: Value::Mapping(entries),
                };
                self.register_anchor(anchor, &node);
                Ok(self.push(node))
            }
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd
            | Event::Nothing => Ok(None),
        }
    }

    /// Apply `<<` merge keys and report duplicate keys.
    fn finish_mapping(&mut self, entries: Vec<Entry>) -> Vec<Entry> {
        let has_merge = entries.iter().any(|e| {
            e.key
                .as_scalar()
                .is_some_and(|s| s.is_plain() && s.text == "<<")
        });
        let entries = if has_merge {
            merge_keys(entries)
        } else {
            entries
        };
        self.report_duplicates(&entries);
        entries
    }

    fn report_duplicates(&mut self, entries: &[Entry]) {
        fn key_text(e: &Entry) -> Option<&str> {
            match &e.key.value {
                Value::Scalar(s) => Some(s.text.as_str()),
                _ => None,
            }
        }
        if entries.len() <= 16 {
            for (i, e) in entries.iter().enumerate() {
                let Some(k) = key_text(e) else { continue };
                if let Some(first) = entries[..i].iter().find(|p| key_text(p) == Some(k)) {
                    self.problems.push(duplicate(k, first, e));
                }
            }
        } else {
            let mut seen: std::collections::HashMap<&str, usize> =
                std::collections::HashMap::with_capacity(entries.len());
            for (i, e) in entries.iter().enumerate() {
                let Some(k) = key_text(e) else { continue };
                if let Some(&first) = seen.get(k) {
                    self.problems.push(duplicate(k, &entries[first], e));
                } else {
                    seen.insert(k, i);
                }
            }
        }
    }
}

fn duplicate(key: &str, first: &Entry, dup: &Entry) -> Problem {
    Problem {
        kind: ProblemKind::DuplicateKey,
        span: dup.key.span,
        message: format!("duplicate key `{key}`"),
        related: Some((first.key.span, "first defined here".into())),
    }
}

/// Resolve YAML 1.1 merge keys (`<<: *base`), which Kubernetes honours:
/// keys written in the mapping win over merged ones, earlier merge sources
/// win over later ones.
fn merge_keys(entries: Vec<Entry>) -> Vec<Entry> {
    let mut own = Vec::with_capacity(entries.len());
    let mut sources: Vec<Node> = Vec::new();
    for e in entries {
        if e.key
            .as_scalar()
            .is_some_and(|s| s.is_plain() && s.text == "<<")
        {
            match e.value.value {
                Value::Mapping(_) => sources.push(e.value),
                Value::Sequence(items) => sources.extend(items),
                Value::Scalar(_) => own.push(e),
            }
        } else {
            own.push(e);
        }
    }
    for src in sources {
        if let Value::Mapping(merged) = src.value {
            for m in merged {
                let k = m.key.as_str();
                if !own.iter().any(|o| o.key.as_str() == k) {
                    own.push(m);
                }
            }
        }
    }
    own
}

/// Parse every document of `src`. Never panics; problems are returned with
/// their positions, and every document completed before a syntax error is
/// kept.
pub fn parse(src: &str, lines: &LineIndex, limits: Limits) -> Parsed {
    let mut parser = Parser::new_from_str(src);
    let mut b = Builder {
        src,
        lines,
        limits,
        stack: Vec::new(),
        items: Vec::new(),
        entries: Vec::new(),
        anchors: Vec::new(),
        alias_nodes: 0,
        problems: Vec::new(),
        yaml11: Vec::new(),
    };
    let mut documents = Vec::new();
    while let Some(next) = parser.next_event() {
        match next {
            Err(e) => {
                let m = *e.marker();
                let pos = lines.pos(src, m);
                b.problems.push(Problem {
                    kind: ProblemKind::Syntax,
                    span: Span::at(pos),
                    message: e.info().to_string(),
                    related: None,
                });
                break;
            }
            Ok((ev, span)) => {
                if matches!(ev, Event::DocumentStart(_)) {
                    b.anchors.clear();
                }
                match b.event(ev, span) {
                    // An empty document (`---` followed by nothing or comments)
                    // holds no object, as kubectl also reads it.
                    Ok(Some(root)) if root.is_null() => {}
                    Ok(Some(root)) => documents.push(Document {
                        index: documents.len(),
                        root,
                    }),
                    Ok(None) => {}
                    Err(Stop(p)) => {
                        b.problems.push(p);
                        break;
                    }
                }
            }
        }
    }
    Parsed {
        documents,
        problems: b.problems,
        yaml11: b.yaml11,
    }
}

/// Walk every event of `src` without building anything: the baseline the
/// benchmark compares a full lint against.
pub fn bare_parse(src: &str) -> Result<usize, String> {
    let mut parser = Parser::new_from_str(src);
    let mut n = 0usize;
    while let Some(ev) = parser.next_event() {
        ev.map_err(|e| e.info().to_string())?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::format_collect, clippy::format_push_string)]
    use super::*;

    fn p(src: &str) -> Parsed {
        parse(src, &LineIndex::new(src), Limits::default())
    }

    #[test]
    fn spans_point_at_keys_and_values() {
        let src = "a: 1\nb:\n  c: hello\n  d: [x, y]\n";
        let parsed = p(src);
        assert!(parsed.problems.is_empty());
        let root = &parsed.documents[0].root;
        let c = root.path(&["b", "c"]).unwrap();
        assert_eq!((c.span.start.line, c.span.start.col), (3, 6));
        assert_eq!(&src[c.span.range()], "hello");
        let e = root.get("b").unwrap().entry("d").unwrap();
        assert_eq!((e.key.span.start.line, e.key.span.start.col), (4, 3));
        let y = &e.value.as_sequence().unwrap()[1];
        assert_eq!(&src[y.span.range()], "y");
    }

    #[test]
    fn block_scalar_spans_end_with_their_last_line_break() {
        let src = "a:\n  k: |\n    x\n    y\n  n: >-\n    z\n\nb: |+\n  w\n\n";
        let parsed = p(src);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let root = &parsed.documents[0].root;
        let text = |keys: &[&str]| &src[root.path(keys).unwrap().span.range()];
        // Not the next line's indentation, where the parser ends them.
        assert_eq!(text(&["a", "k"]), "x\n    y\n");
        assert_eq!(text(&["a", "n"]), "z\n\n");
        assert_eq!(text(&["b"]), "w\n\n");
    }

    #[test]
    fn multi_document_files_keep_every_document() {
        let parsed = p("a: 1\n---\nb: 2\n---\n# only a comment\n");
        assert!(parsed.problems.is_empty());
        assert_eq!(parsed.documents.len(), 2);
        assert_eq!(parsed.documents[1].root.get("b").unwrap().as_i64(), Some(2));
    }

    #[test]
    fn non_ascii_offsets_are_bytes_and_columns_are_chars() {
        let src = "name: \"héllo\"\nnext: wörld\n";
        let parsed = p(src);
        let next = parsed.documents[0].root.get("next").unwrap();
        assert_eq!(&src[next.span.range()], "wörld");
        assert_eq!(next.span.start.col, 7);
    }

    #[test]
    fn duplicate_keys_are_reported_at_the_second_key() {
        let parsed = p("a: 1\nb: 2\na: 3\n");
        assert_eq!(parsed.problems.len(), 1);
        let pr = &parsed.problems[0];
        assert_eq!(pr.kind, ProblemKind::DuplicateKey);
        assert_eq!((pr.span.start.line, pr.span.start.col), (3, 1));
        assert_eq!(pr.related.as_ref().unwrap().0.start.line, 1);
    }

    #[test]
    fn duplicate_keys_in_large_mappings_are_found() {
        let mut src: String = (0..40).map(|i| format!("k{i}: v\n")).collect();
        src.push_str("k7: again\n");
        let parsed = p(&src);
        assert_eq!(parsed.problems.len(), 1);
        assert_eq!(parsed.problems[0].span.start.line, 41);
    }

    #[test]
    fn syntax_errors_are_positioned_and_earlier_documents_survive() {
        let parsed = p("ok: 1\n---\na: [1, 2\nb: 3\n");
        assert_eq!(parsed.documents.len(), 1);
        assert_eq!(parsed.problems.len(), 1);
        assert_eq!(parsed.problems[0].kind, ProblemKind::Syntax);
        assert!(parsed.problems[0].span.start.line >= 3);
    }

    #[test]
    fn tabs_in_indentation_are_a_syntax_error() {
        let parsed = p("a:\n\tb: 1\n");
        assert_eq!(parsed.problems[0].kind, ProblemKind::Syntax);
        assert_eq!(parsed.problems[0].span.start.line, 2);
    }

    #[test]
    fn alias_bombs_stop_at_the_limit() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let parsed = p(&src);
        assert!(
            parsed
                .problems
                .iter()
                .any(|p| p.kind == ProblemKind::Limit && p.message.contains("alias"))
        );
    }

    #[test]
    fn small_aliases_and_merge_keys_resolve() {
        let src = "base: &b {x: 1, y: 2}\nthing:\n  <<: *b\n  y: 3\n";
        let parsed = p(src);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let t = parsed.documents[0].root.get("thing").unwrap();
        assert_eq!(t.get("x").unwrap().as_i64(), Some(1));
        assert_eq!(t.get("y").unwrap().as_i64(), Some(3));
    }

    #[test]
    fn deep_nesting_is_refused() {
        // Block nesting is bounded by our limit ...
        let src: String = (0..300)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        let parsed = p(&src);
        assert!(parsed.problems.iter().any(|p| p.kind == ProblemKind::Limit));
        // ... and flow nesting by the parser's own.
        let src = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        assert!(!p(&src).problems.is_empty());
    }

    #[test]
    fn scalars_keep_style_and_core_schema_types() {
        let parsed = p("a: \"1\"\nb: 1\nc: true\nd: yes\ne: ~\nf: !!str 5\n");
        let r = &parsed.documents[0].root;
        assert_eq!(r.get("a").unwrap().as_i64(), None);
        assert_eq!(r.get("b").unwrap().as_i64(), Some(1));
        assert_eq!(r.get("c").unwrap().as_bool(), Some(true));
        assert_eq!(r.get("d").unwrap().as_bool(), None);
        assert!(r.get("e").unwrap().is_null());
        assert_eq!(r.get("f").unwrap().as_i64(), None);
        assert_eq!(
            r.get("f").unwrap().as_scalar().unwrap().tag(),
            Some("!!str")
        );
    }

    #[test]
    fn yaml11_readings() {
        assert_eq!(yaml11_reading("on").as_deref(), Some("the boolean `true`"));
        assert_eq!(yaml11_reading("NO").as_deref(), Some("the boolean `false`"));
        assert_eq!(
            yaml11_reading("0755").as_deref(),
            Some("the octal number 493")
        );
        assert_eq!(yaml11_reading("1:30").as_deref(), Some("the number 90"));
        assert_eq!(yaml11_reading("0"), None);
        assert_eq!(yaml11_reading("089"), None);
        assert_eq!(yaml11_reading("10:75"), None);
        assert_eq!(yaml11_reading("true"), None);
        assert_eq!(yaml11_reading("nope"), None);
    }

    #[test]
    fn yaml11_values_are_noted_in_order_but_keys_and_quoted_values_are_not() {
        let src = "on: yes\nlist: [no, \"off\", 0644]\nanchor: &a ON\ncopy: *a\nok: 'y'\n";
        let parsed = p(src);
        let noted: Vec<(&str, u32)> = parsed
            .yaml11
            .iter()
            .map(|v| (v.text.as_str(), v.span.start.line))
            .collect();
        assert_eq!(
            noted,
            vec![("yes", 1), ("no", 2), ("0644", 2), ("ON", 3), ("ON", 4)]
        );
        assert_eq!(&src[parsed.yaml11[4].span.range()], "*a");
    }

    #[test]
    fn binary_junk_never_panics() {
        let junk: String = (0u8..=255).cycle().take(4096).map(char::from).collect();
        let _ = p(&junk);
        let _ = p("\u{0}\u{1}: [\u{7f}");
        let _ = p("&a [*a]");
        let _ = p("? [a, b]\n: c\n");
    }
}
#[cfg(test)]
mod size {
    /// Every manifest's tree is held in memory at once: a bigger node is
    /// more memory and more page faults on large repositories.
    #[test]
    fn a_node_stays_64_bytes() {
        assert_eq!(size_of::<super::Node>(), 64);
        assert_eq!(size_of::<super::Entry>(), 128);
    }
}
