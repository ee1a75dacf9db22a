//! The page's HTML (maud: compiled templates, every value escaped). Only this module
//! knows markup; the handlers hand it typed values.

use std::collections::BTreeMap;

use chrono::{Datelike, Duration};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;

use super::chart;
use crate::domain::{EntryStatus, Settings, TimeEntry, WorkDate};
use crate::export::Format;

/// Which days the sheet shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Day,
    Week,
}

impl Span {
    /// `day`, else a week.
    pub fn parse(view: Option<&str>) -> Span {
        match view {
            Some("day") => Span::Day,
            _ => Span::Week,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Span::Day => "day",
            Span::Week => "week",
        }
    }
}

/// The days on screen: one day, or the Monday-to-Sunday week around `date`.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub span: Span,
    pub date: WorkDate,
}

impl Range {
    pub fn week(self) -> (WorkDate, WorkDate) {
        let monday =
            self.date.0 - Duration::days(self.date.0.weekday().num_days_from_monday().into());
        (WorkDate(monday), WorkDate(monday + Duration::days(6)))
    }

    /// The first and last day shown in the table.
    pub fn days(self) -> (WorkDate, WorkDate) {
        match self.span {
            Span::Day => (self.date, self.date),
            Span::Week => self.week(),
        }
    }

    fn step(self, forward: bool) -> Range {
        let days = match self.span {
            Span::Day => 1,
            Span::Week => 7,
        };
        let delta = Duration::days(if forward { days } else { -days });
        Range {
            span: self.span,
            date: WorkDate(self.date.0 + delta),
        }
    }

    fn href(self) -> String {
        format!("/app?view={}&date={}", self.span.as_str(), self.date)
    }

    fn title(self) -> String {
        match self.span {
            Span::Day => self.date.0.format("%A %-d %B %Y").to_string(),
            Span::Week => {
                let (from, to) = self.week();
                format!(
                    "Week of {} – {}",
                    from.0.format("%-d %b"),
                    to.0.format("%-d %b %Y")
                )
            }
        }
    }
}

/// A message for the person, after an action.
pub enum Flash {
    Done(String),
    Failed(String),
}

/// Everything the sheet shows.
pub struct Sheet<'a> {
    pub range: Range,
    /// The week's entries (the chart covers the week; the table the range's days).
    pub entries: &'a [TimeEntry],
    pub settings: &'a Settings,
    pub flash: Option<Flash>,
    /// The last action's inverse, for the Undo button.
    pub undo: Option<String>,
    /// Whether the side panel is to be emptied (after a successful edit).
    pub close_panel: bool,
}

/// The whole page around a sheet.
pub fn page(sheet: &Sheet, csrf: &str, formats: &[Format]) -> Markup {
    let title = sheet.range.title();
    let body = html! {
        header.top {
            a.brand href="/app" { "billable" }
            div.actions {
                button #scan type="button" data-csrf=(csrf) { "Scan now" }
                a href="/app/settings" { "Settings" }
                form method="post" action="/app/logout" {
                    input type="hidden" name="csrf" value=(csrf);
                    button type="submit" { "Sign out" }
                }
            }
        }
        div #scan-status role="status" aria-live="polite" hidden {
            progress #scan-progress aria-label="Scan progress" {}
            span #scan-text {}
        }
        div.layout {
            main #main {
                (self::sheet(sheet, csrf, formats))
            }
            aside #panel aria-live="polite" aria-label="Details" {}
        }
        (keys_dialog())
    };
    layout(&title, csrf, body)
}

fn layout(title: &str, csrf: &str, body: Markup) -> Markup {
    let headers = serde_json::json!({ "X-CSRF-Token": csrf }).to_string();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · billable" }
                link rel="stylesheet" href="/app/static/app.css";
                script src="/app/static/htmx.min.js" defer {}
                script src="/app/static/app.js" defer {}
            }
            body hx-headers=(headers) { (body) }
        }
    }
}

