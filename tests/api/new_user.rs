//! The review and export paths as a new user walks them (issue 36), with the built
//! binary and a cleared environment: files are exactly their bytes on stdout and
//! with --out, a merge keeps a person's numbers, totals agree with each other at every
//! step, and errors speak in commands and flags.

use std::process::Stdio;

use serde_json::Value;

use crate::helpers::{TestApp, fixture, path_str};

/// The demo settings stored, with the timekeeper and firm LEDES needs and the
/// client's e-billing id, then the demo mailbox scanned.
fn demo(app: &TestApp) {
    let settings = fixture("demo-settings.json");
    app.run(&["--settings", path_str(&settings), "configure"])
        .assert_ok();
    app.run(&[
        "configure",
        "--set",
        "timekeeper_id=AM01",
        "--set",
        "timekeeper_name=Morgan, Alex",
        "--set",
        "timekeeper_classification=PT",
        "--set",
        "law_firm_id=12-3456789",
    ])
    .assert_ok();
    let mut configured = json(app, &["configure"]);
    configured["clients"][0]["ledes_client_id"] = "ACME-CL".into();
    let clients = configured["clients"].to_string();
    app.run(&["configure", "--set", &format!("clients={clients}")])
        .assert_ok();
    let mbox = fixture("demo.mbox");
    app.run(&["--mbox", path_str(&mbox), "scan"]).assert_ok();
}

fn json(app: &TestApp, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let run = app.run(&all);
    run.assert_ok();
    run.json()
}

fn entries(app: &TestApp) -> Vec<Value> {
    json(app, &["entries", "--limit", "500"])["entries"]
        .as_array()
        .expect("entries")
        .clone()
}

fn id_of(e: &Value) -> String {
    e["id"].as_str().expect("id").to_owned()
}

/// The entry of `client` on `date` whose activity is `activity`.
fn find(all: &[Value], client: &str, date: &str, activity: &str) -> Value {
    all.iter()
        .find(|e| e["client"] == client && e["work_date"] == date && e["activity"] == activity)
        .unwrap_or_else(|| panic!("no {activity} of {client} on {date} in {all:#?}"))
        .clone()
}

fn cents(v: &Value) -> i64 {
    (v.as_f64().unwrap_or(0.0) * 100.0).round() as i64
}

/// Checks the totals against each other: the summary is the sum of the listed
/// (non-rejected) entries, amounts counting billable entries only; returns the
/// approved billable entries' (count, minutes, cents) an export would send.
fn totals_agree(app: &TestApp, step: &str) -> (u64, u64, i64) {
    let all = entries(app);
    let counted: Vec<&Value> = all.iter().filter(|e| e["status"] != "rejected").collect();
    let summary = json(app, &["summary"]);
    let total = &summary["total"][0];
    let minutes: u64 = counted
        .iter()
        .map(|e| e["billed_minutes"].as_u64().unwrap_or(0))
        .sum();
    let amount: i64 = counted.iter().map(|e| cents(&e["amount"])).sum();
    assert_eq!(total["entries"], counted.len() as u64, "{step}: {summary}");
    assert_eq!(total["billed_minutes"], minutes, "{step}: {summary}");
    assert_eq!(cents(&total["amount"]), amount, "{step}: {summary}");
    for e in &all {
        if e["billable"] == false {
            assert_eq!(e["amount"], 0.0, "{step}: not billable, no charge: {e}");
        }
    }
    let approved: Vec<&Value> = all
        .iter()
        .filter(|e| e["status"] == "approved" && e["billable"] == true)
        .filter(|e| e["exported_at"].is_null())
        .collect();
    (
        approved.len() as u64,
        approved
            .iter()
            .map(|e| e["billed_minutes"].as_u64().unwrap_or(0))
            .sum(),
        approved.iter().map(|e| cents(&e["amount"])).sum(),
    )
}

/// An export's stdout as bytes (its report goes to stderr).
fn export_to_stdout(app: &TestApp, args: &[&str]) -> Vec<u8> {
    let mut all = vec!["export"];
    all.extend_from_slice(args);
    let run = app.run(&all);
    run.assert_ok();
    run.0.stdout
}

const LEDES: [&str; 10] = [
    "--format",
    "ledes1998b",
    "--client",
    "Acme Corp",
    "--invoice",
    "2026-1101",
    "--invoice-date",
    "2026-11-30",
    "--from",
    "2026-11-01",
];

