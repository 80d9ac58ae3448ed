//! A small YAML tree that remembers where every node starts, so a failing check can name
//! `file:line:column` instead of a resource name alone.
//!
//! Built on `saphyr-parser` events. Plain scalars are resolved with the YAML 1.2 core schema;
//! aliases are expanded with a cap on the total node count, so an alias bomb is an error and
//! not an out-of-memory.

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

/// Upper bound on nodes per stream, counting alias expansions.
const MAX_NODES: usize = 2_000_000;

/// A position in a YAML source: 1-based line, 1-based column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// One YAML node and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

/// The shape of a node.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in source order; a key is kept with its own position.
    Map(Vec<(String, Pos, Node)>),
}

/// A YAML syntax error or a construct these tests do not accept.
#[derive(Debug, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct Error {
    pub pos: Pos,
    pub message: String,
}

impl Node {
    /// The value under `key` when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries.iter().find(|(k, _, _)| k == key).map(|(_, _, v)| v),
            _ => None,
        }
    }

    /// Follows a path of mapping keys.
    pub fn path(&self, keys: &[&str]) -> Option<&Node> {
        keys.iter().try_fold(self, |node, key| node.get(key))
    }

    /// The string value of a scalar string node.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The `(key, key position, value)` entries of a mapping; empty for anything else.
    pub fn entries(&self) -> &[(String, Pos, Node)] {
        match &self.kind {
            Kind::Map(entries) => entries,
            _ => &[],
        }
    }

    /// The items of a sequence; empty for anything else.
    pub fn items(&self) -> &[Node] {
        match &self.kind {
            Kind::Seq(items) => items,
            _ => &[],
        }
    }

    /// Shorthand for `path(keys)` followed by `as_str`.
    pub fn str_at(&self, keys: &[&str]) -> Option<&str> {
        self.path(keys).and_then(Node::as_str)
    }

    /// The node a JSON pointer (`/spec/values/0`) designates, or the deepest existing ancestor.
    pub fn locate(&self, pointer: &str) -> &Node {
        let mut node = self;
        for raw in pointer.split('/').skip(1) {
            let token = raw.replace("~1", "/").replace("~0", "~");
            let next = match &node.kind {
                Kind::Map(_) => node.get(&token),
                Kind::Seq(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node
    }

    /// The same data as JSON, for schema validation.
    pub fn to_json(&self) -> Value {
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::Number(Number::from(*i)),
            Kind::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => {
                let mut map = Map::new();
                for (k, _, v) in entries {
                    map.insert(k.clone(), v.to_json());
                }
                Value::Object(map)
            }
        }
    }
}

fn pos_of(span: Span) -> Pos {
    Pos {
        line: span.start.line(),
        col: span.start.col() + 1,
    }
}

/// Resolves a plain scalar with the YAML 1.2 core schema.
fn resolve_plain(text: &str) -> Kind {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Kind::Null,
        "true" | "True" | "TRUE" => return Kind::Bool(true),
        "false" | "False" | "FALSE" => return Kind::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Kind::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Kind::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Kind::Float(f64::NAN),
        _ => {}
    }
    if let Some(Ok(i)) = text.strip_prefix("0x").map(|h| i64::from_str_radix(h, 16)) {
        return Kind::Int(i);
    }
    if let Some(Ok(i)) = text.strip_prefix("0o").map(|o| i64::from_str_radix(o, 8)) {
        return Kind::Int(i);
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(i) = text.parse::<i64>()
    {
        return Kind::Int(i);
    }
    let looks_numeric = digits
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && digits.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric && let Ok(f) = text.parse::<f64>() {
        return Kind::Float(f);
    }
    Kind::Str(text.to_owned())
}

enum Frame {
    Seq(Pos, usize, Vec<Node>),
    Map(Pos, usize, Vec<(String, Pos, Node)>, Option<(String, Pos)>),
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    docs: Vec<Node>,
    count: usize,
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize) -> Result<(), Error> {
        self.count += weight(&node);
        if self.count > MAX_NODES {
            return Err(Error {
                pos: node.pos,
                message: format!("more than {MAX_NODES} nodes (alias expansion?)"),
            });
        }
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq(_, _, items)) => items.push(node),
            Some(Frame::Map(_, _, entries, pending)) => match pending.take() {
                None => {
                    let Kind::Str(key) = node.kind else {
                        let key = match node.kind {
                            Kind::Int(i) => i.to_string(),
                            Kind::Bool(b) => b.to_string(),
                            Kind::Null => "null".to_owned(),
                            Kind::Float(f) => f.to_string(),
                            _ => {
                                return Err(Error {
                                    pos: node.pos,
                                    message: "complex mapping keys are not supported".to_owned(),
                                });
                            }
                        };
                        *pending = Some((key, node.pos));
                        return Ok(());
                    };
                    if entries.iter().any(|(k, _, _)| *k == key) {
                        return Err(Error {
                            pos: node.pos,
                            message: format!("duplicate key `{key}`"),
                        });
                    }
                    *pending = Some((key, node.pos));
                }
                Some((key, key_pos)) => entries.push((key, key_pos, node)),
            },
        }
        Ok(())
    }
}

