//! A fake Gmail API on 127.0.0.1:0 that serves a mailbox through Gmail's real wire
//! format, so the real google-gmail1 client is what the tests exercise:
//! `users.getProfile`, `users.messages.list` (pagination, `q` with Gmail's search
//! operators as `gmail_query` evaluates them), `users.messages.get` (raw, full, metadata,
//! minimal), `users.messages.attachments.get` and `users.history.list` (404 for an
//! expired start id). Faults are injectable: latency, a share of 429s (with
//! Retry-After), 403 rateLimitExceeded and 503s, a rejected token (401), and a quota
//! bucket in units per second that answers 429 when a client overdraws it. Calls are
//! counted by method, and retries that came before their Retry-After are counted.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use base64::Engine as _;
use billable::mail::mbox::MboxSource;
use billable::mail::{MailQuery, MailSource, RawEmail};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::gmail_query::{GmailQuery, Searchable};

pub const TOKEN: &str = "fake-gmail-token";
pub const ADDRESS: &str = "alex@morganlegal.com";

#[derive(Debug, Clone)]
pub struct FakeMessage {
    pub id: String,
    pub thread_id: String,
    /// Gmail label ids (SENT, INBOX, CATEGORY_PROMOTIONS, Label_…).
    pub label_ids: Vec<String>,
    /// What `q` searches of the message, as Gmail would.
    searchable: Arc<Searchable>,
    pub message_id: String,
    pub history_id: u64,
    pub bytes: Vec<u8>,
}

/// Faults the fake injects. Shares are per request, decided by a seeded generator.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub latency: Duration,
    /// Share of requests answered 429 with Retry-After.
    pub rate_429: f64,
    /// Share answered 403 rateLimitExceeded with Retry-After.
    pub rate_403: f64,
    /// Share answered 503 with Retry-After.
    pub rate_503: f64,
    pub retry_after_secs: u64,
    /// Every request answered 401 (a revoked grant).
    pub unauthorized: bool,
    /// Requests after this many (counted from when the faults were set) answered 401.
    pub unauthorized_after: Option<u64>,
    /// messages.get of this id answers malformed data (`raw` that is not base64).
    pub malformed_id: Option<String>,
}

/// Gmail's per-user quota: `units_per_sec`, a bucket of one second, method costs.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    pub units_per_sec: f64,
    pub get: f64,
    pub list: f64,
    pub history: f64,
    pub profile: f64,
    tokens: f64,
    at: Option<Instant>,
}

impl Bucket {
    pub fn legacy() -> Self {
        Bucket {
            units_per_sec: 250.0,
            get: 5.0,
            list: 5.0,
            history: 2.0,
            profile: 1.0,
            tokens: 250.0,
            at: None,
        }
    }

    /// Projects created from May 2026: 100 units/s, messages.get 20.
    pub fn y2026() -> Self {
        Bucket {
            units_per_sec: 100.0,
            get: 20.0,
            tokens: 100.0,
            ..Bucket::legacy()
        }
    }

