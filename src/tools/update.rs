//! `update_time_entries`: a person approves, rejects or edits entries, many at once,
//! all or nothing.

use chrono::Utc;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::review;
use super::{Hints, Progress, Tool};
use crate::context::Context;
use crate::domain::{EntryStatus, Settings, TimeEntry, UserId, WorkDate};
use crate::error::{Error, Result};

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Ids of the entries to change (1 to 10000), as list_time_entries shows them.
    pub ids: Vec<String>,
    /// What to change on every listed entry; a null field stays as it is.
    pub changes: Changes,
}

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Changes {
    /// approved, rejected, suggested or needs_review.
    #[serde(default)]
    pub status: Option<EntryStatus>,
    /// A configured client's name; the matter becomes its only matter unless given.
    #[serde(default)]
    pub client: Option<String>,
    /// One of the client's matter ids; empty string clears it.
    #[serde(default)]
    pub matter: Option<String>,
    /// The entry's description as it should appear on the invoice.
    #[serde(default)]
    pub description: Option<String>,
    /// Minutes to bill: a multiple of the billing increment, within the minimum and
    /// max_entry_minutes.
    #[serde(default)]
    pub billed_minutes: Option<u32>,
    /// The day the work was done (YYYY-MM-DD).
    #[serde(default)]
    pub work_date: Option<WorkDate>,
    /// false for work that is recorded but not charged.
    #[serde(default)]
    pub billable: Option<bool>,
    /// UTBMS task code such as L120; empty string clears it.
    #[serde(default)]
    pub task_code: Option<String>,
    /// UTBMS activity code such as A104; empty string clears it.
    #[serde(default)]
    pub activity_code: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Output {
    /// How many entries were changed.
    pub updated: u64,
    /// The entries as they are now.
    pub entries: Vec<TimeEntry>,
}

/// `update_time_entries` in the tool table.
pub struct UpdateTimeEntries;

impl Tool for UpdateTimeEntries {
    const NAME: &'static str = "update_time_entries";
    const DESCRIPTION: &'static str = "Approve, reject or edit time entries by id (client, matter, description, billed minutes, date, billable, UTBMS codes). All or nothing: any unknown id or invalid value changes nothing. Entries a person changed are never touched by later scans.";
    const HINTS: Hints = Hints {
        read_only: false,
        destructive: true,
        idempotent: true,
        open_world: false,
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
    let ids = review::unique_ids(&args.ids, "ids")?;
    let settings = ctx.store.settings(user).await?;
    let changes = Checked::of(&args.changes, &settings)?;
    let mut entries = review::entries(ctx, user, &ids).await?;
    review::check_changeable(&entries)?;
    for e in &mut entries {
        changes.apply(e, &settings)?;
    }
    ctx.store.write_reviewed(user, &entries, &[]).await?;
    Ok(Output {
        updated: entries.len() as u64,
        entries,
    })
}

/// The changes with each value checked once, before any entry is touched.
struct Checked<'a> {
    raw: &'a Changes,
    client: Option<String>,
    /// Outer None: leave the matter; inner None: clear it.
    matter: Option<Option<String>>,
    description: Option<String>,
    billed_minutes: Option<u32>,
    task_code: Option<Option<String>>,
    activity_code: Option<Option<String>>,
}

impl<'a> Checked<'a> {
    fn of(raw: &'a Changes, settings: &Settings) -> Result<Checked<'a>> {
        let rule = raw
            .client
            .as_deref()
            .map(|c| review::client(settings, c, "changes.client"))
            .transpose()?;
        // With a new client, the matter is checked against it here; otherwise
        // against each entry's own client in `apply`.
        let matter = match (rule, raw.matter.as_deref()) {
            (Some(rule), Some(m)) => Some(review::matter(rule, m, "changes.matter")?),
            (Some(rule), None) => Some(rule.only_matter().map(|m| m.id.clone())),
            (None, _) => None,
        };
        let client = rule.map(|c| c.name.clone());
        if let Some(d) = raw.work_date {
            review::work_date(d, "changes.work_date")?;
        }
        Ok(Checked {
            raw,
            client,
            matter,
            description: raw
                .description
                .as_deref()
                .map(|d| review::description(d, "changes.description"))
                .transpose()?,
            billed_minutes: raw
                .billed_minutes
                .map(|m| review::billed_minutes(settings, m, "changes.billed_minutes"))
                .transpose()?,
            task_code: raw
                .task_code
                .as_deref()
                .map(|c| review::code(c, "changes.task_code", false))
                .transpose()?,
            activity_code: raw
                .activity_code
                .as_deref()
                .map(|c| review::code(c, "changes.activity_code", true))
                .transpose()?,
        })
    }

    fn apply(&self, e: &mut TimeEntry, settings: &Settings) -> Result<()> {
        if let Some(client) = &self.client {
            e.client = Some(client.clone());
        }
        match (&self.matter, self.raw.matter.as_deref()) {
            (Some(m), _) => e.matter = m.clone(),
            (None, Some(m)) => {
                let Some(client) = e.client.as_deref() else {
                    return Err(Error::invalid(
                        "changes.matter",
                        format!("entry {} has no client; set changes.client too", e.id),
                    ));
                };
                let rule = review::client(settings, client, "changes.client")?;
                e.matter = review::matter(rule, m, "changes.matter")?;
            }
            (None, None) => {}
        }
        if let Some(d) = &self.description {
            e.description = d.clone();
        }
        if let Some(m) = self.billed_minutes {
            e.billed_minutes = m;
        }
        if let Some(d) = self.raw.work_date {
            e.work_date = d;
        }
        if let Some(b) = self.raw.billable {
            e.billable = b;
        }
        if let Some(c) = &self.task_code {
            e.task_code = c.clone();
        }
        if let Some(c) = &self.activity_code {
            e.activity_code = c.clone();
        }
        if let Some(s) = self.raw.status {
            e.status = s;
        }
        if e.status == EntryStatus::Approved && e.client.is_none() {
            return Err(Error::invalid(
                "changes.status",
                format!(
                    "entry {} has no client, so it cannot be approved; set changes.client. \
                     Nothing was changed",
                    e.id
                ),
            ));
        }
        review::price(e, settings, self.client.is_some());
        e.reviewed_at = Some(Utc::now());
        Ok(())
    }
}
