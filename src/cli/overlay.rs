//! `--settings FILE` without `--save`: the file's settings apply to this run only. A
//! store wrapper answers the local user's settings with them and passes everything
//! else to the real store untouched. A change of settings during the run (a chat
//! assistant calling `configure_time_tracking` on `serve`) is stored as asked and
//! seen by the rest of the run.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{Settings, Summary, SummaryQuery, TimeEntry, UserId};
use crate::store::{Batch, EntryFilter, EventState, Saved, ScanRecord, Store, StoreError};

pub struct RunSettings {
    pub inner: Arc<dyn Store>,
    /// Whose settings these are (the CLI's local user).
    pub user: UserId,
    pub settings: std::sync::RwLock<Settings>,
}

impl RunSettings {
    fn mine(&self, user: &UserId) -> bool {
        user.as_str() == self.user.as_str()
    }
}

#[async_trait]
impl Store for RunSettings {
    async fn settings(&self, user: &UserId) -> Result<Settings, StoreError> {
        if self.mine(user) {
            return Ok(self
                .settings
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone());
        }
        self.inner.settings(user).await
    }

    async fn save_settings(&self, user: &UserId, settings: &Settings) -> Result<(), StoreError> {
        self.inner.save_settings(user, settings).await?;
        if self.mine(user) {
            *self
                .settings
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = settings.clone();
        }
        Ok(())
    }

    async fn processed_ids(
        &self,
        user: &UserId,
        ids: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        self.inner.processed_ids(user, ids).await
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

    async fn save_batch(&self, user: &UserId, batch: &Batch) -> Result<Saved, StoreError> {
        self.inner.save_batch(user, batch).await
    }

    async fn thread_matters(
        &self,
        user: &UserId,
        thread_ids: &[String],
    ) -> Result<HashMap<String, (String, String)>, StoreError> {
        self.inner.thread_matters(user, thread_ids).await
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
        self.inner.write_reviewed(user, upserts, deletes).await
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

    async fn summary(
        &self,
        user: &UserId,
        query: &SummaryQuery,
    ) -> Result<Arc<Summary>, StoreError> {
        self.inner.summary(user, query).await
    }

    async fn record_scan(&self, user: &UserId, scan: &ScanRecord) -> Result<(), StoreError> {
        self.inner.record_scan(user, scan).await
    }

    async fn scans(&self, user: &UserId, limit: u32) -> Result<Vec<ScanRecord>, StoreError> {
        self.inner.scans(user, limit).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}
