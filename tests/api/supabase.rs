//! The Supabase store through postrust (PostgREST) with real signed JWTs: row-level
//! security between two users over HTTP, tokens that must be refused, errors mapped
//! to what they mean, and a scan of the demo mailbox that stores exactly what the
//! SQLite store does.

use std::collections::BTreeSet;
use std::sync::Arc;

use billable::analyze::rules::RulesAnalyzer;
use billable::context::Context;
use billable::domain::{Activity, EntryStatus, TimeEntry, UserId, WorkDate};
use billable::mail::MailSource;
use billable::mail::mbox::MboxSource;
use billable::store::{
    Batch, EventState, Processed, ProcessedOutcome, ScanRecord, ScanStatus, Store, StoreError,
};
use billable::tools::{self, NoProgress};
use postgrest::{Builder, Postgrest};
use serde_json::{Value, json};

use crate::helpers::{TestApp, demo_settings, fixture};
use crate::services::{
    SUPABASE, jwt_secret, now, postgrest_url, sign, signed_in_user, supabase_store,
};

const TABLES: [&str; 5] = [
    "time_entries",
    "processed_messages",
    "tracking_settings",
    "calendar_events",
    "scans",
];

fn rest() -> Postgrest {
    Postgrest::new(postgrest_url()).insert_header("apikey", "test-anon-key")
}

fn as_user(builder: Builder, user: &UserId) -> Builder {
    builder.auth(user.token().expect("a signed-in user"))
}

