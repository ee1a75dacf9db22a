//! Scans through the tool registry in process: what the demo mailbox yields, calendar
//! changes across scans, idempotence, and the local sources agreeing with each other.

use std::sync::Arc;

use billable::mail::MailSource;
use billable::mail::eml_dir::EmlDirSource;
use billable::mail::maildir::MaildirSource;
use billable::mail::mbox::MboxSource;
use serde_json::{Value, json};

use crate::helpers::{TestApp, call, configure_demo, fixture, scan};

fn demo_source() -> Option<Arc<dyn MailSource>> {
    Some(Arc::new(
        MboxSource::open(fixture("demo.mbox")).expect("demo mbox"),
    ))
}

async fn configured(app: &TestApp, source: Option<Arc<dyn MailSource>>) -> billable::Context {
    let ctx = app.context(source);
    configure_demo(&ctx).await;
    ctx
}

async fn all_entries(ctx: &billable::Context) -> Vec<Value> {
    let list = call(ctx, "list_time_entries", json!({"limit": 500}))
        .await
        .expect("list");
    list["entries"].as_array().cloned().unwrap_or_default()
}

fn by_message<'a>(entries: &'a [Value], id: &str) -> &'a Value {
    entries
        .iter()
        .find(|e| e["message_id"] == id)
        .unwrap_or_else(|| panic!("no entry for {id} in {entries:#?}"))
}

#[tokio::test]
async fn the_demo_mailbox_yields_the_expected_entries() {
    let app = TestApp::new();
    let ctx = configured(&app, demo_source()).await;
    let scan = scan(&ctx).await;
    assert_eq!(
        scan["examined"], 16,
        "17 messages, one a duplicate Message-ID: {scan}"
    );
    assert_eq!(scan["errors_total"], 0, "{scan}");
    let entries = all_entries(&ctx).await;

    let reply = by_message(&entries, "msa-redline-reply-1@morganlegal.com");
    assert_eq!(reply["client"], "Acme Corp");
    assert_eq!(reply["activity"], "email_sent");
    assert_eq!(reply["work_date"], "2026-11-16");
    assert_eq!(reply["matter"], "MSA renewal");
    assert_eq!(reply["hourly_rate"], 350.0);
    // ~175 new words at 20 words/minute; the quoted history and signature do not count.
    let raw = reply["duration_minutes"].as_f64().unwrap();
    assert!((7.0..11.0).contains(&raw), "raw minutes {raw}");
    assert_eq!(reply["billed_minutes"], 12);
    assert_eq!(reply["amount"], 70.0);

    let received = by_message(&entries, "msa-redline-2@acme.com");
    assert_eq!(received["activity"], "email_received");
    assert!(
        received["duration_minutes"].as_f64().unwrap() >= 6.0,
        "attachment review time: {received}"
    );

    let stated = by_message(&entries, "termsheet-comments@morganlegal.com");
    assert_eq!(stated["client"], "Globex");
    assert_eq!(
        stated["duration_minutes"], 120.0,
        "the owner's own 'spent 2 hours'"
    );
    assert_eq!(stated["billed_minutes"], 120);
    assert_eq!(
        stated["work_date"], "2026-11-17",
        "18:10 in New York, though 23:10 UTC"
    );

    let meeting = by_message(&entries, "invite-msa-call@acme.com");
    assert_eq!(meeting["activity"], "meeting");
    assert_eq!(meeting["duration_minutes"], 60.0);
    assert_eq!(meeting["work_date"], "2026-11-19");

    assert!(
        !entries
            .iter()
            .any(|e| e["message_id"] == "invite-board-prep@globex.io"),
        "the cancelled Globex meeting is removed"
    );
    let initech = by_message(&entries, "CAB+tps-retention-1@mail.gmail.com");
    assert_eq!(
        initech["client"], "Initech",
        "matched by the client's address"
    );
    assert_eq!(initech["billed_minutes"], 6, "the minimum entry");

    let keyword = by_message(&entries, "initech-merger-q@outlook.com");
    assert_eq!(keyword["client"], "Initech");
    assert_eq!(
        keyword["status"], "needs_review",
        "a subject keyword alone is a weak match"
    );

    let html = by_message(&entries, "cap-table-q@globex.io");
    assert_eq!(
        html["client"], "Globex",
        "subdomain-free match on globex.io from an HTML-only mail"
    );

    for automated in [
        "weekly-4471@lawweekly.com",
        "docusign-7781@docusign.net",
        "showcase-2026@acme.com",
        "portal-9912@acme.com",
    ] {
        assert!(
            !entries.iter().any(|e| e["message_id"] == automated),
            "{automated} is automated mail"
        );
    }
    assert!(
        !entries
            .iter()
            .any(|e| e["message_id"] == "dinner-saturday@morganlegal.com")
    );
    // The friend at gmail.com and the sender at outlook.com matched no client, but
    // a free-mail domain is nobody's client to add.
    let unmatched = scan["unmatched_domains"].as_array().unwrap();
    assert!(
        !unmatched
            .iter()
            .any(|d| d["domain"] == "gmail.com" || d["domain"] == "outlook.com"),
        "{unmatched:?}"
    );
    assert_eq!(
        entries
            .iter()
            .filter(|e| e["message_id"] == "msa-redline-reply-1@morganlegal.com")
            .count(),
        1,
        "a duplicated message is billed once"
    );
}

