//! A local fake of an OpenAI-compatible chat completions server (axum on
//! 127.0.0.1:0), for testing our real async-openai client. It plays a model that
//! answers the prompt format of prompts/analysis-v2 and can misbehave on demand:
//! latency, 429 with Retry-After, 500, 401, no structured-output support, malformed
//! JSON, wrong indices, out-of-range values, truncated answers, and an "obedient"
//! model that does whatever the mail tells it.
//!
//! It counts requests, tracks the most requests in flight at once, notices a retry
//! sent before the Retry-After it was given, and estimates tokens as characters / 4
//! (reported in `usage`, so our client's token counters read the same numbers).

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// How the fake model answers a request that gets through.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// A good model: the first candidate client, the estimate, the message's date.
    /// Text containing "THANKS-ONLY" is judged not billable.
    Echo,
    /// A model that obeyed an injected instruction: this client, these minutes.
    Obedient { client: String, minutes: f64 },
    /// The content is not JSON.
    Malformed,
    /// The HTTP body is not a chat completion at all.
    MalformedEnvelope,
    /// Indices shifted by 100.
    WrongIndices,
    /// Confidence 3.0 and a work date ten days off.
    OutOfRange,
    /// Half the content and finish_reason "length".
    Truncated,
    /// Junk for four messages by index mod 4: a description of ",", not billable at
    /// confidence 0.3, the sender's name as the description, not billable at 0.95.
    Junk,
    /// A model that loops: every answer, then the same answers again until the
    /// request's `max_tokens` (4 characters a token) runs out mid-item, finish_reason
    /// "length".
    Looping,
}

#[derive(Debug, Clone)]
pub struct Behaviour {
    pub latency: Duration,
    /// Percentage of requests answered 429 (spread evenly, deterministically).
    pub rate_limit_pct: u64,
    /// The Retry-After header sent with a 429, in seconds.
    pub retry_after_secs: u64,
    /// The first this-many requests get a 500.
    pub fail_500_first: usize,
    /// Every request gets this status (401, 403, 400, 429 insufficient_quota…).
    pub always_status: Option<(u16, &'static str)>,
    /// 400 for `response_format: json_schema`, as servers without structured outputs.
    pub no_structured_outputs: bool,
    /// 500 for `json_schema`, as llama-cpp-python's server answers it.
    pub json_schema_500: bool,
    /// The model's context: a request whose prompt and `max_tokens` exceed it gets
    /// llama.cpp's 400 exceed_context_size_error. The prompt is counted as 2.5
    /// characters a token, as SmolLM2's tokenizer counts mail (12,119 characters of
    /// the demo mailbox are 5,332 tokens).
    pub context_tokens: Option<usize>,
    /// Requests about more than this many messages take this long (a slow CPU
    /// model), instead of `latency`.
    pub slow_over: Option<(usize, Duration)>,
    /// The mode of the first `bad_count` answering requests; `Echo` after them.
    pub bad: Mode,
    pub bad_count: usize,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            latency: Duration::ZERO,
            rate_limit_pct: 0,
            retry_after_secs: 1,
            fail_500_first: 0,
            always_status: None,
            no_structured_outputs: false,
            json_schema_500: false,
            context_tokens: None,
            slow_over: None,
            bad: Mode::Echo,
            bad_count: 0,
        }
    }
}

impl Behaviour {
    /// Every answer in `mode`.
    pub fn always(mode: Mode) -> Self {
        Behaviour {
            bad: mode,
            bad_count: usize::MAX,
            ..Behaviour::default()
        }
    }
}

#[derive(Default)]
struct Counts {
    requests: usize,
    answered: usize,
    rate_limited: usize,
    /// Body hash → when it may be sent again.
    not_before: HashMap<u64, Instant>,
    early_retries: usize,
    /// Requests recognised as the retry of one answered 429.
    retries_after_429: usize,
    prompt_tokens: usize,
    completion_tokens: usize,
    messages: usize,
    context_errors: usize,
    bodies: Vec<Value>,
    /// When each request arrived.
    arrivals: Vec<Instant>,
}

