//! The embedded store: one SQLite file on the user's machine.
//!
//! rusqlite is synchronous, so the one connection lives behind a mutex and every call
//! runs on tokio's blocking pool. The file is opened in WAL mode so a reader (the CLI
//! listing entries) never waits for a scan that is writing.
//!
//! Storage formats: dates are `YYYY-MM-DD` text (so text order is date order),
//! timestamps RFC 3339 UTC with nanoseconds and a `Z` (fixed width, so text order is
//! time order, and lossless), floats REAL, booleans INTEGER 0/1. Table names match the
//! Postgres schema in `sql/` so both stores read the same way.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::ToSql;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params, params_from_iter};

use super::{
    Batch, EntryFilter, EventState, GmailGrant, Reviewed, Saved, ScanRecord, ScanStatus, Store,
    StoreError,
};
use crate::domain::{
    Activity, EntryStatus, GroupBy, Settings, Summary, SummaryGroup, SummaryQuery, TimeEntry,
    UserId, WorkDate,
};
use crate::jobs::ScanJob;

mod jobs;

/// Schema migrations, applied in order; `PRAGMA user_version` is how many have run.
/// Never edit a released step: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
    CREATE TABLE IF NOT EXISTS time_entries (
        id               TEXT PRIMARY KEY,
        user_id          TEXT NOT NULL,
        message_id       TEXT NOT NULL,
        thread_id        TEXT,
        client           TEXT,
        matter           TEXT,
        activity         TEXT NOT NULL,
        description      TEXT NOT NULL,
        work_date        TEXT NOT NULL,
        duration_minutes REAL NOT NULL,
        billed_minutes   INTEGER NOT NULL,
        hourly_rate      REAL NOT NULL,
        amount           REAL NOT NULL,
        currency         TEXT NOT NULL,
        billable         INTEGER NOT NULL,
        confidence       REAL NOT NULL,
        status           TEXT NOT NULL,
        analyzer         TEXT NOT NULL,
        event_uid        TEXT,
        created_at       TEXT NOT NULL,
        updated_at       TEXT NOT NULL,
        UNIQUE (user_id, message_id)
    );
    CREATE INDEX IF NOT EXISTS time_entries_user_date
        ON time_entries (user_id, work_date DESC);
    -- NOCASE because the client filter is case-insensitive; an index in another
    -- collation would not serve it.
    CREATE INDEX IF NOT EXISTS time_entries_user_client_date
        ON time_entries (user_id, client COLLATE NOCASE, work_date);

    CREATE TABLE IF NOT EXISTS processed_messages (
        user_id      TEXT NOT NULL,
        message_id   TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        analyzer     TEXT NOT NULL,
        outcome      TEXT NOT NULL,
        reason       TEXT,
        processed_at TEXT NOT NULL,
        PRIMARY KEY (user_id, message_id)
    ) WITHOUT ROWID;

    CREATE TABLE IF NOT EXISTS tracking_settings (
        user_id    TEXT PRIMARY KEY,
        settings   TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );

    CREATE TABLE IF NOT EXISTS calendar_events (
        user_id    TEXT NOT NULL,
        uid        TEXT NOT NULL,
        sequence   INTEGER NOT NULL,
        cancelled  INTEGER NOT NULL,
        message_id TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (user_id, uid)
    ) WITHOUT ROWID;

    CREATE TABLE IF NOT EXISTS scans (
        id              TEXT PRIMARY KEY,
        user_id         TEXT NOT NULL,
        source          TEXT NOT NULL,
        query           TEXT,
        started_at      TEXT NOT NULL,
        finished_at     TEXT,
        status          TEXT NOT NULL,
        examined        INTEGER NOT NULL,
        entries_created INTEGER NOT NULL,
        errors          INTEGER NOT NULL,
        cursor          TEXT,
        updated_at      TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS scans_user_started
        ON scans (user_id, started_at DESC);
    "#,
    // 2: review and release: UTBMS codes, a person's review, exports and merges.
    r#"
    ALTER TABLE time_entries ADD COLUMN task_code TEXT;
    ALTER TABLE time_entries ADD COLUMN activity_code TEXT;
    ALTER TABLE time_entries ADD COLUMN reviewed_at TEXT;
    ALTER TABLE time_entries ADD COLUMN export_batch TEXT;
    ALTER TABLE time_entries ADD COLUMN exported_at TEXT;
    ALTER TABLE time_entries ADD COLUMN merged_into TEXT;
    CREATE INDEX IF NOT EXISTS time_entries_merged
        ON time_entries (user_id, merged_into) WHERE merged_into IS NOT NULL;
    -- A scan asks for the matter of each thread it sees (thread_matters).
    CREATE INDEX IF NOT EXISTS time_entries_user_thread
        ON time_entries (user_id, thread_id) WHERE thread_id IS NOT NULL;
    "#,
    // 3: learning (sql/0006_learning.sql): mail that matched no client is examined
    // again when the clients change; the person a message was with, so the people
    // whose entries the user rejected are known to later scans.
    r#"
    ALTER TABLE processed_messages ADD COLUMN unmatched_under TEXT;
    ALTER TABLE processed_messages ADD COLUMN counterpart TEXT;
    "#,
    // 4: background scans (sql/0008_scan_jobs.sql): one worker in the process takes
    // them; at most one runs per user.
    r#"
    CREATE TABLE IF NOT EXISTS scan_jobs (
        id               TEXT PRIMARY KEY,
        user_id          TEXT NOT NULL,
        args             TEXT NOT NULL,
        state            TEXT NOT NULL,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        progress         TEXT NOT NULL DEFAULT '{}',
        result           TEXT,
        error            TEXT,
        attempts         INTEGER NOT NULL DEFAULT 0,
        worker           TEXT,
        lease_until      TEXT,
        created_at       TEXT NOT NULL,
        started_at       TEXT,
        updated_at       TEXT NOT NULL,
        finished_at      TEXT
    );
    CREATE INDEX IF NOT EXISTS scan_jobs_user_created ON scan_jobs (user_id, created_at DESC);
    CREATE UNIQUE INDEX IF NOT EXISTS scan_jobs_one_running ON scan_jobs (user_id)
        WHERE state = 'running';
    "#,
    // 5: each user's Gmail refresh token, sealed (sql/0010_gmail_grants.sql).
    r#"
    CREATE TABLE IF NOT EXISTS gmail_grants (
        user_id    TEXT PRIMARY KEY,
        sealed     TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    "#,
    // 6: scheduled scans (sql/0011_schedules.sql): one job per user and slot.
    r#"
    ALTER TABLE scan_jobs ADD COLUMN scheduled_for TEXT;
    CREATE UNIQUE INDEX IF NOT EXISTS scan_jobs_scheduled_once ON scan_jobs (user_id, scheduled_for)
        WHERE scheduled_for IS NOT NULL;
    "#,
    // 7: evidence of work (sql/0013_evidence.sql): the features of each message with
    // an entry, so a person's review of it teaches later scans.
    r#"
    ALTER TABLE processed_messages ADD COLUMN features TEXT;
    "#,
];

/// How long a writer waits for another process holding the file's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Ids per `IN (…)` query in `processed_ids`: far below SQLite's variable limit, and a
/// full chunk always has the same SQL, so its statement is cached.
const IN_CHUNK: usize = 500;

/// Columns of `time_entries` in the order `entry_from_row` reads them.
const ENTRY_COLUMNS: &str = "id, message_id, thread_id, client, matter, activity, description, \
     work_date, duration_minutes, billed_minutes, hourly_rate, amount, currency, billable, \
     confidence, status, analyzer, created_at, event_uid, task_code, activity_code, reviewed_at, \
     export_batch, exported_at, merged_into";

/// Rows a re-analysis may overwrite or delete: none a person decided on, changed,
/// merged or exported (`TimeEntry::is_locked`).
const UNLOCKED: &str = "status NOT IN ('approved', 'rejected') AND reviewed_at IS NULL \
     AND merged_into IS NULL AND exported_at IS NULL";

/// The SQLite store. Cheap to clone: clones share its connections.
///
/// A file database has two connections: writes go through one, reads through the
/// other, so a scan looks up its next chunk while the previous chunk is being saved
/// (WAL lets a reader proceed beside the writer; it sees every committed write). An
/// in-memory database is one connection used for both.
#[derive(Clone)]
pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
    path: Option<PathBuf>,
    /// Wakes the checkpoint thread after a write (file databases only).
    checkpoints: Option<Arc<Checkpointer>>,
    /// Wakes the in-process worker when a scan job is queued.
    jobs_queued: Arc<tokio::sync::Notify>,
}

