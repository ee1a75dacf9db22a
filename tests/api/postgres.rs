//! The migrations in sql/, checked in SQL: applying them twice changes nothing,
//! every table has row-level security, the `authenticated` role sees and changes
//! only its own rows, `anon` nothing, and the list and summary queries use the
//! indexes on a table of realistic size. Each test migrates a database of its own.

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::services::{POSTGRES, TempDb};

const TABLES: [&str; 9] = [
    "time_entries",
    "processed_messages",
    "tracking_settings",
    "calendar_events",
    "scans",
    "scan_jobs",
    "user_versions",
    "gmail_grants",
    "rate_buckets",
];

/// Switches this connection's transaction to `authenticated` acting as `sub`, the
/// way PostgREST does for a request with that user's JWT.
async fn act_as(client: &Client, sub: &str) {
    let claims = serde_json::json!({"sub": sub, "role": "authenticated", "aud": "authenticated"});
    client
        .query(
            "select set_config('role', 'authenticated', true), \
             set_config('request.jwt.claims', $1, true)",
            &[&claims.to_string()],
        )
        .await
        .expect("become the user");
}

async fn insert_entry_as(client: &Client, sub: &str, message_id: &str) {
    client.batch_execute("begin").await.unwrap();
    act_as(client, sub).await;
    client
        .execute(
            "insert into public.time_entries (message_id, activity, description, work_date, \
             duration_minutes, billed_minutes, currency, confidence, analyzer) \
             values ($1, 'email_sent', 'Drafted the reply', '2026-04-01', 10, 12, 'USD', 0.9, 'rules')",
            &[&message_id],
        )
        .await
        .expect("insert as the owner");
    client.batch_execute("commit").await.unwrap();
}

#[tokio::test]
async fn migrating_twice_applies_nothing_the_second_time() {
    if POSTGRES.skipped() {
        return;
    }
    let db = TempDb::new().await;
    let again = billable::migrate::migrate(&db.url, billable::migrate::Compat::Auto)
        .await
        .unwrap();
    assert!(
        again.applied.is_empty() && again.skipped.is_empty(),
        "{again:?}"
    );
    assert_eq!(again.already.len(), billable::migrate::MIGRATIONS.len());
    db.drop().await;
}

#[tokio::test]
async fn the_compat_migration_is_skipped_where_an_auth_schema_exists() {
    if POSTGRES.skipped() {
        return;
    }
    // A Supabase project already has the auth schema (and its own auth.uid()).
    let db = TempDb::new().await;
    let client = db.client().await;
    client
        .batch_execute("drop schema billable cascade")
        .await
        .unwrap();
    let report = billable::migrate::migrate(&db.url, billable::migrate::Compat::Auto)
        .await
        .unwrap();
    // pgmq is there already too (as it is on a project with the extension on).
    assert_eq!(
        report.skipped,
        [billable::migrate::COMPAT, billable::migrate::PGMQ]
    );
    assert_eq!(
        report.applied.len(),
        billable::migrate::MIGRATIONS.len() - 2
    );
    db.drop().await;
}

#[tokio::test]
async fn every_table_has_row_level_security_and_nothing_for_anon() {
    if POSTGRES.skipped() {
        return;
    }
    let db = TempDb::new().await;
    let client = db.client().await;
    let rows = client
        .query(
            "select c.relname, c.relrowsecurity, \
                    has_table_privilege('anon', c.oid, 'select,insert,update,delete'), \
                    (select array_agg(p.polcmd::text order by p.polcmd) from pg_policy p where p.polrelid = c.oid) \
             from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname = 'public' and c.relkind in ('r', 'p') order by 1",
            &[],
        )
        .await
        .unwrap();
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    let mut expected: Vec<&str> = TABLES.to_vec();
    expected.sort();
    assert_eq!(names, expected, "tables in public");
    for row in &rows {
        let name: String = row.get(0);
        assert!(row.get::<_, bool>(1), "{name} has RLS disabled");
        assert!(!row.get::<_, bool>(2), "anon holds a privilege on {name}");
        let cmds: Vec<String> = row.get::<_, Option<Vec<String>>>(3).unwrap_or_default();
        if name == "user_versions" {
            // Read by its user; moved on only by triggers.
            assert_eq!(cmds, ["r"], "{name}");
        } else if name == "rate_buckets" {
            // Charged only through take_rate, by the servers' and workers' role.
            assert!(cmds.is_empty(), "{name}: {cmds:?}");
        } else if name == "scan_jobs" {
            // Users read their own jobs and change them only through the functions;
            // the workers read and update them.
            assert_eq!(cmds, ["r", "r", "w"], "{name}");
        } else {
            assert_eq!(cmds, ["a", "d", "r", "w"], "{name}: one policy per command");
        }
    }
    db.drop().await;
}

