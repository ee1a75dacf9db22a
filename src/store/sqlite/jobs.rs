//! Scan jobs in the embedded file: the user's side (the `Store` methods call these)
//! and the in-process worker's [`Queue`]. The same states and lease as the Postgres
//! queue, so the tools behave alike in both modes.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde_json::Value;

use super::{SqliteStore, col, now, optional_ts, parse_ts, sqlite, ts};
use crate::domain::{Settings, UserId};
use crate::jobs::{
    Beat, Claimed, JobEnd, JobState, MAX_ARGS_BYTES, MAX_QUEUED_PER_USER, Queue, ScanJob, Scheduled,
};
use crate::store::StoreError;
use crate::tools::ScanProgress;

const JOB_COLUMNS: &str = "id, state, args, cancel_requested, progress, result, error, attempts, \
     created_at, started_at, updated_at, finished_at";

fn json_col(row: &Row<'_>, idx: usize, what: &'static str) -> Result<Value, StoreError> {
    let text: String = col(row, idx, what)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        what,
        message: e.to_string(),
    })
}

fn job_from_row(row: &Row<'_>) -> Result<ScanJob, StoreError> {
    let state: String = col(row, 1, "scan job state")?;
    let progress = json_col(row, 4, "scan job progress")?;
    let result: Option<String> = col(row, 5, "scan job result")?;
    Ok(ScanJob {
        id: col(row, 0, "scan job id")?,
        state: JobState::parse(&state).ok_or(StoreError::Corrupt {
            what: "scan job state",
            message: format!("unknown state `{state}`"),
        })?,
        args: json_col(row, 2, "scan job arguments")?,
        cancel_requested: col::<i64>(row, 3, "scan job cancel")? != 0,
        progress: serde_json::from_value(progress).unwrap_or_default(),
        result: result.and_then(|r| serde_json::from_str(&r).ok()),
        error: col(row, 6, "scan job error")?,
        attempts: u32::try_from(col::<i64>(row, 7, "scan job attempts")?).unwrap_or(0),
        created_at: parse_ts(
            &col::<String>(row, 8, "scan job created_at")?,
            "scan job created_at",
        )?,
        started_at: optional_ts(col(row, 9, "scan job started_at")?, "scan job started_at")?,
        updated_at: parse_ts(
            &col::<String>(row, 10, "scan job updated_at")?,
            "scan job updated_at",
        )?,
        finished_at: optional_ts(
            col(row, 11, "scan job finished_at")?,
            "scan job finished_at",
        )?,
    })
}

/// How many of `user`'s jobs wait to run.
fn queued_count(conn: &Connection, user: &str) -> Result<i64, StoreError> {
    conn.query_row(
        "SELECT count(*) FROM scan_jobs WHERE user_id = ?1 AND state = 'queued'",
        params![user],
        |r| r.get(0),
    )
    .map_err(sqlite("count queued scans"))
}

fn one_job(conn: &Connection, user: &str, id: &str) -> Result<Option<ScanJob>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM scan_jobs WHERE user_id = ?1 AND id = ?2"
    ))
    .map_err(sqlite("prepare a scan job read"))?
    .query(params![user, id])
    .map_err(sqlite("read a scan job"))?
    .next()
    .map_err(sqlite("read a scan job"))?
    .map(job_from_row)
    .transpose()
}

