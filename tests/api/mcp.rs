//! MCP with rmcp's own client: over streamable HTTP against the real server, and over
//! stdio against the real binary (`billable mcp`).

use std::sync::{Arc, Mutex};

use rmcp::model::{CallToolRequestParams, ProgressNotificationParam};
use rmcp::service::{NotificationContext, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};

use crate::helpers::{TestApp, fixture, path_str};
use crate::http::{TOKEN, local_config, spawn};

/// A client that keeps every progress notification it receives.
#[derive(Clone, Default)]
struct Client {
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
}

impl ClientHandler for Client {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().unwrap().push(params);
    }
}

/// A bare MCP initialize request, for tests that speak HTTP directly.
const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

fn args(v: Value) -> rmcp::model::JsonObject {
    v.as_object().expect("object").clone()
}

/// What every transport must do: list, call, fail clearly, scan with progress.
async fn exercise(client: &RunningService<RoleClient, Client>, progress: &Client) {
    let info = client.peer_info().expect("initialized");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("billable")
    );

    let tools = client.list_all_tools().await.expect("tools/list");
    assert_eq!(tools.len(), billable::tools::TOOLS.len());
    for tool in &tools {
        assert_eq!(tool.input_schema["type"], "object", "{}", tool.name);
        assert!(tool.output_schema.is_some(), "{}", tool.name);
    }
    let hints = |name: &str| {
        let t = tools.iter().find(|t| t.name == name).expect(name);
        let a = t.annotations.clone().expect("annotations");
        (a.read_only_hint, a.idempotent_hint)
    };
    assert_eq!(hints("get_time_tracking_summary"), (Some(true), Some(true)));
    assert_eq!(hints("list_time_entries"), (Some(true), Some(true)));
    assert_eq!(hints("configure_time_tracking").1, Some(true));

    // A scan, with progress notifications before its structured result.
    let scan = client
        .call_tool(CallToolRequestParams::new("scan_billable_time").with_arguments(args(json!({}))))
        .await
        .expect("scan");
    assert_eq!(scan.is_error, Some(false));
    let out = scan.structured_content.expect("structured content");
    let created = out["entries_created"].as_u64().unwrap();
    assert!(created > 0, "{out}");
    let notes = progress.progress.lock().unwrap().clone();
    assert!(!notes.is_empty(), "progress notifications during the scan");
    assert_eq!(
        notes.last().unwrap().progress,
        out["examined"].as_f64().unwrap()
    );
    assert!(notes.windows(2).all(|w| w[0].progress < w[1].progress));

    let list = client
        .call_tool(
            CallToolRequestParams::new("list_time_entries")
                .with_arguments(args(json!({"limit": 3}))),
        )
        .await
        .expect("list");
    let list = list.structured_content.expect("structured content");
    assert_eq!(list["total"].as_u64(), Some(created));
    assert_eq!(
        list["entries"].as_array().unwrap().len(),
        3.min(created as usize)
    );

    // Nullable fields are advertised as anyOf with null, not as type arrays.
    for tool in &tools {
        let text = serde_json::to_string(&tool.input_schema).unwrap();
        assert!(!text.contains(r#""null"]"#), "{}: {text}", tool.name);
    }
    let scan_tool = tools
        .iter()
        .find(|t| t.name == "scan_billable_time")
        .unwrap();
    assert_eq!(
        scan_tool.input_schema["properties"]["after"]["anyOf"][1],
        json!({"type": "null"}),
        "{:?}",
        scan_tool.input_schema
    );

    // An unknown tool is a protocol error that says what is wrong.
    let unknown = client
        .call_tool(CallToolRequestParams::new("rm_rf"))
        .await
        .unwrap_err();
    let ServiceError::McpError(e) = unknown else {
        panic!("expected a protocol error, got {unknown:?}");
    };
    assert!(e.message.contains("unknown tool `rm_rf`"), "{}", e.message);
    // Invalid arguments come back as a tool result the model can read and correct.
    let invalid = client
        .call_tool(
            CallToolRequestParams::new("list_time_entries")
                .with_arguments(args(json!({"limit": "ten", "user_id": "x"}))),
        )
        .await
        .expect("a tool result, not a protocol error");
    assert_eq!(invalid.is_error, Some(true), "{invalid:?}");
    let text = &invalid.content[0].as_text().expect("text").text;
    assert!(text.contains("invalid argument"), "{text}");

    // A tool that runs and fails answers with isError and a message the model can use.
    let failed = client
        .call_tool(
            CallToolRequestParams::new("analyze_time_entry")
                .with_arguments(args(json!({"message_id": "no-such-message@example.com"}))),
        )
        .await
        .expect("a tool result");
    assert_eq!(failed.is_error, Some(true), "{failed:?}");
    let text = &failed.content[0].as_text().expect("text").text;
    assert!(text.contains("no-such-message@example.com"), "{text}");
}

#[tokio::test]
async fn mcp_over_streamable_http_lists_calls_and_reports_scan_progress() {
    let s = spawn(local_config(), &[]).await;
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(s.url("/mcp")).auth_header(TOKEN),
    );
    let handler = Client::default();
    let client = handler.clone().serve(transport).await.expect("initialize");
    exercise(&client, &handler).await;
    client.cancel().await.expect("close");
}

