//! Human output: each tool's typed `Output` as plain-text tables.

use crate::domain::{Settings, Summary, SummaryGroup, TimeEntry};
use crate::migrate::Report;
use crate::tools::{analyze, list, merge, scan, update};

use super::ids;

fn or_dash(v: Option<&str>) -> String {
    v.map_or_else(|| "-".to_owned(), str::to_owned)
}

/// An amount to the cent, thousands separated: `7,640,280.00`.
pub fn money(v: f64) -> String {
    let cents = format!("{:.2}", v.abs());
    let (whole, frac) = cents.split_once('.').unwrap_or((&cents, "00"));
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if v < 0.0 && cents != "0.00" { "-" } else { "" };
    format!("{sign}{grouped}.{frac}")
}

/// Hours to one decimal, as billing uses; every table prints hours this way.
pub fn hours(minutes: u64) -> String {
    format!("{:.1}", minutes as f64 / 60.0)
}

/// `1 new entry`, `2 new entries`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        format!(
            "{}…",
            text.chars().take(max.saturating_sub(1)).collect::<String>()
        )
    }
}

/// A plain text table; numeric-looking columns are right-aligned.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let numeric: Vec<bool> = (0..headers.len())
        .map(|i| {
            !rows.is_empty()
                && rows
                    .iter()
                    .all(|r| r[i] == NO_CHARGE || r[i].replace(',', "").parse::<f64>().is_ok())
        })
        .collect();
    let line = |cells: Vec<&str>| -> String {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if numeric[i] {
                    format!("{c:>w$}", w = widths[i])
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        format!("{}\n", parts.join("  ").trim_end())
    };
    let mut out = line(headers.to_vec());
    let rules: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(rules.iter().map(String::as_str).collect()));
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

const ENTRY_HEADERS: [&str; 8] = [
    "id",
    "date",
    "client",
    "activity",
    "min",
    "amount",
    "status",
    "description",
];

fn entry_rows(entries: &[TimeEntry]) -> Vec<Vec<String>> {
    entry_rows_within(entries, Some(DESCRIPTION_WIDTH))
}

/// Descriptions are cut here unless the table is fitted to a width or printed wide.
const DESCRIPTION_WIDTH: usize = 60;

/// The entries' rows with descriptions cut to `description` characters (None: whole).
fn entry_rows_within(entries: &[TimeEntry], description: Option<usize>) -> Vec<Vec<String>> {
    entries
        .iter()
        .map(|e| {
            vec![
                ids::short(&e.id).to_owned(),
                e.work_date.to_string(),
                or_dash(e.client.as_deref()),
                e.activity.as_str().to_owned(),
                e.billed_minutes.to_string(),
                // Not billable: recorded, never charged (`n/c`, no charge).
                if e.billable {
                    money(e.amount)
                } else {
                    NO_CHARGE.to_owned()
                },
                e.status.as_str().to_owned(),
                match description {
                    Some(max) => clip(&e.description, max),
                    None => e.description.clone(),
                },
            ]
        })
        .collect()
}

/// What the amount column shows for an entry that is not billable.
const NO_CHARGE: &str = "n/c";

/// Descriptions are never cut shorter than this to fit a terminal.
const MIN_DESCRIPTION: usize = 20;

