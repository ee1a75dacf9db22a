//! Exports: reviewed time entries as the files billing systems import. Pure: the
//! caller picks the entries and writes the file; nothing here reads a store or a disk.
//!
//! Each format has its own module; what they share (numbers written one way, the
//! refusal type, a spreadsheet-safe cell) is here and in `cell.rs`.

mod billable_csv;
mod cell;
mod harvest;
mod ledes;
mod toggl;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::{Activity, ClientRule, Settings, TimeEntry, WorkDate};

/// A file format a billing system imports: `csv` (our own columns, one row per
/// entry), `ledes1998b` (the pipe-delimited e-billing invoice), `harvest_csv`
/// (Harvest's time import), `toggl_csv` (Toggl Track's CSV import). The variants carry
/// no doc comments: they would make the schema a `oneOf`, which strict mode refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Csv,
    Ledes1998b,
    // The CLI's old kebab spelling is read too, so a copied command still works.
    #[serde(alias = "harvest-csv")]
    HarvestCsv,
    #[serde(alias = "toggl-csv")]
    TogglCsv,
}

impl Format {
    /// The one spelling, as in JSON and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ledes1998b => "ledes1998b",
            Format::HarvestCsv => "harvest_csv",
            Format::TogglCsv => "toggl_csv",
        }
    }

    /// The file extension, without the dot: e-billing portals take LEDES as .txt.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Ledes1998b => "txt",
            Format::Csv | Format::HarvestCsv | Format::TogglCsv => "csv",
        }
    }
}

/// The invoice an export belongs to (LEDES needs it; the CSVs ignore what they have no
/// column for).
#[derive(Debug, Clone, PartialEq)]
pub struct Invoice {
    pub number: Option<String>,
    pub date: WorkDate,
    pub description: Option<String>,
    pub billing_start: WorkDate,
    pub billing_end: WorkDate,
}

/// Why an export was refused: which entry (its id, when one entry is at fault) and
/// which field, and what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ExportError {
    pub entry: Option<String>,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.entry {
            Some(id) => write!(f, "cannot export entry {id}: {}", self.message),
            None => write!(f, "cannot export: {}", self.message),
        }
    }
}

impl ExportError {
    fn entry(e: &TimeEntry, field: &str, message: impl Into<String>) -> ExportError {
        ExportError {
            entry: Some(e.id.clone()),
            field: field.to_owned(),
            message: message.into(),
        }
    }

    fn whole(field: &str, message: impl Into<String>) -> ExportError {
        ExportError {
            entry: None,
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// `entries` as one file of `format`. Refused whole, naming the entry and the field,
/// when the format needs something the entries or settings do not have: a billing
/// system that half-imports a file is worse than one that never sees it.
pub fn render(
    format: Format,
    entries: &[TimeEntry],
    settings: &Settings,
    invoice: &Invoice,
) -> Result<String, ExportError> {
    match format {
        Format::Csv => billable_csv::render(entries),
        Format::Ledes1998b => ledes::render(entries, settings, invoice),
        Format::HarvestCsv => harvest::render(entries, settings),
        Format::TogglCsv => toggl::render(entries, settings),
    }
}

/// The entry's client, as configured.
fn client_of<'s>(e: &TimeEntry, settings: &'s Settings) -> Result<&'s ClientRule, ExportError> {
    let Some(name) = e.client.as_deref() else {
        return Err(ExportError::entry(
            e,
            "client",
            "it has no client; set its client before exporting",
        ));
    };
    settings.client_named(name).ok_or_else(|| {
        ExportError::entry(
            e,
            "client",
            format!(
                "its client `{name}` is not in the settings; add it with configure_time_tracking"
            ),
        )
    })
}

/// The name billing systems show for the entry's matter: the configured matter's name,
/// else the id the entry carries.
fn matter_name<'a>(e: &'a TimeEntry, settings: &'a Settings) -> Option<&'a str> {
    let id = e.matter.as_deref()?;
    let configured = e
        .client
        .as_deref()
        .and_then(|c| settings.client_named(c))
        .and_then(|c| c.matter(id));
    Some(configured.map_or(id, |m| m.name.as_str()))
}

/// The activity as a person says it (Harvest's task, Toggl's tag).
fn activity_words(a: Activity) -> &'static str {
    match a {
        Activity::EmailSent => "Email sent",
        Activity::EmailReceived => "Email received",
        Activity::Meeting => "Meeting",
        Activity::Call => "Call",
        Activity::Other => "Other",
    }
}

