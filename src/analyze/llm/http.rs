//! The LLM client's HTTP transport and how its failures are classified.
//!
//! async-openai's default transport retries by itself and returns errors without the
//! response headers, so `Retry-After` and `x-ratelimit-reset-*` would be lost. We
//! install this tower service instead (async-openai's `middleware` feature): it sends
//! the request once, and turns a non-2xx response into an [`Upstream`] error that
//! keeps the status, the wait the server asked for and the start of the body. The
//! retry policy lives in `llm.rs` (backon), where the rate limiters are.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;

/// Longest part of an error body kept for messages.
const BODY_KEPT: usize = 600;

/// A non-2xx answer from the LLM server.
#[derive(Debug, thiserror::Error)]
#[error("HTTP {status}: {body}")]
pub struct Upstream {
    pub status: u16,
    /// What `retry-after-ms`, `retry-after` or `x-ratelimit-reset-*` asked for.
    pub wait: Option<Duration>,
    pub body: String,
}

/// Sends each request once with reqwest; see the module doc.
#[derive(Clone)]
pub struct Transport {
    client: reqwest::Client,
}

impl Transport {
    pub fn new(timeout: Duration) -> Result<Self, String> {
        // reqwest is built without a TLS provider of its own; main.rs installs ring, and
        // so does this for library users (tests, benches). A second install is a no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("could not build the HTTP client: {e}"))?;
        Ok(Transport { client })
    }
}

type HttpFuture = Pin<Box<dyn Future<Output = Result<reqwest::Response, OpenAIError>> + Send>>;

impl tower::Service<HttpRequestFactory> for Transport {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = HttpFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let client = self.client.clone();
        Box::pin(async move {
            let request = factory.build().await?;
            let response = client
                .execute(request)
                .await
                .map_err(OpenAIError::Reqwest)?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let wait = server_wait(response.headers());
            let body = response.text().await.unwrap_or_default();
            let body: String = body.chars().take(BODY_KEPT).collect();
            Err(OpenAIError::Boxed(Box::new(Upstream {
                status: status.as_u16(),
                wait,
                body,
            })))
        })
    }
}

/// The longest wait the headers ask for: `retry-after-ms`, `retry-after` (seconds or
/// an HTTP date) and OpenAI's `x-ratelimit-reset-requests` / `-tokens` ("1s", "6m0s",
/// "20ms").
pub fn server_wait(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let mut waits = Vec::new();
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        waits.push(secs(ms / 1000.0));
    }
    if let Some(v) = get("retry-after") {
        if let Ok(s) = v.parse::<f64>() {
            waits.push(secs(s));
        } else if let Ok(at) = chrono::DateTime::parse_from_rfc2822(v) {
            let left = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
            waits.push(left.to_std().ok());
        }
    }
    for name in ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"] {
        if let Some(v) = get(name) {
            waits.push(go_duration(v));
        }
    }
    waits.into_iter().flatten().max()
}

fn secs(s: f64) -> Option<Duration> {
    // A server asking for more than an hour is treated as asking for an hour.
    (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(3600.0)))
}

/// "1h2m3.5s", "6m0s", "20ms", "1s" → a duration.
pub fn go_duration(v: &str) -> Option<Duration> {
    let mut total = 0.0;
    let mut rest = v.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..end].parse().ok()?;
        rest = &rest[end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        total += n * match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" | "" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
    }
    secs(total)
}

/// What a failed call means for the caller.
#[derive(Debug, Clone)]
pub enum Failure {
    /// Worth another try, not before `after` when the server said so.
    Retry {
        after: Option<Duration>,
        why: String,
    },
    /// The request ran past `LLM_TIMEOUT_SECS`: a batch is split, not resent whole.
    Timeout,
    /// The prompt does not fit the model's context; `context` when the server said
    /// how large it is.
    ContextExceeded { context: Option<u32>, why: String },
    /// Retrying cannot fix it (bad key, no quota, a request the server rejects).
    Fatal(String),
    /// The server refuses the response format asked for (`json_schema`, or the
    /// `schema` of llama.cpp's JSON mode), with the start of what it said.
    NoStructuredOutputs(String),
    /// The server answered, but not with a usable analysis.
    BadAnswer(String),
}

