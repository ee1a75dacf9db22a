//! `scan_billable_time`: stream the mailbox in chunks, skip what was processed, triage,
//! analyze, and save each chunk as it completes (a crash loses at most one chunk).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::pipeline::{self, Disposition, Progress, Recorder, ScanProgress};
use super::{Hints, Tool};
use crate::analyze::{Analysis, AnalyzeError, Analyzer, LlmCounts, Meter, rules, triage};
use crate::context::Context;
use crate::domain::{
    Email, EntryStatus, Settings, SummaryGroup, TimeEntry, UserId, WorkDate, free_mail,
};
use crate::error::{Error, Result};
use crate::mail::{Listed, MailError, MailQuery, RawEmail, id_key, parse};
use crate::store::{Batch, ScanRecord, ScanStatus, Store};

/// Messages handled per chunk: one `processed_ids` lookup, one analyzer call and one
/// saved batch each.
pub const CHUNK: usize = 256;

/// The most raw bytes a chunk read from a local source holds: a chunk ends at
/// [`CHUNK`] messages or here, whichever comes first, so a run of large messages
/// cannot fill the memory. (Attachment bodies were already dropped while reading.)
pub const CHUNK_BYTES: usize = 16 * 1024 * 1024;
/// Entries returned in the output; the rest are in `list_time_entries`.
const ENTRIES_SHOWN: usize = 50;
/// Per-message errors listed in the output; `errors_total` counts them all.
const ERRORS_SHOWN: usize = 200;

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Gmail search query, e.g. 'from:acme.com'; null uses the default query.
    #[serde(default)]
    pub query: Option<String>,
    /// Only messages dated on or after this day (YYYY-MM-DD), or null.
    #[serde(default)]
    pub after: Option<WorkDate>,
    /// Only messages dated before this day (YYYY-MM-DD), or null.
    #[serde(default)]
    pub before: Option<WorkDate>,
    /// Stop after examining this many messages.
    #[serde(default)]
    pub max_messages: Option<u64>,
    /// Analyze and report without saving anything.
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// Analyze messages again even if already processed; reviewed entries are kept.
    #[serde(default)]
    pub reanalyze: Option<bool>,
    /// Run as a background job and answer at once with its job_id (watch it with
    /// get_scan_status, stop it with cancel_scan). Null: true for Gmail, whose scans
    /// run at the quota's pace, false for local mail files.
    #[serde(default)]
    pub background: Option<bool>,
}

/// What `scan_billable_time` answers: the scan's result (in the foreground), or the
/// background job it queued; one of the two, its fields at the top level.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Reply {
    #[serde(flatten)]
    pub done: Option<Box<Output>>,
    #[serde(flatten)]
    pub queued: Option<super::jobs::JobStatus>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MessageError {
    pub message_id: String,
    pub reason: String,
}

/// A counterpart domain that matched no client: a client you may want to add.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DomainCount {
    pub domain: String,
    /// Messages with people there that matched no client.
    pub messages: u64,
    /// Of those, the messages you sent them: mail you write is the surest sign of
    /// work, and what the list is ranked by.
    pub sent: u64,
    /// The addresses behind the count, most frequent first (at most 5).
    pub addresses: Vec<String>,
}

/// A domain's counts while the scan runs.
#[derive(Default)]
struct Unmatched {
    messages: u64,
    sent: u64,
    addresses: HashMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Output {
    pub scan_id: String,
    /// `completed`, or `interrupted` when the source or analyzer failed part-way
    /// (what was done is saved; scanning again resumes).
    pub status: ScanStatus,
    pub stopped_reason: Option<String>,
    pub source: String,
    /// What the source listed when that was not every message the query matches:
    /// a Gmail scan lists only mail that names a configured client.
    pub listing: Option<String>,
    pub query: Option<String>,
    pub dry_run: bool,
    pub examined: u64,
    /// Messages an earlier scan processed, and further copies (another Gmail id, same
    /// Message-ID) of a message already processed.
    pub skipped_already_processed: u64,
    pub skipped_automated: u64,
    pub analyzed: u64,
    pub not_billable: u64,
    pub entries_created: u64,
    pub entries_updated: u64,
    pub entries_removed: u64,
    pub errors: Vec<MessageError>,
    pub errors_total: u64,
    /// Raw minutes of the billable entries this scan created or updated, net of the
    /// ones it removed (a meeting a later chunk cancelled or declined).
    pub billable_minutes: f64,
    /// Billed minutes of those entries.
    pub billed_minutes: u64,
    /// Amount of those entries.
    pub amount: f64,
    pub currency: String,
    /// The same totals per client (key `(none)` for no client) and currency, as
    /// `get_time_tracking_summary` groups them, largest first.
    pub clients: Vec<SummaryGroup>,
    /// The new entries still standing at the end of the scan (first 50), as saved
    /// (a meeting a later chunk updated shows its latest version).
    pub entries: Vec<TimeEntry>,
    /// Domains with mail that matched no client (top 10), those you wrote to most
    /// first: the clients you may want to add with `configure_time_tracking`.
    /// Free-mail and ISP domains, your own and your personal contacts are left out.
    pub unmatched_domains: Vec<DomainCount>,
    /// Entries the `rollup` setting folded into one per thread or matter and day
    /// (0 when it is `none`). The totals above are per message, before it.
    pub rolled_up: u64,
    /// What the model did (the `llm` analyzer only): requests, tokens, answers used,
    /// fallbacks to the rules, timeouts and cache hits, with a warning when most
    /// answers were unusable.
    pub llm: Option<LlmCounts>,
    pub elapsed_ms: u64,
}

struct Scan<'a> {
    ctx: &'a Context,
    user: &'a UserId,
    settings: Arc<Settings>,
    dry_run: bool,
    reanalyze: bool,
    recorder: Recorder,
    out: Output,
    progress: ScanProgress,
    unmatched: HashMap<String, Unmatched>,
    pending: Option<pipeline::PendingSave>,
    /// The billable entries this scan created or updated and did not remove, by
    /// message id: what the totals are computed from at the end.
    totals: HashMap<u128, Counted>,
    /// The (client, currency) groups `Counted::group` indexes, and their index.
    groups: Vec<(String, String)>,
    group_index: HashMap<(String, String), u32>,
    /// A listed message could not be fetched: the mailbox was not fully covered, so
    /// the scan's cursor is not recorded (the next scan lists everything again).
    unfetched: bool,
    /// The first and last work date of the entries this scan created: where the
    /// `rollup` setting looks.
    created_dates: Option<(WorkDate, WorkDate)>,
    /// What the analyzer's model did for this scan.
    meter: Arc<Meter>,
}

