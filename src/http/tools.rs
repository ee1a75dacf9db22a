//! The `/v1` endpoints: the OpenAI `tools` array, OpenAI tool calls in and `role: "tool"`
//! messages out, and plain JSON per tool. With `Accept: text/event-stream` the answer
//! is a stream of server-sent events: `progress` while a scan runs, then `result` (or
//! `error`).

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{ApiError, AppState};
use crate::context::Context;
use crate::domain::UserId;
use crate::error::Error;
use crate::tools::{self, NoProgress, Progress, ScanProgress};

/// Most tool calls one request may carry.
const MAX_CALLS: usize = 32;

pub async fn list() -> Json<Value> {
    Json(tools::openai_tools().clone())
}

/// `POST /v1/tools/{name}`: the body is the arguments, the answer the result.
pub async fn call_one(
    State(state): State<Arc<AppState>>,
    Extension(user): Extension<UserId>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if tools::find(&name).is_none() {
        return ApiError::from(tools::unknown_tool(&name)).into_response();
    }
    let args = match parse_body(&body) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let ctx = state.ctx.clone();
    if wants_events(&headers) {
        return events(move |sink| async move {
            let progress = sink.progress(None);
            run(&ctx, &user, &name, args, &progress)
                .await
                .map_err(ApiError::from)
        });
    }
    match run(&ctx, &user, &name, args, &NoProgress).await {
        Ok(v) if name == "scan_billable_time" => queued_or_done(v),
        Ok(v) => Json(v).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Where a background scan's status is read over HTTP.
pub fn status_url(job_id: &str) -> String {
    format!("/v1/scans/{job_id}")
}

/// A scan's answer: a background scan is `202 Accepted` with its status URL in
/// `Location` (and in the body as `status_url`); a finished one is `200`.
fn queued_or_done(mut v: Value) -> Response {
    let Some(id) = v.get("job_id").and_then(Value::as_str).map(str::to_owned) else {
        return Json(v).into_response();
    };
    let url = status_url(&id);
    v["status_url"] = json!(url);
    let mut response = (axum::http::StatusCode::ACCEPTED, Json(v)).into_response();
    if let Ok(location) = header::HeaderValue::from_str(&url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

#[derive(Debug, Deserialize)]
pub struct StatusQuery {
    /// Seconds to wait for the job to end (`get_scan_status`'s `wait_seconds`).
    wait: Option<u32>,
}

/// `GET /v1/scans/{id}[?wait=SECONDS]`: `get_scan_status` for the caller; with
/// `Accept: text/event-stream`, its progress while it waits, then the status.
pub async fn scan_status(
    State(state): State<Arc<AppState>>,
    Extension(user): Extension<UserId>,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<StatusQuery>,
    headers: HeaderMap,
) -> Response {
    let args = json!({ "job_id": id, "wait_seconds": query.wait });
    let ctx = state.ctx.clone();
    if wants_events(&headers) {
        return events(move |sink| async move {
            let progress = sink.progress(None);
            run(&ctx, &user, "get_scan_status", args, &progress)
                .await
                .map_err(ApiError::from)
        });
    }
    match run(&ctx, &user, "get_scan_status", args, &NoProgress).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `POST /v1/tools/call`: one OpenAI tool call, a list of them, or an assistant
/// message with `tool_calls`. Calls run concurrently; the answer is the list of tool
/// messages, in the order of the calls. A call that fails becomes a tool message
/// describing the error so the model can correct itself.
pub async fn call_openai(
    State(state): State<Arc<AppState>>,
    Extension(user): Extension<UserId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let calls = match parse_body(&body).and_then(parse_calls) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let ctx = state.ctx.clone();
    if wants_events(&headers) {
        return events(move |sink| async move {
            let runs = calls.into_iter().map(|c| {
                let progress = sink.progress(Some(c.id.clone()));
                let (ctx, user) = (ctx.clone(), user.clone());
                async move { tool_message(&ctx, &user, c, &progress).await }
            });
            Ok(Value::Array(futures::future::join_all(runs).await))
        });
    }
    let runs = calls
        .into_iter()
        .map(|c| tool_message(&ctx, &user, c, &NoProgress));
    Json(Value::Array(futures::future::join_all(runs).await)).into_response()
}

async fn run(
    ctx: &Context,
    user: &UserId,
    name: &str,
    args: Value,
    progress: &dyn Progress,
) -> Result<Value, Error> {
    tools::call(ctx, user, name, args, progress).await
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not JSON: {e}")))
}

/// One OpenAI tool call as the model wrote it.
#[derive(Debug, Deserialize)]
struct ToolCall {
    id: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    function: FunctionCall,
}

#[derive(Debug, Deserialize)]
struct FunctionCall {
    name: String,
    /// A string of JSON, as OpenAI sends it; an object is accepted too.
    #[serde(default)]
    arguments: Value,
}

const SHAPES: &str = "send one tool call {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\"}}, a list of them, or an assistant message with \"tool_calls\"";

fn parse_calls(body: Value) -> Result<Vec<ToolCall>, ApiError> {
    let (items, prefix) = match body {
        Value::Array(items) => (items, ""),
        Value::Object(mut m) if m.contains_key("tool_calls") => match m.remove("tool_calls") {
            Some(Value::Array(items)) => (items, "tool_calls"),
            _ => {
                return Err(ApiError::unprocessable(format!(
                    "`tool_calls` must be a list; {SHAPES}"
                )));
            }
        },
        Value::Object(m) if m.get("role").is_some() && !m.contains_key("function") => {
            return Err(ApiError::unprocessable(format!(
                "the message has no `tool_calls`: there is nothing to run; {SHAPES}"
            )));
        }
        v @ Value::Object(_) => (vec![v], "-"),
        _ => return Err(ApiError::unprocessable(SHAPES)),
    };
    if items.is_empty() {
        return Err(ApiError::unprocessable(format!("no tool calls: {SHAPES}")));
    }
    if items.len() > MAX_CALLS {
        return Err(ApiError::unprocessable(format!(
            "{} tool calls in one request; at most {MAX_CALLS}",
            items.len()
        )));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let at = match prefix {
                "-" => String::new(),
                "" => format!("[{i}]"),
                p => format!("{p}[{i}]"),
            };
            let call: ToolCall = serde_path_to_error::deserialize(item).map_err(|e| {
                let path = e.path().to_string();
                let path = path.trim_start_matches('.');
                let place = match (at.as_str(), path) {
                    (at, "") => at.to_owned(),
                    ("", path) => path.to_owned(),
                    (at, path) => format!("{at}.{path}"),
                };
                let place = if place.is_empty() {
                    "the tool call".to_owned()
                } else {
                    format!("`{place}`")
                };
                ApiError::unprocessable(format!("{place}: {}; {SHAPES}", e.into_inner()))
            })?;
            if let Some(kind) = &call.kind
                && kind != "function"
            {
                return Err(ApiError::unprocessable(format!(
                    "tool call `{}` has type `{kind}`; only `function` calls are supported",
                    call.id
                )));
            }
            Ok(call)
        })
        .collect()
}

/// Runs one call and wraps the outcome as the tool message to append.
async fn tool_message(
    ctx: &Context,
    user: &UserId,
    call: ToolCall,
    progress: &dyn Progress,
) -> Value {
    let name = call.function.name;
    let content = match arguments(&name, call.function.arguments) {
        Err(e) => e.body(),
        Ok(args) => match run(ctx, user, &name, args, progress).await {
            Ok(v) => v,
            Err(e) => ApiError::from(e).body(),
        },
    };
    json!({
        "role": "tool",
        "tool_call_id": call.id,
        "content": content.to_string(),
    })
}

fn arguments(name: &str, raw: Value) -> Result<Value, ApiError> {
    match raw {
        Value::String(s) if s.trim().is_empty() => Ok(Value::Null),
        Value::String(s) => serde_json::from_str(&s).map_err(|e| {
            ApiError::unprocessable(format!(
                "the arguments of `{name}` are not JSON ({e}); send a JSON object as a string"
            ))
        }),
        v @ (Value::Null | Value::Object(_)) => Ok(v),
        _ => Err(ApiError::unprocessable(format!(
            "the arguments of `{name}` must be a JSON object (as a string)"
        ))),
    }
}

fn wants_events(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

/// Where a streamed request's progress goes.
#[derive(Clone)]
pub(super) struct Sink(mpsc::UnboundedSender<Event>);

impl Sink {
    pub(super) fn progress(&self, tool_call_id: Option<String>) -> EventProgress {
        EventProgress {
            sink: self.clone(),
            tool_call_id,
        }
    }
}

pub(super) struct EventProgress {
    sink: Sink,
    tool_call_id: Option<String>,
}

impl Progress for EventProgress {
    fn report(&self, p: &ScanProgress) {
        let mut data = json!(p);
        if let (Some(id), Some(m)) = (&self.tool_call_id, data.as_object_mut()) {
            m.insert("tool_call_id".into(), json!(id));
        }
        let _ = self
            .sink
            .0
            .send(Event::default().event("progress").data(data.to_string()));
    }
}

/// Runs `work` in its own task (so a scan finishes and saves even if the client goes
/// away) and streams its progress, then its `result` or `error`.
pub(super) fn events<F, Fut>(work: F) -> Response
where
    F: FnOnce(Sink) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Value, ApiError>> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let sink = Sink(tx);
    tokio::spawn(async move {
        let done = sink.clone();
        let event = match work(sink).await {
            Ok(v) => Event::default().event("result").data(v.to_string()),
            Err(e) => {
                let mut body = e.body();
                body["error"]["status"] = json!(e.status.as_u16());
                Event::default().event("error").data(body.to_string())
            }
        };
        let _ = done.0.send(event);
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_a_list_and_an_assistant_message_are_all_accepted() {
        let one = json!({"id": "c1", "type": "function", "function": {"name": "list_time_entries", "arguments": "{}"}});
        assert_eq!(parse_calls(one.clone()).unwrap().len(), 1);
        assert_eq!(parse_calls(json!([one, one])).unwrap().len(), 2);
        let message = json!({"role": "assistant", "content": null, "tool_calls": [one]});
        assert_eq!(
            parse_calls(message).unwrap()[0].function.name,
            "list_time_entries"
        );
    }

    #[test]
    fn a_malformed_call_names_what_is_missing() {
        let e = parse_calls(json!([{"id": "c1", "function": {}}])).unwrap_err();
        assert!(e.message.contains("[0].function"), "{}", e.message);
        assert!(e.message.contains("name"), "{}", e.message);
        let e = parse_calls(json!({"function": {"name": "x"}})).unwrap_err();
        assert!(e.message.contains("id"), "{}", e.message);
        assert!(parse_calls(json!([])).is_err());
        let e = parse_calls(json!({"role": "assistant", "content": "Done."})).unwrap_err();
        assert!(e.message.contains("no `tool_calls`"), "{}", e.message);
        assert!(parse_calls(json!("hello")).is_err());
        let e =
            parse_calls(json!({"id": "c", "type": "code", "function": {"name": "x"}})).unwrap_err();
        assert!(e.message.contains("only `function`"), "{}", e.message);
    }

    #[test]
    fn arguments_must_be_a_json_object_or_a_string_of_one() {
        assert_eq!(arguments("t", json!("{\"a\":1}")).unwrap(), json!({"a": 1}));
        assert_eq!(arguments("t", json!("")).unwrap(), Value::Null);
        assert!(
            arguments("t", json!("{not json"))
                .unwrap_err()
                .message
                .contains("not JSON")
        );
        assert!(arguments("t", json!(5)).is_err());
    }
}
