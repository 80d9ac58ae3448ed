//! The `sops` metadata block: reading it (with spans) and writing it in each
//! format the way sops 3.9+ lays it out.

use std::fmt::Write as _;

use dtlint_yaml::{Node, Span, Value};
use regex::Regex;

use crate::finding::{Finding, FindingKind};
use crate::value::resolve_yaml_plain;

/// sops's default when a file names no selector.
pub const DEFAULT_UNENCRYPTED_SUFFIX: &str = "_unencrypted";

/// The metadata version written by this crate: the sops file format release
/// whose fields (`mac_only_encrypted`, `unencrypted_regex`, age stanzas) we
/// produce. sops reads files of this version and later.
pub const WRITTEN_VERSION: &str = "3.9.0";

/// Which values sops encrypts, and which ones its MAC covers.
#[derive(Debug, Clone, Default)]
pub struct Selectors {
    pub unencrypted_suffix: Option<String>,
    pub encrypted_suffix: Option<String>,
    pub unencrypted_regex: Option<Regex>,
    pub encrypted_regex: Option<Regex>,
    pub unencrypted_comment_regex: Option<Regex>,
    pub encrypted_comment_regex: Option<Regex>,
    /// The MAC covers only encrypted values.
    pub mac_only_encrypted: bool,
}

impl Selectors {
    /// How many of the mutually exclusive selectors are set.
    pub fn count(&self) -> usize {
        usize::from(self.unencrypted_suffix.is_some())
            + usize::from(self.encrypted_suffix.is_some())
            + usize::from(self.unencrypted_regex.is_some())
            + usize::from(self.encrypted_regex.is_some())
            + usize::from(self.unencrypted_comment_regex.is_some())
            + usize::from(self.encrypted_comment_regex.is_some())
    }

    /// With sops's default (`unencrypted_suffix: _unencrypted`) filled in
    /// when no selector is set.
    #[must_use]
    pub fn effective(&self) -> Selectors {
        let mut s = self.clone();
        if s.count() == 0 {
            s.unencrypted_suffix = Some(DEFAULT_UNENCRYPTED_SUFFIX.into());
        }
        s
    }

    /// Whether the comment regexes are in use (their effect depends on
    /// comment placement, which only sops's own YAML reader knows exactly).
    pub fn uses_comment_regex(&self) -> bool {
        self.unencrypted_comment_regex.is_some() || self.encrypted_comment_regex.is_some()
    }

    /// sops's decision for a value at `path` (ignoring comment regexes).
    pub fn should_encrypt(&self, path: &[&str]) -> bool {
        let mut encrypted = true;
        if let Some(suffix) = &self.unencrypted_suffix
            && path.iter().any(|p| p.ends_with(suffix.as_str()))
        {
            encrypted = false;
        }
        if let Some(suffix) = &self.encrypted_suffix {
            encrypted = path.iter().any(|p| p.ends_with(suffix.as_str()));
        }
        if let Some(re) = &self.unencrypted_regex
            && path.iter().any(|p| re.is_match(p))
        {
            encrypted = false;
        }
        if let Some(re) = &self.encrypted_regex {
            encrypted = path.iter().any(|p| re.is_match(p));
        }
        encrypted
    }

    /// The selectors as `(field, value)` pairs, in sops's field order.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut push = |k: &'static str, v: Option<&str>| {
            if let Some(v) = v {
                out.push((k, v.to_owned()));
            }
        };
        push("unencrypted_suffix", self.unencrypted_suffix.as_deref());
        push("encrypted_suffix", self.encrypted_suffix.as_deref());
        push(
            "unencrypted_regex",
            self.unencrypted_regex.as_ref().map(Regex::as_str),
        );
        push(
            "encrypted_regex",
            self.encrypted_regex.as_ref().map(Regex::as_str),
        );
        push(
            "unencrypted_comment_regex",
            self.unencrypted_comment_regex.as_ref().map(Regex::as_str),
        );
        push(
            "encrypted_comment_regex",
            self.encrypted_comment_regex.as_ref().map(Regex::as_str),
        );
        out
    }

    /// Same selectors (after defaults) and MAC mode.
    pub fn same_as(&self, other: &Selectors) -> bool {
        self.effective().fields() == other.effective().fields()
            && self.mac_only_encrypted == other.mac_only_encrypted
    }
}

