//! Background scans: a scan job is a `scan_billable_time` call that a worker runs
//! while its caller goes on, watched with `get_scan_status` and stopped with
//! `cancel_scan`.
//!
//! Two halves, as the stores split them:
//! - what the job's user does (enqueue, read, list, cancel) is part of [`Store`]: in
//!   Supabase through PostgREST as that user, under row-level security;
//! - what a worker does (claim a job under a lease, heartbeat, finish) is [`Queue`]:
//!   on Postgres a pgmq queue (`sql/0008_scan_jobs.sql`) over a direct connection
//!   whose role may touch only the queue and the jobs' state (`postgres.rs`); in
//!   SQLite the same table in the embedded file, with one worker in the process.
//!
//! A worker scans as exactly the job's user: on Supabase with a short-lived JWT it
//! mints for that user (`token.rs`), so every read and write of the user's data goes
//! through row-level security as theirs. At most one job per user runs at a time
//! (the jobs table's unique index on running jobs), and a job whose worker died is
//! taken over when its lease expires; the processed records make the resumed scan
//! exact (no message is billed twice, none is lost).
//!
//! [`Store`]: crate::store::Store

pub mod postgres;
pub mod token;
pub mod worker;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::StoreError;
use crate::tools::ScanProgress;

/// Where a scan job is. One spelling (serde's) in SQL, JSON and the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker (or for the user's running scan to end).
    Queued,
    /// A worker holds its lease and is scanning.
    Running,
    /// The scan examined everything it listed.
    Completed,
    /// The scan stopped part-way (an outage, a timeout); what it did is saved, and
    /// scanning again resumes.
    Interrupted,
    /// The scan could not run or its store failed; `error` says why.
    Failed,
    /// Cancelled by its user; what it did before is saved.
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Completed,
        JobState::Interrupted,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Interrupted => "interrupted",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// Whether the job will not change any more.
    pub fn is_done(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

/// One scan job as its user sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanJob {
    pub id: String,
    pub state: JobState,
    /// The scan's arguments, as the caller gave them.
    pub args: Value,
    pub cancel_requested: bool,
    /// Counts so far, over every attempt (see `tools::jobs::JobStatus::progress`).
    pub progress: ScanProgress,
    /// The scan's output (`scan_billable_time`'s), once it ended.
    pub result: Option<Value>,
    pub error: Option<String>,
    /// Workers that took the job: more than 1 when one died and another resumed it.
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The most jobs one user may have waiting: a client cannot fill the queue.
pub const MAX_QUEUED_PER_USER: u32 = 5;
/// The longest arguments a job may carry, in bytes of JSON.
pub const MAX_ARGS_BYTES: usize = 4096;

/// A job a worker holds the lease of.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub job_id: String,
    /// The job's user id (a Supabase `sub`, or `local`).
    pub user: String,
    pub args: Value,
    /// The progress earlier attempts saved: a resumed job counts on from there.
    pub progress: ScanProgress,
    /// 1 for the first worker to take the job.
    pub attempt: u32,
    /// The queue's handle of the job's message (pgmq's `msg_id`).
    pub receipt: i64,
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// The lease is renewed; `cancel` when the user asked the job to stop.
    Held { cancel: bool },
    /// Another worker holds the job now (this one missed its lease): stop at once
    /// and write nothing more about the job.
    Lost,
}

/// The worker's side of the jobs: take one under a lease, keep it, end it.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Takes the next job whose user has no other running job, leasing it to
    /// `worker` for `lease`; waits up to `wait` for one to arrive.
    async fn claim(
        &self,
        worker: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Option<Claimed>, StoreError>;

    /// Renews the lease and saves the progress.
    async fn heartbeat(
        &self,
        job: &Claimed,
        worker: &str,
        progress: &ScanProgress,
        lease: Duration,
    ) -> Result<Beat, StoreError>;

    /// Ends the job (when `worker` still holds it) and removes it from the queue.
    async fn finish(&self, job: &Claimed, worker: &str, end: &JobEnd) -> Result<(), StoreError>;

    /// Queues a scan of new mail for every user whose `schedule` had a run due at or
    /// before `now` that has no job yet: one job per user and slot, however many
    /// workers or `billable schedule run-now` ask at once. A user with
    /// [`MAX_QUEUED_PER_USER`] jobs waiting, or whose settings cannot be read, is
    /// left out.
    async fn enqueue_due(&self, now: DateTime<Utc>) -> Result<Vec<Scheduled>, StoreError>;
}

/// A scan a schedule queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scheduled {
    pub user: String,
    pub job_id: String,
    /// The slot it runs for.
    pub due: DateTime<Utc>,
}

/// How a job ended.
#[derive(Debug, Clone)]
pub struct JobEnd {
    pub state: JobState,
    pub progress: ScanProgress,
    pub result: Option<Value>,
    pub error: Option<String>,
}

/// The message for a job id nobody can see: it does not exist, or it is another
/// user's (the two are not told apart).
pub fn not_found(id: &str) -> crate::Error {
    crate::Error::NotFound(format!(
        "no scan job `{}` of yours; `list_scans` lists your recent scans",
        id.chars().take(64).collect::<String>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_states_are_spelled_as_serde_spells_them() {
        for state in JobState::ALL {
            let json = serde_json::to_value(state).unwrap_or_default();
            assert_eq!(json.as_str(), Some(state.as_str()));
            assert_eq!(JobState::parse(state.as_str()), Some(state));
        }
        assert!(!JobState::Queued.is_done() && !JobState::Running.is_done());
        assert!(JobState::Cancelled.is_done() && JobState::Completed.is_done());
    }
}