/// `scan_billable_time` in the tool table.
pub struct ScanBillableTime;

impl Tool for ScanBillableTime {
    const NAME: &'static str = "scan_billable_time";
    const DESCRIPTION: &'static str = "Scan the user's mailbox for billable client work and save suggested time entries. Messages already processed are skipped unless reanalyze is true; automated mail is skipped. Returns counts, totals and the new entries; a background scan (the default for Gmail) returns its job_id at once: follow it with get_scan_status.";
    const HINTS: Hints = Hints {
        read_only: false,
        destructive: false,
        idempotent: false,
        open_world: true,
    };
    type Args = Args;
    type Output = Reply;

    async fn run(
        ctx: &Context,
        user: &UserId,
        args: Args,
        progress: &dyn Progress,
    ) -> Result<Reply> {
        if args.background.unwrap_or_else(|| ctx.reads_gmail()) {
            check(&args)?;
            let job = super::jobs::enqueue(ctx, user, &args).await?;
            return Ok(Reply {
                done: None,
                queued: Some(job),
            });
        }
        Ok(Reply {
            done: Some(Box::new(run(ctx, user, args, progress).await?)),
            queued: None,
        })
    }
}

/// The checks a scan's arguments pass before anything is read (or queued).
fn check(args: &Args) -> Result<()> {
    if let (Some(a), Some(b)) = (args.after, args.before)
        && a >= b
    {
        return Err(Error::invalid(
            "before",
            format!("must be after `after` ({a}), got {b}"),
        ));
    }
    if args.max_messages == Some(0) {
        return Err(Error::invalid("max_messages", "must be at least 1"));
    }
    Ok(())
}

