//! Gmail through the real google-gmail1 client against the fake Gmail server: the same
//! entries as the mbox, quota kept, faults retried after Retry-After, incremental
//! sync by history, scans killed and rerun, and credentials rejected at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use billable::context::Context;
use billable::domain::UserId;
use billable::mail::gmail::{GmailAuth, GmailConfig, GmailHub, QuotaCosts, QuotaProfile};
use billable::mail::mbox::MboxSource;
use billable::mail::{MailSource, RawEmail};
use billable::store::ScanStatus;
use billable::tools::NoProgress;
use serde_json::{Value, json};

use crate::fake_gmail::{Bucket, FakeGmail, Faults, TOKEN};
use crate::helpers::{TestApp, call, configure, configure_demo, demo_settings, fixture, scan};
use crate::mbox_gen;

/// What Gmail lists of the demo mailbox for its clients: all 16 messages but the
/// newsletter in Promotions and the dinner invitation to a friend.
const DEMO_CANDIDATES: u64 = 14;

/// A client with generous quota (the fake enforces none unless told) and short
/// backoffs, so fault tests stay quick.
pub(crate) fn config(fake: &FakeGmail) -> GmailConfig {
    let mut config =
        GmailConfig::new(GmailAuth::AccessToken(TOKEN.into())).with_base_url(&fake.url);
    config.costs = QuotaCosts {
        units_per_sec: 100_000,
        ..QuotaCosts::for_profile(QuotaProfile::Legacy)
    };
    config.min_backoff = Duration::from_millis(20);
    config
}

async fn gmail_context(app: &TestApp, config: GmailConfig) -> Context {
    let ctx = app
        .context(None)
        .with_gmail(Arc::new(GmailHub::new(config)));
    configure_demo(&ctx).await;
    ctx
}

/// As [`gmail_context`] with no clients: the scan lists the whole mailbox, and a
/// scan of all of it can then sync by history.
async fn gmail_context_without_clients(app: &TestApp, config: GmailConfig) -> Context {
    let ctx = app
        .context(None)
        .with_gmail(Arc::new(GmailHub::new(config)));
    let mut settings = demo_settings();
    settings["clients"] = json!([]);
    configure(&ctx, settings).await;
    ctx
}

async fn entries(ctx: &Context) -> Vec<Value> {
    let list = call(ctx, "list_time_entries", json!({"limit": 500}))
        .await
        .expect("list");
    list["entries"].as_array().cloned().unwrap_or_default()
}

/// Wakes a test when the scan reports progress (after each saved chunk).
/// Counts progress reports (one per chunk recorded); a waiter sees every one, however
/// close together they come.
struct ChunkSaved(tokio::sync::watch::Sender<usize>);

impl billable::tools::Progress for ChunkSaved {
    fn report(&self, _progress: &billable::tools::ScanProgress) {
        self.0.send_modify(|n| *n += 1);
    }
}

/// Every entry, page by page.
pub(crate) async fn entries_all(ctx: &Context) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        let list = call(
            ctx,
            "list_time_entries",
            json!({"limit": 500, "offset": all.len()}),
        )
        .await
        .expect("list");
        let page = list["entries"].as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// Entries by the message's Message-ID (Gmail ids mapped through `ids`): [client,
/// activity, work_date, billed_minutes, description].
pub(crate) fn keyed(
    entries: &[Value],
    ids: Option<&HashMap<String, String>>,
) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for e in entries {
        let id = e["message_id"].as_str().expect("message_id").to_owned();
        let id = match ids {
            Some(map) => map
                .get(&id)
                .cloned()
                .unwrap_or_else(|| panic!("unknown Gmail id {id}")),
            None => id,
        };
        let row = json!([
            e["client"],
            e["activity"],
            e["work_date"],
            e["billed_minutes"],
            e["description"]
        ]);
        assert!(
            out.insert(id.clone(), row).is_none(),
            "two entries for {id}"
        );
    }
    out
}

pub(crate) async fn mbox_entries() -> BTreeMap<String, Value> {
    let app = TestApp::new();
    let source: Arc<dyn MailSource> =
        Arc::new(MboxSource::open(fixture("demo.mbox")).expect("mbox"));
    let ctx = app.context(Some(source));
    configure_demo(&ctx).await;
    scan(&ctx).await;
    keyed(&entries(&ctx).await, None)
}

/// A client's new message, arriving after a first scan.
fn new_client_message() -> RawEmail {
    raw(
        "new-1@acme.com",
        "Wile Coyote <wile@acme.com>",
        "alex@morganlegal.com",
        &["Inbox"],
        "Alex, please review the attached indemnity changes before Friday. We need your view on the cap.",
    )
}

fn raw(id: &str, from: &str, to: &str, labels: &[&str], body: &str) -> RawEmail {
    let text = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: Re: MSA redlines\r\nDate: Tue, 17 Nov 2026 10:00:00 -0500\r\n\
         Message-ID: <{id}>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    );
    RawEmail {
        id: id.to_owned(),
        thread_id: None,
        labels: labels.iter().map(|l| l.to_string()).collect(),
        bytes: text.into_bytes(),
    }
}