#[test]
fn a_new_users_twenty_steps_keep_every_total_in_agreement() {
    let app = TestApp::new();
    // 1-3: configure (settings, LEDES identity, client id) and scan.
    demo(&app);
    // 4: entries and summary agree.
    let (n, _, _) = totals_agree(&app, "after the scan");
    assert_eq!(n, 0, "a scan approves nothing");
    let all = entries(&app);
    let call = find(&all, "Acme Corp", "2026-11-23", "call");
    let meeting = find(&all, "Acme Corp", "2026-11-19", "meeting");
    assert_eq!(meeting["billed_minutes"], 60, "{meeting}");
    // 5: a person cuts the call to 18 minutes.
    let edited = json(&app, &["edit", &id_of(&call), "--minutes", "18"]);
    assert_eq!(edited["entries"][0]["billed_minutes"], 18, "{edited}");
    totals_agree(&app, "after the edit");
    // 6: both approved.
    json(&app, &["approve", &id_of(&call), &id_of(&meeting)]);
    totals_agree(&app, "after approving");
    // 7: a merge across days needs a date, and says so.
    let refused = app.run(&["merge", &id_of(&call), &id_of(&meeting)]);
    assert_eq!(refused.code(), 2, "{}", refused.stderr());
    assert!(refused.stderr().contains("--date"), "{}", refused.stderr());
    assert!(
        refused.stderr().contains("2026-11-19, 2026-11-23"),
        "{}",
        refused.stderr()
    );
    // 8: merged on one day: 18 + 60 = 78 minutes, approved, codes kept.
    let merged = json(
        &app,
        &[
            "merge",
            &id_of(&call),
            &id_of(&meeting),
            "--date",
            "2026-11-23",
        ],
    )["entry"]
        .clone();
    assert_eq!(merged["billed_minutes"], 78, "{merged}");
    assert_eq!(merged["work_date"], "2026-11-23", "{merged}");
    assert_eq!(merged["status"], "approved", "{merged}");
    if call["activity_code"] == meeting["activity_code"] {
        assert_eq!(merged["activity_code"], call["activity_code"], "{merged}");
    }
    assert!(merged["activity_code"].is_string(), "{merged}");
    totals_agree(&app, "after the merge");
    // 9: split restores both as they were.
    json(&app, &["split", &id_of(&merged)]);
    let restored = entries(&app);
    let call_now = restored.iter().find(|e| e["id"] == call["id"]).unwrap();
    assert_eq!(call_now["billed_minutes"], 18, "{call_now}");
    totals_agree(&app, "after the split");
    // 10: merged again.
    let merged = json(
        &app,
        &[
            "merge",
            &id_of(&call),
            &id_of(&meeting),
            "--date",
            "2026-11-23",
        ],
    )["entry"]
        .clone();
    assert_eq!(merged["billed_minutes"], 78);
    // 11: a manual entry, not billable: recorded, never charged.
    let free = json(
        &app,
        &[
            "add",
            "--client",
            "Acme Corp",
            "--date",
            "2026-11-24",
            "--minutes",
            "12",
            "--description",
            "-5% fee reduction courtesy call",
            "--not-billable",
        ],
    );
    assert_eq!(free["amount"], 0.0, "{free}");
    assert_eq!(free["description"], "-5% fee reduction courtesy call");
    assert_eq!(free["activity_code"], "A106", "{free}");
    let table = app.run_with(&["entries"], &[("COLUMNS", "80")]);
    table.assert_ok();
    assert!(table.stdout().contains("n/c"), "{}", table.stdout());
    for line in table.stdout().lines() {
        assert!(line.chars().count() <= 80, "{line:?}\n{}", table.stdout());
    }
    // 12: the rest of Acme's November approved, one suggestion rejected.
    let rest: Vec<String> = entries(&app)
        .iter()
        .filter(|e| e["client"] == "Acme Corp" && e["status"] != "approved")
        .map(id_of)
        .collect();
    let reject = entries(&app)
        .iter()
        .find(|e| e["client"] != "Acme Corp" && e["status"] != "approved")
        .map(id_of)
        .expect("another client's entry");
    let mut approve = vec!["approve"];
    approve.extend(rest.iter().map(String::as_str));
    if !rest.is_empty() {
        json(&app, &approve);
    }
    json(&app, &["reject", &reject]);
    // 13: summary = entries, and --billable-only has the same amount.
    let (count, minutes, amount) = totals_agree(&app, "before the export");
    let billable_only = json(&app, &["summary", "--billable-only"]);
    let all_summary = json(&app, &["summary"]);
    assert_eq!(
        cents(&billable_only["total"][0]["amount"]),
        cents(&all_summary["total"][0]["amount"]),
        "amounts are billable entries' either way"
    );
    // 14: a dry run to stdout, then 15: the real export to stdout, byte-identical.
    let mut dry = LEDES.to_vec();
    dry.push("--dry-run");
    let preview = export_to_stdout(&app, &dry);
    let stdout = export_to_stdout(&app, &LEDES);
    assert_eq!(preview, stdout);
    let text = String::from_utf8(stdout.clone()).expect("UTF-8");
    assert!(!text.contains("\\u{"), "{text}");
    let ledes = crate::ledes::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let _ = ledes;
    let acme_cents: i64 = entries(&app)
        .iter()
        .filter(|e| e["client"] == "Acme Corp" && e["billable"] == true)
        .filter(|e| e["status"] == "approved")
        .map(|e| cents(&e["amount"]))
        .sum();
    let total_field: i64 = text
        .lines()
        .nth(2)
        .and_then(|l| l.split('|').nth(4))
        .and_then(|t| t.parse::<f64>().ok())
        .map(|t| (t * 100.0).round() as i64)
        .expect("INVOICE_TOTAL");
    assert_eq!(
        total_field, acme_cents,
        "export total = approved billable\n{text}"
    );
    // 16: the same file with --out, byte for byte (sent again on purpose).
    let out = app.dir.path().join("acme.txt");
    let mut again = vec!["export"];
    again.extend(LEDES);
    again.extend(["--include-exported", "--out", path_str(&out)]);
    app.run(&again).assert_ok();
    assert_eq!(std::fs::read(&out).unwrap(), stdout);
    // 17: nothing new to export: no file written, and it says so.
    let none = app.dir.path().join("none.txt");
    let mut nothing = vec!["export"];
    nothing.extend(LEDES);
    nothing.extend(["--out", path_str(&none)]);
    let run = app.run(&nothing);
    run.assert_ok();
    assert!(!none.exists(), "an empty export writes no file");
    assert!(run.stdout().contains("was not written"), "{}", run.stdout());
    // 18: the CSV of every client: stdout and --out alike.
    let csv = export_to_stdout(
        &app,
        &["--format", "csv", "--include-exported", "--dry-run"],
    );
    let csv_out = app.dir.path().join("all.csv");
    app.run(&[
        "export",
        "--format",
        "csv",
        "--include-exported",
        "--dry-run",
        "--out",
        path_str(&csv_out),
    ])
    .assert_ok();
    assert_eq!(std::fs::read(&csv_out).unwrap(), csv);
    let csv_text = String::from_utf8(csv).unwrap();
    assert_eq!(
        csv_text.lines().count() as u64 - 1,
        count,
        "one row per approved billable entry: {csv_text}"
    );
    // 19: the exported entries are marked; totals still agree.
    let (left, _, _) = totals_agree(&app, "after the export");
    assert!(left < count, "the Acme entries were marked exported");
    // 20: the summary of approved work equals what was exported overall.
    let approved = json(
        &app,
        &["summary", "--status", "approved", "--billable-only"],
    );
    assert_eq!(approved["total"][0]["billed_minutes"], minutes);
    assert_eq!(cents(&approved["total"][0]["amount"]), amount);
}

