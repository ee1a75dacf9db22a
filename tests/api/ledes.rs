//! A LEDES 1998B reader and validator written from the format's definition, not from
//! billable's writer: whatever `billable::export` writes must pass it, and the
//! end-to-end tests of the export tool call `parse` on what the tool returns.
//!
//! What it checks: line 1 is `LEDES1998B[]`; line 2 the 24 field names in order; every
//! line ends with `[]` (then CRLF or LF) and has 24 `|`-separated fields; dates are
//! valid YYYYMMDD; numbers are plain (digits, one `.`, a leading `-`); units have at
//! most one decimal; LINE_ITEM_TOTAL = units × unit cost + adjustment to the cent;
//! within an invoice INVOICE_TOTAL is the same on every line and is the sum of its
//! LINE_ITEM_TOTALs, and line numbers are distinct; the fields the definition requires
//! are non-empty (the timekeeper's for fees, the expense code for expenses).

use std::collections::HashMap;

use chrono::NaiveDate;

pub const FIELDS: [&str; 24] = [
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

const REQUIRED: [&str; 12] = [
    "INVOICE_DATE",
    "INVOICE_NUMBER",
    "CLIENT_ID",
    "LAW_FIRM_MATTER_ID",
    "INVOICE_TOTAL",
    "BILLING_START_DATE",
    "BILLING_END_DATE",
    "LINE_ITEM_NUMBER",
    "EXP/FEE/INV_ADJ_TYPE",
    "LINE_ITEM_TOTAL",
    "LINE_ITEM_DATE",
    "LAW_FIRM_ID",
];
/// Required on fee and expense lines; an invoice-level adjustment (IF, IE) has none.
const REQUIRED_ON_ITEMS: [&str; 3] = [
    "LINE_ITEM_NUMBER_OF_UNITS",
    "LINE_ITEM_UNIT_COST",
    "LINE_ITEM_DESCRIPTION",
];
const REQUIRED_ON_FEES: [&str; 3] = [
    "TIMEKEEPER_ID",
    "TIMEKEEPER_NAME",
    "TIMEKEEPER_CLASSIFICATION",
];
const DATES: [&str; 4] = [
    "INVOICE_DATE",
    "BILLING_START_DATE",
    "BILLING_END_DATE",
    "LINE_ITEM_DATE",
];
const NUMBERS: [&str; 5] = [
    "INVOICE_TOTAL",
    "LINE_ITEM_NUMBER_OF_UNITS",
    "LINE_ITEM_ADJUSTMENT_AMOUNT",
    "LINE_ITEM_TOTAL",
    "LINE_ITEM_UNIT_COST",
];

/// A valid file: its line items in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Ledes {
    pub items: Vec<Item>,
}

/// One line item, its 24 fields as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub fields: Vec<String>,
}

impl Item {
    /// The field of that name ("" when empty); panics on a name not in [`FIELDS`].
    pub fn get(&self, name: &str) -> &str {
        let i = FIELDS
            .iter()
            .position(|f| *f == name)
            .unwrap_or_else(|| panic!("{name} is not a LEDES 1998B field"));
        &self.fields[i]
    }

    fn number(&self, name: &str) -> f64 {
        self.get(name).parse().unwrap_or(0.0)
    }
}

/// Reads and validates a LEDES 1998B file; the error names the line and the field.
pub fn parse(text: &str) -> Result<Ledes, String> {
    let body = text
        .strip_suffix('\n')
        .ok_or("the file does not end with a line break")?;
    let mut lines = body.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().unwrap_or_default();
    if first != "LEDES1998B[]" {
        return Err(format!("line 1 is `{first}`, not `LEDES1998B[]`"));
    }
    let header = fields(
        2,
        lines.next().ok_or("line 2, the field names, is missing")?,
    )?;
    if header != FIELDS {
        return Err(format!(
            "line 2 names the fields {header:?}, not the 24 of LEDES 1998B"
        ));
    }
    let mut items = Vec::new();
    for (i, line) in lines.enumerate() {
        let n = i + 3;
        let item = Item {
            fields: fields(n, line)?.into_iter().map(str::to_owned).collect(),
        };
        check_item(n, &item)?;
        items.push(item);
    }
    check_invoices(&items)?;
    Ok(Ledes { items })
}

