//! The CLI as a user (or a script) drives it: the acceptance commands of the foundation.

use serde_json::{Value, json};

use crate::helpers::{Run, TestApp, billable, demo_settings, fixture, path_str};

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
    let home = tempfile::tempdir().unwrap();
    let run = Run(billable(home.path()).arg("tools").output().unwrap());
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

/// `billable --mbox demo.mbox --settings demo-settings.json [extra] scan`, which must
/// succeed.
fn scan_demo(app: &TestApp, extra: &[&str]) -> crate::helpers::Run {
    let (mbox, settings) = (fixture("demo.mbox"), fixture("demo-settings.json"));
    let mut args = vec!["--mbox", path_str(&mbox), "--settings", path_str(&settings)];
    args.extend_from_slice(extra);
    args.push("scan");
    let run = app.run(&args);
    run.assert_ok();
    run
}

#[test]
fn the_scan_command_prints_a_table_with_per_client_totals() {
    let app = TestApp::new();
    let run = scan_demo(&app, &[]);
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

/// A calendar message between the generated mailbox's owner and a client.
fn calendar(id: &str, method: &str, uid: &str, seq: u32, hours: (u32, u32), owner: bool) -> String {
    let (from, to, partstat) = if owner {
        ("owner@firm.example", "c1@acme.com", "DECLINED")
    } else {
        ("c1@acme.com", "owner@firm.example", "NEEDS-ACTION")
    };
    format!(
        "From 1@xxx Mon Nov 02 09:00:00 +0000 2026\nFrom: {from}\nTo: {to}\nSubject: Call\nDate: Mon, 02 Nov 2026 09:00:00 -0500\nMessage-ID: <{id}>\nMIME-Version: 1.0\nContent-Type: text/calendar; method={method}\n\nBEGIN:VCALENDAR\nMETHOD:{method}\nBEGIN:VEVENT\nUID:{uid}\nSEQUENCE:{seq}\nDTSTART:20261103T{:02}0000Z\nDTEND:20261103T{:02}0000Z\nORGANIZER:mailto:c1@acme.com\nATTENDEE;PARTSTAT={partstat}:mailto:owner@firm.example\nSUMMARY:Call\nEND:VEVENT\nEND:VCALENDAR\n\n",
        hours.0, hours.1
    )
}

/// Four chunks of generated mail with an invite in the first, its update in the second
/// and the owner's decline of another invite in the third.
fn mailbox_with_meetings_changed_later(app: &TestApp) -> std::path::PathBuf {
    let mut generated = Vec::new();
    crate::mbox_gen::write_mbox(&mut generated, 800).expect("generate");
    let generated = String::from_utf8(generated).expect("utf-8");
    let mut messages: Vec<String> = Vec::new();
    for line in generated.split_inclusive('\n') {
        if line.starts_with("From 17") || messages.is_empty() {
            messages.push(String::new());
        }
        messages.last_mut().expect("a message").push_str(line);
    }
    let (a, b) = ("totals-a@acme.com", "totals-b@acme.com");
    let mut mbox = calendar("inv-a@acme.com", "REQUEST", a, 0, (15, 16), false);
    mbox.push_str(&calendar(
        "inv-b@acme.com",
        "REQUEST",
        b,
        0,
        (17, 18),
        false,
    ));
    for (i, m) in messages.iter().enumerate() {
        match i {
            300 => mbox.push_str(&calendar(
                "upd-a@acme.com",
                "REQUEST",
                a,
                1,
                (15, 18),
                false,
            )),
            600 => mbox.push_str(&calendar(
                "dec-b@firm.example",
                "REPLY",
                b,
                0,
                (17, 18),
                true,
            )),
            _ => {}
        }
        mbox.push_str(m);
    }
    app.write("changed-meetings.mbox", &mbox)
}

#[test]
fn the_scan_totals_are_what_the_summary_reports_after_later_chunks_change_meetings() {
    let settings = crate::mbox_gen::SETTINGS;
    let json_app = TestApp::new();
    let mbox = mailbox_with_meetings_changed_later(&json_app);
    let m = path_str(&mbox);
    json_app.tool(
        &mbox,
        "configure_time_tracking",
        &json!({ "settings": serde_json::from_str::<Value>(settings).unwrap() }),
    );
    let scan = json_app.run(&["--mbox", m, "--json", "scan"]);
    scan.assert_ok();
    let scan = scan.json();
    assert!(
        scan["examined"].as_u64().unwrap() > 3 * 256,
        "{}",
        scan["examined"]
    );
    assert!(
        scan["entries_updated"].as_u64().unwrap() >= 1,
        "the update: {}",
        scan["entries_updated"]
    );
    assert!(
        scan["entries_removed"].as_u64().unwrap() >= 1,
        "the decline: {}",
        scan["entries_removed"]
    );
    let summary = json_app.run(&["--json", "summary"]);
    summary.assert_ok();
    let summary = summary.json();

    let groups = |v: &Value| -> Vec<(String, u64, u64, String, String)> {
        let mut rows: Vec<_> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["key"].as_str().unwrap().to_owned(),
                    g["entries"].as_u64().unwrap(),
                    g["billed_minutes"].as_u64().unwrap(),
                    format!("{:.2}", g["amount"].as_f64().unwrap()),
                    format!("{:.1}", g["raw_minutes"].as_f64().unwrap()),
                )
            })
            .collect();
        rows.sort();
        rows
    };
    assert_eq!(groups(&scan["clients"]), groups(&summary["groups"]));
    let total = &summary["total"][0];
    assert_eq!(scan["billed_minutes"], total["billed_minutes"]);
    assert_eq!(
        format!("{:.2}", scan["amount"].as_f64().unwrap()),
        format!("{:.2}", total["amount"].as_f64().unwrap())
    );
    assert_eq!(
        format!("{:.1}", scan["billable_minutes"].as_f64().unwrap()),
        format!("{:.1}", total["raw_minutes"].as_f64().unwrap())
    );
    let shown = scan["entries"].as_array().unwrap();
    assert!(
        !shown.iter().any(|e| e["message_id"] == "inv-b@acme.com"),
        "the declined meeting is not listed as new"
    );
    let a = shown
        .iter()
        .find(|e| e["message_id"] == "inv-a@acme.com")
        .expect("the updated meeting is listed");
    assert_eq!(a["duration_minutes"], 180.0, "its latest version: {a}");

    // The table, on another database, says the same.
    let table_app = TestApp::new();
    table_app.tool(
        &mbox,
        "configure_time_tracking",
        &json!({ "settings": serde_json::from_str::<Value>(settings).unwrap() }),
    );
    let run = table_app.run(&["--mbox", m, "scan"]);
    run.assert_ok();
    let out = run.stdout();
    let summary_groups = summary["groups"].as_array().unwrap();
    for g in summary_groups
        .iter()
        .chain(summary["total"].as_array().unwrap())
    {
        let key = g["key"].as_str().unwrap();
        let line = out
            .lines()
            .find(|l| {
                l.split("  ").next() == Some(key)
                    && l.ends_with(&money(g["amount"].as_f64().unwrap()))
            })
            .unwrap_or_else(|| {
                panic!(
                    "no row `{key}` with the summary's amount {}:\n{out}",
                    g["amount"]
                )
            });
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert!(cells.contains(&g["entries"].to_string().as_str()), "{line}");
        assert!(
            cells.contains(&hours(g["billed_minutes"].as_u64().unwrap()).as_str()),
            "{line}"
        );
    }
    assert!(out.contains("updated") && out.contains("removed"), "{out}");
}

