//! Text that came from a sender (a Subject, a display name, a calendar title, a model's
//! answer) made safe to put on a bill: plain text on one line.
//!
//! An entry's description ends up in terminals, chat clients that render markdown, web
//! pages, spreadsheets and billing systems. Whatever a sender wrote, a description
//! carries no markup, links, control or bidi characters, and cannot start a formula.

use std::sync::LazyLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

static TAG: LazyLock<Regex> = LazyLock::new(|| {
    // HTML-ish tags, opening or closing, with or without attributes.
    Regex::new(r"</?[A-Za-z!][^<>]*>").unwrap_or_else(|e| panic!("tag regex: {e}"))
});

static MD_LINK: LazyLock<Regex> = LazyLock::new(|| {
    // ![alt](target) and [text](target), the target with one level of parentheses:
    // keep the words, drop the target.
    Regex::new(r"!?\[([^\]]*)\]\((?:[^()]|\([^()]*\))*\)")
        .unwrap_or_else(|e| panic!("link regex: {e}"))
});

/// A token that is a link or would become one: a scheme, `www.`, or an address.
fn is_link(word: &str) -> bool {
    let l = word
        .trim_start_matches(|c: char| !c.is_alphanumeric())
        .to_ascii_lowercase();
    l.contains("://")
        || l.starts_with("www.")
        || [
            "javascript:",
            "data:",
            "vbscript:",
            "mailto:",
            "file:",
            "tel:",
        ]
        .iter()
        .any(|s| l.starts_with(s))
}

/// Characters that change how the rest of a line is shown rather than being text:
/// controls, bidi overrides and isolates, zero-width joiners, byte-order marks.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{061C}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

/// `text` for a terminal: control characters other than line ends and tabs, and the
/// bidi and zero-width characters [`plain`] removes, written as `\u{…}` escapes, so
/// nothing a sender wrote (a message id, a reason quoting a header) can move the
/// cursor, recolour, clear or reorder what the user reads.
pub fn for_terminal(text: &str) -> std::borrow::Cow<'_, str> {
    let shown = |c: char| matches!(c, '\n' | '\t') || !is_invisible(c);
    if text.chars().all(shown) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if shown(c) {
            out.push(c);
        } else {
            out.push_str(&c.escape_unicode().to_string());
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `text` as a plain one-line description of at most `max` characters.
pub fn plain(text: &str, max: usize) -> String {
    // Full-width and other compatibility forms (＜script＞) become what they look like,
    // so the checks below see them.
    let text: String = text
        .nfkc()
        .map(|c| if is_invisible(c) { ' ' } else { c })
        .collect();
    let text = MD_LINK.replace_all(&text, "$1");
    let text = TAG.replace_all(&text, " ");
    let words: Vec<&str> = text.split_whitespace().filter(|w| !is_link(w)).collect();
    let line: String = words
        .join(" ")
        .chars()
        .filter(|c| !matches!(c, '<' | '>' | '`'))
        .collect();
    // A leading = + - @ makes a spreadsheet cell a formula.
    let line = line
        .trim_start_matches(['=', '+', '-', '@', ' '])
        .trim_end();
    if line.chars().count() <= max {
        return line.to_owned();
    }
    let mut cut: String = line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A description a person typed, kept as typed: what they wrote is what they bill
/// ("-5% fee reduction" stays so). Only what would hide or reorder text is refused,
/// with the reason; a spreadsheet's formulas are the export's to neutralise
/// (`export::cell`), not the person's words.
pub fn typed(text: &str, max: usize) -> Result<String, String> {
    let line = text.trim();
    if let Some(c) = line.chars().find(|&c| is_invisible(c)) {
        return Err(format!(
            "contains the invisible character {}; type the description on one line, without \
             control characters",
            c.escape_unicode()
        ));
    }
    let n = line.chars().count();
    if n > max {
        return Err(format!("must be at most {max} characters, got {n}"));
    }
    Ok(line.to_owned())
}

/// `text`, already plain, cut to at most `max` characters with an ellipsis.
pub fn shortened(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        plain(s, 300)
    }

    #[test]
    fn terminal_text_shows_escapes_and_overrides_as_text() {
        assert_eq!(for_terminal("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(
            for_terminal("id \u{1b}[2J\u{1b}]0;pwned\u{7} x\u{202E}fdp.exe\r"),
            "id \\u{1b}[2J\\u{1b}]0;pwned\\u{7} x\\u{202e}fdp.exe\\u{d}"
        );
        assert_eq!(for_terminal("C1 \u{9b}31m"), "C1 \\u{9b}31m");
    }

    #[test]
    fn markup_links_and_scripts_are_dropped_and_their_words_kept() {
        assert_eq!(
            p("Email re: ![logo](https://evil.example/x.png) [click](javascript:alert(1)) terms"),
            "Email re: logo click terms"
        );
        assert_eq!(
            p("Call <script>alert(1)</script> re NDA"),
            "Call alert(1) re NDA"
        );
        assert_eq!(p("Re ＜script＞alert(1)＜/script＞ NDA"), "Re alert(1) NDA");
        assert_eq!(
            p("See https://x.io/a www.y.com data:text/html;base64,AAA mailto:a@b now"),
            "See now"
        );
    }

    #[test]
    fn control_bidi_and_terminal_escapes_are_removed() {
        assert_eq!(p("Invoice \u{1b}[31mred\u{1b}[0m"), "Invoice [31mred [0m");
        assert_eq!(p("fdp.exe\u{202E}gnp.doc review"), "fdp.exe gnp.doc review");
        assert_eq!(p("two\r\nlines\tand\u{0}nul"), "two lines and nul");
        assert_eq!(p("zero\u{200B}width"), "zero width");
    }

    #[test]
    fn a_description_cannot_start_a_spreadsheet_formula() {
        assert_eq!(
            p("=HYPERLINK(\"x\",\"Click\") contract"),
            "HYPERLINK(\"x\",\"Click\") contract"
        );
        assert_eq!(p("+1 review"), "1 review");
        assert_eq!(p("@SUM(A1) memo"), "SUM(A1) memo");
        assert_eq!(p(" - - note"), "note");
    }

    #[test]
    fn a_typed_description_is_kept_as_typed_but_never_hides_text() {
        for kept in [
            "-5% fee reduction",
            "=HYPERLINK(\"http://x\",\"Click\") memo",
            "+1 call <re> `draft`",
            "@Dan call",
        ] {
            assert_eq!(typed(&format!("  {kept} "), 300).unwrap(), kept);
        }
        assert!(typed("two\nlines", 300).is_err());
        assert!(typed("fdp.exe\u{202E}gnp.doc", 300).is_err());
        assert!(
            typed(&"x".repeat(301), 300)
                .unwrap_err()
                .contains("at most 300")
        );
    }

    #[test]
    fn long_text_is_cut_at_a_character_with_an_ellipsis() {
        let d = plain(&"é".repeat(400), 10);
        assert_eq!(d.chars().count(), 10);
        assert!(d.ends_with('…'));
        assert_eq!(
            p("Ordinary words stay as they are."),
            "Ordinary words stay as they are."
        );
    }
}
