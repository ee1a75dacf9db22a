//! The offline analyzer (`rules`): SPEC §4 applied deterministically, no network.
//!
//! Triage is the pipeline's job and runs first; [`analyze`] still accepts any message
//! and never panics.

use async_trait::async_trait;
use chrono::{DateTime, Datelike, NaiveDate, Utc};

use super::evidence::{self, Verdict};
use super::{Analysis, AnalyzeError, Analyzer, Outcome, codes, duration, matter};
use crate::domain::{
    Activity, Address, CalendarEvent, CalendarMethod, ClientRule, Email, EntryStatus, PartStat,
    Rounding, Settings, TimeEntry, WorkDate, free_mail,
};

/// Recorded as `TimeEntry::analyzer`.
pub const ANALYZER_NAME: &str = "rules";

/// Confidence of a match on one of the client's addresses.
pub const CONFIDENCE_ADDRESS: f64 = 0.9;
/// Confidence of a match on the client's domain (or a subdomain).
pub const CONFIDENCE_DOMAIN: f64 = 0.85;
/// Confidence of a Subject keyword match: below the default `min_confidence` (0.5) on
/// purpose, so such entries wait for review.
pub const CONFIDENCE_KEYWORD: f64 = 0.4;
/// Confidence of a client found only in the quoted or forwarded history: work for
/// the client is likely, but it waits for review.
pub const CONFIDENCE_THREAD: f64 = 0.3;

/// Replies this short with no question and nothing attached are acknowledgements
/// ("will do", "ok, thanks"): nothing to read or do.
pub const ACK_MAX_WORDS_RECEIVED: usize = 12;
/// The owner's own acknowledgements ("ok.", "will do", "thanks") are shorter.
pub const ACK_MAX_WORDS_SENT: usize = 5;
/// The owner's forward with at most this many words ("FYI", "see below") adds no work.
pub const BARE_FORWARD_MAX_WORDS: usize = 6;
/// A clerical note (fax it, a copy, contact details) is at most this long.
pub const CLERICAL_MAX_WORDS: usize = 20;
/// A note that only arranges a call or meeting is at most this long.
pub const SCHEDULING_MAX_WORDS: usize = 80;

/// Social mail (golf, a wedding, thanks for dinner) is at most this long; a longer
/// message with a social word in it is usually work with a pleasantry.
pub const SOCIAL_MAX_WORDS: usize = 120;

/// Largest raw duration recorded on an entry: one day.
pub const MAX_RAW_MINUTES: f64 = 24.0 * 60.0;

/// Longest description; the store and clients' invoices expect a short line.
pub const MAX_DESCRIPTION_CHARS: usize = 300;

/// The owner wrote this message: From is one of `my_addresses`, or it carries the
/// `Sent` label (Takeout mbox `X-Gmail-Labels`, Gmail's `SENT` label id).
pub fn is_from_owner(email: &Email, settings: &Settings) -> bool {
    email
        .from
        .as_ref()
        .is_some_and(|a| settings.is_mine(&a.email))
        || email
            .labels
            .iter()
            .any(|l| l.trim().eq_ignore_ascii_case("sent"))
}

/// How a client was recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchedBy {
    /// The counterpart is one of the client's `addresses`.
    Address,
    /// The counterpart's domain is this client domain or a subdomain of it.
    Domain(String),
    /// No address matched; this keyword is a whole word of the Subject.
    Keyword(String),
    /// Nothing else matched; an address of the quoted or forwarded history has this
    /// client domain (or is one of the client's addresses).
    Thread(String),
    /// Nothing else matched; this address of the client's is in To or Cc of mail
    /// the owner received from someone else (a colleague passing client work on).
    Copied(String),
}

/// A client and the evidence for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientMatch<'a> {
    /// The configured client.
    pub client: &'a ClientRule,
    /// How it matched; decides the confidence.
    pub by: MatchedBy,
    /// The counterpart that matched (`None` for keyword matches).
    pub address: Option<Address>,
}

impl ClientMatch<'_> {
    /// The confidence this kind of evidence gives.
    pub fn confidence(&self) -> f64 {
        match self.by {
            MatchedBy::Address => CONFIDENCE_ADDRESS,
            MatchedBy::Domain(_) => CONFIDENCE_DOMAIN,
            MatchedBy::Keyword(_) => CONFIDENCE_KEYWORD,
            MatchedBy::Thread(_) | MatchedBy::Copied(_) => CONFIDENCE_THREAD,
        }
    }

    /// "jane@acme.com (client Acme, by domain acme.com)".
    pub fn describe(&self) -> String {
        let name = &self.client.name;
        match (&self.by, &self.address) {
            (MatchedBy::Address, Some(a)) => format!("{} (client {name}, by address)", a.email),
            (MatchedBy::Domain(d), Some(a)) => {
                format!("{} (client {name}, by domain {d})", a.email)
            }
            (MatchedBy::Keyword(k), _) => {
                format!(
                    "no client's address; client {name} by the keyword \"{k}\" in the subject, a weaker match"
                )
            }
            (MatchedBy::Thread(a), _) => format!(
                "no counterpart or subject keyword; client {name} by {a} in the quoted or forwarded mail, a weaker match"
            ),
            (MatchedBy::Copied(a), _) => format!(
                "no counterpart or subject keyword; client {name} by {a} in To or Cc of mail you received, a weaker match"
            ),
            (_, None) => format!("client {name}"),
        }
    }
}

