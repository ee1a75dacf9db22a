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

use super::{Analysis, AnalyzeError, Analyzer};
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
    ) -> Vec<Result<Analysis, AnalyzeError>> {
        self.remembered(analyzer, user, emails, settings)
            .await
            .into_iter()
            .map(|r| r.and_then(super::dated))
            .collect()
    }

    async fn remembered(
        &self,
        analyzer: &dyn Analyzer,
        user: &UserId,
        emails: &[Email],
        settings: &Settings,
    ) -> Vec<Result<Analysis, AnalyzeError>> {
        let Some(tag) = analyzer.cache_key() else {
            return analyzer.analyze(emails, settings).await;
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
        let mut results: Vec<Option<Result<Analysis, AnalyzeError>>> =
            Vec::with_capacity(emails.len());
        let mut missing = Vec::new();
        for (p, (key, email)) in keys.iter().zip(emails).enumerate() {
            match self.inner.get(key).await {
                // The content hash identifies the bytes; the id is the message's own.
                Some(a) if a.message_id == email.id => results.push(Some(Ok(a))),
                _ => {
                    results.push(None);
                    missing.push(p);
                }
            }
        }
        if !missing.is_empty() {
            let fresh = if missing.len() == emails.len() {
                analyzer.analyze(emails, settings).await
            } else {
                let subset: Vec<Email> = missing.iter().map(|&p| emails[p].clone()).collect();
                analyzer.analyze(&subset, settings).await
            };
            for (&p, result) in missing.iter().zip(fresh) {
                if let Ok(a) = &result {
                    self.inner.insert(keys[p].clone(), a.clone()).await;
                }
                results[p] = Some(result);
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(AnalyzeError::Message(
                        "the analyzer returned no result".to_owned(),
                    ))
                })
            })
            .collect()
    }
}

fn settings_fingerprint(settings: &Settings) -> [u8; 16] {
    let json = serde_json::to_vec(settings).unwrap_or_default();
    let digest = Sha256::digest(&json);
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}