#[tokio::test]
async fn scanning_the_demo_mailbox_through_gmail_gives_the_same_entries_as_the_mbox() {
    let expected = mbox_entries().await;
    assert!(
        expected.len() >= 5,
        "the demo mailbox has entries: {expected:?}"
    );

    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;
    let app = TestApp::new();
    let ctx = gmail_context(&app, config(&fake)).await;
    let out = scan(&ctx).await;
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(out["examined"], DEMO_CANDIDATES, "{out}");
    assert_eq!(out["errors_total"], 0, "{out}");
    assert!(
        out["source"].as_str().unwrap().starts_with("gmail"),
        "{out}"
    );

    let got = keyed(&entries(&ctx).await, Some(&fake.message_ids()));
    assert_eq!(got, expected);
    // Ids only were listed; each body fetched once, as raw.
    assert_eq!(fake.calls("messages.get"), DEMO_CANDIDATES);
}

#[tokio::test]
async fn a_rescan_through_gmail_fetches_no_bodies_and_creates_nothing() {
    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;
    let app = TestApp::new();
    let ctx = gmail_context(&app, config(&fake)).await;
    scan(&ctx).await;
    let before = entries(&ctx).await.len();
    fake.reset_calls();
    // A filtered scan cannot use history: it lists, then drops every processed id.
    let out = call(
        &ctx,
        "scan_billable_time",
        json!({"query": "-label:nothing", "background": false}),
    )
    .await
    .expect("rescan");
    assert_eq!(out["skipped_already_processed"], DEMO_CANDIDATES, "{out}");
    assert_eq!(out["entries_created"], 0, "{out}");
    assert_eq!(fake.calls("messages.get"), 0);
    assert!(fake.calls("messages.list") >= 1);
    assert_eq!(entries(&ctx).await.len(), before);
}

#[tokio::test]
async fn with_429s_and_503s_injected_the_entries_are_the_same_and_retries_wait_for_retry_after() {
    let expected = mbox_entries().await;
    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;
    fake.set_faults(Faults {
        rate_429: 0.10,
        rate_503: 0.10,
        retry_after_secs: 1,
        ..Faults::default()
    });
    let app = TestApp::new();
    let ctx = gmail_context(&app, config(&fake)).await;
    let out = scan(&ctx).await;
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(out["errors_total"], 0, "{out}");
    let got = keyed(&entries(&ctx).await, Some(&fake.message_ids()));
    assert_eq!(got, expected, "same entries, none twice");
    assert!(fake.injected() >= 1, "faults were injected");
    let (early, checked) = fake.early_retries();
    assert!(
        checked >= fake.injected(),
        "every failure was retried ({checked} checked)"
    );
    assert_eq!(early, 0, "no retry came before its Retry-After");
}

#[tokio::test]
async fn rate_limit_403s_are_retried_like_429s() {
    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;
    fake.set_faults(Faults {
        rate_403: 0.25,
        retry_after_secs: 1,
        ..Faults::default()
    });
    let app = TestApp::new();
    let ctx = gmail_context(&app, config(&fake)).await;
    let out = scan(&ctx).await;
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(out["errors_total"], 0, "{out}");
    assert!(fake.injected() >= 1);
    assert_eq!(fake.early_retries().0, 0);
}

#[tokio::test]
async fn after_one_scan_a_new_message_is_found_through_history_with_one_fetch() {
    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;
    let app = TestApp::new();
    let ctx = gmail_context_without_clients(&app, config(&fake)).await;
    let first = scan(&ctx).await;
    assert!(
        first["listing"]
            .as_str()
            .unwrap()
            .starts_with("every message"),
        "{first}"
    );

    fake.add(new_client_message());
    fake.reset_calls();
    let out = scan(&ctx).await;
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(out["examined"], 1, "{out}");
    assert!(fake.calls("history.list") >= 1, "history was read");
    assert_eq!(fake.calls("messages.list"), 0, "no full listing");
    assert_eq!(fake.calls("messages.get"), 1, "exactly one body fetched");

    // Nothing new: history is read, nothing fetched.
    fake.reset_calls();
    let out = scan(&ctx).await;
    assert_eq!(out["examined"], 0, "{out}");
    assert_eq!(fake.calls("messages.get"), 0);
}

#[tokio::test]
async fn with_clients_a_rescan_lists_their_mail_again_and_fetches_only_the_new_message() {
    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;
    let app = TestApp::new();
    let ctx = gmail_context(&app, config(&fake)).await;
    scan(&ctx).await;
    let before = entries(&ctx).await.len();
    fake.add(new_client_message());
    fake.reset_calls();
    let out = scan(&ctx).await;
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(fake.calls("history.list"), 0, "{out}");
    assert!(fake.calls("messages.list") >= 1);
    assert_eq!(fake.calls("messages.get"), 1, "exactly one body fetched");
    assert_eq!(entries(&ctx).await.len(), before + 1);
}

