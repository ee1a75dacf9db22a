//! What later scans learn: mail scanned before its client was configured is examined
//! again once it is (without `reanalyze`), and a person whose suggested entries the
//! user rejected has their later entries suggested for review only.

use std::sync::Arc;

use billable::mail::MailSource;
use billable::mail::mbox::MboxSource;
use serde_json::{Value, json};

use crate::helpers::{TestApp, call, configure, demo_settings, fixture, scan};

fn mbox(path: &std::path::Path) -> Option<Arc<dyn MailSource>> {
    Some(Arc::new(MboxSource::open(path).expect("mbox")))
}

async fn entries(ctx: &billable::Context) -> Vec<Value> {
    let list = call(ctx, "list_time_entries", json!({"limit": 500}))
        .await
        .expect("list");
    list["entries"].as_array().cloned().unwrap_or_default()
}

fn ids(entries: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = entries
        .iter()
        .map(|e| e["message_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    ids
}

fn without_clients() -> Value {
    let mut settings = demo_settings();
    settings["clients"] = json!([]);
    settings
}

#[tokio::test]
async fn clients_configured_after_a_scan_find_the_mail_it_could_not_match() {
    // What a scan configured from the start finds.
    let fresh = TestApp::new();
    let ctx = fresh.context(mbox(&fixture("demo.mbox")));
    configure(&ctx, demo_settings()).await;
    scan(&ctx).await;
    let expected = ids(&entries(&ctx).await);
    assert!(expected.len() >= 5, "{expected:?}");

    let app = TestApp::new();
    let ctx = app.context(mbox(&fixture("demo.mbox")));
    configure(&ctx, without_clients()).await;
    let first = scan(&ctx).await;
    assert_eq!(first["entries_created"], 0, "no client, no entry: {first}");

    // The hint the scan gives: add the clients. Then scan again, as the user would.
    configure(&ctx, demo_settings()).await;
    let second = scan(&ctx).await;
    assert_eq!(ids(&entries(&ctx).await), expected, "{second}");

    // Under the same clients nothing is examined twice, and a change of rates or
    // matters does not change who is a client.
    let third = scan(&ctx).await;
    assert_eq!(third["analyzed"], 0, "{third}");
    let mut rates = demo_settings();
    rates["clients"][0]["hourly_rate"] = json!(375);
    rates["clients"][1]["matter"] = json!("Series C financing");
    rates["default_hourly_rate"] = json!(320);
    configure(&ctx, rates).await;
    let fourth = scan(&ctx).await;
    assert_eq!(fourth["analyzed"], 0, "{fourth}");

    // Mail a client matched stays done whatever changes; only unmatched mail is
    // looked at again. A new alias makes the outlook.com sender a client.
    let mut alias = demo_settings();
    alias["clients"][2]["addresses"] =
        json!(["bill.lumbergh@gmail.com", "rpatel.consulting@outlook.com"]);
    configure(&ctx, alias).await;
    let fifth = scan(&ctx).await;
    let analyzed = fifth["analyzed"].as_u64().unwrap();
    assert!(
        analyzed > 0 && analyzed < second["analyzed"].as_u64().unwrap(),
        "only the unmatched mail again: {fifth}"
    );
    let patel = entries(&ctx)
        .await
        .into_iter()
        .find(|e| e["message_id"] == "initech-merger-q@outlook.com")
        .unwrap_or_else(|| panic!("the new address's mail is billed: {fifth}"));
    assert_eq!(patel["client"], "Initech");
}

/// A message from `from` to the demo's owner, as an mbox of one.
fn one_message(
    app: &TestApp,
    name: &str,
    from: &str,
    subject: &str,
    body: &str,
) -> std::path::PathBuf {
    app.write(
        name,
        &format!(
            "From MAILER-DAEMON Wed Nov 25 10:00:00 2026\n\
             From: {from}\nTo: Alex Morgan <alex@morganlegal.com>\nSubject: {subject}\n\
             Date: Wed, 25 Nov 2026 10:00:00 -0500\nMessage-ID: <{name}@example.test>\n\
             Content-Type: text/plain; charset=utf-8\n\n{body}\n"
        ),
    )
}

#[tokio::test]
async fn a_person_whose_entries_were_rejected_is_suggested_for_review_only() {
    let app = TestApp::new();
    let ctx = app.context(mbox(&fixture("demo.mbox")));
    configure(&ctx, demo_settings()).await;
    scan(&ctx).await;
    let listed = entries(&ctx).await;
    let dan: Vec<&Value> = listed
        .iter()
        .filter(|e| e["message_id"] == "cap-table-q@globex.io")
        .collect();
    assert_eq!(dan.len(), 1, "{listed:#?}");
    call(
        &ctx,
        "update_time_entries",
        json!({"ids": [dan[0]["id"]], "changes": {"status": "rejected"}}),
    )
    .await
    .expect("reject");

    let body = "Alex, the board wants the option pool numbers before Friday. I agree with \
                the changes below; please include the approved terms and circulate your \
                thoughts and comments on the open issues and the vesting schedule.";
    let from_dan = one_message(
        &app,
        "dan-2",
        "Dan Wu <dan.wu@globex.io>",
        "Option pool",
        body,
    );
    let from_priya = one_message(
        &app,
        "priya-2",
        "Priya Shah <priya.shah@mail.globex.io>",
        "Option pool",
        body,
    );
    for path in [&from_dan, &from_priya] {
        let ctx = app.context(mbox(path));
        scan(&ctx).await;
    }
    let listed = entries(&ctx).await;
    let status = |id: &str| {
        listed
            .iter()
            .find(|e| e["message_id"] == id)
            .unwrap_or_else(|| panic!("no entry for {id}: {listed:#?}"))["status"]
            .clone()
    };
    assert_eq!(status("dan-2@example.test"), "needs_review");
    assert_eq!(
        status("priya-2@example.test"),
        "suggested",
        "only Dan was rejected"
    );

    // The reason is given where the user asks why.
    let raw = std::fs::read_to_string(&from_dan).unwrap();
    let raw = raw.split_once('\n').unwrap().1;
    let why = call(&ctx, "analyze_time_entry", json!({"raw_email": raw}))
        .await
        .expect("analyze");
    assert_eq!(why["entry"]["status"], "needs_review", "{why}");
    let first = why["reasons"][0].as_str().unwrap_or_default();
    assert!(
        first.contains("you rejected 1 earlier entry with dan.wu@globex.io"),
        "{why}"
    );

    // Approving more of them than were rejected undoes it.
    let approve = |id: &str| listed.iter().find(|e| e["message_id"] == id).unwrap()["id"].clone();
    call(
        &ctx,
        "update_time_entries",
        json!({"ids": [approve("dan-2@example.test")], "changes": {"status": "approved"}}),
    )
    .await
    .expect("approve");
    let from_dan = one_message(
        &app,
        "dan-3",
        "Dan Wu <dan.wu@globex.io>",
        "Option pool",
        body,
    );
    scan(&app.context(mbox(&from_dan))).await;
    let listed = entries(&ctx).await;
    let third = listed
        .iter()
        .find(|e| e["message_id"] == "dan-3@example.test");
    assert_eq!(
        third.map(|e| e["status"].clone()),
        Some(json!("suggested")),
        "one rejected, one approved: {listed:#?}"
    );
}

/// The entry of `id` in the store, if any.
async fn entry_of(ctx: &billable::Context, id: &str) -> Option<Value> {
    entries(ctx)
        .await
        .into_iter()
        .find(|e| e["message_id"] == id)
}

/// Banter with a friend who works at a client: no social cue word, nothing of work;
/// the amount in it keeps the shipped model from dropping it outright, so the review
/// is what decides.
const BANTER: &str = "Saw the quail numbers this morning, the birds look strong across the \
                      north pasture again. Reckon the dogs and I head up Saturday, then the \
                      lid is on for a week. Bring the old boots, the thermos and $40 for the gate.";

#[tokio::test]
async fn a_rejected_banter_teaches_that_similar_mail_from_anyone_is_not_work_until_reset() {
    let app = TestApp::new();
    let first = one_message(
        &app,
        "quail-1",
        "Dan Wu <dan.wu@globex.io>",
        "Saturday",
        BANTER,
    );
    let ctx = app.context(mbox(&first));
    configure(&ctx, demo_settings()).await;
    let raw_first = std::fs::read_to_string(&first).unwrap();
    let raw_first = raw_first.split_once('\n').unwrap().1;
    let analyzed = call(
        &ctx,
        "analyze_time_entry",
        json!({"raw_email": raw_first, "save": true}),
    )
    .await
    .expect("analyze");
    let banter = entry_of(&ctx, "quail-1@example.test")
        .await
        .unwrap_or_else(|| {
            panic!("an amount of money holds it for review rather than dropping it: {analyzed}")
        });
    call(
        &ctx,
        "update_time_entries",
        json!({"ids": [banter["id"]], "changes": {"status": "rejected"}}),
    )
    .await
    .expect("reject");

    // What was learnt is shown by configure, in words.
    let settings = call(&ctx, "configure_time_tracking", json!({"settings": null}))
        .await
        .expect("configure");
    assert_eq!(settings["learned"]["rejected"], 1, "{settings}");
    let away = settings["learned"]["away_from_work"].to_string();
    assert!(
        away.contains("quail") || away.contains("pasture"),
        "{settings}"
    );

    // Similar banter from someone else at another client is held or not billed.
    let body = BANTER
        .replace("Saturday", "Sunday")
        .replace("thermos", "flask");
    let second = one_message(
        &app,
        "quail-2",
        "Priya Shah <priya.shah@acme.com>",
        "Sunday",
        &body,
    );
    let scanned = scan(&app.context(mbox(&second))).await;
    match entry_of(&ctx, "quail-2@example.test").await {
        None => {}
        Some(e) => {
            assert_eq!(e["status"], "needs_review", "{e} {scanned}");
        }
    }
    let raw = std::fs::read_to_string(&second).unwrap();
    let raw = raw.split_once('\n').unwrap().1;
    let why = call(&ctx, "analyze_time_entry", json!({"raw_email": raw}))
        .await
        .expect("analyze");
    let reasons = why["reasons"].to_string();
    assert!(
        reasons.contains("you rejected mail like it before"),
        "{why}"
    );

    // A reset forgets it: the same mail is judged as on the first day.
    let reset = call(
        &ctx,
        "configure_time_tracking",
        json!({"settings": {"learned_since": "now"}}),
    )
    .await
    .expect("reset");
    assert!(reset.get("learned").is_none(), "{reset}");
    let again = call(&ctx, "analyze_time_entry", json!({"raw_email": raw}))
        .await
        .expect("analyze");
    assert!(
        !again["reasons"]
            .to_string()
            .contains("you rejected mail like it before"),
        "{again}"
    );

    // Another user (another store) learnt nothing from this one's reviews.
    let other = TestApp::new();
    let other_ctx = other.context(mbox(&second));
    configure(&other_ctx, demo_settings()).await;
    let theirs = call(
        &other_ctx,
        "configure_time_tracking",
        json!({"settings": null}),
    )
    .await
    .expect("configure");
    assert!(theirs.get("learned").is_none(), "{theirs}");
}

#[tokio::test]
async fn approvals_of_similar_work_raise_the_confidence_of_the_next() {
    let work = "Attached is the revised vesting schedule. Please check the acceleration \
                clause against the term sheet and let me have your comments on the option \
                pool before the board meeting.";
    let confidence = |e: &Value| e["confidence"].as_f64().unwrap_or_default();

    // Without reviews.
    let fresh = TestApp::new();
    let next = one_message(
        &fresh,
        "pool-2",
        "Priya Shah <priya.shah@mail.globex.io>",
        "Option pool",
        work,
    );
    let ctx = fresh.context(mbox(&next));
    configure(&ctx, demo_settings()).await;
    scan(&ctx).await;
    let before = entry_of(&ctx, "pool-2@example.test")
        .await
        .expect("work is billed");

    // After approving two like it.
    let app = TestApp::new();
    let ctx = app.context(None);
    configure(&ctx, demo_settings()).await;
    for n in ["pool-a", "pool-b"] {
        let path = one_message(&app, n, "Dan Wu <dan.wu@globex.io>", "Option pool", work);
        scan(&app.context(mbox(&path))).await;
        let e = entry_of(&ctx, &format!("{n}@example.test"))
            .await
            .expect("billed");
        call(
            &ctx,
            "update_time_entries",
            json!({"ids": [e["id"]], "changes": {"status": "approved"}}),
        )
        .await
        .expect("approve");
    }
    let next = one_message(
        &app,
        "pool-2",
        "Priya Shah <priya.shah@mail.globex.io>",
        "Option pool",
        work,
    );
    scan(&app.context(mbox(&next))).await;
    let after = entry_of(&ctx, "pool-2@example.test").await.expect("billed");
    assert!(
        confidence(&after) > confidence(&before),
        "approvals raise confidence: {before} -> {after}"
    );
    let learned = call(&ctx, "configure_time_tracking", json!({"settings": null}))
        .await
        .expect("configure");
    assert_eq!(learned["learned"]["approved"], 2, "{learned}");
}
