//! Request bodies read with a size limit and a clear 4xx when they are too
//! large, of the wrong type or malformed: the services answer every bad body
//! with a JSON error instead of axum's plain-text rejections.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("content type must be {expected}")]
    WrongContentType { expected: &'static str },
    #[error("request body is malformed: {0}")]
    Malformed(String),
}

impl BodyError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::WrongContentType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Malformed(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// True when the `Content-Type` header's media type is `expected`
/// (parameters such as `charset` are ignored).
pub fn has_content_type(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(expected))
}

/// Reads the whole body, refusing more than `limit` bytes.
pub async fn read_limited(body: Body, limit: usize) -> Result<axum::body::Bytes, BodyError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| BodyError::TooLarge { limit })
}

/// Reads and parses a JSON body (`Content-Type: application/json`).
pub async fn json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, BodyError> {
    if !has_content_type(headers, "application/json") {
        return Err(BodyError::WrongContentType {
            expected: "application/json",
        });
    }
    let bytes = read_limited(body, limit).await?;
    serde_json::from_slice(&bytes).map_err(|e| BodyError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Req {
        name: String,
    }

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        h
    }

    #[tokio::test]
    async fn parses_and_rejects() {
        let ok: Req = json(
            &headers("application/json; charset=utf-8"),
            Body::from(r#"{"name":"a"}"#),
            100,
        )
        .await
        .unwrap();
        assert_eq!(ok, Req { name: "a".into() });
        let e = json::<Req>(&headers("text/plain"), Body::from("{}"), 100)
            .await
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let e = json::<Req>(&headers("application/json"), Body::from("{"), 100)
            .await
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let e = json::<Req>(
            &headers("application/json"),
            Body::from(r#"{"name":"a","x":1}"#),
            100,
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        let e = json::<Req>(
            &headers("application/json"),
            Body::from(vec![b' '; 101]),
            100,
        )
        .await
        .unwrap_err();
        assert_eq!(e, BodyError::TooLarge { limit: 100 });
    }
}
