//! Bulk insert throughput through PostgREST, in one run so the ratio is fair:
//!
//! - `supabase_upsert/chunked`: `BENCH_ROWS` (10,000) new entries saved by one
//!   `save_batch`, which upserts them 1,000 rows per request.
//! - `supabase_upsert/single_row`: entries saved one `save_batch` (one request) each,
//!   `BENCH_SINGLE_ROWS` (1,000) per iteration; criterion reports both in rows/s.
//!
//! Run as a test (`cargo test`), each runs once on 2,000 and 100 rows; without the
//! services it says it is skipped and passes, unless `BILLABLE_TEST_SERVICES=1` (as
//! ./scripts/test.sh sets).
//!
//! Needs Postgres and postrust: run it with the services the test script starts,
//!
//! ```sh
//! bash -c 'source scripts/test-services.sh && cargo bench --bench supabase'
//! ```

use std::time::{Duration, Instant};

use billable::domain::{Activity, EntryStatus, TimeEntry, UserId, WorkDate};
use billable::store::supabase::SupabaseStore;
use billable::store::{Batch, Store};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jsonwebtoken::{EncodingKey, Header};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// postrust's URL and JWT secret from the test script, or `None` when a test run
/// (not a measured one) goes on without them.
fn services(measuring: bool) -> Option<(String, String)> {
    if let (Some(url), Some(secret)) = (
        var("BILLABLE_TEST_POSTGREST_URL"),
        var("BILLABLE_TEST_JWT_SECRET"),
    ) {
        return Some((url, secret));
    }
    if measuring || var("BILLABLE_TEST_SERVICES").as_deref() == Some("1") {
        panic!(
            "BILLABLE_TEST_POSTGREST_URL and BILLABLE_TEST_JWT_SECRET are not set: this \
             benchmark needs Postgres and postrust. Run it with the services of the test \
             script, bash -c 'source scripts/test-services.sh && cargo bench --bench supabase', \
             or run ./scripts/test.sh"
        );
    }
    eprintln!(
        "skipping the Supabase benchmark: Postgres and postrust are not running; run ./scripts/test.sh"
    );
    None
}

fn count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// A fresh signed-in user, so every iteration inserts rather than updates.
fn user(secret: &str) -> UserId {
    let id = uuid::Uuid::new_v4().to_string();
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "sub": id, "role": "authenticated", "aud": "authenticated", "exp": now + 3600
    });
    let token = jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign a JWT");
    UserId::new(id).with_token(token)
}

fn entries(n: usize) -> Vec<TimeEntry> {
    (0..n)
        .map(|i| TimeEntry {
            id: uuid::Uuid::new_v4().to_string(),
            message_id: format!("bench-{i}@mail.example"),
            thread_id: Some(format!("thread-{}", i / 4)),
            client: Some(["Acme", "Globex", "Initech"][i % 3].to_owned()),
            matter: None,
            activity: Activity::EmailSent,
            description: "Reviewed the revised draft and replied with comments".to_owned(),
            work_date: WorkDate::parse("2026-04-01").expect("date"),
            duration_minutes: 8.5,
            billed_minutes: 12,
            hourly_rate: 300.0,
            amount: 60.0,
            currency: "USD".to_owned(),
            billable: true,
            confidence: 0.9,
            status: EntryStatus::Suggested,
            analyzer: "rules".to_owned(),
            created_at: chrono::Utc::now(),
            event_uid: None,
            task_code: None,
            activity_code: None,
            reviewed_at: None,
            export_batch: None,
            exported_at: None,
            merged_into: None,
        })
        .collect()
}

/// The same entries with new ids: ids are primary keys across all users.
fn fresh_ids(entries: &[TimeEntry]) -> Vec<TimeEntry> {
    entries
        .iter()
        .map(|e| TimeEntry {
            id: uuid::Uuid::new_v4().to_string(),
            ..e.clone()
        })
        .collect()
}

fn supabase_upsert(c: &mut Criterion) {
    // `cargo test` runs benchmarks once each as a check; smaller sizes keep it quick.
    let measuring = std::env::args().any(|a| a == "--bench");
    let Some((url, secret)) = services(measuring) else {
        return;
    };
    let store = SupabaseStore::new(&url, None).expect("store");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let rows = count("BENCH_ROWS", if measuring { 10_000 } else { 2_000 });
    let single_rows = count("BENCH_SINGLE_ROWS", if measuring { 1_000 } else { 100 });
    let chunked = entries(rows);
    let single = entries(single_rows);

    let mut group = c.benchmark_group("supabase_upsert");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));

    group.throughput(Throughput::Elements(rows as u64));
    group.bench_function("chunked", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let user = user(&secret);
                    let batch = Batch {
                        entries: fresh_ids(&chunked),
                        ..Batch::default()
                    };
                    let start = Instant::now();
                    let saved = store.save_batch(&user, &batch).await.expect("save");
                    total += start.elapsed();
                    assert_eq!(saved.created.len(), rows);
                }
                total
            })
        })
    });

    group.throughput(Throughput::Elements(single_rows as u64));
    group.bench_function("single_row", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let user = user(&secret);
                    let single = fresh_ids(&single);
                    let start = Instant::now();
                    for e in &single {
                        let batch = Batch {
                            entries: vec![e.clone()],
                            ..Batch::default()
                        };
                        let saved = store.save_batch(&user, &batch).await.expect("save");
                        assert_eq!(saved.created.len(), 1);
                    }
                    total += start.elapsed();
                }
                total
            })
        })
    });
    group.finish();
}

criterion_group!(benches, supabase_upsert);
criterion_main!(benches);
