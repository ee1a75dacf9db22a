//! Messages a store cannot hold as they came (a NUL byte, a megabyte id, year 0001)
//! cost only themselves: through Supabase (postrust and Postgres) as through SQLite,
//! every other entry of their chunk is saved and a rescan completes.

use std::collections::BTreeMap;
use std::sync::Arc;

use billable::analyze::rules::RulesAnalyzer;
use billable::context::Context;
use billable::domain::{TimeEntry, UserId};
use billable::mail::mbox::MboxSource;
use billable::store::{Batch, EventState, Store};

use serde_json::json;

use crate::helpers::{TestApp, demo_settings};
use crate::services::{SUPABASE, signed_in_user, supabase_store};
use crate::store_suite::processed;
use crate::supabase::call;

const JANE: &str = "Jane Cooper <jane.cooper@acme.com>";
const ALEX: &str = "Alex Morgan <alex@morganlegal.com>";

fn work_mail(message_id: &str, subject: &str) -> String {
    format!(
        "From: {JANE}\r\nTo: {ALEX}\r\nSubject: {subject}\r\n\
         Date: Mon, 23 Nov 2026 09:00:00 -0500\r\nMessage-ID: <{message_id}>\r\n\r\n\
         Please review the attached redline of the master services agreement and send \
         your comments on the indemnity clause and the limitation of liability by Friday.\r\n"
    )
}

