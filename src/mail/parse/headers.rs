//! Headers and addresses: the ids, labels and thread a source lists a message by
//! (read without mail-parser when the header block is plain), and the addresses,
//! date and automation headers of a parsed message.

use chrono::{DateTime, Utc};
use mail_parser::{Message, MessageParser};
use sha2::{Digest, Sha256};

use crate::domain::email::{Address, AutomationHeaders};
use crate::mail::RawEmail;

/// The id a local source gives a message: the Message-ID header without angle
/// brackets, or, when it is missing or empty, `sha256:` and the first 32 hex digits
/// of the content hash, so the same bytes always get the same id.
pub fn local_id(bytes: &[u8]) -> String {
    MessageParser::default()
        .parse_headers(bytes)
        .and_then(|m| m.message_id().map(clean_message_id))
        .filter(|id| !id.is_empty())
        .map(|id| storable_id(&id))
        .unwrap_or_else(|| {
            let hex = sha256_hex(bytes);
            format!("sha256:{}", hex.get(..32).unwrap_or(&hex))
        })
}

/// The longest id (Message-ID, thread id, calendar UID) kept as the sender wrote it:
/// RFC 5322's line limit, and well under what a Postgres index can hold.
pub const MAX_ID_BYTES: usize = 998;

/// An id as billable keys a message, thread or meeting by: the sender's text when it
/// is at most [`MAX_ID_BYTES`] with no control characters, otherwise `sha256:` and the
/// first 32 hex digits of its hash. A sender cannot make a key a store cannot hold (a
/// NUL byte, a megabyte), and the same id always gets the same key, whichever source
/// or header path read it.
pub fn storable_id(id: &str) -> String {
    if id.len() <= MAX_ID_BYTES && !id.chars().any(char::is_control) {
        return id.to_owned();
    }
    let hex = sha256_hex(id.as_bytes());
    format!("sha256:{}", hex.get(..32).unwrap_or(&hex))
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
            msg.message_id()
                .map(clean_message_id)
                .filter(|id| !id.is_empty())
                .map(|id| storable_id(&id))
                .unwrap_or_default(),
            header_text(&msg, bytes, "X-Gmail-Labels")
                .map(|v| split_labels(&v))
                .unwrap_or_default(),
            header_text(&msg, bytes, "X-GM-THRID")
                .filter(|t| !t.is_empty())
                .map(|t| storable_id(&t)),
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
        storable_id(&String::from_utf8_lossy(inner)),
        labels
            .and_then(|v| bytes.get(v))
            .map(|v| split_labels(&one_line(v)))
            .unwrap_or_default(),
        thread
            .and_then(|v| bytes.get(v))
            .map(one_line)
            .filter(|t| !t.is_empty())
            .map(|t| storable_id(&t)),
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

pub(super) fn clean_message_id(id: &str) -> String {
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

pub(super) fn to_address(addr: &mail_parser::Addr<'_>) -> Option<Address> {
    let email = addr.address.as_deref()?.trim();
    if email.is_empty() {
        return None;
    }
    Some(Address::new(addr.name.as_deref(), email))
}

pub(super) fn first_reference(msg: &Message<'_>) -> Option<String> {
    let refs = msg.references();
    let first = match refs {
        mail_parser::HeaderValue::Text(t) => Some(t.as_ref()),
        mail_parser::HeaderValue::TextList(list) => list.first().map(|t| t.as_ref()),
        _ => None,
    }?;
    Some(clean_message_id(first)).filter(|id| !id.is_empty())
}

pub(super) fn message_date(msg: &Message<'_>) -> Option<DateTime<Utc>> {
    let date = msg.date()?;
    if !date.is_valid() {
        return None;
    }
    DateTime::from_timestamp(date.to_timestamp(), 0)
}

pub(super) fn automation_headers(msg: &Message<'_>, bytes: &[u8]) -> AutomationHeaders {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parse::parse_email;
    use crate::mail::parse::tests::{corpus, parse, plain, raw};
    use chrono::TimeZone;

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
    fn ids_no_store_could_hold_are_keyed_by_their_hash_on_every_path() {
        let key = |id: &str| {
            let hex = sha256_hex(id.as_bytes());
            format!("sha256:{}", &hex[..32])
        };
        assert_eq!(storable_id("abc@x.com"), "abc@x.com");
        let long = format!("{}@x.com", "a".repeat(MAX_ID_BYTES));
        assert_eq!(storable_id(&long), key(&long));
        assert_eq!(storable_id("a\0b@x.com"), key("a\0b@x.com"));

        // A megabyte Message-ID and thread header, read by the listing and by the parser.
        let huge = format!("{}@x.com", "m".repeat(1 << 20));
        let message = format!(
            "Message-ID: <{huge}>\r\nX-GM-THRID: {huge}\r\nFrom: a@x.com\r\nSubject: s\r\n\r\nbody"
        );
        let listed = raw_from_bytes(message.clone().into_bytes(), &[]);
        assert_eq!(listed.id, key(&huge));
        assert_eq!(listed.thread_id, Some(key(&huge)));
        assert_eq!(local_id(message.as_bytes()), key(&huge));
        let email = parse_email(&listed).expect("parses");
        assert_eq!(
            email.rfc_id,
            Some(key(&huge)),
            "the same key as the listing's id"
        );
        // A NUL in a Message-ID the plain reader leaves to mail-parser.
        let nul = raw_from_bytes(b"Message-ID: <a\0b@x.com>\r\n\r\nbody".to_vec(), &[]);
        assert!(
            !nul.id.contains('\0') && nul.id.len() <= MAX_ID_BYTES,
            "{:?}",
            nul.id
        );
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
}
