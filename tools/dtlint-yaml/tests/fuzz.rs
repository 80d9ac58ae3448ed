//! Property-based fuzzing of the YAML layer: arbitrary bytes never panic and
//! every span stays inside the input; generated documents read back with the
//! values and positions they were written with.
//!
//! Runs a short fuzz in every test run (`PROPTEST_CASES` raises it, e.g.
//! `PROPTEST_CASES=100000 cargo test -p dtlint-yaml --test fuzz --release`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dtlint_yaml::{Limits, LineIndex, Node, Value, parse};
use proptest::prelude::*;

fn check_spans(node: &Node, len: usize) {
    assert!(node.span.start.offset as usize <= len && node.span.end.offset as usize <= len);
    assert!(node.span.start.line >= 1 && node.span.start.col >= 1);
    match &node.value {
        Value::Scalar(_) => {}
        Value::Sequence(items) => items.iter().for_each(|n| check_spans(n, len)),
        Value::Mapping(entries) => entries.iter().for_each(|e| {
            check_spans(&e.key, len);
            check_spans(&e.value, len);
        }),
    }
}

fn run(src: &str) {
    let lines = LineIndex::new(src);
    let parsed = parse(src, &lines, Limits::default());
    for d in &parsed.documents {
        check_spans(&d.root, src.len());
    }
    for p in &parsed.problems {
        assert!(p.span.start.offset as usize <= src.len());
    }
}

/// YAML-ish text: the characters that steer the parser, plus noise.
fn yamlish() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "a", "b: ", "- ", "\n", "  ", "\t", ":", "{", "}", "[", "]", ",", "&x ", "*x", "<<: ", "'",
        "\"", "|", ">", "#", "---\n", "...\n", "!!str ", "? ", "é", "\u{0}", "\\", "0755", "on",
        "~",
    ]);
    prop::collection::vec(atoms, 0..80).prop_map(|v| v.concat())
}

/// A small random tree of mappings, sequences and plain scalars.
#[derive(Debug, Clone)]
enum Tree {
    Leaf(String),
    Seq(Vec<Tree>),
    Map(Vec<(String, Tree)>),
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = "[a-z][a-z0-9]{0,6}".prop_map(Tree::Leaf);
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..5).prop_map(Tree::Seq),
            prop::collection::btree_map("[a-z][a-z0-9]{0,5}", inner, 1..5)
                .prop_map(|m| Tree::Map(m.into_iter().collect())),
        ]
    })
}

fn emit(t: &Tree, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match t {
        Tree::Leaf(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Tree::Seq(items) => {
            out.push('\n');
            for i in items {
                out.push_str(&pad);
                out.push_str("- ");
                if let Tree::Leaf(_) = i {
                    emit(i, indent + 2, out);
                } else {
                    out.push_str("x:");
                    emit(i, indent + 4, out);
                }
            }
        }
        Tree::Map(entries) => {
            out.push('\n');
            for (k, v) in entries {
                out.push_str(&pad);
                out.push_str(k);
                out.push(':');
                if matches!(v, Tree::Leaf(_)) {
                    out.push(' ');
                }
                emit(v, indent + 2, out);
            }
        }
    }
}

/// Does the parsed node hold the tree, and does every scalar's span slice to
/// its own text?
fn same(t: &Tree, n: &Node, src: &str) -> bool {
    match (t, &n.value) {
        (Tree::Leaf(s), Value::Scalar(sc)) => sc.text == *s && &src[n.span.range()] == s,
        (Tree::Seq(items), Value::Sequence(ns)) => {
            items.len() == ns.len()
                && items.iter().zip(ns).all(|(i, n)| match i {
                    Tree::Leaf(_) => same(i, n, src),
                    _ => n.get("x").is_some_and(|x| same(i, x, src)),
                })
        }
        (Tree::Map(es), Value::Mapping(ns)) => {
            es.len() == ns.len()
                && es
                    .iter()
                    .zip(ns)
                    .all(|((k, v), e)| e.key.as_str() == Some(k) && same(v, &e.value, src))
        }
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        run(&s);
    }

    #[test]
    fn yamlish_text_never_panics(s in yamlish()) {
        run(&s);
    }

    #[test]
    fn generated_documents_read_back(t in tree()) {
        let mut src = String::from(if matches!(t, Tree::Leaf(_)) { "root: " } else { "root:" });
        emit(&t, 2, &mut src);
        let lines = LineIndex::new(&src);
        let parsed = parse(&src, &lines, Limits::default());
        prop_assert!(parsed.problems.is_empty(), "{:?}\n{src}", parsed.problems);
        let root = parsed.documents[0].root.get("root").unwrap();
        prop_assert!(same(&t, root, &src), "{src}");
    }
}
