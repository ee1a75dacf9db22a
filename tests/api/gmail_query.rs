#![allow(dead_code)]
//! A small evaluator of Gmail search queries (the `q` parameter of
//! `users.messages.list`), for the fake Gmail API server used in tests.
//!
//! It follows Gmail's documented operators (support.google.com/mail/answer/7190)
//! closely enough for tests, with these deliberate simplifications:
//! - Text is compared on whole tokens: text and term are split on every
//!   non-alphanumeric character (Unicode-aware) and lowercased, and the term's
//!   tokens must appear consecutively. `acme` matches "jane@acme.com" but not
//!   "acmeville".
//! - Dates written as `YYYY/MM/DD`, `YYYY-MM-DD` or `MM/DD/YYYY` mean midnight
//!   UTC (Gmail uses the account's time zone). Plain numbers are epoch seconds.
//!   `after:`/`newer:` are inclusive, `before:`/`older:` exclusive.
//!   `older_than:`/`newer_than:` count a month as 30 days, a year as 365.
//! - Operators Gmail would refuse to interpret (unknown names, bad values) are
//!   searched as plain text, as Gmail roughly does. Only unbalanced brackets
//!   and quotes are rejected.
//! - `category:primary` means the CATEGORY_PERSONAL label only (real Gmail
//!   also counts uncategorised inbox mail). Hiding spam and trash unless the
//!   query names them is left to the caller: see
//!   [`GmailQuery::names_spam_or_trash`].

use mail_parser::{DateTime, MessageParser, MimeHeaders, PartType};
use std::time::{SystemTime, UNIX_EPOCH};

/// What Gmail's search sees of one message.
#[derive(Debug, Default, Clone)]
pub struct Searchable {
    /// Runs of tokens, each tagged with where it came from: "from", "to",
    /// "cc", "bcc", "subject", "deliveredto", "list", "filename" or "body".
    /// A phrase must fit inside one run, so it never matches across, say, a
    /// display name and the next address.
    runs: Vec<(&'static str, Vec<String>)>,
    /// Label ids, normalised with [`norm_label`].
    labels: Vec<String>,
    /// Date header as epoch seconds, when it parses to a valid date.
    date: Option<i64>,
    /// Message-ID without angle brackets.
    message_id: Option<String>,
    has_attachment: bool,
}

impl Searchable {
    /// From raw RFC 5322 bytes and the message's Gmail label ids (SENT, INBOX,
    /// SPAM, TRASH, CATEGORY_PROMOTIONS, ..., Label_foo). Never panics on
    /// malformed input: whatever mail_parser cannot read is simply absent.
    pub fn from_raw(bytes: &[u8], label_ids: &[String]) -> Searchable {
        let mut s = Searchable {
            labels: label_ids.iter().map(|l| norm_label(l)).collect(),
            ..Searchable::default()
        };
        let Some(msg) = MessageParser::default().parse(bytes) else {
            return s;
        };
        let fields = [
            ("from", msg.from().into_iter().collect()),
            ("to", msg.all_to().collect()),
            ("cc", msg.all_cc().collect()),
            ("bcc", msg.all_bcc().collect::<Vec<_>>()),
        ];
        for (field, headers) in fields {
            let mut runs = Vec::new();
            for addr in headers.iter().flat_map(|a| a.iter()) {
                runs.extend(addr.name().into_iter().chain(addr.address()).map(tokens));
            }
            // A header that did not parse as addresses is searched as raw text.
            if runs.is_empty() {
                s.runs.extend(raw_header(&msg, field, field));
            }
            s.runs.extend(runs.into_iter().map(|r| (field, r)));
        }
        s.runs.extend(msg.subject().map(|t| ("subject", tokens(t))));
        s.runs
            .extend(raw_header(&msg, "delivered-to", "deliveredto"));
        s.runs.extend(raw_header(&msg, "list-id", "list"));
        s.date = msg
            .date()
            .filter(|d| d.is_valid())
            .map(|d| d.to_timestamp());
        s.message_id = msg
            .message_id()
            .map(|id| id.trim_matches(['<', '>', ' ']).to_string());

        // Body: the text and HTML alternatives mail_parser picked as the
        // message body (already transfer-decoded and charset-converted).
        // A part can be listed in both, so each id is read once.
        let mut seen = Vec::new();
        for &id in msg.text_body.iter().chain(msg.html_body.iter()) {
            if seen.contains(&id) {
                continue;
            }
            seen.push(id);
            match msg.parts.get(id as usize).map(|p| &p.body) {
                Some(PartType::Text(t)) => s.runs.push(("body", tokens(t))),
                Some(PartType::Html(h)) => {
                    let text = mail_parser::decoders::html::html_to_text(h);
                    s.runs.push(("body", tokens(&text)));
                }
                _ => {}
            }
        }
        // An attachment is any part with a file name or an attachment disposition.
        for part in &msg.parts {
            let name = part.attachment_name();
            let disposed = part
                .content_disposition()
                .is_some_and(|d| d.is_attachment());
            if name.is_some() || disposed {
                s.has_attachment = true;
            }
            s.runs.extend(name.map(|n| ("filename", tokens(n))));
        }
        s
    }
}

/// Token runs, tagged `tag`, of the raw values of headers called `name`.
fn raw_header(
    msg: &mail_parser::Message<'_>,
    name: &str,
    tag: &'static str,
) -> Vec<(&'static str, Vec<String>)> {
    let raw = msg
        .headers_raw()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name));
    raw.map(|(_, v)| (tag, tokens(v))).collect()
}

