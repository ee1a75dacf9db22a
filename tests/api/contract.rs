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

/// The calls, in order: each later one sees what the earlier ones saved. `$scan_id`
/// stands for the id the last scan returned, `$entry_N` for the Nth entry id the last
/// listing returned, `$added_N` for the Nth entry added by hand, `$merged` for the
/// last merged entry.
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
            "scan_billable_time",
            json!({"background": true, "dry_run": true, "max_messages": 5}),
        ),
        (
            "get_scan_status",
            json!({"job_id": "$job", "wait_seconds": 30}),
        ),
        ("list_scans", json!({"limit": 5})),
        ("cancel_scan", json!({"job_id": "$job"})),
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
        (
            "update_time_entries",
            json!({"ids": ["$entry_0", "$entry_1"], "changes": {"status": "approved"}}),
        ),
        (
            "update_time_entries",
            json!({"ids": ["$entry_0"], "changes": {"description": "Reviewed the draft", "billed_minutes": 12, "activity_code": "A104"}}),
        ),
        (
            "add_time_entry",
            json!({"client": "Acme Corp", "work_date": "2026-11-20", "billed_minutes": 6, "description": "Call with the client about the MSA"}),
        ),
        (
            "add_time_entry",
            json!({"client": "Acme Corp", "matter": "MSA renewal", "work_date": "2026-11-20", "billed_minutes": 12, "description": "Follow-up call", "activity": "call", "activity_code": "A106", "billable": true, "status": "suggested"}),
        ),
        (
            "merge_time_entries",
            json!({"ids": ["$added_0", "$added_1"]}),
        ),
        ("split_time_entry", json!({"id": "$merged"})),
        (
            "list_time_entries",
            json!({"matter": "MSA renewal", "status": "approved"}),
        ),
        (
            "export_time_entries",
            json!({"format": "csv", "dry_run": true, "invoice": {"number": "1001", "date": "2026-11-30", "description": null}}),
        ),
        ("export_time_entries", json!({"format": "toggl_csv"})),
        ("export_time_entries", json!({"format": "csv"})),
        (
            "get_time_tracking_summary",
            json!({"group_by": "status", "status": null, "matter": "MSA renewal"}),
        ),
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
    let mut vars = Vars::default();
    for (name, args) in calls() {
        let args = vars.fill(args);
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
        vars.remember(name, &content);
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
    let mut vars = Vars::default();
    for (name, args) in calls() {
        let args = vars.fill(args);
        let op = &doc["paths"][format!("/v1/tools/{name}")]["post"];
        let schema = resolve(
            &doc,
            &op["responses"]["200"]["content"]["application/json"]["schema"],
        );
        assert!(schema.is_object(), "{name}: no 200 schema");
        let (status, body) = s.post(&format!("/v1/tools/{name}"), TOKEN, &args).await;
        let queued = name == "scan_billable_time" && args["background"] == true;
        let expected = if queued { 202 } else { 200 };
        assert_eq!(status, expected, "{name} {args}: {body}");
        assert_fits(&schema, &body, &format!("/v1 {name} {args}"));
        vars.remember(name, &body);
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

/// What earlier answers returned, for the placeholders of later calls.
#[derive(Default)]
struct Vars {
    values: Vec<(String, String)>,
    added: usize,
}

impl Vars {
    fn set(&mut self, name: String, value: &str) {
        self.values.retain(|(n, _)| *n != name);
        self.values.push((name, value.to_owned()));
    }

    fn remember(&mut self, tool: &str, answer: &Value) {
        if let Some(id) = answer["scan_id"].as_str() {
            self.set("$scan_id".into(), id);
        }
        if let Some(id) = answer["job_id"].as_str() {
            self.set("$job".into(), id);
        }
        match tool {
            "list_time_entries" => {
                for (i, e) in answer["entries"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    if let Some(id) = e["id"].as_str() {
                        self.set(format!("$entry_{i}"), id);
                    }
                }
            }
            "add_time_entry" => {
                if let Some(id) = answer["id"].as_str() {
                    self.set(format!("$added_{}", self.added), id);
                    self.added += 1;
                }
            }
            "merge_time_entries" => {
                if let Some(id) = answer["entry"]["id"].as_str() {
                    self.set("$merged".into(), id);
                }
            }
            _ => {}
        }
    }

    /// Longest names first, so `$entry_1` never eats the start of `$entry_10`.
    fn fill(&self, args: Value) -> Value {
        let mut text = args.to_string();
        let mut values: Vec<&(String, String)> = self.values.iter().collect();
        values.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
        for (name, value) in values {
            text = text.replace(name.as_str(), value);
        }
        serde_json::from_str(&text).unwrap_or(args)
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
