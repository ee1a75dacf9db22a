//! `add_time_entry`: work that left no mail (a call, a meeting), entered by a person.

use chrono::Utc;
use schemars::JsonSchema;
use serde::Deserialize;

use super::review;
use super::{Hints, Progress, Tool};
use crate::context::Context;
use crate::domain::{Activity, EntryStatus, TimeEntry, UserId, WorkDate};
use crate::error::Result;

/// What `analyzer` says of an entry a person added.
pub const MANUAL: &str = "manual";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// A configured client's name.
    pub client: String,
    /// One of the client's matter ids; null uses its only matter.
    #[serde(default)]
    pub matter: Option<String>,
    /// The day the work was done (YYYY-MM-DD).
    pub work_date: WorkDate,
    /// Minutes to bill: a multiple of the billing increment, within the minimum and
    /// max_entry_minutes.
    pub billed_minutes: u32,
    /// The entry's description as it should appear on the invoice.
    pub description: String,
    /// call, meeting, email_sent, email_received or other (default call).
    #[serde(default)]
    pub activity: Option<Activity>,
    /// UTBMS activity code such as A106; null takes the activity's: A106
    /// (communicate with the client) for a call, meeting or sent email, A104 (review)
    /// for a received one, none for other work.
    #[serde(default)]
    pub activity_code: Option<String>,
    /// UTBMS task code such as L120; null uses the matter's default when it uses task codes.
    #[serde(default)]
    pub task_code: Option<String>,
    /// false for work recorded but not charged (default true).
    #[serde(default)]
    pub billable: Option<bool>,
    /// approved (default: a person entered it) or suggested.
    #[serde(default)]
    pub status: Option<EntryStatus>,
}

/// `add_time_entry` in the tool table.
pub struct AddTimeEntry;

impl Tool for AddTimeEntry {
    const NAME: &'static str = "add_time_entry";
    const DESCRIPTION: &'static str = "Add a time entry by hand for work that left no email (a call, a meeting): client, matter, date, billed minutes and description, checked like an edit. It is approved unless a status is given.";
    const HINTS: Hints = Hints {
        read_only: false,
        destructive: false,
        idempotent: false,
        open_world: false,
    };
    type Args = Args;
    type Output = TimeEntry;

    fn run<'a>(
        ctx: &'a Context,
        user: &'a UserId,
        args: Args,
        _: &'a dyn Progress,
    ) -> impl Future<Output = Result<TimeEntry>> + Send + 'a {
        run(ctx, user, args)
    }
}

pub async fn run(ctx: &Context, user: &UserId, args: Args) -> Result<TimeEntry> {
    let settings = ctx.store.settings(user).await?;
    let client = review::client(&settings, &args.client, "client")?;
    let matter = match args.matter.as_deref() {
        Some(m) => review::matter(client, m, "matter")?,
        None => client.only_matter().map(|m| m.id.clone()),
    };
    let billed_minutes = review::billed_minutes(&settings, args.billed_minutes, "billed_minutes")?;
    let task_code = match args.task_code.as_deref() {
        Some(c) => review::code(c, "task_code", false)?,
        None => matter
            .as_deref()
            .and_then(|m| client.matter(m))
            .filter(|m| m.task_codes)
            .and_then(|m| m.default_task_code.clone()),
    };
    let activity = args.activity.unwrap_or(Activity::Call);
    let now = Utc::now();
    let id = uuid::Uuid::now_v7().to_string();
    let mut entry = TimeEntry {
        message_id: format!("manual:{id}"),
        id,
        thread_id: None,
        client: Some(client.name.clone()),
        matter,
        activity,
        description: review::description(&args.description, "description")?,
        work_date: review::work_date(args.work_date, "work_date")?,
        duration_minutes: f64::from(billed_minutes),
        billed_minutes,
        hourly_rate: client.rate(&settings),
        amount: 0.0,
        currency: settings.currency.clone(),
        billable: args.billable.unwrap_or(true),
        confidence: 1.0,
        status: args.status.unwrap_or(EntryStatus::Approved),
        analyzer: MANUAL.to_owned(),
        created_at: now,
        event_uid: None,
        task_code,
        activity_code: match args.activity_code.as_deref() {
            Some(c) => review::code(c, "activity_code", true)?,
            None => default_code(activity).map(str::to_owned),
        },
        reviewed_at: Some(now),
        export_batch: None,
        exported_at: None,
        merged_into: None,
    };
    review::price(&mut entry, &settings, true);
    ctx.store
        .write_reviewed(user, std::slice::from_ref(&entry), &[])
        .await?;
    Ok(entry)
}

/// The activity code of work a person entered for a client, as the scan codes the
/// same kind of work with the client (`analyze::codes`): e-billing needs one per line.
fn default_code(activity: Activity) -> Option<&'static str> {
    match activity {
        Activity::Call | Activity::Meeting | Activity::EmailSent => Some("A106"),
        Activity::EmailReceived => Some("A104"),
        Activity::Other => None,
    }
}