fn weight(node: &Node) -> usize {
    match &node.kind {
        Kind::Seq(items) => 1 + items.iter().map(weight).sum::<usize>(),
        Kind::Map(entries) => 1 + entries.iter().map(|(_, _, v)| weight(v)).sum::<usize>(),
        _ => 1,
    }
}

/// Parses every document of a YAML stream. Empty documents are kept as `Null` nodes.
pub fn parse(text: &str) -> Result<Vec<Node>, Error> {
    let mut b = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        docs: Vec::new(),
        count: 0,
    };
    let mut parser = Parser::new_from_str(text);
    let mut doc_has_root = false;
    while let Some(item) = parser.next_event() {
        let (event, span) = item.map_err(|e| Error {
            pos: Pos {
                line: e.marker().line(),
                col: e.marker().col() + 1,
            },
            message: e.info().to_owned(),
        })?;
        let pos = pos_of(span);
        match event {
            Event::DocumentStart(_) => doc_has_root = false,
            Event::DocumentEnd => {
                if !doc_has_root {
                    b.docs.push(Node {
                        pos,
                        kind: Kind::Null,
                    });
                }
            }
            Event::Scalar(value, style, anchor, tag) => {
                let kind = if style == ScalarStyle::Plain
                    && tag.as_ref().is_none_or(|t| t.suffix != "str")
                {
                    resolve_plain(&value)
                } else {
                    Kind::Str(value.into_owned())
                };
                if b.stack.is_empty() {
                    doc_has_root = true;
                }
                b.push_value(Node { pos, kind }, anchor)?;
            }
            Event::Alias(id) => {
                let node = b.anchors.get(&id).cloned().ok_or_else(|| Error {
                    pos,
                    message: format!("unknown alias {id}"),
                })?;
                if b.stack.is_empty() {
                    doc_has_root = true;
                }
                b.push_value(node, 0)?;
            }
            Event::SequenceStart(anchor, _) => b.stack.push(Frame::Seq(pos, anchor, Vec::new())),
            Event::MappingStart(anchor, _) => {
                b.stack.push(Frame::Map(pos, anchor, Vec::new(), None));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match b.stack.pop() {
                    Some(Frame::Seq(p, a, items)) => (
                        Node {
                            pos: p,
                            kind: Kind::Seq(items),
                        },
                        a,
                    ),
                    Some(Frame::Map(p, a, entries, _)) => (
                        Node {
                            pos: p,
                            kind: Kind::Map(entries),
                        },
                        a,
                    ),
                    None => {
                        return Err(Error {
                            pos,
                            message: "unbalanced collection end".to_owned(),
                        });
                    }
                };
                if b.stack.is_empty() {
                    doc_has_root = true;
                }
                b.push_value(node, anchor)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
    }
    Ok(b.docs)
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    #[test]
    fn resolves_core_schema_scalars_and_positions() {
        let docs = parse("a: 1\nb: \"1\"\nc: true\nd: ~\ne: 0440\nf: 1.5\n---\n- x\n").unwrap();
        assert_eq!(docs.len(), 2);
        let json = docs[0].to_json();
        assert_eq!(json["a"], 1);
        assert_eq!(json["b"], "1");
        assert_eq!(json["c"], true);
        assert!(json["d"].is_null());
        // YAML 1.2: a leading zero is not octal.
        assert_eq!(json["e"], 440);
        assert_eq!(json["f"], 1.5);
        assert_eq!(docs[0].get("c").unwrap().pos, Pos { line: 3, col: 4 });
        assert_eq!(docs[1].items()[0].as_str(), Some("x"));
    }

    #[test]
    fn locates_json_pointers() {
        let docs = parse("spec:\n  items:\n    - name: a\n    - name: b\n").unwrap();
        assert_eq!(docs[0].locate("/spec/items/1/name").pos.line, 4);
        // A missing tail stops at the deepest node that exists.
        assert_eq!(docs[0].locate("/spec/items/7").pos.line, 3);
    }

    #[test]
    fn rejects_duplicate_keys_with_position() {
        let err = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(err.pos.line, 2);
        assert!(err.message.contains("duplicate key"));
    }

    #[test]
    fn expands_aliases_but_caps_bombs() {
        let docs = parse("a: &x [1, 2]\nb: *x\n").unwrap();
        assert_eq!(docs[0].to_json()["b"][1], 2);
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            let refs = vec![format!("*a{p}"); 10].join(", ");
            writeln!(bomb, "a{i}: &a{i} [{refs}]").unwrap();
        }
        assert!(parse(&bomb).unwrap_err().message.contains("nodes"));
    }

    #[test]
    fn reports_syntax_errors_with_position() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1);
    }
}
