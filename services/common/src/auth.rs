//! Bearer-token authentication errors and extraction shared by HTTP and gRPC.

use crate::jwt::{JwtError, MAX_TOKEN_BYTES};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("authorization is not a bearer token")]
    NotBearer,
    #[error(transparent)]
    Invalid(#[from] JwtError),
    #[error("token is not a {0} token")]
    WrongUse(&'static str),
    #[error("token lacks the required scope {required}")]
    InsufficientScope { required: String },
    #[error("signing keys are not available yet")]
    KeysUnavailable,
}

impl AuthError {
    /// True when the caller is authenticated but not authorized here: the
    /// token lacks the scope, or is genuine but meant for another service
    /// (AC puts a service in `aud` only for the scopes spent there, so for
    /// its tokens the two are the same refusal).
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            Self::InsufficientScope { .. } | Self::Invalid(JwtError::WrongAudience(_))
        )
    }

    /// 401 vs 403 vs 503: which HTTP status the error maps to.
    pub fn http_status(&self) -> u16 {
        match self {
            e if e.is_forbidden() => 403,
            Self::KeysUnavailable => 503,
            _ => 401,
        }
    }

    /// The RFC 6750 error code.
    pub fn oauth_code(&self) -> &'static str {
        match self {
            e if e.is_forbidden() => "insufficient_scope",
            Self::KeysUnavailable => "temporarily_unavailable",
            Self::Missing | Self::NotBearer => "invalid_request",
            _ => "invalid_token",
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value, size-checked.
pub fn bearer(value: &str) -> Result<&str, AuthError> {
    let value = value.trim();
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::NotBearer);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::Invalid(JwtError::TooLarge { len: token.len() }));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer("Bearer abc"), Ok("abc"));
        assert_eq!(bearer("bearer  abc "), Ok("abc"));
        assert_eq!(bearer("Basic abc"), Err(AuthError::NotBearer));
        assert_eq!(bearer("Bearer "), Err(AuthError::NotBearer));
        assert_eq!(bearer("Bearer  "), Err(AuthError::NotBearer));
        let big = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        assert!(matches!(
            bearer(&big),
            Err(AuthError::Invalid(JwtError::TooLarge { .. }))
        ));
    }

    #[test]
    fn status_mapping() {
        assert_eq!(AuthError::Missing.http_status(), 401);
        assert_eq!(
            AuthError::InsufficientScope {
                required: "x".into()
            }
            .http_status(),
            403
        );
        assert_eq!(
            AuthError::Invalid(JwtError::Expired).oauth_code(),
            "invalid_token"
        );
        let elsewhere = AuthError::Invalid(JwtError::WrongAudience("ac-service".into()));
        assert_eq!(elsewhere.http_status(), 403);
        assert_eq!(elsewhere.oauth_code(), "insufficient_scope");
        let other_issuer = AuthError::Invalid(JwtError::WrongIssuer);
        assert_eq!(other_issuer.http_status(), 401);
        assert_eq!(other_issuer.oauth_code(), "invalid_token");
    }
}
