//! Kubernetes manifests as JSON values: a multi-document YAML stream
//! (`kubectl kustomize` output, or any manifest file) read with the
//! workspace's own YAML parser (`dtlint-yaml`), and a small [`Object`] view
//! of one object's identity.
//!
//! Plain scalars are typed with the YAML 1.2 core schema: `null`, `~` and
//! the empty scalar are null, `true`/`false` booleans, decimal, `0x` and
//! `0o` integers and decimal floats numbers, anything else a string. Quoted
//! and block scalars are always strings. Kubernetes itself reads YAML 1.1, so
//! a plain value the two versions read differently (`0644`, octal 420 to
//! Kubernetes; `yes`, a boolean to Kubernetes) is refused with its position
//! rather than read one way silently: quoting it says what was meant.
//! Duplicate keys are refused too, as the API server's strict decoding does.

// The orchestration of `local-stack up` is the caller; until it lands, parts
// of this module are used by its tests only.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;

use dtlint_yaml::{Entry, Limits, LineIndex, Node, Scalar, Style, Value as YamlValue};
use serde_json::{Map, Number, Value};

/// Why a YAML stream could not be read, at its 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct ManifestError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl ManifestError {
    fn at(node: &Node, message: String) -> Self {
        Self {
            line: node.span.start.line,
            column: node.span.start.col,
            message,
        }
    }
}

/// Every document of `src` as a JSON value, in order. Empty documents (a
/// lone `---`, or only comments) hold no object and are left out, as kubectl
/// does.
pub fn parse_stream(src: &str) -> Result<Vec<Value>, ManifestError> {
    let lines = LineIndex::new(src);
    let parsed = dtlint_yaml::parse(src, &lines, Limits::default());
    if let Some(problem) = parsed.problems.first() {
        return Err(ManifestError {
            line: problem.span.start.line,
            column: problem.span.start.col,
            message: problem.message.clone(),
        });
    }
    if let Some(ambiguous) = parsed.yaml11.first() {
        return Err(ManifestError {
            line: ambiguous.span.start.line,
            column: ambiguous.span.start.col,
            message: format!(
                "`{}` is read by Kubernetes (YAML 1.1) as {} but by YAML 1.2 as something else; quote it, or write the value unambiguously",
                ambiguous.text, ambiguous.reading
            ),
        });
    }
    parsed.documents.iter().map(|d| to_json(&d.root)).collect()
}

/// One node as JSON.
fn to_json(node: &Node) -> Result<Value, ManifestError> {
    match &node.value {
        YamlValue::Scalar(s) => scalar(node, s),
        YamlValue::Sequence(items) => items
            .iter()
            .map(to_json)
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        YamlValue::Mapping(entries) => mapping(entries),
    }
}

fn mapping(entries: &[Entry]) -> Result<Value, ManifestError> {
    let mut map = Map::with_capacity(entries.len());
    for entry in entries {
        let key = match to_json(&entry.key)? {
            Value::String(s) => s,
            // Non-string scalar keys become their JSON text, as
            // sigs.k8s.io/yaml does (`1: x` has the key "1").
            Value::Null => "null".to_owned(),
            v @ (Value::Bool(_) | Value::Number(_)) => v.to_string(),
            Value::Array(_) | Value::Object(_) => {
                return Err(ManifestError::at(
                    &entry.key,
                    "a mapping key must be a scalar".to_owned(),
                ));
            }
        };
        map.insert(key, to_json(&entry.value)?);
    }
    Ok(Value::Object(map))
}

fn scalar(node: &Node, s: &Scalar) -> Result<Value, ManifestError> {
    let text = s.text.as_str();
    let number = |n: Option<Result<Number, String>>, tag: &str| match n {
        Some(Ok(n)) => Ok(Value::Number(n)),
        Some(Err(message)) => Err(ManifestError::at(node, message)),
        None => Err(ManifestError::at(node, format!("`{text}` is not {tag}"))),
    };
    match s.tag() {
        None if s.style == Style::Plain => {
            core_schema(text).map_err(|message| ManifestError::at(node, message))
        }
        None | Some("!!str") => Ok(Value::String(text.to_owned())),
        Some("!!null") => Ok(Value::Null),
        Some("!!bool") => match core_schema(text) {
            Ok(v @ Value::Bool(_)) => Ok(v),
            _ => Err(ManifestError::at(node, format!("`{text}` is not a !!bool"))),
        },
        Some("!!int") => number(integer(text), "an !!int"),
        Some("!!float") => number(float(text).or_else(|| integer(text)), "a !!float"),
        Some(tag) => Err(ManifestError::at(
            node,
            format!("the tag {tag} is not supported in a Kubernetes manifest"),
        )),
    }
}