impl Failure {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Failure::Retry { .. })
    }

    /// Classifies an async-openai error.
    pub fn from_openai(e: OpenAIError) -> Failure {
        match e {
            OpenAIError::Boxed(b) => match b.downcast::<Upstream>() {
                Ok(u) => Failure::from_status(u.status, u.wait, &u.body),
                Err(other) => Failure::Retry {
                    after: None,
                    why: other.to_string(),
                },
            },
            OpenAIError::Reqwest(e) if e.is_timeout() => Failure::Timeout,
            OpenAIError::Reqwest(e) => Failure::Retry {
                after: None,
                why: format!("could not reach the server: {e}"),
            },
            OpenAIError::ApiError(a) => {
                Failure::from_status(a.status_code.as_u16(), None, &a.api_error.to_string())
            }
            OpenAIError::JSONDeserialize(e, _) => {
                Failure::BadAnswer(format!("the server's reply is not a chat completion: {e}"))
            }
            OpenAIError::StreamError(e) => Failure::Retry {
                after: None,
                why: e.to_string(),
            },
            other => Failure::Fatal(other.to_string()),
        }
    }

    pub fn from_status(status: u16, wait: Option<Duration>, body: &str) -> Failure {
        let lower = body.to_ascii_lowercase();
        let said = server_message(body);
        if status >= 400 && refuses_format(&lower) {
            // llama-cpp-python answers 500 to `json_schema`; OpenAI-likes 400.
            return Failure::NoStructuredOutputs(format!("HTTP {status}: {said}"));
        }
        if (400..500).contains(&status) && status != 429 && overflows_context(&lower) {
            return Failure::ContextExceeded {
                context: context_size(&lower),
                why: format!("HTTP {status}: {said}"),
            };
        }
        match status {
            429 if lower.contains("insufficient_quota") => Failure::Fatal(
                "the LLM account has no quota left (HTTP 429 insufficient_quota): add credit or change OPENAI_API_KEY"
                    .to_owned(),
            ),
            429 => Failure::Retry {
                after: wait,
                why: "rate limited (HTTP 429)".to_owned(),
            },
            408 | 409 | 500..=599 => Failure::Retry {
                after: wait,
                why: format!("server error (HTTP {status}: {said})"),
            },
            401 | 403 => Failure::Fatal(format!(
                "the LLM server refused the credentials (HTTP {status}: {said}): check OPENAI_API_KEY"
            )),
            404 => Failure::Fatal(format!(
                "the LLM server has no such model or endpoint (HTTP 404: {said}): check OPENAI_MODEL and OPENAI_BASE_URL"
            )),
            _ => Failure::Fatal(format!(
                "the LLM server rejected the request (HTTP {status}: {said})"
            )),
        }
    }
}

