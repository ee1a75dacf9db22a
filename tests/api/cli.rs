//! The CLI as a user (or a script) drives it: the acceptance commands of the foundation.

use serde_json::{Value, json};

use crate::helpers::{TestApp, demo_settings, fixture, path_str};

const ENTRY_FIELDS: [&str; 19] = [
    "id",
    "message_id",
    "thread_id",
    "client",
    "matter",
    "activity",
    "description",
    "work_date",
    "duration_minutes",
    "billed_minutes",
    "hourly_rate",
    "amount",
    "currency",
    "billable",
    "confidence",
    "status",
    "analyzer",
    "created_at",
    "analyzer",
];

fn assert_entry_fields(entry: &Value) {
    for f in ENTRY_FIELDS {
        assert!(entry.get(f).is_some(), "entry lacks `{f}`: {entry}");
    }
}

#[test]
fn tools_prints_the_openai_tools_array() {
    let app = TestApp::new();
    let run = app.run(&["tools"]);
    run.assert_ok();
    let tools = run.json();
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), billable::tools::TOOLS.len());
    assert!(names.contains(&"scan_billable_time"));
}

#[test]
fn every_tool_answers_with_the_specified_fields_and_a_rescan_adds_nothing() {
    let app = TestApp::new();
    let mbox = fixture("demo.mbox");

    let settings = app.tool(
        &mbox,
        "configure_time_tracking",
        &json!({"settings": demo_settings()}),
    );
    assert_eq!(settings["timezone"], "America/New_York");
    assert_eq!(settings["clients"].as_array().unwrap().len(), 3);
    for key in [
        "billing_increment_minutes",
        "minimum_entry_minutes",
        "rounding",
        "min_confidence",
        "max_entry_minutes",
    ] {
        assert!(settings.get(key).is_some(), "settings lack {key}");
    }

    let scan = app.tool(&mbox, "scan_billable_time", &json!({}));
    for key in [
        "examined",
        "skipped_already_processed",
        "skipped_automated",
        "analyzed",
        "entries_created",
        "errors",
        "billable_minutes",
        "billed_minutes",
        "entries",
        "elapsed_ms",
    ] {
        assert!(scan.get(key).is_some(), "scan output lacks {key}: {scan}");
    }
    let created = scan["entries_created"].as_u64().unwrap();
    assert!(
        created >= 8,
        "the demo mailbox has at least 8 billable messages: {scan}"
    );
    assert_eq!(scan["skipped_automated"], 4, "{scan}");
    assert_eq!(scan["entries"].as_array().unwrap().len() as u64, created);
    scan["entries"]
        .as_array()
        .unwrap()
        .iter()
        .for_each(assert_entry_fields);

    let again = app.tool(&mbox, "scan_billable_time", &json!({}));
    assert_eq!(again["entries_created"], 0, "{again}");
    assert_eq!(again["analyzed"], 0, "{again}");
    assert_eq!(
        again["skipped_already_processed"], again["examined"],
        "{again}"
    );

    let list = app.tool(&mbox, "list_time_entries", &json!({}));
    assert_eq!(list["total"].as_u64().unwrap(), created);
    let entries = list["entries"].as_array().unwrap();
    entries.iter().for_each(assert_entry_fields);
    let dates: Vec<&str> = entries
        .iter()
        .map(|e| e["work_date"].as_str().unwrap())
        .collect();
    let mut sorted = dates.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(dates, sorted, "newest first");

    let summary = app.tool(
        &mbox,
        "get_time_tracking_summary",
        &json!({"group_by": "client"}),
    );
    let groups = summary["groups"].as_array().unwrap();
    let keys: Vec<&str> = groups.iter().map(|g| g["key"].as_str().unwrap()).collect();
    for client in ["Acme Corp", "Globex", "Initech"] {
        assert!(keys.contains(&client), "{keys:?}");
    }
    let listed_minutes: u64 = entries
        .iter()
        .map(|e| e["billed_minutes"].as_u64().unwrap())
        .sum();
    assert_eq!(
        summary["total"][0]["billed_minutes"].as_u64().unwrap(),
        listed_minutes
    );
    for g in groups {
        for key in [
            "entries",
            "raw_minutes",
            "billed_hours",
            "amount",
            "currency",
        ] {
            assert!(g.get(key).is_some(), "group lacks {key}");
        }
    }

    let raw = "From: Jane Cooper <jane.cooper@acme.com>\r\nTo: alex@morganlegal.com\r\nSubject: Quick question\r\nDate: Tue, 24 Nov 2026 10:00:00 -0500\r\nMessage-ID: <quick-q@acme.com>\r\n\r\nCould you confirm the indemnity cap in section 7 before we sign?\r\n";
    let analysis = app.tool(&mbox, "analyze_time_entry", &json!({"raw_email": raw}));
    assert_eq!(analysis["message_id"], "quick-q@acme.com");
    assert_eq!(analysis["entry"]["client"], "Acme Corp");
    assert_eq!(analysis["entry"]["work_date"], "2026-11-24");
    assert_eq!(analysis["saved"], false);
    assert!(!analysis["reasons"].as_array().unwrap().is_empty());
    let list = app.tool(&mbox, "list_time_entries", &json!({}));
    assert_eq!(
        list["total"].as_u64().unwrap(),
        created,
        "analyze without save writes nothing"
    );
}

