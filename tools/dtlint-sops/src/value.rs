//! Scalar values typed the way Go sops types them.
//!
//! The MAC and the `type:` of every encrypted value depend on how sops's Go
//! stores decode a scalar: `yaml.v3` resolves plain YAML scalars (`12` is an
//! int, `1.50` a float whose MAC bytes are `1.5`, `0x1F` the int 31), JSON's
//! decoder turns every number into a float64, and dotenv values are strings.
//! This module reproduces those rules so our MACs equal sops's.

use std::borrow::Cow;
use std::fmt;

use dtlint_yaml::{Scalar, Style};

use crate::Format;

/// A decrypted (or never encrypted) scalar.
#[derive(Debug, Clone, PartialEq)]
pub enum Plain {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// sops's `type:bytes`: raw bytes (only binary-store payloads use it).
    Bytes(Vec<u8>),
}

impl Plain {
    /// The `type:` sops writes for this value.
    pub fn type_name(&self) -> &'static str {
        match self {
            Plain::Str(_) => "str",
            Plain::Int(_) => "int",
            Plain::Float(_) => "float",
            Plain::Bool(_) => "bool",
            Plain::Bytes(_) => "bytes",
        }
    }

    /// The bytes sops feeds to the MAC and encrypts (Go's `sops.ToBytes`).
    pub fn to_bytes(&self) -> Cow<'_, [u8]> {
        match self {
            Plain::Str(s) => Cow::Borrowed(s.as_bytes()),
            Plain::Bytes(b) => Cow::Borrowed(b),
            Plain::Int(i) => Cow::Owned(i.to_string().into_bytes()),
            Plain::Float(f) => Cow::Owned(go_format_float(*f).into_bytes()),
            Plain::Bool(true) => Cow::Borrowed(b"True"),
            Plain::Bool(false) => Cow::Borrowed(b"False"),
        }
    }

    /// The string, for string values.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Plain::Str(s) => Some(s),
            _ => None,
        }
    }

    /// True for the empty string, which sops never encrypts.
    pub fn is_empty_str(&self) -> bool {
        matches!(self, Plain::Str(s) if s.is_empty())
    }
}

impl fmt::Display for Plain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Plain::Str(s) => f.write_str(s),
            Plain::Int(i) => write!(f, "{i}"),
            Plain::Float(x) => f.write_str(&go_format_float(*x)),
            Plain::Bool(b) => write!(f, "{b}"),
            Plain::Bytes(b) => f.write_str(&String::from_utf8_lossy(b)),
        }
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`: the shortest decimal that
/// reads back as `f`, never in exponent form. Rust's `Display` for `f64`
/// follows the same rule; only the special values are spelled differently.
pub(crate) fn go_format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{f}")
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)` after yaml.v3 removed underscores:
/// an optional sign, then `0x`/`0o`/`0b` prefixes or a leading `0` for octal.
/// `Err(true)` means the text is an integer that does not fit in an i64.
fn go_parse_int(s: &str) -> Result<i64, bool> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = if let Some(rest) = body.strip_prefix("0x").or(body.strip_prefix("0X")) {
        (16, rest)
    } else if let Some(rest) = body.strip_prefix("0o").or(body.strip_prefix("0O")) {
        (8, rest)
    } else if let Some(rest) = body.strip_prefix("0b").or(body.strip_prefix("0B")) {
        (2, rest)
    } else if body.len() > 1 && body.starts_with('0') {
        (8, &body[1..])
    } else {
        (10, body)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(false);
    }
    let magnitude = u128::from_str_radix(digits, radix).map_err(|_| true)?;
    let value = if neg {
        i128::try_from(magnitude).map(|m| -m).map_err(|_| true)?
    } else {
        i128::try_from(magnitude).map_err(|_| true)?
    };
    i64::try_from(value).map_err(|_| true)
}

/// yaml.v3's float syntax: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// How a plain YAML scalar resolves under yaml.v3, as sops sees it.
/// `Ok(None)` is null; `Err` names a value sops itself cannot handle.
pub(crate) fn resolve_yaml_plain(text: &str) -> Result<Option<Plain>, String> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(None),
        "true" | "True" | "TRUE" => return Ok(Some(Plain::Bool(true))),
        "false" | "False" | "FALSE" => return Ok(Some(Plain::Bool(false))),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Ok(Some(Plain::Float(f64::INFINITY)));
        }
        "-.inf" | "-.Inf" | "-.INF" => return Ok(Some(Plain::Float(f64::NEG_INFINITY))),
        ".nan" | ".NaN" | ".NAN" => return Ok(Some(Plain::Float(f64::NAN))),
        _ => {}
    }
    if !text.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.')) {
        return Ok(Some(Plain::Str(text.to_owned())));
    }
    let plain: Cow<'_, str> = if text.contains('_') {
        Cow::Owned(text.replace('_', ""))
    } else {
        Cow::Borrowed(text)
    };
    match go_parse_int(&plain) {
        Ok(i) => return Ok(Some(Plain::Int(i))),
        Err(true) => {
            return Err(format!(
                "the integer `{text}` does not fit in 64 bits, which sops cannot handle"
            ));
        }
        Err(false) => {}
    }
    if is_yaml_float(&plain)
        && let Ok(f) = plain.parse::<f64>()
    {
        return Ok(Some(Plain::Float(f)));
    }
    Ok(Some(Plain::Str(text.to_owned())))
}