impl SqliteStore {
    pub(super) async fn enqueue_job(
        &self,
        user: &UserId,
        args: &Value,
    ) -> Result<ScanJob, StoreError> {
        let user = user.as_str().to_owned();
        let args = args.to_string();
        if args.len() > MAX_ARGS_BYTES {
            return Err(StoreError::Busy(format!(
                "a scan's arguments may be at most {MAX_ARGS_BYTES} bytes of JSON"
            )));
        }
        let job = self
            .with_conn(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sqlite("begin queueing a scan"))?;
                let waiting = queued_count(&tx, &user)?;
                if waiting >= i64::from(MAX_QUEUED_PER_USER) {
                    return Err(StoreError::Busy(format!(
                        "you already have {waiting} scans waiting; wait for them (`list_scans`) or cancel one (`cancel_scan`)"
                    )));
                }
                let id = uuid::Uuid::now_v7().to_string();
                let at = now();
                tx.execute(
                    "INSERT INTO scan_jobs (id, user_id, args, state, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, 'queued', ?4, ?4)",
                    params![id, user, args, at],
                )
                .map_err(sqlite("queue a scan"))?;
                let job = one_job(&tx, &user, &id)?;
                tx.commit().map_err(sqlite("commit a queued scan"))?;
                job.ok_or(StoreError::Unavailable("the queued scan vanished".to_owned()))
            })
            .await?;
        self.jobs_queued.notify_one();
        Ok(job)
    }

    pub(super) async fn job(&self, user: &UserId, id: &str) -> Result<Option<ScanJob>, StoreError> {
        let (user, id) = (user.as_str().to_owned(), id.to_owned());
        self.with_reader(move |conn| one_job(conn, &user, &id))
            .await
    }

    pub(super) async fn jobs(&self, user: &UserId, limit: u32) -> Result<Vec<ScanJob>, StoreError> {
        let user = user.as_str().to_owned();
        self.with_reader(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {JOB_COLUMNS} FROM scan_jobs WHERE user_id = ?1 \
                     ORDER BY created_at DESC, id DESC LIMIT ?2"
                ))
                .map_err(sqlite("prepare the scan job listing"))?;
            let mut rows = stmt
                .query(params![user, i64::from(limit)])
                .map_err(sqlite("list scan jobs"))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(sqlite("read a scan job"))? {
                out.push(job_from_row(row)?);
            }
            Ok(out)
        })
        .await
    }

    pub(super) async fn cancel_job(
        &self,
        user: &UserId,
        id: &str,
    ) -> Result<Option<ScanJob>, StoreError> {
        let (user, id) = (user.as_str().to_owned(), id.to_owned());
        self.with_conn(move |conn| {
            let at = now();
            // A queued job ends here; a running one when its worker next beats.
            conn.execute(
                "UPDATE scan_jobs SET cancel_requested = 1, updated_at = ?3, \
                 state = CASE WHEN state = 'queued' THEN 'cancelled' ELSE state END, \
                 finished_at = CASE WHEN state = 'queued' THEN ?3 ELSE finished_at END \
                 WHERE user_id = ?1 AND id = ?2 AND state IN ('queued', 'running')",
                params![user, id, at],
            )
            .map_err(sqlite("cancel a scan job"))?;
            one_job(conn, &user, &id)
        })
        .await
    }

    fn try_claim(
        conn: &mut Connection,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Claimed>, StoreError> {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite("begin claiming a scan job"))?;
        let at = Utc::now();
        let at_s = ts(&at);
        // A job whose worker's lease ran out first (it resumes), then the oldest
        // queued job of a user with nothing running.
        let found: Option<(String, String, String, String, i64)> = tx
            .query_row(
                "SELECT id, user_id, args, progress, attempts FROM scan_jobs j \
                 WHERE (state = 'running' AND lease_until <= ?1) \
                    OR (state = 'queued' AND NOT EXISTS (SELECT 1 FROM scan_jobs r \
                        WHERE r.user_id = j.user_id AND r.state = 'running')) \
                 ORDER BY state DESC, created_at LIMIT 1",
                params![at_s],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .map_err(sqlite("find a scan job"))?;
        let Some((id, user, args, progress, attempts)) = found else {
            return Ok(None);
        };
        let until = at + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        tx.execute(
            "UPDATE scan_jobs SET state = 'running', worker = ?2, lease_until = ?3, \
             attempts = attempts + 1, started_at = coalesce(started_at, ?4), updated_at = ?4 \
             WHERE id = ?1",
            params![id, worker, ts(&until), at_s],
        )
        .map_err(sqlite("claim a scan job"))?;
        tx.commit().map_err(sqlite("commit a claimed scan job"))?;
        Ok(Some(Claimed {
            job_id: id,
            user,
            args: serde_json::from_str(&args).unwrap_or(Value::Null),
            progress: serde_json::from_str(&progress).unwrap_or_default(),
            attempt: u32::try_from(attempts + 1).unwrap_or(u32::MAX),
            receipt: 0,
        }))
    }
}

