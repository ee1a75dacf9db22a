//! Attachments: the parts a person would open, not inline images referenced by
//! `cid:`, invites or signatures.

use std::collections::HashSet;
use std::sync::LazyLock;

use mail_parser::{Message, MimeHeaders};
use regex::Regex;

use super::headers::clean_message_id;

/// Parts a person would open.
pub(super) fn count_attachments(msg: &Message<'_>) -> usize {
    let html_cids = referenced_content_ids(msg);
    msg.attachments()
        .filter(|part| is_real_attachment(part, &html_cids))
        .count()
}

/// `cid:` references in the HTML bodies, lower-cased without angle brackets (a set:
/// every part is looked up in it).
fn referenced_content_ids(msg: &Message<'_>) -> HashSet<String> {
    static CID: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(?i)cid:([^"'\s>)]+)"#).unwrap_or_else(|_| unreachable!("static regex"))
    });
    let mut cids = HashSet::new();
    for part in msg.html_bodies() {
        if let mail_parser::PartType::Html(html) = &part.body {
            for cap in CID.captures_iter(html) {
                if let Some(m) = cap.get(1) {
                    cids.insert(m.as_str().to_ascii_lowercase());
                }
            }
        }
    }
    cids
}

fn is_real_attachment(part: &mail_parser::MessagePart<'_>, html_cids: &HashSet<String>) -> bool {
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

#[cfg(test)]
mod tests {
    use crate::mail::parse::tests::{parse, plain};

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
}