/// The 24 fields of line `n`.
fn fields(n: usize, line: &str) -> Result<Vec<&str>, String> {
    let inner = line
        .strip_suffix("[]")
        .ok_or_else(|| format!("line {n} does not end with []: `{line}`"))?;
    let fields: Vec<&str> = inner.split('|').collect();
    if fields.len() != FIELDS.len() {
        return Err(format!("line {n} has {} fields, not 24", fields.len()));
    }
    if let Some(f) = fields.iter().find(|f| f.contains(['[', ']'])) {
        return Err(format!("line {n} has a [ or ] inside a field: `{f}`"));
    }
    Ok(fields)
}

fn check_item(n: usize, item: &Item) -> Result<(), String> {
    let kind = item.get("EXP/FEE/INV_ADJ_TYPE");
    if !matches!(kind, "F" | "E" | "IF" | "IE") {
        return Err(format!(
            "line {n}: EXP/FEE/INV_ADJ_TYPE is `{kind}`, not F, E, IF or IE"
        ));
    }
    let adjustment = kind.starts_with('I');
    let mut required: Vec<&str> = REQUIRED.to_vec();
    if !adjustment {
        required.extend(REQUIRED_ON_ITEMS);
    }
    match kind {
        "F" => required.extend(REQUIRED_ON_FEES),
        "E" => required.push("LINE_ITEM_EXPENSE_CODE"),
        _ => {}
    }
    if let Some(f) = required.iter().find(|f| item.get(f).trim().is_empty()) {
        return Err(format!("line {n}: {f} is required and empty"));
    }
    for f in DATES {
        let v = item.get(f);
        let ok = v.len() == 8
            && v.bytes().all(|b| b.is_ascii_digit())
            && NaiveDate::parse_from_str(v, "%Y%m%d").is_ok();
        if !ok {
            return Err(format!("line {n}: {f} `{v}` is not a date YYYYMMDD"));
        }
    }
    for f in NUMBERS {
        let v = item.get(f);
        if !v.is_empty() && !plain_number(v) {
            return Err(format!("line {n}: {f} `{v}` is not a plain number"));
        }
    }
    let units = item.get("LINE_ITEM_NUMBER_OF_UNITS");
    if units.split_once('.').is_some_and(|(_, d)| d.len() > 1) {
        return Err(format!(
            "line {n}: LINE_ITEM_NUMBER_OF_UNITS `{units}` has more than one decimal"
        ));
    }
    if item.get("LINE_ITEM_NUMBER").parse::<u64>().is_err() {
        return Err(format!(
            "line {n}: LINE_ITEM_NUMBER `{}` is not a whole number",
            item.get("LINE_ITEM_NUMBER")
        ));
    }
    if kind == "F" {
        let class = item.get("TIMEKEEPER_CLASSIFICATION");
        if !matches!(class, "PT" | "AS" | "OC" | "LA" | "OT") {
            return Err(format!(
                "line {n}: TIMEKEEPER_CLASSIFICATION `{class}` is not PT, AS, OC, LA or OT"
            ));
        }
    }
    if !adjustment {
        let expected = item.number("LINE_ITEM_NUMBER_OF_UNITS")
            * item.number("LINE_ITEM_UNIT_COST")
            + item.number("LINE_ITEM_ADJUSTMENT_AMOUNT");
        if cents(expected) != cents(item.number("LINE_ITEM_TOTAL")) {
            return Err(format!(
                "line {n}: LINE_ITEM_TOTAL {} is not units × unit cost + adjustment ({expected:.2})",
                item.get("LINE_ITEM_TOTAL")
            ));
        }
    }
    Ok(())
}

