//! The span of every node points at its own text: for generated documents
//! mixing plain, single-quoted, double-quoted and literal scalars with flow
//! and block mappings and sequences (ASCII and not), every scalar's span
//! slices the source to exactly the text written for it, which parses back to
//! the same scalar (a block scalar's span is its content, without the `|`
//! header: it parses back under a header); every key's span covers exactly
//! the key's text; every
//! collection's span starts at its own first character (`[`, `{`, `-` or its
//! first key) and holds its children's spans.
//!
//! `PROPTEST_CASES` raises the number of cases, e.g.
//! `PROPTEST_CASES=20000 cargo test -p dtlint-yaml --test spans --release`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dtlint_yaml::{Limits, LineIndex, Node, Parsed, Style, Value, parse};
use proptest::prelude::*;

/// A scalar: its value and the text it is written as.
#[derive(Debug, Clone)]
struct Scalar {
    value: String,
    style: Style,
    written: String,
}

#[derive(Debug, Clone)]
enum Tree {
    Scalar(Scalar),
    Seq {
        items: Vec<Tree>,
        flow: bool,
    },
    Map {
        entries: Vec<(Scalar, Tree)>,
        flow: bool,
    },
}

fn plain(value: String) -> Scalar {
    Scalar {
        written: value.clone(),
        value,
        style: Style::Plain,
    }
}

fn single(value: String) -> Scalar {
    Scalar {
        written: format!("'{}'", value.replace('\'', "''")),
        value,
        style: Style::SingleQuoted,
    }
}

fn double(value: String) -> Scalar {
    let mut written = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => written.push_str("\\\""),
            '\\' => written.push_str("\\\\"),
            '\n' => written.push_str("\\n"),
            '\t' => written.push_str("\\t"),
            _ => written.push(c),
        }
    }
    written.push('"');
    Scalar {
        value,
        style: Style::DoubleQuoted,
        written,
    }
}

/// Plain scalars that are safe in flow and block context alike: words,
/// numbers, booleans, non-ASCII letters, inner spaces and punctuation.
fn plain_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zé][a-z0-9é🙂_./-]{0,8}( [a-z0-9é]{1,4}){0,2}",
        "-?[0-9]{1,5}",
        "[0-9]{1,3}\\.[0-9]{1,3}",
        Just("true".to_owned()),
        Just("0x1F".to_owned()),
    ]
    // A null root reads back as no document at all.
    .prop_filter("not null", |s| s != "null")
}

/// A scalar usable anywhere (not a block scalar, not null).
fn inline_scalar() -> impl Strategy<Value = Scalar> {
    prop_oneof![
        3 => plain_text().prop_map(plain),
        1 => "[a-z é🙂'\"#:,\\[\\]{}]{0,10}".prop_map(single),
        1 => "[a-z é🙂'\"#:,\\[\\]{}\\\\\n\t]{0,10}".prop_map(double),
    ]
}

/// A key: plain or quoted, never the merge key.
fn key() -> impl Strategy<Value = Scalar> {
    prop_oneof![
        3 => "[a-zé][a-z0-9é_.-]{0,6}".prop_map(plain),
        1 => "[a-z é:#,]{1,6}".prop_map(single),
        1 => "[a-z é:#\"\\\\]{1,6}".prop_map(double),
    ]
}

/// Keys unique by value, so no mapping has a duplicate.
fn keyed<T: std::fmt::Debug + Clone>(
    values: impl Strategy<Value = T>,
    min: usize,
) -> impl Strategy<Value = Vec<(Scalar, T)>> {
    prop::collection::vec((key(), values), min..5).prop_map(|entries| {
        let mut seen = std::collections::BTreeSet::new();
        entries
            .into_iter()
            .filter(|(k, _)| seen.insert(k.value.clone()))
            .collect()
    })
}

/// Flow content: scalars and flow collections only.
fn flow_tree() -> impl Strategy<Value = Tree> {
    inline_scalar()
        .prop_map(Tree::Scalar)
        .prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|items| Tree::Seq { items, flow: true }),
                keyed(inner, 0).prop_map(|entries| Tree::Map {
                    entries,
                    flow: true
                }),
            ]
        })
}