#[tokio::test]
async fn a_dry_run_reports_entries_and_writes_nothing() {
    let app = TestApp::new();
    let ctx = configured(&app, demo_source()).await;
    let dry = call(&ctx, "scan_billable_time", json!({"dry_run": true}))
        .await
        .expect("dry run");
    assert!(dry["entries_created"].as_u64().unwrap() >= 8, "{dry}");
    assert!(all_entries(&ctx).await.is_empty());
    let real = scan(&ctx).await;
    assert_eq!(
        real["entries_created"], dry["entries_created"],
        "the dry run predicted the real one"
    );
}

#[tokio::test]
async fn reanalyzing_updates_entries_in_place_without_duplicates() {
    let app = TestApp::new();
    let ctx = configured(&app, demo_source()).await;
    scan(&ctx).await;
    let before = all_entries(&ctx).await;
    call(
        &ctx,
        "configure_time_tracking",
        json!({"settings": {"billing_increment_minutes": 15}}),
    )
    .await
    .expect("configure");
    let again = call(&ctx, "scan_billable_time", json!({"reanalyze": true}))
        .await
        .expect("rescan");
    assert_eq!(again["entries_created"], 0, "{again}");
    let after = all_entries(&ctx).await;
    assert_eq!(after.len(), before.len());
    let reply = by_message(&after, "msa-redline-reply-1@morganlegal.com");
    assert_eq!(
        reply["billed_minutes"], 15,
        "re-rounded to the new increment"
    );
    assert_eq!(
        reply["id"],
        by_message(&before, "msa-redline-reply-1@morganlegal.com")["id"],
        "same entry"
    );
}

/// A reanalyzing scan counts what it changed, at what the store holds: an entry a
/// person approved and edited keeps its minutes and is none of the scan's.
#[tokio::test]
async fn a_reanalyzing_scans_totals_are_what_it_changed_and_leave_a_reviewed_entry_out() {
    let app = TestApp::new();
    let ctx = configured(&app, demo_source()).await;
    scan(&ctx).await;
    let first = all_entries(&ctx).await;
    let id = by_message(&first, "msa-redline-reply-1@morganlegal.com")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    call(
        &ctx,
        "update_time_entries",
        json!({"ids": [id], "changes": {"status": "approved", "billed_minutes": 30}}),
    )
    .await
    .expect("approve");
    // Every rate changes, so every entry a person did not review is rewritten.
    call(
        &ctx,
        "configure_time_tracking",
        json!({"settings": {"default_hourly_rate": 310, "clients": [
            {"name": "Acme Corp", "domains": ["acme.com"], "keywords": ["Acme"], "matter": "MSA renewal", "hourly_rate": 360},
            {"name": "Globex", "domains": ["globex.io"], "matter": "Series B financing", "hourly_rate": 410},
            {"name": "Initech", "addresses": ["bill.lumbergh@gmail.com"], "keywords": ["Initech"]}
        ]}}),
    )
    .await
    .expect("configure");
    let again = call(&ctx, "scan_billable_time", json!({"reanalyze": true}))
        .await
        .expect("rescan");
    let by_status = call(
        &ctx,
        "get_time_tracking_summary",
        json!({"group_by": "status"}),
    )
    .await
    .expect("summary");
    let (mut minutes, mut amount, mut entries) = (0, 0.0, 0);
    for g in by_status["groups"].as_array().unwrap() {
        if g["key"] != "approved" {
            minutes += g["billed_minutes"].as_u64().unwrap();
            amount += g["amount"].as_f64().unwrap();
            entries += g["entries"].as_u64().unwrap();
        }
    }
    assert_eq!(again["entries_updated"].as_u64(), Some(entries), "{again}");
    assert_eq!(again["billed_minutes"].as_u64(), Some(minutes), "{again}");
    assert!(
        (again["amount"].as_f64().unwrap() - amount).abs() < 0.005,
        "{again}"
    );
    let after = all_entries(&ctx).await;
    let kept = by_message(&after, "msa-redline-reply-1@morganlegal.com");
    assert_eq!(kept["billed_minutes"], 30);
}

