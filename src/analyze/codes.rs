//! UTBMS codes on entries: the activity code (A-code) says what kind of work the
//! time was, the task code (L-code) which phase of the matter; e-billing systems
//! reject or question invoices whose lines lack them.
//!
//! The activity code follows from what the message is, never from the model:
//! - received mail is reading it: A104;
//! - the owner's mail is drafting (A103) when it is substantive writing, at least
//!   [`DRAFTING_MIN_WORDS`] new words or an attachment sent in a message that is not
//!   a forward; otherwise it is communicating, coded by the primary counterpart
//!   (the To recipients, else Cc): A106 when one of them is the client's, A105 when
//!   one is a colleague at the owner's own firm, A107 when one looks like another law
//!   firm ([`looks_like_law_firm`]), else A108. A call the
//!   owner reports is communicating too; other work the owner reports ("spent 2
//!   hours on the brief") is coded like the mail that reports it;
//! - a meeting is A106 when everyone else in it is the client's: the ABA code set
//!   files conferences with the client under communicating with the client. With
//!   anyone else present (other counsel, a counterparty, a court) it is A109, attending.
//!
//! The task code is the matter's `default_task_code` when the matter uses task codes;
//! it is never guessed.

use super::rules::{calendar_address, client_for_address, counterparts};
use crate::domain::{Activity, Address, ClientRule, Email, Matter, Settings};

/// The UTBMS activity codes billable assigns, with their meaning (ABA UTBMS
/// litigation code set). A101 (plan and prepare) and A102 (research) are not told
/// apart by mail, so neither is assigned; A105 is mail with a colleague at the firm.
pub const ACTIVITY_CODES: &[(&str, &str)] = &[
    ("A103", "Draft/revise"),
    ("A104", "Review/analyze"),
    ("A105", "Communicate (within the firm)"),
    ("A106", "Communicate (with client)"),
    ("A107", "Communicate (other outside counsel)"),
    ("A108", "Communicate (other external)"),
    ("A109", "Appear for/attend"),
];

/// The owner's mail with at least this many new words is drafting, not a note: about
/// a page, the length of a letter or a memo.
pub const DRAFTING_MIN_WORDS: usize = 250;

/// What `code` means, from [`ACTIVITY_CODES`].
pub fn meaning(code: &str) -> &'static str {
    ACTIVITY_CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("", |(_, m)| m)
}

/// The activity code of an entry of `activity` for `client` made from `email`, and
/// why, as a reason sentence.
pub fn activity_code(
    email: &Email,
    settings: &Settings,
    client: &ClientRule,
    activity: Activity,
) -> (&'static str, String) {
    let (code, why) = match activity {
        Activity::EmailReceived => ("A104", "reading received mail".to_owned()),
        Activity::Meeting => meeting(email, settings, client),
        Activity::Call => communicate(email, settings, client),
        Activity::EmailSent | Activity::Other => {
            let forward = email.is_forward();
            if email.new_words >= DRAFTING_MIN_WORDS {
                (
                    "A103",
                    format!("{} new words of your own is drafting", email.new_words),
                )
            } else if email.attachments > 0 && !forward {
                ("A103", "you sent a document you drafted".to_owned())
            } else {
                communicate(email, settings, client)
            }
        }
    };
    (
        code,
        format!("activity code {code} ({}): {why}", meaning(code)),
    )
}

/// The task code for an entry under `matter`: its default when it uses task codes.
pub fn task_code(matter: Option<&Matter>) -> Option<String> {
    matter
        .filter(|m| m.task_codes)
        .and_then(|m| m.default_task_code.clone())
}

/// A106/A105/A107/A108 by the owner's primary counterpart: To, else Cc.
fn communicate(email: &Email, settings: &Settings, client: &ClientRule) -> (&'static str, String) {
    let people = counterparts(email, settings);
    let to: Vec<&Address> = people
        .iter()
        .copied()
        .filter(|a| email.to.contains(a))
        .collect();
    let primary = if to.is_empty() { people } else { to };
    if let Some(a) = primary.iter().find(|a| is_clients(a, settings, client)) {
        return ("A106", format!("{} is {}'s", a.email, client.name));
    }
    let own = own_domains(settings);
    if let Some(a) = primary.iter().find(|a| own.contains(&a.domain())) {
        return ("A105", format!("{} is at your own firm", a.email));
    }
    if let Some(a) = primary
        .iter()
        .find(|a| !own.contains(&a.domain()) && looks_like_law_firm(a))
    {
        return ("A107", format!("{} looks like another law firm", a.email));
    }
    (
        "A108",
        "the recipients are neither the client's people nor another law firm".to_owned(),
    )
}