fn export_form(range: Range, csrf: &str, formats: &[Format], settings: &Settings) -> Markup {
    let (from, to) = range.days();
    html! {
        form #export method="post" action="/app/export" {
            input type="hidden" name="csrf" value=(csrf);
            label { "From" input type="date" name="from" value=(from); }
            label { "To" input type="date" name="to" value=(to); }
            label { "Format"
                select name="format" {
                    @for f in formats {
                        option value=(f.as_str()) { (format_label(*f)) }
                    }
                }
            }
            label { "Client (a LEDES invoice is for one)"
                select name="client" {
                    option value="" { "All clients" }
                    @for c in &settings.clients { option value=(c.name) { (c.name) } }
                }
            }
            label { "Invoice number" input type="text" name="invoice_number" autocomplete="off"; }
            label { "Invoice date" input type="date" name="invoice_date"; }
            label.check { input type="checkbox" name="dry_run" value="true"; "Preview only (don't mark as exported)" }
            button type="submit" { "Download approved entries" }
        }
    }
}

fn format_label(f: Format) -> &'static str {
    match f {
        Format::Csv => "CSV",
        Format::Ledes1998b => "LEDES 1998B",
        Format::HarvestCsv => "Harvest CSV",
        Format::TogglCsv => "Toggl CSV",
    }
}

/// The part of the page every action replaces: the dates, the export form, totals,
/// the chart and the entries.
pub fn sheet(sheet: &Sheet, csrf: &str, formats: &[Format]) -> Markup {
    let (from, to) = sheet.range.days();
    let shown: Vec<&TimeEntry> = sheet
        .entries
        .iter()
        .filter(|e| e.work_date >= from && e.work_date <= to)
        .collect();
    let (review, rest): (Vec<&TimeEntry>, Vec<&TimeEntry>) = shown
        .iter()
        .partition(|e| e.status == EntryStatus::NeedsReview);
    html! {
        div #sheet {
            div.sheet-head {
                nav.dates aria-label="Dates" {
                    a href=(sheet.range.step(false).href()) rel="prev" { "← Previous" }
                    a href=(Range { span: Span::Day, date: sheet.range.date }.href())
                        aria-current=[(sheet.range.span == Span::Day).then_some("page")] { "Day" }
                    a href=(Range { span: Span::Week, date: sheet.range.date }.href())
                        aria-current=[(sheet.range.span == Span::Week).then_some("page")] { "Week" }
                    a href=(sheet.range.step(true).href()) rel="next" { "Next →" }
                }
                details.export {
                    summary { "Export" }
                    (export_form(sheet.range, csrf, formats, sheet.settings))
                }
            }
            h1 { (sheet.range.title()) }
            @match &sheet.flash {
                Some(Flash::Done(m)) => p.flash.done role="status" { (m) },
                Some(Flash::Failed(m)) => p.flash.failed role="alert" { (m) },
                None => p.flash role="status" {},
            }
            div.overview {
                (totals(&shown, sheet.settings))
                (chart_figure(sheet))
            }
            form #entries hx-post="/app/entries" hx-target="#sheet" hx-swap="outerHTML" {
                input type="hidden" name="view" value=(sheet.range.span.as_str());
                input type="hidden" name="date" value=(sheet.range.date);
                @if let Some(undo) = &sheet.undo {
                    input type="hidden" name="undo" value=(undo);
                }
                div.toolbar role="toolbar" aria-label="Selected entries" {
                    button name="action" value="approve" title="Approve (a)" { "Approve" }
                    button name="action" value="reject" title="Reject (r)" { "Reject" }
                    button name="action" value="merge" title="Merge selected (m)" { "Merge" }
                    button name="action" value="split" title="Split a merged entry (s)" { "Split" }
                    button name="action" value="undo" title="Undo (u)" disabled[sheet.undo.is_none()] { "Undo" }
                    button type="button" #help title="Keyboard shortcuts (?)" { "Keys ?" }
                }
                @if shown.is_empty() {
                    p.empty { "No time entries on these days. Scan your mail, or pick another day." }
                }
                @if !review.is_empty() {
                    section.day.review aria-label="Needs review" {
                        h2 { "Needs review" span.total { (review.len()) " to check" } }
                        @for (day, groups) in by_day(&review) {
                            @for ((client, matter), rows) in &groups {
                                (group(Some(day), client, matter, rows, sheet.settings))
                            }
                        }
                    }
                }
                @for (day, groups) in by_day(&rest) {
                    section.day data-date=(day) {
                        h2 {
                            (day.0.format("%a %-d %b"))
                            span.total { (hours(shown.iter().filter(|e| e.work_date == day).copied())) }
                        }
                        @for ((client, matter), rows) in &groups {
                            (group(None, client, matter, rows, sheet.settings))
                        }
                    }
                }
            }
            @if sheet.close_panel {
                aside #panel hx-swap-oob="true" aria-live="polite" aria-label="Details" {}
            }
        }
    }
}

