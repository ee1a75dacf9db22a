//! Gmail scans that fetch only what could be billed (the candidate listing), and bill
//! each RFC message once however many Gmail ids it has, through the real client
//! against the fake Gmail server, whose `q` follows Gmail's operators
//! (tests/api/gmail_query.rs).

use std::collections::BTreeMap;
use std::sync::Arc;

use billable::context::Context;
use billable::mail::MailSource;
use billable::mail::gmail::{GmailAuth, GmailConfig, GmailHub, QuotaCosts, QuotaProfile};
use billable::mail::mbox::MboxSource;
use serde_json::{Value, json};

use crate::fake_gmail::{Bucket, FakeGmail, TOKEN};
use crate::gmail::{entries_all, keyed};
use crate::helpers::{TestApp, configure, configure_demo, fixture, scan};
use crate::mbox_gen;

/// The client on the legacy profile, as the fake's quota bucket enforces it.
fn legacy_config(fake: &FakeGmail) -> GmailConfig {
    let mut config =
        GmailConfig::new(GmailAuth::AccessToken(TOKEN.into())).with_base_url(&fake.url);
    config.costs = QuotaCosts::for_profile(QuotaProfile::Legacy);
    config.min_backoff = std::time::Duration::from_millis(20);
    config
}

/// Every entry, keyed as `gmail::keyed` keys them.
async fn keyed_entries(
    ctx: &Context,
    ids: Option<&std::collections::HashMap<String, String>>,
) -> BTreeMap<String, Value> {
    keyed(&entries_all(ctx).await, ids)
}

fn write_generated(app: &TestApp, n: usize) -> std::path::PathBuf {
    let path = app.dir.path().join("mostly-other.mbox");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("mbox"));
    mbox_gen::write_mostly_other_mbox(&mut file, n).expect("write mbox");
    drop(file);
    path
}

fn generated_settings() -> Value {
    serde_json::from_str(mbox_gen::SETTINGS).expect("settings")
}

/// The acceptance run: 5,000 messages, one in ten a client's. The Gmail scan makes the
/// mbox scan's entries, fetching at most 1.1 bodies per candidate, within the quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gmail_scan_fetches_only_client_mail_and_makes_the_mbox_scans_entries() {
    const MESSAGES: usize = 5000;
    let app = TestApp::new();
    let mbox = write_generated(&app, MESSAGES);
    let settings = generated_settings();

    let local = TestApp::new();
    let source: Arc<dyn MailSource> = Arc::new(MboxSource::open(&mbox).expect("mbox"));
    let mbox_ctx = local.context(Some(source));
    configure(&mbox_ctx, settings.clone()).await;
    let from_mbox = scan(&mbox_ctx).await;
    assert_eq!(from_mbox["examined"], MESSAGES as u64, "{from_mbox}");
    let expected = keyed_entries(&mbox_ctx, None).await;
    assert!(expected.len() >= 300, "{} entries", expected.len());

    let fake = FakeGmail::from_mbox(&mbox).await;
    fake.set_bucket(Some(Bucket::legacy()));
    let ctx = app
        .context(None)
        .with_gmail(Arc::new(GmailHub::new(legacy_config(&fake))));
    configure(&ctx, settings.clone()).await;
    let out = scan(&ctx).await;
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(out["errors_total"], 0, "{out}");
    assert!(
        out["listing"]
            .as_str()
            .unwrap()
            .starts_with("only mail that names a configured client"),
        "{out}"
    );
    let got = keyed_entries(&ctx, Some(&fake.message_ids())).await;
    assert_eq!(got, expected);

    // One message in ten names a client.
    let candidates = (MESSAGES / 10) as f64;
    let gets = fake.calls("messages.get") as f64;
    assert!(
        gets <= 1.1 * candidates,
        "{gets} bodies fetched for {candidates} candidates"
    );
    assert_eq!(out["examined"].as_f64(), Some(gets), "{out}");
    assert_eq!(fake.quota_429s(), 0, "the quota was never overdrawn");
}

