//! SPEC §4 in one table (CONVENTIONS §10): each row is a message, a settings patch and
//! what the pipeline (triage, then the rules analyzer) must make of it. One `check`
//! reads every row and reports all failing rows at once.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

use super::{Outcome, rules, triage};
use crate::domain::{
    Activity, Address, CalendarEvent, CalendarMethod, Email, EntryStatus, PartStat, Settings,
    SettingsPatch,
};

const ME: &str = "me@lawfirm.com";
const WHEN: &str = "2026-11-23T15:00:00Z";

/// The settings every row starts from; a row's patch is applied on top.
fn base() -> Value {
    json!({
        "my_addresses": [ME],
        "default_hourly_rate": 200,
        "clients": [
            {"name": "Acme", "domains": ["acme.com"], "addresses": ["jane.acme@gmail.com"],
             "keywords": ["Widget"], "matter": "Acme-001", "hourly_rate": 300},
            {"name": "Beta", "domains": ["beta.io"], "keywords": ["Falcon"]}
        ],
        "ignore_senders": ["alerts@acme.com"]
    })
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_else(|e| panic!("test date {s}: {e}"))
}

/// A small builder so each row reads as the message it is.
struct Mail(Email);

fn addr(s: &str) -> Address {
    Address::new(None, s)
}

/// The owner's message (From one of my_addresses) to `to`.
fn sent(to: &[&str]) -> Mail {
    Mail(Email {
        from: Some(addr(ME)),
        to: to.iter().map(|a| addr(a)).collect(),
        subject: "Contract renewal".into(),
        date: Some(at(WHEN)),
        ..Email::default()
    })
    .words(412)
}

/// A message received from `from`.
fn received(from: &str) -> Mail {
    Mail(Email {
        from: Some(addr(from)),
        to: vec![addr(ME)],
        subject: "Contract renewal".into(),
        date: Some(at(WHEN)),
        ..Email::default()
    })
    .words(400)
}

impl Mail {
    fn from(mut self, a: &str) -> Self {
        self.0.from = Some(addr(a));
        self
    }
    fn to(mut self, list: &[&str]) -> Self {
        self.0.to = list.iter().map(|a| addr(a)).collect();
        self
    }
    /// Addresses of the quoted or forwarded history.
    fn thread(mut self, list: &[&str]) -> Self {
        self.0.thread_addresses = list.iter().map(|a| addr(a)).collect();
        self
    }
    fn cc(mut self, list: &[&str]) -> Self {
        self.0.cc = list.iter().map(|a| addr(a)).collect();
        self
    }
    fn label(mut self, l: &str) -> Self {
        self.0.labels.push(l.into());
        self
    }
    fn subject(mut self, s: &str) -> Self {
        self.0.subject = s.into();
        self
    }
    fn date(mut self, s: &str) -> Self {
        self.0.date = Some(at(s));
        self
    }
    fn no_date(mut self) -> Self {
        self.0.date = None;
        self
    }
    /// `n` words of plain work (a draft to review, comments asked for), as the
    /// evidence of work the rules look for.
    fn words(mut self, n: usize) -> Self {
        const WORK: &str = "I agree with the changes below. The draft looks fine; please include the approved terms and circulate your thoughts and comments on the open issues and the information we discussed.";
        let words: Vec<&str> = WORK.split_whitespace().cycle().take(n).collect();
        self.0.new_text = words.join(" ");
        self.0.new_words = n;
        self
    }
    /// Sets the new text and its word count.
    fn text(mut self, t: &str) -> Self {
        self.0.new_text = t.into();
        self.0.new_words = t.split_whitespace().count();
        self
    }
    fn attachments(mut self, n: usize) -> Self {
        self.0.attachments = n;
        self
    }
    fn list_unsubscribe(mut self) -> Self {
        self.0.automation.list_unsubscribe = true;
        self
    }
    fn list_id(mut self) -> Self {
        self.0.automation.list_id = true;
        self
    }
    fn precedence(mut self, p: &str) -> Self {
        self.0.automation.precedence = Some(p.into());
        self
    }
    fn auto_submitted(mut self, v: &str) -> Self {
        self.0.automation.auto_submitted = Some(v.into());
        self
    }
    fn calendar(mut self, e: CalendarEvent) -> Self {
        self.0.calendar = Some(e);
        self
    }
}

/// A one-hour event at 23:30 UTC on 2026-11-23, organized by Jane at Acme.
fn event(method: CalendarMethod) -> CalendarEvent {
    CalendarEvent {
        method,
        uid: "evt-1@acme.com".into(),
        sequence: 2,
        summary: Some("Contract review".into()),
        start: Some(at("2026-11-23T23:30:00Z")),
        end: Some(at("2026-11-24T00:30:00Z")),
        start_date: None,
        organizer: Some("jane@acme.com".into()),
        attendees: vec![
            ("jane@acme.com".into(), PartStat::Accepted),
            (ME.into(), PartStat::NeedsAction),
        ],
    }
}