    fn take(&mut self, cost: f64, now: Instant) -> bool {
        if let Some(at) = self.at {
            let refill = now.duration_since(at).as_secs_f64() * self.units_per_sec;
            self.tokens = (self.tokens + refill).min(self.units_per_sec);
        }
        self.at = Some(now);
        if self.tokens + 1e-9 >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

#[derive(Default)]
struct Inner {
    messages: Vec<FakeMessage>,
    history_id: u64,
    /// history.list with a start id below this answers 404.
    oldest_history: u64,
    faults: Faults,
    bucket: Option<Bucket>,
    calls: HashMap<String, u64>,
    quota_429s: u64,
    injected: u64,
    /// Per request key: when the last injected failure was answered and its Retry-After.
    failed_at: HashMap<String, (Instant, Duration)>,
    early_retries: u64,
    retries_checked: u64,
    /// Requests since the faults were last set.
    since_faults: u64,
    in_flight: u64,
    max_in_flight: u64,
    rng: u64,
}

#[derive(Clone)]
pub struct FakeGmail {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    server: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeGmail {
    fn drop(&mut self) {
        if Arc::strong_count(&self.server) == 1 {
            self.server.abort();
        }
    }
}

/// Takeout label names → Gmail label ids.
fn label_id(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    match upper.as_str() {
        "SENT" | "INBOX" | "IMPORTANT" | "STARRED" | "UNREAD" | "SPAM" | "TRASH" | "DRAFT" => upper,
        "DRAFTS" => "DRAFT".to_owned(),
        "OPENED" => "OPENED".to_owned(),
        _ => match upper.strip_prefix("CATEGORY ") {
            Some(cat) => format!("CATEGORY_{}", cat.replace(' ', "_")),
            None => format!("Label_{}", name.trim().replace(' ', "_")),
        },
    }
}

fn gmail_error(status: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"error": {
        "code": status.as_u16(),
        "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason}],
        "status": match status.as_u16() {
            401 => "UNAUTHENTICATED",
            403 => "PERMISSION_DENIED",
            404 => "NOT_FOUND",
            429 => "RESOURCE_EXHAUSTED",
            503 => "UNAVAILABLE",
            _ => "INVALID_ARGUMENT",
        },
    }});
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=UTF-8")
        .body(Body::from(body.to_string()))
        .expect("response")
}

fn ok(value: Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json; charset=UTF-8")
        .body(Body::from(value.to_string()))
        .expect("response")
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

fn query_params(uri: &Uri) -> Vec<(String, String)> {
    uri.query().map(url_pairs).unwrap_or_default()
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl FakeGmail {
    /// Serves the messages of an mbox (Takeout labels become label ids).
    pub async fn from_mbox(path: &std::path::Path) -> Self {
        let source = MboxSource::open(path).expect("mbox");
        let query = MailQuery::default();
        let mut raws: Vec<RawEmail> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut listing = source.list(&query);
        while let Some(item) = listing.next().await {
            let listed = item.expect("listed");
            // Gmail keeps one copy of messages with the same Message-ID.
            if seen.insert(listed.id.clone()) {
                raws.push(source.fetch(listed).await.expect("raw"));
            }
        }
        drop(listing);
        Self::start(raws).await
    }

    pub async fn start(raws: Vec<RawEmail>) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            history_id: 1000,
            oldest_history: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            faults: Faults {
                retry_after_secs: 1,
                ..Faults::default()
            },
            ..Inner::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake gmail");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let fake = FakeGmail {
            url: format!("http://{addr}/"),
            inner,
            server: Arc::new(server),
        };
        for raw in raws {
            fake.add(raw);
        }
        fake
    }

    /// Adds a message as newly arrived mail (a new history record); returns its id.
    pub fn add(&self, raw: RawEmail) -> String {
        let mut inner = self.inner.lock().unwrap();
        inner.history_id += 1;
        let n = inner.messages.len() as u64;
        let id = format!("{:016x}", 0x18c4_0000_0000_0000u64 + n * 7919);
        let label_ids: Vec<String> = raw.labels.iter().map(|l| label_id(l)).collect();
        let message = FakeMessage {
            thread_id: raw.thread_id.clone().unwrap_or_else(|| id.clone()),
            id: id.clone(),
            searchable: Arc::new(Searchable::from_raw(&raw.bytes, &label_ids)),
            label_ids,
            message_id: raw.id.clone(),
            history_id: inner.history_id,
            bytes: raw.bytes,
        };
        inner.messages.push(message);
        id
    }

    /// Delivers the message with Gmail id `id` once more, as Gmail does for a second
    /// alias or a list copy: the same bytes (so the same Message-ID) under a new Gmail
    /// id, in the inbox; returns the new id.
    pub fn deliver_again(&self, id: &str) -> String {
        let raw = {
            let inner = self.inner.lock().unwrap();
            let m = find(&inner, id).expect("a message with that id");
            RawEmail {
                id: m.message_id.clone(),
                thread_id: Some(m.thread_id.clone()),
                labels: vec!["Inbox".to_owned()],
                bytes: m.bytes.clone(),
            }
        };
        self.add(raw)
    }

    pub fn set_faults(&self, faults: Faults) {
        let mut inner = self.inner.lock().unwrap();
        inner.faults = faults;
        inner.since_faults = 0;
    }

    pub fn set_bucket(&self, bucket: Option<Bucket>) {
        self.inner.lock().unwrap().bucket = bucket;
    }

    /// History before now is no longer available (history.list answers 404).
    pub fn expire_history(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.oldest_history = inner.history_id + 1;
    }

    /// Calls of a method (`messages.get`, `messages.list`, `history.list`,
    /// `getProfile`, `attachments.get`), failed ones included.
    pub fn calls(&self, method: &str) -> u64 {
        self.inner
            .lock()
            .unwrap()
            .calls
            .get(method)
            .copied()
            .unwrap_or(0)
    }

    pub fn reset_calls(&self) {
        self.inner.lock().unwrap().calls.clear();
    }

    /// 429s answered because the quota bucket was empty.
    pub fn quota_429s(&self) -> u64 {
        self.inner.lock().unwrap().quota_429s
    }

    /// Failures injected (429, 403, 503, 401).
    pub fn injected(&self) -> u64 {
        self.inner.lock().unwrap().injected
    }

    /// Requests repeated before the Retry-After of their last failure had passed,
    /// and how many repeats were checked.
    pub fn early_retries(&self) -> (u64, u64) {
        let inner = self.inner.lock().unwrap();
        (inner.early_retries, inner.retries_checked)
    }

    /// The most requests the fake was answering at once.
    pub fn max_in_flight(&self) -> u64 {
        self.inner.lock().unwrap().max_in_flight
    }

    /// Gmail id → Message-ID header.
    pub fn message_ids(&self) -> HashMap<String, String> {
        self.inner
            .lock()
            .unwrap()
            .messages
            .iter()
            .map(|m| (m.id.clone(), m.message_id.clone()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().messages.len()
    }
}

/// Counts a request in flight until its response is built.
struct Flight(Arc<Mutex<Inner>>);

impl Flight {
    fn start(inner: &Arc<Mutex<Inner>>) -> Self {
        let mut g = inner.lock().unwrap();
        g.in_flight += 1;
        g.max_in_flight = g.max_in_flight.max(g.in_flight);
        Flight(inner.clone())
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        if let Ok(mut g) = self.0.lock() {
            g.in_flight -= 1;
        }
    }
}

fn next_random(inner: &mut Inner) -> f64 {
    // xorshift64*: deterministic, good enough for fault shares.
    let mut x = inner.rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    inner.rng = x;
    (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response<Body> {
    let arrived = Instant::now();
    let path = uri.path().to_owned();
    let params = query_params(&uri);
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // gmail/v1/users/{user}/...
    let (name, key) = match (method.clone(), &segments[..]) {
        (Method::GET, ["gmail", "v1", "users", _, "profile"]) => ("getProfile", path.clone()),
        (Method::GET, ["gmail", "v1", "users", _, "messages"]) => (
            "messages.list",
            format!(
                "list {} {}",
                param("q").unwrap_or_default(),
                param("pageToken").unwrap_or_default()
            ),
        ),
        (Method::GET, ["gmail", "v1", "users", _, "messages", _]) => ("messages.get", path.clone()),
        (Method::GET, ["gmail", "v1", "users", _, "messages", _, "attachments", _]) => {
            ("attachments.get", path.clone())
        }
        (Method::GET, ["gmail", "v1", "users", _, "history"]) => (
            "history.list",
            format!(
                "history {} {}",
                param("startHistoryId").unwrap_or_default(),
                param("pageToken").unwrap_or_default()
            ),
        ),
        _ => return gmail_error(StatusCode::NOT_FOUND, "notFound", "Not Found"),
    };

    let _flight = Flight::start(&inner);
    let latency = {
        let mut g = inner.lock().unwrap();
        *g.calls.entry(name.to_owned()).or_default() += 1;
        g.since_faults += 1;
        if let Some((at, wait)) = g.failed_at.remove(&key) {
            g.retries_checked += 1;
            if arrived.duration_since(at) < wait {
                g.early_retries += 1;
            }
        }
        g.faults.latency
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();

    let mut g = inner.lock().unwrap();
    let revoked = g.faults.unauthorized
        || g.faults
            .unauthorized_after
            .is_some_and(|n| g.since_faults > n);
    if revoked || bearer != TOKEN {
        g.injected += u64::from(revoked);
        return gmail_error(
            StatusCode::UNAUTHORIZED,
            "authError",
            "Request had invalid authentication credentials. Expected OAuth 2 access token.",
        );
    }
    // Quota first, as Google counts every request.
    let now = Instant::now();
    if let Some(mut bucket) = g.bucket {
        let cost = match name {
            "messages.get" | "attachments.get" => bucket.get,
            "messages.list" => bucket.list,
            "history.list" => bucket.history,
            _ => bucket.profile,
        };
        let allowed = bucket.take(cost, now);
        g.bucket = Some(bucket);
        if !allowed {
            g.quota_429s += 1;
            g.failed_at
                .insert(key, (Instant::now(), Duration::from_secs(1)));
            let mut r = gmail_error(
                StatusCode::TOO_MANY_REQUESTS,
                "rateLimitExceeded",
                "User-rate limit exceeded. Retry after 1s",
            );
            r.headers_mut().insert("retry-after", "1".parse().unwrap());
            return r;
        }
    }
    let roll = next_random(&mut g);
    let f = g.faults.clone();
    let injected = if roll < f.rate_429 {
        Some((
            StatusCode::TOO_MANY_REQUESTS,
            "rateLimitExceeded",
            "Too many concurrent requests for user",
        ))
    } else if roll < f.rate_429 + f.rate_403 {
        Some((
            StatusCode::FORBIDDEN,
            "userRateLimitExceeded",
            "User rate limit exceeded",
        ))
    } else if roll < f.rate_429 + f.rate_403 + f.rate_503 {
        Some((
            StatusCode::SERVICE_UNAVAILABLE,
            "backendError",
            "The service is currently unavailable.",
        ))
    } else {
        None
    };
    if let Some((status, reason, message)) = injected {
        g.injected += 1;
        let wait = Duration::from_secs(f.retry_after_secs);
        let mut r = gmail_error(status, reason, message);
        r.headers_mut().insert(
            "retry-after",
            f.retry_after_secs.to_string().parse().unwrap(),
        );
        g.failed_at.insert(key, (Instant::now(), wait));
        return r;
    }

    match (name, &segments[..]) {
        ("getProfile", _) => ok(json!({
            "emailAddress": ADDRESS,
            "messagesTotal": g.messages.len(),
            "threadsTotal": g.messages.len(),
            "historyId": g.history_id.to_string(),
        })),
        ("messages.list", _) => list(&g, &param),
        ("messages.get", [.., id]) if f.malformed_id.as_deref() == Some(*id) => ok(json!({
            "id": id,
            "threadId": id,
            "raw": "this is *not* base64url!",
        })),
        ("messages.get", [.., id]) => get(
            &g,
            id,
            &param("format").unwrap_or_else(|| "full".into()),
            &params,
        ),
        ("attachments.get", [.., id, "attachments", aid]) => attachment(&g, id, aid),
        ("history.list", _) => history(&g, &param),
        _ => gmail_error(StatusCode::NOT_FOUND, "notFound", "Not Found"),
    }
}

/// One page of a listing and the token of the next, if any.
type Page<T> = (Vec<T>, Option<String>);

fn page_of<T: Clone>(
    items: &[T],
    token: Option<String>,
    max: Option<String>,
) -> Result<Page<T>, Box<Response<Body>>> {
    let start = match token.filter(|t| !t.is_empty()) {
        Some(t) => t.parse::<usize>().map_err(|_| {
            Box::new(gmail_error(
                StatusCode::BAD_REQUEST,
                "invalidArgument",
                "Invalid pageToken",
            ))
        })?,
        None => 0,
    };
    let size = max
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 500);
    let end = (start + size).min(items.len());
    let page = items.get(start..end).map(<[T]>::to_vec).unwrap_or_default();
    let next = (end < items.len()).then(|| end.to_string());
    Ok((page, next))
}

fn list(g: &Inner, param: &dyn Fn(&str) -> Option<String>) -> Response<Body> {
    let q = param("q").unwrap_or_default();
    let query = match GmailQuery::parse(&q) {
        Ok(query) => query,
        Err(e) => {
            return gmail_error(
                StatusCode::BAD_REQUEST,
                "invalidArgument",
                &format!("Invalid query: {e}"),
            );
        }
    };
    // As Gmail: spam and trash only when asked for, by the parameter or the query.
    let spam_trash =
        param("includeSpamTrash").as_deref() == Some("true") || query.names_spam_or_trash();
    let label_filter: Vec<String> = param("labelIds").into_iter().collect();
    // Newest first, as Gmail lists.
    let matching: Vec<Value> = g
        .messages
        .iter()
        .rev()
        .filter(|m| spam_trash || !m.label_ids.iter().any(|l| l == "SPAM" || l == "TRASH"))
        .filter(|m| label_filter.iter().all(|l| m.label_ids.contains(l)))
        .filter(|m| query.matches(&m.searchable))
        .map(|m| json!({"id": m.id, "threadId": m.thread_id}))
        .collect();
    let total = matching.len();
    match page_of(&matching, param("pageToken"), param("maxResults")) {
        Ok((page, next)) => {
            let mut body = json!({"resultSizeEstimate": total});
            if !page.is_empty() {
                body["messages"] = Value::Array(page);
            }
            if let Some(n) = next {
                body["nextPageToken"] = Value::String(n);
            }
            ok(body)
        }
        Err(r) => *r,
    }
}

fn find<'a>(g: &'a Inner, id: &str) -> Option<&'a FakeMessage> {
    g.messages.iter().find(|m| m.id == id)
}

fn header_list(
    parsed: &mail_parser::Message<'_>,
    part: &mail_parser::MessagePart<'_>,
    only: &[String],
) -> Vec<Value> {
    part.headers
        .iter()
        .filter(|h| only.is_empty() || only.iter().any(|o| o.eq_ignore_ascii_case(h.name.as_str())))
        .map(|h| {
            let raw = parsed
                .raw_message
                .get(h.offset_start as usize..h.offset_end as usize)
                .map(|b| String::from_utf8_lossy(b).trim().to_owned())
                .unwrap_or_default();
            json!({"name": h.name.as_str(), "value": raw})
        })
        .collect()
}

fn part_json(parsed: &mail_parser::Message<'_>, index: usize, msg_id: &str) -> Value {
    use mail_parser::{MimeHeaders, PartType};
    let Some(part) = parsed.parts.get(index) else {
        return json!({});
    };
    let mime = part
        .content_type()
        .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("plain")))
        .unwrap_or_else(|| "text/plain".to_owned());
    let mut value = json!({
        "partId": index.to_string(),
        "mimeType": mime,
        "filename": part.attachment_name().unwrap_or_default(),
        "headers": header_list(parsed, part, &[]),
    });
    match &part.body {
        PartType::Multipart(children) => {
            value["body"] = json!({"size": 0});
            value["parts"] = Value::Array(
                children
                    .iter()
                    .map(|c| part_json(parsed, *c as usize, msg_id))
                    .collect(),
            );
        }
        _ => {
            let contents = part.contents();
            if part.attachment_name().is_some() {
                value["body"] = json!({"size": contents.len(), "attachmentId": format!("att-{msg_id}-{index}")});
            } else {
                value["body"] = json!({"size": contents.len(), "data": b64(contents)});
            }
        }
    }
    value
}

fn get(g: &Inner, id: &str, format: &str, params: &[(String, String)]) -> Response<Body> {
    let Some(m) = find(g, id) else {
        return gmail_error(
            StatusCode::NOT_FOUND,
            "notFound",
            "Requested entity was not found.",
        );
    };
    let parsed = mail_parser::MessageParser::default().parse(&m.bytes);
    let internal = parsed
        .as_ref()
        .and_then(|p| p.date())
        .map(|d| d.to_timestamp() * 1000)
        .unwrap_or_default();
    let snippet: String = parsed
        .as_ref()
        .and_then(|p| p.body_text(0))
        .map(|t| t.chars().take(100).collect())
        .unwrap_or_default();
    let mut body = json!({
        "id": m.id,
        "threadId": m.thread_id,
        "labelIds": m.label_ids,
        "snippet": snippet,
        "historyId": m.history_id.to_string(),
        "internalDate": internal.to_string(),
        "sizeEstimate": m.bytes.len(),
    });
    match format {
        "raw" => body["raw"] = Value::String(b64(&m.bytes)),
        "minimal" => {}
        "metadata" | "full" => {
            let Some(parsed) = parsed else {
                return gmail_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "backendError",
                    "unparseable message",
                );
            };
            if format == "metadata" {
                let only: Vec<String> = params
                    .iter()
                    .filter(|(k, _)| k == "metadataHeaders")
                    .map(|(_, v)| v.clone())
                    .collect();
                let root = parsed.parts.first();
                body["payload"] = json!({
                    "mimeType": "message/rfc822",
                    "headers": root.map(|p| header_list(&parsed, p, &only)).unwrap_or_default(),
                });
            } else {
                body["payload"] = part_json(&parsed, 0, &m.id);
            }
        }
        other => {
            return gmail_error(
                StatusCode::BAD_REQUEST,
                "invalidArgument",
                &format!("Invalid value for format: {other}"),
            );
        }
    }
    ok(body)
}

