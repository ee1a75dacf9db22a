//! Where entries live. `Store` is implemented by the embedded SQLite file and by
//! Supabase through PostgREST; both pass the same store test suite. `CachedStore`
//! wraps either with the per-user summary cache and its invalidation.

pub mod cached;
pub mod sqlite;
pub mod supabase;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use serde_json::Value;

use crate::domain::{EntryStatus, Settings, Summary, SummaryQuery, TimeEntry, UserId, WorkDate};
use crate::jobs::ScanJob;

/// What became of a message, recorded so a rescan skips it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Processed {
    pub message_id: String,
    pub content_hash: String,
    pub analyzer: String,
    pub outcome: ProcessedOutcome,
    pub reason: Option<String>,
    /// For mail that matched no client: the settings' `matching_key` it was judged
    /// under. Such a mark counts as processed only while the key is unchanged.
    pub unmatched_under: Option<String>,
    /// The person the message was with (the client's address it matched, else the
    /// first other party), lower-case: what a rejected entry teaches later scans.
    pub counterpart: Option<String>,
    /// For a message that got an entry: its `evidence::features`, joined by spaces,
    /// so the person's review of the entry teaches later scans what work looks like.
    pub features: Option<String>,
    pub processed_at: DateTime<Utc>,
}

/// How a person decided on the entries with one counterpart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Reviewed {
    pub approved: u64,
    pub rejected: u64,
}

impl Reviewed {
    /// Whether the user rejects this person's suggested entries more often than not:
    /// their next ones are suggested for review only.
    pub fn mostly_rejected(&self) -> bool {
        self.rejected > self.approved
    }
}

/// What became of a processed message, as stored in `processed_messages.outcome` and
/// reported by the tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProcessedOutcome {
    /// It became a time entry.
    Entry,
    /// A calendar invitation that became a meeting entry.
    Meeting,
    /// A later version of a meeting already recorded, which updated its entry.
    MeetingUpdated,
    /// A cancellation or decline that removed a meeting.
    Cancelled,
    /// Read and judged not billable.
    NotBillable,
    /// Automated mail, skipped before any analyzer.
    Automated,
    /// Mail that could not be read.
    Malformed,
    /// A second copy (another source id) of an RFC message already processed.
    Duplicate,
}

impl ProcessedOutcome {
    pub const ALL: [ProcessedOutcome; 8] = [
        ProcessedOutcome::Entry,
        ProcessedOutcome::Meeting,
        ProcessedOutcome::MeetingUpdated,
        ProcessedOutcome::Cancelled,
        ProcessedOutcome::NotBillable,
        ProcessedOutcome::Automated,
        ProcessedOutcome::Malformed,
        ProcessedOutcome::Duplicate,
    ];

    /// The stored spelling, the same as serde's.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessedOutcome::Entry => "entry",
            ProcessedOutcome::Meeting => "meeting",
            ProcessedOutcome::MeetingUpdated => "meeting_updated",
            ProcessedOutcome::Cancelled => "cancelled",
            ProcessedOutcome::NotBillable => "not_billable",
            ProcessedOutcome::Automated => "automated",
            ProcessedOutcome::Malformed => "malformed",
            ProcessedOutcome::Duplicate => "duplicate",
        }
    }

    pub fn parse(s: &str) -> Option<ProcessedOutcome> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// Where a scan got to, as stored in `scans.status` and reported by the scan tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScanStatus {
    /// Under way (or its process died before it could say otherwise).
    Running,
    /// Everything listed was examined.
    Completed,
    /// The store failed while saving; what was saved before stays.
    Failed,
    /// Stopped part-way by an outage, a timeout or a caller gone; scanning again
    /// resumes.
    Interrupted,
}

impl ScanStatus {
    pub const ALL: [ScanStatus; 4] = [
        ScanStatus::Running,
        ScanStatus::Completed,
        ScanStatus::Failed,
        ScanStatus::Interrupted,
    ];

