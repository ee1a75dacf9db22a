//! The summary cache in front of any store. `Context::new` wraps every store in it,
//! so invalidation lives next to the writes: each write method drops the writer's
//! cached summaries itself, and no caller has to remember to.
//!
//! It also holds settings that apply for one run only (`--settings FILE` without
//! `--save`): [`CachedStore::use_for_run`] makes `settings` answer them for one user,
//! while everything else reaches the real store untouched.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    Batch, EntryFilter, EventState, GmailGrant, Reviewed, Saved, ScanRecord, Store, StoreError,
};
use serde_json::Value;

use crate::domain::{Settings, Summary, SummaryQuery, TimeEntry, UserId};
use crate::jobs::ScanJob;
use crate::metrics::{Counter, global};

/// The user, their write generation here, the store's version of their data
/// (written by any instance) and the query.
type Key = (UserId, u64, Option<String>, SummaryQuery);

/// A store whose summaries are cached per user, keyed by the user, the user's write
/// generation and the query. A write bumps the generation once it has finished, so
/// a summary computed while the write ran is cached under the old generation and
/// never served after it.
pub struct CachedStore {
    inner: Arc<dyn Store>,
    summaries: moka::future::Cache<Key, Arc<Summary>>,
    generations: Mutex<HashMap<UserId, u64>>,
    /// One user's settings for this run, in place of the stored ones.
    run_settings: RwLock<Option<(UserId, Settings)>>,
}

impl CachedStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        CachedStore {
            inner,
            summaries: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
            generations: Mutex::new(HashMap::new()),
            run_settings: RwLock::new(None),
        }
    }

    /// Answers `user`'s settings with `settings` for the rest of this process,
    /// storing nothing. A change of settings during the run (a chat assistant calling
    /// `configure_time_tracking` on `serve`) is stored as asked and seen from then on.
    pub fn use_for_run(&self, user: UserId, settings: Settings) {
        *self.run_settings.write().unwrap_or_else(|p| p.into_inner()) = Some((user, settings));
    }

    fn run_settings_of(&self, user: &UserId) -> Option<Settings> {
        let run = self.run_settings.read().unwrap_or_else(|p| p.into_inner());
        run.as_ref()
            .filter(|(u, _)| u == user)
            .map(|(_, s)| s.clone())
    }

    fn generation(&self, user: &UserId) -> u64 {
        let map = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        map.get(user).copied().unwrap_or(0)
    }

    /// Drops `user`'s cached summaries. Called after the write, whatever its result:
    /// a write that failed part-way (one PostgREST request per table) may still have
    /// changed rows.
    fn invalidate(&self, user: &UserId) {
        let mut map = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(user.clone()).or_default() += 1;
    }
}

#[async_trait]
impl Store for CachedStore {
    async fn settings(&self, user: &UserId) -> Result<Settings, StoreError> {
        match self.run_settings_of(user) {
            Some(settings) => Ok(settings),
            None => self.inner.settings(user).await,
        }
    }

    async fn save_settings(&self, user: &UserId, settings: &Settings) -> Result<(), StoreError> {
        let saved = self.inner.save_settings(user, settings).await;
        self.invalidate(user);
        if saved.is_ok() {
            let mut run = self.run_settings.write().unwrap_or_else(|p| p.into_inner());
            if let Some((u, s)) = run.as_mut()
                && u == user
            {
                *s = settings.clone();
            }
        }
        saved
    }

    async fn processed_ids(
        &self,
        user: &UserId,
        ids: &[String],
        matching: &str,
    ) -> Result<HashSet<String>, StoreError> {
        self.inner.processed_ids(user, ids, matching).await
    }

    async fn reviewed_counterparts(
        &self,
        user: &UserId,
    ) -> Result<HashMap<String, Reviewed>, StoreError> {
        self.inner.reviewed_counterparts(user).await
    }