/// The owner's reply to the invitation, with the owner's participation status.
fn reply(stat: PartStat) -> CalendarEvent {
    CalendarEvent {
        attendees: vec![(ME.into(), stat)],
        ..event(CalendarMethod::Reply)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Want {
    Entry {
        client: &'static str,
        activity: Activity,
        date: &'static str,
        billed: u32,
        status: EntryStatus,
    },
    Meeting {
        client: &'static str,
        date: &'static str,
        billed: u32,
        uid: &'static str,
        sequence: i64,
    },
    Cancel {
        uid: &'static str,
        sequence: i64,
    },
    NotBillable,
    /// Triage drops it before any analyzer.
    Automated,
}

/// Extra facts a row pins down.
#[derive(Debug, Clone, Copy)]
enum Also {
    Raw(f64),
    Amount(f64),
    Rate(f64),
    Confidence(f64),
    Matter(Option<&'static str>),
    TaskCode(Option<&'static str>),
    ActivityCode(&'static str),
    /// Some reason contains this text.
    Reason(&'static str),
    Description(&'static str),
}

struct Row {
    name: &'static str,
    mail: Mail,
    patch: Value,
    want: Want,
    also: Vec<Also>,
}

fn row(name: &'static str, mail: Mail, patch: Value, want: Want) -> Row {
    Row {
        name,
        mail,
        patch,
        want,
        also: Vec::new(),
    }
}

impl Row {
    fn also(mut self, a: &[Also]) -> Self {
        self.also.extend_from_slice(a);
        self
    }
}

fn entry(client: &'static str, activity: Activity, date: &'static str, billed: u32) -> Want {
    Want::Entry {
        client,
        activity,
        date,
        billed,
        status: EntryStatus::Suggested,
    }
}

fn review(client: &'static str, activity: Activity, date: &'static str, billed: u32) -> Want {
    Want::Entry {
        client,
        activity,
        date,
        billed,
        status: EntryStatus::NeedsReview,
    }
}

/// Acme with three matters: A-1 by number or "lease", A-2 with task codes, A-3 with
/// task codes but no default.
fn matters() -> Value {
    json!({"clients": [
        {"name": "Acme", "domains": ["acme.com"], "keywords": ["Widget"], "matters": [
            {"id": "A-1", "name": "Lease", "keywords": ["lease"]},
            {"id": "A-2", "name": "Merger", "keywords": ["merger"],
             "task_codes": true, "default_task_code": "L120"},
            {"id": "A-3", "name": "Patent", "keywords": ["patent"], "task_codes": true}
        ]}
    ]})
}

const SENT: Activity = Activity::EmailSent;
const RECV: Activity = Activity::EmailReceived;
const DAY: &str = "2026-11-23";

fn rows() -> Vec<Row> {
    let none = json!({});
    let mut rows =
        vec![
        // ── ownership ──────────────────────────────────────────────────────────
        row(
            "owner by my_addresses",
            sent(&["jane@acme.com"]),
            none.clone(),
            entry("Acme", SENT, DAY, 24),
        ),
        row(
            "owner by Sent label (Takeout)",
            sent(&["jane@acme.com"])
                .from("me@personal.net")
                .label("Sent"),
            none.clone(),
            entry("Acme", SENT, DAY, 24),
        ),
        row(
            "owner by SENT label id (Gmail)",
            sent(&["jane@acme.com"])
                .from("me@personal.net")
                .label("SENT"),
            none.clone(),
            entry("Acme", SENT, DAY, 24),
        ),
        row(
            "not the owner without address or label: From is the counterpart",
            sent(&["jane@acme.com"]).from("me@personal.net"),
            none.clone(),
            Want::NotBillable,
        ),
        // ── client match ───────────────────────────────────────────────────────
        row(
            "exact client address",
            sent(&["jane.acme@gmail.com"]),
            none.clone(),
            entry("Acme", SENT, DAY, 24),
        )
        .also(&[Also::Confidence(0.9), Also::Reason("by address")]),
        row(
            "client domain",
            sent(&["bob@acme.com"]),
            none.clone(),
            entry("Acme", SENT, DAY, 24),
        )
        .also(&[
            Also::Confidence(0.85),
            Also::Reason("by domain acme.com"),
                Also::Description("Email to bob@acme.com (Acme) re: Contract renewal"),
            Also::Matter(Some("Acme-001")),
        ]),
        row(
            "client subdomain",
            received("bob@mail.acme.com"),
            none.clone(),
            entry("Acme", RECV, DAY, 6),
        ),
        row(
            "look-alike domain does not match",
            received("bob@notacme.com"),
            none.clone(),
            Want::NotBillable,
        ),
        row(
            "another gmail.com address is not the client",
            sent(&["someone@gmail.com"]),
            none.clone(),
            Want::NotBillable,
        ),
        row(
            "received mail matches on From only, not To/Cc",
            received("x@other.org").cc(&["jane@acme.com"]),
            none.clone(),
            Want::NotBillable,
        ),
        row(
            "primary client is the first matching To, before any Cc",
            sent(&["x@other.org", "bob@beta.io"]).cc(&["jane@acme.com"]),
            none.clone(),
            entry("Beta", SENT, DAY, 24),
        ),
        row(
            "two matching To: the first wins",
            sent(&["bob@beta.io", "jane@acme.com"]),
            json!({}),
            entry("Beta", SENT, DAY, 24),
        ),
        row(
            "no matching To: first matching Cc",
            sent(&["x@other.org"]).cc(&["jane@acme.com", "bob@beta.io"]),
            none.clone(),
            entry("Acme", SENT, DAY, 24),
        ),
        row(
            "the owner's own addresses are never counterparts",
            sent(&["me@acme.com", "bob@beta.io"]),
            json!({"my_addresses": [ME, "me@acme.com"]}),
            entry("Beta", SENT, DAY, 24),
        ),
        row(
            "keyword: whole word in the subject, needs review",
            received("x@other.org").subject("Re: Widget pricing"),
            none.clone(),
            review("Acme", RECV, DAY, 6),
        )
        .also(&[
            Also::Confidence(0.4),
            Also::Reason("keyword"),
            Also::Description("Review email from x@other.org re: Widget pricing"),
        ]),
        row(
            "keyword match is case-insensitive and waits for review even under a lower min_confidence",
            received("x@other.org").subject("WIDGET pricing"),
            json!({"min_confidence": 0.3}),
            review("Acme", RECV, DAY, 6),
        )
        .also(&[Also::Reason("whatever your minimum confidence")]),
        row(
            "keyword that is only part of a word does not match",
            received("x@other.org").subject("Widgets pricing"),
            none.clone(),
            Want::NotBillable,
        ),
        row(
            "keyword in the body is ignored",
            received("x@other.org")
                .subject("Hello")
                .text("About the Widget order"),
            none.clone(),
            Want::NotBillable,
        ),
        row(
            "an address match wins over a keyword",
            sent(&["bob@acme.com"]).subject("Falcon launch"),
            none.clone(),
            entry("Acme", SENT, DAY, 24),
        ),
        // ── estimates ──────────────────────────────────────────────────────────
        row(
            "sent: new words / drafting rate",
            sent(&["jane@acme.com"]),
            none.clone(),
            entry("Acme", SENT, DAY, 24),
        )
        .also(&[
            Also::Raw(20.6),
            Also::Reason("412 new words at 20 words/minute = 20.6 min"),
        ]),
        row(
            "sent: drafting rate from settings",
            sent(&["jane@acme.com"]).words(400),
            json!({"drafting_words_per_minute": 40}),
            entry("Acme", SENT, DAY, 12),
        )
        .also(&[Also::Raw(10.0)]),
        row(
            "received: words / reading rate + attachments",
            received("jane@acme.com").attachments(2),
            none.clone(),
            entry("Acme", RECV, DAY, 18),
        )
        .also(&[
            Also::Raw(14.0),
            Also::Description(
                "Review email and 2 attachments from jane@acme.com (Acme) re: Contract renewal",
            ),
        ]),
        row(
            "received: attachment minutes from settings",
            received("jane@acme.com").attachments(1),
            json!({"attachment_review_minutes": 10}),
            entry("Acme", RECV, DAY, 12),
        )
        .also(&[Also::Raw(12.0)]),
        row(
            "time stated in the owner's own text is the raw duration",
            sent(&["jane@acme.com"]).text(
                "Attached the revised lease. I spent 2 hours reviewing the indemnity clause.",
            ),
            none.clone(),
            entry("Acme", Activity::Other, DAY, 120),
        )
        .also(&[Also::Raw(120.0), Also::Reason("spent 2 hours")]),
        row(
            "distinct stated times in the owner's text are summed",
            sent(&["jane@acme.com"]).text("Spent 1 hour on the lease and 30 minutes on the memo."),
            json!({}),
            entry("Acme", Activity::Other, DAY, 90),
        )
        .also(&[Also::Raw(90.0), Also::Description("Work for Acme re: Contract renewal")]),
        row(
            "a stated call makes a call entry for the same client",
            sent(&["bob@beta.io"]).text("Thanks for the 30 minute call today, notes below."),
            none.clone(),
            entry("Beta", Activity::Call, DAY, 30),
        ),
        row(
            "a time that is not work is not taken from the owner's text",
            sent(&["jane@acme.com"]).text(
                "The filing deadline is in 2 hours, see the draft attached and sign today please",
            ),
            none.clone(),
            entry("Acme", SENT, DAY, 6),
        )
        .also(&[Also::Raw(0.8)]),
        row(
            "durations stated in received mail are never taken",
            received("jane@acme.com").text("I spent 3 hours on this, please review."),
            none.clone(),
            review("Acme", RECV, DAY, 6),
        )
        .also(&[Also::Raw(0.0), Also::Reason("not used")]),
        // ── rounding, minimum, cap ─────────────────────────────────────────────
        row(
            "rounding up",
            sent(&["jane@acme.com"]).words(430),
            none.clone(),
            entry("Acme", SENT, DAY, 24),
        )
        .also(&[Also::Raw(21.5)]),
        row(
            "rounding to nearest",
            sent(&["jane@acme.com"]).words(430),
            json!({"rounding": "nearest"}),
            entry("Acme", SENT, DAY, 24),
        ),
        row(
            "rounding to nearest goes down below half",
            sent(&["jane@acme.com"]).words(412),
            json!({"rounding": "nearest"}),
            entry("Acme", SENT, DAY, 18),
        ),
        row(
            "rounding down",
            sent(&["jane@acme.com"]).words(430),
            json!({"rounding": "down"}),
            entry("Acme", SENT, DAY, 18),
        ),
        row(
            "quarter-hour increments",
            sent(&["jane@acme.com"]).words(430),
            json!({"billing_increment_minutes": 15}),
            entry("Acme", SENT, DAY, 30),
        ),
        row(
            "minimum entry lifts a short email",
            sent(&["jane@acme.com"]).words(10),
            json!({"billing_increment_minutes": 1, "minimum_entry_minutes": 10}),
            entry("Acme", SENT, DAY, 10),
        )
        .also(&[Also::Raw(0.5), Also::Reason("minimum")]),
        row(
            "rounding down to zero is lifted by the minimum",
            sent(&["jane@acme.com"]).words(10),
            json!({"rounding": "down"}),
            entry("Acme", SENT, DAY, 6),
        ),
        row(
            "a huge email is capped at max_entry_minutes",
            sent(&["jane@acme.com"]).words(20_000),
            none.clone(),
            entry("Acme", SENT, DAY, 480),
        )
        .also(&[Also::Raw(1000.0), Also::Reason("maximum")]),
        row(
            "the cap follows settings",
            sent(&["jane@acme.com"]).words(20_000),
            json!({"max_entry_minutes": 120}),
            entry("Acme", SENT, DAY, 120),
        ),
        // ── money ──────────────────────────────────────────────────────────────
        row(
            "amount from the client's rate",
            sent(&["jane@acme.com"]),
            none.clone(),
            entry("Acme", SENT, DAY, 24),
        )
        .also(&[Also::Rate(300.0), Also::Amount(120.0)]),
        row(
            "amount from the default rate",
            sent(&["bob@beta.io"]),
            none.clone(),
            entry("Beta", SENT, DAY, 24),
        )
        .also(&[Also::Rate(200.0), Also::Amount(80.0), Also::Matter(None)]),
        // ── dates ──────────────────────────────────────────────────────────────
        row(
            "work_date is the Date in UTC by default",
            sent(&["jane@acme.com"]).date("2026-11-24T03:00:00Z"),
            none.clone(),
            entry("Acme", SENT, "2026-11-24", 24),
        ),
        row(
            "work_date across midnight in the user's zone",
            sent(&["jane@acme.com"]).date("2026-11-24T03:00:00Z"),
            json!({"timezone": "America/Los_Angeles"}),
            entry("Acme", SENT, "2026-11-23", 24),
        ),
        row(
            "no Date: not billable",
            sent(&["jane@acme.com"]).no_date(),
            none.clone(),
            Want::NotBillable,
        ),
        // ── calendar ───────────────────────────────────────────────────────────
        row(
            "meeting: DTSTART date in Tokyo is the next day",
            received("jane@acme.com").calendar(event(CalendarMethod::Request)),
            json!({"timezone": "Asia/Tokyo"}),
            Want::Meeting {
                client: "Acme",
                date: "2026-11-24",
                billed: 60,
                uid: "evt-1@acme.com",
                sequence: 2,
            },
        )
        .also(&[Also::Raw(60.0), Also::Description("Meeting: Contract review (Acme)")]),
        row(
            "meeting: DTSTART date in New York is the same day",
            received("jane@acme.com").calendar(event(CalendarMethod::Request)),
            json!({"timezone": "America/New_York"}),
            Want::Meeting {
                client: "Acme",
                date: DAY,
                billed: 60,
                uid: "evt-1@acme.com",
                sequence: 2,
            },
        ),
        row(
            "meeting: client found among attendees",
            sent(&["x@other.org"]).calendar(CalendarEvent {
                organizer: Some(ME.into()),
                attendees: vec![
                    ("x@other.org".into(), PartStat::NeedsAction),
                    ("bob@beta.io".into(), PartStat::NeedsAction),
                ],
                ..event(CalendarMethod::Request)
            }),
            none.clone(),
            Want::Meeting {
                client: "Beta",
                date: DAY,
                billed: 60,
                uid: "evt-1@acme.com",
                sequence: 2,
            },
        ),
        row(
            "meeting without a client is not billable",
            received("x@other.org").calendar(CalendarEvent {
                organizer: Some("x@other.org".into()),
                attendees: vec![(ME.into(), PartStat::NeedsAction)],
                ..event(CalendarMethod::Request)
            }),
            none.clone(),
            Want::NotBillable,
        ),
        row(
            "all-day meeting is not billable",
            received("jane@acme.com").calendar(CalendarEvent {
                start: None,
                end: None,
                start_date: NaiveDate::from_ymd_opt(2026, 11, 23),
                ..event(CalendarMethod::Request)
            }),
            none.clone(),
            Want::NotBillable,
        ),
        row(
            "a re-sent invitation carries its higher sequence",
            received("jane@acme.com").calendar(CalendarEvent {
                sequence: 5,
                end: Some(at("2026-11-24T01:15:00Z")),
                ..event(CalendarMethod::Request)
            }),
            json!({}),
            Want::Meeting {
                client: "Acme",
                date: DAY,
                billed: 108,
                uid: "evt-1@acme.com",
                sequence: 5,
            },
        )
        .also(&[Also::Raw(105.0), Also::Amount(540.0)]),
        row(
            "CANCEL removes the meeting",
            received("jane@acme.com").calendar(CalendarEvent {
                sequence: 3,
                ..event(CalendarMethod::Cancel)
            }),
            none.clone(),
            Want::Cancel {
                uid: "evt-1@acme.com",
                sequence: 3,
            },
        ),
        row(
            "the owner's REPLY with DECLINED removes the meeting",
            sent(&["jane@acme.com"]).calendar(reply(PartStat::Declined)),
            none.clone(),
            Want::Cancel {
                uid: "evt-1@acme.com",
                sequence: 2,
            },
        ),
        row(
            "a REPLY ACCEPTED is not a meeting",
            sent(&["jane@acme.com"]).calendar(reply(PartStat::Accepted)),
            none.clone(),
            Want::NotBillable,
        )
        .also(&[Also::Reason("a reply to an invitation is not a meeting")]),
        row(
            "a client's DECLINED reply is not the owner declining",
            received("jane@acme.com").calendar(CalendarEvent {
                attendees: vec![("jane@acme.com".into(), PartStat::Declined)],
                ..event(CalendarMethod::Reply)
            }),
            none.clone(),
            Want::NotBillable,
        ),
        // ── mail with no work in it ────────────────────────────────────────────
        row(
            "a personal contact at a client is never billed, received",
            received("golf.buddy@acme.com")
                .subject("Saturday tee time")
                .text("Are we still on for 8am? Bring the good clubs."),
            json!({"personal_contacts": ["golf.buddy@acme.com"]}),
            Want::NotBillable,
        )
        .also(&[Also::Reason("personal contacts")]),
        row(
            "a personal contact at a client is never billed, sent",
            sent(&["bob@beta.io", "sister@beta.io"]).subject("Save the date: our wedding"),
            json!({"personal_contacts": ["*@beta.io"]}),
            Want::NotBillable,
        ),
        row(
            "an acknowledgement from the client is not billable",
            received("jane@acme.com")
                .subject("RE: Contract renewal")
                .text("Will do, thanks."),
            none.clone(),
            Want::NotBillable,
        )
        .also(&[Also::Reason("acknowledgement")]),
        row(
            "a German acknowledgement is not billable",
            received("hans@beta.io")
                .subject("AW: Rahmenvertrag")
                .text("Danke, ist erledigt."),
            none.clone(),
            Want::NotBillable,
        ),
        row(
            "a short reply with a question is read",
            received("jane@acme.com")
                .subject("RE: Contract renewal")
                .text("Does clause 7 survive termination?"),
            none.clone(),
            review("Acme", RECV, DAY, 6),
        ),
        row(
            "the owner's own \"ok.\" is not billable",
            sent(&["jane@acme.com"]).subject("Re: Contract renewal").text("ok."),
            none.clone(),
            Want::NotBillable,
        ),
        row(
            "the owner's bare FYI forward is not billable",
            sent(&["bob@acme.com"])
                .subject("FW: Contract renewal")
                .text("FYI - see below."),
            none.clone(),
            Want::NotBillable,
        )
        .also(&[Also::Reason("forward")]),
        row(
            "the owner's forward with advice of their own is billed",
            sent(&["bob@acme.com"]).subject("Fwd: Contract renewal").text(
                "Bob, their change to the notice clause is fine but we cannot accept the new cap; I suggest we hold at two times fees.",
            ),
            none.clone(),
            review("Acme", SENT, DAY, 6),
        ),
        row(
            "a one-line fax request is clerical",
            received("paralegal@beta.io")
                .subject("Signed agreement")
                .text("Please fax the signed agreement to 212-555-0100 and 212-555-0111"),
            none.clone(),
            Want::NotBillable,
        )
        .also(&[Also::Reason("clerical")]),
        row(
            "a keyword-only message the owner was blind-copied on is not billable",
            received("assistant@lawfirm.com")
                .to(&["ops@lawfirm.com"])
                .subject("Widget confirmation form"),
            none.clone(),
            Want::NotBillable,
        )
        .also(&[Also::Reason("blind copy")]),
        row(
            "a keyword-only message the owner is copied on waits for review",
            received("assistant@lawfirm.com")
                .to(&["ops@lawfirm.com"])
                .cc(&[ME])
                .subject("Widget confirmation form"),
            none.clone(),
            review("Acme", RECV, DAY, 6),
        ),
        row(
            "a keyword-only newsletter without List headers is not billable",
            received("editor@legalnews.example")
                .subject("Weekly digest: Widget litigation round-up")
                .text("This week in Widget litigation: three new filings. To unsubscribe, reply STOP."),
            none.clone(),
            Want::NotBillable,
        )
        .also(&[Also::Reason("newsletter")]),
        row(
            "a keyword-only circular to undisclosed recipients is not billable",
            received("desk@exchange.example")
                .to(&[])
                .subject("Falcon contract margin changes"),
            none.clone(),
            Want::NotBillable,
        ),
        row(
            "a meeting request without a time range is not a six-minute email",
            received("jane@acme.com").text("Can we meet Tuesday to go through the renewal terms?"),
            none.clone(),
            Want::NotBillable,
        )
        .also(&[Also::Reason("arranging a call or meeting")]),
        row(
            "a time you accept in your own short reply is a meeting of that length, on its day",
            sent(&["jane@acme.com"])
                .subject("Re: renewal terms")
                .text("Jane, Tuesday 2-2:30 works for me. Talk then."),
            none.clone(),
            review("Acme", Activity::Meeting, "2026-11-24", 30),
        )
        .also(&[Also::Reason("you accepted a meeting")]),
        row(
            "a time the client accepts is not your meeting to bill from their mail",
            received("jane@acme.com")
                .subject("Re: renewal terms")
                .text("Tuesday 2-2:30 works for me."),
            none.clone(),
            Want::NotBillable,
        ),
        row(
            "a golf invitation to a person at a client is social mail, not work",
            sent(&["jane@acme.com"])
                .subject("Saturday")
                .text("Jane, are you up for golf on Saturday? I have a tee time at 9 at Brookside."),
            none.clone(),
            Want::NotBillable,
        )
        .also(&[Also::Reason("personal or social mail (\"golf\")")]),
        row(
            "thanks for dinner in a work thread is social mail; the thread's subject is not its topic",
            received("jane@acme.com")
                .subject("Re: Contract renewal")
                .text("Thanks again for dinner last night, it was great to see you and Tom. Let's do it again soon."),
            none.clone(),
            Want::NotBillable,
        ),
        row(
            "a pleasantry beside work is work",
            received("jane@acme.com")
                .subject("Re: Contract renewal")
                .text("Thanks for dinner last night. Could you look at the indemnity section of the agreement before Friday?"),
            none.clone(),
            review("Acme", RECV, DAY, 6),
        ),
        // ── evidence of work: mail with people at a client shows work, or is not billed ──
        row(
            "banter with a friend at a client, with no social cue word, is not billed",
            received("pal@acme.com")
                .subject("Re: weekend")
                .text("Great to see you and the kids! The pheasant trip was fun, we should do it again next year. Say hi to your wife."),
            none.clone(),
            Want::NotBillable,
        )
        .also(&[Also::Reason("reads as personal")]),
        row(
            "congratulations to a client contact are not billed",
            sent(&["jane@acme.com"])
                .subject("Congratulations!")
                .text("Congratulations on the new baby! Hope you and your wife are doing well. Enjoy the time with your family."),
            none.clone(),
            Want::NotBillable,
        )
        .also(&[Also::Reason("reads as personal")]),
        row(
            "a job search with a friend at a client is not billed",
            sent(&["jane@acme.com"])
                .subject("my resume")
                .text("Thanks for passing my resume on to your recruiter. I would love to interview for the position if the job is still open."),
            none.clone(),
            Want::NotBillable,
        )
        .also(&[Also::Reason("reads as personal")]),
        // ── clients found beyond the counterparts ──────────────────────────────
        row(
            "a client only in the forwarded history waits for review",
            received("colleague@lawfirm.com")
                .subject("FW: new account agreement")
                .thread(&["me@lawfirm.com", "ops@beta.io"])
                .text("Can you look at their changes before Friday?"),
            none.clone(),
            review("Beta", RECV, DAY, 6),
        )
        .also(&[Also::Confidence(0.3), Also::Reason("quoted or forwarded")]),
        row(
            "a colleague's mail to you with the client copied waits for review",
            received("tom@lawfirm.com")
                .cc(&["jane@acme.com"])
                .text("Jane wants our view on the liability cap by Friday. Can you draft a reply?"),
            none.clone(),
            review("Acme", RECV, DAY, 6),
        )
        .also(&[Also::Confidence(0.3), Also::Reason("in To or Cc of mail you received")]),
        row(
            "a colleague's mail to the client with you only in Cc is not yours to bill",
            received("tom@lawfirm.com")
                .to(&["jane@acme.com"])
                .cc(&[ME])
                .text("Jane, the wire details are below. Can you confirm receipt?"),
            none.clone(),
            Want::NotBillable,
        ),
        row(
            "a counterpart match wins over the quoted history",
            received("jane@acme.com").thread(&["ops@beta.io"]),
            none.clone(),
            entry("Acme", RECV, DAY, 6),
        ),
        row(
            "a client's affiliate domain from aliases matches like a domain",
            received("trader@jaron.com"),
            json!({"clients": [{"name": "Goldman Sachs", "domains": ["gs.com"], "aliases": ["jaron.com", "J. Aron"]}]}),
            entry("Goldman Sachs", RECV, DAY, 6),
        ),
        row(
            "a client's affiliate name from aliases matches the subject like a keyword",
            received("ops@lawfirm.com").subject("RE: J. Aron authorization to sign"),
            json!({"clients": [{"name": "Goldman Sachs", "domains": ["gs.com"], "aliases": ["J. Aron"]}]}),
            review("Goldman Sachs", RECV, DAY, 6),
        ),
        // ── meeting requests without a calendar part ───────────────────────────
        row(
            "a text-only meeting request is a meeting of its When: length",
            received("jane@acme.com")
                .subject("Updated: contract renewal call")
                .text("When: Tuesday, November 24, 2026 2:00 PM-2:30 PM (GMT-05:00) Eastern Time.\nWhere: Conference room B"),
            none.clone(),
            entry("Acme", Activity::Meeting, DAY, 30),
        )
        .also(&[Also::Raw(30.0)]),
        // ── matters: number, then keyword, then the only matter ───────────────
        row(
            "matter by its number in the subject, any case",
            sent(&["jane@acme.com"]).subject("Re: a-2 signing"),
            matters(),
            entry("Acme", SENT, DAY, 24),
        )
        .also(&[
            Also::Matter(Some("A-2")),
            Also::Reason("matter A-2 (Merger): its number is in the subject"),
        ]),
        row(
            "matter number is a whole token",
            sent(&["jane@acme.com"]).subject("A-20 signing"),
            matters(),
            entry("Acme", SENT, DAY, 24),
        )
        .also(&[Also::Matter(None), Also::Reason("no matter")]),
        row(
            "matter by its keyword in the subject",
            sent(&["jane@acme.com"]).subject("Lease renewal"),
            matters(),
            entry("Acme", SENT, DAY, 24),
        )
        .also(&[
            Also::Matter(Some("A-1")),
            Also::Reason("matter A-1 (Lease) by the keyword \"lease\""),
        ]),
        row(
            "a matter number beats another matter's keyword",
            sent(&["jane@acme.com"]).subject("A-2: the lease schedule"),
            matters(),
            entry("Acme", SENT, DAY, 24),
        )
        .also(&[Also::Matter(Some("A-2"))]),
        row(
            "two matter numbers in the subject need review and name both",
            sent(&["jane@acme.com"]).subject("A-1 / A-2 conflicts"),
            matters(),
            review("Acme", SENT, DAY, 24),
        )
        .also(&[
            Also::Matter(None),
            Also::Reason("the subject fits matters A-1 (Lease) and A-2 (Merger); choose one"),
        ]),
        row(
            "two matters' keywords in the subject need review",
            received("jane@acme.com").subject("Lease and merger timing"),
            matters(),
            review("Acme", RECV, DAY, 6),
        )
        .also(&[Also::Matter(None), Also::Reason("choose one")]),
        row(
            "no matter named for a client with several: none, not a guess",
            sent(&["jane@acme.com"]),
            matters(),
            entry("Acme", SENT, DAY, 24),
        )
        .also(&[Also::Matter(None), Also::TaskCode(None)]),
        row(
            "the client's only matter when the subject names none",
            sent(&["jane@acme.com"]),
            none.clone(),
            entry("Acme", SENT, DAY, 24),
        )
        .also(&[
            Also::Matter(Some("Acme-001")),
            Also::Reason("matter Acme-001, the only matter of Acme"),
        ]),
        // ── task codes: the matter's default, only when it uses task codes ─────
        row(
            "task code from a matter that uses task codes",
            sent(&["jane@acme.com"]).subject("Merger closing"),
            matters(),
            entry("Acme", SENT, DAY, 24),
        )
        .also(&[Also::Matter(Some("A-2")), Also::TaskCode(Some("L120"))]),
        row(
            "no task code for a matter without task codes",
            sent(&["jane@acme.com"]).subject("Lease renewal"),
            matters(),
            entry("Acme", SENT, DAY, 24),
        )
        .also(&[Also::Matter(Some("A-1")), Also::TaskCode(None)]),
        row(
            "no task code invented when the matter has no default",
            sent(&["jane@acme.com"]).subject("Patent filing"),
            matters(),
            entry("Acme", SENT, DAY, 24),
        )
        .also(&[Also::Matter(Some("A-3")), Also::TaskCode(None)]),
        // ── activity codes (UTBMS A-codes) ─────────────────────────────────────
        row(
            "received mail is review: A104",
            received("jane@acme.com"),
            none.clone(),
            entry("Acme", RECV, DAY, 6),
        )
        .also(&[Also::ActivityCode("A104")]),
        row(
            "a long message of your own is drafting: A103",
            sent(&["jane@acme.com"]).words(412),
            none.clone(),
            entry("Acme", SENT, DAY, 24),
        )
        .also(&[Also::ActivityCode("A103"), Also::Reason("412 new words")]),
        row(
            "a document you send is drafting: A103",
            sent(&["jane@acme.com"]).words(40).attachments(1),
            none.clone(),
            entry("Acme", SENT, DAY, 6),
        )
        .also(&[Also::ActivityCode("A103")]),
        row(
            "a forwarded attachment is not drafting",
            sent(&["jane@acme.com"]).subject("Fwd: lease").words(40).attachments(1),
            none.clone(),
            entry("Acme", SENT, DAY, 6),
        )
        .also(&[Also::ActivityCode("A106")]),
        row(
            "a short note to the client's people: A106",
            sent(&["jane@acme.com"]).words(40),
            none.clone(),
            entry("Acme", SENT, DAY, 6),
        )
        .also(&[Also::ActivityCode("A106")]),
        row(
            "a note to another law firm, the client copied: A107",
            sent(&["kim@smithlaw.com"]).cc(&["jane@acme.com"]).words(40),
            none.clone(),
            entry("Acme", SENT, DAY, 6),
        )
        .also(&[Also::ActivityCode("A107"), Also::Reason("another law firm")]),
        row(
            "a note to another party, the client copied: A108",
            sent(&["x@other.org"]).cc(&["jane@acme.com"]).words(40),
            none.clone(),
            entry("Acme", SENT, DAY, 6),
        )
        .also(&[Also::ActivityCode("A108")]),
        row(
            "a colleague at your own firm is not another law firm: A105",
            sent(&["pat@smithlaw.com"])
                .from("me@smithlaw.com")
                .subject("Widget")
                .words(40),
            json!({"my_addresses": ["me@smithlaw.com"]}),
            review("Acme", SENT, DAY, 6),
        )
        .also(&[Also::ActivityCode("A105")]),
        row(
            "a meeting with the client's people only: A106",
            received("jane@acme.com").calendar(event(CalendarMethod::Request)),
            none.clone(),
            Want::Meeting {
                client: "Acme",
                date: DAY,
                billed: 60,
                uid: "evt-1@acme.com",
                sequence: 2,
            },
        )
        .also(&[Also::ActivityCode("A106")]),
        row(
            "a meeting with others present is attending: A109",
            received("jane@acme.com").calendar(CalendarEvent {
                attendees: vec![
                    ("jane@acme.com".into(), PartStat::Accepted),
                    ("kim@smithlaw.com".into(), PartStat::Accepted),
                    (ME.into(), PartStat::NeedsAction),
                ],
                ..event(CalendarMethod::Request)
            }),
            none.clone(),
            Want::Meeting {
                client: "Acme",
                date: DAY,
                billed: 60,
                uid: "evt-1@acme.com",
                sequence: 2,
            },
        )
        .also(&[Also::ActivityCode("A109"), Also::Matter(Some("Acme-001"))]),
        // ── triage: automated mail is never billable, even from a client ───────
        row(
            "List-Unsubscribe",
            received("jane@acme.com").list_unsubscribe(),
            none.clone(),
            Want::Automated,
        ),
        row(
            "List-Id",
            received("jane@acme.com").list_id(),
            none.clone(),
            Want::Automated,
        ),
        row(
            "List-Id on the owner's own post to a list",
            sent(&["list@acme.com"]).list_id(),
            none.clone(),
            Want::Automated,
        ),
        row(
            "Precedence bulk",
            received("jane@acme.com").precedence("bulk"),
            none.clone(),
            Want::Automated,
        ),
        row(
            "Precedence list",
            received("jane@acme.com").precedence("List"),
            none.clone(),
            Want::Automated,
        ),
        row(
            "Precedence junk",
            received("jane@acme.com").precedence("junk"),
            none.clone(),
            Want::Automated,
        ),
        row(
            "another Precedence is a person's mail",
            received("jane@acme.com").precedence("first-class"),
            none.clone(),
            entry("Acme", RECV, DAY, 6),
        ),
        row(
            "Auto-Submitted auto-generated",
            received("jane@acme.com").auto_submitted("auto-generated"),
            none.clone(),
            Want::Automated,
        ),
        row(
            "Auto-Submitted auto-replied",
            received("jane@acme.com").auto_submitted("auto-replied"),
            none.clone(),
            Want::Automated,
        ),
        row(
            "Auto-Submitted no is a person's mail",
            received("jane@acme.com").auto_submitted("no"),
            none.clone(),
            entry("Acme", RECV, DAY, 6),
        ),
        row(
            "ignore_senders by address",
            received("alerts@acme.com"),
            none.clone(),
            Want::Automated,
        ),
        row(
            "ignore_senders by *@domain, subdomains included",
            received("ops@eu.tickets.acme.com"),
            json!({"ignore_senders": ["*@tickets.acme.com"]}),
            Want::Automated,
        ),
        row(
            "a person whose name starts like a machine word is not automated",
            received("bouncer.jane@acme.com"),
            none.clone(),
            entry("Acme", RECV, DAY, 6),
        ),
        row(
            "noreply inside a longer name is not automated",
            received("snoreplyson@acme.com"),
            none.clone(),
            entry("Acme", RECV, DAY, 6),
        ),
    ];
    for (name, local) in [
        ("local part noreply", "noreply"),
        ("local part no-reply", "no-reply"),
        ("local part no_reply", "no_reply"),
        ("local part donotreply", "donotreply"),
        ("local part do-not-reply", "do-not-reply"),
        ("local part notifications", "notifications"),
        ("local part notification", "notification"),
        ("local part mailer-daemon", "mailer-daemon"),
        ("local part postmaster", "postmaster"),
        ("local part bounce", "bounce"),
        ("local part bounces+tag", "bounces+1234"),
        ("local part noreply+tag", "noreply+invoices"),
        ("local part in capitals", "NoReply"),
    ] {
        let from = format!("{local}@acme.com");
        rows.push(row(name, received(&from), json!({}), Want::Automated));
    }
    rows
}

/// Runs triage then the analyzer on one row; an empty Vec means the row holds.
fn check(row: Row) -> Vec<String> {
    let name = row.name;
    let mut problems = Vec::new();
    let mut fail = |what: String| problems.push(format!("{name}: {what}"));
    let settings = Settings::from_json(base())
        .and_then(|s| {
            let patch: SettingsPatch = serde_json::from_value(row.patch.clone())
                .unwrap_or_else(|e| panic!("{name}: bad patch: {e}"));
            s.apply(patch)
        })
        .unwrap_or_else(|e| panic!("{name}: bad settings: {e}"));
    let mut email = row.mail.0;
    email.id = format!("<{}>", name.replace(' ', "-"));
    email.thread_id = Some("thread-1".into());

    if let Some(why) = triage::automated(&email, &settings) {
        if row.want != Want::Automated {
            fail(format!(
                "triaged as automated ({why}), wanted {:?}",
                row.want
            ));
        }
        return problems;
    }
    if row.want == Want::Automated {
        fail("not triaged as automated".into());
        return problems;
    }
    let analysis = rules::analyze(&email, &settings);
    if analysis.message_id != email.id {
        fail(format!("message_id {}", analysis.message_id));
    }
    if analysis.reasons.is_empty() {
        fail("no reasons given".into());
    }
    let reasons = analysis.reasons.join(" | ");
    let got_entry = match (&analysis.outcome, &row.want) {
        (
            Outcome::Entry(e),
            Want::Entry {
                client,
                activity,
                date,
                billed,
                status,
            },
        ) => {
            if e.activity != *activity || e.status != *status {
                fail(format!(
                    "activity/status {:?}/{:?}, wanted {activity:?}/{status:?}",
                    e.activity, e.status
                ));
            }
            Some((e, *client, *date, *billed))
        }
        (
            Outcome::Meeting {
                entry,
                uid,
                sequence,
            },
            Want::Meeting {
                client,
                date,
                billed,
                uid: want_uid,
                sequence: want_seq,
            },
        ) => {
            if uid != want_uid
                || sequence != want_seq
                || entry.event_uid.as_deref() != Some(*want_uid)
            {
                fail(format!(
                    "uid/sequence {uid}/{sequence}, wanted {want_uid}/{want_seq}"
                ));
            }
            if entry.activity != Activity::Meeting {
                fail(format!("activity {:?}", entry.activity));
            }
            Some((entry, *client, *date, *billed))
        }
        (
            Outcome::CancelMeeting { uid, sequence },
            Want::Cancel {
                uid: u,
                sequence: s,
            },
        ) => {
            if uid != u || sequence != s {
                fail(format!("cancel {uid}/{sequence}, wanted {u}/{s}"));
            }
            None
        }
        (Outcome::NotBillable, Want::NotBillable) => None,
        (got, want) => {
            fail(format!("got {got:?}, wanted {want:?} (reasons: {reasons})"));
            return problems;
        }
    };
    if let Some((e, client, date, billed)) = got_entry {
        if e.client.as_deref() != Some(client) {
            fail(format!("client {:?}, wanted {client}", e.client));
        }
        if e.work_date.to_string() != date {
            fail(format!("work_date {}, wanted {date}", e.work_date));
        }
        if e.billed_minutes != billed {
            fail(format!(
                "billed {} min, wanted {billed} (reasons: {reasons})",
                e.billed_minutes
            ));
        }
        // Invariants every entry keeps.
        let ok = e.message_id == email.id
            && e.thread_id.as_deref() == Some("thread-1")
            && e.analyzer == "rules"
            && e.billable
            && e.currency == settings.currency
            && !e.description.is_empty()
            && e.description.chars().count() <= 300
            && !e.description.contains("http")
            && e.billed_minutes <= settings.max_entry_minutes;
        if !ok {
            fail(format!("entry invariants broken: {e:?}"));
        }
        for a in &row.also {
            let bad = match *a {
                Also::Raw(v) => (e.duration_minutes - v).abs() > 1e-9,
                Also::Amount(v) => (e.amount - v).abs() > 1e-9,
                Also::Rate(v) => (e.hourly_rate - v).abs() > 1e-9,
                Also::Confidence(v) => (e.confidence - v).abs() > 1e-9,
                Also::Matter(m) => e.matter.as_deref() != m,
                Also::TaskCode(c) => e.task_code.as_deref() != c,
                Also::ActivityCode(c) => e.activity_code.as_deref() != Some(c),
                Also::Reason(r) => !reasons.contains(r),
                Also::Description(d) => e.description != d,
            };
            if bad {
                fail(format!("{a:?} does not hold: {e:?} (reasons: {reasons})"));
            }
        }
    } else {
        for a in &row.also {
            if let Also::Reason(r) = a {
                if !reasons.contains(r) {
                    fail(format!("no reason contains {r:?}: {reasons}"));
                }
            } else {
                fail(format!("{a:?} asked of a row without an entry"));
            }
        }
    }
    problems
}

#[test]
fn spec_section_4_table() {
    let rows = rows();
    let count = rows.len();
    let mut names: Vec<&str> = rows.iter().map(|r| r.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count, "row names must be unique");
    let problems: Vec<String> = rows.into_iter().flat_map(check).collect();
    assert!(
        problems.is_empty(),
        "{} of {count} rows failed:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn every_message_yields_exactly_one_analysis_in_order() {
    use super::Analyzer;
    let settings = Settings::from_json(base()).unwrap_or_else(|e| panic!("{e}"));
    let emails: Vec<Email> = rows()
        .into_iter()
        .enumerate()
        .map(|(i, r)| Email {
            id: format!("m{i}"),
            ..r.mail.0
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let out = rt.block_on(rules::RulesAnalyzer.analyze(&emails, &settings, &Default::default()));
    assert_eq!(rules::RulesAnalyzer.name(), "rules");
    assert_eq!(out.len(), emails.len());
    for (e, a) in emails.iter().zip(&out) {
        match a {
            Ok(a) => assert_eq!(a.message_id, e.id),
            Err(err) => panic!("{}: {err}", e.id),
        }
    }
}
