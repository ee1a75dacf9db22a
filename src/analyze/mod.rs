//! Deciding what a message is worth. Triage drops automated mail before any analyzer
//! runs; an `Analyzer` (offline `rules`, or `llm`) turns the rest into entries.

pub mod cache;
pub mod codes;
pub mod duration;
pub mod llm;
pub mod matter;
pub mod rules;
#[cfg(test)]
mod table_tests;
pub mod triage;

use async_trait::async_trait;

use crate::domain::{Email, Settings, TimeEntry};

/// What an analyzer concluded about one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub message_id: String,
    pub outcome: Outcome,
    /// Why, in short sentences a user can read ("sent to acme.com (client Acme)").
    pub reasons: Vec<String>,
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

    /// One result per email, in the same order.
    async fn analyze(
        &self,
        emails: &[Email],
        settings: &Settings,
    ) -> Vec<Result<Analysis, AnalyzeError>>;
}
