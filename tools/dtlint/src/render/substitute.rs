//! Flux's post-build variable substitution (`spec.postBuild`), applied to a
//! build's output the way kustomize-controller applies it: `${NAME}`,
//! `${NAME:=default}` and `${NAME:-default}` (the default when the variable
//! is unset or empty), `${NAME=default}` and `${NAME-default}` (only when
//! unset); `$${` is an escaped `${`; an object labelled or annotated
//! `kustomize.toolkit.fluxcd.io/substitute: disabled` is left as it is.
//! Values come from `substitute`, over those of the ConfigMaps and Secrets
//! `substituteFrom` names.
//!
//! What dtlint cannot know stays as written: a variable a SOPS-encrypted
//! Secret holds, one of a ConfigMap or Secret made by a controller or kept
//! outside the repository, an expression with another operator
//! (`${NAME^^}`, `${NAME:0:3}`). A variable that no source holds and that
//! has no default fails the build under kustomize-controller's strict
//! substitution (the default since 1.9), or becomes an empty string without
//! it: it is left as written and reported.
//!
//! Substitution is textual, into each object as kustomize printed it, so
//! quotes around a placeholder in the source are gone by then: a value that
//! is YAML syntax (`>=1.0.0`, `*.example.com`) breaks the object, as it
//! does in Flux.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::Engine as _;
use dtlint_yaml::Node;

use crate::workspace::Workspace;

/// The values a Flux Kustomization's build is substituted with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    pub known: BTreeMap<String, String>,
    /// Names whose values dtlint cannot read (encrypted).
    pub hidden: BTreeSet<String>,
    /// False when a source could not be found in the repository: any name
    /// may then be set there.
    pub complete: bool,
}

/// One `spec.postBuild.substituteFrom` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubstituteFrom {
    pub kind: String,
    pub name: String,
    pub optional: bool,
}

/// The ConfigMaps and Secrets of the repository by kind and name, each with
/// its namespace as written: read once per render, not once per Flux
/// Kustomization.
pub struct ConfigSources<'w> {
    /// (kind, name) -> each object's namespace as written, and the object.
    by_name: HashMap<(&'w str, &'w str), Vec<Declared<'w>>>,
}

/// A ConfigMap or Secret with its namespace as written.
type Declared<'w> = (Option<&'w str>, &'w Node);

impl<'w> ConfigSources<'w> {
    pub fn new(ws: &'w Workspace) -> Self {
        let mut by_name: HashMap<_, Vec<_>> = HashMap::new();
        for (id, _) in ws.sources.iter() {
            for doc in &ws.parsed(id).documents {
                let r = &doc.root;
                let (Some(kind @ ("ConfigMap" | "Secret")), Some(name)) =
                    (r.str_at(&["kind"]), r.str_at(&["metadata", "name"]))
                else {
                    continue;
                };
                by_name
                    .entry((kind, name))
                    .or_default()
                    .push((r.str_at(&["metadata", "namespace"]), r));
            }
        }
        Self { by_name }
    }

    /// The object in `namespace`, else the first with no namespace (a source
    /// file often leaves the namespace to its kustomization).
    fn find(&self, kind: &str, name: &str, namespace: &str) -> Option<&'w Node> {
        let found = self.by_name.get(&(kind, name))?;
        found
            .iter()
            .find(|(ns, _)| *ns == Some(namespace))
            .or_else(|| found.iter().find(|(ns, _)| ns.is_none()))
            .map(|(_, node)| *node)
    }
}

/// Resolve `substitute` and `substituteFrom` against the ConfigMaps and
/// Secrets of the repository in `namespace`.
pub fn resolve(
    sources: &ConfigSources<'_>,
    namespace: &str,
    substitute: &BTreeMap<String, String>,
    from: &[SubstituteFrom],
) -> Vars {
    let mut vars = Vars {
        complete: true,
        ..Vars::default()
    };
    for f in from {
        match sources.find(&f.kind, &f.name, namespace) {
            Some(node) => read_values(&f.kind, node, &mut vars),
            None if f.optional => {}
            None => vars.complete = false,
        }
    }
    for (k, v) in substitute {
        vars.hidden.remove(k);
        vars.known.insert(k.clone(), v.clone());
    }
    vars
}