type Group<'a> = ((String, String), Vec<&'a TimeEntry>);

/// Entries by day (oldest first), then client and matter.
fn by_day<'a>(entries: &[&'a TimeEntry]) -> Vec<(WorkDate, Vec<Group<'a>>)> {
    let mut days: BTreeMap<WorkDate, BTreeMap<(String, String), Vec<&TimeEntry>>> = BTreeMap::new();
    for e in entries {
        days.entry(e.work_date)
            .or_default()
            .entry((
                e.client.clone().unwrap_or_default(),
                e.matter.clone().unwrap_or_default(),
            ))
            .or_default()
            .push(e);
    }
    days.into_iter()
        .map(|(day, groups)| {
            let mut groups: Vec<Group> = groups.into_iter().collect();
            for (_, rows) in &mut groups {
                rows.sort_by_key(|e| (status_rank(e.status), e.created_at));
            }
            (day, groups)
        })
        .collect()
}

fn status_rank(s: EntryStatus) -> u8 {
    match s {
        EntryStatus::NeedsReview => 0,
        EntryStatus::Suggested => 1,
        EntryStatus::Approved => 2,
        EntryStatus::Rejected => 3,
    }
}

/// One client and matter's entries; in the review section the heading names the day.
fn group(
    day: Option<WorkDate>,
    client: &str,
    matter: &str,
    rows: &[&TimeEntry],
    settings: &Settings,
) -> Markup {
    let client_name = if client.is_empty() {
        "No client"
    } else {
        client
    };
    let matter_name = settings
        .client_named(client)
        .and_then(|c| c.matter(matter))
        .map(|m| m.name.clone())
        .filter(|_| !matter.is_empty());
    html! {
        div.group {
            h3 {
                @if let Some(day) = day { (day.0.format("%a %-d %b")) " · " }
                (client_name)
                @if !matter.is_empty() {
                    " · " (matter_name.as_deref().unwrap_or(matter))
                }
                span.total { (hours(rows.iter().copied())) }
            }
            table.entries {
                thead {
                    tr {
                        th scope="col" { span.visually-hidden { "Select" } }
                        th scope="col" { "Time" }
                        th scope="col" { "Description" }
                        th scope="col" { "Source" }
                        th scope="col" { "Confidence" }
                        th scope="col" { "Status" }
                    }
                }
                tbody {
                    @for e in rows { (row(e)) }
                }
            }
        }
    }
}

fn row(e: &TimeEntry) -> Markup {
    let status = e.status.as_str();
    let merged = e.analyzer == crate::tools::merge::MERGED;
    html! {
        tr.entry.(status) #(format!("e-{}", e.id)) data-id=(e.id) tabindex="-1" {
            td.select {
                input type="checkbox" name="ids" value=(e.id)
                    aria-label=(format!("Select: {}", e.description));
            }
            td.time {
                (hours_minutes(e.billed_minutes))
                @if !e.billable { " " span.tag { "no charge" } }
            }
            td.desc {
                (e.description)
                @if merged { " " span.tag { "merged" } }
                @if e.exported_at.is_some() { " " span.tag { "exported" } }
            }
            td.source {
                button type="button" hx-get=(format!("/app/entries/{}/source", e.id))
                    hx-target="#panel" aria-label=(format!("Show the message of: {}", e.description)) {
                    @if merged { "Parts" } @else { "Message" }
                }
            }
            td.conf { (format!("{:.0}%", e.confidence * 100.0)) }
            td.status { span.badge { (status_label(e.status)) } }
        }
    }
}

fn status_label(s: EntryStatus) -> &'static str {
    match s {
        EntryStatus::NeedsReview => "Needs review",
        EntryStatus::Suggested => "Suggested",
        EntryStatus::Approved => "Approved",
        EntryStatus::Rejected => "Rejected",
    }
}

/// `1:30` for 90 minutes.
pub fn hours_minutes(minutes: u32) -> String {
    format!("{}:{:02}", minutes / 60, minutes % 60)
}

/// Billed hours of the entries that count (all but rejected), `1.5 h`.
fn hours<'a>(entries: impl Iterator<Item = &'a TimeEntry>) -> String {
    let minutes: u32 = entries
        .filter(|e| e.status != EntryStatus::Rejected)
        .map(|e| e.billed_minutes)
        .sum();
    format!("{:.1} h", f64::from(minutes) / 60.0)
}

