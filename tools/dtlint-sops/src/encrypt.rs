//! Encryption and key updates, by editing the source text in place.
//!
//! Each encrypted value's text is replaced by its `ENC[...]` string and the
//! `sops` block is appended to every document, so key order, comments,
//! blank lines and the quoting of plain values stay exactly as written.
//! Comments under encrypted keys are encrypted too, as sops does.

use std::path::Path;

use dtlint_yaml::{Node, Scalar, Span, Style, Value};
use sha2::{Digest as _, Sha512};

use crate::cipher::{self, DataKey};
use crate::config::CreationRule;
use crate::decrypt::{MAC_ONLY_ENCRYPTED_INIT, checked_metadata, data_key, decrypt, hex_upper};
use crate::edit::{Edits, line_end_incl, line_start};
use crate::error::{Error, ErrorKind};
use crate::file::{Format, SopsFile};
use crate::keys::{AgeIdentities, parse_recipient, wrap};
use crate::metadata::{Metadata, NewMetadata, Selectors, WRITTEN_VERSION};
use crate::tree::{Visitor, aad, walk_root};
use crate::value::resolve;

/// Who can decrypt, and what gets encrypted.
#[derive(Debug, Clone, Default)]
pub struct EncryptOptions {
    /// age recipients (`age1…`) per key group. One group: each recipient
    /// can decrypt alone. Several: the data key is split with Shamir.
    pub key_groups: Vec<Vec<String>>,
    /// Key groups needed to decrypt (default: all of them).
    pub shamir_threshold: Option<usize>,
    /// Which values to encrypt; none set means sops's default
    /// (`unencrypted_suffix: _unencrypted`).
    pub selectors: Selectors,
    /// `lastmodified`; now when `None`.
    pub now: Option<time::OffsetDateTime>,
}

impl EncryptOptions {
    /// Encrypt to these age recipients (one key group), everything encrypted
    /// except keys ending in `_unencrypted` — like `sops encrypt --age`.
    pub fn with_age<S: Into<String>>(recipients: impl IntoIterator<Item = S>) -> Self {
        Self {
            key_groups: vec![recipients.into_iter().map(Into::into).collect()],
            ..Self::default()
        }
    }

    /// Options from a `.sops.yaml` creation rule.
    pub fn from_rule(rule: &CreationRule) -> Self {
        Self {
            key_groups: rule
                .key_groups
                .iter()
                .map(|g| g.age.iter().map(|s| s.value.clone()).collect())
                .collect(),
            shamir_threshold: rule.shamir_threshold,
            selectors: rule.selectors.clone(),
            now: None,
        }
    }
}

