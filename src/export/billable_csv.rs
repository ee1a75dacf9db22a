//! `csv`: our own columns, one row per entry, for a spreadsheet or a billing system we
//! have no dedicated format for. Nothing is required, so nothing is refused.

use super::cell::{self, safe};
use super::{ExportError, cents, hours_one_decimal, money};
use crate::domain::TimeEntry;

pub const HEADER: [&str; 16] = [
    "id",
    "work_date",
    "client",
    "matter",
    "activity",
    "activity_code",
    "task_code",
    "description",
    "duration_minutes",
    "billed_minutes",
    "hours",
    "hourly_rate",
    "amount",
    "currency",
    "status",
    "message_id",
];

pub fn render(entries: &[TimeEntry]) -> Result<String, ExportError> {
    let mut w = cell::writer();
    cell::row(&mut w, HEADER)?;
    for e in entries {
        let text = |s: Option<&str>| safe(s.unwrap_or(""));
        cell::row(
            &mut w,
            [
                safe(&e.id),
                e.work_date.to_string(),
                text(e.client.as_deref()),
                text(e.matter.as_deref()),
                e.activity.as_str().to_owned(),
                text(e.activity_code.as_deref()),
                text(e.task_code.as_deref()),
                safe(&e.description),
                format!("{:.1}", e.duration_minutes),
                e.billed_minutes.to_string(),
                hours_one_decimal(e.billed_minutes),
                money(cents(e.hourly_rate)),
                money(cents(e.amount)),
                safe(&e.currency),
                e.status.as_str().to_owned(),
                safe(&e.message_id),
            ],
        )?;
    }
    cell::finish(w)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::entry;
    use super::*;

    #[test]
    fn the_header_comes_first_then_one_row_per_entry() {
        let out = render(&[entry("e1", 90, 350.0)]).unwrap();
        let lines: Vec<&str> = out.split("\r\n").collect();
        assert_eq!(lines[0], HEADER.join(","));
        assert_eq!(
            lines[1],
            "e1,2026-11-23,Acme,A-200,email_sent,A106,,Reply to counsel on the lease,\
             88.5,90,1.5,350.00,525.00,USD,approved,<e1@mail.example>"
        );
        assert_eq!(lines[2], "", "the file ends with a line break");
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn no_entries_is_the_header_alone() {
        assert_eq!(render(&[]).unwrap(), format!("{}\r\n", HEADER.join(",")));
    }

    #[test]
    fn mail_text_is_quoted_and_never_a_formula() {
        let mut e = entry("e1", 6, 300.0);
        e.description = "=HYPERLINK(\"http://evil\",\"x\")".to_owned();
        e.client = Some("@Acme, Inc.".to_owned());
        let out = render(&[e]).unwrap();
        let mut r = csv::Reader::from_reader(out.as_bytes());
        let row = r.records().next().unwrap().unwrap();
        assert_eq!(&row[7], "'=HYPERLINK(\"http://evil\",\"x\")");
        assert_eq!(&row[2], "'@Acme, Inc.");
        assert_eq!(row.len(), HEADER.len());
    }
}
