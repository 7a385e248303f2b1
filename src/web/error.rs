//! The API's errors: `{"error": {"code": "...", "message": "..."}}` with 400 (naming the
//! parameter), 401, 403, 404, 409, 410 or 422. A fault of ours (the database gone) is 503 or
//! 500 and says nothing of its cause; the cause goes to the log.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::query::ParamError;
use super::scope::ScopeError;
use crate::store::StoreError;
use crate::urls_service::UrlServiceError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400, naming the parameter.
    pub fn param(param: &str, message: impl std::fmt::Display) -> ApiError {
        ApiError::from(ParamError::new(param, message.to_string()))
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin token is required: `Authorization: Bearer <token>` (make one with \
             `cross-postback tokens create --name NAME`)",
        )
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// 503: a bounded resource (CSV exports at once) is in use; try again.
    pub fn busy(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", e.to_string())
    }
}

impl From<ScopeError> for ApiError {
    fn from(e: ScopeError) -> ApiError {
        let status = match e {
            ScopeError::NotAllowed(_) => StatusCode::BAD_REQUEST,
            ScopeError::ExportNotAllowed => StatusCode::FORBIDDEN,
        };
        ApiError::new(status, "not_in_scope", e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let text = crate::report::one_line(&e);
        if e.is_unreachable() {
            tracing::warn!(error = %text, "web: database unreachable");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database is unreachable; try again",
            );
        }
        tracing::error!(error = %text, "web: database error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> ApiError {
        ApiError::from(StoreError::from(e))
    }
}

impl From<UrlServiceError> for ApiError {
    fn from(e: UrlServiceError) -> ApiError {
        let text = crate::report::one_line(&e);
        match e {
            UrlServiceError::Invalid(_) | UrlServiceError::Event(_) | UrlServiceError::Render(_) => {
                ApiError::unprocessable(text)
            }
            UrlServiceError::Duplicate { .. } => ApiError::conflict(text),
            UrlServiceError::NotFound(_) => ApiError::not_found(text),
            UrlServiceError::Client(_) => {
                tracing::error!(error = %text, "web: HTTP client");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
            UrlServiceError::Store(s) => ApiError::from(s),
        }
    }
}