#[tokio::test]
async fn a_message_gmail_holds_twice_is_billed_once_in_one_scan_and_across_scans() {
    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;
    let app = TestApp::new();
    let ctx = app
        .context(None)
        .with_gmail(Arc::new(GmailHub::new(legacy_config(&fake))));
    configure_demo(&ctx).await;
    // Three billed messages, delivered a second time before the first scan.
    let mbox_app = TestApp::new();
    let source: Arc<dyn MailSource> =
        Arc::new(MboxSource::open(fixture("demo.mbox")).expect("mbox"));
    let mbox_ctx = mbox_app.context(Some(source));
    configure_demo(&mbox_ctx).await;
    scan(&mbox_ctx).await;
    let expected = keyed_entries(&mbox_ctx, None).await;
    let by_rfc: std::collections::HashMap<String, String> = fake
        .message_ids()
        .into_iter()
        .map(|(gmail, rfc)| (rfc, gmail))
        .collect();
    let billed: Vec<&String> = expected.keys().take(4).collect();
    for rfc in &billed[..3] {
        fake.deliver_again(&by_rfc[*rfc]);
    }
    let out = scan(&ctx).await;
    assert_eq!(out["status"], "completed", "{out}");
    assert!(
        out["skipped_already_processed"].as_u64() >= Some(3),
        "{out}"
    );
    assert_eq!(
        keyed_entries(&ctx, Some(&fake.message_ids())).await,
        expected
    );

    // A fourth copy arrives after the scan: the next scan records it, bills nothing.
    fake.deliver_again(&by_rfc[billed[3]]);
    let again = scan(&ctx).await;
    assert_eq!(again["entries_created"], 0, "{again}");
    assert_eq!(
        again["skipped_already_processed"].as_u64(),
        again["examined"].as_u64()
    );
    assert_eq!(
        keyed_entries(&ctx, Some(&fake.message_ids())).await,
        expected
    );
}

#[tokio::test]
async fn mail_scanned_from_an_mbox_is_not_billed_again_through_gmail() {
    let app = TestApp::new();
    let source: Arc<dyn MailSource> =
        Arc::new(MboxSource::open(fixture("demo.mbox")).expect("mbox"));
    let mbox_ctx = app.context(Some(source));
    configure_demo(&mbox_ctx).await;
    scan(&mbox_ctx).await;
    let expected = keyed_entries(&mbox_ctx, None).await;

    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;
    let ctx = app
        .context(None)
        .with_gmail(Arc::new(GmailHub::new(legacy_config(&fake))));
    let out = scan(&ctx).await;
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(out["entries_created"], 0, "{out}");
    assert_eq!(keyed_entries(&ctx, None).await, expected);

    // And the other way round: what Gmail processed, the mbox skips.
    let other = TestApp::new();
    let gmail_first = other
        .context(None)
        .with_gmail(Arc::new(GmailHub::new(legacy_config(&fake))));
    configure_demo(&gmail_first).await;
    scan(&gmail_first).await;
    let source: Arc<dyn MailSource> =
        Arc::new(MboxSource::open(fixture("demo.mbox")).expect("mbox"));
    let then_mbox = scan(&other.context(Some(source))).await;
    assert_eq!(then_mbox["entries_created"], 0, "{then_mbox}");
    assert!(
        then_mbox["skipped_already_processed"].as_u64() >= Some(expected.len() as u64),
        "{then_mbox}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_added_later_has_its_older_mail_fetched_and_nothing_else() {
    const MESSAGES: usize = 1000;
    let app = TestApp::new();
    let mbox = write_generated(&app, MESSAGES);
    let fake = FakeGmail::from_mbox(&mbox).await;
    let ctx = app
        .context(None)
        .with_gmail(Arc::new(GmailHub::new(legacy_config(&fake))));
    let mut settings = generated_settings();
    let all_clients = settings["clients"].clone();
    settings["clients"] = json!([all_clients[0]]);
    configure(&ctx, settings.clone()).await;
    let first = scan(&ctx).await;
    let acme = first["examined"].as_u64().unwrap();
    assert!(acme > 0, "{first}");
    assert_eq!(fake.calls("messages.get"), acme);

    fake.reset_calls();
    configure(&ctx, json!({ "clients": all_clients })).await;
    let second = scan(&ctx).await;
    // Acme's mail is listed again but not fetched; the newly added clients' is.
    assert_eq!(second["skipped_already_processed"], acme, "{second}");
    let added = fake.calls("messages.get");
    assert!(added > 0, "{second}");
    assert_eq!(second["examined"].as_u64(), Some(acme + added), "{second}");
    assert!(second["entries_created"].as_u64() > Some(0), "{second}");
    // Together: every client message once (one in ten of the mailbox).
    assert_eq!(acme + added, (MESSAGES / 10) as u64);
}
