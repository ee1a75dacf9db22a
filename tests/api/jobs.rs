//! Background scans with the embedded store: `scan_billable_time` queues a job and
//! answers at once (202 with the status URL over HTTP), the server's in-process worker
//! runs it, `get_scan_status` follows it to its result over HTTP and MCP, and
//! `cancel_scan` stops it. A user sees and stops only their own jobs, and cannot
//! queue without limit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use billable::domain::UserId;
use billable::mail::gmail::GmailHub;
use billable::tools::{self, NoProgress};
use rmcp::model::{CallToolRequestParams, ProgressNotificationParam};
use rmcp::service::NotificationContext;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};

use crate::fake_gmail::{FakeGmail, Faults};
use crate::gmail::{config, entries_all, keyed, mbox_entries};
use crate::helpers::{TestApp, call, configure, configure_demo, fixture};
use crate::http::{Server, TOKEN, local_config, spawn_context};
use crate::mbox_gen;

/// A server reading `fake`'s Gmail, so scans are background scans by default.
async fn gmail_server(fake: &FakeGmail, settings: Option<Value>) -> Server {
    let app = TestApp::new();
    let ctx = app
        .context(None)
        .with_gmail(Arc::new(GmailHub::new(config(fake))));
    match settings {
        Some(s) => configure(&ctx, s).await,
        None => configure_demo(&ctx).await,
    }
    spawn_context(local_config(), app, Arc::new(ctx)).await
}

