//! An object against its schema, each problem at the key or value to edit.

use std::fmt::Write as _;

use dtlint_yaml::{Node as Yaml, ScalarKind, Span, Value};

use super::scalar::{enum_has, found, int_or_string, is_duration, placeholder, shown, type_names};
use super::{Additional, Catalog, KubeRelease, Node, Ref, flags, types};

/// What is wrong, by rule family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// A key the schema does not name (`schema-unknown-field`).
    UnknownField,
    /// Type, enum, pattern, format, range or a missing required field
    /// (`schema-invalid`).
    Invalid,
}

/// One problem, positioned.
#[derive(Debug, Clone)]
pub struct Problem {
    pub kind: ProblemKind,
    pub span: Span,
    pub message: String,
    pub label: String,
    pub help: Option<String>,
    /// The text that fixes it in place of `span`, and whether that is safe
    /// (see `crate::fix`).
    pub replacement: Option<(String, bool)>,
}

/// How much of the object the document holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// The document is a whole object: required fields are checked.
    pub whole: bool,
    /// A strategic-merge patch: `$patch`, `$retainKeys` and the other
    /// directive keys are allowed.
    pub patch: bool,
    /// A SOPS file: the top-level `sops` block is allowed and encrypted
    /// values (`ENC[…]`) are not type-checked.
    pub sops: bool,
}

/// Nesting below this is not followed (the YAML reader's own limit is lower).
const MAX_DEPTH: usize = 256;

/// The schema of one kind: its root, the arena it lives in (the catalog's
/// nodes or a repository's CRDs), and whether it is a CRD's (whose
/// `metadata` the API server checks as `ObjectMeta`).
#[derive(Clone, Copy)]
pub struct Schema<'c> {
    pub root: Ref,
    pub arena: &'c [Node],
    pub crd: bool,
}

/// Validates objects against one Kubernetes release and, for custom
/// resources, a CRD schema in some arena.
pub struct Validator<'c> {
    pub catalog: &'c Catalog,
    pub release: &'c KubeRelease,
    meta: Option<u32>,
    /// The arena the release's definitions are in (the catalog's, or a
    /// chart's own `values.schema.json`).
    defs: &'c [Node],
}

#[derive(Clone, Copy)]
enum Seg<'y> {
    Key(&'y str),
    Index(usize),
}

struct Walk<'c, 'y, 'o> {
    v: &'c Validator<'c>,
    opts: Options,
    /// `Deployment (apps/v1)`, for messages.
    what: &'o str,
    path: Vec<Seg<'y>>,
    out: &'o mut Vec<Problem>,
}

impl<'c> Validator<'c> {
    pub fn new(catalog: &'c Catalog, release: &'c KubeRelease) -> Self {
        let meta = catalog.object_meta.and_then(|i| release.node_of(i));
        Validator {
            catalog,
            release,
            meta,
            defs: &catalog.nodes,
        }
    }

    /// A validator for a standalone JSON Schema (a chart's
    /// `values.schema.json`): its `$ref`s resolve through `defs` (a table
    /// of its own definitions) into `arena`.
    pub fn standalone(catalog: &'c Catalog, defs: &'c KubeRelease, arena: &'c [Node]) -> Self {
        Validator {
            catalog,
            release: defs,
            meta: None,
            defs: arena,
        }
    }

    /// Validate an object (or patch) against `schema`.
    pub fn object(
        &self,
        root: &Yaml,
        schema: Schema<'c>,
        what: &str,
        opts: Options,
        out: &mut Vec<Problem>,
    ) {
        let Schema {
            root: schema,
            arena,
            crd,
        } = schema;
        let mut w = Walk {
            v: self,
            opts,
            what,
            path: Vec::new(),
            out,
        };
        let at = root.get("kind").map_or(root.span, |k| k.span);
        if crd && let Value::Mapping(entries) = &root.value {
            // The CRD's own schema for everything but the type and object
            // metadata, which the API server checks itself.
            if let Some(m) = root.get("metadata")
                && let Some(meta) = self.meta
            {
                w.path.push(Seg::Key("metadata"));
                w.walk(m, Ref::Node(meta), &self.catalog.nodes, m.span, 0);
                w.path.pop();
            }
            let Some((node, arena)) = w.resolve(schema, arena) else {
                return;
            };
            w.mapping(
                root,
                entries,
                node,
                arena,
                at,
                0,
                &["apiVersion", "kind", "metadata"],
            );
            w.cel(root, node, at);
            return;
        }
        w.walk(root, schema, arena, at, 0);
    }
}