/// A metadata string and where it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub value: String,
    pub span: Span,
}

/// One age stanza: the data key (or its Shamir share) encrypted to a recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct AgeStanza {
    pub recipient: Field,
    pub enc: Field,
    /// The whole `- recipient: … enc: …` item.
    pub span: Span,
}

/// A master key of another kind (pgp, kms, ...), which this crate does not
/// decrypt but reports.
#[derive(Debug, Clone, PartialEq)]
pub struct OtherKey {
    pub kind: String,
    pub span: Span,
}

/// The keys that each hold the data key (one group) or one Shamir share of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyGroup {
    pub age: Vec<AgeStanza>,
    pub other: Vec<OtherKey>,
}

/// A file's `sops` block.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// The `sops` key (or the first `sops_` line of a dotenv file).
    pub span: Span,
    pub key_groups: Vec<KeyGroup>,
    /// Written as `key_groups:` rather than flat `age:` lists.
    pub uses_key_groups: bool,
    pub shamir_threshold: Option<usize>,
    pub lastmodified: Option<Field>,
    pub mac: Option<Field>,
    pub version: Option<Field>,
    /// The selectors exactly as written (see [`Selectors::effective`]).
    pub selectors: Selectors,
    /// Where each written selector is, by field name.
    pub selector_spans: Vec<(&'static str, Span)>,
}

const OTHER_KINDS: [&str; 7] = [
    "pgp",
    "kms",
    "gcp_kms",
    "azure_kv",
    "hc_vault",
    "hckms",
    "hc_vault_transit",
];

const SELECTOR_FIELDS: [&str; 6] = [
    "unencrypted_suffix",
    "encrypted_suffix",
    "unencrypted_regex",
    "encrypted_regex",
    "unencrypted_comment_regex",
    "encrypted_comment_regex",
];

impl Metadata {
    /// Every age recipient, across groups.
    pub fn age_recipients(&self) -> impl Iterator<Item = &AgeStanza> {
        self.key_groups.iter().flat_map(|g| g.age.iter())
    }