/// Split on anything that is not a letter or digit, lowercase, drop empties.
fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Label names compare case-insensitively with `-`, `_`, `/` and space
/// equivalent, as Gmail lets you write "my label" as `label:my-label`.
fn norm_label(label: &str) -> String {
    label
        .trim()
        .chars()
        .map(|c| if matches!(c, '-' | ' ' | '/') { '_' } else { c })
        .collect::<String>()
        .to_lowercase()
}

/// One node of a parsed query.
#[derive(Debug, Clone)]
enum Node {
    /// All children match; an empty list matches everything.
    And(Vec<Node>),
    /// Some child matches; an empty list (`{}`) also matches everything.
    Or(Vec<Node>),
    Not(Box<Node>),
    /// These tokens occur consecutively in one run of this field (a
    /// [`Searchable::runs`] tag); `None` means any of [`PLAIN_FIELDS`].
    Text(Option<&'static str>, Vec<String>),
    /// A label id equal (after [`norm_label`]) to this, or to `label_` + this.
    Label(String),
    /// `in:anywhere`.
    All,
    /// `has:userlabels`: some `Label_…` id.
    UserLabels,
    HasAttachment,
    /// Date >= this epoch second.
    After(i64),
    /// Date < this epoch second.
    Before(i64),
    MessageId(String),
}

impl Node {
    fn eval(&self, m: &Searchable) -> bool {
        match self {
            Node::And(v) => v.iter().all(|n| n.eval(m)),
            Node::Or(v) => v.is_empty() || v.iter().any(|n| n.eval(m)),
            Node::Not(n) => !n.eval(m),
            Node::Text(field, needle) => {
                let wanted = |tag: &str| field.map_or(PLAIN_FIELDS.contains(&tag), |f| f == tag);
                // A term with no tokens at all (e.g. `"..."`) constrains nothing.
                needle.is_empty()
                    || m.runs.iter().any(|(tag, run)| {
                        wanted(tag) && run.windows(needle.len()).any(|w| w == needle.as_slice())
                    })
            }
            Node::Label(l) => m
                .labels
                .iter()
                .any(|have| have == l || have.strip_prefix("label_") == Some(l.as_str())),
            Node::All => true,
            Node::UserLabels => m.labels.iter().any(|l| l.starts_with("label_")),
            Node::HasAttachment => m.has_attachment,
            Node::After(t) => m.date.is_some_and(|d| d >= *t),
            Node::Before(t) => m.date.is_some_and(|d| d < *t),
            Node::MessageId(id) => m
                .message_id
                .as_ref()
                .is_some_and(|have| have.eq_ignore_ascii_case(id)),
        }
    }
}

/// A parsed query.
#[derive(Debug, Clone)]
pub struct GmailQuery {
    root: Node,
}

impl GmailQuery {
    /// Parse a query. Err(message) only for unbalanced parentheses, braces or
    /// quotes; everything else Gmail would search somehow, and so do we.
    pub fn parse(q: &str) -> Result<GmailQuery, String> {
        let mut p = Parser {
            chars: q.chars().collect(),
            pos: 0,
        };
        Ok(GmailQuery {
            root: Node::And(p.seq(None, None)?),
        })
    }

