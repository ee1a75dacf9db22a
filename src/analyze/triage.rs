//! Triage: mail sent by machines is never billable, even from a client, and never
//! reaches an analyzer (so never an LLM). Runs before `Analyzer::analyze`.

use crate::domain::{Email, Settings};

/// Sender local parts that only machines use. A local part matches when it equals one
/// of these or starts with one followed by `+`, `-`, `_` or `.` (`noreply+abc`,
/// `bounces-123`): never a substring, so `snoreplyson` or `bouncer.jane` are people.
pub const AUTOMATED_LOCAL_PARTS: &[&str] = &[
    "noreply",
    "no-reply",
    "no_reply",
    "no.reply",
    "donotreply",
    "do-not-reply",
    "do_not_reply",
    "do.not.reply",
    "dontreply",
    "notifications",
    "notification",
    "notify",
    "mailer-daemon",
    "mailerdaemon",
    "postmaster",
    "bounce",
    "bounces",
    "auto-reply",
    "autoreply",
];

/// Why `email` is automated, or `None` for mail a person wrote.
///
/// Header rules apply to every message, the owner's included: the owner's copy of a
/// post to a mailing list is list mail (SPEC §4 lists no exception). An empty
/// Auto-Submitted header carries no value, so it is not read as automated.
pub fn automated(email: &Email, settings: &Settings) -> Option<String> {
    let h = &email.automation;
    if h.list_unsubscribe {
        return Some("it has a List-Unsubscribe header (mailing list or newsletter)".into());
    }
    if h.list_id {
        return Some("it has a List-Id header (mailing list)".into());
    }
    if let Some(p) = &h.precedence {
        let p = p.trim().to_ascii_lowercase();
        if matches!(p.as_str(), "bulk" | "list" | "junk") {
            return Some(format!("its Precedence header is `{p}`"));
        }
    }
    if let Some(a) = &h.auto_submitted {
        // "auto-generated; owner-email=…": the keyword is before any parameter.
        let a = a
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !a.is_empty() && a != "no" {
            return Some(format!("its Auto-Submitted header is `{a}`"));
        }
    }
    let from = email.from.as_ref()?;
    if settings.is_ignored_sender(&from.email) {
        return Some(format!("the sender {} is in ignore_senders", from.email));
    }
    let local = from.local_part();
    if is_automated_local_part(local) {
        return Some(format!(
            "the sender {} is a machine address (`{local}`)",
            from.email
        ));
    }
    None
}

/// Whether a local part is one of [`AUTOMATED_LOCAL_PARTS`] or one of them followed
/// by a tag.
pub fn is_automated_local_part(local: &str) -> bool {
    local_part_is_one_of(local, AUTOMATED_LOCAL_PARTS)
}

/// Whether a local part (any case) equals one of `parts` or is one of them followed
/// by `+`, `-`, `_` or `.` and a tag: never a substring.
pub fn local_part_is_one_of(local: &str, parts: &[&str]) -> bool {
    let local = local.to_ascii_lowercase();
    parts.iter().any(|p| {
        local == *p
            || local
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with(['+', '-', '_', '.']))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_local_parts_match_whole_or_tagged_only() {
        for yes in [
            "noreply",
            "no-reply",
            "noreply+abc",
            "no-reply-aws",
            "bounces+12345",
            "mailer-daemon",
            "postmaster",
            "notifications",
            "donotreply",
        ] {
            assert!(is_automated_local_part(yes), "{yes}");
        }
        for no in [
            "jane",
            "snoreply",
            "bouncer",
            "bouncer.jane",
            "notificationsx",
            "renotify",
            "noreplyjane",
        ] {
            assert!(!is_automated_local_part(no), "{no}");
        }
    }
}
