//! gRPC helpers: service-token authorization on incoming calls, bearer
//! metadata on outgoing calls, bounded status-code labels for metrics, and
//! gRPC health that follows readiness.

use secrecy::{ExposeSecret, SecretString};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

use crate::auth::{self, AuthError};
use crate::jwks::JwksCache;
use crate::jwt::ServiceClaims;
use crate::ops::Readiness;

impl From<AuthError> for Status {
    fn from(e: AuthError) -> Self {
        match e {
            _ if e.is_forbidden() => Status::permission_denied(e.to_string()),
            AuthError::KeysUnavailable => Status::unavailable(e.to_string()),
            _ => Status::unauthenticated(e.to_string()),
        }
    }
}

/// The bearer token of an incoming call's `authorization` metadata.
pub fn bearer_from_metadata(metadata: &MetadataMap) -> Result<&str, AuthError> {
    let value = metadata.get("authorization").ok_or(AuthError::Missing)?;
    let value = value.to_str().map_err(|_| AuthError::NotBearer)?;
    auth::bearer(value)
}

/// Verifies the caller's service token and scope.
pub async fn authorize(
    jwks: &JwksCache,
    metadata: &MetadataMap,
    required_scope: &str,
) -> Result<ServiceClaims, Status> {
    let token = bearer_from_metadata(metadata)?;
    Ok(jwks.verify_service(token, required_scope).await?)
}

/// Wraps a message in a request carrying `authorization: Bearer <token>`.
pub fn with_bearer<T>(message: T, token: &SecretString) -> Result<tonic::Request<T>, Status> {
    let mut request = tonic::Request::new(message);
    let value = MetadataValue::try_from(format!("Bearer {}", token.expose_secret()))
        .map_err(|_| Status::internal("token is not valid metadata"))?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// Counts a finished call of `method` by its status code and logs a refused
/// one (method, code, message) at info.
pub fn record_call<T>(
    metrics: &crate::metrics::Metrics,
    method: &'static str,
    result: &Result<T, Status>,
) {
    let code = match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    };
    metrics.observe_grpc(method, code_label(code));
    if let Err(status) = result {
        tracing::info!(
            method,
            code = code_label(code),
            message = status.message(),
            "gRPC call refused"
        );
    }
}

/// Bounded label for a gRPC status code.
pub fn code_label(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Unavailable => "unavailable",
        Code::Unauthenticated => "unauthenticated",
        Code::Internal => "internal",
        _ => "other",
    }
}

/// Reports `services` (their `NamedService::NAME`) NOT_SERVING on gRPC
/// health once `readiness` is shutting down (checked every 250 ms), so
/// gRPC clients stop routing to the service while it drains.
pub fn not_serving_on_shutdown(
    reporter: tonic_health::server::HealthReporter,
    readiness: Readiness,
    services: &'static [&'static str],
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !readiness.is_shutting_down() {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        for service in services {
            reporter
                .set_service_status(*service, tonic_health::ServingStatus::NotServing)
                .await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_bearer_round_trip() {
        let token = SecretString::from("abc.def.ghi");
        let req = with_bearer((), &token).unwrap();
        assert_eq!(bearer_from_metadata(req.metadata()), Ok("abc.def.ghi"));
        let empty = tonic::Request::new(());
        assert_eq!(
            bearer_from_metadata(empty.metadata()),
            Err(AuthError::Missing)
        );
    }

    #[test]
    fn auth_errors_map_to_grpc_codes() {
        assert_eq!(
            Status::from(AuthError::Missing).code(),
            Code::Unauthenticated
        );
        assert_eq!(
            Status::from(AuthError::InsufficientScope {
                required: "s".into()
            })
            .code(),
            Code::PermissionDenied
        );
        assert_eq!(
            Status::from(AuthError::KeysUnavailable).code(),
            Code::Unavailable
        );
    }
}