#[tokio::test]
async fn as_authenticated_a_user_sees_and_changes_only_their_own_rows() {
    if POSTGRES.skipped() {
        return;
    }
    let db = TempDb::new().await;
    let client = db.client().await;
    let a = uuid::Uuid::new_v4().to_string();
    let b = uuid::Uuid::new_v4().to_string();
    insert_entry_as(&client, &a, "a-1").await;

    client.batch_execute("begin").await.unwrap();
    act_as(&client, &b).await;
    let seen = client
        .query("select id from public.time_entries", &[])
        .await
        .unwrap();
    assert!(seen.is_empty(), "B reads A's rows");
    let updated = client
        .execute(
            "update public.time_entries set description = 'B was here'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(updated, 0, "B updated A's rows");
    let deleted = client
        .execute("delete from public.time_entries", &[])
        .await
        .unwrap();
    assert_eq!(deleted, 0, "B deleted A's rows");
    let summary = client
        .query("select * from public.time_summary()", &[])
        .await
        .unwrap();
    assert!(summary.is_empty(), "B's summary includes A's rows");
    client.batch_execute("savepoint s").await.unwrap();
    let forged = client
        .execute(
            "insert into public.time_entries (user_id, message_id, activity, work_date, \
             duration_minutes, billed_minutes, currency, confidence, analyzer) \
             values ($1::text::uuid, 'forged', 'other', '2026-04-01', 1, 6, 'USD', 1, 'x')",
            &[&a],
        )
        .await
        .expect_err("B inserted a row owned by A");
    assert_eq!(
        forged.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{forged}"
    );
    client
        .batch_execute("rollback to savepoint s")
        .await
        .unwrap();
    // Nor can B hand one of their own rows over to A: user_id never changes.
    client
        .execute(
            "insert into public.time_entries (message_id, activity, work_date, duration_minutes, \
             billed_minutes, currency, confidence, analyzer) \
             values ('b-1', 'other', '2026-04-01', 1, 6, 'USD', 1, 'x')",
            &[],
        )
        .await
        .unwrap();
    client
        .execute(
            "update public.time_entries set user_id = $1::text::uuid where message_id = 'b-1'",
            &[&a],
        )
        .await
        .expect("B updates their own row");
    let owner: String = client
        .query_one(
            "select user_id::text from public.time_entries where message_id = 'b-1'",
            &[],
        )
        .await
        .expect("B still sees the row")
        .get(0);
    assert_eq!(owner, b);
    client.batch_execute("rollback").await.unwrap();

    client.batch_execute("begin").await.unwrap();
    act_as(&client, &a).await;
    let mine = client
        .query("select description from public.time_entries", &[])
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].get::<_, String>(0), "Drafted the reply");
    client.batch_execute("rollback").await.unwrap();
    db.drop().await;
}

#[tokio::test]
async fn as_anon_every_table_and_function_is_refused() {
    if POSTGRES.skipped() {
        return;
    }
    let db = TempDb::new().await;
    let client = db.client().await;
    for sql in TABLES
        .iter()
        .map(|t| format!("select * from public.{t}"))
        .chain([
            "select * from public.time_summary()".to_owned(),
            "select * from public.processed_message_ids(array['x'])".to_owned(),
        ])
    {
        client
            .batch_execute("begin; set local role anon")
            .await
            .unwrap();
        let err = client.query(&sql, &[]).await.expect_err(&sql);
        assert_eq!(
            err.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {err}"
        );
        client.batch_execute("rollback").await.unwrap();
    }
    db.drop().await;
}