/// Whether `domain` is `client_domain` or a subdomain of it (`mail.acme.com` is
/// `acme.com`; `notacme.com` is not).
fn domain_matches(domain: &str, client_domain: &str) -> bool {
    domain == client_domain
        || domain
            .strip_suffix(client_domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// The client an address belongs to. Within one address an address match beats a
/// domain match, and the most specific domain wins; then settings order.
pub fn client_for_address<'a>(
    address: &Address,
    settings: &'a Settings,
) -> Option<ClientMatch<'a>> {
    if let Some(c) = settings
        .clients
        .iter()
        .find(|c| c.addresses.contains(&address.email))
    {
        return Some(ClientMatch {
            client: c,
            by: MatchedBy::Address,
            address: Some(address.clone()),
        });
    }
    let domain = address.domain();
    if domain.is_empty() {
        return None;
    }
    settings
        .clients
        .iter()
        .flat_map(|c| c.domains.iter().map(move |d| (c, d)))
        .filter(|(_, d)| domain_matches(domain, d))
        // max_by_key keeps the last maximum; reverse first so settings order breaks ties.
        .rev()
        .max_by_key(|(_, d)| d.len())
        .map(|(c, d)| ClientMatch {
            client: c,
            by: MatchedBy::Domain(d.clone()),
            address: Some(address.clone()),
        })
}

/// The people on the other side: To then Cc for the owner's mail, From otherwise;
/// the owner's own addresses never count.
pub fn counterparts<'e>(email: &'e Email, settings: &Settings) -> Vec<&'e Address> {
    let list: Vec<&Address> = if is_from_owner(email, settings) {
        email.to.iter().chain(email.cc.iter()).collect()
    } else {
        email.from.iter().collect()
    };
    list.into_iter()
        .filter(|a| !settings.is_mine(&a.email))
        .collect()
}

/// The message's client: the first counterpart that belongs to a client (so the first
/// matching To, else the first matching Cc), else a Subject keyword.
pub fn match_client<'a>(email: &Email, settings: &'a Settings) -> Option<ClientMatch<'a>> {
    counterparts(email, settings)
        .into_iter()
        .find_map(|a| client_for_address(a, settings))
        .or_else(|| keyword_match(&email.subject, settings))
        .or_else(|| copied_match(email, settings))
        .or_else(|| thread_match(email, settings))
}

/// For mail a colleague sent to the owner (To, not just Cc), the first client
/// address among its other recipients (To, then Cc): client work passed on. The
/// sender is the counterpart (SPEC §4), so the client is only copied: the match keeps
/// no address and waits for review. A colleague is someone at one of the owner's own
/// domains (a free-mail domain is nobody's firm); mail from anyone else with a client
/// in Cc stays unmatched, as the spec has it.
fn copied_match<'a>(email: &Email, settings: &'a Settings) -> Option<ClientMatch<'a>> {
    let from_colleague = email.from.as_ref().is_some_and(|f| {
        !settings.is_mine(&f.email)
            && !free_mail::is_free_mail(f.domain())
            && settings.is_my_domain(f.domain())
    });
    let to_owner = email.to.iter().any(|a| settings.is_mine(&a.email));
    if !from_colleague || !to_owner {
        return None;
    }
    weak_match(
        email.to.iter().chain(&email.cc),
        settings,
        MatchedBy::Copied,
    )
}

/// The first client address among `people` who are neither the owner nor a personal
/// contact, as a weaker match `by` names: the person is no counterpart of the
/// message, so the match keeps no address.
fn weak_match<'e, 'a>(
    people: impl Iterator<Item = &'e Address>,
    settings: &'a Settings,
    by: fn(String) -> MatchedBy,
) -> Option<ClientMatch<'a>> {
    people
        .filter(|a| !settings.is_mine(&a.email) && !settings.is_personal_contact(&a.email))
        .find_map(|a| client_for_address(a, settings))
        .map(|m| ClientMatch {
            client: m.client,
            by: by(m.address.map(|a| a.email).unwrap_or_default()),
            address: None,
        })
}

/// The person a message is with, lower-case: the client's address it matched, else
/// its first counterpart. What a rejected entry teaches later scans is kept by it.
pub fn counterpart(email: &Email, settings: &Settings) -> Option<String> {
    let people = counterparts(email, settings);
    people
        .iter()
        .find(|a| client_for_address(a, settings).is_some())
        .or(people.first())
        .map(|a| a.email.to_lowercase())
        .filter(|a| !a.is_empty())
}

/// Whether the message was judged by who it is with rather than what it says: no
/// client matched it, or a personal contact is on it. Such a judgement changes with
/// the clients and contacts, so a scan under other settings examines it again.
pub fn judged_by_who(email: &Email, settings: &Settings) -> bool {
    personal_contact(email, settings).is_some() || match_client(email, settings).is_none()
}