#[test]
fn every_format_is_the_same_bytes_on_stdout_and_with_out() {
    let app = TestApp::new();
    demo(&app);
    let ids: Vec<String> = entries(&app)
        .iter()
        .filter(|e| e["client"] == "Acme Corp")
        .map(id_of)
        .collect();
    let mut approve = vec!["approve"];
    approve.extend(ids.iter().map(String::as_str));
    json(&app, &approve);
    for format in [
        "ledes1998b",
        "csv",
        "harvest_csv",
        "toggl_csv",
        "harvest-csv",
    ] {
        let mut args = LEDES.to_vec();
        args[1] = format;
        args.push("--dry-run");
        let stdout = export_to_stdout(&app, &args);
        let path = app.dir.path().join(format!("{format}.out"));
        let mut to_file = vec!["export"];
        to_file.extend(args.iter().copied());
        to_file.extend(["--out", path_str(&path)]);
        app.run(&to_file).assert_ok();
        assert_eq!(std::fs::read(&path).unwrap(), stdout, "{format}");
        let text = String::from_utf8(stdout).unwrap();
        assert!(text.ends_with("\r\n"), "{format}: {text:?}");
        assert!(!text.contains("\\u{d}"), "{format}: {text}");
        if format == "ledes1998b" {
            crate::ledes::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        }
    }
}

#[test]
fn a_failed_write_to_stdout_marks_nothing_exported() {
    let app = TestApp::new();
    demo(&app);
    let ids: Vec<String> = entries(&app)
        .iter()
        .filter(|e| e["client"] == "Acme Corp")
        .map(id_of)
        .collect();
    let mut approve = vec!["approve"];
    approve.extend(ids.iter().map(String::as_str));
    json(&app, &approve);
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let out = app
        .command()
        .arg("export")
        .args(LEDES)
        .stdout(Stdio::from(full))
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nothing was marked exported"), "{stderr}");
    assert!(
        entries(&app).iter().all(|e| e["exported_at"].is_null()),
        "a failed write marks nothing"
    );
    // The retry sends everything.
    let text = String::from_utf8(export_to_stdout(&app, &LEDES)).unwrap();
    assert_eq!(text.lines().count(), 2 + ids.len(), "{text}");
}

