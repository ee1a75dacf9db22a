//! Every tool answer fits the schema the server advertises for it: MCP's `outputSchema`
//! for `structuredContent`, and `/openapi.json` for the `/v1` answers. Each tool is
//! called with representative arguments, including the calendar cases whose outcomes
//! are easy to misspell (a new meeting, an update, a cancel, a decline) and an error.

use rmcp::model::{CallToolRequestParams, Tool};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

use crate::helpers::{demo_settings, fixture};
use crate::http::{Server, TOKEN, local_config, spawn};
use crate::scan::invite;

/// The calls, in order: each later one sees what the earlier ones saved. The string
/// `$scan_id` stands for the id the last scan returned.
fn calls() -> Vec<(&'static str, Value)> {
    let uid = "contract-call@acme.com";
    let raw = |method, seq, start, end, id, from_owner, partstat| json!({"raw_email": invite(method, uid, seq, start, end, id, from_owner, partstat), "save": true});
    let demo = std::fs::read_to_string(fixture("demo.mbox")).expect("demo mbox");
    let plain = demo
        .split("\nFrom ")
        .nth(2)
        .and_then(|m| m.split_once('\n'))
        .map(|(_, body)| body.to_owned())
        .expect("a demo message");
    vec![
        (
            "configure_time_tracking",
            json!({"settings": demo_settings()}),
        ),
        ("configure_time_tracking", json!({"settings": null})),
        ("scan_billable_time", json!({"dry_run": true})),
        ("scan_billable_time", json!({})),
        ("scan_billable_time", json!({"reanalyze": true})),
        (
            "analyze_time_entry",
            json!({"raw_email": plain, "save": false}),
        ),
        (
            "analyze_time_entry",
            raw(
                "REQUEST",
                0,
                "20261124T150000Z",
                "20261124T160000Z",
                "c-req@x",
                false,
                "NEEDS-ACTION",
            ),
        ),
        (
            "analyze_time_entry",
            raw(
                "REQUEST",
                1,
                "20261124T150000Z",
                "20261124T163000Z",
                "c-upd@x",
                false,
                "NEEDS-ACTION",
            ),
        ),
        (
            "analyze_time_entry",
            raw(
                "CANCEL",
                2,
                "20261124T150000Z",
                "20261124T163000Z",
                "c-can@x",
                false,
                "NEEDS-ACTION",
            ),
        ),
        (
            "analyze_time_entry",
            json!({"raw_email": invite("REQUEST", "declined@acme.com", 0, "20261125T150000Z", "20261125T160000Z", "d-req@x", false, "NEEDS-ACTION"), "save": true}),
        ),
        (
            "analyze_time_entry",
            json!({"raw_email": invite("REPLY", "declined@acme.com", 0, "20261125T150000Z", "20261125T160000Z", "d-dec@x", true, "DECLINED"), "save": true}),
        ),
        ("list_time_entries", json!({"limit": 5})),
        ("list_time_entries", json!({"status": "needs_review"})),
        ("get_time_tracking_summary", json!({"group_by": "client"})),
        (
            "get_time_tracking_summary",
            json!({"group_by": "week", "billable_only": true}),
        ),
    ]
}

fn validator(schema: &Value, what: &str) -> jsonschema::Validator {
    jsonschema::validator_for(schema).unwrap_or_else(|e| panic!("{what}: not a schema: {e}"))
}

fn assert_fits(schema: &Value, value: &Value, what: &str) {
    let v = validator(schema, what);
    let problems: Vec<String> = v
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        problems.is_empty(),
        "{what}: the answer does not fit the advertised schema:\n  {}\nanswer: {value}",
        problems.join("\n  ")
    );
}

async fn mcp_client(s: &Server) -> RunningService<RoleClient, ()> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(s.url("/mcp")).auth_header(TOKEN),
    );
    ().serve(transport).await.expect("initialize")
}

#[tokio::test]
async fn every_mcp_answer_fits_the_advertised_output_schema() {
    let s = spawn(local_config(), &[]).await;
    let client = mcp_client(&s).await;
    let tools: Vec<Tool> = client.list_all_tools().await.expect("tools/list");
    let mut called = std::collections::BTreeSet::new();
    let mut scan_id = String::new();
    for (name, args) in calls() {
        let args = with_scan_id(args, &scan_id);
        let tool = tools.iter().find(|t| t.name == name).expect(name);
        let schema = Value::Object(
            tool.output_schema
                .as_deref()
                .cloned()
                .unwrap_or_else(|| panic!("{name} has no output schema")),
        );
        let result = client
            .call_tool(
                CallToolRequestParams::new(name)
                    .with_arguments(args.as_object().cloned().unwrap_or_default()),
            )
            .await
            .unwrap_or_else(|e| panic!("{name} {args}: {e}"));
        assert_eq!(result.is_error, Some(false), "{name}: {result:?}");
        let content = result.structured_content.expect("structured content");
        assert_fits(&schema, &content, &format!("MCP {name} {args}"));
        remember_scan_id(&content, &mut scan_id);
        called.insert(name);
    }
    // Every advertised tool was exercised.
    let all: std::collections::BTreeSet<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(called, all);

    // A tool that ran and failed is a result with isError and no structured content to
    // check; its text says what went wrong.
    let failed = client
        .call_tool(
            CallToolRequestParams::new("analyze_time_entry").with_arguments(
                json!({"message_id": "no-such@example.com"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
        )
        .await
        .expect("a tool result");
    assert_eq!(failed.is_error, Some(true));
    client.cancel().await.expect("close");
}

#[tokio::test]
async fn every_v1_answer_fits_the_openapi_document() {
    let s = spawn(local_config(), &[]).await;
    let doc: Value = s
        .client
        .get(s.url("/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("openapi JSON");
    let error_schema = doc["components"]["schemas"]["Error"].clone();
    let mut scan_id = String::new();
    for (name, args) in calls() {
        let args = with_scan_id(args, &scan_id);
        let op = &doc["paths"][format!("/v1/tools/{name}")]["post"];
        let schema = resolve(
            &doc,
            &op["responses"]["200"]["content"]["application/json"]["schema"],
        );
        assert!(schema.is_object(), "{name}: no 200 schema");
        let (status, body) = s.post(&format!("/v1/tools/{name}"), TOKEN, &args).await;
        assert_eq!(status, 200, "{name} {args}: {body}");
        assert_fits(&schema, &body, &format!("/v1 {name} {args}"));
        remember_scan_id(&body, &mut scan_id);
    }
    // Errors fit the Error schema.
    let (status, body) = s
        .post(
            "/v1/tools/list_time_entries",
            TOKEN,
            &json!({"limit": "ten"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_fits(&error_schema, &body, "/v1 error");
}

fn with_scan_id(args: Value, scan_id: &str) -> Value {
    let text = args.to_string().replace("$scan_id", scan_id);
    serde_json::from_str(&text).unwrap_or(args)
}

fn remember_scan_id(answer: &Value, scan_id: &mut String) {
    if let Some(id) = answer["scan_id"].as_str() {
        *scan_id = id.to_owned();
    }
}

/// Follows a local `$ref` into the document (OpenAPI keeps shared schemas in components).
fn resolve(doc: &Value, schema: &Value) -> Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.trim_start_matches('#');
            resolve(doc, doc.pointer(pointer).unwrap_or(&Value::Null))
        }
        None => schema.clone(),
    }
}
