//! ac-service's error type: every failure a client can cause maps to a 4xx
//! with an RFC 6749/6750 JSON body; server-side failures are logged with
//! their whole source chain and answered with a generic 5xx.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::auth::AuthError;
use common::body::BodyError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// An OAuth 2 error (RFC 6749 §5.2) with its HTTP status.
    #[error("{code}: {description}")]
    OAuth {
        status: StatusCode,
        code: &'static str,
        description: String,
    },
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Body(#[from] BodyError),
    /// A dependency (the database) failed; the client may retry.
    #[error("service unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::OAuth {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            description: description.into(),
        }
    }

    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::OAuth {
            status: StatusCode::UNAUTHORIZED,
            code: "invalid_client",
            description: description.into(),
        }
    }

    pub fn oauth(code: &'static str, description: impl Into<String>) -> Self {
        Self::OAuth {
            status: StatusCode::BAD_REQUEST,
            code,
            description: description.into(),
        }
    }

    /// Bounded label for the error metric.
    pub fn code(&self) -> &'static str {
        match self {
            Self::OAuth { code, .. } => code,
            Self::Auth(e) => e.oauth_code(),
            Self::Body(_) => "invalid_request",
            Self::Unavailable(_) => "temporarily_unavailable",
            Self::Internal(_) => "server_error",
        }
    }
}

fn log_chain(message: &str, error: &(dyn std::error::Error + 'static)) {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    tracing::error!(error = %chain, "{message}");
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        let (status, description) = match &self {
            Self::OAuth {
                status,
                description,
                ..
            } => (*status, description.clone()),
            Self::Auth(e) => (
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::UNAUTHORIZED),
                e.to_string(),
            ),
            Self::Body(e) => (e.status(), e.to_string()),
            Self::Unavailable(e) => {
                log_chain("dependency unavailable", e.as_ref());
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the service is temporarily unavailable".to_owned(),
                )
            }
            Self::Internal(e) => {
                log_chain("internal error", e.as_ref());
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_owned(),
                )
            }
        };
        let body = serde_json::json!({"error": code, "error_description": description});
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match &self {
            Self::OAuth { code, .. } if *code == "invalid_client" => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"dark-tower\""),
                );
            }
            Self::Auth(e) if e.http_status() != 503 => {
                let value = format!("Bearer realm=\"dark-tower\", error=\"{}\"", e.oauth_code());
                if let Ok(v) = HeaderValue::from_str(&value) {
                    headers.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            _ => {}
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::Unavailable(Box::new(e))
    }
}

impl From<crate::clients::ClientError> for ApiError {
    fn from(e: crate::clients::ClientError) -> Self {
        match e {
            crate::clients::ClientError::Database(db) => Self::Unavailable(Box::new(db)),
            other => Self::Internal(Box::new(other)),
        }
    }
}
