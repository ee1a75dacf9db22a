//! Analyses remembered per user and message content, so a second `analyze_time_entry`
//! on the same message (or a reanalyzing scan) asks no LLM again.
//!
//! It sits in front of the analyzer (the `Analyzer` trait knows no users), keyed by
//! user, the message's content hash, the analyzer's cache key (analyzer, model, prompt
//! version) and a fingerprint of the settings, so changing a client or a rate never
//! serves a stale analysis. Bounded in size and age (moka).

use std::time::Duration;

use moka::future::Cache;
use sha2::{Digest, Sha256};

use tokio::sync::mpsc;

use super::{Analysis, AnalyzeError, Analyzer, Count, Done, DoneTx, Meter};
use crate::domain::{Email, Settings, UserId};

/// Analyses kept at most.
pub const CAPACITY: u64 = 20_000;
/// How long an analysis is kept.
pub const TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    user: String,
    content_hash: String,
    analyzer: String,
    settings: [u8; 16],
}

pub struct AnalysisCache {
    inner: Cache<Key, Analysis>,
}

impl Default for AnalysisCache {
    fn default() -> Self {
        Self::new()
    }
}

impl AnalysisCache {
    pub fn new() -> Self {
        AnalysisCache {
            inner: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(TTL)
                .build(),
        }
    }

    /// `analyzer.analyze`, answering from the cache what it can. Only successful
    /// analyses are kept; analyzers without a cache key are called directly. An entry
    /// dated where no work can have been done is that message's error.
    pub async fn analyze(
        &self,
        analyzer: &dyn Analyzer,
        user: &UserId,
        emails: &[Email],
        settings: &Settings,
        meter: &Meter,
    ) -> Vec<Result<Analysis, AnalyzeError>> {
        super::gathered(emails.len(), |done| {
            self.analyze_each(analyzer, user, emails, settings, meter, done)
        })
        .await
    }

    /// Like [`AnalysisCache::analyze`], handing results to `done` as they are ready:
    /// what the cache holds at once, then each group the analyzer answers.
    pub async fn analyze_each(
        &self,
        analyzer: &dyn Analyzer,
        user: &UserId,
        emails: &[Email],
        settings: &Settings,
        meter: &Meter,
        done: DoneTx,
    ) {
        let dated = |batch: Done| -> Done {
            batch
                .into_iter()
                .map(|(p, r)| (p, r.and_then(super::dated)))
                .collect()
        };
        let Some(tag) = analyzer.cache_key() else {
            let (tx, mut rx) = mpsc::unbounded_channel();
            let run = analyzer.analyze_each(emails, settings, meter, tx);
            let forward = async {
                while let Some(batch) = rx.recv().await {
                    let _ = done.send(dated(batch));
                }
            };
            futures::join!(run, forward);
            return;
        };
        let fingerprint = settings_fingerprint(settings);
        let keys: Vec<Key> = emails
            .iter()
            .map(|e| Key {
                user: user.as_str().to_owned(),
                content_hash: e.content_hash.clone(),
                analyzer: tag.clone(),
                settings: fingerprint,
            })
            .collect();
        let mut hits = Vec::new();
        let mut missing = Vec::new();
        for (p, (key, email)) in keys.iter().zip(emails).enumerate() {
            match self.inner.get(key).await {
                // The content hash identifies the bytes; the id is the message's own.
                Some(a) if a.message_id == email.id => hits.push((p, Ok(a))),
                _ => missing.push(p),
            }
        }
        meter.add(Count::CacheHits, hits.len() as u64);
        if !hits.is_empty() {
            let _ = done.send(dated(hits));
        }
        if missing.is_empty() {
            return;
        }
        let subset: Vec<Email> = if missing.len() == emails.len() {
            Vec::new()
        } else {
            missing.iter().map(|&p| emails[p].clone()).collect()
        };
        let asked = if subset.is_empty() { emails } else { &subset };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let run = analyzer.analyze_each(asked, settings, meter, tx);
        let forward = async {
            while let Some(batch) = rx.recv().await {
                let mut back = Vec::with_capacity(batch.len());
                for (k, result) in batch {
                    let Some(&p) = missing.get(k) else { continue };
                    if let Ok(a) = &result {
                        self.inner.insert(keys[p].clone(), a.clone()).await;
                    }
                    back.push((p, result));
                }
                let _ = done.send(dated(back));
            }
        };
        futures::join!(run, forward);
    }
}

fn settings_fingerprint(settings: &Settings) -> [u8; 16] {
    let json = serde_json::to_vec(settings).unwrap_or_default();
    let digest = Sha256::digest(&json);
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}
