//! `/v1/gmail/grant`: a user stores their Gmail refresh token for unattended
//! (background and scheduled) scans with `PUT {"refresh_token": "…"}`, sees whether
//! one is stored with `GET`, and revokes it with `DELETE`. The token is checked with
//! Google once, sealed, and never returned; not a tool, so it never passes through a
//! chat model.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::domain::UserId;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    refresh_token: String,
}

pub async fn put(
    State(state): State<Arc<AppState>>,
    Extension(user): Extension<UserId>,
    body: Bytes,
) -> Response {
    let body: Body = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(_) => {
            // The serde message could quote the token: say what is expected instead.
            return ApiError::unprocessable(
                "send {\"refresh_token\": \"…\"}: the OAuth refresh token of your Gmail \
                 authorisation, nothing else",
            )
            .into_response();
        }
    };
    answer(state.ctx.connect_gmail(&user, &body.refresh_token).await)
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    Extension(user): Extension<UserId>,
) -> Response {
    answer(state.ctx.gmail_grant_status(&user).await)
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(user): Extension<UserId>,
) -> Response {
    answer(state.ctx.disconnect_gmail(&user).await)
}

fn answer(result: crate::Result<crate::context::GmailGrantStatus>) -> Response {
    match result {
        Ok(status) => Json(status).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
