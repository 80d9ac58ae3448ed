//! ConfigMap and Secret values as the pod receives them, for the rules that
//! judge what a value holds (PEM, certificates, connection URLs).
//!
//! Plaintext values come from the index: source objects, patches and
//! rendered objects alike (the engine maps rendered spans back to the
//! source a human edits). `data` and `binaryData` are base64-decoded.
//! SOPS-encrypted values are skipped where they appear as `ENC[...]` and
//! come instead from the decrypted trees of [`crate::sops_index`], at the
//! span of the encrypted value, when the run had a key; without one they
//! are not judged (the binary says once that decryption was skipped).
//! Empty values are never collected: an empty value left after rendering is
//! `empty-secret-value`'s finding, and a base's empty value is the
//! convention for "filled in by the overlays".

use std::borrow::Cow;

use base64::Engine as _;
use dtlint_sops::{PlainNode, PlainValue};
use dtlint_yaml::{Node, Span};

use crate::config::Config;
use crate::model::{ConfigKind, Index};
use crate::source::FileId;
use crate::workspace::Role;

/// What a value holds once Kubernetes has read it.
#[derive(Debug, Clone)]
pub(crate) enum Content<'a> {
    Bytes(Cow<'a, [u8]>),
    /// A `data` or `binaryData` value that is not base64: the API server
    /// refuses the object.
    NotBase64,
}

/// One non-empty value of a ConfigMap or Secret.
#[derive(Debug, Clone)]
pub(crate) struct ConfigValue<'a> {
    pub kind: ConfigKind,
    /// The object's name.
    pub object: &'a str,
    pub key: &'a str,
    /// `data`, `stringData` or `binaryData`.
    pub field: &'static str,
    /// Where the value is written: the value node (in a rendered build, a
    /// SOPS file or a source file).
    pub file: FileId,
    pub span: Span,
    /// The environment the object belongs to, when it is known from the
    /// build or the file's directory.
    pub env: Option<&'a str>,
    pub content: Content<'a>,
}

impl ConfigValue<'_> {
    /// The bytes, when they could be decoded.
    pub fn bytes(&self) -> Option<&[u8]> {
        match &self.content {
            Content::Bytes(b) => Some(b),
            Content::NotBase64 => None,
        }
    }

    /// The value as text, when it is UTF-8.
    pub fn text(&self) -> Option<&str> {
        self.bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// `data.tls.crt`, as the value's path reads in the object.
    pub fn path(&self) -> String {
        format!("{}.{}", self.field, self.key)
    }

    /// `Secret `name``, for messages.
    pub fn owner(&self) -> String {
        format!("{} `{}`", self.kind.as_str(), self.object)
    }
}

/// The fields of a kind that hold values, and whether they are base64.
fn fields(kind: ConfigKind) -> &'static [(&'static str, bool)] {
    match kind {
        ConfigKind::Secret => &[("data", true), ("stringData", false)],
        ConfigKind::ConfigMap => &[("data", false), ("binaryData", true)],
    }
}

fn config_kind(kind: &str) -> Option<ConfigKind> {
    match kind {
        "Secret" => Some(ConfigKind::Secret),
        "ConfigMap" => Some(ConfigKind::ConfigMap),
        _ => None,
    }
}

/// True for a value sops encrypted, as it appears without a key.
pub(crate) fn is_encrypted(text: &str) -> bool {
    text.starts_with(dtlint_sops::ENC_PREFIX)
}

/// Decode a base64 value the way the API server does (standard alphabet,
/// padded; line breaks are ignored).
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !matches!(c, '\n' | '\r')).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.trim())
        .ok()
}

