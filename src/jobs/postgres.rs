//! The Postgres [`Queue`]: pgmq delivers job ids (its visibility timeout is the
//! message's lease), and the `scan_jobs` row holds the lease that counts: claimed by
//! one atomic update, renewed by the heartbeat, and taken over by another worker only
//! once it expired. The unique index on running jobs keeps a user's second job
//! waiting while the first runs, whichever workers hold them.
//!
//! The worker connects as `billable_worker` (sql/0008_scan_jobs.sql): that role sees
//! the queue and the jobs' state, never a user's entries or mail records.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio_postgres::Client;

use super::{Beat, Claimed, JobEnd, Queue, Scheduled};
use crate::migrate::{connect, describe};
use crate::store::StoreError;
use crate::tools::ScanProgress;

/// The pgmq queue the jobs go through.
pub const QUEUE: &str = "scan_jobs";
/// How soon a job whose user is busy is looked at again.
const BUSY_RETRY_SECS: i32 = 5;

pub struct PgQueue {
    url: String,
    /// The connection heartbeats and ends go over, opened again after it broke.
    client: Mutex<Option<Client>>,
    /// The connection claims go over: a claim waits on pgmq for seconds, and running
    /// jobs' heartbeats must not wait behind it.
    claims: Mutex<Option<Client>>,
}

fn pg(context: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| {
        StoreError::Unavailable(format!(
            "the job queue could not {context}: {}",
            describe(&e)
        ))
    }
}

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

impl PgQueue {
    /// A queue over `database_url` (the workers' `DATABASE_URL`); connects on first use.
    pub fn new(database_url: impl Into<String>) -> Self {
        PgQueue {
            url: database_url.into(),
            client: Mutex::new(None),
            claims: Mutex::new(None),
        }
    }

    /// Runs `f` with a live connection, reconnecting first when the last one closed.
    async fn with<T>(
        &self,
        f: impl AsyncFnOnce(&Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        Self::over(&self.url, &self.client, f).await
    }

    async fn over<T>(
        url: &str,
        connection: &Mutex<Option<Client>>,
        f: impl AsyncFnOnce(&Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = connection.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = Some(connect(url).await?);
        }
        match guard.as_ref() {
            Some(client) => f(client).await,
            None => Err(StoreError::Unavailable(
                "no connection to the job queue".to_owned(),
            )),
        }
    }
}

async fn set_visible_in(client: &Client, msg: i64, secs: i32) -> Result<(), StoreError> {
    client
        .execute(
            "select from pgmq.set_vt($1::text, $2::int8, $3::int4)",
            &[&QUEUE, &msg, &secs],
        )
        .await
        .map_err(pg("postpone a job"))?;
    Ok(())
}

async fn archive(client: &Client, msg: i64) -> Result<(), StoreError> {
    client
        .execute("select pgmq.archive($1::text, $2::int8)", &[&QUEUE, &msg])
        .await
        .map_err(pg("archive a job's message"))?;
    Ok(())
}

/// Tries to lease job `id` (delivered as message `msg`) to `worker`.
async fn try_claim(
    client: &Client,
    msg: i64,
    id: &str,
    worker: &str,
    lease: i32,
) -> Result<Option<Claimed>, StoreError> {
    let claimed = client
        .query_opt(
            "update public.scan_jobs set state = 'running', worker = $2, \
               lease_until = now() + make_interval(secs => $3::int4), attempts = attempts + 1, \
               started_at = coalesce(started_at, now()), updated_at = now() \
             where id = $1::text::uuid and not cancel_requested \
               and (state = 'queued' or (state = 'running' and lease_until < now())) \
             returning user_id::text, args, progress, attempts",
            &[&id, &worker, &lease],
        )
        .await;
    match claimed {
        Ok(Some(row)) => {
            let progress: Value = row.get(2);
            let attempts: i32 = row.get(3);
            return Ok(Some(Claimed {
                job_id: id.to_owned(),
                user: row.get(0),
                args: row.get(1),
                progress: serde_json::from_value::<ScanProgress>(progress).unwrap_or_default(),
                attempt: u32::try_from(attempts).unwrap_or(0),
                receipt: msg,
            }));
        }
        Ok(None) => {}
        // The user's other job is running (the unique index): later.
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            set_visible_in(client, msg, BUSY_RETRY_SECS).await?;
            return Ok(None);
        }
        Err(e) => return Err(pg("claim a job")(e)),
    }
    // Not claimable: ended, cancelled, gone, or another worker's live lease.
    let row = client
        .query_opt(
            "select state, cancel_requested, coalesce(lease_until > now(), false) \
             from public.scan_jobs where id = $1::text::uuid",
            &[&id],
        )
        .await
        .map_err(pg("read a job"))?;
    match row {
        Some(row) => {
            let (state, cancel, live): (String, bool, bool) = (row.get(0), row.get(1), row.get(2));
            if state == "running" && live {
                // Looked at again just after the lease would run out.
                client
                    .execute(
                        "select from pgmq.set_vt($1::text, $2::int8, ((select lease_until \
                         from public.scan_jobs where id = $3::text::uuid) \
                         + interval '100 milliseconds')::timestamptz)",
                        &[&QUEUE, &msg, &id],
                    )
                    .await
                    .map_err(pg("postpone a job"))?;
            } else if state == "running" && cancel {
                // Its worker died after the user cancelled: nothing left to stop.
                client
                    .execute(
                        "update public.scan_jobs set state = 'cancelled', lease_until = null, \
                         finished_at = now(), updated_at = now() \
                         where id = $1::text::uuid and state = 'running' and lease_until < now()",
                        &[&id],
                    )
                    .await
                    .map_err(pg("end a cancelled job"))?;
                archive(client, msg).await?;
            } else {
                archive(client, msg).await?;
            }
        }
        None => archive(client, msg).await?,
    }
    Ok(None)
}

