//! GC's HTTP error type: client mistakes are 4xx with a JSON body
//! `{"error", "error_description"}`; dependency failures are 503 and
//! server bugs 500, logged with their whole source chain.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::auth::AuthError;
use common::body::BodyError;

type Source = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("{0}")]
    BadRequest(String),
    #[error("meeting not found")]
    NotFound,
    /// No healthy MC/MH with capacity (SPEC: 503).
    #[error("{0}")]
    NoCapacity(&'static str),
    #[error("{what} is unavailable")]
    Unavailable {
        what: &'static str,
        #[source]
        source: Source,
    },
    #[error("internal error")]
    Internal(#[source] Source),
}

impl ApiError {
    pub fn unavailable(what: &'static str, source: impl Into<Source>) -> Self {
        Self::Unavailable {
            what,
            source: source.into(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Auth(e) => (
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::UNAUTHORIZED),
                e.oauth_code(),
            ),
            Self::Body(e) => (e.status(), "invalid_request"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::NoCapacity(_) => (StatusCode::SERVICE_UNAVAILABLE, "no_capacity"),
            Self::Unavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
            }
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
        }
    }
}

fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        match &self {
            Self::Unavailable { .. } | Self::Internal(_) => {
                tracing::error!(error = %chain(&self), "request failed");
            }
            _ => {}
        }
        let description = self.to_string();
        let mut response = (
            status,
            axum::Json(serde_json::json!({"error": code, "error_description": description})),
        )
            .into_response();
        if let Self::Auth(e) = &self
            && e.http_status() != 503
        {
            let value = format!("Bearer realm=\"dark-tower\", error=\"{}\"", e.oauth_code());
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::unavailable("the database", e)
    }
}
