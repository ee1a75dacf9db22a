//! Review and release on the embedded store, through the tools as a user calls them:
//! one `update_time_entries` call approving 10,000 entries, and one
//! `export_time_entries` writing them as a LEDES 1998B invoice and marking every one
//! exported. Target: each under one second on a 2-core machine.
//!
//! `BENCH_MESSAGES` overrides the number of entries.

use billable::context::Context;
use billable::domain::{TimeEntry, UserId};
use billable::tools::{self, NoProgress};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};

#[path = "support/entries.rs"]
mod entries;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn entries_count() -> usize {
    std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

struct Fixture {
    _dir: tempfile::TempDir,
    ctx: Context,
    user: UserId,
    ids: Vec<String>,
}

async fn fixture(n: usize) -> Fixture {
    let user = UserId::local();
    let entries: Vec<TimeEntry> = (0..n).map(entries::entry).collect();
    let ids = entries.iter().map(|e| e.id.clone()).collect();
    let (dir, ctx) = entries::stored(entries).await;
    let settings = json!({
        "timekeeper_id": "JD01", "timekeeper_name": "Doe, Jane",
        "timekeeper_classification": "PT", "law_firm_id": "12-3456789",
        "clients": [{"name": "Acme", "ledes_client_id": "ACME-1", "hourly_rate": 425,
                     "matters": [{"id": "A-100", "name": "Lease dispute", "task_codes": true}]}]
    });
    call(
        &ctx,
        &user,
        "configure_time_tracking",
        json!({"settings": settings}),
    )
    .await;
    Fixture {
        _dir: dir,
        ctx,
        user,
        ids,
    }
}

async fn call(ctx: &Context, user: &UserId, tool: &str, args: Value) -> Value {
    tools::call(ctx, user, tool, args, &NoProgress)
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

fn review(c: &mut Criterion) {
    let n = entries_count();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let f = rt.block_on(fixture(n));
    let mut group = c.benchmark_group("review");
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(10);

    // Alternating the status makes every call a real change of every row.
    let mut approve = true;
    group.bench_function("update_10k_in_one_call", |b| {
        b.iter(|| {
            let status = if approve { "approved" } else { "suggested" };
            approve = !approve;
            let out = rt.block_on(call(
                &f.ctx,
                &f.user,
                "update_time_entries",
                json!({"ids": f.ids, "changes": {"status": status}}),
            ));
            assert_eq!(out["updated"].as_u64(), Some(n as u64));
        })
    });

    rt.block_on(call(
        &f.ctx,
        &f.user,
        "update_time_entries",
        json!({"ids": f.ids, "changes": {"status": "approved"}}),
    ));
    let ledes =
        json!({"format": "ledes1998b", "invoice": {"number": "INV-1", "date": "2026-12-31"}});
    group.bench_function("ledes_export_10k_marking_each", |b| {
        b.iter_batched(
            || {
                // Unmark the previous export, outside the measurement.
                let rows: Vec<TimeEntry> = rt
                    .block_on(f.ctx.store.entries_by_id(&f.user, &f.ids))
                    .expect("entries")
                    .into_iter()
                    .map(|e| TimeEntry {
                        export_batch: None,
                        exported_at: None,
                        ..e
                    })
                    .collect();
                rt.block_on(f.ctx.store.write_reviewed(&f.user, &rows, &[]))
                    .expect("unmark");
            },
            |()| {
                let out = rt.block_on(call(&f.ctx, &f.user, "export_time_entries", ledes.clone()));
                assert_eq!(out["entries"].as_u64(), Some(n as u64));
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, review);
criterion_main!(benches);