fn invite(message_id: &str, uid: &str, start: &str, end: &str) -> String {
    format!(
        "From: {JANE}\r\nTo: {ALEX}\r\nSubject: Negotiation call\r\n\
         Date: Mon, 23 Nov 2026 09:00:00 -0500\r\nMessage-ID: <{message_id}>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\n\
         BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nSEQUENCE:0\r\n\
         DTSTART:{start}\r\nDTEND:{end}\r\nORGANIZER:mailto:jane.cooper@acme.com\r\n\
         ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:alex@morganlegal.com\r\n\
         SUMMARY:Negotiation call\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// The five messages that stopped a Supabase user's scans, and five ordinary ones.
fn mailbox() -> (String, Vec<String>) {
    // Subject: "MSA<NUL>redline", RFC 2047 encoded so the NUL survives the header.
    let nul_subject = "=?utf-8?B?TVNBAHJlZGxpbmU=?=";
    let poison = [
        invite(
            "year-one@acme.com",
            "year-one-uid",
            // 22:00 on 31 December of year 0 in New York: work_date 0000-12-31.
            "00010101T030000Z",
            "00010101T040000Z",
        ),
        work_mail(&format!("{}@acme.com", "m".repeat(1 << 20)), "MSA terms"),
        invite(
            "huge-uid@acme.com",
            &"u".repeat(5 << 20),
            "20261124T150000Z",
            "20261124T160000Z",
        ),
        work_mail("nul\0id@acme.com", "Indemnity clause"),
        work_mail("nul-subject@acme.com", nul_subject),
    ];
    let ordinary: Vec<String> = (0..5).map(|n| format!("ordinary-{n}@acme.com")).collect();
    let mut mbox = String::new();
    for (n, message) in poison
        .iter()
        .cloned()
        .chain(ordinary.iter().map(|id| work_mail(id, "MSA comments")))
        .enumerate()
    {
        if n > 0 {
            mbox.push_str("\r\n");
        }
        mbox.push_str("From jane.cooper@acme.com Mon Nov 23 09:00:00 2026\r\n");
        mbox.push_str(&message);
    }
    (mbox, ordinary)
}

/// (message id, activity, work date, billed minutes) of every entry.
async fn entries(ctx: &Context, user: &UserId) -> BTreeMap<String, (String, String, u64)> {
    let list = call(ctx, user, "list_time_entries", json!({"limit": 100})).await;
    list["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["message_id"].as_str().unwrap_or_default().to_owned(),
                (
                    e["activity"].to_string(),
                    e["work_date"].to_string(),
                    e["billed_minutes"].as_u64().unwrap_or_default(),
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn poison_messages_cost_only_themselves_in_supabase_as_in_sqlite() {
    if SUPABASE.skipped() {
        return;
    }
    let app = TestApp::new();
    let (mbox, ordinary) = mailbox();
    let path = app.write("poison.mbox", &mbox);
    let source = || -> Option<Arc<dyn billable::mail::MailSource>> {
        Some(Arc::new(MboxSource::open(&path).expect("mbox")))
    };
    let sqlite = app.context(source());
    let supabase = Context::new(
        source(),
        Arc::new(RulesAnalyzer),
        Arc::new(supabase_store()),
    );
    let (local, a) = (UserId::local(), signed_in_user());
    let mut found = Vec::new();
    for (ctx, user) in [(&sqlite, &local), (&supabase, &a)] {
        let settings = json!({"settings": demo_settings()});
        call(ctx, user, "configure_time_tracking", settings).await;
        let scan = call(ctx, user, "scan_billable_time", json!({})).await;
        assert_eq!(scan["status"], "completed", "{scan}");
        assert_eq!(scan["examined"], 10, "{scan}");
        // Year 0001 is no date work was done on: that message's error, and only it.
        assert_eq!(scan["errors_total"], 1, "{scan}");
        assert_eq!(
            scan["errors"][0]["message_id"], "year-one@acme.com",
            "{scan}"
        );
        let reason = scan["errors"][0]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("0000-12-31") && reason.contains("Date header"),
            "{reason}"
        );
        // The other four are kept, under ids any store can hold.
        assert_eq!(scan["entries_created"], 9, "{scan}");
        let saved = entries(ctx, user).await;
        assert_eq!(saved.len(), 9, "{saved:?}");
        for id in &ordinary {
            assert!(saved.contains_key(id), "{id} missing: {saved:?}");
        }
        assert!(saved.contains_key("nul-subject@acme.com"), "{saved:?}");
        for id in saved.keys() {
            assert!(id.len() <= 998 && !id.contains('\0'), "{id:.80}");
        }
        let list = call(ctx, user, "list_time_entries", json!({"limit": 100})).await;
        for e in list["entries"].as_array().expect("entries") {
            let text = e["description"].as_str().unwrap_or_default();
            assert!(!text.chars().any(char::is_control), "{text:?}");
            let uid = e["event_uid"].as_str().unwrap_or_default();
            assert!(uid.len() <= 998, "a UID of {} bytes", uid.len());
        }

        // A rescan completes: the nine are known, the dateless invite is reported again.
        let again = call(ctx, user, "scan_billable_time", json!({})).await;
        assert_eq!(again["status"], "completed", "{again}");
        assert_eq!(again["entries_created"], 0, "{again}");
        assert_eq!(again["skipped_already_processed"], 9, "{again}");
        assert_eq!(again["errors_total"], 1, "{again}");
        assert_eq!(entries(ctx, user).await, saved);
        found.push(saved);
    }
    assert_eq!(found[0], found[1], "Supabase keeps what SQLite keeps");
}

fn entry(message_id: &str, work_date: &str, event_uid: Option<&str>) -> TimeEntry {
    TimeEntry {
        event_uid: event_uid.map(str::to_owned),
        ..crate::store_suite::entry(message_id, work_date, Some("Acme Corp"))
    }
}

/// Rows no scan makes any more (the pipeline keys and dates them safely), written
/// straight to Postgres: the batch is refused as a whole, and saved apart it keeps
/// everything but them, each refused under its own message.
#[tokio::test]
async fn a_batch_postgres_refuses_is_saved_apart_and_only_its_poison_rows_are_refused() {
    if SUPABASE.skipped() {
        return;
    }
    let store = supabase_store();
    let user = signed_in_user();
    let huge_uid = "u".repeat(5 << 20);
    let mut batch = Batch::default();
    let good: Vec<String> = (0..6).map(|n| format!("good-{n}@acme.com")).collect();
    let poison = ["year-zero@acme.com", "huge-uid@acme.com"];
    for (n, id) in good.iter().enumerate() {
        batch.entries.push(entry(id, "2026-11-23", None));
        batch.processed.push(processed(id));
        if n == 0 {
            batch.events.push(EventState {
                uid: "call-1".into(),
                sequence: 0,
                cancelled: false,
                message_id: Some(id.clone()),
            });
        }
    }
    batch.entries.push(entry(poison[0], "0000-12-31", None));
    batch
        .entries
        .push(entry(poison[1], "2026-11-23", Some(&huge_uid)));
    batch.events.push(EventState {
        uid: huge_uid.clone(),
        sequence: 0,
        cancelled: false,
        message_id: Some(poison[1].to_owned()),
    });
    for id in poison {
        batch.processed.push(processed(id));
    }
    // A NUL, which Postgres text cannot hold, is taken out of what is written.
    let mut nul = entry("nul-description@acme.com", "2026-11-23", None);
    nul.description = "Email re\0 MSA".into();
    batch.entries.push(nul);

    let whole = store.save_batch(&user, &batch).await;
    assert!(
        whole.is_err(),
        "Postgres takes the poison as it is: {whole:?}"
    );

    let saved = billable::store::save_isolating(&store, &user, &batch)
        .await
        .expect("saved apart");
    let mut refused: Vec<&str> = saved.refused.iter().map(|(id, _)| id.as_str()).collect();
    refused.sort_unstable();
    let mut want = poison.to_vec();
    want.sort_unstable();
    assert_eq!(refused, want, "{:?}", saved.refused);
    // Saved apart, halves of the batch may be written more than once (PostgREST writes
    // a batch table by table): what counts is that every other entry is there.
    for id in good
        .iter()
        .map(String::as_str)
        .chain(["nul-description@acme.com"])
    {
        let found = store.entry_by_message(&user, id).await.expect("look up");
        assert!(found.is_some(), "{id} was not saved: {saved:?}");
    }
    let nul = store
        .entry_by_message(&user, "nul-description@acme.com")
        .await;
    let description = nul
        .ok()
        .flatten()
        .map(|e| e.description)
        .unwrap_or_default();
    assert_eq!(description, "Email re MSA");
    let known = store
        .processed_ids(&user, &good, "")
        .await
        .expect("processed");
    assert_eq!(known.len(), good.len(), "and marked processed");
    let marks: Vec<String> = poison.iter().map(|p| (*p).to_owned()).collect();
    let none = store
        .processed_ids(&user, &marks, "")
        .await
        .expect("processed");
    assert!(
        none.is_empty(),
        "a refused message is not marked processed: {none:?}"
    );
    assert!(
        store.event(&user, "call-1").await.expect("event").is_some(),
        "the good message's event is saved"
    );
}
