//! Scalars against a schema node: the type a YAML value has, placeholders,
//! enums and Go durations.

use dtlint_yaml::{Node as Yaml, ScalarKind, Value};

use super::{Node, flags, types};

/// A JSON type as the message names it.
pub(super) fn type_names(t: u8) -> String {
    let names: Vec<&str> = [
        (types::OBJECT, "a mapping"),
        (types::ARRAY, "a sequence"),
        (types::STRING, "a string"),
        (types::INTEGER, "an integer"),
        (types::NUMBER, "a number"),
        (types::BOOLEAN, "a boolean"),
    ]
    .iter()
    .filter(|(b, _)| t & b != 0)
    // "an integer or a number" says no more than "a number".
    .filter(|(b, _)| !(*b == types::INTEGER && t & types::NUMBER != 0))
    .map(|(_, n)| *n)
    .collect();
    match names.as_slice() {
        [] => "anything".into(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

pub(super) fn found(y: &Yaml) -> &'static str {
    match y.scalar_kind() {
        None => match y.value {
            Value::Mapping(_) => "a mapping",
            _ => "a sequence",
        },
        Some(ScalarKind::Null) => "null",
        Some(ScalarKind::Bool) => "a boolean",
        Some(ScalarKind::Int) => "an integer",
        Some(ScalarKind::Float) => "a number",
        Some(ScalarKind::String) => "a string",
    }
}

/// A value written as a placeholder another tool fills in: a SOPS
/// ciphertext or a Flux `${VAR}` substitution.
pub(super) fn placeholder(y: &Yaml, sops: bool) -> bool {
    y.as_scalar().is_some_and(|s| {
        s.text.contains("${") || (sops && s.text.starts_with("ENC[") && s.text.ends_with(']'))
    })
}

/// A Go duration (`1h30m`, `500ms`, `0`).
pub(super) fn is_duration(t: &str) -> bool {
    let t = t.strip_prefix(['-', '+']).unwrap_or(t);
    if t == "0" {
        return true;
    }
    let mut rest = t;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if digits == 0 || rest[..digits].matches('.').count() > 1 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .into_iter()
            .filter(|u| rest.starts_with(u))
            .max_by_key(|u| u.len());
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

pub(super) fn int_or_string(node: &Node) -> u8 {
    if node.flags & flags::INT_OR_STRING != 0 {
        types::INTEGER | types::STRING
    } else {
        0
    }
}

pub(super) fn enum_has(values: &[serde_json::Value], y: &Yaml, text: &str) -> bool {
    values.iter().any(|v| match v {
        serde_json::Value::String(s) => s == text,
        serde_json::Value::Number(n) => n
            .as_f64()
            .is_some_and(|f| text.parse::<f64>().ok() == Some(f)),
        serde_json::Value::Bool(b) => y.as_bool() == Some(*b),
        serde_json::Value::Null => y.is_null(),
        _ => false,
    })
}

/// A value as a message quotes it: at most 80 characters, then `…`.
pub(super) fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &text[..at]).into(),
        None => text.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::is_duration;

    #[test]
    fn long_values_are_cut_in_messages() {
        assert_eq!(super::shown("short"), "short");
        let long = "é".repeat(200);
        let cut = super::shown(&long);
        assert_eq!(cut.chars().count(), 81);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn go_durations() {
        for ok in ["0", "1h", "1h30m", "500ms", "1.5s", "10us", "-3m"] {
            assert!(is_duration(ok), "{ok}");
        }
        for bad in ["", "1", "h", "1d", "1.2.3s", "5 m"] {
            assert!(!is_duration(bad), "{bad}");
        }
    }
}