#[tokio::test]
async fn clients_configured_after_a_gmail_scan_find_the_mail_it_could_not_match() {
    let expected = mbox_entries().await;
    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;
    let app = TestApp::new();
    let ctx = gmail_context_without_clients(&app, config(&fake)).await;
    let first = scan(&ctx).await;
    assert_eq!(first["entries_created"], 0, "{first}");

    configure_demo(&ctx).await;
    fake.reset_calls();
    let out = scan(&ctx).await;
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(
        keyed(&entries_all(&ctx).await, Some(&fake.message_ids())),
        expected,
        "{out}"
    );
    let fetched = fake.calls("messages.get");
    assert!(
        (expected.len() as u64..=DEMO_CANDIDATES).contains(&fetched),
        "the client mail is fetched again, the automated mail is not: {fetched}"
    );
}

#[tokio::test]
async fn a_history_cursor_taken_under_other_clients_or_contacts_is_not_resumed() {
    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;
    let app = TestApp::new();
    let ctx = gmail_context_without_clients(&app, config(&fake)).await;
    scan(&ctx).await;

    // Who is a personal contact decides unmatched mail too: everything is listed.
    let mut settings = demo_settings();
    settings["clients"] = json!([]);
    settings["personal_contacts"] = json!(["sam.morgan@gmail.com"]);
    configure(&ctx, settings).await;
    fake.reset_calls();
    let out = scan(&ctx).await;
    assert_eq!(fake.calls("history.list"), 0, "{out}");
    assert!(fake.calls("messages.list") >= 1, "{out}");

    // The cursor recorded under the new settings is resumed.
    fake.reset_calls();
    let out = scan(&ctx).await;
    assert!(fake.calls("history.list") >= 1, "{out}");
    assert_eq!(fake.calls("messages.list"), 0, "{out}");
    assert_eq!(out["examined"], 0, "{out}");
}

#[tokio::test]
async fn an_expired_history_id_falls_back_to_a_full_listing() {
    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;
    let app = TestApp::new();
    let ctx = gmail_context_without_clients(&app, config(&fake)).await;
    scan(&ctx).await;
    fake.add(raw(
        "new-2@globex.io",
        "Hank Scorpio <hank@globex.io>",
        "alex@morganlegal.com",
        &["Inbox"],
        "Alex, the term sheet comments are in. Can you look at the liquidation preference language?",
    ));
    fake.expire_history();
    fake.reset_calls();
    let out = scan(&ctx).await;
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(fake.calls("history.list"), 1, "tried history once");
    assert!(fake.calls("messages.list") >= 1, "then listed everything");
    assert_eq!(
        fake.calls("messages.get"),
        1,
        "processed mail is not fetched again"
    );
    assert_eq!(out["skipped_already_processed"], 16, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_scans_at_random_points_and_rerunning_gives_the_entries_of_an_uninterrupted_run() {
    // Several chunks of mail, so a kill can land after some were saved.
    let app = TestApp::new();
    let path = app.dir.path().join("generated.mbox");
    let mut file = std::fs::File::create(&path).expect("mbox");
    mbox_gen::write_mbox(&mut file, 700).expect("write mbox");
    drop(file);
    let settings: Value = serde_json::from_str(mbox_gen::SETTINGS).expect("settings");

    let expected = {
        let reference = TestApp::new();
        let source: Arc<dyn MailSource> = Arc::new(MboxSource::open(&path).expect("mbox"));
        let ctx = reference.context(Some(source));
        call(
            &ctx,
            "configure_time_tracking",
            json!({"settings": settings}),
        )
        .await
        .expect("configure");
        let out = scan(&ctx).await;
        assert_eq!(out["status"], "completed", "{out}");
        keyed(&entries_all(&ctx).await, None)
    };
    assert!(expected.len() > 100, "{}", expected.len());

    let fake = FakeGmail::from_mbox(&path).await;
    fake.set_faults(Faults {
        latency: Duration::from_millis(3),
        retry_after_secs: 1,
        ..Faults::default()
    });
    let mut config = config(&fake);
    config.concurrency = 4;
    let ctx = Arc::new(
        app.context(None)
            .with_gmail(Arc::new(GmailHub::new(config))),
    );
    call(
        &ctx,
        "configure_time_tracking",
        json!({"settings": settings}),
    )
    .await
    .expect("configure");

    // Deterministic "random" kill points: odd attempts at a random time, even ones a
    // random moment after a chunk was saved (so kills land mid-scan however fast or
    // slow the machine is).
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut partial = Vec::new();
    for attempt in 0..6 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let chunk_saved = Arc::new(ChunkSaved(tokio::sync::watch::Sender::new(0)));
        let scan_ctx = ctx.clone();
        let progress = chunk_saved.clone();
        let mut task = tokio::spawn(async move {
            billable::tools::call(
                &scan_ctx,
                &UserId::local(),
                "scan_billable_time",
                json!({"background": false}),
                progress.as_ref(),
            )
            .await
        });
        // A scan may finish before its kill point (an incremental rescan reports once).
        let mut finished = false;
        if attempt % 2 == 0 {
            // After the (attempt/2 + 1)-th chunk: later attempts get further.
            let mut reports = chunk_saved.0.subscribe();
            tokio::select! {
                _ = tokio::time::timeout(
                    Duration::from_secs(60),
                    reports.wait_for(|n| *n > attempt / 2),
                ) => {}
                _ = &mut task => finished = true,
            }
            if !finished {
                tokio::time::sleep(Duration::from_millis(seed % 40)).await;
            }
        } else {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(seed % 1500)) => {}
                _ = &mut task => finished = true,
            }
        }
        if !finished {
            task.abort();
            let _ = task.await;
        }
        partial.push(entries_all(&ctx).await.len());
    }
    eprintln!("entries after each kill: {partial:?} of {}", expected.len());
    assert!(
        partial.iter().any(|n| *n > 0 && *n < expected.len()),
        "some kill landed mid-scan, after a chunk was saved: {partial:?} of {}",
        expected.len()
    );
    let out = scan(&ctx).await;
    assert_eq!(out["status"], "completed", "{out}");
    let got = keyed(&entries_all(&ctx).await, Some(&fake.message_ids()));
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected);

    // A killed scan is recorded as interrupted (from a task spawned when it is
    // dropped), never left `running` in the history.
    let mut scans = Vec::new();
    for _ in 0..50 {
        scans = ctx.store.scans(&UserId::local(), 50).await.expect("scans");
        if scans.iter().all(|s| s.status != ScanStatus::Running) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert!(
        scans.iter().all(|s| s.status != ScanStatus::Running),
        "{scans:?}"
    );
    assert!(
        scans.iter().any(|s| s.status == ScanStatus::Interrupted),
        "{scans:?}"
    );
}