/// The start of what an error body says: OpenAI's and llama.cpp's `error.message`,
/// FastAPI's `detail`, else the body; one line, at most 200 characters.
pub fn server_message(body: &str) -> String {
    let v: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let said = v
        .as_ref()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .or_else(|| v.get("detail"))
                .or_else(|| v.get("error"))
        })
        .map(|m| match m {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_else(|| body.to_owned());
    let said = said.split_whitespace().collect::<Vec<_>>().join(" ");
    if said.is_empty() {
        return "no message".to_owned();
    }
    let mut cut: String = said.chars().take(200).collect();
    if said.chars().count() > 200 {
        cut.push('…');
    }
    cut
}

/// An error body about the response format: a server without structured outputs.
fn refuses_format(lower: &str) -> bool {
    ["response_format", "json_schema", "response format", "structured output"]
        .iter()
        .any(|w| lower.contains(w))
        // llama-cpp-python: "Input should be 'text' or 'json_object'".
        || (lower.contains("json_object") && lower.contains("input should be"))
}

/// An error body about the prompt not fitting: llama.cpp's exceed_context_size_error,
/// OpenAI's context_length_exceeded, llama-cpp-python's "exceed context window".
fn overflows_context(lower: &str) -> bool {
    [
        "exceed_context_size",
        "context_length_exceeded",
        "context length",
        "context window",
        "context size",
        "maximum context",
        "n_ctx",
    ]
    .iter()
    .any(|w| lower.contains(w))
}

/// The context size an error names: `"n_ctx":4096`, "context window of 2048",
/// "maximum context length is 128000".
fn context_size(lower: &str) -> Option<u32> {
    static SIZE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r#""n_ctx"\s*:\s*(\d+)|context (?:window|length|size) (?:of|is) (\d+)|maximum context length is (\d+)"#,
        )
        .unwrap_or_else(|e| panic!("context regex: {e}"))
    });
    let c = SIZE.captures(lower)?;
    (1..=3)
        .find_map(|i| c.get(i))
        .and_then(|m| m.as_str().parse().ok())
        .filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn go_durations_parse() {
        assert_eq!(go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(go_duration("1m2s"), Some(Duration::from_secs(62)));
        // More than an hour is read as an hour.
        assert_eq!(go_duration("2h"), Some(Duration::from_secs(3600)));
        assert_eq!(go_duration("soon"), None);
        assert_eq!(go_duration(""), None);
    }

    #[test]
    fn the_longest_server_wait_wins() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("1"));
        h.insert("x-ratelimit-reset-tokens", HeaderValue::from_static("2.5s"));
        h.insert("retry-after-ms", HeaderValue::from_static("300"));
        assert_eq!(server_wait(&h), Some(Duration::from_millis(2500)));
        assert_eq!(server_wait(&HeaderMap::new()), None);
    }

    #[test]
    fn failures_are_classified_by_status() {
        assert!(Failure::from_status(429, None, "{}").is_retryable());
        assert!(Failure::from_status(503, None, "").is_retryable());
        assert!(matches!(
            Failure::from_status(429, None, r#"{"error":{"code":"insufficient_quota"}}"#),
            Failure::Fatal(_)
        ));
        for s in [400, 401, 403, 404] {
            assert!(matches!(
                Failure::from_status(s, None, "no"),
                Failure::Fatal(_)
            ));
        }
        assert!(matches!(
            Failure::from_status(400, None, "response_format json_schema is not supported"),
            Failure::NoStructuredOutputs(_)
        ));
    }

    #[test]
    fn a_format_refusal_is_known_by_its_body_whatever_the_status() {
        // What llama-cpp-python's server answers to `json_schema`.
        let body = r#"{"error":{"message":"[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\"}]","type":"internal_server_error"}}"#;
        let Failure::NoStructuredOutputs(why) = Failure::from_status(500, None, body) else {
            panic!("a 500 naming response_format is a format refusal")
        };
        assert!(
            why.starts_with("HTTP 500: [{'type': 'literal_error'"),
            "{why}"
        );
        // A plain 500 is retried, with what the server said.
        let Failure::Retry { why, .. } =
            Failure::from_status(500, None, r#"{"error":{"message":"model crashed"}}"#)
        else {
            panic!("retry")
        };
        assert_eq!(why, "server error (HTTP 500: model crashed)");
    }

    #[test]
    fn a_context_overflow_says_how_large_the_context_is() {
        // llama.cpp's llama-server.
        let body = r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":8893,"n_ctx":4096}}"#;
        let Failure::ContextExceeded { context, why } = Failure::from_status(400, None, body)
        else {
            panic!("context error")
        };
        assert_eq!(context, Some(4096));
        assert!(why.contains("exceeds the available context size"), "{why}");
        // OpenAI.
        let body = r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.","code":"context_length_exceeded"}}"#;
        assert!(matches!(
            Failure::from_status(400, None, body),
            Failure::ContextExceeded {
                context: Some(128000),
                ..
            }
        ));
    }
}