#[async_trait]
impl Queue for PgQueue {
    async fn claim(
        &self,
        worker: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Option<Claimed>, StoreError> {
        let lease = secs(lease);
        let deadline = tokio::time::Instant::now() + wait;
        Self::over(&self.url, &self.claims, async |client| loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let poll = i32::try_from(left.as_secs()).unwrap_or(i32::MAX);
            let rows = client
                .query(
                    "select msg_id, message->>'job_id' from pgmq.read_with_poll($1::text, $2::int4, 1, $3::int4, 200)",
                    &[&QUEUE, &lease, &poll],
                )
                .await
                .map_err(pg("read the queue"))?;
            let Some(row) = rows.first() else {
                return Ok(None);
            };
            let msg: i64 = row.get(0);
            let id: Option<String> = row.get(1);
            let claimed = match id.filter(|id| uuid::Uuid::parse_str(id).is_ok()) {
                Some(id) => try_claim(client, msg, &id, worker, lease).await?,
                // Not a job of ours: drop it rather than read it again forever.
                None => {
                    archive(client, msg).await?;
                    None
                }
            };
            if claimed.is_some() || tokio::time::Instant::now() >= deadline {
                return Ok(claimed);
            }
        })
        .await
    }

    async fn heartbeat(
        &self,
        job: &Claimed,
        worker: &str,
        progress: &ScanProgress,
        lease: Duration,
    ) -> Result<Beat, StoreError> {
        let lease = secs(lease);
        let progress = serde_json::to_value(progress).unwrap_or(Value::Null);
        self.with(async |client| {
            let row = client
                .query_opt(
                    "update public.scan_jobs set lease_until = now() + make_interval(secs => $3::int4), \
                     progress = $4, updated_at = now() \
                     where id = $1::text::uuid and worker = $2 and state = 'running' \
                     returning cancel_requested",
                    &[&job.job_id, &worker, &lease, &progress],
                )
                .await
                .map_err(pg("renew a job's lease"))?;
            let Some(row) = row else {
                return Ok(Beat::Lost);
            };
            set_visible_in(client, job.receipt, lease).await?;
            Ok(Beat::Held { cancel: row.get(0) })
        })
        .await
    }

    async fn finish(&self, job: &Claimed, worker: &str, end: &JobEnd) -> Result<(), StoreError> {
        let progress = serde_json::to_value(&end.progress).unwrap_or(Value::Null);
        self.with(async |client| {
            let ended = client
                .execute(
                    "update public.scan_jobs set state = $3, progress = $4, result = $5, \
                     error = $6, lease_until = null, finished_at = now(), updated_at = now() \
                     where id = $1::text::uuid and worker = $2 and state = 'running'",
                    &[
                        &job.job_id,
                        &worker,
                        &end.state.as_str(),
                        &progress,
                        &end.result,
                        &end.error,
                    ],
                )
                .await
                .map_err(pg("record a job's end"))?;
            if ended == 1 {
                archive(client, job.receipt).await?;
            }
            Ok(())
        })
        .await
    }

    async fn enqueue_due(&self, now: DateTime<Utc>) -> Result<Vec<Scheduled>, StoreError> {
        let at = now.timestamp_millis() as f64 / 1000.0;
        self.with(async |client| {
            let rows = client
                .query(
                    "select user_id::text, job_id::text, \
                            (extract(epoch from scheduled_for) * 1000)::int8 \
                       from public.enqueue_due_scans(to_timestamp($1::float8))",
                    &[&at],
                )
                .await
                .map_err(pg("queue the scheduled scans"))?;
            Ok(rows
                .iter()
                .map(|r| Scheduled {
                    user: r.get(0),
                    job_id: r.get(1),
                    due: DateTime::from_timestamp_millis(r.get(2)).unwrap_or(now),
                })
                .collect())
        })
        .await
    }
}
