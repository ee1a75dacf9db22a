//! LEDES 1998B, the e-billing invoice most US legal departments take: an ASCII file of
//! `|`-separated fields, every line ending in `[]`. Line 1 is `LEDES1998B[]`, line 2
//! the 24 field names, then one line per fee, each repeating the invoice's fields.
//!
//! Choices the definition leaves to us, and why:
//! - Lines end `[]` then CRLF, the last one included: the format comes from DOS-era
//!   flat files, and e-billing portals read CRLF everywhere (some read nothing else).
//! - No entries is the two header lines alone, so "nothing left to bill" is a file a
//!   reader can check rather than an error.
//! - Units are hours with one decimal (0.1 = 6 minutes). An entry whose billed minutes
//!   are not whole tenths is refused, not rounded: the invoice must bill the time the
//!   user reviewed.
//! - LINE_ITEM_TOTAL is units × unit cost from the numbers as written, to the cent, and
//!   INVOICE_TOTAL their sum, both on whole cents, so the file's own arithmetic holds.
//! - Codes are the entries' own: a task code where the matter uses them, an activity
//!   code when the entry has one. Nothing is filled in by default.

use super::{ExportError, Invoice, cents, client_of, money};
use crate::domain::{ClientRule, Matter, Settings, TimeEntry, WorkDate};

pub const FIRST_LINE: &str = "LEDES1998B";

pub const HEADER: [&str; 24] = [
    "INVOICE_DATE",
    "INVOICE_NUMBER",
    "CLIENT_ID",
    "LAW_FIRM_MATTER_ID",
    "INVOICE_TOTAL",
    "BILLING_START_DATE",
    "BILLING_END_DATE",
    "INVOICE_DESCRIPTION",
    "LINE_ITEM_NUMBER",
    "EXP/FEE/INV_ADJ_TYPE",
    "LINE_ITEM_NUMBER_OF_UNITS",
    "LINE_ITEM_ADJUSTMENT_AMOUNT",
    "LINE_ITEM_TOTAL",
    "LINE_ITEM_DATE",
    "LINE_ITEM_TASK_CODE",
    "LINE_ITEM_EXPENSE_CODE",
    "LINE_ITEM_ACTIVITY_CODE",
    "TIMEKEEPER_ID",
    "LINE_ITEM_DESCRIPTION",
    "LAW_FIRM_ID",
    "LINE_ITEM_UNIT_COST",
    "TIMEKEEPER_NAME",
    "TIMEKEEPER_CLASSIFICATION",
    "CLIENT_MATTER_ID",
];

const END: &str = "[]\r\n";

/// One fee line, its numbers already in the units the file writes.
struct Fee<'a> {
    entry: &'a TimeEntry,
    matter: &'a Matter,
    tenths: u32,
    unit_cost: i64,
    total: i64,
}

pub fn render(
    entries: &[TimeEntry],
    settings: &Settings,
    invoice: &Invoice,
) -> Result<String, ExportError> {
    let mut out = String::with_capacity(256 + entries.len() * 256);
    out.push_str(FIRST_LINE);
    out.push_str(END);
    out.push_str(&HEADER.join("|"));
    out.push_str(END);
    let Some(first) = entries.first() else {
        return Ok(out);
    };
    let client = one_client(entries, settings)?;
    let head = InvoiceFields::new(first, client, settings, invoice)?;
    let fees = entries
        .iter()
        .map(|e| fee(e, client, head.currency))
        .collect::<Result<Vec<_>, _>>()?;
    let invoice_total = money(fees.iter().map(|f| f.total).sum());
    for (n, f) in fees.iter().enumerate() {
        let e = f.entry;
        let fields: [&str; 24] = [
            &head.date,
            &head.number,
            &head.client_id,
            &text(&f.matter.id),
            &invoice_total,
            &head.start,
            &head.end,
            &head.description,
            &(n + 1).to_string(),
            "F",
            &format!("{}.{}", f.tenths / 10, f.tenths % 10),
            "0.00",
            &money(f.total),
            &yyyymmdd(e.work_date),
            &f.matter
                .task_codes
                .then(|| e.task_code.as_deref().map(text))
                .flatten()
                .unwrap_or_default(),
            "",
            &e.activity_code.as_deref().map(text).unwrap_or_default(),
            &head.timekeeper_id,
            &text(&e.description),
            &head.law_firm_id,
            &money(f.unit_cost),
            &head.timekeeper_name,
            head.classification,
            &f.matter
                .client_matter_id
                .as_deref()
                .map(text)
                .unwrap_or_default(),
        ];
        out.push_str(&fields.join("|"));
        out.push_str(END);
    }
    Ok(out)
}

