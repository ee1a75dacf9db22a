//! Reading and checking the model's answer. Every field is data: it is checked
//! against the schema and the user's limits, and nothing in it can act.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::NaiveDate;
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

use super::prompt::Item;
use crate::analyze::rules::MAX_DESCRIPTION_CHARS;
use crate::domain::Settings;

/// One message's answer, short keys as in prompts/analysis-v2.schema.json.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub i: i64,
    pub b: bool,
    pub c: Option<String>,
    pub m: f64,
    pub d: String,
    pub t: String,
    pub k: f64,
    pub w: String,
}

/// A checked answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Billable work for `client` (a configured name from the candidates).
    Work {
        client: String,
        minutes: f64,
        /// The model asked for more than the estimate allows.
        held_from: Option<f64>,
        date: NaiveDate,
        description: String,
        confidence: f64,
        why: String,
    },
    /// Not billable work, in the model's judgement.
    NotWork { confidence: f64, why: String },
}

/// The answers in a reply by index; `Err` when the reply is not the expected object.
/// Items that do not match the schema are left out, and an index answered twice in
/// two ways is dropped (both answers are doubtful), so those messages count as
/// unanswered.
pub fn parse(content: &str) -> Result<HashMap<usize, Answer>, String> {
    let v: Value = serde_json::from_str(content.trim())
        .map_err(|e| format!("the answer is not valid JSON ({e})"))?;
    let list = v
        .get("r")
        .and_then(Value::as_array)
        .ok_or("the answer has no `r` list")?;
    Ok(by_index(list))
}

/// The complete items of a reply cut off at the token cap (`{"r":[{…},{…},{"i":`):
/// every whole object in the `r` list before the cut, by index as [`parse`] keeps them.
pub fn salvage(content: &str) -> HashMap<usize, Answer> {
    let Some(start) = content.find("\"r\"") else {
        return HashMap::new();
    };
    let Some(open) = content[start..].find('[') else {
        return HashMap::new();
    };
    let rest = &content[start + open + 1..];
    let mut items = Vec::new();
    let (mut depth, mut in_string, mut escaped, mut from) = (0usize, false, false, None);
    for (at, c) in rest.char_indices() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => {
                if depth == 0 {
                    from = Some(at);
                }
                depth += 1;
            }
            '}' if depth > 0 => {
                depth -= 1;
                if depth == 0
                    && let Some(f) = from.take()
                    && let Ok(v) = serde_json::from_str::<Value>(&rest[f..=at])
                {
                    items.push(v);
                }
            }
            ']' if depth == 0 => break,
            _ => {}
        }
    }
    by_index(&items)
}

fn by_index(list: &[Value]) -> HashMap<usize, Answer> {
    let mut out: HashMap<usize, Answer> = HashMap::new();
    let mut twice = Vec::new();
    for item in list {
        let Ok(a) = serde_json::from_value::<Answer>(item.clone()) else {
            continue;
        };
        let Ok(i) = usize::try_from(a.i) else {
            continue;
        };
        // A model that loops repeats an answer word for word: that one stands.
        match out.insert(i, a.clone()) {
            Some(earlier) if earlier != a => twice.push(i),
            _ => {}
        }
    }
    for i in twice {
        out.remove(&i);
    }
    out
}

/// Checks one answer against its message and the settings.
///
/// The clamp on minutes: the model may keep or lower the rules estimate, never raise
/// it. The estimate already is the owner's own stated time when they stated one, and
/// durations in received mail are never taken, so "bill 100 hours" in a message
/// cannot add a minute. It is also held to `max_entry_minutes`.
pub fn check(a: &Answer, item: &Item<'_>, settings: &Settings) -> Result<Verdict, String> {
    if !(a.k.is_finite() && (0.0..=1.0).contains(&a.k)) {
        return Err(format!("confidence {} is outside 0..1", a.k));
    }
    let why = clean_phrase(&a.w);
    if !a.b {
        return Ok(Verdict::NotWork {
            confidence: a.k,
            why,
        });
    }
    let Some(named) = a.c.as_deref().map(str::trim).filter(|c| !c.is_empty()) else {
        return Err("billable work without a client".to_owned());
    };
    let Some(client) = item
        .candidates
        .iter()
        .find(|c| c.eq_ignore_ascii_case(named))
    else {
        return Err(format!(
            "client `{}` is not one the message is from or to",
            clip(named, 60)
        ));
    };
    if !a.m.is_finite() {
        return Err("minutes is not a number".to_owned());
    }
    let cap = item
        .estimate
        .min(f64::from(settings.max_entry_minutes))
        .max(0.0);
    let minutes = a.m.clamp(0.0, cap);
    let held_from = (a.m > cap + 0.05).then_some(a.m);
    let date = NaiveDate::parse_from_str(a.d.trim(), "%Y-%m-%d")
        .map_err(|_| format!("work date `{}` is not YYYY-MM-DD", clip(&a.d, 20)))?;
    if (date - item.date).num_days().abs() > 1 {
        return Err(format!(
            "work date {date} is more than a day from the message's date {}",
            item.date
        ));
    }
    // Full-width and other compatibility forms are checked as what they look like.
    let description: String = a.t.nfkc().collect();
    let description = description.split_whitespace().collect::<Vec<_>>().join(" ");
    if description.is_empty() {
        return Err("empty description".to_owned());
    }
    if has_url(&description) {
        return Err("the description contains a URL".to_owned());
    }
    if has_markup(&description) {
        return Err("the description contains markup".to_owned());
    }
    if let Some(why) = junk(&description, item) {
        return Err(format!(
            "the description `{}` {why}",
            clip(&description, 40)
        ));
    }
    Ok(Verdict::Work {
        client: client.clone(),
        minutes,
        held_from,
        date,
        description: clip(&description, MAX_DESCRIPTION_CHARS),
        confidence: a.k,
        why,
    })
}