fn attachment(g: &Inner, id: &str, aid: &str) -> Response<Body> {
    let Some(m) = find(g, id) else {
        return gmail_error(
            StatusCode::NOT_FOUND,
            "notFound",
            "Requested entity was not found.",
        );
    };
    let index = aid
        .strip_prefix(&format!("att-{id}-"))
        .and_then(|i| i.parse::<usize>().ok());
    let parsed = mail_parser::MessageParser::default().parse(&m.bytes);
    match (parsed, index) {
        (Some(p), Some(i)) if i < p.parts.len() => {
            let contents = p.parts[i].contents();
            ok(json!({"attachmentId": aid, "size": contents.len(), "data": b64(contents)}))
        }
        _ => gmail_error(
            StatusCode::NOT_FOUND,
            "notFound",
            "Requested entity was not found.",
        ),
    }
}

fn history(g: &Inner, param: &dyn Fn(&str) -> Option<String>) -> Response<Body> {
    let Some(start) = param("startHistoryId").and_then(|s| s.parse::<u64>().ok()) else {
        return gmail_error(
            StatusCode::BAD_REQUEST,
            "invalidArgument",
            "startHistoryId is required",
        );
    };
    if start < g.oldest_history {
        return gmail_error(
            StatusCode::NOT_FOUND,
            "notFound",
            "Requested entity was not found.",
        );
    }
    let records: Vec<Value> = g
        .messages
        .iter()
        .filter(|m| m.history_id > start)
        .map(|m| {
            let short = json!({"id": m.id, "threadId": m.thread_id});
            json!({
                "id": m.history_id.to_string(),
                "messages": [short],
                "messagesAdded": [{"message": {"id": m.id, "threadId": m.thread_id, "labelIds": m.label_ids}}],
            })
        })
        .collect();
    match page_of(&records, param("pageToken"), param("maxResults")) {
        Ok((page, next)) => {
            let mut body = json!({"historyId": g.history_id.to_string()});
            if !page.is_empty() {
                body["history"] = Value::Array(page);
            }
            if let Some(n) = next {
                body["nextPageToken"] = Value::String(n);
            }
            ok(body)
        }
        Err(r) => *r,
    }
}

