//! The background scan tools: `get_scan_status`, `cancel_scan` and `list_scans`, and
//! the status every one of them (and a background `scan_billable_time`) answers.

use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Hints, Progress, ScanProgress, Tool, scan};
use crate::context::Context;
use crate::domain::UserId;
use crate::error::{Error, Result};
use crate::jobs::{JobState, ScanJob, not_found};

/// The longest `get_scan_status` waits for a job to end.
pub const MAX_WAIT_SECONDS: u32 = 60;
/// How often a waiting `get_scan_status` looks again.
const WAIT_STEP: Duration = Duration::from_secs(1);

/// A scan job: where it is, how far it got, and its result once it ended.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JobStatus {
    pub job_id: String,
    /// `queued`, `running`, `completed`, `interrupted`, `failed` or `cancelled`.
    pub state: JobState,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Counts so far. After a resume (a worker died, another took over) `examined`
    /// and `skipped` are the furthest any attempt got; `analyzed`, `entries` and
    /// `errors` add up every attempt's new work as its heartbeats last saved it (a
    /// worker that died may have saved entries after its last heartbeat, which
    /// `list_time_entries` shows).
    pub progress: ScanProgress,
    /// Messages examined per minute since the job started.
    pub messages_per_minute: Option<f64>,
    /// Seconds left at that rate; known only when `max_messages` bounds the scan.
    pub eta_seconds: Option<u64>,
    /// Workers that took the job (more than 1 after a resume).
    pub attempts: u32,
    /// The user asked it to stop; a running job stops at its worker's next heartbeat.
    pub cancel_requested: bool,
    /// Why it failed or stopped early.
    pub error: Option<String>,
    /// `scan_billable_time`'s result, once the job ended (`get_scan_status` only).
    pub result: Option<Value>,
}

impl JobStatus {
    pub fn of(job: ScanJob, now: DateTime<Utc>) -> Self {
        let end = job.finished_at.unwrap_or(now);
        let minutes = job
            .started_at
            .map(|s| (end - s).num_milliseconds() as f64 / 60_000.0)
            .filter(|m| *m > 0.0);
        let rate = minutes.map(|m| job.progress.examined as f64 / m);
        let bound = job.args.get("max_messages").and_then(Value::as_u64);
        let eta = match (rate, bound) {
            (Some(rate), Some(bound)) if rate > 0.0 && !job.state.is_done() => {
                let left = bound.saturating_sub(job.progress.examined) as f64;
                Some((left / rate * 60.0).ceil() as u64)
            }
            _ => None,
        };
        JobStatus {
            job_id: job.id,
            state: job.state,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            progress: job.progress,
            messages_per_minute: rate.map(|r| (r * 10.0).round() / 10.0),
            eta_seconds: eta,
            attempts: job.attempts,
            cancel_requested: job.cancel_requested,
            error: job.error,
            result: job.result,
        }
    }
}

/// Queues `args` as a background scan of `user`'s.
pub(crate) async fn enqueue(ctx: &Context, user: &UserId, args: &scan::Args) -> Result<JobStatus> {
    let mut json = serde_json::Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            json.insert(key.to_owned(), v);
        }
    };
    put("query", args.query.clone().map(Value::from));
    put("after", args.after.map(|d| Value::from(d.to_string())));
    put("before", args.before.map(|d| Value::from(d.to_string())));
    put("max_messages", args.max_messages.map(Value::from));
    put("dry_run", args.dry_run.map(Value::from));
    put("reanalyze", args.reanalyze.map(Value::from));
    let job = ctx.store.enqueue_scan(user, &Value::Object(json)).await?;
    Ok(JobStatus::of(job, Utc::now()))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusArgs {
    /// The job_id a background scan_billable_time returned.
    pub job_id: String,
    /// Wait up to this many seconds (at most 60) for the job to end, reporting
    /// progress meanwhile; null or 0 answers at once.
    #[serde(default)]
    pub wait_seconds: Option<u32>,
}

/// `get_scan_status` in the tool table.
pub struct GetScanStatus;

impl Tool for GetScanStatus {
    const NAME: &'static str = "get_scan_status";
    const DESCRIPTION: &'static str = "The state of a background scan: queued, running (with counts so far, rate and ETA), or ended with its result. wait_seconds waits for it to end.";
    const HINTS: Hints = Hints::READ;
    type Args = StatusArgs;
    type Output = JobStatus;

    async fn run(
        ctx: &Context,
        user: &UserId,
        args: StatusArgs,
        progress: &dyn Progress,
    ) -> Result<JobStatus> {
        let wait = args.wait_seconds.unwrap_or(0);
        if wait > MAX_WAIT_SECONDS {
            return Err(Error::invalid(
                "wait_seconds",
                format!("must be at most {MAX_WAIT_SECONDS}, got {wait}"),
            ));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(wait));
        loop {
            let job = ctx
                .store
                .scan_job(user, args.job_id.trim())
                .await?
                .ok_or_else(|| not_found(&args.job_id))?;
            progress.report(&job.progress);
            if job.state.is_done()
                || progress.cancelled()
                || tokio::time::Instant::now() + WAIT_STEP > deadline
            {
                return Ok(JobStatus::of(job, Utc::now()));
            }
            tokio::time::sleep(WAIT_STEP).await;
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelArgs {
    /// The job to stop.
    pub job_id: String,
}

/// `cancel_scan` in the tool table.
pub struct CancelScan;

impl Tool for CancelScan {
    const NAME: &'static str = "cancel_scan";
    const DESCRIPTION: &'static str = "Stop a background scan. A queued scan is cancelled at once; a running one stops within seconds and keeps the entries it already saved. Cancelling an ended scan changes nothing.";
    const HINTS: Hints = Hints {
        read_only: false,
        destructive: false,
        idempotent: true,
        open_world: false,
    };
    type Args = CancelArgs;
    type Output = JobStatus;

    async fn run(
        ctx: &Context,
        user: &UserId,
        args: CancelArgs,
        _: &dyn Progress,
    ) -> Result<JobStatus> {
        let id = args.job_id.trim();
        let job = match ctx.store.cancel_scan_job(user, id).await? {
            Some(job) => job,
            // Ended already (or not theirs): say which.
            None => ctx
                .store
                .scan_job(user, id)
                .await?
                .ok_or_else(|| not_found(id))?,
        };
        Ok(JobStatus::of(job, Utc::now()))
    }
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// How many of the most recent scans (1 to 50); null means 10.
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ListOutput {
    /// Newest first, without their results (get_scan_status has them).
    pub scans: Vec<JobStatus>,
}

/// `list_scans` in the tool table.
pub struct ListScans;

impl Tool for ListScans {
    const NAME: &'static str = "list_scans";
    const DESCRIPTION: &'static str =
        "The user's recent background scans, newest first: state, counts and timing of each.";
    const HINTS: Hints = Hints::READ;
    type Args = ListArgs;
    type Output = ListOutput;

    async fn run(
        ctx: &Context,
        user: &UserId,
        args: ListArgs,
        _: &dyn Progress,
    ) -> Result<ListOutput> {
        let limit = args.limit.unwrap_or(10);
        if !(1..=50).contains(&limit) {
            return Err(Error::invalid(
                "limit",
                format!("must be from 1 to 50, got {limit}"),
            ));
        }
        let now = Utc::now();
        let scans = ctx
            .store
            .scan_jobs(user, limit)
            .await?
            .into_iter()
            .map(|job| JobStatus {
                result: None,
                ..JobStatus::of(job, now)
            })
            .collect();
        Ok(ListOutput { scans })
    }
}
