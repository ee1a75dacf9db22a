//! Review and release end to end on the demo mailbox, through `/v1/tools/call` (and
//! through the CLI's commands): scan, merge two, edit one, approve three, reject one,
//! add one by hand, export LEDES 1998B and CSV. Both files must equal the checked-in
//! files in `tests/fixtures/review/` byte for byte once the random entry ids are
//! replaced by their order of first appearance (`ENTRY-1`, …); a second export yields
//! no lines; a rescan and a reanalysis leave every reviewed entry as it was left.
//!
//! `BILLABLE_WRITE_EXPECTED=1` rewrites the expected files instead of comparing.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::helpers::{demo_settings, fixture};
use crate::http::{Server, TOKEN, local_config, spawn};
use crate::ledes;

/// The demo settings plus what a LEDES invoice needs.
pub fn release_settings() -> Value {
    let mut s = demo_settings();
    s["timekeeper_id"] = json!("AM01");
    s["timekeeper_name"] = json!("Morgan, Alex");
    s["timekeeper_classification"] = json!("PT");
    s["law_firm_id"] = json!("12-3456789");
    for c in s["clients"].as_array_mut().expect("clients") {
        let id = format!(
            "{}-CL",
            c["name"]
                .as_str()
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_uppercase()
        );
        c["ledes_client_id"] = json!(id);
    }
    s
}

/// The demo entry made from the message whose id starts with `prefix`.
pub fn id_of(entries: &Value, prefix: &str) -> String {
    entries["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["message_id"].as_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("no entry for {prefix}: {entries}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `text` with every entry id (and the message ids that embed one) replaced by its
/// order of first appearance, so a file of random ids compares byte for byte.
pub fn stable_ids(text: &str) -> String {
    let id = regex::Regex::new(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
        .expect("regex");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    id.replace_all(text, |c: &regex::Captures<'_>| {
        let n = seen.len() + 1;
        format!("ENTRY-{}", seen.entry(c[0].to_owned()).or_insert(n))
    })
    .into_owned()
}

/// Compares `actual` with the expected file `name`, or rewrites it when asked.
pub fn assert_expected(name: &str, actual: &str) {
    let path = fixture(&format!("review/{name}"));
    let actual = stable_ids(actual);
    if std::env::var_os("BILLABLE_WRITE_EXPECTED").is_some() {
        std::fs::write(&path, &actual).expect("write expected");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (BILLABLE_WRITE_EXPECTED=1 writes it)",
            path.display()
        )
    });
    assert!(
        expected.as_bytes() == actual.as_bytes(),
        "{name} differs from {}:\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// The reviewed entries, by id, as they are stored now.
pub fn reviewed(list: &Value) -> BTreeMap<String, Value> {
    list["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| !e["reviewed_at"].is_null())
        .map(|e| (e["id"].as_str().unwrap().to_owned(), e.clone()))
        .collect()
}

fn call(id: &str, name: &str, args: &Value) -> Value {
    json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}})
}

/// One tool call through `/v1/tools/call`, as a model's function call; the tool
/// message's content as JSON.
async fn tool(s: &Server, name: &str, args: Value) -> Value {
    let (status, messages) = s
        .post("/v1/tools/call", TOKEN, &call("c1", name, &args))
        .await;
    assert_eq!(status, 200, "{name}: {messages}");
    let text = messages[0]["content"].as_str().expect("tool content");
    let answer: Value = serde_json::from_str(text).expect("tool content is JSON");
    assert!(answer.get("error").is_none(), "{name} {args}: {answer}");
    answer
}