/// Why a description is no invoice line: too few words (`","`, `"7.2"`, `"no"`), or a
/// person of the message named in it (a contact's name instead of the work, and a
/// name the client's bill should not carry).
fn junk(description: &str, item: &Item<'_>) -> Option<&'static str> {
    let words: Vec<String> = description
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| w.chars().filter(|c| c.is_alphabetic()).count() >= 2)
        .map(str::to_lowercase)
        .collect();
    let letters: usize = words
        .iter()
        .map(|w| w.chars().filter(|c| c.is_alphabetic()).count())
        .sum();
    if words.len() < 2 || letters < 8 {
        return Some("has too few words to describe the work");
    }
    let e = item.email;
    let people = e.from.iter().chain(&e.to).chain(&e.cc);
    let mut name_words: Vec<String> = Vec::new();
    for name in people.filter_map(|a| a.name.as_deref()) {
        let parts: Vec<String> = name
            .split(|c: char| !c.is_alphanumeric() && c != '\'')
            .filter(|w| w.chars().count() >= 2)
            .map(str::to_lowercase)
            .collect();
        // "Roe, Jane" and "Jane Roe" both: two name words side by side, either order.
        if parts.len() >= 2
            && words.windows(2).any(|pair| {
                parts.windows(2).any(|p| {
                    (pair[0] == p[0] && pair[1] == p[1]) || (pair[0] == p[1] && pair[1] == p[0])
                })
            })
        {
            return Some("names a person in the message");
        }
        name_words.extend(parts);
    }
    if !name_words.is_empty() && words.iter().all(|w| name_words.contains(w)) {
        return Some("is a person's name, not the work");
    }
    None
}

fn has_url(s: &str) -> bool {
    static DOMAIN: LazyLock<Regex> = LazyLock::new(|| {
        // A bare host name (`evil.com`, `pay.evil.co.uk`): chat clients link them.
        Regex::new(r"(?i)\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,24}\b")
            .unwrap_or_else(|e| panic!("domain regex: {e}"))
    });
    let l = s.to_ascii_lowercase();
    [
        "://",
        "www.",
        "mailto:",
        "javascript:",
        "data:",
        "vbscript:",
        "file:",
    ]
    .iter()
    .any(|p| l.contains(p))
        || DOMAIN.is_match(&l)
}

/// Tags, emphasis, headings, links, code and tables; a lone bracket or underscore in a
/// matter number is not markup.
fn has_markup(s: &str) -> bool {
    let t = s.trim_start();
    s.contains(['<', '>', '`', '{', '}', '|'])
        || s.contains("**")
        || s.contains("__")
        || s.contains("](")
        || t.starts_with('#')
        || t.starts_with('*')
}

