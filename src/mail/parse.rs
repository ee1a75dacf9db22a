//! Raw RFC 5322 bytes to the `Email` the pipeline works with.
//!
//! mail-parser does the MIME work; this module decides what counts as the text a
//! person wrote (quoted history and signatures removed), which parts a person would
//! open, and what a calendar invite says. Nothing here may panic on input data:
//! every malformed message is either read leniently or reported as
//! `MailError::Malformed`.

use std::sync::LazyLock;

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use mail_parser::{Message, MessageParser, MimeHeaders};
use regex::Regex;
use sha2::{Digest, Sha256};

use super::{MailError, RawEmail};
use crate::domain::email::{
    Address, AutomationHeaders, CalendarEvent, CalendarMethod, Email, PartStat,
};

/// The most text of one message that reaches an analyzer (64 KiB). Longer new text is
/// cut at a character boundary so oversized mail never reaches an LLM whole.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// The body text considered for quote stripping. Stripping is linear, but a
/// multi-megabyte text body is almost always generated, not written, so it is cut
/// early to keep parsing cheap.
const MAX_BODY_SCAN_BYTES: usize = 1024 * 1024;

/// Parses one message. `raw.id`, `raw.thread_id` and `raw.labels` come from the source
/// and win over what the headers say.
pub fn parse_email(raw: &RawEmail) -> Result<Email, MailError> {
    let bytes = raw.bytes.as_slice();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(MailError::Malformed("the message is empty".into()));
    }
    let msg = MessageParser::default()
        .parse(bytes)
        .ok_or_else(|| MailError::Malformed("no RFC 5322 headers found".into()))?;
    if msg.parts.is_empty() || msg.headers().is_empty() {
        return Err(MailError::Malformed("no RFC 5322 headers found".into()));
    }

    let thread_id = raw
        .thread_id
        .clone()
        .filter(|t| !t.trim().is_empty())
        .or_else(|| header_text(&msg, bytes, "X-GM-THRID").filter(|t| !t.is_empty()))
        .or_else(|| first_reference(&msg));

    let body = body_text(&msg);
    let new_text = truncate_at_char_boundary(&strip_quoted(&body), MAX_TEXT_BYTES).to_owned();
    let new_words = count_words(&new_text);

    Ok(Email {
        id: raw.id.clone(),
        thread_id,
        labels: raw.labels.clone(),
        from: msg.from().and_then(|a| a.iter().find_map(to_address)),
        to: msg
            .all_to()
            .flat_map(|a| a.iter())
            .filter_map(to_address)
            .collect(),
        cc: msg
            .all_cc()
            .flat_map(|a| a.iter())
            .filter_map(to_address)
            .collect(),
        subject: msg.subject().unwrap_or_default().trim().to_owned(),
        date: message_date(&msg),
        automation: automation_headers(&msg, bytes),
        new_text,
        new_words,
        attachments: count_attachments(&msg),
        calendar: find_calendar(&msg),
        content_hash: sha256_hex(bytes),
        size: bytes.len(),
    })
}

/// The id a local source gives a message: the Message-ID header without angle
/// brackets, or, when it is missing or empty, `sha256:` and the first 32 hex digits
/// of the content hash, so the same bytes always get the same id.
pub fn local_id(bytes: &[u8]) -> String {
    MessageParser::default()
        .parse_headers(bytes)
        .and_then(|m| m.message_id().map(clean_message_id))
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| {
            let hex = sha256_hex(bytes);
            format!("sha256:{}", hex.get(..32).unwrap_or(&hex))
        })
}

/// Builds the `RawEmail` a local source yields: id from `local_id`, labels from
/// `X-Gmail-Labels` (Google Takeout) plus `extra_labels` (e.g. a Maildir `Sent`
/// folder), thread id from `X-GM-THRID`. Plain headers are read directly
/// ([`plain_headers`]); anything else gets one header-only parse by mail-parser.
pub fn raw_from_bytes(bytes: Vec<u8>, extra_labels: &[&str]) -> RawEmail {
    let (id, mut labels, thread_id) = match plain_headers(&bytes) {
        Some(plain) => plain,
        None => parsed_headers(&bytes),
    };
    for extra in extra_labels {
        if !labels.iter().any(|l| l.eq_ignore_ascii_case(extra)) {
            labels.push((*extra).to_owned());
        }
    }
    let id = if id.is_empty() { local_id(&bytes) } else { id };
    RawEmail {
        id,
        thread_id,
        labels,
        bytes,
    }
}

/// What a listing reads from the headers: Message-ID (without brackets; empty when
/// missing), labels, thread id.
type ListingHeaders = (String, Vec<String>, Option<String>);

fn parsed_headers(bytes: &[u8]) -> ListingHeaders {
    match MessageParser::default().parse_headers(bytes) {
        Some(msg) => (
            msg.message_id().map(clean_message_id).unwrap_or_default(),
            header_text(&msg, bytes, "X-Gmail-Labels")
                .map(|v| split_labels(&v))
                .unwrap_or_default(),
            header_text(&msg, bytes, "X-GM-THRID").filter(|t| !t.is_empty()),
        ),
        None => (String::new(), Vec::new(), None),
    }
}

