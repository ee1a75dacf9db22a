//! `get_time_tracking_summary`: totals aggregated by the store, cached per user by
//! the context's store (`store::cached`).

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Hints, Progress, Tool};
use crate::context::Context;
use crate::domain::{EntryStatus, GroupBy, Summary, SummaryQuery, UserId, WorkDate};
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
    /// Count only billable entries (default false).
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
    const DESCRIPTION: &'static str = "Totals of time entries for a period, grouped by client, matter, status, day, week or month, optionally for one status or matter: entries, raw minutes, billed hours and amount per group and overall.";
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
    Ok(ctx.store.summary(user, &query).await?)
}