    async fn reviewed_features(
        &self,
        user: &UserId,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<(String, bool)>, StoreError> {
        self.inner.reviewed_features(user, since).await
    }

    async fn event(&self, user: &UserId, uid: &str) -> Result<Option<EventState>, StoreError> {
        self.inner.event(user, uid).await
    }

    async fn events(
        &self,
        user: &UserId,
        uids: &[String],
    ) -> Result<HashMap<String, EventState>, StoreError> {
        self.inner.events(user, uids).await
    }

    async fn entry_by_message(
        &self,
        user: &UserId,
        message_id: &str,
    ) -> Result<Option<TimeEntry>, StoreError> {
        self.inner.entry_by_message(user, message_id).await
    }

    async fn thread_matters(
        &self,
        user: &UserId,
        thread_ids: &[String],
    ) -> Result<HashMap<String, (String, String)>, StoreError> {
        self.inner.thread_matters(user, thread_ids).await
    }

    async fn save_batch(&self, user: &UserId, batch: &Batch) -> Result<Saved, StoreError> {
        let saved = self.inner.save_batch(user, batch).await;
        self.invalidate(user);
        saved
    }

    async fn entries_by_id(
        &self,
        user: &UserId,
        ids: &[String],
    ) -> Result<Vec<TimeEntry>, StoreError> {
        self.inner.entries_by_id(user, ids).await
    }

    async fn write_reviewed(
        &self,
        user: &UserId,
        upserts: &[TimeEntry],
        deletes: &[String],
    ) -> Result<(), StoreError> {
        let written = self.inner.write_reviewed(user, upserts, deletes).await;
        self.invalidate(user);
        written
    }

    async fn merged_parts(&self, user: &UserId, id: &str) -> Result<Vec<TimeEntry>, StoreError> {
        self.inner.merged_parts(user, id).await
    }

    async fn list_entries(
        &self,
        user: &UserId,
        filter: &EntryFilter,
    ) -> Result<(Vec<TimeEntry>, u64), StoreError> {
        self.inner.list_entries(user, filter).await
    }

    /// A hit is the cached value itself, shared, not a copy.
    async fn summary(
        &self,
        user: &UserId,
        query: &SummaryQuery,
    ) -> Result<Arc<Summary>, StoreError> {
        // Read before computing: a write that finishes meanwhile moves the user on to
        // a generation this summary is not cached under.
        // The store's version too: a write through another instance moves it.
        let generation = self.generation(user);
        let version = self.inner.data_version(user).await?;
        let key = (user.clone(), generation, version, query.clone());
        if let Some(hit) = self.summaries.get(&key).await {
            global().inc(Counter::CacheHits, "summary");
            return Ok(hit);
        }
        global().inc(Counter::CacheMisses, "summary");
        let summary = self.inner.summary(user, query).await?;
        self.summaries.insert(key, summary.clone()).await;
        Ok(summary)
    }

    async fn record_scan(&self, user: &UserId, scan: &ScanRecord) -> Result<(), StoreError> {
        let recorded = self.inner.record_scan(user, scan).await;
        self.invalidate(user);
        recorded
    }

    async fn scans(&self, user: &UserId, limit: u32) -> Result<Vec<ScanRecord>, StoreError> {
        self.inner.scans(user, limit).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn data_version(&self, user: &UserId) -> Result<Option<String>, StoreError> {
        self.inner.data_version(user).await
    }

    async fn enqueue_scan(&self, user: &UserId, args: &Value) -> Result<ScanJob, StoreError> {
        self.inner.enqueue_scan(user, args).await
    }

    async fn scan_job(&self, user: &UserId, id: &str) -> Result<Option<ScanJob>, StoreError> {
        self.inner.scan_job(user, id).await
    }

    async fn scan_jobs(&self, user: &UserId, limit: u32) -> Result<Vec<ScanJob>, StoreError> {
        self.inner.scan_jobs(user, limit).await
    }

    async fn cancel_scan_job(
        &self,
        user: &UserId,
        id: &str,
    ) -> Result<Option<ScanJob>, StoreError> {
        self.inner.cancel_scan_job(user, id).await
    }

    async fn gmail_grant(&self, user: &UserId) -> Result<Option<GmailGrant>, StoreError> {
        self.inner.gmail_grant(user).await
    }

    async fn save_gmail_grant(&self, user: &UserId, sealed: &str) -> Result<(), StoreError> {
        self.inner.save_gmail_grant(user, sealed).await
    }

    async fn delete_gmail_grant(&self, user: &UserId) -> Result<bool, StoreError> {
        self.inner.delete_gmail_grant(user).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use chrono::Utc;
    use tokio::sync::oneshot;

    use super::*;
    use crate::domain::{GroupBy, SummaryGroup};
    use crate::store::ScanStatus;

    /// Where a held call stops, and how the test lets it go on.
    struct Hold {
        reached: oneshot::Sender<()>,
        release: oneshot::Receiver<()>,
    }

    impl Hold {
        async fn wait(self) {
            let _ = self.reached.send(());
            let _ = self.release.await;
        }
    }

    fn hold() -> (Hold, oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (reached, reached_rx) = oneshot::channel();
        let (release_tx, release) = oneshot::channel();
        (Hold { reached, release }, reached_rx, release_tx)
    }

    /// A store whose data is a version number, bumped by every write; its summaries
    /// report the version they read as their entry count.
    #[derive(Default)]
    struct Fake {
        version: AtomicU64,
        computed: AtomicU64,
        fail_writes: AtomicBool,
        /// The next summary reads the version, then waits here before answering.
        hold_summary: Mutex<Option<Hold>>,
        /// The next write waits here before it changes anything.
        hold_write: Mutex<Option<Hold>>,
    }

    impl Fake {
        fn held(slot: &Mutex<Option<Hold>>) -> Option<Hold> {
            slot.lock().unwrap().take()
        }

        async fn write(&self) -> Result<(), StoreError> {
            if let Some(h) = Self::held(&self.hold_write) {
                h.wait().await;
            }
            self.version.fetch_add(1, Ordering::SeqCst);
            if self.fail_writes.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("half written".to_owned()));
            }
            Ok(())
        }
    }

    #[async_trait]
    impl Store for Fake {
        async fn settings(&self, _: &UserId) -> Result<Settings, StoreError> {
            Ok(Settings::default())
        }
        async fn save_settings(&self, _: &UserId, _: &Settings) -> Result<(), StoreError> {
            self.write().await
        }
        async fn processed_ids(
            &self,
            _: &UserId,
            _: &[String],
            _: &str,
        ) -> Result<HashSet<String>, StoreError> {
            Ok(HashSet::new())
        }
        async fn reviewed_counterparts(
            &self,
            _: &UserId,
        ) -> Result<HashMap<String, Reviewed>, StoreError> {
            Ok(HashMap::new())
        }
        async fn reviewed_features(
            &self,
            _: &UserId,
            _: Option<DateTime<Utc>>,
        ) -> Result<Vec<(String, bool)>, StoreError> {
            Ok(Vec::new())
        }
        async fn events(
            &self,
            _: &UserId,
            _: &[String],
        ) -> Result<HashMap<String, EventState>, StoreError> {
            Ok(HashMap::new())
        }
        async fn entry_by_message(
            &self,
            _: &UserId,
            _: &str,
        ) -> Result<Option<TimeEntry>, StoreError> {
            Ok(None)
        }
        async fn save_batch(&self, _: &UserId, _: &Batch) -> Result<Saved, StoreError> {
            self.write().await.map(|()| Saved::default())
        }
        async fn entries_by_id(
            &self,
            _: &UserId,
            _: &[String],
        ) -> Result<Vec<TimeEntry>, StoreError> {
            Ok(Vec::new())
        }
        async fn write_reviewed(
            &self,
            _: &UserId,
            _: &[TimeEntry],
            _: &[String],
        ) -> Result<(), StoreError> {
            self.write().await
        }
        async fn merged_parts(&self, _: &UserId, _: &str) -> Result<Vec<TimeEntry>, StoreError> {
            Ok(Vec::new())
        }
        async fn thread_matters(
            &self,
            _: &UserId,
            _: &[String],
        ) -> Result<HashMap<String, (String, String)>, StoreError> {
            Ok(HashMap::new())
        }
        async fn list_entries(
            &self,
            _: &UserId,
            _: &EntryFilter,
        ) -> Result<(Vec<TimeEntry>, u64), StoreError> {
            Ok((Vec::new(), 0))
        }
        async fn summary(
            &self,
            _: &UserId,
            query: &SummaryQuery,
        ) -> Result<Arc<Summary>, StoreError> {
            self.computed.fetch_add(1, Ordering::SeqCst);
            let version = self.version.load(Ordering::SeqCst);
            if let Some(h) = Self::held(&self.hold_summary) {
                h.wait().await;
            }
            Ok(Arc::new(Summary {
                group_by: query.group_by,
                from: query.from,
                to: query.to,
                billable_only: query.billable_only,
                status: None,
                matter: None,
                groups: Vec::new(),
                total: vec![SummaryGroup {
                    key: "total".to_owned(),
                    currency: "USD".to_owned(),
                    entries: version,
                    raw_minutes: 0.0,
                    billed_minutes: 0,
                    billed_hours: 0.0,
                    amount: 0.0,
                }],
            }))
        }
        async fn record_scan(&self, _: &UserId, _: &ScanRecord) -> Result<(), StoreError> {
            self.write().await
        }
        async fn scans(&self, _: &UserId, _: u32) -> Result<Vec<ScanRecord>, StoreError> {
            Ok(Vec::new())
        }
        async fn ping(&self) -> Result<(), StoreError> {
            Ok(())
        }
        async fn enqueue_scan(&self, _: &UserId, _: &Value) -> Result<ScanJob, StoreError> {
            Err(StoreError::Unavailable("no jobs in this fake".into()))
        }
        async fn scan_job(&self, _: &UserId, _: &str) -> Result<Option<ScanJob>, StoreError> {
            Ok(None)
        }
        async fn scan_jobs(&self, _: &UserId, _: u32) -> Result<Vec<ScanJob>, StoreError> {
            Ok(Vec::new())
        }
        async fn cancel_scan_job(
            &self,
            _: &UserId,
            _: &str,
        ) -> Result<Option<ScanJob>, StoreError> {
            Ok(None)
        }
    }

    fn cached() -> (Arc<Fake>, Arc<CachedStore>) {
        let fake = Arc::new(Fake::default());
        let store = Arc::new(CachedStore::new(fake.clone()));
        (fake, store)
    }

    fn query(group_by: GroupBy) -> SummaryQuery {
        SummaryQuery {
            from: None,
            to: None,
            group_by,
            billable_only: false,
            status: None,
            matter: None,
        }
    }

    /// The version of the data a summary was computed from.
    async fn version(store: &CachedStore, user: &UserId) -> u64 {
        store
            .summary(user, &query(GroupBy::Client))
            .await
            .unwrap()
            .total[0]
            .entries
    }

    fn scan() -> ScanRecord {
        ScanRecord {
            id: "s".to_owned(),
            source: "mbox".to_owned(),
            query: None,
            started_at: Utc::now(),
            finished_at: None,
            status: ScanStatus::Running,
            examined: 0,
            entries_created: 0,
            errors: 0,
            cursor: None,
        }
    }

    #[tokio::test]
    async fn a_repeated_summary_is_served_from_the_cache_per_user_and_query() {
        let (fake, store) = cached();
        let (a, b) = (UserId::new("a"), UserId::new("b"));
        let first = store.summary(&a, &query(GroupBy::Client)).await.unwrap();
        let again = store.summary(&a, &query(GroupBy::Client)).await.unwrap();
        assert!(Arc::ptr_eq(&first, &again), "a hit shares the cached value");
        assert_eq!(fake.computed.load(Ordering::SeqCst), 1);
        store.summary(&a, &query(GroupBy::Month)).await.unwrap();
        store.summary(&b, &query(GroupBy::Client)).await.unwrap();
        assert_eq!(fake.computed.load(Ordering::SeqCst), 3);

        // A's write leaves B's summaries cached.
        store.save_batch(&a, &Batch::default()).await.unwrap();
        store.summary(&b, &query(GroupBy::Client)).await.unwrap();
        assert_eq!(fake.computed.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn run_settings_answer_for_their_user_only_and_follow_a_saved_change() {
        let (_, store) = cached();
        let (me, other) = (UserId::local(), UserId::new("someone-else"));
        let run = Settings {
            billing_increment_minutes: 15,
            ..Settings::default()
        };
        store.use_for_run(me.clone(), run.clone());
        assert_eq!(store.settings(&me).await.unwrap(), run);
        // The fake store always answers the defaults: only `me` is overridden.
        assert_eq!(store.settings(&other).await.unwrap(), Settings::default());
        let changed = Settings {
            billing_increment_minutes: 30,
            ..run
        };
        store.save_settings(&me, &changed).await.unwrap();
        assert_eq!(store.settings(&me).await.unwrap(), changed);
    }

    #[tokio::test]
    async fn every_kind_of_write_drops_the_writers_summaries() {
        let (_, store) = cached();
        let user = UserId::local();
        assert_eq!(version(&store, &user).await, 0);
        store.save_batch(&user, &Batch::default()).await.unwrap();
        assert_eq!(version(&store, &user).await, 1, "after save_batch");
        store
            .save_settings(&user, &Settings::default())
            .await
            .unwrap();
        assert_eq!(version(&store, &user).await, 2, "after save_settings");
        store.record_scan(&user, &scan()).await.unwrap();
        assert_eq!(version(&store, &user).await, 3, "after record_scan");
        store.write_reviewed(&user, &[], &[]).await.unwrap();
        assert_eq!(version(&store, &user).await, 4, "after write_reviewed");
    }

    #[tokio::test]
    async fn a_write_that_fails_part_way_still_drops_the_summaries() {
        let (fake, store) = cached();
        let user = UserId::local();
        assert_eq!(version(&store, &user).await, 0);
        fake.fail_writes.store(true, Ordering::SeqCst);
        assert!(store.save_batch(&user, &Batch::default()).await.is_err());
        assert_eq!(version(&store, &user).await, 1);
    }

    #[tokio::test]
    async fn a_summary_computed_while_a_write_runs_is_not_served_after_it() {
        let (fake, store) = cached();
        let user = UserId::local();
        let (held, reached, release) = hold();
        *fake.hold_write.lock().unwrap() = Some(held);
        let writer = tokio::spawn({
            let (store, user) = (store.clone(), user.clone());
            async move { store.save_batch(&user, &Batch::default()).await }
        });
        reached.await.unwrap();
        assert_eq!(version(&store, &user).await, 0, "computed mid-write");
        release.send(()).unwrap();
        writer.await.unwrap().unwrap();
        assert_eq!(version(&store, &user).await, 1);
    }

    #[tokio::test]
    async fn a_summary_that_finishes_after_a_write_is_not_served_after_it() {
        let (fake, store) = cached();
        let user = UserId::local();
        let (held, reached, release) = hold();
        *fake.hold_summary.lock().unwrap() = Some(held);
        let reader = tokio::spawn({
            let store = store.clone();
            let user = user.clone();
            async move { version(&store, &user).await }
        });
        reached.await.unwrap();
        store.save_batch(&user, &Batch::default()).await.unwrap();
        release.send(()).unwrap();
        assert_eq!(
            reader.await.unwrap(),
            0,
            "it read the data before the write"
        );
        assert_eq!(version(&store, &user).await, 1);
    }
}