/// Amounts as the tables print them: to the cent, thousands separated.
fn money(v: f64) -> String {
    let cents = format!("{v:.2}");
    let (whole, frac) = cents.split_once('.').unwrap();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{grouped}.{frac}")
}

/// Hours as every table prints them: one decimal.
fn hours(minutes: u64) -> String {
    format!("{:.1}", minutes as f64 / 60.0)
}

#[test]
fn the_scan_and_summary_tables_print_hours_alike_with_separated_amounts_and_plurals() {
    let app = TestApp::new();
    let settings = fixture("demo-settings.json");
    let scan = app.run(&[
        "--mbox",
        path_str(&fixture("demo.mbox")),
        "--settings",
        path_str(&settings),
        "scan",
    ]);
    scan.assert_ok();
    let summary = app.run(&["summary"]);
    summary.assert_ok();
    let json = app.run(&["--json", "summary"]).json();
    let total = &json["total"][0];
    let total_line = |out: &str| -> String {
        out.lines()
            .find(|l| l.starts_with("total"))
            .unwrap_or_else(|| panic!("no total line:\n{out}"))
            .to_owned()
    };
    let (scan_out, summary_out) = (scan.stdout(), summary.stdout());
    let h = hours(total["billed_minutes"].as_u64().unwrap());
    let amount = money(total["amount"].as_f64().unwrap());
    assert!(
        amount.contains(','),
        "the demo bills over a thousand: {amount}"
    );
    for out in [&scan_out, &summary_out] {
        let line = total_line(out);
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert!(
            cells.contains(&h.as_str()) && cells.contains(&amount.as_str()),
            "{line}"
        );
    }
    let one = app.write("one.eml", "From: Jane Cooper <jane.cooper@acme.com>\r\nTo: alex@morganlegal.com\r\nSubject: Contract\r\nDate: Tue, 24 Nov 2026 10:00:00 -0500\r\nMessage-ID: <one-more@acme.com>\r\n\r\nPlease review the attached draft of the contract before Friday.\r\n");
    let dir = app.dir.path().join("one");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::rename(&one, dir.join("one.eml")).unwrap();
    let run = app.run(&[
        "--eml-dir",
        path_str(&dir),
        "--settings",
        path_str(&settings),
        "scan",
    ]);
    run.assert_ok();
    assert!(
        run.stdout().contains("1 new entry ·") && run.stdout().contains(" 0 errors"),
        "{}",
        run.stdout()
    );
}

