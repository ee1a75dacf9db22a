//! The scale-out model end to end: two `billable serve` and three `billable worker`
//! processes over one Supabase (postrust, Postgres, pgmq), thirty users each with a
//! Gmail mailbox of their own (a fake per user behind one API root, reached with the
//! refresh token the user stored), the LLM a fake that records when each request
//! came. One scheduled run scans every mailbox; the shared limits keep each user's
//! Gmail quota, each user's request rate and the LLM's requests per minute across
//! all five processes together.

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use billable::analyze::llm::LlmAnalyzer;
use billable::config::LlmConfig;
use billable::context::Context;
use billable::domain::UserId;
use billable::mail::gmail::GmailHub;
use billable::store::sqlite::SqliteStore;
use serde_json::{Value, json};

use crate::fake_gmail::FakeGmailFirm;
use crate::fake_openai::{Behaviour, FakeOpenAi};
use crate::gmail::{config as gmail_config, keyed};
use crate::helpers::{TestApp, billable};
use crate::mbox_gen;
use crate::services::{self, SUPABASE};
use crate::workers::{self, Home, Workers};

const USERS: usize = 30;
/// The mailboxes' sizes, in messages; user n has `SIZES[n % SIZES.len()]`.
const SIZES: [usize; 4] = [20, 60, 120, 240];
const LLM_MODEL: &str = "fake-firm-model";
/// The LLM account's requests per minute, for all processes together.
const LLM_RPM: u32 = 1200;
const LLM_MAX_BATCH: usize = 4;
/// Each user's requests per second to the servers (a burst of twice that).
const USER_RPS: u32 = 20;
/// Gmail bodies a scan fetches at once (`GMAIL_CONCURRENCY`'s default).
const GMAIL_CONCURRENCY: u64 = 8;
const TOKEN_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn llm_config(fake: &FakeOpenAi) -> LlmConfig {
    LlmConfig {
        base_url: Some(fake.base_url.clone()),
        model: LLM_MODEL.to_owned(),
        max_batch: LLM_MAX_BATCH,
        ..LlmConfig::default()
    }
}

fn settings() -> Value {
    let mut settings: Value = serde_json::from_str(mbox_gen::SETTINGS).expect("settings");
    // Due an hour ago, and not again for 23 hours: the workers' own minutely look at
    // the schedules finds the slot this test queues, never a second one.
    let due = chrono::Utc::now() - chrono::Duration::hours(1);
    settings["timezone"] = json!("UTC");
    settings["schedule"] = json!(due.format("daily %H:%M").to_string());
    settings
}

/// Gmail's answer time in this test.
const GMAIL_LATENCY: Duration = Duration::from_millis(2);

/// What one process alone makes of a mailbox of `size`: the entries by Gmail id.
async fn reference(app: &TestApp, size: usize, llm: &FakeOpenAi) -> BTreeMap<String, Value> {
    let fake = FakeGmailFirm::mailbox(app.dir.path(), size, GMAIL_LATENCY).await;
    let dir = TestApp::new();
    let analyzer = LlmAnalyzer::new(&llm_config(llm)).expect("analyzer");
    let store = SqliteStore::open(&dir.db).expect("store");
    let mut gmail = gmail_config(&fake);
    gmail.costs =
        billable::mail::gmail::QuotaCosts::for_profile(billable::mail::gmail::QuotaProfile::Legacy);
    let ctx = Context::new(None, Arc::new(analyzer), Arc::new(store))
        .with_gmail(Arc::new(GmailHub::new(gmail)));
    let user = UserId::local();
    let mut settings = settings();
    settings["schedule"] = json!("");
    workers::call(
        &ctx,
        &user,
        "configure_time_tracking",
        json!({"settings": settings}),
    )
    .await;
    let out = workers::call(
        &ctx,
        &user,
        "scan_billable_time",
        json!({"background": false}),
    )
    .await;
    assert_eq!(out["status"], "completed", "{out}");
    let entries = workers::all_entries(&ctx, &user).await;
    assert!(!entries.is_empty(), "a mailbox of {size} makes entries");
    keyed(&entries, None)
}

