//! The HTTP tool server (axum only): OpenAI function calling under `/v1`, MCP over
//! streamable HTTP under `/mcp`, health, readiness, metrics and an OpenAPI document.
//!
//! Every tool call goes through `tools::call`; this module only knows wire formats.
//! [`router`] is the one app factory: `billable serve` and the tests both use it.

pub mod auth;
mod error;
mod grants;
mod limits;
mod openapi;
mod tools;
mod web;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use tokio_util::sync::CancellationToken;
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::config::ServerConfig;
use crate::context::Context;
use crate::metrics;

pub use auth::{Auth, AuthError};
pub use error::ApiError;
pub use limits::UserLimiter;
pub use web::csrf_token;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const RESPONSE_TIME: HeaderName = HeaderName::from_static("x-response-time");

/// What every handler shares.
pub struct AppState {
    pub ctx: Arc<Context>,
    pub auth: Auth,
    pub limiter: Option<UserLimiter>,
}

/// The whole application: routes, authentication, limits and observability.
/// `shutdown` is cancelled when the server stops; open MCP streams close with it.
pub fn router(
    ctx: Arc<Context>,
    config: &ServerConfig,
    auth: Auth,
    shutdown: CancellationToken,
) -> Router {
    // Background scans of the embedded store run in this process.
    crate::jobs::worker::spawn_local(&ctx, shutdown.clone());
    let state = Arc::new(AppState {
        ctx: ctx.clone(),
        auth,
        limiter: UserLimiter::new(config.user_rps, ctx.shared_rates()),
    });
    let sessions = Arc::new(LocalSessionManager::default());
    let protected = Router::new()
        .route("/v1/tools", get(tools::list))
        .route("/v1/tools/call", post(tools::call_openai))
        .route("/v1/tools/{name}", post(tools::call_one))
        .route("/v1/scans/{id}", get(tools::scan_status))
        .route(
            "/v1/gmail/grant",
            get(grants::get).put(grants::put).delete(grants::delete),
        )
        .nest_service(
            "/mcp",
            tower::ServiceBuilder::new()
                .layer(middleware::from_fn_with_state(
                    (sessions.clone(), config.max_mcp_sessions),
                    session_cap,
                ))
                .service(crate::mcp::http_service(ctx, config, shutdown, sessions)),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            limits::authenticate_and_limit,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi::document))
        .merge(protected)
        .merge(web::routes())
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such route; see GET /openapi.json",
            )
        })
        .with_state(state)
        .layer(middleware::from_fn(session_closed))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(RequestBodyLimitLayer::new(config.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            Duration::from_secs(config.request_timeout_secs.max(1)),
            time_limit,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("the request failed unexpectedly").into_response()
        }))
        .layer(middleware::from_fn(observe))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().on_response(DefaultOnResponse::new().level(tracing::Level::INFO).latency_unit(LatencyUnit::Micros)).make_span_with(|req: &Request| {
            let id = req
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Stops a request that runs longer than `limit` with 408 and the JSON error body
/// (tower-http's `TimeoutLayer` answers with an empty body, which tells a client
/// nothing). A scan cut short keeps the chunks it saved.
async fn time_limit(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(limit_secs = limit.as_secs(), "request timed out");
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                format!(
                    "the request did not finish within this server's limit of {} s and was \
                     stopped; a scan keeps what it saved, so call it again to continue (or \
                     narrow it with `max_messages` or a date range), or ask the operator to \
                     raise BILLABLE_REQUEST_TIMEOUT_SECS",
                    limit.as_secs()
                ),
            )
            .into_response()
        }
    }
}