#[tokio::test]
async fn review_and_release_through_v1_tools_call_exports_the_expected_files_once() {
    let s = spawn(local_config(), &[]).await;
    tool(
        &s,
        "configure_time_tracking",
        json!({"settings": release_settings()}),
    )
    .await;
    tool(&s, "scan_billable_time", json!({})).await;
    let all = json!({"limit": 500});
    let listed = tool(&s, "list_time_entries", all.clone()).await;

    let merged = tool(
        &s,
        "merge_time_entries",
        json!({"ids": [id_of(&listed, "msa-redline-2"), id_of(&listed, "msa-redline-reply-1")],
               "description": "Reviewed Jane Cooper's redline of the MSA and replied"}),
    )
    .await;
    let merged_id = merged["entry"]["id"].as_str().unwrap().to_owned();
    let tps = id_of(&listed, "CAB+tps-retention-1");
    tool(
        &s,
        "update_time_entries",
        json!({"ids": [tps], "changes": {"client": "Acme Corp", "billed_minutes": 18,
               "description": "Reviewed the TPS retention question for the MSA"}}),
    )
    .await;
    let approved = tool(
        &s,
        "update_time_entries",
        json!({"ids": [merged_id, id_of(&listed, "invite-msa-call"), tps],
               "changes": {"status": "approved"}}),
    )
    .await;
    assert_eq!(approved["updated"], 3, "{approved}");
    tool(
        &s,
        "update_time_entries",
        json!({"ids": [id_of(&listed, "initech-merger-q")], "changes": {"status": "rejected"}}),
    )
    .await;
    tool(
        &s,
        "add_time_entry",
        json!({"client": "Acme Corp", "work_date": "2026-11-24", "billed_minutes": 30,
               "description": "Call with Jane Cooper on the MSA signature blocks",
               "activity_code": "A106"}),
    )
    .await;

    let period = json!({"from": "2026-11-01", "to": "2026-11-30"});
    let invoice =
        json!({"number": "2026-1101", "date": "2026-11-30", "description": "November 2026"});
    let ledes_args = json!({"format": "ledes1998b", "client": "Acme Corp", "from": period["from"],
                            "to": period["to"], "invoice": invoice});
    let ledes = tool(&s, "export_time_entries", ledes_args.clone()).await;
    assert_eq!(ledes["entries"], 4, "{ledes}");
    let text = ledes["content"].as_str().unwrap();
    let parsed = ledes::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(parsed.items.len(), 4);
    assert_expected("november.ledes.txt", text);

    let csv = tool(
        &s,
        "export_time_entries",
        json!({"format": "csv", "from": period["from"], "to": period["to"], "include_exported": true}),
    )
    .await;
    assert_expected("november.csv", csv["content"].as_str().unwrap());

    // A second export sends nothing again.
    let again = tool(&s, "export_time_entries", ledes_args).await;
    assert_eq!(
        (again["entries"].as_u64(), again["batch_id"].is_null()),
        (Some(0), true)
    );
    assert_eq!(
        ledes::parse(again["content"].as_str().unwrap())
            .unwrap()
            .items
            .len(),
        0
    );

    // A rescan and a reanalysis leave every reviewed entry as the person left it.
    let before = reviewed(&tool(&s, "list_time_entries", all.clone()).await);
    assert_eq!(before.len(), 5, "{before:?}");
    tool(&s, "scan_billable_time", json!({})).await;
    tool(&s, "scan_billable_time", json!({"reanalyze": true})).await;
    let after = reviewed(&tool(&s, "list_time_entries", all).await);
    assert_eq!(after, before);
}