#[tokio::test]
async fn max_messages_and_the_date_range_limit_what_is_examined() {
    let app = TestApp::new();
    let ctx = configured(&app, demo_source()).await;
    let first = call(&ctx, "scan_billable_time", json!({"max_messages": 3}))
        .await
        .expect("scan");
    assert_eq!(first["examined"], 3);
    let ranged = call(
        &ctx,
        "scan_billable_time",
        json!({"after": "2026-11-20", "before": "2026-11-21", "reanalyze": true}),
    )
    .await
    .expect("scan");
    for e in ranged["entries"].as_array().unwrap() {
        assert_eq!(e["work_date"], "2026-11-20", "{e}");
    }
    assert!(ranged["examined"].as_u64().unwrap() >= 4, "{ranged}");
    let err = call(
        &ctx,
        "scan_billable_time",
        json!({"after": "2026-11-21", "before": "2026-11-20"}),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("before"), "{err}");
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn invite(
    method: &str,
    uid: &str,
    seq: u32,
    start: &str,
    end: &str,
    id: &str,
    from_owner: bool,
    partstat: &str,
) -> String {
    let (from, to) = if from_owner {
        (
            "Alex Morgan <alex@morganlegal.com>",
            "Jane Cooper <jane.cooper@acme.com>",
        )
    } else {
        (
            "Jane Cooper <jane.cooper@acme.com>",
            "Alex Morgan <alex@morganlegal.com>",
        )
    };
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {method} call\r\nDate: Mon, 23 Nov 2026 09:00:00 -0500\r\nMessage-ID: <{id}>\r\nMIME-Version: 1.0\r\nContent-Type: text/calendar; method={method}\r\n\r\nBEGIN:VCALENDAR\r\nMETHOD:{method}\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nSEQUENCE:{seq}\r\nDTSTART:{start}\r\nDTEND:{end}\r\nORGANIZER:mailto:jane.cooper@acme.com\r\nATTENDEE;PARTSTAT={partstat}:mailto:alex@morganlegal.com\r\nSUMMARY:Negotiation call\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

async fn analyze_and_save(ctx: &billable::Context, raw: &str) -> Value {
    call(
        ctx,
        "analyze_time_entry",
        json!({"raw_email": raw, "save": true}),
    )
    .await
    .expect("analyze")
}

#[tokio::test]
async fn a_later_sequence_updates_the_meeting_and_a_cancel_in_a_later_scan_removes_it() {
    let app = TestApp::new();
    let ctx = configured(&app, None).await;
    let uid = "neg-call-1@acme.com";
    analyze_and_save(
        &ctx,
        &invite(
            "REQUEST",
            uid,
            0,
            "20261124T150000Z",
            "20261124T160000Z",
            "inv-0@acme.com",
            false,
            "NEEDS-ACTION",
        ),
    )
    .await;
    let entries = all_entries(&ctx).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["duration_minutes"], 60.0);

    let moved = analyze_and_save(
        &ctx,
        &invite(
            "REQUEST",
            uid,
            1,
            "20261125T150000Z",
            "20261125T163000Z",
            "inv-1@acme.com",
            false,
            "NEEDS-ACTION",
        ),
    )
    .await;
    assert_eq!(moved["outcome"], "meeting_updated", "{moved}");
    let entries = all_entries(&ctx).await;
    assert_eq!(entries.len(), 1, "an update, not a second meeting");
    assert_eq!(entries[0]["message_id"], "inv-0@acme.com");
    assert_eq!(entries[0]["duration_minutes"], 90.0);
    assert_eq!(entries[0]["work_date"], "2026-11-25");

    // An older sequence arriving late changes nothing.
    let stale = analyze_and_save(
        &ctx,
        &invite(
            "REQUEST",
            uid,
            0,
            "20261124T150000Z",
            "20261124T160000Z",
            "inv-0b@acme.com",
            false,
            "NEEDS-ACTION",
        ),
    )
    .await;
    assert_eq!(stale["outcome"], "not_billable", "{stale}");
    assert_eq!(all_entries(&ctx).await[0]["duration_minutes"], 90.0);

    analyze_and_save(
        &ctx,
        &invite(
            "CANCEL",
            uid,
            2,
            "20261125T150000Z",
            "20261125T163000Z",
            "cancel@acme.com",
            false,
            "NEEDS-ACTION",
        ),
    )
    .await;
    assert!(
        all_entries(&ctx).await.is_empty(),
        "the cancel removed the meeting"
    );
}

#[tokio::test]
async fn declining_an_invitation_removes_the_meeting_and_accepting_is_not_a_meeting() {
    let app = TestApp::new();
    let ctx = configured(&app, None).await;
    let uid = "decline-me@acme.com";
    analyze_and_save(
        &ctx,
        &invite(
            "REQUEST",
            uid,
            0,
            "20261124T150000Z",
            "20261124T160000Z",
            "d-inv@acme.com",
            false,
            "NEEDS-ACTION",
        ),
    )
    .await;
    let accept = analyze_and_save(
        &ctx,
        &invite(
            "REPLY",
            "other@acme.com",
            0,
            "20261124T150000Z",
            "20261124T160000Z",
            "acc@x",
            true,
            "ACCEPTED",
        ),
    )
    .await;
    assert!(accept["entry"].is_null(), "{accept}");
    assert_eq!(all_entries(&ctx).await.len(), 1);
    analyze_and_save(
        &ctx,
        &invite(
            "REPLY",
            uid,
            0,
            "20261124T150000Z",
            "20261124T160000Z",
            "dec@x",
            true,
            "DECLINED",
        ),
    )
    .await;
    assert!(all_entries(&ctx).await.is_empty());
}

/// Writes the demo mbox out as a Maildir and as .eml files.
fn split_demo(app: &TestApp) -> (std::path::PathBuf, std::path::PathBuf) {
    let text = std::fs::read_to_string(fixture("demo.mbox")).expect("demo");
    let mut messages: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("From ") {
            messages.push(String::new());
        } else if let Some(m) = messages.last_mut() {
            let line = if line.starts_with(">From ") {
                &line[1..]
            } else {
                line
            };
            m.push_str(line);
            m.push('\n');
        }
    }
    for (i, m) in messages.iter().enumerate() {
        let sent = m.contains("X-Gmail-Labels: Sent");
        let folder = if sent {
            "maildir/.Sent/cur"
        } else {
            "maildir/cur"
        };
        app.write(&format!("{folder}/{i:03}.demo:2,S"), m);
        app.write(&format!("eml/{i:03}.eml"), m);
    }
    std::fs::create_dir_all(app.dir.path().join("maildir/new")).unwrap();
    std::fs::create_dir_all(app.dir.path().join("maildir/tmp")).unwrap();
    (app.dir.path().join("maildir"), app.dir.path().join("eml"))
}