#[tokio::test]
async fn a_rejected_token_gives_the_reauthorise_error_at_once_without_retries() {
    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;
    fake.set_faults(Faults {
        unauthorized: true,
        ..Faults::default()
    });
    let app = TestApp::new();
    let ctx = gmail_context(&app, config(&fake)).await;
    let started = std::time::Instant::now();
    let err = call(&ctx, "scan_billable_time", json!({"background": false}))
        .await
        .expect_err("401 stops the scan");
    let message = err.to_string();
    // The advice fits the credential: this one is an access token.
    assert!(
        message.contains("fresh Gmail access token (GMAIL_ACCESS_TOKEN)"),
        "{message}"
    );
    assert_eq!(err.kind(), billable::error::ErrorKind::Unavailable);
    assert_eq!(fake.calls("getProfile"), 1, "no retries");
    assert_eq!(fake.calls("messages.list") + fake.calls("messages.get"), 0);
    assert!(started.elapsed() < Duration::from_secs(2), "at once");

    // Fetching one message: one call, the same advice.
    let source = GmailHub::new(config(&fake))
        .source(&UserId::local())
        .expect("source");
    let id = fake.message_ids().into_keys().next().unwrap();
    fake.reset_calls();
    let err = source.get(&id).await.expect_err("401");
    assert!(err.to_string().contains("GMAIL_ACCESS_TOKEN"), "{err}");
    assert_eq!(fake.calls("messages.get"), 1);
}

#[tokio::test]
async fn a_scan_on_the_legacy_profile_never_overdraws_the_quota() {
    // 100 messages at 5 units each with a 250 units/s bucket: beyond the burst, the
    // limiter must pace the fetches.
    let mut raws = Vec::new();
    for i in 0..100 {
        raws.push(raw(
            &format!("q{i}@acme.com"),
            "Wile Coyote <wile@acme.com>",
            "alex@morganlegal.com",
            &["Inbox"],
            &format!("Message {i} about the MSA schedule and the indemnity cap."),
        ));
    }
    let fake = FakeGmail::start(raws).await;
    fake.set_bucket(Some(Bucket::legacy()));
    let app = TestApp::new();
    let mut config = config(&fake);
    config.costs = QuotaCosts::for_profile(QuotaProfile::Legacy);
    config.concurrency = 16;
    let ctx = gmail_context(&app, config).await;
    let out = scan(&ctx).await;
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(out["examined"], 100, "{out}");
    assert_eq!(
        fake.quota_429s(),
        0,
        "the fake never had to refuse a request"
    );
}