/// Copies the WAL back into the database file on its own thread and connection.
///
/// SQLite's automatic checkpoint runs inside whichever commit crosses its threshold,
/// and waits there for two fsyncs: in a scan that was a third of the time spent
/// saving. The writer's automatic checkpoint is off instead, and this thread runs a
/// PASSIVE checkpoint (it never blocks the writer or readers) after every few commits
/// and once writes pause. If it falls behind, the WAL grows until it catches up; a
/// crash loses nothing a commit saved (the WAL is replayed on the next open).
struct Checkpointer {
    wake: std::sync::mpsc::SyncSender<()>,
}

impl Checkpointer {
    /// Commits between two checkpoints while writes keep coming (a scan's chunks).
    const EVERY: u32 = 8;
    /// How long writes pause before what they left in the WAL is checkpointed.
    const IDLE: Duration = Duration::from_millis(250);

    fn start(conn: Connection) -> std::io::Result<Checkpointer> {
        use std::sync::mpsc::RecvTimeoutError;
        // One slot: commits made while a checkpoint runs coalesce into one wake-up.
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".to_owned())
            .spawn(move || {
                let checkpoint = || {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::debug!(error = %e, "WAL checkpoint failed; the next one retries");
                    }
                };
                let mut pending = 0;
                loop {
                    let next = if pending == 0 {
                        woken.recv().map_err(|_| RecvTimeoutError::Disconnected)
                    } else {
                        woken.recv_timeout(Self::IDLE)
                    };
                    match next {
                        Ok(()) => {
                            pending += 1;
                            if pending < Self::EVERY {
                                continue;
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        // The store is gone; closing this connection checkpoints the rest.
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                    checkpoint();
                    pending = 0;
                }
            })?;
        Ok(Checkpointer { wake })
    }

    fn committed(&self) {
        // A full slot already holds a wake-up; nothing is lost by dropping this one.
        let _ = self.wake.try_send(());
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it and its parent directories if needed) the database at
    /// `path`, and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let open_err = |message: String| StoreError::Open {
            path: path.display().to_string(),
            message,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::private::dir(parent)
                .map_err(|e| open_err(format!("cannot create {}: {e}", parent.display())))?;
        }
        crate::private::file(path).map_err(|e| open_err(format!("cannot create the file: {e}")))?;
        // Every connection waits `BUSY_TIMEOUT` for another process's lock.
        let connect = || {
            let conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
            conn.busy_timeout(BUSY_TIMEOUT)
                .map_err(|e| open_err(e.to_string()))?;
            Ok::<_, StoreError>(conn)
        };
        let conn = connect()?;
        // WAL lets readers proceed while a scan writes; NORMAL is durable across
        // application crashes and only risks the last commits on power loss, which a
        // rescan restores (saving is idempotent).
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| open_err(format!("cannot enable WAL: {e}")))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "SQLite did not switch to WAL mode");
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| open_err(e.to_string()))?;
        // The checkpoint thread below does this off the write path.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(|e| open_err(e.to_string()))?;
        let mut store = SqliteStore::prepare(conn).map_err(|e| open_err(e.to_string()))?;
        // Opened after the migrations, so it never sees an older schema.
        let reader = connect()?;
        reader
            .pragma_update(None, "query_only", true)
            .map_err(|e| open_err(e.to_string()))?;
        reader.set_prepared_statement_cache_capacity(64);
        store.reader = Arc::new(Mutex::new(reader));
        let checkpoints = Checkpointer::start(connect()?)
            .map_err(|e| open_err(format!("cannot start the checkpoint thread: {e}")))?;
        store.checkpoints = Some(Arc::new(checkpoints));
        store.path = Some(path.to_owned());
        Ok(store)
    }

    /// A private database that lives as long as this store (tests, dry runs).
    pub fn open_in_memory() -> Result<SqliteStore, StoreError> {
        let conn = Connection::open_in_memory().map_err(|e| StoreError::Open {
            path: ":memory:".to_owned(),
            message: e.to_string(),
        })?;
        SqliteStore::prepare(conn).map_err(|e| StoreError::Open {
            path: ":memory:".to_owned(),
            message: e.to_string(),
        })
    }

    /// `billable.sqlite3` in the user's data directory (e.g.
    /// `~/.local/share/billable` on Linux), or `None` when there is no home directory.
    pub fn default_path() -> Option<PathBuf> {
        directories::ProjectDirs::from("", "", "billable")
            .map(|dirs| dirs.data_dir().join("billable.sqlite3"))
    }

    /// The file this store was opened from; `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn prepare(mut conn: Connection) -> Result<SqliteStore, StoreError> {
        conn.set_prepared_statement_cache_capacity(64);
        migrate(&mut conn)?;
        let conn = Arc::new(Mutex::new(conn));
        Ok(SqliteStore {
            writer: Arc::clone(&conn),
            reader: conn,
            path: None,
            checkpoints: None,
            jobs_queued: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Runs `f` with the write connection on the blocking pool.
    async fn with_conn<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let out = Self::on(Arc::clone(&self.writer), f).await;
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.committed();
        }
        out
    }

    /// Runs `f` with the read connection (a committed snapshot) on the blocking pool.
    async fn with_reader<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        Self::on(Arc::clone(&self.reader), f).await
    }

    async fn on<T, F>(conn: Arc<Mutex<Connection>>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| {
                StoreError::Unavailable(
                    "the database connection was abandoned by an earlier failure; restart billable"
                        .to_owned(),
                )
            })?;
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("a database task did not complete: {e}")))?
    }
}

/// Applies the migrations not yet recorded in `user_version`, each in its own
/// transaction so a crash leaves the file at a known version.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite("read the schema version"))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::Corrupt {
            what: "schema version",
            message: format!(
                "the database is at version {version} but this billable knows only {known}; use a newer billable"
            ),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite("begin a schema migration"))?;
        tx.execute_batch(sql)
            .map_err(sqlite("apply a schema migration"))?;
        tx.pragma_update(None, "user_version", i as i64 + 1)
            .map_err(sqlite("record the schema version"))?;
        tx.commit().map_err(sqlite("commit a schema migration"))?;
    }
    Ok(())
}