/// Per invoice: one INVOICE_TOTAL on every line, equal to the sum of its lines, and
/// distinct line numbers.
fn check_invoices(items: &[Item]) -> Result<(), String> {
    let mut invoices: HashMap<&str, Vec<&Item>> = HashMap::new();
    for item in items {
        invoices
            .entry(item.get("INVOICE_NUMBER"))
            .or_default()
            .push(item);
    }
    for (number, lines) in invoices {
        let total = lines[0].get("INVOICE_TOTAL");
        if let Some(other) = lines
            .iter()
            .find(|l| cents(l.number("INVOICE_TOTAL")) != cents(lines[0].number("INVOICE_TOTAL")))
        {
            return Err(format!(
                "invoice {number}: INVOICE_TOTAL is {total} on one line and {} on another",
                other.get("INVOICE_TOTAL")
            ));
        }
        let sum: i64 = lines
            .iter()
            .map(|l| cents(l.number("LINE_ITEM_TOTAL")))
            .sum();
        if sum != cents(lines[0].number("INVOICE_TOTAL")) {
            return Err(format!(
                "invoice {number}: INVOICE_TOTAL {total} is not the sum of its lines ({}.{:02})",
                sum / 100,
                sum % 100
            ));
        }
        let mut numbers: Vec<&str> = lines.iter().map(|l| l.get("LINE_ITEM_NUMBER")).collect();
        numbers.sort_unstable();
        if let Some(w) = numbers.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!(
                "invoice {number}: LINE_ITEM_NUMBER {} is used twice",
                w[0]
            ));
        }
    }
    Ok(())
}

