//! Edits to YAML text that leave every untouched byte as it was: a value
//! replaced in place, or lines inserted at the indentation of their
//! neighbours. Only block mappings are edited; a flow mapping (`{}`) or a
//! value in an unexpected shape gives no edit.

use dtlint_yaml::{Node, Value};

/// Replace `start..end` of a file's text with `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// The offset just past the line holding `offset` (after its newline).
fn end_of_line(text: &str, offset: usize) -> usize {
    text[offset.min(text.len())..]
        .find('\n')
        .map_or(text.len(), |i| offset + i + 1)
}

/// Where a node's own text ends: the end of its last scalar (a block
/// collection's span runs on to the next token, past its text).
fn content_end(n: &Node) -> usize {
    match &n.value {
        Value::Mapping(entries) => entries.last().map_or(n.span.end.offset as usize, |e| {
            content_end(&e.value).max(e.key.span.end.offset as usize)
        }),
        Value::Sequence(items) => items.last().map_or(n.span.end.offset as usize, content_end),
        Value::Scalar(_) => n.span.end.offset as usize,
    }
}

fn is_block_mapping(text: &str, n: &Node) -> bool {
    matches!(&n.value, Value::Mapping(entries) if !entries.is_empty())
        && !text[n.span.start.offset as usize..].starts_with('{')
}

/// `keys` as nested block lines at `indent`, the last holding `value`.
fn lines(keys: &[&str], value: &str, indent: usize) -> String {
    let mut out = String::new();
    for (i, k) in keys.iter().enumerate() {
        out.push_str(&" ".repeat(indent + 2 * i));
        out.push_str(k);
        out.push(':');
        if i + 1 == keys.len() {
            out.push(' ');
            out.push_str(value);
        }
        out.push('\n');
    }
    out
}

/// Set `keys` (a path below the block mapping `map`) to the YAML `value`:
/// replace the value if the path exists and ends in a scalar, else insert
/// the missing part of the path after the last entry of the deepest
/// mapping that exists.
pub fn set_path(text: &str, map: &Node, keys: &[&str], value: &str) -> Option<Edit> {
    let (key, rest) = keys.split_first()?;
    if !is_block_mapping(text, map) {
        return None;
    }
    let entries = map.as_mapping()?;
    if let Some(e) = map.entry(key) {
        if rest.is_empty() {
            return match &e.value.value {
                Value::Scalar(s) if !s.text.is_empty() => Some(Edit {
                    start: e.value.span.start.offset as usize,
                    end: e.value.span.end.offset as usize,
                    text: value.to_string(),
                }),
                _ => None,
            };
        }
        if e.value.is_null() {
            // `securityContext:` with nothing under it.
            let indent = e.key.span.start.col as usize - 1 + 2;
            let at = end_of_line(text, e.key.span.end.offset as usize);
            return Some(Edit {
                start: at,
                end: at,
                text: lines(rest, value, indent),
            });
        }
        return set_path(text, &e.value, rest, value);
    }
    let first = entries.first()?;
    let last = entries.last()?;
    let indent = first.key.span.start.col as usize - 1;
    let at = end_of_line(
        text,
        content_end(&last.value).max(last.key.span.end.offset as usize),
    );
    // A file without a final newline gets one before the new lines.
    let newline = if at == text.len() && !text.ends_with('\n') {
        "\n"
    } else {
        ""
    };
    Some(Edit {
        start: at,
        end: at,
        text: format!("{newline}{}", lines(keys, value, indent)),
    })
}

/// Apply non-overlapping edits to `text` (overlapping ones after the first
/// are dropped); returns the new text and how many edits were applied.
pub fn apply(text: &str, edits: &mut [Edit]) -> (String, usize) {
    edits.sort_by_key(|e| (e.start, e.end));
    let mut out = String::with_capacity(text.len() + 256);
    let mut at = 0;
    let mut applied = 0;
    for e in edits.iter() {
        if e.start < at || e.end > text.len() || e.start > e.end {
            continue;
        }
        out.push_str(&text[at..e.start]);
        out.push_str(&e.text);
        at = e.end;
        applied += 1;
    }
    out.push_str(&text[at..]);
    (out, applied)
}

#[cfg(test)]
mod tests {
    use super::{apply, set_path};
    use dtlint_yaml::{Limits, LineIndex, parse};