pub async fn run(
    ctx: &Context,
    user: &UserId,
    args: Args,
    progress: &dyn Progress,
) -> Result<Output> {
    let started = Instant::now();
    check(&args)?;
    let source = ctx.source(user).await?;
    let mut settings = super::pipeline::settings_with_learning(ctx, user).await?;
    for address in source.owner_addresses().await? {
        let address = address.to_ascii_lowercase();
        if !settings.is_mine(&address) {
            settings.my_addresses.push(address);
        }
    }
    let query = MailQuery {
        query: args
            .query
            .clone()
            .or_else(|| settings.default_query.clone()),
        after: args.after.map(|d| d.0),
        before: args.before.map(|d| d.0),
        timezone: settings.timezone,
        candidates: crate::mail::gmail::candidate_terms(&settings),
    };
    query.validate()?;
    let settings = Arc::new(settings);
    // The recorder holds the settings' matching key, computed once per scan.
    let recorder = Recorder::new(ctx.analyzer.name(), Arc::clone(&settings));
    let (cursor, since) = sync_point(
        ctx,
        user,
        source.as_ref(),
        &args,
        &query,
        recorder.matching(),
    )
    .await?;

    let dry_run = args.dry_run.unwrap_or(false);
    let mut record = ScanRecord {
        id: uuid::Uuid::new_v4().to_string(),
        source: source.describe(),
        query: query.query.clone(),
        started_at: Utc::now(),
        finished_at: None,
        status: ScanStatus::Running,
        examined: 0,
        entries_created: 0,
        errors: 0,
        cursor: None,
    };
    if !dry_run {
        ctx.store.record_scan(user, &record).await?;
    }
    let mut unfinished = (!dry_run).then(|| Unfinished {
        store: Arc::clone(&ctx.store),
        user: user.clone(),
        record: Some(record.clone()),
    });

    let mut scan = Scan {
        ctx,
        user,
        dry_run,
        reanalyze: args.reanalyze.unwrap_or(false),
        recorder,
        progress: ScanProgress::default(),
        unmatched: HashMap::new(),
        pending: None,
        totals: HashMap::new(),
        groups: Vec::new(),
        group_index: HashMap::new(),
        unfetched: false,
        out: Output {
            scan_id: record.id.clone(),
            status: ScanStatus::Completed,
            stopped_reason: None,
            source: record.source.clone(),
            listing: source.listing(&query),
            query: query.query.clone(),
            dry_run,
            examined: 0,
            skipped_already_processed: 0,
            skipped_automated: 0,
            analyzed: 0,
            not_billable: 0,
            entries_created: 0,
            entries_updated: 0,
            entries_removed: 0,
            errors: Vec::new(),
            errors_total: 0,
            billable_minutes: 0.0,
            billed_minutes: 0,
            amount: 0.0,
            currency: settings.currency.clone(),
            clients: Vec::new(),
            entries: Vec::new(),
            unmatched_domains: Vec::new(),
            rolled_up: 0,
            llm: None,
            elapsed_ms: 0,
        },
        settings,
        created_dates: None,
        meter: Arc::new(Meter::default()),
    };

    let listing = match &since {
        Some(since) => source.list_since(&query, since),
        None => source.list(&query),
    };
    let limit = args
        .max_messages
        .map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
    // A stop (Ctrl-C, cancel_scan, a worker's slice ending) ends the listing at once:
    // the messages read so far are analyzed and saved, and nothing more is read.
    let listing = listing
        .take(limit)
        .take_while(|_| futures::future::ready(!progress.cancelled()));
    let mut chunks = chunked(listing.boxed());
    let prep = Prep {
        ctx,
        user,
        settings: Arc::clone(&scan.settings),
        matching: scan.recorder.matching().to_owned(),
        reanalyze: scan.reanalyze,
    };
    let mut seen = HashSet::new();
    let mut copies = HashSet::new();
    // Two stages overlap: while chunk N is recorded and saved, chunk N+1 is read,
    // looked up, parsed and analyzed (its CPU work on the blocking pool).
    let mut current: Option<Prepared> = None;
    let mut stopped: Option<String> = None;
    let cut = std::sync::atomic::AtomicBool::new(false);
    loop {
        // After a chunk that stops the scan nothing more is read (nor sent to an LLM).
        let last = current.as_ref().is_some_and(|p| p.fatal.is_some());
        let (next, applied) = futures::join!(
            async {
                if last {
                    return None;
                }
                if progress.cancelled() {
                    cut.store(true, std::sync::atomic::Ordering::Relaxed);
                    return None;
                }
                let chunk = chunks.next().await?;
                Some(prep.prepare(chunk, &mut seen, &mut copies).await)
            },
            async {
                match current.take() {
                    Some(prepared) => scan.apply(prepared, progress).await.map(|()| true),
                    None => Ok(false),
                }
            },
        );
        match applied {
            Ok(true) => {
                progress.report(&scan.progress);
                if let Some(u) = &mut unfinished {
                    u.progress(&scan.out);
                }
            }
            Ok(false) => {}
            Err(Stop(reason)) => {
                stopped = Some(reason);
                break;
            }
        }
        match next {
            Some(prepared) => current = Some(prepared),
            None => break,
        }
    }
    if stopped.is_none() && cut.into_inner() {
        stopped = Some("stopped on request".to_owned());
    }
    // Whatever the last chunk staged before a stop is still worth keeping.
    let flushed = scan.flush(true).await;
    // From here the scan's end is recorded below, whatever it is.
    if let Some(u) = &mut unfinished {
        u.record = None;
    }
    if let Err(e) = flushed {
        record.status = ScanStatus::Failed;
        record.finished_at = Some(Utc::now());
        if !dry_run {
            // Best effort: the store just failed, so this may fail too.
            let _ = ctx.store.record_scan(user, &record).await;
        }
        return Err(e);
    }
    progress.report(&scan.progress);

    let covered = !scan.unfetched;
    let rolled_up = match scan.created_dates {
        Some((from, to)) if !dry_run => {
            super::rollup::roll_up(ctx, user, &scan.settings, from, to).await?
        }
        _ => 0,
    };
    let mut out = scan.finish();
    out.rolled_up = rolled_up;
    record.status = match stopped {
        Some(reason) => {
            out.stopped_reason = Some(reason);
            ScanStatus::Interrupted
        }
        None => ScanStatus::Completed,
    };
    out.status = record.status;
    out.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    record.finished_at = Some(Utc::now());
    record.examined = out.examined;
    record.entries_created = out.entries_created;
    record.errors = out.errors_total;
    if record.status == ScanStatus::Completed && covered {
        record.cursor = cursor;
    }
    if !dry_run {
        ctx.store.record_scan(user, &record).await?;
    }
    Ok(out)
}

/// Resolves once `watcher` asks the scan to stop (it is polled: Ctrl-C sets a flag).
async fn stop_requested(watcher: &dyn Progress) {
    while !watcher.cancelled() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The listing in chunks of at most [`CHUNK`] messages and [`CHUNK_BYTES`] of the
/// bytes local sources carry.
fn chunked<'a>(
    listing: futures::stream::BoxStream<'a, Result<Listed, MailError>>,
) -> futures::stream::BoxStream<'a, Vec<Result<Listed, MailError>>> {
    futures::stream::unfold(listing, |mut listing| async move {
        let mut chunk = Vec::new();
        let mut bytes = 0;
        while let Some(item) = listing.next().await {
            bytes += match &item {
                Ok(Listed { raw: Some(raw), .. }) => raw.bytes.len(),
                _ => 0,
            };
            chunk.push(item);
            if chunk.len() >= CHUNK || bytes >= CHUNK_BYTES {
                break;
            }
        }
        (!chunk.is_empty()).then_some((chunk, listing))
    })
    .boxed()
}

