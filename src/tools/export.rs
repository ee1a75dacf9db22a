//! `export_time_entries`: reviewed entries as a file a billing system imports, each
//! entry exported once.
//!
//! Exported entries are marked with the export's batch id and time, and a later export
//! leaves them out unless asked: importing the same entry twice bills it twice.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Hints, Progress, Tool};
use crate::context::Context;
use crate::domain::{EntryStatus, TimeEntry, UserId, WorkDate};
use crate::error::{Error, Result};
use crate::export::{self, Format, Invoice};
use crate::store::EntryFilter;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// csv (our columns), ledes1998b, harvest_csv or toggl_csv.
    pub format: Format,
    /// First work date included (YYYY-MM-DD), or null.
    #[serde(default)]
    pub from: Option<WorkDate>,
    /// Last work date included (YYYY-MM-DD), or null.
    #[serde(default)]
    pub to: Option<WorkDate>,
    /// Only this client's entries (a LEDES invoice is for one client).
    #[serde(default)]
    pub client: Option<String>,
    /// Only this matter's entries.
    #[serde(default)]
    pub matter: Option<String>,
    /// Which entries to export (default approved).
    #[serde(default)]
    pub status: Option<EntryStatus>,
    /// Export entries an earlier export already sent, too (default false: importing
    /// an entry twice bills it twice).
    #[serde(default)]
    pub include_exported: Option<bool>,
    /// The invoice the file is (LEDES needs its number).
    #[serde(default)]
    pub invoice: Option<InvoiceArgs>,
    /// Render the file without marking anything exported (default false).
    #[serde(default)]
    pub dry_run: Option<bool>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceArgs {
    /// The invoice number, as your billing system will know it.
    #[serde(default)]
    pub number: Option<String>,
    /// The invoice date (YYYY-MM-DD); null is today.
    #[serde(default)]
    pub date: Option<WorkDate>,
    /// A description of the invoice as a whole.
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Output {
    pub format: Format,
    /// The file's text, to be written as it is.
    pub content: String,
    /// A file name for it, e.g. billable-2026-11-01-2026-11-30.txt.
    pub filename: String,
    /// Entries in the file.
    pub entries: u64,
    /// Their billed minutes and amount.
    pub billed_minutes: u64,
    pub amount: f64,
    /// The batch the entries were marked with; null when nothing was marked (a dry
    /// run, or nothing new to export).
    pub batch_id: Option<String>,
    pub exported_at: Option<DateTime<Utc>>,
    /// Billable entries of the period still awaiting review, not in the file.
    pub awaiting_review: u64,
}

/// `export_time_entries` in the tool table.
pub struct ExportTimeEntries;

impl Tool for ExportTimeEntries {
    const NAME: &'static str = "export_time_entries";
    const DESCRIPTION: &'static str = "Export approved time entries as a file for a billing system: csv, ledes1998b (e-billing invoice), harvest_csv or toggl_csv. Exported entries are marked and left out of later exports unless include_exported is true, so nothing is billed twice.";
    const HINTS: Hints = Hints {
        read_only: false,
        destructive: false,
        idempotent: false,
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
    prepare(ctx, user, args).await?.mark(ctx, user).await
}

/// An export rendered but not yet marked: whoever writes the file marks it once the
/// file is whole (the CLI), so a failed write leaves every entry exportable.
pub struct Prepared {
    output: Output,
    fresh: Vec<TimeEntry>,
}

impl Prepared {
    /// The answer as it will be once marked (its batch id is already chosen).
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// Marks the file's entries exported with its batch; a dry run marks nothing.
    pub async fn mark(self, ctx: &Context, user: &UserId) -> Result<Output> {
        if let (Some(batch), Some(at)) = (&self.output.batch_id, self.output.exported_at) {
            let upserts: Vec<TimeEntry> = self
                .fresh
                .into_iter()
                .map(|e| TimeEntry {
                    export_batch: Some(batch.clone()),
                    exported_at: Some(at),
                    ..e
                })
                .collect();
            ctx.store.write_reviewed(user, &upserts, &[]).await?;
        }
        Ok(self.output)
    }
}

/// Renders the export and chooses its batch, changing nothing.
pub async fn prepare(ctx: &Context, user: &UserId, args: Args) -> Result<Prepared> {
    super::check_range(args.from, args.to)?;
    let settings = ctx.store.settings(user).await?;
    let status = args.status.unwrap_or(EntryStatus::Approved);
    if status == EntryStatus::Rejected {
        return Err(Error::invalid(
            "status",
            "rejected entries are not billed, so they are never exported",
        ));
    }
    let client = super::nonblank(args.client);
    if let Some(name) = &client {
        known_client(ctx, user, &settings, name).await?;
    }
    let include_exported = args.include_exported.unwrap_or(false);
    let filter = EntryFilter {
        from: args.from,
        to: args.to,
        client,
        status: Some(status),
        matter: super::nonblank(args.matter),
        exported: (!include_exported).then_some(false),
        limit: 0,
        offset: 0,
    };
    let (listed, _) = ctx.store.list_entries(user, &filter).await?;
    // Work recorded as not billable is never charged, so no file carries it.
    let mut entries: Vec<TimeEntry> = listed.into_iter().filter(|e| e.billable).collect();
    entries.sort_by(|a, b| {
        (a.work_date, a.created_at, &a.id).cmp(&(b.work_date, b.created_at, &b.id))
    });
    let awaiting_review = awaiting(ctx, user, &filter).await?;
    // Nothing approved at all is a mistake worth saying; everything approved already
    // exported is a second export, which rightly yields nothing.
    if entries.is_empty()
        && status == EntryStatus::Approved
        && awaiting_review > 0
        && !include_exported
        && !any_exported(ctx, user, &filter).await?
    {
        return Err(Error::invalid(
            "status",
            format!(
                "no approved entries to export{}, but {awaiting_review} await review; \
                 approve them first (`billable approve ID…`, or `billable review`)",
                period(args.from, args.to)
            ),
        ));
    }

    let today = WorkDate(Utc::now().with_timezone(&settings.timezone).date_naive());
    let first = entries.first().map(|e| e.work_date);
    let last = entries.last().map(|e| e.work_date);
    let invoice_args = args.invoice.unwrap_or_default();
    let invoice = Invoice {
        number: super::nonblank(invoice_args.number),
        date: invoice_args.date.unwrap_or(today),
        description: super::nonblank(invoice_args.description),
        billing_start: args.from.or(first).unwrap_or(today),
        billing_end: args.to.or(last).unwrap_or(today),
    };
    let content = export::render(args.format, &entries, &settings, &invoice)?;

    let now = Utc::now();
    let fresh: Vec<TimeEntry> = entries
        .iter()
        .filter(|e| e.exported_at.is_none())
        .cloned()
        .collect();
    let marked = !args.dry_run.unwrap_or(false) && !fresh.is_empty();
    let batch_id = marked.then(|| format!("exp-{}", uuid::Uuid::now_v7()));
    let output = Output {
        format: args.format,
        filename: format!(
            "billable-{}-{}.{}",
            invoice.billing_start,
            invoice.billing_end,
            args.format.extension()
        ),
        content,
        entries: entries.len() as u64,
        billed_minutes: entries.iter().map(|e| u64::from(e.billed_minutes)).sum(),
        amount: (entries.iter().map(|e| e.amount).sum::<f64>() * 100.0).round() / 100.0,
        batch_id,
        exported_at: marked.then_some(now),
        awaiting_review,
    };
    Ok(Prepared {
        output,
        fresh: if marked { fresh } else { Vec::new() },
    })
}

/// Refuses a client filter that names no configured client and no client of any
/// entry: an empty file for a typo would look like "nothing left to bill".
async fn known_client(
    ctx: &Context,
    user: &UserId,
    settings: &crate::domain::Settings,
    name: &str,
) -> Result<()> {
    if settings.client_named(name).is_some() {
        return Ok(());
    }
    let any = EntryFilter {
        client: Some(name.to_owned()),
        limit: 1,
        ..EntryFilter::default()
    };
    if ctx.store.list_entries(user, &any).await?.1 > 0 {
        return Ok(());
    }
    let known: Vec<&str> = settings.clients.iter().map(|c| c.name.as_str()).collect();
    let hint = if known.is_empty() {
        "no clients are configured yet (`billable configure --add clients=…`)".to_owned()
    } else {
        format!("the configured clients are {}", known.join(", "))
    };
    Err(Error::invalid(
        "client",
        format!("no entry is for a client named `{name}`; {hint}. Nothing was exported"),
    ))
}

/// Billable entries of the export's period and scope that a person has not decided on.
async fn awaiting(ctx: &Context, user: &UserId, filter: &EntryFilter) -> Result<u64> {
    let mut total = 0;
    for status in [EntryStatus::Suggested, EntryStatus::NeedsReview] {
        let pending = EntryFilter {
            status: Some(status),
            exported: Some(false),
            limit: 1,
            ..filter.clone()
        };
        total += ctx.store.list_entries(user, &pending).await?.1;
    }
    Ok(total)
}

/// Whether the export's scope holds entries an earlier export already sent.
async fn any_exported(ctx: &Context, user: &UserId, filter: &EntryFilter) -> Result<bool> {
    let sent = EntryFilter {
        exported: Some(true),
        limit: 1,
        ..filter.clone()
    };
    Ok(ctx.store.list_entries(user, &sent).await?.1 > 0)
}

fn period(from: Option<WorkDate>, to: Option<WorkDate>) -> String {
    match (from, to) {
        (Some(f), Some(t)) => format!(" from {f} to {t}"),
        (Some(f), None) => format!(" from {f}"),
        (None, Some(t)) => format!(" up to {t}"),
        (None, None) => String::new(),
    }
}
