//! The loop a worker runs (`billable worker`, and the one in-process worker of SQLite
//! mode): claim a job, scan as its user while a heartbeat keeps the lease, end it.
//!
//! A job runs in slices no longer than a minted token lives: when a slice's time is
//! up the scan stops as if asked (saving what it did), and the next slice goes on
//! with a fresh token, skipping what the first processed. A worker that dies leaves
//! its lease to expire; whoever claims the job next resumes it the same way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::token::UserTokens;
use super::{Beat, Claimed, JobEnd, JobState, Queue};
use crate::context::Context;
use crate::domain::UserId;
use crate::store::ScanStatus;
use crate::tools::{self, Progress, ScanProgress, scan};

/// How a worker paces itself.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Names this worker in the jobs' `worker` column (host and process by default).
    pub id: String,
    /// How long a claim lasts without a heartbeat: a dead worker's job waits this
    /// long before another takes it.
    pub lease: Duration,
    /// Time between heartbeats (well under `lease`).
    pub heartbeat: Duration,
    /// How long one claim waits for a job before asking again.
    pub poll: Duration,
    /// How often the worker queues the users' scheduled scans that are due (every
    /// worker does; each slot is queued once). `None`: never.
    pub schedule_every: Option<Duration>,
    /// Jobs run at once (each a different user's: the queue never leases a user's
    /// second job while the first runs).
    pub jobs: usize,
}

impl WorkerOptions {
    pub fn new(id: impl Into<String>) -> Self {
        WorkerOptions {
            id: id.into(),
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(5),
            poll: Duration::from_secs(5),
            schedule_every: Some(Duration::from_secs(60)),
            jobs: 16,
        }
    }

    /// A lease of `lease`, with heartbeats three times within it.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self.heartbeat = lease / 3;
        self
    }
}

/// The default worker id: this host and process.
pub fn default_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let host = if host.is_empty() {
        "worker".to_owned()
    } else {
        host
    };
    format!("{host}:{}", std::process::id())
}

/// Starts the one in-process worker of SQLite mode (when `ctx` has a local queue
/// and a runtime is running); it stops with `shutdown`.
pub fn spawn_local(ctx: &Arc<Context>, shutdown: CancellationToken) {
    let (Some(queue), Ok(runtime)) = (ctx.local_queue(), tokio::runtime::Handle::try_current())
    else {
        return;
    };
    // A beat a second: a cancel takes effect at once, and a beat is one local write.
    let options = WorkerOptions {
        heartbeat: Duration::from_secs(1),
        lease: Duration::from_secs(10),
        jobs: 1,
        ..WorkerOptions::new(format!("{}/in-process", default_id()))
    };
    runtime.spawn(run(ctx.clone(), queue, None, options, shutdown));
}

/// Takes and runs jobs until `shutdown`. A job under way when it comes is stopped
/// (what it did is saved) and left to its lease: another worker resumes it.
pub async fn run(
    ctx: Arc<Context>,
    queue: Arc<dyn Queue>,
    tokens: Option<Arc<UserTokens>>,
    options: WorkerOptions,
    shutdown: CancellationToken,
) {
    tracing::info!(worker = %options.id, "worker started");
    let jobs = take_jobs(&ctx, &queue, &tokens, &options, &shutdown);
    tokio::select! {
        () = jobs => {}
        () = queue_scheduled(queue.as_ref(), options.schedule_every, &shutdown) => {}
    }
    tracing::info!(worker = %options.id, "worker stopped");
}

/// Every `every`, queues the scheduled scans that are due; after `shutdown`, waits
/// forever (the job loop ends the worker).
async fn queue_scheduled(queue: &dyn Queue, every: Option<Duration>, shutdown: &CancellationToken) {
    let Some(every) = every else {
        return futures::future::pending().await;
    };
    while !shutdown.is_cancelled() {
        match queue.enqueue_due(chrono::Utc::now()).await {
            Ok(queued) if !queued.is_empty() => {
                tracing::info!(
                    jobs = queued.len(),
                    "queued the scheduled scans that were due"
                );
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not queue the scheduled scans; trying again")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = tokio::time::sleep(every) => {}
        }
    }
    futures::future::pending().await
}

/// Claims a job whenever one of `options.jobs` slots is free and runs it beside the
/// others; after `shutdown`, waits for the running ones to stop (saving their work).
async fn take_jobs(
    ctx: &Arc<Context>,
    queue: &Arc<dyn Queue>,
    tokens: &Option<Arc<UserTokens>>,
    options: &WorkerOptions,
    shutdown: &CancellationToken,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(options.jobs.max(1)));
    let mut running = tokio::task::JoinSet::new();
    loop {
        let slot = tokio::select! {
            () = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot,
        };
        let Ok(slot) = slot else { break };
        while running.try_join_next().is_some() {}
        let claimed = tokio::select! {
            () = shutdown.cancelled() => break,
            claimed = queue.claim(&options.id, options.lease, options.poll) => claimed,
        };
        match claimed {
            Ok(Some(job)) => {
                let (ctx, queue, tokens) = (ctx.clone(), queue.clone(), tokens.clone());
                let (options, shutdown) = (options.clone(), shutdown.clone());
                running.spawn(async move {
                    run_job(
                        &ctx,
                        queue.as_ref(),
                        tokens.as_deref(),
                        &options,
                        job,
                        &shutdown,
                    )
                    .await;
                    drop(slot);
                });
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not claim a scan job; trying again");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(options.poll) => {}
                }
            }
        }
    }
    while running.join_next().await.is_some() {}
}