/// Records the scan as `interrupted`, with the counts reached, when `run` is dropped
/// before its end is recorded: a request timeout, a client that went away, a task
/// killed. Without it the scan would stay `running` in the history for ever.
struct Unfinished {
    store: Arc<dyn Store>,
    user: UserId,
    record: Option<ScanRecord>,
}

impl Unfinished {
    fn progress(&mut self, out: &Output) {
        if let Some(record) = &mut self.record {
            record.examined = out.examined;
            record.entries_created = out.entries_created;
            record.errors = out.errors_total;
        }
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let Some(mut record) = self.record.take() else {
            return;
        };
        // Outside a runtime (it is shutting down) there is nothing left to write with.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        record.status = ScanStatus::Interrupted;
        record.finished_at = Some(Utc::now());
        let (store, user) = (Arc::clone(&self.store), self.user.clone());
        runtime.spawn(async move {
            if let Err(e) = store.record_scan(&user, &record).await {
                tracing::warn!(scan = %record.id, error = %e, "could not record a cut-off scan as interrupted");
            }
        });
    }
}

/// Incremental sync: the source's cursor now (kept with the scan when it completes
/// everything it listed) and, for a scan of the whole mailbox, the cursor of the last
/// such scan, from which only added mail is listed. A limited, filtered or dated scan
/// does not cover the mailbox, so it neither records nor uses a cursor.
///
/// The recorded cursor carries the `matching_key` of the settings it was taken under
/// (`key/cursor`). After clients, aliases or the owner's addresses change, the old
/// cursor does not apply: the whole mailbox is listed, so mail that matched no client
/// before is examined again under the new settings.
async fn sync_point(
    ctx: &Context,
    user: &UserId,
    source: &dyn crate::mail::MailSource,
    args: &Args,
    query: &MailQuery,
    key: &str,
) -> Result<(Option<String>, Option<String>)> {
    let whole = query.is_unfiltered() && args.max_messages.is_none();
    if !whole {
        return Ok((None, None));
    }
    let Some(cursor) = source.cursor().await? else {
        return Ok((None, None));
    };
    let cursor = format!("{key}/{cursor}");
    if args.reanalyze == Some(true) {
        return Ok((Some(cursor), None));
    }
    let describe = source.describe();
    let since = ctx
        .store
        .scans(user, 20)
        .await?
        .into_iter()
        .find(|s| s.status == ScanStatus::Completed && s.source == describe && s.cursor.is_some())
        .and_then(|s| s.cursor)
        .and_then(|c| {
            c.strip_prefix(key)
                .and_then(|rest| rest.strip_prefix('/'))
                .map(str::to_owned)
        });
    Ok((Some(cursor), since))
}

/// What preparing a chunk needs; shared, read-only, so it runs beside `Scan::apply`.
struct Prep<'a> {
    ctx: &'a Context,
    user: &'a UserId,
    settings: Arc<Settings>,
    /// `settings.matching_key()`, as the recorder holds it.
    matching: String,
    reanalyze: bool,
}

/// A chunk read, looked up, parsed and analyzed, waiting to be recorded.
struct Prepared {
    /// Listed messages, counting unreadable ones.
    examined: u64,
    /// Per-message errors: (message id, reason).
    errors: Vec<(String, String)>,
    skipped_processed: u64,
    /// A listed message could not be fetched.
    unfetched: bool,
    /// Automated and malformed messages; the ones to analyze are in `emails`.
    skipped: Vec<Skipped>,
    emails: Vec<Email>,
    /// Each email's analysis when the analyzer gave it at once (all of them for
    /// `rules`; what needs no model for `llm`). The rest are analyzed as the chunk
    /// is recorded, so each answered request is saved as it arrives.
    ready: Vec<Option<Analysis>>,
    /// The source failed: the scan stops after this chunk.
    fatal: Option<String>,
}

impl Prep<'_> {
    async fn prepare(
        &self,
        chunk: Vec<Result<Listed, MailError>>,
        seen: &mut HashSet<u128>,
        copies: &mut HashSet<u128>,
    ) -> Prepared {
        let mut out = Prepared {
            examined: 0,
            errors: Vec::new(),
            skipped_processed: 0,
            unfetched: false,
            skipped: Vec::new(),
            emails: Vec::new(),
            ready: Vec::new(),
            fatal: None,
        };
        // 1. Listing results: per-message errors are reported; others stop the scan.
        let mut listed = Vec::with_capacity(chunk.len());
        for item in chunk {
            match item {
                Ok(l) => {
                    if seen.insert(id_key(&l.id)) {
                        listed.push(l);
                    }
                }
                Err(MailError::Malformed(reason)) => {
                    out.examined += 1;
                    out.errors.push(("(unreadable)".to_owned(), reason));
                }
                Err(e) => {
                    out.fatal = Some(e.to_string());
                    break;
                }
            }
        }
        out.examined += listed.len() as u64;

        // 2. Drop what earlier scans processed before fetching any body.
        let mut ids: Vec<String> = listed.iter().map(|l| l.id.clone()).collect();
        if !self.reanalyze && !listed.is_empty() {
            match self
                .ctx
                .store
                .processed_ids(self.user, &ids, &self.matching)
                .await
            {
                Ok(done) => {
                    // Ids are unique here (`seen`), so both lists stay aligned.
                    listed.retain(|l| !done.contains(&l.id));
                    let before = ids.len();
                    ids.retain(|id| !done.contains(id));
                    out.skipped_processed = (before - ids.len()) as u64;
                }
                Err(e) => {
                    out.fatal = Some(Error::from(e).to_string());
                    return out;
                }
            }
        }

        // 3. Fetch, then parse and triage off the async runtime, on every core.
        let source = match self.ctx.source(self.user).await {
            Ok(source) => source,
            Err(e) => {
                out.fatal = Some(e.to_string());
                return out;
            }
        };
        let mut raws = Vec::with_capacity(listed.len());
        for (id, fetched) in ids.into_iter().zip(source.fetch_many(listed).await) {
            match fetched {
                Ok(raw) => raws.push(raw),
                Err(MailError::Malformed(reason)) | Err(MailError::NotFound(reason)) => {
                    out.errors.push((id, reason));
                    out.unfetched = true;
                }
                Err(e) => {
                    out.fatal.get_or_insert(e.to_string());
                    break;
                }
            }
        }
        let mut ready = Vec::new();
        for parsed in parse_all(raws, &self.ctx.analyzer, &self.settings).await {
            match parsed {
                Parsed::Email(email, analysis) => {
                    out.emails.push(email);
                    ready.push(analysis);
                }
                Parsed::Skipped(skipped) => out.skipped.push(skipped),
            }
        }
        if let Err(e) = self.drop_copies(&mut out, &mut ready, copies).await {
            out.fatal = Some(e.to_string());
            return out;
        }

        out.ready = ready;
        out
    }
}

