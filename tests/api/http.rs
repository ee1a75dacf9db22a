//! The HTTP tool server, started for real on a free port over the demo mailbox.

use std::sync::Arc;
use std::time::Duration;

use billable::analyze::llm::LlmAnalyzer;
use billable::analyze::rules::RulesAnalyzer;
use billable::config::{LlmConfig, Secret, ServerConfig};
use billable::context::Context;
use billable::domain::UserId;
use billable::http::{self, Auth};
use billable::mail::mbox::MboxSource;
use billable::store::sqlite::SqliteStore;
use billable::store::supabase::SupabaseStore;
use billable::tools::{self, NoProgress};
use jsonwebtoken::{EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::fake_openai::{Behaviour, FakeOpenAi};
use crate::helpers::{TestApp, demo_settings, fixture};
use crate::mbox_gen;

/// Supabase user ids are UUIDs.
const ALICE: &str = "a11ce000-0000-4000-8000-000000000001";
const BOB: &str = "b0b00000-0000-4000-8000-000000000002";
const FLOOD: &str = "f1000d00-0000-4000-8000-000000000003";
const CALM: &str = "ca1a0000-0000-4000-8000-000000000004";

pub const TOKEN: &str = "test-token-123";
pub const JWT_SECRET: &str = "super-secret-jwt-signing-key-for-tests-only";

/// A running server; stops when dropped.
pub struct Server {
    pub base: String,
    pub client: reqwest::Client,
    /// Holds the test's database until the server stops.
    pub _app: TestApp,
    /// The context the server serves, for checking what the store holds.
    pub ctx: Arc<Context>,
    shutdown: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Local mode with the bearer token `TOKEN`.
pub fn local_config() -> ServerConfig {
    ServerConfig {
        api_token: Some(Secret::new(TOKEN)),
        ..ServerConfig::default()
    }
}

/// Supabase mode, HS256 tokens signed with `JWT_SECRET`.
pub fn supabase_config() -> ServerConfig {
    ServerConfig {
        supabase_jwt_secret: Some(Secret::new(JWT_SECRET)),
        ..ServerConfig::default()
    }
}

/// Starts the real router on 127.0.0.1:0 with its own database, the demo mailbox and
/// the demo settings for the local user and for `users`.
pub async fn spawn(config: ServerConfig, users: &[&str]) -> Server {
    spawn_with(
        config,
        users,
        TestApp::new(),
        &fixture("demo.mbox"),
        demo_settings(),
    )
    .await
}

/// As `spawn`, over `mbox` with `settings`.
pub async fn spawn_with(
    config: ServerConfig,
    users: &[&str],
    app: TestApp,
    mbox: &std::path::Path,
    settings: Value,
) -> Server {
    let source = MboxSource::open(mbox).expect("mbox");
    let ctx = Arc::new(app.context(Some(Arc::new(source))));
    let mut all = vec![UserId::local()];
    all.extend(users.iter().map(|u| UserId::new(*u)));
    for user in &all {
        tools::call(
            &ctx,
            user,
            "configure_time_tracking",
            json!({ "settings": settings }),
            &NoProgress,
        )
        .await
        .expect("demo settings");
    }
    spawn_context(config, app, ctx).await
}

/// Serves a context the test built (another analyzer or store) as it is.
pub async fn spawn_context(config: ServerConfig, app: TestApp, ctx: Arc<Context>) -> Server {
    // As main does: one TLS provider for every client (reqwest here is built without one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (auth, _) = Auth::from_config(&config);
    let shutdown = CancellationToken::new();
    let router = http::router(ctx.clone(), &config, auth, shutdown.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(http::serve_on(
        listener,
        router,
        shutdown.clone(),
        Duration::from_secs(5),
    ));
    Server {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        _app: app,
        ctx,
        shutdown,
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> (StatusCode, Value) {
        let r = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = r.status();
        let text = r.text().await.expect("body");
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {text}"));
        (status, json)
    }

    pub async fn post_raw(&self, path: &str, body: &'static str) -> (StatusCode, Value) {
        let r = self
            .client
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.expect("JSON error body"))
    }
}

fn call(id: &str, name: &str, args: Value) -> Value {
    json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}})
}

/// The JSON inside a tool message, checked against its call id.
fn content(message: &Value, id: &str) -> Value {
    assert_eq!(message["role"], "tool", "{message}");
    assert_eq!(message["tool_call_id"], id, "{message}");
    let text = message["content"].as_str().expect("content is a string");
    serde_json::from_str(text).expect("content is JSON")
}

