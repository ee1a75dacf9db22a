//! The multi-user store: Supabase (or any Postgres behind PostgREST) over the
//! `postgrest` crate.
//!
//! The server acts as the user, never above them: every request carries the
//! project's anon key as `apikey` and the calling user's own JWT as the bearer
//! token, so row-level security (sql/0002_rls.sql) decides what they read and write.
//! No request names a user id: `user_id` defaults to `auth.uid()` on insert and the
//! policies filter reads. The service-role key is never used.
//!
//! Writes are bulk upserts, one request per table per chunk, with `on_conflict` and
//! `Prefer: resolution=merge-duplicates`; the `time_entries` trigger keeps ids,
//! creation times and reviewed entries, and skips unchanged rows, so a retried
//! chunk changes nothing. Summaries aggregate in the database through the
//! `time_summary` function (`security invoker`, so RLS applies inside it).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use postgrest::{Builder, Postgrest};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::{Value, json};

use super::{
    Batch, EntryFilter, EventState, GmailGrant, Processed, Reviewed, Saved, ScanRecord, ScanStatus,
    Store, StoreError,
};
use crate::domain::{GroupBy, Settings, Summary, SummaryGroup, SummaryQuery, TimeEntry, UserId};
use crate::jobs::{JobState, ScanJob};

/// Columns of `time_entries` a `TimeEntry` is read from.
const ENTRY_COLUMNS: &str = "id,message_id,thread_id,client,matter,activity,description,\
     work_date,duration_minutes,billed_minutes,hourly_rate,amount,currency,billable,\
     confidence,status,analyzer,created_at,event_uid,task_code,activity_code,reviewed_at,\
     export_batch,exported_at,merged_into";

const SCAN_COLUMNS: &str =
    "id,source,query,started_at,finished_at,status,examined,entries_created,errors,cursor";

/// Rows per upsert request. PostgREST parses the whole body at once; 1,000 rows of
/// entries are about 500 KB, well under its default body limit.
pub const CHUNK_ROWS: usize = 1000;

/// Ids per `processed_message_ids` call.
const IDS_PER_CALL: usize = 1000;

/// A list with no limit still asks for a bounded range.
const UNBOUNDED_PAGE: usize = 1_000_000;

/// Default time allowed for one PostgREST request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The Supabase store. Cheap to clone.
#[derive(Clone)]
pub struct SupabaseStore {
    rest: Postgrest,
    base: String,
    timeout: Duration,
}

impl std::fmt::Debug for SupabaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupabaseStore")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// The PostgREST root for a Supabase project URL: `SUPABASE_URL` + `/rest/v1`,
/// unless the URL already names the REST path.
pub fn rest_url_for(supabase_url: &str) -> String {
    let url = supabase_url.trim().trim_end_matches('/');
    if url.ends_with("/rest/v1") {
        url.to_owned()
    } else {
        format!("{url}/rest/v1")
    }
}