    /// Read a `sops` node; problems become findings, never panics.
    pub(crate) fn from_node(node: &Node, key_span: Span, findings: &mut Vec<Finding>) -> Metadata {
        let mut m = Metadata {
            span: key_span,
            ..Metadata::default()
        };
        let Value::Mapping(entries) = &node.value else {
            findings.push(Finding::new(
                FindingKind::InvalidMetadata,
                node.span,
                format!("`sops` must be a mapping, found {}", node.type_name()),
            ));
            return m;
        };
        let mut flat = KeyGroup::default();
        let mut invalid = |span: Span, msg: String| {
            findings.push(Finding::new(FindingKind::InvalidMetadata, span, msg));
        };
        for e in entries {
            let Some(key) = e.key.as_str() else { continue };
            let v = &e.value;
            let text_field = |v: &Node| {
                v.as_scalar().filter(|s| !s.is_null()).map(|s| Field {
                    value: s.text.to_string(),
                    span: v.span,
                })
            };
            match key {
                "age" => flat.age.extend(read_age(v, &mut invalid)),
                k if OTHER_KINDS.contains(&k) => {
                    flat.other.extend(v.items().map(|item| OtherKey {
                        kind: k.to_owned(),
                        span: item.span,
                    }));
                }
                "key_groups" => {
                    m.uses_key_groups = true;
                    for g in v.items() {
                        let mut group = KeyGroup::default();
                        for ge in g.entries() {
                            match ge.key.as_str() {
                                Some("age") => group.age.extend(read_age(&ge.value, &mut invalid)),
                                Some(k) if OTHER_KINDS.contains(&k) => {
                                    group.other.extend(ge.value.items().map(|item| OtherKey {
                                        kind: k.to_owned(),
                                        span: item.span,
                                    }));
                                }
                                _ => {}
                            }
                        }
                        m.key_groups.push(group);
                    }
                }
                "shamir_threshold" => {
                    m.shamir_threshold = v
                        .as_str()
                        .and_then(|t| t.trim().parse::<usize>().ok())
                        .filter(|n| *n > 0);
                    if m.shamir_threshold.is_none() && !v.is_null() {
                        invalid(
                            v.span,
                            "`shamir_threshold` is not a positive integer".into(),
                        );
                    }
                }
                "lastmodified" => m.lastmodified = text_field(v),
                "mac" => m.mac = text_field(v),
                "version" => m.version = text_field(v),
                "mac_only_encrypted" => {
                    m.selectors.mac_only_encrypted =
                        v.as_str() == Some("true") || v.as_bool() == Some(true);
                }
                k if SELECTOR_FIELDS.contains(&k) => {
                    let Some(text) = v.as_str().filter(|t| !t.is_empty()) else {
                        continue;
                    };
                    let field = SELECTOR_FIELDS
                        .iter()
                        .copied()
                        .find(|f| *f == k)
                        .unwrap_or("encrypted_regex");
                    m.selector_spans.push((field, v.span));
                    if let Err(msg) = set_selector(&mut m.selectors, field, text) {
                        invalid(v.span, msg);
                    }
                }
                _ => {}
            }
        }
        if !flat.age.is_empty() || !flat.other.is_empty() {
            // sops reads the flat lists as one group and ignores key_groups then.
            m.key_groups = vec![flat];
            m.uses_key_groups = false;
        }
        if m.selectors.count() > 1 {
            let span = m.selector_spans.get(1).map_or(key_span, |s| s.1);
            findings.push(Finding::new(
                FindingKind::InvalidMetadata,
                span,
                "more than one of encrypted_suffix, unencrypted_suffix, encrypted_regex, unencrypted_regex and the comment regexes; sops refuses such a file",
            ));
        }
        m
    }
}

/// Set one selector from its text, compiling regexes.
pub(crate) fn set_selector(s: &mut Selectors, field: &str, text: &str) -> Result<(), String> {
    let re = || {
        Regex::new(text).map_err(|e| format!("`{field}` is not a valid regular expression: {e}"))
    };
    match field {
        "unencrypted_suffix" => s.unencrypted_suffix = Some(text.to_owned()),
        "encrypted_suffix" => s.encrypted_suffix = Some(text.to_owned()),
        "unencrypted_regex" => s.unencrypted_regex = Some(re()?),
        "encrypted_regex" => s.encrypted_regex = Some(re()?),
        "unencrypted_comment_regex" => s.unencrypted_comment_regex = Some(re()?),
        "encrypted_comment_regex" => s.encrypted_comment_regex = Some(re()?),
        _ => {}
    }
    Ok(())
}

fn read_age(v: &Node, invalid: &mut impl FnMut(Span, String)) -> Vec<AgeStanza> {
    let mut out = Vec::new();
    for item in v.items() {
        let field = |k: &str| {
            item.get(k).and_then(|n| {
                n.as_str().map(|t| Field {
                    value: t.to_owned(),
                    span: n.span,
                })
            })
        };
        match (field("recipient"), field("enc")) {
            (Some(recipient), Some(enc)) => out.push(AgeStanza {
                recipient,
                enc,
                span: item.span,
            }),
            (None, _) => invalid(item.span, "age entry without a `recipient`".into()),
            (Some(_), None) => invalid(item.span, "age entry without an `enc` stanza".into()),
        }
    }
    out
}

/// What to write in a new `sops` block.
#[derive(Debug, Clone)]
pub(crate) struct NewMetadata {
    /// Per group, `(recipient, armoured stanza)`.
    pub groups: Vec<Vec<(String, String)>>,
    pub shamir_threshold: Option<usize>,
    pub lastmodified: String,
    pub mac: String,
    pub selectors: Selectors,
    pub version: String,
}