fn totals(entries: &[&TimeEntry], settings: &Settings) -> Markup {
    let sum = |pred: &dyn Fn(&TimeEntry) -> bool| -> (u32, f64) {
        entries
            .iter()
            .filter(|e| pred(e))
            .fold((0, 0.0), |(m, a), e| (m + e.billed_minutes, a + e.amount))
    };
    let approved = sum(&|e| e.status == EntryStatus::Approved);
    let unbilled = sum(&|e| matches!(e.status, EntryStatus::Suggested | EntryStatus::NeedsReview));
    let review = entries
        .iter()
        .filter(|e| e.status == EntryStatus::NeedsReview)
        .count();
    let mut by_matter: BTreeMap<(String, String), (u32, f64)> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.status != EntryStatus::Rejected) {
        let t = by_matter
            .entry((
                e.client.clone().unwrap_or_else(|| "No client".into()),
                e.matter.clone().unwrap_or_default(),
            ))
            .or_default();
        t.0 += e.billed_minutes;
        t.1 += e.amount;
    }
    let currency = &settings.currency;
    html! {
        section.totals aria-label="Totals" {
            dl.stats {
                div { dt { "Approved" } dd #total-approved { (format!("{:.1} h", f64::from(approved.0) / 60.0)) small { (money(approved.1, currency)) } } }
                div { dt { "Not yet approved" } dd #total-unbilled { (format!("{:.1} h", f64::from(unbilled.0) / 60.0)) small { (money(unbilled.1, currency)) } } }
                div { dt { "Needs review" } dd #total-review { (review) } }
            }
            @if !by_matter.is_empty() {
                table.by-matter {
                    caption { "By client and matter" }
                    thead { tr { th scope="col" { "Client" } th scope="col" { "Matter" } th scope="col" { "Hours" } th scope="col" { "Amount" } } }
                    tbody {
                        @for ((client, matter), (minutes, amount)) in &by_matter {
                            tr { td { (client) } td { (matter) } td { (format!("{:.1}", f64::from(*minutes) / 60.0)) } td { (money(*amount, currency)) } }
                        }
                    }
                }
            }
        }
    }
}

fn money(amount: f64, currency: &str) -> String {
    format!("{amount:.2} {currency}")
}

fn chart_figure(sheet: &Sheet) -> Markup {
    let (from, _) = sheet.range.week();
    let svg = chart::hours_by_client(sheet.entries, from);
    html! {
        figure.chart {
            figcaption { "Billed hours per day this week, by client (rejected not counted)" }
            @match svg {
                Ok(svg) => div role="img" aria-label="Chart of billed hours per day by client" { (PreEscaped(svg)) },
                Err(e) => p { "The chart could not be drawn: " (e) },
            }
        }
    }
}

fn keys_dialog() -> Markup {
    html! {
        dialog #keys aria-labelledby="keys-title" {
            h2 #keys-title { "Keyboard shortcuts" }
            dl.keys {
                dt { kbd { "j" } " / " kbd { "k" } } dd { "Next / previous entry" }
                dt { kbd { "x" } } dd { "Select the entry (for merge and bulk actions)" }
                dt { kbd { "a" } } dd { "Approve the selected entries, or this one" }
                dt { kbd { "r" } } dd { "Reject" }
                dt { kbd { "e" } } dd { "Edit this entry" }
                dt { kbd { "m" } } dd { "Merge the selected entries" }
                dt { kbd { "s" } } dd { "Split a merged entry" }
                dt { kbd { "u" } } dd { "Undo the last action" }
                dt { kbd { "o" } } dd { "Open the message" }
                dt { kbd { "?" } } dd { "Show these keys" }
                dt { kbd { "Esc" } } dd { "Close the panel or this help" }
            }
            form method="dialog" { button { "Close" } }
        }
    }
}

/// The side panel with one entry's message (or a merged entry's parts).
pub fn source_panel(
    entry: &TimeEntry,
    message: Result<&Message, String>,
    parts: &[TimeEntry],
) -> Markup {
    html! {
        div.panel-body {
            button.close type="button" data-close-panel { "Close" }
            h2 { "Source of the entry" }
            p.entry-desc { (entry.description) }
            @if !parts.is_empty() {
                h3 { "Merged from" }
                ul { @for p in parts { li { (hours_minutes(p.billed_minutes)) " " (p.description) } } }
            }
            @match message {
                Ok(m) => {
                    dl.message {
                        dt { "From" } dd { (m.from) }
                        dt { "Subject" } dd { (m.subject) }
                        dt { "Date" } dd { (m.date) }
                    }
                    @if !m.reasons.is_empty() {
                        h3 { "Why" }
                        ul.reasons { @for r in &m.reasons { li { (r) } } }
                    }
                    h3 { "Message" }
                    pre.message-text { (m.text) }
                },
                Err(why) => p.flash.failed role="alert" { (why) },
            }
        }
    }
}

/// A message as the panel shows it: plain text, never markup from the mail.
pub struct Message {
    pub from: String,
    pub subject: String,
    pub date: String,
    pub text: String,
    pub reasons: Vec<String>,
}

/// The side panel's edit form for one entry.
pub fn edit_panel(entry: &TimeEntry, range: Range, settings: &Settings) -> Markup {
    let client = entry.client.clone().unwrap_or_default();
    let matters: Vec<(String, String)> = settings
        .clients
        .iter()
        .flat_map(|c| {
            c.matters
                .iter()
                .map(move |m| (m.id.clone(), format!("{} · {}", c.name, m.name)))
        })
        .collect();
    html! {
        div.panel-body {
            button.close type="button" data-close-panel { "Close" }
            h2 #edit-title { "Edit entry" }
            form #edit hx-post="/app/entries" hx-target="#sheet" hx-swap="outerHTML" aria-labelledby="edit-title" {
                input type="hidden" name="action" value="edit";
                input type="hidden" name="ids" value=(entry.id);
                input type="hidden" name="view" value=(range.span.as_str());
                input type="hidden" name="date" value=(range.date);
                label for="edit-minutes" { "Minutes" }
                input #edit-minutes type="number" name="minutes" min="0" step="1" value=(entry.billed_minutes) required;
                label for="edit-description" { "Description" }
                textarea #edit-description name="description" rows="3" required { (entry.description) }
                label for="edit-client" { "Client" }
                select #edit-client name="client" {
                    @if entry.client.is_none() { option value="" selected { "(none)" } }
                    @for c in &settings.clients {
                        option value=(c.name) selected[c.name == client] { (c.name) }
                    }
                }
                label for="edit-matter" { "Matter id" }
                input #edit-matter type="text" name="matter" list="matters" value=(entry.matter.clone().unwrap_or_default());
                datalist #matters { @for (id, name) in &matters { option value=(id) { (name) } } }
                label for="edit-task" { "UTBMS task code" }
                input #edit-task type="text" name="task_code" value=(entry.task_code.clone().unwrap_or_default()) placeholder="L120";
                label for="edit-activity" { "UTBMS activity code" }
                input #edit-activity type="text" name="activity_code" value=(entry.activity_code.clone().unwrap_or_default()) placeholder="A104";
                button type="submit" { "Save" }
            }
        }
    }
}