fn key(e: &Value) -> (String, String, String, String, u64) {
    (
        e["message_id"].as_str().unwrap_or_default().to_owned(),
        e["client"].to_string(),
        e["activity"].to_string(),
        e["work_date"].to_string(),
        e["billed_minutes"].as_u64().unwrap_or_default(),
    )
}

#[tokio::test]
async fn maildir_and_eml_folders_give_the_same_entries_as_the_mbox() {
    let reference = {
        let app = TestApp::new();
        let ctx = configured(&app, demo_source()).await;
        scan(&ctx).await;
        let mut keys: Vec<_> = all_entries(&ctx).await.iter().map(key).collect();
        keys.sort();
        keys
    };
    let app = TestApp::new();
    let (maildir, eml) = split_demo(&app);
    let sources: [(&str, Arc<dyn MailSource>); 2] = [
        (
            "maildir",
            Arc::new(MaildirSource::open(&maildir).expect("maildir")),
        ),
        ("eml", Arc::new(EmlDirSource::open(&eml).expect("eml dir"))),
    ];
    for (name, source) in sources {
        let app = TestApp::new();
        let ctx = configured(&app, Some(source)).await;
        scan(&ctx).await;
        let mut keys: Vec<_> = all_entries(&ctx).await.iter().map(key).collect();
        keys.sort();
        assert_eq!(keys, reference, "{name} differs from the mbox");
    }
}

