//! The store contract, written once against `&dyn Store`.
//!
//! Each behaviour is a plain `pub async fn (store: &dyn Store)` so another store
//! (Supabase through PostgREST) can run the very same functions; the `#[tokio::test]`
//! wrappers at the bottom run them against a fresh SQLite file. Every behaviour uses
//! fresh random user ids, so the functions also work against a shared database.

use std::collections::{HashMap, HashSet};

use billable::domain::{
    Activity, EntryStatus, GroupBy, Settings, SettingsPatch, SummaryGroup, SummaryQuery, TimeEntry,
    UserId, WorkDate,
};
use billable::store::sqlite::SqliteStore;
use billable::store::{
    Batch, EntryFilter, EventState, Processed, ProcessedOutcome, Reviewed, ScanRecord, ScanStatus,
    Store,
};
use chrono::{DateTime, Utc};

// ---------------------------------------------------------------- fixtures

fn fresh_user() -> UserId {
    UserId::new(format!("store-suite-{}", uuid::Uuid::new_v4()))
}

fn date(s: &str) -> WorkDate {
    WorkDate::parse(s).unwrap()
}

/// Whole seconds, so every store (Postgres keeps microseconds) round-trips them.
fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub(crate) fn entry(message_id: &str, work_date: &str, client: Option<&str>) -> TimeEntry {
    TimeEntry {
        id: uuid::Uuid::new_v4().to_string(),
        message_id: message_id.to_owned(),
        thread_id: Some(format!("thread-{message_id}")),
        client: client.map(str::to_owned),
        matter: None,
        activity: Activity::EmailSent,
        description: format!("Email about {message_id}"),
        work_date: date(work_date),
        duration_minutes: 4.5,
        billed_minutes: 6,
        hourly_rate: 300.0,
        amount: 30.0,
        currency: "USD".to_owned(),
        billable: true,
        confidence: 0.9,
        status: EntryStatus::Suggested,
        analyzer: "rules".to_owned(),
        created_at: at("2026-04-10T09:00:00Z"),
        event_uid: None,
        task_code: None,
        activity_code: None,
        reviewed_at: None,
        export_batch: None,
        exported_at: None,
        merged_into: None,
    }
}

pub(crate) fn processed(message_id: &str) -> Processed {
    Processed {
        message_id: message_id.to_owned(),
        content_hash: format!("hash-{message_id}"),
        analyzer: "rules".to_owned(),
        outcome: ProcessedOutcome::Entry,
        reason: None,
        unmatched_under: None,
        counterpart: None,
        features: None,
        processed_at: at("2026-04-10T09:00:00Z"),
    }
}

fn entries_batch(entries: Vec<TimeEntry>) -> Batch {
    Batch {
        processed: entries.iter().map(|e| processed(&e.message_id)).collect(),
        entries,
        ..Batch::default()
    }
}

fn all() -> EntryFilter {
    EntryFilter {
        limit: 1000,
        ..EntryFilter::default()
    }
}

fn message_ids(entries: &[TimeEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.message_id.as_str()).collect()
}

fn group(
    key: &str,
    currency: &str,
    entries: u64,
    raw: f64,
    billed: u64,
    hours: f64,
    amount: f64,
) -> SummaryGroup {
    SummaryGroup {
        key: key.to_owned(),
        currency: currency.to_owned(),
        entries,
        raw_minutes: raw,
        billed_minutes: billed,
        billed_hours: hours,
        amount,
    }
}

fn scan(id: &str, started_at: &str) -> ScanRecord {
    ScanRecord {
        id: id.to_owned(),
        source: "mbox:/tmp/mail.mbox".to_owned(),
        query: Some("after:2026/03/01".to_owned()),
        started_at: at(started_at),
        finished_at: None,
        status: ScanStatus::Running,
        examined: 0,
        entries_created: 0,
        errors: 0,
        cursor: None,
    }
}

/// The summary fixture. Weeks: 2026-03-30 (Mon) .. 2026-04-05 (Sun) spans March and
/// April; 2026-04-06 starts the next week.
///
/// | msg | date       | client | matter | cur | raw  | billed | amount | billable | status       |
/// |-----|------------|--------|--------|-----|------|--------|--------|----------|--------------|
/// | m1  | 2026-03-30 | Acme   | Merger | USD | 10.0 | 12     | 60     | yes      | suggested    |
/// | m2  | 2026-03-31 | Acme   | Merger | USD | 25.5 | 30     | 150    | yes      | suggested    |
/// | m3  | 2026-04-01 | Beta   | -      | USD | 4.2  | 6      | 20     | yes      | approved     |
/// | m4  | 2026-04-02 | -      | -      | USD | 3.0  | 6      | 0      | no       | suggested    |
/// | m5  | 2026-04-06 | Acme   | -      | USD | 50.0 | 54     | 270    | yes      | needs_review |
/// | m6  | 2026-04-03 | Beta   | -      | USD | 100  | 102    | 340    | yes      | rejected     |
/// | m7  | 2026-04-05 | Gamma  | -      | EUR | 7.3  | 12     | 30     | yes      | suggested    |
fn summary_fixture() -> Vec<TimeEntry> {
    #[allow(clippy::too_many_arguments)]
    fn e(
        id: &str,
        day: &str,
        client: Option<&str>,
        matter: Option<&str>,
        currency: &str,
        raw: f64,
        billed: u32,
        amount: f64,
        billable: bool,
        status: EntryStatus,
    ) -> TimeEntry {
        TimeEntry {
            matter: matter.map(str::to_owned),
            currency: currency.to_owned(),
            duration_minutes: raw,
            billed_minutes: billed,
            amount,
            billable,
            status,
            ..entry(id, day, client)
        }
    }
    use EntryStatus::*;
    vec![
        e(
            "m1",
            "2026-03-30",
            Some("Acme"),
            Some("Merger"),
            "USD",
            10.0,
            12,
            60.0,
            true,
            Suggested,
        ),
        e(
            "m2",
            "2026-03-31",
            Some("Acme"),
            Some("Merger"),
            "USD",
            25.5,
            30,
            150.0,
            true,
            Suggested,
        ),
        e(
            "m3",
            "2026-04-01",
            Some("Beta"),
            None,
            "USD",
            4.2,
            6,
            20.0,
            true,
            Approved,
        ),
        e(
            "m4",
            "2026-04-02",
            None,
            None,
            "USD",
            3.0,
            6,
            0.0,
            false,
            Suggested,
        ),
        e(
            "m5",
            "2026-04-06",
            Some("Acme"),
            None,
            "USD",
            50.0,
            54,
            270.0,
            true,
            NeedsReview,
        ),
        e(
            "m6",
            "2026-04-03",
            Some("Beta"),
            None,
            "USD",
            100.0,
            102,
            340.0,
            true,
            Rejected,
        ),
        e(
            "m7",
            "2026-04-05",
            Some("Gamma"),
            None,
            "EUR",
            7.3,
            12,
            30.0,
            true,
            Suggested,
        ),
    ]
}