fn read_values(kind: &str, node: &Node, vars: &mut Vars) {
    let encrypted = node.get("sops").is_some();
    let mut put = |key: &str, value: Option<String>| match value {
        Some(v) if !encrypted => {
            vars.hidden.remove(key);
            vars.known.insert(key.to_string(), v);
        }
        _ => {
            vars.known.remove(key);
            vars.hidden.insert(key.to_string());
        }
    };
    let plain = |n: &Node| n.as_scalar().map(|s| s.text.to_string());
    for e in node.get("data").into_iter().flat_map(Node::entries) {
        let Some(key) = e.key.as_str() else { continue };
        let value = if kind == "Secret" {
            plain(&e.value).and_then(|b| {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()?;
                String::from_utf8(bytes).ok()
            })
        } else {
            plain(&e.value)
        };
        put(key, value);
    }
    if kind == "Secret" {
        for e in node.get("stringData").into_iter().flat_map(Node::entries) {
            if let Some(key) = e.key.as_str() {
                put(key, plain(&e.value));
            }
        }
    }
}

/// The label and annotation that turn substitution off for one object.
const DISABLED: &str = "kustomize.toolkit.fluxcd.io/substitute: disabled";

/// What substitution did to a build's output.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Substituted {
    pub text: String,
    /// Names with no value (Flux substitutes an empty string).
    pub unset: BTreeSet<String>,
    /// Substitutions that turn a document into text that is not YAML
    /// (Flux then fails the whole Kustomization): name and value. Such a
    /// document is kept as written.
    pub breaking: Vec<(String, String)>,
}

/// Substitute `vars` into every document of `text` (see the module docs).
pub fn substitute(text: &str, vars: &Vars) -> Substituted {
    let mut out = Substituted {
        text: String::with_capacity(text.len()),
        ..Substituted::default()
    };
    for doc in documents(text) {
        if doc.contains(DISABLED) || !doc.contains('$') {
            out.text.push_str(doc);
            continue;
        }
        let mut done = String::with_capacity(doc.len());
        let mut made = Vec::new();
        substitute_doc(doc, vars, &mut done, &mut out.unset, &mut made, 0);
        if made.is_empty() || parses(&done) || !parses(doc) {
            out.text.push_str(&done);
            continue;
        }
        // The values that are no plain YAML scalar are the culprits; all
        // of them when none stands out.
        let suspects: Vec<_> = made
            .iter()
            .filter(|(_, v)| !plain_safe(v))
            .cloned()
            .collect();
        for s in if suspects.is_empty() { made } else { suspects } {
            if !out.breaking.contains(&s) {
                out.breaking.push(s);
            }
        }
        out.text.push_str(doc);
    }
    out
}

fn parses(doc: &str) -> bool {
    let lines = dtlint_yaml::LineIndex::new(doc);
    dtlint_yaml::parse(doc, &lines, dtlint_yaml::Limits::default())
        .problems
        .iter()
        .all(|p| p.kind != dtlint_yaml::ProblemKind::Syntax)
}

/// Can `v` stand unquoted as a YAML value without changing the document's
/// structure?
fn plain_safe(v: &str) -> bool {
    !v.starts_with([
        '>', '|', '*', '&', '!', '%', '@', '`', '"', '\'', '{', '[', '?', '#', ',',
    ]) && !v.starts_with("- ")
        && !v.starts_with(": ")
        && !v.contains(": ")
        && !v.contains(" #")
        && !v.contains('\n')
}

/// `text` cut after each `---` separator line, so the pieces join back to it.
fn documents(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut at = 0;
        let cut = loop {
            match rest[at..].find("\n---") {
                Some(i) => {
                    let end = at + i + 4;
                    let line_end = rest[end..].find('\n').map_or(rest.len(), |j| end + j + 1);
                    if rest[end..line_end].trim().is_empty() {
                        break line_end;
                    }
                    at = end;
                }
                None => break rest.len(),
            }
        };
        let (doc, tail) = rest.split_at(cut);
        rest = tail;
        Some(doc)
    })
}