#[async_trait]
impl Queue for SqliteStore {
    async fn claim(
        &self,
        worker: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Option<Claimed>, StoreError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before looking, so a job queued meanwhile is not missed.
            let queued = self.jobs_queued.notified();
            let worker = worker.to_owned();
            let found = self
                .with_conn(move |conn| SqliteStore::try_claim(conn, &worker, lease))
                .await?;
            if found.is_some() {
                return Ok(found);
            }
            // Also wake when a lease may have run out.
            let until = deadline.min(tokio::time::Instant::now() + Duration::from_secs(1));
            if tokio::time::timeout_at(until, queued).await.is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return Ok(None);
            }
        }
    }

    async fn enqueue_due(&self, now: DateTime<Utc>) -> Result<Vec<Scheduled>, StoreError> {
        let queued = self
            .with_conn(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sqlite("begin queueing scheduled scans"))?;
                let users: Vec<(String, String)> = tx
                    .prepare("SELECT user_id, settings FROM tracking_settings ORDER BY user_id")
                    .and_then(|mut s| {
                        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                            .collect::<Result<_, _>>()
                    })
                    .map_err(sqlite("read the schedules"))?;
                let mut queued = Vec::new();
                for (user, json) in users {
                    let settings = match serde_json::from_str(&json)
                        .map_err(|e| e.to_string())
                        .and_then(|v| Settings::from_json(v).map_err(|e| e.to_string()))
                    {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(user = %user, error = %e, "unreadable settings: no scheduled scan");
                            continue;
                        }
                    };
                    let Some(schedule) = settings.schedule else {
                        continue;
                    };
                    let due = schedule.latest_slot(now, settings.timezone);
                    let waiting = queued_count(&tx, &user)?;
                    if waiting >= i64::from(MAX_QUEUED_PER_USER) {
                        continue;
                    }
                    let id = uuid::Uuid::now_v7().to_string();
                    let at = super::now();
                    let added = tx
                        .execute(
                            "INSERT INTO scan_jobs (id, user_id, args, state, created_at, updated_at, scheduled_for) \
                             VALUES (?1, ?2, '{}', 'queued', ?3, ?3, ?4) ON CONFLICT DO NOTHING",
                            params![id, user, at, ts(&due)],
                        )
                        .map_err(sqlite("queue a scheduled scan"))?;
                    if added > 0 {
                        queued.push(Scheduled {
                            user,
                            job_id: id,
                            due,
                        });
                    }
                }
                tx.commit().map_err(sqlite("commit the scheduled scans"))?;
                Ok(queued)
            })
            .await?;
        if !queued.is_empty() {
            self.jobs_queued.notify_one();
        }
        Ok(queued)
    }

    async fn heartbeat(
        &self,
        job: &Claimed,
        worker: &str,
        progress: &ScanProgress,
        lease: Duration,
    ) -> Result<Beat, StoreError> {
        let (id, worker) = (job.job_id.clone(), worker.to_owned());
        let progress = serde_json::to_string(progress).unwrap_or_else(|_| "{}".to_owned());
        self.with_conn(move |conn| {
            let at = Utc::now();
            let until = at + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
            let cancel: Option<i64> = conn
                .query_row(
                    "UPDATE scan_jobs SET lease_until = ?3, progress = ?4, updated_at = ?5 \
                     WHERE id = ?1 AND worker = ?2 AND state = 'running' RETURNING cancel_requested",
                    params![id, worker, ts(&until), progress, ts(&at)],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sqlite("renew a scan job's lease"))?;
            Ok(match cancel {
                Some(c) => Beat::Held { cancel: c != 0 },
                None => Beat::Lost,
            })
        })
        .await
    }

    async fn finish(&self, job: &Claimed, worker: &str, end: &JobEnd) -> Result<(), StoreError> {
        let (id, worker) = (job.job_id.clone(), worker.to_owned());
        let progress = serde_json::to_string(&end.progress).unwrap_or_else(|_| "{}".to_owned());
        let result = end.result.as_ref().map(Value::to_string);
        let (state, error) = (end.state.as_str(), end.error.clone());
        self.with_conn(move |conn| {
            let at = now();
            conn.execute(
                "UPDATE scan_jobs SET state = ?3, progress = ?4, result = ?5, error = ?6, \
                 lease_until = NULL, updated_at = ?7, finished_at = ?7 \
                 WHERE id = ?1 AND worker = ?2 AND state = 'running'",
                params![id, worker, state, progress, result, error, at],
            )
            .map_err(sqlite("record a scan job's end"))?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[tokio::test]
    async fn a_schedule_queues_one_job_per_slot_however_often_asked() {
        let store = SqliteStore::open_in_memory().unwrap();
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let set = |tz: &str, schedule: &str| {
            Settings::default()
                .apply(
                    serde_json::from_value(
                        serde_json::json!({"timezone": tz, "schedule": schedule}),
                    )
                    .unwrap(),
                )
                .unwrap()
        };
        let (ana, ben, cy) = (UserId::new("ana"), UserId::new("ben"), UserId::new("cy"));
        store
            .save_settings(&ana, &set("America/New_York", "weekdays 07:00"))
            .await
            .unwrap();
        store
            .save_settings(&ben, &set("Europe/Berlin", "daily 07:00"))
            .await
            .unwrap();
        store
            .save_settings(&cy, &Settings::default())
            .await
            .unwrap();

        // Friday 13:00 UTC: Ana's 07:00 (12:00 UTC) and Ben's 07:00 (06:00 UTC) passed.
        let friday = store.enqueue_due(at("2026-12-04T13:00:00Z")).await.unwrap();
        let mut got: Vec<(String, DateTime<Utc>)> =
            friday.iter().map(|q| (q.user.clone(), q.due)).collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("ana".to_owned(), at("2026-12-04T12:00:00Z")),
                ("ben".to_owned(), at("2026-12-04T06:00:00Z"))
            ]
        );
        let job = store.scan_job(&ana, &friday[0].job_id).await.unwrap();
        let job = job
            .or(store.scan_job(&ben, &friday[0].job_id).await.unwrap())
            .unwrap();
        assert_eq!(job.state, JobState::Queued);
        // Asked again, at once or later the same slot: nothing more.
        assert!(
            store
                .enqueue_due(at("2026-12-04T13:00:00Z"))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .enqueue_due(at("2026-12-04T23:00:00Z"))
                .await
                .unwrap()
                .is_empty()
        );
        // Saturday: Ben's daily slot is new, Ana's weekdays one is still Friday's.
        let saturday = store.enqueue_due(at("2026-12-05T13:00:00Z")).await.unwrap();
        assert_eq!(saturday.len(), 1);
        assert_eq!(saturday[0].user, "ben");
        assert_eq!(
            store.scan_jobs(&cy, 10).await.unwrap().len(),
            0,
            "no schedule, no job"
        );
    }

    #[tokio::test]
    async fn a_claimed_job_is_renewed_ended_and_never_claimed_twice() {
        let store = SqliteStore::open_in_memory().expect("store");
        let user = UserId::new("alice");
        let job = store
            .enqueue_scan(&user, &serde_json::json!({"max_messages": 3}))
            .await
            .expect("queued");
        let second = store
            .enqueue_scan(&user, &serde_json::json!({}))
            .await
            .expect("queued");
        let lease = Duration::from_secs(30);
        let claimed = store
            .claim("w1", lease, Duration::ZERO)
            .await
            .expect("claim")
            .expect("a job");
        assert_eq!(claimed.job_id, job.id);
        assert_eq!(claimed.attempt, 1);
        assert!(
            store
                .claim("w2", lease, Duration::ZERO)
                .await
                .expect("claim")
                .is_none(),
            "alice's second job waits while her first runs"
        );
        let progress = ScanProgress {
            examined: 7,
            ..ScanProgress::default()
        };
        let beat = store
            .heartbeat(&claimed, "w1", &progress, lease)
            .await
            .expect("beat");
        assert_eq!(beat, Beat::Held { cancel: false });
        assert_eq!(
            store
                .heartbeat(&claimed, "w2", &progress, lease)
                .await
                .expect("beat"),
            Beat::Lost
        );
        store.cancel_scan_job(&user, &job.id).await.expect("cancel");
        let beat = store
            .heartbeat(&claimed, "w1", &progress, lease)
            .await
            .expect("beat");
        assert_eq!(beat, Beat::Held { cancel: true });
        let seen = store
            .scan_job(&user, &job.id)
            .await
            .expect("read")
            .expect("job");
        assert_eq!(seen.progress.examined, 7);
        let end = JobEnd {
            state: JobState::Cancelled,
            progress,
            result: None,
            error: None,
        };
        store.finish(&claimed, "w1", &end).await.expect("finish");
        let next = store
            .claim("w2", lease, Duration::ZERO)
            .await
            .expect("claim")
            .expect("the second job");
        assert_eq!(next.job_id, second.id);
        let ended = store
            .scan_job(&user, &job.id)
            .await
            .expect("read")
            .expect("job");
        assert_eq!(ended.state, JobState::Cancelled);
    }
}