fn query(group_by: GroupBy) -> SummaryQuery {
    SummaryQuery {
        from: None,
        to: None,
        group_by,
        billable_only: false,
        status: None,
        matter: None,
    }
}

// ---------------------------------------------------------------- behaviours

pub async fn settings_are_the_defaults_until_saved_and_then_round_trip(store: &dyn Store) {
    let user = fresh_user();
    assert_eq!(store.settings(&user).await.unwrap(), Settings::default());

    let patch: SettingsPatch = serde_json::from_value(serde_json::json!({
        "timezone": "Europe/London",
        "my_addresses": ["me@firm.example"],
        "billing_increment_minutes": 15,
        "rounding": "nearest",
        "default_hourly_rate": 250.0,
        "currency": "GBP",
        "clients": [{"name": "Acme", "domains": ["acme.example"], "matter": "Merger", "hourly_rate": 400.0}],
        "default_query": "label:clients",
        "min_confidence": 0.7
    }))
    .unwrap();
    let settings = Settings::default().apply(patch).unwrap();
    store.save_settings(&user, &settings).await.unwrap();
    assert_eq!(store.settings(&user).await.unwrap(), settings);

    // A second save replaces the first rather than adding a row or merging.
    let cleared = Settings::default();
    store.save_settings(&user, &cleared).await.unwrap();
    assert_eq!(store.settings(&user).await.unwrap(), cleared);
}

pub async fn saving_the_same_batch_twice_creates_nothing_new_the_second_time(store: &dyn Store) {
    let user = fresh_user();
    let batch = entries_batch(vec![
        entry("a", "2026-04-01", Some("Acme")),
        entry("b", "2026-04-02", Some("Acme")),
    ]);

    let first = store.save_batch(&user, &batch).await.unwrap();
    let mut created = first.created.clone();
    created.sort();
    assert_eq!(created, ["a", "b"]);
    assert!(
        first.updated.is_empty() && first.deleted.is_empty(),
        "{first:?}"
    );
    let before = store.list_entries(&user, &all()).await.unwrap();

    let second = store.save_batch(&user, &batch).await.unwrap();
    assert!(second.created.is_empty(), "{second:?}");
    assert!(
        second.updated.is_empty() && second.deleted.is_empty(),
        "{second:?}"
    );
    assert_eq!(store.list_entries(&user, &all()).await.unwrap(), before);
    assert_eq!(before.1, 2);
}

pub async fn an_updated_entry_keeps_its_id_and_created_at(store: &dyn Store) {
    let user = fresh_user();
    let original = entry("a", "2026-04-01", Some("Acme"));
    store
        .save_batch(&user, &entries_batch(vec![original.clone()]))
        .await
        .unwrap();

    let reanalyzed = TimeEntry {
        id: uuid::Uuid::new_v4().to_string(),
        created_at: at("2026-05-01T12:00:00Z"),
        description: "Reviewed the merger agreement".to_owned(),
        duration_minutes: 17.5,
        billed_minutes: 18,
        amount: 90.0,
        status: EntryStatus::NeedsReview,
        analyzer: "llm:gpt-4.1-mini".to_owned(),
        ..original.clone()
    };
    let saved = store
        .save_batch(&user, &entries_batch(vec![reanalyzed.clone()]))
        .await
        .unwrap();
    assert!(saved.created.is_empty(), "{saved:?}");
    assert_eq!(saved.updated, ["a"]);

    let stored = store.entry_by_message(&user, "a").await.unwrap().unwrap();
    assert_eq!(
        stored,
        TimeEntry {
            id: original.id.clone(),
            created_at: original.created_at,
            ..reanalyzed
        }
    );
}

pub async fn an_approved_entry_is_neither_overwritten_nor_deleted_by_later_batches(
    store: &dyn Store,
) {
    let user = fresh_user();
    let approved = TimeEntry {
        status: EntryStatus::Approved,
        ..entry("approved", "2026-04-01", Some("Acme"))
    };
    let rejected = TimeEntry {
        status: EntryStatus::Rejected,
        ..entry("rejected", "2026-04-01", Some("Acme"))
    };
    store
        .save_batch(
            &user,
            &entries_batch(vec![approved.clone(), rejected.clone()]),
        )
        .await
        .unwrap();

    let rewrite = |e: &TimeEntry| TimeEntry {
        id: uuid::Uuid::new_v4().to_string(),
        description: "A re-analysis".to_owned(),
        billed_minutes: 480,
        status: EntryStatus::Suggested,
        ..e.clone()
    };
    let later = entries_batch(vec![rewrite(&approved), rewrite(&rejected)]);
    let saved = store.save_batch(&user, &later).await.unwrap();
    assert!(saved.created.is_empty(), "{saved:?}");
    assert!(saved.updated.is_empty(), "{saved:?}");

    let cancel = Batch {
        deleted_entries: vec!["approved".to_owned(), "rejected".to_owned()],
        ..Batch::default()
    };
    let kept = store.save_batch(&user, &cancel).await.unwrap();
    assert!(kept.deleted.is_empty(), "{kept:?}");

    assert_eq!(
        store.entry_by_message(&user, "approved").await.unwrap(),
        Some(approved)
    );
    assert_eq!(
        store.entry_by_message(&user, "rejected").await.unwrap(),
        Some(rejected)
    );
}

pub async fn deleted_entries_remove_unreviewed_entries_once(store: &dyn Store) {
    let user = fresh_user();
    let meeting = TimeEntry {
        activity: Activity::Meeting,
        event_uid: Some("uid-1@calendar".to_owned()),
        ..entry("invite", "2026-04-01", Some("Acme"))
    };
    store
        .save_batch(
            &user,
            &entries_batch(vec![meeting, entry("other", "2026-04-01", None)]),
        )
        .await
        .unwrap();

    let cancel = Batch {
        deleted_entries: vec!["invite".to_owned(), "never-saved".to_owned()],
        ..Batch::default()
    };
    let removed = store.save_batch(&user, &cancel).await.unwrap();
    assert_eq!(removed.deleted, ["invite"]);
    assert_eq!(store.entry_by_message(&user, "invite").await.unwrap(), None);
    assert!(
        store
            .entry_by_message(&user, "other")
            .await
            .unwrap()
            .is_some()
    );
    let kept = store.save_batch(&user, &cancel).await.unwrap();
    assert!(kept.deleted.is_empty(), "{kept:?}");
}