/// The `}` that closes the expression whose name ends at `from`, past any
/// `${...}` nested in a default.
fn closing_brace(doc: &str, from: usize) -> Option<usize> {
    let b = doc.as_bytes();
    let mut depth = 0usize;
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 2;
                continue;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            b'\n' => return None,
            _ => {}
        }
        i += 1;
    }
    None
}

fn is_name_start(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphanumeric()
}

/// How deep defaults may nest (`${A:-${B:-${C}}}` is 3): deeper ones are
/// left as written, so a hostile manifest cannot exhaust the stack.
const MAX_NESTING: usize = 16;

fn substitute_doc(
    doc: &str,
    vars: &Vars,
    out: &mut String,
    unset: &mut BTreeSet<String>,
    made: &mut Vec<(String, String)>,
    depth: usize,
) {
    let bytes = doc.as_bytes();
    let mut i = 0;
    let mut copied = 0;
    while let Some(off) = doc[i..].find("${") {
        let start = i + off;
        // `$${` is an escaped `${`.
        if start > 0 && bytes[start - 1] == b'$' {
            out.push_str(&doc[copied..start - 1]);
            out.push_str("${");
            copied = start + 2;
            i = start + 2;
            continue;
        }
        let name_start = start + 2;
        let mut j = name_start;
        if j < bytes.len() && is_name_start(bytes[j]) {
            while j < bytes.len() && is_name_char(bytes[j]) {
                j += 1;
            }
        }
        let Some(close) = closing_brace(doc, j) else {
            break;
        };
        if j == name_start || doc[j..close].contains('\n') {
            i = name_start;
            continue;
        }
        let name = &doc[name_start..j];
        let op = &doc[j..close];
        let (default, when_empty) = if op.is_empty() {
            (None, false)
        } else if let Some(d) = op.strip_prefix(":=").or_else(|| op.strip_prefix(":-")) {
            (Some(d), true)
        } else if let Some(d) = op.strip_prefix('=').or_else(|| op.strip_prefix('-')) {
            (Some(d), false)
        } else {
            // Another operator: left as written.
            i = close + 1;
            continue;
        };
        // A default may hold placeholders itself (`${A:-${B}}`): they are
        // substituted in turn; one left unresolved keeps the whole as written.
        let has_default = default.is_some();
        let default = default.and_then(|d| {
            if !d.contains("${") {
                return Some(d.to_string());
            }
            if depth >= MAX_NESTING {
                return None;
            }
            let mut inner = String::new();
            let mut inner_made = Vec::new();
            substitute_doc(d, vars, &mut inner, unset, &mut inner_made, depth + 1);
            (!inner.contains("${")).then_some(inner)
        });
        let hidden = vars.hidden.contains(name);
        let value = match vars.known.get(name) {
            Some(v) if when_empty && v.is_empty() => default,
            Some(v) => Some(v.clone()),
            None if hidden => None,
            None => default,
        };
        match value {
            Some(v) => {
                out.push_str(&doc[copied..start]);
                out.push_str(&v);
                copied = close + 1;
                made.push((name.to_string(), v));
            }
            None => {
                if !hidden && !has_default && vars.complete {
                    unset.insert(name.to_string());
                }
            }
        }
        i = close + 1;
    }
    out.push_str(&doc[copied..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        Vars {
            known: pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            hidden: BTreeSet::new(),
            complete: true,
        }
    }

    #[test]
    fn braced_names_defaults_and_escapes() {
        let v = vars(&[("APP", "atuin"), ("EMPTY", "")]);
        let Substituted {
            text: out, unset, ..
        } = substitute(
            "name: ${APP}\na: ${EMPTY:=x}\nb: ${EMPTY=x}\nc: ${NONE:-d}\nd: $${APP}\ne: $APP\nf: ${APP^^}\n",
            &v,
        );
        assert_eq!(
            out,
            "name: atuin\na: x\nb: \nc: d\nd: ${APP}\ne: $APP\nf: ${APP^^}\n"
        );
        assert!(unset.is_empty());
    }

    #[test]
    fn unset_names_are_kept_and_reported_unless_they_may_be_set_elsewhere() {
        let s = substitute("a: ${MISSING}\n", &vars(&[]));
        assert_eq!(s.text, "a: ${MISSING}\n");
        assert_eq!(s.unset.into_iter().collect::<Vec<_>>(), ["MISSING"]);
        let mut incomplete = vars(&[]);
        incomplete.complete = false;
        assert!(substitute("a: ${MISSING}\n", &incomplete).unset.is_empty());
        let mut hidden = vars(&[]);
        hidden.hidden.insert("TOKEN".into());
        let s = substitute("a: ${TOKEN}\n", &hidden);
        assert_eq!(s.text, "a: ${TOKEN}\n");
        assert!(s.unset.is_empty());
    }

    #[test]
    fn a_value_that_breaks_the_yaml_is_named_and_not_applied() {
        let text = "a: ${RANGE}\nb: ${APP}\n---\nc: ${APP}\n";
        let s = substitute(text, &vars(&[("RANGE", ">=1.0.0"), ("APP", "x")]));
        assert_eq!(s.text, "a: ${RANGE}\nb: ${APP}\n---\nc: x\n");
        assert_eq!(s.breaking, [("RANGE".to_string(), ">=1.0.0".to_string())]);
        let quoted = substitute("a: \"${RANGE}\"\n", &vars(&[("RANGE", ">=1.0.0")]));
        assert_eq!(quoted.text, "a: \">=1.0.0\"\n");
        assert!(quoted.breaking.is_empty());
    }

    #[test]
    fn defaults_may_hold_placeholders() {
        let v = vars(&[("APP", "autobrr")]);
        let s = substitute("name: \"${CLAIM:-${APP}}\"\nx: ${A:=${B:=b}-c}\n", &v);
        assert_eq!(s.text, "name: \"autobrr\"\nx: b-c\n");
        assert!(s.unset.is_empty());
        // An inner name with no value keeps the whole as written.
        let s = substitute("name: ${CLAIM:-${NOPE}}\n", &v);
        assert_eq!(s.text, "name: ${CLAIM:-${NOPE}}\n");
        assert_eq!(s.unset.into_iter().collect::<Vec<_>>(), ["NOPE"]);
    }

    #[test]
    fn defaults_nested_past_the_bound_are_left_as_written() {
        // Deep enough to exhaust a test thread's stack without the bound.
        let n = 100_000;
        let text = format!("a: {}x{}\n", "${A:-".repeat(n), "}".repeat(n));
        let s = substitute(&text, &vars(&[]));
        assert_eq!(s.text, text);
        assert!(s.unset.is_empty());
        // Within the bound, resolved as before.
        let s = substitute("a: ${A:-${B:-${C:-x}}}\n", &vars(&[]));
        assert_eq!(s.text, "a: x\n");
    }

    #[test]
    fn disabled_documents_are_left_alone() {
        let text = "a: ${APP}\n---\nmetadata:\n  annotations:\n    kustomize.toolkit.fluxcd.io/substitute: disabled\nb: ${APP}\n---\nc: ${APP}\n";
        let out = substitute(text, &vars(&[("APP", "x")])).text;
        assert_eq!(
            out,
            "a: x\n---\nmetadata:\n  annotations:\n    kustomize.toolkit.fluxcd.io/substitute: disabled\nb: ${APP}\n---\nc: x\n"
        );
    }

    #[test]
    fn documents_join_back_to_the_text() {
        for text in [
            "",
            "a: 1\n",
            "a: 1\n---\nb: 2\n",
            "---\na\n---\n",
            "a: |\n  ---x\n",
        ] {
            assert_eq!(documents(text).collect::<String>(), text);
        }
        assert_eq!(documents("a: 1\n---\nb: 2\n").count(), 2);
    }
}