/// [`parsed_headers`] without mail-parser, for the header blocks nearly all mail has:
/// every line `Name: value` (a name of letters, digits, `-` and `_`) or a folded
/// continuation, up to a blank line, with a Message-ID that is one `<id>` on one line.
/// Anything else returns `None` and goes to mail-parser, so ids never depend on which
/// path read them (a test checks both agree on every corpus message). Listing a large
/// mbox spent more time in a full header parse than in reading the file.
fn plain_headers(bytes: &[u8]) -> Option<ListingHeaders> {
    // Value ranges (after the colon, to the end of the last folded line).
    let (mut message_id, mut labels, mut thread) = (None, None, None);
    let mut current: Option<(&[u8], usize)> = None;
    let mut finish = |name: &[u8], value: std::ops::Range<usize>| {
        if name.eq_ignore_ascii_case(b"message-id") {
            message_id = Some(value); // mail-parser reads the last one
        } else if name.eq_ignore_ascii_case(b"x-gmail-labels") {
            labels.get_or_insert(value); // header_text reads the first one
        } else if name.eq_ignore_ascii_case(b"x-gm-thrid") {
            thread.get_or_insert(value);
        }
    };
    let mut pos = 0;
    while pos < bytes.len() {
        let end = memchr::memchr(b'\n', bytes.get(pos..)?).map_or(bytes.len(), |i| pos + i + 1);
        let line = bytes.get(pos..end)?;
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        match content.first() {
            None => break,
            // A folded line continues the current header.
            Some(b' ' | b'\t') if current.is_some() => {}
            Some(b' ' | b'\t') => return None,
            Some(_) => {
                if let Some((name, start)) = current.take() {
                    finish(name, start..pos);
                }
                let colon = memchr::memchr(b':', content)?;
                let name = content.get(..colon)?;
                let plain = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_');
                if name.is_empty() || !name.iter().all(plain) {
                    return None;
                }
                current = Some((name, pos + colon + 1));
            }
        }
        pos = end;
    }
    if let Some((name, start)) = current.take() {
        finish(name, start..pos);
    }
    let id = bytes.get(message_id?)?.trim_ascii();
    let inner = id.strip_prefix(b"<")?.strip_suffix(b">")?;
    let id_char = |b: &u8| b.is_ascii_graphic() && !matches!(b, b'<' | b'>');
    if inner.is_empty() || !inner.iter().all(id_char) {
        return None;
    }
    Some((
        String::from_utf8_lossy(inner).into_owned(),
        labels
            .and_then(|v| bytes.get(v))
            .map(|v| split_labels(&one_line(v)))
            .unwrap_or_default(),
        thread
            .and_then(|v| bytes.get(v))
            .map(one_line)
            .filter(|t| !t.is_empty()),
    ))
}

/// Hex SHA-256 of the bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// Splits a Takeout `X-Gmail-Labels` value: comma-separated, labels with commas are
/// double-quoted.
pub fn split_labels(value: &str) -> Vec<String> {
    let mut labels = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    for c in value.chars() {
        match c {
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                labels.push(std::mem::take(&mut current));
            }
            _ => current.push(c),
        }
    }
    labels.push(current);
    labels
        .into_iter()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

fn clean_message_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_owned()
}

/// A header's value by case-insensitive name, read from the raw bytes and unfolded,
/// so it works for any header whatever mail-parser made of it.
pub(crate) fn header_text(msg: &Message<'_>, bytes: &[u8], name: &str) -> Option<String> {
    let header = msg
        .headers()
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case(name))?;
    let start = header.offset_start() as usize;
    let end = header.offset_end() as usize;
    Some(one_line(bytes.get(start..end)?))
}

/// A raw header value as one line: folds and runs of white space become one space.
fn one_line(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn to_address(addr: &mail_parser::Addr<'_>) -> Option<Address> {
    let email = addr.address.as_deref()?.trim();
    if email.is_empty() {
        return None;
    }
    Some(Address::new(addr.name.as_deref(), email))
}

fn first_reference(msg: &Message<'_>) -> Option<String> {
    let refs = msg.references();
    let first = match refs {
        mail_parser::HeaderValue::Text(t) => Some(t.as_ref()),
        mail_parser::HeaderValue::TextList(list) => list.first().map(|t| t.as_ref()),
        _ => None,
    }?;
    Some(clean_message_id(first)).filter(|id| !id.is_empty())
}

fn message_date(msg: &Message<'_>) -> Option<DateTime<Utc>> {
    let date = msg.date()?;
    if !date.is_valid() {
        return None;
    }
    DateTime::from_timestamp(date.to_timestamp(), 0)
}

fn automation_headers(msg: &Message<'_>, bytes: &[u8]) -> AutomationHeaders {
    let has = |name: &str| {
        msg.headers()
            .iter()
            .any(|h| h.name().eq_ignore_ascii_case(name))
    };
    let lower = |name: &str| {
        header_text(msg, bytes, name)
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty())
    };
    AutomationHeaders {
        list_unsubscribe: has("List-Unsubscribe"),
        list_id: has("List-Id"),
        precedence: lower("Precedence"),
        auto_submitted: lower("Auto-Submitted"),
    }
}

/// The first text body; mail-parser converts HTML to text when that is all there is.
fn body_text(msg: &Message<'_>) -> String {
    let text = msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
    truncate_at_char_boundary(&text, MAX_BODY_SCAN_BYTES).to_owned()
}

/// The longest prefix of `s` no longer than `max` bytes that ends on a char boundary.
pub fn truncate_at_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

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
    Regex::new(r"(?i)^\**(from|von|de)\s*:\**\s").unwrap_or_else(|_| unreachable!("static regex"))
});
static OUTLOOK_SENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\**(sent|date|gesendet|envoyé)\s*:\**\s")
        .unwrap_or_else(|_| unreachable!("static regex"))
});
static MOBILE_FOOTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(sent from my \S+.*|sent from mail for windows.*|get outlook for \S+.*|sent from outlook.*|sent from yahoo mail.*|sent via .+|von meinem \S+ gesendet.*|envoyé de mon \S+.*)$",
    )
    .unwrap_or_else(|_| unreachable!("static regex"))
});

/// The text written in this message: quoted lines (`>`), the `On … wrote:`
/// attribution and everything after it, Outlook's `-----Original Message-----` and
/// `From:/Sent:` blocks and what follows, a `____` separator and after, the signature
/// after `-- `, and trailing "Sent from my iPhone" lines are removed.
pub fn strip_quoted(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut kept: Vec<&str> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('>') {
            continue;
        }
        if is_cut_line(&lines, i) {
            break;
        }
        kept.push(line.trim_end());
    }
    while let Some(last) = kept.last() {
        let t = last.trim();
        if t.is_empty() || MOBILE_FOOTER.is_match(t) {
            kept.pop();
        } else {
            break;
        }
    }
    let start = kept
        .iter()
        .position(|l| !l.trim().is_empty())
        .unwrap_or(kept.len());
    kept.get(start..).unwrap_or_default().join("\n")
}