/// An ordered metadata value, rendered per format.
#[derive(Debug, Clone)]
enum MVal {
    Str(String),
    Bool(bool),
    Int(usize),
    List(Vec<MVal>),
    Map(Vec<(&'static str, MVal)>),
}

fn age_list(group: &[(String, String)]) -> MVal {
    MVal::List(
        group
            .iter()
            .map(|(r, e)| {
                MVal::Map(vec![
                    ("recipient", MVal::Str(r.clone())),
                    ("enc", MVal::Str(e.clone())),
                ])
            })
            .collect(),
    )
}

impl NewMetadata {
    fn tree(&self) -> Vec<(&'static str, MVal)> {
        let mut out = Vec::new();
        if self.groups.len() > 1 {
            if let Some(t) = self.shamir_threshold {
                out.push(("shamir_threshold", MVal::Int(t)));
            }
            out.push((
                "key_groups",
                MVal::List(
                    self.groups
                        .iter()
                        .map(|g| MVal::Map(vec![("age", age_list(g))]))
                        .collect(),
                ),
            ));
        } else if let Some(g) = self.groups.first() {
            out.push(("age", age_list(g)));
        }
        out.push(("lastmodified", MVal::Str(self.lastmodified.clone())));
        out.push(("mac", MVal::Str(self.mac.clone())));
        for (k, v) in self.selectors.fields() {
            out.push((k, MVal::Str(v)));
        }
        if self.selectors.mac_only_encrypted {
            out.push(("mac_only_encrypted", MVal::Bool(true)));
        }
        out.push(("version", MVal::Str(self.version.clone())));
        out
    }

    /// The block as YAML: `sops:` at column `base`, nested by `unit` spaces.
    pub(crate) fn to_yaml(&self, base: usize, unit: usize) -> String {
        let mut s = String::with_capacity(1024);
        s.push_str(&" ".repeat(base));
        s.push_str("sops:\n");
        yaml_map(&self.tree(), base + unit, unit, &mut s);
        s
    }

    /// The block as a JSON member value (`{...}`), its lines indented by
    /// `indent` repeated `depth` times.
    pub(crate) fn to_json(&self, indent: &str, depth: usize) -> String {
        let mut s = String::with_capacity(1024);
        json_value(&MVal::Map(self.tree()), indent, depth, &mut s);
        s
    }

    /// The block as dotenv lines (`sops_…=…`), sorted as sops writes them.
    pub(crate) fn to_dotenv(&self) -> String {
        let mut flat = Vec::new();
        flatten(&MVal::Map(self.tree()), String::new(), &mut flat);
        flat.sort();
        let mut s = String::new();
        for (k, v) in flat {
            s.push_str("sops_");
            s.push_str(&k);
            s.push('=');
            s.push_str(&v.replace('\n', "\\n"));
            s.push('\n');
        }
        s
    }
}

fn flatten(v: &MVal, prefix: String, out: &mut Vec<(String, String)>) {
    match v {
        MVal::Str(s) => out.push((prefix, s.clone())),
        MVal::Bool(b) => out.push((prefix, b.to_string())),
        MVal::Int(i) => out.push((prefix, i.to_string())),
        MVal::List(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(item, format!("{prefix}__list_{i}"), out);
            }
        }
        MVal::Map(entries) => {
            for (k, item) in entries {
                let key = if prefix.is_empty() {
                    (*k).to_string()
                } else {
                    format!("{prefix}__map_{k}")
                };
                flatten(item, key, out);
            }
        }
    }
}

fn yaml_map(entries: &[(&'static str, MVal)], indent: usize, unit: usize, s: &mut String) {
    for (i, (k, v)) in entries.iter().enumerate() {
        // The first key of a sequence item follows its `- ` directly.
        if i > 0 || !s.ends_with("- ") {
            s.push_str(&" ".repeat(indent));
        }
        s.push_str(k);
        s.push(':');
        yaml_value(v, indent, unit, s);
    }
}

fn yaml_value(v: &MVal, indent: usize, unit: usize, s: &mut String) {
    match v {
        MVal::Str(text) if text.contains('\n') => {
            s.push_str(if text.ends_with('\n') {
                " |\n"
            } else {
                " |-\n"
            });
            for line in text.lines() {
                if !line.is_empty() {
                    s.push_str(&" ".repeat(indent + unit));
                    s.push_str(line);
                }
                s.push('\n');
            }
        }
        MVal::Str(text) => {
            s.push(' ');
            s.push_str(&yaml_string(text));
            s.push('\n');
        }
        MVal::Bool(b) => {
            s.push(' ');
            s.push_str(if *b { "true" } else { "false" });
            s.push('\n');
        }
        MVal::Int(i) => {
            s.push(' ');
            s.push_str(&i.to_string());
            s.push('\n');
        }
        MVal::List(items) if items.is_empty() => s.push_str(" []\n"),
        MVal::List(items) => {
            s.push('\n');
            for item in items {
                s.push_str(&" ".repeat(indent + unit));
                s.push_str("- ");
                match item {
                    MVal::Map(entries) => yaml_map(entries, indent + unit + 2, unit, s),
                    other => {
                        // Scalars in lists do not occur in sops metadata.
                        let mut tmp = String::new();
                        yaml_value(other, indent + unit + 2, unit, &mut tmp);
                        s.push_str(tmp.trim_start());
                    }
                }
            }
        }
        MVal::Map(entries) => {
            s.push('\n');
            yaml_map(entries, indent + unit, unit, s);
        }
    }
}

/// A YAML scalar for `text` that every YAML reader reads back as the same
/// string: plain when that is unambiguous, double-quoted otherwise.
pub(crate) fn yaml_string(text: &str) -> String {
    if yaml_plain_ok(text, false) {
        text.to_owned()
    } else {
        yaml_double_quoted(text)
    }
}

/// Whether `text` can be written as a plain scalar and read back as that
/// string by yaml.v3, YAML 1.1 readers and humans alike.
pub(crate) fn yaml_plain_ok(text: &str, in_flow: bool) -> bool {
    let Some(first) = text.chars().next() else {
        return false;
    };
    if text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) {
        return false;
    }
    if "?:,[]{}#&*!|>'\"%@`".contains(first) {
        return false;
    }
    if first == '-' && (text.len() == 1 || text[1..].starts_with(' ')) {
        return false;
    }
    if text.chars().any(|c| c.is_control() || c == '\u{feff}')
        || text.contains(": ")
        || text.contains(" #")
        || text.ends_with(':')
    {
        return false;
    }
    if in_flow && text.contains([',', '[', ']', '{', '}']) {
        return false;
    }
    let lower = text.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null" | "~"
    ) {
        return false;
    }
    // Timestamps and numbers must stay strings.
    let b = text.as_bytes();
    if b.len() >= 8 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' {
        return false;
    }
    matches!(
        resolve_yaml_plain(text),
        Ok(Some(crate::value::Plain::Str(_)))
    )
}