impl Prep<'_> {
    /// Moves to `skipped` the messages that are another copy of an RFC message (same
    /// Message-ID, another source id: Gmail's copies for two aliases, or the owner in
    /// Cc of their own mail) processed by an earlier scan or earlier in this one;
    /// `copies` holds the Message-IDs this scan has seen. A rescan with `reanalyze`
    /// asks only this scan: every copy is marked processed, the first included.
    async fn drop_copies(
        &self,
        out: &mut Prepared,
        ready: &mut Vec<Option<Analysis>>,
        copies: &mut HashSet<u128>,
    ) -> Result<()> {
        let rfc_of = |e: &Email| e.rfc_id.clone().filter(|rfc| *rfc != e.id);
        let asked: Vec<String> = out
            .emails
            .iter()
            .filter_map(rfc_of)
            .filter(|rfc| !copies.contains(&id_key(rfc)))
            .collect();
        if asked.is_empty() && copies.is_empty() {
            return Ok(());
        }
        let done = if asked.is_empty() || self.reanalyze {
            HashSet::new()
        } else {
            self.ctx
                .store
                .processed_ids(self.user, &asked, &self.matching)
                .await?
        };
        let emails = std::mem::take(&mut out.emails);
        let analyses = std::mem::take(ready);
        for (email, analysis) in emails.into_iter().zip(analyses) {
            let copy = rfc_of(&email)
                .is_some_and(|rfc| done.contains(&rfc) || !copies.insert(id_key(&rfc)));
            if copy {
                out.skipped.push(Skipped::Copy(email));
            } else {
                out.emails.push(email);
                ready.push(analysis);
            }
        }
        Ok(())
    }
}

/// One fetched message after parsing and triage. Each is moved once, into the chunk's
/// lists; boxing the large variants would cost an allocation per message instead.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    /// To analyze; with the analysis when the analyzer answers at once.
    Email(Email, Option<Analysis>),
    Skipped(Skipped),
}

/// A message recorded without analysis.
#[allow(clippy::large_enum_variant)]
enum Skipped {
    Automated(Email, String),
    /// Another copy of an RFC message already processed.
    Copy(Email),
    Malformed {
        id: String,
        hash: String,
        reason: String,
    },
}

fn parse_one(raw: &RawEmail, analyzer: &dyn Analyzer, settings: &Settings) -> Parsed {
    // parse_email is written not to panic on any input; should a bug make it, that
    // message is reported, not the scan lost.
    let parsed = std::panic::catch_unwind(|| parse::parse_email(raw))
        .unwrap_or_else(|_| Err(MailError::Malformed("parsing failed unexpectedly".into())));
    match parsed {
        Ok(email) => match triage::automated(&email, settings) {
            Some(reason) => Parsed::Skipped(Skipped::Automated(email, reason)),
            None => {
                // Like parsing: a bug in the analyzer costs this message, not the part.
                // Nothing of the analyzer's is used after a panic but this report.
                let now = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    analyzer.analyze_now(&email, settings)
                }));
                match now {
                    Ok(analysis) => Parsed::Email(email, analysis),
                    Err(_) => Parsed::Skipped(Skipped::Malformed {
                        id: raw.id.clone(),
                        hash: email.content_hash,
                        reason: "analyzing failed unexpectedly".into(),
                    }),
                }
            }
        },
        Err(e) => Parsed::Skipped(Skipped::Malformed {
            id: raw.id.clone(),
            hash: parse::sha256_hex(&raw.bytes),
            reason: e.to_string(),
        }),
    }
}

