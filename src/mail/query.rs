//! The mail query of a scan: Gmail search syntax plus an optional date range.
//! Gmail evaluates the query itself; local sources evaluate the subset below.
//!
//! Local subset: bare words and `"quoted phrases"` (subject, from, to or cc contain
//! them, case-insensitive), `from:`, `to:` (To or Cc), `cc:`, `subject:`, `label:` and
//! `in:` (labels, case-insensitive; `-`, `_` and spaces are interchangeable as in
//! Gmail), `category:` (Takeout's `Category X` labels), `after:`/`before:`
//! (`YYYY/MM/DD` or `YYYY-MM-DD`, days in `timezone`), `has:attachment`, and `-` to
//! negate any term. `AND` is accepted and ignored; `OR`, braces and parentheses are
//! not supported and are reported, as are unknown operators.
//!
//! A listing parses the text once (`MailQuery::compile`) and evaluates the
//! `CompiledQuery` on each message.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use mail_parser::MessageParser;

use super::{MailError, in_range};
use crate::domain::email::Email;

/// What a scan asks the source for.
#[derive(Debug, Clone, PartialEq)]
pub struct MailQuery {
    /// Gmail search syntax, e.g. `from:acme.com -label:promotions`.
    pub query: Option<String>,
    /// Messages dated on or after this day (in `timezone`).
    pub after: Option<NaiveDate>,
    /// Messages dated before this day (in `timezone`).
    pub before: Option<NaiveDate>,
    /// The user's time zone: days start at midnight there.
    pub timezone: Tz,
    /// Words that make a message worth fetching (the clients' domains, addresses,
    /// names, aliases and keywords); empty: every message. Only Gmail uses them, to
    /// list candidates instead of the whole mailbox (`gmail::gmail_queries`); a local
    /// source reads every message anyway, at no cost per message.
    pub candidates: Vec<String>,
}

impl Default for MailQuery {
    fn default() -> Self {
        MailQuery {
            query: None,
            after: None,
            before: None,
            timezone: Tz::UTC,
            candidates: Vec::new(),
        }
    }
}

/// The header-level facts a local source needs to evaluate a query, read with a cheap
/// header-only parse. Addresses and names are lower-case.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderInfo {
    /// From: display names and addresses, lower-case.
    pub from: Vec<String>,
    /// To: display names and addresses, lower-case.
    pub to: Vec<String>,
    /// Cc: display names and addresses, lower-case.
    pub cc: Vec<String>,
    /// Subject, lower-case.
    pub subject: String,
    pub date: Option<DateTime<Utc>>,
    pub labels: Vec<String>,
    /// Real attachments, when known (a full parse); `None` from a header-only parse.
    pub attachments: Option<usize>,
}

impl HeaderInfo {
    /// Reads the headers of raw message bytes; `labels` are the source's labels.
    /// With `with_attachments`, the whole message is parsed to count attachments
    /// (only needed for `has:attachment`).
    pub fn from_bytes(bytes: &[u8], labels: &[String], with_attachments: bool) -> Self {
        let parser = MessageParser::default();
        let Some(msg) = parser.parse_headers(bytes) else {
            return HeaderInfo {
                labels: labels.to_vec(),
                ..HeaderInfo::default()
            };
        };
        let names = |addr: Option<&mail_parser::Address<'_>>| -> Vec<String> {
            let mut out = Vec::new();
            if let Some(addr) = addr {
                for a in addr.iter() {
                    if let Some(name) = a.name.as_deref() {
                        out.push(name.to_lowercase());
                    }
                    if let Some(email) = a.address.as_deref() {
                        out.push(email.trim().to_lowercase());
                    }
                }
            }
            out
        };
        let date = msg
            .date()
            .filter(|d| d.is_valid())
            .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0));
        let attachments = if with_attachments {
            super::parse::parse_email(&super::RawEmail {
                bytes: bytes.to_vec(),
                ..Default::default()
            })
            .ok()
            .map(|e| e.attachments)
        } else {
            None
        };
        HeaderInfo {
            from: names(msg.from()),
            to: msg.all_to().flat_map(|a| names(Some(a))).collect(),
            cc: msg.all_cc().flat_map(|a| names(Some(a))).collect(),
            subject: msg.subject().unwrap_or_default().to_lowercase(),
            date,
            labels: labels.to_vec(),
            attachments,
        }
    }

    /// The same facts from an already parsed message.
    pub fn from_email(email: &Email) -> Self {
        let names = |addrs: &mut dyn Iterator<Item = &crate::domain::email::Address>| {
            let mut out = Vec::new();
            for a in addrs {
                if let Some(name) = &a.name {
                    out.push(name.to_lowercase());
                }
                out.push(a.email.clone());
            }
            out
        };
        HeaderInfo {
            from: names(&mut email.from.iter()),
            to: names(&mut email.to.iter()),
            cc: names(&mut email.cc.iter()),
            subject: email.subject.to_lowercase(),
            date: email.date,
            labels: email.labels.clone(),
            attachments: Some(email.attachments),
        }
    }
}

