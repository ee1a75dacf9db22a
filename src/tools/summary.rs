//! `get_time_tracking_summary`: totals aggregated by the store, cached per user.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Hints, Progress, Tool};
use crate::context::Context;
use crate::domain::{GroupBy, Summary, SummaryQuery, UserId, WorkDate};
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
}

/// The summary, shared with the cache: a hit is serialized from the cached value
/// without copying it.
/// `get_time_tracking_summary` in the tool table.
pub struct GetTimeTrackingSummary;

impl Tool for GetTimeTrackingSummary {
    const NAME: &'static str = "get_time_tracking_summary";
    const DESCRIPTION: &'static str = "Totals of time entries for a period, grouped by client, matter, day, week or month: entries, raw minutes, billed hours and amount per group and overall.";
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
    };
    let generation = ctx.summaries.generation(user);
    let key = (user.clone(), generation, query.clone());
    if let Some(hit) = ctx.summaries.cache.get(&key).await {
        crate::metrics::global().inc(crate::metrics::Counter::CacheHits, "summary");
        return Ok(hit);
    }
    crate::metrics::global().inc(crate::metrics::Counter::CacheMisses, "summary");
    let summary = Arc::new(ctx.store.summary(user, &query).await?);
    ctx.summaries.cache.insert(key, summary.clone()).await;
    Ok(summary)
}

type Key = (UserId, u64, SummaryQuery);

/// Summaries keyed by user, the user's write generation and the query. A write bumps
/// the generation, so a summary computed while the write ran can never be served after.
pub struct SummaryCache {
    cache: moka::future::Cache<Key, Arc<Summary>>,
    generations: Mutex<HashMap<UserId, u64>>,
}

impl Default for SummaryCache {
    fn default() -> Self {
        Self::new()
    }
}

impl SummaryCache {
    pub fn new() -> Self {
        SummaryCache {
            cache: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
            generations: Mutex::new(HashMap::new()),
        }
    }

    fn generation(&self, user: &UserId) -> u64 {
        let map = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        map.get(user).copied().unwrap_or(0)
    }

    /// Called on every write by `user`.
    pub fn invalidate(&self, user: &UserId) {
        let mut map = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(user.clone()).or_default() += 1;
    }
}
