//! `toggl_csv`: the columns Toggl Track's CSV import takes for time entries (Email,
//! Client, Project, Description, Billable, Start date, Start time, Duration, Tags;
//! order does not matter to it, headers must be English).
//!
//! Toggl needs a start time and we only know the day, so a day's entries are laid end
//! to end from 09:00:00. Giving each its own start also matters to the import itself:
//! it merges entries whose data and start are identical.

use std::collections::HashMap;

use super::cell::{self, safe};
use super::{ExportError, activity_words, matter_name};
use crate::domain::{Settings, TimeEntry, WorkDate};

pub const HEADER: [&str; 9] = [
    "Email",
    "Client",
    "Project",
    "Description",
    "Billable",
    "Start date",
    "Start time",
    "Duration",
    "Tags",
];

const DAY_STARTS_AT: u32 = 9 * 60;
const MINUTES_PER_DAY: u32 = 24 * 60;

pub fn render(entries: &[TimeEntry], settings: &Settings) -> Result<String, ExportError> {
    let mut w = cell::writer();
    cell::row(&mut w, HEADER)?;
    let mut next_start = first_starts(entries);
    for e in entries {
        let Some(email) = settings.my_addresses.first() else {
            return Err(ExportError::entry(
                e,
                "my_addresses",
                "Toggl files time under the user's email; add yours to my_addresses \
                 with configure_time_tracking",
            ));
        };
        let start = next_start.entry(e.work_date).or_insert(DAY_STARTS_AT);
        let at = (*start).min(MINUTES_PER_DAY - 1);
        *start += e.billed_minutes;
        cell::row(
            &mut w,
            [
                safe(email),
                safe(e.client.as_deref().unwrap_or("")),
                safe(matter_name(e, settings).unwrap_or("")),
                safe(&e.description),
                if e.billable { "Yes" } else { "No" }.to_owned(),
                e.work_date.to_string(),
                clock(at),
                clock(e.billed_minutes),
                activity_words(e.activity).to_owned(),
            ],
        )?;
    }
    cell::finish(w)
}

/// Where each day's first entry starts: 09:00, or earlier when the day holds more than
/// fifteen hours, so its entries still end the same day.
fn first_starts(entries: &[TimeEntry]) -> HashMap<WorkDate, u32> {
    let mut totals: HashMap<WorkDate, u32> = HashMap::new();
    for e in entries {
        *totals.entry(e.work_date).or_default() += e.billed_minutes;
    }
    totals
        .into_iter()
        .map(|(day, total)| {
            (
                day,
                DAY_STARTS_AT.min(MINUTES_PER_DAY.saturating_sub(total)),
            )
        })
        .collect()
}

/// Minutes as HH:MM:SS.
fn clock(minutes: u32) -> String {
    format!("{:02}:{:02}:00", minutes / 60, minutes % 60)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{entry, settings};
    use super::*;

    #[test]
    fn a_days_entries_follow_each_other_from_nine() {
        let out = render(
            &[entry("e1", 90, 300.0), entry("e2", 6, 300.0)],
            &settings(),
        )
        .unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], HEADER.join(","));
        assert_eq!(
            lines[1],
            "jane@firm.example,Acme,General advice,Reply to counsel on the lease,Yes,\
             2026-11-23,09:00:00,01:30:00,Email sent"
        );
        assert!(
            lines[2].contains(",2026-11-23,10:30:00,00:06:00,"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn a_long_day_starts_early_enough_to_end_that_day() {
        let out = render(&[entry("e1", 960, 300.0)], &settings()).unwrap();
        assert!(out.contains(",08:00:00,16:00:00,"), "{out}");
    }

    #[test]
    fn without_the_users_email_the_export_is_refused() {
        let mut s = settings();
        s.my_addresses.clear();
        let err = render(&[entry("e1", 6, 300.0)], &s).unwrap_err();
        assert_eq!(err.field, "my_addresses");
    }

    #[test]
    fn descriptions_from_mail_never_become_formulas() {
        let mut e = entry("e1", 6, 300.0);
        e.description = "=HYPERLINK(\"http://evil\",\"x\")".to_owned();
        let out = render(&[e], &settings()).unwrap();
        let mut r = csv::Reader::from_reader(out.as_bytes());
        let row = r.records().next().unwrap().unwrap();
        assert_eq!(&row[3], "'=HYPERLINK(\"http://evil\",\"x\")");
    }
}