#[test]
fn analyzing_an_invite_already_recorded_or_declined_says_why_it_yields_no_entry() {
    use crate::scan::invite;
    let app = TestApp::new();
    let settings = fixture("demo-settings.json");
    let uid = "analyze-again@acme.com";
    let first = invite(
        "REQUEST",
        uid,
        0,
        "20261124T150000Z",
        "20261124T160000Z",
        "first@acme.com",
        false,
        "NEEDS-ACTION",
    );
    let resent = invite(
        "REQUEST",
        uid,
        0,
        "20261124T150000Z",
        "20261124T160000Z",
        "resent@acme.com",
        false,
        "NEEDS-ACTION",
    );
    let decline = invite(
        "REPLY",
        uid,
        0,
        "20261124T150000Z",
        "20261124T160000Z",
        "decline@x",
        true,
        "DECLINED",
    );
    let analyze = |name: &str, raw: &str, save: bool| {
        let file = app.write(name, raw);
        let mut args = vec![
            "--settings",
            path_str(&settings),
            "analyze",
            path_str(&file),
        ];
        if save {
            args.push("--save");
        }
        let run = app.run(&args);
        run.assert_ok();
        run.stdout()
    };
    analyze("first.eml", &first, true);
    let again = analyze("resent.eml", &resent, false);
    let headline = again.lines().next().unwrap();
    assert!(
        headline.contains("no new entry") && headline.contains("already recorded"),
        "{again}"
    );
    analyze("decline.eml", &decline, true);
    let after = analyze("first.eml", &first, false);
    let headline = after.lines().next().unwrap();
    assert!(
        headline.contains("no new entry") && headline.contains("declined"),
        "{after}"
    );
    assert!(!headline.contains("not_billable"), "{after}");
}

#[test]
fn settings_from_a_file_apply_to_one_run_unless_saved() {
    let app = TestApp::new();
    let settings = fixture("demo-settings.json");
    let stored = || app.run(&["--json", "configure"]).json();
    let before = stored();
    let run = scan_demo(&app, &["--json"]);
    assert!(
        run.json()["entries_created"].as_u64().unwrap() >= 8,
        "the file's clients were used"
    );
    assert_eq!(
        stored(),
        before,
        "a run with --settings leaves the stored settings alone"
    );
    assert!(!run.stderr().contains("Saved"), "{}", run.stderr());

    let run = app.run(&[
        "--settings",
        path_str(&settings),
        "--save",
        "--json",
        "configure",
    ]);
    run.assert_ok();
    assert!(
        run.stderr().contains("Saved the settings"),
        "{}",
        run.stderr()
    );
    assert_eq!(stored()["timezone"], "America/New_York");

    // `configure` stores a settings file as asked, and says so.
    let other = TestApp::new();
    let run = other.run(&["--settings", path_str(&settings), "--json", "configure"]);
    run.assert_ok();
    assert!(
        run.stderr().contains("Saved the settings"),
        "{}",
        run.stderr()
    );
    assert_eq!(
        other.run(&["--json", "configure"]).json()["timezone"],
        "America/New_York"
    );
}