/// MCP sessions are held in memory until closed or idle for 5 minutes: past `max` a
/// new one is refused with 503, so sessions cannot exhaust the server's memory.
async fn session_cap(
    State((sessions, max)): State<(Arc<LocalSessionManager>, usize)>,
    req: Request,
    next: Next,
) -> Response {
    if crate::mcp::opens_session(&req) && sessions.sessions.read().await.len() >= max {
        metrics::global().inc(metrics::Counter::RateLimited, "mcp_session");
        let mut refused = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_sessions",
            format!(
                "this server already holds its limit of {max} MCP sessions (BILLABLE_MAX_MCP_SESSIONS); \
                 close sessions you no longer use (DELETE /mcp with their Mcp-Session-Id) \
                 or retry in a few minutes, when idle ones have expired"
            ),
        );
        refused.retry_after = Some(60);
        return refused.into_response();
    }
    next.run(req).await
}

/// Closing an MCP session (DELETE /mcp) answers 204 No Content: rmcp says 202, which
/// clients such as the Python SDK report as a failed termination.
async fn session_closed(req: Request, next: middleware::Next) -> Response {
    let closing =
        req.method() == axum::http::Method::DELETE && req.uri().path().starts_with("/mcp");
    let mut response = next.run(req).await;
    if closing && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::NO_CONTENT;
        *response.body_mut() = axum::body::Body::empty();
    }
    response
}

/// Times every request: `X-Response-Time` and the per-route metrics.
async fn observe(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = route_label(req.uri().path());
    let mut response = next.run(req).await;
    let elapsed = start.elapsed();
    metrics::global().observe_request(method, route, response.status().as_u16(), elapsed);
    if let Ok(v) = HeaderValue::from_str(&format!("{:.3}ms", elapsed.as_secs_f64() * 1000.0)) {
        response.headers_mut().insert(RESPONSE_TIME, v);
    }
    response
}

fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The route a path belongs to, so metrics never carry raw (user-chosen) paths.
fn route_label(path: &str) -> &'static str {
    match path {
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        "/openapi.json" => "/openapi.json",
        "/v1/tools" => "/v1/tools",
        "/v1/tools/call" => "/v1/tools/call",
        p if p.starts_with("/v1/tools/") => "/v1/tools/{name}",
        p if p.starts_with("/v1/scans/") => "/v1/scans/{id}",
        "/v1/gmail/grant" => "/v1/gmail/grant",
        p if p == "/mcp" || p.starts_with("/mcp/") => "/mcp",
        "/" | "/app" => "/app",
        p if p.starts_with("/app/static/") => "/app/static",
        p if p.starts_with("/app/entries/") => "/app/entries/{id}",
        "/app/entries" => "/app/entries",
        "/app/login" => "/app/login",
        "/app/logout" => "/app/logout",
        "/app/scan" => "/app/scan",
        "/app/export" => "/app/export",
        "/app/settings" => "/app/settings",
        _ => "other",
    }
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.ctx.store.ping().await {
        Ok(()) => axum::Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!(
                    "the store is not reachable, so tool calls would fail: {e}. Check that \
                     the database (or Supabase) is up; readiness recovers on its own once it \
                     answers"
                ),
            )
            .into_response()
        }
    }
}

async fn metrics_text() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::global().render(),
    )
        .into_response()
}

