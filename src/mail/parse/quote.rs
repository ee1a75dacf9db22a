//! What a person wrote in this message: quoted history, attributions, forwarded
//! blocks, signatures and mobile footers are cut off; words are counted.

use std::sync::LazyLock;

use regex::Regex;

use crate::domain::Address;

/// Whitespace-separated tokens with at least one letter or digit.
pub fn count_words(text: &str) -> usize {
    if !text.is_ascii() {
        return text
            .split_whitespace()
            .filter(|w| w.chars().any(char::is_alphanumeric))
            .count();
    }
    // Most mail is ASCII: one pass over the bytes, same rules (Unicode white space
    // within ASCII includes the vertical tab, which `is_ascii_whitespace` does not).
    let mut words = 0;
    let mut in_word_with_alnum = false;
    for &b in text.as_bytes() {
        if matches!(b, b' ' | b'\t' | b'\n' | b'\x0B' | b'\x0C' | b'\r') {
            words += usize::from(in_word_with_alnum);
            in_word_with_alnum = false;
        } else if b.is_ascii_alphanumeric() {
            in_word_with_alnum = true;
        }
    }
    words + usize::from(in_word_with_alnum)
}

static ON_WROTE: LazyLock<Regex> = LazyLock::new(|| {
    // English, German, French, Spanish, Dutch attributions.
    Regex::new(
        r"(?i)^(on\s.+\swrote:|am\s.+\sschrieb.*:|le\s.+\sa\s+écrit\s*:|el\s.+\sescribió:|op\s.+\sschreef.*:)$",
    )
    .unwrap_or_else(|_| unreachable!("static regex"))
});
/// HTML-to-text conversion can glue the quoted text onto the attribution line; a
/// date or address before `wrote:` tells it apart from a sentence.
static ON_WROTE_GLUED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^on\s.{0,200}[\d@].{0,200}\swrote:")
        .unwrap_or_else(|_| unreachable!("static regex"))
});
static ORIGINAL_MESSAGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^-{2,}\s*(original message|forwarded message|ursprüngliche nachricht|message d'origine)\s*-{2,}$")
        .unwrap_or_else(|_| unreachable!("static regex"))
});
static OUTLOOK_FROM: LazyLock<Regex> = LazyLock::new(|| {
    // HTML-to-text conversion may drop the space after `<b>From:</b>`.
    Regex::new(r"(?i)^\**(from|von|de)\s*:\**\s*\S")
        .unwrap_or_else(|_| unreachable!("static regex"))
});
static OUTLOOK_SENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\**(sent|date|gesendet|envoyé)\s*:\**\s*\S")
        .unwrap_or_else(|_| unreachable!("static regex"))
});
static MOBILE_FOOTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(sent from my \S+.*|sent from mail for windows.*|get outlook for \S+.*|sent from outlook.*|sent from yahoo mail.*|sent via .+|von meinem \S+ gesendet.*|envoyé de mon \S+.*)$",
    )
    .unwrap_or_else(|_| unreachable!("static regex"))
});