pub async fn processed_ids_returns_exactly_the_processed_subset(store: &dyn Store) {
    let user = fresh_user();
    // More than one chunk of ids, and ids that need quoting in any query language.
    let done: Vec<String> = (0..700).map(|i| format!("msg-{i}@mail.example")).collect();
    let batch = Batch {
        processed: done.iter().map(|id| processed(id)).collect(),
        ..Batch::default()
    };
    store.save_batch(&user, &batch).await.unwrap();
    let tricky = "<o'brien,\"x\"(1)>";
    store
        .save_batch(
            &user,
            &Batch {
                processed: vec![processed(tricky)],
                ..Batch::default()
            },
        )
        .await
        .unwrap();

    let asked: Vec<String> = (0..1200)
        .filter(|i| i % 2 == 0)
        .map(|i| format!("msg-{i}@mail.example"))
        .chain([tricky.to_owned(), "unknown".to_owned()])
        .collect();
    let expected: HashSet<String> = (0..700)
        .filter(|i| i % 2 == 0)
        .map(|i| format!("msg-{i}@mail.example"))
        .chain([tricky.to_owned()])
        .collect();
    assert_eq!(
        store.processed_ids(&user, &asked, "").await.unwrap(),
        expected
    );
    assert!(
        store
            .processed_ids(&user, &[], "")
            .await
            .unwrap()
            .is_empty()
    );
}

/// Mail that matched no client counts as processed only under the settings' matching
/// key it was judged under; every other mark counts under any key.
pub async fn unmatched_mail_counts_as_processed_only_under_its_matching_key(store: &dyn Store) {
    let user = fresh_user();
    let unmatched = |id: &str, key: &str| Processed {
        outcome: ProcessedOutcome::NotBillable,
        unmatched_under: Some(key.to_owned()),
        ..processed(id)
    };
    let batch = Batch {
        processed: vec![
            processed("entry"),
            unmatched("no-client-then", "key-1"),
            unmatched("no-client-now", "key-2"),
        ],
        ..Batch::default()
    };
    store.save_batch(&user, &batch).await.unwrap();
    let asked: Vec<String> = ["entry", "no-client-then", "no-client-now", "never"]
        .map(str::to_owned)
        .to_vec();
    let done = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<HashSet<_>>();
    assert_eq!(
        store.processed_ids(&user, &asked, "key-2").await.unwrap(),
        done(&["entry", "no-client-now"])
    );
    assert_eq!(
        store.processed_ids(&user, &asked, "key-1").await.unwrap(),
        done(&["entry", "no-client-then"])
    );
    // Examined again and billed: the mark no longer depends on the key.
    let billed = Batch {
        processed: vec![processed("no-client-then")],
        ..Batch::default()
    };
    store.save_batch(&user, &billed).await.unwrap();
    assert_eq!(
        store.processed_ids(&user, &asked, "key-3").await.unwrap(),
        done(&["entry", "no-client-then"])
    );
}

/// Approvals and rejections are counted per counterpart of the entry's message;
/// suggested and merged-away entries, and messages with no counterpart, are not.
pub async fn reviewed_counterparts_count_each_persons_approvals_and_rejections(store: &dyn Store) {
    let user = fresh_user();
    let with = |id: &str, who: Option<&str>| Processed {
        counterpart: who.map(str::to_owned),
        features: None,
        ..processed(id)
    };
    let status = |id: &str, status: EntryStatus| TimeEntry {
        status,
        ..entry(id, "2026-04-01", Some("Acme"))
    };
    let entries = vec![
        status("golf-1", EntryStatus::Rejected),
        status("golf-2", EntryStatus::Rejected),
        status("golf-3", EntryStatus::Suggested),
        status("work-1", EntryStatus::Approved),
        status("work-2", EntryStatus::Rejected),
        status("nobody", EntryStatus::Rejected),
        status("merged", EntryStatus::Rejected),
    ];
    let batch = Batch {
        processed: vec![
            with("golf-1", Some("pal@acme.com")),
            with("golf-2", Some("pal@acme.com")),
            with("golf-3", Some("pal@acme.com")),
            with("work-1", Some("gc@acme.com")),
            with("work-2", Some("gc@acme.com")),
            with("nobody", None),
            with("merged", Some("gc@acme.com")),
        ],
        entries,
        ..Batch::default()
    };
    store.save_batch(&user, &batch).await.unwrap();
    // A part merged into another entry is that entry's now, not a decision of its own.
    let mut merged = store
        .entry_by_message(&user, "merged")
        .await
        .unwrap()
        .unwrap();
    merged.merged_into = Some(uuid::Uuid::new_v4().to_string());
    store.write_reviewed(&user, &[merged], &[]).await.unwrap();
    let found = store.reviewed_counterparts(&user).await.unwrap();
    let reviewed = |approved, rejected| Reviewed { approved, rejected };
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found["pal@acme.com"], reviewed(0, 2));
    assert_eq!(found["gc@acme.com"], reviewed(1, 1));
    assert!(found["pal@acme.com"].mostly_rejected());
    assert!(!found["gc@acme.com"].mostly_rejected());
    assert!(
        store
            .reviewed_counterparts(&fresh_user())
            .await
            .unwrap()
            .is_empty()
    );
}

