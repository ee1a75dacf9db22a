//! `analyze_time_entry`: one message, by id or raw, with the reasons; saved on request.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::pipeline::{self, Disposition, Progress, Recorder};
use super::{Hints, Tool};
use crate::analyze::{Analysis, AnalyzeError, triage};
use crate::context::Context;
use crate::domain::{Email, TimeEntry, UserId};
use crate::error::{Error, Result};
use crate::mail::{RawEmail, parse};

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Id of a message in the mailbox (Gmail id or Message-ID).
    #[serde(default)]
    pub message_id: Option<String>,
    /// A whole RFC 5322 message, headers and body.
    #[serde(default)]
    pub raw_email: Option<String>,
    /// Save the proposed entry (default false).
    #[serde(default)]
    pub save: Option<bool>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Output {
    pub message_id: String,
    /// `entry`, `meeting`, `meeting_updated`, `cancelled`, `not_billable` or `automated`.
    pub outcome: Disposition,
    /// The proposed entry, when the message is billable work.
    pub entry: Option<TimeEntry>,
    pub reasons: Vec<String>,
    pub analyzer: String,
    pub saved: bool,
}

/// `analyze_time_entry` in the tool table.
pub struct AnalyzeTimeEntry;

impl Tool for AnalyzeTimeEntry {
    const NAME: &'static str = "analyze_time_entry";
    const DESCRIPTION: &'static str = "Analyze one email and return the proposed time entry with the reasons. Give either message_id (from the mailbox) or raw_email (an RFC 5322 message). Saves only when save is true.";
    const HINTS: Hints = Hints {
        read_only: false,
        destructive: false,
        idempotent: false,
        open_world: true,
    };
    type Args = Args;
    type Output = Output;

    fn run<'a>(
        ctx: &'a Context,
        user: &'a UserId,
        args: Args,
        _: &'a dyn Progress,
    ) -> impl Future<Output = Result<Output>> + Send + 'a {
        run(ctx, user, args)
    }
}

pub async fn run(ctx: &Context, user: &UserId, args: Args) -> Result<Output> {
    let raw = match (args.message_id, args.raw_email) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "raw_email",
                "give either message_id or raw_email, not both",
            ));
        }
        (None, None) => return Err(Error::invalid("message_id", "give message_id or raw_email")),
        (Some(id), None) => {
            let id = id
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned();
            if id.is_empty() {
                return Err(Error::invalid("message_id", "must not be empty"));
            }
            ctx.source(user).await?.get(&id).await?
        }
        (None, Some(text)) => {
            if text.trim().is_empty() {
                return Err(Error::invalid("raw_email", "must not be empty"));
            }
            let bytes = text.into_bytes();
            RawEmail {
                id: parse::local_id(&bytes),
                thread_id: None,
                labels: Vec::new(),
                bytes,
            }
        }
    };
    let email = parse::parse_email(&raw).map_err(|e| Error::invalid("raw_email", e.to_string()))?;
    of_email(ctx, user, &email, args.save.unwrap_or(false)).await
}

/// The tool's analysis of a message already parsed (the page's message panel has it
/// in hand, and reads the mailbox once); saved when `save`.
pub(crate) async fn of_email(
    ctx: &Context,
    user: &UserId,
    email: &Email,
    save: bool,
) -> Result<Output> {
    let settings = pipeline::settings_with_learning(ctx, user).await?;
    let analyzer = ctx.analyzer.name();
    let mut recorder = Recorder::new(analyzer.clone(), std::sync::Arc::new(settings.clone()));

    if let Some(reason) = triage::automated(email, &settings) {
        recorder.automated(email, &reason);
        if save {
            pipeline::save(ctx, user, &recorder.take_batch()).await?;
        }
        return Ok(Output {
            message_id: email.id.clone(),
            outcome: Disposition::Automated,
            entry: None,
            reasons: vec![reason],
            analyzer,
            saved: save,
        });
    }

    let analysis: Analysis = ctx
        .analyses
        .analyze(
            ctx.analyzer.as_ref(),
            user,
            std::slice::from_ref(email),
            &settings,
            &crate::analyze::Meter::default(),
        )
        .await
        .into_iter()
        .next()
        .unwrap_or_else(|| {
            Err(AnalyzeError::Message(
                "the analyzer returned no result".to_owned(),
            ))
        })?;
    let mut reasons = analysis.reasons.clone();
    let outcome = recorder.record(ctx, user, email, analysis).await?;
    // When the store's calendar state overrides the analysis (an invite already
    // recorded, or one for a meeting since declined), that is the reason that counts.
    if let Some(why) = recorder
        .batch
        .processed
        .last()
        .and_then(|p| p.reason.clone())
        && reasons.first() != Some(&why)
    {
        reasons.insert(0, why);
    }
    // The recorder holds this one message's writes, so its last entry is this one's:
    // every entry or meeting is staged unless it was found not billable.
    let mut entry = recorder.batch.entries.last().cloned();
    if save {
        let batch = recorder.take_batch();
        pipeline::save(ctx, user, &batch).await?;
        // Report the row as stored: an existing entry keeps its id and created_at.
        if let Some(e) = &entry {
            entry = ctx
                .store
                .entry_by_message(user, &e.message_id)
                .await?
                .or(entry);
        }
    }
    Ok(Output {
        message_id: email.id.clone(),
        outcome,
        entry,
        reasons,
        analyzer,
        saved: save,
    })
}