/// What the servers and workers all read: the project, the firm's Gmail, the LLM.
fn deployment(
    command: &mut std::process::Command,
    database_url: &str,
    firm: &FakeGmailFirm,
    secret_file: &std::path::Path,
    llm: &FakeOpenAi,
) {
    command
        .env("DATABASE_URL", database_url)
        .env("SUPABASE_REST_URL", services::postgrest_url())
        .env("SUPABASE_ANON_KEY", "test-anon-key")
        .env("SUPABASE_JWT_SECRET", services::jwt_secret())
        .env("GMAIL_API_BASE_URL", &firm.url)
        .env("GMAIL_CLIENT_SECRET_FILE", secret_file)
        .env(
            "GMAIL_TOKEN_FILE",
            "/nonexistent/no-token-of-the-servers-own.json",
        )
        .env("BILLABLE_TOKEN_KEY", TOKEN_KEY)
        .env("GMAIL_QUOTA_PROFILE", "legacy")
        .env("OPENAI_BASE_URL", &llm.base_url)
        .env("OPENAI_MODEL", LLM_MODEL)
        .env("LLM_RPM", LLM_RPM.to_string())
        .env("LLM_MAX_BATCH", LLM_MAX_BATCH.to_string())
        .env("BILLABLE_USER_RPS", USER_RPS.to_string())
        .env("RUST_LOG", "billable=info")
        .stdout(Stdio::null());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts `billable serve` and waits until it answers; its root URL.
async fn serve(home: &Home, configure: impl FnOnce(&mut std::process::Command)) -> (Child, String) {
    let port = free_port();
    let mut command = billable(home.path());
    command
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stderr(home.log("serve"));
    configure(&mut command);
    // Killed if it never answers.
    let mut started = Workers(vec![command.spawn().expect("start billable serve")]);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(format!("{base}/healthz")).send().await.is_ok()
            && let Some(child) = started.0.pop()
        {
            return (child, base);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("billable serve on {port} never answered");
}

/// A tool call over HTTP as `user`; the status and the answer.
async fn http(base: &str, user: &UserId, name: &str, args: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/tools/{name}"))
        .bearer_auth(user.token().unwrap_or_default())
        .json(&args)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn ok(base: &str, user: &UserId, name: &str, args: Value) -> Value {
    let (status, out) = http(base, user, name, args).await;
    assert_eq!(status, 200, "{name} through {base}: {out}");
    out
}

async fn entries_through(base: &str, user: &UserId) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        let page = ok(
            base,
            user,
            "list_time_entries",
            json!({"limit": 500, "offset": all.len()}),
        )
        .await;
        let page = page["entries"].as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_users_on_two_servers_and_three_workers_get_one_processs_entries_within_every_limit()
{
    if SUPABASE.skipped() {
        return;
    }
    let (_turn, owner, worker_url, app) = workers::setup().await;
    let reference_llm = FakeOpenAi::start(Behaviour::default()).await;
    let mut references = Vec::new();
    for size in SIZES {
        references.push(reference(&app, size, &reference_llm).await);
    }

    let mut mailboxes = Vec::new();
    for n in 0..USERS {
        let size = SIZES[n % SIZES.len()];
        mailboxes.push(FakeGmailFirm::mailbox(app.dir.path(), size, GMAIL_LATENCY).await);
    }
    let firm = FakeGmailFirm::start(mailboxes).await;
    let llm = FakeOpenAi::start(Behaviour {
        latency: Duration::from_millis(20),
        ..Behaviour::default()
    })
    .await;
    let secret_file = firm.client_secret(app.dir.path());
    let home = Home::new();
    let with_deployment = |c: &mut std::process::Command| {
        deployment(c, &worker_url, &firm, &secret_file, &llm);
    };
    let (a, base_a) = serve(&home, with_deployment).await;
    let (b, base_b) = serve(&home, with_deployment).await;
    let _servers = Workers(vec![a, b]);
    let bases = [base_a.as_str(), base_b.as_str()];

    // Each user stores their Gmail grant and a morning schedule, through either server.
    let users: Vec<UserId> = (0..USERS).map(|_| services::signed_in_user()).collect();
    for (n, user) in users.iter().enumerate() {
        let base = bases[n % 2];
        let r = reqwest::Client::new()
            .put(format!("{base}/v1/gmail/grant"))
            .bearer_auth(user.token().unwrap_or_default())
            .json(&json!({"refresh_token": FakeGmailFirm::refresh_token(n)}))
            .send()
            .await
            .expect("PUT grant");
        assert_eq!(
            r.status().as_u16(),
            200,
            "{}",
            r.text().await.unwrap_or_default()
        );
        ok(
            bases[(n + 1) % 2],
            user,
            "configure_time_tracking",
            json!({"settings": settings()}),
        )
        .await;
    }

    let workers = Workers(
        (0..3)
            .map(|_| {
                let mut command = billable(home.path());
                command
                    .args(["worker", "--lease-secs", "5"])
                    .stderr(home.log("worker"));
                with_deployment(&mut command);
                command.spawn().expect("start a worker")
            })
            .collect(),
    );

    // The firm's morning: every user's scheduled scan is queued once.
    let started = Instant::now();
    let mut run_now = billable(home.path());
    run_now.args(["schedule", "run-now"]);
    with_deployment(&mut run_now);
    let out = run_now.output().expect("schedule run-now");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jobs: BTreeMap<String, String> = owner
        .query(
            "select user_id::text, id::text from public.scan_jobs where scheduled_for is not null",
            &[],
        )
        .await
        .expect("jobs")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .filter(|(user, _): &(String, String)| users.iter().any(|u| u.as_str() == user))
        .collect();
    assert_eq!(jobs.len(), USERS, "one scheduled job per user");

    let mut quota_bound = Duration::ZERO;
    for (n, user) in users.iter().enumerate() {
        let id = &jobs[user.as_str()];
        let status = loop {
            let status = ok(
                bases[n % 2],
                user,
                "get_scan_status",
                json!({"job_id": id, "wait_seconds": 5}),
            )
            .await;
            if status["state"] != "queued" && status["state"] != "running" {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "user {n}'s scan still {}",
                status["state"]
            );
        };
        assert_eq!(status["state"], "completed", "user {n}: {status}");
        let expected = &references[n % SIZES.len()];
        let entries = keyed(&entries_through(bases[(n + 1) % 2], user).await, None);
        assert_eq!(&entries, expected, "user {n}'s entries");
        workers::assert_one_scan_at_a_time(&owner, user.as_str()).await;
        let mailbox = &firm.mailboxes[n];
        assert_eq!(
            mailbox.quota_429s(),
            0,
            "user {n}'s Gmail quota was exceeded"
        );
        assert!(
            mailbox.max_in_flight() <= GMAIL_CONCURRENCY,
            "user {n}: {} Gmail requests at once: two scans overlapped",
            mailbox.max_in_flight()
        );
        let units = 5 * SIZES[n % SIZES.len()] as u32;
        quota_bound = quota_bound.max(Duration::from_secs_f64(f64::from(units) / 250.0));
    }
    let all_done = started.elapsed();
    eprintln!(
        "{USERS} users scanned in {all_done:?}; the largest mailbox alone needs {quota_bound:?} of quota; \
         {} LLM requests",
        llm.requests()
    );
    let spread: std::collections::BTreeSet<String> = owner
        .query(
            "select distinct worker from public.scan_jobs where scheduled_for is not null",
            &[],
        )
        .await
        .expect("workers")
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Each worker ran several users' scans at once, not one after another.
    let side_by_side: i64 = owner
        .query_one(
            "select count(*) from public.scan_jobs a join public.scan_jobs b \
               on b.worker = a.worker and b.user_id <> a.user_id \
              and a.started_at < b.finished_at and b.started_at < a.finished_at \
             where a.scheduled_for is not null and b.scheduled_for is not null",
            &[],
        )
        .await
        .expect("overlaps")
        .get(0);
    assert!(side_by_side > 0, "no worker ran two scans at once");
    assert!(
        spread.len() >= 2,
        "the jobs spread over the workers: {spread:?}"
    );

    // The LLM account's rate held for all processes together: in any window, at most
    // a burst (a second's worth) plus the window's share. Unshared, three workers
    // would each have been let through that much.
    let per_second = f64::from(LLM_RPM) / 60.0;
    for window in [1.0, 3.0] {
        let most = llm.most_within(Duration::from_secs_f64(window));
        // A quarter second's more for requests a loaded machine sent late and bunched.
        let allowed = (per_second * (1.0 + window + 0.25)) as usize + 2;
        assert!(
            most <= allowed,
            "{most} LLM requests within {window} s; the limit allows {allowed}"
        );
    }

    // A summary read through one server right after a write through the other is
    // fresh.
    let user = &users[3];
    let by_status = json!({"group_by": "status"});
    ok(
        &base_a,
        user,
        "get_time_tracking_summary",
        by_status.clone(),
    )
    .await;
    let entries = entries_through(&base_b, user).await;
    let id = entries[0]["id"].as_str().expect("id").to_owned();
    ok(
        &base_b,
        user,
        "update_time_entries",
        json!({"ids": [id], "changes": {"status": "approved"}}),
    )
    .await;
    let after = ok(&base_a, user, "get_time_tracking_summary", by_status).await;
    let approved = after["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| g["key"] == "approved")
        .map(|g| g["entries"].clone());
    assert_eq!(approved, Some(json!(1)), "{after}");

    // One user's request rate holds across both servers: a burst at both at once
    // gets through about one burst's worth, not two.
    let user = &users[5];
    let burst_started = Instant::now();
    let calls = (0..120).map(|i| {
        let base = bases[i % 2];
        async move { http(base, user, "list_scans", json!({})).await.0 }
    });
    let statuses = futures::future::join_all(calls).await;
    let took = burst_started.elapsed().as_secs_f64();
    let served = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    let allowed = (2.0 * f64::from(USER_RPS) + f64::from(USER_RPS) * took) as usize + 2;
    assert!(
        served <= allowed && served + limited == statuses.len(),
        "{served} of {} served ({limited} limited) in {took:.2} s; one user's limit allows {allowed}",
        statuses.len()
    );
    drop(workers);
}