impl<'c, 'y> Walk<'c, 'y, '_> {
    fn resolve(&self, r: Ref, arena: &'c [Node]) -> Option<(&'c Node, &'c [Node])> {
        match r {
            Ref::Node(i) => arena.get(i as usize).map(|n| (n, arena)),
            Ref::Def(d) => {
                let nodes = self.v.defs;
                self.v
                    .release
                    .node_of(d)
                    .and_then(|i| nodes.get(i as usize))
                    .map(|n| (n, nodes))
            }
        }
    }

    fn path_text(&self) -> String {
        let mut s = String::new();
        for seg in &self.path {
            match seg {
                Seg::Key(k) => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                }
                Seg::Index(i) => {
                    let _ = write!(s, "[{i}]");
                }
            }
        }
        if s.is_empty() { "the object".into() } else { s }
    }

    fn report(
        &mut self,
        kind: ProblemKind,
        span: Span,
        message: String,
        label: String,
        help: Option<String>,
    ) {
        self.out.push(Problem {
            kind,
            span,
            message,
            label,
            help,
            replacement: None,
        });
    }

    /// `here`: where a missing required field is reported (the key of the
    /// mapping, or the item).
    fn walk(&mut self, y: &'y Yaml, r: Ref, arena: &'c [Node], here: Span, depth: usize) {
        if depth > MAX_DEPTH || y.is_null() {
            return;
        }
        let Some((node, arena)) = self.resolve(r, arena) else {
            return;
        };
        for &b in &node.all_of {
            self.walk(y, b, arena, here, depth + 1);
        }
        if (!node.any_of.is_empty() || !node.one_of.is_empty())
            && !self.branches(y, node, arena, here, depth)
        {
            return;
        }
        if !self.type_ok(y, node) {
            self.type_error(y, node.types | int_or_string(node));
            return;
        }
        match &y.value {
            Value::Mapping(entries) => self.mapping(y, entries, node, arena, here, depth, &[]),
            Value::Sequence(items) => {
                self.counts(
                    y,
                    items.len() as u64,
                    node.min_items,
                    node.max_items,
                    "items",
                );
                if let Some(item) = node.items {
                    for (i, it) in items.iter().enumerate() {
                        self.path.push(Seg::Index(i));
                        self.walk(it, item, arena, it.span, depth + 1);
                        self.path.pop();
                    }
                }
            }
            Value::Scalar(_) => self.scalar(y, node),
        }
        self.cel(y, node, here);
    }

    /// The node's CEL rules, on a whole object only (a patch holds part of
    /// the value) and not on placeholders.
    fn cel(&mut self, y: &Yaml, node: &Node, here: Span) {
        if node.cel.is_empty() || !self.opts.whole || self.opts.patch {
            return;
        }
        let value = y.to_json();
        if self.opts.sops || value.to_string().contains("${") {
            return;
        }
        for rule in &node.cel {
            if super::cel::evaluate(&rule.rule, &value) != super::cel::Verdict::Fails {
                continue;
            }
            let what = rule
                .message
                .as_deref()
                .unwrap_or("it fails the CRD's validation rule");
            let at = if self.path.is_empty() {
                "the object"
            } else {
                ""
            };
            let msg = if at.is_empty() {
                format!("`{}` of {}: {what}", self.path_text(), self.what)
            } else {
                format!("{} ({at}): {what}", self.what)
            };
            self.report(
                ProblemKind::Invalid,
                here,
                msg,
                "fails a validation rule".into(),
                Some(format!("The CRD's rule: `{}`", rule.rule)),
            );
        }
    }

    /// anyOf/oneOf: `true` when a branch admits the value (then the node's
    /// own constraints are checked too).
    fn branches(
        &mut self,
        y: &'y Yaml,
        node: &'c Node,
        arena: &'c [Node],
        here: Span,
        depth: usize,
    ) -> bool {
        let mut best: Option<Vec<Problem>> = None;
        let mut union = 0u8;
        let saved = std::mem::take(self.out);
        let mut matched = false;
        for &b in node.any_of.iter().chain(&node.one_of) {
            if let Some((bn, _)) = self.resolve(b, arena) {
                union |= bn.types | int_or_string(bn);
            }
            self.walk(y, b, arena, here, depth + 1);
            let got = std::mem::take(self.out);
            if got.is_empty() {
                matched = true;
                break;
            }
            if best.as_ref().is_none_or(|p| got.len() < p.len()) {
                best = Some(got);
            }
        }
        *self.out = saved;
        if matched {
            return true;
        }
        let best = best.unwrap_or_default();
        let only_types = union != 0 && !self.admits(y, union);
        if only_types {
            self.type_error(y, union);
        } else {
            self.out.extend(best);
        }
        false
    }

    fn type_error(&mut self, y: &Yaml, want: u8) {
        let msg = format!(
            "`{}` must be {}, found {}",
            self.path_text(),
            type_names(want),
            found(y)
        );
        self.report(
            ProblemKind::Invalid,
            y.span,
            msg,
            format!("found {}", found(y)),
            None,
        );
    }

    fn admits(&self, y: &Yaml, t: u8) -> bool {
        if t == 0 {
            return true;
        }
        let scalar_ok = |y: &Yaml| {
            placeholder(y, self.opts.sops)
                || y.as_scalar()
                    .is_some_and(|s| s.is_plain() && dtlint_yaml::yaml11_reading(&s.text).is_some())
        };
        match y.scalar_kind() {
            None => match y.value {
                Value::Mapping(_) => t & types::OBJECT != 0,
                _ => t & types::ARRAY != 0,
            },
            Some(ScalarKind::Null) => true,
            Some(ScalarKind::Bool) => t & types::BOOLEAN != 0 || scalar_ok(y),
            Some(ScalarKind::Int) => t & (types::INTEGER | types::NUMBER) != 0 || scalar_ok(y),
            Some(ScalarKind::Float) => {
                t & types::NUMBER != 0
                    || (t & types::INTEGER != 0
                        && y.as_str()
                            .and_then(|s| s.parse::<f64>().ok())
                            .is_some_and(|f| f.fract() == 0.0))
                    || scalar_ok(y)
            }
            Some(ScalarKind::String) => t & types::STRING != 0 || scalar_ok(y),
        }
    }

    fn type_ok(&self, y: &Yaml, node: &Node) -> bool {
        self.admits(y, node.types | int_or_string(node))
    }

    fn counts(&mut self, y: &Yaml, n: u64, min: Option<u64>, max: Option<u64>, what: &str) {
        let low = min.filter(|&m| n < m).map(|m| ("least", m));
        let high = max.filter(|&m| n > m).map(|m| ("most", m));
        for (bound, m) in low.into_iter().chain(high) {
            let msg = format!(
                "`{}` must have at {bound} {m} {what}, has {n}",
                self.path_text()
            );
            self.report(
                ProblemKind::Invalid,
                y.span,
                msg,
                format!("{n} {what}"),
                None,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn mapping(
        &mut self,
        y: &'y Yaml,
        entries: &'y [dtlint_yaml::Entry],
        node: &'c Node,
        arena: &'c [Node],
        here: Span,
        depth: usize,
        skip: &[&str],
    ) {
        let root = self.path.is_empty();
        for e in entries {
            let Some(key) = e.key.as_str() else { continue };
            if skip.contains(&key)
                || (self.opts.patch && key.starts_with('$'))
                || (root && self.opts.sops && key == "sops")
            {
                continue;
            }
            let child = node.property(key).or(match node.additional {
                Additional::Schema(s) => Some(s),
                _ => None,
            });
            self.path.push(Seg::Key(key));
            if let Some(c) = child {
                self.walk(&e.value, c, arena, e.key.span, depth + 1);
            } else {
                let open = node.flags & flags::PRESERVE_UNKNOWN != 0
                    || node.additional == Additional::Open
                    || (node.flags & flags::EMBEDDED != 0
                        && matches!(key, "apiVersion" | "kind" | "metadata"));
                if !open {
                    self.unknown(e, node);
                }
            }
            self.path.pop();
        }
        if self.opts.whole && !self.opts.patch {
            for req in &node.required {
                if skip.contains(&req.as_str()) || y.get(req).is_some() {
                    continue;
                }
                let msg = if self.path.is_empty() {
                    format!("`{req}` is required in {}", self.what)
                } else {
                    format!("`{}.{req}` is required in {}", self.path_text(), self.what)
                };
                self.report(
                    ProblemKind::Invalid,
                    here,
                    msg,
                    format!("`{req}` missing here"),
                    Some(format!("Add `{req}`.")),
                );
            }
        }
    }

    fn unknown(&mut self, e: &'y dtlint_yaml::Entry, node: &Node) {
        let key = e.key.as_str().unwrap_or("");
        let names = node.properties.iter().map(|(k, _)| k.as_str());
        let near = crate::suggest::closest(key, names.clone());
        let help = match near {
            Some(near) => format!("Did you mean `{near}`?"),
            None if node.properties.len() <= 12 && !node.properties.is_empty() => {
                let all: Vec<String> = names.map(|n| format!("`{n}`")).collect();
                format!("The fields here are {}.", all.join(", "))
            }
            None => "Remove the field, or check the object's apiVersion.".into(),
        };
        let msg = format!("`{}` is not a field of {}", self.path_text(), self.what);
        self.report(
            ProblemKind::UnknownField,
            e.key.span,
            msg,
            "unknown field".into(),
            Some(help),
        );
        // Renaming the field changes what the object says: unsafe.
        if let (Some(p), Some(n)) = (self.out.last_mut(), near) {
            p.replacement = Some((n.to_string(), false));
        }
    }

    fn scalar(&mut self, y: &Yaml, node: &Node) {
        if placeholder(y, self.opts.sops) {
            return;
        }
        let Some(text) = y.as_str() else { return };
        let kind = y.scalar_kind();
        if !node.enumeration.is_empty() && !enum_has(&node.enumeration, y, text) {
            let values: Vec<String> = node
                .enumeration
                .iter()
                .take(12)
                .map(|v| match v {
                    serde_json::Value::String(s) => format!("`{s}`"),
                    other => format!("`{other}`"),
                })
                .collect();
            let more = if node.enumeration.len() > 12 {
                ", …"
            } else {
                ""
            };
            let names = node
                .enumeration
                .iter()
                .filter_map(serde_json::Value::as_str);
            // A value in the wrong case is the allowed one, safely; another
            // close value is a guess.
            let near = names
                .clone()
                .find(|n| n.eq_ignore_ascii_case(text))
                .map(|n| (n, true))
                .or_else(|| crate::suggest::closest(text, names).map(|n| (n, false)));
            let help = near.map(|(n, _)| format!("Did you mean `{n}`?"));
            let msg = format!(
                "`{}` must be one of {}{more}; found `{}`",
                self.path_text(),
                values.join(", "),
                shown(text)
            );
            self.report(
                ProblemKind::Invalid,
                y.span,
                msg,
                "not an allowed value".into(),
                help,
            );
            if let (Some(p), Some((n, safe))) = (self.out.last_mut(), near) {
                p.replacement = Some((n.to_string(), safe));
            }
            return;
        }
        if kind == Some(ScalarKind::String) {
            self.string(y, node, text);
        } else if matches!(kind, Some(ScalarKind::Int | ScalarKind::Float))
            && let Ok(n) = text.parse::<f64>()
        {
            self.number(y, node, n);
        }
    }

    fn string(&mut self, y: &Yaml, node: &Node, text: &str) {
        let len = text.chars().count() as u64;
        self.counts(y, len, node.min_length, node.max_length, "characters");
        if let Some(re) = node.pattern_regex()
            && !re.is_match(text)
        {
            let p = node.pattern.as_deref().unwrap_or("");
            let msg = format!(
                "`{}` does not match the pattern `{p}`: `{}`",
                self.path_text(),
                shown(text)
            );
            self.report(
                ProblemKind::Invalid,
                y.span,
                msg,
                "does not match".into(),
                None,
            );
            return;
        }
        let bad_format = match node.format.as_deref() {
            Some("date-time") => {
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .is_err()
                    .then_some("a date-time (RFC 3339, e.g. `2026-01-31T12:00:00Z`)")
            }
            Some("duration") => {
                (!is_duration(text)).then_some("a duration (e.g. `30s`, `5m`, `1h30m`)")
            }
            _ => None,
        }
        .or_else(|| {
            (node.flags & flags::QUANTITY != 0 && crate::quantity::parse(text).is_none())
                .then_some("a quantity (e.g. `500m`, `128Mi`, `2`)")
        });
        if let Some(want) = bad_format {
            let msg = format!("`{}` is not {want}: `{}`", self.path_text(), shown(text));
            self.report(ProblemKind::Invalid, y.span, msg, "bad format".into(), None);
        }
    }

    fn number(&mut self, y: &Yaml, node: &Node, n: f64) {
        let low = node.minimum.filter(|&m| {
            if node.exclusive & 1 != 0 {
                n <= m
            } else {
                n < m
            }
        });
        let high = node.maximum.filter(|&m| {
            if node.exclusive & 2 != 0 {
                n >= m
            } else {
                n > m
            }
        });
        let int32 = node.format.as_deref() == Some("int32")
            && !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&n);
        let msg = if let Some(m) = low {
            let op = if node.exclusive & 1 != 0 {
                "greater than"
            } else {
                "at least"
            };
            format!("`{}` must be {op} {m}, found {n}", self.path_text())
        } else if let Some(m) = high {
            let op = if node.exclusive & 2 != 0 {
                "less than"
            } else {
                "at most"
            };
            format!("`{}` must be {op} {m}, found {n}", self.path_text())
        } else if int32 {
            format!("`{}` must fit in 32 bits, found {n}", self.path_text())
        } else {
            return;
        };
        self.report(
            ProblemKind::Invalid,
            y.span,
            msg,
            "out of range".into(),
            None,
        );
    }
}
