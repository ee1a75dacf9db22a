//! Background scans scaled out: 30 users, each with a Gmail mailbox of their own at
//! the legacy quota (the fake answers 429 past 250 units/s per user, 20 ms a request),
//! scanned by two real `billable worker` processes on Supabase (postrust, Postgres,
//! pgmq; each user's stored grant; the rules analyzer, so the quota is what binds).
//! Side by side in one run: the largest mailbox scanned alone, then all 30 at once.
//! Printed: both times, their ratio (target at most 1.2: the users run in parallel,
//! each at their own quota, not one after another), the quota-bound time of the
//! largest mailbox (the units it took ÷ 250/s), the 429s the fakes answered (none),
//! and each worker's peak RSS (target under 150 MB). Criterion then times one charge
//! of a shared rate bucket (`take_rate`), which every Gmail request makes.
//!
//! Needs the test script's services: `bash -c 'source scripts/test-services.sh &&
//! cargo bench --bench scale_out'`. Run once as a test (`cargo test --all-targets`),
//! the mailboxes are a tenth of the size.

#[path = "support/mbox_gen.rs"]
mod mbox_gen;

#[path = "../tests/api/fake_gmail.rs"]
mod fake_gmail;

#[path = "../tests/api/gmail_query.rs"]
mod gmail_query;

use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use billable::analyze::rules::RulesAnalyzer;
use billable::context::Context;
use billable::domain::UserId;
use billable::limits::{PgRates, Rate, SharedRates};
use billable::mail::gmail::vault::TokenKey;
use billable::store::supabase::SupabaseStore;
use billable::tools::{self, NoProgress};
use criterion::{Criterion, criterion_group, criterion_main};
use fake_gmail::{Bucket, FakeGmail, FakeGmailFirm};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

const USERS: usize = 30;
const TOKEN_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// Gmail's legacy quota per user.
const UNITS_PER_SEC: f64 = 250.0;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The mailboxes' sizes; user n has `sizes()[n % 4]`.
fn sizes() -> [usize; 4] {
    if measuring() {
        [150, 300, 450, 600]
    } else {
        [15, 30, 45, 60]
    }
}

struct Services {
    database_url: String,
    rest_url: String,
    jwt_secret: String,
}

fn services() -> Option<Services> {
    Some(Services {
        database_url: var("BILLABLE_TEST_DATABASE_URL")?,
        rest_url: var("BILLABLE_TEST_POSTGREST_URL")?,
        jwt_secret: var("BILLABLE_TEST_JWT_SECRET")?,
    })
}

fn signed_in(secret: &str) -> UserId {
    let id = uuid::Uuid::new_v4().to_string();
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"sub": id, "role": "authenticated", "aud": "authenticated",
                        "iat": now, "exp": now + 3600});
    let token = jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("token");
    UserId::new(id).with_token(token)
}

/// The run's database as `billable_worker`, given LOGIN (the migration creates it
/// without).
async fn worker_url(owner_url: &str) -> String {
    let owner = billable::migrate::connect(owner_url).await.expect("owner");
    owner
        .batch_execute("alter role billable_worker login")
        .await
        .expect("let billable_worker log in");
    let config = tokio_postgres::Config::from_str(owner_url).expect("url");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("postgres");
    format!("postgres://billable_worker@{host}:{port}/{db}")
}

/// Units a mailbox's fake was asked for, at legacy costs.
fn units(fake: &FakeGmail) -> f64 {
    let b = Bucket::legacy();
    fake.calls("messages.get") as f64 * b.get
        + fake.calls("messages.list") as f64 * b.list
        + fake.calls("history.list") as f64 * b.history
        + fake.calls("getProfile") as f64 * b.profile
}

struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn peak_rss_mb(child: &Child) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

/// Waits for each of `jobs` (user, job id) to complete.
async fn wait_all(ctx: &Context, jobs: &[(&UserId, String)], started: Instant) -> Duration {
    for (user, id) in jobs {
        loop {
            let status: Value = tools::call(
                ctx,
                user,
                "get_scan_status",
                json!({"job_id": id, "wait_seconds": 1}),
                &NoProgress,
            )
            .await
            .expect("status");
            match status["state"].as_str() {
                Some("queued" | "running") => {}
                Some("completed") => break,
                _ => panic!("scan ended {status}"),
            }
            assert!(started.elapsed() < Duration::from_secs(600), "{status}");
        }
    }
    started.elapsed()
}

/// The largest mailbox's user alone: one background scan, queued and waited for.
async fn scan_alone(ctx: &Context, user: &UserId) -> Duration {
    let started = Instant::now();
    let job = tools::call(
        ctx,
        user,
        "scan_billable_time",
        json!({"background": true}),
        &NoProgress,
    )
    .await
    .expect("queued");
    let id = job["job_id"].as_str().expect("job_id").to_owned();
    wait_all(ctx, &[(user, id)], started).await
}