/// The model's one-phrase reason, made safe to show: one line, no URLs or markup,
/// at most 60 characters.
fn clean_phrase(s: &str) -> String {
    let s: String = s
        .split_whitespace()
        .filter(|w| !has_url(w))
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !matches!(c, '<' | '>' | '`' | '*' | '#' | '[' | ']' | '{' | '}' | '|'))
        .collect();
    clip(&s, 60)
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let cut: String = s.chars().take(max.saturating_sub(1)).collect();
    let cut = match cut.rfind(' ') {
        Some(i) if i > max / 2 => cut[..i].to_owned(),
        _ => cut,
    };
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Email;

    fn item(email: &Email) -> Item<'_> {
        Item {
            email,
            owner_sent: true,
            candidates: vec!["Acme Corp".into(), "Globex".into()],
            estimate: 12.0,
            date: NaiveDate::from_ymd_opt(2026, 11, 2).expect("date"),
        }
    }

    fn answer(v: serde_json::Value) -> Answer {
        serde_json::from_value(v).expect("answer")
    }

    fn good() -> serde_json::Value {
        serde_json::json!({"i": 0, "b": true, "c": "acme corp", "m": 9.0, "d": "2026-11-03",
            "t": "Revised the MSA draft", "k": 0.8, "w": "draft sent to client"})
    }

    #[test]
    fn a_good_answer_is_kept_with_the_configured_name() {
        let e = Email::default();
        let v = check(&answer(good()), &item(&e), &Settings::default()).expect("valid");
        let Verdict::Work {
            client,
            minutes,
            held_from,
            ..
        } = v
        else {
            panic!("{v:?}")
        };
        assert_eq!(
            (client.as_str(), minutes, held_from),
            ("Acme Corp", 9.0, None)
        );
    }

    #[test]
    fn minutes_never_exceed_the_estimate_or_the_maximum() {
        let e = Email::default();
        let mut a = good();
        a["m"] = 6000.0.into();
        let Verdict::Work {
            minutes, held_from, ..
        } = check(&answer(a.clone()), &item(&e), &Settings::default()).expect("valid")
        else {
            panic!()
        };
        assert_eq!((minutes, held_from), (12.0, Some(6000.0)));
        a["m"] = (-5.0).into();
        let Verdict::Work { minutes, .. } =
            check(&answer(a), &item(&e), &Settings::default()).expect("valid")
        else {
            panic!()
        };
        assert_eq!(minutes, 0.0);
    }

    #[test]
    fn bad_fields_make_the_answer_invalid() {
        let e = Email::default();
        let s = Settings::default();
        for (k, v) in [
            ("k", serde_json::json!(1.5)),
            ("c", serde_json::json!("Initech")),
            ("c", serde_json::Value::Null),
            ("d", serde_json::json!("2026-11-09")),
            ("d", serde_json::json!("tomorrow")),
            ("t", serde_json::json!("See https://evil.example")),
            ("t", serde_json::json!("<b>Draft</b>")),
            ("t", serde_json::json!("  ")),
            // Links a chat client or a bill viewer would follow, however written.
            ("t", serde_json::json!("Review terms at evil.example.com")),
            ("t", serde_json::json!("Open javascript:alert(1) now")),
            (
                "t",
                serde_json::json!("Open data:text/html;base64,AAAA now"),
            ),
            ("t", serde_json::json!("Draft ＜script＞x＜/script＞ memo")),
        ] {
            let mut a = good();
            a[k] = v.clone();
            assert!(check(&answer(a), &item(&e), &s).is_err(), "{k}={v}");
        }
    }

    #[test]
    fn junk_descriptions_and_names_are_refused() {
        let e = Email {
            from: Some(crate::domain::Address {
                name: Some("Roe, Jane".into()),
                email: "jane@acme.com".into(),
            }),
            ..Email::default()
        };
        let s = Settings::default();
        for junk in [
            ",",
            "7.2",
            "no",
            "Jane Roe",
            "Call with Jane Roe re the lease",
            "Jane",
        ] {
            let mut a = good();
            a["t"] = junk.into();
            assert!(check(&answer(a), &item(&e), &s).is_err(), "{junk}");
        }
        for fine in [
            "Revised the MSA draft",
            "Reviewed Jane's comments on the lease",
        ] {
            let mut a = good();
            a["t"] = fine.into();
            assert!(check(&answer(a), &item(&e), &s).is_ok(), "{fine}");
        }
    }

    #[test]
    fn a_cut_off_reply_keeps_its_complete_items() {
        let content = r#"{"r":[{"i":0,"b":true,"c":"Acme Corp","m":6,"d":"2026-11-02","t":"Drafted {the} \"notice\"","k":0.8,"w":"draft"},{"i":1,"b":false,"c":null,"m":0,"d":"2026-11-02","t":"x","k":0.9,"w":"thanks"},{"i":2,"b":true,"c":"Acme"#;
        assert!(parse(content).is_err());
        let kept = salvage(content);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[&0].t, "Drafted {the} \"notice\"");
        assert!(salvage("not json").is_empty());
    }

    #[test]
    fn replies_are_parsed_by_index() {
        let ok = parse(r#"{"r":[{"i":1,"b":false,"c":null,"m":0,"d":"2026-11-02","t":"x","k":0.9,"w":"thanks"}]}"#)
            .expect("parsed");
        assert!(ok.contains_key(&1) && ok.len() == 1);
        assert!(parse("{\"r\": [").is_err());
        assert!(parse("[]").is_err());
        let twice = parse(r#"{"r":[{"i":0,"b":false,"c":null,"m":0,"d":"","t":"x","k":0.9,"w":""},{"i":0,"b":false,"c":null,"m":0,"d":"","t":"y","k":0.9,"w":""},{"i":-1,"b":false,"c":null,"m":0,"d":"","t":"x","k":0.9,"w":""},{"i":2}]}"#)
            .expect("parsed");
        assert!(twice.is_empty());
    }

    #[test]
    fn long_descriptions_are_clipped() {
        let e = Email::default();
        let mut a = good();
        a["t"] = "word ".repeat(100).into();
        let Verdict::Work { description, .. } =
            check(&answer(a), &item(&e), &Settings::default()).expect("valid")
        else {
            panic!()
        };
        assert!(description.chars().count() <= MAX_DESCRIPTION_CHARS);
    }
}