/// Whether line `i` starts the history or signature that ends the new text.
fn is_cut_line(lines: &[&str], i: usize) -> bool {
    let Some(line) = lines.get(i) else {
        return false;
    };
    let trimmed = line.trim();
    // The signature delimiter is `-- ` (RFC 3676); many clients drop the space.
    if line.trim_end_matches(['\r', '\n']) == "-- " || trimmed == "--" {
        return true;
    }
    if trimmed.len() >= 10 && trimmed.chars().all(|c| c == '_') {
        return true;
    }
    // Every pattern below starts with one of a few words or characters; checking that
    // first keeps the regexes (and the joined-line copy) off ordinary lines, which is
    // most of the cost of parsing a mailbox.
    if trimmed.starts_with("--") && ORIGINAL_MESSAGE.is_match(trimmed) {
        return true;
    }
    if starts_with_attribution_word(trimmed) {
        if ON_WROTE.is_match(trimmed) || ON_WROTE_GLUED.is_match(trimmed) {
            return true;
        }
        // `On Mon, 3 Jun 2024 at 10:00, Someone <a@b.c>` / `wrote:` wrapped by the client.
        let next = lines.get(i + 1).map(|l| l.trim()).unwrap_or("");
        if trimmed.len() < 300 && !next.is_empty() && next.len() < 300 {
            let joined = format!("{trimmed} {next}");
            if ON_WROTE.is_match(&joined) && !ON_WROTE.is_match(next) {
                return true;
            }
        }
    }
    let outlook_start = trimmed
        .bytes()
        .next()
        .is_some_and(|b| matches!(b.to_ascii_lowercase(), b'*' | b'f' | b'v' | b'd'));
    if outlook_start && OUTLOOK_FROM.is_match(trimmed) {
        // Squashed into one line by an HTML-to-text conversion.
        if trimmed.contains(" Sent: ") {
            return true;
        }
        return lines
            .iter()
            .skip(i + 1)
            .take(3)
            .any(|l| OUTLOOK_SENT.is_match(l.trim()));
    }
    false
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

/// Parts a person would open.
fn count_attachments(msg: &Message<'_>) -> usize {
    let html_cids = referenced_content_ids(msg);
    msg.attachments()
        .filter(|part| is_real_attachment(part, &html_cids))
        .count()
}

/// `cid:` references in the HTML bodies, lower-cased without angle brackets.
fn referenced_content_ids(msg: &Message<'_>) -> Vec<String> {
    static CID: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(?i)cid:([^"'\s>)]+)"#).unwrap_or_else(|_| unreachable!("static regex"))
    });
    let mut cids = Vec::new();
    for part in msg.html_bodies() {
        if let mail_parser::PartType::Html(html) = &part.body {
            for cap in CID.captures_iter(html) {
                if let Some(m) = cap.get(1) {
                    cids.push(m.as_str().to_ascii_lowercase());
                }
            }
        }
    }
    cids
}

fn is_real_attachment(part: &mail_parser::MessagePart<'_>, html_cids: &[String]) -> bool {
    if part.is_multipart() {
        return false;
    }
    let (ctype, subtype) = part
        .content_type()
        .map(|ct| {
            (
                ct.ctype().to_ascii_lowercase(),
                ct.subtype().unwrap_or_default().to_ascii_lowercase(),
            )
        })
        .unwrap_or_default();
    let name = part
        .attachment_name()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let is_calendar = (ctype == "text" && subtype == "calendar")
        || (ctype == "application" && subtype == "ics")
        || name.ends_with(".ics");
    let is_signature = matches!(
        subtype.as_str(),
        "pgp-signature" | "pkcs7-signature" | "x-pkcs7-signature"
    ) || name == "smime.p7s"
        || name == "signature.asc";
    if is_calendar || is_signature {
        return false;
    }
    let disposition_attachment = part
        .content_disposition()
        .is_some_and(|d| d.is_attachment());
    if let Some(cid) = part.content_id() {
        let cid = clean_message_id(cid).to_ascii_lowercase();
        if !disposition_attachment && html_cids.contains(&cid) {
            return false;
        }
    }
    part.is_message() || !name.is_empty() || disposition_attachment
}

/// The first text/calendar (or application/ics) part, parsed.
fn find_calendar(msg: &Message<'_>) -> Option<CalendarEvent> {
    let part = msg.parts.iter().find(|part| {
        let Some(ct) = part.content_type() else {
            return false;
        };
        let sub = ct.subtype().unwrap_or_default();
        (ct.ctype().eq_ignore_ascii_case("text") && sub.eq_ignore_ascii_case("calendar"))
            || (ct.ctype().eq_ignore_ascii_case("application") && sub.eq_ignore_ascii_case("ics"))
    })?;
    let text = match part.text_contents() {
        Some(t) => t.to_owned(),
        None => String::from_utf8_lossy(part.contents()).into_owned(),
    };
    let method_param = part
        .content_type()
        .and_then(|ct| ct.attribute("method"))
        .map(str::to_owned);
    parse_calendar(&text, method_param.as_deref())
}

/// One iCalendar content line: name, parameters (upper-case names), value.
struct ContentLine {
    name: String,
    params: Vec<(String, String)>,
    value: String,
}

impl ContentLine {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits `NAME;P=V;P2="x:y":value`, respecting quoted parameter values.
fn parse_content_line(line: &str) -> Option<ContentLine> {
    let mut in_quotes = false;
    let mut colon = None;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ':' if !in_quotes => {
                colon = Some(i);
                break;
            }
            _ => {}
        }
    }
    let colon = colon?;
    let head = line.get(..colon)?;
    let value = line.get(colon + 1..)?.to_owned();
    let mut pieces = Vec::new();
    let mut current = String::new();
    in_quotes = false;
    for c in head.chars() {
        match c {
            '"' => in_quotes = !in_quotes,
            ';' if !in_quotes => pieces.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    pieces.push(current);
    let mut pieces = pieces.into_iter();
    let name = pieces.next()?.trim().to_ascii_uppercase();
    let params = pieces
        .filter_map(|p| {
            let (n, v) = p.split_once('=')?;
            Some((n.trim().to_ascii_uppercase(), v.trim().to_owned()))
        })
        .collect();
    Some(ContentLine {
        name,
        params,
        value,
    })
}

/// Joins RFC 5545 folded lines (continuations start with a space or tab).
fn unfold(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(rest) = line.strip_prefix([' ', '\t'])
            && let Some(last) = out.last_mut()
        {
            last.push_str(rest);
            continue;
        }
        out.push(line.to_owned());
    }
    out
}

/// Parses the first VEVENT of an iCalendar text. `method_param` is the Content-Type
/// `method=` parameter, used when the body has no METHOD line.
pub fn parse_calendar(text: &str, method_param: Option<&str>) -> Option<CalendarEvent> {
    let mut method: Option<String> = None;
    let mut stack: Vec<String> = Vec::new();
    let mut in_first_event = false;
    let mut seen_event = false;
    let mut uid = String::new();
    let mut sequence = 0i64;
    let mut summary = None;
    let mut dtstart: Option<ContentLine> = None;
    let mut dtend: Option<ContentLine> = None;
    let mut duration: Option<String> = None;
    let mut organizer = None;
    let mut attendees = Vec::new();

    for line in unfold(text) {
        let Some(cl) = parse_content_line(&line) else {
            continue;
        };
        match cl.name.as_str() {
            "BEGIN" => {
                let comp = cl.value.trim().to_ascii_uppercase();
                if comp == "VEVENT" && !seen_event && stack.last().is_none_or(|c| c == "VCALENDAR")
                {
                    in_first_event = true;
                    seen_event = true;
                }
                stack.push(comp);
                continue;
            }
            "END" => {
                if let Some(comp) = stack.pop()
                    && comp == "VEVENT"
                {
                    in_first_event = false;
                }
                continue;
            }
            _ => {}
        }
        let at_calendar = stack.last().is_some_and(|c| c == "VCALENDAR");
        if at_calendar && cl.name == "METHOD" {
            method = Some(cl.value.trim().to_ascii_uppercase());
            continue;
        }
        // Properties of a VALARM inside the event are not the event's.
        if !in_first_event || stack.last().is_none_or(|c| c != "VEVENT") {
            continue;
        }
        match cl.name.as_str() {
            "UID" => uid = cl.value.trim().to_owned(),
            "SEQUENCE" => sequence = cl.value.trim().parse().unwrap_or(0),
            "SUMMARY" => summary = Some(unescape_text(&cl.value)).filter(|s| !s.is_empty()),
            "DTSTART" => dtstart = Some(cl),
            "DTEND" => dtend = Some(cl),
            "DURATION" => duration = Some(cl.value.trim().to_owned()),
            "ORGANIZER" => organizer = mailto(&cl.value),
            "ATTENDEE" => {
                if let Some(addr) = mailto(&cl.value) {
                    let stat = cl
                        .param("PARTSTAT")
                        .map(partstat)
                        .unwrap_or(PartStat::NeedsAction);
                    attendees.push((addr, stat));
                }
            }
            _ => {}
        }
    }
    if !seen_event {
        return None;
    }

    let method = match method
        .or_else(|| method_param.map(|m| m.trim().to_ascii_uppercase()))
        .unwrap_or_default()
        .as_str()
    {
        "REQUEST" => CalendarMethod::Request,
        "CANCEL" => CalendarMethod::Cancel,
        "REPLY" => CalendarMethod::Reply,
        other => CalendarMethod::Other(other.to_owned()),
    };

    let (start, start_date) = match dtstart.as_ref().and_then(ical_time) {
        Some(IcalTime::Instant(t)) => (Some(t), None),
        Some(IcalTime::Date(d)) => (None, Some(d)),
        None => (None, None),
    };
    let end = if start_date.is_some() {
        None
    } else {
        match dtend.as_ref().and_then(ical_time) {
            Some(IcalTime::Instant(t)) => Some(t),
            _ => start.and_then(|s| {
                duration
                    .as_deref()
                    .and_then(parse_duration)
                    .and_then(|d| s.checked_add_signed(d))
            }),
        }
    };

    Some(CalendarEvent {
        method,
        uid,
        sequence,
        summary,
        start,
        end,
        start_date,
        organizer,
        attendees,
    })
}

fn unescape_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') | Some('N') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out.trim().to_owned()
}