/// The entries table fitted to `width` columns by cutting descriptions (never below
/// [`MIN_DESCRIPTION`] characters), or with whole descriptions when `width` is None
/// (`--wide`). Where even that is too wide, the activity column is left out: the
/// description says it in words, and the id a person copies must stay.
fn entries_table(entries: &[TimeEntry], width: Option<usize>) -> String {
    let mut headers = ENTRY_HEADERS.to_vec();
    let mut rows = entry_rows_within(entries, None);
    let Some(width) = width else {
        return table(&headers, &rows);
    };
    let others = |headers: &[&str], rows: &[Vec<String>]| -> usize {
        (0..headers.len() - 1)
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([headers[i].chars().count()])
                    .max()
                    .unwrap_or(0)
                    + 2
            })
            .sum()
    };
    if width.saturating_sub(others(&headers, &rows)) < MIN_DESCRIPTION
        && let Some(i) = headers.iter().position(|h| *h == "activity")
    {
        headers.remove(i);
        for row in &mut rows {
            row.remove(i);
        }
    }
    // Still too wide (an 80-column terminal): the dates without their year when the
    // entries share one, which they nearly always do.
    let year = |r: &Vec<String>| r[1].get(..5).map(str::to_owned);
    let one_year = rows
        .first()
        .and_then(year)
        .filter(|y| rows.iter().all(|r| year(r).as_deref() == Some(y.as_str())));
    if width.saturating_sub(others(&headers, &rows)) < MIN_DESCRIPTION
        && let Some(y) = one_year
    {
        for row in &mut rows {
            row[1] = row[1].trim_start_matches(y.as_str()).to_owned();
        }
    }
    let description = width
        .saturating_sub(others(&headers, &rows))
        .max(MIN_DESCRIPTION);
    for row in &mut rows {
        if let Some(d) = row.last_mut() {
            *d = clip(d, description);
        }
    }
    table(&headers, &rows)
}

/// `billable entries`: the page, fitted to `width` (see [`entries_table`]).
pub fn entries(out: &list::Output, width: Option<usize>) -> String {
    if out.entries.is_empty() {
        return format!("No entries (total {}).\n", out.total);
    }
    format!(
        "{}\nShowing {}–{} of {}.\n",
        entries_table(&out.entries, width),
        u64::from(out.offset) + 1,
        u64::from(out.offset) + out.entries.len() as u64,
        out.total
    )
}

pub fn summary(s: &Summary) -> String {
    let rows = |groups: &[SummaryGroup]| -> Vec<Vec<String>> {
        groups
            .iter()
            .map(|g| {
                vec![
                    g.key.clone(),
                    g.entries.to_string(),
                    format!("{:.1}", g.raw_minutes),
                    hours(g.billed_minutes),
                    money(g.amount),
                    g.currency.clone(),
                ]
            })
            .collect()
    };
    let mut all = rows(&s.groups);
    if all.is_empty() {
        return "No entries in this period.\n".to_owned();
    }
    all.extend(rows(&s.total));
    let by = s.group_by.as_str();
    table(&[by, "entries", "raw min", "hours", "amount", "cur"], &all)
}

/// What a message is and what it yields, in words.
fn outcome(out: &analyze::Output) -> String {
    use crate::store::ProcessedOutcome as O;
    let first = out.reasons.first().map_or("", String::as_str);
    match out.outcome {
        O::Entry => "billable work: one entry".to_owned(),
        O::Meeting => "a meeting invitation: one meeting entry".to_owned(),
        O::MeetingUpdated => {
            "a later version of a meeting already recorded: its entry is updated".to_owned()
        }
        O::Cancelled => {
            "a cancellation or decline: the meeting's entry, if recorded, is removed".to_owned()
        }
        O::NotBillable if first.contains("meeting") => {
            format!("no new entry: {first}")
        }
        O::NotBillable => "not billable: no entry".to_owned(),
        O::Automated => "automated mail: never billed".to_owned(),
        O::Malformed => "unreadable mail: no entry".to_owned(),
        O::Duplicate => "another copy of a message already processed: no entry".to_owned(),
    }
}

pub fn analyze(out: &analyze::Output) -> String {
    let mut text = format!("message {}: {}\n", out.message_id, outcome(out));
    if let Some(entry) = &out.entry {
        let mut rows = entry_rows(std::slice::from_ref(entry));
        // An unsaved proposal has no entry yet: an id here would name nothing that
        // `approve` or `edit` could find.
        if !out.saved {
            for row in &mut rows {
                row[0] = "-".to_owned();
            }
        }
        text.push_str(&table(&ENTRY_HEADERS, &rows));
    }
    for r in &out.reasons {
        text.push_str(&format!("  - {r}\n"));
    }
    if out.saved {
        text.push_str("saved\n");
    } else if out.entry.is_some() {
        text.push_str("not saved (--save stores it)\n");
    }
    text
}