/// Header values must be visible ASCII; a JWT or API key never needs more.
fn header_safe(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

impl SupabaseStore {
    /// A store talking to the PostgREST root `rest_url` (for Supabase, the project
    /// URL + `/rest/v1`, see [`rest_url_for`]; postrust and PostgREST serve at their
    /// root), sending `anon_key` as `apikey` when given.
    pub fn new(rest_url: &str, anon_key: Option<&str>) -> Result<SupabaseStore, StoreError> {
        let base = rest_url.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(StoreError::Open {
                path: base,
                message: "SUPABASE_URL must be an http:// or https:// URL, e.g. \
                          https://PROJECT.supabase.co"
                    .to_owned(),
            });
        }
        let mut rest = Postgrest::new(base.clone());
        if let Some(key) = anon_key.filter(|k| !k.trim().is_empty()) {
            let key = key.trim();
            if !header_safe(key) {
                return Err(StoreError::Open {
                    path: base,
                    message: "SUPABASE_ANON_KEY contains characters a key never has; copy it \
                              again from the project's API settings"
                        .to_owned(),
                });
            }
            rest = rest.insert_header("apikey", key);
        }
        Ok(SupabaseStore {
            rest,
            base,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same store with another per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> SupabaseStore {
        self.timeout = timeout;
        self
    }

    /// The PostgREST root this store talks to.
    pub fn rest_url(&self) -> &str {
        &self.base
    }

    /// A request on `table` as `user`.
    fn from(&self, user: &UserId, table: &str) -> Result<Builder, StoreError> {
        Ok(self.rest.from(table).auth(token(user)?))
    }

    /// A function call as `user`.
    fn rpc(&self, user: &UserId, function: &str, params: &Value) -> Result<Builder, StoreError> {
        Ok(self
            .rest
            .rpc(function, params.to_string())
            .auth(token(user)?))
    }

    /// Sends a request, mapping transport failures and PostgREST errors.
    async fn send(&self, request: Builder, context: &'static str) -> Result<Reply, StoreError> {
        let response = tokio::time::timeout(self.timeout, request.execute())
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "Supabase did not answer within {}s while trying to {context}",
                    self.timeout.as_secs()
                ))
            })?
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "could not reach Supabase at {} to {context}: {e}",
                    self.base
                ))
            })?;
        let status = response.status().as_u16();
        let content_range = response
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = tokio::time::timeout(self.timeout, response.text())
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "Supabase stopped answering while trying to {context}"
                ))
            })?
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "could not read Supabase's answer to {context}: {e}"
                ))
            })?;
        // 416: a page past the end. The body is an error, but the count is right.
        if (200..300).contains(&status) || status == 416 {
            return Ok(Reply {
                status,
                content_range,
                body,
            });
        }
        Err(rest_error(status, &body, context))
    }

    /// Sends a request and reads its JSON body as `T`.
    async fn fetch<T: DeserializeOwned>(
        &self,
        request: Builder,
        context: &'static str,
        what: &'static str,
    ) -> Result<T, StoreError> {
        let reply = self.send(request, context).await?;
        reply.json(what)
    }

    /// Calls `function` with `ids` as its one array parameter `param`, `IDS_PER_CALL`
    /// at a time, and gathers every call's rows. The ids travel in the body: they are
    /// free text, and postrust reads a `+` in a query string as a plus, not a space.
    async fn rpc_by_ids<T: DeserializeOwned>(
        &self,
        user: &UserId,
        function: &str,
        param: &str,
        ids: &[String],
        context: &'static str,
        what: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        self.rpc_by_ids_with(user, function, param, ids, json!({}), context, what)
            .await
    }

    /// [`Self::rpc_by_ids`] with more parameters, the same in every call (`params`,
    /// an object).
    #[allow(clippy::too_many_arguments)]
    async fn rpc_by_ids_with<T: DeserializeOwned>(
        &self,
        user: &UserId,
        function: &str,
        param: &str,
        ids: &[String],
        mut params: Value,
        context: &'static str,
        what: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        let mut rows = Vec::new();
        for chunk in ids.chunks(IDS_PER_CALL) {
            params[param] = json!(chunk);
            let request = self.rpc(user, function, &params)?;
            let page: Vec<T> = self.fetch(request, context, what).await?;
            rows.extend(page);
        }
        Ok(rows)
    }

    /// Upserts `rows` into `table` in chunks, returning the rows PostgREST reports
    /// as written (selected by `select`).
    async fn upsert<T: DeserializeOwned>(
        &self,
        user: &UserId,
        table: &str,
        on_conflict: &str,
        select: &str,
        rows: &[Value],
        context: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        let mut written = Vec::new();
        for chunk in rows.chunks(CHUNK_ROWS) {
            let body = Value::Array(chunk.iter().map(without_nul).collect()).to_string();
            let request = self
                .from(user, table)?
                .upsert(body)
                .on_conflict(on_conflict)
                .select(select);
            let rows: Vec<T> = self.fetch(request, context, "written rows").await?;
            written.extend(rows);
        }
        Ok(written)
    }
}

/// The bearer token of `user`, required for every request.
fn token(user: &UserId) -> Result<&str, StoreError> {
    let token = user.token().ok_or_else(|| {
        StoreError::Unauthorized(
            "no access token came with this request, and the Supabase store acts only as \
             the signed-in user (send `Authorization: Bearer <your Supabase access token>`)"
                .to_owned(),
        )
    })?;
    if !header_safe(token) {
        return Err(StoreError::Unauthorized(
            "the access token is not a JWT (it contains spaces or control characters)".to_owned(),
        ));
    }
    Ok(token)
}

/// A successful (or 416) answer.
struct Reply {
    status: u16,
    content_range: Option<String>,
    body: String,
}

impl Reply {
    fn json<T: DeserializeOwned>(&self, what: &'static str) -> Result<T, StoreError> {
        let de = &mut serde_json::Deserializer::from_str(&self.body);
        serde_path_to_error::deserialize(de).map_err(|e| StoreError::Corrupt {
            what,
            message: format!("{} at `{}`", e.inner(), e.path()),
        })
    }

    /// The total from `Content-Range: 0-49/123` (or `*/123`).
    fn total(&self) -> Option<u64> {
        self.content_range
            .as_deref()?
            .rsplit_once('/')?
            .1
            .trim()
            .parse()
            .ok()
    }
}

/// PostgREST's error body.
#[derive(Debug, Default, Deserialize)]
struct RestError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    details: Option<String>,
    #[serde(default)]
    hint: Option<String>,
}