/// One parsed query term.
#[derive(Debug, Clone, PartialEq)]
enum Term {
    Text(String),
    From(String),
    To(String),
    Cc(String),
    Subject(String),
    Label(String),
    Category(String),
    After(NaiveDate),
    Before(NaiveDate),
    HasAttachment,
}

/// A query ready to evaluate: the text parsed into terms once, by
/// `MailQuery::compile`, then applied to every message of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledQuery {
    /// (negated, term) pairs, all of which must hold.
    terms: Vec<(bool, Term)>,
    after: Option<NaiveDate>,
    before: Option<NaiveDate>,
    timezone: Tz,
}

impl MailQuery {
    /// Parses the query into the form that is evaluated. Errors name the offending
    /// operator or value.
    pub fn compile(&self) -> Result<CompiledQuery, MailError> {
        Ok(CompiledQuery {
            terms: self.terms()?,
            after: self.after,
            before: self.before,
            timezone: self.timezone,
        })
    }

    /// Checks the query once, before a scan, so a typo is reported instead of
    /// silently matching nothing.
    pub fn validate(&self) -> Result<(), MailError> {
        self.compile().map(|_| ())
    }

    /// Whether the query can match anything besides everything: lets a source skip
    /// the header parse when there is nothing to filter on.
    pub fn is_unfiltered(&self) -> bool {
        self.after.is_none()
            && self.before.is_none()
            && self.query.as_deref().is_none_or(|q| q.trim().is_empty())
    }

    /// Parses the query into (negated, term) pairs.
    fn terms(&self) -> Result<Vec<(bool, Term)>, MailError> {
        let Some(query) = self.query.as_deref() else {
            return Ok(Vec::new());
        };
        tokenize(query)?
            .into_iter()
            .filter(|(negated, token)| !(!negated && token.quoted.is_none() && token.text == "AND"))
            .map(|(negated, token)| Ok((negated, parse_term(token)?)))
            .collect()
    }
}

impl CompiledQuery {
    /// Whether every message matches, so a source need not read any headers.
    pub fn is_unfiltered(&self) -> bool {
        self.terms.is_empty() && self.after.is_none() && self.before.is_none()
    }

    /// Whether the query needs a full parse (`has:attachment`); header-only otherwise.
    pub fn needs_body(&self) -> bool {
        self.terms.iter().any(|(_, t)| *t == Term::HasAttachment)
    }

    /// Whether a message matches.
    pub fn matches(&self, info: &HeaderInfo) -> bool {
        let day = info
            .date
            .map(|d| d.with_timezone(&self.timezone).date_naive());
        if !in_range(day, self.after, self.before) {
            return false;
        }
        self.terms
            .iter()
            .all(|(negated, term)| term_matches(term, info, day) != *negated)
    }

    /// `matches` for a parsed message (e.g. `analyze FILE.eml`).
    pub fn matches_email(&self, email: &Email) -> bool {
        self.matches(&HeaderInfo::from_email(email))
    }
}