/// Parses, triages and (when the analyzer answers at once) analyzes a chunk, in order.
/// The work is CPU only, so it runs on the blocking pool (never stalling the server's
/// async workers), split into one part per core.
async fn parse_all(
    raws: Vec<RawEmail>,
    analyzer: &Arc<dyn Analyzer>,
    settings: &Arc<Settings>,
) -> Vec<Parsed> {
    /// Below this many messages per part, splitting costs more than it saves.
    const MIN_PART: usize = 16;
    if raws.is_empty() {
        return Vec::new();
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let parts = cores.min(raws.len() / MIN_PART).max(1);
    let per_part = raws.len().div_ceil(parts);
    let mut raws = raws.into_iter();
    let tasks: Vec<_> = (0..parts)
        .map(|_| {
            let part: Vec<RawEmail> = raws.by_ref().take(per_part).collect();
            let settings = Arc::clone(settings);
            let analyzer = Arc::clone(analyzer);
            tokio::task::spawn_blocking(move || {
                part.iter()
                    .map(|raw| parse_one(raw, analyzer.as_ref(), &settings))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        match task.await {
            Ok(parsed) => out.extend(parsed),
            // Only a runtime shutting down cancels a blocking task; the scan is
            // ending anyway and what was not recorded is scanned next time.
            Err(e) => tracing::error!(error = %e, "parsing a part of a chunk failed"),
        }
    }
    out
}

/// A failure that ends the scan early (source or analyzer unavailable, store error).
struct Stop(String);

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop(e.to_string())
    }
}

impl Scan<'_> {
    fn error(&mut self, message_id: &str, reason: String) {
        self.out.errors_total += 1;
        self.progress.errors += 1;
        if self.out.errors.len() < ERRORS_SHOWN {
            self.out.errors.push(MessageError {
                message_id: message_id.to_owned(),
                reason,
            });
        }
    }

    /// Records a prepared chunk and hands it to the store: what was analyzed at once
    /// first, then what the analyzer answers, each group saved as it arrives. Stops
    /// at once, keeping what was answered, when the watcher asks (Ctrl-C, SIGTERM)
    /// or the analyzer becomes unavailable.
    async fn apply(&mut self, chunk: Prepared, watcher: &dyn Progress) -> Result<(), Stop> {
        let Prepared {
            examined,
            errors,
            skipped_processed,
            unfetched,
            skipped,
            emails,
            ready,
            fatal,
        } = chunk;
        self.out.examined += examined;
        self.progress.examined = self.out.examined;
        self.out.skipped_already_processed += skipped_processed;
        self.progress.skipped += skipped_processed;
        self.unfetched |= unfetched;
        for (id, reason) in errors {
            self.error(&id, reason);
        }
        for skipped in skipped {
            match skipped {
                Skipped::Automated(email, reason) => {
                    self.out.skipped_automated += 1;
                    self.progress.skipped += 1;
                    self.recorder.automated(&email, &reason);
                }
                Skipped::Malformed { id, hash, reason } => {
                    self.recorder.malformed(&id, &hash, &reason);
                    self.error(&id, reason);
                }
                Skipped::Copy(email) => {
                    self.out.skipped_already_processed += 1;
                    self.progress.skipped += 1;
                    self.recorder.copy(&email);
                }
            }
        }

        // What was analyzed at once is recorded from `settled`; the rest, `asked`, goes
        // to the analyzer and is recorded as it answers.
        let (mut settled, mut now, mut asked) = (Vec::new(), Vec::new(), Vec::new());
        for (email, analysis) in emails.into_iter().zip(ready) {
            match analysis {
                Some(a) => {
                    now.push((settled.len(), crate::analyze::dated(a)));
                    settled.push(email);
                }
                None => asked.push(email),
            }
        }
        let mut stop = self.take(&settled, now).await?;
        // Save what needed no model before asking it anything.
        if !asked.is_empty() {
            self.flush(false).await.map_err(Stop::from)?;
        }
        if stop.is_none() && !asked.is_empty() {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let ctx = self.ctx;
            let (user, settings) = (self.user, Arc::clone(&self.settings));
            let meter = Arc::clone(&self.meter);
            let asked = &asked;
            let analysis = async move {
                ctx.analyses
                    .analyze_each(ctx.analyzer.as_ref(), user, asked, &settings, &meter, tx)
                    .await;
            };
            let record = async {
                loop {
                    let batch = tokio::select! {
                        batch = rx.recv() => batch,
                        () = stop_requested(watcher) => {
                            return Ok::<_, Stop>(Some("stopped on request".to_owned()));
                        }
                    };
                    let Some(batch) = batch else {
                        return Ok(None);
                    };
                    if let Some(why) = self.take(asked, batch).await? {
                        return Ok(Some(why));
                    }
                    self.flush(false).await.map_err(Stop::from)?;
                }
            };
            // The analysis ends when it has handed everything over, or is dropped (its
            // requests with it) when recording stops first.
            let analysis = std::pin::pin!(analysis);
            let record = std::pin::pin!(record);
            stop = match futures::future::select(analysis, record).await {
                futures::future::Either::Left(((), record)) => record.await?,
                futures::future::Either::Right((stopped, _)) => stopped?,
            };
        }
        let stop = stop.or(fatal);

        // Save the chunk, then stop if something upstream failed.
        self.flush(false).await.map_err(Stop::from)?;
        match stop {
            Some(reason) => Err(Stop(reason)),
            None => Ok(()),
        }
    }

    /// Records analyses of `emails` by position; the reason to stop when the analyzer
    /// is unavailable (what comes after it is not recorded).
    async fn take(
        &mut self,
        emails: &[Email],
        results: Vec<(usize, Result<Analysis, AnalyzeError>)>,
    ) -> Result<Option<String>, Stop> {
        self.recorder
            .prefetch_events(
                self.ctx,
                self.user,
                results.iter().filter_map(|(_, r)| r.as_ref().ok()),
            )
            .await
            .map_err(Stop::from)?;
        for (p, result) in results {
            let Some(email) = emails.get(p) else { continue };
            match result {
                Ok(analysis) => {
                    self.out.analyzed += 1;
                    self.progress.analyzed += 1;
                    let what = self
                        .recorder
                        .record(self.ctx, self.user, email, analysis)
                        .await
                        .map_err(Stop::from)?;
                    if what == Disposition::NotBillable {
                        self.out.not_billable += 1;
                        self.count_unmatched(email);
                    }
                }
                Err(AnalyzeError::Message(reason)) => self.error(&email.id, reason),
                Err(e @ AnalyzeError::Unavailable(_)) => return Ok(Some(e.to_string())),
            }
        }
        Ok(None)
    }

    /// Counts the counterpart domains of mail that matched no client, leaving out
    /// what could never be a client's: free-mail and ISP domains, the owner's own
    /// domains, and personal contacts.
    fn count_unmatched(&mut self, email: &Email) {
        if rules::match_client(email, &self.settings).is_some() {
            return;
        }
        let sent = rules::is_from_owner(email, &self.settings);
        let mut once = HashSet::new();
        for a in rules::counterparts(email, &self.settings) {
            let domain = a.domain().to_lowercase();
            if domain.is_empty()
                || self.settings.is_my_domain(&domain)
                || free_mail::is_free_mail(&domain)
                || self.settings.is_personal_contact(&a.email)
                || is_bulk_sender(&a.email)
            {
                continue;
            }
            let counts = self.unmatched.entry(domain.clone()).or_default();
            *counts.addresses.entry(a.email.to_lowercase()).or_default() += 1;
            if once.insert(domain) {
                counts.messages += 1;
                counts.sent += u64::from(sent);
            }
        }
    }

    /// Hands the staged chunk to the store. The save runs in the background while the
    /// next chunk is processed; `wait` settles it before returning (end of the scan).
    async fn flush(&mut self, wait: bool) -> Result<()> {
        let batch = self.recorder.take_batch();
        if self.dry_run {
            // Nothing is written; report what would be new.
            let ids: Vec<String> = batch.entries.iter().map(|e| e.message_id.clone()).collect();
            let existing = self
                .ctx
                .store
                .processed_ids(self.user, &ids, self.recorder.matching())
                .await?;
            let created: HashSet<String> = ids
                .into_iter()
                .filter(|id| !existing.contains(id))
                .collect();
            let removed = batch.deleted_entries.clone();
            // A dry run only reports what would be new.
            self.account(batch, created, HashSet::new(), removed);
            return Ok(());
        }
        // One save in flight at a time keeps chunks in order and memory bounded.
        if let Some(pending) = self.pending.take() {
            self.settle(pending).await?;
        }
        let pending = pipeline::spawn_save(self.ctx, self.user, batch);
        if wait {
            self.settle(pending).await
        } else {
            self.pending = Some(pending);
            Ok(())
        }
    }

    async fn settle(&mut self, pending: pipeline::PendingSave) -> Result<()> {
        let (batch, saved) = pipeline::settle(pending).await;
        let saved = saved?;
        for (id, reason) in saved.refused {
            self.error(&id, format!("the store could not save it: {reason}"));
        }
        let created = saved.created.into_iter().collect();
        let updated = saved.updated.into_iter().collect();
        self.account(batch, created, updated, saved.deleted);
        Ok(())
    }

    /// Counts a saved batch: `created`, `updated` and `removed` are the message ids
    /// whose entry it created, changed or removed. Only those count in the totals: an
    /// entry the store kept as it was (a person reviewed it, or it would not change)
    /// keeps what it was counted as earlier in this scan, or is not this scan's.
    fn account(
        &mut self,
        batch: Batch,
        created: HashSet<String>,
        updated: HashSet<String>,
        removed: Vec<String>,
    ) {
        self.out.entries_created += created.len() as u64;
        self.out.entries_updated += updated.len() as u64;
        self.out.entries_removed += removed.len() as u64;
        self.progress.entries = self.out.entries_created;
        for id in &removed {
            self.totals.remove(&id_key(id));
        }
        if !removed.is_empty() {
            let gone: HashSet<&String> = removed.iter().collect();
            self.out.entries.retain(|e| !gone.contains(&e.message_id));
        }
        for e in &batch.entries {
            if created.contains(&e.message_id) {
                let (lo, hi) = self.created_dates.unwrap_or((e.work_date, e.work_date));
                self.created_dates = Some((lo.min(e.work_date), hi.max(e.work_date)));
            }
        }
        for e in batch.entries {
            let counted = created.contains(&e.message_id) || updated.contains(&e.message_id);
            if counted && e.billable && e.status != EntryStatus::Rejected {
                let group = self.group_of(&e);
                self.totals
                    .insert(id_key(&e.message_id), Counted::of(&e, group));
            } else if counted {
                // A later version that is no longer billable leaves the totals.
                self.totals.remove(&id_key(&e.message_id));
            }
            if let Some(shown) = self
                .out
                .entries
                .iter_mut()
                .find(|s| s.message_id == e.message_id)
            {
                // A later version of a meeting this scan created: keep its first
                // entry's id and creation time, as the store does.
                let (id, created_at) = (shown.id.clone(), shown.created_at);
                *shown = e;
                shown.id = id;
                shown.created_at = created_at;
            } else if created.contains(&e.message_id) && self.out.entries.len() < ENTRIES_SHOWN {
                self.out.entries.push(e);
            }
        }
    }

    /// The index of an entry's (client, currency) group, added when new. An empty
    /// client name is as good as none, as in the stores' summaries.
    fn group_of(&mut self, e: &TimeEntry) -> u32 {
        let key = (
            e.client
                .clone()
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| "(none)".to_owned()),
            e.currency.clone(),
        );
        if let Some(i) = self.group_index.get(&key) {
            return *i;
        }
        let i = u32::try_from(self.groups.len()).unwrap_or(u32::MAX);
        self.groups.push(key.clone());
        self.group_index.insert(key, i);
        i
    }

    fn finish(mut self) -> Output {
        let mut domains: Vec<DomainCount> = self
            .unmatched
            .into_iter()
            .map(|(domain, counts)| {
                let mut addresses: Vec<(String, u64)> = counts.addresses.into_iter().collect();
                addresses.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                DomainCount {
                    domain,
                    messages: counts.messages,
                    sent: counts.sent,
                    addresses: addresses.into_iter().take(5).map(|(a, _)| a).collect(),
                }
            })
            .collect();
        domains.sort_by(|a, b| {
            (b.sent, b.messages)
                .cmp(&(a.sent, a.messages))
                .then_with(|| a.domain.cmp(&b.domain))
        });
        domains.truncate(10);
        self.out.unmatched_domains = domains;
        let (clients, total) = totals(self.totals.into_values(), &self.groups, &self.out.currency);
        self.out.clients = clients;
        self.out.billable_minutes = total.raw_minutes;
        self.out.billed_minutes = total.billed_minutes;
        self.out.amount = total.amount;
        if self.ctx.analyzer.asks_a_model() {
            let counts = self.meter.counts();
            if let Some(w) = &counts.warning {
                tracing::warn!("{w}");
            }
            self.out.llm = Some(counts);
        }
        self.out
    }
}