#[tokio::test]
async fn the_fake_serves_full_and_metadata_formats_and_attachments_like_gmail() {
    // The fake's other formats, checked through the real client.
    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;
    let mut cfg = config(&fake);
    cfg.costs.units_per_sec = 100_000;
    let url = fake.url.clone();
    let client = google_gmail1::hyper_util::client::legacy::Client::builder(
        google_gmail1::hyper_util::rt::TokioExecutor::new(),
    )
    .build(billable::mail::gmail::connector());
    let mut hub = google_gmail1::Gmail::new(client, TOKEN.to_owned());
    hub.base_url(url);
    let ids = fake.message_ids();
    let (id, _) = ids
        .iter()
        .find(|(_, mid)| mid.as_str() == "msa-redline-2@acme.com")
        .expect("demo message with an attachment");
    let (_, full) = hub
        .users()
        .messages_get("me", id)
        .format("full")
        .doit()
        .await
        .expect("full");
    let payload = full.payload.expect("payload");
    assert!(
        payload
            .mime_type
            .unwrap_or_default()
            .starts_with("multipart/")
    );
    let parts = payload.parts.unwrap_or_default();
    let attachment = parts
        .iter()
        .find(|p| p.filename.as_deref().is_some_and(|f| !f.is_empty()))
        .expect("an attachment part");
    let att_id = attachment
        .body
        .as_ref()
        .and_then(|b| b.attachment_id.clone())
        .expect("attachment id");
    let (_, body) = hub
        .users()
        .messages_attachments_get("me", id, &att_id)
        .doit()
        .await
        .expect("attachment");
    assert!(!body.data.unwrap_or_default().is_empty());

    let (_, meta) = hub
        .users()
        .messages_get("me", id)
        .format("metadata")
        .add_metadata_headers("Subject")
        .doit()
        .await
        .expect("metadata");
    let headers = meta.payload.and_then(|p| p.headers).unwrap_or_default();
    assert_eq!(headers.len(), 1, "{headers:?}");
    assert_eq!(headers[0].name.as_deref(), Some("Subject"));
    assert!(
        meta.label_ids
            .unwrap_or_default()
            .contains(&"INBOX".to_owned())
    );

    // Pagination: 16 ids in pages of 5.
    let mut token: Option<String> = None;
    let mut seen = 0;
    let mut pages = 0;
    loop {
        let mut call = hub.users().messages_list("me").max_results(5);
        if let Some(t) = &token {
            call = call.page_token(t);
        }
        let (_, page) = call.doit().await.expect("page");
        seen += page.messages.unwrap_or_default().len();
        pages += 1;
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!((seen, pages), (16, 4));
    // The query subset: only Acme's mail.
    let (_, acme) = hub
        .users()
        .messages_list("me")
        .q("from:acme.com")
        .doit()
        .await
        .expect("q");
    let n = acme.messages.unwrap_or_default().len();
    assert!((1..16).contains(&n), "{n}");
}

/// Plays the browser's part of the consent: follows the redirect with a code.
struct Browser {
    seen_url: Arc<std::sync::Mutex<String>>,
}

impl google_gmail1::yup_oauth2::authenticator_delegate::InstalledFlowDelegate for Browser {
    fn present_user_url<'a>(
        &'a self,
        url: &'a str,
        _need_code: bool,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>> {
        *self.seen_url.lock().unwrap() = url.to_owned();
        let redirect = url
            .split("redirect_uri=")
            .nth(1)
            .and_then(|r| r.split('&').next())
            .unwrap_or_default()
            .to_owned();
        let port: u16 = redirect
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .unwrap_or(0);
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("redirect server");
            stream
                .write_all(b"GET /?code=consent-code HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .await
                .expect("write");
            let mut response = Vec::new();
            let _ = stream.read_to_end(&mut response).await;
        });
        Box::pin(async { Ok(String::new()) })
    }
}

