//! Walking a document in sops's order, and the decrypted tree.
//!
//! sops visits every mapping entry in source order, depth first, skipping the
//! top-level `sops` key. The path handed to the encryption rules and used as
//! AES-GCM associated data is the list of mapping keys from the root;
//! sequence items add nothing to it (`list: [a, b]` encrypts both items with
//! `list:`). Nulls are neither encrypted nor part of the MAC.

use dtlint_yaml::{Node, Scalar, Span, Value};

use crate::value::Plain;

/// Callbacks for [`walk`]. Paths are the mapping keys from the root.
pub(crate) trait Visitor<'n> {
    type Err;
    /// A non-null scalar value.
    fn leaf(
        &mut self,
        path: &[&'n str],
        node: &'n Node,
        scalar: &'n Scalar,
        in_flow: bool,
    ) -> Result<(), Self::Err>;
    /// A null value.
    fn null(&mut self, _path: &[&'n str], _node: &'n Node) -> Result<(), Self::Err> {
        Ok(())
    }
    /// A mapping or sequence starts; `key` is the entry key it is the value of.
    fn enter(
        &mut self,
        _path: &[&'n str],
        _node: &'n Node,
        _in_flow: bool,
    ) -> Result<(), Self::Err> {
        Ok(())
    }
    /// A mapping entry's key, before its value is visited.
    fn key(&mut self, _key: &'n Node, _text: &'n str) -> Result<(), Self::Err> {
        Ok(())
    }
    /// The collection entered last ends.
    fn leave(&mut self, _node: &'n Node) -> Result<(), Self::Err> {
        Ok(())
    }
}

/// The text of a mapping key as sops sees it.
pub(crate) fn key_text<'n>(key: &'n Node, src: &'n str) -> &'n str {
    match &key.value {
        Value::Scalar(s) => &s.text,
        _ => src.get(key.span.range()).unwrap_or(""),
    }
}

/// True when the node is written in flow style (`[...]` or `{...}`).
pub(crate) fn is_flow(node: &Node, src: &str) -> bool {
    matches!(
        src.as_bytes().get(node.span.start.offset as usize),
        Some(b'[' | b'{')
    )
}

/// Walk a document root (a mapping) in sops order, skipping its `sops` entry.
pub(crate) fn walk_root<'n, V: Visitor<'n>>(
    root: &'n Node,
    src: &'n str,
    v: &mut V,
) -> Result<(), V::Err> {
    let mut path = Vec::with_capacity(8);
    walk(root, src, &mut path, false, true, v)
}

fn walk<'n, V: Visitor<'n>>(
    node: &'n Node,
    src: &'n str,
    path: &mut Vec<&'n str>,
    in_flow: bool,
    is_root: bool,
    v: &mut V,
) -> Result<(), V::Err> {
    match &node.value {
        Value::Scalar(s) if s.is_null() => v.null(path, node),
        Value::Scalar(s) => v.leaf(path, node, s, in_flow),
        Value::Sequence(items) => {
            let flow = in_flow || is_flow(node, src);
            v.enter(path, node, flow)?;
            for item in items {
                walk(item, src, path, flow, false, v)?;
            }
            v.leave(node)
        }
        Value::Mapping(entries) => {
            let flow = in_flow || is_flow(node, src);
            v.enter(path, node, flow)?;
            for e in entries {
                let k = key_text(&e.key, src);
                if is_root && k == "sops" {
                    continue;
                }
                v.key(&e.key, k)?;
                path.push(k);
                let r = walk(&e.value, src, path, flow, false, v);
                path.pop();
                r?;
            }
            v.leave(node)
        }
    }
}

/// The indentation step of a YAML file: how far its first nested block
/// collection is indented from its key (2 when there is none).
pub(crate) fn indent_unit(root: &Node) -> usize {
    for e in root.entries() {
        if matches!(e.value.value, Value::Mapping(_) | Value::Sequence(_)) {
            let d = e.value.span.start.col.saturating_sub(e.key.span.start.col) as usize;
            if (2..=8).contains(&d) {
                return d;
            }
        }
    }
    2
}

/// sops's associated data for a path: the keys joined by `:`, plus a final
/// `:` (so a top-level comment's is just `:`).
pub(crate) fn aad(path: &[&str]) -> String {
    let mut s = String::with_capacity(path.iter().map(|p| p.len() + 1).sum::<usize>() + 1);
    for (i, p) in path.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(p);
    }
    s.push(':');
    s
}

/// A decrypted node, at the span of the source node it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct PlainNode {
    pub span: Span,
    pub value: PlainValue,
}

