//! What scan and analyze share: turning an analysis into the rows a batch writes
//! (including calendar cancels and updates), and the one way batches are saved.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;

use crate::analyze::rules::{self, MAX_DESCRIPTION_CHARS};
use crate::analyze::{Analysis, Outcome, codes, evidence, matter};
use crate::context::Context;
use crate::domain::{Email, EntryStatus, Settings, TimeEntry, UserId, text};
use crate::error::Result;
use crate::store::{Batch, EventState, Processed, Reviewed, Saved};

/// How far a scan has got; sent to the transport's progress sink.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ScanProgress {
    pub examined: u64,
    pub skipped: u64,
    pub analyzed: u64,
    pub entries: u64,
    pub errors: u64,
}

/// Receives scan progress: a CLI progress bar, MCP notifications, server-sent events.
pub trait Progress: Send + Sync {
    fn report(&self, progress: &ScanProgress);

    /// Whoever watches asked the scan to stop (Ctrl-C in the CLI): it reads no more,
    /// saves what it did and ends `interrupted`.
    fn cancelled(&self) -> bool {
        false
    }
}

/// Progress nobody watches.
pub struct NoProgress;

impl Progress for NoProgress {
    fn report(&self, _: &ScanProgress) {}
}

/// What became of one message, for the caller's counters and replies: the same enum
/// (and spelling) as the processed record the store keeps.
pub use crate::store::ProcessedOutcome as Disposition;

/// Accumulates a chunk's writes. Calendar state read from the store is cached here so
/// a REQUEST and its CANCEL in the same chunk see each other.
///
/// It also holds what the user taught earlier scans, applied after analysis for the
/// same reason: the thread hint of matter assignment (`analyze::matter`), the
/// (client, matter) of each thread's latest entry, from the store and from the
/// entries staged so far in this scan; and the people whose suggested entries the
/// user mostly rejected. The analyzers cannot take these themselves: a scan analyzes
/// a chunk while the previous one is still being recorded, and an analysis is cached
/// by message content, which a thread's other mail or a review must not change.
pub struct Recorder {
    analyzer: String,
    events: HashMap<String, Option<EventState>>,
    /// Thread id -> (client, matter) of its latest entry with a matter; `None` when
    /// the store knows none.
    threads: HashMap<String, Option<(String, String)>>,
    settings: Arc<Settings>,
    /// `settings.matching_key()`, the mark of mail judged by who it is with.
    matching: String,
    /// Counterpart -> how the user decided on their entries; read once, at the first
    /// suggested entry.
    reviewed: Option<HashMap<String, Reviewed>>,
    pub batch: Batch,
}

/// One processed mark's fields beyond the message's id and hash.
struct Mark {
    what: Disposition,
    reason: Option<String>,
    unmatched_under: Option<String>,
    counterpart: Option<String>,
    features: Option<String>,
}

impl Mark {
    fn plain(what: Disposition, reason: Option<String>) -> Self {
        Mark {
            what,
            reason,
            unmatched_under: None,
            counterpart: None,
            features: None,
        }
    }
}

impl Recorder {
    pub fn new(analyzer: String, settings: Arc<Settings>) -> Self {
        Recorder {
            analyzer,
            events: HashMap::new(),
            threads: HashMap::new(),
            matching: settings.matching_key(),
            settings,
            reviewed: None,
            batch: Batch::default(),
        }
    }

    fn processed(&mut self, id: &str, hash: &str, mark: &Mark) {
        self.batch.processed.push(Processed {
            message_id: id.to_owned(),
            content_hash: hash.to_owned(),
            analyzer: self.analyzer.clone(),
            outcome: mark.what,
            reason: mark.reason.clone(),
            unmatched_under: mark.unmatched_under.clone(),
            counterpart: mark.counterpart.clone(),
            features: mark.features.clone(),
            processed_at: Utc::now(),
        });
    }

    /// A parsed message's processed mark. A message whose source id is not its
    /// Message-ID (Gmail's) is marked under both, so another copy of it, from Gmail
    /// under another id or from an mbox, is known as processed too.
    fn processed_email(&mut self, email: &Email, mark: &Mark) {
        if let Some(rfc) = email.rfc_id.as_deref().filter(|rfc| *rfc != email.id) {
            self.processed(rfc, &email.content_hash, mark);
        }
        self.processed(&email.id, &email.content_hash, mark);
    }

    /// Automated mail: recorded so a rescan skips it, never billed.
    pub fn automated(&mut self, email: &Email, reason: &str) {
        let mark = Mark::plain(Disposition::Automated, Some(reason.to_owned()));
        self.processed_email(email, &mark);
    }