/// Runs `configure` with these arguments, expecting exit 2, and returns stderr.
fn configure_refused(app: &TestApp, args: &[&str]) -> String {
    let mut all = vec!["configure"];
    all.extend_from_slice(args);
    let run = app.run(&all);
    assert_eq!(run.code(), 2, "{args:?}: {}{}", run.stdout(), run.stderr());
    run.stderr()
}

#[test]
fn configure_says_what_is_wrong_in_the_users_words_and_edits_lists_one_item_at_a_time() {
    let app = TestApp::new();
    let e = configure_refused(&app, &["--set", r#"clients=[{"name":"X",}]"#]);
    assert!(
        e.contains("not valid JSON at column 14: trailing comma"),
        "{e}"
    );
    let e = configure_refused(&app, &["--set", "timezon=UTC"]);
    assert!(e.contains("did you mean `timezone`?"), "{e}");
    assert_eq!(
        e.matches("timezon").count() - e.matches("timezone").count(),
        2,
        "named once (and in the key): {e}"
    );
    let e = configure_refused(&app, &["--set", "billing_increment_minutes=ten"]);
    for rust in ["i64", "u32", "u64", "f64", "sequence"] {
        assert!(!e.contains(rust), "{e}");
    }
    let e = configure_refused(&app, &["--set", "my_addresses=\"a@b.com\""]);
    assert!(!e.contains("sequence") && e.contains("list"), "{e}");
    let e = configure_refused(&app, &["--set", "default_query=from:(acme.com"]);
    assert!(e.contains("default_query"), "{e}");
    let e = configure_refused(&app, &["--set", "currency=null"]);
    assert!(e.contains("null"), "{e}");

    let stored = |args: &[&str]| {
        let mut all = vec!["--json", "configure"];
        all.extend_from_slice(args);
        let run = app.run(&all);
        run.assert_ok();
        run.json()
    };
    assert_eq!(
        stored(&["--set", "default_query=from:acme.com"])["default_query"],
        "from:acme.com"
    );
    assert!(
        stored(&["--set", "default_query=null"])["default_query"]
            .as_str()
            .unwrap_or("")
            .is_empty()
    );
    let s = stored(&[
        "--add",
        r#"clients={"name":"Acme","domains":["acme.com"]}"#,
        "--add",
        "my_addresses=me@firm.com",
    ]);
    assert_eq!(s["clients"][0]["name"], "Acme");
    assert_eq!(s["my_addresses"], json!(["me@firm.com"]));
    let s = stored(&[
        "--add",
        r#"clients={"name":"Globex","domains":["globex.io"]}"#,
    ]);
    assert_eq!(s["clients"].as_array().unwrap().len(), 2);
    let s = stored(&[
        "--remove",
        "clients=acme",
        "--remove",
        "my_addresses=me@firm.com",
    ]);
    let names: Vec<&str> = s["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Globex"]);
    assert_eq!(s["my_addresses"], json!([]));
    let e = configure_refused(&app, &["--remove", "clients=Initech"]);
    assert!(e.contains("Globex"), "{e}");

    let help = app.run(&["configure", "--help"]).stdout();
    for key in ["timezone", "clients", "default_query", "min_confidence"] {
        assert!(help.contains(key), "{help}");
    }
}

#[test]
fn help_says_each_options_format_and_lists_the_tools() {
    let app = TestApp::new();
    let help = |args: &[&str]| {
        let run = app.run(args);
        run.assert_ok();
        run.stdout()
    };
    let tool = help(&["tool", "--help"]);
    for t in billable::tools::TOOLS {
        assert!(tool.contains(t.name), "{tool}");
    }
    assert!(help(&["scan", "--help"]).contains("YYYY-MM-DD"));
    let entries = help(&["entries", "--help"]);
    assert!(
        entries.contains("1 to 500") && entries.contains("<NAME>"),
        "{entries}"
    );
    assert!(help(&["summary", "--help"]).contains("Count only billable"));
    assert!(help(&["serve", "--help"]).contains("HOST:PORT"));
    for reads_mail in ["scan", "analyze", "tool", "serve", "mcp"] {
        let h = help(&[reads_mail, "--help"]);
        assert!(h.contains("--mbox") && h.contains("--analyzer"), "{h}");
    }
    for reads_none in ["tools", "migrate", "auth", "entries", "export"] {
        let h = help(&[reads_none, "--help"]);
        assert!(!h.contains("--mbox") && !h.contains("--gmail"), "{h}");
    }
}

#[test]
fn an_option_the_command_would_ignore_is_refused() {
    let app = TestApp::new();
    let mbox = app.write("m.mbox", "");
    let m = path_str(&mbox);
    let home = app.dir.path();
    let refused = |command: &mut std::process::Command, says: &str| {
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(out.stdout.is_empty());
    };
    refused(
        billable(home).args(["--mbox", m, "tools"]),
        "`tools` reads no mail, so --mbox would be ignored",
    );
    refused(
        billable(home).args(["--analyzer", "llm", "entries"]),
        "`entries` reads no mail, so --analyzer would be ignored",
    );
    refused(billable(home).args(["tools", "--mbox", m]), "--mbox");
    refused(
        billable(home).args(["--db", "x.sqlite3", "migrate"]),
        "`migrate` takes no --db: it migrates the Postgres database in DATABASE_URL",
    );
    refused(
        billable(home).args(["--mbox", m, "scan", "--maildir", "d"]),
        "either before the command or after it, not both",
    );
    // After the command's name works as before it.
    let demo = fixture("demo.mbox");
    let d = path_str(&demo);
    let settings = fixture("demo-settings.json");
    let found = |args: &[&str]| {
        let run = app.run(&[&["--settings", path_str(&settings)], args].concat());
        run.assert_ok();
        run.json()["entries"].as_array().unwrap().len()
    };
    let before = found(&["--json", "--mbox", d, "scan", "--dry-run"]);
    assert!(before > 0);
    assert_eq!(found(&["--json", "scan", "--mbox", d, "--dry-run"]), before);
}

#[test]
fn a_reader_that_stops_early_gets_no_panic() {
    use std::io::Read;
    let app = TestApp::new();
    let mut tools = billable(app.dir.path());
    tools.arg("tools");
    let mut configure = app.command();
    configure.args(["--json", "configure"]);
    for mut command in [tools, configure] {
        let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        // Read nothing: close the pipe as `head -0` would.
        drop(child.stdout.take());
        let status = child.wait().expect("wait");
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
        assert_eq!(status.code(), Some(0), "{args:?}: {stderr}");
    }
}

#[test]
fn with_json_errors_are_json_on_stderr_with_the_same_exit_codes() {
    let app = TestApp::new();
    let run = app.run(&["--json", "scan"]);
    assert_eq!(run.code(), 2);
    let error: Value = serde_json::from_str(run.stderr().trim())
        .unwrap_or_else(|e| panic!("{e}: {}", run.stderr()));
    assert_eq!(error["error"]["code"], "invalid_input");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--mbox"),
        "{error}"
    );
    let run = app.run(&["tool", "bill_everything", "{}"]);
    assert_eq!(run.code(), 2);
    let error: Value = serde_json::from_str(run.stderr().trim())
        .unwrap_or_else(|e| panic!("{e}: {}", run.stderr()));
    assert_eq!(error["error"]["code"], "unknown_tool");
}

