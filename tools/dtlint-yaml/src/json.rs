//! The tree as JSON, for JSON Schema validation, and back: the node a JSON
//! pointer from a schema error designates, so the error can name its line.
//!
//! Scalars are typed with the YAML 1.2 core schema, through the same readers
//! the linter uses ([`Node::is_null`], [`Node::as_bool`], [`Node::as_i64`]):
//! a plain scalar is null, a boolean, an integer (decimal, `0x`, `0o`), a
//! float or a string; quoted and block scalars are strings. The tags `!!str`,
//! `!!null`, `!!bool`, `!!int` and `!!float` say the type themselves (a text
//! that does not fit its tag stays a string); any other tag is kept as a
//! string. Kubernetes reads YAML 1.1 ([`crate::yaml11_reading`] lists where
//! the two differ); this is the 1.2 reading.
//!
//! Conversion never fails: the few values JSON cannot hold are written as
//! their text (`.inf`, `.nan`), integers beyond `i64` and `u64` become floats,
//! and a mapping key becomes its JSON text when it is not a string (`1: x`
//! has the key `"1"`, as `sigs.k8s.io/yaml` has it; a collection used as a
//! key is written as compact JSON). Merge keys are already resolved in the
//! tree, and a repeated key keeps its last value (the parser reports it).

use serde_json::{Map, Number, Value as Json};

use crate::{Node, Value};

impl Node {
    /// The node as JSON, typed with the YAML 1.2 core schema (see the module
    /// documentation).
    pub fn to_json(&self) -> Json {
        match &self.value {
            Value::Scalar(_) => self.scalar_json(),
            Value::Sequence(items) => Json::Array(items.iter().map(Node::to_json).collect()),
            Value::Mapping(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for e in entries {
                    map.insert(e.key.json_key(), e.value.to_json());
                }
                Json::Object(map)
            }
        }
    }

    /// The text this node has as a key of a JSON object.
    pub fn json_key(&self) -> String {
        match self.to_json() {
            Json::String(s) => s,
            other => other.to_string(),
        }
    }