    /// Whether the message satisfies the query.
    pub fn matches(&self, m: &Searchable) -> bool {
        self.root.eval(m)
    }

    /// True when the query itself names spam or trash (in:spam, in:trash,
    /// in:anywhere, label:spam, label:trash), so listing must not drop them.
    /// Only positive mentions count: `-in:trash foo` must still hide spam.
    pub fn names_spam_or_trash(&self) -> bool {
        fn walk(n: &Node, positive: bool) -> bool {
            match n {
                Node::And(v) | Node::Or(v) => v.iter().any(|c| walk(c, positive)),
                Node::Not(c) => walk(c, !positive),
                Node::Label(l) => positive && (l == "spam" || l == "trash"),
                Node::All => positive, // only `in:anywhere` makes this node
                _ => false,
            }
        }
        walk(&self.root, true)
    }
}

/// Recursive-descent parser. Grammar, loosest binding first:
/// ```text
/// seq     := ( [AND] or )*        implicit AND (OR for `{…}` groups)
/// or      := unary ( OR unary )*  so `a b OR c` is a AND (b OR c)
/// unary   := '-' unary | primary
/// primary := '(' seq ')' | '{' seq '}' | '"' phrase '"' | op:value | word
/// ```
/// `ctx` is the operator a bracketed value belongs to, as in
/// `subject:(a -b)`: bare words inside become `subject:a`, `-subject:b`.
struct Parser {
    chars: Vec<char>,
    pos: usize,
}

/// Characters that end a bare word.
fn is_delim(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '{' | '}' | '"')
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// Whether the upcoming word is exactly `kw` (uppercase keywords only).
    fn at_keyword(&self, kw: &str) -> bool {
        let end = self.pos + kw.chars().count();
        let here = self.chars.get(self.pos..end);
        here.is_some_and(|w| w.iter().copied().eq(kw.chars()))
            && self
                .chars
                .get(end)
                .is_none_or(|&c| c.is_whitespace() || "({\"".contains(c))
    }

    /// Parse items until `closer` (consumed) or, at top level, end of input.
    fn seq(&mut self, ctx: Option<&str>, closer: Option<char>) -> Result<Vec<Node>, String> {
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                None if closer.is_some() => return Err(format!("missing closing {closer:?}")),
                None => return Ok(items),
                Some(c) if Some(c) == closer => {
                    self.pos += 1;
                    return Ok(items);
                }
                Some(c @ (')' | '}')) => return Err(format!("unbalanced {c:?} at {}", self.pos)),
                _ if self.at_keyword("AND") => self.pos += 3,
                _ => items.push(self.or(ctx)?),
            }
        }
    }

    fn or(&mut self, ctx: Option<&str>) -> Result<Node, String> {
        let mut alts = vec![self.unary(ctx)?];
        loop {
            let save = self.pos;
            self.skip_ws();
            if !self.at_keyword("OR") {
                self.pos = save;
                break;
            }
            self.pos += 2;
            self.skip_ws();
            // A dangling OR ("a OR" or "(a OR)") is just the word "or".
            if matches!(self.peek(), None | Some(')' | '}')) {
                self.pos = save;
                break;
            }
            alts.push(self.unary(ctx)?);
        }
        Ok(if alts.len() == 1 {
            alts.remove(0)
        } else {
            Node::Or(alts)
        })
    }

    fn unary(&mut self, ctx: Option<&str>) -> Result<Node, String> {
        if self.peek() == Some('-') {
            self.pos += 1;
            // A lone dash negates nothing; Gmail ignores it.
            if self
                .peek()
                .is_none_or(|c| c.is_whitespace() || matches!(c, ')' | '}'))
            {
                return Ok(Node::And(Vec::new()));
            }
            return Ok(Node::Not(Box::new(self.unary(ctx)?)));
        }
        self.primary(ctx)
    }

    fn primary(&mut self, ctx: Option<&str>) -> Result<Node, String> {
        match self.peek() {
            Some('(') => {
                self.pos += 1;
                Ok(Node::And(self.seq(ctx, Some(')'))?))
            }
            Some('{') => {
                self.pos += 1;
                Ok(Node::Or(self.seq(ctx, Some('}'))?))
            }
            Some('"') => {
                let phrase = self.quoted()?;
                Ok(term(ctx, &phrase))
            }
            _ => {
                let start = self.pos;
                while self.peek().is_some_and(|c| !is_delim(c)) {
                    self.pos += 1;
                }
                if self.pos == start {
                    return Err(format!("unexpected character at {start}"));
                }
                let word: String = self.chars[start..self.pos].iter().collect();
                let Some((op, value)) = word.split_once(':') else {
                    return Ok(term(ctx, &word));
                };
                let op = op.to_lowercase();
                if !is_known_op(&op) {
                    return Ok(term(ctx, &word));
                }
                if !value.is_empty() {
                    return Ok(op_node(&op, value).unwrap_or_else(|| text(&word)));
                }
                // `op:"phrase"`, `op:(…)`, `op:{…}`: the value follows directly.
                match self.peek() {
                    Some('"') => {
                        let phrase = self.quoted()?;
                        Ok(op_node(&op, &phrase).unwrap_or_else(|| text(&phrase)))
                    }
                    Some('(' | '{') => self.primary(Some(&op)),
                    _ => Ok(term(ctx, &word)),
                }
            }
        }
    }

    /// Read a `"…"` phrase; operators inside it are plain text.
    fn quoted(&mut self) -> Result<String, String> {
        let start = self.pos + 1;
        let len = self.chars[start..].iter().position(|&c| c == '"');
        let len = len.ok_or(format!("unterminated quote at {}", self.pos))?;
        self.pos = start + len + 1;
        Ok(self.chars[start..start + len].iter().collect())
    }
}

