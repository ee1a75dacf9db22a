//! `list_time_entries`: entries newest first, paginated, with the total.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Hints, Progress, Tool};
use crate::context::Context;
use crate::domain::{EntryStatus, TimeEntry, UserId, WorkDate};
use crate::error::{Error, Result};
use crate::store::EntryFilter;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// First work date included (YYYY-MM-DD), or null.
    #[serde(default)]
    pub from: Option<WorkDate>,
    /// Last work date included (YYYY-MM-DD), or null.
    #[serde(default)]
    pub to: Option<WorkDate>,
    /// Only this client's entries.
    #[serde(default)]
    pub client: Option<String>,
    /// Only entries with this status.
    #[serde(default)]
    pub status: Option<EntryStatus>,
    /// Only entries of this matter.
    #[serde(default)]
    pub matter: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Entries to skip (default 0).
    #[serde(default)]
    pub offset: Option<u32>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Output {
    pub entries: Vec<TimeEntry>,
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
}

/// `list_time_entries` in the tool table.
pub struct ListTimeEntries;

impl Tool for ListTimeEntries {
    const NAME: &'static str = "list_time_entries";
    const DESCRIPTION: &'static str =
        "List time entries, newest first, with the total count for pagination.";
    const HINTS: Hints = Hints::READ;
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
        client: super::nonblank(args.client),
        status: args.status,
        matter: super::nonblank(args.matter),
        exported: None,
        limit,
        offset: args.offset.unwrap_or(0),
    };
    let (entries, total) = ctx.store.list_entries(user, &filter).await?;
    Ok(Output {
        entries: entries.into_iter().map(TimeEntry::charged).collect(),
        total,
        limit,
        offset: filter.offset,
    })
}