/// The fields every line repeats, checked once.
struct InvoiceFields<'a> {
    date: String,
    number: String,
    client_id: String,
    start: String,
    end: String,
    description: String,
    timekeeper_id: String,
    timekeeper_name: String,
    classification: &'static str,
    law_firm_id: String,
    currency: &'a str,
}

impl<'a> InvoiceFields<'a> {
    fn new(
        first: &'a TimeEntry,
        client: &ClientRule,
        settings: &Settings,
        invoice: &Invoice,
    ) -> Result<InvoiceFields<'a>, ExportError> {
        if invoice.billing_start > invoice.billing_end {
            return Err(ExportError::whole(
                "invoice.billing_start",
                format!(
                    "the billing period starts ({}) after it ends ({})",
                    invoice.billing_start, invoice.billing_end
                ),
            ));
        }
        // Every missing value is named at once: finding them one export at a time
        // takes as many runs as there are gaps.
        let mut missing = Missing::default();
        let number = missing.need(
            invoice.number.as_deref(),
            "invoice.number",
            "INVOICE_NUMBER",
            "give the export an invoice number",
        );
        let client_id = missing.need(
            client.ledes_client_id.as_deref(),
            "ledes_client_id",
            "CLIENT_ID",
            &format!("set ledes_client_id of client `{}`", client.name),
        );
        let timekeeper_id = missing.need(
            settings.timekeeper_id.as_deref(),
            "timekeeper_id",
            "TIMEKEEPER_ID",
            "set timekeeper_id",
        );
        let timekeeper_name = missing.need(
            settings.timekeeper_name.as_deref(),
            "timekeeper_name",
            "TIMEKEEPER_NAME (\"Surname, First\")",
            "set timekeeper_name",
        );
        let classification = settings.timekeeper_classification.map(|c| c.as_str());
        if classification.is_none() {
            missing.add(
                "timekeeper_classification",
                "TIMEKEEPER_CLASSIFICATION (PT, AS, OC, LA or OT)",
                "set timekeeper_classification",
            );
        }
        let law_firm_id = missing.need(
            settings.law_firm_id.as_deref(),
            "law_firm_id",
            "LAW_FIRM_ID",
            "set law_firm_id",
        );
        missing.check(first)?;
        Ok(InvoiceFields {
            date: yyyymmdd(invoice.date),
            number: number.unwrap_or_default(),
            client_id: client_id.unwrap_or_default(),
            start: yyyymmdd(invoice.billing_start),
            end: yyyymmdd(invoice.billing_end),
            description: invoice.description.as_deref().map(text).unwrap_or_default(),
            timekeeper_id: timekeeper_id.unwrap_or_default(),
            timekeeper_name: timekeeper_name.unwrap_or_default(),
            classification: classification.unwrap_or_default(),
            law_firm_id: law_firm_id.unwrap_or_default(),
            currency: &first.currency,
        })
    }
}

/// The invoice values LEDES needs and the settings lack: (field, LEDES name, fix).
#[derive(Default)]
struct Missing(Vec<(&'static str, &'static str, String)>);

impl Missing {
    /// `value` as LEDES text, or noted missing.
    fn need(
        &mut self,
        value: Option<&str>,
        field: &'static str,
        label: &'static str,
        fix: &str,
    ) -> Option<String> {
        let v = value.map(text).filter(|v| !v.is_empty());
        if v.is_none() {
            self.add(field, label, fix);
        }
        v
    }

    fn add(&mut self, field: &'static str, label: &'static str, fix: &str) {
        self.0.push((field, label, fix.to_owned()));
    }