/// The rules analyzer, except that it panics on a message with "boom" in its subject.
struct PanicsOnBoom;

#[async_trait::async_trait]
impl billable::analyze::Analyzer for PanicsOnBoom {
    fn name(&self) -> String {
        "rules".to_owned()
    }

    fn analyze_now(
        &self,
        email: &billable::domain::Email,
        settings: &billable::domain::Settings,
    ) -> Option<billable::analyze::Analysis> {
        assert!(!email.subject.contains("boom"), "simulated analyzer bug");
        Some(billable::analyze::rules::analyze(email, settings))
    }

    async fn analyze(
        &self,
        emails: &[billable::domain::Email],
        settings: &billable::domain::Settings,
        _meter: &billable::analyze::Meter,
    ) -> Vec<Result<billable::analyze::Analysis, billable::analyze::AnalyzeError>> {
        emails
            .iter()
            .map(|e| Ok(billable::analyze::rules::analyze(e, settings)))
            .collect()
    }
}

#[tokio::test]
async fn an_analyzer_that_panics_costs_that_message_not_the_scan() {
    let app = TestApp::new();
    let message = |id: &str, subject: &str| {
        format!(
            "From alex@morganlegal.com Mon Nov 23 09:00:00 2026\nFrom: Alex Morgan <alex@morganlegal.com>\nTo: Jane Cooper <jane.cooper@acme.com>\nSubject: {subject}\nDate: Mon, 23 Nov 2026 09:00:00 -0500\nMessage-ID: <{id}>\n\nI reviewed the indemnity clause and marked two changes for the renewal.\n\n"
        )
    };
    let mbox = app.write(
        "boom.mbox",
        &(message("ok-1@x", "MSA renewal")
            + &message("bad@x", "boom")
            + &message("ok-2@x", "MSA markup")),
    );
    let store = billable::store::sqlite::SqliteStore::open(&app.db).expect("store");
    let ctx = billable::Context::new(
        Some(Arc::new(MboxSource::open(&mbox).expect("mbox"))),
        Arc::new(PanicsOnBoom),
        Arc::new(store),
    );
    configure_demo(&ctx).await;
    let out = scan(&ctx).await;
    assert_eq!(out["examined"], 3, "{out}");
    assert_eq!(out["entries_created"], 2, "{out}");
    assert_eq!(out["errors_total"], 1, "{out}");
    assert_eq!(out["errors"][0]["message_id"], "bad@x", "{out}");
    assert_eq!(
        out["errors"][0]["reason"], "analyzing failed unexpectedly",
        "{out}"
    );
    // Recorded, so a rescan does not trip on it again.
    let again = scan(&ctx).await;
    assert_eq!(again["skipped_already_processed"], 3, "{again}");
}

/// One received message of the thread `thread` (a Gmail thread id, as Takeout writes).
fn threaded(id: &str, thread: &str, subject: &str, day: u32) -> String {
    format!(
        "From x@xxx Mon Nov {day} 14:00:00 +0000 2026\nX-GM-THRID: {thread}\nFrom: Jane Cooper <jane.cooper@acme.com>\nTo: Alex Morgan <alex@morganlegal.com>\nSubject: {subject}\nDate: Mon, {day} Nov 2026 09:00:00 -0500\nMessage-ID: <{id}>\n\nAlex, here are our comments on the closing checklist and the open items for the \
         signing. Could you look at the escrow section in particular?\nJane\n\n"
    )
}