/// A106 when everyone else in the meeting is the client's, else A109.
fn meeting(email: &Email, settings: &Settings, client: &ClientRule) -> (&'static str, String) {
    let people: Vec<Address> = match &email.calendar {
        Some(event) => event
            .organizer
            .iter()
            .chain(event.attendees.iter().map(|(a, _)| a))
            .map(|a| calendar_address(a))
            .filter(|a| !a.email.is_empty() && !settings.is_mine(&a.email))
            .collect(),
        None => counterparts(email, settings).into_iter().cloned().collect(),
    };
    match people.iter().find(|a| !is_clients(a, settings, client)) {
        None if !people.is_empty() => (
            "A106",
            format!("a meeting with {}'s people only", client.name),
        ),
        None => (
            "A109",
            "a meeting with no other participant listed".to_owned(),
        ),
        Some(a) => (
            "A109",
            format!("{} is in the meeting and is not {}'s", a.email, client.name),
        ),
    }
}

fn is_clients(a: &Address, settings: &Settings, client: &ClientRule) -> bool {
    client_for_address(a, settings).is_some_and(|m| m.client.name == client.name)
}

/// The owner's own domains: a colleague there is not another firm.
fn own_domains(settings: &Settings) -> Vec<&str> {
    settings
        .my_addresses
        .iter()
        .filter_map(|a| a.rsplit_once('@').map(|(_, d)| d))
        .collect()
}

/// A simple, general test for a law firm's address: a domain name that ends in a
/// lawyer's word (`smithlaw.com`, `jones-legal.co.uk`, `baker-llp.com`), a legal
/// top-level domain (`.law`, `.legal`, `.attorney`, `.lawyer`, `.esq`), or a display
/// name with LLP, Esq., "Law" or "Attorneys" in it. Firms whose names say none of
/// these (`kirkland.com`) are not recognised and their mail is coded A108.
pub fn looks_like_law_firm(a: &Address) -> bool {
    const NAME_ENDS: &[&str] = &[
        "law",
        "legal",
        "llp",
        "lawyers",
        "attorneys",
        "solicitors",
        "advocates",
    ];
    const TLDS: &[&str] = &["law", "legal", "attorney", "lawyer", "esq"];
    const NAME_WORDS: &[&str] = &["llp", "esq", "law", "attorneys", "solicitors"];
    let labels: Vec<&str> = a.domain().split('.').collect();
    if let [names @ .., tld] = labels.as_slice() {
        if !names.is_empty() && TLDS.contains(tld) {
            return true;
        }
        if names
            .iter()
            .any(|l| NAME_ENDS.iter().any(|w| l.ends_with(w)))
        {
            return true;
        }
    }
    a.name.as_deref().is_some_and(|n| {
        n.to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .any(|w| NAME_WORDS.contains(&w))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_assigned_code_has_a_meaning() {
        for code in ["A103", "A104", "A105", "A106", "A107", "A108", "A109"] {
            assert!(!meaning(code).is_empty(), "{code}");
        }
        assert_eq!(meaning("A999"), "");
    }

    #[test]
    fn law_firms_by_domain_or_name() {
        for yes in [
            Address::new(None, "kim@smithlaw.com"),
            Address::new(None, "kim@jones-legal.co.uk"),
            Address::new(None, "kim@bakerllp.com"),
            Address::new(None, "kim@smith.law"),
            Address::new(Some("Kim Lee, Esq."), "kim@gmail.com"),
            Address::new(Some("Baker & Lee LLP"), "kim@bl.com"),
        ] {
            assert!(looks_like_law_firm(&yes), "{yes:?}");
        }
        for no in [
            Address::new(None, "kim@lawrence.com"),
            Address::new(None, "kim@acme.com"),
            Address::new(Some("Lawrence Kim"), "kim@beta.io"),
            Address::new(None, "law"),
        ] {
            assert!(!looks_like_law_firm(&no), "{no:?}");
        }
    }

    #[test]
    fn task_codes_only_when_the_matter_uses_them() {
        let mut m = Matter::named("A-1".into());
        m.default_task_code = Some("L120".into());
        assert_eq!(task_code(Some(&m)), None);
        m.task_codes = true;
        assert_eq!(task_code(Some(&m)).as_deref(), Some("L120"));
        m.default_task_code = None;
        assert_eq!(task_code(Some(&m)), None);
        assert_eq!(task_code(None), None);
    }
}
