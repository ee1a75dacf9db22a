//! Raw RFC 5322 bytes to the `Email` the pipeline works with.
//!
//! mail-parser does the MIME work; this module decides what counts as the text a
//! person wrote (quoted history and signatures removed), which parts a person would
//! open, and what a calendar invite says. Nothing here may panic on input data:
//! every malformed message is either read leniently or reported as
//! `MailError::Malformed`.
//!
//! One file per job: `headers` (ids, labels, addresses, the listing's header read),
//! `body` (the text body, HTML converted), `quote` (quoted history, signatures, word
//! counts), `attachments` (what a person would open) and `calendar` (iCalendar
//! invites). `parse_email` puts them together.

mod attachments;
mod body;
mod calendar;
mod headers;
mod quote;

use mail_parser::MessageParser;

use super::{MailError, RawEmail};
use crate::domain::email::Email;

use attachments::count_attachments;
use body::body_text;
pub use body::truncate_at_char_boundary;
use calendar::find_calendar;
pub use calendar::parse_calendar;
pub(crate) use headers::header_text;
pub use headers::{MAX_ID_BYTES, local_id, raw_from_bytes, sha256_hex, split_labels, storable_id};
use headers::{automation_headers, first_reference, message_date, to_address};
pub use quote::{count_words, strip_quoted, thread_addresses};

/// The most text of one message that reaches an analyzer (64 KiB). Longer new text is
/// cut at a character boundary so oversized mail never reaches an LLM whole.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// The most of a message the parser is given (8 MiB, after the sources dropped
/// attachment bodies): room for any real message's headers, text, invitation and
/// attachment list, and a bound on what parsing one message costs.
pub const MAX_PARSE_BYTES: usize = 8 * 1024 * 1024;

/// The most MIME boundary lines parsed (1,000); a message is cut before the next one.
/// Every part costs the parser memory: 5 million empty parts in 24 MB cost gigabytes.
pub const MAX_PARTS: usize = 1000;

/// The part of `bytes` that is parsed: at most [`MAX_PARSE_BYTES`], cut before the
/// line that would start part [`MAX_PARTS`] + 1 (any line starting `--` counts).
fn parse_bounds(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.get(..MAX_PARSE_BYTES).unwrap_or(bytes);
    match memchr::memmem::find_iter(bytes, b"\n--").nth(MAX_PARTS) {
        Some(at) => bytes.get(..=at).unwrap_or(bytes),
        None => bytes,
    }
}

/// The most addresses kept from a message's quoted history.
pub const MAX_THREAD_ADDRESSES: usize = 50;

/// Parses one message. `raw.id`, `raw.thread_id` and `raw.labels` come from the source
/// and win over what the headers say.
pub fn parse_email(raw: &RawEmail) -> Result<Email, MailError> {
    let whole = raw.bytes.as_slice();
    if whole.iter().all(u8::is_ascii_whitespace) {
        return Err(MailError::Malformed("the message is empty".into()));
    }
    let bytes = parse_bounds(whole);
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
        .or_else(|| first_reference(&msg))
        .map(|t| storable_id(&t));

    let body = body_text(&msg);
    let new_text = truncate_at_char_boundary(&strip_quoted(&body), MAX_TEXT_BYTES).to_owned();
    let new_words = count_words(&new_text);
    let thread_addresses = thread_addresses(&body, &new_text, MAX_THREAD_ADDRESSES);

    Ok(Email {
        id: raw.id.clone(),
        rfc_id: msg
            .message_id()
            .map(headers::clean_message_id)
            .filter(|id| !id.is_empty())
            .map(|id| storable_id(&id)),
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
        thread_addresses,
        attachments: count_attachments(&msg),
        calendar: find_calendar(&msg),
        content_hash: sha256_hex(whole),
        size: whole.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn raw(text: &str) -> RawEmail {
        RawEmail {
            id: "id-1".into(),
            bytes: text.replace('\n', "\r\n").into_bytes(),
            ..RawEmail::default()
        }
    }

    pub(super) fn parse(text: &str) -> Email {
        match parse_email(&raw(text)) {
            Ok(email) => email,
            Err(e) => panic!("parse failed: {e}"),
        }
    }

    pub(super) fn plain(body: &str) -> String {
        format!(
            "From: Ann Client <Ann@Acme.COM>\nTo: me@example.com, \"Bob\" <BOB@example.com>\nCc: Team: x@acme.com, y@acme.com;\nSubject: Re: contract\nDate: Tue, 4 Jun 2024 09:30:00 -0400\nMessage-ID: <abc@acme.com>\nReferences: <root@acme.com> <mid@acme.com>\n\n{body}"
        )
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
    pub(super) fn corpus() -> Vec<(std::path::PathBuf, Vec<u8>)> {
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