fn mailto(value: &str) -> Option<String> {
    let v = value.trim();
    let addr = match v.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("mailto:") => v.get(7..)?,
        _ => v,
    };
    let addr = addr.trim().to_ascii_lowercase();
    (addr.contains('@')).then_some(addr)
}

fn partstat(value: &str) -> PartStat {
    match value.trim().to_ascii_uppercase().as_str() {
        "ACCEPTED" => PartStat::Accepted,
        "DECLINED" => PartStat::Declined,
        "TENTATIVE" => PartStat::Tentative,
        "NEEDS-ACTION" => PartStat::NeedsAction,
        other => PartStat::Other(other.to_owned()),
    }
}

enum IcalTime {
    Instant(DateTime<Utc>),
    Date(NaiveDate),
}

/// A DTSTART/DTEND value: UTC (`Z`), local time in a TZID zone, floating (read as UTC)
/// or a date (all-day).
fn ical_time(cl: &ContentLine) -> Option<IcalTime> {
    let value = cl.value.trim();
    let is_date = cl
        .param("VALUE")
        .is_some_and(|v| v.eq_ignore_ascii_case("DATE"))
        || (value.len() == 8 && value.bytes().all(|b| b.is_ascii_digit()));
    if is_date {
        return NaiveDate::parse_from_str(value.get(..8).unwrap_or(value), "%Y%m%d")
            .ok()
            .map(IcalTime::Date);
    }
    let (local, utc) = match value.strip_suffix(['Z', 'z']) {
        Some(v) => (v, true),
        None => (value, false),
    };
    let naive = NaiveDateTime::parse_from_str(local, "%Y%m%dT%H%M%S")
        .or_else(|_| NaiveDateTime::parse_from_str(local, "%Y%m%dT%H%M"));
    let naive = naive.ok()?;
    if utc {
        return Some(IcalTime::Instant(naive.and_utc()));
    }
    let tz = cl.param("TZID").and_then(resolve_tzid).unwrap_or(Tz::UTC);
    let instant = match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(earliest, _) => earliest.with_timezone(&Utc),
        // A time in a DST gap: the clock skipped it; read it as the hour after.
        LocalResult::None => tz
            .from_local_datetime(&(naive + Duration::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| naive.and_utc()),
    };
    Some(IcalTime::Instant(instant))
}