fn term_matches(term: &Term, info: &HeaderInfo, day: Option<NaiveDate>) -> bool {
    let any_contains = |list: &[String], needle: &str| list.iter().any(|v| v.contains(needle));
    match term {
        Term::Text(t) => {
            info.subject.contains(t.as_str())
                || any_contains(&info.from, t)
                || any_contains(&info.to, t)
                || any_contains(&info.cc, t)
        }
        Term::From(v) => any_contains(&info.from, v),
        Term::To(v) => any_contains(&info.to, v) || any_contains(&info.cc, v),
        Term::Cc(v) => any_contains(&info.cc, v),
        Term::Subject(v) => info.subject.contains(v.as_str()),
        Term::Label(v) => info.labels.iter().any(|l| normalize_label(l) == *v),
        Term::Category(v) => {
            let wanted = format!("category-{v}");
            info.labels.iter().any(|l| normalize_label(l) == wanted)
        }
        Term::After(d) => in_range(day, Some(*d), None),
        Term::Before(d) => in_range(day, None, Some(*d)),
        Term::HasAttachment => info.attachments.is_some_and(|n| n > 0),
    }
}

/// Gmail writes labels with spaces or slashes as dashes in queries.
fn normalize_label(label: &str) -> String {
    label
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_whitespace() || c == '/' || c == '_' {
                '-'
            } else {
                c
            }
        })
        .collect()
}

/// A token before interpretation: `op:value`, `op:"a b"`, `word` or `"a phrase"`.
#[derive(Debug)]
struct Token {
    /// The unquoted part (a whole word, or `op:` with what follows unquoted).
    text: String,
    /// A quoted phrase that followed (`"a phrase"` or `op:"a b"`).
    quoted: Option<String>,
}

fn tokenize(query: &str) -> Result<Vec<(bool, Token)>, MailError> {
    let mut out = Vec::new();
    let mut chars = query.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else {
            break;
        };
        let negated = first == '-';
        if negated {
            chars.next();
        }
        let mut text = String::new();
        let mut quoted = None;
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            if c == '"' {
                let mut phrase = String::new();
                let mut closed = false;
                for q in chars.by_ref() {
                    if q == '"' {
                        closed = true;
                        break;
                    }
                    phrase.push(q);
                }
                if !closed {
                    return Err(MailError::Query(format!(
                        "unclosed quote in `{query}`: add the closing `\"`"
                    )));
                }
                quoted = Some(phrase);
                break;
            }
            if matches!(c, '(' | ')' | '{' | '}') {
                return Err(MailError::Query(format!(
                    "`{c}` grouping is not supported by local mail sources; write the terms one after another (all must match)"
                )));
            }
            text.push(c);
        }
        if text.is_empty() && quoted.is_none() {
            if negated {
                return Err(MailError::Query(format!(
                    "a lone `-` in `{query}`: put it directly before the term to exclude"
                )));
            }
            continue;
        }
        out.push((negated, Token { text, quoted }));
    }
    Ok(out)
}

