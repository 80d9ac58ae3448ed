//! Ed25519 JWTs (JWS compact serialization, `alg = EdDSA`) and JWKs.
//!
//! Dark Tower signs every token with Ed25519 and nothing else, so this
//! module implements exactly that profile rather than a general JOSE
//! library: the header must be `{"alg":"EdDSA","typ":"JWT","kid":...}`,
//! any other `alg` (including `none`) is refused before a key is looked up,
//! signatures are checked with `verify_strict` (no malleable or small-order
//! keys), and tokens over [`MAX_TOKEN_BYTES`] are refused before decoding.
//! Claims are only parsed after the signature verifies, and then `iss` must
//! be [`ISSUER`], `aud` must name the verifying service, and `exp` and `nbf`
//! must both be present and hold within [`LEEWAY_SECONDS`].
//!
//! The issuer is one fixed name rather than something per cluster: each
//! cluster's AC signs with its own keys and every verifier trusts only its
//! own cluster's JWKS, so the keys already tell clusters apart, and the
//! verifiers need no extra configuration to know what `iss` to expect.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Largest token accepted anywhere (header, form field, metadata).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The only algorithm we sign or accept.
pub const ALG: &str = "EdDSA";
/// Clock skew tolerated on `exp`, `iat` and `nbf`.
pub const LEEWAY_SECONDS: i64 = 30;
/// The `iss` of every token AC issues and the only one accepted.
pub const ISSUER: &str = "ac-service";

/// The `aud` values: the service a token is meant for.
pub mod audience {
    pub const AC: &str = "ac-service";
    pub const GC: &str = "global-controller";
    pub const MC: &str = "meeting-controller";
    pub const MH: &str = "media-handler";
    /// A meeting token is presented to the meeting controller (signaling)
    /// and to the media handlers (media).
    pub const MEETING: [&str; 2] = [MC, MH];
}

/// The service a scope is spent at, if it is one of Dark Tower's.
pub fn audience_of_scope(scope: &str) -> Option<&'static str> {
    match scope {
        "service.write.gc" | "meeting:create" | "meeting:join" => Some(audience::GC),
        "service.write.mc" => Some(audience::MC),
        "service.write.mh" => Some(audience::MH),
        "internal:meeting-token" => Some(audience::AC),
        _ => None,
    }
}

/// The `aud` of a service token granting `scopes` (space-separated): every
/// service one of the scopes is spent at, each once, in scope order.
pub fn audiences_for_scopes(scopes: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for aud in scopes.split(' ').filter_map(audience_of_scope) {
        if !out.iter().any(|a| a == aud) {
            out.push(aud.to_owned());
        }
    }
    out
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("token is {len} bytes, more than the {MAX_TOKEN_BYTES} allowed")]
    TooLarge { len: usize },
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    #[error("token algorithm {0:?} is not accepted (only EdDSA)")]
    UnsupportedAlgorithm(String),
    #[error("token header has no kid")]
    MissingKid,
    #[error("token was signed by an unknown key")]
    UnknownKey,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token was not issued by {ISSUER}")]
    WrongIssuer,
    #[error("token is not meant for {0}")]
    WrongAudience(String),
    #[error("token claims are invalid: {0}")]
    InvalidClaims(String),
    #[error("token cannot be encoded: {0}")]
    Encoding(String),
}

/// The JOSE header we emit and require.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

/// What a token is for; a meeting token can never pass as a service token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenUse {
    Service,
    Meeting,
}

/// Claims of a service (client-credentials) token, per the SPEC wire
/// contract: `sub`, `iat`, `exp`, `scope` (space-separated), `service_type`;
/// plus `iss`, `aud` and `nbf`, which every verifier requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceClaims {
    pub iss: String,
    pub sub: String,
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    pub scope: String,
    pub service_type: String,
    pub token_use: TokenUse,
}

impl ServiceClaims {
    pub fn has_scope(&self, wanted: &str) -> bool {
        self.scope.split(' ').any(|s| s == wanted)
    }
}