    /// The stored spelling, the same as serde's.
    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::Running => "running",
            ScanStatus::Completed => "completed",
            ScanStatus::Failed => "failed",
            ScanStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<ScanStatus> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// What the store knows of a calendar event (by UID).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventState {
    pub uid: String,
    pub sequence: i64,
    pub cancelled: bool,
    /// The message whose entry represents the meeting, while it is not cancelled.
    pub message_id: Option<String>,
}

/// Everything one chunk of a scan writes, saved atomically and idempotently.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Upserted by (user, message_id). An existing entry keeps its id and created_at,
    /// and one a person approved or rejected is left untouched.
    pub entries: Vec<TimeEntry>,
    /// Upserted by (user, message_id).
    pub processed: Vec<Processed>,
    /// Upserted by (user, uid).
    pub events: Vec<EventState>,
    /// Message ids whose entries are removed (cancelled or declined meetings);
    /// reviewed entries are left untouched.
    pub deleted_entries: Vec<String>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
            && self.processed.is_empty()
            && self.events.is_empty()
            && self.deleted_entries.is_empty()
    }

    /// The batch's writes grouped by the message they are about (an event by the
    /// message that holds its meeting, or its UID once cancelled), in first-seen order:
    /// a message's entry and processed mark are saved together, so a message a store
    /// refuses is not marked processed (a store that writes table by table, as
    /// Supabase does, may still have written its entry).
    pub fn by_message(self) -> Vec<(String, Batch)> {
        let mut groups: Vec<(String, Batch)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        fn group<'a>(
            groups: &'a mut Vec<(String, Batch)>,
            index: &mut HashMap<String, usize>,
            key: &str,
        ) -> &'a mut Batch {
            let i = *index.entry(key.to_owned()).or_insert_with(|| {
                groups.push((key.to_owned(), Batch::default()));
                groups.len() - 1
            });
            &mut groups[i].1
        }
        for e in self.entries {
            let key = e.message_id.clone();
            group(&mut groups, &mut index, &key).entries.push(e);
        }
        for p in self.processed {
            let key = p.message_id.clone();
            group(&mut groups, &mut index, &key).processed.push(p);
        }
        for e in self.events {
            let key = e.message_id.clone().unwrap_or_else(|| e.uid.clone());
            group(&mut groups, &mut index, &key).events.push(e);
        }
        for id in self.deleted_entries {
            group(&mut groups, &mut index, &id)
                .deleted_entries
                .push(id.clone());
        }
        groups
    }

    /// Adds `other`'s writes after this batch's.
    pub fn extend(&mut self, other: Batch) {
        self.entries.extend(other.entries);
        self.processed.extend(other.processed);
        self.events.extend(other.events);
        self.deleted_entries.extend(other.deleted_entries);
    }
}

/// What a saved batch changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Saved {
    /// Message ids whose entry did not exist before this batch.
    pub created: Vec<String>,
    /// Message ids whose existing entry this batch changed (an entry a person
    /// reviewed, merged or exported is never changed, nor one that would not change).
    pub updated: Vec<String>,
    /// Message ids whose entry this batch removed (a cancelled meeting's, unless a
    /// person reviewed it).
    pub deleted: Vec<String>,
    /// Messages whose writes the store refused for what they hold, with its reason;
    /// nothing of them was saved, so the next scan tries them again.
    pub refused: Vec<(String, String)>,
}

impl Saved {
    /// Adds what another part of the same batch changed.
    pub fn extend(&mut self, other: Saved) {
        self.created.extend(other.created);
        self.updated.extend(other.updated);
        self.deleted.extend(other.deleted);
        self.refused.extend(other.refused);
    }
}

/// A page of entries, newest first (work_date, then created_at).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct EntryFilter {
    pub from: Option<WorkDate>,
    pub to: Option<WorkDate>,
    pub client: Option<String>,
    pub status: Option<EntryStatus>,
    /// Only entries of this matter (case-insensitive).
    pub matter: Option<String>,
    /// Only exported (true) or not yet exported (false) entries.
    pub exported: Option<bool>,
    pub limit: u32,
    pub offset: u32,
}

