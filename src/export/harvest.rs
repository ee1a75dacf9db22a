//! `harvest_csv`: the eight columns of Harvest's time import, in its order (Date,
//! Client, Project, Task, Notes, Hours, First name, Last name). Harvest creates a
//! missing client, project or task but never a person, so the name must be one of the
//! account's people; the project is the matter (Harvest has no other place for it).

use super::cell::{self, safe};
use super::{ExportError, activity_words, first_and_last, matter_name};
use crate::domain::{Settings, TimeEntry};

pub const HEADER: [&str; 8] = [
    "Date",
    "Client",
    "Project",
    "Task",
    "Notes",
    "Hours",
    "First name",
    "Last name",
];

pub fn render(entries: &[TimeEntry], settings: &Settings) -> Result<String, ExportError> {
    let mut w = cell::writer();
    cell::row(&mut w, HEADER)?;
    for e in entries {
        let Some(client) = e.client.as_deref() else {
            return Err(ExportError::entry(
                e,
                "client",
                "Harvest needs a client; set the entry's client",
            ));
        };
        let Some(project) = matter_name(e, settings) else {
            return Err(ExportError::entry(
                e,
                "matter",
                "Harvest needs a project; set the entry's matter",
            ));
        };
        let Some((first, last)) = first_and_last(settings) else {
            return Err(ExportError::entry(
                e,
                "timekeeper_name",
                "Harvest needs the person's first and last name; set timekeeper_name \
                 (\"Surname, First\") with configure_time_tracking",
            ));
        };
        cell::row(
            &mut w,
            [
                e.work_date.to_string(),
                safe(client),
                safe(project),
                activity_words(e.activity).to_owned(),
                safe(&e.description),
                hours(e.billed_minutes),
                safe(first),
                safe(last),
            ],
        )?;
    }
    cell::finish(w)
}

/// Decimal hours to two places (Harvest keeps hundredths): 15 minutes is 0.25.
fn hours(minutes: u32) -> String {
    let hundredths = (u64::from(minutes) * 100 + 30) / 60;
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{entry, settings};
    use super::*;

    #[test]
    fn one_row_maps_matter_to_project_and_the_name_to_first_and_last() {
        let out = render(&[entry("e1", 15, 300.0)], &settings()).unwrap();
        assert_eq!(
            out,
            "Date,Client,Project,Task,Notes,Hours,First name,Last name\r\n\
             2026-11-23,Acme,General advice,Email sent,Reply to counsel on the lease,0.25,Jane,Doe\r\n"
        );
    }

    #[test]
    fn a_matter_not_in_the_settings_is_written_by_its_id() {
        let mut e = entry("e1", 60, 300.0);
        e.matter = Some("X-9".to_owned());
        let out = render(&[e], &settings()).unwrap();
        assert!(out.contains(",Acme,X-9,"), "{out}");
    }

    #[test]
    fn an_entry_without_a_matter_or_a_timekeeper_name_is_refused() {
        let mut e = entry("e1", 60, 300.0);
        e.matter = None;
        let err = render(&[e], &settings()).unwrap_err();
        assert_eq!(
            (err.entry.as_deref(), err.field.as_str()),
            (Some("e1"), "matter")
        );
        let mut s = settings();
        s.timekeeper_name = None;
        let err = render(&[entry("e2", 60, 300.0)], &s).unwrap_err();
        assert_eq!(err.field, "timekeeper_name");
        assert!(err.to_string().contains("configure_time_tracking"), "{err}");
    }

    #[test]
    fn notes_from_mail_never_become_formulas() {
        let mut e = entry("e1", 6, 300.0);
        e.description = "-1+1 =cmd|' /C calc'!A0".to_owned();
        let out = render(&[e], &settings()).unwrap();
        assert!(out.contains(",'-1+1 =cmd|' /C calc'!A0,"), "{out}");
    }

    #[test]
    fn hours_keep_hundredths() {
        assert_eq!(hours(6), "0.10");
        assert_eq!(hours(10), "0.17");
        assert_eq!(hours(450), "7.50");
    }
}
