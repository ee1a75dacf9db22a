//! Deciding what a message is worth. Triage drops automated mail before any analyzer
//! runs; an `Analyzer` (offline `rules`, or `llm`) turns the rest into entries.

pub mod cache;
pub mod codes;
pub mod duration;
pub mod evidence;
pub mod llm;
pub mod matter;
pub mod rules;
#[cfg(test)]
mod table_tests;
pub mod triage;

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Serialize;

use crate::domain::{Email, Settings, TimeEntry};
use crate::metrics::{self, Counter};

/// What an analyzer concluded about one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub message_id: String,
    pub outcome: Outcome,
    /// Why, in short sentences a user can read ("sent to acme.com (client Acme)").
    pub reasons: Vec<String>,
    /// The evidence features the rules weighed (`evidence::join`), when they did:
    /// stored with the message so a person's review of its entry teaches later scans.
    pub features: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Billable (or reviewable) work: one entry for this message.
    Entry(TimeEntry),
    /// A meeting from a calendar REQUEST; a higher `sequence` updates an earlier one.
    Meeting {
        entry: TimeEntry,
        uid: String,
        sequence: i64,
    },
    /// A CANCEL of the event, or the owner declining it: removes its entry.
    CancelMeeting { uid: String, sequence: i64 },
    /// Nothing to bill; `reasons` say why.
    NotBillable,
}

#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// The analyzer's upstream (the LLM) is unavailable; the scan stops and can resume.
    #[error("the analyzer is unavailable: {0}")]
    Unavailable(String),
    /// This one message could not be analyzed; the scan reports it and goes on.
    #[error("{0}")]
    Message(String),
}

/// An analysis whose entry is dated where no work can have been done (a Date header or
/// invitation in year 0001): no store or bill can carry it, so it is the message's error.
pub fn dated(analysis: Analysis) -> Result<Analysis, AnalyzeError> {
    let date = match &analysis.outcome {
        Outcome::Entry(e) | Outcome::Meeting { entry: e, .. } => e.work_date,
        Outcome::CancelMeeting { .. } | Outcome::NotBillable => return Ok(analysis),
    };
    match date.check_plausible() {
        Ok(_) => Ok(analysis),
        Err(why) => Err(AnalyzeError::Message(format!(
            "the message's date: {why}. Check its Date header or the invitation's start"
        ))),
    }
}

/// Results handed over as they are ready: (position in the emails given, result).
pub type Done = Vec<(usize, Result<Analysis, AnalyzeError>)>;
/// Where [`Analyzer::analyze_each`] hands its results.
pub type DoneTx = tokio::sync::mpsc::UnboundedSender<Done>;

/// What an analyzer that asks a model did for one caller (a scan), as the scan result,
/// the CLI footer and `/metrics` (`billable_llm_total`) report it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct LlmCounts {
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Tokens as the server counted them (its `usage`).
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Messages whose entry is the model's checked answer.
    pub answered: u64,
    /// Messages the model was asked about whose answer could not be used: the rules'
    /// entry is kept, flagged needs_review.
    pub fell_back: u64,
    /// Requests that ran past `LLM_TIMEOUT_SECS` (a batch is then split, not resent).
    pub timed_out: u64,
    /// Messages answered from the analysis cache without a request.
    pub cache_hits: u64,
    /// Set when most answers fell back: the model is not doing the job.
    pub warning: Option<String>,
}

impl LlmCounts {
    /// The warning when most of at least four answers fell back.
    pub fn with_warning(mut self) -> Self {
        let asked = self.answered + self.fell_back;
        self.warning = (asked >= 4 && self.fell_back * 2 > asked).then(|| {
            format!(
                "the model's answers were unusable for {} of {asked} messages, so their entries are the rules' and need review; try a larger model, LLM_RESPONSE_FORMAT=json_object, or --analyzer rules",
                self.fell_back
            )
        });
        self
    }
}

/// One of the [`LlmCounts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Requests,
    PromptTokens,
    CompletionTokens,
    Answered,
    FellBack,
    TimedOut,
    CacheHits,
}

impl Count {
    const ALL: [Count; 7] = [
        Count::Requests,
        Count::PromptTokens,
        Count::CompletionTokens,
        Count::Answered,
        Count::FellBack,
        Count::TimedOut,
        Count::CacheHits,
    ];

    fn label(self) -> &'static str {
        match self {
            Count::Requests => "requests",
            Count::PromptTokens => "prompt_tokens",
            Count::CompletionTokens => "completion_tokens",
            Count::Answered => "answered",
            Count::FellBack => "fell_back",
            Count::TimedOut => "timed_out",
            Count::CacheHits => "cache_hits",
        }
    }
}