/// A scan's record: counters and where it got to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanRecord {
    pub id: String,
    pub source: String,
    pub query: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: ScanStatus,
    pub examined: u64,
    pub entries_created: u64,
    pub errors: u64,
    /// Source-specific resume point (e.g. a Gmail history id).
    pub cursor: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "could not open the database at {path}: {message}. Check the path and its permissions, or pass --db PATH"
    )]
    Open { path: String, message: String },
    #[error("database error while trying to {context}: {source}")]
    Sqlite {
        context: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("stored {what} is invalid: {message}")]
    Corrupt { what: &'static str, message: String },
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("migration {name} failed: {message}")]
    Migration { name: String, message: String },
    /// PostgREST refused the caller's token (401): missing, expired, forged or for
    /// another audience.
    #[error("not signed in to Supabase: {0}. Sign in again to get a fresh token")]
    Unauthorized(String),
    /// Row-level security or a missing grant refused the request (403 / 42501).
    #[error("Supabase refused access: {0}. Your account may only read and write its own entries")]
    Forbidden(String),
    /// A write conflicted with an existing row (409).
    #[error("conflicting write to {what}: {message}. Retry the request")]
    Conflict { what: &'static str, message: String },
    /// A limit on what one user may have queued or ask for (background scans);
    /// the message says what to wait for or cancel.
    #[error("{0}")]
    Busy(String),
    /// The database lacks a function or table this billable calls (PGRST202/205):
    /// its schema is older than the code.
    #[error(
        "the Supabase schema is older than this billable: {0}. Apply the pending files in sql/ (`billable migrate`, or as README.md's \"Deploying on Supabase\" says)"
    )]
    Outdated(String),
    /// Any other error PostgREST reported.
    #[error("Supabase could not {context}: {message}")]
    Rest {
        context: &'static str,
        status: u16,
        message: String,
    },
}