/// A bare word or phrase: plain text, or `ctx:value` inside an operator group.
fn term(ctx: Option<&str>, value: &str) -> Node {
    match ctx {
        Some(op) => op_node(op, value).unwrap_or_else(|| text(value)),
        None => text(value),
    }
}

/// Build the node for `op:value`; None when the value makes no sense for
/// the operator (the caller then searches it as plain text).
fn op_node(op: &str, value: &str) -> Option<Node> {
    if let Some(field) = field_op(op) {
        return Some(Node::Text(Some(field), tokens(value)));
    }
    let v = norm_label(value);
    match op {
        "label" | "in" => Some(match v.as_str() {
            "anywhere" if op == "in" => Node::All,
            "drafts" => Node::Label("draft".into()),
            _ => Node::Label(v),
        }),
        "category" => Some(Node::Label(match v.as_str() {
            "primary" => "category_personal".into(),
            _ => format!("category_{v}"),
        })),
        "is" => Some(match v.as_str() {
            "read" => Node::Not(Box::new(Node::Label("unread".into()))),
            _ => Node::Label(v),
        }),
        "has" => match v.as_str() {
            "attachment" => Some(Node::HasAttachment),
            "userlabels" => Some(Node::UserLabels),
            "nouserlabels" => Some(Node::Not(Box::new(Node::UserLabels))),
            _ => None,
        },
        "after" | "newer" => parse_date(value).map(Node::After),
        "before" | "older" => parse_date(value).map(Node::Before),
        "newer_than" => parse_age(value).map(|a| Node::After(now().saturating_sub(a))),
        "older_than" => parse_age(value).map(|a| Node::Before(now().saturating_sub(a))),
        "rfc822msgid" => Some(Node::MessageId(value.trim_matches(['<', '>']).to_string())),
        _ => None,
    }
}

/// Where a bare word or phrase is looked for.
const PLAIN_FIELDS: &[&str] = &["from", "to", "cc", "bcc", "subject", "body"];
/// Operators that search one text field (named like the [`Searchable::runs`] tag).
const FIELD_OPS: &str = "from to cc bcc subject deliveredto list filename";
/// Every other operator we interpret; any other `word:value` is plain text.
const OTHER_OPS: &str = "label in category is has after before older newer newer_than \
    older_than rfc822msgid";

fn field_op(op: &str) -> Option<&'static str> {
    FIELD_OPS.split(' ').find(|f| *f == op)
}

fn is_known_op(op: &str) -> bool {
    field_op(op).is_some() || OTHER_OPS.split_whitespace().any(|o| o == op)
}