/// The features stored with each message whose entry a person approved or rejected
/// come back with the verdict; suggested and merged-away entries do not, reviews at
/// or before a reset (`since`) do not, and another user sees none of them.
pub async fn reviewed_features_are_what_each_review_teaches_after_a_reset(store: &dyn Store) {
    let user = fresh_user();
    let with = |id: &str, features: &str| Processed {
        features: Some(features.to_owned()),
        ..processed(id)
    };
    let batch = Batch {
        processed: vec![
            with("banter", "@received pheasant hunting"),
            with("work", "@sent draft isda"),
            with("later", "@received stock lovely"),
            with("waiting", "@received golf"),
            with("merged", "@sent merged"),
        ],
        entries: ["banter", "work", "later", "waiting", "merged"]
            .iter()
            .map(|id| entry(id, "2026-04-01", Some("Acme")))
            .collect(),
        ..Batch::default()
    };
    store.save_batch(&user, &batch).await.unwrap();
    let t0 = chrono::Utc::now();
    let reset = t0 + chrono::Duration::seconds(10);
    let mut changed = Vec::new();
    for (id, status, at) in [
        ("banter", EntryStatus::Rejected, t0),
        ("work", EntryStatus::Approved, t0),
        (
            "later",
            EntryStatus::Rejected,
            reset + chrono::Duration::seconds(10),
        ),
        ("merged", EntryStatus::Approved, t0),
    ] {
        let mut e = store.entry_by_message(&user, id).await.unwrap().unwrap();
        e.status = status;
        e.reviewed_at = Some(at);
        if id == "merged" {
            e.merged_into = Some(uuid::Uuid::new_v4().to_string());
        }
        changed.push(e);
    }
    store.write_reviewed(&user, &changed, &[]).await.unwrap();
    let mut all = store.reviewed_features(&user, None).await.unwrap();
    all.sort();
    assert_eq!(
        all,
        vec![
            ("@received pheasant hunting".to_owned(), false),
            ("@received stock lovely".to_owned(), false),
            ("@sent draft isda".to_owned(), true),
        ]
    );
    let since = store.reviewed_features(&user, Some(reset)).await.unwrap();
    assert_eq!(since, vec![("@received stock lovely".to_owned(), false)]);
    assert!(
        store
            .reviewed_features(&fresh_user(), None)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn a_gmail_grant_is_kept_replaced_and_forgotten_per_user(store: &dyn Store) {
    let (a, b) = (fresh_user(), fresh_user());
    assert!(store.gmail_grant(&a).await.unwrap().is_none());
    store.save_gmail_grant(&a, "v1:k:first").await.unwrap();
    store.save_gmail_grant(&a, "v1:k:second").await.unwrap();
    let grant = store.gmail_grant(&a).await.unwrap().expect("stored");
    assert_eq!(grant.sealed, "v1:k:second");
    assert!(store.gmail_grant(&b).await.unwrap().is_none(), "not B's");
    assert!(
        !store.delete_gmail_grant(&b).await.unwrap(),
        "B forgets nothing of A's"
    );
    assert!(store.gmail_grant(&a).await.unwrap().is_some());
    assert!(store.delete_gmail_grant(&a).await.unwrap());
    assert!(store.gmail_grant(&a).await.unwrap().is_none());
    assert!(!store.delete_gmail_grant(&a).await.unwrap());
}

pub async fn users_are_isolated(store: &dyn Store) {
    let (a, b) = (fresh_user(), fresh_user());
    let settings = Settings {
        currency: "EUR".to_owned(),
        ..Settings::default()
    };
    store.save_settings(&a, &settings).await.unwrap();
    let batch = Batch {
        events: vec![EventState {
            uid: "uid-1".to_owned(),
            sequence: 0,
            cancelled: false,
            message_id: Some("shared-id".to_owned()),
        }],
        ..entries_batch(vec![entry("shared-id", "2026-04-01", Some("Acme"))])
    };
    store.save_batch(&a, &batch).await.unwrap();
    store
        .record_scan(&a, &scan("scan-a", "2026-04-10T09:00:00Z"))
        .await
        .unwrap();

    assert_eq!(store.settings(&b).await.unwrap(), Settings::default());
    assert_eq!(store.list_entries(&b, &all()).await.unwrap(), (vec![], 0));
    assert_eq!(store.entry_by_message(&b, "shared-id").await.unwrap(), None);
    assert!(
        store
            .processed_ids(&b, &["shared-id".to_owned()], "")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.event(&b, "uid-1").await.unwrap(), None);
    assert!(store.scans(&b, 10).await.unwrap().is_empty());
    let summary = store.summary(&b, &query(GroupBy::Client)).await.unwrap();
    assert!(
        summary.groups.is_empty() && summary.total.is_empty(),
        "{summary:?}"
    );

    // The same message id is a different entry for B, and B's save leaves A's alone.
    let mine = TimeEntry {
        description: "B's own".to_owned(),
        ..entry("shared-id", "2026-04-02", None)
    };
    let saved = store
        .save_batch(&b, &entries_batch(vec![mine]))
        .await
        .unwrap();
    assert_eq!(saved.created, ["shared-id"]);
    let a_entry = store
        .entry_by_message(&a, "shared-id")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a_entry.description, "Email about shared-id");
    assert_eq!(store.settings(&a).await.unwrap().currency, "EUR");
}

pub async fn listing_filters_by_dates_client_and_status(store: &dyn Store) {
    let user = fresh_user();
    store
        .save_batch(&user, &entries_batch(summary_fixture()))
        .await
        .unwrap();
    let user = &user;
    let list = |filter: EntryFilter| async move {
        let (entries, total) = store.list_entries(user, &filter).await.unwrap();
        assert_eq!(total as usize, entries.len());
        message_ids(&entries)
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };

    let between = EntryFilter {
        from: Some(date("2026-03-31")),
        to: Some(date("2026-04-03")),
        ..all()
    };
    assert_eq!(list(between).await, ["m6", "m4", "m3", "m2"]);
    let from = EntryFilter {
        from: Some(date("2026-04-05")),
        ..all()
    };
    assert_eq!(list(from).await, ["m5", "m7"]);
    let to = EntryFilter {
        to: Some(date("2026-03-30")),
        ..all()
    };
    assert_eq!(list(to).await, ["m1"]);
    let client = EntryFilter {
        client: Some("aCME".to_owned()),
        ..all()
    };
    assert_eq!(list(client).await, ["m5", "m2", "m1"]);
    let status = EntryFilter {
        status: Some(EntryStatus::Rejected),
        ..all()
    };
    assert_eq!(list(status).await, ["m6"]);
    let combined = EntryFilter {
        client: Some("Acme".to_owned()),
        status: Some(EntryStatus::Suggested),
        from: Some(date("2026-03-31")),
        ..all()
    };
    assert_eq!(list(combined).await, ["m2"]);
    let nothing = EntryFilter {
        client: Some("Acm".to_owned()),
        ..all()
    };
    assert!(list(nothing).await.is_empty());
}

pub async fn listing_is_newest_first_and_paginates_with_a_total(store: &dyn Store) {
    let user = fresh_user();
    let mut entries = Vec::new();
    // Same day: the later created_at comes first.
    for (id, day, created) in [
        ("old", "2026-03-01", "2026-03-01T10:00:00Z"),
        ("same-day-early", "2026-04-01", "2026-04-01T08:00:00Z"),
        ("same-day-late", "2026-04-01", "2026-04-01T18:00:00Z"),
        ("newest", "2026-04-02", "2026-04-02T08:00:00Z"),
        ("middle", "2026-03-15", "2026-03-15T08:00:00Z"),
    ] {
        entries.push(TimeEntry {
            created_at: at(created),
            ..entry(id, day, Some("Acme"))
        });
    }
    store
        .save_batch(&user, &entries_batch(entries))
        .await
        .unwrap();

    let page = |offset: u32| EntryFilter {
        limit: 2,
        offset,
        ..EntryFilter::default()
    };
    let (p1, t1) = store.list_entries(&user, &page(0)).await.unwrap();
    let (p2, t2) = store.list_entries(&user, &page(2)).await.unwrap();
    let (p3, t3) = store.list_entries(&user, &page(4)).await.unwrap();
    let (p4, t4) = store.list_entries(&user, &page(6)).await.unwrap();
    assert_eq!(message_ids(&p1), ["newest", "same-day-late"]);
    assert_eq!(message_ids(&p2), ["same-day-early", "middle"]);
    assert_eq!(message_ids(&p3), ["old"]);
    assert!(p4.is_empty());
    assert_eq!([t1, t2, t3, t4], [5, 5, 5, 5]);
}

pub async fn summaries_by_client_and_matter_have_exact_totals(store: &dyn Store) {
    let user = fresh_user();
    store
        .save_batch(&user, &entries_batch(summary_fixture()))
        .await
        .unwrap();

    let by_client = store.summary(&user, &query(GroupBy::Client)).await.unwrap();
    assert_eq!(by_client.group_by, GroupBy::Client);
    // Most billed first; the tie at 6 minutes is broken by key ("(" sorts before "B").
    assert_eq!(
        by_client.groups,
        [
            group("Acme", "USD", 3, 85.5, 96, 1.6, 480.0),
            group("Gamma", "EUR", 1, 7.3, 12, 0.2, 30.0),
            group("(none)", "USD", 1, 3.0, 6, 0.1, 0.0),
            group("Beta", "USD", 1, 4.2, 6, 0.1, 20.0),
        ]
    );
    assert_eq!(
        by_client.total,
        [
            group("total", "EUR", 1, 7.3, 12, 0.2, 30.0),
            group("total", "USD", 5, 92.7, 108, 1.8, 500.0),
        ]
    );

    let by_matter = store.summary(&user, &query(GroupBy::Matter)).await.unwrap();
    assert_eq!(
        by_matter.groups,
        [
            group("(none)", "USD", 3, 57.2, 66, 1.1, 290.0),
            group("Merger", "USD", 2, 35.5, 42, 0.7, 210.0),
            group("(none)", "EUR", 1, 7.3, 12, 0.2, 30.0),
        ]
    );
    assert_eq!(by_matter.total, by_client.total);
}

pub async fn summaries_by_day_week_and_month_have_exact_totals(store: &dyn Store) {
    let user = fresh_user();
    store
        .save_batch(&user, &entries_batch(summary_fixture()))
        .await
        .unwrap();

    let days = SummaryQuery {
        from: Some(date("2026-03-31")),
        to: Some(date("2026-04-02")),
        ..query(GroupBy::Day)
    };
    let by_day = store.summary(&user, &days).await.unwrap();
    assert_eq!((by_day.from, by_day.to), (days.from, days.to));
    assert_eq!(
        by_day.groups,
        [
            group("2026-03-31", "USD", 1, 25.5, 30, 0.5, 150.0),
            group("2026-04-01", "USD", 1, 4.2, 6, 0.1, 20.0),
            group("2026-04-02", "USD", 1, 3.0, 6, 0.1, 0.0),
        ]
    );
    assert_eq!(
        by_day.total,
        [group("total", "USD", 3, 32.7, 42, 0.7, 170.0)]
    );

    // The week of Monday 2026-03-30 runs into April and ends on Sunday 2026-04-05.
    let by_week = store.summary(&user, &query(GroupBy::Week)).await.unwrap();
    assert_eq!(
        by_week.groups,
        [
            group("2026-03-30", "EUR", 1, 7.3, 12, 0.2, 30.0),
            group("2026-03-30", "USD", 4, 42.7, 54, 0.9, 230.0),
            group("2026-04-06", "USD", 1, 50.0, 54, 0.9, 270.0),
        ]
    );

    let by_month = store.summary(&user, &query(GroupBy::Month)).await.unwrap();
    assert_eq!(
        by_month.groups,
        [
            group("2026-03", "USD", 2, 35.5, 42, 0.7, 210.0),
            group("2026-04", "EUR", 1, 7.3, 12, 0.2, 30.0),
            group("2026-04", "USD", 3, 57.2, 66, 1.1, 290.0),
        ]
    );
}

pub async fn billable_only_summaries_leave_out_non_billable_entries(store: &dyn Store) {
    let user = fresh_user();
    store
        .save_batch(&user, &entries_batch(summary_fixture()))
        .await
        .unwrap();
    let q = SummaryQuery {
        billable_only: true,
        ..query(GroupBy::Client)
    };
    let summary = store.summary(&user, &q).await.unwrap();
    assert!(summary.billable_only);
    assert_eq!(
        summary.groups,
        [
            group("Acme", "USD", 3, 85.5, 96, 1.6, 480.0),
            group("Gamma", "EUR", 1, 7.3, 12, 0.2, 30.0),
            group("Beta", "USD", 1, 4.2, 6, 0.1, 20.0),
        ]
    );
    assert_eq!(
        summary.total,
        [
            group("total", "EUR", 1, 7.3, 12, 0.2, 30.0),
            group("total", "USD", 4, 89.7, 102, 1.7, 500.0),
        ]
    );
}

pub async fn rejected_entries_are_listed_but_left_out_of_summaries(store: &dyn Store) {
    let user = fresh_user();
    let rejected = TimeEntry {
        status: EntryStatus::Rejected,
        billed_minutes: 60,
        amount: 300.0,
        ..entry("nope", "2026-04-01", Some("Acme"))
    };
    let kept = entry("yes", "2026-04-01", Some("Acme"));
    store
        .save_batch(&user, &entries_batch(vec![rejected, kept]))
        .await
        .unwrap();

    assert_eq!(store.list_entries(&user, &all()).await.unwrap().1, 2);
    let summary = store.summary(&user, &query(GroupBy::Day)).await.unwrap();
    assert_eq!(
        summary.groups,
        [group("2026-04-01", "USD", 1, 4.5, 6, 0.1, 30.0)]
    );
    assert_eq!(summary.total, [group("total", "USD", 1, 4.5, 6, 0.1, 30.0)]);
}

pub async fn calendar_events_are_upserted_and_found_by_uid(store: &dyn Store) {
    let user = fresh_user();
    assert_eq!(store.event(&user, "uid-1@cal").await.unwrap(), None);
    let invite = EventState {
        uid: "uid-1@cal".to_owned(),
        sequence: 0,
        cancelled: false,
        message_id: Some("invite".to_owned()),
    };
    let batch = |e: &EventState| Batch {
        events: vec![e.clone()],
        ..Batch::default()
    };
    store.save_batch(&user, &batch(&invite)).await.unwrap();
    assert_eq!(
        store.event(&user, "uid-1@cal").await.unwrap(),
        Some(invite.clone())
    );

    let cancelled = EventState {
        sequence: 2,
        cancelled: true,
        message_id: None,
        ..invite
    };
    store.save_batch(&user, &batch(&cancelled)).await.unwrap();
    assert_eq!(
        store.event(&user, "uid-1@cal").await.unwrap(),
        Some(cancelled)
    );
    assert_eq!(store.event(&user, "uid-2@cal").await.unwrap(), None);
}

pub async fn events_are_looked_up_together_by_any_uid(store: &dyn Store) {
    let (user, other) = (fresh_user(), fresh_user());
    // Calendar UIDs are free text: nothing in them may break the lookup's request.
    let uids = [
        "040000008200E00074C5B7101A82E008@outlook",
        "a,b.(c)\"d\" e@cal",
        "in.(x,y)",
        "ünïcödé 🗓",
        "with space@cal",
    ];
    let states: Vec<EventState> = uids
        .iter()
        .enumerate()
        .map(|(i, uid)| EventState {
            uid: (*uid).to_owned(),
            sequence: i as i64,
            cancelled: i % 2 == 0,
            message_id: (i % 2 == 1).then(|| format!("invite-{i}")),
        })
        .collect();
    let batch = Batch {
        events: states.clone(),
        ..Batch::default()
    };
    store.save_batch(&user, &batch).await.unwrap();

    let mut asked: Vec<String> = uids.iter().map(|u| (*u).to_owned()).collect();
    asked.push("never-seen@cal".to_owned());
    let found = store.events(&user, &asked).await.unwrap();
    let expected: HashMap<String, EventState> =
        states.into_iter().map(|e| (e.uid.clone(), e)).collect();
    assert_eq!(found, expected);
    for (uid, state) in &expected {
        assert_eq!(store.event(&user, uid).await.unwrap().as_ref(), Some(state));
    }
    assert!(store.events(&other, &asked).await.unwrap().is_empty());
    assert!(store.events(&user, &[]).await.unwrap().is_empty());
}

pub async fn thread_matters_are_each_threads_latest_entry_with_a_matter(store: &dyn Store) {
    let (user, other) = (fresh_user(), fresh_user());
    // Thread ids are Message-IDs: free text, like calendar UIDs.
    let odd = "a,b.(c)\"d\" e@mail";
    let e = |id: &str, day: &str, thread: &str, client: &str, matter: Option<&str>| TimeEntry {
        thread_id: Some(thread.to_owned()),
        matter: matter.map(str::to_owned),
        ..entry(id, day, Some(client))
    };
    let batch = entries_batch(vec![
        e("m1", "2026-04-01", "t1", "Acme", Some("A-1")),
        e("m2", "2026-04-03", "t1", "Acme", Some("A-2")),
        // The latest entry has no matter: the latest that has one answers.
        e("m3", "2026-04-05", "t1", "Acme", None),
        e("m4", "2026-04-02", odd, "Beta", Some("B-1")),
        e("m5", "2026-04-02", "t3", "Acme", None),
    ]);
    store.save_batch(&user, &batch).await.unwrap();
    let asked: Vec<String> = ["t1", odd, "t3", "never-seen"]
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
    let found = store.thread_matters(&user, &asked).await.unwrap();
    let expected: HashMap<String, (String, String)> =
        [("t1", ("Acme", "A-2")), (odd, ("Beta", "B-1"))]
            .into_iter()
            .map(|(t, (c, m))| (t.to_owned(), (c.to_owned(), m.to_owned())))
            .collect();
    assert_eq!(found, expected);
    assert!(
        store
            .thread_matters(&other, &asked)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.thread_matters(&user, &[]).await.unwrap().is_empty());
}

pub async fn scans_are_recorded_updated_and_listed_newest_first(store: &dyn Store) {
    let user = fresh_user();
    let first = scan("scan-1", "2026-04-01T09:00:00Z");
    let second = scan("scan-2", "2026-04-02T09:00:00Z");
    let third = scan("scan-3", "2026-04-03T09:00:00Z");
    for s in [&second, &first, &third] {
        store.record_scan(&user, s).await.unwrap();
    }
    let finished = ScanRecord {
        finished_at: Some(at("2026-04-02T09:05:00Z")),
        status: ScanStatus::Completed,
        examined: 20_000,
        entries_created: 312,
        errors: 2,
        cursor: Some("history:123456".to_owned()),
        ..second
    };
    store.record_scan(&user, &finished).await.unwrap();

    let listed = store.scans(&user, 10).await.unwrap();
    assert_eq!(listed, [third.clone(), finished.clone(), first]);
    assert_eq!(store.scans(&user, 2).await.unwrap(), [third, finished]);
}

// ---------------------------------------------------------------- SQLite runs

/// Sorted message ids of a listing, for comparisons that ignore order.
async fn listed(store: &dyn Store, user: &UserId, filter: EntryFilter) -> Vec<String> {
    let (entries, total) = store.list_entries(user, &filter).await.unwrap();
    assert_eq!(total as usize, entries.len());
    let mut ids: Vec<String> = entries.into_iter().map(|e| e.message_id).collect();
    ids.sort();
    ids
}

pub async fn a_persons_change_is_kept_whole_through_later_batches(store: &dyn Store) {
    let user = fresh_user();
    let suggested = entry("m1", "2026-04-01", Some("Acme"));
    store
        .save_batch(&user, &entries_batch(vec![suggested.clone()]))
        .await
        .unwrap();
    let edited = TimeEntry {
        client: Some("Globex".to_owned()),
        matter: Some("G-7".to_owned()),
        description: "Reviewed the lease".to_owned(),
        billed_minutes: 12,
        amount: 60.0,
        task_code: Some("L120".to_owned()),
        activity_code: Some("A104".to_owned()),
        reviewed_at: Some(at("2026-04-11T10:00:00Z")),
        ..suggested.clone()
    };
    store
        .write_reviewed(&user, std::slice::from_ref(&edited), &[])
        .await
        .unwrap();
    assert_eq!(
        store
            .entries_by_id(&user, std::slice::from_ref(&edited.id))
            .await
            .unwrap(),
        std::slice::from_ref(&edited)
    );

    // A rescan (the analysis again, unreviewed) and a cancellation leave it alone.
    let rescan = Batch {
        deleted_entries: vec!["m1".to_owned()],
        ..entries_batch(vec![suggested.clone()])
    };
    store.save_batch(&user, &rescan).await.unwrap();
    assert_eq!(
        store.entry_by_message(&user, "m1").await.unwrap(),
        Some(edited.clone())
    );

    // A person may change it again, status included.
    let approved = TimeEntry {
        status: EntryStatus::Approved,
        reviewed_at: Some(at("2026-04-12T10:00:00Z")),
        ..edited
    };
    store
        .write_reviewed(&user, std::slice::from_ref(&approved), &[])
        .await
        .unwrap();
    assert_eq!(
        store.entry_by_message(&user, "m1").await.unwrap(),
        Some(approved)
    );
}

pub async fn a_manual_entry_is_inserted_and_removed_by_id(store: &dyn Store) {
    let user = fresh_user();
    let manual = TimeEntry {
        analyzer: "manual".to_owned(),
        activity: Activity::Call,
        reviewed_at: Some(at("2026-04-11T10:00:00Z")),
        ..entry("manual:call-1", "2026-04-03", Some("Acme"))
    };
    store
        .write_reviewed(&user, std::slice::from_ref(&manual), &[])
        .await
        .unwrap();
    assert_eq!(listed(store, &user, all()).await, ["manual:call-1"]);
    store
        .write_reviewed(&user, &[], std::slice::from_ref(&manual.id))
        .await
        .unwrap();
    assert!(listed(store, &user, all()).await.is_empty());
}

pub async fn entries_by_id_finds_only_the_users_own(store: &dyn Store) {
    let (a, b) = (fresh_user(), fresh_user());
    let mine = entry("m1", "2026-04-01", Some("Acme"));
    store
        .save_batch(&a, &entries_batch(vec![mine.clone()]))
        .await
        .unwrap();
    let asked = [
        mine.id.clone(),
        uuid::Uuid::new_v4().to_string(),
        "not-an-id".to_owned(),
    ];
    assert_eq!(
        store.entries_by_id(&a, &asked).await.unwrap(),
        std::slice::from_ref(&mine)
    );
    assert!(store.entries_by_id(&b, &asked).await.unwrap().is_empty());
    // B deleting A's id removes nothing.
    store
        .write_reviewed(&b, &[], std::slice::from_ref(&mine.id))
        .await
        .unwrap();
    assert_eq!(store.entries_by_id(&a, &asked).await.unwrap(), [mine]);
}

pub async fn merged_entries_are_hidden_until_split(store: &dyn Store) {
    let user = fresh_user();
    let (one, two) = (
        entry("m1", "2026-04-01", Some("Acme")),
        entry("m2", "2026-04-01", Some("Acme")),
    );
    store
        .save_batch(&user, &entries_batch(vec![one.clone(), two.clone()]))
        .await
        .unwrap();
    let stamp = Some(at("2026-04-11T10:00:00Z"));
    let merged = TimeEntry {
        message_id: "merge:1".to_owned(),
        duration_minutes: 9.0,
        billed_minutes: 12,
        amount: 60.0,
        reviewed_at: stamp,
        ..entry("merge:1", "2026-04-01", Some("Acme"))
    };
    let parts: Vec<TimeEntry> = [&one, &two]
        .into_iter()
        .map(|e| TimeEntry {
            merged_into: Some(merged.id.clone()),
            reviewed_at: stamp,
            ..e.clone()
        })
        .collect();
    let mut upserts = parts.clone();
    upserts.push(merged.clone());
    store.write_reviewed(&user, &upserts, &[]).await.unwrap();

    assert_eq!(listed(store, &user, all()).await, ["merge:1"]);
    let summary = store.summary(&user, &query(GroupBy::Client)).await.unwrap();
    assert_eq!(
        (summary.total[0].entries, summary.total[0].billed_minutes),
        (1, 12)
    );
    let mut found = store.merged_parts(&user, &merged.id).await.unwrap();
    found.sort_by(|a, b| a.message_id.cmp(&b.message_id));
    assert_eq!(found, parts);
    // A rescan does not bring the parts back.
    store
        .save_batch(&user, &entries_batch(vec![one.clone(), two.clone()]))
        .await
        .unwrap();
    assert_eq!(listed(store, &user, all()).await, ["merge:1"]);

    let restored: Vec<TimeEntry> = parts
        .into_iter()
        .map(|e| TimeEntry {
            merged_into: None,
            ..e
        })
        .collect();
    store
        .write_reviewed(&user, &restored, std::slice::from_ref(&merged.id))
        .await
        .unwrap();
    assert_eq!(listed(store, &user, all()).await, ["m1", "m2"]);
    assert!(
        store
            .merged_parts(&user, &merged.id)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn listing_and_totals_filter_by_matter_status_and_export(store: &dyn Store) {
    let user = fresh_user();
    let mut lease = entry("lease", "2026-04-01", Some("Acme"));
    lease.matter = Some("A-1".to_owned());
    let mut merger = entry("merger", "2026-04-01", Some("Acme"));
    merger.matter = Some("A-2".to_owned());
    merger.billed_minutes = 30;
    let mut done = entry("done", "2026-04-02", Some("Acme"));
    done.matter = Some("A-1".to_owned());
    store
        .save_batch(
            &user,
            &entries_batch(vec![lease.clone(), merger.clone(), done.clone()]),
        )
        .await
        .unwrap();
    let exported = TimeEntry {
        status: EntryStatus::Approved,
        reviewed_at: Some(at("2026-04-11T10:00:00Z")),
        export_batch: Some("batch-1".to_owned()),
        exported_at: Some(at("2026-04-12T10:00:00Z")),
        ..done
    };
    store.write_reviewed(&user, &[exported], &[]).await.unwrap();

    let of_matter = EntryFilter {
        matter: Some("a-1".to_owned()),
        ..all()
    };
    assert_eq!(listed(store, &user, of_matter).await, ["done", "lease"]);
    let not_exported = EntryFilter {
        exported: Some(false),
        ..all()
    };
    assert_eq!(
        listed(store, &user, not_exported).await,
        ["lease", "merger"]
    );
    let was_exported = EntryFilter {
        exported: Some(true),
        ..all()
    };
    assert_eq!(listed(store, &user, was_exported).await, ["done"]);

    let by_status = store.summary(&user, &query(GroupBy::Status)).await.unwrap();
    let keys: Vec<(&str, u64)> = by_status
        .groups
        .iter()
        .map(|g| (g.key.as_str(), g.entries))
        .collect();
    assert_eq!(keys, [("suggested", 2), ("approved", 1)]);
    let approved = SummaryQuery {
        status: Some(EntryStatus::Approved),
        ..query(GroupBy::Matter)
    };
    let s = store.summary(&user, &approved).await.unwrap();
    assert_eq!(
        (s.groups.len(), s.groups[0].key.as_str(), s.total[0].entries),
        (1, "A-1", 1)
    );
    let merger_only = SummaryQuery {
        matter: Some("A-2".to_owned()),
        ..query(GroupBy::Client)
    };
    let s = store.summary(&user, &merger_only).await.unwrap();
    assert_eq!(s.total[0].billed_minutes, 30);
}

fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("billable.sqlite3")).unwrap();
    (dir, store)
}

macro_rules! on_sqlite {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let (_dir, store) = super::sqlite();
                    super::$name(&store).await;
                }
            )*
        }
    };
}