/// Many users' mailboxes behind one Gmail API root, as Google serves a firm: a
/// user's stored grant (refresh token [`FakeGmailFirm::refresh_token`]`(n)`) is
/// exchanged at `/token` for an access token that reaches mailbox `n` only, a
/// [`FakeGmail`] of its own with its own quota bucket and counters.
pub struct FakeGmailFirm {
    /// The API root (`GMAIL_API_BASE_URL`); its `/token` is the OAuth token endpoint.
    pub url: String,
    pub mailboxes: Arc<Vec<FakeGmail>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGmailFirm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeGmailFirm {
    pub fn refresh_token(n: usize) -> String {
        format!("1//firm-refresh-{n}")
    }

    /// A generated mailbox of `size` messages (benches/support/mbox_gen.rs, its mbox
    /// written once into `dir`) with `latency` a request and Gmail's legacy quota
    /// bucket, as one member of a firm.
    pub async fn mailbox(dir: &std::path::Path, size: usize, latency: Duration) -> FakeGmail {
        let path = dir.join(format!("mailbox-{size}.mbox"));
        if !path.exists() {
            let mut file = std::fs::File::create(&path).expect("mbox");
            crate::mbox_gen::write_mbox(&mut file, size).expect("write mbox");
        }
        let fake = FakeGmail::from_mbox(&path).await;
        fake.set_faults(Faults {
            latency,
            ..Faults::default()
        });
        fake.set_bucket(Some(Bucket::legacy()));
        fake
    }

    /// An "installed app" OAuth client whose token endpoint is the firm's, written
    /// into `dir` (`GMAIL_CLIENT_SECRET_FILE`).
    pub fn client_secret(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("firm_client_secret.json");
        let secret = json!({"installed": {
            "client_id": "billable-firm.apps.googleusercontent.com",
            "client_secret": "not-so-secret",
            "auth_uri": format!("{}auth", self.url),
            "token_uri": format!("{}token", self.url),
            "redirect_uris": ["http://localhost"],
        }});
        std::fs::write(&path, secret.to_string()).expect("client secret");
        path
    }

    pub async fn start(mailboxes: Vec<FakeGmail>) -> Self {
        let mailboxes = Arc::new(mailboxes);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the firm's gmail");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let app = Router::new()
            .fallback(firm)
            .with_state((mailboxes.clone(), reqwest::Client::new()));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGmailFirm {
            url: format!("http://{addr}/"),
            mailboxes,
            server,
        }
    }
}

async fn firm(
    State((mailboxes, client)): State<(Arc<Vec<FakeGmail>>, reqwest::Client)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response<Body> {
    if uri.path() == "/token" {
        let form = url_pairs(&String::from_utf8_lossy(&body));
        let grant = form
            .iter()
            .find(|(k, _)| k == "refresh_token")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        let n = (0..mailboxes.len()).find(|&n| FakeGmailFirm::refresh_token(n) == grant);
        let body = match n {
            Some(n) => json!({"access_token": format!("firm-access-{n}"), "expires_in": 3600,
                              "token_type": "Bearer",
                              "scope": "https://www.googleapis.com/auth/gmail.readonly"}),
            None => {
                return Response::builder()
                    .status(StatusCode::BAD_REQUEST)
                    .header("content-type", "application/json")
                    .body(Body::from(
                        json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
                            .to_string(),
                    ))
                    .expect("response");
            }
        };
        return ok(body);
    }
    let mailbox = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer firm-access-"))
        .and_then(|n| n.parse::<usize>().ok())
        .and_then(|n| mailboxes.get(n));
    let Some(mailbox) = mailbox else {
        return gmail_error(
            StatusCode::UNAUTHORIZED,
            "authError",
            "Request had invalid authentication credentials. Expected OAuth 2 access token.",
        );
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let upstream = format!("{}{}", mailbox.url.trim_end_matches('/'), path);
    let forwarded = client
        .request(method, upstream)
        .bearer_auth(TOKEN)
        .body(body)
        .send()
        .await;
    let Ok(r) = forwarded else {
        return gmail_error(StatusCode::BAD_GATEWAY, "backendError", "mailbox down");
    };
    let mut out = Response::builder().status(r.status());
    for name in ["content-type", "retry-after"] {
        if let Some(v) = r.headers().get(name) {
            out = out.header(name, v.clone());
        }
    }
    let bytes = r.bytes().await.unwrap_or_default();
    out.body(Body::from(bytes)).expect("response")
}