/// Lotus Notes' attribution: `"Doe, Jane" <jane@x.com> on 05/08/2000 06:41:00 AM`,
/// `Jane Doe/HOU/ECT on 02/04/2000 11:08 AM`.
static LOTUS_ON: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)^(?P<who>.{1,160}?)\s+on\s+\d{1,2}/\d{1,2}/\d{2,4}\s+\d{1,2}:\d{2}(?::\d{2})?\s*(?:am|pm)?\s*$"#)
        .unwrap_or_else(|_| unreachable!("static regex"))
});
/// A line that ends in a Lotus Notes timestamp (`Jane Doe   11/08/2001 10:54 AM`).
static ENDS_DATED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\S\s+\d{1,2}/\d{1,2}/\d{2,4}\s+\d{1,2}:\d{2}(?::\d{2})?\s*(?:am|pm)\s*$")
        .unwrap_or_else(|_| unreachable!("static regex"))
});
/// `----- Forwarded by Jane Doe/HOU/ECT on 02/04/2000 11:08 AM -----`.
static FORWARDED_BY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^-{2,}\s*forwarded by\b").unwrap_or_else(|_| unreachable!("static regex"))
});
/// The first line of a legal disclaimer: nobody drafts it for this message.
static DISCLAIMER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\W*(this (e-?mail|message|communication|transmission)\b.{0,200}\b(confidential|privileged|intended (only )?for|property of)|the information (contained )?in this (e-?mail|message|communication)|confidentiality (notice|note)|disclaimer\s*:|(diese (e-?mail|nachricht)|ce (message|courriel)|este (mensaje|correo)).{0,200}\b(vertraulich|confidentiel|confidencial))",
    )
    .unwrap_or_else(|_| unreachable!("static regex"))
});
/// A phone or fax line of a signature block (`Ph:  (713) 853-5620`, `+44 20 7123 4567`).
static PHONE_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(?:\(?[a-z]{1,9}\)?\.?\s*:?\s*)?\+?[\d\s().-]{10,22}\d(?:\s*(?:\(?[a-z]{1,9}\)?|x\d{1,5}))?$",
    )
    .unwrap_or_else(|_| unreachable!("static regex"))
});
static EMAIL_IN_TEXT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
        .unwrap_or_else(|_| unreachable!("static regex"))
});

/// Addresses in `body` that `new_text` does not contain: the senders and recipients of
/// the quoted or forwarded history, in order, lower-case, at most `max`.
pub fn thread_addresses(body: &str, new_text: &str, max: usize) -> Vec<Address> {
    if !body.contains('@') {
        return Vec::new();
    }
    let new_text = new_text.to_ascii_lowercase();
    let mut out: Vec<Address> = Vec::new();
    for m in EMAIL_IN_TEXT.find_iter(body) {
        let a = Address::new(None, m.as_str().trim_matches(['.', '\'']));
        if out.len() >= max {
            break;
        }
        if a.domain().contains('.') && !new_text.contains(&a.email) && !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// The text written in this message: quoted lines (`>`), the `On … wrote:`
/// attribution and everything after it, Outlook's `-----Original Message-----` and
/// `From:/Sent:` blocks and what follows, a `____` separator and after, the signature
/// after `-- `, and trailing "Sent from my iPhone" lines are removed.
pub fn strip_quoted(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut kept: Vec<&str> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if is_quoted(line) {
            continue;
        }
        if is_cut_line(&lines, i) {
            break;
        }
        kept.push(line.trim_end());
    }
    drop_trailing_footers(&mut kept);
    drop_contact_block(&mut kept);
    drop_trailing_footers(&mut kept);
    let start = kept
        .iter()
        .position(|l| !l.trim().is_empty())
        .unwrap_or(kept.len());
    kept.get(start..).unwrap_or_default().join("\n")
}

/// A `>` line: left out wherever it stands, so the answers between quotes stay.
fn is_quoted(line: &str) -> bool {
    line.trim().starts_with('>')
}

/// Blank lines and mobile footers ("Sent from my iPhone") at the end are not text.
fn drop_trailing_footers(kept: &mut Vec<&str>) {
    while let Some(last) = kept.last() {
        let t = last.trim();
        if t.is_empty() || MOBILE_FOOTER.is_match(t) {
            kept.pop();
        } else {
            break;
        }
    }
}

/// Lines a signature block may span above its first phone line (name, title,
/// company, street, city).
const MAX_SIGNATURE_LINES: usize = 6;

/// A signature written out without `-- `: the short lines above the first phone or
/// fax line near the end, up to a blank line or a sentence, and what follows.
fn drop_contact_block(kept: &mut Vec<&str>) {
    let tail_from = kept.len().saturating_sub(MAX_SIGNATURE_LINES + 4);
    let Some(phone) = (tail_from..kept.len()).find(|&i| {
        let t = kept[i].trim();
        t.bytes().filter(u8::is_ascii_digit).count() >= 7 && PHONE_LINE.is_match(t)
    }) else {
        return;
    };
    let mut start = phone;
    while start > 0 && phone - start < MAX_SIGNATURE_LINES {
        let above = kept[start - 1].trim();
        let sentence = above.ends_with(['.', '?', '!', ':', ';']) && !above.ends_with("Inc.");
        if above.is_empty() || above.len() > 60 || sentence {
            break;
        }
        start -= 1;
    }
    kept.truncate(start);
}

/// A line of the body as the cut rules see it.
struct Line<'a> {
    /// As written: the signature delimiter is told by its trailing space.
    raw: &'a str,
    /// Without surrounding white space.
    trimmed: &'a str,
    /// The lines after it.
    after: &'a [&'a str],
}

