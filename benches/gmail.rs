//! A Gmail scan against the quota: the fake Gmail server (tests/api/fake_gmail.rs)
//! enforces 250 units/s at legacy costs with 20 ms of latency per request, the client
//! runs the legacy profile, and a whole `scan_billable_time` of a generated mailbox
//! goes into a fresh SQLite file each iteration. Each iteration prints the bodies
//! fetched per candidate the listing found (at most 1.1), the ratio of its time to the
//! quota-bound time of those (units needed ÷ 250 units/s) and to that of the old full
//! listing, which fetched every body, and the 429s the fake had to answer (none).
//!
//! Two mailboxes: the benchmark mailbox (mostly client mail; `GMAIL_BENCH_MESSAGES`
//! sets its size: 1,000 under `cargo bench`, 200 when run once as a test by `cargo
//! test --all-targets`), and one where one message in ten is a client's (5,000, or
//! 500 as a test).

#[path = "support/mbox_gen.rs"]
mod mbox_gen;

#[path = "../tests/api/fake_gmail.rs"]
mod fake_gmail;

#[path = "../tests/api/gmail_query.rs"]
mod gmail_query;

use std::sync::Arc;
use std::time::{Duration, Instant};

use billable::analyze::rules::RulesAnalyzer;
use billable::context::Context;
use billable::domain::UserId;
use billable::mail::gmail::{GmailAuth, GmailConfig, GmailHub, QuotaCosts, QuotaProfile};
use billable::store::sqlite::SqliteStore;
use billable::tools::{self, NoProgress};
use criterion::{Criterion, criterion_group, criterion_main};
use fake_gmail::{Bucket, FakeGmail, Faults, TOKEN};
use serde_json::json;

fn under_bench() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn messages() -> usize {
    std::env::var("GMAIL_BENCH_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if under_bench() { 1000 } else { 200 })
}

fn gmail_scan(c: &mut Criterion) {
    let n = messages();
    bench_scan(
        c,
        &format!("legacy_quota_scan_{n}"),
        n,
        mbox_gen::write_mbox,
    );
    // The candidate listing's own case: one message in ten is a client's.
    let n = if under_bench() { 5000 } else { 500 };
    bench_scan(
        c,
        &format!("legacy_quota_scan_{n}_one_in_ten_for_clients"),
        n,
        mbox_gen::write_mostly_other_mbox,
    );
}

/// Scans a generated mailbox of `n` messages through the fake at the legacy quota,
/// printing per iteration: the bodies fetched per candidate listed, the time against
/// the quota-bound time of those candidates, and against that of the old full
/// listing (every message's body), and the quota 429s (which must be none).
fn bench_scan(
    c: &mut Criterion,
    name: &str,
    n: usize,
    write: fn(&mut std::io::BufWriter<std::fs::File>, usize) -> std::io::Result<()>,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mbox = dir.path().join("bench.mbox");
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&mbox).expect("mbox"));
        write(&mut file, n).expect("write mbox");
    }
    let fake = runtime.block_on(FakeGmail::from_mbox(&mbox));
    fake.set_faults(Faults {
        latency: Duration::from_millis(20),
        retry_after_secs: 1,
        ..Faults::default()
    });
    let costs = QuotaCosts::for_profile(QuotaProfile::Legacy);
    let listed = fake.len() as u64;
    // Bodies, list pages and two profile reads, in seconds at the quota.
    let bound = |bodies: u64, pages: u64| {
        (bodies * u64::from(costs.get)
            + pages * u64::from(costs.list)
            + 2 * u64::from(costs.profile)) as f64
            / f64::from(costs.units_per_sec)
    };
    let full_listing = bound(listed, listed.div_ceil(500));
    let settings: serde_json::Value = serde_json::from_str(mbox_gen::SETTINGS).expect("settings");

    let mut group = c.benchmark_group("gmail");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(1));
    group.measurement_time(Duration::from_secs(1));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let run = tempfile::tempdir().expect("tempdir");
                let store = SqliteStore::open(&run.path().join("bench.sqlite3")).expect("store");
                let mut config = GmailConfig::new(GmailAuth::AccessToken(TOKEN.into()))
                    .with_base_url(&fake.url);
                config.costs = costs;
                let ctx = Context::new(None, Arc::new(RulesAnalyzer), Arc::new(store))
                    .with_gmail(Arc::new(GmailHub::new(config)));
                // A quiet second at Google's end: a full bucket, as for a fresh client.
                fake.set_bucket(Some(Bucket::legacy()));
                fake.reset_calls();
                let before = fake.quota_429s();
                let user = UserId::local();
                let (elapsed, candidates) = runtime.block_on(async {
                    tools::call(&ctx, &user, "configure_time_tracking", json!({"settings": settings}), &NoProgress)
                        .await
                        .expect("configure");
                    let started = Instant::now();
                    let out = tools::call(&ctx, &user, "scan_billable_time", json!({"background": false}), &NoProgress)
                        .await
                        .expect("scan");
                    assert_eq!(out["status"], "completed", "{out}");
                    (started.elapsed(), out["examined"].as_u64().unwrap_or_default())
                });
                let refused = fake.quota_429s() - before;
                let gets = fake.calls("messages.get");
                let pages = fake.calls("messages.list");
                let needed = bound(candidates, pages);
                eprintln!(
                    "gmail legacy scan, {listed} messages, {candidates} candidates: {gets} bodies ({:.3} per candidate), \
                     {:.2} s, quota-bound {:.2} s (ratio {:.3}); the full listing's quota-bound time {:.2} s \
                     (this scan takes {:.3} of it); quota 429s {refused}",
                    gets as f64 / candidates.max(1) as f64,
                    elapsed.as_secs_f64(),
                    needed,
                    elapsed.as_secs_f64() / needed,
                    full_listing,
                    elapsed.as_secs_f64() / full_listing,
                );
                assert_eq!(refused, 0, "the fake answered quota 429s");
                assert!(gets as f64 <= 1.1 * candidates as f64, "{gets} bodies for {candidates} candidates");
                total += elapsed;
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, gmail_scan);
criterion_main!(benches);
