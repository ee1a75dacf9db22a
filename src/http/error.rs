//! The one place library errors become HTTP answers: `{"error": {"code", "message"}}`
//! with a status from `Error::kind()`. Internal causes are logged, not sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{Error, ErrorKind};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The JSON body, also used as a failed tool message's content.
    pub fn body(&self) -> Value {
        json!({ "error": { "code": self.code, "message": self.message } })
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match (e.kind(), &e) {
            (_, Error::UnknownTool { .. }) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_tool", e.to_string())
            }
            (ErrorKind::InvalidInput, _) => ApiError::unprocessable(e.to_string()),
            (ErrorKind::NotFound, _) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            (ErrorKind::Unavailable, _) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("{e}; try again later"),
            ),
            (ErrorKind::Internal, _) => {
                tracing::error!(error = %e, "internal error");
                ApiError::internal(
                    "an internal error occurred; it has been logged (quote the x-request-id header when reporting it)",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = secs.to_string().parse()
        {
            response.headers_mut().insert("retry-after", v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