/// Runs `{select} IN (…)` over `keys`, `IN_CHUNK` at a time in one read transaction,
/// with `user` as the first parameter, handing every row to `each`.
fn select_in(
    conn: &mut Connection,
    select: &str,
    user: &str,
    keys: &[String],
    context: &'static str,
    mut each: impl FnMut(&rusqlite::Row<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let tx = conn.transaction().map_err(sqlite(context))?;
    for chunk in keys.chunks(IN_CHUNK) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let mut stmt = tx
            .prepare_cached(&format!("{select} IN ({marks})"))
            .map_err(sqlite(context))?;
        let args = std::iter::once(user).chain(chunk.iter().map(String::as_str));
        let mut rows = stmt
            .query(params_from_iter(args))
            .map_err(sqlite(context))?;
        while let Some(row) = rows.next().map_err(sqlite(context))? {
            each(row)?;
        }
    }
    Ok(())
}

/// A `calendar_events` row selected as `uid, sequence, cancelled, message_id`.
fn event_from_row(row: &rusqlite::Row<'_>) -> Result<EventState, StoreError> {
    Ok(EventState {
        uid: col(row, 0, "calendar event uid")?,
        sequence: col(row, 1, "calendar event sequence")?,
        cancelled: col(row, 2, "calendar event cancelled")?,
        message_id: col(row, 3, "calendar event message_id")?,
    })
}

fn sqlite(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| match source.sqlite_error_code() {
        // Not a bug and not corrupt data: the write was refused whole (a transaction),
        // so freeing space and scanning again finishes the work.
        Some(rusqlite::ErrorCode::DiskFull) => StoreError::Unavailable(format!(
            "the disk is full, so billable could not {context}; free space and scan again \
             (nothing was lost)"
        )),
        _ => StoreError::Sqlite { context, source },
    }
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn now() -> String {
    ts(&Utc::now())
}

/// Counters are u64 in Rust and INTEGER (i64) in SQLite; nothing real reaches 2^63.
fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Reads column `idx`, reporting a wrong type or a NULL where none belongs as corruption.
fn col<T: rusqlite::types::FromSql>(
    row: &Row<'_>,
    idx: usize,
    what: &'static str,
) -> Result<T, StoreError> {
    row.get(idx).map_err(|e| StoreError::Corrupt {
        what,
        message: e.to_string(),
    })
}

fn parse_ts(s: &str, what: &'static str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt {
            what,
            message: format!("`{s}`: {e}"),
        })
}

fn optional_ts(s: Option<String>, what: &'static str) -> Result<Option<DateTime<Utc>>, StoreError> {
    s.map(|s| parse_ts(&s, what)).transpose()
}

fn parse_u64(n: i64, what: &'static str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt {
        what,
        message: format!("{n} is negative"),
    })
}

fn entry_from_row(row: &Row<'_>) -> Result<TimeEntry, StoreError> {
    let activity: String = col(row, 5, "time entry activity")?;
    let work_date: String = col(row, 7, "time entry work_date")?;
    let billed: i64 = col(row, 9, "time entry billed_minutes")?;
    let status: String = col(row, 15, "time entry status")?;
    let created_at: String = col(row, 17, "time entry created_at")?;
    Ok(TimeEntry {
        id: col(row, 0, "time entry id")?,
        message_id: col(row, 1, "time entry message_id")?,
        thread_id: col(row, 2, "time entry thread_id")?,
        client: col(row, 3, "time entry client")?,
        matter: col(row, 4, "time entry matter")?,
        activity: Activity::parse(&activity).ok_or_else(|| StoreError::Corrupt {
            what: "time entry activity",
            message: format!("`{activity}` is not an activity"),
        })?,
        description: col(row, 6, "time entry description")?,
        work_date: WorkDate::parse(&work_date).map_err(|message| StoreError::Corrupt {
            what: "time entry work_date",
            message,
        })?,
        duration_minutes: col(row, 8, "time entry duration_minutes")?,
        billed_minutes: u32::try_from(billed).map_err(|_| StoreError::Corrupt {
            what: "time entry billed_minutes",
            message: format!("{billed} is out of range"),
        })?,
        hourly_rate: col(row, 10, "time entry hourly_rate")?,
        amount: col(row, 11, "time entry amount")?,
        currency: col(row, 12, "time entry currency")?,
        billable: col(row, 13, "time entry billable")?,
        confidence: col(row, 14, "time entry confidence")?,
        status: EntryStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
            what: "time entry status",
            message: format!("`{status}` is not a status"),
        })?,
        analyzer: col(row, 16, "time entry analyzer")?,
        created_at: parse_ts(&created_at, "time entry created_at")?,
        event_uid: col(row, 18, "time entry event_uid")?,
        task_code: col(row, 19, "time entry task_code")?,
        activity_code: col(row, 20, "time entry activity_code")?,
        reviewed_at: optional_ts(
            col(row, 21, "time entry reviewed_at")?,
            "time entry reviewed_at",
        )?,
        export_batch: col(row, 22, "time entry export_batch")?,
        exported_at: optional_ts(
            col(row, 23, "time entry exported_at")?,
            "time entry exported_at",
        )?,
        merged_into: col(row, 24, "time entry merged_into")?,
    })
}

fn scan_from_row(row: &Row<'_>) -> Result<ScanRecord, StoreError> {
    let started_at: String = col(row, 3, "scan started_at")?;
    let finished_at: Option<String> = col(row, 4, "scan finished_at")?;
    let status: String = col(row, 5, "scan status")?;
    Ok(ScanRecord {
        id: col(row, 0, "scan id")?,
        source: col(row, 1, "scan source")?,
        query: col(row, 2, "scan query")?,
        started_at: parse_ts(&started_at, "scan started_at")?,
        finished_at: finished_at
            .map(|s| parse_ts(&s, "scan finished_at"))
            .transpose()?,
        status: ScanStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
            what: "scan status",
            message: format!("`{status}` is not a scan status"),
        })?,
        examined: parse_u64(col(row, 6, "scan examined")?, "scan examined")?,
        entries_created: parse_u64(col(row, 7, "scan entries_created")?, "scan entries_created")?,
        errors: parse_u64(col(row, 8, "scan errors")?, "scan errors")?,
        cursor: col(row, 9, "scan cursor")?,
    })
}

fn group_from_row(row: &Row<'_>) -> Result<SummaryGroup, StoreError> {
    Ok(SummaryGroup {
        key: col(row, 0, "summary key")?,
        currency: col(row, 1, "summary currency")?,
        entries: parse_u64(col(row, 2, "summary entries")?, "summary entries")?,
        raw_minutes: col(row, 3, "summary raw_minutes")?,
        billed_minutes: parse_u64(
            col(row, 4, "summary billed_minutes")?,
            "summary billed_minutes",
        )?,
        billed_hours: col(row, 5, "summary billed_hours")?,
        amount: col(row, 6, "summary amount")?,
    })
}

/// An entry's columns stored as text that `TimeEntry` keeps typed.
struct EntryText {
    work_date: String,
    activity: &'static str,
    status: &'static str,
}

impl EntryText {
    fn of(e: &TimeEntry) -> Self {
        EntryText {
            work_date: e.work_date.to_string(),
            activity: e.activity.as_str(),
            status: e.status.as_str(),
        }
    }
}

