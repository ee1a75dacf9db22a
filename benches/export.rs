//! Export rendering: one LEDES 1998B invoice and one `csv` file of 10,000 entries
//! (a busy year of one timekeeper's mail, all for one client as LEDES requires).
//!
//! `BENCH_MESSAGES` overrides the number of entries.

use billable::domain::{Activity, EntryStatus, Settings, TimeEntry, WorkDate};
use billable::export::{Format, Invoice, render};
use chrono::{Days, TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn entries_count() -> usize {
    std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

fn settings() -> Settings {
    let patch = serde_json::from_value(serde_json::json!({
        "timekeeper_id": "JD01",
        "timekeeper_name": "Doe, Jane",
        "timekeeper_classification": "PT",
        "law_firm_id": "12-3456789",
        "my_addresses": ["jane@firm.example"],
        "clients": [{"name": "Acme", "ledes_client_id": "ACME-1", "matters": [
            {"id": "A-100", "name": "Lease dispute", "task_codes": true},
            {"id": "A-200", "name": "General advice"}
        ]}]
    }))
    .expect("patch");
    Settings::default().apply(patch).expect("valid settings")
}

fn entries(n: usize) -> Vec<TimeEntry> {
    let start = WorkDate::parse("2026-01-01").expect("date");
    (0..n)
        .map(|i| {
            let minutes = 6 * (1 + (i % 20) as u32);
            let task = i % 2 == 0;
            TimeEntry {
                id: format!("0190{i:08x}"),
                message_id: format!("<{i}@mail.acme.example>"),
                thread_id: None,
                client: Some("Acme".to_owned()),
                matter: Some(if task { "A-100" } else { "A-200" }.to_owned()),
                activity: Activity::EmailSent,
                description: format!(
                    "Reply to opposing counsel re lease amendment {i}, clause | [7]"
                ),
                work_date: WorkDate(start.0 + Days::new((i % 365) as u64)),
                duration_minutes: f64::from(minutes) - 2.5,
                billed_minutes: minutes,
                hourly_rate: 425.0,
                amount: f64::from(minutes) / 60.0 * 425.0,
                currency: "USD".to_owned(),
                billable: true,
                confidence: 0.9,
                status: EntryStatus::Approved,
                analyzer: "rules".to_owned(),
                created_at: Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap(),
                event_uid: None,
                task_code: task.then(|| "L120".to_owned()),
                activity_code: Some("A106".to_owned()),
                reviewed_at: None,
                export_batch: None,
                exported_at: None,
                merged_into: None,
            }
        })
        .collect()
}

fn export(c: &mut Criterion) {
    let settings = settings();
    let entries = entries(entries_count());
    let invoice = Invoice {
        number: Some("INV-2026".to_owned()),
        date: WorkDate::parse("2026-12-31").expect("date"),
        description: Some("Services, 2026".to_owned()),
        billing_start: WorkDate::parse("2026-01-01").expect("date"),
        billing_end: WorkDate::parse("2026-12-31").expect("date"),
    };
    let mut group = c.benchmark_group("export");
    group.throughput(Throughput::Elements(entries.len() as u64));
    for format in [Format::Ledes1998b, Format::Csv] {
        group.bench_function(format.as_str(), |b| {
            b.iter(|| render(format, &entries, &settings, &invoice).expect("renders"))
        });
    }
    group.finish();
}

criterion_group!(benches, export);
criterion_main!(benches);
