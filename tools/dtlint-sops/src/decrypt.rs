//! Decryption and MAC verification.
//!
//! The data key is recovered from the age stanzas; then every value is
//! visited in document order: values the file's rules encrypt are decrypted
//! with their key path as associated data, and every value (or, with
//! `mac_only_encrypted`, every encrypted value) feeds a SHA-512 whose
//! uppercase hex must equal the stored MAC, itself encrypted with
//! `lastmodified` as associated data.

use dtlint_yaml::{Node, Scalar, Span};
use sha2::{Digest as _, Sha512};

use crate::cipher::{self, DataKey, OpenError, Opened, looks_encrypted, parse_enc};
use crate::edit::{Edits, line_end_incl, line_start};
use crate::error::{Error, ErrorKind};
use crate::file::{Format, SopsFile};
use crate::keys::AgeIdentities;
use crate::metadata::{Metadata, Selectors, json_string, yaml_double_quoted, yaml_plain_ok};
use crate::tree::{PlainNode, PlainValue, TreeBuilder, Visitor, aad, walk_root};
use crate::value::{Plain, go_format_float, resolve};

/// The 32 bytes sops feeds the MAC first when `mac_only_encrypted` is set
/// (SHA-256 of "sops"), so the two MAC modes never collide.
pub(crate) const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// A decrypted, MAC-verified file.
#[derive(Debug)]
pub struct Decrypted {
    /// One root per document (the `sops` entry left out), with the spans of
    /// the source nodes.
    pub documents: Vec<PlainNode>,
}

/// `lastmodified` as sops uses it for the MAC's associated data: Go's
/// `time.RFC3339` rendering of the parsed time.
pub(crate) fn canonical_lastmodified(text: &str) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    let t = time::OffsetDateTime::parse(text.trim(), &Rfc3339).ok()?;
    let off = t.offset();
    let zone = if off.is_utc() {
        "Z".to_string()
    } else {
        let (h, m, _) = off.as_hms();
        let sign = if off.is_negative() { '-' } else { '+' };
        format!("{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
    };
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{zone}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// The metadata fields decryption needs, or a positioned error.
pub(crate) fn checked_metadata<'f>(
    file: &'f SopsFile<'_>,
) -> Result<(&'f Metadata, String), Error> {
    let path = file.path();
    if let Some(p) = file
        .problems()
        .iter()
        .find(|p| p.kind == crate::FindingKind::Syntax)
    {
        return Err(Error::new(
            path,
            ErrorKind::Syntax {
                format: file.format().name(),
                message: p.message.clone(),
            },
        )
        .at(p.span));
    }
    let meta = file
        .metadata()
        .ok_or_else(|| Error::new(path, ErrorKind::NotEncrypted))?;
    if let Some(p) = file
        .problems()
        .iter()
        .find(|p| p.kind == crate::FindingKind::InvalidMetadata)
    {
        return Err(Error::new(path, ErrorKind::InvalidMetadata(p.message.clone())).at(p.span));
    }
    let missing = |what: &str| {
        Error::new(
            path,
            ErrorKind::InvalidMetadata(format!("no `{what}` field")),
        )
        .at(meta.span)
    };
    if meta.mac.is_none() {
        return Err(missing("mac"));
    }
    if meta.version.is_none() {
        return Err(missing("version"));
    }
    let lm = meta
        .lastmodified
        .as_ref()
        .ok_or_else(|| missing("lastmodified"))?;
    let canonical = canonical_lastmodified(&lm.value).ok_or_else(|| {
        Error::new(
            path,
            ErrorKind::InvalidMetadata(format!(
                "`lastmodified` `{}` is not an RFC 3339 time",
                lm.value
            )),
        )
        .at(lm.span)
    })?;
    Ok((meta, canonical))
}