/// 100,000 entries of ten users, written in 250-row chunks per user as scans write
/// them; the first user has 10,000.
async fn fill(client: &Client, users: &[String]) {
    client
        .execute(
            "insert into public.time_entries (user_id, message_id, client, activity, description, \
             work_date, duration_minutes, billed_minutes, amount, currency, confidence, status, analyzer) \
             select ($1::text[])[1 + (i / 250) % 10]::uuid, 'msg-' || i, \
                    (array['Acme', 'Globex', 'Initech', 'Umbrella'])[1 + i % 4], 'email_sent', \
                    'Reviewed the draft', date '2025-01-01' + (i % 700), 4.5, 6, 30, 'USD', 0.9, \
                    (array['suggested', 'needs_review', 'approved', 'rejected'])[1 + i % 4], 'rules' \
             from generate_series(0, 99999) as i",
            &[&users],
        )
        .await
        .expect("generate entries");
    client
        .batch_execute("analyze public.time_entries")
        .await
        .unwrap();
}

async fn plan(client: &Client, sub: &str, sql: &str) -> String {
    client.batch_execute("begin").await.unwrap();
    act_as(client, sub).await;
    let rows = client
        .query(&format!("explain {sql}"), &[])
        .await
        .unwrap_or_else(|e| panic!("explain {sql}: {e}"));
    client.batch_execute("rollback").await.unwrap();
    rows.iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_list_and_summary_queries_use_the_indexes_for_one_user_among_many() {
    if POSTGRES.skipped() {
        return;
    }
    let db = TempDb::new().await;
    let client = db.client().await;
    let users: Vec<String> = (0..10).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    fill(&client, &users).await;
    let me = &users[0];
    let count: i64 = {
        client.batch_execute("begin").await.unwrap();
        act_as(&client, me).await;
        let n = client
            .query_one("select count(*) from public.time_entries", &[])
            .await
            .unwrap()
            .get(0);
        client.batch_execute("rollback").await.unwrap();
        n
    };
    assert_eq!(count, 10_000);

    // What PostgREST runs for list_time_entries (RLS adds the user).
    let list = plan(
        &client,
        me,
        "select * from public.time_entries order by work_date desc, created_at desc, id limit 50",
    )
    .await;
    eprintln!("list plan:\n{list}");
    assert!(list.contains("time_entries_user_date"), "{list}");
    assert!(!list.contains("Seq Scan"), "{list}");

    let by_client = plan(
        &client,
        me,
        "select * from public.time_entries where client_key = 'acme' and work_date >= '2026-01-01' \
         order by work_date desc, created_at desc, id limit 50",
    )
    .await;
    assert!(
        by_client.contains("time_entries_user_client_date"),
        "{by_client}"
    );

    for group_by in ["client", "month"] {
        let summary = plan(
            &client,
            me,
            &format!("select * from public.time_summary(p_group_by => '{group_by}')"),
        )
        .await;
        eprintln!("summary by {group_by} plan:\n{summary}");
        assert!(
            summary.contains("time_entries_user_date")
                || summary.contains("time_entries_user_message"),
            "{summary}"
        );
        assert!(!summary.contains("Seq Scan"), "{summary}");
        assert!(
            !summary.contains("Function Scan"),
            "the function was not inlined: {summary}"
        );
    }
    let period = plan(
        &client,
        me,
        "select * from public.time_summary(p_from => '2026-01-01', p_to => '2026-01-31')",
    )
    .await;
    assert!(period.contains("time_entries_user_date"), "{period}");
    db.drop().await;
}

#[tokio::test]
async fn billable_migrate_applies_everything_once_and_then_nothing() {
    if POSTGRES.skipped() {
        return;
    }
    let run_url = crate::services::database_url();
    let (server, run_db) = run_url.rsplit_once('/').expect("a database URL");
    let name = format!(
        "{run_db}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let admin = crate::services::connect(&format!("{server}/postgres")).await;
    admin
        .batch_execute(&format!("create database \"{name}\""))
        .await
        .unwrap();
    let url = format!("{server}/{name}");
    let home = tempfile::tempdir().unwrap();
    let migrate = || {
        crate::helpers::billable(home.path())
            .args(["migrate", "--json"])
            .env("DATABASE_URL", &url)
            .output()
            .expect("run billable migrate")
    };
    let first = migrate();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(
        report["applied"].as_array().unwrap().len(),
        billable::migrate::MIGRATIONS.len()
    );
    let second = migrate();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(report["applied"], serde_json::json!([]));
    assert_eq!(
        report["already"].as_array().unwrap().len(),
        billable::migrate::MIGRATIONS.len()
    );

    let missing = crate::helpers::billable(home.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("DATABASE_URL"));
    admin
        .batch_execute(&format!("drop database \"{name}\" with (force)"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_user_queues_reads_and_cancels_only_their_own_scan_jobs_within_the_limit() {
    if POSTGRES.skipped() {
        return;
    }
    let db = TempDb::new().await;
    let client = db.client().await;
    let a = uuid::Uuid::new_v4().to_string();
    let b = uuid::Uuid::new_v4().to_string();
    client.batch_execute("begin").await.unwrap();
    act_as(&client, &a).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let row = client
            .query_one("select id::text from public.enqueue_scan('{}'::jsonb)", &[])
            .await
            .expect("queue");
        ids.push(row.get::<_, String>(0));
    }
    let err = client
        .query("select public.enqueue_scan('{}'::jsonb)", &[])
        .await
        .expect_err("a sixth waiting job");
    assert_eq!(err.code().map(|c| c.code()), Some("BL429"), "{err}");
    client.batch_execute("rollback").await.unwrap();
    client.batch_execute("begin").await.unwrap();
    act_as(&client, &a).await;
    let err = client
        .query("select count(*) from pgmq.q_scan_jobs", &[])
        .await
        .expect_err("users never touch the queue itself");
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{err}");
    client.batch_execute("rollback").await.unwrap();
    client.batch_execute("begin").await.unwrap();
    act_as(&client, &a).await;
    let id: String = client
        .query_one("select id::text from public.enqueue_scan('{}'::jsonb)", &[])
        .await
        .expect("queue")
        .get(0);
    client.batch_execute("commit").await.unwrap();
    // As the owner: the job's message is in the queue.
    let queued: i64 = client
        .query_one(
            "select count(*) from pgmq.q_scan_jobs where message->>'job_id' = $1",
            &[&id],
        )
        .await
        .expect("the queue's message")
        .get(0);
    assert_eq!(queued, 1);

    // B sees nothing of it, cannot cancel it, and cannot write the table at all.
    client.batch_execute("begin").await.unwrap();
    act_as(&client, &b).await;
    let seen = client
        .query(
            "select 1 from public.scan_jobs where id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap();
    assert!(seen.is_empty(), "B sees A's job");
    let cancelled = client
        .query("select 1 from public.cancel_scan($1::text::uuid)", &[&id])
        .await
        .unwrap();
    assert!(cancelled.is_empty(), "B cancelled A's job");
    let err = client
        .execute("update public.scan_jobs set state = 'cancelled'", &[])
        .await
        .expect_err("no direct writes");
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{err}");
    client.batch_execute("rollback").await.unwrap();

    // A cancels it.
    client.batch_execute("begin").await.unwrap();
    act_as(&client, &a).await;
    let state: String = client
        .query_one(
            "select state from public.cancel_scan($1::text::uuid)",
            &[&id],
        )
        .await
        .expect("cancel")
        .get(0);
    assert_eq!(state, "cancelled");
    client.batch_execute("commit").await.unwrap();
    db.drop().await;
}

#[tokio::test]
async fn a_users_gmail_grant_is_theirs_alone_and_unreadable_without_the_key() {
    use billable::mail::gmail::vault::TokenKey;
    if POSTGRES.skipped() {
        return;
    }
    let db = TempDb::new().await;
    let client = db.client().await;
    let key = TokenKey::parse("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").unwrap();
    let a = uuid::Uuid::new_v4().to_string();
    let b = uuid::Uuid::new_v4().to_string();
    let token = "1//refresh-token-of-a";
    let sealed = key.seal(&a, token);
    client.batch_execute("begin").await.unwrap();
    act_as(&client, &a).await;
    client
        .execute(
            "insert into public.gmail_grants (sealed) values ($1)",
            &[&sealed],
        )
        .await
        .expect("a stores their grant");
    client.batch_execute("commit").await.unwrap();

    // B sees, changes and deletes nothing of A's, and cannot plant a row as A.
    client.batch_execute("begin").await.unwrap();
    act_as(&client, &b).await;
    let seen: i64 = client
        .query_one("select count(*) from public.gmail_grants", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, 0);
    let changed = client
        .execute("update public.gmail_grants set sealed = 'v1:x:y'", &[])
        .await
        .unwrap();
    let deleted = client
        .execute("delete from public.gmail_grants", &[])
        .await
        .unwrap();
    assert_eq!((changed, deleted), (0, 0));
    let err = client
        .execute(
            "insert into public.gmail_grants (user_id, sealed) values ($1::text::uuid, 'v1:x:y')",
            &[&a],
        )
        .await
        .expect_err("a row as someone else");
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{err}");
    client.batch_execute("rollback").await.unwrap();

    // What the database holds (read here as its owner) is not the token, and opens
    // only with the key and only as A.
    let stored: String = client
        .query_one("select sealed from public.gmail_grants", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!stored.contains(token) && !stored.contains("refresh-token"));
    let dump: String = client
        .query_one(
            "select row_to_json(g)::text from public.gmail_grants g",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!dump.contains("refresh-token"), "{dump}");
    let other = TokenKey::parse("ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=").unwrap();
    assert!(other.open(&a, &stored).is_err());
    assert!(key.open(&b, &stored).is_err());
    assert_eq!(key.open(&a, &stored).unwrap(), token);

    // A revokes: the row is gone.
    client.batch_execute("begin").await.unwrap();
    act_as(&client, &a).await;
    let deleted = client
        .execute("delete from public.gmail_grants", &[])
        .await
        .unwrap();
    client.batch_execute("commit").await.unwrap();
    assert_eq!(deleted, 1);
    db.drop().await;
}

#[tokio::test]
async fn scheduled_scans_are_queued_once_per_slot_and_a_hostile_setting_is_skipped() {
    use billable::domain::settings::Schedule;
    use billable::jobs::Queue;
    if POSTGRES.skipped() {
        return;
    }
    let db = TempDb::new().await;
    let client = db.client().await;
    let users: Vec<String> = (0..4).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let settings = [
        serde_json::json!({"timezone": "America/New_York", "schedule": "weekdays 07:00"}),
        // Written straight through PostgREST, past the server's checks.
        serde_json::json!({"timezone": "Mars/Olympus_Mons", "schedule": "daily 07:00"}),
        serde_json::json!({"timezone": "UTC", "schedule": "daily 7am'; drop table x; --"}),
        serde_json::json!({"timezone": "UTC"}),
    ];
    for (user, settings) in users.iter().zip(&settings) {
        client.batch_execute("begin").await.unwrap();
        act_as(&client, user).await;
        client
            .execute(
                "insert into public.tracking_settings (settings) values ($1)",
                &[settings],
            )
            .await
            .expect("settings");
        client.batch_execute("commit").await.unwrap();
    }
    let queue = billable::jobs::postgres::PgQueue::new(&db.url);
    let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    let queued = queue
        .enqueue_due(at("2026-12-04T13:00:00Z"))
        .await
        .expect("run");
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].user, users[0]);
    assert_eq!(queued[0].due, at("2026-12-04T12:00:00Z"));
    // Twice at once, and again later in the slot: nothing more.
    let other = billable::jobs::postgres::PgQueue::new(&db.url);
    let (again, twice) = tokio::join!(
        queue.enqueue_due(at("2026-12-04T13:00:00Z")),
        other.enqueue_due(at("2026-12-04T20:00:00Z"))
    );
    assert!(again.unwrap().is_empty() && twice.unwrap().is_empty());
    let waiting: i64 = client
        .query_one("select count(*) from pgmq.q_scan_jobs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(waiting, 1, "one message for the one job");
    let state: String = client
        .query_one(
            "select state from public.scan_jobs where id = $1::text::uuid",
            &[&queued[0].job_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "queued");
    // Monday's slot is new.
    let monday = queue.enqueue_due(at("2026-12-07T12:30:00Z")).await.unwrap();
    assert_eq!(monday.len(), 1);

    // Postgres and Rust agree on the slot, DST changes included.
    for (schedule, tz, now) in [
        ("daily 07:00", "America/New_York", "2026-12-04T11:59:59Z"),
        ("weekdays 07:00", "America/New_York", "2026-12-06T18:00:00Z"),
        ("daily 02:30", "America/New_York", "2026-03-08T12:00:00Z"),
        ("daily 01:30", "America/New_York", "2026-11-01T12:00:00Z"),
        ("weekdays 23:45", "Asia/Kolkata", "2026-12-04T18:00:00Z"),
        ("daily 00:00", "Pacific/Chatham", "2026-04-05T12:00:00Z"),
    ] {
        let rust = schedule
            .parse::<Schedule>()
            .unwrap()
            .latest_slot(at(now), tz.parse().unwrap());
        let pg: i64 = client
            .query_one(
                "select (extract(epoch from public.latest_schedule_slot($1, $2, $3::text::timestamptz)) * 1000)::int8",
                &[&schedule, &tz, &now],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(rust.timestamp_millis(), pg, "{schedule} {tz} {now}");
    }
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_rate_limits_hold_across_processes_and_no_user_may_charge_them() {
    use billable::limits::{KeyedLimit, Limit, PgRates, Rate, SharedRates};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    if POSTGRES.skipped() {
        return;
    }
    let db = TempDb::new().await;
    let client = db.client().await;

    // Neither a user nor anon reaches the buckets, through the function or the table.
    for role in ["authenticated", "anon"] {
        client.batch_execute("begin").await.unwrap();
        client
            .batch_execute(&format!("set local role {role}"))
            .await
            .unwrap();
        let err = client
            .query_one(
                "select public.take_rate('llm:requests:m', 1, 1, 1, false)",
                &[],
            )
            .await
            .expect_err("a user charging the LLM's bucket");
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{role}: {err}"
        );
        client.batch_execute("rollback").await.unwrap();
    }
    client.batch_execute("begin").await.unwrap();
    client
        .batch_execute("set local role billable_worker")
        .await
        .unwrap();
    let wait: f64 = client
        .query_one("select public.take_rate('requests:x', 1, 1, 1, false)", &[])
        .await
        .expect("the processes' role charges a bucket")
        .get(0);
    assert_eq!(wait, 0.0);
    client.batch_execute("rollback").await.unwrap();

    // Two processes (two connections) checking one user's requests at once: together
    // they let through one burst and the rate, as one process would alone.
    let a: Arc<dyn SharedRates> = Arc::new(PgRates::new(db.url.clone()));
    let b: Arc<dyn SharedRates> = Arc::new(PgRates::new(db.url.clone()));
    let rate = Rate::per_second(10, 5).unwrap();
    let (la, lb) = (
        Arc::new(KeyedLimit::new("requests", rate, Some(a.clone()))),
        Arc::new(KeyedLimit::new("requests", rate, Some(b.clone()))),
    );
    let started = Instant::now();
    let checks = (0..40).map(|i| {
        let limit = if i % 2 == 0 { la.clone() } else { lb.clone() };
        async move { limit.check("user-1").await.is_ok() }
    });
    let passed = futures::future::join_all(checks)
        .await
        .into_iter()
        .filter(|ok| *ok)
        .count();
    let took = started.elapsed().as_secs_f64();
    let allowed = 5 + (10.0 * took) as usize + 1;
    assert!(
        (5..=allowed).contains(&passed),
        "{passed} of 40 passed in {took:.2} s; the shared limit allows {allowed}"
    );
    // Another user's bucket is their own.
    assert!(la.check("user-2").await.is_ok());
    // Refused, and told how long to wait.
    let wait = lb.check("user-1").await.expect_err("over the limit");
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_secs(3),
        "{wait:?}"
    );

    // Waiting limits (Gmail's quota, the LLM's rate) take turns across processes:
    // 30 units at 20 a second with a burst of 10 take a second, however split.
    let rate = Rate::per_second(20, 10).unwrap();
    let (qa, qb) = (
        Arc::new(Limit::new("gmail:u", rate, Some(a))),
        Arc::new(Limit::new("gmail:u", rate, Some(b))),
    );
    let started = Instant::now();
    let spends = (0..30).map(|i| {
        let limit = if i % 2 == 0 { qa.clone() } else { qb.clone() };
        async move { limit.until_ready(1).await }
    });
    futures::future::join_all(spends).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(5),
        "{took:?}"
    );
    db.drop().await;
}
