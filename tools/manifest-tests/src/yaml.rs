//! YAML for the manifest checks: the workspace's one YAML tree, `dtlint-yaml`, the one dtlint
//! lints with. Every node keeps its span, so a failing check names `file:line:column`; plain
//! scalars are typed with the YAML 1.2 core schema ([`Node::to_json`]); `<<` merge keys are
//! resolved the way Kubernetes resolves them; alias expansion and nesting are bounded by
//! [`Limits::default`], so an alias bomb is an error and not an out-of-memory.
//!
//! Stricter than a loader: a duplicate key or an exceeded limit is an error here, as a syntax
//! error is.

pub use dtlint_yaml::{Entry, Limits, Node, Pos, Scalar, Span, Style, Value};
use dtlint_yaml::{LineIndex, Problem};

/// A YAML syntax error, a duplicate key or an exceeded limit, at its first position.
#[derive(Debug, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct Error {
    pub pos: Pos,
    pub message: String,
}

impl From<&Problem> for Error {
    fn from(problem: &Problem) -> Self {
        let mut message = problem.message.clone();
        if let Some((span, what)) = &problem.related {
            let what = what.trim_end_matches(" here");
            message = format!("{message} ({what} at {})", span.start);
        }
        Self {
            pos: problem.span.start,
            message,
        }
    }
}

/// Parses every document of a YAML stream; empty documents (a lone `---`, only comments) hold
/// no object and are left out, as kubectl leaves them out. The first problem, in source order,
/// is the error.
pub fn parse(text: &str) -> Result<Vec<Node>, Error> {
    let lines = LineIndex::new(text);
    let parsed = dtlint_yaml::parse(text, &lines, Limits::default());
    if let Some(problem) = parsed.problems.iter().min_by_key(|p| p.span.start) {
        return Err(problem.into());
    }
    Ok(parsed.documents.into_iter().map(|d| d.root).collect())
}

/// What the checks read from a node besides `dtlint-yaml`'s own accessors.
pub trait NodeExt {
    /// Where the node starts (`line:column` when displayed).
    fn pos(&self) -> Pos;
}

impl NodeExt for Node {
    fn pos(&self) -> Pos {
        self.span.start
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    #[test]
    fn reads_core_schema_scalars_positions_and_merge_keys() {
        let docs = parse(
            "a: 1\nb: \"1\"\nc: true\nd: ~\ne: 0440\nf: 1.5\n---\n# nothing\n---\n- x\n\
             - &m {k: v, l: w}\n- <<: *m\n  l: own\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 2, "the empty document is left out");
        let json = docs[0].to_json();
        assert_eq!(json["a"], 1);
        assert_eq!(json["b"], "1");
        assert_eq!(json["c"], true);
        assert!(json["d"].is_null());
        // YAML 1.2: a leading zero is not octal.
        assert_eq!(json["e"], 440);
        assert_eq!(json["f"], 1.5);
        assert_eq!(docs[0].get("c").unwrap().pos().to_string(), "3:4");
        assert_eq!(docs[1].items().next().unwrap().as_str(), Some("x"));
        assert_eq!(
            docs[1].to_json()[2],
            serde_json::json!({"l": "own", "k": "v"})
        );
    }

    #[test]
    fn locates_json_pointers() {
        let docs = parse("spec:\n  items:\n    - name: a\n    - name: b\n").unwrap();
        assert_eq!(docs[0].locate("/spec/items/1/name").pos().line, 4);
        assert_eq!(docs[0].str_at(&["spec", "items"]), None);
        // A missing tail stops at the deepest node that exists.
        assert_eq!(docs[0].locate("/spec/items/7").pos().line, 3);
    }

    #[test]
    fn rejects_duplicate_keys_with_both_positions() {
        let err = parse("a: 1\nb:\n  c: 2\n  c: 3\na: 2\n").unwrap_err();
        assert_eq!(err.pos.to_string(), "4:3");
        assert_eq!(
            err.to_string(),
            "4:3: duplicate key `c` (first defined at 3:3)"
        );
    }

    #[test]
    fn expands_aliases_but_stops_bombs() {
        let docs = parse("a: &x [1, 2]\nb: *x\n").unwrap();
        assert_eq!(docs[0].to_json()["b"][1], 2);
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            let refs = vec![format!("*a{p}"); 10].join(", ");
            writeln!(bomb, "a{i}: &a{i} [{refs}]").unwrap();
        }
        assert!(parse(&bomb).unwrap_err().message.contains("alias"));
    }

    #[test]
    fn reports_syntax_errors_with_position() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 2, "{err}");
        let err = parse("a:\n\tb: 1\n").unwrap_err();
        assert_eq!(err.pos.line, 2, "{err}");
    }
}
