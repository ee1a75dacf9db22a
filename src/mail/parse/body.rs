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
}
