//! A Gmail scan against the quota: the fake Gmail server (tests/api/fake_gmail.rs)
//! enforces 250 units/s at legacy costs with 20 ms of latency per request, the client
//! runs the legacy profile, and a whole `scan_billable_time` of a generated mailbox
//! goes into a fresh SQLite file each iteration. Each iteration prints the ratio of its
//! time to the quota-bound time (units needed ÷ 250 units/s) and the 429s the fake had
//! to answer, which must be zero.
//!
//! `GMAIL_BENCH_MESSAGES` sets the mailbox size: 1,000 under `cargo bench`, 200 when
//! run once as a test (`cargo test --all-targets`).

#[path = "support/mbox_gen.rs"]
mod mbox_gen;

#[path = "../tests/api/fake_gmail.rs"]
mod fake_gmail;

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

fn messages() -> usize {
    let under_bench = std::env::args().any(|a| a == "--bench");
    std::env::var("GMAIL_BENCH_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if under_bench { 1000 } else { 200 })
}

fn gmail_scan(c: &mut Criterion) {
    let n = messages();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mbox = dir.path().join("bench.mbox");
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&mbox).expect("mbox"));
        mbox_gen::write_mbox(&mut file, n).expect("write mbox");
    }
    let fake = runtime.block_on(FakeGmail::from_mbox(&mbox));
    fake.set_faults(Faults {
        latency: Duration::from_millis(20),
        retry_after_secs: 1,
        ..Faults::default()
    });
    let costs = QuotaCosts::for_profile(QuotaProfile::Legacy);
    let listed = fake.len() as u64;
    // Every body (nothing was processed before), the list pages, two profile reads.
    let units = listed * u64::from(costs.get)
        + listed.div_ceil(500) * u64::from(costs.list)
        + 2 * u64::from(costs.profile);
    let bound = units as f64 / f64::from(costs.units_per_sec);
    let settings: serde_json::Value = serde_json::from_str(mbox_gen::SETTINGS).expect("settings");

    let mut group = c.benchmark_group("gmail");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(1));
    group.measurement_time(Duration::from_secs(1));
    group.bench_function(format!("legacy_quota_scan_{n}"), |b| {
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
                let before = fake.quota_429s();
                let user = UserId::local();
                let elapsed = runtime.block_on(async {
                    tools::call(&ctx, &user, "configure_time_tracking", json!({"settings": settings}), &NoProgress)
                        .await
                        .expect("configure");
                    let started = Instant::now();
                    let out = tools::call(&ctx, &user, "scan_billable_time", json!({}), &NoProgress)
                        .await
                        .expect("scan");
                    assert_eq!(out["status"], "completed", "{out}");
                    assert_eq!(out["examined"].as_u64(), Some(listed), "{out}");
                    started.elapsed()
                });
                let refused = fake.quota_429s() - before;
                eprintln!(
                    "gmail legacy scan of {listed} messages: {:.2} s, quota-bound {:.2} s ({units} units / {} units/s), ratio {:.3}, quota 429s {refused}",
                    elapsed.as_secs_f64(),
                    bound,
                    costs.units_per_sec,
                    elapsed.as_secs_f64() / bound,
                );
                assert_eq!(refused, 0, "the fake answered quota 429s");
                total += elapsed;
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, gmail_scan);
criterion_main!(benches);