async fn get(s: &Server, path: &str) -> (u16, Value) {
    let r = s
        .client
        .get(s.url(path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.expect("JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gmail_scan_is_queued_at_once_and_its_status_url_shows_it_finish_with_the_mbox_entries() {
    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;
    fake.set_faults(Faults {
        latency: Duration::from_millis(20),
        ..Faults::default()
    });
    let s = gmail_server(&fake, None).await;

    let r = s
        .client
        .post(s.url("/v1/tools/scan_billable_time"))
        .bearer_auth(TOKEN)
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 202, "a Gmail scan runs in the background");
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("Location");
    let queued: Value = r.json().await.expect("JSON");
    let id = queued["job_id"].as_str().expect("job_id").to_owned();
    assert_eq!(location, format!("/v1/scans/{id}"));
    assert_eq!(queued["status_url"], location.as_str());
    assert_eq!(queued["state"], "queued", "{queued}");
    assert!(
        queued.get("examined").is_none(),
        "no scan result yet: {queued}"
    );

    let (status, done) = get(&s, &format!("{location}?wait=60")).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["state"], "completed", "{done}");
    let result = &done["result"];
    assert_eq!(result["status"], "completed", "{done}");
    assert_eq!(done["progress"]["examined"], result["examined"], "{done}");
    assert!(result["entries_created"].as_u64() > Some(0), "{done}");
    assert_eq!(done["attempts"], 1);
    assert!(done["messages_per_minute"].as_f64() > Some(0.0), "{done}");
    // The same entries as scanning the same mail in the foreground.
    let entries = entries_all(&s.ctx).await;
    assert_eq!(
        keyed(&entries, Some(&fake.message_ids())),
        mbox_entries().await
    );

    let (_, list) = s.post("/v1/tools/list_scans", TOKEN, &json!({})).await;
    let scans = list["scans"].as_array().expect("scans");
    assert_eq!(scans.len(), 1, "{list}");
    assert_eq!(scans[0]["job_id"], id.as_str());
    assert_eq!(
        scans[0]["result"],
        Value::Null,
        "the list leaves results out"
    );

    let (status, missing) = get(&s, "/v1/scans/no-such-job").await;
    assert_eq!(status, 404, "{missing}");
    assert!(
        missing["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("list_scans"),
        "{missing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_background_scan_stops_when_cancelled_and_keeps_what_it_saved() {
    let app = TestApp::new();
    let path = app.dir.path().join("generated.mbox");
    let mut file = std::fs::File::create(&path).expect("mbox");
    mbox_gen::write_mbox(&mut file, 700).expect("write mbox");
    drop(file);
    let fake = FakeGmail::from_mbox(&path).await;
    // About 10 s for the whole mailbox: the cancel lands well before its end.
    fake.set_faults(Faults {
        latency: Duration::from_millis(100),
        ..Faults::default()
    });
    let settings: Value = serde_json::from_str(mbox_gen::SETTINGS).expect("settings");
    let s = gmail_server(&fake, Some(settings)).await;

    let (status, queued) = s
        .post(
            "/v1/tools/scan_billable_time",
            TOKEN,
            &json!({"background": true}),
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    let id = queued["job_id"].as_str().expect("job_id").to_owned();
    // Running, and some of the mail read.
    let mut state = Value::Null;
    for _ in 0..300 {
        let (_, now) = get(&s, &format!("/v1/scans/{id}")).await;
        state = now["state"].clone();
        if state == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state, "running", "a worker took the scan");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (status, cancelling) = s
        .post("/v1/tools/cancel_scan", TOKEN, &json!({"job_id": id}))
        .await;
    assert_eq!(status, 200, "{cancelling}");
    assert_eq!(cancelling["cancel_requested"], true, "{cancelling}");
    let (_, ended) = get(&s, &format!("/v1/scans/{id}?wait=60")).await;
    let summary = format!(
        "{} {} {}",
        ended["state"], ended["progress"], ended["result"]["stopped_reason"]
    );
    assert_eq!(ended["state"], "cancelled", "{summary}");
    let examined = ended["result"]["examined"].as_u64().expect("examined");
    // The whole mailbox is 560 candidates.
    assert!(
        examined > 0 && examined < 500,
        "stopped part-way: {summary}"
    );
    assert_eq!(ended["result"]["status"], "interrupted", "{summary}");
    // What it saved stays; the rest is left for the next scan.
    let saved = entries_all(&s.ctx).await.len() as u64;
    assert_eq!(
        saved,
        ended["result"]["entries_created"].as_u64().unwrap_or(0),
        "{summary}"
    );
    // Cancelling what ended changes nothing.
    let (_, again) = s
        .post("/v1/tools/cancel_scan", TOKEN, &json!({"job_id": id}))
        .await;
    assert_eq!(again["state"], "cancelled");
    assert_eq!(again["finished_at"], ended["finished_at"]);
}

#[tokio::test]
async fn a_user_sees_and_cancels_only_their_own_scans_and_cannot_queue_without_limit() {
    // No server, so no worker: the jobs stay queued.
    let app = TestApp::new();
    let source = billable::mail::mbox::MboxSource::open(fixture("demo.mbox")).expect("mbox");
    let ctx = app.context(Some(Arc::new(source)));
    configure_demo(&ctx).await;
    let bob = UserId::new("bob");

    let local = call(&ctx, "scan_billable_time", json!({"max_messages": 2}))
        .await
        .expect("scan");
    assert!(
        local["examined"].is_u64(),
        "a local file is scanned at once: {local}"
    );

    let mut ids = Vec::new();
    for n in 1..=5 {
        let job = call(
            &ctx,
            "scan_billable_time",
            json!({"background": true, "max_messages": n}),
        )
        .await
        .expect("queued");
        assert_eq!(job["state"], "queued", "{job}");
        ids.push(job["job_id"].as_str().expect("job_id").to_owned());
    }
    let err = call(&ctx, "scan_billable_time", json!({"background": true}))
        .await
        .expect_err("a sixth waiting scan");
    assert_eq!(err.kind(), billable::error::ErrorKind::Conflict);
    assert!(err.to_string().contains("5 scans waiting"), "{err}");
    assert!(err.to_string().contains("cancel_scan"), "{err}");

    // Bob sees none of them and cannot stop them.
    for name in ["get_scan_status", "cancel_scan"] {
        let err = tools::call(&ctx, &bob, name, json!({"job_id": ids[0]}), &NoProgress)
            .await
            .expect_err("another user's job");
        assert_eq!(
            err.kind(),
            billable::error::ErrorKind::NotFound,
            "{name}: {err}"
        );
    }
    let bobs = tools::call(&ctx, &bob, "list_scans", json!({}), &NoProgress)
        .await
        .expect("list");
    assert_eq!(bobs["scans"], json!([]));
    let status = call(&ctx, "get_scan_status", json!({"job_id": ids[0]}))
        .await
        .expect("status");
    assert_eq!(
        status["state"], "queued",
        "Bob's cancel changed nothing: {status}"
    );

    // Alice cancels a waiting one at once, and may queue again.
    let cancelled = call(&ctx, "cancel_scan", json!({"job_id": ids[0]}))
        .await
        .expect("cancel");
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    assert!(cancelled["finished_at"].is_string(), "{cancelled}");
    call(&ctx, "scan_billable_time", json!({"background": true}))
        .await
        .expect("room for one more");
    let list = call(&ctx, "list_scans", json!({"limit": 3}))
        .await
        .expect("list");
    let listed: Vec<&str> = list["scans"]
        .as_array()
        .expect("scans")
        .iter()
        .filter_map(|j| j["job_id"].as_str())
        .collect();
    assert_eq!(listed.len(), 3);
    assert_eq!(
        &listed[1..],
        &[ids[4].as_str(), ids[3].as_str()],
        "newest first"
    );

    let err = call(
        &ctx,
        "get_scan_status",
        json!({"job_id": ids[1], "wait_seconds": 61}),
    )
    .await
    .expect_err("too long a wait");
    assert!(err.to_string().contains("wait_seconds"), "{err}");
}

/// Keeps every progress notification.
#[derive(Clone, Default)]
struct Watcher(Arc<Mutex<Vec<ProgressNotificationParam>>>);

impl ClientHandler for Watcher {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(params);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_mcp_a_background_scan_is_followed_to_its_result_with_progress_notifications() {
    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;
    // Slow enough that the wait below sees the scan running.
    fake.set_faults(Faults {
        latency: Duration::from_millis(300),
        ..Faults::default()
    });
    let s = gmail_server(&fake, None).await;
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(s.url("/mcp")).auth_header(TOKEN),
    );
    let watcher = Watcher::default();
    let client = watcher.clone().serve(transport).await.expect("initialize");
    let args = |v: Value| v.as_object().cloned().unwrap_or_default();

    let queued = client
        .call_tool(CallToolRequestParams::new("scan_billable_time").with_arguments(args(json!({}))))
        .await
        .expect("scan");
    let queued = queued.structured_content.expect("structured");
    let id = queued["job_id"].as_str().expect("job_id").to_owned();
    let status = client
        .call_tool(
            CallToolRequestParams::new("get_scan_status")
                .with_arguments(args(json!({"job_id": id, "wait_seconds": 60}))),
        )
        .await
        .expect("status");
    let status = status.structured_content.expect("structured");
    assert_eq!(status["state"], "completed", "{status}");
    let examined = status["result"]["examined"].as_f64().expect("examined");
    let notes = watcher.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(notes.len() >= 2, "progress while waiting: {notes:?}");
    assert!(
        notes.windows(2).all(|w| w[0].progress <= w[1].progress),
        "{notes:?}"
    );
    assert_eq!(notes.last().map(|n| n.progress), Some(examined));
    client.cancel().await.expect("close");
}

/// A client that declares the tasks extension (SEP-2663).
#[derive(Clone, Default)]
struct TaskClient;

impl ClientHandler for TaskClient {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        rmcp::model::ClientConfig::new(
            rmcp::model::ClientCapabilities::builder()
                .enable_tasks()
                .build(),
            rmcp::model::Implementation::new("task-client", "1"),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn to_an_mcp_client_of_tasks_a_background_scan_is_a_task_it_polls_to_the_result() {
    use rmcp::model::{CallToolResponse, CancelTaskParams, GetTaskParams, TaskPayload, TaskStatus};
    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;
    fake.set_faults(Faults {
        latency: Duration::from_millis(50),
        ..Faults::default()
    });
    let s = gmail_server(&fake, None).await;
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(s.url("/mcp")).auth_header(TOKEN),
    );
    let client = TaskClient.serve(transport).await.expect("initialize");
    let info = client.peer_info().expect("initialized");
    assert!(
        info.capabilities.supports_tasks(),
        "the server offers tasks"
    );

    let answer = client
        .call_tool_once(CallToolRequestParams::new("scan_billable_time"))
        .await
        .expect("scan");
    let CallToolResponse::Task(created) = answer else {
        panic!("a task, got {answer:?}");
    };
    assert_eq!(created.task.status, TaskStatus::Working);
    let id = created.task.task_id.clone();
    let mut last = None;
    for _ in 0..600 {
        let got = client
            .get_task(GetTaskParams::new(&id))
            .await
            .expect("tasks/get");
        if got.task.status() != TaskStatus::Working {
            last = Some(got);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done = last.expect("the task ended");
    let TaskPayload::Completed { result } = &done.task.payload else {
        panic!("completed, got {:?}", done.task.payload);
    };
    let out = &result["structuredContent"];
    assert_eq!(out["status"], "completed", "{out}");
    assert!(out["entries_created"].as_u64() > Some(0), "{out}");
    // The same job through the tools.
    let status = call(&s.ctx, "get_scan_status", json!({"job_id": id}))
        .await
        .expect("status");
    assert_eq!(status["result"]["scan_id"], out["scan_id"]);

    // An unknown task is a protocol error; cancelling an ended one changes nothing.
    assert!(
        client
            .get_task(GetTaskParams::new("no-such-task"))
            .await
            .is_err()
    );
    client
        .cancel_task(CancelTaskParams::new(&id))
        .await
        .expect("tasks/cancel");
    let after = client
        .get_task(GetTaskParams::new(&id))
        .await
        .expect("tasks/get");
    assert_eq!(after.task.status(), TaskStatus::Completed);
    client.cancel().await.expect("close");
}