/// The shape of a decrypted node.
#[derive(Debug, Clone, PartialEq)]
pub enum PlainValue {
    Null,
    /// A scalar; `encrypted` tells whether it was encrypted in the file.
    Scalar {
        value: Plain,
        encrypted: bool,
    },
    Sequence(Vec<PlainNode>),
    Mapping(Vec<PlainEntry>),
}

/// A decrypted mapping entry; keys are never encrypted.
#[derive(Debug, Clone, PartialEq)]
pub struct PlainEntry {
    pub key: String,
    pub key_span: Span,
    pub value: PlainNode,
}

impl PlainNode {
    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&PlainNode> {
        match &self.value {
            PlainValue::Mapping(entries) => entries.iter().find(|e| e.key == key).map(|e| &e.value),
            _ => None,
        }
    }

    /// Follow a path of mapping keys.
    pub fn path(&self, keys: &[&str]) -> Option<&PlainNode> {
        keys.iter().try_fold(self, |n, k| n.get(k))
    }

    /// The scalar value, if this is a scalar.
    pub fn as_plain(&self) -> Option<&Plain> {
        match &self.value {
            PlainValue::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// A string scalar's text.
    pub fn as_str(&self) -> Option<&str> {
        self.as_plain().and_then(Plain::as_str)
    }

    /// A mapping's entries (empty for anything else).
    pub fn entries(&self) -> &[PlainEntry] {
        match &self.value {
            PlainValue::Mapping(e) => e,
            _ => &[],
        }
    }

    /// A sequence's items (empty for anything else).
    pub fn items(&self) -> &[PlainNode] {
        match &self.value {
            PlainValue::Sequence(i) => i,
            _ => &[],
        }
    }
}

/// Builds a [`PlainNode`] tree while a walk visits the source tree.
#[derive(Default)]
pub(crate) struct TreeBuilder {
    stack: Vec<(PlainNode, Option<(String, Span)>)>,
    pending_key: Option<(String, Span)>,
    root: Option<PlainNode>,
}

impl TreeBuilder {
    pub(crate) fn enter(&mut self, node: &Node) {
        let value = match node.value {
            Value::Sequence(_) => PlainValue::Sequence(Vec::new()),
            _ => PlainValue::Mapping(Vec::new()),
        };
        let key = self.pending_key.take();
        self.stack.push((
            PlainNode {
                span: node.span,
                value,
            },
            key,
        ));
    }

    pub(crate) fn key(&mut self, text: &str, span: Span) {
        self.pending_key = Some((text.to_owned(), span));
    }

    pub(crate) fn push(&mut self, node: PlainNode) {
        let key = self.pending_key.take();
        self.attach(node, key);
    }

    pub(crate) fn leave(&mut self) {
        if let Some((node, key)) = self.stack.pop() {
            self.attach(node, key);
        }
    }

    fn attach(&mut self, node: PlainNode, key: Option<(String, Span)>) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some((parent, _)) => match &mut parent.value {
                PlainValue::Sequence(items) => items.push(node),
                PlainValue::Mapping(entries) => {
                    let (key, key_span) = key.unwrap_or_default();
                    entries.push(PlainEntry {
                        key,
                        key_span,
                        value: node,
                    });
                }
                PlainValue::Null | PlainValue::Scalar { .. } => {}
            },
        }
    }

    pub(crate) fn finish(self) -> Option<PlainNode> {
        self.root
    }
}