/// Claims of a meeting token: lets participant `sub` join `meeting_id` at
/// meeting controller `mc_id` and attach to the media handlers `mh_ids`.
/// MC and MH use `sub` as the participant id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingClaims {
    pub iss: String,
    pub sub: String,
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    pub meeting_id: String,
    #[serde(default)]
    pub mc_id: String,
    #[serde(default)]
    pub mh_ids: Vec<String>,
    pub token_use: TokenUse,
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Signs `claims` as a compact JWS with the given key id.
pub fn encode<C: Serialize>(claims: &C, kid: &str, key: &SigningKey) -> Result<String, JwtError> {
    let header = Header {
        alg: ALG.to_owned(),
        typ: Some("JWT".to_owned()),
        kid: Some(kid.to_owned()),
    };
    let header = serde_json::to_vec(&header).map_err(|e| JwtError::Encoding(e.to_string()))?;
    let claims = serde_json::to_vec(claims).map_err(|e| JwtError::Encoding(e.to_string()))?;
    let mut token = String::with_capacity(256);
    token.push_str(&URL_SAFE_NO_PAD.encode(header));
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(claims));
    let signature = key.sign(token.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature.to_bytes()));
    Ok(token)
}

struct Parts<'a> {
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
    header: Header,
}

fn split(token: &str) -> Result<Parts<'_>, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::TooLarge { len: token.len() });
    }
    let mut it = token.split('.');
    let (Some(header_b64), Some(payload), Some(signature), None) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Err(JwtError::Malformed("expected three dot-separated parts"));
    };
    let header_bytes = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| JwtError::Malformed("header is not base64url"))?;
    let header: Header = serde_json::from_slice(&header_bytes)
        .map_err(|_| JwtError::Malformed("header is not a JSON object"))?;
    if header.alg != ALG {
        return Err(JwtError::UnsupportedAlgorithm(header.alg));
    }
    if let Some(typ) = &header.typ
        && !typ.eq_ignore_ascii_case("JWT")
    {
        return Err(JwtError::Malformed("typ is not JWT"));
    }
    let signing_input = &token[..header_b64.len() + 1 + payload.len()];
    Ok(Parts {
        signing_input,
        payload,
        signature,
        header,
    })
}

/// Checks size, shape and algorithm and returns the key id, without
/// verifying anything else: used to pick the key.
pub fn key_id(token: &str) -> Result<String, JwtError> {
    split(token)?.header.kid.ok_or(JwtError::MissingKid)
}

/// RFC 7519 §4.1.3: `aud` is one string or an array of strings.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// The registered claims every token must carry, checked before the
/// token's own claims are parsed.
#[derive(Deserialize)]
struct RegisteredClaims {
    iss: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    aud: Vec<String>,
    exp: Option<i64>,
    iat: Option<i64>,
    nbf: Option<i64>,
}