/// The firm's morning: each of `users` gets a morning scan due an hour ago and all
/// are queued at once (as the workers' minutely look and `billable schedule run-now`
/// queue them, one job per user and slot whoever asks), then waited for.
async fn scan_scheduled(
    ctx: &Context,
    users: &[UserId],
    settings: &Value,
    worker_url: &str,
) -> Duration {
    use billable::jobs::Queue;
    let due = chrono::Utc::now() - chrono::Duration::hours(1);
    let mut settings = settings.clone();
    settings["schedule"] = json!(due.format("daily %H:%M").to_string());
    for user in users {
        configure(ctx, user, &settings).await;
    }
    let started = Instant::now();
    billable::jobs::postgres::PgQueue::new(worker_url)
        .enqueue_due(chrono::Utc::now())
        .await
        .expect("queue the scheduled scans");
    let mut jobs = Vec::new();
    for user in users {
        let scans = tools::call(ctx, user, "list_scans", json!({"limit": 1}), &NoProgress)
            .await
            .expect("list_scans");
        let id = scans["scans"][0]["job_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no scheduled scan queued: {scans}"))
            .to_owned();
        jobs.push((user, id));
    }
    wait_all(ctx, &jobs, started).await
}

async fn configure(ctx: &Context, user: &UserId, settings: &Value) {
    tools::call(
        ctx,
        user,
        "configure_time_tracking",
        json!({"settings": settings}),
        &NoProgress,
    )
    .await
    .expect("settings");
}

fn scale_out(c: &mut Criterion) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(svc) = services() else {
        if measuring() || var("BILLABLE_TEST_SERVICES").as_deref() == Some("1") {
            panic!(
                "BILLABLE_TEST_DATABASE_URL, BILLABLE_TEST_POSTGREST_URL and \
                 BILLABLE_TEST_JWT_SECRET are not set: run this benchmark with the test \
                 script's services (bash -c 'source scripts/test-services.sh && cargo bench \
                 --bench scale_out')"
            );
        }
        eprintln!("skipping: Postgres and postrust are not running");
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let worker_url = rt.block_on(worker_url(&svc.database_url));
    let sizes = sizes();

    // Mailbox 0 is the largest size, scanned alone first; user n has mailbox n.
    let (firm, users) = rt.block_on(async {
        let mut boxes = Vec::new();
        for n in 0..=USERS {
            let size = if n == 0 { sizes[3] } else { sizes[(n - 1) % 4] };
            boxes.push(FakeGmailFirm::mailbox(dir.path(), size, Duration::from_millis(20)).await);
        }
        let firm = FakeGmailFirm::start(boxes).await;
        let users: Vec<UserId> = (0..=USERS).map(|_| signed_in(&svc.jwt_secret)).collect();
        (firm, users)
    });
    let store = Arc::new(SupabaseStore::new(&svc.rest_url, Some("bench-anon-key")).expect("store"));
    let ctx = Context::new(None, Arc::new(RulesAnalyzer), store.clone());
    let key = TokenKey::parse(TOKEN_KEY).expect("key");
    let mut settings: Value = serde_json::from_str(mbox_gen::SETTINGS).expect("settings");
    settings["timezone"] = json!("UTC");
    rt.block_on(async {
        for (n, user) in users.iter().enumerate() {
            configure(&ctx, user, &settings).await;
            let sealed = key.seal(user.as_str(), &FakeGmailFirm::refresh_token(n));
            billable::store::Store::save_gmail_grant(store.as_ref(), user, &sealed)
                .await
                .expect("grant");
        }
    });
    let secret_file = firm.client_secret(dir.path());
    let workers = Workers(
        (0..2)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_billable"))
                    .env_clear()
                    .env("PATH", std::env::var("PATH").unwrap_or_default())
                    .env("HOME", dir.path())
                    .args(["worker", "--jobs", "16"])
                    .env("RUST_LOG", "billable=warn")
                    .env("DATABASE_URL", &worker_url)
                    .env("SUPABASE_REST_URL", &svc.rest_url)
                    .env("SUPABASE_ANON_KEY", "bench-anon-key")
                    .env("SUPABASE_JWT_SECRET", &svc.jwt_secret)
                    .env("GMAIL_API_BASE_URL", &firm.url)
                    .env("GMAIL_CLIENT_SECRET_FILE", &secret_file)
                    .env("GMAIL_TOKEN_FILE", dir.path().join("none.json"))
                    .env("BILLABLE_TOKEN_KEY", TOKEN_KEY)
                    .env("GMAIL_QUOTA_PROFILE", "legacy")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start a worker")
            })
            .collect(),
    );

    let alone = rt.block_on(scan_alone(&ctx, &users[0]));
    let largest_units = units(&firm.mailboxes[0]);
    let together = rt.block_on(scan_scheduled(&ctx, &users[1..], &settings, &worker_url));
    let quota_429s: u64 = firm.mailboxes.iter().map(|m| m.quota_429s()).sum();
    let ratio = together.as_secs_f64() / alone.as_secs_f64();
    eprintln!(
        "the largest mailbox ({} messages) alone: {:.2} s (its quota-bound time {:.2} s); \
         {USERS} users at once, largest {} messages: {:.2} s; ratio {ratio:.2} (target <= 1.2); \
         quota 429s at the fakes: {quota_429s}",
        sizes[3],
        alone.as_secs_f64(),
        largest_units / UNITS_PER_SEC,
        sizes[3],
        together.as_secs_f64(),
    );
    for child in &workers.0 {
        eprintln!(
            "worker {}: peak RSS {} MB (target < 150 MB)",
            child.id(),
            peak_rss_mb(child)
        );
    }
    drop(workers);

    let rates = PgRates::new(worker_url);
    let rate = Rate::per_second(1_000_000, 1_000_000).expect("rate");
    c.bench_function("shared_rate_bucket_charge", |b| {
        b.iter(|| {
            rt.block_on(rates.take("bench:charge", 1, rate, true))
                .expect("charged")
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = scale_out
}
criterion_main!(benches);