/// An IANA zone from a TZID, also Windows names Outlook uses; `None` when unknown
/// (the caller then reads the time as UTC).
fn resolve_tzid(tzid: &str) -> Option<Tz> {
    let id = tzid.trim().trim_matches('"').trim_start_matches('/');
    if let Ok(tz) = id.parse::<Tz>() {
        return Some(tz);
    }
    // `/mozilla.org/20050126_1/Europe/Berlin` style prefixes.
    if let Some(tz) = id
        .match_indices('/')
        .filter_map(|(i, _)| id.get(i + 1..)?.parse::<Tz>().ok())
        .next()
    {
        return Some(tz);
    }
    const WINDOWS: &[(&str, &str)] = &[
        ("Eastern Standard Time", "America/New_York"),
        ("US Eastern Standard Time", "America/Indianapolis"),
        ("Central Standard Time", "America/Chicago"),
        ("Mountain Standard Time", "America/Denver"),
        ("US Mountain Standard Time", "America/Phoenix"),
        ("Pacific Standard Time", "America/Los_Angeles"),
        ("Alaskan Standard Time", "America/Anchorage"),
        ("Hawaiian Standard Time", "Pacific/Honolulu"),
        ("Atlantic Standard Time", "America/Halifax"),
        ("E. South America Standard Time", "America/Sao_Paulo"),
        ("GMT Standard Time", "Europe/London"),
        ("Greenwich Standard Time", "Atlantic/Reykjavik"),
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("Romance Standard Time", "Europe/Paris"),
        ("Central Europe Standard Time", "Europe/Budapest"),
        ("Central European Standard Time", "Europe/Warsaw"),
        ("E. Europe Standard Time", "Europe/Chisinau"),
        ("FLE Standard Time", "Europe/Kiev"),
        ("GTB Standard Time", "Europe/Bucharest"),
        ("Russian Standard Time", "Europe/Moscow"),
        ("Israel Standard Time", "Asia/Jerusalem"),
        ("Arabian Standard Time", "Asia/Dubai"),
        ("India Standard Time", "Asia/Kolkata"),
        ("China Standard Time", "Asia/Shanghai"),
        ("Singapore Standard Time", "Asia/Singapore"),
        ("Tokyo Standard Time", "Asia/Tokyo"),
        ("Korea Standard Time", "Asia/Seoul"),
        ("AUS Eastern Standard Time", "Australia/Sydney"),
        ("E. Australia Standard Time", "Australia/Brisbane"),
        ("New Zealand Standard Time", "Pacific/Auckland"),
        ("UTC", "UTC"),
        ("Coordinated Universal Time", "UTC"),
    ];
    WINDOWS
        .iter()
        .find(|(win, _)| win.eq_ignore_ascii_case(id))
        .and_then(|(_, iana)| iana.parse().ok())
}