fn parse_term(token: Token) -> Result<Term, MailError> {
    let Token { text, quoted } = token;
    if text.is_empty() {
        return Ok(Term::Text(quoted.unwrap_or_default().to_lowercase()));
    }
    if text == "OR" || text == "|" {
        return Err(MailError::Query(
            "`OR` is not supported by local mail sources; run one scan per alternative".into(),
        ));
    }
    let operator = text.split_once(':').filter(|(op, rest)| {
        !op.is_empty()
            && op.chars().all(|c| c.is_ascii_alphabetic() || c == '_')
            // `https://…` is a word, not an operator.
            && !rest.starts_with("//")
    });
    let Some((op, rest)) = operator else {
        return Ok(Term::Text(text.to_lowercase()));
    };
    let op_lower = op.to_ascii_lowercase();
    let value = match quoted {
        Some(q) => format!("{rest}{q}"),
        None => rest.to_owned(),
    };
    let value = value.trim().to_lowercase();
    let need_value = || -> Result<String, MailError> {
        if value.is_empty() {
            Err(MailError::Query(format!(
                "`{op}:` needs a value, e.g. `{op}:acme.com`"
            )))
        } else {
            Ok(value.clone())
        }
    };
    match op_lower.as_str() {
        "from" => Ok(Term::From(need_value()?)),
        "to" => Ok(Term::To(need_value()?)),
        "cc" => Ok(Term::Cc(need_value()?)),
        "subject" => Ok(Term::Subject(need_value()?)),
        "label" | "in" => Ok(Term::Label(normalize_label(&need_value()?))),
        "category" => Ok(Term::Category(normalize_label(&need_value()?))),
        "after" => Ok(Term::After(parse_query_date(op, &value)?)),
        "before" => Ok(Term::Before(parse_query_date(op, &value)?)),
        "has" if value == "attachment" => Ok(Term::HasAttachment),
        "has" => Err(MailError::Query(format!(
            "`has:{value}` is not supported by local mail sources; only `has:attachment` is"
        ))),
        _ => Err(MailError::Query(format!(
            "unknown operator `{op}:`; local mail sources support from:, to:, cc:, subject:, label:, in:, category:, after:, before:, has:attachment, \"phrases\" and -negation"
        ))),
    }
}