#[test]
fn a_client_that_matches_nothing_is_refused_naming_the_clients_and_writes_no_file() {
    let app = TestApp::new();
    demo(&app);
    let path = app.dir.path().join("acme.txt");
    let run = app.run(&[
        "export",
        "--format",
        "ledes1998b",
        "--client",
        "Acme",
        "--invoice",
        "1",
        "--out",
        path_str(&path),
    ]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr().contains("Acme Corp, Globex, Initech"),
        "{}",
        run.stderr()
    );
    assert!(
        !run.stderr().contains("exported before"),
        "{}",
        run.stderr()
    );
    assert!(!path.exists());
}

#[test]
fn a_typed_description_is_kept_as_typed_and_quoted_only_in_the_csv() {
    let app = TestApp::new();
    demo(&app);
    let e = id_of(&entries(&app)[0]);
    for typed in ["-5% fee reduction", "=HYPERLINK(\"http://x\",\"y\") memo"] {
        let out = json(
            &app,
            &["edit", &e, "--description", typed, "--status", "approved"],
        );
        assert_eq!(out["entries"][0]["description"], typed, "{out}");
    }
    let csv = String::from_utf8(export_to_stdout(&app, &["--format", "csv", "--dry-run"])).unwrap();
    assert!(csv.contains("'=HYPERLINK"), "{csv}");
    let bad = app.run(&["edit", &e, "--description", "two\nlines"]);
    assert_eq!(bad.code(), 2, "{}", bad.stderr());
}

#[test]
fn spellings_and_errors_are_the_clis_own() {
    let app = TestApp::new();
    demo(&app);
    for status in ["needs_review", "needs-review"] {
        json(&app, &["entries", "--status", status]);
    }
    let e = id_of(&entries(&app)[0]);
    let run = app.run(&["edit", &e, "--minutes", "10"]);
    assert_eq!(run.code(), 2);
    assert!(run.stderr().contains("--minutes"), "{}", run.stderr());
    assert!(!run.stderr().contains("changes."), "{}", run.stderr());
    // Missing LEDES settings, all named in one run.
    let fresh = TestApp::new();
    let settings = fixture("demo-settings.json");
    fresh
        .run(&["--settings", path_str(&settings), "configure"])
        .assert_ok();
    let mbox = fixture("demo.mbox");
    fresh.run(&["--mbox", path_str(&mbox), "scan"]).assert_ok();
    let ids: Vec<String> = entries(&fresh)
        .iter()
        .filter(|e| e["client"] == "Acme Corp")
        .map(id_of)
        .collect();
    let mut approve = vec!["approve"];
    approve.extend(ids.iter().map(String::as_str));
    json(&fresh, &approve);
    let run = fresh.run(&["export", "--format", "ledes1998b", "--client", "Acme Corp"]);
    assert_eq!(run.code(), 2);
    let err = run.stderr();
    for named in [
        "INVOICE_NUMBER",
        "CLIENT_ID",
        "TIMEKEEPER_ID",
        "LAW_FIRM_ID",
        "--invoice",
        "billable configure",
    ] {
        assert!(err.contains(named), "{named}: {err}");
    }
    assert!(!err.contains("configure_time_tracking"), "{err}");
    // Numbers and booleans as strings, as some MCP clients send them.
    let mbox = fixture("demo.mbox");
    let listed = app.tool(
        &mbox,
        "list_time_entries",
        &serde_json::json!({"limit": "2"}),
    );
    assert_eq!(listed["entries"].as_array().unwrap().len(), 2, "{listed}");
    let dry = app.tool(
        &mbox,
        "export_time_entries",
        &serde_json::json!({"format": "csv", "status": "suggested", "dry_run": "true", "include_exported": "false"}),
    );
    assert!(dry["batch_id"].is_null(), "{dry}");
}

#[test]
fn the_scan_hint_adds_a_client_instead_of_replacing_them() {
    let app = TestApp::new();
    let mbox = fixture("demo.mbox");
    let run = app.run(&["--mbox", path_str(&mbox), "scan"]);
    run.assert_ok();
    assert!(
        run.stdout().contains("billable configure --add clients='{"),
        "{}",
        run.stdout()
    );
    assert!(!run.stdout().contains("--set clients"), "{}", run.stdout());
}