/// Whether line `i` starts the history or signature that ends the new text: one
/// rule per kind of cut, cheapest first. A rule with a regex checks a leading word or
/// character first; that keeps the regexes (and the joined-line copy) off ordinary
/// lines, which is most of the cost of parsing a mailbox.
fn is_cut_line(lines: &[&str], i: usize) -> bool {
    let Some(raw) = lines.get(i) else {
        return false;
    };
    let line = Line {
        raw,
        trimmed: raw.trim(),
        after: lines.get(i + 1..).unwrap_or_default(),
    };
    is_signature_delimiter(&line)
        || is_underscore_separator(&line)
        || is_original_message_banner(&line)
        || is_attribution(&line)
        || is_outlook_header_block(&line)
        || is_lotus_header(&line)
        || is_disclaimer(&line)
}

/// The first line of a legal disclaimer. Its first word is checked before the regex,
/// which stays off ordinary lines.
fn is_disclaimer(line: &Line<'_>) -> bool {
    let t = line.trimmed;
    let word = t
        .trim_start_matches(|c: char| !c.is_alphanumeric())
        .split(|c: char| !c.is_alphabetic())
        .next()
        .unwrap_or("")
        .to_lowercase();
    t.len() > 20
        && matches!(
            word.as_str(),
            "this" | "the" | "confidentiality" | "disclaimer" | "diese" | "ce" | "este"
        )
        && DISCLAIMER.is_match(t)
}