    fn edit(src: &str, path: &[&str], keys: &[&str], value: &str) -> Option<String> {
        let lines = LineIndex::new(src);
        let parsed = parse(src, &lines, Limits::default());
        let root = &parsed.documents[0].root;
        let map = root.path(path)?;
        let e = set_path(src, map, keys, value)?;
        Some(apply(src, &mut [e]).0)
    }

    /// `readOnlyRootFilesystem: true` under `c`'s securityContext.
    fn read_only(src: &str) -> Option<String> {
        edit(
            src,
            &["c"],
            &["securityContext", "readOnlyRootFilesystem"],
            "true",
        )
    }

    #[test]
    fn inserts_at_the_indentation_of_the_neighbours_and_keeps_the_rest() {
        let src = "c:\n  name: web # the app\n  image: nginx\nnext: 1\n";
        assert_eq!(
            read_only(src).unwrap(),
            "c:\n  name: web # the app\n  image: nginx\n  securityContext:\n    readOnlyRootFilesystem: true\nnext: 1\n"
        );
    }

    #[test]
    fn goes_into_an_existing_mapping_and_replaces_a_scalar() {
        let src = "c:\n  securityContext:\n    runAsNonRoot: true\n  image: x\n";
        assert_eq!(
            read_only(src).unwrap(),
            "c:\n  securityContext:\n    runAsNonRoot: true\n    readOnlyRootFilesystem: true\n  image: x\n"
        );
        let src = "c:\n  securityContext:\n    readOnlyRootFilesystem: false\n";
        assert_eq!(
            read_only(src).unwrap(),
            "c:\n  securityContext:\n    readOnlyRootFilesystem: true\n"
        );
    }

    #[test]
    fn fills_an_empty_key_and_refuses_flow_mappings() {
        let src = "c:\n  securityContext:\n  image: x\n";
        assert_eq!(
            read_only(src).unwrap(),
            "c:\n  securityContext:\n    readOnlyRootFilesystem: true\n  image: x\n"
        );
        let src = "c:\n  securityContext: {}\n";
        assert_eq!(edit(src, &["c"], &["securityContext", "x"], "true"), None);
        let src = "c: {a: 1}\n";
        assert_eq!(edit(src, &["c"], &["b"], "2"), None);
    }

    #[test]
    fn a_file_without_a_final_newline_and_a_nested_last_value() {
        let src = "c:\n  a:\n    b: 1";
        assert_eq!(
            edit(src, &["c"], &["z"], "2").unwrap(),
            "c:\n  a:\n    b: 1\n  z: 2\n"
        );
    }

    proptest::proptest! {
        /// Whatever block mapping and path: the edit keeps every byte it
        /// does not touch, and the result parses with the value at the path.
        #[test]
        fn an_inserted_path_is_there_and_nothing_else_moves(
            keys in proptest::collection::btree_set("[a-z]{1,6}", 1..5),
            path in proptest::collection::vec("[a-z]{1,6}", 1..4),
            indent in 1usize..5,
            comment in proptest::bool::ANY,
        ) {
            // `c:` holding the given keys, each a scalar, at `indent`.
            let pad = " ".repeat(indent);
            let mut src = String::from("c:\n");
            for k in &keys {
                let note = if comment { " # note" } else { "" };
                src.push_str(&pad);
                src.push_str(k);
                src.push_str(": v");
                src.push_str(note);
                src.push('\n');
            }
            src.push_str("after: 1\n");
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            let Some(out) = edit(&src, &["c"], &path, "new") else {
                // Only a path through an existing scalar is refused.
                let lines = LineIndex::new(&src);
                let parsed = parse(&src, &lines, Limits::default());
                let c = parsed.documents[0].root.get("c").unwrap();
                proptest::prop_assert!(path.len() > 1 && c.get(path[0]).is_some());
                return Ok(());
            };
            let lines = LineIndex::new(&out);
            let parsed = parse(&out, &lines, Limits::default());
            proptest::prop_assert!(parsed.problems.is_empty(), "{:?}\n{}", parsed.problems, out);
            let root = &parsed.documents[0].root;
            let mut full = vec!["c"];
            full.extend(&path);
            proptest::prop_assert_eq!(root.str_at(&full), Some("new"), "{}", out);
            proptest::prop_assert_eq!(root.str_at(&["after"]), Some("1"));
            // Untouched lines stay, in order (a replaced scalar's line aside).
            let replaced = keys.iter().any(|k| path.len() == 1 && *k == path[0]);
            if !replaced {
                let mut rest = out.lines();
                proptest::prop_assert!(src.lines().all(|l| rest.any(|m| m == l)), "{}", out);
            }
        }
    }
}