fn is_special_float(text: &str) -> bool {
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    matches!(t, ".inf" | ".Inf" | ".INF") || matches!(text, ".nan" | ".NaN" | ".NAN")
}

/// The YAML 1.2 core schema's reading of a plain scalar; an error for a
/// number JSON cannot hold (out of range, `.inf`, `.nan`).
fn core_schema(text: &str) -> Result<Value, String> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        _ => {}
    }
    match integer(text).or_else(|| float(text)) {
        Some(number) => number.map(Value::Number),
        None => Ok(Value::String(text.to_owned())),
    }
}

/// A core-schema integer: `[-+]?[0-9]+`, `0o[0-7]+` or `0x[0-9a-fA-F]+`.
/// `None` when `text` is not one; an error when it is but does not fit.
fn integer(text: &str) -> Option<Result<Number, String>> {
    let (radix, digits, negative) = if let Some(hex) = text.strip_prefix("0x") {
        (16, hex, false)
    } else if let Some(oct) = text.strip_prefix("0o") {
        (8, oct, false)
    } else {
        let negative = text.starts_with('-');
        (10, text.strip_prefix(['-', '+']).unwrap_or(text), negative)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let Ok(magnitude) = u128::from_str_radix(digits, radix) else {
        return Some(Err(format!("the integer `{text}` is out of range")));
    };
    let number = if negative {
        i64::try_from(magnitude)
            .ok()
            .map(|m| Number::from(-m))
            .or_else(|| (magnitude == 1u128 << 63).then(|| Number::from(i64::MIN)))
    } else {
        u64::try_from(magnitude).ok().map(Number::from)
    };
    Some(number.ok_or_else(|| format!("the integer `{text}` is out of range")))
}

/// A core-schema float: `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
/// `.inf`/`.nan` are reported as errors (JSON cannot hold them).
fn float(text: &str) -> Option<Result<Number, String>> {
    if is_special_float(text) {
        return Some(Err(format!("`{text}` is a YAML float with no JSON value")));
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = match fraction {
        Some(f) => digits(whole) && digits(f) && (!whole.is_empty() || !f.is_empty()),
        None => !whole.is_empty() && digits(whole),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    if !mantissa_ok || !exponent_ok {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    Some(Number::from_f64(value).ok_or_else(|| format!("the float `{text}` is out of range")))
}

/// A read-only view of one Kubernetes object's identity.
#[derive(Debug, Clone, Copy)]
pub struct Object<'a> {
    value: &'a Value,
}

impl<'a> Object<'a> {
    /// The view of `value`, when it is a mapping with a `kind`.
    pub fn new(value: &'a Value) -> Option<Self> {
        value.get("kind")?.as_str()?;
        Some(Self { value })
    }

    pub fn value(self) -> &'a Value {
        self.value
    }

    pub fn api_version(self) -> &'a str {
        self.str_at(&["apiVersion"]).unwrap_or("")
    }

    pub fn kind(self) -> &'a str {
        self.str_at(&["kind"]).unwrap_or("")
    }

    pub fn name(self) -> &'a str {
        self.str_at(&["metadata", "name"]).unwrap_or("")
    }

    /// `metadata.namespace`, or `default` when it is unset (as `kubectl
    /// apply -n <default>` would place it).
    pub fn namespace<'b>(self, default: &'b str) -> &'b str
    where
        'a: 'b,
    {
        self.str_at(&["metadata", "namespace"])
            .filter(|ns| !ns.is_empty())
            .unwrap_or(default)
    }

    /// `metadata.labels`; labels whose value is not a string are left out.
    pub fn labels(self) -> BTreeMap<&'a str, &'a str> {
        self.value
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
            .collect()
    }

    /// "Kind namespace/name", as errors name objects.
    pub fn id(self, default_namespace: &str) -> String {
        format!(
            "{} {}/{}",
            self.kind(),
            self.namespace(default_namespace),
            self.name()
        )
    }

    fn str_at(self, path: &[&str]) -> Option<&'a str> {
        path.iter()
            .try_fold(self.value, |v, k| v.get(k))
            .and_then(Value::as_str)
    }
}