#[tokio::test]
async fn a_reply_is_filed_under_its_threads_matter_in_the_same_scan_and_the_next() {
    let app = TestApp::new();
    let mut settings = crate::helpers::demo_settings();
    settings["clients"][0]["matter"] = Value::Null;
    settings["clients"][0]["matters"] = json!([
        {"id": "A-1", "name": "Lease", "keywords": ["lease"]},
        {"id": "A-2", "name": "Merger", "task_codes": true, "default_task_code": "L120"}
    ]);
    let first = app.write(
        "first.mbox",
        &(threaded("m1@acme.com", "t-1", "A-2 closing checklist", 16)
            + &threaded("m2@acme.com", "t-1", "Re: closing checklist", 17)),
    );
    let ctx = app.context(Some(Arc::new(MboxSource::open(first).expect("mbox"))));
    call(
        &ctx,
        "configure_time_tracking",
        json!({"settings": settings}),
    )
    .await
    .expect("configure");
    scan(&ctx).await;
    let second = app.write(
        "second.mbox",
        &(threaded("m3@acme.com", "t-1", "Re: closing checklist", 18)
            + &threaded("m4@acme.com", "t-2", "Re: closing checklist", 18)),
    );
    let ctx = app.context(Some(Arc::new(MboxSource::open(second).expect("mbox"))));
    scan(&ctx).await;

    let entries = all_entries(&ctx).await;
    for (id, matter) in [
        ("m1@acme.com", json!("A-2")),
        // The thread's earlier entry of the same scan, then of an earlier scan.
        ("m2@acme.com", json!("A-2")),
        ("m3@acme.com", json!("A-2")),
        // Another thread with the same Subject words: nothing names a matter.
        ("m4@acme.com", Value::Null),
    ] {
        assert_eq!(by_message(&entries, id)["matter"], matter, "{id}");
    }
}

#[tokio::test]
async fn unmatched_domains_rank_the_firms_you_write_to_and_leave_out_free_mail_and_friends() {
    let app = TestApp::new();
    let message = |n: u32, from: &str, to: &str| {
        format!(
            "From MAILER-DAEMON Mon Nov 23 10:00:00 2026\nFrom: {from}\nTo: {to}\n\
             Subject: Lease question {n}\nDate: Mon, 23 Nov 2026 10:00:00 -0500\n\
             Message-ID: <unmatched-{n}@example.test>\nContent-Type: text/plain\n\n\
             Could you look at clause {n} of the lease and tell me what you think?\n\n"
        )
    };
    let me = "alex@morganlegal.com";
    let mut mbox = String::new();
    // A vendor who writes often, a firm Alex writes to, a friend, a free-mail sender
    // and a marketing list.
    for n in 0..4 {
        mbox.push_str(&message(n, "Dana <dana@vendor.example>", me));
    }
    mbox.push_str(&message(10, me, "Ann Lee <ann.lee@newco.example>"));
    mbox.push_str(&message(11, me, "Bo Chan <bo.chan@newco.example>"));
    mbox.push_str(&message(12, "Ann Lee <ann.lee@newco.example>", me));
    mbox.push_str(&message(13, "Pal <pal@friends.example>", me));
    mbox.push_str(&message(14, "Someone <someone@gmail.com>", me));
    mbox.push_str(&message(15, "Promotions <marketing@exchange.example>", me));
    let path = app.write("unmatched.mbox", &mbox);
    let ctx = app.context(Some(Arc::new(MboxSource::open(&path).expect("mbox"))));
    let mut settings = crate::helpers::demo_settings();
    settings["personal_contacts"] = json!(["pal@friends.example"]);
    crate::helpers::configure(&ctx, settings).await;
    let out = scan(&ctx).await;
    let domains = out["unmatched_domains"].as_array().unwrap();
    let names: Vec<&str> = domains
        .iter()
        .filter_map(|d| d["domain"].as_str())
        .collect();
    assert_eq!(names, ["newco.example", "vendor.example"], "{out}");
    assert_eq!(domains[0]["sent"], 2);
    assert_eq!(domains[0]["messages"], 3);
    assert_eq!(
        domains[0]["addresses"],
        json!(["ann.lee@newco.example", "bo.chan@newco.example"])
    );
    assert_eq!(domains[1]["sent"], 0);
    assert_eq!(domains[1]["messages"], 4);
}