/// Lotus Notes history: `----- Forwarded by … -----`, the `… on 05/08/2000 06:41 AM`
/// attribution (its author part holds an address, a Notes name `Jane/HOU/ECT` or a
/// quoted name, so a sentence ending in a date is kept), and the `Jane Doe
/// 11/08/2001 10:54 AM` header with a `To:` line below it.
fn is_lotus_header(line: &Line<'_>) -> bool {
    let t = line.trimmed;
    if t.starts_with("--") && FORWARDED_BY.is_match(t) {
        return true;
    }
    if !t.ends_with(['M', 'm', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'])
        || !t.contains('/')
    {
        return false;
    }
    if let Some(c) = LOTUS_ON.captures(t) {
        let who = c.name("who").map_or("", |m| m.as_str());
        if who.contains(['@', '/', '"']) {
            return true;
        }
    }
    ENDS_DATED.is_match(t)
        && line.after.iter().take(4).any(|l| {
            let l = l.trim_start();
            l.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("to:"))
        })
}

/// The signature delimiter `-- ` (RFC 3676); many clients drop the space.
fn is_signature_delimiter(line: &Line<'_>) -> bool {
    line.raw.trim_end_matches(['\r', '\n']) == "-- " || line.trimmed == "--"
}

/// A line of ten or more `_`, which Outlook puts above the quoted message.
fn is_underscore_separator(line: &Line<'_>) -> bool {
    line.trimmed.len() >= 10 && line.trimmed.chars().all(|c| c == '_')
}

/// `-----Original Message-----`, `---------- Forwarded message ---------` and their
/// German and French forms.
fn is_original_message_banner(line: &Line<'_>) -> bool {
    line.trimmed.starts_with("--") && ORIGINAL_MESSAGE.is_match(line.trimmed)
}

/// `On … wrote:` (or its German, French, Spanish or Dutch form) on one line, glued to
/// the quoted text, or wrapped onto the next line by the client.
fn is_attribution(line: &Line<'_>) -> bool {
    let trimmed = line.trimmed;
    if !starts_with_attribution_word(trimmed) {
        return false;
    }
    if ON_WROTE.is_match(trimmed) || ON_WROTE_GLUED.is_match(trimmed) {
        return true;
    }
    // `On Mon, 3 Jun 2024 at 10:00, Someone <a@b.c>` / `wrote:` wrapped by the client.
    let next = line.after.first().map(|l| l.trim()).unwrap_or("");
    if trimmed.len() < 300 && !next.is_empty() && next.len() < 300 {
        let joined = format!("{trimmed} {next}");
        return ON_WROTE.is_match(&joined) && !ON_WROTE.is_match(next);
    }
    false
}

/// Outlook's `From:` header line with a `Sent:` (or `Date:`) line among the next
/// three. A `From:` line alone is kept: it may be a sentence.
fn is_outlook_header_block(line: &Line<'_>) -> bool {
    let trimmed = line.trimmed;
    let outlook_start = trimmed
        .bytes()
        .next()
        .is_some_and(|b| matches!(b.to_ascii_lowercase(), b'*' | b'f' | b'v' | b'd'));
    if !(outlook_start && OUTLOOK_FROM.is_match(trimmed)) {
        return false;
    }
    // Squashed into one line by an HTML-to-text conversion.
    trimmed.contains(" Sent: ")
        || line
            .after
            .iter()
            .take(3)
            .any(|l| OUTLOOK_SENT.is_match(l.trim()))
}

/// Whether a line starts with a word an `On … wrote:` attribution can start with
/// (on, am, le, el, op, then white space).
fn starts_with_attribution_word(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 3
        && b[2].is_ascii_whitespace()
        && matches!(
            [b[0].to_ascii_lowercase(), b[1].to_ascii_lowercase()],
            [b'o', b'n'] | [b'a', b'm'] | [b'l', b'e'] | [b'e', b'l'] | [b'o', b'p']
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parse::tests::{parse, plain};

    #[test]
    fn quoted_lines_and_a_wrapped_on_wrote_line_are_removed() {
        let body = "Sounds good, I will send the draft tomorrow.\n\n> inline quote\nAnd one more thing.\n\nOn Mon, Jun 3, 2024 at 10:00 AM Ann Client <ann@acme.com>\nwrote:\n> Can you send the draft?\n> Thanks";
        let email = parse(&plain(body));
        assert_eq!(
            email.new_text,
            "Sounds good, I will send the draft tomorrow.\n\nAnd one more thing."
        );
        assert_eq!(email.new_words, 12);
    }

    #[test]
    fn a_single_line_on_wrote_cuts_everything_after_it() {
        let text = strip_quoted("Yes.\nOn Tue, 4 Jun 2024, Ann wrote:\nold text\nmore old");
        assert_eq!(text, "Yes.");
    }

    #[test]
    fn outlook_original_message_and_header_blocks_are_removed() {
        let a = strip_quoted("Agreed.\n\n-----Original Message-----\nFrom: Ann\nSent: Monday\nold");
        assert_eq!(a, "Agreed.");
        let b = strip_quoted(
            "Agreed, see attached.\n\nFrom: Ann Client <ann@acme.com>\nSent: Monday, June 3, 2024 10:00 AM\nTo: Me\nSubject: contract\n\nold text",
        );
        assert_eq!(b, "Agreed, see attached.");
        let c = strip_quoted("Fine.\n________________________________\nFrom: Ann\nold");
        assert_eq!(c, "Fine.");
    }

    #[test]
    fn a_from_line_without_sent_is_kept() {
        let text = strip_quoted("From: the client's side we need two things.\nFirst, the draft.");
        assert_eq!(
            text,
            "From: the client's side we need two things.\nFirst, the draft."
        );
    }

    #[test]
    fn signatures_and_mobile_footers_are_removed() {
        assert_eq!(strip_quoted("Thanks.\n-- \nJane Doe\nPartner"), "Thanks.");
        assert_eq!(strip_quoted("Thanks.\n--\nJane Doe"), "Thanks.");
        assert_eq!(
            strip_quoted("On my way.\n\nSent from my iPhone\n\nOn Tue, Ann wrote:\n> hi"),
            "On my way."
        );
    }

    #[test]
    fn lotus_notes_attributions_and_forward_banners_end_the_new_text() {
        let a = strip_quoted(
            "ok. we will make the amendment\n\n\n\nJane.Doe@acme.com on 11/14/2001 11:09:12 AM\n\nTo:   Bob@beta.io\ncc:\n\nSubject:  RE: Guaranty\n\nLauri:\nWe are in the midst of it.",
        );
        assert_eq!(a, "ok. we will make the amendment");
        let b = strip_quoted(
            "See below.\n---------------------- Forwarded by Kay Mann/Corp/Enron on 02/04/2000 11:08 AM ---------------------------\nold",
        );
        assert_eq!(b, "See below.");
        let c = strip_quoted(
            "Thoughts?\n\n   Hans MULLER   11/08/2001 10:54 AM\n\n   To:   ann@acme.com\n   cc:\n   old text",
        );
        assert_eq!(c, "Thoughts?");
        let d =
            strip_quoted("Noted.\n\n\"Doe, Jane\" <jane@acme.com> on 05/08/2000 06:41:00 AM\nold");
        assert_eq!(d, "Noted.");
        // A sentence that ends in a date and time is the writer's.
        let kept = "We can meet on 11/14/2001 10:00 AM";
        assert_eq!(strip_quoted(kept), kept);
    }

    #[test]
    fn disclaimers_and_contact_blocks_are_not_drafted_words() {
        let a = strip_quoted(
            "Please review the attached schedule.\n\nSara Doe\nWholesale Services\n1400 Smith Street, EB3801a\nHouston, TX  77002\nPh:  (713) 853-5620\nFax: (713) 646-3490",
        );
        assert_eq!(a, "Please review the attached schedule.");
        let b = strip_quoted(
            "Bitte prüfen.\n\nHans Müller\nRechtsabteilung\n+49 69 1234 5678\n\n**********\nThis e-mail and any attachments are confidential and may be privileged.\nIf you are not the intended recipient...",
        );
        assert_eq!(b, "Bitte prüfen.");
        // A number inside a sentence is not a signature.
        let c = "Call me on my cell, it is 713 555 0100 all day.";
        assert_eq!(strip_quoted(c), c);
    }

    #[test]
    fn thread_addresses_are_the_ones_outside_the_new_text() {
        let body = "FYI, ask bob@beta.io.\n-----Original Message-----\nFrom: \"Doe, Jane\" <Jane.Doe@Acme.com>@ENRON\nSent: Monday\nTo: bob@beta.io; jane.doe@acme.com\n";
        let got = thread_addresses(body, "FYI, ask bob@beta.io.", 10);
        assert_eq!(got, vec![Address::new(None, "jane.doe@acme.com")]);
        assert!(thread_addresses("no addresses", "", 10).is_empty());
    }

    #[test]
    fn words_need_a_letter_or_digit() {
        assert_eq!(count_words("a - b -- 3 ... ok!"), 4);
    }

    #[test]
    fn the_ascii_word_count_agrees_with_the_unicode_one() {
        let unicode = |t: &str| {
            t.split_whitespace()
                .filter(|w| w.chars().any(char::is_alphanumeric))
                .count()
        };
        for text in [
            "",
            "   ",
            "one",
            " one two\tthree\r\nfour\x0bfive\x0csix ",
            "-- ... --a b- !! ?x",
            "trailing word",
            "line one\n\nline two, ok.\n",
        ] {
            assert_eq!(count_words(text), unicode(text), "{text:?}");
        }
        // Non-ASCII text takes the general path.
        assert_eq!(count_words("café crème — ok"), 3);
    }
}