/// The first address of the quoted or forwarded history that belongs to a client.
/// The person is not a counterpart of this message, so the match keeps no address.
fn thread_match<'a>(email: &Email, settings: &'a Settings) -> Option<ClientMatch<'a>> {
    weak_match(email.thread_addresses.iter(), settings, MatchedBy::Thread)
}

/// The personal contact among the message's people, if any (SPEC §3b: mail to or
/// from them is never billed, in either direction).
fn personal_contact<'e>(email: &'e Email, settings: &Settings) -> Option<&'e Address> {
    email
        .from
        .iter()
        .chain(email.to.iter())
        .chain(email.cc.iter())
        .find(|a| settings.is_personal_contact(&a.email))
}

/// The first client (in settings order) with a keyword that is a whole word of the
/// subject, compared case-insensitively. Bodies are never searched: a keyword there is
/// too weak to be evidence.
pub fn keyword_match<'a>(subject: &str, settings: &'a Settings) -> Option<ClientMatch<'a>> {
    let subject = subject.to_lowercase();
    settings.clients.iter().find_map(|c| {
        c.keywords
            .iter()
            .find(|k| contains_whole_word(&subject, &k.to_lowercase()))
            .map(|k| ClientMatch {
                client: c,
                by: MatchedBy::Keyword(k.clone()),
                address: None,
            })
    })
}

