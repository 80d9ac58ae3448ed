//! sops's value cipher: AES-256-GCM with a 32-byte IV, the key path as
//! associated data, and the `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` text
//! form.

use aes_gcm::AesGcm;
use aes_gcm::aead::consts::{U12, U32};
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use age::secrecy::zeroize::Zeroizing;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore as _;

use crate::value::{Plain, go_atoi, go_parse_bool, go_parse_float};

/// The prefix every sops-encrypted value starts with.
pub const ENC_PREFIX: &str = "ENC[AES256_GCM,";

const TAG_LEN: usize = 16;

/// A 256-bit sops data key; wiped from memory when dropped.
#[derive(Clone)]
pub(crate) struct DataKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    pub(crate) fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut *key);
        Self(key)
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(Self(Zeroizing::new(arr)))
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A parsed `ENC[...]` value.
#[derive(Debug)]
pub(crate) struct EncValue<'a> {
    data: Vec<u8>,
    iv: Vec<u8>,
    tag: Vec<u8>,
    pub(crate) ty: &'a str,
}

/// True when `s` claims to be a sops-encrypted value.
pub(crate) fn looks_encrypted(s: &str) -> bool {
    s.starts_with("ENC[")
}

/// Parse the `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` form.
pub(crate) fn parse_enc(s: &str) -> Result<EncValue<'_>, String> {
    let body = s
        .strip_prefix("ENC[AES256_GCM,data:")
        .and_then(|b| b.strip_suffix(']'))
        .ok_or_else(|| "expected `ENC[AES256_GCM,data:...,iv:...,tag:...,type:...]`".to_string())?;
    let (data, rest) = body.split_once(",iv:").ok_or("missing `iv:`")?;
    let (iv, rest) = rest.split_once(",tag:").ok_or("missing `tag:`")?;
    let (tag, ty) = rest.split_once(",type:").ok_or("missing `type:`")?;
    let decode = |what: &str, v: &str| {
        B64.decode(v)
            .map_err(|e| format!("`{what}` is not valid base64: {e}"))
    };
    let v = EncValue {
        data: decode("data", data)?,
        iv: decode("iv", iv)?,
        tag: decode("tag", tag)?,
        ty,
    };
    if v.tag.len() != TAG_LEN {
        return Err(format!(
            "`tag` is {} bytes, expected {TAG_LEN}",
            v.tag.len()
        ));
    }
    if v.iv.len() != 32 && v.iv.len() != 12 {
        return Err(format!("`iv` is {} bytes, expected 32", v.iv.len()));
    }
    if !matches!(
        ty,
        "str" | "int" | "int64" | "float" | "bool" | "bytes" | "comment"
    ) {
        return Err(format!("unknown value type `{ty}`"));
    }
    Ok(v)
}

/// Why a value did not decrypt.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The tag did not verify.
    Auth,
    /// The plaintext is not a valid value of its `type:`.
    BadType(String),
    /// A `str` value is not UTF-8.
    NotUtf8,
}

/// A decrypted value: a scalar or a comment's text.
#[derive(Debug)]
pub(crate) enum Opened {
    Value(Plain),
    Comment(String),
}

fn seal_raw(key: &DataKey, iv: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let cipher = AesGcm::<Aes256, U32>::new(GenericArray::from_slice(key.bytes()));
    // Encryption with a valid key and nonce size cannot fail for inputs
    // below GCM's 64 GiB limit; an empty result would fail to decrypt.
    cipher
        .encrypt(
            GenericArray::from_slice(iv),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .unwrap_or_default()
}

fn open_raw(key: &DataKey, v: &EncValue<'_>, aad: &[u8]) -> Result<Vec<u8>, OpenError> {
    let mut msg = Vec::with_capacity(v.data.len() + TAG_LEN);
    msg.extend_from_slice(&v.data);
    msg.extend_from_slice(&v.tag);
    let payload = Payload { msg: &msg, aad };
    let out = match v.iv.len() {
        32 => AesGcm::<Aes256, U32>::new(GenericArray::from_slice(key.bytes()))
            .decrypt(GenericArray::from_slice(&v.iv), payload),
        12 => AesGcm::<Aes256, U12>::new(GenericArray::from_slice(key.bytes()))
            .decrypt(GenericArray::from_slice(&v.iv), payload),
        _ => return Err(OpenError::Auth),
    };
    out.map_err(|_| OpenError::Auth)
}

/// Encrypt `plaintext` (already in sops's byte form) as an `ENC[...]` string.
pub(crate) fn seal(key: &DataKey, plaintext: &[u8], aad: &str, ty: &str) -> String {
    let mut iv = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut iv);
    let out = seal_raw(key, &iv, plaintext, aad.as_bytes());
    let (data, tag) = out.split_at(out.len().saturating_sub(TAG_LEN));
    format!(
        "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{ty}]",
        B64.encode(data),
        B64.encode(iv),
        B64.encode(tag)
    )
}