/// Counts [`LlmCounts`] for one caller, and the process's `/metrics` with them.
#[derive(Debug, Default)]
pub struct Meter {
    counts: [AtomicU64; 7],
}

impl Meter {
    pub fn add(&self, count: Count, n: u64) {
        if n == 0 {
            return;
        }
        self.counts[count as usize].fetch_add(n, Ordering::Relaxed);
        metrics::global().add(Counter::Llm, count.label(), n);
    }

    pub fn counts(&self) -> LlmCounts {
        let get = |c: Count| self.counts[c as usize].load(Ordering::Relaxed);
        debug_assert_eq!(Count::ALL.len(), self.counts.len());
        LlmCounts {
            requests: get(Count::Requests),
            prompt_tokens: get(Count::PromptTokens),
            completion_tokens: get(Count::CompletionTokens),
            answered: get(Count::Answered),
            fell_back: get(Count::FellBack),
            timed_out: get(Count::TimedOut),
            cache_hits: get(Count::CacheHits),
            warning: None,
        }
        .with_warning()
    }
}

/// One result per email of `n` from `run`, an `analyze_each` handing them to the
/// sender it is given: how `analyze` is built on `analyze_each`.
pub async fn gathered<F: std::future::Future<Output = ()>>(
    n: usize,
    run: impl FnOnce(DoneTx) -> F,
) -> Vec<Result<Analysis, AnalyzeError>> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // `run` owns the sender, so the channel ends when it returns.
    run(tx).await;
    let mut out: Vec<Option<Result<Analysis, AnalyzeError>>> = (0..n).map(|_| None).collect();
    while let Some(batch) = rx.recv().await {
        for (p, r) in batch {
            if let Some(slot) = out.get_mut(p) {
                *slot = Some(r);
            }
        }
    }
    out.into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(AnalyzeError::Message(
                    "the analyzer returned no result".to_owned(),
                ))
            })
        })
        .collect()
}

/// Turns triaged messages into analyses. Batches let an LLM analyzer send several
/// messages per request; `rules` handles them one by one.
#[async_trait]
pub trait Analyzer: Send + Sync {
    /// Recorded on every entry, e.g. `rules` or `llm:gpt-4.1-mini`.
    fn name(&self) -> String;

    /// What identifies this analyzer's results for caching (analyzer, model, prompt
    /// version), or `None` when results are cheap enough not to cache.
    fn cache_key(&self) -> Option<String> {
        None
    }

    /// Analyzes one message right away on the calling thread, for an analyzer that is
    /// pure computation (`rules`): a scan then runs it beside parsing, on every core.
    /// `None` (the default): call `analyze`, which may wait on a service.
    fn analyze_now(&self, _email: &Email, _settings: &Settings) -> Option<Analysis> {
        None
    }

    /// Whether results come from a model (`llm`): a scan then reports [`LlmCounts`]
    /// and saves each group of results as [`Analyzer::analyze_each`] hands it over.
    fn asks_a_model(&self) -> bool {
        false
    }

    /// One result per email, in the same order.
    async fn analyze(
        &self,
        emails: &[Email],
        settings: &Settings,
        meter: &Meter,
    ) -> Vec<Result<Analysis, AnalyzeError>>;

    /// Like [`Analyzer::analyze`], handing each group of results to `done` as soon as
    /// it is ready (a model's answered request), so a caller can save it at once.
    async fn analyze_each(
        &self,
        emails: &[Email],
        settings: &Settings,
        meter: &Meter,
        done: DoneTx,
    ) {
        let all = self.analyze(emails, settings, meter).await;
        let _ = done.send(all.into_iter().enumerate().collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meter_counts_for_its_caller_and_for_metrics() {
        // `timed_out` is counted only by the LLM analyzer, which no other unit test runs.
        let before = metrics::global().get(Counter::Llm, "timed_out");
        let meter = Meter::default();
        meter.add(Count::TimedOut, 3);
        meter.add(Count::Answered, 1);
        meter.add(Count::FellBack, 4);
        let counts = meter.counts();
        assert_eq!(
            (counts.timed_out, counts.answered, counts.fell_back),
            (3, 1, 4)
        );
        assert!(counts.warning.is_some(), "4 of 5 fell back");
        assert_eq!(metrics::global().get(Counter::Llm, "timed_out"), before + 3);
        let fine = Meter::default();
        fine.add(Count::Answered, 4);
        assert_eq!(fine.counts().warning, None);
    }
}