/// `?1`–`?20` of the entry insert and update: the user, then the entry's columns, bound
/// by reference (a scan binds thousands of rows; copying each value first was a
/// measurable part of saving).
fn entry_params<'a>(
    user: &'a &'a str,
    e: &'a TimeEntry,
    text: &'a EntryText,
) -> [&'a dyn ToSql; 20] {
    [
        user,
        &e.message_id,
        &e.thread_id,
        &e.client,
        &e.matter,
        &text.activity,
        &e.description,
        &text.work_date,
        &e.duration_minutes,
        &e.billed_minutes,
        &e.hourly_rate,
        &e.amount,
        &e.currency,
        &e.billable,
        &e.confidence,
        &text.status,
        &e.analyzer,
        &e.event_uid,
        &e.task_code,
        &e.activity_code,
    ]
}

/// Writes a whole batch inside `tx`. Order matters: entries first, then deletions
/// (a cancel in the same batch as its invite must win), then the processed marks, so
/// a message is only marked once its entry is written.
fn write_batch(
    tx: &rusqlite::Transaction<'_>,
    user: &str,
    batch: &Batch,
) -> Result<Saved, StoreError> {
    let mut saved = Saved::default();
    let stamp = now();

    let mut insert = tx
        .prepare_cached(
            "INSERT INTO time_entries (user_id, message_id, thread_id, client, matter, activity, \
             description, work_date, duration_minutes, billed_minutes, hourly_rate, amount, currency, \
             billable, confidence, status, analyzer, event_uid, task_code, activity_code, id, \
             created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
             ?19, ?20, ?21, ?22, ?23) \
             ON CONFLICT (user_id, message_id) DO NOTHING",
        )
        .map_err(sqlite("prepare the entry insert"))?;
    // Only rows that actually differ are rewritten, so a repeated batch leaves
    // updated_at alone and reports nothing updated.
    let mut update = tx
        .prepare_cached(&format!(
            "UPDATE time_entries SET thread_id = ?3, client = ?4, matter = ?5, activity = ?6, \
             description = ?7, work_date = ?8, duration_minutes = ?9, billed_minutes = ?10, \
             hourly_rate = ?11, amount = ?12, currency = ?13, billable = ?14, confidence = ?15, \
             status = ?16, analyzer = ?17, event_uid = ?18, task_code = ?19, activity_code = ?20, \
             updated_at = ?21 WHERE user_id = ?1 AND message_id = ?2 AND {UNLOCKED} AND ( \
             thread_id IS NOT ?3 OR client IS NOT ?4 OR matter IS NOT ?5 OR activity IS NOT ?6 OR \
             description IS NOT ?7 OR work_date IS NOT ?8 OR duration_minutes IS NOT ?9 OR \
             billed_minutes IS NOT ?10 OR hourly_rate IS NOT ?11 OR amount IS NOT ?12 OR \
             currency IS NOT ?13 OR billable IS NOT ?14 OR confidence IS NOT ?15 OR \
             status IS NOT ?16 OR analyzer IS NOT ?17 OR event_uid IS NOT ?18 OR \
             task_code IS NOT ?19 OR activity_code IS NOT ?20)"
        ))
        .map_err(sqlite("prepare the entry update"))?;

    // Insert first: a new entry (the common case) costs one statement. When the row
    // exists, the update below rewrites it unless a person reviewed it.
    for entry in &batch.entries {
        let text = EntryText::of(entry);
        let columns = entry_params(&user, entry, &text);
        let created = ts(&entry.created_at);
        let inserted = insert
            .execute(params_from_iter(columns.iter().copied().chain([
                &entry.id as &dyn ToSql,
                &created,
                &stamp,
            ])))
            .map_err(sqlite("insert a time entry"))?;
        if inserted == 1 {
            saved.created.push(entry.message_id.clone());
            continue;
        }
        let changed = update
            .execute(params_from_iter(
                columns.iter().copied().chain([&stamp as &dyn ToSql]),
            ))
            .map_err(sqlite("update a time entry"))?;
        if changed == 1 {
            saved.updated.push(entry.message_id.clone());
        }
    }

    let mut delete = tx
        .prepare_cached(&format!(
            "DELETE FROM time_entries WHERE user_id = ?1 AND message_id = ?2 AND {UNLOCKED}"
        ))
        .map_err(sqlite("prepare the entry delete"))?;
    for message_id in &batch.deleted_entries {
        if delete
            .execute(params![user, message_id])
            .map_err(sqlite("delete a time entry"))?
            == 1
        {
            saved.deleted.push(message_id.clone());
        }
    }

    let mut mark = tx
        .prepare_cached(
            "INSERT INTO processed_messages (user_id, message_id, content_hash, analyzer, outcome, reason, processed_at, unmatched_under, counterpart, features) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
             ON CONFLICT (user_id, message_id) DO UPDATE SET content_hash = excluded.content_hash, \
             analyzer = excluded.analyzer, outcome = excluded.outcome, reason = excluded.reason, \
             processed_at = excluded.processed_at, unmatched_under = excluded.unmatched_under, \
             counterpart = excluded.counterpart, features = excluded.features",
        )
        .map_err(sqlite("prepare the processed-message upsert"))?;
    for p in &batch.processed {
        mark.execute(params![
            user,
            p.message_id,
            p.content_hash,
            p.analyzer,
            p.outcome.as_str(),
            p.reason,
            ts(&p.processed_at),
            p.unmatched_under,
            p.counterpart,
            p.features
        ])
        .map_err(sqlite("record a processed message"))?;
    }

    let mut event = tx
        .prepare_cached(
            "INSERT INTO calendar_events (user_id, uid, sequence, cancelled, message_id, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (user_id, uid) DO UPDATE SET sequence = excluded.sequence, \
             cancelled = excluded.cancelled, message_id = excluded.message_id, updated_at = excluded.updated_at",
        )
        .map_err(sqlite("prepare the calendar event upsert"))?;
    for e in &batch.events {
        event
            .execute(params![
                user,
                e.uid,
                e.sequence,
                e.cancelled,
                e.message_id,
                stamp
            ])
            .map_err(sqlite("record a calendar event"))?;
    }
    Ok(saved)
}

