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
    /// Retrying cannot fix it (bad key, no quota, a request the server rejects).
    Fatal(String),
    /// The server does not support `response_format: json_schema`.
    NoStructuredOutputs,
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
            OpenAIError::Reqwest(e) => Failure::Retry {
                after: None,
                why: if e.is_timeout() {
                    "the request timed out".to_owned()
                } else {
                    format!("could not reach the server: {e}")
                },
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
                why: format!("server error (HTTP {status})"),
            },
            400 if lower.contains("response_format") || lower.contains("json_schema") => {
                Failure::NoStructuredOutputs
            }
            401 | 403 => Failure::Fatal(format!(
                "the LLM server refused the credentials (HTTP {status}): check OPENAI_API_KEY"
            )),
            404 => Failure::Fatal(format!(
                "the LLM server has no such model or endpoint (HTTP 404): check OPENAI_MODEL and OPENAI_BASE_URL ({})",
                body.chars().take(200).collect::<String>()
            )),
            _ => Failure::Fatal(format!(
                "the LLM server rejected the request (HTTP {status}): {}",
                body.chars().take(200).collect::<String>()
            )),
        }
    }
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
            Failure::NoStructuredOutputs
        ));
    }
}
