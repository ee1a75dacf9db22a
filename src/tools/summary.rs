//! `get_time_tracking_summary`: totals aggregated by the store, cached per user by
//! the context's store (`store::cached`).

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::context::Context;
use crate::domain::{GroupBy, Summary, SummaryQuery, UserId, WorkDate};
use crate::error::Result;

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    #[serde(default)]
    pub from: Option<WorkDate>,
    #[serde(default)]
    pub to: Option<WorkDate>,
    #[serde(default)]
    pub group_by: Option<GroupBy>,
    #[serde(default)]
    pub billable_only: Option<bool>,
}

/// The summary, shared with the cache: a hit is serialized from the cached value
/// without copying it.
pub async fn run(ctx: &Context, user: &UserId, args: Args) -> Result<Arc<Summary>> {
    super::check_range(args.from, args.to)?;
    let query = SummaryQuery {
        from: args.from,
        to: args.to,
        group_by: args.group_by.unwrap_or(GroupBy::Client),
        billable_only: args.billable_only.unwrap_or(false),
    };
    Ok(ctx.store.summary(user, &query).await?)
}