impl StoreError {
    /// Whether the store refused what some rows hold (a value it cannot store or
    /// index), rather than the request as such: the same writes without those rows
    /// would be saved.
    pub fn is_about_rows(&self) -> bool {
        match self {
            StoreError::Rest { status, .. } => matches!(status, 400 | 413 | 422 | 500),
            StoreError::Sqlite {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            } => matches!(
                e.code,
                rusqlite::ErrorCode::ConstraintViolation | rusqlite::ErrorCode::TooBig
            ),
            _ => false,
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync {
    /// The user's settings, or the defaults when none were saved.
    async fn settings(&self, user: &UserId) -> Result<Settings, StoreError>;
    async fn save_settings(&self, user: &UserId, settings: &Settings) -> Result<(), StoreError>;

    /// Which of `ids` this user's scans have already processed. Mail marked as
    /// matching no client under another `matching` key (clients, aliases or the
    /// owner's addresses changed since) is not: a scan examines it again.
    async fn processed_ids(
        &self,
        user: &UserId,
        ids: &[String],
        matching: &str,
    ) -> Result<HashSet<String>, StoreError>;

    /// For each counterpart (`Processed::counterpart`) of entries a person approved
    /// or rejected: how many of each. A scan asks once, so the people whose suggested
    /// entries the user keeps rejecting are flagged for review next time.
    async fn reviewed_counterparts(
        &self,
        user: &UserId,
    ) -> Result<HashMap<String, Reviewed>, StoreError>;

    /// The stored features (`Processed::features`) of the messages whose entries a
    /// person approved (true) or rejected (false), reviewed after `since` when given:
    /// what the user's reviews teach the evidence model. Merged entries are left out.
    async fn reviewed_features(
        &self,
        user: &UserId,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<(String, bool)>, StoreError>;

    /// The known state of one event.
    async fn event(&self, user: &UserId, uid: &str) -> Result<Option<EventState>, StoreError> {
        Ok(self.events(user, &[uid.to_owned()]).await?.remove(uid))
    }

    /// The known state of several events, by uid, in one query or request (a scan
    /// asks once per chunk).
    async fn events(
        &self,
        user: &UserId,
        uids: &[String],
    ) -> Result<HashMap<String, EventState>, StoreError>;

    async fn entry_by_message(
        &self,
        user: &UserId,
        message_id: &str,
    ) -> Result<Option<TimeEntry>, StoreError>;

    /// For each of `thread_ids` with an entry that has a matter: the (client, matter)
    /// of its most recent such entry (by work date, then creation). A scan asks once
    /// per chunk, so a reply in a thread is filed like the thread's earlier mail.
    async fn thread_matters(
        &self,
        user: &UserId,
        thread_ids: &[String],
    ) -> Result<HashMap<String, (String, String)>, StoreError>;

    /// Saves a chunk in one transaction (or one request per table); saving the same
    /// batch twice changes nothing.
    async fn save_batch(&self, user: &UserId, batch: &Batch) -> Result<Saved, StoreError>;

    /// A page of entries and the total matching `filter` (ignoring limit/offset).
    async fn list_entries(
        &self,
        user: &UserId,
        filter: &EntryFilter,
    ) -> Result<(Vec<TimeEntry>, u64), StoreError>;

    /// The user's entries among `ids`, in no particular order; an id that is unknown
    /// or another user's is simply absent.
    async fn entries_by_id(
        &self,
        user: &UserId,
        ids: &[String],
    ) -> Result<Vec<TimeEntry>, StoreError>;

    /// A person's change, all or nothing: writes each of `upserts` whole by id
    /// (inserting the new ones) and removes the entries `deletes` names. Unlike
    /// `save_batch` it overwrites reviewed entries: it is how they get reviewed.
    async fn write_reviewed(
        &self,
        user: &UserId,
        upserts: &[TimeEntry],
        deletes: &[String],
    ) -> Result<(), StoreError>;

    /// The entries merged into `id`.
    async fn merged_parts(&self, user: &UserId, id: &str) -> Result<Vec<TimeEntry>, StoreError>;

    /// Totals aggregated by the store itself; shared, so a cached summary is served
    /// without a copy.
    async fn summary(
        &self,
        user: &UserId,
        query: &SummaryQuery,
    ) -> Result<Arc<Summary>, StoreError>;

    /// Inserts or updates a scan record by id.
    async fn record_scan(&self, user: &UserId, scan: &ScanRecord) -> Result<(), StoreError>;

    /// The most recent scans, newest first.
    async fn scans(&self, user: &UserId, limit: u32) -> Result<Vec<ScanRecord>, StoreError>;

    /// Cheap reachability check for readiness probes.
    async fn ping(&self) -> Result<(), StoreError>;

    /// A mark that changes whenever `user`'s entries or settings change through any
    /// process (on Supabase, `user_versions`), so a cache shared by nobody else can
    /// tell a hit is still fresh. `None`: only this process writes this store.
    async fn data_version(&self, _user: &UserId) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    /// Queues a background scan of `user`'s with `args` (`scan_billable_time`'s):
    /// at most [`MAX_QUEUED_PER_USER`](crate::jobs::MAX_QUEUED_PER_USER) wait at once.
    async fn enqueue_scan(&self, user: &UserId, args: &Value) -> Result<ScanJob, StoreError>;

    /// `user`'s scan job `id`; `None` when they have none by that id (another user's
    /// is not told apart from none).
    async fn scan_job(&self, user: &UserId, id: &str) -> Result<Option<ScanJob>, StoreError>;

    /// `user`'s most recent scan jobs, newest first.
    async fn scan_jobs(&self, user: &UserId, limit: u32) -> Result<Vec<ScanJob>, StoreError>;

    /// Asks `user`'s job `id` to stop: a queued one is cancelled at once, a running
    /// one by its worker at its next heartbeat. `None` when they have no such job.
    async fn cancel_scan_job(&self, user: &UserId, id: &str)
    -> Result<Option<ScanJob>, StoreError>;

    /// `user`'s Gmail grant, sealed (see [`crate::mail::gmail::vault`]), if they
    /// connected Gmail.
    async fn gmail_grant(&self, _user: &UserId) -> Result<Option<GmailGrant>, StoreError> {
        Ok(None)
    }

    /// Keeps `user`'s sealed Gmail grant, replacing the one before.
    async fn save_gmail_grant(&self, _user: &UserId, _sealed: &str) -> Result<(), StoreError> {
        Err(StoreError::Unavailable(
            "this store cannot keep Gmail authorisations; use the SQLite or Supabase store"
                .to_owned(),
        ))
    }

    /// Forgets `user`'s Gmail grant; whether there was one.
    async fn delete_gmail_grant(&self, _user: &UserId) -> Result<bool, StoreError> {
        Ok(false)
    }
}

/// A user's Gmail refresh token as the store keeps it: sealed, never the token.
#[derive(Clone, PartialEq)]
pub struct GmailGrant {
    pub sealed: String,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for GmailGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GmailGrant")
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

/// Saves a batch. When the store refuses it for what some rows hold (a date or value
/// it cannot store), the batch is saved in halves, down to one message's writes, so
/// that only the messages it cannot hold are refused (`Saved::refused`, reported per
/// message) and everything else is saved. When every message of a batch of several is
/// refused, the fault is not in the rows: that error is returned.
pub async fn save_isolating(
    store: &dyn Store,
    user: &UserId,
    batch: &Batch,
) -> Result<Saved, StoreError> {
    let first = match store.save_batch(user, batch).await {
        Err(e) if e.is_about_rows() => e,
        other => return other,
    };
    let groups = batch.clone().by_message();
    if groups.len() < 2 {
        let id = groups.first().map(|(id, _)| id.clone()).unwrap_or_default();
        return Ok(Saved {
            refused: vec![(id, first.to_string())],
            ..Saved::default()
        });
    }
    tracing::warn!(error = %first, messages = groups.len(), "the store refused a batch; saving its messages apart");
    // The whole batch was just refused: start from its halves.
    let (a, b) = groups.split_at(groups.len() / 2);
    let mut saved = save_apart(store, user, a).await?;
    saved.extend(save_apart(store, user, b).await?);
    if saved.refused.len() == groups.len() {
        return Err(first);
    }
    Ok(saved)
}

/// [`save_isolating`]'s halving: saves `groups` together, or each half apart when the
/// store refuses them for what some rows hold.
fn save_apart<'a>(
    store: &'a dyn Store,
    user: &'a UserId,
    groups: &'a [(String, Batch)],
) -> futures::future::BoxFuture<'a, Result<Saved, StoreError>> {
    Box::pin(async move {
        let mut together = Batch::default();
        for (_, b) in groups {
            together.extend(b.clone());
        }
        match store.save_batch(user, &together).await {
            Err(e) if e.is_about_rows() => match groups {
                [(id, _)] => Ok(Saved {
                    refused: vec![(id.clone(), e.to_string())],
                    ..Saved::default()
                }),
                _ => {
                    let (a, b) = groups.split_at(groups.len() / 2);
                    let mut saved = save_apart(store, user, a).await?;
                    saved.extend(save_apart(store, user, b).await?);
                    Ok(saved)
                }
            },
            other => other,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One spelling: what SQLite and Supabase store is what serde writes and reads.
    #[test]
    fn stored_spellings_are_the_serde_spellings_and_parse_back() {
        for o in ProcessedOutcome::ALL {
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
            assert_eq!(ProcessedOutcome::parse(o.as_str()), Some(o));
        }
        for s in ScanStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(ScanStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(ProcessedOutcome::parse("meeting_cancelled"), None);
        assert_eq!(ScanStatus::parse("done"), None);
    }

    /// Rows written before these were enums keep reading the same.
    #[test]
    fn the_stored_spellings_are_the_ones_rows_already_hold() {
        let outcomes: Vec<_> = ProcessedOutcome::ALL.map(ProcessedOutcome::as_str).into();
        assert_eq!(
            outcomes,
            [
                "entry",
                "meeting",
                "meeting_updated",
                "cancelled",
                "not_billable",
                "automated",
                "malformed",
                "duplicate"
            ]
        );
        let statuses: Vec<_> = ScanStatus::ALL.map(ScanStatus::as_str).into();
        assert_eq!(statuses, ["running", "completed", "failed", "interrupted"]);
    }
}
