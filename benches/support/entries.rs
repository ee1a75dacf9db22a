//! The time entries the review and page benchmarks store: Acme's lease matter, one a
//! day through 2026 unless a benchmark moves them, sizes of 6 to 120 minutes.

use billable::domain::{Activity, EntryStatus, TimeEntry, WorkDate};
use chrono::{Days, Utc};

pub fn entry(i: usize) -> TimeEntry {
    let start = WorkDate::parse("2026-01-01").expect("date");
    let minutes = 6 * (1 + (i % 20) as u32);
    TimeEntry {
        id: uuid::Uuid::now_v7().to_string(),
        message_id: format!("<{i}@mail.acme.example>"),
        thread_id: Some(format!("t{}", i / 4)),
        client: Some("Acme".to_owned()),
        matter: Some("A-100".to_owned()),
        activity: Activity::EmailSent,
        description: format!("Reply to opposing counsel re lease amendment {i}"),
        work_date: WorkDate(start.0 + Days::new((i % 365) as u64)),
        duration_minutes: f64::from(minutes) - 2.5,
        billed_minutes: minutes,
        hourly_rate: 425.0,
        amount: f64::from(minutes) / 60.0 * 425.0,
        currency: "USD".to_owned(),
        billable: true,
        confidence: 0.9,
        status: EntryStatus::Suggested,
        analyzer: "rules".to_owned(),
        created_at: Utc::now(),
        event_uid: None,
        task_code: Some("L120".to_owned()),
        activity_code: Some("A106".to_owned()),
        reviewed_at: None,
        export_batch: None,
        exported_at: None,
        merged_into: None,
    }
}

/// A context over a new embedded store holding `entries` for the local user (the
/// folder goes when the first value is dropped).
pub async fn stored(entries: Vec<TimeEntry>) -> (tempfile::TempDir, billable::Context) {
    use billable::store::{Batch, Store};
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        billable::store::sqlite::SqliteStore::open(&dir.path().join("b.sqlite3")).expect("store");
    store
        .save_batch(
            &billable::domain::UserId::local(),
            &Batch {
                entries,
                ..Batch::default()
            },
        )
        .await
        .expect("save");
    let ctx = billable::Context::new(
        None,
        std::sync::Arc::new(billable::analyze::rules::RulesAnalyzer),
        std::sync::Arc::new(store),
    );
    (dir, ctx)
}