#[test]
fn a_file_or_folder_that_is_not_an_mbox_is_refused_with_exit_2() {
    let app = TestApp::new();
    let settings = fixture("demo-settings.json");
    let run = app.run(&["--mbox", path_str(&settings), "scan"]);
    assert_eq!(run.code(), 2, "{}{}", run.stdout(), run.stderr());
    assert!(
        run.stderr()
            .contains("demo-settings.json is not an mbox file: its first line is `{`"),
        "{}",
        run.stderr()
    );
    let folder = fixture("");
    let run = app.run(&["--mbox", path_str(&folder), "scan"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert_eq!(
        run.stderr().matches("--maildir").count(),
        1,
        "the hint once: {}",
        run.stderr()
    );
}

#[tokio::test]
async fn ctrl_c_during_a_scan_saves_what_was_done_records_it_interrupted_and_exits_3() {
    let app = TestApp::new();
    let mut mbox = Vec::new();
    crate::mbox_gen::write_mbox(&mut mbox, 60_000).expect("generate");
    let mbox = app.write("big.mbox", &String::from_utf8(mbox).expect("utf-8"));
    // Migrated before the child starts: two processes migrating one new file race.
    let ctx = app.context(None);
    let child = app
        .command()
        .args(["--mbox", path_str(&mbox), "scan"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let user = billable::domain::UserId::local();
    // Interrupt once the scan is under way.
    for _ in 0..200 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if ctx
            .store
            .scans(&user, 1)
            .await
            .map(|s| !s.is_empty())
            .unwrap_or(false)
        {
            break;
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .expect("wait");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{:?}: {stdout}{stderr}",
        out.status
    );
    assert!(
        stdout.contains("run the same command again to resume"),
        "{stdout}{stderr}"
    );
    let scans = ctx.store.scans(&user, 1).await.expect("scans");
    assert_eq!(scans[0].status.as_str(), "interrupted", "{:?}", scans[0]);
    assert!(
        scans[0].examined > 0 && scans[0].examined < 60_000,
        "{:?}",
        scans[0]
    );
    assert!(
        stdout.contains(&format!("{} examined", scans[0].examined)),
        "what was saved is printed: {stdout}"
    );
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    use std::io::Write;
    let app = TestApp::new();
    let mut child = app
        .command()
        .arg("mcp")
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#)
        .unwrap();
    stdin.write_all(b"\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("INFO"), "some logs at info: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
}

#[test]
fn the_scan_table_fits_the_terminal_width_too() {
    let app = TestApp::new();
    let (mbox, settings) = (fixture("demo.mbox"), fixture("demo-settings.json"));
    let args = [
        "--mbox",
        path_str(&mbox),
        "--settings",
        path_str(&settings),
        "scan",
    ];
    let run = app.run_with(&args, &[("COLUMNS", "90")]);
    run.assert_ok();
    let out = run.stdout();
    // The new entries' table is the first block of the report.
    let table: Vec<&str> = out.lines().take_while(|l| !l.is_empty()).collect();
    assert!(table.len() > 2, "{out}");
    for line in table {
        assert!(line.chars().count() <= 90, "{line:?} in\n{out}");
    }
}

#[test]
fn the_entries_table_fits_the_terminal_width_unless_wide() {
    let app = TestApp::new();
    scan_demo(&app, &[]);
    let widest = |out: &str| out.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    let narrow = app.run_with(&["entries"], &[("COLUMNS", "90")]);
    narrow.assert_ok();
    assert!(widest(&narrow.stdout()) <= 90, "{}", narrow.stdout());
    let wide = app.run_with(&["entries", "--wide"], &[("COLUMNS", "90")]);
    wide.assert_ok();
    assert!(widest(&wide.stdout()) > 90, "{}", wide.stdout());
    assert!(
        !wide.stdout().contains('…'),
        "whole descriptions: {}",
        wide.stdout()
    );
}

#[test]
fn schedule_run_now_queues_each_due_slot_once_and_the_job_waits_for_a_worker() {
    let app = TestApp::new();
    let none = app.run(&["schedule", "run-now"]);
    none.assert_ok();
    assert!(
        none.stdout().contains("No scheduled scan was due"),
        "{}",
        none.stdout()
    );
    let settings =
        json!({"settings": {"timezone": "America/New_York", "schedule": "weekdays 07:00"}});
    app.run(&["tool", "configure_time_tracking", &settings.to_string()])
        .assert_ok();
    // Friday 08:00 in New York: the 07:00 run is due.
    let at = [
        "--json",
        "schedule",
        "run-now",
        "--at",
        "2026-12-04T13:00:00Z",
    ];
    let first = app.run(&at);
    first.assert_ok();
    let queued = first.json();
    assert_eq!(queued.as_array().map(Vec::len), Some(1), "{queued}");
    assert_eq!(queued[0]["due"], "2026-12-04T12:00:00Z", "{queued}");
    let again = app.run(&at);
    again.assert_ok();
    assert_eq!(again.json(), json!([]), "a slot is queued once");
    let scans = app.run(&["tool", "list_scans", "{}"]);
    scans.assert_ok();
    let scans = scans.json();
    assert_eq!(scans["scans"][0]["job_id"], queued[0]["job_id"], "{scans}");
    assert_eq!(scans["scans"][0]["state"], "queued", "{scans}");
    let bad = app.run(&["schedule", "run-now", "--at", "tomorrow"]);
    assert_eq!(bad.code(), 2, "{}", bad.stderr());
}