/// The sign-in page.
pub fn login(error: Option<&str>, supabase: bool) -> Markup {
    let hint = if supabase {
        "Paste your Supabase access token (the JWT your firm's sign-in gives you)."
    } else {
        "Paste the token `billable serve` printed when it started, or BILLABLE_API_TOKEN."
    };
    let body = html! {
        main.login {
            h1 { "Sign in to billable" }
            @if let Some(e) = error { p.flash.failed role="alert" { (e) } }
            form method="post" action="/app/login" {
                label for="token" { "Access token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus aria-describedby="token-hint";
                p.hint #token-hint { (hint) }
                button type="submit" { "Sign in" }
            }
        }
    };
    layout("Sign in", "", body)
}

/// One settings field: its key, what it is, and its current text.
pub struct Field {
    pub key: String,
    pub help: String,
    pub text: String,
    pub multiline: bool,
}

/// The settings page.
pub fn settings(fields: &[Field], csrf: &str, flash: Option<Flash>) -> Markup {
    let body = html! {
        header.top {
            a.brand href="/app" { "billable" }
            nav.dates aria-label="Pages" { a href="/app" { "← Timesheet" } }
        }
        main.settings {
            h1 { "Settings" }
            @match flash {
                Some(Flash::Done(m)) => p.flash.done role="status" { (m) },
                Some(Flash::Failed(m)) => p.flash.failed role="alert" { (m) },
                None => {},
            }
            p { "Lists take one item per line; clients are JSON, as " code { "billable configure" } " takes them." }
            form method="post" action="/app/settings" {
                input type="hidden" name="csrf" value=(csrf);
                @for f in fields {
                    div.field {
                        label for=(format!("set-{}", f.key)) { (f.key.replace('_', " ")) }
                        @if f.multiline {
                            textarea #(format!("set-{}", f.key)) name=(f.key) rows=(rows(&f.text)) aria-describedby=(format!("help-{}", f.key)) { (f.text) }
                        } @else {
                            input #(format!("set-{}", f.key)) type="text" name=(f.key) value=(f.text) aria-describedby=(format!("help-{}", f.key));
                        }
                        small #(format!("help-{}", f.key)) { (f.help) }
                    }
                }
                button type="submit" { "Save settings" }
            }
        }
    };
    layout("Settings", csrf, body)
}

fn rows(text: &str) -> usize {
    (text.lines().count() + 1).clamp(2, 24)
}

/// How a settings value is edited in a form field, and read back.
pub fn field_text(value: &Value) -> (String, bool) {
    match value {
        Value::Null => (String::new(), false),
        Value::String(s) => (s.clone(), false),
        Value::Array(items) if items.iter().all(Value::is_string) => (
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n"),
            true,
        ),
        Value::Array(_) | Value::Object(_) => (
            serde_json::to_string_pretty(value).unwrap_or_default(),
            true,
        ),
        other => (other.to_string(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::fixtures::{entry, settings};

    fn sheet_of<'a>(entries: &'a [TimeEntry], settings: &'a Settings, span: Span) -> Sheet<'a> {
        Sheet {
            range: Range {
                span,
                date: WorkDate::parse("2026-11-23").unwrap(),
            },
            entries,
            settings,
            flash: None,
            undo: None,
            close_panel: false,
        }
    }

    #[test]
    fn mail_text_is_shown_as_text_never_as_markup() {
        let mut e = entry("e1", 30, 300.0);
        e.description = "Reply re <b>lease</b>".into();
        let hostile = Message {
            from: "Mallory <m@evil.example>".into(),
            subject: "<img src=x onerror=alert(1)>".into(),
            date: String::new(),
            text: "</pre><script>alert(document.cookie)</script>".into(),
            reasons: vec!["<i>sender</i> is at Acme".into()],
        };
        let html = source_panel(&e, Ok(&hostile), &[]).into_string();
        assert!(
            !html.contains("<script>") && !html.contains("<img") && !html.contains("<b>"),
            "{html}"
        );
        assert!(
            html.contains("&lt;script&gt;") && html.contains("&lt;img src=x"),
            "{html}"
        );
    }

    #[test]
    fn entries_needing_review_come_first_and_days_carry_their_totals() {
        let settings = settings();
        let mut flagged = entry("flag", 30, 300.0);
        flagged.status = EntryStatus::NeedsReview;
        flagged.work_date = WorkDate::parse("2026-11-24").unwrap();
        let mut later = entry("late", 60, 300.0);
        later.work_date = WorkDate::parse("2026-11-24").unwrap();
        let early = entry("early", 12, 300.0);
        let entries = [early, later, flagged];
        let html = sheet(
            &sheet_of(&entries, &settings, Span::Week),
            "tok",
            &[Format::Csv],
        )
        .into_string();
        let at = |id: &str| html.find(&format!("data-id=\"{id}\"")).unwrap();
        assert!(
            at("flag") < at("early") && at("early") < at("late"),
            "{html}"
        );
        assert!(html.contains("Needs review"), "{html}");
        // Tuesday's total counts its flagged entry too: 30 + 60 minutes.
        assert!(
            html.contains("Tue 24 Nov<span class=\"total\">1.5 h"),
            "{html}"
        );
        let day = sheet(&sheet_of(&entries, &settings, Span::Day), "tok", &[]).into_string();
        assert!(day.contains("data-id=\"early\"") && !day.contains("data-id=\"late\""));
    }

    #[test]
    fn a_week_runs_monday_to_sunday_around_its_date() {
        let r = Range {
            span: Span::Week,
            date: WorkDate::parse("2026-11-19").unwrap(),
        };
        let (from, to) = r.week();
        assert_eq!(
            (from.to_string(), to.to_string()),
            ("2026-11-16".into(), "2026-11-22".into())
        );
        assert_eq!(r.step(true).href(), "/app?view=week&date=2026-11-26");
        assert_eq!(hours_minutes(125), "2:05");
    }
}