/// Recover the data key from the age stanzas (Shamir-combined when the file
/// has several key groups).
pub(crate) fn data_key(
    file: &SopsFile<'_>,
    meta: &Metadata,
    ids: &AgeIdentities,
) -> Result<DataKey, Error> {
    let path = file.path();
    if ids.is_empty() {
        return Err(Error::new(path, ErrorKind::NoIdentities));
    }
    if meta.key_groups.is_empty() {
        return Err(Error::new(path, ErrorKind::InvalidMetadata("no keys".into())).at(meta.span));
    }
    let mut parts = Vec::new();
    let mut first_error: Option<Error> = None;
    for group in &meta.key_groups {
        for stanza in &group.age {
            match ids.unwrap_stanza(&stanza.enc.value) {
                Ok(Some(part)) => {
                    parts.push(part);
                    break;
                }
                Ok(None) => {}
                Err(reason) => {
                    first_error.get_or_insert_with(|| {
                        Error::new(
                            path,
                            ErrorKind::MalformedStanza {
                                recipient: stanza.recipient.value.clone(),
                                reason,
                            },
                        )
                        .at(stanza.enc.span)
                    });
                }
            }
        }
    }
    let groups = meta.key_groups.len();
    let needed = if groups > 1 {
        meta.shamir_threshold.unwrap_or(groups)
    } else {
        1
    };
    if parts.len() < needed {
        if let Some(e) = first_error {
            return Err(e);
        }
        let recipients: Vec<&str> = meta
            .age_recipients()
            .map(|a| a.recipient.value.as_str())
            .collect();
        let mut recipients = recipients.join(", ");
        if recipients.is_empty() {
            recipients = "no age recipients".into();
        }
        return Err(Error::new(
            path,
            ErrorKind::NoMatchingIdentity {
                identities: ids.len(),
                recipients,
            },
        )
        .at(meta.span));
    }
    let key = if groups > 1 {
        cipher::shamir::combine(&parts[..needed]).and_then(|k| DataKey::from_slice(&k))
    } else {
        DataKey::from_slice(&parts[0])
    };
    key.ok_or_else(|| {
        Error::new(
            path,
            ErrorKind::InvalidMetadata("the decrypted data key is not 32 bytes".into()),
        )
        .at(meta.span)
    })
}

/// Decrypt every value and verify the MAC.
pub fn decrypt(file: &SopsFile<'_>, ids: &AgeIdentities) -> Result<Decrypted, Error> {
    run(file, ids, false).map(|(d, _)| d)
}

/// Decrypt and verify, then render the plaintext file as `sops decrypt`
/// would: values in place, comments decrypted, the `sops` metadata removed.
/// Binary files yield their original bytes.
pub fn decrypt_to_plaintext(file: &SopsFile<'_>, ids: &AgeIdentities) -> Result<Vec<u8>, Error> {
    let (decrypted, edits) = run(file, ids, true)?;
    if file.format() == Format::Binary {
        let data = decrypted
            .documents
            .first()
            .and_then(|d| d.get("data"))
            .and_then(PlainNode::as_plain);
        return match data {
            Some(Plain::Str(s)) => Ok(s.clone().into_bytes()),
            Some(Plain::Bytes(b)) => Ok(b.clone()),
            _ => Err(Error::new(
                file.path(),
                ErrorKind::InvalidMetadata("a binary sops file must hold a `data` string".into()),
            )),
        };
    }
    let out = edits.apply(file.source()).map_err(|r| {
        Error::new(
            file.path(),
            ErrorKind::Unsupported("anchors, aliases or merge keys in an encrypted file".into()),
        )
        .at(Span::at(file.pos(r.start)))
    })?;
    Ok(out.into_bytes())
}

struct Dec<'f, 'a> {
    file: &'f SopsFile<'a>,
    key: &'f DataKey,
    selectors: Selectors,
    comment_mode: bool,
    hasher: Sha512,
    builder: TreeBuilder,
    edits: Option<Edits>,
    indent_unit: usize,
}

impl Dec<'_, '_> {
    fn err(&self, kind: ErrorKind, span: Span, path: &[&str]) -> Error {
        Error::new(self.file.path(), kind)
            .at(span)
            .key_path(aad(path))
    }
}

impl<'n> Visitor<'n> for Dec<'_, '_> {
    type Err = Error;