pub fn jwt(sub: &str, secret: &str, exp_offset: i64, aud: &str) -> String {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let claims = json!({
        "sub": sub, "aud": aud, "role": "authenticated",
        "exp": now + exp_offset, "iat": now - 10,
        "email": format!("{sub}@example.com"),
    });
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

#[tokio::test]
async fn the_tools_are_listed_as_the_openai_tools_array() {
    let s = spawn(local_config(), &[]).await;
    let r = s
        .client
        .get(s.url("/v1/tools"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    let took = r.headers()["x-response-time"].to_str().unwrap().to_owned();
    assert!(took.ends_with("ms"), "{took}");
    let tools: Value = r.json().await.unwrap();
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t["type"], "function");
            t["function"]["name"].as_str().unwrap()
        })
        .collect();
    let table: Vec<&str> = billable::tools::TOOLS.iter().map(|t| t.name).collect();
    assert_eq!(names, table);
    assert!(names.contains(&"scan_billable_time"));
}

#[tokio::test]
async fn every_tool_runs_through_tool_calls_including_two_in_parallel() {
    let s = spawn(local_config(), &[]).await;

    let (status, messages) = s
        .post(
            "/v1/tools/call",
            TOKEN,
            &call("c-scan", "scan_billable_time", json!({})),
        )
        .await;
    assert_eq!(status, 200, "{messages}");
    let scan = content(&messages[0], "c-scan");
    assert_eq!(scan["status"], "completed", "{scan}");
    let created = scan["entries_created"].as_u64().unwrap();
    assert!(created > 0, "{scan}");

    // Two calls in one request, as a model's parallel tool calls.
    let (status, messages) = s
        .post(
            "/v1/tools/call",
            TOKEN,
            &json!([
                call("c-list", "list_time_entries", json!({"limit": 100})),
                call(
                    "c-sum",
                    "get_time_tracking_summary",
                    json!({"group_by": "client"})
                ),
            ]),
        )
        .await;
    assert_eq!(status, 200, "{messages}");
    assert_eq!(messages.as_array().unwrap().len(), 2);
    let list = content(&messages[0], "c-list");
    assert_eq!(list["total"].as_u64(), Some(created), "{list}");
    let summary = content(&messages[1], "c-sum");
    let total: u64 = summary["total"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["entries"].as_u64().unwrap())
        .sum();
    assert_eq!(total, created, "{summary}");

    // A whole assistant message, as it comes back from the chat completion.
    let raw = "From: Dana <dana@acme.com>\r\nTo: me@example.com\r\nSubject: contract\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\nMessage-ID: <http-test-1@acme.com>\r\n\r\nPlease review the attached draft before Friday.\r\n";
    let message = json!({
        "role": "assistant",
        "content": null,
        "tool_calls": [
            call("c-an", "analyze_time_entry", json!({"raw_email": raw})),
            call("c-conf", "configure_time_tracking", json!({"settings": {"billing_increment_minutes": 15}})),
        ]
    });
    let (status, messages) = s.post("/v1/tools/call", TOKEN, &message).await;
    assert_eq!(status, 200, "{messages}");
    let analysis = content(&messages[0], "c-an");
    assert_eq!(analysis["message_id"], "http-test-1@acme.com", "{analysis}");
    assert_eq!(analysis["saved"], false);
    let settings = content(&messages[1], "c-conf");
    assert_eq!(settings["billing_increment_minutes"], 15, "{settings}");
}

