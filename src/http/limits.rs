//! The gate in front of `/v1` and `/mcp`: authenticate, then charge the user's rate
//! limit. The resolved `UserId` rides in the request extensions to the handlers (and
//! through rmcp's request parts to the MCP handler).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState, AuthError};
use crate::limits::{KeyedLimit, Rate, SharedRates};
use crate::metrics::{self, Counter};

/// Requests per second per user, with a burst of twice that; across all servers
/// when the deployment shares its limits.
pub struct UserLimiter(KeyedLimit);

impl UserLimiter {
    /// `None` when `rps` is 0 (limit disabled).
    pub fn new(rps: u32, shared: Option<Arc<dyn SharedRates>>) -> Option<Self> {
        let rate = Rate::per_second(rps, rps.saturating_mul(2))?;
        Some(UserLimiter(KeyedLimit::new("requests", rate, shared)))
    }

    /// `Err(seconds to wait)` when `user` is over the limit.
    pub async fn check(&self, user: &str) -> Result<(), u64> {
        self.0
            .check(user)
            .await
            .map_err(|wait| wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
    }
}

pub async fn authenticate_and_limit(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let user = match state.auth.authenticate(authorization).await {
        Ok(user) => user,
        Err(e @ AuthError::KeysUnavailable { .. }) => {
            tracing::warn!(error = %e, "authentication unavailable");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            )
            .into_response();
        }
        Err(e) => {
            tracing::info!(error = %e, "unauthenticated request");
            return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string())
                .into_response();
        }
    };
    if let Some(limiter) = &state.limiter
        && let Err(wait) = limiter.check(user.as_str()).await
    {
        let route = super::route_label(req.uri().path());
        metrics::global().inc(Counter::RateLimited, route);
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many requests for this user; retry after {} s",
                wait.max(1)
            ),
        );
        e.retry_after = Some(wait.max(1));
        return e.into_response();
    }
    req.extensions_mut().insert(user);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::UserLimiter;

    #[tokio::test]
    async fn a_user_over_the_burst_waits_while_another_user_is_served() {
        let limiter = UserLimiter::new(1, None).unwrap();
        assert!(limiter.check("a").await.is_ok());
        assert!(limiter.check("a").await.is_ok());
        let wait = limiter.check("a").await.unwrap_err();
        assert!((1..=2).contains(&wait), "wait {wait}");
        assert!(limiter.check("b").await.is_ok());
    }

    #[test]
    fn zero_disables_the_limit() {
        assert!(UserLimiter::new(0, None).is_none());
    }
}