/// Verifies the signature with `key`, then the registered claims: `iss` is
/// [`ISSUER`], `aud` names `audience`, and `exp` and `nbf` (both mandatory)
/// hold at `now` within the leeway; then parses the claims.
pub fn verify<C: DeserializeOwned>(
    token: &str,
    key: &VerifyingKey,
    now: i64,
    audience: &str,
) -> Result<C, JwtError> {
    let parts = split(token)?;
    let signature = URL_SAFE_NO_PAD
        .decode(parts.signature)
        .map_err(|_| JwtError::Malformed("signature is not base64url"))?;
    let signature =
        Signature::from_slice(&signature).map_err(|_| JwtError::Malformed("signature length"))?;
    key.verify_strict(parts.signing_input.as_bytes(), &signature)
        .map_err(|_| JwtError::BadSignature)?;
    let payload = URL_SAFE_NO_PAD
        .decode(parts.payload)
        .map_err(|_| JwtError::Malformed("payload is not base64url"))?;
    let registered: RegisteredClaims = serde_json::from_slice(&payload)
        .map_err(|e| JwtError::InvalidClaims(format!("registered claims: {e}")))?;
    let missing = |name: &str| JwtError::InvalidClaims(format!("{name} is missing"));
    let iss = registered.iss.ok_or_else(|| missing("iss"))?;
    if registered.aud.is_empty() {
        return Err(missing("aud"));
    }
    let exp = registered.exp.ok_or_else(|| missing("exp"))?;
    let nbf = registered.nbf.ok_or_else(|| missing("nbf"))?;
    if iss != ISSUER {
        return Err(JwtError::WrongIssuer);
    }
    if !registered.aud.iter().any(|a| a == audience) {
        return Err(JwtError::WrongAudience(audience.to_owned()));
    }
    if now > exp.saturating_add(LEEWAY_SECONDS) {
        return Err(JwtError::Expired);
    }
    if nbf > now.saturating_add(LEEWAY_SECONDS) {
        return Err(JwtError::NotYetValid);
    }
    if let Some(iat) = registered.iat
        && iat > now.saturating_add(LEEWAY_SECONDS)
    {
        return Err(JwtError::NotYetValid);
    }
    serde_json::from_slice(&payload).map_err(|e| JwtError::InvalidClaims(e.to_string()))
}

/// One public key as published at `/.well-known/jwks.json` (RFC 8037 OKP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

impl Jwk {
    pub fn from_verifying_key(kid: &str, key: &VerifyingKey) -> Self {
        Self {
            kty: "OKP".to_owned(),
            crv: Some("Ed25519".to_owned()),
            x: Some(URL_SAFE_NO_PAD.encode(key.as_bytes())),
            kid: Some(kid.to_owned()),
            alg: Some(ALG.to_owned()),
            use_: Some("sig".to_owned()),
        }
    }