on_sqlite!(
    settings_are_the_defaults_until_saved_and_then_round_trip,
    saving_the_same_batch_twice_creates_nothing_new_the_second_time,
    an_updated_entry_keeps_its_id_and_created_at,
    an_approved_entry_is_neither_overwritten_nor_deleted_by_later_batches,
    deleted_entries_remove_unreviewed_entries_once,
    processed_ids_returns_exactly_the_processed_subset,
    unmatched_mail_counts_as_processed_only_under_its_matching_key,
    reviewed_counterparts_count_each_persons_approvals_and_rejections,
    reviewed_features_are_what_each_review_teaches_after_a_reset,
    users_are_isolated,
    a_gmail_grant_is_kept_replaced_and_forgotten_per_user,
    listing_filters_by_dates_client_and_status,
    listing_is_newest_first_and_paginates_with_a_total,
    summaries_by_client_and_matter_have_exact_totals,
    summaries_by_day_week_and_month_have_exact_totals,
    billable_only_summaries_leave_out_non_billable_entries,
    rejected_entries_are_listed_but_left_out_of_summaries,
    calendar_events_are_upserted_and_found_by_uid,
    events_are_looked_up_together_by_any_uid,
    thread_matters_are_each_threads_latest_entry_with_a_matter,
    scans_are_recorded_updated_and_listed_newest_first,
    a_persons_change_is_kept_whole_through_later_batches,
    a_manual_entry_is_inserted_and_removed_by_id,
    entries_by_id_finds_only_the_users_own,
    merged_entries_are_hidden_until_split,
    listing_and_totals_filter_by_matter_status_and_export,
);

