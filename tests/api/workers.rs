//! Background scans on Supabase: real `billable worker` processes take jobs from the
//! pgmq queue in Postgres and scan through the fake Gmail as each job's user, with a
//! JWT they mint, through postrust under row-level security. Several users' scans
//! spread over several workers give the entries a single-process scan gives; a
//! worker killed with SIGKILL mid-job is replaced within the lease and the entries
//! are exact; a user never sees another's jobs, and the workers' database role
//! cannot read anyone's entries.

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use billable::analyze::rules::RulesAnalyzer;
use billable::context::Context;
use billable::domain::UserId;
use billable::mail::gmail::GmailHub;
use billable::tools::{self, NoProgress};
use serde_json::{Value, json};
use tokio_postgres::Client;

use crate::fake_gmail::{FakeGmail, Faults, TOKEN};
use crate::gmail::{config, keyed};
use crate::helpers::{TestApp, billable};
use crate::mbox_gen;
use crate::services::{self, SUPABASE};

/// Seconds a killed worker's job waits before another worker takes it.
const LEASE_SECS: u64 = 3;

/// The run's database has one queue, and any worker takes any job from it: these
/// tests take turns, so each one's workers see only its own jobs.
static QUEUE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The run's database as the workers' role (given LOGIN here: the migration creates
/// it without, as a project would until it sets a password).
async fn worker_database_url(owner: &Client) -> String {
    // Roles are the cluster's: one test at a time changes it.
    static LOGIN: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    LOGIN
        .get_or_init(|| async {
            owner
                .batch_execute("alter role billable_worker login")
                .await
                .expect("let billable_worker log in");
        })
        .await;
    let url = services::database_url();
    let config = tokio_postgres::Config::from_str(&url).expect("DATABASE_URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("postgres");
    format!("postgres://billable_worker@{host}:{port}/{db}")
}

/// This test's turn at the queue, the owner's connection, the workers' database URL
/// and a folder for the mailbox.
pub(crate) async fn setup() -> (
    tokio::sync::MutexGuard<'static, ()>,
    Client,
    String,
    TestApp,
) {
    let turn = QUEUE.lock().await;
    let owner = services::connect(&services::database_url()).await;
    let url = worker_database_url(&owner).await;
    (turn, owner, url, TestApp::new())
}

/// A generated mailbox served by the fake Gmail, and its settings.
async fn mailbox(app: &TestApp, messages: usize) -> (FakeGmail, Value) {
    let path = app.dir.path().join("generated.mbox");
    let mut file = std::fs::File::create(&path).expect("mbox");
    mbox_gen::write_mbox(&mut file, messages).expect("write mbox");
    drop(file);
    let settings: Value = serde_json::from_str(mbox_gen::SETTINGS).expect("settings");
    (FakeGmail::from_mbox(&path).await, settings)
}

/// What one scan in this process makes of the fake's mailbox (within `window`, the
/// scan's `after`/`before` arguments), by Gmail id.
async fn reference(fake: &FakeGmail, settings: &Value, window: &Value) -> BTreeMap<String, Value> {
    let app = TestApp::new();
    let ctx = app
        .context(None)
        .with_gmail(Arc::new(GmailHub::new(config(fake))));
    call(
        &ctx,
        &UserId::local(),
        "configure_time_tracking",
        json!({"settings": settings}),
    )
    .await;
    let mut args = window.clone();
    args["background"] = json!(false);
    let out = call(&ctx, &UserId::local(), "scan_billable_time", args).await;
    assert_eq!(out["status"], "completed");
    keyed(&all_entries(&ctx, &UserId::local()).await, None)
}

pub(crate) async fn call(ctx: &Context, user: &UserId, name: &str, args: Value) -> Value {
    tools::call(ctx, user, name, args, &NoProgress)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub(crate) async fn all_entries(ctx: &Context, user: &UserId) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        let page = call(
            ctx,
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

/// The users' side: the Supabase store through postrust, as each user.
fn user_context() -> Context {
    Context::new(
        None,
        Arc::new(RulesAnalyzer),
        Arc::new(services::supabase_store()),
    )
}

/// A `billable worker` process reading `fake`'s Gmail.
fn spawn_worker(home: &Home, fake: &FakeGmail, database_url: &str, units_per_sec: u32) -> Child {
    billable(home.path())
        .args(["worker", "--lease-secs", &LEASE_SECS.to_string()])
        .env("DATABASE_URL", database_url)
        .env("SUPABASE_REST_URL", services::postgrest_url())
        .env("SUPABASE_ANON_KEY", "test-anon-key")
        .env("SUPABASE_JWT_SECRET", services::jwt_secret())
        .env("GMAIL_API_BASE_URL", &fake.url)
        .env("GMAIL_ACCESS_TOKEN", TOKEN)
        .env("GMAIL_QUOTA_UNITS_PER_SEC", units_per_sec.to_string())
        .env("RUST_LOG", "billable=info")
        .stdout(Stdio::null())
        .stderr(home.log("worker"))
        .spawn()
        .expect("start a worker")
}

/// The processes' home, with their logs: kept, and named on stderr, when the test fails.
pub(crate) struct Home(Option<tempfile::TempDir>);

impl Home {
    pub(crate) fn new() -> Self {
        Home(Some(tempfile::tempdir().expect("home")))
    }

    /// A new log file named after `what`, for a process's stderr.
    pub(crate) fn log(&self, what: &str) -> Stdio {
        tempfile::Builder::new()
            .prefix(&format!("{what}-"))
            .suffix(".log")
            .tempfile_in(self.path())
            .and_then(|f| f.keep().map_err(|e| e.error))
            .map(|(file, _)| Stdio::from(file))
            .unwrap_or_else(|_| Stdio::null())
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        self.0
            .as_ref()
            .map_or(std::path::Path::new("/nonexistent"), |d| d.path())
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.0.take()
        {
            eprintln!("the workers' logs are in {}", dir.keep().display());
        }
    }
}

/// Child processes, killed when dropped.
pub(crate) struct Workers(pub(crate) Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits for `user`'s job to end, up to `limit`.
async fn ended(ctx: &Context, user: &UserId, id: &str, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        let status = call(
            ctx,
            user,
            "get_scan_status",
            json!({"job_id": id, "wait_seconds": 5}),
        )
        .await;
        if status["state"] != "queued" && status["state"] != "running" {
            return status;
        }
        assert!(
            started.elapsed() < limit,
            "job {id} still {} after {limit:?}",
            status["state"]
        );
    }
}

/// The job's row as the database holds it (the owner's view).
async fn job_row(owner: &Client, id: &str) -> (String, i32, Option<String>) {
    let row = owner
        .query_one(
            "select state, attempts, worker from public.scan_jobs where id = $1::text::uuid",
            &[&id],
        )
        .await
        .expect("job row");
    (row.get(0), row.get(1), row.get(2))
}

async fn saved_entries(owner: &Client, user: &str) -> i64 {
    owner
        .query_one(
            "select count(*) from public.time_entries where user_id = $1::text::uuid",
            &[&user],
        )
        .await
        .expect("count")
        .get(0)
}

/// No two scans of one user ran at once: each of the user's scan records ended
/// before the next began (a killed worker's record never ends).
pub(crate) async fn assert_one_scan_at_a_time(owner: &Client, user: &str) {
    let overlaps: i64 = owner
        .query_one(
            "select count(*) from public.scans a join public.scans b \
               on b.user_id = a.user_id and b.id <> a.id and a.started_at <= b.started_at \
             where a.user_id = $1::text::uuid and a.finished_at > b.started_at",
            &[&user],
        )
        .await
        .expect("scans")
        .get(0);
    assert_eq!(overlaps, 0, "user {user}: two scans overlapped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_workers_scan_many_users_each_as_that_user_with_the_entries_of_one_process() {
    if SUPABASE.skipped() {
        return;
    }
    let (_turn, owner, url, app) = setup().await;
    // Three days of mail, 400 messages a day.
    let (fake, settings) = mailbox(&app, 1200).await;
    fake.set_faults(Faults {
        latency: Duration::from_millis(2),
        ..Faults::default()
    });
    // Mailboxes of different sizes: each user scans a window of one, two or three days.
    let windows = [
        json!({"before": "2026-11-02"}),
        json!({"before": "2026-11-03"}),
        json!({"after": "2026-11-02"}),
        json!({}),
    ];
    let mut references = Vec::new();
    for window in &windows {
        references.push(reference(&fake, &settings, window).await);
    }
    let sizes: Vec<usize> = (0..8).map(|i| i % windows.len()).collect();
    let expected: Vec<&BTreeMap<String, Value>> = sizes.iter().map(|&w| &references[w]).collect();

    let ctx = user_context();
    let users: Vec<UserId> = sizes.iter().map(|_| services::signed_in_user()).collect();
    for user in &users {
        call(
            &ctx,
            user,
            "configure_time_tracking",
            json!({"settings": settings}),
        )
        .await;
    }
    let home = Home::new();
    let workers = Workers(
        (0..3)
            .map(|_| spawn_worker(&home, &fake, &url, 100_000))
            .collect(),
    );
    let mut jobs = Vec::new();
    for (user, &window) in users.iter().zip(&sizes) {
        let mut args = windows[window].clone();
        args["background"] = json!(true);
        let job = call(&ctx, user, "scan_billable_time", args).await;
        assert_eq!(job["state"], "queued", "{job}");
        jobs.push(job["job_id"].as_str().expect("job_id").to_owned());
    }
    let mut by_worker = BTreeMap::<String, usize>::new();
    for ((user, id), expected) in users.iter().zip(&jobs).zip(&expected) {
        let status = ended(&ctx, user, id, Duration::from_secs(120)).await;
        assert_eq!(
            status["state"], "completed",
            "{} {}",
            status["state"], status["error"]
        );
        assert_eq!(status["attempts"], 1);
        let entries = keyed(&all_entries(&ctx, user).await, None);
        assert_eq!(&entries, *expected, "user {}'s entries", user.as_str());
        assert_one_scan_at_a_time(&owner, user.as_str()).await;
        let (_, _, worker) = job_row(&owner, id).await;
        *by_worker.entry(worker.unwrap_or_default()).or_default() += 1;
        // Another user sees nothing of it.
        let other = &users[(users.iter().position(|u| u == user).unwrap_or(0) + 1) % users.len()];
        let err = tools::call(
            &ctx,
            other,
            "get_scan_status",
            json!({"job_id": id}),
            &NoProgress,
        )
        .await
        .expect_err("another user's job");
        assert_eq!(err.kind(), billable::error::ErrorKind::NotFound, "{err}");
        let err = tools::call(
            &ctx,
            other,
            "cancel_scan",
            json!({"job_id": id}),
            &NoProgress,
        )
        .await
        .expect_err("another user's job");
        assert_eq!(err.kind(), billable::error::ErrorKind::NotFound, "{err}");
    }
    assert!(
        by_worker.len() >= 2,
        "the jobs spread over the workers: {by_worker:?}"
    );
    // Each worker's peak memory (VmHWM) after its share of the scans.
    for child in &workers.0 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
        let peak_kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        eprintln!("worker {}: peak RSS {} MB", child.id(), peak_kb / 1024);
        assert!(
            peak_kb > 0 && peak_kb < 150 * 1024,
            "worker peak RSS {peak_kb} kB"
        );
    }

    // The workers' role reaches the queue but no user's data.
    let worker = services::connect(&url).await;
    for table in [
        "time_entries",
        "processed_messages",
        "tracking_settings",
        "scans",
    ] {
        let err = worker
            .query(&format!("select * from public.{table} limit 1"), &[])
            .await
            .expect_err("billable_worker reads no user data");
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{table}: {err}"
        );
    }
    // Nor may a user write the queue's state directly.
    let user = &users[0];
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rest = reqwest::Client::new()
        .patch(format!(
            "{}/scan_jobs?id=eq.{}",
            services::postgrest_url(),
            jobs[0]
        ))
        .bearer_auth(user.token().unwrap_or_default())
        .header("apikey", "test-anon-key")
        .json(&json!({"state": "queued"}))
        .send()
        .await
        .expect("PATCH");
    assert!(rest.status().is_client_error(), "{}", rest.status());
    let (state, _, _) = job_row(&owner, &jobs[0]).await;
    assert_eq!(state, "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_job_twice_is_replaced_within_the_lease_and_the_entries_are_exact() {
    if SUPABASE.skipped() {
        return;
    }
    let (_turn, owner, url, app) = setup().await;
    let (fake, settings) = mailbox(&app, 700).await;
    let expected = reference(&fake, &settings, &json!({})).await;

    let ctx = user_context();
    let user = services::signed_in_user();
    call(
        &ctx,
        &user,
        "configure_time_tracking",
        json!({"settings": settings}),
    )
    .await;
    let home = Home::new();
    // The legacy quota, 250 units a second and 5 a message: 50 messages a second, so
    // each 256-message chunk takes about 5 s to read.
    let mut workers = Workers(
        (0..3)
            .map(|_| spawn_worker(&home, &fake, &url, 250))
            .collect(),
    );
    let job = call(
        &ctx,
        &user,
        "scan_billable_time",
        json!({"background": true}),
    )
    .await;
    let id = job["job_id"].as_str().expect("job_id").to_owned();

    let mut killed = Vec::new();
    for attempt in 1..=2 {
        // The job is running in attempt `attempt`, and has saved some of its work.
        let deadline = Instant::now() + Duration::from_secs(60);
        let holder = loop {
            let (state, attempts, worker) = job_row(&owner, &id).await;
            assert!(
                state == "running" || state == "queued",
                "ended early: {state}"
            );
            if state == "running" && attempts == attempt {
                break worker.unwrap_or_default();
            }
            assert!(Instant::now() < deadline, "attempt {attempt} never started");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // Killed once this attempt saved a chunk of its own.
        let before = saved_entries(&owner, user.as_str()).await;
        while saved_entries(&owner, user.as_str()).await == before {
            assert!(Instant::now() < deadline, "attempt {attempt} saved nothing");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let pid: u32 = holder
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("worker id {holder}"));
        let child = workers
            .0
            .iter_mut()
            .find(|c| c.id() == pid)
            .unwrap_or_else(|| panic!("no worker with pid {pid}"));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let at = Instant::now();
        killed.push(pid);
        // Another worker resumes it once the lease ran out.
        loop {
            let (state, attempts, worker) = job_row(&owner, &id).await;
            if attempts == attempt + 1 && state == "running" {
                let resumed = at.elapsed();
                assert!(
                    resumed < Duration::from_secs(LEASE_SECS + 3),
                    "resumed after {resumed:?}, lease {LEASE_SECS} s"
                );
                assert!(!killed.iter().any(|k| {
                    worker
                        .as_deref()
                        .is_some_and(|w| w.ends_with(&format!(":{k}")))
                }));
                break;
            }
            assert!(
                at.elapsed() < Duration::from_secs(30),
                "never resumed: {state} {attempts}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let status = ended(&ctx, &user, &id, Duration::from_secs(120)).await;
    assert_eq!(
        status["state"], "completed",
        "{} {}",
        status["state"], status["error"]
    );
    assert_eq!(status["attempts"], 3);
    // None lost, none twice: the entries of an uninterrupted scan.
    let entries = all_entries(&ctx, &user).await;
    assert_eq!(keyed(&entries, None), expected);
    // The progress reached the whole mailbox once, not once per attempt.
    assert_eq!(status["progress"]["examined"], status["result"]["examined"]);
    assert_one_scan_at_a_time(&owner, user.as_str()).await;
}