/// What one entry adds to a scan's totals; kept for every entry of a scan, so small.
struct Counted {
    /// Index into the scan's (client, currency) groups.
    group: u32,
    raw_minutes: f64,
    billed_minutes: u64,
    amount: f64,
}

impl Counted {
    fn of(e: &TimeEntry, group: u32) -> Self {
        Counted {
            group,
            raw_minutes: e.duration_minutes,
            billed_minutes: u64::from(e.billed_minutes),
            amount: e.amount,
        }
    }
}

/// Sender local parts that speak for a mailing, not a person (marketing@,
/// newsletter@, events@): their domain is a list the owner reads, not a client. Not
/// automated mail (a person may answer a sales@), so only `unmatched_domains` leaves
/// them out.
const MAILING_LOCAL_PARTS: &[&str] = &[
    "marketing",
    "newsletter",
    "newsletters",
    "news",
    "info",
    "sales",
    "updates",
    "events",
    "promo",
    "promotions",
    "offers",
    "digest",
    "alerts",
    "mailer",
    "subscriptions",
    "webmaster",
    "hello",
    "team",
];

fn is_bulk_sender(address: &str) -> bool {
    let local = address.split('@').next().unwrap_or("");
    triage::local_part_is_one_of(local, MAILING_LOCAL_PARTS)
}