    fn leaf(
        &mut self,
        path: &[&'n str],
        node: &'n Node,
        scalar: &'n Scalar,
        in_flow: bool,
    ) -> Result<(), Error> {
        let text = scalar.text.as_str();
        let encrypted = if self.comment_mode {
            looks_encrypted(text)
        } else {
            self.selectors.should_encrypt(path)
        };
        let format = self.file.format();
        let (value, was_encrypted) = if encrypted && text.is_empty() {
            (Plain::Str(String::new()), false)
        } else if encrypted {
            let typed = resolve(scalar, format).ok().flatten();
            if !looks_encrypted(text) || !matches!(typed, Some(Plain::Str(_))) {
                return Err(self.err(ErrorKind::PlaintextValue, node.span, path));
            }
            let enc = parse_enc(text)
                .map_err(|m| self.err(ErrorKind::MalformedValue(m), node.span, path))?;
            match cipher::open_with(self.key, &enc, &aad(path), format == Format::Binary) {
                Ok(Opened::Value(v)) => (v, true),
                Ok(Opened::Comment(_)) => {
                    return Err(self.err(
                        ErrorKind::MalformedValue("a value has type `comment`".into()),
                        node.span,
                        path,
                    ));
                }
                Err(OpenError::Auth) => {
                    return Err(self.err(ErrorKind::ValueAuthentication, node.span, path));
                }
                Err(OpenError::NotUtf8) => {
                    return Err(self.err(ErrorKind::NotUtf8, node.span, path));
                }
                Err(OpenError::BadType(t)) => {
                    return Err(self.err(ErrorKind::BadType(t), node.span, path));
                }
            }
        } else {
            match resolve(scalar, format) {
                Ok(Some(v)) => (v, false),
                Ok(None) => return self.null(path, node),
                Err(m) => return Err(self.err(ErrorKind::Unsupported(m), node.span, path)),
            }
        };
        if !self.selectors.mac_only_encrypted || encrypted {
            self.hasher.update(value.to_bytes());
        }
        if was_encrypted && self.edits.is_some() {
            let literal = match &value {
                Plain::Str(s) if format == Format::Yaml && !in_flow => {
                    literal_block(self.file.source(), node, s, self.indent_unit)
                }
                _ => None,
            };
            let text = literal
                .or_else(|| render(&value, format, in_flow))
                .ok_or_else(|| self.err(ErrorKind::NotUtf8, node.span, path))?;
            if let Some(edits) = &mut self.edits {
                edits.replace(node.span.range(), text);
            }
        }
        self.builder.push(PlainNode {
            span: node.span,
            value: PlainValue::Scalar {
                value,
                encrypted: was_encrypted,
            },
        });
        Ok(())
    }

    fn null(&mut self, _path: &[&'n str], node: &'n Node) -> Result<(), Error> {
        self.builder.push(PlainNode {
            span: node.span,
            value: PlainValue::Null,
        });
        Ok(())
    }

    fn enter(&mut self, _path: &[&'n str], node: &'n Node, _in_flow: bool) -> Result<(), Error> {
        self.builder.enter(node);
        Ok(())
    }

    fn key(&mut self, key: &'n Node, text: &'n str) -> Result<(), Error> {
        self.builder.key(text, key.span);
        Ok(())
    }

    fn leave(&mut self, _node: &'n Node) -> Result<(), Error> {
        self.builder.leave();
        Ok(())
    }
}

/// A multi-line string as a YAML literal block (`|`, `|-`, `|+`), the way
/// sops writes it, when that is exact: block context, nothing after the value
/// on its line, no leading space on the first line, printable text.
fn literal_block(src: &str, node: &Node, s: &str, unit: usize) -> Option<String> {
    if !s.contains('\n') || s.starts_with([' ', '\n']) {
        return None;
    }
    if s.chars()
        .any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{feff}')
    {
        return None;
    }
    let end = node.span.end.offset as usize;
    let rest = &src[end..];
    if !rest[..rest.find('\n').unwrap_or(rest.len())]
        .trim()
        .is_empty()
    {
        return None;
    }
    let start = line_start(src, node.span.start.offset as usize);
    let lead = src[start..].len() - src[start..].trim_start_matches(' ').len();
    let indent = " ".repeat(lead + unit);
    let content = s.strip_suffix('\n').unwrap_or(s);
    let chomp = if !s.ends_with('\n') {
        "-"
    } else if content.ends_with('\n') {
        "+"
    } else {
        ""
    };
    let mut out = format!("|{chomp}");
    for line in content.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&indent);
            out.push_str(line);
        }
    }
    Some(out)
}