pub struct Shared {
    behaviour: Mutex<Behaviour>,
    counts: Mutex<Counts>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

pub struct FakeOpenAi {
    /// The API root, e.g. http://127.0.0.1:PORT/v1 (what OPENAI_BASE_URL would hold).
    pub base_url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeOpenAi {
    pub async fn start(behaviour: Behaviour) -> FakeOpenAi {
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(behaviour),
            counts: Mutex::new(Counts::default()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake");
        let addr = listener.local_addr().expect("fake address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeOpenAi {
            base_url: format!("http://{addr}/v1"),
            shared,
            server,
        }
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock().expect("lock") = behaviour;
    }

    /// HTTP requests received, of every outcome.
    pub fn requests(&self) -> usize {
        self.shared.counts.lock().expect("lock").requests
    }
    pub fn rate_limited(&self) -> usize {
        self.shared.counts.lock().expect("lock").rate_limited
    }
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }
    /// Requests that came back before the Retry-After they were given had passed.
    pub fn early_retries(&self) -> usize {
        self.shared.counts.lock().expect("lock").early_retries
    }
    /// Requests that repeated a request answered 429 (same body).
    pub fn retries_after_429(&self) -> usize {
        self.shared.counts.lock().expect("lock").retries_after_429
    }
    /// (messages asked about, prompt tokens, completion tokens) over answered requests.
    pub fn tokens(&self) -> (usize, usize, usize) {
        let c = self.shared.counts.lock().expect("lock");
        (c.messages, c.prompt_tokens, c.completion_tokens)
    }
    /// Requests refused for not fitting `context_tokens`.
    pub fn context_errors(&self) -> usize {
        self.shared.counts.lock().expect("lock").context_errors
    }
    /// The most requests that arrived within any `window`.
    pub fn most_within(&self, window: Duration) -> usize {
        let mut arrivals = self.shared.counts.lock().expect("lock").arrivals.clone();
        arrivals.sort();
        let mut most = 0;
        let mut first = 0;
        for (last, at) in arrivals.iter().enumerate() {
            while at.duration_since(arrivals[first]) >= window {
                first += 1;
            }
            most = most.max(last + 1 - first);
        }
        most
    }

    /// The JSON bodies of every request received.
    pub fn bodies(&self) -> Vec<Value> {
        self.shared.counts.lock().expect("lock").bodies.clone()
    }
}

struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn hash(bytes: &[u8]) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

fn error(status: u16, message: &str, code: Option<&str>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}});
    (status, axum::Json(body)).into_response()
}

async fn completions(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let now = Instant::now();
    let n = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(n, Ordering::SeqCst);
    let _guard = InFlight(&shared);
    let behaviour = shared.behaviour.lock().expect("lock").clone();
    let key = hash(&body);
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let number = {
        let mut c = shared.counts.lock().expect("lock");
        let number = c.requests;
        c.requests += 1;
        c.bodies.push(request.clone());
        c.arrivals.push(now);
        if let Some(at) = c.not_before.remove(&key) {
            c.retries_after_429 += 1;
            if now < at {
                c.early_retries += 1;
            }
        }
        number
    };
    let user = request["messages"][1]["content"].as_str().unwrap_or("");
    let blocks = blocks(user);
    let latency = match behaviour.slow_over {
        Some((n, slow)) if blocks.len() > n => slow,
        _ => behaviour.latency,
    };
    tokio::time::sleep(latency).await;

    if let Some((status, code)) = behaviour.always_status {
        return error(status, "refused by the fake", Some(code));
    }
    if number < behaviour.fail_500_first {
        return (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response();
    }
    if (number as u64 * 37) % 100 < behaviour.rate_limit_pct {
        let mut c = shared.counts.lock().expect("lock");
        c.rate_limited += 1;
        c.not_before.insert(
            key,
            Instant::now() + Duration::from_secs(behaviour.retry_after_secs),
        );
        let mut r = error(
            429,
            "Rate limit reached for requests",
            Some("rate_limit_exceeded"),
        );
        r.headers_mut().insert(
            "retry-after",
            HeaderValue::from_str(&behaviour.retry_after_secs.to_string()).expect("header"),
        );
        return r;
    }
    let format = request["response_format"]["type"].as_str().unwrap_or("");
    if behaviour.no_structured_outputs && format == "json_schema" {
        return error(
            400,
            "response_format of type json_schema is not supported by this model",
            None,
        );
    }
    if behaviour.json_schema_500 && format == "json_schema" {
        // llama-cpp-python's server (FastAPI): a validation error answered 500.
        let body = json!({"error": {"message": "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}]", "type": "internal_server_error", "param": null, "code": null}});
        return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response();
    }
    let prompt_chars: usize = request["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| m["content"].as_str().map_or(0, str::len))
                .sum()
        })
        .unwrap_or(0);
    let max_tokens = request["max_tokens"].as_u64().unwrap_or(4096) as usize;
    if let Some(n_ctx) = behaviour.context_tokens
        && prompt_chars * 2 / 5 + max_tokens > n_ctx
    {
        // llama.cpp's llama-server.
        shared.counts.lock().expect("lock").context_errors += 1;
        let body = json!({"error": {"code": 400, "message": "the request exceeds the available context size, try increasing it", "type": "exceed_context_size_error", "n_prompt_tokens": prompt_chars * 2 / 5, "n_ctx": n_ctx}});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    let answering = {
        let mut c = shared.counts.lock().expect("lock");
        c.answered += 1;
        c.answered - 1
    };
    let mode = if answering < behaviour.bad_count {
        behaviour.bad.clone()
    } else {
        Mode::Echo
    };
    let (content, finish) = answer(&mode, &blocks, max_tokens);
    {
        let mut c = shared.counts.lock().expect("lock");
        c.messages += blocks.len();
        c.prompt_tokens += prompt_chars / 4;
        c.completion_tokens += content.len() / 4;
    }
    if mode == Mode::MalformedEnvelope {
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            "{\"id\": 1, \"choices\": [",
        )
            .into_response();
    }
    let body = json!({
        "id": format!("chatcmpl-{number}"),
        "object": "chat.completion",
        "created": 1_763_900_000u64,
        "model": request["model"],
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "finish_reason": finish,
            "logprobs": null
        }],
        "usage": {
            "prompt_tokens": prompt_chars / 4,
            "completion_tokens": content.len() / 4,
            "total_tokens": prompt_chars / 4 + content.len() / 4
        }
    });
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-ratelimit-remaining-requests",
        HeaderValue::from_static("1000"),
    );
    (StatusCode::OK, headers, axum::Json(body)).into_response()
}