/// Connections served at once; beyond them a few more are kept for health checks.
const MAX_CONNECTIONS: usize = 512;
/// Connections past the limit that are looked at, at once, for a health check.
const HEALTH_CONNECTIONS: usize = 32;
/// How long a client may take to send a request's headers (idle keep-alive
/// connections count: they wait for the next request's headers).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The same for the connections kept for health checks.
const HEALTH_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs `app` on `listener` until `shutdown` is cancelled; then running requests (a
/// scan saving its chunks) get `grace` to finish before the server returns.
///
/// Slow or idle clients cannot take the server: each connection has a header-read
/// timeout, at most [`MAX_CONNECTIONS`] are served at once, and past that a connection
/// is served only when its first bytes ask for `/healthz` or `/readyz` (so a load
/// balancer still sees the server alive); any other is closed at once.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let normal = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let health = Arc::new(tokio::sync::Semaphore::new(HEALTH_CONNECTIONS));
    let health_app = app.clone().layer(middleware::from_fn(health_only));
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors or a reset before accept: keep serving.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let (permit, health_check) = if let Ok(p) = normal.clone().try_acquire_owned() {
            (p, false)
        } else if let Ok(p) = health.clone().try_acquire_owned() {
            (p, true)
        } else {
            metrics::global().inc(metrics::Counter::RateLimited, "connection");
            drop(stream);
            continue;
        };
        let app = if health_check {
            health_app.clone()
        } else {
            app.clone()
        };
        let app = tower::ServiceExt::map_request(
            app,
            move |req: axum::http::Request<hyper::body::Incoming>| {
                let mut req = req.map(axum::body::Body::new);
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        );
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            // Past the limit only a health check is served: it asks at once.
            if health_check && !asks_for_health(&stream).await {
                metrics::global().inc(metrics::Counter::RateLimited, "connection");
                return;
            }
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(if health_check {
                    HEALTH_HEADER_TIMEOUT
                } else {
                    HEADER_TIMEOUT
                });
            let conn = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(app),
            );
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(permit);
        });
    }
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "requests still running after the grace period; stopping anyway"
        );
    }
    Ok(())
}

/// Whether a connection's first bytes, sent within a moment, ask for `/healthz` or
/// `/readyz`.
async fn asks_for_health(stream: &tokio::net::TcpStream) -> bool {
    let mut head = [0u8; 13];
    let peeked = tokio::time::timeout(Duration::from_millis(300), async {
        loop {
            match stream.peek(&mut head).await {
                Ok(n) if n >= head.len() => return true,
                Ok(0) | Err(_) => return false,
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await;
    peeked == Ok(true) && (head.starts_with(b"GET /healthz") || head.starts_with(b"GET /readyz"))
}

/// On a connection kept for health checks, everything but health is refused.
async fn health_only(req: Request, next: Next) -> Response {
    match req.uri().path() {
        "/healthz" | "/readyz" => next.run(req).await,
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, HeaderValue::from_static("1"))],
            "the server is at its connection limit; retry shortly",
        )
            .into_response(),
    }
}

/// `billable serve`: the server a configuration describes, until Ctrl-C or SIGTERM.
pub async fn serve(ctx: Arc<Context>, config: &ServerConfig) -> anyhow::Result<()> {
    let (auth, generated) = Auth::from_config(config);
    let listener = tokio::net::TcpListener::bind(&config.bind)
        .await
        .map_err(|e| anyhow::anyhow!("could not listen on {} (BILLABLE_BIND): {e}", config.bind))?;
    let addr = listener.local_addr()?;
    if let Some(token) = generated {
        eprintln!(
            "billable: no BILLABLE_API_TOKEN set; this run's bearer token is:\n  {}",
            token.expose()
        );
    }
    let mode = if config.supabase_mode() {
        "supabase"
    } else {
        "local"
    };
    eprintln!("billable: serving on http://{addr} (auth: {mode}; MCP at http://{addr}/mcp)");
    let shutdown = CancellationToken::new();
    let app = router(ctx, config, auth, shutdown.clone());
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            stop_signal().await;
            tracing::info!("shutting down: letting running requests finish");
            eprintln!("billable: shutting down");
            shutdown.cancel();
        }
    });
    serve_on(
        listener,
        app,
        shutdown,
        Duration::from_secs(config.shutdown_grace_secs),
    )
    .await?;
    Ok(())
}

pub(crate) async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::route_label;

    #[test]
    fn metrics_label_routes_not_raw_paths() {
        assert_eq!(route_label("/v1/tools/anything-at-all"), "/v1/tools/{name}");
        assert_eq!(route_label("/v1/tools/call"), "/v1/tools/call");
        assert_eq!(route_label("/mcp"), "/mcp");
        assert_eq!(route_label("/secret/user/path"), "other");
    }
}