fn plain_number(v: &str) -> bool {
    let digits = v.strip_prefix('-').unwrap_or(v);
    let mut parts = digits.splitn(2, '.');
    let whole = parts.next().unwrap_or_default();
    let frac = parts.next();
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

fn cents(v: f64) -> i64 {
    (v * 100.0).round() as i64
}

#[cfg(test)]
mod tests {
    use billable::domain::{Activity, EntryStatus, Settings, TimeEntry, WorkDate};
    use billable::export::{Format, Invoice, render};
    use chrono::{TimeZone, Utc};

    use super::parse;

    fn settings() -> Settings {
        let patch = serde_json::from_value(serde_json::json!({
            "timekeeper_id": "JD01",
            "timekeeper_name": "Doe, Jane",
            "timekeeper_classification": "AS",
            "law_firm_id": "12-3456789",
            "clients": [{"name": "Acme", "ledes_client_id": "ACME-1", "matters": [
                {"id": "A-100", "name": "Lease dispute", "task_codes": true,
                 "client_matter_id": "CM-9"},
                {"id": "A-200", "name": "General advice"}
            ]}]
        }))
        .expect("patch");
        Settings::default().apply(patch).expect("valid settings")
    }

    fn entry(id: &str, matter: &str, minutes: u32, rate: f64, description: &str) -> TimeEntry {
        TimeEntry {
            id: id.to_owned(),
            message_id: format!("<{id}@acme.example>"),
            thread_id: None,
            client: Some("Acme".to_owned()),
            matter: Some(matter.to_owned()),
            activity: Activity::EmailReceived,
            description: description.to_owned(),
            work_date: WorkDate::parse("2026-11-23").expect("date"),
            duration_minutes: f64::from(minutes),
            billed_minutes: minutes,
            hourly_rate: rate,
            amount: f64::from(minutes) / 60.0 * rate,
            currency: "USD".to_owned(),
            billable: true,
            confidence: 0.9,
            status: EntryStatus::Approved,
            analyzer: "rules".to_owned(),
            created_at: Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap(),
            event_uid: None,
            task_code: (matter == "A-100").then(|| "L120".to_owned()),
            activity_code: Some("A104".to_owned()),
            reviewed_at: None,
            export_batch: None,
            exported_at: None,
            merged_into: None,
        }
    }

    fn invoice() -> Invoice {
        Invoice {
            number: Some("INV-7".to_owned()),
            date: WorkDate::parse("2026-11-30").expect("date"),
            description: None,
            billing_start: WorkDate::parse("2026-11-01").expect("date"),
            billing_end: WorkDate::parse("2026-11-30").expect("date"),
        }
    }

    /// A valid file of three fees, from billable's own writer.
    fn written() -> String {
        let entries = [
            entry(
                "e1",
                "A-100",
                18,
                333.33,
                "Review | lease [draft]\nand reply",
            ),
            entry("e2", "A-200", 6, 425.0, "=HYPERLINK(\"http://evil\",\"x\")"),
            entry("e3", "A-200", 150, 199.99, "Call with counsel"),
        ];
        render(Format::Ledes1998b, &entries, &settings(), &invoice()).expect("renders")
    }

    /// `written()` with its first fee line changed by `edit`.
    fn broken(edit: impl Fn(&str) -> String) -> String {
        let text = written();
        let mut lines: Vec<String> = text.split("\r\n").map(str::to_owned).collect();
        lines[2] = edit(&lines[2]);
        lines.join("\r\n")
    }

    #[test]
    fn what_billable_writes_for_a_few_entries_is_valid_ledes() {
        let file = parse(&written()).expect("valid");
        assert_eq!(file.items.len(), 3);
        let totals: Vec<&str> = file
            .items
            .iter()
            .map(|i| i.get("LINE_ITEM_TOTAL"))
            .collect();
        assert_eq!(totals, ["100.00", "42.50", "499.98"]);
        assert!(
            file.items
                .iter()
                .all(|i| i.get("INVOICE_TOTAL") == "642.48")
        );
        assert_eq!(file.items[0].get("LINE_ITEM_TASK_CODE"), "L120");
        assert_eq!(
            file.items[0].get("LINE_ITEM_DESCRIPTION"),
            "Review lease draft and reply"
        );
        assert_eq!(file.items[1].get("LINE_ITEM_TASK_CODE"), "");
    }

    #[test]
    fn an_export_with_nothing_left_to_bill_is_the_two_header_lines() {
        let text = render(Format::Ledes1998b, &[], &settings(), &invoice()).expect("renders");
        assert_eq!(parse(&text).expect("valid").items, vec![]);
    }

    #[test]
    fn a_line_without_its_end_marker_is_rejected() {
        let err = parse(&broken(|l| l.trim_end_matches("[]").to_owned())).unwrap_err();
        assert!(err.contains("line 3 does not end with []"), "{err}");
    }

    #[test]
    fn a_line_total_that_is_not_units_times_cost_is_rejected() {
        let err = parse(&broken(|l| l.replacen("|100.00|", "|100.01|", 1))).unwrap_err();
        assert!(err.contains("LINE_ITEM_TOTAL"), "{err}");
    }

    #[test]
    fn an_invoice_total_that_differs_or_is_not_the_sum_is_rejected() {
        let err = parse(&broken(|l| l.replacen("|642.48|", "|642.49|", 1))).unwrap_err();
        assert!(err.contains("on one line and"), "{err}");
        let all = written().replace("|642.48|", "|700.00|");
        let err = parse(&all).unwrap_err();
        assert!(err.contains("not the sum"), "{err}");
    }

    #[test]
    fn a_line_of_23_fields_is_rejected() {
        let err = parse(&broken(|l| l.replacen("|F|", "|", 1))).unwrap_err();
        assert!(err.contains("23 fields"), "{err}");
    }

    #[test]
    fn a_bad_date_is_rejected() {
        for bad in ["20261131", "2026113", "2026-11-23"] {
            let err = parse(&broken(|l| l.replacen("20261123", bad, 1))).unwrap_err();
            assert!(err.contains("LINE_ITEM_DATE"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_missing_timekeeper_or_units_of_two_decimals_are_rejected() {
        let err = parse(&broken(|l| l.replacen("|JD01|", "||", 1))).unwrap_err();
        assert!(err.contains("TIMEKEEPER_ID is required"), "{err}");
        let err = parse(&broken(|l| l.replacen("|0.3|", "|0.30|", 1))).unwrap_err();
        assert!(err.contains("more than one decimal"), "{err}");
        let err = parse(&broken(|l| l.replacen("|100.00|", "|$100.00|", 1))).unwrap_err();
        assert!(err.contains("plain number"), "{err}");
    }

    #[test]
    fn a_wrong_first_line_or_field_names_are_rejected() {
        let err = parse(&written().replacen("LEDES1998B[]", "LEDES98BI[]", 1)).unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        let err = parse(&written().replacen("|LAW_FIRM_ID|", "|FIRM_ID|", 1)).unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }
}