/// A literal block scalar's value: lines of text, each ending in a newline.
fn literal() -> impl Strategy<Value = Scalar> {
    prop::collection::vec("[a-zé][a-z é#:'\"]{0,8}", 1..4).prop_map(|lines| Scalar {
        value: lines.iter().flat_map(|l| [l.as_str(), "\n"]).collect(),
        style: Style::Literal,
        // Written by `emit`, which knows the indentation.
        written: String::new(),
    })
}

/// Block content: any of the above, and block collections of it.
fn tree() -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        4 => inline_scalar().prop_map(Tree::Scalar),
        1 => literal().prop_map(Tree::Scalar),
        2 => flow_tree(),
    ];
    leaf.prop_recursive(4, 40, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4)
                .prop_map(|items| Tree::Seq { items, flow: false }),
            keyed(inner, 1).prop_map(|entries| Tree::Map {
                entries,
                flow: false
            }),
        ]
    })
}

fn is_block(t: &Tree) -> bool {
    matches!(
        t,
        Tree::Seq { flow: false, .. } | Tree::Map { flow: false, .. }
    )
}

/// Writes a flow node or an inline scalar.
fn emit_flow(t: &Tree, out: &mut String) {
    match t {
        Tree::Scalar(s) => out.push_str(&s.written),
        Tree::Seq { items, .. } => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                emit_flow(item, out);
            }
            out.push(']');
        }
        Tree::Map { entries, .. } => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&k.written);
                out.push_str(": ");
                emit_flow(v, out);
            }
            out.push('}');
        }
    }
}

/// Writes `t` as the value after a `key:` or `-` that has just been written,
/// its block content indented by `indent`. Fills in literal scalars' text.
fn emit_value(t: &mut Tree, indent: usize, out: &mut String) {
    match t {
        Tree::Scalar(s) if s.style == Style::Literal => {
            let pad = " ".repeat(indent);
            s.written = String::new();
            for line in s.value.lines() {
                s.written.push_str(&pad);
                s.written.push_str(line);
                s.written.push('\n');
            }
            out.push_str(" |\n");
            out.push_str(&s.written);
        }
        t if is_block(t) => {
            out.push('\n');
            emit_block(t, indent, out);
        }
        t => {
            out.push(' ');
            emit_flow(t, out);
            out.push('\n');
        }
    }
}

/// Writes a block collection at `indent`, starting on a fresh line.
fn emit_block(t: &mut Tree, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match t {
        Tree::Seq { items, .. } => {
            for item in items {
                out.push_str(&pad);
                out.push('-');
                emit_value(item, indent + 2, out);
            }
        }
        Tree::Map { entries, .. } => {
            for (k, v) in entries {
                out.push_str(&pad);
                out.push_str(&k.written);
                out.push(':');
                emit_value(v, indent + 2, out);
            }
        }
        Tree::Scalar(_) => unreachable!("emit_block is only called for collections"),
    }
}

fn parse_str(src: &str) -> Parsed {
    parse(src, &LineIndex::new(src), Limits::default())
}