    /// One error naming everything missing; its field is the first. A missing
    /// invoice number alone is the export's, not an entry's.
    fn check(self, first: &TimeEntry) -> Result<(), ExportError> {
        let Some(&(field, _, _)) = self.0.first() else {
            return Ok(());
        };
        let labels: Vec<&str> = self.0.iter().map(|m| m.1).collect();
        let (export_fixes, setting_fixes): (Vec<_>, Vec<_>) =
            self.0.iter().partition(|m| m.0.starts_with("invoice."));
        let mut fixes: Vec<String> = export_fixes.iter().map(|m| m.2.clone()).collect();
        if !setting_fixes.is_empty() {
            let settings: Vec<&str> = setting_fixes.iter().map(|m| m.2.as_str()).collect();
            fixes.push(format!(
                "{} with configure_time_tracking",
                settings.join(", ")
            ));
        }
        let message = format!("LEDES needs {}; {}", labels.join(", "), fixes.join("; "));
        Err(if setting_fixes.is_empty() {
            ExportError::whole(field, message)
        } else {
            ExportError::entry(first, field, message)
        })
    }
}

/// The one client of the entries: a LEDES file here is one invoice, and an invoice
/// goes to one client.
fn one_client<'s>(
    entries: &[TimeEntry],
    settings: &'s Settings,
) -> Result<&'s ClientRule, ExportError> {
    let mut names: Vec<&str> = Vec::new();
    for e in entries {
        let c = client_of(e, settings)?;
        if !names.contains(&c.name.as_str()) {
            names.push(&c.name);
        }
    }
    if let [_, _, ..] = names.as_slice() {
        return Err(ExportError::whole(
            "client",
            format!(
                "a LEDES file is one invoice to one client, and these entries are for {}; \
                 export one client at a time",
                names.join(", ")
            ),
        ));
    }
    client_of(&entries[0], settings)
}

fn fee<'a>(
    e: &'a TimeEntry,
    client: &'a ClientRule,
    currency: &str,
) -> Result<Fee<'a>, ExportError> {
    let Some(matter_id) = e.matter.as_deref() else {
        return Err(ExportError::entry(
            e,
            "matter",
            "LEDES needs LAW_FIRM_MATTER_ID; set the entry's matter",
        ));
    };
    let Some(matter) = client.matter(matter_id) else {
        return Err(ExportError::entry(
            e,
            "matter",
            format!(
                "its matter `{matter_id}` is not a matter of `{}`; add it to the client's \
                 matters with configure_time_tracking or change the entry's matter",
                client.name
            ),
        ));
    };
    if matter.task_codes && e.task_code.as_deref().is_none_or(|c| c.trim().is_empty()) {
        return Err(ExportError::entry(
            e,
            "task_code",
            format!(
                "matter `{}` bills with UTBMS task codes; set the entry's task_code",
                matter.id
            ),
        ));
    }
    if !e.billed_minutes.is_multiple_of(6) {
        return Err(ExportError::entry(
            e,
            "billed_minutes",
            format!(
                "LEDES bills tenths of an hour and {} minutes is not a whole tenth; set its \
                 billed minutes to a multiple of 6",
                e.billed_minutes
            ),
        ));
    }
    if !e.hourly_rate.is_finite() || e.hourly_rate < 0.0 {
        return Err(ExportError::entry(
            e,
            "hourly_rate",
            format!("its hourly rate {} is not a price", e.hourly_rate),
        ));
    }
    if !e.currency.eq_ignore_ascii_case(currency) {
        return Err(ExportError::entry(
            e,
            "currency",
            format!(
                "it is billed in {} and the invoice in {currency}; an invoice has one currency",
                e.currency
            ),
        ));
    }
    let tenths = e.billed_minutes / 6;
    let unit_cost = cents(e.hourly_rate);
    // Units × cost on the numbers as written, rounded half up to the cent.
    let total = (i64::from(tenths) * unit_cost + 5) / 10;
    Ok(Fee {
        entry: e,
        matter,
        tenths,
        unit_cost,
        total,
    })
}