// ---------------------------------------------------------------- Supabase runs

/// The same behaviours through postrust with a signed JWT per user, so row-level
/// security is in the path (needs ./scripts/test.sh's services).
macro_rules! on_supabase {
    ($($name:ident),* $(,)?) => {
        mod on_supabase {
            $(
                #[tokio::test]
                async fn $name() {
                    if crate::services::STORE_SUITE.skipped() {
                        return;
                    }
                    let store = crate::services::suite_store();
                    super::$name(&*store).await;
                }
            )*
        }
    };
}

on_supabase!(
    settings_are_the_defaults_until_saved_and_then_round_trip,
    saving_the_same_batch_twice_creates_nothing_new_the_second_time,
    an_updated_entry_keeps_its_id_and_created_at,
    an_approved_entry_is_neither_overwritten_nor_deleted_by_later_batches,
    deleted_entries_remove_unreviewed_entries_once,
    processed_ids_returns_exactly_the_processed_subset,
    unmatched_mail_counts_as_processed_only_under_its_matching_key,
    reviewed_counterparts_count_each_persons_approvals_and_rejections,
    reviewed_features_are_what_each_review_teaches_after_a_reset,
    users_are_isolated,
    a_gmail_grant_is_kept_replaced_and_forgotten_per_user,
    listing_filters_by_dates_client_and_status,
    listing_is_newest_first_and_paginates_with_a_total,
    summaries_by_client_and_matter_have_exact_totals,
    summaries_by_day_week_and_month_have_exact_totals,
    billable_only_summaries_leave_out_non_billable_entries,
    rejected_entries_are_listed_but_left_out_of_summaries,
    calendar_events_are_upserted_and_found_by_uid,
    events_are_looked_up_together_by_any_uid,
    thread_matters_are_each_threads_latest_entry_with_a_matter,
    scans_are_recorded_updated_and_listed_newest_first,
    a_persons_change_is_kept_whole_through_later_batches,
    a_manual_entry_is_inserted_and_removed_by_id,
    entries_by_id_finds_only_the_users_own,
    merged_entries_are_hidden_until_split,
    listing_and_totals_filter_by_matter_status_and_export,
);