/// The typed value of a scalar node in a file of `format`.
pub(crate) fn resolve(scalar: &Scalar, format: Format) -> Result<Option<Plain>, String> {
    match format {
        Format::Dotenv => Ok(Some(Plain::Str(scalar.text.to_string()))),
        Format::Json | Format::Binary => {
            if scalar.style != Style::Plain {
                return Ok(Some(Plain::Str(scalar.text.to_string())));
            }
            Ok(match scalar.text.as_str() {
                "null" => None,
                "true" => Some(Plain::Bool(true)),
                "false" => Some(Plain::Bool(false)),
                t => match t.parse::<f64>() {
                    Ok(f) if t.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => {
                        Some(Plain::Float(f))
                    }
                    _ => Some(Plain::Str(t.to_owned())),
                },
            })
        }
        Format::Yaml => match scalar.tag() {
            None if scalar.style == Style::Plain => resolve_yaml_plain(&scalar.text),
            Some("!!null") => Ok(None),
            Some("!!bool") => match resolve_yaml_plain(&scalar.text)? {
                Some(b @ Plain::Bool(_)) => Ok(Some(b)),
                _ => Err(format!(
                    "`{}` is tagged !!bool but is not a boolean",
                    scalar.text
                )),
            },
            Some("!!int") => match resolve_yaml_plain(&scalar.text)? {
                Some(i @ Plain::Int(_)) => Ok(Some(i)),
                _ => Err(format!(
                    "`{}` is tagged !!int but is not an integer",
                    scalar.text
                )),
            },
            Some("!!float") => match resolve_yaml_plain(&scalar.text)? {
                Some(f @ Plain::Float(_)) => Ok(Some(f)),
                #[allow(clippy::cast_precision_loss)]
                Some(Plain::Int(i)) => Ok(Some(Plain::Float(i as f64))),
                _ => Err(format!(
                    "`{}` is tagged !!float but is not a number",
                    scalar.text
                )),
            },
            Some("!!binary") => Err("!!binary values are not supported".into()),
            // Quoted and block scalars, `!!str` and custom tags are strings.
            None | Some(_) => Ok(Some(Plain::Str(scalar.text.to_string()))),
        },
    }
}

/// Go's `strconv.ParseBool`.
pub(crate) fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.Atoi` (decimal only, optional sign).
pub(crate) fn go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Go's `strconv.ParseFloat(s, 64)` for the forms sops writes and humans use.
pub(crate) fn go_parse_float(s: &str) -> Option<f64> {
    let t = s.strip_prefix('+').unwrap_or(s);
    if t.starts_with(['+', '-']) && s.starts_with('+') {
        return None;
    }
    t.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> Option<Plain> {
        resolve_yaml_plain(s).unwrap()
    }

    #[test]
    fn yaml_v3_resolution() {
        assert_eq!(y("12"), Some(Plain::Int(12)));
        assert_eq!(y("0x1F"), Some(Plain::Int(31)));
        assert_eq!(y("0o17"), Some(Plain::Int(15)));
        assert_eq!(y("017"), Some(Plain::Int(15)));
        assert_eq!(y("-0b101"), Some(Plain::Int(-5)));
        assert_eq!(y("1_000"), Some(Plain::Int(1000)));
        assert_eq!(y("08"), Some(Plain::Float(8.0)));
        assert_eq!(y("1.50"), Some(Plain::Float(1.5)));
        assert_eq!(y(".5"), Some(Plain::Float(0.5)));
        assert_eq!(y("1e3"), Some(Plain::Float(1000.0)));
        assert_eq!(y("yes"), Some(Plain::Str("yes".into())));
        assert_eq!(y("True"), Some(Plain::Bool(true)));
        assert_eq!(y("~"), None);
        assert_eq!(y("2001-12-14"), Some(Plain::Str("2001-12-14".into())));
        assert_eq!(y("1.2.3"), Some(Plain::Str("1.2.3".into())));
        assert_eq!(y("-"), Some(Plain::Str("-".into())));
        assert!(resolve_yaml_plain("99999999999999999999").is_err());
    }

    #[test]
    fn mac_bytes_follow_go() {
        assert_eq!(&*Plain::Float(1.5).to_bytes(), b"1.5");
        assert_eq!(&*Plain::Float(1e21).to_bytes(), b"1000000000000000000000");
        assert_eq!(&*Plain::Float(1.0).to_bytes(), b"1");
        assert_eq!(&*Plain::Float(f64::INFINITY).to_bytes(), b"+Inf");
        assert_eq!(&*Plain::Bool(false).to_bytes(), b"False");
        assert_eq!(&*Plain::Int(-7).to_bytes(), b"-7");
    }

    #[test]
    fn go_parsers() {
        assert_eq!(go_atoi("+5"), Some(5));
        assert_eq!(go_atoi("0x5"), None);
        assert_eq!(go_parse_bool("T"), Some(true));
        assert_eq!(go_parse_float("+1.5"), Some(1.5));
        assert_eq!(go_parse_float("++1"), None);
    }
}