/// A fake Google token endpoint that grants the fake Gmail's token for one code.
async fn token_server(
    expires_in: u64,
    refresh_ok: bool,
) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::routing::post;
    let forms = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = forms.clone();
    let app = axum::Router::new().route(
        "/token",
        post(move |body: String| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(body.clone());
                let refresh = body.contains("grant_type=refresh_token");
                if body.contains("code=consent-code") || (refresh && refresh_ok) {
                    (
                        axum::http::StatusCode::OK,
                        axum::Json(json!({"access_token": TOKEN, "refresh_token": "refresh-1",
                            "expires_in": expires_in, "token_type": "Bearer",
                            "scope": "https://www.googleapis.com/auth/gmail.readonly"})),
                    )
                } else {
                    (
                        axum::http::StatusCode::BAD_REQUEST,
                        axum::Json(
                            json!({"error": "invalid_grant", "error_description": "Bad Request"}),
                        ),
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, forms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorising_gmail_stores_read_only_tokens_that_only_the_user_can_read_and_scans_use_them()
{
    use std::os::unix::fs::PermissionsExt;
    let (token_url, forms) = token_server(3600, true).await;
    let app = TestApp::new();
    let secret = client_secret(&app, &token_url);
    let token_file = app.dir.path().join("config/billable/gmail-token.json");
    let seen_url = Arc::new(std::sync::Mutex::new(String::new()));
    billable::mail::gmail::auth::authorize(
        &secret,
        &token_file,
        Some(Box::new(Browser {
            seen_url: seen_url.clone(),
        })),
    )
    .await
    .expect("authorised");

    let url = seen_url.lock().unwrap().clone();
    let scope = url
        .split("scope=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .unwrap_or_default();
    assert_eq!(
        scope, "https://www.googleapis.com/auth/gmail.readonly",
        "{url}"
    );
    assert!(
        forms
            .lock()
            .unwrap()
            .iter()
            .any(|f| f.contains("code=consent-code"))
    );
    let mode = std::fs::metadata(&token_file)
        .expect("token file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "token file mode {mode:o}");
    let dir_mode = std::fs::metadata(token_file.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o077, 0, "config dir mode {dir_mode:o}");
    // A folder that was there before (perhaps shared) keeps its mode.
    let shared = app.dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    billable::mail::gmail::auth::authorize(
        &secret,
        &shared.join("x.json"),
        Some(Box::new(Browser {
            seen_url: Arc::new(std::sync::Mutex::new(String::new())),
        })),
    )
    .await
    .expect("authorised into a shared folder");
    let shared_mode = std::fs::metadata(&shared).unwrap().permissions().mode();
    assert_eq!(
        shared_mode & 0o777,
        0o755,
        "shared dir mode {shared_mode:o}"
    );

    // A scan reads Gmail with the stored grant, without prompting.
    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;
    let mut config = config(&fake);
    config.auth = GmailAuth::Installed {
        secret_file: secret.clone(),
        token_file: token_file.clone(),
    };
    let ctx = gmail_context(&app, config.clone()).await;
    let out = scan(&ctx).await;
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(out["examined"], DEMO_CANDIDATES, "{out}");

    // Without a stored grant a scan asks for `billable auth gmail`, it never prompts.
    let other = TestApp::new();
    config.auth = GmailAuth::Installed {
        secret_file: secret,
        token_file: other.dir.path().join("missing.json"),
    };
    let ctx = gmail_context(&other, config).await;
    let err = call(&ctx, "scan_billable_time", json!({"background": false}))
        .await
        .expect_err("no grant");
    assert!(err.to_string().contains("billable auth gmail"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_scans_gmail_with_the_gmail_flag_and_environment_credentials() {
    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;
    let app = TestApp::new();
    let settings = app.write("settings.json", &demo_settings().to_string());
    let (home, db) = (app.dir.path().to_owned(), app.db.clone());
    let url = fake.url.clone();
    let run = move |extra: &'static [(&'static str, &'static str)]| {
        crate::helpers::billable(&home)
            .arg("--db")
            .arg(&db)
            .args(["--gmail", "--json", "--settings"])
            .arg(&settings)
            .arg("scan")
            .env("GMAIL_API_BASE_URL", &url)
            .env("GMAIL_QUOTA_PROFILE", "legacy")
            .envs(extra.iter().copied())
            .output()
            .expect("run billable")
    };
    let run = Arc::new(run);
    let first = run.clone();
    let out = tokio::task::spawn_blocking(move || first(&[("GMAIL_ACCESS_TOKEN", TOKEN)]))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["examined"], DEMO_CANDIDATES, "{json}");
    assert!(json["entries_created"].as_u64().unwrap() >= 5, "{json}");

    // A wrong token: exit 3 and the advice to supply a fresh one on stderr.
    let second = run.clone();
    let out = tokio::task::spawn_blocking(move || second(&[("GMAIL_ACCESS_TOKEN", "expired")]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fresh Gmail access token"));

    // No credentials at all: exit 2 and how to configure them.
    let out = tokio::task::spawn_blocking(move || run(&[])).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("GMAIL_ACCESS_TOKEN") && stderr.contains("billable auth gmail"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_grant_revoked_mid_scan_interrupts_it_without_retries_and_a_rescan_finishes() {
    let expected = mbox_entries().await;
    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;
    // Two profile reads, the listing and four bodies succeed; then 401s.
    fake.set_faults(Faults {
        unauthorized_after: Some(7),
        ..Faults::default()
    });
    let app = TestApp::new();
    let mut config = config(&fake);
    config.concurrency = 2;
    let ctx = gmail_context(&app, config).await;
    let out = scan(&ctx).await;
    assert_eq!(out["status"], "interrupted", "{out}");
    let reason = out["stopped_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("GMAIL_ACCESS_TOKEN"), "{reason}");
    // The revoked calls are the two in flight, none repeated.
    assert!(
        fake.calls("messages.get") <= 4 + 2,
        "{}",
        fake.calls("messages.get")
    );
    assert!(fake.injected() <= 2, "{}", fake.injected());

    fake.set_faults(Faults::default());
    let out = scan(&ctx).await;
    assert_eq!(out["status"], "completed", "{out}");
    let got = keyed(&entries(&ctx).await, Some(&fake.message_ids()));
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_service_account_reads_the_users_mailbox_by_delegation() {
    use axum::routing::post;
    use base64::Engine as _;
    // A fake token endpoint for the JWT-bearer grant: it records the signed claims.
    let claims = Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let seen = claims.clone();
    let token_app = axum::Router::new().route(
        "/token",
        post(move |body: String| {
            let seen = seen.clone();
            async move {
                let assertion = body
                    .split('&')
                    .find_map(|p| p.strip_prefix("assertion="))
                    .unwrap_or_default()
                    // Form-encoded, padded base64url: drop the padding.
                    .replace("%3D", "");
                let payload = assertion.split('.').nth(1).unwrap_or_default();
                let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload.trim_end_matches('='))
                    .unwrap_or_default();
                let value: Value = serde_json::from_slice(&decoded).unwrap_or(Value::Null);
                seen.lock().unwrap().push(value);
                axum::Json(
                    json!({"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"}),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let token_url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, token_app).await;
    });

    let app = TestApp::new();
    let key = std::fs::read_to_string(fixture("gmail/service-account.json"))
        .expect("key")
        .replace("TOKEN_URI", &token_url);
    let key_file = app.write("service-account.json", &key);
    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;
    let mut config = config(&fake);
    config.auth = GmailAuth::ServiceAccount {
        key_file,
        subject: None,
    };
    let ctx = app
        .context(None)
        .with_gmail(Arc::new(GmailHub::new(config)));
    // In a Workspace deployment the user id is the address of the mailbox.
    let user = UserId::new("alex@morganlegal.com");
    billable::tools::call(
        &ctx,
        &user,
        "configure_time_tracking",
        json!({"settings": demo_settings()}),
        &NoProgress,
    )
    .await
    .expect("configure");
    let out = billable::tools::call(
        &ctx,
        &user,
        "scan_billable_time",
        json!({"background": false}),
        &NoProgress,
    )
    .await
    .expect("scan");
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(out["examined"], DEMO_CANDIDATES, "{out}");

    let claims = claims.lock().unwrap().clone();
    assert!(!claims.is_empty(), "a token was requested");
    assert_eq!(claims[0]["sub"], "alex@morganlegal.com", "{claims:?}");
    assert_eq!(
        claims[0]["scope"],
        "https://www.googleapis.com/auth/gmail.readonly"
    );
    assert_eq!(
        claims[0]["iss"],
        "billable-test@billable-test.iam.gserviceaccount.com"
    );

    // A user id that is not an address cannot be a delegation subject.
    let err = billable::tools::call(
        &ctx,
        &UserId::local(),
        "scan_billable_time",
        json!({"background": false}),
        &NoProgress,
    )
    .await
    .expect_err("no subject");
    assert!(
        err.to_string().contains("GMAIL_SERVICE_ACCOUNT_SUBJECT"),
        "{err}"
    );
}

#[tokio::test]
async fn a_message_gmail_sent_malformed_is_reported_and_fetched_again_by_the_next_scan() {
    let expected = mbox_entries().await;
    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;
    let ids = fake.message_ids();
    let (bad, _) = ids
        .iter()
        .find(|(_, mid)| mid.as_str() == "msa-redline-2@acme.com")
        .expect("demo message");
    fake.set_faults(Faults {
        malformed_id: Some(bad.clone()),
        ..Faults::default()
    });
    let app = TestApp::new();
    let ctx = gmail_context(&app, config(&fake)).await;
    let out = scan(&ctx).await;
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(out["errors_total"], 1, "{out}");
    assert_eq!(out["errors"][0]["message_id"], bad.as_str(), "{out}");

    // The mailbox was not fully read, so the next scan lists it all (no history) and
    // fetches only the message that failed.
    fake.set_faults(Faults::default());
    fake.reset_calls();
    let out = scan(&ctx).await;
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(fake.calls("history.list"), 0);
    assert!(fake.calls("messages.list") >= 1);
    assert_eq!(fake.calls("messages.get"), 1);
    let got = keyed(&entries(&ctx).await, Some(&fake.message_ids()));
    assert_eq!(got, expected);
}

#[tokio::test]
async fn the_default_2026_profile_stays_under_the_newer_quota() {
    // 12 messages at 20 units each against 100 units/s: about two seconds of quota.
    let raws = (0..12)
        .map(|i| {
            raw(
                &format!("n{i}@globex.io"),
                "Hank Scorpio <hank@globex.io>",
                "alex@morganlegal.com",
                &["Inbox"],
                &format!("Note {i} on the Series B closing checklist."),
            )
        })
        .collect();
    let fake = FakeGmail::start(raws).await;
    fake.set_bucket(Some(Bucket::y2026()));
    let app = TestApp::new();
    let mut config =
        GmailConfig::new(GmailAuth::AccessToken(TOKEN.into())).with_base_url(&fake.url);
    assert_eq!(
        config.costs,
        QuotaCosts::for_profile(QuotaProfile::Y2026),
        "2026 is the default"
    );
    config.min_backoff = Duration::from_millis(20);
    let ctx = gmail_context(&app, config).await;
    let out = scan(&ctx).await;
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(out["examined"], 12, "{out}");
    assert_eq!(fake.quota_429s(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_fetched_several_at_a_time_but_never_more_than_the_bound() {
    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;
    fake.set_faults(Faults {
        latency: Duration::from_millis(40),
        ..Faults::default()
    });
    let app = TestApp::new();
    let mut config = config(&fake);
    config.concurrency = 4;
    let ctx = gmail_context(&app, config).await;
    let out = scan(&ctx).await;
    assert_eq!(out["examined"], DEMO_CANDIDATES, "{out}");
    let most = fake.max_in_flight();
    assert!(
        (2..=4).contains(&most),
        "bounded by 4, and parallel: {most}"
    );
}

/// A Google "installed app" client secret file whose endpoints are the fake's.
fn client_secret(app: &TestApp, token_url: &str) -> std::path::PathBuf {
    app.write(
        "client_secret.json",
        &json!({"installed": {
            "client_id": "billable-test.apps.googleusercontent.com",
            "client_secret": "not-so-secret",
            "auth_uri": format!("{token_url}/auth"),
            "token_uri": format!("{token_url}/token"),
            "redirect_uris": ["http://localhost"],
        }})
        .to_string(),
    )
}

async fn authorised(app: &TestApp, token_url: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let secret = client_secret(app, token_url);
    let token_file = app.dir.path().join("gmail-token.json");
    let browser = Browser {
        seen_url: Arc::new(std::sync::Mutex::new(String::new())),
    };
    billable::mail::gmail::auth::authorize(&secret, &token_file, Some(Box::new(browser)))
        .await
        .expect("authorised");
    (secret, token_file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refreshed_and_a_revoked_grant_asks_to_reauthorise_without_calling_gmail()
 {
    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;

    // Tokens that expire within the minute are refreshed before use.
    let (token_url, forms) = token_server(30, true).await;
    let app = TestApp::new();
    let (secret_file, token_file) = authorised(&app, &token_url).await;
    let mut cfg = config(&fake);
    cfg.auth = GmailAuth::Installed {
        secret_file,
        token_file,
    };
    let ctx = gmail_context(&app, cfg).await;
    let out = scan(&ctx).await;
    assert_eq!(out["status"], "completed", "{out}");
    assert!(
        forms
            .lock()
            .unwrap()
            .iter()
            .any(|f| f.contains("grant_type=refresh_token")),
        "the token was refreshed"
    );

    // The refresh is refused (revoked): one clear error, Gmail never called.
    let (token_url, _) = token_server(30, false).await;
    let app = TestApp::new();
    let (secret_file, token_file) = authorised(&app, &token_url).await;
    let mut cfg = config(&fake);
    cfg.auth = GmailAuth::Installed {
        secret_file,
        token_file,
    };
    let ctx = gmail_context(&app, cfg).await;
    fake.reset_calls();
    let err = call(&ctx, "scan_billable_time", json!({"background": false}))
        .await
        .expect_err("revoked");
    assert!(err.to_string().contains("billable auth gmail"), "{err}");
    assert_eq!(fake.calls("getProfile") + fake.calls("messages.list"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_grant_is_checked_sealed_used_by_scans_and_gone_when_revoked() {
    use billable::mail::gmail::Grants;
    use billable::mail::gmail::vault::TokenKey;
    let fake = FakeGmail::from_mbox(&fixture("demo.mbox")).await;
    let (token_url, forms) = token_server(3600, true).await;
    let app = TestApp::new();
    let key = Arc::new(TokenKey::parse("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").unwrap());
    let secret_file = client_secret(&app, &token_url);
    let mut cfg = config(&fake);
    // No credential of the server's own: only what the user stores can read Gmail.
    cfg.auth = GmailAuth::Installed {
        secret_file: secret_file.clone(),
        token_file: app.dir.path().join("nobody-authorised.json"),
    };
    cfg.grants = Some(Grants {
        key: key.clone(),
        secret_file,
    });
    let ctx = gmail_context(&app, cfg).await;
    let user = UserId::local();
    let token = "1//stored-refresh-token";

    let status = ctx.connect_gmail(&user, token).await.expect("connect");
    assert!(status.connected);
    assert_eq!(status.mailbox.as_deref(), Some(crate::fake_gmail::ADDRESS));
    let exchanged = |forms: &std::sync::Mutex<Vec<String>>| {
        forms
            .lock()
            .unwrap()
            .iter()
            .filter(|f| {
                f.contains("grant_type=refresh_token") && f.contains("stored-refresh-token")
            })
            .count()
    };
    assert_eq!(exchanged(&forms), 1, "checked with Google once");

    // Stored sealed: the file never holds the token, the status never shows it.
    let grant = ctx.store.gmail_grant(&user).await.unwrap().expect("stored");
    assert_eq!(key.open(user.as_str(), &grant.sealed).unwrap(), token);
    let file = std::fs::read(&app.db).unwrap();
    assert!(
        !file.windows(token.len()).any(|w| w == token.as_bytes()),
        "the database file holds the token"
    );
    let shown = serde_json::to_string(&ctx.gmail_grant_status(&user).await.unwrap()).unwrap();
    assert!(
        shown.contains("\"connected\":true") && !shown.contains("refresh"),
        "{shown}"
    );

    // A scan reads the mailbox with it.
    let out = scan(&ctx).await;
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(out["examined"], DEMO_CANDIDATES, "{out}");

    // Revoked: the next scan has no way in and says how to get one.
    assert!(!ctx.disconnect_gmail(&user).await.unwrap().connected);
    assert!(ctx.store.gmail_grant(&user).await.unwrap().is_none());
    let err = call(&ctx, "scan_billable_time", json!({"background": false}))
        .await
        .expect_err("no grant");
    assert!(
        err.to_string().contains("no Gmail authorisation stored"),
        "{err}"
    );

    // A token Google refuses is not stored.
    let (refusing, _) = token_server(3600, false).await;
    let app2 = TestApp::new();
    let secret_file = client_secret(&app2, &refusing);
    let mut cfg = config(&fake);
    cfg.grants = Some(Grants { key, secret_file });
    let ctx = gmail_context(&app2, cfg).await;
    let err = ctx
        .connect_gmail(&user, "1//revoked")
        .await
        .expect_err("refused");
    assert!(!err.to_string().contains("1//revoked"), "{err}");
    assert!(err.to_string().contains("PUT /v1/gmail/grant"), "{err}");
    assert!(ctx.store.gmail_grant(&user).await.unwrap().is_none());
    let err = ctx.connect_gmail(&user, "  ").await.expect_err("empty");
    assert_eq!(err.kind(), billable::error::ErrorKind::InvalidInput);
}