    /// The node a JSON pointer (`/spec/values/0`, as a JSON Schema error's
    /// instance path) designates in [`Node::to_json`]'s output, or the deepest
    /// node on its way when the rest does not exist. `""` is the node itself.
    pub fn locate(&self, pointer: &str) -> &Node {
        let mut node = self;
        for raw in pointer.split('/').skip(1) {
            let token = raw.replace("~1", "/").replace("~0", "~");
            let next = match &node.value {
                // The last of repeated keys, as in the JSON.
                Value::Mapping(entries) => entries
                    .iter()
                    .rev()
                    .find(|e| e.key.json_key() == token)
                    .map(|e| &e.value),
                Value::Sequence(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
                Value::Scalar(_) => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node
    }

    fn scalar_json(&self) -> Json {
        let Value::Scalar(s) = &self.value else {
            return Json::Null;
        };
        let text = s.text.as_str();
        let tag = s.tag();
        if self.is_null() || (tag == Some("!!null") && is_null_text(text)) {
            return Json::Null;
        }
        if let Some(b) = self.as_bool() {
            return Json::Bool(b);
        }
        if let Some(i) = self.as_i64() {
            return Json::Number(i.into());
        }
        let numeric = match tag {
            None => s.is_plain(),
            Some(t) => t == "!!int" || t == "!!float",
        };
        if numeric && let Some(n) = core_number(text, tag == Some("!!float")) {
            return Json::Number(n);
        }
        Json::String(text.to_owned())
    }
}

/// What a scalar is under [`Node::to_json`]'s reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarKind {
    Null,
    Bool,
    Int,
    Float,
    String,
}

impl Node {
    /// The JSON type [`Node::to_json`] gives a scalar, without building the
    /// value; `None` for a collection.
    pub fn scalar_kind(&self) -> Option<ScalarKind> {
        let Value::Scalar(s) = &self.value else {
            return None;
        };
        let text = s.text.as_str();
        let tag = s.tag();
        if self.is_null() || (tag == Some("!!null") && is_null_text(text)) {
            return Some(ScalarKind::Null);
        }
        if self.as_bool().is_some() {
            return Some(ScalarKind::Bool);
        }
        if self.as_i64().is_some() {
            return Some(ScalarKind::Int);
        }
        let numeric = match tag {
            None => s.is_plain(),
            Some(t) => t == "!!int" || t == "!!float",
        };
        if numeric && let Some(n) = core_number(text, tag == Some("!!float")) {
            return Some(if n.is_f64() {
                ScalarKind::Float
            } else {
                ScalarKind::Int
            });
        }
        Some(ScalarKind::String)
    }
}

fn is_null_text(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// A core-schema number that [`Node::as_i64`] did not read: an integer
/// beyond `i64`, or a float (`[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`).
/// `None` for anything else, and for `.inf` and `.nan`, which JSON cannot hold.
fn core_number(text: &str, float_tag: bool) -> Option<Number> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !float_tag && !unsigned.is_empty() && digits(unsigned) {
        if let Ok(u) = text.strip_prefix('+').unwrap_or(text).parse::<u64>() {
            return Some(Number::from(u));
        }
        return text.parse::<f64>().ok().and_then(Number::from_f64);
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, fraction)) => {
            digits(whole) && digits(fraction) && !(whole.is_empty() && fraction.is_empty())
        }
        None => !mantissa.is_empty() && digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    if !mantissa_ok || !exponent_ok {
        return None;
    }
    text.parse::<f64>().ok().and_then(Number::from_f64)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{Limits, LineIndex, Node, parse};

    fn doc(src: &str) -> Node {
        let parsed = parse(src, &LineIndex::new(src), Limits::default());
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        parsed.documents.into_iter().next().unwrap().root
    }

    #[test]
    fn plain_scalars_follow_the_core_schema() {
        let j = doc(
            "a: 1\nb: -0x1\nc: 0x1f\nd: 0o17\ne: 0440\nf: 1.5\ng: .5\nh: 1e3\n\
             i: true\nj: False\nk: ~\nl:\nm: yes\nn: 1.2.3\no: 18446744073709551615\n\
             p: 100000000000000000000\nq: .inf\nr: -.Inf\ns: .nan\nt: +12\nu: 1_000\n",
        )
        .to_json();
        assert_eq!(j["a"], 1);
        assert_eq!(j["b"], "-0x1");
        assert_eq!(j["c"], 31);
        assert_eq!(j["d"], 15);
        // YAML 1.2: a leading zero is not octal.
        assert_eq!(j["e"], 440);
        assert_eq!(j["f"], 1.5);
        assert_eq!(j["g"], 0.5);
        assert_eq!(j["h"], 1000.0);
        assert_eq!(j["i"], true);
        assert_eq!(j["j"], false);
        assert!(j["k"].is_null());
        assert!(j["l"].is_null());
        // YAML 1.1 booleans are strings in 1.2.
        assert_eq!(j["m"], "yes");
        assert_eq!(j["n"], "1.2.3");
        assert_eq!(j["o"], u64::MAX);
        assert_eq!(j["p"], 1e20);
        // JSON has no infinities or NaN: the text is kept.
        assert_eq!(j["q"], ".inf");
        assert_eq!(j["r"], "-.Inf");
        assert_eq!(j["s"], ".nan");
        assert_eq!(j["t"], 12);
        assert_eq!(j["u"], "1_000");
    }

    #[test]
    fn quoted_block_and_tagged_scalars() {
        let j = doc(
            "a: \"1\"\nb: 'true'\nc: |\n  5\nd: !!str 5\ne: !!int \"7\"\n\
             f: !!float 2\ng: !!bool 'true'\nh: !!null ''\ni: !custom 3\nj: !!int x\n\
             k: \"\"\nl: 'null'\n",
        )
        .to_json();
        assert_eq!(j["a"], "1");
        assert_eq!(j["b"], "true");
        assert_eq!(j["c"], "5\n");
        assert_eq!(j["d"], "5");
        assert_eq!(j["e"], 7);
        assert_eq!(j["f"], 2.0);
        assert!(j["f"].is_f64());
        assert_eq!(j["g"], true);
        assert!(j["h"].is_null());
        assert_eq!(j["i"], "3");
        assert_eq!(j["j"], "x");
        assert_eq!(j["k"], "");
        assert_eq!(j["l"], "null");
    }

    #[test]
    fn collections_keys_and_merges() {
        let j = doc("base: &b {x: 1, y: [a, 2]}\nthing:\n  <<: *b\n  y: 3\n\
             1: one\ntrue: yes\n~: nothing\n0x10: hex\n? [k, 1]\n: complex\n")
        .to_json();
        assert_eq!(j["base"], json!({"x": 1, "y": ["a", 2]}));
        // Merge keys resolve the way Kubernetes resolves them.
        assert_eq!(j["thing"], json!({"x": 1, "y": 3}));
        assert_eq!(j["1"], "one");
        assert_eq!(j["true"], "yes");
        assert_eq!(j["null"], "nothing");
        assert_eq!(j["16"], "hex");
        assert_eq!(j["[\"k\",1]"], "complex");
    }

    #[test]
    fn locates_json_pointers_at_the_deepest_existing_node() {
        let src = "spec:\n  items:\n    - name: a\n    - name: b\n  a/b: {c~d: 1}\n  7: seven\n";
        let d = doc(src);
        let line = |p: &str| d.locate(p).span.start.line;
        assert_eq!(line("/spec/items/1/name"), 4);
        assert_eq!(&src[d.locate("/spec/items/1/name").span.range()], "b");
        // A missing tail stops at the deepest node that exists.
        assert_eq!(line("/spec/items/7"), 3);
        assert_eq!(line("/spec/items/x"), 3);
        assert_eq!(line("/spec/items/0/name/deeper"), 3);
        assert_eq!(line("/spec/nothing"), 2);
        // `~1` is `/` and `~0` is `~`; a non-string key is found by its JSON text.
        assert_eq!(&src[d.locate("/spec/a~1b/c~0d").span.range()], "1");
        assert_eq!(&src[d.locate("/spec/7").span.range()], "seven");
        assert_eq!(d.locate(""), &d);
    }
}