/// Money in whole cents; amounts are computed on cents so totals add up exactly.
fn cents(amount: f64) -> i64 {
    (amount * 100.0).round() as i64
}

/// Cents as a plain number: `.` decimal point, two decimals, no separators.
fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

/// Minutes as hours with one decimal, halves rounded up (0.1 h = 6 minutes).
fn hours_one_decimal(minutes: u32) -> String {
    let tenths = (u64::from(minutes) * 10 + 30) / 60;
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// The user's name as (first, last), from the "Surname, First" the settings hold.
fn first_and_last(settings: &Settings) -> Option<(&str, &str)> {
    let (last, first) = settings.timekeeper_name.as_deref()?.split_once(',')?;
    Some((first.trim(), last.trim()))
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Settings and entries the format tests share.

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::domain::EntryStatus;

    pub fn settings() -> Settings {
        let patch = serde_json::from_value(serde_json::json!({
            "my_addresses": ["jane@firm.example"],
            "default_hourly_rate": 300.0,
            "timekeeper_id": "JD01",
            "timekeeper_name": "Doe, Jane",
            "timekeeper_classification": "PT",
            "law_firm_id": "12-3456789",
            "clients": [
                {"name": "Acme", "domains": ["acme.example"], "ledes_client_id": "ACME-1",
                 "matters": [
                    {"id": "A-100", "name": "Lease dispute", "task_codes": true,
                     "client_matter_id": "CM-9"},
                    {"id": "A-200", "name": "General advice"}
                 ]},
                {"name": "Globex", "domains": ["globex.example"]}
            ]
        }))
        .expect("patch");
        Settings::default().apply(patch).expect("valid settings")
    }

    pub fn entry(id: &str, minutes: u32, rate: f64) -> TimeEntry {
        TimeEntry {
            id: id.to_owned(),
            message_id: format!("<{id}@mail.example>"),
            thread_id: None,
            client: Some("Acme".to_owned()),
            matter: Some("A-200".to_owned()),
            activity: Activity::EmailSent,
            description: "Reply to counsel on the lease".to_owned(),
            work_date: WorkDate::parse("2026-11-23").expect("date"),
            duration_minutes: f64::from(minutes) - 1.5,
            billed_minutes: minutes,
            hourly_rate: rate,
            amount: f64::from(minutes) / 60.0 * rate,
            currency: "USD".to_owned(),
            billable: true,
            confidence: 0.9,
            status: EntryStatus::Approved,
            analyzer: "rules".to_owned(),
            created_at: Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap(),
            event_uid: None,
            task_code: None,
            activity_code: Some("A106".to_owned()),
            reviewed_at: None,
            export_batch: None,
            exported_at: None,
            merged_into: None,
        }
    }

    pub fn invoice() -> Invoice {
        Invoice {
            number: Some("INV-2026-11".to_owned()),
            date: WorkDate::parse("2026-11-30").expect("date"),
            description: Some("Services, November 2026".to_owned()),
            billing_start: WorkDate::parse("2026-11-01").expect("date"),
            billing_end: WorkDate::parse("2026-11-30").expect("date"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_have_one_spelling_and_an_extension() {
        use Format::*;
        for f in [Csv, Ledes1998b, HarvestCsv, TogglCsv] {
            let json = serde_json::to_value(f).expect("serialize");
            assert_eq!(json, serde_json::json!(f.as_str()));
            assert_eq!(serde_json::from_value::<Format>(json).expect("read"), f);
        }
        assert_eq!(Ledes1998b.extension(), "txt");
        assert_eq!(TogglCsv.extension(), "csv");
    }

    #[test]
    fn numbers_are_plain() {
        assert_eq!(money(12_345_678), "123456.78");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(-150), "-1.50");
        assert_eq!(hours_one_decimal(6), "0.1");
        assert_eq!(hours_one_decimal(90), "1.5");
        // 15 minutes is 0.25 h: a half rounds up.
        assert_eq!(hours_one_decimal(15), "0.3");
        assert_eq!(cents(0.1 + 0.2), 30);
    }

    #[test]
    fn errors_name_the_entry_when_one_is_at_fault() {
        let e = fixtures::entry("0190abc", 6, 300.0);
        let err = ExportError::entry(&e, "task_code", "it needs a task code");
        assert_eq!(
            err.to_string(),
            "cannot export entry 0190abc: it needs a task code"
        );
        assert_eq!(
            ExportError::whole("client", "one client at a time").to_string(),
            "cannot export: one client at a time"
        );
    }
}