/// Per-client groups (largest first) and the overall total, rounded as the stores
/// round a summary (raw minutes to 0.1, hours and amounts to the cent), so a scan's
/// totals read the same as `get_time_tracking_summary` of its entries. The total is
/// in `currency`; entries in other currencies appear in their own groups only.
fn totals(
    entries: impl Iterator<Item = Counted>,
    keys: &[(String, String)],
    currency: &str,
) -> (Vec<SummaryGroup>, SummaryGroup) {
    let group = |key: &str, currency: &str| SummaryGroup {
        key: key.to_owned(),
        currency: currency.to_owned(),
        entries: 0,
        raw_minutes: 0.0,
        billed_minutes: 0,
        billed_hours: 0.0,
        amount: 0.0,
    };
    let add = |g: &mut SummaryGroup, c: &Counted| {
        g.entries += 1;
        g.raw_minutes += c.raw_minutes;
        g.billed_minutes += c.billed_minutes;
        g.amount += c.amount;
    };
    let round = |mut g: SummaryGroup| {
        g.raw_minutes = (g.raw_minutes * 10.0).round() / 10.0;
        g.billed_hours = (g.billed_minutes as f64 / 60.0 * 100.0).round() / 100.0;
        g.amount = (g.amount * 100.0).round() / 100.0;
        g
    };
    let mut groups: Vec<SummaryGroup> = keys
        .iter()
        .map(|(client, cur)| group(client, cur))
        .collect();
    let mut total = group("total", currency);
    for c in entries {
        let Some(g) = usize::try_from(c.group)
            .ok()
            .and_then(|i| groups.get_mut(i))
        else {
            continue;
        };
        if g.currency == currency {
            add(&mut total, &c);
        }
        add(g, &c);
    }
    let mut groups: Vec<SummaryGroup> = groups
        .into_iter()
        .filter(|g| g.entries > 0)
        .map(round)
        .collect();
    groups.sort_by(|a, b| {
        b.billed_minutes
            .cmp(&a.billed_minutes)
            .then_with(|| a.key.cmp(&b.key))
            .then_with(|| a.currency.cmp(&b.currency))
    });
    (groups, round(total))
}
