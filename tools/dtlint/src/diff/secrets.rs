//! Encrypted SOPS values in a diff: masked, and with a key compared by a
//! digest of what they hide.

use serde_json::Value as Json;

use crate::engine::Prepared;

/// Encrypted values by their ciphertext, each as `<encrypted:DIGEST>`: a
/// digest of the plaintext under a key drawn for this run, so the two
/// sides compare by what they hide while neither the output nor a later run
/// can tell what that is. Only the files that decrypted (a key was given
/// and the MAC holds) are in it.
pub(super) type Sealed = std::collections::HashMap<String, String>;

pub(super) fn sealed(p: &Prepared, key: &[u8; 32]) -> Sealed {
    fn walk(n: &dtlint_sops::PlainNode, text: &str, key: &[u8; 32], out: &mut Sealed) {
        match &n.value {
            dtlint_sops::PlainValue::Scalar {
                value,
                encrypted: true,
            } => {
                let written = text
                    .get(n.span.start.offset as usize..n.span.end.offset as usize)
                    .unwrap_or("")
                    .trim_matches(['"', '\'']);
                let mut h = <sha2::Sha256 as sha2::Digest>::new();
                sha2::Digest::update(&mut h, key);
                sha2::Digest::update(&mut h, format!("{value:?}").as_bytes());
                let digest = hex::encode(&sha2::Digest::finalize(h)[..8]);
                out.insert(written.to_string(), format!("<encrypted:{digest}>"));
            }
            dtlint_sops::PlainValue::Sequence(items) => {
                for i in items {
                    walk(i, text, key, out);
                }
            }
            dtlint_sops::PlainValue::Mapping(entries) => {
                for e in entries {
                    walk(&e.value, text, key, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Sealed::new();
    for (id, f) in p.ws.sources.iter() {
        if let Some(plain) = p.sops.entry(id).and_then(|e| e.plain()) {
            for doc in &plain.documents {
                walk(doc, &f.text, key, &mut out);
            }
        }
    }
    out
}

/// Replace encrypted values (by their sealed digest when known) and drop
/// SOPS metadata.
pub(super) fn mask(v: &mut Json, sealed: &Sealed) {
    match v {
        Json::String(s) if s.starts_with("ENC[") => {
            *s = sealed
                .get(s.as_str())
                .cloned()
                .unwrap_or_else(|| "<encrypted>".into());
        }
        Json::Array(items) => items.iter_mut().for_each(|i| mask(i, sealed)),
        Json::Object(map) => {
            map.remove("sops");
            map.values_mut().for_each(|i| mask(i, sealed));
        }
        _ => {}
    }
}