pub fn settings(s: &Settings) -> String {
    format!("{}\n", serde_json::to_string_pretty(s).unwrap_or_default())
}

pub fn migrate(r: &Report) -> String {
    let list = |names: &[String]| {
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    };
    format!(
        "applied: {}\nskipped: {}\nalready applied: {}\n",
        list(&r.applied),
        list(&r.skipped),
        list(&r.already)
    )
}

/// `schedule run-now`: the scans it queued, one line each.
pub fn scheduled(queued: &[crate::jobs::Scheduled]) -> String {
    if queued.is_empty() {
        return "No scheduled scan was due.\n".to_owned();
    }
    let mut out = format!("Queued {} scheduled scan(s):\n", queued.len());
    for q in queued {
        out.push_str(&format!(
            "  {}  job {}  for {}\n",
            q.user,
            q.job_id,
            q.due.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    out
}

/// The scan's report, its new entries fitted to `width` like `billable entries`.
pub fn scan(v: &scan::Output, width: Option<usize>) -> String {
    let mut out = String::new();
    if v.entries.is_empty() {
        out.push_str("No new entries.");
        if v.skipped_already_processed > 0 {
            out.push_str(" Messages already processed were skipped; `billable entries` lists what was found before.");
        }
        out.push('\n');
    } else {
        out.push_str(&entries_table(&v.entries, width));
        if v.entries_created > v.entries.len() as u64 {
            out.push_str(&format!(
                "… and {} more (`billable entries`).\n",
                v.entries_created - v.entries.len() as u64
            ));
        }
        // Per-client totals of everything this scan created or updated and kept.
        let mut rows: Vec<Vec<String>> = v
            .clients
            .iter()
            .map(|g| {
                vec![
                    g.key.clone(),
                    g.entries.to_string(),
                    hours(g.billed_minutes),
                    money(g.amount),
                ]
            })
            .collect();
        rows.push(vec![
            "total".into(),
            v.clients
                .iter()
                .filter(|g| g.currency == v.currency)
                .map(|g| g.entries)
                .sum::<u64>()
                .to_string(),
            hours(v.billed_minutes),
            money(v.amount),
        ]);
        out.push('\n');
        out.push_str(&table(&["client", "entries", "hours", "amount"], &rows));
    }
    out.push_str(&format!(
        "\n{} examined · {} already processed · {} automated · {} analyzed · {} · {} updated · {} removed · {} not billable · {} · {} ms{}\n",
        v.examined,
        v.skipped_already_processed,
        v.skipped_automated,
        v.analyzed,
        count(v.entries_created, "new entry", "new entries"),
        v.entries_updated,
        v.entries_removed,
        v.not_billable,
        count(v.errors_total, "error", "errors"),
        v.elapsed_ms,
        if v.dry_run { " · dry run, nothing saved" } else { "" },
    ));
    for e in v.errors.iter().take(10) {
        out.push_str(&format!("  error {}: {}\n", e.message_id, e.reason));
    }
    if let Some(llm) = &v.llm {
        out.push_str(&format!(
            "LLM: {} · {} prompt + {} completion tokens · {} answered · {} fell back to the rules · {} timed out · {} from the cache\n",
            count(llm.requests, "request", "requests"),
            llm.prompt_tokens,
            llm.completion_tokens,
            llm.answered,
            llm.fell_back,
            llm.timed_out,
            llm.cache_hits,
        ));
        if let Some(w) = &llm.warning {
            out.push_str(&format!("Warning: {w}.\n"));
        }
    }
    if let Some(listing) = &v.listing {
        out.push_str(&format!("Listed {listing}.\n"));
    }
    if v.rolled_up > 0 {
        out.push_str(&format!(
            "The rollup setting folded {} into others of the same thread or matter and \
             day; the totals above are per message, `billable summary` shows what will be \
             billed.\n",
            count(v.rolled_up, "entry", "entries"),
        ));
    }
    let domains: Vec<String> = v
        .unmatched_domains
        .iter()
        .take(5)
        .map(|d| {
            let who = d
                .addresses
                .first()
                .map(|a| format!(", {a}"))
                .unwrap_or_default();
            let sent = if d.sent > 0 {
                format!(", {} sent by you", d.sent)
            } else {
                String::new()
            };
            format!(
                "{} ({}{sent}{who})",
                d.domain,
                count(d.messages, "message", "messages")
            )
        })
        .collect();
    if let Some(first) = v.unmatched_domains.first() {
        // --add keeps the clients already configured; --set clients=[…] would replace
        // them all.
        out.push_str(&format!(
            "Mail with no client: {}. Add a client with `billable configure --add clients='{{\"name\":\"…\",\"domains\":[\"{}\"]}}'`.\n",
            domains.join(", "),
            first.domain
        ));
    }
    if let Some(reason) = &v.stopped_reason {
        out.push_str(&format!(
            "Scan interrupted: {reason}. What was done is saved (above); run the same command again to resume.\n"
        ));
    }
    out
}

/// `approve`, `reject` and `edit`: what was done, then the entries as they are now.
pub fn updated(out: &update::Output, done: &str, width: Option<usize>) -> String {
    format!(
        "{done} {}.\n{}",
        count(out.updated, "entry", "entries"),
        entries_table(&out.entries, width)
    )
}

/// `add`: the new entry.
pub fn added(entry: &TimeEntry, width: Option<usize>) -> String {
    format!(
        "Added 1 entry ({}).\n{}",
        entry.status.as_str(),
        entries_table(std::slice::from_ref(entry), width)
    )
}

/// `merge`: the one entry the parts became.
pub fn merged(out: &merge::MergeOutput, width: Option<usize>) -> String {
    format!(
        "Merged {} into one ({} raw minutes billed as {}); `billable split {}` undoes it.\n{}",
        count(out.merged.len() as u64, "entry", "entries"),
        out.entry.duration_minutes,
        out.entry.billed_minutes,
        ids::short(&out.entry.id),
        entries_table(std::slice::from_ref(&out.entry), width)
    )
}

/// `split`: the entries restored.
pub fn split(out: &merge::SplitOutput, width: Option<usize>) -> String {
    format!(
        "Split {} back into {}.\n{}",
        ids::short(&out.removed),
        count(out.entries.len() as u64, "entry", "entries"),
        entries_table(&out.entries, width)
    )
}

/// One entry as `billable review` shows it, `n` of `total`.
pub fn review_card(e: &TimeEntry, n: usize, total: usize) -> String {
    let matter = e
        .matter
        .as_deref()
        .map_or_else(String::new, |m| format!(" · {m}"));
    let not_billable = if e.billable { "" } else { " · not billable" };
    format!(
        "\nEntry {n} of {total} · id {} · {}\n  {}  {}{matter} · {}\n  {} min ({} h) · {} {}{not_billable} · confidence {:.2}\n  {}\n",
        e.id,
        e.status.as_str(),
        e.work_date,
        or_dash(e.client.as_deref()),
        e.activity.as_str(),
        e.billed_minutes,
        hours(u64::from(e.billed_minutes)),
        money(e.amount),
        e.currency,
        e.confidence,
        e.description,
    )
}

/// What `billable review` did, counted.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Tally {
    pub approved: u64,
    pub rejected: u64,
    /// Entries whose minutes or description were changed (whatever was decided).
    pub edited: u64,
    pub skipped: u64,
    /// Entries not reached before quitting.
    pub left: u64,
}

pub fn tally(t: &Tally) -> String {
    let mut text = format!(
        "{} approved, {} rejected, {} edited, {} skipped.",
        t.approved, t.rejected, t.edited, t.skipped
    );
    if t.left > 0 {
        text.push_str(&format!(
            " {} left for later (`billable review` again).",
            t.left
        ));
    }
    text.push('\n');
    text
}

/// What an export did, in a line or two.
pub fn exported(out: &crate::tools::export::Output, path: Option<&std::path::Path>) -> String {
    let to = path.map_or_else(String::new, |p| format!(" to {}", p.display()));
    let mut text = if out.entries == 0 {
        let file = path.map_or_else(String::new, |p| {
            format!("; {} was not written", p.display())
        });
        format!(
            "Nothing to export{file}: no billable entry with that status, in that period and \
             scope, is left unexported (--include-exported sends exported ones again).\n"
        )
    } else {
        let marked = match &out.batch_id {
            Some(b) => format!("; marked exported as batch {b}"),
            None => "; nothing marked exported".to_owned(),
        };
        format!(
            "Exported {} {} ({:.1} h, {:.2}) as {}{to}{marked}.\n",
            out.entries,
            if out.entries == 1 { "entry" } else { "entries" },
            out.billed_minutes as f64 / 60.0,
            out.amount,
            out.format.as_str(),
        )
    };
    if out.awaiting_review > 0 {
        text.push_str(&format!(
            "{} more in the period await review (`billable review`).\n",
            out.awaiting_review
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_thousands_separated_and_hours_have_one_decimal() {
        assert_eq!(money(7640280.0), "7,640,280.00");
        assert_eq!(money(700.0), "700.00");
        assert_eq!(money(1234.565), "1,234.57");
        assert_eq!(money(-1500.5), "-1,500.50");
        assert_eq!(money(0.0), "0.00");
        assert_eq!(hours(132), "2.2");
        assert_eq!(hours(192), "3.2");
        assert_eq!(count(1, "new entry", "new entries"), "1 new entry");
        assert_eq!(count(0, "error", "errors"), "0 errors");
        let t = table(&["a", "amount"], &[vec!["x".into(), money(1234.0)]]);
        assert!(t.ends_with("x  1,234.00\n"), "right-aligned: {t}");
    }

    fn entry(id: &str, description: &str) -> TimeEntry {
        use crate::domain::{Activity, EntryStatus, WorkDate};
        TimeEntry {
            id: id.to_owned(),
            message_id: format!("m-{id}"),
            thread_id: None,
            client: Some("Acme Corp".to_owned()),
            matter: None,
            activity: Activity::EmailReceived,
            description: description.to_owned(),
            work_date: WorkDate::parse("2026-11-16").unwrap(),
            duration_minutes: 12.0,
            billed_minutes: 12,
            hourly_rate: 350.0,
            amount: 70.0,
            currency: "USD".to_owned(),
            billable: true,
            confidence: 0.85,
            status: EntryStatus::NeedsReview,
            analyzer: "rules".to_owned(),
            created_at: chrono::Utc::now(),
            event_uid: None,
            task_code: None,
            activity_code: None,
            reviewed_at: None,
            export_batch: None,
            exported_at: None,
            merged_into: None,
        }
    }

    #[test]
    fn a_narrow_table_keeps_the_short_ids_and_leaves_out_the_activity() {
        let entries = [entry(
            "0190a5b2-3c4d-7001-8000-00001a2b3c4d",
            "Review email and attachment from Jane Cooper re: the MSA redline",
        )];
        let wide = entries_table(&entries, Some(140));
        assert!(
            wide.contains("activity") && wide.contains("1a2b3c4d"),
            "{wide}"
        );
        let narrow = entries_table(&entries, Some(90));
        assert!(!narrow.contains("activity"), "{narrow}");
        assert!(narrow.lines().all(|l| l.chars().count() <= 90), "{narrow}");
        assert!(
            narrow.lines().nth(2).unwrap().starts_with("1a2b3c4d  "),
            "{narrow}"
        );
    }

    #[test]
    fn the_review_tally_says_what_is_left() {
        let mut t = Tally {
            approved: 3,
            rejected: 1,
            edited: 1,
            skipped: 2,
            left: 0,
        };
        assert_eq!(tally(&t), "3 approved, 1 rejected, 1 edited, 2 skipped.\n");
        t.left = 4;
        assert!(tally(&t).contains("4 left for later"));
    }

    #[test]
    fn tables_align_numbers_right() {
        let t = table(
            &["name", "n"],
            &[vec!["a".into(), "5".into()], vec!["bb".into(), "10".into()]],
        );
        assert_eq!(t, "name   n\n----  --\na      5\nbb    10\n");
    }
}
