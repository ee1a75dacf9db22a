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
            (ErrorKind::Unauthorized, _) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string())
            }
            (ErrorKind::Forbidden, _) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", e.to_string())
            }
            (ErrorKind::Conflict, _) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
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

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::ApiError;
    use crate::analyze::AnalyzeError;
    use crate::error::Error;
    use crate::store::StoreError;

    fn answer(e: impl Into<Error>) -> (StatusCode, &'static str, String) {
        let api = ApiError::from(e.into());
        (api.status, api.code, api.message)
    }

    #[test]
    fn store_refusals_map_to_401_403_and_409_with_what_to_do() {
        let (status, code, message) =
            answer(StoreError::Unauthorized("JWT expired [PGRST301]".into()));
        assert_eq!((status, code), (StatusCode::UNAUTHORIZED, "unauthorized"));
        assert!(message.contains("JWT expired"), "{message}");
        assert!(message.contains("Sign in again"), "{message}");

        let (status, code, message) = answer(StoreError::Forbidden(
            "could not list entries: permission denied [42501]".into(),
        ));
        assert_eq!((status, code), (StatusCode::FORBIDDEN, "forbidden"));
        assert!(message.contains("permission denied"), "{message}");
        assert!(message.contains("only read and write its own"), "{message}");

        let (status, code, message) = answer(StoreError::Conflict {
            what: "save entries",
            message: "duplicate key value [23505]".into(),
        });
        assert_eq!((status, code), (StatusCode::CONFLICT, "conflict"));
        assert!(message.contains("Retry the request"), "{message}");
    }

    #[test]
    fn every_kind_has_its_status() {
        let cases: Vec<(Error, StatusCode, &str)> = vec![
            (
                Error::invalid("from", "not a date"),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
            ),
            (
                Error::UnknownTool {
                    name: "nope".into(),
                    available: "a, b".into(),
                },
                StatusCode::NOT_FOUND,
                "unknown_tool",
            ),
            (
                crate::mail::MailError::NotFound("<m1@x>".into()).into(),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                AnalyzeError::Unavailable("the model is down".into()).into(),
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
            ),
            (
                StoreError::Corrupt {
                    what: "entry",
                    message: "bad minutes".into(),
                }
                .into(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
            ),
        ];
        for (e, status, code) in cases {
            let what = e.to_string();
            let api = ApiError::from(e);
            assert_eq!((api.status, api.code), (status, code), "{what}");
        }
    }

    #[test]
    fn a_401_asks_for_a_bearer_token_and_other_statuses_do_not() {
        use axum::response::IntoResponse;
        let unauthorized =
            ApiError::from(Error::from(StoreError::Unauthorized("JWT expired".into())))
                .into_response();
        assert_eq!(unauthorized.headers()["www-authenticate"], "Bearer");
        let forbidden =
            ApiError::from(Error::from(StoreError::Forbidden("no".into()))).into_response();
        assert!(forbidden.headers().get("www-authenticate").is_none());
    }
}