#[test]
fn review_and_release_through_the_cli_writes_the_same_files_once() {
    use crate::helpers::{TestApp, path_str};
    let app = TestApp::new();
    let settings = app.write("settings.json", &release_settings().to_string());
    let mbox = fixture("demo.mbox");
    let run = |args: &[&str]| {
        let run = app.run(args);
        run.assert_ok();
        run
    };
    run(&["--settings", path_str(&settings), "configure"]);
    run(&["--mbox", path_str(&mbox), "scan"]);
    let listed = run(&["--json", "entries", "--limit", "500"]).json();

    let merged = run(&[
        "--json",
        "merge",
        &id_of(&listed, "msa-redline-2"),
        &id_of(&listed, "msa-redline-reply-1"),
        "--description",
        "Reviewed Jane Cooper's redline of the MSA and replied",
    ])
    .json();
    let merged_id = merged["entry"]["id"].as_str().unwrap().to_owned();
    let tps = id_of(&listed, "CAB+tps-retention-1");
    run(&[
        "edit",
        &tps,
        "--client",
        "Acme Corp",
        "--minutes",
        "18",
        "--description",
        "Reviewed the TPS retention question for the MSA",
    ]);
    run(&[
        "approve",
        &merged_id,
        &id_of(&listed, "invite-msa-call"),
        &tps,
    ]);
    run(&["reject", &id_of(&listed, "initech-merger-q")]);
    run(&[
        "add",
        "--client",
        "Acme Corp",
        "--date",
        "2026-11-24",
        "--minutes",
        "30",
        "--description",
        "Call with Jane Cooper on the MSA signature blocks",
        "--activity-code",
        "A106",
    ]);

    let ledes_file = app.dir.path().join("acme-november.txt");
    let ledes_args = [
        "export",
        "--format",
        "ledes1998b",
        "--client",
        "Acme Corp",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-30",
        "--invoice",
        "2026-1101",
        "--invoice-date",
        "2026-11-30",
        "--invoice-description",
        "November 2026",
        "--out",
    ];
    let exported = run(&[&ledes_args[..], &[path_str(&ledes_file)]].concat());
    assert!(
        exported.stdout().contains("Exported 4 entries"),
        "{}",
        exported.stdout()
    );
    let text = std::fs::read_to_string(&ledes_file).expect("the LEDES file");
    ledes::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_expected("november.ledes.txt", &text);

    let csv_file = app.dir.path().join("november.csv");
    run(&[
        "export",
        "--format",
        "csv",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-30",
        "--include-exported",
        "--out",
        path_str(&csv_file),
    ]);
    assert_expected(
        "november.csv",
        &std::fs::read_to_string(&csv_file).expect("csv"),
    );

    // The file is never overwritten without --force, and nothing is marked.
    let again = app.run(&[&ledes_args[..], &[path_str(&csv_file)]].concat());
    assert_eq!(again.code(), 2, "{}", again.stderr());
    assert!(again.stderr().contains("--force"), "{}", again.stderr());
    // A second export sends nothing again, and writes no (empty) file that would
    // block a later real one.
    let second = app.dir.path().join("second.txt");
    let out = run(&[&ledes_args[..], &[path_str(&second)]].concat());
    assert!(
        out.stdout().contains("Nothing to export"),
        "{}",
        out.stdout()
    );
    assert!(!second.exists(), "an empty export writes no file");

    let all = ["--json", "entries", "--limit", "500"];
    let before = reviewed(&run(&all).json());
    assert_eq!(before.len(), 5, "{before:?}");
    run(&["--mbox", path_str(&mbox), "scan"]);
    run(&["--mbox", path_str(&mbox), "scan", "--reanalyze"]);
    assert_eq!(reviewed(&run(&all).json()), before);
}

/// A short reply of Jane's on one thread, at `hour` on 2026-11-18.
fn reply(n: u32, hour: u32) -> String {
    format!(
        "From jane@acme.com Wed Nov 18 {hour:02}:00:00 2026\n\
         From: Jane Cooper <jane@acme.com>\n\
         To: Alex Morgan <alex@morganlegal.com>\n\
         Subject: Re: MSA open points\n\
         Date: Wed, 18 Nov 2026 {hour:02}:00:00 -0500\n\
         Message-ID: <reply-{n}@acme.com>\n\
         In-Reply-To: <root@acme.com>\n\
         References: <root@acme.com>\n\
         \n\
         Thanks Alex, point {n} of the agreement works for us; please keep the liability clause and its terms at twelve months.\n\n"
    )
}