/// Writes a person's change inside `tx`: whole rows by id, then the deletions.
fn write_reviewed(
    tx: &rusqlite::Transaction<'_>,
    user: &str,
    upserts: &[TimeEntry],
    deletes: &[String],
) -> Result<(), StoreError> {
    let stamp = now();
    // The update never moves a row to another user: an id of someone else's entry
    // changes nothing (the tools look entries up by user first).
    let mut upsert = tx
        .prepare_cached(
            "INSERT INTO time_entries (user_id, message_id, thread_id, client, matter, activity, \
             description, work_date, duration_minutes, billed_minutes, hourly_rate, amount, currency, \
             billable, confidence, status, analyzer, event_uid, task_code, activity_code, id, \
             created_at, updated_at, reviewed_at, export_batch, exported_at, merged_into) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
             ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27) \
             ON CONFLICT (id) DO UPDATE SET thread_id = excluded.thread_id, client = excluded.client, \
             matter = excluded.matter, activity = excluded.activity, description = excluded.description, \
             work_date = excluded.work_date, duration_minutes = excluded.duration_minutes, \
             billed_minutes = excluded.billed_minutes, hourly_rate = excluded.hourly_rate, \
             amount = excluded.amount, currency = excluded.currency, billable = excluded.billable, \
             confidence = excluded.confidence, status = excluded.status, analyzer = excluded.analyzer, \
             event_uid = excluded.event_uid, task_code = excluded.task_code, \
             activity_code = excluded.activity_code, updated_at = excluded.updated_at, \
             reviewed_at = excluded.reviewed_at, export_batch = excluded.export_batch, \
             exported_at = excluded.exported_at, merged_into = excluded.merged_into \
             WHERE time_entries.user_id = excluded.user_id",
        )
        .map_err(sqlite("prepare the reviewed entry upsert"))?;
    for entry in upserts {
        let text = EntryText::of(entry);
        let columns = entry_params(&user, entry, &text);
        let created = ts(&entry.created_at);
        let reviewed = entry.reviewed_at.as_ref().map(ts);
        let exported = entry.exported_at.as_ref().map(ts);
        upsert
            .execute(params_from_iter(columns.iter().copied().chain([
                &entry.id as &dyn ToSql,
                &created,
                &stamp,
                &reviewed,
                &entry.export_batch,
                &exported,
                &entry.merged_into,
            ])))
            .map_err(sqlite("save a reviewed time entry"))?;
    }
    let mut delete = tx
        .prepare_cached("DELETE FROM time_entries WHERE user_id = ?1 AND id = ?2")
        .map_err(sqlite("prepare the reviewed entry delete"))?;
    for id in deletes {
        delete
            .execute(params![user, id])
            .map_err(sqlite("remove a time entry"))?;
    }
    Ok(())
}

/// The SQL expression a summary groups by.
fn group_key(group_by: GroupBy) -> &'static str {
    match group_by {
        // An empty name is as good as none.
        GroupBy::Client => "COALESCE(NULLIF(client, ''), '(none)')",
        GroupBy::Matter => "COALESCE(NULLIF(matter, ''), '(none)')",
        GroupBy::Status => "status",
        GroupBy::Day => "work_date",
        // %w is 0 for Sunday; going back (w + 6) % 7 days lands on the ISO week's Monday.
        GroupBy::Week => {
            "date(work_date, '-' || ((CAST(strftime('%w', work_date) AS INTEGER) + 6) % 7) || ' days')"
        }
        GroupBy::Month => "substr(work_date, 1, 7)",
    }
}

const AGGREGATES: &str = "COUNT(*), ROUND(SUM(duration_minutes), 1), SUM(billed_minutes), \
     ROUND(SUM(billed_minutes) / 60.0, 2), ROUND(SUM(amount), 2)";