#[tokio::test]
async fn mcp_over_http_refuses_a_foreign_origin() {
    let s = spawn(local_config(), &[]).await;
    let r = s
        .client
        .post(s.url("/mcp"))
        .bearer_auth(TOKEN)
        .header("origin", "https://evil.example")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INITIALIZE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn mcp_over_stdio_runs_the_real_binary() {
    let app = TestApp::new();
    let mut cmd = tokio::process::Command::from(app.command());
    cmd.args([
        "--mbox",
        path_str(&fixture("demo.mbox")),
        "--settings",
        path_str(&fixture("demo-settings.json")),
        "mcp",
    ])
    .env("RUST_LOG", "info");
    let (transport, _stderr) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn billable mcp");
    let handler = Client::default();
    let client = handler.clone().serve(transport).await.expect("initialize");
    exercise(&client, &handler).await;
    client.cancel().await.expect("close");
}

#[tokio::test]
async fn closing_a_streamable_http_session_answers_no_content() {
    let s = spawn(local_config(), &[]).await;
    let r = initialize(&s).await;
    assert_eq!(r.status(), 200);
    let closed = close(&s, &session_id(&r)).await;
    assert!(
        [200, 204].contains(&closed.status().as_u16()),
        "{}",
        closed.status()
    );
}

async fn initialize(s: &crate::http::Server) -> reqwest::Response {
    s.client
        .post(s.url("/mcp"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INITIALIZE)
        .send()
        .await
        .expect("initialize")
}

fn session_id(r: &reqwest::Response) -> String {
    r.headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("a session id")
        .to_owned()
}

async fn close(s: &crate::http::Server, session: &str) -> reqwest::Response {
    s.client
        .delete(s.url("/mcp"))
        .bearer_auth(TOKEN)
        .header("mcp-session-id", session)
        .send()
        .await
        .expect("close")
}

#[tokio::test]
async fn sessions_past_the_cap_are_refused_until_one_is_closed() {
    let config = billable::config::ServerConfig {
        max_mcp_sessions: 3,
        ..local_config()
    };
    let s = spawn(config, &[]).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let r = initialize(&s).await;
        assert_eq!(r.status(), 200);
        open.push(session_id(&r));
    }
    let refused = initialize(&s).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "too_many_sessions", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("limit of 3") && message.contains("DELETE /mcp"),
        "{message}"
    );
    // An open session still works; closing one makes room.
    let listed = s
        .client
        .post(s.url("/mcp"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &open[0])
        .body(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
        .send()
        .await
        .expect("notify");
    assert!(listed.status().is_success(), "{}", listed.status());
    close(&s, &open[0]).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(initialize(&s).await.status(), 200);
}