/// `needle` occurs in `hay` with no letter, digit or `_` touching it on either side.
pub(crate) fn contains_whole_word(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    let word = |c: char| c.is_alphanumeric() || c == '_';
    hay.match_indices(needle).any(|(i, m)| {
        let before = hay[..i].chars().next_back();
        let after = hay[i + m.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

/// Analyzes one message under SPEC §4. Pure apart from the entry's id and created_at.
///
/// Decisions where the SPEC is silent:
/// - No usable Date → not billable: a guessed work date would put time on the wrong day.
/// - The owner's stated time replaces the estimate and sets the activity: `call` when
///   a taken phrase's clause speaks of a call or phone, `meeting` for a meeting, else
///   `other`
///   (the time is work the email reports, not the writing of it). The client is still
///   the one the addresses give.
/// - Calendar: all-day events and events without both start and end are not billable
///   (their length is unknown, and all-day entries are mostly out-of-office or
///   conferences); an end before the start is not billable. Methods other than
///   REQUEST/CANCEL/REPLY (e.g. PUBLISH) are analyzed as ordinary mail. A CANCEL needs
///   no client: it only removes an entry with the same UID if there is one.
pub fn analyze(email: &Email, settings: &Settings) -> Analysis {
    let mut reasons = Vec::new();
    if let Some(a) = personal_contact(email, settings) {
        reasons.push(format!(
            "{} is one of your personal contacts: their mail is never billed",
            a.email
        ));
        return Analysis {
            message_id: email.id.clone(),
            outcome: Outcome::NotBillable,
            reasons,
            features: None,
        };
    }
    let calendar_outcome = email
        .calendar
        .as_ref()
        .and_then(|event| calendar(email, event, settings, &mut reasons));
    let mut features = None;
    let outcome = match calendar_outcome {
        Some(outcome) => outcome,
        None => message(email, settings, &mut reasons, &mut features),
    };
    Analysis {
        message_id: email.id.clone(),
        outcome,
        reasons,
        features,
    }
}

/// The offline analyzer: [`analyze`] for each message.
#[derive(Debug, Clone, Copy, Default)]
pub struct RulesAnalyzer;

#[async_trait]
impl Analyzer for RulesAnalyzer {
    fn name(&self) -> String {
        ANALYZER_NAME.to_owned()
    }

    fn analyze_now(&self, email: &Email, settings: &Settings) -> Option<Analysis> {
        Some(analyze(email, settings))
    }

    async fn analyze(
        &self,
        emails: &[Email],
        settings: &Settings,
        _meter: &super::Meter,
    ) -> Vec<Result<Analysis, AnalyzeError>> {
        emails.iter().map(|e| Ok(analyze(e, settings))).collect()
    }
}

/// Calendar messages; `None` hands the message to the ordinary mail rules.
fn calendar(
    email: &Email,
    event: &CalendarEvent,
    settings: &Settings,
    reasons: &mut Vec<String>,
) -> Option<Outcome> {
    let uid = event.uid.trim();
    let known = matches!(
        event.method,
        CalendarMethod::Request | CalendarMethod::Cancel | CalendarMethod::Reply
    );
    if !known {
        return None;
    }
    if uid.is_empty() {
        reasons.push("the calendar invitation has no UID, so it cannot be tracked".into());
        return Some(Outcome::NotBillable);
    }
    let uid = uid.to_owned();
    let sequence = event.sequence;
    match event.method {
        CalendarMethod::Cancel => {
            reasons.push(format!(
                "the event {uid} was cancelled (sequence {sequence}); its meeting entry is removed"
            ));
            Some(Outcome::CancelMeeting { uid, sequence })
        }
        CalendarMethod::Reply => {
            let owner = is_from_owner(email, settings);
            let from = email.from.as_ref().map(|a| a.email.as_str());
            let declined = owner
                && event.attendees.iter().any(|(a, stat)| {
                    let a = calendar_address(a);
                    *stat == PartStat::Declined
                        && (settings.is_mine(&a.email) || Some(a.email.as_str()) == from)
                });
            if declined {
                reasons.push(format!(
                    "you declined the event {uid}; its meeting entry is removed"
                ));
                Some(Outcome::CancelMeeting { uid, sequence })
            } else {
                reasons.push(if owner {
                    "a reply to an invitation is not a meeting".into()
                } else {
                    "a reply to an invitation is not a meeting, and only your own decline removes one"
                        .into()
                });
                Some(Outcome::NotBillable)
            }
        }
        _ => Some(meeting(email, event, uid, settings, reasons)),
    }
}

/// An ORGANIZER/ATTENDEE value as an address; tolerates a `mailto:` left by the parser.
pub(crate) fn calendar_address(value: &str) -> Address {
    let v = value.trim();
    let v = match v.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("mailto:") => &v[7..],
        _ => v,
    };
    Address::new(None, v)
}

fn meeting(
    email: &Email,
    event: &CalendarEvent,
    uid: String,
    settings: &Settings,
    reasons: &mut Vec<String>,
) -> Outcome {
    let people = event
        .organizer
        .iter()
        .chain(event.attendees.iter().map(|(a, _)| a))
        .map(|a| calendar_address(a))
        .filter(|a| !settings.is_mine(&a.email));
    let found = people
        .clone()
        .find_map(|a| client_for_address(&a, settings))
        .or_else(|| match_client(email, settings));
    let Some(m) = found else {
        let who: Vec<String> = people.map(|a| a.email).collect();
        reasons.push(no_client_reason("the meeting's participants", &who));
        return Outcome::NotBillable;
    };
    reasons.push(format!("a meeting invitation with {}", m.describe()));
    let (Some(start), Some(end)) = (event.start, event.end) else {
        reasons.push(if event.start_date.is_some() {
            "an all-day event has no length to bill".into()
        } else {
            "the invitation has no start and end time, so its length is unknown".into()
        });
        return Outcome::NotBillable;
    };
    let raw = (end - start).num_seconds() as f64 / 60.0;
    if raw <= 0.0 {
        reasons.push("the event ends before it starts".into());
        return Outcome::NotBillable;
    }
    reasons.push(format!(
        "the meeting lasts {} min (DTEND − DTSTART)",
        one_decimal(raw)
    ));
    let date = local_date(start, settings);
    let summary = event
        .summary
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(email.subject.as_str());
    let summary = clean_subject(summary);
    let description = if summary.is_empty() {
        format!("Meeting with {}", m.client.name)
    } else {
        format!("Meeting: {summary} ({})", m.client.name)
    };
    let mut entry = entry(
        email,
        settings,
        &m,
        Activity::Meeting,
        description,
        date,
        raw,
        reasons,
    );
    entry.event_uid = Some(uid.clone());
    Outcome::Meeting {
        entry,
        uid,
        sequence: event.sequence,
    }
}

/// The analysis of a message that is not a calendar invitation; `weighed` gets the
/// evidence features when the rules weighed them.
fn message(
    email: &Email,
    settings: &Settings,
    reasons: &mut Vec<String>,
    weighed: &mut Option<String>,
) -> Outcome {
    let owner = is_from_owner(email, settings);
    let Some(m) = match_client(email, settings) else {
        let who: Vec<String> = counterparts(email, settings)
            .into_iter()
            .map(|a| a.email.clone())
            .collect();
        let side = if owner {
            "the recipients"
        } else {
            "the sender"
        };
        reasons.push(no_client_reason(side, &who));
        return Outcome::NotBillable;
    };
    let Some(date) = email.date else {
        reasons.push(format!("matched {}", m.describe()));
        reasons.push("the message has no usable Date header, so there is no work date".into());
        return Outcome::NotBillable;
    };
    // A time the owner accepts is a meeting, however short the note accepting it.
    let accepted = (owner && email.calendar.is_none())
        .then(|| duration::accepted_meeting(&email.new_text))
        .flatten();
    if accepted.is_none()
        && let Some(why) = no_work(email, settings, owner, &m)
    {
        reasons.push(format!("matched {}", m.describe()));
        reasons.push(why);
        return Outcome::NotBillable;
    }
    let stated = owner
        .then(|| duration::stated_work(&email.new_text))
        .flatten();
    // Time the owner states, a meeting accepted and a meeting request's When: line
    // are evidence enough; other mail with people at a client is billed on the
    // evidence of work it shows (a keyword or the quoted history is held for review
    // whatever it shows).
    let requests_meeting =
        email.calendar.is_none() && duration::meeting_request_minutes(&email.new_text).is_some();
    let judged =
        (accepted.is_none() && stated.is_none() && !requests_meeting && m.address.is_some()).then(
            || {
                let features = evidence::features(email, owner);
                let j = evidence::judge(&features, settings.learned.as_deref());
                *weighed = Some(evidence::join(&features));
                j
            },
        );
    if let Some(j) = judged.as_ref().filter(|j| j.verdict() == Verdict::NotWork) {
        reasons.push(format!("matched {}", m.describe()));
        reasons.push(not_work_reason(j, &m.client.name));
        return Outcome::NotBillable;
    }
    let mut date = local_date(date, settings);
    let subject = clean_subject(&email.subject);
    let re = if subject.is_empty() {
        String::new()
    } else {
        format!(" re: {subject}")
    };
    let client = &m.client.name;
    // "Jane Doe (Acme)" when the person is the client's; after a keyword match the
    // person is not known to be the client's, so the client is not put beside them.
    let party = match (&m.address, counterparts(email, settings).first()) {
        (Some(a), _) => format!("{} ({client})", display_name(a)),
        (None, Some(a)) => display_name(a),
        (None, None) => client.clone(),
    };
    let requested = if email.calendar.is_none() {
        duration::meeting_request_minutes(&email.new_text)
    } else {
        None
    };
    let (activity, raw, description) = if let Some(a) = &accepted {
        date = accepted_day(date, a);
        reasons.push(format!(
            "you accepted a meeting with {} of {} min on {date} (\"{}\"); it needs review in case a calendar invitation bills it too",
            who_for_reason(&m, email, settings),
            one_decimal(a.minutes),
            a.phrase
        ));
        (
            Activity::Meeting,
            a.minutes,
            format!("Meeting with {party}{re}"),
        )
    } else if let Some(minutes) = requested {
        reasons.push(format!(
            "a meeting request with {}: its When: line gives {} min",
            who_for_reason(&m, email, settings),
            one_decimal(minutes)
        ));
        (
            Activity::Meeting,
            minutes,
            format!("Meeting with {party}{re}"),
        )
    } else if owner {
        reasons.push(format!(
            "sent by you to {}",
            who_for_reason(&m, email, settings)
        ));
        let with = &party;
        match stated {
            Some(st) => {
                reasons.push(format!(
                    "you stated {} min in your own text (\"{}\"); that replaces the word-count estimate",
                    one_decimal(st.minutes),
                    st.phrases.join("\"; \"")
                ));
                let (activity, what) = if st.call {
                    (Activity::Call, format!("Call with {with}"))
                } else if st.meeting {
                    (Activity::Meeting, format!("Meeting with {with}"))
                } else {
                    (Activity::Other, format!("Work for {client}"))
                };
                (activity, st.minutes, format!("{what}{re}"))
            }
            None => {
                let wpm = settings.drafting_words_per_minute.max(1);
                let raw = email.new_words as f64 / f64::from(wpm);
                reasons.push(format!(
                    "{} new words at {wpm} words/minute = {} min",
                    email.new_words,
                    one_decimal(raw)
                ));
                (Activity::EmailSent, raw, format!("Email to {with}{re}"))
            }
        }
    } else {
        reasons.push(format!(
            "received from {}",
            who_for_reason(&m, email, settings)
        ));
        let from = &party;
        let wpm = settings.reading_words_per_minute.max(1);
        let reading = email.new_words as f64 / f64::from(wpm);
        let review = f64::from(settings.attachment_review_minutes) * email.attachments as f64;
        let mut why = format!(
            "{} new words at {wpm} words/minute = {} min",
            email.new_words,
            one_decimal(reading)
        );
        if email.attachments > 0 {
            why.push_str(&format!(
                ", plus {} attachment(s) at {} min each = {} min",
                email.attachments,
                settings.attachment_review_minutes,
                one_decimal(reading + review)
            ));
        }
        reasons.push(why);
        if duration::stated_work(&email.new_text).is_some() {
            reasons.push("times stated by the sender are not used: only your own count".into());
        }
        let what = match email.attachments {
            0 => "Review email".to_owned(),
            1 => "Review email and attachment".to_owned(),
            n => format!("Review email and {n} attachments"),
        };
        (
            Activity::EmailReceived,
            reading + review,
            format!("{what} from {from}{re}"),
        )
    };
    let mut entry = entry(
        email,
        settings,
        &m,
        activity,
        description,
        date,
        raw,
        reasons,
    );
    if accepted.is_some() {
        entry.status = EntryStatus::NeedsReview;
    }
    if let Some(j) = &judged {
        weigh_evidence(&mut entry, j, settings, reasons);
    }
    Outcome::Entry(entry)
}

/// Why mail with a client is not billed: it reads as personal, social or about jobs.
fn not_work_reason(j: &evidence::Judgement, client: &str) -> String {
    let mut why = format!(
        "it reads as personal or social mail, not work for {client} (chance of work {:.0}%: {}); mail with people at a client is billed when it shows work",
        j.probability() * 100.0,
        j.cues(false, 4)
    );
    if j.learned_decides() {
        why.push_str("; you rejected mail like it before");
    }
    why
}

/// Sets the entry's confidence by the evidence of work, and holds it for review when
/// the evidence is too weak to suggest.
fn weigh_evidence(
    entry: &mut TimeEntry,
    j: &evidence::Judgement,
    settings: &Settings,
    reasons: &mut Vec<String>,
) {
    let p = j.probability();
    entry.confidence = ((entry.confidence * (0.6 + 0.4 * p)) * 100.0).round() / 100.0;
    let learned = if j.learned_decides() {
        if j.learned > 0.0 {
            " (you approved mail like it before)"
        } else {
            " (you rejected mail like it before)"
        }
    } else {
        ""
    };
    match j.verdict() {
        Verdict::Work => reasons.push(format!(
            "it shows work (chance {:.0}%: {}){learned}",
            p * 100.0,
            j.cues(true, 4)
        )),
        _ => {
            reasons.push(format!(
                "little evidence of work for the client (chance {:.0}%: for {}; against {}){learned}, so it needs review",
                p * 100.0,
                j.cues(true, 3),
                j.cues(false, 3)
            ));
            entry.status = EntryStatus::NeedsReview;
        }
    }
    if entry.status == EntryStatus::Suggested && entry.confidence < settings.min_confidence {
        reasons.push(format!(
            "confidence {} is below your minimum {}, so it needs review",
            entry.confidence, settings.min_confidence
        ));
        entry.status = EntryStatus::NeedsReview;
    }
}

/// The day an accepted meeting is held: the day its sentence names, on or after the
/// day the acceptance was sent (within the week), else that day.
fn accepted_day(sent: NaiveDate, a: &duration::AcceptedMeeting) -> NaiveDate {
    if a.tomorrow {
        return sent.succ_opt().unwrap_or(sent);
    }
    let Some(day) = a.weekday else {
        return sent;
    };
    let ahead = (day.num_days_from_monday() + 7 - sent.weekday().num_days_from_monday()) % 7;
    sent.checked_add_days(chrono::Days::new(u64::from(ahead)))
        .unwrap_or(sent)
}

/// Why a matched message holds no work to bill, or `None` when it may. Each rule is
/// one kind of mail a careful biller leaves out; when in doubt they leave it in.
fn no_work(email: &Email, settings: &Settings, owner: bool, m: &ClientMatch<'_>) -> Option<String> {
    let words = email.new_words;
    let text = email.new_text.as_str();
    let forward = email.is_forward();
    let reply = email.is_reply();
    if owner && forward && words <= BARE_FORWARD_MAX_WORDS {
        return Some(format!(
            "your forward adds {words} word(s) of your own: passing on mail you already read is not new work"
        ));
    }
    let ack_limit = if owner {
        ACK_MAX_WORDS_SENT
    } else {
        ACK_MAX_WORDS_RECEIVED
    };
    if reply && words <= ack_limit && !text.contains('?') && email.attachments == 0 {
        return Some(format!(
            "a {words}-word reply with no question and nothing attached is an acknowledgement, with nothing to read or do"
        ));
    }
    if words <= CLERICAL_MAX_WORDS && duration::is_clerical(text) {
        return Some(
            "a short clerical note (faxing, copies, contact details) is not billable work".into(),
        );
    }
    let short = words <= SCHEDULING_MAX_WORDS;
    if short && duration::is_scheduling(text) && duration::meeting_request_minutes(text).is_none() {
        return Some(
            "a note arranging a call or meeting: the meeting is the work, billed when it happens"
                .into(),
        );
    }
    // A reply's subject is the thread's, not what this message is about.
    let texts = [text, email.subject.as_str()];
    let own = if reply || forward {
        &texts[..1]
    } else {
        &texts[..]
    };
    if words <= SOCIAL_MAX_WORDS
        && email.attachments == 0
        && let Some(cue) = duration::social_cue(own)
    {
        return Some(format!(
            "it reads as personal or social mail (\"{cue}\") with nothing about work in it"
        ));
    }
    if m.address.is_none() && looks_like_bulk(email) {
        return Some(
            "it reads like a newsletter or digest and only a keyword names the client".into(),
        );
    }
    let addressed = email
        .to
        .iter()
        .chain(email.cc.iter())
        .any(|a| settings.is_mine(&a.email));
    if !owner && !addressed && !settings.my_addresses.is_empty() && m.address.is_none() {
        return Some(
            "you were not among the recipients (a blind copy) and no client's address is on it"
                .into(),
        );
    }
    None
}

/// Mail sent to many at once without List-* headers: an unsubscribe or browser-view
/// line, a newsletter or digest banner, or no named recipient at all.
fn looks_like_bulk(email: &Email) -> bool {
    let text = email.new_text.to_lowercase();
    let subject = email.subject.to_lowercase();
    let undisclosed = email.to.is_empty() && email.cc.is_empty();
    undisclosed
        || [
            "unsubscribe",
            "view this email in your browser",
            "view it in your browser",
            "abmelden",
            "se désabonner",
            "se desinscrire",
        ]
        .iter()
        .any(|w| text.contains(w))
        || [
            "newsletter",
            "digest",
            "bulletin",
            "weekly update",
            "daily update",
        ]
        .iter()
        .any(|w| subject.contains(w))
}

#[allow(clippy::too_many_arguments)]
fn entry(
    email: &Email,
    settings: &Settings,
    m: &ClientMatch<'_>,
    activity: Activity,
    description: String,
    date: NaiveDate,
    raw: f64,
    reasons: &mut Vec<String>,
) -> TimeEntry {
    // Raw minutes are data the user sees and sums: a runaway estimate from a malformed
    // message (millions of words) is held to a day, like stated time.
    let raw = if raw.is_nan() {
        0.0
    } else {
        raw.clamp(0.0, MAX_RAW_MINUTES)
    };
    reasons.push(format!("work date {date} in {}", settings.timezone.name()));
    let billed = duration::billed_minutes(raw, settings);
    reasons.push(rounding_reason(raw, billed, settings));
    let rate = m.client.rate(settings);
    let amount = duration::amount(billed, rate);
    let confidence = m.confidence();
    let status = if confidence < settings.min_confidence {
        reasons.push(format!(
            "confidence {confidence} is below your minimum {}, so it needs review",
            settings.min_confidence
        ));
        EntryStatus::NeedsReview
    } else if m.address.is_none() {
        // A keyword, the quoted history or a colleague's Cc names the client, but no
        // one the message is with is theirs: never suggested, whatever the minimum.
        reasons.push(
            "no one the message is with is the client's, so it needs review whatever your minimum confidence".into(),
        );
        EntryStatus::NeedsReview
    } else {
        EntryStatus::Suggested
    };
    let mut entry = TimeEntry {
        // Time-ordered ids: a scan's new rows land at the end of the primary-key
        // index instead of at random pages.
        id: uuid::Uuid::now_v7().to_string(),
        message_id: email.id.clone(),
        thread_id: email.thread_id.clone(),
        client: Some(m.client.name.clone()),
        matter: None,
        activity,
        description: clean_description(&description),
        work_date: WorkDate(date),
        duration_minutes: one_decimal(raw),
        billed_minutes: billed,
        hourly_rate: rate,
        amount,
        currency: settings.currency.clone(),
        billable: true,
        confidence,
        status,
        analyzer: ANALYZER_NAME.to_owned(),
        created_at: Utc::now(),
        event_uid: None,
        task_code: None,
        activity_code: None,
        reviewed_at: None,
        export_batch: None,
        exported_at: None,
        merged_into: None,
    };
    file(&mut entry, email, settings, m.client, reasons);
    entry
}

/// Files an entry for `client` under its matter and codes (SPEC §4, matters and
/// codes): sets `matter`, `task_code` and `activity_code`, says how in `reasons`, and
/// marks the entry needs_review when two matters fit. Both analyzers call it once
/// the client is decided; the thread's matter is the pipeline's to add.
pub(crate) fn file(
    entry: &mut TimeEntry,
    email: &Email,
    settings: &Settings,
    client: &ClientRule,
    reasons: &mut Vec<String>,
) {
    let choice = matter::choose(client, &email.subject, None);
    reasons.extend(choice.reason(client));
    entry.matter = choice.id();
    entry.task_code = codes::task_code(entry.matter.as_deref().and_then(|id| client.matter(id)));
    if matches!(choice, matter::Choice::Ambiguous(_)) {
        entry.status = EntryStatus::NeedsReview;
    }
    let (code, why) = codes::activity_code(email, settings, client, entry.activity);
    entry.activity_code = Some(code.to_owned());
    reasons.push(why);
}

fn rounding_reason(raw: f64, billed: u32, settings: &Settings) -> String {
    let inc = settings.billing_increment_minutes;
    let rounded = duration::rounded_minutes(raw, inc, settings.rounding);
    let raw = one_decimal(raw);
    if (rounded - raw).abs() < 0.05 && f64::from(billed) == rounded {
        return format!("{raw} min is already a whole number of {inc}-minute increments");
    }
    let mut s = match settings.rounding {
        Rounding::Up => format!("{raw} min rounded up to {rounded} min ({inc}-minute increments)"),
        Rounding::Nearest => {
            format!("{raw} min rounded to the nearest {inc} minutes: {rounded} min")
        }
        Rounding::Down => {
            format!("{raw} min rounded down to {rounded} min ({inc}-minute increments)")
        }
    };
    if f64::from(billed) > rounded {
        s.push_str(&format!(", raised to the {billed}-minute minimum"));
    } else if f64::from(billed) < rounded {
        s.push_str(&format!(", capped at the {billed}-minute maximum"));
    }
    s
}

/// The match as a reason; a keyword match also names who the mail was with.
fn who_for_reason(m: &ClientMatch<'_>, email: &Email, settings: &Settings) -> String {
    if m.address.is_some() {
        return m.describe();
    }
    let people: Vec<&str> = counterparts(email, settings)
        .into_iter()
        .map(|a| a.email.as_str())
        .collect();
    if people.is_empty() {
        m.describe()
    } else {
        format!("{}: {}", people.join(", "), m.describe())
    }
}

fn no_client_reason(side: &str, who: &[String]) -> String {
    if who.is_empty() {
        "no client matched: there is no counterpart address and no client keyword in the subject"
            .into()
    } else {
        format!(
            "no client matched {side} ({}) or a keyword in the subject",
            who.join(", ")
        )
    }
}

fn local_date(at: DateTime<Utc>, settings: &Settings) -> NaiveDate {
    at.with_timezone(&settings.timezone).date_naive()
}

fn one_decimal(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn display_name(a: &Address) -> String {
    a.name.clone().unwrap_or_else(|| a.email.clone())
}

/// The subject without reply/forward prefixes.
fn clean_subject(subject: &str) -> String {
    let mut s = subject.trim();
    loop {
        let lower = s.to_ascii_lowercase();
        let Some(p) = ["re:", "fwd:", "fw:", "aw:", "wg:", "tr:"]
            .iter()
            .find(|p| lower.starts_with(**p))
        else {
            break;
        };
        s = s[p.len()..].trim_start();
    }
    s.to_owned()
}

/// One line, no URLs, at most [`MAX_DESCRIPTION_CHARS`]: what a client sees on a bill.
fn clean_description(d: &str) -> String {
    let words: Vec<&str> = d
        .split_whitespace()
        .filter(|w| {
            let l = w.to_ascii_lowercase();
            let l = l.trim_start_matches(['(', '<', '[', '"']);
            !(l.starts_with("http://") || l.starts_with("https://") || l.starts_with("www."))
        })
        .collect();
    let one_line = words.join(" ");
    if one_line.chars().count() <= MAX_DESCRIPTION_CHARS {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(MAX_DESCRIPTION_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains_match_and_look_alikes_do_not() {
        assert!(domain_matches("acme.com", "acme.com"));
        assert!(domain_matches("mail.acme.com", "acme.com"));
        assert!(!domain_matches("notacme.com", "acme.com"));
        assert!(!domain_matches("acme.com.evil.io", "acme.com"));
    }

    #[test]
    fn whole_words_only() {
        assert!(contains_whole_word("re: widget pricing", "widget"));
        assert!(contains_whole_word("c++ review", "c++"));
        assert!(!contains_whole_word("widgets pricing", "widget"));
        assert!(!contains_whole_word("superwidget", "widget"));
    }

    #[test]
    fn descriptions_drop_urls_and_are_short() {
        let d = clean_description(&format!(
            "Email re: see https://x.io/a {}",
            "word ".repeat(100)
        ));
        assert!(!d.contains("http"));
        assert!(d.chars().count() <= MAX_DESCRIPTION_CHARS);
        assert_eq!(clean_subject("RE: Fwd: re: Contract"), "Contract");
    }

    #[test]
    fn calendar_addresses_lose_mailto() {
        assert_eq!(
            calendar_address(" MAILTO:Jane@Acme.com").email,
            "jane@acme.com"
        );
        assert_eq!(calendar_address("jane@acme.com").email, "jane@acme.com");
        assert_eq!(calendar_address("é").email, "é");
    }

    #[test]
    fn malformed_messages_do_not_panic() {
        let settings = Settings::default();
        let a = analyze(&Email::default(), &settings);
        assert_eq!(a.outcome, Outcome::NotBillable);
        assert!(!a.reasons.is_empty());

        let patch = serde_json::json!({"clients": [{"name": "Acme", "domains": ["acme.com"]}]});
        let settings = Settings::from_json(patch).unwrap_or_else(|e| panic!("{e}"));
        let base = Email {
            from: Some(Address::new(None, "jane@acme.com")),
            date: Some(Utc::now()),
            attachments: usize::MAX,
            new_words: usize::MAX,
            subject: "http://x.io ".repeat(200),
            ..Email::default()
        };
        let a = analyze(&base, &settings);
        match a.outcome {
            Outcome::Entry(e) => {
                assert_eq!(e.billed_minutes, settings.max_entry_minutes);
                assert_eq!(e.duration_minutes, MAX_RAW_MINUTES);
                assert!(!e.description.contains("http"), "{}", e.description);
            }
            other => panic!("{other:?}"),
        }
        let event = CalendarEvent {
            method: CalendarMethod::Request,
            uid: "  ".into(),
            sequence: -1,
            summary: None,
            start: Some(Utc::now()),
            end: Some(Utc::now() - chrono::Duration::hours(1)),
            start_date: None,
            organizer: Some("mailto:".into()),
            attendees: vec![(String::new(), PartStat::Other("x".into()))],
        };
        for method in [
            CalendarMethod::Request,
            CalendarMethod::Reply,
            CalendarMethod::Other("PUBLISH".into()),
        ] {
            for uid in ["", "u1"] {
                let email = Email {
                    calendar: Some(CalendarEvent {
                        method: method.clone(),
                        uid: uid.into(),
                        ..event.clone()
                    }),
                    ..base.clone()
                };
                let a = analyze(&email, &settings);
                assert!(!a.reasons.is_empty(), "{method:?}");
                assert!(
                    !matches!(a.outcome, Outcome::Meeting { .. }),
                    "{method:?} {:?}",
                    a.outcome
                );
            }
        }
    }
}
