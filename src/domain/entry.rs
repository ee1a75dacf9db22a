//! A suggested time entry, the unit the user reviews and bills.

use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    // Kebab spellings, as a command line might type them, are read too; written
    // always as `as_str` says.
    #[serde(alias = "email-sent")]
    EmailSent,
    #[serde(alias = "email-received")]
    EmailReceived,
    Meeting,
    Call,
    Other,
}

impl Activity {
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::EmailSent => "email_sent",
            Activity::EmailReceived => "email_received",
            Activity::Meeting => "meeting",
            Activity::Call => "call",
            Activity::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Activity> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    Suggested,
    #[serde(alias = "needs-review")]
    NeedsReview,
    Approved,
    Rejected,
}

impl EntryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryStatus::Suggested => "suggested",
            EntryStatus::NeedsReview => "needs_review",
            EntryStatus::Approved => "approved",
            EntryStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<EntryStatus> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }

    /// Entries a person has decided on are never overwritten by a re-analysis.
    pub fn is_reviewed(self) -> bool {
        matches!(self, EntryStatus::Approved | EntryStatus::Rejected)
    }
}

/// A calendar date in the user's time zone, written YYYY-MM-DD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkDate(pub NaiveDate);

impl WorkDate {
    /// Parses `YYYY-MM-DD` (and nothing else).
    pub fn parse(s: &str) -> Result<WorkDate, String> {
        let s = s.trim();
        if s.len() != 10 {
            return Err(format!("`{s}` is not a date in YYYY-MM-DD form"));
        }
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(WorkDate)
            .map_err(|_| format!("`{s}` is not a date in YYYY-MM-DD form"))
    }

    /// Whether work can have been done on this date: from 1970 (before any mail) to
    /// 9999 (the last year Postgres, LEDES and spreadsheets write in four digits). A
    /// sender's Date header or calendar invite can say anything, such as year 0001.
    pub fn is_plausible(self) -> bool {
        (1970..=9999).contains(&chrono::Datelike::year(&self.0))
    }

    /// [`WorkDate::is_plausible`] as a reason when it is not.
    pub fn check_plausible(self) -> Result<WorkDate, String> {
        if self.is_plausible() {
            Ok(self)
        } else {
            Err(format!(
                "{self} is not a date work was done on (billable takes 1970-01-01 to 9999-12-31)"
            ))
        }
    }
}

impl TryFrom<String> for WorkDate {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        WorkDate::parse(&s)
    }
}

impl From<WorkDate> for String {
    fn from(d: WorkDate) -> String {
        d.to_string()
    }
}

impl std::fmt::Display for WorkDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

impl JsonSchema for WorkDate {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "WorkDate".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "description": "A date, YYYY-MM-DD"})
    }
    fn inline_schema() -> bool {
        true
    }
}

/// One suggested (or reviewed) entry. Field names are the public contract (SPEC §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TimeEntry {
    pub id: String,
    pub message_id: String,
    pub thread_id: Option<String>,
    pub client: Option<String>,
    pub matter: Option<String>,
    pub activity: Activity,
    pub description: String,
    pub work_date: WorkDate,
    /// Raw minutes before rounding, one decimal.
    pub duration_minutes: f64,
    pub billed_minutes: u32,
    pub hourly_rate: f64,
    /// What the entry charges: billed minutes at its rate, 0 when it is not billable.
    pub amount: f64,
    pub currency: String,
    /// false: recorded, never charged (no amount, left out of exports and of amounts).
    pub billable: bool,
    pub confidence: f64,
    pub status: EntryStatus,
    pub analyzer: String,
    pub created_at: DateTime<Utc>,
    /// The calendar UID for meetings, so a cancel or a later sequence finds the entry.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub event_uid: Option<String>,
    /// UTBMS task code (L-code) when the matter uses task codes.
    #[serde(default)]
    pub task_code: Option<String>,
    /// UTBMS activity code (A-code): A103 draft, A104 review, A106-A108 communicate,
    /// A109 attend.
    #[serde(default)]
    pub activity_code: Option<String>,
    /// When a person last approved, rejected, edited, merged or added it; a reviewed
    /// entry is never changed by a rescan or a reanalysis.
    #[serde(default)]
    pub reviewed_at: Option<DateTime<Utc>>,
    /// The export that sent it to a billing system, and when; exported entries are not
    /// exported again unless asked.
    #[serde(default)]
    pub export_batch: Option<String>,
    #[serde(default)]
    pub exported_at: Option<DateTime<Utc>>,
    /// The entry this one was merged into; merged entries are hidden from lists,
    /// totals and exports until the merge is split.
    #[serde(default)]
    pub merged_into: Option<String>,
}

impl TimeEntry {
    /// The entry with the amount it charges: none when it is not billable. Entries a
    /// scan stored before this rule carry their time's value; readers apply it.
    pub fn charged(mut self) -> Self {
        if !self.billable {
            self.amount = 0.0;
        }
        self
    }

    /// Whether a scan or a reanalysis must leave it as it is: a person has decided on
    /// it, changed it, merged it or exported it.
    pub fn is_locked(&self) -> bool {
        self.reviewed_at.is_some()
            || self.status.is_reviewed()
            || self.merged_into.is_some()
            || self.exported_at.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_dates_parse_only_the_iso_form() {
        assert_eq!(
            WorkDate::parse("2026-11-23").unwrap().to_string(),
            "2026-11-23"
        );
        for bad in [
            "2026-11-31",
            "23/11/2026",
            "2026-1-5",
            "",
            "2026-11-23T00:00:00",
        ] {
            assert!(WorkDate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn activities_and_statuses_use_snake_case() {
        assert_eq!(Activity::parse("email_sent"), Some(Activity::EmailSent));
        assert_eq!(
            EntryStatus::parse("needs_review"),
            Some(EntryStatus::NeedsReview)
        );
        assert_eq!(EntryStatus::parse("bogus"), None);
    }
}