fn content(bytes: Cow<'_, [u8]>, base64: bool) -> Content<'_> {
    if !base64 {
        return Content::Bytes(bytes);
    }
    match std::str::from_utf8(&bytes).ok().and_then(decode_base64) {
        Some(decoded) => Content::Bytes(Cow::Owned(decoded)),
        None => Content::NotBase64,
    }
}

/// Every non-empty ConfigMap and Secret value of the run: plaintext values
/// of every document in the index, then the decrypted values of every SOPS
/// file the run could decrypt.
pub(crate) fn collect<'a>(index: &'a Index<'a>, config: &'a Config) -> Vec<ConfigValue<'a>> {
    let mut out = Vec::new();
    for r in &index.resources {
        let Some(kind) = config_kind(r.kind) else {
            continue;
        };
        if r.role == Role::Kustomization || !r.group().is_empty() {
            continue;
        }
        for &(field, base64) in fields(kind) {
            for e in r.root.get(field).into_iter().flat_map(Node::entries) {
                let (Some(key), Some(text)) = (e.key.as_str(), e.value.as_str()) else {
                    continue;
                };
                if text.is_empty() || is_encrypted(text) {
                    continue;
                }
                out.push(ConfigValue {
                    kind,
                    object: r.name,
                    key,
                    field,
                    file: r.file,
                    span: e.value.span,
                    env: r.env,
                    content: content(Cow::Borrowed(text.as_bytes()), base64),
                });
            }
        }
    }
    let ws = index.ws;
    for entry in &index.sops.files {
        let Some(plain) = entry.plain() else { continue };
        let env = config.environment_of(&ws.sources.get(entry.id).path);
        for doc in &plain.documents {
            let Some(kind) = doc
                .get("kind")
                .and_then(PlainNode::as_str)
                .and_then(config_kind)
            else {
                continue;
            };
            let object = doc
                .path(&["metadata", "name"])
                .and_then(PlainNode::as_str)
                .unwrap_or("");
            for &(field, base64) in fields(kind) {
                for e in doc.get(field).map_or(&[][..], PlainNode::entries) {
                    let PlainValue::Scalar {
                        value,
                        encrypted: true,
                    } = &e.value.value
                    else {
                        continue;
                    };
                    let bytes = value.to_bytes();
                    if bytes.is_empty() {
                        continue;
                    }
                    out.push(ConfigValue {
                        kind,
                        object,
                        key: &e.key,
                        field,
                        file: entry.id,
                        span: e.value.span,
                        env,
                        content: content(bytes, base64),
                    });
                }
            }
        }
    }
    out
}

/// The decrypted value of the `ENC[...]` node at `span` of `file`: a SOPS
/// file's own node, or a rendered node whose source is one. `None` without
/// a key or when the node is not an encrypted value.
pub(crate) fn decrypted_at<'i>(
    index: &'i Index<'_>,
    file: FileId,
    span: Span,
) -> Option<(FileId, &'i PlainNode)> {
    let (file, span) = if index.rendered_of(file).is_some() {
        crate::render::map_to_source(index.ws, index.render, file, span)?
    } else {
        (file, span)
    };
    let plain = index.sops.entry(file)?.plain()?;
    plain
        .documents
        .iter()
        .find_map(|d| node_at(d, span))
        .map(|n| (file, n))
}

fn node_at(n: &PlainNode, span: Span) -> Option<&PlainNode> {
    if n.span == span && matches!(n.value, PlainValue::Scalar { .. }) {
        return Some(n);
    }
    let inside = n.span.start.offset <= span.start.offset && span.end.offset <= n.span.end.offset;
    if !inside {
        return None;
    }
    match &n.value {
        PlainValue::Mapping(entries) => entries.iter().find_map(|e| node_at(&e.value, span)),
        PlainValue::Sequence(items) => items.iter().find_map(|i| node_at(i, span)),
        PlainValue::Null | PlainValue::Scalar { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::Workspace;

    #[test]
    fn base64_is_decoded_as_the_api_server_does() {
        assert_eq!(decode_base64("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(
            decode_base64("aGVs\nbG8=\n").as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(decode_base64("not base64!"), None);
        assert_eq!(decode_base64("aGVsbG8"), None, "padding is required");
        assert!(matches!(
            content(Cow::Borrowed(&[0xff, 0xfe][..]), true),
            Content::NotBase64
        ));
    }

    #[test]
    fn values_of_sources_are_collected_but_not_empty_or_encrypted_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("s.yaml"),
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: aGVsbG8=\n  bad: '%%%'\nstringData:\n  empty: ''\n  sealed: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\n  url: postgres://h/db\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\n",
        )
        .unwrap();
        let config = Config::dark_tower();
        let ws = Workspace::load(dir.path(), &[dir.path().to_path_buf()], &config).unwrap();
        let index = Index::build(&ws);
        let values = collect(&index, &config);
        let seen: Vec<(String, Option<&str>)> =
            values.iter().map(|v| (v.path(), v.text())).collect();
        assert_eq!(
            seen,
            [
                ("data.tls.crt".to_string(), Some("hello")),
                ("data.bad".to_string(), None),
                ("stringData.url".to_string(), Some("postgres://h/db")),
                ("data.k".to_string(), Some("v")),
            ]
        );
        assert_eq!(values[3].owner(), "ConfigMap `c`");
    }
}