#[async_trait]
impl Store for SqliteStore {
    async fn settings(&self, user: &UserId) -> Result<Settings, StoreError> {
        let user = user.as_str().to_owned();
        let json: Option<String> = self
            .with_reader(move |conn| {
                conn.prepare_cached("SELECT settings FROM tracking_settings WHERE user_id = ?1")
                    .and_then(|mut s| s.query_row([&user], |r| r.get(0)).optional())
                    .map_err(sqlite("read the tracking settings"))
            })
            .await?;
        let Some(json) = json else {
            return Ok(Settings::default());
        };
        let value: serde_json::Value =
            serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                what: "tracking settings",
                message: e.to_string(),
            })?;
        Settings::from_json(value).map_err(|e| StoreError::Corrupt {
            what: "tracking settings",
            message: e.to_string(),
        })
    }

    async fn save_settings(&self, user: &UserId, settings: &Settings) -> Result<(), StoreError> {
        let user = user.as_str().to_owned();
        // Stored as the patch that recreates them, so reading applies the same
        // validation as a user's update and new settings get their defaults.
        let json =
            serde_json::to_string(&settings.to_patch()).map_err(|e| StoreError::Corrupt {
                what: "tracking settings",
                message: e.to_string(),
            })?;
        self.with_conn(move |conn| {
            conn.prepare_cached(
                "INSERT INTO tracking_settings (user_id, settings, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (user_id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
            )
            .and_then(|mut s| s.execute(params![user, json, now()]))
            .map_err(sqlite("save the tracking settings"))?;
            Ok(())
        })
        .await
    }

    async fn processed_ids(
        &self,
        user: &UserId,
        ids: &[String],
        matching: &str,
    ) -> Result<HashSet<String>, StoreError> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let user = user.as_str().to_owned();
        let ids = ids.to_vec();
        let matching = matching.to_owned();
        self.with_reader(move |conn| {
            let mut found = HashSet::new();
            select_in(
                conn,
                "SELECT message_id, unmatched_under FROM processed_messages WHERE user_id = ? AND message_id",
                &user,
                &ids,
                "look up processed messages",
                |row| {
                    let under: Option<String> = col(row, 1, "processed message unmatched_under")?;
                    if under.is_none_or(|k| k == matching) {
                        found.insert(col::<String>(row, 0, "processed message id")?);
                    }
                    Ok(())
                },
            )?;
            Ok(found)
        })
        .await
    }

    async fn reviewed_counterparts(
        &self,
        user: &UserId,
    ) -> Result<HashMap<String, Reviewed>, StoreError> {
        let user = user.as_str().to_owned();
        self.with_reader(move |conn| {
            let context = "look up whose entries you reviewed";
            let mut stmt = conn
                .prepare_cached(
                    "SELECT p.counterpart, \
                     sum(e.status = 'approved'), sum(e.status = 'rejected') \
                     FROM time_entries e JOIN processed_messages p \
                     ON p.user_id = e.user_id AND p.message_id = e.message_id \
                     WHERE e.user_id = ?1 AND p.counterpart IS NOT NULL \
                     AND e.status IN ('approved', 'rejected') AND e.merged_into IS NULL \
                     GROUP BY p.counterpart",
                )
                .map_err(sqlite(context))?;
            let mut rows = stmt.query([&user]).map_err(sqlite(context))?;
            let mut found = HashMap::new();
            while let Some(row) = rows.next().map_err(sqlite(context))? {
                let count = |i, what| col::<i64>(row, i, what).map(|n| n.max(0) as u64);
                let reviewed = Reviewed {
                    approved: count(1, "approved count")?,
                    rejected: count(2, "rejected count")?,
                };
                found.insert(col(row, 0, "processed message counterpart")?, reviewed);
            }
            Ok(found)
        })
        .await
    }

    async fn reviewed_features(
        &self,
        user: &UserId,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<(String, bool)>, StoreError> {
        let user = user.as_str().to_owned();
        let since = since.as_ref().map(ts);
        self.with_reader(move |conn| {
            let context = "read what your reviews teach";
            let mut stmt = conn
                .prepare_cached(
                    "SELECT p.features, e.status = 'approved' \
                     FROM time_entries e JOIN processed_messages p \
                     ON p.user_id = e.user_id AND p.message_id = e.message_id \
                     WHERE e.user_id = ?1 AND p.features IS NOT NULL \
                     AND e.status IN ('approved', 'rejected') AND e.merged_into IS NULL \
                     AND (?2 IS NULL OR e.reviewed_at > ?2)",
                )
                .map_err(sqlite(context))?;
            let mut rows = stmt.query(params![user, since]).map_err(sqlite(context))?;
            let mut found = Vec::new();
            while let Some(row) = rows.next().map_err(sqlite(context))? {
                found.push((
                    col(row, 0, "processed message features")?,
                    col(row, 1, "review verdict")?,
                ));
            }
            Ok(found)
        })
        .await
    }

    async fn events(
        &self,
        user: &UserId,
        uids: &[String],
    ) -> Result<HashMap<String, EventState>, StoreError> {
        if uids.is_empty() {
            return Ok(HashMap::new());
        }
        let user = user.as_str().to_owned();
        let uids = uids.to_vec();
        self.with_reader(move |conn| {
            let mut found = HashMap::new();
            select_in(
                conn,
                "SELECT uid, sequence, cancelled, message_id FROM calendar_events WHERE user_id = ? AND uid",
                &user,
                &uids,
                "look up calendar events",
                |row| {
                    let state = event_from_row(row)?;
                    found.insert(state.uid.clone(), state);
                    Ok(())
                },
            )?;
            Ok(found)
        })
        .await
    }

    async fn thread_matters(
        &self,
        user: &UserId,
        thread_ids: &[String],
    ) -> Result<HashMap<String, (String, String)>, StoreError> {
        if thread_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let user = user.as_str().to_owned();
        let ids = thread_ids.to_vec();
        self.with_reader(move |conn| {
            // thread -> (work_date, created_at, client, matter), the latest kept.
            let mut latest: HashMap<String, (String, String, String, String)> = HashMap::new();
            select_in(
                conn,
                "SELECT thread_id, work_date, created_at, client, matter FROM time_entries \
                 WHERE user_id = ? AND client IS NOT NULL AND matter IS NOT NULL AND matter <> '' \
                 AND thread_id",
                &user,
                &ids,
                "look up the matters of threads",
                |row| {
                    let thread: String = col(row, 0, "time entry thread_id")?;
                    let row = (
                        col(row, 1, "time entry work_date")?,
                        col(row, 2, "time entry created_at")?,
                        col(row, 3, "time entry client")?,
                        col(row, 4, "time entry matter")?,
                    );
                    // Dates and timestamps are stored in forms that sort as text.
                    match latest.get(&thread) {
                        Some(known) if (&known.0, &known.1) >= (&row.0, &row.1) => {}
                        _ => {
                            latest.insert(thread, row);
                        }
                    }
                    Ok(())
                },
            )?;
            Ok(latest
                .into_iter()
                .map(|(t, (_, _, client, matter))| (t, (client, matter)))
                .collect())
        })
        .await
    }

    async fn entry_by_message(
        &self,
        user: &UserId,
        message_id: &str,
    ) -> Result<Option<TimeEntry>, StoreError> {
        let user = user.as_str().to_owned();
        let message_id = message_id.to_owned();
        self.with_reader(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {ENTRY_COLUMNS} FROM time_entries WHERE user_id = ?1 AND message_id = ?2"
                ))
                .map_err(sqlite("prepare the entry lookup"))?;
            let mut rows = stmt
                .query(params![user, message_id])
                .map_err(sqlite("look up an entry by message"))?;
            match rows.next().map_err(sqlite("read an entry"))? {
                Some(row) => entry_from_row(row).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    async fn entries_by_id(
        &self,
        user: &UserId,
        ids: &[String],
    ) -> Result<Vec<TimeEntry>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let user = user.as_str().to_owned();
        let ids = ids.to_vec();
        self.with_reader(move |conn| {
            let mut found = Vec::new();
            select_in(
                conn,
                &format!("SELECT {ENTRY_COLUMNS} FROM time_entries WHERE user_id = ? AND id"),
                &user,
                &ids,
                "look up entries by id",
                |row| {
                    found.push(entry_from_row(row)?);
                    Ok(())
                },
            )?;
            Ok(found)
        })
        .await
    }

    async fn write_reviewed(
        &self,
        user: &UserId,
        upserts: &[TimeEntry],
        deletes: &[String],
    ) -> Result<(), StoreError> {
        if upserts.is_empty() && deletes.is_empty() {
            return Ok(());
        }
        let user = user.as_str().to_owned();
        let upserts = upserts.to_vec();
        let deletes = deletes.to_vec();
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite("begin saving reviewed entries"))?;
            write_reviewed(&tx, &user, &upserts, &deletes)?;
            tx.commit().map_err(sqlite("commit reviewed entries"))
        })
        .await
    }

    async fn merged_parts(&self, user: &UserId, id: &str) -> Result<Vec<TimeEntry>, StoreError> {
        let user = user.as_str().to_owned();
        let id = id.to_owned();
        self.with_reader(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {ENTRY_COLUMNS} FROM time_entries WHERE user_id = ?1 AND merged_into = ?2 \
                     ORDER BY work_date, created_at, id"
                ))
                .map_err(sqlite("prepare the merged entry lookup"))?;
            let mut rows = stmt
                .query(params![user, id])
                .map_err(sqlite("look up merged entries"))?;
            let mut parts = Vec::new();
            while let Some(row) = rows.next().map_err(sqlite("read a merged entry"))? {
                parts.push(entry_from_row(row)?);
            }
            Ok(parts)
        })
        .await
    }

    async fn save_batch(&self, user: &UserId, batch: &Batch) -> Result<Saved, StoreError> {
        if batch.is_empty() {
            return Ok(Saved::default());
        }
        let user = user.as_str().to_owned();
        let batch = batch.clone();
        self.with_conn(move |conn| {
            // IMMEDIATE takes the write lock up front, so a concurrent writer waits on
            // busy_timeout instead of failing midway with SQLITE_BUSY.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite("begin saving a batch"))?;
            let saved = write_batch(&tx, &user, &batch)?;
            tx.commit().map_err(sqlite("commit a batch"))?;
            Ok(saved)
        })
        .await
    }

    /// A `limit` of 0 means no limit.
    async fn list_entries(
        &self,
        user: &UserId,
        filter: &EntryFilter,
    ) -> Result<(Vec<TimeEntry>, u64), StoreError> {
        // Entries merged into another are shown through the merged one.
        let mut conditions = vec!["user_id = ?".to_owned(), "merged_into IS NULL".to_owned()];
        let mut args: Vec<Value> = vec![Value::Text(user.as_str().to_owned())];
        if let Some(from) = filter.from {
            conditions.push("work_date >= ?".to_owned());
            args.push(Value::Text(from.to_string()));
        }
        if let Some(to) = filter.to {
            conditions.push("work_date <= ?".to_owned());
            args.push(Value::Text(to.to_string()));
        }
        if let Some(client) = &filter.client {
            // COLLATE NOCASE folds ASCII only, which covers client names in practice.
            conditions.push("client = ? COLLATE NOCASE".to_owned());
            args.push(Value::Text(client.trim().to_owned()));
        }
        if let Some(status) = filter.status {
            conditions.push("status = ?".to_owned());
            args.push(Value::Text(status.as_str().to_owned()));
        }
        if let Some(matter) = &filter.matter {
            conditions.push("matter = ? COLLATE NOCASE".to_owned());
            args.push(Value::Text(matter.trim().to_owned()));
        }
        match filter.exported {
            Some(true) => conditions.push("exported_at IS NOT NULL".to_owned()),
            Some(false) => conditions.push("exported_at IS NULL".to_owned()),
            None => {}
        }
        let where_clause = conditions.join(" AND ");
        let limit = if filter.limit == 0 {
            -1
        } else {
            i64::from(filter.limit)
        };
        let offset = i64::from(filter.offset);
        self.with_reader(move |conn| {
            let tx = conn
                .transaction()
                .map_err(sqlite("begin listing entries"))?;
            let total: i64 = tx
                .prepare_cached(&format!(
                    "SELECT COUNT(*) FROM time_entries WHERE {where_clause}"
                ))
                .and_then(|mut s| s.query_row(params_from_iter(args.iter()), |r| r.get(0)))
                .map_err(sqlite("count entries"))?;
            let mut stmt = tx
                .prepare_cached(&format!(
                    "SELECT {ENTRY_COLUMNS} FROM time_entries WHERE {where_clause} \
                     ORDER BY work_date DESC, created_at DESC, id LIMIT ? OFFSET ?"
                ))
                .map_err(sqlite("prepare the entry listing"))?;
            let page_args = args
                .iter()
                .cloned()
                .chain([Value::Integer(limit), Value::Integer(offset)]);
            let mut rows = stmt
                .query(params_from_iter(page_args))
                .map_err(sqlite("list entries"))?;
            let mut entries = Vec::new();
            while let Some(row) = rows.next().map_err(sqlite("read an entry"))? {
                entries.push(entry_from_row(row)?);
            }
            Ok((entries, parse_u64(total, "entry count")?))
        })
        .await
    }

    /// Rejected entries are left out: a rejected suggestion is not work to bill.
    /// Time groups come in key order; client and matter groups by billed minutes,
    /// most first, then by key; ties in both by currency.
    async fn summary(
        &self,
        user: &UserId,
        query: &SummaryQuery,
    ) -> Result<Arc<Summary>, StoreError> {
        let mut conditions = vec!["user_id = ?".to_owned(), "merged_into IS NULL".to_owned()];
        let mut args: Vec<Value> = vec![Value::Text(user.as_str().to_owned())];
        match query.status {
            Some(status) => {
                conditions.push("status = ?".to_owned());
                args.push(Value::Text(status.as_str().to_owned()));
            }
            None => conditions.push("status <> 'rejected'".to_owned()),
        }
        if let Some(matter) = &query.matter {
            conditions.push("matter = ? COLLATE NOCASE".to_owned());
            args.push(Value::Text(matter.trim().to_owned()));
        }
        if let Some(from) = query.from {
            conditions.push("work_date >= ?".to_owned());
            args.push(Value::Text(from.to_string()));
        }
        if let Some(to) = query.to {
            conditions.push("work_date <= ?".to_owned());
            args.push(Value::Text(to.to_string()));
        }
        if query.billable_only {
            conditions.push("billable = 1".to_owned());
        }
        let where_clause = conditions.join(" AND ");
        let order = match query.group_by {
            GroupBy::Client | GroupBy::Matter | GroupBy::Status => "SUM(billed_minutes) DESC, 1, 2",
            GroupBy::Day | GroupBy::Week | GroupBy::Month => "1, 2",
        };
        let groups_sql = format!(
            "SELECT {key} AS group_key, currency, {AGGREGATES} FROM time_entries WHERE {where_clause} \
             GROUP BY group_key, currency ORDER BY {order}",
            key = group_key(query.group_by),
        );
        let total_sql = format!(
            "SELECT 'total', currency, {AGGREGATES} FROM time_entries WHERE {where_clause} \
             GROUP BY currency ORDER BY currency"
        );
        let (groups, total) = self
            .with_reader(move |conn| {
                // One read transaction so groups and totals see the same snapshot.
                let tx = conn.transaction().map_err(sqlite("begin a summary"))?;
                let read = |sql: &str| -> Result<Vec<SummaryGroup>, StoreError> {
                    let mut stmt = tx
                        .prepare_cached(sql)
                        .map_err(sqlite("prepare a summary"))?;
                    let mut rows = stmt
                        .query(params_from_iter(args.iter()))
                        .map_err(sqlite("aggregate a summary"))?;
                    let mut out = Vec::new();
                    while let Some(row) = rows.next().map_err(sqlite("read a summary"))? {
                        out.push(group_from_row(row)?);
                    }
                    Ok(out)
                };
                let groups = read(&groups_sql)?;
                let total = read(&total_sql)?;
                Ok((groups, total))
            })
            .await?;
        Ok(Arc::new(Summary {
            group_by: query.group_by,
            from: query.from,
            to: query.to,
            billable_only: query.billable_only,
            status: query.status,
            matter: query.matter.clone(),
            groups,
            total,
        }))
    }

    async fn record_scan(&self, user: &UserId, scan: &ScanRecord) -> Result<(), StoreError> {
        let user = user.as_str().to_owned();
        let scan = scan.clone();
        self.with_conn(move |conn| {
            // The WHERE keeps one user from rewriting another user's scan by id.
            conn.prepare_cached(
                "INSERT INTO scans (id, user_id, source, query, started_at, finished_at, status, \
                 examined, entries_created, errors, cursor, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
                 ON CONFLICT (id) DO UPDATE SET source = excluded.source, query = excluded.query, \
                 started_at = excluded.started_at, finished_at = excluded.finished_at, \
                 status = excluded.status, examined = excluded.examined, \
                 entries_created = excluded.entries_created, errors = excluded.errors, \
                 cursor = excluded.cursor, updated_at = excluded.updated_at \
                 WHERE scans.user_id = excluded.user_id",
            )
            .and_then(|mut s| {
                s.execute(params![
                    scan.id,
                    user,
                    scan.source,
                    scan.query,
                    ts(&scan.started_at),
                    scan.finished_at.as_ref().map(ts),
                    scan.status.as_str(),
                    to_i64(scan.examined),
                    to_i64(scan.entries_created),
                    to_i64(scan.errors),
                    scan.cursor,
                    now()
                ])
            })
            .map_err(sqlite("record a scan"))?;
            Ok(())
        })
        .await
    }

    async fn scans(&self, user: &UserId, limit: u32) -> Result<Vec<ScanRecord>, StoreError> {
        let user = user.as_str().to_owned();
        self.with_reader(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, source, query, started_at, finished_at, status, examined, \
                     entries_created, errors, cursor FROM scans WHERE user_id = ?1 \
                     ORDER BY started_at DESC, id DESC LIMIT ?2",
                )
                .map_err(sqlite("prepare the scan listing"))?;
            let mut rows = stmt
                .query(params![user, i64::from(limit)])
                .map_err(sqlite("list scans"))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(sqlite("read a scan"))? {
                out.push(scan_from_row(row)?);
            }
            Ok(out)
        })
        .await
    }

    async fn enqueue_scan(
        &self,
        user: &UserId,
        args: &serde_json::Value,
    ) -> Result<ScanJob, StoreError> {
        self.enqueue_job(user, args).await
    }

    async fn scan_job(&self, user: &UserId, id: &str) -> Result<Option<ScanJob>, StoreError> {
        self.job(user, id).await
    }

    async fn scan_jobs(&self, user: &UserId, limit: u32) -> Result<Vec<ScanJob>, StoreError> {
        self.jobs(user, limit).await
    }

    async fn cancel_scan_job(
        &self,
        user: &UserId,
        id: &str,
    ) -> Result<Option<ScanJob>, StoreError> {
        self.cancel_job(user, id).await
    }

    async fn gmail_grant(&self, user: &UserId) -> Result<Option<GmailGrant>, StoreError> {
        let user = user.as_str().to_owned();
        let row: Option<(String, String)> = self
            .with_reader(move |conn| {
                conn.prepare_cached(
                    "SELECT sealed, updated_at FROM gmail_grants WHERE user_id = ?1",
                )
                .and_then(|mut s| {
                    s.query_row([&user], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(sqlite("read your Gmail authorisation"))
            })
            .await?;
        row.map(|(sealed, at)| {
            Ok(GmailGrant {
                sealed,
                updated_at: parse_ts(&at, "Gmail authorisation")?,
            })
        })
        .transpose()
    }

    async fn save_gmail_grant(&self, user: &UserId, sealed: &str) -> Result<(), StoreError> {
        let (user, sealed) = (user.as_str().to_owned(), sealed.to_owned());
        self.with_conn(move |conn| {
            conn.prepare_cached(
                "INSERT INTO gmail_grants (user_id, sealed, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (user_id) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
            )
            .and_then(|mut s| s.execute(params![user, sealed, now()]))
            .map_err(sqlite("save your Gmail authorisation"))?;
            Ok(())
        })
        .await
    }

    async fn delete_gmail_grant(&self, user: &UserId) -> Result<bool, StoreError> {
        let user = user.as_str().to_owned();
        self.with_conn(move |conn| {
            conn.prepare_cached("DELETE FROM gmail_grants WHERE user_id = ?1")
                .and_then(|mut s| s.execute([&user]))
                .map(|n| n > 0)
                .map_err(sqlite("forget your Gmail authorisation"))
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.with_reader(|conn| {
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map_err(sqlite("check the database"))?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_database_is_migrated_to_the_latest_version() {
        let store = SqliteStore::open_in_memory().unwrap();
        let version: i64 = store
            .with_conn(|c| {
                Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))
                    .unwrap())
            })
            .await
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        store.ping().await.unwrap();
    }

    #[test]
    fn reopening_a_migrated_file_applies_nothing_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/billable.sqlite3");
        drop(SqliteStore::open(&path).unwrap());
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.path(), Some(path.as_path()));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_new_database_and_its_new_folders_are_readable_only_by_the_user() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        // A folder that exists (and may be shared) keeps its mode.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("data/billable/b.sqlite3");
        let store = SqliteStore::open(&path).unwrap();
        store
            .save_settings(&UserId::local(), &Settings::default())
            .await
            .unwrap();
        assert_eq!(mode(dir.path()), 0o755);
        assert_eq!(mode(&dir.path().join("data")), 0o700);
        assert_eq!(mode(&dir.path().join("data/billable")), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("data/billable/b.sqlite3-wal")), 0o600);
        // A file the user made keeps the mode they gave it.
        drop(store);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        drop(SqliteStore::open(&path).unwrap());
        assert_eq!(mode(&path), 0o640);
    }

    #[tokio::test]
    async fn a_full_disk_is_unavailable_and_says_to_free_space() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("full.sqlite3")).unwrap();
        // SQLite refuses to grow the file past max_page_count exactly as it does when
        // the disk is full (SQLITE_FULL).
        store
            .with_conn(|c| {
                let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
                c.pragma_update(None, "max_page_count", pages).unwrap();
                Ok(())
            })
            .await
            .unwrap();
        let settings = Settings {
            my_addresses: (0..5000).map(|i| format!("owner{i}@example.com")).collect(),
            ..Settings::default()
        };
        let err = store
            .save_settings(&UserId::local(), &settings)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(err.to_string().contains("free space"), "{err}");
        assert_eq!(
            crate::Error::from(err).kind(),
            crate::error::ErrorKind::Unavailable
        );
    }

    #[test]
    fn a_file_from_a_newer_billable_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.sqlite3");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        assert!(SqliteStore::open(&path).is_err());
    }

    #[tokio::test]
    async fn an_unparseable_stored_value_is_reported_as_corrupt() {
        let store = SqliteStore::open_in_memory().unwrap();
        store
            .with_conn(|c| {
                c.execute(
                    "INSERT INTO time_entries (id, user_id, message_id, activity, description, work_date, \
                     duration_minutes, billed_minutes, hourly_rate, amount, currency, billable, confidence, \
                     status, analyzer, created_at, updated_at) VALUES ('x', 'local', 'm', 'email_sent', '', \
                     '31/12/2026', 1.0, 6, 0, 0, 'USD', 1, 1, 'suggested', 'rules', 'now', 'now')",
                    [],
                )
                .unwrap();
                Ok(())
            })
            .await
            .unwrap();
        let err = store
            .entry_by_message(&UserId::local(), "m")
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Corrupt {
                    what: "time entry work_date",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_database_reads_while_a_batch_is_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.sqlite3")).unwrap();
        let (locked_tx, locked_rx) = tokio::sync::oneshot::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .with_conn(move |_| {
                        let _ = locked_tx.send(());
                        let _ = release_rx.recv();
                        Ok(())
                    })
                    .await
            })
        };
        locked_rx.await.unwrap();
        // The writer holds its connection until released: the read must not wait.
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            store.processed_ids(&UserId::local(), &["a".to_owned()], ""),
        )
        .await;
        release_tx.send(()).unwrap();
        writer.await.unwrap().unwrap();
        assert!(
            read.expect("the read waited for the writer")
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn saved_rows_reach_the_database_file_once_writes_pause() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        let store = SqliteStore::open(&path).unwrap();
        let processed = (0..500)
            .map(|i| crate::store::Processed {
                message_id: format!("m{i}"),
                content_hash: "h".to_owned(),
                analyzer: "rules".to_owned(),
                outcome: crate::store::ProcessedOutcome::NotBillable,
                reason: None,
                unmatched_under: None,
                counterpart: None,
                features: None,
                processed_at: chrono::Utc::now(),
            })
            .collect();
        let batch = Batch {
            processed,
            ..Batch::default()
        };
        store.save_batch(&UserId::local(), &batch).await.unwrap();
        // The writer never checkpoints itself; the checkpoint thread must copy the WAL
        // into the file. A copy of the file alone (no -wal) then holds the rows.
        let copy = dir.path().join("copy.sqlite3");
        let mut rows = 0;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            std::fs::copy(&path, &copy).unwrap();
            for stale in ["copy.sqlite3-wal", "copy.sqlite3-shm"] {
                let _ = std::fs::remove_file(dir.path().join(stale));
            }
            rows = Connection::open(&copy)
                .and_then(|c| {
                    c.query_row("SELECT count(*) FROM processed_messages", [], |r| r.get(0))
                })
                .unwrap_or(0);
            if rows == 500 {
                break;
            }
        }
        assert_eq!(
            rows, 500,
            "the WAL was not checkpointed into the database file"
        );
    }

    #[tokio::test]
    async fn a_panic_inside_a_call_becomes_an_error_not_a_crash() {
        let store = SqliteStore::open_in_memory().unwrap();
        let failed = store
            .with_conn(|_| -> Result<(), StoreError> { panic!("simulated bug") })
            .await;
        assert!(
            matches!(failed, Err(StoreError::Unavailable(_))),
            "{failed:?}"
        );
        // The mutex is now poisoned: later calls report it instead of panicking.
        let after = store.ping().await;
        assert!(
            matches!(after, Err(StoreError::Unavailable(_))),
            "{after:?}"
        );
    }

    #[test]
    fn the_default_path_is_a_sqlite_file_in_the_data_dir() {
        if let Some(p) = SqliteStore::default_path() {
            assert!(p.ends_with("billable.sqlite3"));
        }
    }
}