fn text(value: &str) -> Node {
    Node::Text(None, tokens(value))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Epoch seconds, or a calendar date (`YYYY/MM/DD`, `YYYY-MM-DD`, `MM/DD/YYYY`)
/// taken as midnight UTC.
fn parse_date(s: &str) -> Option<i64> {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
        return s.parse().ok();
    }
    let parts: Vec<&str> = s.split(['/', '-']).collect();
    let [a, b, c] = parts.as_slice() else {
        return None;
    };
    let (y, m, d) = if a.len() == 4 { (a, b, c) } else { (c, a, b) };
    let date = DateTime {
        year: y.parse().ok()?,
        month: m.parse().ok()?,
        day: d.parse().ok()?,
        ..DateTime::from_timestamp(0)
    };
    date.is_valid().then(|| date.to_timestamp())
}

/// `older_than:`/`newer_than:` ages such as `3d`, `2m`, `1y`, in seconds.
fn parse_age(s: &str) -> Option<i64> {
    let unit = s.chars().last()?;
    let n: i64 = s[..s.len() - unit.len_utf8()].parse().ok()?;
    let day = 86_400;
    n.checked_mul(match unit.to_ascii_lowercase() {
        'd' => day,
        'm' => 30 * day,
        'y' => 365 * day,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(headers: &str, body: &str, labels: &[&str]) -> Searchable {
        let raw = format!("{}\r\n\r\n{}", headers.replace('\n', "\r\n"), body);
        let labels: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        Searchable::from_raw(raw.as_bytes(), &labels)
    }

    /// A typical message: Jane at Acme writes to Bob about a lunch.
    fn jane() -> Searchable {
        msg(
            "From: Jane Doe <jane@acme.com>\nTo: Bob Smith <bob@example.org>\nCc: carol@acme.com\n\
             Bcc: dave@secret.net\nSubject: Lunch plans for Friday\n\
             Date: Sun, 16 Nov 2025 05:00:00 +0000\nMessage-ID: <abc.123@acme.com>\n\
             Delivered-To: bob@example.org",
            "Hi Bob, see acme.com for the menu. Acmeville is far.",
            &["INBOX", "UNREAD", "CATEGORY_PERSONAL", "Label_Client-Work"],
        )
    }

    fn q(query: &str, m: &Searchable) -> bool {
        GmailQuery::parse(query).expect("query parses").matches(m)
    }

    /// Assert that every query in `yes` matches `m` and none in `no` does.
    /// Both are lists of queries separated by `;` (no query here contains one).
    fn check(m: &Searchable, yes: &str, no: &str) {
        for query in yes.split(';').filter(|s| !s.is_empty()) {
            assert!(q(query, m), "{query:?} should match");
        }
        for query in no.split(';').filter(|s| !s.is_empty()) {
            assert!(!q(query, m), "{query:?} should not match");
        }
    }

    #[test]
    fn bare_words_match_whole_tokens_anywhere() {
        // From address and body, Subject, Bcc, body; no prefix or infix matching.
        let yes = "acme; ACME.com; jane@acme.com; friday; secret; menu; acmeville";
        check(&jane(), yes, "acm; ville; acme.co; nothere");
        assert!(
            q("", &jane()) && q("  ", &jane()),
            "empty queries match all"
        );
    }

    #[test]
    fn phrases_need_consecutive_tokens_and_ignore_operators() {
        // Punctuation between tokens is irrelevant; a token-less phrase constrains nothing.
        let yes = r#""lunch plans"; "see acme com for"; "..."; subject:lunch"#;
        // Word order matters; a phrase never runs from a display name into the
        // address; inside quotes "subject:lunch" is the phrase [subject, lunch].
        let no = r#""plans lunch"; "doe jane"; "doe jane acme"; "subject:lunch""#;
        check(&jane(), yes, no);
    }

    #[test]
    fn header_operators_stay_in_their_header() {
        let yes = r#"from:jane; from:"jane doe"; FROM:acme.com; to:bob@example.org; cc:carol;
            bcc:dave; subject:friday; subject:"lunch plans"; deliveredto:bob@example.org;
            rfc822msgid:abc.123@acme.com; rfc822msgid:<abc.123@acme.com>; subject:lunch:plans"#;
        let no = r#"from:bob; to:carol; cc:jane; bcc:bob; subject:menu; to:"smith bob";
            rfc822msgid:abc@acme.com"#;
        check(&jane(), yes, no);
    }

    #[test]
    fn operator_groups() {
        // `op:(…)` ANDs its words, `op:{…}` ORs them; "menu" is only in the body.
        let yes = "subject:(lunch friday); subject:{dinner lunch}; from:{bob jane};
            subject:(lunch -dinner); in:{spam inbox}";
        let no = "subject:(lunch menu); subject:{dinner menu}; subject:(lunch -friday)";
        check(&jane(), yes, no);
    }

    #[test]
    fn or_binds_tighter_than_and() {
        // `a b OR c` is a AND (b OR c); `-a OR b` is (-a) OR b; lowercase "or"
        // and a dangling OR are plain words.
        let yes = "friday nothere OR menu; nothere OR friday; friday AND menu;
            nothere OR nope OR jane; -friday OR jane";
        let no = "nothere friday OR menu; friday OR nothere zzz; friday AND nothere;
            nothere or friday; friday OR; -friday OR nothere";
        check(&jane(), yes, no);
    }

    #[test]
    fn groups_and_negation() {
        // `--a` is a double negation; a lone dash is ignored.
        let yes = "(friday menu) OR nothere; ((friday OR x) (menu OR y)) -zzz;
            {nope (friday menu)}; -{nope nada}; -(friday nothere); -from:bob; --friday;
            friday - menu";
        let no = "{nope (friday nothere)}; -{nope friday}; -(friday menu); -from:jane";
        check(&jane(), yes, no);
    }

    #[test]
    fn labels_categories_and_states() {
        // User labels compare with dash/underscore/space equivalent.
        let yes = r#"in:inbox; in:anywhere; label:inbox; label:INBOX; label:client-work;
            label:client_work; label:"client work"; category:primary; is:unread;
            has:userlabels"#;
        let no = "in:sent; in:spam; label:client; category:promotions; is:read; is:starred;
            has:nouserlabels";
        check(&jane(), yes, no);
        let promo = msg("", "50% off", &["CATEGORY_PROMOTIONS", "STARRED", "SENT"]);
        let yes = "category:promotions; label:sent; in:sent; is:read; is:starred; has:nouserlabels";
        check(&promo, yes, "is:important; in:inbox; category:social");
        // Unknown operators are plain text: "foo:lunch" is the phrase [foo, lunch].
        check(&jane(), "", "foo:lunch");
        check(&msg("Subject: see foo:lunch", "", &[]), "foo:lunch", "");
    }

    #[test]
    fn names_spam_or_trash() {
        let names = |s: &str| GmailQuery::parse(s).map(|g| g.names_spam_or_trash());
        let yes = "in:spam; in:Trash foo; in:anywhere; label:spam OR x; label:TRASH;
            from:(a in:trash); in:{inbox spam}; -(-in:spam)";
        for query in yes.split(';') {
            assert_eq!(names(query), Ok(true), "{query}");
        }
        for query in
            "in:inbox spam trash; \"in:spam\"; label:inbox; -in:trash foo; -in:anywhere".split(';')
        {
            assert_eq!(names(query), Ok(false), "{query}");
        }
        let spam = msg("Subject: x", "", &["SPAM"]);
        check(&spam, "in:spam; in:anywhere", "in:inbox");
    }

    #[test]
    fn dates() {
        // jane() is dated 2025-11-16 05:00:00 UTC = 1763269200. after: is
        // inclusive, before: exclusive; calendar dates are midnight UTC.
        let yes = "after:1763269200; before:1763269201; after:2025/11/16 before:2025/11/17;
            after:2025-11-16; newer:11/15/2025 older:2025/11/17; newer_than:100y";
        // A nonsense date ("yesterday") is searched as text rather than rejected.
        let no = "after:1763269201; before:1763269200; after:2025-11-17; older:2025/11/16;
            older_than:100y; -after:0; after:yesterday";
        check(&jane(), yes, no);
        // Without a usable Date header no date bound matches.
        for headers in ["Subject: Lunch", "Date: someday"] {
            let undated = msg(headers, "", &[]);
            check(&undated, "-after:0", "after:0; before:9999999999");
        }
        // The zone offset is applied: 00:30 at -0500 is 05:30 UTC.
        let eastern = msg("Date: Sun, 16 Nov 2025 00:30:00 -0500", "", &[]);
        check(
            &eastern,
            "after:1763271000; after:2025/11/16",
            "after:1763271001",
        );
        assert_eq!(parse_date("2025/13/01"), None);
        assert_eq!(parse_date("1970/01/02"), Some(86_400));
    }

    #[test]
    fn html_and_encoded_bodies() {
        let html = msg(
            "From: a@b.c\nContent-Type: text/html; charset=utf-8",
            "<html><head><style>p {color: secretcolor}</style></head>\
             <body><p>Quarterly <b>Report</b>&nbsp;ready</p></body></html>",
            &[],
        );
        let no = "secretcolor; html; body; nbsp";
        check(&html, "\"quarterly report ready\"", no);

        let b64 = msg(
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64",
            "SGVsbG8gd29ybGQsIGNhZsOpIGF1IGxhaXQ=", // "Hello world, café au lait"
            &[],
        );
        check(&b64, "\"hello world\"; CAFÉ", "SGVsbG8; caf");

        let qp = msg(
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\
             Subject: =?UTF-8?B?UmVuZGV6LXZvdXM=?=",
            "Invoice=20n=C2=B0 42 is over=\r\ndue",
            &[],
        );
        // Soft line break joined, =C2=B0 decoded; the RFC 2047 subject decoded.
        check(&qp, "overdue; \"invoice n 42\"; subject:rendez", "over; C2");
    }

    #[test]
    fn multipart_and_attachments() {
        let raw = "From: x@y.z\r\nSubject: files\r\nMIME-Version: 1.0\r\n\
            Content-Type: multipart/mixed; boundary=BB\r\n\r\n\
            --BB\r\nContent-Type: multipart/alternative; boundary=AA\r\n\r\n\
            --AA\r\nContent-Type: text/plain\r\n\r\nplain alpha\r\n\
            --AA\r\nContent-Type: text/html\r\n\r\n<p>html <i>beta</i></p>\r\n--AA--\r\n\
            --BB\r\nContent-Type: application/pdf; name=\"Q3-report.pdf\"\r\n\
            Content-Disposition: attachment; filename=\"Q3-report.pdf\"\r\n\
            Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--BB--\r\n";
        let m = Searchable::from_raw(raw.as_bytes(), &[]);
        let yes = "alpha; beta; has:attachment; filename:pdf; filename:q3-report.pdf";
        check(&m, yes, "filename:docx; JVBERi0");
        check(&jane(), "", "has:attachment");
    }

    #[test]
    fn malformed_input_never_panics() {
        let garbage: &[&[u8]] = &[
            b"",
            b"\r\n\r\n",
            b"\xff\xfe\x00\x01garbage",
            b"From: <<<@@@>>>\r\nDate: not a date\r\nContent-Type: multipart/mixed; boundary=\r\n\r\n--",
            b"Subject: =?UTF-8?B?!!!?=\r\nContent-Transfer-Encoding: base64\r\n\r\n@@@",
            b"Content-Type: text/html\r\n\r\n<p a='\xc3\xa9<&#xFFFFFFFF;&bogus;<!--",
        ];
        for raw in garbage {
            let m = Searchable::from_raw(raw, &["INBOX".to_string()]);
            for query in ["foo", "from:x", "after:0", "has:attachment", "\"\""] {
                let _ = q(query, &m);
            }
            assert!(q("in:inbox", &m));
        }
        let undisclosed = Searchable::from_raw(b"To: undisclosed-recipients:;\r\n\r\nhi", &[]);
        check(&undisclosed, "hi", "");
    }

    #[test]
    fn rejects_unbalanced_queries_only() {
        for bad in "(a b; a b); {a; a}; \"open phrase; from:(a; ({a)}".split(';') {
            assert!(GmailQuery::parse(bad).is_err(), "{bad} should be rejected");
        }
        let odd = "OR; AND; a OR; -; (); {}; from:; older_than:9999999999999y;
            after:99999999999999999999; a:b:c; ü-ß ÿ";
        for query in odd.split(';') {
            assert!(GmailQuery::parse(query).is_ok(), "{query} should parse");
        }
        check(&jane(), "(); {}", "");
    }
}
