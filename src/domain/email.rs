//! A parsed message reduced to what triage and the analyzers need.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

/// A mailbox address; `email` is always lower-case so comparisons are plain `==`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    pub name: Option<String>,
    pub email: String,
}

impl Address {
    pub fn new(name: Option<&str>, email: &str) -> Self {
        Address {
            name: name.map(str::to_owned).filter(|n| !n.trim().is_empty()),
            email: email.trim().to_ascii_lowercase(),
        }
    }

    /// The local part (before `@`), lower-case.
    pub fn local_part(&self) -> &str {
        self.email.split('@').next().unwrap_or("")
    }

    /// The domain (after the last `@`), lower-case; empty when there is none.
    pub fn domain(&self) -> &str {
        self.email.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

/// One message as the pipeline sees it. Built by `mail::parse::parse_email`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Email {
    /// Gmail id, or the Message-ID header without angle brackets for local sources
    /// (a content hash when the header is missing).
    pub id: String,
    /// The Message-ID header without angle brackets, as `mail::parse::storable_id`
    /// keys it (when it has one): one RFC message delivered twice (the owner
    /// in Cc of their own mail, two aliases) has two Gmail ids but this one id.
    pub rfc_id: Option<String>,
    pub thread_id: Option<String>,
    /// Gmail labels (`X-Gmail-Labels` in Takeout, `labelIds` from the API).
    pub labels: Vec<String>,
    pub from: Option<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub subject: String,
    /// The Date header; `None` when missing or unparseable.
    pub date: Option<DateTime<Utc>>,
    /// Headers that mark automated mail.
    pub automation: AutomationHeaders,
    /// The text written in this message: no quoted lines, no `On … wrote:` history,
    /// no signature. Truncated to `mail::parse::MAX_TEXT_BYTES`.
    pub new_text: String,
    /// Words in `new_text`.
    pub new_words: usize,
    /// Addresses written in the body outside `new_text`: the quoted or forwarded
    /// history's headers and attributions (at most `mail::parse::MAX_THREAD_ADDRESSES`).
    pub thread_addresses: Vec<Address>,
    /// Attachments a person would open (not inline images, signatures or invites).
    pub attachments: usize,
    /// The text/calendar part, if any.
    pub calendar: Option<CalendarEvent>,
    /// Hex SHA-256 of the raw bytes: part of every analysis cache key.
    pub content_hash: String,
    /// Size of the raw message in bytes.
    pub size: usize,
}

/// Subject prefixes of a reply and of a forward, in the languages mail clients use.
const REPLY_PREFIXES: [&str; 4] = ["re:", "aw:", "sv:", "antw:"];
const FORWARD_PREFIXES: [&str; 4] = ["fw:", "fwd:", "wg:", "tr:"];

fn subject_starts(subject: &str, prefixes: &[&str]) -> bool {
    let s = subject.trim_start();
    prefixes
        .iter()
        .any(|p| s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p)))
}

impl Email {
    /// The subject marks a reply (`Re:`, `AW:`, …): the subject is the thread's.
    pub fn is_reply(&self) -> bool {
        subject_starts(&self.subject, &REPLY_PREFIXES)
    }

    /// The subject marks a forward (`Fw:`, `Fwd:`, `WG:`, `TR:`).
    pub fn is_forward(&self) -> bool {
        subject_starts(&self.subject, &FORWARD_PREFIXES)
    }
}

/// Headers that say a message was sent by a machine.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AutomationHeaders {
    pub list_unsubscribe: bool,
    pub list_id: bool,
    pub precedence: Option<String>,
    pub auto_submitted: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CalendarMethod {
    Request,
    Cancel,
    Reply,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum PartStat {
    Accepted,
    Declined,
    Tentative,
    NeedsAction,
    Other(String),
}

/// The first VEVENT of a text/calendar part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalendarEvent {
    pub method: CalendarMethod,
    pub uid: String,
    pub sequence: i64,
    pub summary: Option<String>,
    /// Start and end as instants; `None` for all-day events or when unparseable.
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// Start date of an all-day event (`DTSTART;VALUE=DATE`).
    pub start_date: Option<NaiveDate>,
    pub organizer: Option<String>,
    /// Attendees (lower-case address) with their participation status.
    pub attendees: Vec<(String, PartStat)>,
}