/// Text that cannot break a line: `|` separates fields and `[]` ends a line, so both
/// go, and control characters and line breaks become single spaces.
fn text(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if matches!(c, '|' | '[' | ']') || c.is_control() {
                ' '
            } else {
                c
            }
        })
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn yyyymmdd(d: WorkDate) -> String {
    d.0.format("%Y%m%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{entry, invoice, settings};
    use super::*;

    fn fields(line: &str) -> Vec<&str> {
        line.strip_suffix("[]")
            .expect("line ends with []")
            .split('|')
            .collect()
    }

    #[test]
    fn the_file_starts_with_the_format_and_the_24_field_names() {
        let out = render(&[], &settings(), &invoice()).unwrap();
        assert_eq!(
            out,
            "LEDES1998B[]\r\nINVOICE_DATE|INVOICE_NUMBER|CLIENT_ID|LAW_FIRM_MATTER_ID|\
             INVOICE_TOTAL|BILLING_START_DATE|BILLING_END_DATE|INVOICE_DESCRIPTION|\
             LINE_ITEM_NUMBER|EXP/FEE/INV_ADJ_TYPE|LINE_ITEM_NUMBER_OF_UNITS|\
             LINE_ITEM_ADJUSTMENT_AMOUNT|LINE_ITEM_TOTAL|LINE_ITEM_DATE|LINE_ITEM_TASK_CODE|\
             LINE_ITEM_EXPENSE_CODE|LINE_ITEM_ACTIVITY_CODE|TIMEKEEPER_ID|\
             LINE_ITEM_DESCRIPTION|LAW_FIRM_ID|LINE_ITEM_UNIT_COST|TIMEKEEPER_NAME|\
             TIMEKEEPER_CLASSIFICATION|CLIENT_MATTER_ID[]\r\n"
        );
    }

    #[test]
    fn one_fee_line_carries_the_invoice_and_the_entry() {
        let out = render(&[entry("e1", 90, 350.0)], &settings(), &invoice()).unwrap();
        let lines: Vec<&str> = out.split("\r\n").collect();
        assert_eq!(lines.len(), 4, "two headers, one fee, the final line break");
        assert_eq!(
            fields(lines[2]),
            [
                "20261130",
                "INV-2026-11",
                "ACME-1",
                "A-200",
                "525.00",
                "20261101",
                "20261130",
                "Services, November 2026",
                "1",
                "F",
                "1.5",
                "0.00",
                "525.00",
                "20261123",
                "",
                "",
                "A106",
                "JD01",
                "Reply to counsel on the lease",
                "12-3456789",
                "350.00",
                "Doe, Jane",
                "PT",
                "",
            ]
        );
    }

    #[test]
    fn totals_are_computed_from_the_units_as_written() {
        // 0.3 h at 333.33 is 99.999: the line says 100.00, and the invoice the sum.
        let entries = [entry("e1", 18, 333.33), entry("e2", 6, 333.33)];
        let out = render(&entries, &settings(), &invoice()).unwrap();
        let lines: Vec<Vec<&str>> = out.lines().skip(2).map(fields).collect();
        assert_eq!((lines[0][12], lines[1][12]), ("100.00", "33.33"));
        assert!(lines.iter().all(|l| l[4] == "133.33"));
        assert_eq!((lines[0][8], lines[1][8]), ("1", "2"));
    }

    #[test]
    fn a_matter_with_task_codes_needs_one_and_others_write_none() {
        let mut e = entry("e1", 6, 300.0);
        e.matter = Some("A-100".to_owned());
        let err = render(&[e.clone()], &settings(), &invoice()).unwrap_err();
        assert_eq!(
            (err.entry.as_deref(), err.field.as_str()),
            (Some("e1"), "task_code")
        );
        e.task_code = Some("L120".to_owned());
        let out = render(&[e], &settings(), &invoice()).unwrap();
        let line = fields(out.lines().nth(2).unwrap()).join("|");
        assert!(line.contains("|L120||A106|"), "{line}");
        assert!(line.ends_with("|CM-9"), "{line}");
        // A task code on a matter that does not use them is not written.
        let mut other = entry("e2", 6, 300.0);
        other.task_code = Some("L120".to_owned());
        let out = render(&[other], &settings(), &invoice()).unwrap();
        assert!(!out.contains("L120"), "{out}");
    }

    #[test]
    fn missing_identity_settings_name_the_setting_to_fill() {
        type Clear = fn(&mut Settings);
        let cases: [(&str, Clear); 4] = [
            ("timekeeper_id", |s| s.timekeeper_id = None),
            ("timekeeper_name", |s| s.timekeeper_name = None),
            ("timekeeper_classification", |s| {
                s.timekeeper_classification = None
            }),
            ("law_firm_id", |s| s.law_firm_id = None),
        ];
        for (field, clear) in cases {
            let mut s = settings();
            clear(&mut s);
            let err = render(&[entry("0190abc", 6, 300.0)], &s, &invoice()).unwrap_err();
            assert_eq!(err.field, field);
            assert_eq!(err.entry.as_deref(), Some("0190abc"));
            assert!(
                err.to_string()
                    .starts_with("cannot export entry 0190abc: LEDES needs")
            );
            assert!(
                err.to_string()
                    .contains(&format!("set {field} with configure_time_tracking")),
                "{err}"
            );
        }
        let mut s = settings();
        s.clients[0].ledes_client_id = None;
        let err = render(&[entry("e1", 6, 300.0)], &s, &invoice()).unwrap_err();
        assert_eq!(err.field, "ledes_client_id");
        let mut inv = invoice();
        inv.number = None;
        let err = render(&[entry("e1", 6, 300.0)], &settings(), &inv).unwrap_err();
        assert_eq!(
            (err.entry.as_deref(), err.field.as_str()),
            (None, "invoice.number")
        );
    }

    #[test]
    fn every_missing_setting_is_named_in_one_refusal() {
        let mut s = settings();
        s.timekeeper_id = None;
        s.law_firm_id = None;
        s.timekeeper_classification = None;
        s.clients[0].ledes_client_id = None;
        let mut inv = invoice();
        inv.number = None;
        let err = render(&[entry("e1", 6, 300.0)], &s, &inv).unwrap_err();
        assert_eq!(err.field, "invoice.number");
        for named in [
            "INVOICE_NUMBER",
            "CLIENT_ID",
            "TIMEKEEPER_ID",
            "TIMEKEEPER_CLASSIFICATION",
            "LAW_FIRM_ID",
            "give the export an invoice number",
            "set ledes_client_id of client `Acme`, set timekeeper_id, set \
             timekeeper_classification, set law_firm_id with configure_time_tracking",
        ] {
            assert!(err.message.contains(named), "{named}: {err}");
        }
    }

    #[test]
    fn entries_of_several_clients_are_refused_naming_them() {
        let mut g = entry("e2", 6, 300.0);
        g.client = Some("Globex".to_owned());
        let err = render(&[entry("e1", 6, 300.0), g], &settings(), &invoice()).unwrap_err();
        assert_eq!((err.entry.as_deref(), err.field.as_str()), (None, "client"));
        assert!(err.message.contains("Acme, Globex"), "{err}");
        assert!(err.message.contains("one client at a time"), "{err}");
    }

    #[test]
    fn an_entry_without_a_known_matter_or_whole_tenths_is_refused() {
        let mut e = entry("e1", 6, 300.0);
        e.matter = None;
        assert_eq!(
            render(&[e.clone()], &settings(), &invoice())
                .unwrap_err()
                .field,
            "matter"
        );
        e.matter = Some("Z-1".to_owned());
        assert_eq!(
            render(&[e], &settings(), &invoice()).unwrap_err().field,
            "matter"
        );
        let err = render(&[entry("e1", 15, 300.0)], &settings(), &invoice()).unwrap_err();
        assert_eq!(err.field, "billed_minutes");
    }

    #[test]
    fn descriptions_cannot_break_a_line() {
        let mut e = entry("e1", 6, 300.0);
        e.description = "Call | re [draft]\r\nnext  line\u{0}end".to_owned();
        let out = render(&[e], &settings(), &invoice()).unwrap();
        let line = out.lines().nth(2).unwrap();
        assert_eq!(fields(line).len(), 24);
        assert_eq!(fields(line)[18], "Call re draft next line end");
        assert_eq!(out.lines().count(), 3);
    }
}
