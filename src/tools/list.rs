//! `list_time_entries`: entries newest first, paginated, with the total.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::domain::{EntryStatus, TimeEntry, UserId, WorkDate};
use crate::error::{Error, Result};
use crate::store::EntryFilter;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    #[serde(default)]
    pub from: Option<WorkDate>,
    #[serde(default)]
    pub to: Option<WorkDate>,
    #[serde(default)]
    pub client: Option<String>,
    #[serde(default)]
    pub status: Option<EntryStatus>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub offset: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Output {
    pub entries: Vec<TimeEntry>,
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
}

pub async fn run(ctx: &Context, user: &UserId, args: Args) -> Result<Output> {
    let limit = args.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}, got {limit}"),
        ));
    }
    super::check_range(args.from, args.to)?;
    let filter = EntryFilter {
        from: args.from,
        to: args.to,
        client: args
            .client
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty()),
        status: args.status,
        limit,
        offset: args.offset.unwrap_or(0),
    };
    let (entries, total) = ctx.store.list_entries(user, &filter).await?;
    Ok(Output {
        entries,
        total,
        limit,
        offset: filter.offset,
    })
}