/// Maps a PostgREST error to what it means for the caller. A `42501` is an RLS or
/// grant refusal whatever the status (PostgREST answers 403 to a signed-in user,
/// postrust 401); any other 401 is the token.
fn rest_error(status: u16, body: &str, context: &'static str) -> StoreError {
    let err: RestError = serde_json::from_str(body).unwrap_or_default();
    let code = err.code.clone().unwrap_or_default();
    let mut message = err
        .message
        .clone()
        .unwrap_or_else(|| body.chars().take(300).collect());
    if let Some(d) = err.details.as_deref().filter(|d| !d.is_empty()) {
        message.push_str(&format!(" ({d})"));
    }
    if let Some(h) = err.hint.as_deref().filter(|h| !h.is_empty()) {
        message.push_str(&format!("; hint: {h}"));
    }
    if !code.is_empty() {
        message.push_str(&format!(" [{code}]"));
    }
    match (status, code.as_str()) {
        (_, "42501") | (403, _) => StoreError::Forbidden(format!("could not {context}: {message}")),
        (401, _) => StoreError::Unauthorized(message),
        // sql/0008_scan_jobs.sql: too many scans queued, or arguments too long.
        (_, "BL429") => StoreError::Busy(err.message.unwrap_or_default()),
        (409, _) | (_, "23505") => StoreError::Conflict {
            what: context,
            message,
        },
        // Not found in the schema cache, or undefined in Postgres: a migration is missing.
        (_, "PGRST202" | "PGRST205" | "42883" | "42P01") => {
            StoreError::Outdated(format!("could not {context}: {message}"))
        }
        (502..=504, _) | (_, "PGRST000" | "PGRST001" | "PGRST002") => StoreError::Unavailable(
            format!("Supabase is unavailable ({status}) while trying to {context}: {message}"),
        ),
        _ => StoreError::Rest {
            context,
            status,
            message,
        },
    }
}

fn entry_row(e: &TimeEntry) -> Value {
    json!({
        "id": e.id,
        "message_id": e.message_id,
        "thread_id": e.thread_id,
        "client": e.client,
        "matter": e.matter,
        "activity": e.activity.as_str(),
        "description": e.description,
        "work_date": e.work_date.to_string(),
        "duration_minutes": e.duration_minutes,
        "billed_minutes": e.billed_minutes,
        "hourly_rate": e.hourly_rate,
        "amount": e.amount,
        "currency": e.currency,
        "billable": e.billable,
        "confidence": e.confidence,
        "status": e.status.as_str(),
        "analyzer": e.analyzer,
        "event_uid": e.event_uid,
        "task_code": e.task_code,
        "activity_code": e.activity_code,
        "created_at": e.created_at,
    })
}

/// A whole row for `review_time_entries`, review marks included (a scan's
/// `entry_row` leaves them out, so a re-analysis never writes them).
fn reviewed_row(e: &TimeEntry) -> Value {
    let mut row = entry_row(e);
    if let Value::Object(map) = &mut row {
        map.insert("reviewed_at".into(), json!(e.reviewed_at));
        map.insert("export_batch".into(), json!(e.export_batch));
        map.insert("exported_at".into(), json!(e.exported_at));
        map.insert("merged_into".into(), json!(e.merged_into));
    }
    row
}

/// Ids that can name a row: entry ids are UUIDs, and anything else would make
/// Postgres refuse the whole request instead of finding nothing.
fn uuids(ids: &[String]) -> Vec<&str> {
    ids.iter()
        .map(String::as_str)
        .filter(|id| uuid::Uuid::parse_str(id).is_ok())
        .collect()
}

fn processed_row(p: &Processed) -> Value {
    json!({
        "message_id": p.message_id,
        "content_hash": p.content_hash,
        "analyzer": p.analyzer,
        "outcome": p.outcome.as_str(),
        "reason": p.reason,
        "unmatched_under": p.unmatched_under,
        "counterpart": p.counterpart,
        "features": p.features,
        "processed_at": p.processed_at,
    })
}

fn event_row(e: &EventState, now: DateTime<Utc>) -> Value {
    json!({
        "uid": e.uid,
        "sequence": e.sequence,
        "cancelled": e.cancelled,
        "message_id": e.message_id,
        "updated_at": now,
    })
}