#[tokio::test]
async fn a_tool_runs_on_its_own_route_with_plain_json() {
    let s = spawn(local_config(), &[]).await;
    let (status, out) = s
        .post("/v1/tools/list_time_entries", TOKEN, &json!({"limit": 5}))
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["total"], 0);
    assert_eq!(out["limit"], 5);
    // No body at all means no arguments.
    let r = s
        .client
        .post(s.url("/v1/tools/configure_time_tracking"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let settings: Value = r.json().await.unwrap();
    assert_eq!(settings["timezone"], demo_settings()["timezone"]);
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_naming_the_problem_and_never_a_500() {
    let s = spawn(local_config(), &[]).await;
    let cases: [(&str, &'static str, u16, &str); 7] = [
        (
            "/v1/tools/no_such_tool",
            "{}",
            404,
            "unknown tool `no_such_tool`",
        ),
        ("/v1/tools/list_time_entries", "{not json", 400, "not JSON"),
        (
            "/v1/tools/list_time_entries",
            r#"{"limit": "ten"}"#,
            422,
            "`limit`",
        ),
        (
            "/v1/tools/list_time_entries",
            r#"{"user_id": "someone-else"}"#,
            422,
            "`user_id`",
        ),
        (
            "/v1/tools/list_time_entries",
            "[1, 2]",
            422,
            "expected a JSON object",
        ),
        ("/v1/tools/call", r#"{"hello": "world"}"#, 422, "`id`"),
        ("/v1/tools/call", "[]", 422, "no tool calls"),
    ];
    for (path, body, status, needle) in cases {
        let (got, json) = s.post_raw(path, body).await;
        assert_eq!(got.as_u16(), status, "{path} {body}: {json}");
        let message = json["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{path} {body}: {message}");
    }

    // Inside a well-formed request, a bad call becomes a tool message the model can read.
    let (status, messages) = s
        .post(
            "/v1/tools/call",
            TOKEN,
            &json!([
                call("a", "no_such_tool", json!({})),
                {"id": "b", "type": "function", "function": {"name": "list_time_entries", "arguments": "{limit: 5"}},
                call("c", "get_time_tracking_summary", json!({"group_by": 7})),
                call("d", "list_time_entries", json!({"limit": 5, "extra": true})),
                call("e", "scan_billable_time", json!({"after": "last tuesday"})),
            ]),
        )
        .await;
    assert_eq!(status, 200, "{messages}");
    let expect = [
        ("a", "unknown tool `no_such_tool`"),
        ("b", "not JSON"),
        ("c", "`group_by`"),
        ("d", "`extra`"),
        ("e", "`after`"),
    ];
    for (message, (id, needle)) in messages.as_array().unwrap().iter().zip(expect) {
        let error = content(message, id);
        let text = error["error"]["message"].as_str().unwrap();
        assert!(text.contains(needle), "{id}: {text}");
    }
}

#[tokio::test]
async fn a_scan_streams_progress_then_its_result_as_server_sent_events() {
    let s = spawn(local_config(), &[]).await;
    let r = s
        .client
        .post(s.url("/v1/tools/scan_billable_time"))
        .bearer_auth(TOKEN)
        .header("accept", "text/event-stream")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = r.text().await.unwrap();
    let events: Vec<(&str, Value)> = text
        .split("\n\n")
        .filter_map(|block| {
            let event = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((
                event,
                serde_json::from_str(data).expect("event data is JSON"),
            ))
        })
        .collect();
    let (last, result) = events.last().expect("events");
    assert_eq!(*last, "result", "{text}");
    assert!(result["entries_created"].as_u64().unwrap() > 0);
    let progress: Vec<&Value> = events
        .iter()
        .filter(|(e, _)| *e == "progress")
        .map(|(_, v)| v)
        .collect();
    assert!(!progress.is_empty(), "{text}");
    assert_eq!(
        progress.last().unwrap()["examined"],
        result["examined"],
        "{text}"
    );
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401_but_health_needs_none() {
    let s = spawn(local_config(), &[]).await;
    let health = s.client.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = s.client.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    let none = s.client.get(s.url("/v1/tools")).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    let body: Value = none.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer"),
        "{body}"
    );
    let wrong = s
        .client
        .post(s.url("/v1/tools/list_time_entries"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let mcp = s
        .client
        .post(s.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(mcp.status(), 401);
}

#[tokio::test]
async fn supabase_tokens_are_verified_and_each_user_sees_only_their_own_data() {
    let s = spawn(supabase_config(), &[ALICE, BOB]).await;
    let alice = jwt(ALICE, JWT_SECRET, 3600, "authenticated");
    let bob = jwt(BOB, JWT_SECRET, 3600, "authenticated");
    let rejected = [
        (
            "forged",
            jwt(ALICE, "some-other-secret", 3600, "authenticated"),
            "signature",
        ),
        (
            "expired",
            jwt(ALICE, JWT_SECRET, -3600, "authenticated"),
            "expired",
        ),
        (
            "wrong audience",
            jwt(ALICE, JWT_SECRET, 3600, "anon"),
            "audience",
        ),
        ("not a JWT", "abc.def".to_owned(), "not a JWT"),
    ];
    for (what, token, needle) in rejected {
        let (status, body) = s
            .post("/v1/tools/list_time_entries", &token, &json!({}))
            .await;
        assert_eq!(status, 401, "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{what}: {message}");
    }

    let (status, scan) = s
        .post("/v1/tools/scan_billable_time", &alice, &json!({}))
        .await;
    assert_eq!(status, 200, "{scan}");
    assert!(scan["entries_created"].as_u64().unwrap() > 0);
    let (_, alices) = s
        .post("/v1/tools/list_time_entries", &alice, &json!({}))
        .await;
    let (_, bobs) = s
        .post("/v1/tools/list_time_entries", &bob, &json!({}))
        .await;
    assert_eq!(alices["total"], scan["entries_created"]);
    assert_eq!(bobs["total"], 0, "bob sees none of alice's entries");
}

#[tokio::test]
async fn a_flooding_user_gets_429_while_a_second_user_is_still_served() {
    let config = ServerConfig {
        user_rps: 2,
        ..supabase_config()
    };
    let s = spawn(config, &[FLOOD, CALM]).await;
    let flood = jwt(FLOOD, JWT_SECRET, 3600, "authenticated");
    let calm = jwt(CALM, JWT_SECRET, 3600, "authenticated");
    let mut limited = None;
    for _ in 0..20 {
        let r = s
            .client
            .get(s.url("/v1/tools"))
            .bearer_auth(&flood)
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status(), 200);
    }
    let limited = limited.expect("the flooding user is limited within 20 requests");
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");

    let r = s
        .client
        .get(s.url("/v1/tools"))
        .bearer_auth(&calm)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the other user is still served");
}

#[tokio::test]
async fn an_oversized_body_gets_413() {
    let config = ServerConfig {
        max_body_bytes: 1024,
        ..local_config()
    };
    let s = spawn(config, &[]).await;
    let big = json!({ "raw_email": "x".repeat(4096) });
    let r = s
        .client
        .post(s.url("/v1/tools/analyze_time_entry"))
        .bearer_auth(TOKEN)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = s
        .client
        .post(s.url("/v1/tools/call"))
        .bearer_auth(TOKEN)
        .json(&call("c", "analyze_time_entry", big))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // A body under the limit is still served.
    let (status, _) = s
        .post("/v1/tools/list_time_entries", TOKEN, &json!({}))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn metrics_count_requests_tool_latency_and_summary_cache_hits() {
    let s = spawn(local_config(), &[]).await;
    for _ in 0..2 {
        let (status, _) = s
            .post(
                "/v1/tools/get_time_tracking_summary",
                TOKEN,
                &json!({"group_by": "month"}),
            )
            .await;
        assert_eq!(status, 200);
    }
    let text = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            "billable_http_requests_total{method=\"POST\",route=\"/v1/tools/{name}\",status=\"200\"}"
        ),
        "{text}"
    );
    assert!(
        text.contains("billable_tool_duration_seconds_count{tool=\"get_time_tracking_summary\"}")
    );
    let hits = text
        .lines()
        .find_map(|l| l.strip_prefix("billable_cache_hits_total{cache=\"summary\"} "))
        .and_then(|n| n.parse::<u64>().ok())
        .expect("summary cache hits");
    assert!(hits >= 1);
    assert!(text.contains("# TYPE billable_upstream_retries_total counter"));

    let doc: Value = s
        .client
        .get(s.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/tools/scan_billable_time"]["post"].is_object());
}

#[tokio::test]
async fn a_streamed_tool_call_request_ends_with_the_tool_messages() {
    let s = spawn(local_config(), &[]).await;
    let text = s
        .client
        .post(s.url("/v1/tools/call"))
        .bearer_auth(TOKEN)
        .header("accept", "text/event-stream")
        .json(&json!([
            call("s1", "scan_billable_time", json!({})),
            call("s2", "no_such_tool", json!({})),
        ]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let progress = text.matches("event: progress").count();
    assert!(progress > 0, "{text}");
    assert!(
        text.contains(r#""tool_call_id":"s1""#),
        "progress names its call: {text}"
    );
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.starts_with("event: result"), "{text}");
    let data = last.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let messages: Value = serde_json::from_str(data).unwrap();
    assert!(
        content(&messages[0], "s1")["entries_created"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(content(&messages[1], "s2")["error"]["message"].is_string());
}

#[tokio::test]
async fn shutdown_lets_a_running_scan_finish_and_save_then_stops_serving() {
    let app = TestApp::new();
    let mbox = app.dir.path().join("big.mbox");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&mbox).unwrap());
    mbox_gen::write_mbox(&mut file, 3000).unwrap();
    drop(file);
    let settings: Value = serde_json::from_str(mbox_gen::SETTINGS).unwrap();
    let s = spawn_with(local_config(), &[], app, &mbox, settings).await;

    let scan = tokio::spawn(
        s.client
            .post(s.url("/v1/tools/scan_billable_time"))
            .bearer_auth(TOKEN)
            .json(&json!({}))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.shutdown.cancel();
    let r = scan.await.unwrap().expect("the running scan is answered");
    assert_eq!(r.status(), 200);
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(out["examined"], 3000);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = s.client.get(s.url("/healthz")).send().await;
    assert!(after.is_err(), "no new requests after shutdown: {after:?}");
}

#[tokio::test]
async fn a_request_slower_than_the_timeout_gets_408_with_a_json_error() {
    // The model takes 5 s to answer; the server gives a request 1 s.
    let fake = FakeOpenAi::start(Behaviour {
        latency: Duration::from_secs(5),
        ..Behaviour::default()
    })
    .await;
    let llm = LlmConfig {
        base_url: Some(fake.base_url.clone()),
        model: "fake-model".to_owned(),
        ..LlmConfig::default()
    };
    let app = TestApp::new();
    let store = SqliteStore::open(&app.db).expect("store");
    let analyzer = LlmAnalyzer::new(&llm).expect("llm analyzer");
    let ctx = Arc::new(Context::new(None, Arc::new(analyzer), Arc::new(store)));
    crate::helpers::configure_demo(&ctx).await;
    let config = ServerConfig {
        request_timeout_secs: 1,
        ..local_config()
    };
    let s = spawn_context(config, app, ctx).await;

    let raw = "From: Dana <dana@acme.com>\r\nTo: alex@morganlegal.com\r\nSubject: contract\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\nMessage-ID: <slow-1@acme.com>\r\n\r\nPlease review the liability cap in the attached draft before Friday.\r\n";
    let started = std::time::Instant::now();
    let (status, body) = s
        .post(
            "/v1/tools/analyze_time_entry",
            TOKEN,
            &json!({ "raw_email": raw }),
        )
        .await;
    let elapsed = started.elapsed();
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{body}");
    assert_eq!(body["error"]["code"], "timeout", "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("1 s"), "{message}");
    assert!(
        message.contains("BILLABLE_REQUEST_TIMEOUT_SECS"),
        "{message}"
    );
    assert!(
        elapsed < Duration::from_secs(4),
        "answered when the limit passed, not when the model did: {elapsed:?}"
    );
    assert_eq!(fake.requests(), 1, "the call was waiting on the model");
}

#[tokio::test]
async fn readiness_is_503_with_a_json_error_while_the_store_is_unreachable() {
    // A port nothing listens on: the store's ping is refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let store = SupabaseStore::new(&format!("http://127.0.0.1:{port}"), None).expect("store");
    let ctx = Arc::new(Context::new(None, Arc::new(RulesAnalyzer), Arc::new(store)));
    let s = spawn_context(supabase_config(), TestApp::new(), ctx).await;

    let health = s.client.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "alive even while the store is down");
    let ready = s.client.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("not reachable"), "{message}");
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
}

#[tokio::test]
async fn the_gmail_grant_route_never_echoes_a_token_and_says_what_the_server_lacks() {
    let s = spawn(local_config(), &[]).await;
    let get = s
        .client
        .get(s.url("/v1/gmail/grant"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(get.status(), 200);
    let status: Value = get.json().await.expect("json");
    assert_eq!(status["connected"], false, "{status}");
    let put = |body: &'static str| {
        s.client
            .put(s.url("/v1/gmail/grant"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // Not the expected shape: 422, and the answer quotes nothing it was sent.
    let r = put(r#"{"refresh_tokn": "1//leak-me"}"#).await.expect("put");
    assert_eq!(r.status(), 422);
    let text = r.text().await.unwrap();
    assert!(!text.contains("leak-me"), "{text}");
    // This server reads no Gmail: it says so and who can change it.
    let r = put(r#"{"refresh_token": "1//leak-me"}"#)
        .await
        .expect("put");
    assert_eq!(r.status(), 503);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("BILLABLE_TOKEN_KEY") && !text.contains("leak-me"),
        "{text}"
    );
    let r = s
        .client
        .delete(s.url("/v1/gmail/grant"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 401, "a token is needed");
}