    /// Another copy of an RFC message already processed: recorded, never billed.
    pub fn copy(&mut self, email: &Email) {
        let reason = format!(
            "a copy of message <{}>, already processed under another id",
            email.rfc_id.as_deref().unwrap_or_default()
        );
        let mark = Mark::plain(Disposition::Duplicate, Some(reason));
        self.processed(&email.id, &email.content_hash, &mark);
    }

    /// A message that could not be read; recorded so rescans do not trip on it again.
    pub fn malformed(&mut self, id: &str, hash: &str, reason: &str) {
        self.processed(
            id,
            hash,
            &Mark::plain(Disposition::Malformed, Some(reason.to_owned())),
        );
    }

    async fn event(
        &mut self,
        ctx: &Context,
        user: &UserId,
        uid: &str,
    ) -> Result<Option<EventState>> {
        if let Some(known) = self.events.get(uid) {
            return Ok(known.clone());
        }
        let state = ctx.store.event(user, uid).await?;
        self.events.insert(uid.to_owned(), state.clone());
        Ok(state)
    }

    /// Loads the stored state of the meetings in `analyses` that this recorder has not
    /// seen yet, and the matters of the threads whose entries have none, in one store
    /// call each, so recording a chunk asks once.
    pub async fn prefetch_events<'a>(
        &mut self,
        ctx: &Context,
        user: &UserId,
        analyses: impl Iterator<Item = &'a Analysis>,
    ) -> Result<()> {
        let mut uids = Vec::new();
        let mut threads = Vec::new();
        for a in analyses {
            match &a.outcome {
                Outcome::Meeting { uid, entry, .. } => {
                    uids.push(uid.clone());
                    threads.extend(self.open_thread(entry));
                }
                Outcome::CancelMeeting { uid, .. } => uids.push(uid.clone()),
                Outcome::Entry(entry) => threads.extend(self.open_thread(entry)),
                Outcome::NotBillable => {}
            }
        }
        uids.retain(|uid| !self.events.contains_key(uid));
        uids.sort_unstable();
        uids.dedup();
        if !uids.is_empty() {
            let mut found = ctx.store.events(user, &uids).await?;
            for uid in uids {
                let state = found.remove(&uid);
                self.events.insert(uid, state);
            }
        }
        if threads.is_empty() {
            return Ok(());
        }
        let mut threads: Vec<String> = threads
            .into_iter()
            .filter(|(_, client)| self.has_several_matters(client))
            .map(|(t, _)| t)
            .collect();
        threads.sort_unstable();
        threads.dedup();
        self.load_threads(ctx, user, threads).await
    }

    /// The thread and client of an entry whose matter the thread may still decide,
    /// when this recorder has not looked the thread up yet.
    fn open_thread(&self, entry: &TimeEntry) -> Option<(String, String)> {
        let (Some(thread), None, Some(client)) = (&entry.thread_id, &entry.matter, &entry.client)
        else {
            return None;
        };
        (!self.threads.contains_key(thread)).then(|| (thread.clone(), client.clone()))
    }

    /// Only then can a thread decide anything: with one matter the rules already
    /// filed the entry, with none there is nothing to file it under. Most users have
    /// no such client, and their scans ask the store nothing about threads.
    fn has_several_matters(&self, client: &str) -> bool {
        self.settings
            .client(client)
            .is_some_and(|c| c.matters.len() > 1)
    }

    async fn load_threads(
        &mut self,
        ctx: &Context,
        user: &UserId,
        threads: Vec<String>,
    ) -> Result<()> {
        if threads.is_empty() {
            return Ok(());
        }
        let mut found = ctx.store.thread_matters(user, &threads).await?;
        for t in threads {
            let known = found.remove(&t);
            self.threads.insert(t, known);
        }
        Ok(())
    }

    /// Files `entry` under its thread's matter when nothing in its Subject names one
    /// and the thread's latest entry is for the same client. `analyze::matter::choose`
    /// decides, so the order of evidence stays the analyzers'.
    async fn thread_matter(
        &mut self,
        ctx: &Context,
        user: &UserId,
        email: &Email,
        entry: &mut TimeEntry,
    ) -> Result<Option<String>> {
        let (Some(thread), None, Some(client)) =
            (entry.thread_id.clone(), &entry.matter, entry.client.clone())
        else {
            return Ok(None);
        };
        if !self.has_several_matters(&client) {
            return Ok(None);
        }
        if !self.threads.contains_key(&thread) {
            self.load_threads(ctx, user, vec![thread.clone()]).await?;
        }
        let Some(Some((earlier, matter_id))) = self.threads.get(&thread).cloned() else {
            return Ok(None);
        };
        if earlier != client {
            return Ok(None);
        }
        let Some(rule) = self.settings.client(&client) else {
            return Ok(None);
        };
        let choice = matter::choose(rule, &email.subject, Some(&matter_id));
        if !matches!(choice, matter::Choice::Matter(_, matter::MatterBy::Thread)) {
            return Ok(None);
        }
        entry.matter = choice.id();
        entry.task_code = codes::task_code(entry.matter.as_deref().and_then(|id| rule.matter(id)));
        Ok(choice.reason(rule))
    }

    /// Remembers a staged entry's matter as its thread's latest.
    fn note_thread(&mut self, entry: &TimeEntry) {
        if let (Some(t), Some(c), Some(m)) = (&entry.thread_id, &entry.client, &entry.matter) {
            self.threads.insert(t.clone(), Some((c.clone(), m.clone())));
        }
    }

    fn set_event(&mut self, state: EventState) {
        self.events.insert(state.uid.clone(), Some(state.clone()));
        self.batch.events.retain(|e| e.uid != state.uid);
        self.batch.events.push(state);
    }

    fn stage_entry(&mut self, mut entry: TimeEntry) {
        // Whatever an analyzer made of a sender's words, what is saved and shown is
        // plain text.
        entry.description = text::plain(&entry.description, MAX_DESCRIPTION_CHARS);
        self.batch
            .entries
            .retain(|e| e.message_id != entry.message_id);
        self.batch.entries.push(entry);
    }

    /// Stages what an analysis means and returns its disposition; the entry it
    /// staged, if any, is the batch's last.
    pub async fn record(
        &mut self,
        ctx: &Context,
        user: &UserId,
        email: &Email,
        analysis: Analysis,
    ) -> Result<Disposition> {
        let mut reason = analysis.reasons.first().cloned();
        let (what, entry) = match analysis.outcome {
            Outcome::Entry(entry) => (Disposition::Entry, Some(entry)),
            Outcome::NotBillable => (Disposition::NotBillable, None),
            Outcome::Meeting {
                mut entry,
                uid,
                sequence,
            } => {
                entry.event_uid = Some(uid.clone());
                let known = self.event(ctx, user, &uid).await?;
                let active = |message_id: &str| EventState {
                    uid: uid.clone(),
                    sequence,
                    cancelled: false,
                    message_id: Some(message_id.to_owned()),
                };
                match known {
                    Some(prev) if !prev.cancelled && sequence > prev.sequence => {
                        // A later version of the invite: the meeting keeps its first message.
                        if let Some(first) = prev.message_id {
                            entry.message_id = first;
                        }
                        self.set_event(active(&entry.message_id));
                        (Disposition::MeetingUpdated, Some(entry))
                    }
                    Some(prev)
                        if !prev.cancelled
                            && prev.message_id.as_deref() != Some(&entry.message_id) =>
                    {
                        reason = Some(format!(
                            "an invitation to a meeting already recorded (sequence {sequence}, recorded {})",
                            prev.sequence
                        ));
                        (Disposition::NotBillable, None)
                    }
                    Some(prev) if prev.cancelled && sequence <= prev.sequence => {
                        reason = Some("the meeting was cancelled or declined".to_owned());
                        (Disposition::NotBillable, None)
                    }
                    _ => {
                        self.set_event(active(&entry.message_id));
                        (Disposition::Meeting, Some(entry))
                    }
                }
            }
            Outcome::CancelMeeting { uid, sequence } => {
                match self.event(ctx, user, &uid).await? {
                    Some(prev) if prev.cancelled || sequence < prev.sequence => {
                        reason =
                            Some("a cancel older than the meeting's latest version".to_owned());
                    }
                    prev => {
                        if let Some(id) = prev.and_then(|p| p.message_id) {
                            self.batch.entries.retain(|e| e.message_id != id);
                            self.batch.deleted_entries.push(id);
                        }
                        self.set_event(EventState {
                            uid,
                            sequence,
                            cancelled: true,
                            message_id: None,
                        });
                    }
                }
                (Disposition::Cancelled, None)
            }
        };
        let counterpart = rules::counterpart(email, &self.settings);
        let entry = match entry {
            Some(mut e) => {
                if let Some(why) = self.thread_matter(ctx, user, email, &mut e).await? {
                    tracing::debug!(message = %email.id, %why, "matter from the thread");
                }
                if let Some(why) = self
                    .learnt(ctx, user, counterpart.as_deref(), &mut e)
                    .await?
                {
                    reason = Some(why);
                }
                self.note_thread(&e);
                Some(e)
            }
            None => None,
        };
        let judged_by_who =
            what == Disposition::NotBillable && rules::judged_by_who(email, &self.settings);
        // What the person's review of this entry will teach later scans.
        let features = entry.as_ref().map(|_| {
            let owner = rules::is_from_owner(email, &self.settings);
            evidence::join(&evidence::features(email, owner))
        });
        let mark = Mark {
            what,
            reason,
            unmatched_under: judged_by_who.then(|| self.matching.clone()),
            counterpart,
            features,
        };
        self.processed_email(email, &mark);
        if let Some(e) = entry {
            self.stage_entry(e);
        }
        Ok(what)
    }

    /// Suggests `entry` for review only when the user rejected most of the entries
    /// with the same person before (a friend at a client, a sender whose mail is
    /// never work); returns the reason.
    async fn learnt(
        &mut self,
        ctx: &Context,
        user: &UserId,
        counterpart: Option<&str>,
        entry: &mut TimeEntry,
    ) -> Result<Option<String>> {
        let Some(who) = counterpart.filter(|_| entry.status == EntryStatus::Suggested) else {
            return Ok(None);
        };
        if self.reviewed.is_none() {
            self.reviewed = Some(ctx.store.reviewed_counterparts(user).await?);
        }
        let Some(r) = self.reviewed.as_ref().and_then(|r| r.get(who)) else {
            return Ok(None);
        };
        if !r.mostly_rejected() {
            return Ok(None);
        }
        entry.status = EntryStatus::NeedsReview;
        let entries = if r.rejected == 1 { "entry" } else { "entries" };
        Ok(Some(format!(
            "needs review: you rejected {} earlier {entries} with {who} and approved {}",
            r.rejected, r.approved
        )))
    }

    /// `settings.matching_key()` of the settings this recorder works under.
    pub fn matching(&self) -> &str {
        &self.matching
    }

    /// Hands over the staged writes, leaving the event cache for the next chunk.
    pub fn take_batch(&mut self) -> Batch {
        std::mem::take(&mut self.batch)
    }
}