/// Keeps the last of several items with the same key: one upsert statement may not
/// touch a row twice.
/// `value` with every NUL character taken out of its strings: Postgres text cannot
/// hold one, and a sender can put one in any header (SQLite keeps them).
fn without_nul(value: &Value) -> Value {
    match value {
        Value::String(s) if s.contains('\0') => Value::String(s.replace('\0', "")),
        Value::Array(items) => Value::Array(items.iter().map(without_nul).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), without_nul(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn last_by_key<T>(items: &[T], key: impl Fn(&T) -> &str) -> Vec<&T> {
    let mut seen = HashSet::new();
    let mut out: Vec<&T> = items.iter().rev().filter(|i| seen.insert(key(i))).collect();
    out.reverse();
    out
}

#[derive(Deserialize)]
struct WrittenEntry {
    message_id: String,
    revision: i64,
}

#[derive(Deserialize)]
struct SettingsRow {
    settings: Value,
}

#[derive(Deserialize)]
struct ScanRow {
    id: String,
    source: String,
    query: Option<String>,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    status: ScanStatus,
    examined: i64,
    entries_created: i64,
    errors: i64,
    cursor: Option<String>,
}

/// Columns of `scan_jobs` a user reads (not the worker's lease).
const JOB_COLUMNS: &str = "id,state,args,cancel_requested,progress,result,error,attempts,\
     created_at,started_at,updated_at,finished_at";

#[derive(Deserialize)]
struct JobRow {
    id: String,
    state: JobState,
    args: Value,
    cancel_requested: bool,
    progress: Value,
    result: Option<Value>,
    error: Option<String>,
    attempts: i64,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl From<JobRow> for ScanJob {
    fn from(r: JobRow) -> Self {
        ScanJob {
            id: r.id,
            state: r.state,
            args: r.args,
            cancel_requested: r.cancel_requested,
            progress: serde_json::from_value(r.progress).unwrap_or_default(),
            result: r.result,
            error: r.error,
            attempts: u32::try_from(r.attempts).unwrap_or(0),
            created_at: r.created_at,
            started_at: r.started_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
        }
    }
}

#[derive(Deserialize)]
struct SummaryRow {
    is_total: bool,
    key: String,
    currency: String,
    entries: i64,
    raw_minutes: f64,
    billed_minutes: i64,
    billed_hours: f64,
    amount: f64,
}

fn non_negative(n: i64, what: &'static str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt {
        what,
        message: format!("{n} is negative"),
    })
}

impl SummaryRow {
    fn into_group(self) -> Result<SummaryGroup, StoreError> {
        Ok(SummaryGroup {
            key: self.key,
            currency: self.currency,
            entries: non_negative(self.entries, "summary entries")?,
            raw_minutes: self.raw_minutes,
            billed_minutes: non_negative(self.billed_minutes, "summary billed_minutes")?,
            billed_hours: self.billed_hours,
            amount: self.amount,
        })
    }
}

/// `processed_message_ids` returns a set of text, which PostgREST sends as bare
/// strings (PostgREST) or as one-column objects.
#[derive(Deserialize)]
#[serde(untagged)]
enum IdItem {
    Bare(String),
    Object(serde_json::Map<String, Value>),
}

#[async_trait]
impl Store for SupabaseStore {
    async fn settings(&self, user: &UserId) -> Result<Settings, StoreError> {
        let request = self.from(user, "tracking_settings")?.select("settings");
        let rows: Vec<SettingsRow> = self
            .fetch(request, "read your tracking settings", "tracking settings")
            .await?;
        match rows.into_iter().next() {
            None => Ok(Settings::default()),
            Some(row) => Settings::from_json(row.settings).map_err(|e| StoreError::Corrupt {
                what: "tracking settings",
                message: e.to_string(),
            }),
        }
    }

    async fn save_settings(&self, user: &UserId, settings: &Settings) -> Result<(), StoreError> {
        // Stored as the patch that recreates them, like the SQLite store.
        let row = json!({
            "settings": settings.to_patch(),
            "updated_at": Utc::now(),
        });
        let _: Vec<Value> = self
            .upsert(
                user,
                "tracking_settings",
                "user_id",
                "user_id",
                &[row],
                "save your tracking settings",
            )
            .await?;
        Ok(())
    }

    async fn processed_ids(
        &self,
        user: &UserId,
        ids: &[String],
        matching: &str,
    ) -> Result<HashSet<String>, StoreError> {
        let items: Vec<IdItem> = self
            .rpc_by_ids_with(
                user,
                "processed_message_ids",
                "p_ids",
                ids,
                json!({ "p_matching": matching }),
                "look up processed messages",
                "processed message ids",
            )
            .await?;
        Ok(items
            .into_iter()
            .filter_map(|item| match item {
                IdItem::Bare(id) => Some(id),
                IdItem::Object(map) => match map.into_iter().next() {
                    Some((_, Value::String(id))) => Some(id),
                    _ => None,
                },
            })
            .collect())
    }

    async fn reviewed_counterparts(
        &self,
        user: &UserId,
    ) -> Result<HashMap<String, Reviewed>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            counterpart: String,
            approved: u64,
            rejected: u64,
        }
        let request = self.rpc(user, "reviewed_counterparts", &json!({}))?;
        let rows: Vec<Row> = self
            .fetch(
                request,
                "look up whose entries you reviewed",
                "reviewed counterparts",
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let reviewed = Reviewed {
                    approved: r.approved,
                    rejected: r.rejected,
                };
                (r.counterpart, reviewed)
            })
            .collect())
    }

    async fn reviewed_features(
        &self,
        user: &UserId,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<(String, bool)>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            features: String,
            approved: bool,
        }
        // A null argument reaches the function as an empty string through PostgREST;
        // left out, it takes the function's default (no reset).
        let args = match since {
            Some(t) => json!({ "p_since": t }),
            None => json!({}),
        };
        let request = self.rpc(user, "reviewed_features", &args)?;
        let rows: Vec<Row> = self
            .fetch(request, "read what your reviews teach", "reviewed features")
            .await?;
        Ok(rows.into_iter().map(|r| (r.features, r.approved)).collect())
    }

    /// One call per `IDS_PER_CALL` uids, not one per event: a chunk of mail can hold
    /// dozens of invites.
    async fn events(
        &self,
        user: &UserId,
        uids: &[String],
    ) -> Result<HashMap<String, EventState>, StoreError> {
        let rows: Vec<EventState> = self
            .rpc_by_ids(
                user,
                "calendar_event_states",
                "p_uids",
                uids,
                "look up calendar events",
                "calendar events",
            )
            .await?;
        Ok(rows.into_iter().map(|e| (e.uid.clone(), e)).collect())
    }

    /// One `thread_matters` call per `IDS_PER_CALL` threads, the ids in the body:
    /// Message-IDs may hold any character, which a query string does not carry
    /// faithfully through every PostgREST.
    async fn thread_matters(
        &self,
        user: &UserId,
        thread_ids: &[String],
    ) -> Result<HashMap<String, (String, String)>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            thread_id: String,
            client: String,
            matter: String,
        }
        let rows: Vec<Row> = self
            .rpc_by_ids(
                user,
                "thread_matters",
                "p_threads",
                thread_ids,
                "look up the matters of threads",
                "thread matters",
            )
            .await?;
        let found = rows
            .into_iter()
            .map(|r| (r.thread_id, (r.client, r.matter)))
            .collect();
        Ok(found)
    }

    async fn entry_by_message(
        &self,
        user: &UserId,
        message_id: &str,
    ) -> Result<Option<TimeEntry>, StoreError> {
        let request = self
            .from(user, "time_entries")?
            .select(ENTRY_COLUMNS)
            .eq("message_id", message_id);
        let rows: Vec<TimeEntry> = self
            .fetch(request, "look up an entry by message", "time entry")
            .await?;
        Ok(rows.into_iter().next())
    }

    /// One request per table per chunk: entries first, then deletions (a cancel in
    /// the same batch as its invite wins), then the processed marks, so a message
    /// is only marked once its entry is written.
    async fn save_batch(&self, user: &UserId, batch: &Batch) -> Result<Saved, StoreError> {
        let mut saved = Saved::default();
        if batch.is_empty() {
            return Ok(saved);
        }
        // Fail before writing anything when there is no token.
        token(user)?;

        let entries: Vec<Value> = last_by_key(&batch.entries, |e| &e.message_id)
            .into_iter()
            .map(entry_row)
            .collect();
        let written: Vec<WrittenEntry> = self
            .upsert(
                user,
                "time_entries",
                "user_id,message_id",
                "message_id,revision",
                &entries,
                "save time entries",
            )
            .await?;
        for w in written {
            if w.revision == 0 {
                saved.created.push(w.message_id);
            } else {
                saved.updated.push(w.message_id);
            }
        }

        for message_id in &batch.deleted_entries {
            let request = self
                .from(user, "time_entries")?
                .eq("message_id", message_id)
                .not("in", "status", "(approved,rejected)")
                .is("reviewed_at", "null")
                .is("merged_into", "null")
                .is("exported_at", "null")
                .delete()
                .select("message_id");
            let gone: Vec<IgnoredAny> = self
                .fetch(
                    request,
                    "remove a cancelled meeting's entry",
                    "deleted rows",
                )
                .await?;
            if !gone.is_empty() {
                saved.deleted.push(message_id.clone());
            }
        }

        let now = Utc::now();
        let events: Vec<Value> = last_by_key(&batch.events, |e| &e.uid)
            .into_iter()
            .map(|e| event_row(e, now))
            .collect();
        let _: Vec<Value> = self
            .upsert(
                user,
                "calendar_events",
                "user_id,uid",
                "uid",
                &events,
                "record calendar events",
            )
            .await?;

        // Last: a message is marked processed only once everything else it wrote is
        // saved, so one whose writes failed part way is tried again by the next scan.
        let processed: Vec<Value> = last_by_key(&batch.processed, |p| &p.message_id)
            .into_iter()
            .map(processed_row)
            .collect();
        let _: Vec<IgnoredAny> = self
            .upsert(
                user,
                "processed_messages",
                "user_id,message_id",
                "message_id",
                &processed,
                "record processed messages",
            )
            .await?;
        Ok(saved)
    }

    async fn entries_by_id(
        &self,
        user: &UserId,
        ids: &[String],
    ) -> Result<Vec<TimeEntry>, StoreError> {
        let mut found = Vec::new();
        // UUIDs are safe in a query string; a few hundred keep the URL short.
        for chunk in uuids(ids).chunks(200) {
            let request = self
                .from(user, "time_entries")?
                .select(ENTRY_COLUMNS)
                .in_("id", chunk);
            let rows: Vec<TimeEntry> = self
                .fetch(request, "look up time entries", "time entry")
                .await?;
            found.extend(rows);
        }
        Ok(found)
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
        let rows: Vec<Value> = upserts.iter().map(reviewed_row).collect();
        // One call, one transaction: all or nothing, however many entries.
        let request = self.rpc(
            user,
            "review_time_entries",
            &json!({"p_rows": rows, "p_deletes": uuids(deletes)}),
        )?;
        let _: Value = self
            .fetch(request, "save your reviewed time entries", "written count")
            .await?;
        Ok(())
    }

    async fn merged_parts(&self, user: &UserId, id: &str) -> Result<Vec<TimeEntry>, StoreError> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Ok(Vec::new());
        }
        let request = self
            .from(user, "time_entries")?
            .select(ENTRY_COLUMNS)
            .eq("merged_into", id)
            .order("work_date.asc,created_at.asc,id.asc");
        self.fetch(request, "look up merged time entries", "time entry")
            .await
    }

    /// A `limit` of 0 means no limit.
    async fn list_entries(
        &self,
        user: &UserId,
        filter: &EntryFilter,
    ) -> Result<(Vec<TimeEntry>, u64), StoreError> {
        let mut request = self.from(user, "time_entries")?.select(ENTRY_COLUMNS);
        if let Some(from) = filter.from {
            request = request.gte("work_date", from.to_string());
        }
        if let Some(to) = filter.to {
            request = request.lte("work_date", to.to_string());
        }
        if let Some(client) = &filter.client {
            // client_key is lower(client): case-insensitive and indexed.
            request = request.eq("client_key", client.trim().to_lowercase());
        }
        if let Some(status) = filter.status {
            request = request.eq("status", status.as_str());
        }
        if let Some(matter) = &filter.matter {
            request = request.eq("matter_key", matter.trim().to_lowercase());
        }
        match filter.exported {
            Some(true) => request = request.not("is", "exported_at", "null"),
            Some(false) => request = request.is("exported_at", "null"),
            None => {}
        }
        // Entries merged into another are shown through the merged one.
        let request = request.is("merged_into", "null");
        let offset = filter.offset as usize;
        let size = match filter.limit {
            0 => UNBOUNDED_PAGE,
            n => n as usize,
        };
        let request = request
            .order("work_date.desc,created_at.desc,id.asc")
            .exact_count();
        let first = request.clone().range(offset, offset + size - 1);
        let mut reply = self.send(first, "list time entries").await?;
        let past_the_end = reply.status == 416;
        if past_the_end {
            // A page past the end is an error without a count; the first row's
            // range always answers, with the total.
            reply = self.send(request.range(0, 0), "count time entries").await?;
        }
        let total = reply.total().ok_or_else(|| StoreError::Corrupt {
            what: "entry count",
            message: format!(
                "PostgREST sent no total (Content-Range: {:?})",
                reply.content_range
            ),
        })?;
        if past_the_end {
            return Ok((Vec::new(), total));
        }
        let entries: Vec<TimeEntry> = reply.json("time entry")?;
        Ok((entries, total))
    }

    /// Rejected entries are left out. Time groups come in key order; client and
    /// matter groups by billed minutes, most first, then by key; ties by currency.
    async fn summary(
        &self,
        user: &UserId,
        query: &SummaryQuery,
    ) -> Result<Arc<Summary>, StoreError> {
        // Null arguments are left out (their defaults are null): not every PostgREST
        // implementation passes a JSON null through to a date parameter.
        let mut params = serde_json::Map::new();
        params.insert("p_group_by".into(), json!(query.group_by.as_str()));
        params.insert("p_billable_only".into(), json!(query.billable_only));
        if let Some(from) = query.from {
            params.insert("p_from".into(), json!(from.to_string()));
        }
        if let Some(to) = query.to {
            params.insert("p_to".into(), json!(to.to_string()));
        }
        if let Some(status) = query.status {
            params.insert("p_status".into(), json!(status.as_str()));
        }
        if let Some(matter) = &query.matter {
            params.insert("p_matter".into(), json!(matter.trim()));
        }
        let request = self.rpc(user, "time_summary", &Value::Object(params))?;
        let rows: Vec<SummaryRow> = self
            .fetch(request, "total your time entries", "summary")
            .await?;
        let mut groups = Vec::new();
        let mut total = Vec::new();
        for row in rows {
            if row.is_total {
                total.push(row.into_group()?);
            } else {
                groups.push(row.into_group()?);
            }
        }
        match query.group_by {
            GroupBy::Client | GroupBy::Matter | GroupBy::Status => groups.sort_by(|a, b| {
                b.billed_minutes
                    .cmp(&a.billed_minutes)
                    .then_with(|| a.key.cmp(&b.key))
                    .then_with(|| a.currency.cmp(&b.currency))
            }),
            GroupBy::Day | GroupBy::Week | GroupBy::Month => {
                groups.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.currency.cmp(&b.currency)))
            }
        }
        total.sort_by(|a, b| a.currency.cmp(&b.currency));
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
        let row = json!({
            "id": scan.id,
            "source": scan.source,
            "query": scan.query,
            "started_at": scan.started_at,
            "finished_at": scan.finished_at,
            "status": scan.status.as_str(),
            "examined": scan.examined,
            "entries_created": scan.entries_created,
            "errors": scan.errors,
            "cursor": scan.cursor,
            "updated_at": Utc::now(),
        });
        let _: Vec<Value> = self
            .upsert(user, "scans", "user_id,id", "id", &[row], "record a scan")
            .await?;
        Ok(())
    }

    async fn scans(&self, user: &UserId, limit: u32) -> Result<Vec<ScanRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let request = self
            .from(user, "scans")?
            .select(SCAN_COLUMNS)
            .order("started_at.desc,id.desc")
            .range(0, limit as usize - 1);
        let reply = self.send(request, "list scans").await?;
        if reply.status == 416 {
            return Ok(Vec::new());
        }
        let rows: Vec<ScanRow> = reply.json("scan")?;
        rows.into_iter()
            .map(|r| {
                Ok(ScanRecord {
                    id: r.id,
                    source: r.source,
                    query: r.query,
                    started_at: r.started_at,
                    finished_at: r.finished_at,
                    status: r.status,
                    examined: non_negative(r.examined, "scan examined")?,
                    entries_created: non_negative(r.entries_created, "scan entries_created")?,
                    errors: non_negative(r.errors, "scan errors")?,
                    cursor: r.cursor,
                })
            })
            .collect()
    }

    async fn data_version(&self, user: &UserId) -> Result<Option<String>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            version: i64,
        }
        let request = self.from(user, "user_versions")?.select("version");
        let rows: Vec<Row> = self
            .fetch(request, "read the data's version", "version")
            .await?;
        Ok(Some(rows.first().map_or(0, |r| r.version).to_string()))
    }

    async fn enqueue_scan(&self, user: &UserId, args: &Value) -> Result<ScanJob, StoreError> {
        let request = self.rpc(user, "enqueue_scan", &json!({ "args": args }))?;
        let rows: Vec<JobRow> = self.fetch(request, "queue a scan", "scan job").await?;
        rows.into_iter().next().map(ScanJob::from).ok_or_else(|| {
            StoreError::Unavailable("Supabase queued the scan but did not return it".to_owned())
        })
    }

    async fn scan_job(&self, user: &UserId, id: &str) -> Result<Option<ScanJob>, StoreError> {
        // Not a UUID: nobody's job (and PostgREST would refuse the filter).
        if uuid::Uuid::parse_str(id).is_err() {
            return Ok(None);
        }
        let request = self
            .from(user, "scan_jobs")?
            .select(JOB_COLUMNS)
            .eq("id", id);
        let rows: Vec<JobRow> = self.fetch(request, "read a scan job", "scan job").await?;
        Ok(rows.into_iter().next().map(ScanJob::from))
    }

    async fn scan_jobs(&self, user: &UserId, limit: u32) -> Result<Vec<ScanJob>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let request = self
            .from(user, "scan_jobs")?
            .select(JOB_COLUMNS)
            .order("created_at.desc,id.desc")
            .range(0, limit as usize - 1);
        let reply = self.send(request, "list scan jobs").await?;
        if reply.status == 416 {
            return Ok(Vec::new());
        }
        let rows: Vec<JobRow> = reply.json("scan job")?;
        Ok(rows.into_iter().map(ScanJob::from).collect())
    }

    async fn cancel_scan_job(
        &self,
        user: &UserId,
        id: &str,
    ) -> Result<Option<ScanJob>, StoreError> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Ok(None);
        }
        let request = self.rpc(user, "cancel_scan", &json!({ "job_id": id }))?;
        let rows: Vec<JobRow> = self.fetch(request, "cancel a scan", "scan job").await?;
        Ok(rows.into_iter().next().map(ScanJob::from))
    }

    async fn gmail_grant(&self, user: &UserId) -> Result<Option<GmailGrant>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            sealed: String,
            updated_at: DateTime<Utc>,
        }
        let request = self.from(user, "gmail_grants")?.select("sealed,updated_at");
        let rows: Vec<Row> = self
            .fetch(
                request,
                "read your Gmail authorisation",
                "Gmail authorisation",
            )
            .await?;
        Ok(rows.into_iter().next().map(|r| GmailGrant {
            sealed: r.sealed,
            updated_at: r.updated_at,
        }))
    }

    async fn save_gmail_grant(&self, user: &UserId, sealed: &str) -> Result<(), StoreError> {
        let row = json!({ "sealed": sealed, "updated_at": Utc::now() });
        let _: Vec<Value> = self
            .upsert(
                user,
                "gmail_grants",
                "user_id",
                "user_id",
                &[row],
                "save your Gmail authorisation",
            )
            .await?;
        Ok(())
    }

    async fn delete_gmail_grant(&self, user: &UserId) -> Result<bool, StoreError> {
        // RLS confines the delete to the caller's row.
        let request = self
            .from(user, "gmail_grants")?
            .delete()
            .not("is", "user_id", "null")
            .select("user_id");
        let rows: Vec<Value> = self
            .fetch(request, "forget your Gmail authorisation", "deleted rows")
            .await?;
        Ok(!rows.is_empty())
    }

    /// Reachability only: any answer from PostgREST below 500 will do.
    async fn ping(&self) -> Result<(), StoreError> {
        let request = self.rest.from("").select("*");
        let response = tokio::time::timeout(self.timeout, request.execute())
            .await
            .map_err(|_| StoreError::Unavailable("Supabase did not answer in time".to_owned()))?
            .map_err(|e| {
                StoreError::Unavailable(format!("could not reach Supabase at {}: {e}", self.base))
            })?;
        let status = response.status().as_u16();
        if status >= 500 {
            return Err(StoreError::Unavailable(format!(
                "Supabase answered {status} at {}",
                self.base
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rest_url_is_the_project_url_plus_rest_v1_once() {
        assert_eq!(
            rest_url_for("https://abc.supabase.co"),
            "https://abc.supabase.co/rest/v1"
        );
        assert_eq!(
            rest_url_for("https://abc.supabase.co/rest/v1/"),
            "https://abc.supabase.co/rest/v1"
        );
    }

    #[test]
    fn a_request_without_a_token_is_refused_before_it_is_sent() {
        let err = token(&UserId::new("u")).unwrap_err();
        assert!(matches!(err, StoreError::Unauthorized(_)), "{err}");
        assert!(err.to_string().contains("Bearer"), "{err}");
        let err = token(&UserId::new("u").with_token("a b\nc")).unwrap_err();
        assert!(matches!(err, StoreError::Unauthorized(_)), "{err}");
    }

    #[test]
    fn postgrest_errors_map_to_what_they_mean() {
        let rls = r#"{"code":"42501","message":"new row violates row-level security policy for table \"time_entries\""}"#;
        assert!(matches!(
            rest_error(401, rls, "x"),
            StoreError::Forbidden(_)
        ));
        assert!(matches!(
            rest_error(403, rls, "x"),
            StoreError::Forbidden(_)
        ));
        let expired = r#"{"code":"PGRST303","message":"JWT expired"}"#;
        let err = rest_error(401, expired, "x");
        assert!(matches!(err, StoreError::Unauthorized(_)), "{err}");
        assert!(err.to_string().contains("JWT expired"), "{err}");
        let dup = r#"{"code":"23505","message":"duplicate key value"}"#;
        assert!(matches!(
            rest_error(409, dup, "x"),
            StoreError::Conflict { .. }
        ));
        // As PostgREST and postrust answer a call to a function the schema lacks.
        let missing = r#"{"code":"PGRST202","details":null,"hint":null,"message":"Could not find the function public.calendar_event_states(p_uids) in the schema cache"}"#;
        let err = rest_error(404, missing, "look up calendar events");
        assert!(matches!(err, StoreError::Outdated(_)), "{err}");
        assert!(
            err.to_string().contains("calendar_event_states") && err.to_string().contains("sql/"),
            "{err}"
        );
        assert!(matches!(
            rest_error(503, "upstream down", "x"),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            rest_error(400, "{}", "x"),
            StoreError::Rest { status: 400, .. }
        ));
    }

    #[test]
    fn a_batch_keeps_the_last_of_repeated_keys_in_order() {
        let items = ["a1", "b1", "a2", "c1"];
        let kept = last_by_key(&items, |s| &s[..1]);
        assert_eq!(kept, [&"b1", &"a2", &"c1"]);
    }

    #[test]
    fn an_invalid_url_or_key_is_a_configuration_error() {
        assert!(SupabaseStore::new("abc.supabase.co", None).is_err());
        assert!(SupabaseStore::new("https://abc.supabase.co/rest/v1", Some("bad key")).is_err());
        assert!(SupabaseStore::new("https://abc.supabase.co/rest/v1", Some("eyJ.x.y")).is_ok());
    }
}