impl fmt::Display for Object<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.str_at(&["metadata", "namespace"]) {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind(), self.name()),
            None => write!(f, "{} {}", self.kind(), self.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn one(src: &str) -> Value {
        let mut docs = parse_stream(src).unwrap();
        assert_eq!(docs.len(), 1, "{docs:?}");
        docs.remove(0)
    }

    #[test]
    fn plain_scalars_follow_the_core_schema() {
        let cases: &[(&str, Value)] = &[
            ("~", Value::Null),
            ("null", Value::Null),
            ("NULL", Value::Null),
            ("", Value::Null),
            ("true", json!(true)),
            ("False", json!(false)),
            ("42", json!(42)),
            ("-7", json!(-7)),
            ("+7", json!(7)),
            ("0x1F", json!(31)),
            ("0o17", json!(15)),
            ("1.5", json!(1.5)),
            ("-.5", json!(-0.5)),
            ("1e3", json!(1000.0)),
            ("2.", json!(2.0)),
            ("18446744073709551615", json!(u64::MAX)),
            ("-9223372036854775808", json!(i64::MIN)),
            ("hello", json!("hello")),
            ("0x", json!("0x")),
            ("1.2.3", json!("1.2.3")),
            ("100m", json!("100m")),
            ("256Mi", json!("256Mi")),
            ("e3", json!("e3")),
            ("0.0.0.0:8080", json!("0.0.0.0:8080")),
        ];
        for (text, want) in cases {
            let got = one(&format!("v: {text}\n"));
            assert_eq!(&got["v"], want, "plain scalar {text:?}");
        }
    }

    #[test]
    fn quoted_block_and_tagged_scalars() {
        let v = one(
            "a: \"42\"\nb: 'true'\nc: |\n  line\nd: !!str 7\ne: !!int \"0x10\"\nf: !!float 1\ng: \"\"\nh: !!null x\n",
        );
        assert_eq!(
            v,
            json!({"a": "42", "b": "true", "c": "line\n", "d": "7", "e": 16, "f": 1.0, "g": "", "h": null})
        );
    }

    #[test]
    fn documents_nesting_and_keys() {
        let docs = parse_stream(
            "---\n# comment only\n---\napiVersion: v1\nkind: List\nitems: [1, {a: b}]\n---\n1: x\ntrue: w\n~: z\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["items"], json!([1, {"a": "b"}]));
        assert_eq!(docs[1], json!({"1": "x", "true": "w", "null": "z"}));
    }

    #[test]
    fn problems_are_errors_with_line_and_column() {
        let cases: &[(&str, u32, u32, &str)] = &[
            ("a: 1\nb: [1, 2\n", 3, 1, ""),
            ("a: 1\na: 2\n", 2, 1, "duplicate key `a`"),
            ("x:\n  mode: 0644\n", 2, 9, "octal number 420"),
            ("x: yes\n", 1, 4, "the boolean `true`"),
            ("x: .inf\n", 1, 4, "no JSON value"),
            ("x: .NaN\n", 1, 4, "no JSON value"),
            ("x: 99999999999999999999\n", 1, 4, "out of range"),
            ("x: !!int abc\n", 1, 4, "is not an !!int"),
            ("x: !custom y\n", 1, 4, "the tag !custom is not supported"),
            ("? [a]\n: b\n", 1, 3, "a mapping key must be a scalar"),
        ];
        for (src, line, column, message) in cases {
            let err = parse_stream(src).unwrap_err();
            assert_eq!((err.line, err.column), (*line, *column), "{src:?}: {err}");
            assert!(err.message.contains(message), "{src:?}: {err}");
        }
        let err = parse_stream("a: 1\na: 2\n").unwrap_err();
        assert_eq!(err.to_string(), "2:1: duplicate key `a`");
    }

    #[test]
    fn object_view() {
        let v = one(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {app: web, n: 1}\n",
        );
        let o = Object::new(&v).unwrap();
        assert_eq!(o.api_version(), "apps/v1");
        assert_eq!(o.kind(), "Deployment");
        assert_eq!(o.name(), "web");
        assert_eq!(o.namespace("dark-tower"), "dark-tower");
        assert_eq!(o.labels(), BTreeMap::from([("app", "web")]));
        assert_eq!(o.id("dark-tower"), "Deployment dark-tower/web");
        assert_eq!(o.to_string(), "Deployment web");
        let v = json!({"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns"}});
        assert_eq!(Object::new(&v).unwrap().namespace("other"), "ns");
        assert_eq!(Object::new(&v).unwrap().to_string(), "ConfigMap ns/c");
        assert!(Object::new(&json!({"a": 1})).is_none());
        assert!(Object::new(&json!([1])).is_none());
    }
}
