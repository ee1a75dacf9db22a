//! `get_time_tracking_summary`: totals aggregated by the store, cached per user by
//! the context's store (`store::cached`).

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Hints, Progress, Tool};
use crate::context::Context;
use crate::domain::{EntryStatus, GroupBy, Summary, SummaryGroup, SummaryQuery, UserId, WorkDate};
use crate::error::Result;

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// First work date included (YYYY-MM-DD), or null.
    #[serde(default)]
    pub from: Option<WorkDate>,
    /// Last work date included (YYYY-MM-DD), or null.
    #[serde(default)]
    pub to: Option<WorkDate>,
    /// Grouping (default client).
    #[serde(default)]
    pub group_by: Option<GroupBy>,
    /// Count only billable entries (default false). Amounts are always of billable
    /// entries only: non-billable work is recorded, never charged.
    #[serde(default)]
    pub billable_only: Option<bool>,
    /// Only entries with this status (default: every status but rejected).
    #[serde(default)]
    pub status: Option<EntryStatus>,
    /// Only entries of this matter.
    #[serde(default)]
    pub matter: Option<String>,
}

/// The summary, shared with the cache: a hit is serialized from the cached value
/// without copying it.
/// `get_time_tracking_summary` in the tool table.
pub struct GetTimeTrackingSummary;

impl Tool for GetTimeTrackingSummary {
    const NAME: &'static str = "get_time_tracking_summary";
    const DESCRIPTION: &'static str = "Totals of time entries for a period, grouped by client, matter, status, day, week or month, optionally for one status or matter: entries, raw minutes, billed hours and amount (of billable entries only) per group and overall.";
    const HINTS: Hints = Hints::READ;
    type Args = Args;
    type Output = Arc<Summary>;

    fn run<'a>(
        ctx: &'a Context,
        user: &'a UserId,
        args: Args,
        _: &'a dyn Progress,
    ) -> impl Future<Output = Result<Arc<Summary>>> + Send + 'a {
        run(ctx, user, args)
    }
}

pub async fn run(ctx: &Context, user: &UserId, args: Args) -> Result<Arc<Summary>> {
    super::check_range(args.from, args.to)?;
    let query = SummaryQuery {
        from: args.from,
        to: args.to,
        group_by: args.group_by.unwrap_or(GroupBy::Client),
        billable_only: args.billable_only.unwrap_or(false),
        status: args.status,
        matter: super::nonblank(args.matter),
    };
    let all = ctx.store.summary(user, &query).await?;
    if query.billable_only {
        return Ok(all);
    }
    // Amounts are what is charged, so only billable entries carry one, as in an
    // export; entries and minutes still count all the work recorded.
    let billable = ctx
        .store
        .summary(
            user,
            &SummaryQuery {
                billable_only: true,
                ..query
            },
        )
        .await?;
    Ok(Arc::new(charged(&all, &billable)))
}

/// `all` with each group's amount taken from the same group of `billable` (none
/// when the group has no billable entry).
fn charged(all: &Summary, billable: &Summary) -> Summary {
    let amount = |groups: &[SummaryGroup], g: &SummaryGroup| {
        groups
            .iter()
            .find(|b| b.key == g.key && b.currency == g.currency)
            .map_or(0.0, |b| b.amount)
    };
    let mut out = all.clone();
    for g in &mut out.groups {
        g.amount = amount(&billable.groups, g);
    }
    for g in &mut out.total {
        g.amount = amount(&billable.total, g);
    }
    out
}