#[tokio::test]
async fn a_thread_day_of_short_replies_is_one_entry_rounded_once_and_stays_one() {
    use crate::helpers::{TestApp, call};
    let app = TestApp::new();
    let mut settings = demo_settings();
    settings["rollup"] = json!("thread_day");
    let mbox = app.write(
        "thread.mbox",
        &(1..=3).map(|n| reply(n, 9 + n)).collect::<String>(),
    );
    let source = || {
        let s = billable::mail::mbox::MboxSource::open(&mbox).expect("mbox");
        Some(std::sync::Arc::new(s) as std::sync::Arc<dyn billable::mail::MailSource>)
    };
    let ctx = app.context(source());
    call(
        &ctx,
        "configure_time_tracking",
        json!({"settings": settings}),
    )
    .await
    .unwrap();
    let scanned = call(&ctx, "scan_billable_time", json!({})).await.unwrap();
    assert_eq!(
        (
            scanned["entries_created"].as_u64(),
            scanned["rolled_up"].as_u64()
        ),
        (Some(3), Some(2))
    );

    let list = || async {
        call(&ctx, "list_time_entries", json!({})).await.unwrap()["entries"]
            .as_array()
            .unwrap()
            .clone()
    };
    let entries = list().await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let rolled = &entries[0];
    // Three replies of a fraction of a minute each: 6 minutes once, not 18.
    assert_eq!(rolled["billed_minutes"], 6, "{rolled}");
    assert_eq!(
        (rolled["analyzer"].as_str(), rolled["status"].as_str()),
        (Some("rollup"), Some("needs_review"))
    );
    assert!(rolled["reviewed_at"].is_null(), "{rolled}");

    call(&ctx, "scan_billable_time", json!({})).await.unwrap();
    assert_eq!(list().await, entries, "a rescan changes nothing");

    // More mail of the same thread and day joins the same entry.
    let mut text = std::fs::read_to_string(&mbox).unwrap();
    text.push_str(&reply(4, 15));
    std::fs::write(&mbox, text).unwrap();
    let ctx = app.context(source());
    let again = call(&ctx, "scan_billable_time", json!({})).await.unwrap();
    assert_eq!(again["entries_created"], 1, "{again}");
    let entries = call(&ctx, "list_time_entries", json!({})).await.unwrap()["entries"].clone();
    assert_eq!(entries.as_array().unwrap().len(), 1, "{entries}");
    let id = entries[0]["id"].as_str().unwrap();
    let parts = ctx
        .store
        .merged_parts(&billable::domain::UserId::local(), id)
        .await
        .unwrap();
    assert_eq!(parts.len(), 4);
    let summary = call(&ctx, "get_time_tracking_summary", json!({}))
        .await
        .unwrap();
    assert_eq!(
        summary["total"][0]["billed_minutes"],
        entries[0]["billed_minutes"]
    );

    // A person who splits it keeps it split: the next scan does not roll it up again.
    call(&ctx, "split_time_entry", json!({"id": id}))
        .await
        .unwrap();
    let mut text = std::fs::read_to_string(&mbox).unwrap();
    text.push_str(&reply(5, 16));
    std::fs::write(&mbox, text).unwrap();
    let ctx = app.context(source());
    let again = call(&ctx, "scan_billable_time", json!({})).await.unwrap();
    assert_eq!(
        (
            again["entries_created"].as_u64(),
            again["rolled_up"].as_u64()
        ),
        (Some(1), Some(0))
    );
    let entries = call(&ctx, "list_time_entries", json!({})).await.unwrap()["entries"].clone();
    assert_eq!(entries.as_array().unwrap().len(), 5, "{entries}");
}

#[test]
fn exports_that_cannot_be_made_exit_2_name_the_problem_and_mark_nothing() {
    use crate::helpers::{TestApp, path_str};
    let app = TestApp::new();
    let mut settings = release_settings();
    settings["timekeeper_id"] = json!("");
    let settings = app.write("settings.json", &settings.to_string());
    let mbox = fixture("demo.mbox");
    app.run(&["--settings", path_str(&settings), "configure"])
        .assert_ok();
    app.run(&["--mbox", path_str(&mbox), "scan"]).assert_ok();
    let out = app.dir.path().join("out.txt");
    let refused = |args: &[&str], needle: &str| {
        let run = app.run(args);
        assert_eq!(run.code(), 2, "{args:?}: {}{}", run.stdout(), run.stderr());
        assert!(run.stderr().contains(needle), "{args:?}: {}", run.stderr());
        assert!(!out.exists(), "{args:?} left a file behind");
    };
    // Nothing approved yet, while entries await review.
    refused(
        &["export", "--format", "csv", "--out", path_str(&out)],
        "await review; approve them first",
    );
    let listed = app.run(&["--json", "entries"]).json();
    let invite = id_of(&listed, "invite-msa-call");
    app.run(&["approve", &invite]).assert_ok();
    // LEDES without a timekeeper id names the entry and the setting.
    refused(
        &[
            "export",
            "--format",
            "ledes1998b",
            "--client",
            "Acme Corp",
            "--invoice",
            "1",
            "--out",
            path_str(&out),
        ],
        "timekeeper_id",
    );
    let run = app.run(&["export", "--format", "pdf", "--out", path_str(&out)]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(run.stderr().contains("pdf"), "{}", run.stderr());
    // Through the tool: an unknown format names the field and the formats there are.
    let run = app.run(&["tool", "export_time_entries", r#"{"format": "pdf"}"#]);
    assert_eq!(run.code(), 2, "{}", run.stdout());
    let text = format!("{}{}", run.stdout(), run.stderr());
    assert!(
        text.contains("format") && text.contains("ledes1998b"),
        "{text}"
    );

    let after = app.run(&["--json", "entries"]).json();
    assert!(
        after["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["exported_at"].is_null()),
        "a refused export marked entries: {after}"
    );
}