/// The progress of one job: what earlier attempts and slices counted plus the
/// running slice's, and the reasons to stop the scan.
struct JobProgress {
    base: Mutex<ScanProgress>,
    current: Mutex<ScanProgress>,
    /// The user cancelled the job.
    cancel: AtomicBool,
    /// The lease is lost or the worker shuts down: stop and write nothing more.
    abandon: AtomicBool,
    slice_ends: Mutex<Option<Instant>>,
}

impl JobProgress {
    fn new(base: ScanProgress) -> Self {
        JobProgress {
            base: Mutex::new(base),
            current: Mutex::new(ScanProgress::default()),
            cancel: AtomicBool::new(false),
            abandon: AtomicBool::new(false),
            slice_ends: Mutex::new(None),
        }
    }

    fn total(&self) -> ScanProgress {
        let base = self.base.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let current = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // A resumed scan lists the mailbox again and counts what earlier attempts did
        // as examined and skipped: those two are the furthest any attempt got; the
        // new work of each attempt adds up.
        ScanProgress {
            examined: base.examined.max(current.examined),
            skipped: base.skipped.max(current.skipped),
            analyzed: base.analyzed + current.analyzed,
            entries: base.entries + current.entries,
            errors: base.errors + current.errors,
        }
    }

    fn start_slice(&self, ends: Option<Instant>) {
        let total = self.total();
        *self.base.lock().unwrap_or_else(|p| p.into_inner()) = total;
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = ScanProgress::default();
        *self.slice_ends.lock().unwrap_or_else(|p| p.into_inner()) = ends;
    }

    fn slice_over(&self) -> bool {
        self.slice_ends
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|ends| Instant::now() >= ends)
    }
}

impl Progress for JobProgress {
    fn report(&self, progress: &ScanProgress) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = progress.clone();
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
            || self.abandon.load(Ordering::Relaxed)
            || self.slice_over()
    }
}

/// Time left in a token's life when its slice ends: the last chunk's writes still
/// carry a valid token.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

async fn run_job(
    ctx: &Context,
    queue: &dyn Queue,
    tokens: Option<&UserTokens>,
    options: &WorkerOptions,
    job: Claimed,
    shutdown: &CancellationToken,
) {
    tracing::info!(job = %job.job_id, attempt = job.attempt, "scan job started");
    let progress = JobProgress::new(job.progress.clone());
    let scan = async {
        let mut args = tools::parse_args::<scan::Args>(job.args.clone())?;
        args.background = Some(false);
        loop {
            let (user, ends) = match tokens {
                Some(tokens) => {
                    let life = tokens
                        .lifetime()
                        .saturating_sub(TOKEN_MARGIN)
                        .max(tokens.lifetime() / 2);
                    (tokens.user(&job.user)?, Some(Instant::now() + life))
                }
                None => (UserId::new(job.user.clone()), None),
            };
            progress.start_slice(ends);
            let out = scan::run(ctx, &user, args.clone(), &progress).await?;
            let again = out.status == ScanStatus::Interrupted
                && progress.slice_over()
                && !progress.cancel.load(Ordering::Relaxed)
                && !progress.abandon.load(Ordering::Relaxed);
            if !again {
                return Ok::<_, crate::Error>(out);
            }
            tracing::info!(job = %job.job_id, "scan job goes on with a fresh token");
        }
    };
    let beats = async {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    progress.abandon.store(true, Ordering::Relaxed);
                    return futures::future::pending::<()>().await;
                }
                () = tokio::time::sleep(options.heartbeat) => {}
            }
            match queue
                .heartbeat(&job, &options.id, &progress.total(), options.lease)
                .await
            {
                Ok(Beat::Held { cancel }) => {
                    if cancel {
                        progress.cancel.store(true, Ordering::Relaxed);
                    }
                }
                Ok(Beat::Lost) => {
                    tracing::warn!(job = %job.job_id, "another worker took this scan job; stopping");
                    progress.abandon.store(true, Ordering::Relaxed);
                    return futures::future::pending::<()>().await;
                }
                Err(e) => tracing::warn!(job = %job.job_id, error = %e, "heartbeat failed"),
            }
        }
    };
    let out = tokio::select! {
        out = scan => out,
        () = beats => return,
    };
    if progress.abandon.load(Ordering::Relaxed) {
        return;
    }
    let end = match out {
        Ok(out) => JobEnd {
            state: if progress.cancel.load(Ordering::Relaxed) {
                JobState::Cancelled
            } else {
                match out.status {
                    ScanStatus::Completed => JobState::Completed,
                    ScanStatus::Failed => JobState::Failed,
                    ScanStatus::Interrupted | ScanStatus::Running => JobState::Interrupted,
                }
            },
            progress: progress.total(),
            error: out
                .stopped_reason
                .clone()
                .filter(|_| out.status != ScanStatus::Completed),
            result: serde_json::to_value(&out).ok(),
        },
        Err(e) => JobEnd {
            state: JobState::Failed,
            progress: progress.total(),
            result: None,
            error: Some(e.to_string()),
        },
    };
    tracing::info!(job = %job.job_id, state = end.state.as_str(), "scan job ended");
    if let Err(e) = queue.finish(&job, &options.id, &end).await {
        tracing::warn!(job = %job.job_id, error = %e, "could not record the scan job's end; its lease will expire and another worker resumes it");
    }
}