/// Encrypt a typed value the way sops does.
pub(crate) fn seal_value(key: &DataKey, value: &Plain, aad: &str) -> String {
    seal(key, &value.to_bytes(), aad, value.type_name())
}

/// Decrypt and type a parsed value.
pub(crate) fn open(key: &DataKey, v: &EncValue<'_>, aad: &str) -> Result<Opened, OpenError> {
    open_with(key, v, aad, false)
}

/// Like [`open`]; with `raw_strings`, a `str` that is not UTF-8 comes back as
/// bytes (binary files hold arbitrary bytes in a `str` value, as Go allows).
pub(crate) fn open_with(
    key: &DataKey,
    v: &EncValue<'_>,
    aad: &str,
    raw_strings: bool,
) -> Result<Opened, OpenError> {
    let bytes = open_raw(key, v, aad.as_bytes())?;
    if raw_strings && v.ty == "str" && std::str::from_utf8(&bytes).is_err() {
        return Ok(Opened::Value(Plain::Bytes(bytes)));
    }
    let text = || String::from_utf8(bytes.clone()).map_err(|_| OpenError::NotUtf8);
    let bad = |what: &str| OpenError::BadType(what.to_string());
    Ok(match v.ty {
        "str" => Opened::Value(Plain::Str(text()?)),
        "bytes" => Opened::Value(Plain::Bytes(bytes)),
        "comment" => Opened::Comment(text()?),
        "int" | "int64" => {
            Opened::Value(Plain::Int(go_atoi(&text()?).ok_or_else(|| bad("integer"))?))
        }
        "float" => Opened::Value(Plain::Float(
            go_parse_float(&text()?).ok_or_else(|| bad("float"))?,
        )),
        "bool" => Opened::Value(Plain::Bool(
            go_parse_bool(&text()?).ok_or_else(|| bad("boolean"))?,
        )),
        other => return Err(bad(other)),
    })
}

/// Shamir secret sharing over GF(2^8) with the AES polynomial, byte for byte
/// compatible with the `HashiCorp` Vault implementation sops vendors: each
/// share is the secret's length plus one byte, the last byte being the share's
/// x coordinate.
pub(crate) mod shamir {
    use rand::RngCore as _;
    use rand::seq::SliceRandom as _;

    fn mul(mut a: u8, mut b: u8) -> u8 {
        let mut p = 0u8;
        while b != 0 {
            if b & 1 != 0 {
                p ^= a;
            }
            let carry = a & 0x80;
            a <<= 1;
            if carry != 0 {
                a ^= 0x1b;
            }
            b >>= 1;
        }
        p
    }

    fn inv(a: u8) -> u8 {
        // a^254 = a^-1 in GF(2^8).
        let mut result = 1u8;
        let mut base = a;
        let mut e = 254u8;
        while e != 0 {
            if e & 1 != 0 {
                result = mul(result, base);
            }
            base = mul(base, base);
            e >>= 1;
        }
        result
    }

