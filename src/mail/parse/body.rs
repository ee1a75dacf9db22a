//! The text body of a message: the first text part, or the HTML converted to text.

use mail_parser::Message;

/// The body text considered for quote stripping. Stripping is linear, but a
/// multi-megabyte text body is almost always generated, not written, so it is cut
/// early to keep parsing cheap.
const MAX_BODY_SCAN_BYTES: usize = 1024 * 1024;

/// The first text body; mail-parser converts HTML to text when that is all there is.
pub(super) fn body_text(msg: &Message<'_>) -> String {
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

#[cfg(test)]
mod tests {
    use crate::mail::parse::tests::parse;

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

    #[test]
    fn an_html_only_outlook_reply_keeps_only_the_new_words() {
        let email = parse(
            "From: Alex Morgan <alex@morganlegal.com>\nTo: Jane Cooper <jane.cooper@acme.com>\nSubject: RE: MSA\nDate: Mon, 23 Nov 2026 10:00:00 -0500\nMessage-ID: <html-reply-1@m>\nContent-Type: text/html; charset=utf-8\n\n<html><body><div class=\"WordSection1\"><p class=\"MsoNormal\">Jane, agreed on section 4. I will send a clean version today.</p></div>\n<div id=\"appendonsend\"></div><hr style=\"display:inline-block;width:98%\" tabindex=\"-1\">\n<div id=\"divRplyFwdMsg\" dir=\"ltr\"><font face=\"Calibri\" style=\"font-size:11pt\"><b>From:</b> Jane Cooper &lt;jane.cooper@acme.com&gt;<br><b>Sent:</b> Friday, November 20, 2026 4:12 PM<br><b>To:</b> Alex Morgan &lt;alex@morganlegal.com&gt;<br><b>Subject:</b> MSA</font><div>&nbsp;</div></div>\n<div><p>Alex, long quoted text here with many many words words words words words words words words words words words words words words words words words words words words words words words words words words words words words words words words words words words words words words.</p></div></body></html>\n",
        );
        assert_eq!(
            email.new_text.trim(),
            "Jane, agreed on section 4. I will send a clean version today.",
            "{:?}",
            email.new_text
        );
    }
}