#[test]
fn the_scan_command_prints_a_table_with_per_client_totals() {
    let app = TestApp::new();
    let run = app.run(&[
        "--mbox",
        path_str(&fixture("demo.mbox")),
        "--settings",
        path_str(&fixture("demo-settings.json")),
        "scan",
    ]);
    run.assert_ok();
    let out = run.stdout();
    assert!(
        out.contains("Acme Corp") && out.contains("Globex") && out.contains("Initech"),
        "{out}"
    );
    assert!(out.contains("total"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("client")),
        "a per-client totals table: {out}"
    );
}

/// Bad input: a clear error on stderr, exit code 2, and nothing written.
fn assert_refused(app: &TestApp, args: &[&str], needle: &str) {
    let before_settings = app.run(&["configure", "--json"]).json();
    let run = app.run(args);
    assert_eq!(
        run.code(),
        2,
        "{args:?}\nstdout: {}\nstderr: {}",
        run.stdout(),
        run.stderr()
    );
    assert!(
        run.stderr().contains(needle),
        "{args:?}: stderr should mention `{needle}`: {}",
        run.stderr()
    );
    assert!(!run.stderr().contains("panicked"), "{}", run.stderr());
    assert_eq!(
        app.run(&["configure", "--json"]).json(),
        before_settings,
        "{args:?} changed settings"
    );
    let entries = app.run(&["entries", "--json"]).json();
    assert_eq!(entries["total"], 0, "{args:?} wrote entries");
}

#[test]
fn bad_arguments_are_refused_with_exit_code_2_and_nothing_written() {
    let app = TestApp::new();
    let mbox = fixture("demo.mbox");
    let m = path_str(&mbox);
    assert_refused(
        &app,
        &["--mbox", m, "tool", "bill_everything", "{}"],
        "unknown tool `bill_everything`",
    );
    assert_refused(
        &app,
        &["--mbox", m, "tool", "scan_billable_time", "{not json"],
        "not valid JSON",
    );
    assert_refused(
        &app,
        &[
            "--mbox",
            m,
            "tool",
            "scan_billable_time",
            r#"{"max_messages":"ten"}"#,
        ],
        "max_messages",
    );
    assert_refused(
        &app,
        &[
            "--mbox",
            m,
            "tool",
            "scan_billable_time",
            r#"{"after":"20/11/2026"}"#,
        ],
        "after",
    );
    assert_refused(
        &app,
        &[
            "--mbox",
            m,
            "tool",
            "scan_billable_time",
            r#"{"user_id":"someone-else"}"#,
        ],
        "user_id",
    );
    assert_refused(
        &app,
        &[
            "tool",
            "configure_time_tracking",
            r#"{"settings":{"billing_incrememt":6}}"#,
        ],
        "settings.billing_incrememt",
    );
    assert_refused(
        &app,
        &[
            "tool",
            "configure_time_tracking",
            r#"{"settings":{"timezone":"Mars/Olympus"}}"#,
        ],
        "timezone",
    );
    assert_refused(
        &app,
        &[
            "tool",
            "configure_time_tracking",
            r#"{"settings":{"default_hourly_rate":-10}}"#,
        ],
        "default_hourly_rate",
    );
    assert_refused(
        &app,
        &[
            "tool",
            "configure_time_tracking",
            r#"{"settings":{"billing_increment_minutes":90}}"#,
        ],
        "billing_increment_minutes",
    );
    assert_refused(
        &app,
        &[
            "configure",
            "--set",
            "clients=[{\"name\":\"A\",\"hourly_rate\":-1}]",
        ],
        "clients[0].hourly_rate",
    );
    assert_refused(
        &app,
        &["tool", "list_time_entries", r#"{"limit":0}"#],
        "limit",
    );
    assert_refused(&app, &["tool", "analyze_time_entry", "{}"], "message_id");
}

#[test]
fn scanning_without_a_mail_source_says_how_to_give_one() {
    let app = TestApp::new();
    let run = app.run(&["scan"]);
    assert_eq!(run.code(), 2);
    assert!(run.stderr().contains("--mbox"), "{}", run.stderr());
}

#[test]
fn a_missing_mbox_file_is_a_clear_error() {
    let app = TestApp::new();
    let run = app.run(&["--mbox", "/nonexistent/mail.mbox", "scan"]);
    assert_ne!(run.code(), 0);
    assert!(
        run.stderr().contains("/nonexistent/mail.mbox"),
        "{}",
        run.stderr()
    );
    assert!(!run.stderr().contains("panicked"));
}