    /// Split `secret` into `parts` shares, any `threshold` of which recover it.
    pub(crate) fn split(secret: &[u8], parts: usize, threshold: usize) -> Option<Vec<Vec<u8>>> {
        if secret.is_empty() || parts < threshold || threshold < 2 || parts > 255 {
            return None;
        }
        let mut rng = rand::rngs::OsRng;
        let mut xs: Vec<u8> = (1..=255).collect();
        xs.shuffle(&mut rng);
        let mut out: Vec<Vec<u8>> = xs[..parts]
            .iter()
            .map(|&x| {
                let mut v = Vec::with_capacity(secret.len() + 1);
                v.resize(secret.len(), 0);
                v.push(x);
                v
            })
            .collect();
        let mut coeffs = vec![0u8; threshold];
        for (i, &byte) in secret.iter().enumerate() {
            coeffs[0] = byte;
            rng.fill_bytes(&mut coeffs[1..]);
            for share in &mut out {
                let x = share[secret.len()];
                // Horner's rule.
                let y = coeffs.iter().rev().fold(0u8, |acc, &c| mul(acc, x) ^ c);
                share[i] = y;
            }
        }
        Some(out)
    }

    /// Recover the secret from shares (Lagrange interpolation at 0).
    pub(crate) fn combine(parts: &[Vec<u8>]) -> Option<Vec<u8>> {
        let first = parts.first()?;
        if parts.len() < 2 || first.len() < 2 || parts.iter().any(|p| p.len() != first.len()) {
            return None;
        }
        let len = first.len() - 1;
        let xs: Vec<u8> = parts.iter().map(|p| p[len]).collect();
        for (i, x) in xs.iter().enumerate() {
            if *x == 0 || xs[..i].contains(x) {
                return None;
            }
        }
        let mut secret = vec![0u8; len];
        for (i, xi) in xs.iter().enumerate() {
            let mut basis = 1u8;
            for (j, xj) in xs.iter().enumerate() {
                if i != j {
                    basis = mul(basis, mul(*xj, inv(xi ^ xj)));
                }
            }
            for (b, out) in secret.iter_mut().enumerate() {
                *out ^= mul(parts[i][b], basis);
            }
        }
        Some(secret)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn field_inverse() {
            for a in 1..=255u8 {
                assert_eq!(mul(a, inv(a)), 1);
            }
        }

        #[test]
        fn any_threshold_subset_recovers_the_secret() {
            let secret: Vec<u8> = (0..32).collect();
            let shares = split(&secret, 3, 2).unwrap();
            assert_eq!(combine(&shares[..2]).unwrap(), secret);
            assert_eq!(combine(&shares[1..]).unwrap(), secret);
            assert_eq!(
                combine(&[shares[0].clone(), shares[2].clone()]).unwrap(),
                secret
            );
            assert_eq!(combine(&shares).unwrap(), secret);
            assert!(combine(&shares[..1]).is_none());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_with_typed_values() {
        let key = DataKey::generate();
        for v in [
            Plain::Str("héllo".into()),
            Plain::Int(-42),
            Plain::Float(1.5),
            Plain::Bool(true),
        ] {
            let enc = seal_value(&key, &v, "data:key:");
            let parsed = parse_enc(&enc).unwrap();
            assert_eq!(parsed.ty, v.type_name());
            match open(&key, &parsed, "data:key:").unwrap() {
                Opened::Value(back) => assert_eq!(back, v),
                Opened::Comment(_) => panic!("not a comment"),
            }
            assert!(matches!(
                open(&key, &parsed, "data:other:"),
                Err(OpenError::Auth)
            ));
        }
    }

    #[test]
    fn malformed_values_are_described() {
        assert!(parse_enc("ENC[AES256_GCM,data:AA==,iv:AA==]").is_err());
        assert!(parse_enc("ENC[AES256_GCM,data:!!,iv:AA==,tag:AA==,type:str]").is_err());
        let key = DataKey::generate();
        let enc = seal(&key, b"x", "a:", "weird");
        assert!(parse_enc(&enc).unwrap_err().contains("unknown value type"));
    }

    #[test]
    fn non_utf8_strings_are_refused() {
        let key = DataKey::generate();
        let enc = seal(&key, &[0xff, 0xfe], "a:", "str");
        let parsed = parse_enc(&enc).unwrap();
        assert!(matches!(open(&key, &parsed, "a:"), Err(OpenError::NotUtf8)));
    }
}