#[tokio::test]
async fn reopening_the_same_sqlite_file_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/billable.sqlite3");
    let user = UserId::local();
    let e = entry("kept", "2026-04-01", Some("Acme"));
    let settings = Settings {
        billing_increment_minutes: 15,
        ..Settings::default()
    };
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .save_batch(&user, &entries_batch(vec![e.clone()]))
            .await
            .unwrap();
        store.save_settings(&user, &settings).await.unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store.entry_by_message(&user, "kept").await.unwrap(),
        Some(e)
    );
    assert_eq!(store.settings(&user).await.unwrap(), settings);
    assert_eq!(
        store
            .processed_ids(&user, &["kept".to_owned()], "")
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_scan_sized_workload_saves_in_batches() {
    let (_dir, store) = sqlite();
    let user = UserId::local();
    let started = std::time::Instant::now();
    for chunk in 0..50 {
        let entries = (0..400)
            .map(|i| entry(&format!("bulk-{chunk}-{i}"), "2026-04-01", Some("Acme")))
            .collect();
        let saved = store
            .save_batch(&user, &entries_batch(entries))
            .await
            .unwrap();
        assert_eq!(saved.created.len(), 400);
    }
    let elapsed = started.elapsed();
    assert_eq!(
        store
            .list_entries(
                &user,
                &EntryFilter {
                    limit: 1,
                    ..EntryFilter::default()
                }
            )
            .await
            .unwrap()
            .1,
        20_000
    );
    eprintln!("saved 20,000 entries in {elapsed:?}");
}