async fn send(builder: Builder) -> (u16, Value) {
    let response = builder.execute().await.expect("postrust answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

fn entry(message_id: &str) -> TimeEntry {
    TimeEntry {
        id: uuid::Uuid::new_v4().to_string(),
        message_id: message_id.to_owned(),
        thread_id: None,
        client: Some("Acme".to_owned()),
        matter: None,
        activity: Activity::EmailSent,
        description: "Drafted the reply".to_owned(),
        work_date: WorkDate::parse("2026-04-01").unwrap(),
        duration_minutes: 10.0,
        billed_minutes: 12,
        hourly_rate: 300.0,
        amount: 60.0,
        currency: "USD".to_owned(),
        billable: true,
        confidence: 0.9,
        status: EntryStatus::Suggested,
        analyzer: "rules".to_owned(),
        created_at: chrono::Utc::now(),
        event_uid: None,
        task_code: None,
        activity_code: None,
        reviewed_at: None,
        export_batch: None,
        exported_at: None,
        merged_into: None,
    }
}

/// A user with one row in every table, written through the store.
async fn user_with_data(store: &dyn Store) -> UserId {
    let user = signed_in_user();
    let batch = Batch {
        entries: vec![entry("a-1")],
        processed: vec![Processed {
            message_id: "a-1".to_owned(),
            content_hash: "h".to_owned(),
            analyzer: "rules".to_owned(),
            outcome: ProcessedOutcome::Entry,
            reason: None,
            unmatched_under: None,
            counterpart: None,
            features: None,
            processed_at: chrono::Utc::now(),
        }],
        events: vec![EventState {
            uid: "uid-a".to_owned(),
            sequence: 0,
            cancelled: false,
            message_id: Some("a-1".to_owned()),
        }],
        deleted_entries: vec![],
    };
    let saved = store.save_batch(&user, &batch).await.expect("save as A");
    assert_eq!(saved.created, ["a-1"]);
    store
        .save_settings(&user, &billable::domain::Settings::default())
        .await
        .expect("settings as A");
    store
        .record_scan(
            &user,
            &ScanRecord {
                id: "scan-a".to_owned(),
                source: "mbox".to_owned(),
                query: None,
                started_at: chrono::Utc::now(),
                finished_at: None,
                status: ScanStatus::Running,
                examined: 0,
                entries_created: 0,
                errors: 0,
                cursor: None,
            },
        )
        .await
        .expect("scan as A");
    user
}

#[tokio::test]
async fn user_b_reads_none_of_user_as_rows_and_changes_none_of_them() {
    if SUPABASE.skipped() {
        return;
    }
    let store = supabase_store();
    let a = user_with_data(&store).await;
    let b = signed_in_user();

    for table in TABLES {
        let (status, body) = send(as_user(rest().from(table).select("*"), &a)).await;
        assert_eq!(
            (status, body.as_array().map(Vec::len)),
            (200, Some(1)),
            "A reads {table}: {body}"
        );
        let (status, body) = send(as_user(rest().from(table).select("*"), &b)).await;
        assert_eq!((status, &body), (200, &json!([])), "B reads {table}");
    }
    let (status, body) = send(as_user(
        rest()
            .from("time_entries")
            .eq("message_id", "a-1")
            .update(r#"{"description":"B was here"}"#),
        &b,
    ))
    .await;
    assert_eq!(
        (status, &body),
        (200, &json!([])),
        "B's update touched A's row"
    );
    let (status, body) = send(as_user(
        rest().from("time_entries").eq("message_id", "a-1").delete(),
        &b,
    ))
    .await;
    assert_eq!(
        (status, &body),
        (200, &json!([])),
        "B's delete touched A's row"
    );
    let (status, body) = send(as_user(rest().rpc("time_summary", "{}"), &b)).await;
    assert_eq!((status, &body), (200, &json!([])), "B's summary");
    let (status, body) = send(as_user(
        rest().rpc("processed_message_ids", r#"{"p_ids":["a-1"]}"#),
        &b,
    ))
    .await;
    assert_eq!((status, &body), (200, &json!([])), "B's processed ids");

    let stored = store.entry_by_message(&a, "a-1").await.unwrap().unwrap();
    assert_eq!(stored.description, "Drafted the reply");
    assert_eq!(
        store.list_entries(&b, &Default::default()).await.unwrap().1,
        0
    );
}

#[tokio::test]
async fn user_b_cannot_insert_rows_owned_by_user_a() {
    if SUPABASE.skipped() {
        return;
    }
    let a = signed_in_user();
    let b = signed_in_user();
    let forged = json!([{
        "user_id": a.as_str(), "message_id": "planted", "activity": "other",
        "work_date": "2026-04-01", "duration_minutes": 1, "billed_minutes": 6,
        "currency": "USD", "confidence": 1, "analyzer": "x"
    }]);
    let (status, body) = send(as_user(
        rest().from("time_entries").insert(forged.to_string()),
        &b,
    ))
    .await;
    // PostgREST answers 403 to a signed-in user here; postrust answers 401. Both
    // carry PostgreSQL's 42501 from the policy's WITH CHECK.
    assert!(matches!(status, 401 | 403), "{status} {body}");
    assert_eq!(body["code"], "42501", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("row-level security"),
        "{body}"
    );
    let (_, rows) = send(as_user(rest().from("time_entries").select("*"), &a)).await;
    assert_eq!(rows, json!([]));
}

#[tokio::test]
async fn anonymous_requests_are_refused_everywhere() {
    if SUPABASE.skipped() {
        return;
    }
    for table in TABLES {
        let (status, body) = send(rest().from(table).select("*")).await;
        assert_eq!(
            (status, &body["code"]),
            (401, &json!("42501")),
            "{table}: {body}"
        );
    }
    let (status, body) = send(
        rest()
            .from("time_entries")
            .insert(r#"[{"message_id":"x"}]"#),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = send(rest().rpc("time_summary", "{}")).await;
    assert_eq!((status, &body["code"]), (401, &json!("42501")), "{body}");
}

#[tokio::test]
async fn forged_expired_and_wrong_audience_tokens_get_401() {
    if SUPABASE.skipped() {
        return;
    }
    let sub = uuid::Uuid::new_v4().to_string();
    let claims =
        |aud: &str, exp: i64| json!({"sub": sub, "role": "authenticated", "aud": aud, "exp": exp});
    let tokens = [
        (
            "forged",
            sign(
                &claims("authenticated", now() + 3600),
                "not-the-secret-of-this-run-0123456789",
            ),
        ),
        (
            "expired",
            sign(&claims("authenticated", now() - 3600), &jwt_secret()),
        ),
        (
            "wrong audience",
            sign(&claims("another-app", now() + 3600), &jwt_secret()),
        ),
    ];
    for (what, token) in &tokens {
        let (status, body) = send(rest().from("time_entries").select("*").auth(token)).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(
            body["code"].as_str().unwrap_or("").starts_with("PGRST3"),
            "{what}: {body}"
        );
    }

    // The store reports them as a sign-in problem, with PostgREST's reason.
    let store = supabase_store();
    let expired = UserId::new(sub.clone()).with_token(tokens[1].1.clone());
    let err = store
        .list_entries(&expired, &Default::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unauthorized(_)), "{err}");
    assert!(err.to_string().contains("expired"), "{err}");
    let err = store.settings(&UserId::new(sub)).await.unwrap_err();
    assert!(matches!(err, StoreError::Unauthorized(_)), "{err}");
}

#[tokio::test]
async fn a_duplicate_insert_is_a_409_conflict() {
    if SUPABASE.skipped() {
        return;
    }
    let a = signed_in_user();
    let row = json!([{"message_id": "dup", "content_hash": "h", "analyzer": "rules", "outcome": "entry"}]);
    let (status, body) = send(as_user(
        rest().from("processed_messages").insert(row.to_string()),
        &a,
    ))
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(as_user(
        rest().from("processed_messages").insert(row.to_string()),
        &a,
    ))
    .await;
    assert_eq!((status, &body["code"]), (409, &json!("23505")), "{body}");
    // An upsert of the same row is no conflict.
    let store = supabase_store();
    store
        .save_batch(
            &a,
            &Batch {
                processed: vec![Processed {
                    message_id: "dup".to_owned(),
                    content_hash: "h2".to_owned(),
                    analyzer: "rules".to_owned(),
                    outcome: ProcessedOutcome::Entry,
                    reason: None,
                    unmatched_under: None,
                    counterpart: None,
                    features: None,
                    processed_at: chrono::Utc::now(),
                }],
                ..Batch::default()
            },
        )
        .await
        .unwrap();
}

// ---------------------------------------------------------------- a scan, both stores

fn demo_source() -> Option<Arc<dyn MailSource>> {
    Some(Arc::new(
        MboxSource::open(fixture("demo.mbox")).expect("demo mbox"),
    ))
}

pub(crate) async fn call(ctx: &Context, user: &UserId, tool: &str, args: Value) -> Value {
    tools::call(ctx, user, tool, args, &NoProgress)
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

type Row = (String, String, String, String, u64, String);

fn rows(list: &Value) -> BTreeSet<Row> {
    list["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["message_id"].as_str().unwrap().to_owned(),
                e["client"].to_string(),
                e["activity"].as_str().unwrap().to_owned(),
                e["work_date"].as_str().unwrap().to_owned(),
                e["billed_minutes"].as_u64().unwrap(),
                format!("{:.2}", e["amount"].as_f64().unwrap()),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_scan_as_a_supabase_user_stores_what_the_sqlite_store_does_once() {
    if SUPABASE.skipped() {
        return;
    }
    let app = TestApp::new();
    let local = UserId::local();
    let sqlite = app.context(demo_source());
    let a = signed_in_user();
    let supabase = Context::new(
        demo_source(),
        Arc::new(RulesAnalyzer),
        Arc::new(supabase_store()),
    );
    let settings = json!({"settings": demo_settings()});
    call(&sqlite, &local, "configure_time_tracking", settings.clone()).await;
    call(&supabase, &a, "configure_time_tracking", settings).await;

    let scanned_sqlite = call(&sqlite, &local, "scan_billable_time", json!({})).await;
    let scanned = call(&supabase, &a, "scan_billable_time", json!({})).await;
    assert!(
        scanned["entries_created"].as_u64().unwrap() > 0,
        "{scanned}"
    );
    for key in [
        "examined",
        "entries_created",
        "skipped_automated",
        "analyzed",
    ] {
        assert_eq!(scanned[key], scanned_sqlite[key], "{key}: {scanned}");
    }

    let list = json!({"limit": 500});
    let in_sqlite = call(&sqlite, &local, "list_time_entries", list.clone()).await;
    let in_postgres = call(&supabase, &a, "list_time_entries", list.clone()).await;
    assert_eq!(rows(&in_postgres), rows(&in_sqlite));
    assert_eq!(in_postgres["total"], in_sqlite["total"]);
    // Newest first in both.
    let order = |l: &Value| -> Vec<String> {
        l["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["work_date"].to_string())
            .collect()
    };
    assert_eq!(order(&in_postgres), order(&in_sqlite));

    // Again: nothing new, nothing changed.
    let again = call(&supabase, &a, "scan_billable_time", json!({})).await;
    assert_eq!(again["entries_created"], 0, "{again}");
    let after = call(&supabase, &a, "list_time_entries", list.clone()).await;
    assert_eq!(after["entries"], in_postgres["entries"]);
    let reanalyzed = call(
        &supabase,
        &a,
        "scan_billable_time",
        json!({"reanalyze": true}),
    )
    .await;
    assert_eq!(reanalyzed["entries_created"], 0, "{reanalyzed}");
    assert_eq!(
        rows(&call(&supabase, &a, "list_time_entries", list).await),
        rows(&in_sqlite)
    );

    for group_by in ["client", "matter", "day", "week", "month"] {
        for billable_only in [false, true] {
            let args = json!({"group_by": group_by, "billable_only": billable_only});
            let want = call(&sqlite, &local, "get_time_tracking_summary", args.clone()).await;
            let got = call(&supabase, &a, "get_time_tracking_summary", args).await;
            assert_eq!(got["groups"], want["groups"], "{group_by} {billable_only}");
            assert_eq!(got["total"], want["total"], "{group_by} {billable_only}");
        }
    }

    // Another user scanning the same mailbox gets their own entries, and A's stay.
    let b = signed_in_user();
    call(
        &supabase,
        &b,
        "configure_time_tracking",
        json!({"settings": demo_settings()}),
    )
    .await;
    let b_scan = call(&supabase, &b, "scan_billable_time", json!({})).await;
    assert_eq!(b_scan["entries_created"], scanned["entries_created"]);
    let a_total = call(&supabase, &a, "list_time_entries", json!({"limit": 1})).await;
    assert_eq!(a_total["total"], in_sqlite["total"]);
}

/// Calls a tool through the real server's `/v1/tools/{name}` with a bearer token.
async fn post_tool(base: &str, token: &str, tool: &str, args: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/tools/{tool}"))
        .bearer_auth(token)
        .json(&args)
        .send()
        .await
        .expect("request");
    let status = response.status();
    let body: Value = response.json().await.expect("JSON body");
    assert!(status.is_success(), "{tool}: {status} {body}");
    body
}

#[tokio::test]
async fn a_scan_through_the_server_as_a_supabase_user_lands_in_postgres_as_in_sqlite() {
    if SUPABASE.skipped() {
        return;
    }
    use billable::config::{Secret, ServerConfig};
    use billable::http::{self, Auth};
    use tokio_util::sync::CancellationToken;

    let _ = rustls::crypto::ring::default_provider().install_default();
    // The server verifies user JWTs with the same secret postrust does, and hands each
    // request's own token to the Supabase store.
    let config = ServerConfig {
        supabase_jwt_secret: Some(Secret::new(jwt_secret())),
        ..ServerConfig::default()
    };
    let ctx = Arc::new(Context::new(
        demo_source(),
        Arc::new(RulesAnalyzer),
        Arc::new(supabase_store()),
    ));
    let (auth, _) = Auth::from_config(&config);
    let shutdown = CancellationToken::new();
    let router = http::router(ctx, &config, auth, shutdown.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(http::serve_on(
        listener,
        router,
        shutdown.clone(),
        std::time::Duration::from_secs(5),
    ));

    let a = signed_in_user();
    let token = a.token().expect("token").to_owned();
    let settings = json!({"settings": demo_settings()});
    post_tool(&base, &token, "configure_time_tracking", settings.clone()).await;
    let scanned = post_tool(&base, &token, "scan_billable_time", json!({})).await;
    assert!(
        scanned["entries_created"].as_u64().unwrap() > 0,
        "{scanned}"
    );

    // The same mailbox through the embedded SQLite store, in process.
    let app = TestApp::new();
    let sqlite = app.context(demo_source());
    let local = UserId::local();
    call(&sqlite, &local, "configure_time_tracking", settings).await;
    call(&sqlite, &local, "scan_billable_time", json!({})).await;

    let list = json!({"limit": 500});
    let over_http = post_tool(&base, &token, "list_time_entries", list.clone()).await;
    let in_sqlite = call(&sqlite, &local, "list_time_entries", list.clone()).await;
    assert_eq!(rows(&over_http), rows(&in_sqlite));

    // The rows really are in Postgres, owned by A: read them back through postrust.
    let (status, stored) = send(as_user(
        rest().from("time_entries").select("message_id"),
        &a,
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        stored.as_array().map(Vec::len),
        in_sqlite["entries"].as_array().map(Vec::len)
    );

    let again = post_tool(&base, &token, "scan_billable_time", json!({})).await;
    assert_eq!(again["entries_created"], 0, "{again}");
    let after = post_tool(&base, &token, "list_time_entries", list).await;
    assert_eq!(after["total"], over_http["total"]);

    let args = json!({"group_by": "client"});
    let summary = post_tool(&base, &token, "get_time_tracking_summary", args.clone()).await;
    let want = call(&sqlite, &local, "get_time_tracking_summary", args).await;
    assert_eq!(summary["groups"], want["groups"]);
    assert_eq!(summary["total"], want["total"]);
    shutdown.cancel();
}

#[tokio::test]
async fn a_token_that_expires_on_the_way_to_the_store_gets_401_asking_to_sign_in_again() {
    if SUPABASE.skipped() {
        return;
    }
    use billable::config::{Secret, ServerConfig};

    // The server accepts a token up to 60 s past `exp` (jsonwebtoken's default
    // leeway for clock skew); postrust checks `exp` to the second. A token 20 s past
    // it gets through the server and is refused by the store, as one that expires
    // while a request is on its way would be.
    let config = ServerConfig {
        supabase_jwt_secret: Some(Secret::new(jwt_secret())),
        ..ServerConfig::default()
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ctx = Arc::new(Context::new(
        None,
        Arc::new(RulesAnalyzer),
        Arc::new(supabase_store()),
    ));
    let s = crate::http::spawn_context(config, TestApp::new(), ctx).await;
    let sub = uuid::Uuid::new_v4().to_string();
    let expired = sign(
        &json!({
            "sub": sub, "role": "authenticated", "aud": "authenticated",
            "iat": now() - 3600, "exp": now() - 20,
        }),
        &jwt_secret(),
    );

    let response = s
        .client
        .post(s.url("/v1/tools/list_time_entries"))
        .bearer_auth(&expired)
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    // The store's refusal, not the server's own check of the token.
    assert!(message.contains("not signed in to Supabase"), "{message}");
    assert!(message.contains("JWT expired"), "{message}");
    assert!(message.contains("Sign in again"), "{message}");
}

// ---------------------------------------------------------------- review, between users

async fn refused(ctx: &Context, user: &UserId, tool: &str, args: Value) -> String {
    let err = tools::call(ctx, user, tool, args.clone(), &NoProgress)
        .await
        .expect_err(tool);
    assert_eq!(
        err.kind(),
        billable::error::ErrorKind::NotFound,
        "{tool} {args}: {err}"
    );
    err.to_string()
}

#[tokio::test]
async fn user_b_cannot_update_merge_split_or_export_user_as_entries() {
    if SUPABASE.skipped() {
        return;
    }
    let ctx = Context::new(
        demo_source(),
        Arc::new(RulesAnalyzer),
        Arc::new(supabase_store()),
    );
    let (a, b) = (signed_in_user(), signed_in_user());
    for user in [&a, &b] {
        call(
            &ctx,
            user,
            "configure_time_tracking",
            json!({"settings": demo_settings()}),
        )
        .await;
    }
    call(&ctx, &a, "scan_billable_time", json!({})).await;
    let manual = |minutes: u32| {
        json!({"client": "Acme Corp", "work_date": "2026-11-20", "billed_minutes": minutes,
               "description": "Call about the MSA"})
    };
    let one = call(&ctx, &a, "add_time_entry", manual(6)).await;
    let two = call(&ctx, &a, "add_time_entry", manual(12)).await;
    let merged = call(
        &ctx,
        &a,
        "merge_time_entries",
        json!({"ids": [one["id"], two["id"]]}),
    )
    .await;
    let merged_id = merged["entry"]["id"].as_str().unwrap().to_owned();
    let listed = call(&ctx, &a, "list_time_entries", json!({"limit": 500})).await;
    let ids: Vec<String> = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.len() > 2, "{listed}");

    let message = refused(
        &ctx,
        &b,
        "update_time_entries",
        json!({"ids": [ids[0]], "changes": {"status": "approved"}}),
    )
    .await;
    assert!(
        message.contains(&ids[0]) && message.contains("nothing was changed"),
        "{message}"
    );
    refused(
        &ctx,
        &b,
        "merge_time_entries",
        json!({"ids": [ids[0], ids[1]]}),
    )
    .await;
    refused(&ctx, &b, "split_time_entry", json!({"id": merged_id})).await;
    // B's export holds none of A's entries and marks none of them.
    let approve = json!({"ids": [ids[0]], "changes": {"status": "approved"}});
    call(&ctx, &a, "update_time_entries", approve).await;
    let before = call(&ctx, &a, "list_time_entries", json!({"limit": 500})).await;
    let exported = call(
        &ctx,
        &b,
        "export_time_entries",
        json!({"format": "csv", "include_exported": true}),
    )
    .await;
    assert_eq!(exported["entries"], 0, "{exported}");

    // Past the tools, the database itself refuses: B's write of A's row is an error
    // (row-level security on the upsert), and B's delete of it removes nothing.
    let row = &before["entries"][0];
    let mut forged = row.clone();
    forged["description"] = json!("B was here");
    forged["reviewed_at"] = json!("2026-11-30T00:00:00Z");
    let (status, body) = send(as_user(
        rest().rpc(
            "review_time_entries",
            json!({"p_rows": [forged], "p_deletes": []}).to_string(),
        ),
        &b,
    ))
    .await;
    assert!(status >= 400, "B's upsert of A's row: {status} {body}");
    let (status, body) = send(as_user(
        rest().rpc(
            "review_time_entries",
            json!({"p_rows": [], "p_deletes": [ids[0], merged_id]}).to_string(),
        ),
        &b,
    ))
    .await;
    assert_eq!((status, &body), (200, &json!(0)), "B's delete of A's rows");

    let after = call(&ctx, &a, "list_time_entries", json!({"limit": 500})).await;
    assert_eq!(after, before, "A's entries changed");
}

#[tokio::test]
async fn a_summary_read_through_one_instance_right_after_a_write_through_another_is_fresh() {
    if SUPABASE.skipped() {
        return;
    }
    // Two server instances: each its own context, and so its own summary cache.
    let instance = || {
        Context::new(
            demo_source(),
            Arc::new(RulesAnalyzer),
            Arc::new(supabase_store()),
        )
    };
    let (one, two) = (instance(), instance());
    let a = signed_in_user();
    call(
        &one,
        &a,
        "configure_time_tracking",
        json!({"settings": demo_settings()}),
    )
    .await;
    call(&one, &a, "scan_billable_time", json!({})).await;
    let summary = json!({"group_by": "client"});
    let before = call(&one, &a, "get_time_tracking_summary", summary.clone()).await;
    // Cached on instance one now; the same answer again.
    assert_eq!(
        call(&one, &a, "get_time_tracking_summary", summary.clone()).await,
        before
    );

    call(
        &two,
        &a,
        "add_time_entry",
        json!({"client": "Acme Corp", "work_date": "2026-11-20", "billed_minutes": 30,
               "description": "Call with the client about the MSA"}),
    )
    .await;
    let after = call(&one, &a, "get_time_tracking_summary", summary.clone()).await;
    let minutes = |s: &Value| s["total"][0]["billed_minutes"].as_u64().unwrap_or(0);
    assert_eq!(minutes(&after), minutes(&before) + 30, "{after}");

    // A change of another user's data leaves this user's version alone.
    let b = signed_in_user();
    call(
        &two,
        &b,
        "configure_time_tracking",
        json!({"settings": demo_settings()}),
    )
    .await;
    let store = supabase_store();
    let version = store.data_version(&a).await.expect("version");
    call(
        &two,
        &b,
        "add_time_entry",
        json!({"client": "Acme Corp", "work_date": "2026-11-20",
        "billed_minutes": 6, "description": "Call"}),
    )
    .await;
    assert_eq!(store.data_version(&a).await.expect("version"), version);
    assert_eq!(
        call(&one, &a, "get_time_tracking_summary", summary).await,
        after
    );
}
