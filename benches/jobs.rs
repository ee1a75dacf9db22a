//! A background scan's answer time: `POST /v1/tools/scan_billable_time` with
//! `{"background": true}` over loopback HTTP to the real server, one request at a
//! time, p50 and p99 printed (target p99 under 200 ms). Each queued job is cancelled
//! right after (not timed), so the user's waiting jobs stay under the limit.
//!
//! Two stores in one run: the embedded SQLite file, and Supabase (postrust over
//! Postgres, the job queued by the `enqueue_scan` function into pgmq) when the test
//! script's services are there (`bash -c 'source scripts/test-services.sh && cargo
//! bench --bench jobs'`). Criterion then times the SQLite enqueue in process.
//! `BENCH_ENQUEUES` (default 300) sets the number of timed requests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use billable::analyze::rules::RulesAnalyzer;
use billable::config::{Secret, ServerConfig};
use billable::context::Context;
use billable::domain::UserId;
use billable::http::{self, Auth};
use billable::store::sqlite::SqliteStore;
use billable::store::supabase::SupabaseStore;
use billable::tools::{self, NoProgress};
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOKEN: &str = "bench-token";

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A server over `ctx` on loopback; its URL and the token to call it with.
async fn serve(ctx: Arc<Context>, config: ServerConfig, shutdown: &CancellationToken) -> String {
    let (auth, _) = Auth::from_config(&config);
    let router = http::router(ctx, &config, auth, shutdown.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(http::serve_on(
        listener,
        router,
        shutdown.clone(),
        Duration::from_secs(1),
    ));
    format!("http://{addr}")
}

/// p50 and p99 of `n` background scan calls, each job cancelled after.
async fn enqueues(base: &str, token: &str, n: usize) -> (Duration, Duration) {
    let client = reqwest::Client::new();
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let r = client
            .post(format!("{base}/v1/tools/scan_billable_time"))
            .bearer_auth(token)
            .json(&json!({"background": true}))
            .send()
            .await
            .expect("scan");
        assert_eq!(r.status(), 202, "queued");
        let job: Value = r.json().await.expect("job");
        times.push(start.elapsed());
        let r = client
            .post(format!("{base}/v1/tools/cancel_scan"))
            .bearer_auth(token)
            .json(&json!({"job_id": job["job_id"]}))
            .send()
            .await
            .expect("cancel");
        assert!(r.status().is_success(), "{}", r.status());
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    (at(0.5), at(0.99))
}

fn report(what: &str, n: usize, (p50, p99): (Duration, Duration)) {
    eprintln!(
        "background scan call over HTTP, {what}, {n} requests: p50 {:.1} ms, p99 {:.1} ms (target p99 < 200 ms)",
        p50.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0
    );
}

fn jobs(c: &mut Criterion) {
    let measuring = std::env::args().any(|a| a == "--bench");
    let n = if measuring {
        var("BENCH_ENQUEUES")
            .and_then(|n| n.parse().ok())
            .unwrap_or(300)
    } else {
        5
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let shutdown = CancellationToken::new();

    // The embedded store, with no in-process worker: the jobs only wait.
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("b.sqlite3")).expect("store"));
    let ctx = Arc::new(Context::new(None, Arc::new(RulesAnalyzer), store));
    let local = ServerConfig {
        api_token: Some(Secret::new(TOKEN)),
        user_rps: 0,
        ..ServerConfig::default()
    };
    let base = rt.block_on(serve(ctx.clone(), local, &shutdown));
    report("SQLite", n, rt.block_on(enqueues(&base, TOKEN, n)));

    match (
        var("BILLABLE_TEST_POSTGREST_URL"),
        var("BILLABLE_TEST_JWT_SECRET"),
    ) {
        (Some(url), Some(secret)) => {
            let store = SupabaseStore::new(&url, Some("bench-anon-key")).expect("store");
            let ctx = Arc::new(Context::new(None, Arc::new(RulesAnalyzer), Arc::new(store)));
            let config = ServerConfig {
                supabase_jwt_secret: Some(Secret::new(secret.clone())),
                user_rps: 0,
                ..ServerConfig::default()
            };
            let now = chrono::Utc::now().timestamp();
            let claims = json!({"sub": uuid::Uuid::new_v4().to_string(), "role": "authenticated",
                                "aud": "authenticated", "iat": now, "exp": now + 3600});
            let token = jsonwebtoken::encode(
                &Header::default(),
                &claims,
                &EncodingKey::from_secret(secret.as_bytes()),
            )
            .expect("token");
            let base = rt.block_on(serve(ctx, config, &shutdown));
            report(
                "Supabase (postrust, pgmq)",
                n,
                rt.block_on(enqueues(&base, &token, n)),
            );
        }
        _ if measuring || var("BILLABLE_TEST_SERVICES").as_deref() == Some("1") => panic!(
            "BILLABLE_TEST_POSTGREST_URL and BILLABLE_TEST_JWT_SECRET are not set: run this \
             benchmark with the test script's services (bash -c 'source \
             scripts/test-services.sh && cargo bench --bench jobs')"
        ),
        _ => eprintln!("skipping the Supabase half: Postgres and postrust are not running"),
    }

    let user = UserId::local();
    c.bench_function("background_scan_enqueue_and_cancel_sqlite", |b| {
        b.iter(|| {
            rt.block_on(async {
                let job = tools::call(
                    &ctx,
                    &user,
                    "scan_billable_time",
                    json!({"background": true}),
                    &NoProgress,
                )
                .await
                .expect("queued");
                tools::call(
                    &ctx,
                    &user,
                    "cancel_scan",
                    json!({"job_id": job["job_id"]}),
                    &NoProgress,
                )
                .await
                .expect("cancelled")
            })
        })
    });
    shutdown.cancel();
}

criterion_group!(benches, jobs);
criterion_main!(benches);