/// One message block of the user prompt, as the fake model reads it.
#[derive(Debug, Default)]
pub struct Block {
    pub index: i64,
    pub candidates: Vec<String>,
    pub estimate: f64,
    pub date: String,
    pub text: String,
}

/// Splits the prompt by its delimiters (`<<<MSG-{nonce} i=N>>>` … `<<<END-{nonce}>>>`).
pub fn blocks(user: &str) -> Vec<Block> {
    let Some(nonce) = user
        .split("Delimiter nonce: ")
        .nth(1)
        .and_then(|r| r.split('.').next())
    else {
        return Vec::new();
    };
    let open = format!("<<<MSG-{nonce} i=");
    let close = format!("<<<END-{nonce}>>>");
    let mut out = Vec::new();
    for part in user.split(&open).skip(1) {
        let Some((head, rest)) = part.split_once(">>>") else {
            continue;
        };
        let body = rest.split(&close).next().unwrap_or("");
        let mut b = Block {
            index: head.trim().parse().unwrap_or(-1),
            ..Block::default()
        };
        let mut in_text = false;
        for line in body.lines() {
            if in_text {
                b.text.push_str(line);
                b.text.push('\n');
            } else if let Some(v) = line.strip_prefix("candidates: ") {
                b.candidates = serde_json::from_str(v).unwrap_or_default();
            } else if let Some(v) = line.strip_prefix("estimate: ") {
                b.estimate = v.parse().unwrap_or(0.0);
            } else if let Some(v) = line.strip_prefix("date: ") {
                b.date = v.to_owned();
            } else if line == "text:" {
                in_text = true;
            }
        }
        out.push(b);
    }
    out
}

fn answer(mode: &Mode, blocks: &[Block], max_tokens: usize) -> (String, &'static str) {
    let items: Vec<Value> = blocks
        .iter()
        .map(|b| {
            let billable = !b.text.contains("THANKS-ONLY") && !b.candidates.is_empty();
            let mut v = json!({
                "i": b.index,
                "b": billable,
                "c": if billable { json!(b.candidates[0]) } else { Value::Null },
                "m": b.estimate,
                "d": b.date,
                "t": "Reviewed and answered client correspondence",
                "k": 0.9,
                "w": if billable { "client correspondence" } else { "just thanks" }
            });
            match mode {
                Mode::Obedient { client, minutes } => {
                    v["b"] = json!(true);
                    v["c"] = json!(client);
                    v["m"] = json!(minutes);
                    v["t"] = json!("Work as instructed in the email");
                    v["k"] = json!(1.0);
                }
                Mode::WrongIndices => v["i"] = json!(b.index + 100),
                Mode::Junk => match b.index % 4 {
                    0 => v["t"] = json!(","),
                    1 => {
                        v["b"] = json!(false);
                        v["k"] = json!(0.3);
                    }
                    2 => v["t"] = json!("Dana Smith"),
                    _ => {
                        v["b"] = json!(false);
                        v["k"] = json!(0.95);
                    }
                },
                Mode::OutOfRange => {
                    v["k"] = json!(3.0);
                    v["d"] = json!("1999-01-01");
                }
                _ => {}
            }
            v
        })
        .collect();
    let content = json!({ "r": items }).to_string();
    match mode {
        Mode::Malformed => ("{\"r\": [{\"i\": 0, \"b\": tru".to_owned(), "stop"),
        Mode::Truncated => (content[..content.len() / 2].to_owned(), "length"),
        Mode::Looping => {
            let once: Vec<String> = items.iter().map(Value::to_string).collect();
            let mut looped = String::from("{\"r\":[");
            let cap = max_tokens * 4;
            'fill: while !once.is_empty() {
                for item in &once {
                    if looped.len() + item.len() + 1 > cap {
                        // Cut off mid-item, as a token cap cuts.
                        looped.push_str(&item[..item.len() / 2]);
                        break 'fill;
                    }
                    if !looped.ends_with('[') {
                        looped.push(',');
                    }
                    looped.push_str(item);
                }
            }
            (looped, "length")
        }
        _ => (content, "stop"),
    }
}