/// `YYYY/MM/DD` or `YYYY-MM-DD` (Gmail also accepts unpadded months and days).
fn parse_query_date(op: &str, value: &str) -> Result<NaiveDate, MailError> {
    let parts: Vec<&str> = value.split(['/', '-']).collect();
    let parsed = match parts.as_slice() {
        [y, m, d] => match (y.parse::<i32>(), m.parse::<u32>(), d.parse::<u32>()) {
            (Ok(y), Ok(m), Ok(d)) => NaiveDate::from_ymd_opt(y, m, d),
            _ => None,
        },
        _ => None,
    };
    parsed.ok_or_else(|| {
        MailError::Query(format!(
            "`{op}:{value}` is not a date; write {op}:YYYY/MM/DD or {op}:YYYY-MM-DD"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> HeaderInfo {
        let bytes = b"From: Ann Client <ann@acme.com>\r\nTo: me@example.com\r\nCc: Bob <bob@partner.org>\r\nSubject: Contract Review for Q3\r\nDate: Tue, 4 Jun 2024 23:30:00 +0000\r\n\r\nbody";
        HeaderInfo::from_bytes(
            bytes,
            &["Sent".to_owned(), "Category Promotions".to_owned()],
            false,
        )
    }

    fn q(query: &str) -> MailQuery {
        MailQuery {
            query: Some(query.to_owned()),
            ..MailQuery::default()
        }
    }

    fn compiled(mq: &MailQuery) -> CompiledQuery {
        match mq.compile() {
            Ok(compiled) => compiled,
            Err(e) => panic!("{:?} should be valid: {e}", mq.query),
        }
    }

    fn matches(query: &str) -> bool {
        compiled(&q(query)).matches(&info())
    }

    #[test]
    fn no_query_matches_everything() {
        assert!(compiled(&MailQuery::default()).matches(&info()));
        assert!(MailQuery::default().is_unfiltered());
        assert!(compiled(&MailQuery::default()).is_unfiltered());
        assert!(matches("   "));
    }

    #[test]
    fn bare_words_and_phrases_search_subject_and_addresses() {
        assert!(matches("contract"));
        assert!(matches("ACME"));
        assert!(matches("partner.org"));
        assert!(matches("\"contract review\""));
        assert!(!matches("\"review contract\""));
        assert!(!matches("invoice"));
        assert!(matches("contract AND review"));
    }

    #[test]
    fn address_operators_match_their_headers() {
        assert!(matches("from:acme.com"));
        assert!(matches("from:\"ann client\""));
        assert!(!matches("from:example.com"));
        assert!(matches("to:me@example.com"));
        assert!(matches("to:partner.org"), "to: also searches cc");
        assert!(matches("cc:bob"));
        assert!(!matches("cc:me@example.com"));
        assert!(matches("subject:review"));
        assert!(matches("subject:\"for q3\""));
        assert!(!matches("subject:acme"));
    }

    #[test]
    fn labels_are_case_insensitive_and_dashed() {
        assert!(matches("label:sent"));
        assert!(matches("in:SENT"));
        assert!(matches("label:category-promotions"));
        assert!(matches("category:promotions"));
        assert!(!matches("label:inbox"));
    }

    #[test]
    fn negation_inverts_any_term() {
        assert!(matches("-label:inbox"));
        assert!(!matches("-label:sent"));
        assert!(!matches("-from:acme.com"));
        assert!(matches("from:acme.com -invoice"));
        assert!(!matches("-\"contract review\""));
    }

    #[test]
    fn dates_are_local_days_in_the_users_zone() {
        // 23:30 UTC on 4 June is 5 June in Berlin and still 4 June in New York.
        let berlin = MailQuery {
            query: Some("after:2024/06/05".into()),
            timezone: chrono_tz::Europe::Berlin,
            ..MailQuery::default()
        };
        assert!(compiled(&berlin).matches(&info()));
        let new_york = MailQuery {
            timezone: chrono_tz::America::New_York,
            ..berlin.clone()
        };
        assert!(!compiled(&new_york).matches(&info()));
        assert!(matches("after:2024-06-04 before:2024-06-05"));
        assert!(!matches("before:2024/6/4"));
    }

    #[test]
    fn range_fields_and_query_dates_must_all_hold() {
        let mut mq = q("after:2024/06/01");
        mq.before = NaiveDate::from_ymd_opt(2024, 6, 4);
        assert!(!compiled(&mq).matches(&info()));
        mq.before = NaiveDate::from_ymd_opt(2024, 6, 5);
        assert!(compiled(&mq).matches(&info()));
        mq.after = NaiveDate::from_ymd_opt(2024, 6, 5);
        assert!(!compiled(&mq).matches(&info()));
    }

    #[test]
    fn a_message_without_a_date_fails_any_date_filter() {
        let undated = HeaderInfo::default();
        assert!(!compiled(&q("after:2024/01/01")).matches(&undated));
        assert!(compiled(&q("-after:2024/01/01")).matches(&undated));
    }

    #[test]
    fn has_attachment_needs_a_full_parse() {
        let mq = compiled(&q("has:attachment"));
        assert!(mq.needs_body());
        assert!(!mq.matches(&info()));
        let with = HeaderInfo {
            attachments: Some(1),
            ..info()
        };
        assert!(mq.matches(&with));
        assert!(!compiled(&q("from:x")).needs_body());
    }

    #[test]
    fn unknown_operators_and_unsupported_syntax_are_errors_naming_them() {
        for (query, needle) in [
            ("newer_than:2d", "newer_than:"),
            ("has:drive", "has:drive"),
            ("after:yesterday", "after:yesterday"),
            ("a OR b", "OR"),
            ("(a b)", "("),
            ("subject:\"open", "quote"),
            ("from:", "from:"),
        ] {
            match q(query).validate() {
                Err(MailError::Query(msg)) => assert!(msg.contains(needle), "{query}: {msg}"),
                other => panic!("{query}: expected a query error, got {other:?}"),
            }
            assert!(
                q(query).compile().is_err(),
                "an invalid query has no compiled form, so nothing is evaluated"
            );
        }
        assert!(
            q("https://acme.com/x").validate().is_ok(),
            "a URL is a word"
        );
    }

    #[test]
    fn the_text_is_parsed_once_and_the_compiled_form_is_evaluated_alone() {
        let mut mq = q("from:acme.com -label:inbox");
        let once = compiled(&mq);
        // Evaluating never reads the text again: with it gone or broken, the compiled
        // query answers for every message as before.
        mq.query = Some("(broken".into());
        assert!(mq.validate().is_err());
        let messages = [info(), info(), HeaderInfo::default()];
        let matched: Vec<bool> = messages.iter().map(|m| once.matches(m)).collect();
        assert_eq!(matched, [true, true, false]);
        assert_eq!(once, compiled(&q("from:acme.com -label:inbox")));
    }
}