/// A decrypted value as source text of `format`.
fn render(v: &Plain, format: Format, in_flow: bool) -> Option<String> {
    Some(match (v, format) {
        (Plain::Str(s), Format::Dotenv) => s.replace('\n', "\\n"),
        (Plain::Str(s), Format::Json | Format::Binary) => json_string(s),
        (Plain::Str(s), Format::Yaml) => {
            if yaml_plain_ok(s, in_flow) {
                s.clone()
            } else {
                yaml_double_quoted(s)
            }
        }
        (Plain::Bytes(b), _) => {
            return render(
                &Plain::Str(String::from_utf8(b.clone()).ok()?),
                format,
                in_flow,
            );
        }
        (Plain::Float(f), Format::Yaml) if f.is_infinite() => {
            if *f > 0.0 {
                ".inf".into()
            } else {
                "-.inf".into()
            }
        }
        (Plain::Float(f), Format::Yaml) if f.is_nan() => ".nan".into(),
        (Plain::Float(f), Format::Yaml) => {
            // Keep a float a float when read back (yaml.v3 reads `2` as int).
            let t = go_format_float(*f);
            if t.contains('.') { t } else { format!("{t}.0") }
        }
        (Plain::Float(f), _) => go_format_float(*f),
        (Plain::Int(i), _) => i.to_string(),
        (Plain::Bool(b), _) => b.to_string(),
    })
}

fn run(
    file: &SopsFile<'_>,
    ids: &AgeIdentities,
    want_text: bool,
) -> Result<(Decrypted, Edits), Error> {
    let (meta, lastmodified) = checked_metadata(file)?;
    let key = data_key(file, meta, ids)?;
    let selectors = meta.selectors.effective();
    let mut hasher = Sha512::new();
    if selectors.mac_only_encrypted {
        hasher.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    let mut dec = Dec {
        file,
        key: &key,
        comment_mode: selectors.uses_comment_regex(),
        selectors,
        hasher,
        builder: TreeBuilder::default(),
        edits: (want_text && file.format() != Format::Binary).then(Edits::default),
        indent_unit: file
            .documents()
            .first()
            .map_or(2, |d| crate::tree::indent_unit(&d.root)),
    };
    let mut documents = Vec::with_capacity(file.documents().len());
    for doc in file.documents() {
        walk_root(&doc.root, file.source(), &mut dec)?;
        let builder = std::mem::take(&mut dec.builder);
        if let Some(root) = builder.finish() {
            documents.push(root);
        }
    }
    let computed = hex_upper(&dec.hasher.finalize());
    verify_mac(file, meta, &key, &lastmodified, &computed)?;
    let mut edits = dec.edits.take().unwrap_or_default();
    if want_text {
        decrypt_comments(file, &key, &mut edits);
        remove_metadata(file, &mut edits);
    }
    Ok((Decrypted { documents }, edits))
}

pub(crate) fn hex_upper(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02X}");
    }
    s
}

fn verify_mac(
    file: &SopsFile<'_>,
    meta: &Metadata,
    key: &DataKey,
    lastmodified: &str,
    computed: &str,
) -> Result<(), Error> {
    let path = file.path();
    let Some(mac) = &meta.mac else {
        return Err(
            Error::new(path, ErrorKind::InvalidMetadata("no `mac` field".into())).at(meta.span),
        );
    };
    let enc = parse_enc(&mac.value).map_err(|m| {
        Error::new(path, ErrorKind::MalformedValue(m))
            .at(mac.span)
            .key_path("sops:mac")
    })?;
    let stored = match cipher::open(key, &enc, lastmodified) {
        Ok(Opened::Value(Plain::Str(s))) => s,
        Ok(_) | Err(OpenError::BadType(_) | OpenError::NotUtf8) => {
            return Err(Error::new(
                path,
                ErrorKind::MalformedValue("the MAC is not a string".into()),
            )
            .at(mac.span));
        }
        Err(OpenError::Auth) => return Err(Error::new(path, ErrorKind::MacUnreadable).at(mac.span)),
    };
    if stored != computed {
        return Err(Error::new(path, ErrorKind::MacMismatch).at(mac.span));
    }
    Ok(())
}

fn decrypt_comments(file: &SopsFile<'_>, key: &DataKey, edits: &mut Edits) {
    let src = file.source();
    for c in file.comments() {
        let text = &src[c.hash + 1..c.end];
        if !looks_encrypted(text) {
            continue;
        }
        let Ok(enc) = parse_enc(text) else { continue };
        let path: Vec<&str> = c.path.iter().map(String::as_str).collect();
        // Like sops, a comment that does not decrypt is left as it is.
        if let Ok(Opened::Comment(plain)) = cipher::open(key, &enc, &aad(&path)) {
            edits.replace(c.hash + 1..c.end, plain);
        }
    }
}