fn lastmodified_now(now: Option<time::OffsetDateTime>) -> String {
    let t = now
        .unwrap_or_else(time::OffsetDateTime::now_utc)
        .to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Encrypt the data key to every recipient; returns the stanzas per group.
fn wrap_key(
    path: &Path,
    key: &DataKey,
    groups: &[Vec<String>],
    threshold: Option<usize>,
) -> Result<Vec<Vec<(String, String)>>, Error> {
    let config = |m: String| Error::new(path, ErrorKind::Config(m));
    if groups.is_empty() || groups.iter().any(Vec::is_empty) {
        return Err(config(
            "no age recipients to encrypt to (every key group needs at least one)".into(),
        ));
    }
    let parts: Vec<Vec<u8>> = if groups.len() == 1 {
        vec![key.bytes().to_vec()]
    } else {
        let t = threshold.unwrap_or(groups.len());
        if t < 2 || t > groups.len() {
            return Err(config(format!(
                "shamir_threshold {t} must be between 2 and the number of key groups ({})",
                groups.len()
            )));
        }
        cipher::shamir::split(key.bytes(), groups.len(), t)
            .ok_or_else(|| config("cannot split the data key".into()))?
    };
    let mut out = Vec::with_capacity(groups.len());
    for (group, part) in groups.iter().zip(&parts) {
        let mut stanzas = Vec::with_capacity(group.len());
        for r in group {
            let recipient = parse_recipient(r).map_err(|m| config(format!("`{r}`: {m}")))?;
            let enc = wrap(part, &recipient).map_err(|m| Error::new(path, ErrorKind::Crypto(m)))?;
            stanzas.push((r.trim().to_owned(), enc));
        }
        out.push(stanzas);
    }
    Ok(out)
}

/// Encrypt a plaintext file the way `sops encrypt` does. `input` must be
/// UTF-8 except for [`Format::Binary`].
pub fn encrypt(
    path: &Path,
    input: &[u8],
    format: Format,
    opts: &EncryptOptions,
) -> Result<String, Error> {
    let selectors = opts.selectors.effective();
    if opts.selectors.count() > 1 {
        return Err(Error::new(
            path,
            ErrorKind::Config(
                "more than one of the encrypted/unencrypted suffix and regex options".into(),
            ),
        ));
    }
    if selectors.uses_comment_regex() {
        return Err(Error::new(
            path,
            ErrorKind::Unsupported("encrypted_comment_regex and unencrypted_comment_regex".into()),
        ));
    }
    let key = DataKey::generate();
    let groups = wrap_key(path, &key, &opts.key_groups, opts.shamir_threshold)?;
    let lastmodified = lastmodified_now(opts.now);
    let mut hasher = Sha512::new();
    if selectors.mac_only_encrypted {
        hasher.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    let meta = |hasher: Sha512| NewMetadata {
        groups: groups.clone(),
        shamir_threshold: (groups.len() > 1).then(|| opts.shamir_threshold.unwrap_or(groups.len())),
        mac: cipher::seal(
            &key,
            hex_upper(&hasher.finalize()).as_bytes(),
            &lastmodified,
            "str",
        ),
        lastmodified: lastmodified.clone(),
        selectors: selectors.clone(),
        version: WRITTEN_VERSION.into(),
    };
    if format == Format::Binary {
        let value = if input.is_empty() {
            String::new()
        } else {
            hasher.update(input);
            cipher::seal(&key, input, "data:", "str")
        };
        let m = meta(hasher);
        return Ok(format!(
            "{{\n\t\"data\": {},\n\t\"sops\": {}\n}}\n",
            crate::metadata::json_string(&value),
            m.to_json("\t", 1)
        ));
    }
    let src = std::str::from_utf8(input).map_err(|e| {
        Error::new(
            path,
            ErrorKind::Syntax {
                format: format.name(),
                message: format!("the file is not UTF-8 (byte {})", e.valid_up_to()),
            },
        )
    })?;
    let file = SopsFile::parse_as(path, src, format);
    if let Some(p) = file.problems().first() {
        return Err(Error::new(
            path,
            ErrorKind::Syntax {
                format: format.name(),
                message: p.message.clone(),
            },
        )
        .at(p.span));
    }
    if file.is_encrypted() || (0..file.documents().len()).any(|i| file.sops_entry(i).is_some()) {
        return Err(Error::new(path, ErrorKind::AlreadyEncrypted));
    }
    let mut enc = Enc {
        file: &file,
        key: &key,
        selectors: &selectors,
        hasher,
        edits: Edits::default(),
        last_end: 0,
    };
    for doc in file.documents() {
        if format != Format::Dotenv {
            check_root(&file, &doc.root)?;
        }
        walk_root(&doc.root, src, &mut enc)?;
    }
    let Enc {
        hasher, mut edits, ..
    } = enc;
    for c in file.comments() {
        let path_keys: Vec<&str> = c.path.iter().map(String::as_str).collect();
        let text = &src[c.hash + 1..c.end];
        if !text.is_empty() && selectors.should_encrypt(&path_keys) {
            edits.replace(
                c.hash + 1..c.end,
                cipher::seal(&key, text.as_bytes(), &aad(&path_keys), "comment"),
            );
        }
    }
    let m = meta(hasher);
    append_metadata(&file, &m, &mut edits);
    edits.apply(src).map_err(|r| overlap_error(&file, &r))
}

fn overlap_error(file: &SopsFile<'_>, r: &std::ops::Range<usize>) -> Error {
    Error::new(
        file.path(),
        ErrorKind::Unsupported(
            "anchors, aliases and merge keys in values to encrypt; expand them first".into(),
        ),
    )
    .at(Span::at(file.pos(r.start)))
}

fn check_root(file: &SopsFile<'_>, root: &Node) -> Result<(), Error> {
    let path = file.path();
    match &root.value {
        Value::Mapping(_)
            if crate::tree::is_flow(root, file.source()) && file.format() == Format::Yaml =>
        {
            Err(Error::new(
                path,
                ErrorKind::Unsupported("a flow-style (`{...}`) top-level YAML mapping".into()),
            )
            .at(root.span))
        }
        Value::Mapping(_) => Ok(()),
        _ => Err(Error::new(
            path,
            ErrorKind::Unsupported(format!(
                "sops files must be mappings at the top level, found {}",
                root.type_name()
            )),
        )
        .at(root.span)),
    }
}

struct Enc<'f, 'a> {
    file: &'f SopsFile<'a>,
    key: &'f DataKey,
    selectors: &'f Selectors,
    hasher: Sha512,
    edits: Edits,
    last_end: usize,
}

impl<'n> Visitor<'n> for Enc<'_, '_> {
    type Err = Error;

    fn leaf(
        &mut self,
        path: &[&'n str],
        node: &'n Node,
        scalar: &'n Scalar,
        in_flow: bool,
    ) -> Result<(), Error> {
        let src = self.file.source();
        let range = node.span.range();
        let err = |kind: ErrorKind| {
            Error::new(self.file.path(), kind)
                .at(node.span)
                .key_path(aad(path))
        };
        if range.start < self.last_end || src.get(range.clone()).is_some_and(|t| t.starts_with('*'))
        {
            return Err(err(ErrorKind::Unsupported(
                "anchors, aliases and merge keys in values to encrypt; expand them first".into(),
            )));
        }
        self.last_end = range.end;
        let value = match resolve(scalar, self.file.format()) {
            Ok(Some(v)) => v,
            Ok(None) => return Ok(()),
            Err(m) => return Err(err(ErrorKind::Unsupported(m))),
        };
        let encrypted = self.selectors.should_encrypt(path);
        if !self.selectors.mac_only_encrypted || encrypted {
            self.hasher.update(value.to_bytes());
        }
        if !encrypted || value.is_empty_str() {
            return Ok(());
        }
        let enc = cipher::seal_value(self.key, &value, &aad(path));
        match self.file.format() {
            Format::Json | Format::Binary => self.edits.replace(range, format!("\"{enc}\"")),
            Format::Yaml if in_flow => self.edits.replace(range, format!("\"{enc}\"")),
            Format::Yaml if matches!(scalar.style, Style::Literal | Style::Folded) => {
                block_scalar_edit(src, range, &enc, &mut self.edits);
            }
            Format::Yaml | Format::Dotenv => self.edits.replace(range, enc),
        }
        Ok(())
    }

    fn leave(&mut self, _node: &'n Node) -> Result<(), Error> {
        Ok(())
    }
}

/// Replace a block scalar (`|`/`>` header plus indented content) by a plain
/// `ENC[...]`: the header indicator becomes the value, the content lines go,
/// a comment on the header line stays.
fn block_scalar_edit(src: &str, content: std::ops::Range<usize>, enc: &str, edits: &mut Edits) {
    let bytes = src.as_bytes();
    // The header is on the last non-blank line before the content.
    let mut header_end = line_start(src, content.start);
    loop {
        let end = header_end.saturating_sub(1);
        let start = line_start(src, end);
        if start == 0 || !src[start..end].trim().is_empty() {
            header_end = end;
            break;
        }
        header_end = start;
    }
    let header_start = line_start(src, header_end);
    let line = &src[header_start..header_end];
    let indicator = line.char_indices().find(|&(i, c)| {
        (c == '|' || c == '>') && i > 0 && matches!(line.as_bytes()[i - 1], b' ' | b'\t')
    });
    let Some((i, _)) = indicator else {
        edits.replace(content, enc);
        return;
    };
    let tok_start = header_start + i;
    let tok_end = line[i..]
        .find([' ', '\t'])
        .map_or(header_end, |n| tok_start + n);
    edits.replace(tok_start..tok_end, enc);
    let mut end = content.end;
    while end > content.start && matches!(bytes[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    if header_end < end {
        edits.replace(header_end..end, "");
    }
}

/// Where a YAML document ends: the next `---`/`...` line after its root, or
/// the end of the file.
fn yaml_doc_end(src: &str, root: &Node) -> usize {
    let mut at = line_end_incl(src, (root.span.end.offset as usize).saturating_sub(1));
    while at < src.len() {
        let rest = &src[at..];
        if rest.starts_with("---") || rest.starts_with("...") {
            let after = rest.as_bytes().get(3);
            if after.is_none_or(u8::is_ascii_whitespace) {
                return at;
            }
        }
        at = line_end_incl(src, at);
    }
    src.len()
}

fn json_indent(src: &str, root: &Node) -> String {
    root.entries()
        .next()
        .map(|e| {
            let start = line_start(src, e.key.span.start.offset as usize);
            src[start..e.key.span.start.offset as usize].to_owned()
        })
        .filter(|s| !s.is_empty() && s.chars().all(|c| c == ' ' || c == '\t'))
        .unwrap_or_else(|| "\t".into())
}

fn append_metadata(file: &SopsFile<'_>, m: &NewMetadata, edits: &mut Edits) {
    let src = file.source();
    match file.format() {
        Format::Dotenv => {
            let sep = if src.is_empty() || src.ends_with('\n') {
                ""
            } else {
                "\n"
            };
            edits.insert(src.len(), format!("{sep}{}", m.to_dotenv()));
        }
        Format::Yaml => {
            for doc in file.documents() {
                let at = yaml_doc_end(src, &doc.root);
                let sep = if at == 0 || src[..at].ends_with('\n') {
                    ""
                } else {
                    "\n"
                };
                let base = doc.root.span.start.col.saturating_sub(1) as usize;
                let block = m.to_yaml(base, crate::tree::indent_unit(&doc.root));
                // `to_yaml` indents the first line already.
                edits.insert(at, format!("{sep}{block}"));
            }
        }
        Format::Json | Format::Binary => {
            let Some(doc) = file.documents().first() else {
                return;
            };
            let indent = json_indent(src, &doc.root);
            let Some(close) = src.rfind('}') else { return };
            let mut at = close;
            while at > 0 && src.as_bytes()[at - 1].is_ascii_whitespace() {
                at -= 1;
            }
            let comma = if doc.root.entries().next().is_some() {
                ","
            } else {
                ""
            };
            let tail = if src[at..close].contains('\n') {
                ""
            } else {
                "\n"
            };
            edits.insert(
                at,
                format!("{comma}\n{indent}\"sops\": {}{tail}", m.to_json(&indent, 1)),
            );
        }
    }
}

/// Re-encrypt the data key to a new set of recipients (`sops updatekeys`).
/// The values, the MAC and `lastmodified` stay as they are. The MAC is
/// verified first, so a tampered file is never re-keyed. `Ok(None)` when the
/// file already has exactly these recipients.
pub fn update_keys(
    file: &SopsFile<'_>,
    ids: &AgeIdentities,
    key_groups: &[Vec<String>],
    shamir_threshold: Option<usize>,
) -> Result<Option<String>, Error> {
    let (meta, _) = checked_metadata(file)?;
    let current: Vec<Vec<&str>> = meta
        .key_groups
        .iter()
        .map(|g| {
            let mut v: Vec<&str> = g.age.iter().map(|a| a.recipient.value.as_str()).collect();
            v.sort_unstable();
            v
        })
        .collect();
    let wanted: Vec<Vec<&str>> = key_groups
        .iter()
        .map(|g| {
            let mut v: Vec<&str> = g.iter().map(|s| s.trim()).collect();
            v.sort_unstable();
            v
        })
        .collect();
    let others = meta.key_groups.iter().any(|g| !g.other.is_empty());
    if current == wanted
        && !others
        && (key_groups.len() < 2 || meta.shamir_threshold == shamir_threshold)
    {
        return Ok(None);
    }
    decrypt(file, ids)?;
    let key = data_key(file, meta, ids)?;
    let groups = wrap_key(file.path(), &key, key_groups, shamir_threshold)?;
    let m = NewMetadata {
        shamir_threshold: (groups.len() > 1).then(|| shamir_threshold.unwrap_or(groups.len())),
        groups,
        lastmodified: meta
            .lastmodified
            .as_ref()
            .map(|f| f.value.clone())
            .unwrap_or_default(),
        mac: meta
            .mac
            .as_ref()
            .map(|f| f.value.clone())
            .unwrap_or_default(),
        selectors: meta.selectors.clone(),
        version: meta
            .version
            .as_ref()
            .map_or_else(|| WRITTEN_VERSION.into(), |f| f.value.clone()),
    };
    let src = file.source();
    let mut edits = Edits::default();
    replace_metadata(file, meta, &m, &mut edits);
    edits
        .apply(src)
        .map(Some)
        .map_err(|r| overlap_error(file, &r))
}

fn replace_metadata(file: &SopsFile<'_>, _old: &Metadata, m: &NewMetadata, edits: &mut Edits) {
    let src = file.source();
    match file.format() {
        Format::Dotenv => {
            for r in file.dotenv_meta_lines() {
                edits.replace(r.clone(), "");
            }
            let sep = if src.is_empty() || src.ends_with('\n') {
                ""
            } else {
                "\n"
            };
            edits.insert(src.len(), format!("{sep}{}", m.to_dotenv()));
        }
        Format::Yaml => {
            for (i, doc) in file.documents().iter().enumerate() {
                if let Some(e) = file.sops_entry(i) {
                    let start = line_start(src, e.key.span.start.offset as usize);
                    let end =
                        line_end_incl(src, e.value.span.end.offset.saturating_sub(1) as usize);
                    let base = e.key.span.start.col.saturating_sub(1) as usize;
                    let unit = (e.value.span.start.col.saturating_sub(e.key.span.start.col)
                        as usize)
                        .clamp(2, 8);
                    let _ = doc;
                    edits.replace(start..end, m.to_yaml(base, unit));
                }
            }
        }
        Format::Json | Format::Binary => {
            let Some(doc) = file.documents().first() else {
                return;
            };
            let Some(e) = doc.root.entries().find(|e| e.key.as_str() == Some("sops")) else {
                return;
            };
            let indent = json_indent(src, &doc.root);
            let bytes = src.as_bytes();
            let mut end = e.value.span.end.offset as usize;
            while end < bytes.len() && bytes[end].is_ascii_whitespace() {
                end += 1;
            }
            if bytes.get(end) == Some(&b'}') {
                end += 1;
            }
            edits.replace(
                e.value.span.start.offset as usize..end,
                m.to_json(&indent, 1),
            );
        }
    }
}