/// An RFC 5545 DURATION such as `PT1H30M`, `P1D`, `P2W`, `-PT15M`.
fn parse_duration(value: &str) -> Option<Duration> {
    let v = value.trim();
    let (sign, v) = match v.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, v.strip_prefix('+').unwrap_or(v)),
    };
    let v = v.strip_prefix(['P', 'p'])?;
    let mut seconds: i64 = 0;
    let mut number = String::new();
    let mut any = false;
    for c in v.chars() {
        match c.to_ascii_uppercase() {
            'T' => {}
            d if d.is_ascii_digit() => number.push(d),
            unit => {
                let n: i64 = number.parse().ok()?;
                number.clear();
                let factor = match unit {
                    'W' => 7 * 86_400,
                    'D' => 86_400,
                    'H' => 3_600,
                    'M' => 60,
                    'S' => 1,
                    _ => return None,
                };
                seconds = seconds.checked_add(n.checked_mul(factor)?)?;
                any = true;
            }
        }
    }
    (any && number.is_empty()).then(|| Duration::try_seconds(sign * seconds))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn raw(text: &str) -> RawEmail {
        RawEmail {
            id: "id-1".into(),
            bytes: text.replace('\n', "\r\n").into_bytes(),
            ..RawEmail::default()
        }
    }

    fn parse(text: &str) -> Email {
        match parse_email(&raw(text)) {
            Ok(email) => email,
            Err(e) => panic!("parse failed: {e}"),
        }
    }

    fn plain(body: &str) -> String {
        format!(
            "From: Ann Client <Ann@Acme.COM>\nTo: me@example.com, \"Bob\" <BOB@example.com>\nCc: Team: x@acme.com, y@acme.com;\nSubject: Re: contract\nDate: Tue, 4 Jun 2024 09:30:00 -0400\nMessage-ID: <abc@acme.com>\nReferences: <root@acme.com> <mid@acme.com>\n\n{body}"
        )
    }

    #[test]
    fn headers_become_lower_case_addresses_subject_and_utc_date() {
        let email = parse(&plain("Hello there."));
        let from = email.from.as_ref().map(|a| a.email.as_str());
        assert_eq!(from, Some("ann@acme.com"));
        assert_eq!(email.from.and_then(|a| a.name), Some("Ann Client".into()));
        let to: Vec<_> = email.to.iter().map(|a| a.email.as_str()).collect();
        assert_eq!(to, ["me@example.com", "bob@example.com"]);
        let cc: Vec<_> = email.cc.iter().map(|a| a.email.as_str()).collect();
        assert_eq!(
            cc,
            ["x@acme.com", "y@acme.com"],
            "group syntax is flattened"
        );
        assert_eq!(email.subject, "Re: contract");
        assert_eq!(
            email.date,
            Utc.with_ymd_and_hms(2024, 6, 4, 13, 30, 0).single()
        );
        assert_eq!(email.id, "id-1");
        assert_eq!(email.thread_id.as_deref(), Some("root@acme.com"));
        assert_eq!(email.new_text, "Hello there.");
        assert_eq!(email.new_words, 2);
        assert_eq!(email.size, raw(&plain("Hello there.")).bytes.len());
        assert_eq!(email.content_hash.len(), 64);
    }

    #[test]
    fn a_missing_or_invalid_date_is_none() {
        let email = parse("From: a@b.com\nSubject: x\nDate: not a date\n\nhi");
        assert_eq!(email.date, None);
        let email = parse("From: a@b.com\nSubject: x\n\nhi");
        assert_eq!(email.date, None);
    }

    #[test]
    fn thread_id_prefers_the_source_then_gmail_header() {
        let mut r = raw(&format!("X-GM-THRID: 1234\n{}", plain("x")));
        let email = parse_email(&r).ok();
        assert_eq!(email.and_then(|e| e.thread_id).as_deref(), Some("1234"));
        r.thread_id = Some("from-source".into());
        let email = parse_email(&r).ok();
        assert_eq!(
            email.and_then(|e| e.thread_id).as_deref(),
            Some("from-source")
        );
    }

    #[test]
    fn automation_headers_are_detected_and_lower_cased() {
        let email = parse(
            "From: news@acme.com\nList-Unsubscribe: <mailto:u@acme.com>\nList-Id: <news.acme.com>\nPrecedence: BULK\nAuto-Submitted: Auto-Generated\nSubject: n\n\nx",
        );
        assert!(email.automation.list_unsubscribe);
        assert!(email.automation.list_id);
        assert_eq!(email.automation.precedence.as_deref(), Some("bulk"));
        assert_eq!(
            email.automation.auto_submitted.as_deref(),
            Some("auto-generated")
        );
        let email = parse(&plain("x"));
        assert!(!email.automation.list_unsubscribe && !email.automation.list_id);
        assert_eq!(email.automation.precedence, None);
    }

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

    #[test]
    fn new_text_is_truncated_at_a_char_boundary() {
        let body = "é".repeat(MAX_TEXT_BYTES);
        let email = parse(&format!(
            "From: a@b.com\nSubject: big\nContent-Type: text/plain; charset=utf-8\n\n{body}"
        ));
        assert!(email.new_text.len() <= MAX_TEXT_BYTES);
        assert!(email.new_text.len() >= MAX_TEXT_BYTES - 1);
        assert!(email.new_text.chars().all(|c| c == 'é'));
    }

    #[test]
    fn html_only_mail_gives_text_without_tags() {
        let email = parse(
            "From: a@acme.com\nSubject: html\nContent-Type: text/html; charset=utf-8\n\n<html><body><p>Please review the <b>engagement letter</b>.</p><div>On Mon, Jun 3, 2024 at 10:00 AM Bob &lt;bob@x.com&gt; wrote:</div><blockquote>old stuff</blockquote></body></html>",
        );
        assert!(
            email
                .new_text
                .contains("Please review the engagement letter.")
        );
        assert!(!email.new_text.contains("<p>"), "{:?}", email.new_text);
        assert!(!email.new_text.contains("old stuff"), "{}", email.new_text);
    }

    const MIXED: &str = "From: a@acme.com\nTo: me@example.com\nSubject: files\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"outer\"\n\n--outer\nContent-Type: multipart/related; boundary=\"rel\"\n\n--rel\nContent-Type: text/html\n\n<p>See <img src=\"cid:logo123@acme\"> attached.</p>\n--rel\nContent-Type: image/png; name=\"logo.png\"\nContent-ID: <logo123@acme>\nContent-Disposition: inline; filename=\"logo.png\"\nContent-Transfer-Encoding: base64\n\niVBORw0KGgo=\n--rel--\n--outer\nContent-Type: application/pdf; name=\"contract.pdf\"\nContent-Disposition: attachment; filename=\"contract.pdf\"\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--outer\nContent-Type: application/vnd.openxmlformats-officedocument.wordprocessingml.document\nContent-Disposition: attachment; filename=\"notes.docx\"\nContent-Transfer-Encoding: base64\n\nUEsDBA==\n--outer\nContent-Type: application/ics; name=\"invite.ics\"\nContent-Disposition: attachment; filename=\"invite.ics\"\n\nBEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:u1\nDTSTART:20240610T150000Z\nDTEND:20240610T160000Z\nEND:VEVENT\nEND:VCALENDAR\n--outer\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\nContent-Disposition: attachment; filename=\"smime.p7s\"\n\nMIAGCSqGSIb3DQEHAqCAMIACAQExDzANBglghkgBZQMEAgEFADCABgkqhkiG9w0BBwEAAKCAMIIF\n--outer--\n";

    #[test]
    fn attachments_count_real_files_not_inline_images_invites_or_signatures() {
        let email = parse(MIXED);
        assert_eq!(email.attachments, 2, "contract.pdf and notes.docx");
        let cal = email.calendar.as_ref().map(|c| c.uid.as_str());
        assert_eq!(
            cal,
            Some("u1"),
            "an application/ics attachment is read as the invite"
        );
    }

    #[test]
    fn plain_mail_has_no_attachments_or_calendar() {
        let email = parse(&plain("hi"));
        assert_eq!(email.attachments, 0);
        assert_eq!(email.calendar, None);
    }

    fn invite(method: &str, event: &str) -> Email {
        parse(&format!(
            "From: ann@acme.com\nTo: me@example.com\nSubject: Invitation\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nYou are invited.\n--b\nContent-Type: text/calendar; charset=utf-8; method={method}\n\nBEGIN:VCALENDAR\nMETHOD:{method}\nBEGIN:VTIMEZONE\nTZID:Europe/Berlin\nBEGIN:STANDARD\nDTSTART:19701025T030000\nEND:STANDARD\nEND:VTIMEZONE\nBEGIN:VEVENT\n{event}\nBEGIN:VALARM\nTRIGGER:-PT15M\nDESCRIPTION:not the summary\nEND:VALARM\nEND:VEVENT\nEND:VCALENDAR\n--b--\n"
        ))
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> Option<DateTime<Utc>> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).single()
    }

    #[test]
    fn a_request_with_utc_times_organizer_attendees_and_folded_lines() {
        let email = invite(
            "REQUEST",
            "UID:evt-1@acme.com\nSEQUENCE:2\nSUMMARY:Contract review\\, round 2\nDTSTART:20240610T150000Z\nDTEND:20240610T163000Z\nORGANIZER;CN=Ann:mailto:Ann@Acme.com\nATTENDEE;CN=\"Me: myself\";PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT:mai\n lto:Me@Example.com\nATTENDEE;PARTSTAT=TENTATIVE:mailto:bob@acme.com\nATTENDEE:mailto:carl@acme.com",
        );
        let Some(cal) = email.calendar else {
            panic!("no calendar parsed");
        };
        assert_eq!(cal.method, CalendarMethod::Request);
        assert_eq!(cal.uid, "evt-1@acme.com");
        assert_eq!(cal.sequence, 2);
        assert_eq!(cal.summary.as_deref(), Some("Contract review, round 2"));
        assert_eq!(cal.start, utc(2024, 6, 10, 15, 0));
        assert_eq!(cal.end, utc(2024, 6, 10, 16, 30));
        assert_eq!(cal.start_date, None);
        assert_eq!(cal.organizer.as_deref(), Some("ann@acme.com"));
        assert_eq!(
            cal.attendees,
            vec![
                ("me@example.com".to_owned(), PartStat::Accepted),
                ("bob@acme.com".to_owned(), PartStat::Tentative),
                ("carl@acme.com".to_owned(), PartStat::NeedsAction),
            ]
        );
        assert_eq!(email.new_text, "You are invited.");
    }

    #[test]
    fn tzid_local_times_are_converted_with_the_zone_rules() {
        let email = invite(
            "REQUEST",
            "UID:tz\nDTSTART;TZID=Europe/Berlin:20240610T090000\nDTEND;TZID=\"Europe/Berlin\":20240610T100000",
        );
        let cal = email.calendar;
        assert_eq!(
            cal.as_ref().and_then(|c| c.start),
            utc(2024, 6, 10, 7, 0),
            "CEST is UTC+2"
        );
        assert_eq!(cal.and_then(|c| c.end), utc(2024, 6, 10, 8, 0));
    }

    #[test]
    fn windows_zone_names_unknown_zones_and_floating_times() {
        let email = invite(
            "REQUEST",
            "UID:w\nDTSTART;TZID=Eastern Standard Time:20240115T090000\nDTEND;TZID=Nowhere/Special:20240115T100000",
        );
        let cal = email.calendar;
        assert_eq!(
            cal.as_ref().and_then(|c| c.start),
            utc(2024, 1, 15, 14, 0),
            "EST is UTC-5"
        );
        assert_eq!(
            cal.and_then(|c| c.end),
            utc(2024, 1, 15, 10, 0),
            "unknown zone is read as UTC"
        );
        let email = invite(
            "REQUEST",
            "UID:f\nDTSTART:20240115T090000\nDTEND:20240115T093000",
        );
        assert_eq!(email.calendar.and_then(|c| c.end), utc(2024, 1, 15, 9, 30));
    }

    #[test]
    fn all_day_events_have_only_a_start_date() {
        let email = invite(
            "REQUEST",
            "UID:d\nDTSTART;VALUE=DATE:20240610\nDTEND;VALUE=DATE:20240611",
        );
        let Some(cal) = email.calendar else {
            panic!("no calendar parsed");
        };
        assert_eq!(cal.start_date, NaiveDate::from_ymd_opt(2024, 6, 10));
        assert_eq!((cal.start, cal.end), (None, None));
        assert_eq!(cal.sequence, 0, "SEQUENCE defaults to 0");
    }

    #[test]
    fn duration_gives_the_end() {
        let email = invite(
            "REQUEST",
            "UID:dur\nDTSTART:20240610T150000Z\nDURATION:PT1H15M",
        );
        assert_eq!(email.calendar.and_then(|c| c.end), utc(2024, 6, 10, 16, 15));
        assert_eq!(parse_duration("P1W"), Some(Duration::days(7)));
        assert_eq!(parse_duration("P1DT2H"), Some(Duration::hours(26)));
        assert_eq!(parse_duration("garbage"), None);
        assert_eq!(parse_duration("PT"), None);
    }

    #[test]
    fn cancel_and_declined_reply_are_read() {
        let email = invite(
            "CANCEL",
            "UID:evt-1@acme.com\nSEQUENCE:3\nDTSTART:20240610T150000Z",
        );
        let cal = email.calendar;
        assert_eq!(
            cal.as_ref().map(|c| c.method.clone()),
            Some(CalendarMethod::Cancel)
        );
        assert_eq!(cal.map(|c| c.sequence), Some(3));
        let email = invite(
            "REPLY",
            "UID:evt-1@acme.com\nDTSTART:20240610T150000Z\nATTENDEE;PARTSTAT=DECLINED:MAILTO:ME@example.com",
        );
        let Some(cal) = email.calendar else {
            panic!("no calendar parsed");
        };
        assert_eq!(cal.method, CalendarMethod::Reply);
        assert_eq!(
            cal.attendees,
            vec![("me@example.com".to_owned(), PartStat::Declined)]
        );
    }

    #[test]
    fn a_calendar_without_an_event_is_none() {
        assert_eq!(
            parse_calendar("BEGIN:VCALENDAR\nMETHOD:REQUEST\nEND:VCALENDAR", None),
            None
        );
        assert_eq!(parse_calendar("\u{0}garbage:::\n;;;", None), None);
    }

    #[test]
    fn local_id_strips_angle_brackets_or_hashes_the_content() {
        assert_eq!(
            local_id(b"Message-ID:  <abc@x.com> \r\nSubject: a\r\n\r\nb"),
            "abc@x.com"
        );
        let id = local_id(b"Subject: no id\r\n\r\nbody");
        assert!(id.starts_with("sha256:"));
        assert_eq!(id.len(), "sha256:".len() + 32);
        assert_eq!(id, local_id(b"Subject: no id\r\n\r\nbody"), "stable");
        assert_ne!(id, local_id(b"Subject: no id\r\n\r\nother body"));
    }

    #[test]
    fn takeout_labels_and_thread_come_from_headers() {
        let raw = raw_from_bytes(
            b"X-GM-THRID: 1800\r\nX-Gmail-Labels: Inbox, Sent,\"Clients, Acme\",Important\r\nMessage-ID: <m@x>\r\n\r\nhi".to_vec(),
            &["Sent", "Extra"],
        );
        assert_eq!(raw.id, "m@x");
        assert_eq!(raw.thread_id.as_deref(), Some("1800"));
        assert_eq!(
            raw.labels,
            ["Inbox", "Sent", "Clients, Acme", "Important", "Extra"]
        );
    }

    #[test]
    fn empty_or_headerless_input_is_malformed_not_a_panic() {
        for bytes in [&b""[..], b"   \r\n", b"\r\n\r\njust a body with no headers"] {
            let r = RawEmail {
                bytes: bytes.to_vec(),
                ..RawEmail::default()
            };
            assert!(
                matches!(parse_email(&r), Err(MailError::Malformed(_))),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn garbage_bytes_never_panic() {
        let mut seed: u32 = 12345;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    let b = (seed >> 16) as u8;
                    // Bias toward bytes that matter to the MIME grammar.
                    match b % 8 {
                        0 => b':',
                        1 => b'\n',
                        2 => b'-',
                        _ => b,
                    }
                })
                .collect();
            let r = RawEmail {
                bytes,
                ..RawEmail::default()
            };
            let _ = parse_email(&r);
        }
    }

    /// Every `.eml` file of the mail-parser corpus, with its path.
    fn corpus() -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus");
        let mut pending = vec![root];
        let mut out = Vec::new();
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                panic!("cannot read {}", dir.display());
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|e| e == "eml") {
                    let Ok(bytes) = std::fs::read(&path) else {
                        panic!("cannot read {}", path.display());
                    };
                    out.push((path, bytes));
                }
            }
        }
        out
    }

    #[test]
    fn plain_header_reading_agrees_with_mail_parser() {
        let demo = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/demo.mbox"),
        )
        .expect("demo.mbox");
        let mut messages: Vec<Vec<u8>> = corpus().into_iter().map(|(_, b)| b).collect();
        let mut reader = crate::mail::mbox::MboxReader::new(demo.as_slice());
        while let Some(Ok(m)) = reader.next_message() {
            messages.push(m);
        }
        let edge_cases: [&[u8]; 12] = [
            b"Message-ID: <a@b>\r\nX-GM-THRID: 42\r\n\r\nbody",
            b"Message-ID:\n <folded@b>\nSubject: x\n\nbody",
            b"Message-ID: <first@b>\nMessage-ID: <second@b>\n\n",
            b"message-id: <lower@b>\nX-Gmail-Labels: Inbox,\"Clients, Acme\",Sent\n\n",
            b"X-Gmail-Labels: A\nX-Gmail-Labels: B\nMessage-ID: <l@b>\n\n",
            b"Message-ID: <a b@c>\n\n",
            b"Message-ID: a@b\n\n",
            b"Message-ID: <>\n\n",
            b"Subject: no id\n\nbody",
            b" leading: fold\nMessage-ID: <x@y>\n\n",
            b"Bad Name: x\nMessage-ID: <x@y>\n\n",
            b"Message-ID: <x@y>\nX-GM-THRID:\n\t 77\n  88\n\nbody\nMessage-ID: <body@y>\n",
        ];
        messages.extend(edge_cases.iter().map(|m| m.to_vec()));
        let mut plain = 0;
        for bytes in &messages {
            if let Some(fast) = plain_headers(bytes) {
                plain += 1;
                assert_eq!(
                    fast,
                    parsed_headers(bytes),
                    "{:?}",
                    String::from_utf8_lossy(bytes.get(..300).unwrap_or(bytes))
                );
            }
        }
        // The common shapes take the fast path; the odd ones fall back.
        assert!(
            plain * 2 > messages.len(),
            "only {plain} of {} read plainly",
            messages.len()
        );
        assert!(plain_headers(edge_cases[0]).is_some() && plain_headers(edge_cases[1]).is_some());
        for odd in &edge_cases[5..11] {
            assert_eq!(
                plain_headers(odd),
                None,
                "{:?}",
                String::from_utf8_lossy(odd)
            );
        }
    }

    #[test]
    fn every_corpus_file_parses_or_is_reported_malformed() {
        let mut files = 0;
        let mut ok = 0;
        for (path, bytes) in corpus() {
            {
                let r = RawEmail {
                    id: local_id(&bytes),
                    bytes,
                    ..RawEmail::default()
                };
                files += 1;
                match parse_email(&r) {
                    Ok(email) => {
                        ok += 1;
                        assert!(email.new_text.len() <= MAX_TEXT_BYTES);
                        assert_eq!(email.new_words, count_words(&email.new_text));
                    }
                    Err(MailError::Malformed(_)) => {}
                    Err(other) => panic!("{}: unexpected error {other}", path.display()),
                }
            }
        }
        assert!(files >= 100, "the corpus has {files} files; is it copied?");
        assert!(ok * 10 >= files * 9, "only {ok} of {files} parsed");
    }
}