/// Checks that `n` holds `t` and that every span points at its own text.
fn check(t: &Tree, n: &Node, src: &str) -> Result<(), String> {
    let slice = text(src, n);
    let here = |what: &str| format!("{what} at {} ({slice:?})", n.span.start);
    match (t, &n.value) {
        (Tree::Scalar(s), Value::Scalar(sc)) => {
            if sc.text != s.value.as_str() || sc.style != s.style {
                return Err(here(&format!("expected {s:?}, read {sc:?}")));
            }
            // A block scalar's span covers its content, from the first
            // character of its first line, and not its `|` header (SOPS
            // encryption in place relies on this): it reads back under a
            // header at its own indentation.
            let (written, again) = if s.style == Style::Literal {
                let pad = " ".repeat(n.span.start.col as usize - 1);
                (
                    s.written.trim_start_matches(' '),
                    format!("|\n{pad}{slice}"),
                )
            } else {
                (s.written.as_str(), slice.to_owned())
            };
            if slice != written {
                return Err(here(&format!("scalar span is not {written:?}")));
            }
            let again = parse_str(&again);
            let back = again.documents.first().map(|d| &d.root.value);
            if !matches!(back, Some(Value::Scalar(b)) if b.text == sc.text && b.style == sc.style) {
                return Err(here(&format!("the span's text reads back as {back:?}")));
            }
            Ok(())
        }
        (Tree::Seq { items, flow }, Value::Sequence(nodes)) => {
            if items.len() != nodes.len() {
                return Err(here("sequence length differs"));
            }
            let first = if *flow { '[' } else { '-' };
            if !slice.starts_with(first) {
                return Err(here(&format!("sequence span does not start at `{first}`")));
            }
            for (item, node) in items.iter().zip(nodes) {
                inside(node, n, src)?;
                check(item, node, src)?;
            }
            Ok(())
        }
        (Tree::Map { entries, flow }, Value::Mapping(es)) => {
            if entries.len() != es.len() {
                return Err(here("mapping length differs"));
            }
            if *flow && !slice.starts_with('{') {
                return Err(here("flow mapping span does not start at `{`"));
            }
            if let (false, Some(e)) = (*flow, es.first())
                && e.key.span.start != n.span.start
            {
                return Err(here("block mapping span does not start at its first key"));
            }
            for ((k, v), e) in entries.iter().zip(es) {
                let key_text = text(src, &e.key);
                let key_value = e.key.as_scalar().map(|s| s.text.as_str());
                if key_text != k.written || key_value != Some(k.value.as_str()) {
                    return Err(format!(
                        "key {k:?} at {} has span text {key_text:?}",
                        e.key.span.start
                    ));
                }
                inside(&e.key, n, src)?;
                inside(&e.value, n, src)?;
                check(v, &e.value, src)?;
            }
            Ok(())
        }
        (_, other) => Err(here(&format!("expected {t:?}, read {other:?}"))),
    }
}

/// The source text under a node's span.
fn text<'a>(src: &'a str, n: &Node) -> &'a str {
    src.get(n.span.range())
        .unwrap_or("<span outside the source or off character boundaries>")
}

/// A child's span lies within its parent's.
fn inside(child: &Node, parent: &Node, src: &str) -> Result<(), String> {
    let (c, p) = (child.span, parent.span);
    if c.start.offset >= p.start.offset && c.end.offset <= p.end.offset {
        Ok(())
    } else {
        Err(format!(
            "{:?} at {} is outside its parent {:?} at {}",
            text(src, child),
            c.start,
            text(src, parent),
            p.start
        ))
    }
}

/// The document: a block mapping `root:` holding the tree, so every kind of
/// node is also a value somewhere.
fn document(t: &mut Tree) -> String {
    let mut src = String::from("# generated\nroot:");
    emit_value(t, 2, &mut src);
    src
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_span_points_at_its_own_text(mut t in tree()) {
        let src = document(&mut t);
        let parsed = parse_str(&src);
        prop_assert!(parsed.problems.is_empty(), "{:?}\n{src}", parsed.problems);
        prop_assert_eq!(parsed.documents.len(), 1, "{}", src);
        let root = parsed.documents[0].root.get("root").expect("root key");
        if let Err(e) = check(&t, root, &src) {
            prop_assert!(false, "{}\n--- source ---\n{}", e, src);
        }
    }
}

/// The property can fail: a span shifted by one character is caught.
#[test]
fn a_shifted_span_is_caught() {
    let mut t = Tree::Map {
        entries: vec![(plain("k".into()), Tree::Scalar(double("v é".into())))],
        flow: true,
    };
    let src = document(&mut t);
    let parsed = parse_str(&src);
    let mut root = parsed.documents[0].root.get("root").unwrap().clone();
    assert_eq!(check(&t, &root, &src), Ok(()));
    if let Value::Mapping(entries) = &mut root.value {
        entries[0].value.span.start.offset += 1;
    }
    assert!(check(&t, &root, &src).is_err());
}