    /// The Ed25519 key, if this JWK is one we may use for verification.
    pub fn to_verifying_key(&self) -> Result<VerifyingKey, &'static str> {
        if self.kty != "OKP" || self.crv.as_deref() != Some("Ed25519") {
            return Err("not an Ed25519 OKP key");
        }
        if self.alg.as_deref().is_some_and(|a| a != ALG) {
            return Err("alg is not EdDSA");
        }
        if self.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err("use is not sig");
        }
        let x = self.x.as_deref().ok_or("x is missing")?;
        let bytes = URL_SAFE_NO_PAD
            .decode(x)
            .map_err(|_| "x is not base64url")?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| "x is not 32 bytes")?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| "x is not a valid Ed25519 point")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    const AUD: &str = audience::MC;

    fn claims(now: i64, exp_in: i64) -> ServiceClaims {
        ServiceClaims {
            iss: ISSUER.into(),
            sub: "global-controller".into(),
            aud: vec![audience::AC.into(), audience::MC.into()],
            iat: now,
            nbf: now,
            exp: now + exp_in,
            jti: "j".into(),
            scope: "internal:meeting-token service.write.mc".into(),
            service_type: "global-controller".into(),
            token_use: TokenUse::Service,
        }
    }

    #[test]
    fn round_trip_and_header_shape() {
        let k = key(1);
        let now = now_unix();
        let token = encode(&claims(now, 60), "k1", &k).unwrap();
        let header_b64 = token.split('.').next().unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).unwrap()).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"})
        );
        assert_eq!(key_id(&token).unwrap(), "k1");
        let back: ServiceClaims = verify(&token, &k.verifying_key(), now, AUD).unwrap();
        assert_eq!(back, claims(now, 60));
        assert!(back.has_scope("service.write.mc"));
        assert!(!back.has_scope("service.write"));
    }

    #[test]
    fn wrong_key_is_refused() {
        let now = now_unix();
        let token = encode(&claims(now, 60), "k1", &key(1)).unwrap();
        assert_eq!(
            verify::<ServiceClaims>(&token, &key(2).verifying_key(), now, AUD),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn tampered_payload_is_refused() {
        let now = now_unix();
        let k = key(1);
        let token = encode(&claims(now, 60), "k1", &k).unwrap();
        let mut forged = claims(now, 60);
        forged.scope = "meeting:create".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let parts: Vec<_> = token.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(
            verify::<ServiceClaims>(&tampered, &k.verifying_key(), now, AUD),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn alg_none_and_others_are_refused_before_keys() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"exp":99999999999}"#);
        let token = format!("{header}.{payload}.");
        assert_eq!(
            key_id(&token),
            Err(JwtError::UnsupportedAlgorithm("none".into()))
        );
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","kid":"k1"}"#);
        assert!(matches!(
            key_id(&format!("{header}.{payload}.xx")),
            Err(JwtError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn expired_and_future_tokens_are_refused() {
        let k = key(1);
        let now = now_unix();
        let expired = encode(&claims(now - 3600, 60), "k1", &k).unwrap();
        assert_eq!(
            verify::<ServiceClaims>(&expired, &k.verifying_key(), now, AUD),
            Err(JwtError::Expired)
        );
        let future = encode(&claims(now + 3600, 60), "k1", &k).unwrap();
        assert_eq!(
            verify::<ServiceClaims>(&future, &k.verifying_key(), now, AUD),
            Err(JwtError::NotYetValid)
        );
        // Within the leeway is fine.
        let edge = encode(&claims(now - 70, 60), "k1", &k).unwrap();
        assert!(verify::<ServiceClaims>(&edge, &k.verifying_key(), now, AUD).is_ok());
    }

    #[test]
    fn missing_registered_claims_are_refused() {
        let k = key(1);
        let now = now_unix();
        let full = serde_json::to_value(claims(now, 60)).unwrap();
        for name in ["iss", "aud", "exp", "nbf"] {
            let mut partial = full.clone();
            partial.as_object_mut().unwrap().remove(name);
            let token = encode(&partial, "k1", &k).unwrap();
            assert_eq!(
                verify::<serde_json::Value>(&token, &k.verifying_key(), now, AUD),
                Err(JwtError::InvalidClaims(format!("{name} is missing"))),
                "{name}"
            );
        }
        let mut empty_aud = full;
        empty_aud["aud"] = serde_json::json!([]);
        let token = encode(&empty_aud, "k1", &k).unwrap();
        assert_eq!(
            verify::<serde_json::Value>(&token, &k.verifying_key(), now, AUD),
            Err(JwtError::InvalidClaims("aud is missing".into()))
        );
    }

    #[test]
    fn wrong_issuer_is_refused() {
        let k = key(1);
        let now = now_unix();
        for iss in ["ac-service.other-cluster", "", "https://evil.example"] {
            let mut c = claims(now, 60);
            c.iss = iss.into();
            let token = encode(&c, "k1", &k).unwrap();
            assert_eq!(
                verify::<ServiceClaims>(&token, &k.verifying_key(), now, AUD),
                Err(JwtError::WrongIssuer),
                "{iss:?}"
            );
        }
    }

    #[test]
    fn wrong_audience_is_refused_and_a_single_string_aud_is_read() {
        let k = key(1);
        let now = now_unix();
        let token = encode(&claims(now, 60), "k1", &k).unwrap();
        assert_eq!(
            verify::<ServiceClaims>(&token, &k.verifying_key(), now, audience::MH),
            Err(JwtError::WrongAudience(audience::MH.into()))
        );
        let mut single = serde_json::to_value(claims(now, 60)).unwrap();
        single["aud"] = serde_json::json!(audience::MH);
        let token = encode(&single, "k1", &k).unwrap();
        let back: ServiceClaims = verify(&token, &k.verifying_key(), now, audience::MH).unwrap();
        assert_eq!(back.aud, vec![audience::MH.to_owned()]);
        assert_eq!(
            verify::<ServiceClaims>(&token, &k.verifying_key(), now, AUD),
            Err(JwtError::WrongAudience(AUD.into()))
        );
    }

    #[test]
    fn future_nbf_is_refused_beyond_the_leeway() {
        let k = key(1);
        let now = now_unix();
        let mut c = claims(now, 600);
        c.nbf = now + LEEWAY_SECONDS + 5;
        let token = encode(&c, "k1", &k).unwrap();
        assert_eq!(
            verify::<ServiceClaims>(&token, &k.verifying_key(), now, AUD),
            Err(JwtError::NotYetValid)
        );
        c.nbf = now + LEEWAY_SECONDS - 5;
        let token = encode(&c, "k1", &k).unwrap();
        assert!(verify::<ServiceClaims>(&token, &k.verifying_key(), now, AUD).is_ok());
    }

    #[test]
    fn alg_none_with_valid_claims_is_refused_by_verify() {
        let k = key(1);
        let now = now_unix();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(now, 60)).unwrap());
        let token = format!("{header}.{payload}.");
        assert_eq!(
            verify::<ServiceClaims>(&token, &k.verifying_key(), now, AUD),
            Err(JwtError::UnsupportedAlgorithm("none".into()))
        );
    }

    #[test]
    fn audiences_follow_the_scopes() {
        assert_eq!(
            audiences_for_scopes("service.write.gc service.write.mh meeting:join"),
            vec![audience::GC.to_owned(), audience::MH.to_owned()]
        );
        assert_eq!(
            audiences_for_scopes("internal:meeting-token service.write.mc"),
            vec![audience::AC.to_owned(), audience::MC.to_owned()]
        );
        assert!(audiences_for_scopes("something:else").is_empty());
    }

    #[test]
    fn oversized_and_malformed_tokens_are_refused() {
        let big = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(
            key_id(&big),
            Err(JwtError::TooLarge {
                len: MAX_TOKEN_BYTES + 1
            })
        );
        assert!(matches!(key_id("abc"), Err(JwtError::Malformed(_))));
        assert!(matches!(key_id("a.b.c.d"), Err(JwtError::Malformed(_))));
        assert!(matches!(key_id("!!.b.c"), Err(JwtError::Malformed(_))));
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","typ":"JWT"}"#);
        assert_eq!(
            key_id(&format!("{header}.e30.AA")),
            Err(JwtError::MissingKid)
        );
    }

    #[test]
    fn meeting_token_is_not_a_service_token() {
        let k = key(1);
        let now = now_unix();
        let meeting = MeetingClaims {
            iss: ISSUER.into(),
            sub: "p1".into(),
            aud: audience::MEETING.map(str::to_owned).to_vec(),
            iat: now,
            nbf: now,
            exp: now + 60,
            jti: "j".into(),
            meeting_id: "m".into(),
            mc_id: "mc".into(),
            mh_ids: vec!["mh".into()],
            token_use: TokenUse::Meeting,
        };
        let token = encode(&meeting, "k1", &k).unwrap();
        assert!(matches!(
            verify::<ServiceClaims>(&token, &k.verifying_key(), now, AUD),
            Err(JwtError::InvalidClaims(_))
        ));
        let back: MeetingClaims = verify(&token, &k.verifying_key(), now, AUD).unwrap();
        assert_eq!(back, meeting);
    }

    #[test]
    fn jwk_round_trip_and_rejections() {
        let k = key(3);
        let jwk = Jwk::from_verifying_key("k3", &k.verifying_key());
        let json = serde_json::to_value(&jwk).unwrap();
        assert_eq!(json["kty"], "OKP");
        assert_eq!(json["crv"], "Ed25519");
        assert_eq!(json["use"], "sig");
        assert_eq!(json["alg"], "EdDSA");
        assert_eq!(jwk.to_verifying_key().unwrap(), k.verifying_key());
        let mut rsa = jwk.clone();
        rsa.kty = "RSA".into();
        assert!(rsa.to_verifying_key().is_err());
        let mut short = jwk;
        short.x = Some(URL_SAFE_NO_PAD.encode([1u8; 31]));
        assert!(short.to_verifying_key().is_err());
    }
}