/// The user's settings with what their reviews taught attached (`Settings::learned`),
/// as scans and analyses judge mail under them.
pub async fn settings_with_learning(ctx: &Context, user: &UserId) -> Result<Settings> {
    let settings = ctx.store.settings(user).await?;
    with_learning(ctx, user, settings).await
}

/// `settings` with what the user's reviews taught attached, when they learn from
/// reviews (`learn_from_reviews`, since `learned_since`).
pub async fn with_learning(
    ctx: &Context,
    user: &UserId,
    mut settings: Settings,
) -> Result<Settings> {
    settings.learned = None;
    if settings.learn_from_reviews {
        let reviews: Vec<evidence::Review> = ctx
            .store
            .reviewed_features(user, settings.learned_since)
            .await?
            .into_iter()
            .map(|(features, approved)| evidence::Review {
                features: evidence::split(&features),
                approved,
            })
            .collect();
        if !reviews.is_empty() {
            settings.learned = Some(Arc::new(evidence::learn(&reviews)));
        }
    }
    Ok(settings)
}

/// A batch being saved in the background while the scan works on the next chunk.
/// It hands the batch back with the result, for the scan's counters.
pub type PendingSave = tokio::task::JoinHandle<(Batch, Result<Saved>)>;

/// Starts saving a batch on its own task (the SQLite work runs on another core while
/// the next chunk is parsed).
pub fn spawn_save(ctx: &Context, user: &UserId, batch: Batch) -> PendingSave {
    let store = ctx.store.clone();
    let user = user.clone();
    tokio::spawn(async move {
        if batch.is_empty() {
            return (batch, Ok(Saved::default()));
        }
        let saved = crate::store::save_isolating(store.as_ref(), &user, &batch).await;
        (batch, saved.map_err(Into::into))
    })
}

/// Waits for a background save.
pub async fn settle(pending: PendingSave) -> (Batch, Result<Saved>) {
    pending.await.unwrap_or_else(|e| {
        let err = crate::store::StoreError::Unavailable(format!("saving a batch failed: {e}"));
        (Batch::default(), Err(err.into()))
    })
}

/// Saves a batch: the only write path for entries. (The context's store drops the
/// user's cached summaries itself.)
pub async fn save(ctx: &Context, user: &UserId, batch: &Batch) -> Result<Saved> {
    if batch.is_empty() {
        return Ok(Saved::default());
    }
    Ok(ctx.store.save_batch(user, batch).await?)
}
