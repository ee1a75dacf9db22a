//! The timesheet page on the embedded store: a day view of 500 entries rendered by the
//! server, and an approve round trip (one POST /app/entries that approves an entry and
//! answers the re-rendered day). Targets: the day view under 100 ms of server time,
//! the approve round trip under 50 ms at p99, on a 2-core machine.
//!
//! Criterion measures both through the router in process (server time). Before that,
//! the round trip is also timed over loopback HTTP against the real server, one
//! request at a time, and its p50/p99 printed (`BENCH_ROUND_TRIPS`, default 300).
//! `BENCH_DAY_ENTRIES` overrides the 500.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use billable::config::{Secret, ServerConfig};
use billable::context::Context;
use billable::domain::{EntryStatus, TimeEntry, UserId, WorkDate};
use billable::http::{self, Auth};
use billable::tools::{self, NoProgress};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

#[path = "support/entries.rs"]
mod entries;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOKEN: &str = "bench-token";
const DAY: &str = "2026-11-16";

fn count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// One day's entry: three clients, two matters each, one in ten needing review.
fn entry(i: usize) -> TimeEntry {
    let client = ["Acme", "Globex", "Initech"][i % 3];
    TimeEntry {
        client: Some(client.to_owned()),
        matter: Some(format!("{}-{}", &client[..1], 100 + 100 * (i % 2))),
        work_date: WorkDate::parse(DAY).expect("date"),
        task_code: None,
        status: if i.is_multiple_of(10) {
            EntryStatus::NeedsReview
        } else {
            EntryStatus::Suggested
        },
        ..entries::entry(i)
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    router: axum::Router,
    ctx: Arc<Context>,
    ids: Vec<String>,
}

async fn fixture(n: usize) -> Fixture {
    let user = UserId::local();
    let entries: Vec<TimeEntry> = (0..n).map(entry).collect();
    let ids = entries.iter().map(|e| e.id.clone()).collect();
    let (dir, ctx) = entries::stored(entries).await;
    let ctx = Arc::new(ctx);
    let clients: Vec<_> = ["Acme", "Globex", "Initech"]
        .iter()
        .map(|c| {
            let p = &c[..1];
            json!({"name": c, "domains": [format!("{}.example", c.to_lowercase())],
                   "matters": [{"id": format!("{p}-100"), "name": "Lease dispute"},
                               {"id": format!("{p}-200"), "name": "General advice"}]})
        })
        .collect();
    tools::call(
        &ctx,
        &user,
        "configure_time_tracking",
        json!({"settings": {"clients": clients, "default_hourly_rate": 425}}),
        &NoProgress,
    )
    .await
    .expect("settings");
    let config = ServerConfig {
        api_token: Some(Secret::new(TOKEN)),
        user_rps: 0,
        ..ServerConfig::default()
    };
    let (auth, _) = Auth::from_config(&config);
    let router = http::router(ctx.clone(), &config, auth, CancellationToken::new());
    Fixture {
        _dir: dir,
        router,
        ctx,
        ids,
    }
}

/// The page's CSRF token for the session signed in with `TOKEN`.
fn csrf() -> String {
    http::csrf_token(TOKEN)
}

fn day_view() -> Request<Body> {
    Request::get(format!("/app?view=day&date={DAY}"))
        .header("cookie", format!("billable_session={TOKEN}"))
        .header("hx-request", "true")
        .body(Body::empty())
        .expect("request")
}

fn approve_body(id: &str, approve: bool) -> String {
    let action = if approve { "approve" } else { "reject" };
    format!("action={action}&ids={id}&view=day&date={DAY}")
}

fn approve(id: &str, approve: bool) -> Request<Body> {
    Request::post("/app/entries")
        .header("cookie", format!("billable_session={TOKEN}"))
        .header("x-csrf-token", csrf())
        .header("hx-request", "true")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(approve_body(id, approve)))
        .expect("request")
}

async fn send(router: &axum::Router, req: Request<Body>) -> usize {
    let r = router.clone().oneshot(req).await.expect("response");
    assert!(r.status().is_success(), "{}", r.status());
    let body = axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .expect("body");
    body.len()
}

/// p50 and p99 of `n` approve round trips over loopback HTTP to the real server.
async fn round_trips(f: &Fixture, n: usize) -> (Duration, Duration) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    tokio::spawn(http::serve_on(
        listener,
        f.router.clone(),
        shutdown.clone(),
        Duration::from_secs(1),
    ));
    // As main does: one TLS provider for every client (reqwest is built without one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/app/entries");
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let id = &f.ids[i % f.ids.len()];
        let start = Instant::now();
        let r = client
            .post(&url)
            .header("cookie", format!("billable_session={TOKEN}"))
            .header("x-csrf-token", csrf())
            .header("hx-request", "true")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(approve_body(id, i % 2 == 0))
            .send()
            .await
            .expect("approve");
        assert!(r.status().is_success(), "{}", r.status());
        let html = r.text().await.expect("html");
        times.push(start.elapsed());
        assert!(
            html.contains(" 1 entry.") && !html.contains("flash failed"),
            "the sheet says what was done"
        );
    }
    shutdown.cancel();
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    (at(0.5), at(0.99))
}

fn web(c: &mut Criterion) {
    let n = count("BENCH_DAY_ENTRIES", 500);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let f = rt.block_on(fixture(n));
    let html = rt.block_on(send(&f.router, day_view()));
    let listed = rt.block_on(async {
        tools::call(
            &f.ctx,
            &UserId::local(),
            "list_time_entries",
            json!({"from": DAY, "to": DAY, "limit": 500}),
            &NoProgress,
        )
        .await
        .expect("list")["total"]
            .as_u64()
    });
    assert_eq!(listed, Some(n as u64));
    eprintln!("day view of {n} entries: {html} bytes of HTML");

    // Under `cargo test` (no --bench) a few round trips check that the loop works.
    let trips = if std::env::args().any(|a| a == "--bench") {
        count("BENCH_ROUND_TRIPS", 300)
    } else {
        5
    };
    let (p50, p99) = rt.block_on(round_trips(&f, trips));
    eprintln!(
        "approve round trip over HTTP, {trips} requests, day of {n} entries: p50 {:.1} ms, p99 {:.1} ms (target p99 < 50 ms)",
        p50.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0
    );

    let mut group = c.benchmark_group("web");
    group.sample_size(30);
    group.bench_function("day_view_500_entries", |b| {
        b.iter(|| rt.block_on(send(&f.router, day_view())))
    });
    let mut i = 0;
    group.bench_function("approve_round_trip_500_entry_day", |b| {
        b.iter(|| {
            i += 1;
            rt.block_on(send(
                &f.router,
                approve(&f.ids[i % f.ids.len()], i % 2 == 0),
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, web);
criterion_main!(benches);