/// A YAML double-quoted scalar.
pub(crate) fn yaml_double_quoted(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('"');
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            '\r' => s.push_str("\\r"),
            '\0' => s.push_str("\\0"),
            c if c.is_control() || c == '\u{feff}' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(s, "\\u{:04x}", u32::from(c));
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// A JSON string literal (serde_json's escaping: `"`, `\\`, control
/// characters; everything else as UTF-8).
pub(crate) fn json_string(text: &str) -> String {
    // Formatting a `Value` cannot fail (unlike `serde_json::to_string`).
    serde_json::Value::String(text.to_owned()).to_string()
}

fn json_value(v: &MVal, indent: &str, depth: usize, s: &mut String) {
    match v {
        MVal::Str(t) => s.push_str(&json_string(t)),
        MVal::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
        MVal::Int(i) => s.push_str(&i.to_string()),
        MVal::List(items) => {
            if items.is_empty() {
                s.push_str("[]");
                return;
            }
            s.push('[');
            for (i, item) in items.iter().enumerate() {
                s.push_str(if i == 0 { "\n" } else { ",\n" });
                s.push_str(&indent.repeat(depth + 1));
                json_value(item, indent, depth + 1, s);
            }
            s.push('\n');
            s.push_str(&indent.repeat(depth));
            s.push(']');
        }
        MVal::Map(entries) => {
            s.push('{');
            for (i, (k, item)) in entries.iter().enumerate() {
                s.push_str(if i == 0 { "\n" } else { ",\n" });
                s.push_str(&indent.repeat(depth + 1));
                s.push_str(&json_string(k));
                s.push_str(": ");
                json_value(item, indent, depth + 1, s);
            }
            s.push('\n');
            s.push_str(&indent.repeat(depth));
            s.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NewMetadata {
        let mut selectors = Selectors::default();
        set_selector(&mut selectors, "encrypted_regex", "^(data|stringData)$").unwrap();
        NewMetadata {
            groups: vec![vec![(
                "age1xyz".into(),
                "-----BEGIN AGE ENCRYPTED FILE-----\nAAAA\n-----END AGE ENCRYPTED FILE-----\n"
                    .into(),
            )]],
            shamir_threshold: None,
            lastmodified: "2024-11-12T13:33:42Z".into(),
            mac: "ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]".into(),
            selectors,
            version: WRITTEN_VERSION.into(),
        }
    }

    #[test]
    fn yaml_block_matches_sops_layout() {
        let y = sample().to_yaml(0, 2);
        assert_eq!(
            y,
            "sops:\n  age:\n    - recipient: age1xyz\n      enc: |\n        -----BEGIN AGE ENCRYPTED FILE-----\n        AAAA\n        -----END AGE ENCRYPTED FILE-----\n  lastmodified: \"2024-11-12T13:33:42Z\"\n  mac: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\n  encrypted_regex: ^(data|stringData)$\n  version: 3.9.0\n"
        );
    }

    #[test]
    fn dotenv_block_is_flattened_and_sorted() {
        let d = sample().to_dotenv();
        let lines: Vec<&str> = d.lines().collect();
        assert_eq!(
            lines[0],
            "sops_age__list_0__map_enc=-----BEGIN AGE ENCRYPTED FILE-----\\nAAAA\\n-----END AGE ENCRYPTED FILE-----\\n"
        );
        assert_eq!(lines[1], "sops_age__list_0__map_recipient=age1xyz");
        assert_eq!(lines[2], "sops_encrypted_regex=^(data|stringData)$");
        assert_eq!(lines.last().copied(), Some("sops_version=3.9.0"));
    }

    #[test]
    fn selectors_follow_sops_rules() {
        let s = Selectors::default().effective();
        assert!(s.should_encrypt(&["data", "x"]));
        assert!(!s.should_encrypt(&["a_unencrypted", "x"]));
        let mut r = Selectors::default();
        set_selector(&mut r, "encrypted_regex", "^(data|stringData)$").unwrap();
        assert!(r.should_encrypt(&["data", "x"]));
        assert!(!r.should_encrypt(&["metadata", "name"]));
        assert!(!r.should_encrypt(&[]));
    }

    #[test]
    fn plain_scalars_are_only_used_when_unambiguous() {
        assert!(yaml_plain_ok("hello world", false));
        assert!(yaml_plain_ok("^(data|stringData)$", false));
        assert!(yaml_plain_ok("3.9.0", false));
        assert!(!yaml_plain_ok("12", false));
        assert!(!yaml_plain_ok("yes", false));
        assert!(!yaml_plain_ok("a: b", false));
        assert!(!yaml_plain_ok("2024-11-12T13:33:42Z", false));
        assert!(!yaml_plain_ok("a,b", true));
        assert!(!yaml_plain_ok("", false));
        assert_eq!(yaml_double_quoted("a\"b\n"), "\"a\\\"b\\n\"");
    }

    #[test]
    fn json_strings_read_back_as_the_same_text() {
        assert_eq!(json_string("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\u0001é\"");
        for text in [
            "",
            "plain",
            "\u{0}\u{1f}\u{7f}",
            "\u{2028}",
            "ENC[AES256_GCM,data:x=]",
        ] {
            let back: String = serde_json::from_str(&json_string(text)).unwrap();
            assert_eq!(back, text);
        }
    }
}