fn remove_metadata(file: &SopsFile<'_>, edits: &mut Edits) {
    let src = file.source();
    match file.format() {
        Format::Dotenv => {
            for r in file.dotenv_meta_lines() {
                edits.replace(r.clone(), "");
            }
        }
        Format::Yaml => {
            for i in 0..file.documents().len() {
                if let Some(e) = file.sops_entry(i) {
                    let start = line_start(src, e.key.span.start.offset as usize);
                    let end =
                        line_end_incl(src, e.value.span.end.offset.saturating_sub(1) as usize);
                    edits.replace(start..end, "");
                }
            }
        }
        Format::Json | Format::Binary => {
            let Some(doc) = file.documents().first() else {
                return;
            };
            let Some(entries) = doc.root.as_mapping() else {
                return;
            };
            let Some(i) = entries.iter().position(|e| e.key.as_str() == Some("sops")) else {
                return;
            };
            if let Some(r) = json_member_range(src, entries, i) {
                edits.replace(r, "");
            }
        }
    }
}

/// The bytes to delete to remove member `i` of a JSON object, separator
/// included.
pub(crate) fn json_member_range(
    src: &str,
    entries: &[dtlint_yaml::Entry],
    i: usize,
) -> Option<std::ops::Range<usize>> {
    let bytes = src.as_bytes();
    let e = &entries[i];
    let mut end = e.value.span.end.offset as usize;
    if matches!(
        e.value.value,
        dtlint_yaml::Value::Mapping(_) | dtlint_yaml::Value::Sequence(_)
    ) {
        let mut j = end;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if matches!(bytes.get(j), Some(b'}' | b']')) {
            end = j + 1;
        }
    }
    let key_start = e.key.span.start.offset as usize;
    if i > 0 {
        let mut j = key_start;
        while j > 0 && bytes[j - 1].is_ascii_whitespace() {
            j -= 1;
        }
        (j > 0 && bytes[j - 1] == b',').then(|| j - 1..end)
    } else if let Some(next) = entries.get(1) {
        Some(key_start..next.key.span.start.offset as usize)
    } else {
        Some(key_start..end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{NewMetadata, Selectors, WRITTEN_VERSION};

    #[test]
    fn a_non_utf8_value_is_an_error_naming_file_value_and_position() {
        let (ids, r) = AgeIdentities::generate();
        let key = DataKey::generate();
        let stanza =
            crate::keys::wrap(key.bytes(), &crate::keys::parse_recipient(&r).unwrap()).unwrap();
        let lastmodified = "2024-01-01T00:00:00Z".to_string();
        let meta = NewMetadata {
            groups: vec![vec![(r, stanza)]],
            shamir_threshold: None,
            mac: cipher::seal(&key, b"00", &lastmodified, "str"),
            lastmodified,
            selectors: Selectors::default().effective(),
            version: WRITTEN_VERSION.into(),
        };
        let src = format!(
            "ok: {}\nbad: {}\n{}",
            cipher::seal(&key, b"fine", "ok:", "str"),
            cipher::seal(&key, &[0xff, 0xfe], "bad:", "str"),
            meta.to_yaml(0, 2)
        );
        let file = SopsFile::parse(std::path::Path::new("x.yaml"), &src);
        let err = decrypt(&file, &ids).unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::NotUtf8), "{err}");
        assert_eq!(err.value_path(), Some("bad:"));
        assert!(
            err.to_string()
                .starts_with("x.yaml:2:6: decrypted value is not valid UTF-8"),
            "{err}"
        );
    }

    #[test]
    fn lastmodified_is_rendered_like_go() {
        assert_eq!(
            canonical_lastmodified("2024-11-12T13:33:42Z").as_deref(),
            Some("2024-11-12T13:33:42Z")
        );
        assert_eq!(
            canonical_lastmodified("2024-11-12T13:33:42.123+01:00").as_deref(),
            Some("2024-11-12T13:33:42+01:00")
        );
        assert_eq!(
            canonical_lastmodified("2024-11-12T13:33:42-05:30").as_deref(),
            Some("2024-11-12T13:33:42-05:30")
        );
        assert!(canonical_lastmodified("yesterday").is_none());
    }
}
