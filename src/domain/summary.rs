//! Totals for a period, grouped.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{EntryStatus, WorkDate};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Client,
    Matter,
    Status,
    Day,
    Week,
    Month,
}

impl GroupBy {
    /// The one spelling, as in JSON and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Client => "client",
            GroupBy::Matter => "matter",
            GroupBy::Status => "status",
            GroupBy::Day => "day",
            GroupBy::Week => "week",
            GroupBy::Month => "month",
        }
    }
}

/// What to total. `from`/`to` are inclusive work dates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SummaryQuery {
    pub from: Option<WorkDate>,
    pub to: Option<WorkDate>,
    pub group_by: GroupBy,
    pub billable_only: bool,
    /// Only entries with this status; when none, every status but rejected.
    pub status: Option<EntryStatus>,
    /// Only entries of this matter (case-insensitive).
    pub matter: Option<String>,
}

/// One group's totals. `key` is the client or matter name ("(none)" when unset), the
/// day (YYYY-MM-DD), the Monday that starts the week, or the month (YYYY-MM).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SummaryGroup {
    pub key: String,
    pub currency: String,
    pub entries: u64,
    pub raw_minutes: f64,
    pub billed_minutes: u64,
    pub billed_hours: f64,
    pub amount: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    pub group_by: GroupBy,
    pub from: Option<WorkDate>,
    pub to: Option<WorkDate>,
    pub billable_only: bool,
    pub status: Option<EntryStatus>,
    pub matter: Option<String>,
    pub groups: Vec<SummaryGroup>,
    /// Overall totals, one row per currency.
    pub total: Vec<SummaryGroup>,
}
