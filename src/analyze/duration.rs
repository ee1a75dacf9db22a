//! Minutes: rounding raw minutes to the user's billing rules, the amount they bill, and
//! the time the owner states in their own words ("spent 2 hours", "a 30 minute call").

use std::sync::LazyLock;

use regex::Regex;

use crate::domain::{Rounding, Settings};

/// Never take more than a day from text: a larger number is a typo or not a duration.
pub const MAX_STATED_MINUTES: f64 = 24.0 * 60.0;

/// Mentions examined per text; a person states a handful, never hundreds.
const MAX_MENTIONS: usize = 100;

/// Raw minutes rounded by `settings.rounding` to `billing_increment_minutes`, then raised
/// to `minimum_entry_minutes` and capped at `max_entry_minutes`.
///
/// Raw minutes exactly on an increment stay (24.0 → 24 with 6-minute increments, in
/// every mode); `nearest` rounds a half increment up (3.0 → 6); `down` can give 0,
/// which the minimum then lifts. Negative or NaN raw minutes count as 0 and infinite
/// ones as the cap, so no input panics or wraps.
pub fn billed_minutes(raw: f64, settings: &Settings) -> u32 {
    let rounded = rounded_minutes(raw, settings.billing_increment_minutes, settings.rounding);
    let min = f64::from(settings.minimum_entry_minutes);
    let max = f64::from(settings.max_entry_minutes);
    // The cap wins over the minimum; Settings validation keeps min ≤ max anyway.
    rounded.max(min).min(max) as u32
}

/// Raw minutes rounded to a multiple of `increment` (at least 1), before the minimum
/// and the cap. Negative or NaN raw minutes count as 0.
pub fn rounded_minutes(raw: f64, increment: u32, rounding: Rounding) -> f64 {
    let raw = if raw.is_nan() || raw < 0.0 { 0.0 } else { raw };
    let inc = f64::from(increment.max(1));
    // Float noise (20 words / 20 wpm * 6 …) must not push an exact multiple up a step.
    const EPS: f64 = 1e-9;
    let units = raw / inc;
    let units = match rounding {
        Rounding::Up => (units - EPS).ceil(),
        Rounding::Nearest => (units + 0.5).floor(),
        Rounding::Down => (units + EPS).floor(),
    };
    units.max(0.0) * inc
}

/// Billed hours × `hourly_rate`, rounded to cents.
pub fn amount(billed_minutes: u32, hourly_rate: f64) -> f64 {
    let v = f64::from(billed_minutes) / 60.0 * hourly_rate;
    if v.is_finite() {
        (v * 100.0).round() / 100.0
    } else {
        0.0
    }
}

/// A range of clock times: `10:30 AM-11:00 AM`, `14:00–15:30`, `2-2:30`, `11 to 1`.
/// Groups: start hour, minutes, am/pm; end hour, minutes, am/pm.
const TIME_RANGE: &str = r"\b(\d{1,2})(?:[:.](\d{2}))?\s*(am|pm)?\s*(?:-|–|—|to|until|till|bis|à)\s*(\d{1,2})(?:[:.](\d{2}))?\s*(am|pm)?\b";

/// `When: Thursday, January 31, 2002 10:30 AM-11:00 AM (GMT-06:00)`: the text an
/// Outlook or Notes meeting request carries when the calendar part is gone, and the
/// `Wann:`/`Quand :` forms.
static WHEN_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?im)^\s*(?:when|wann|quand|cuándo)\s*:.*?{TIME_RANGE}"
    ))
    .unwrap_or_else(|e| panic!("when pattern: {e}"))
});

static TIME_RANGE_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!("(?i){TIME_RANGE}")).unwrap_or_else(|e| panic!("range pattern: {e}"))
});

/// A [`TIME_RANGE`] match's length in minutes, and whether it is clearly clock times
/// (an am/pm or a `:30` on either side, not a bare `2-3`). `None` when the times do
/// not make a range within a day.
fn range_minutes(c: &regex::Captures<'_>) -> Option<(f64, bool)> {
    let num = |i: usize| c.get(i).and_then(|m| m.as_str().parse::<u32>().ok());
    let (h1, m1, h2, m2) = (num(1)?, num(2).unwrap_or(0), num(4)?, num(5).unwrap_or(0));
    let ampm = |i: usize| c.get(i).map(|m| m.as_str().to_ascii_lowercase());
    // "10:30-11:00 AM": a missing first half-day marker is the second's.
    let (p1, p2) = (ampm(3).or_else(|| ampm(6)), ampm(6));
    let clock = p2.is_some() || c.get(2).is_some() || c.get(5).is_some();
    let to24 = |h: u32, p: &Option<String>| match p.as_deref() {
        Some("pm") if h < 12 => h + 12,
        Some("am") if h == 12 => 0,
        _ => h,
    };
    if h1 > 23 || h2 > 23 || m1 > 59 || m2 > 59 {
        return None;
    }
    let start = to24(h1, &p1) * 60 + m1;
    let mut end = to24(h2, &p2) * 60 + m2;
    // "11-1" with no am/pm on either side crosses noon.
    if p2.is_none() && end <= start && end + 12 * 60 > start && h2 < 12 {
        end += 12 * 60;
    }
    (end > start).then(|| (f64::from(end - start), clock))
}

/// The length of the meeting a text-only meeting request schedules, from its
/// `When:` line (`10:30 AM-11:00 AM`, `14:00–15:30`); `None` without one, or when the
/// times do not make a range of at most a day.
pub fn meeting_request_minutes(text: &str) -> Option<f64> {
    WHEN_LINE
        .captures(text)
        .and_then(|c| range_minutes(&c))
        .map(|(minutes, _)| minutes)
}

/// A meeting time the owner accepts in their own text ("Tuesday 2-2:30 works for
/// me", "10:30 to 11:15 am is fine, see you then").
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptedMeeting {
    pub minutes: f64,
    /// The sentence it was taken from, as written.
    pub phrase: String,
    /// The day the sentence names (`Tuesday`), if any: the meeting's work date.
    pub weekday: Option<chrono::Weekday>,
    /// The sentence says "tomorrow".
    pub tomorrow: bool,
}

/// Meetings are held in minutes to hours; a longer "range" is something else.
const ACCEPTED_MEETING_MINUTES: std::ops::RangeInclusive<f64> = 10.0..=480.0;

static ACCEPTANCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(works|work for me|is fine|fine (with|for) me|good for me|suits me|see you (then|there)|confirmed|i can do|i can make|i'?ll be there|i will be there|sounds good|perfect|passt|geht (bei mir|für mich))\b")
        .unwrap_or_else(|e| panic!("acceptance pattern: {e}"))
});

static MEETING_DAY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(mon|tues?|wed|thu(rs?)?|fri|sat|sun)(day|nesday|sday|urday)?\b|\b(tomorrow|today|meet|meeting|call)\b")
        .unwrap_or_else(|e| panic!("day pattern: {e}"))
});

/// Sentences, keeping the `.` of `2.30` inside its sentence; each with whether it
/// asks a question.
fn sentences(text: &str) -> impl Iterator<Item = (&str, bool)> {
    static SENTENCE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?:[^.!?\n]|\.\d)+[.!?]*").unwrap_or_else(|e| panic!("sentence pattern: {e}"))
    });
    SENTENCE
        .find_iter(text)
        .map(|m| (m.as_str().trim(), m.as_str().trim_end().ends_with('?')))
}

/// The meeting the owner's text accepts: a sentence that is not a question, holding
/// a range of times, a word of acceptance, and either clear clock times or a day or
/// the word meeting/call. A proposal ("does 2-2:30 work?") and a range of something
/// else ("2-3 weeks") are not taken.
pub fn accepted_meeting(text: &str) -> Option<AcceptedMeeting> {
    sentences(text)
        .take(MAX_MENTIONS)
        .find_map(|(sentence, question)| {
            if question || !ACCEPTANCE.is_match(sentence) {
                return None;
            }
            let c = TIME_RANGE_RE.captures(sentence)?;
            let (minutes, clock) = range_minutes(&c)?;
            let day = MEETING_DAY.captures_iter(sentence).collect::<Vec<_>>();
            if !ACCEPTED_MEETING_MINUTES.contains(&minutes) || (!clock && day.is_empty()) {
                return None;
            }
            let weekday = day.iter().filter_map(|d| d.get(1)).find_map(|w| {
                w.as_str()
                    .chars()
                    .take(3)
                    .collect::<String>()
                    .parse::<chrono::Weekday>()
                    .ok()
            });
            let tomorrow = day.iter().any(|d| {
                d.get(4)
                    .is_some_and(|w| w.as_str().eq_ignore_ascii_case("tomorrow"))
            });
            Some(AcceptedMeeting {
                minutes,
                phrase: sentence.to_owned(),
                weekday,
                tomorrow,
            })
        })
}

/// A note that arranges a call or meeting ("can we meet Tuesday 2-2:30?", "we have
/// tentatively scheduled a conference call for Thursday"), in English or German.
static SCHEDULING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(can we|could we|shall we|let's|are you (free|available)|tentatively|(have|has|i've|we've) (scheduled|set up)|können wir|wollen wir)\b.{0,80}\b(meet|meeting|call|conference|termin|telefonat)\b")
        .unwrap_or_else(|e| panic!("scheduling pattern: {e}"))
});

/// Whether a text arranges a call or meeting: the meeting is the work, not the note.
pub fn is_scheduling(text: &str) -> bool {
    SCHEDULING.is_match(text)
}

/// Words of personal and social life: sport and trips, family events, parties and
/// meals, holidays' greetings, and chat about a share price.
static SOCIAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(golf|tee time|hunting|fishing trip|ski trip|skiing|wedding|save the date|getting married|engagement party|birthday|baby shower|new baby|dinner|drinks|happy hour|cocktail party|barbecue|bbq|poker|fantasy football|football game|basketball game|baseball game|ball game|season tickets|concert|vacation|holiday party|merry christmas|happy holidays|happy new year|happy thanksgiving|condolences|funeral|get well|share price|stock price|stock is (up|down))\b")
        .unwrap_or_else(|e| panic!("social pattern: {e}"))
});

/// Words of professional work; one of them in a message keeps it from being taken
/// for social mail ("dinner with the client to go through the closing").
static WORK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(agreements?|contracts?|drafts?|drafted|redlines?|markup|clauses?|sections?|provisions?|terms?|term sheet|amendments?|exhibits?|schedules?|signatures?|sign|signed|execut\w*|closing|deal|transactions?|merger|acquisition|nda|msa|isda|guarant\w*|counterpart(y|ies)|credit|collateral|filings?|filed|court|motion|hearing|deposition|litigation|lawsuit|claims?|dispute|settlement|counsel|legal|regulat\w*|compliance|advice|opinion|memo|documents?|documentation|attached|attachment|comments?|review\w*|negotiat\w*|matter|case|invoice|fees?|deadline|questions?|issues?|proposal|client|lease|license|policy|board|shareholders?|trades?|trading|confirms?|confirmations?)\b")
        .unwrap_or_else(|e| panic!("work pattern: {e}"))
});

/// The social word of texts (a subject and a body) that have no word of work in them
/// ("golf" in "Golf on Saturday? Tee time at 9"), else `None`. The social words are
/// looked for first: most mail has none, and then the work words are never read.
pub fn social_cue(texts: &[&str]) -> Option<String> {
    let cue = texts.iter().find_map(|t| SOCIAL.find(t))?;
    if texts.iter().any(|t| WORK.is_match(t)) {
        return None;
    }
    Some(cue.as_str().to_owned())
}

/// How many words of professional work a text has (at most 8 are counted).
pub fn work_words(text: &str) -> usize {
    WORK.find_iter(text).take(8).count()
}

/// Clerical requests a lawyer does not bill: faxing, copies, courier, contact details.
static CLERICAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(fax|faxed|faxing|a copy|copies|courier|fedex|fax number|phone number|contact (details|information|info)|calendar access)\b")
        .unwrap_or_else(|e| panic!("clerical pattern: {e}"))
});

/// Whether a (short) text asks for or announces clerical work only.
pub fn is_clerical(text: &str) -> bool {
    CLERICAL.is_match(text)
}

/// Whitespace-separated words, as `Email::new_words` counts them.
pub fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

/// Time the owner states in their own text, in minutes; `None` when there is none.
/// See [`stated_work`] for the rules.
pub fn stated_minutes(text: &str) -> Option<f64> {
    stated_work(text).map(|s| s.minutes)
}

/// What [`stated_work`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct StatedTime {
    /// Total minutes, capped at [`MAX_STATED_MINUTES`].
    pub minutes: f64,
    /// The phrases that were taken, as written ("spent 2 hours").
    pub phrases: Vec<String>,
    /// A taken phrase's clause speaks of a call (call, phone, rang).
    pub call: bool,
    /// A taken phrase's clause speaks of a meeting (meeting, met).
    pub meeting: bool,
}

/// Finds durations the writer states as work they did. Conservative by design: a wrong
/// stated duration replaces a sound estimate, so a mention is taken only when
///
/// 1. its sentence reports work done (spent, took, worked, lasted, billed, reviewed,
///    …), or names a kind of work (call, meeting, review, …) while looking back on it
///    (thanks, following, per, after, earlier, yesterday, …: "our 1 hour meeting is at
///    3pm" is a plan), or the mention is followed by `on`/`of`/a gerund ("2 hours on
///    the lease", "an hour reviewing the draft"); and
/// 2. it is not a point in time or a plan: not preceded by `in`, `within`, `after`,
///    `every`, `per`, `next`, … ("in 2 hours"), not followed by `ago`, `from now`,
///    `left`, `notice`, … and its clause (the sentence cut at commas, `and`, `but`)
///    has no plan words (tomorrow, will, 'll, can we, let's, available, schedule,
///    deadline, due, …).
///
/// Ranges take the lower bound ("2-3 hours" → 120). The total is capped at
/// [`MAX_STATED_MINUTES`].
///
/// Distinct statements are summed ("1 hour on X and 30 minutes on Y" → 90). When a
/// taken mention's clause says "total" ("in total", "altogether"), that figure is the
/// answer rather than a sum, so a recap is not counted twice.
pub fn stated_work(text: &str) -> Option<StatedTime> {
    let lower = text.to_lowercase().replace('\u{2019}', "'");
    // Lower-casing may change byte lengths outside ASCII; we only index `lower`.
    if !may_mention_time(&lower) {
        return None;
    }
    let mut sum = 0.0;
    let mut total: Option<f64> = None;
    let mut phrases = Vec::new();
    let (mut call, mut meeting) = (false, false);
    // Each mention looks at its sentence; bounding them keeps pathological text linear.
    for caps in MENTION.captures_iter(&lower).take(MAX_MENTIONS) {
        let Some(m) = caps.get(0) else { continue };
        let Some(minutes) = mention_minutes(&caps) else {
            continue;
        };
        // "2-3 hours", "2 to 3 hours": take the lower bound, the figure the writer
        // vouches for. The range's first number is outside the match.
        let minutes = match (
            RANGE_START.captures(&lower[..m.start()]),
            caps.name("h").or(caps.name("m")),
        ) {
            (Some(low), Some(high)) => match (number(&low[1]), number(high.as_str())) {
                (Some(low), Some(high)) if high > 0.0 && low < high => minutes * low / high,
                _ => minutes,
            },
            _ => minutes,
        };
        if minutes <= 0.0 {
            continue;
        }
        let sentence = span(&lower, m.start(), m.end(), is_sentence_break);
        let clause = clause_of(&lower, m.start(), m.end());
        let before = &lower[..m.start()];
        let after = &lower[m.end()..];
        // "4,000 hours": the match is the tail of a larger number, not a duration.
        let mut back = before.chars().rev();
        if matches!(back.next(), Some(',' | '.')) && back.next().is_some_and(|c| c.is_ascii_digit())
        {
            continue;
        }
        let sentence_at = sentence.as_ptr() as usize - lower.as_ptr() as usize;
        let opens_sentence = sentence
            .get(..m.start().saturating_sub(sentence_at))
            .unwrap_or("")
            .split_whitespace()
            .all(|w| {
                matches!(
                    w,
                    "about" | "around" | "roughly" | "another" | "just" | "over"
                )
            });
        if !work_context(sentence, after, opens_sentence)
            || is_plan(before, after, clause)
            || is_about_something_else(after, clause)
        {
            continue;
        }
        if has_word(clause, &["total", "altogether", "overall"]) || clause.contains("in all") {
            total = Some(total.map_or(minutes, |t: f64| t.max(minutes)));
        } else {
            sum += minutes;
        }
        phrases.push(text_phrase(text, &lower, clause));
        // The clause, not the sentence: in "after the call I spent 2 hours drafting"
        // the two hours are drafting.
        call |= has_word(clause, &["call", "called", "phone", "phoned", "rang"]);
        meeting |= has_word(clause, &["meeting", "met", "meetings"]);
    }
    let minutes = total.unwrap_or(sum).min(MAX_STATED_MINUTES);
    (minutes > 0.0).then_some(StatedTime {
        minutes,
        phrases,
        call,
        meeting,
    })
}

const NUMBER_WORDS: &str = "an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|forty-five|fifty|ninety";

static MENTION: LazyLock<Regex> = LazyLock::new(|| {
    let n = r"\d{1,4}(?:\.\d{1,2})?";
    let w = NUMBER_WORDS;
    let pattern = format!(
        r"\b(?:(?P<hm_h>{n}|{w})\s*(?:h|hrs?|hours?)\.?,?\s*(?:and\s+)?(?P<hm_m>\d{{1,3}})\s*(?:m|mins?|minutes?)\b|(?P<ahh>{n}|{w})\s+and\s+a\s+half\s+hours?\b|(?P<hah>{n}|{w})\s+hours?\s+and\s+a\s+half\b|(?P<half>half\s+an?\s+hour|half[\s-]hour)\b|(?P<quarter>(?:a\s+)?quarter\s+of\s+an\s+hour|(?:a\s+)?quarter[\s-]hour)\b|(?P<h>{n})[\s-]*(?:h|hrs?|hours?)\b|(?P<hw>{w})[\s-]+(?:hrs?|hours?)\b|(?P<m>{n}|{w})[\s-]*(?:mins?|minutes?)\b)"
    );
    // The pattern is a constant; a failure here is a bug caught by every test.
    Regex::new(&pattern).unwrap_or_else(|e| panic!("duration pattern: {e}"))
});

/// False only when [`MENTION`] cannot match: every one of its forms contains `hour`,
/// `hr` or `min`, or a digit followed (after white space or `-`) by `h` or `m`. Most
/// mail states no time, and this look is far cheaper than the regex over the text.
fn may_mention_time(lower: &str) -> bool {
    if lower.contains("hour") || lower.contains("hr") || lower.contains("min") {
        return true;
    }
    let mut chars = lower.chars().peekable();
    while let Some(c) = chars.next() {
        // `\d` is any Unicode decimal digit; `is_numeric` covers all of them.
        if c.is_numeric() {
            while chars.next_if(|&c| c.is_whitespace() || c == '-').is_some() {}
            if matches!(chars.peek(), Some('h' | 'm')) {
                return true;
            }
        }
    }
    false
}

/// The first half of a range that ends where a mention starts ("2-", "2 to ").
static RANGE_START: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(\d{1,4}(?:\.\d{1,2})?)\s*(?:-|–|to|or)\s*$")
        .unwrap_or_else(|e| panic!("range pattern: {e}"))
});

fn number(s: &str) -> Option<f64> {
    let v = match s {
        "a" | "an" | "one" => 1.0,
        "two" => 2.0,
        "three" => 3.0,
        "four" => 4.0,
        "five" => 5.0,
        "six" => 6.0,
        "seven" => 7.0,
        "eight" => 8.0,
        "nine" => 9.0,
        "ten" => 10.0,
        "eleven" => 11.0,
        "twelve" => 12.0,
        "fifteen" => 15.0,
        "twenty" => 20.0,
        "thirty" => 30.0,
        "forty" => 40.0,
        "forty-five" => 45.0,
        "fifty" => 50.0,
        "ninety" => 90.0,
        other => other.parse::<f64>().ok()?,
    };
    v.is_finite().then_some(v)
}

fn mention_minutes(caps: &regex::Captures<'_>) -> Option<f64> {
    let g = |name: &str| caps.name(name).map(|m| m.as_str());
    if let (Some(h), Some(m)) = (g("hm_h"), g("hm_m")) {
        return Some(number(h)? * 60.0 + number(m)?);
    }
    if let Some(h) = g("ahh").or(g("hah")) {
        return Some((number(h)? + 0.5) * 60.0);
    }
    if g("half").is_some() {
        return Some(30.0);
    }
    if g("quarter").is_some() {
        return Some(15.0);
    }
    if let Some(h) = g("h").or(g("hw")) {
        return Some(number(h)? * 60.0);
    }
    number(g("m")?)
}

fn is_sentence_break(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | ';' | '\n' | '\r')
}

/// The text around `start..end` up to the nearest breaks on either side.
fn span(s: &str, start: usize, end: usize, brk: fn(char) -> bool) -> &str {
    let from = s[..start]
        .char_indices()
        .rev()
        // A '.' inside "2.5" is not a break: only count it when not between digits.
        .find(|&(i, c)| brk(c) && !decimal_point(s, i))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let to = s[end..]
        .char_indices()
        .find(|&(i, c)| brk(c) && !decimal_point(s, end + i))
        .map_or(s.len(), |(i, _)| end + i);
    &s[from..to]
}

fn decimal_point(s: &str, i: usize) -> bool {
    s.as_bytes().get(i) == Some(&b'.')
        && i > 0
        && s.as_bytes()[i - 1].is_ascii_digit()
        && s.as_bytes().get(i + 1).is_some_and(u8::is_ascii_digit)
}

/// The sentence cut further at commas and at the words `and`, `but`, `then`, `so`.
fn clause_of(s: &str, start: usize, end: usize) -> &str {
    let sentence = span(s, start, end, is_sentence_break);
    let base = sentence.as_ptr() as usize - s.as_ptr() as usize;
    let (rs, re) = (start - base, end - base);
    let cut = |t: &str| -> Vec<usize> {
        let mut at: Vec<usize> = CLAUSE_BREAK
            .find_iter(t)
            .flat_map(|m| [m.start(), m.end()])
            .collect();
        at.sort_unstable();
        at
    };
    let before = cut(&sentence[..rs]);
    let from = before.last().copied().unwrap_or(0);
    let after = cut(&sentence[re..]);
    let to = after.first().map_or(sentence.len(), |&i| re + i);
    &sentence[from..to]
}

static CLAUSE_BREAK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r",|\b(?:and|but|then|so)\b").unwrap_or_else(|e| panic!("clause pattern: {e}"))
});

/// Whole-word test on lower-case text.
fn has_word(text: &str, words: &[&str]) -> bool {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .any(|w| words.contains(&w))
}

/// Words that report work done: enough on their own ("spent 2 hours").
const WORK_DONE: &[&str] = &[
    "spent",
    "spend",
    "spending",
    "took",
    "worked",
    "working",
    "lasted",
    "ran",
    "billed",
    "billing",
    "bill",
    "logged",
    "charged",
    "reviewed",
    "drafted",
    "researched",
    "revised",
    "prepared",
    "edited",
    "had",
    "did",
    "put",
];

/// Kinds of work that may be past or planned ("a 30 minute call"): they count only in a
/// sentence that looks back on it ("thanks for the 30 minute call").
const WORK_KIND: &[&str] = &[
    "call",
    "calls",
    "phone",
    "meeting",
    "meetings",
    "met",
    "review",
    "reviewing",
    "drafting",
    "draft",
    "research",
    "researching",
    "conference",
    "prep",
    "preparing",
    "editing",
    "revising",
    "analysis",
    "hearing",
    "work",
    "session",
];

const LOOKING_BACK: &[&str] = &[
    "thanks",
    "thank",
    "following",
    "per",
    "after",
    "earlier",
    "yesterday",
    "recap",
    "notes",
    "summary",
    "enjoyed",
    "great",
    "productive",
    "during",
];

/// Whether the sentence reports work the writer did. A mention followed by `on`, `of`
/// or a gerund counts only when it opens its sentence (a diary line: "2 hours on the
/// lease."); inside a sentence it is mostly a number about something else ("staff
/// completed 20 hours of training").
fn work_context(sentence: &str, after: &str, opens_sentence: bool) -> bool {
    if has_word(sentence, WORK_DONE)
        || (has_word(sentence, WORK_KIND) && has_word(sentence, LOOKING_BACK))
    {
        return true;
    }
    if !opens_sentence {
        return false;
    }
    // "2 hours on the lease", "3 hours of edits", "an hour reviewing …"
    let next = after.split_whitespace().next().unwrap_or("");
    matches!(
        next,
        "on" | "of"
            | "doing"
            | "going"
            | "looking"
            | "writing"
            | "reading"
            | "reviewing"
            | "drafting"
            | "researching"
            | "working"
            | "preparing"
            | "editing"
    )
}

const PLAN_WORDS: &[&str] = &[
    "tomorrow",
    "tonight",
    "will",
    "i'll",
    "we'll",
    "you'll",
    "shall",
    "let's",
    "lets",
    "available",
    "availability",
    "free",
    "schedule",
    "scheduled",
    "scheduling",
    "book",
    "deadline",
    "due",
    "expires",
    "expire",
    "upcoming",
    "later",
    "next",
    "plan",
    "planning",
    "would",
    "could",
    "can",
    "should",
    "need",
    "needs",
    "estimate",
    "estimated",
    "budget",
    "max",
    "maximum",
    "limit",
    "ago",
];

fn is_plan(before: &str, after: &str, clause: &str) -> bool {
    const QUALIFIERS: &[&str] = &[
        "about",
        "around",
        "roughly",
        "approximately",
        "approx",
        "nearly",
        "almost",
        "some",
        "just",
        "over",
        "under",
        "a",
        "an",
        "the",
        "another",
        "~",
        "good",
        "solid",
        "full",
    ];
    let mut words = before
        .split(|c: char| c.is_whitespace() || c == '(')
        .rev()
        .filter(|w| !w.is_empty())
        .filter(|w| !QUALIFIERS.contains(w))
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()));
    let prev = words.next().unwrap_or("");
    // "put in 3 hours" is work done, unlike "in 3 hours".
    let put_in = prev == "in" && matches!(words.next(), Some("put" | "puts" | "putting"));
    if !put_in
        && matches!(
            prev,
            "in" | "within"
                | "after"
                | "every"
                | "per"
                | "each"
                | "next"
                | "than"
                | "until"
                | "before"
                | "by"
                | "first"
                | "remaining"
                | "extra"
                | "additional"
                | "another"
        )
    {
        return true;
    }
    let rest = after.trim_start();
    let next_word = rest
        .split(|c: char| !c.is_alphanumeric())
        .find(|w| !w.is_empty())
        .unwrap_or("");
    if matches!(
        next_word,
        "ago"
            | "left"
            | "remaining"
            | "later"
            | "before"
            | "until"
            | "notice"
            | "per"
            | "each"
            | "away"
            | "early"
            | "late"
            | "behind"
            | "ahead"
            | "earlier"
    ) || rest.starts_with("from now")
        || rest.starts_with("a day")
        || rest.starts_with("a week")
        || rest.starts_with("a month")
    {
        return true;
    }
    has_word(clause, PLAN_WORDS) || clause.contains("going to")
}

/// Work a stated "N hours of …" may be of: "3 hours of edits", "an hour of my time".
const WORK_OF: &[&str] = &[
    "work",
    "time",
    "edits",
    "editing",
    "review",
    "reviewing",
    "research",
    "drafting",
    "drafts",
    "revisions",
    "revising",
    "analysis",
    "preparation",
    "prep",
    "calls",
    "meetings",
    "negotiation",
    "negotiations",
    "diligence",
    "discovery",
    "reading",
    "billable",
    "legal",
    "attorney",
    "lawyer",
    "document",
    "documents",
    "back-and-forth",
];

/// Whether a mention is a number about another thing, not this work: "20 hours of
/// training", "4 hours of video", or time far from this message ("last year",
/// "a year", "annually").
fn is_about_something_else(after: &str, clause: &str) -> bool {
    let mut words = after
        .split(|c: char| c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(|w| w.trim_matches(|c: char| !(c.is_alphanumeric() || c == '-')));
    if words.next() == Some("of") {
        let noun =
            words.find(|w| !matches!(*w, "my" | "our" | "the" | "a" | "your" | "solid" | "hard"));
        if !noun.is_some_and(|n| WORK_OF.contains(&n)) {
            return true;
        }
    }
    [
        "last year",
        "this year",
        "last month",
        "a year",
        "per year",
        "each year",
        "every year",
        "annually",
        "a month",
        "per month",
        "each month",
        "a week",
        "per week",
        "each week",
    ]
    .iter()
    .any(|p| clause.contains(p))
}

/// The clause as the writer typed it (original case) when byte offsets agree.
fn text_phrase(text: &str, lower: &str, clause: &str) -> String {
    let start = clause.as_ptr() as usize - lower.as_ptr() as usize;
    let phrase = if text.len() == lower.len() {
        text.get(start..start + clause.len()).unwrap_or(clause)
    } else {
        clause
    };
    phrase.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SettingsPatch;

    fn settings(v: serde_json::Value) -> Settings {
        let patch: SettingsPatch = serde_json::from_value(v).expect("test patch");
        Settings::default()
            .apply(patch)
            .expect("valid test settings")
    }

    /// The pre-check may say yes when the regex says no, never the reverse: checked on
    /// every string of up to six pieces drawn from the tokens durations are made of.
    #[test]
    fn the_time_pre_check_never_hides_a_mention() {
        const TOKENS: [&str; 22] = [
            "2", "1.5", "two", "an", "a", " ", "-", "\u{a0}", "h", "hrs", "hours", "m", "mins",
            "minute", "half", "quarter", "and", "of", ".", ",", "\u{663}", "x",
        ];
        let mut checked = 0;
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..200_000 {
            let mut text = String::new();
            // xorshift: reproducible, no dependency.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut bits = state;
            for _ in 0..=(bits % 6) {
                bits /= 6;
                text.push_str(TOKENS[(bits % TOKENS.len() as u64) as usize]);
                bits /= TOKENS.len() as u64;
            }
            if MENTION.is_match(&text) {
                checked += 1;
                assert!(may_mention_time(&text), "{text:?}");
            }
        }
        assert!(checked > 1_000, "only {checked} strings had a mention");
        assert!(!may_mention_time("please review the draft before the call"));
        assert!(may_mention_time("took 2\u{a0}h"));
    }

    #[test]
    fn rounding_modes_and_edges() {
        let up = Settings::default();
        let nearest = settings(serde_json::json!({"rounding": "nearest"}));
        let down = settings(serde_json::json!({"rounding": "down"}));
        // exactly on an increment stays in every mode
        for s in [&up, &nearest, &down] {
            assert_eq!(billed_minutes(24.0, s), 24);
        }
        assert_eq!(billed_minutes(20.6, &up), 24);
        assert_eq!(billed_minutes(20.6, &nearest), 18);
        assert_eq!(billed_minutes(21.1, &nearest), 24);
        assert_eq!(billed_minutes(20.6, &down), 18);
        // nearest: half an increment rounds up
        assert_eq!(billed_minutes(9.0, &nearest), 12);
        assert_eq!(billed_minutes(8.9, &nearest), 6);
        // down to 0, lifted by the minimum
        assert_eq!(billed_minutes(5.9, &down), 6);
        assert_eq!(billed_minutes(0.0, &up), 6);
        // the cap
        assert_eq!(billed_minutes(10_000.0, &up), 480);
        assert_eq!(billed_minutes(f64::INFINITY, &up), 480);
        assert_eq!(billed_minutes(f64::NAN, &up), 6);
        assert_eq!(billed_minutes(-3.0, &up), 6);
        let no_min = settings(serde_json::json!({"minimum_entry_minutes": 0, "rounding": "down"}));
        assert_eq!(billed_minutes(5.9, &no_min), 0);
        let quarter = settings(serde_json::json!({"billing_increment_minutes": 15}));
        assert_eq!(billed_minutes(16.0, &quarter), 30);
        // float noise does not push an exact multiple up
        assert_eq!(billed_minutes(0.1 * 3.0 * 20.0, &up), 6);
    }

    #[test]
    fn amounts_are_rounded_to_cents() {
        assert_eq!(amount(24, 250.0), 100.0);
        assert_eq!(amount(6, 333.33), 33.33);
        assert_eq!(amount(7, 100.0), 11.67);
        assert_eq!(amount(0, 100.0), 0.0);
    }

    #[test]
    fn stated_durations_are_found() {
        let cases: &[(&str, f64)] = &[
            ("I spent 2 hours on the draft.", 120.0),
            ("Reviewed the lease, 2.5 hrs.", 150.0),
            ("Drafting took 1h 30m.", 90.0),
            ("I worked 90 minutes on this.", 90.0),
            ("Thanks for the 30-minute call today.", 30.0),
            ("Following up on a 30 minute call with your team", 30.0),
            ("It took an hour.", 60.0),
            ("Spent half an hour reviewing the contract.", 30.0),
            ("The call lasted 1 hour and 15 minutes.", 75.0),
            ("This took me 45 mins.", 45.0),
            ("Spent 1 hour on X and 30 minutes on Y.", 90.0),
            ("2 hours on the indemnity clause.", 120.0),
            ("Our meeting ran an hour and a half.", 90.0),
            (
                "I spent 2 hours on the draft, will send it tomorrow.",
                120.0,
            ),
            ("Spent 2-3 hours on the research.", 120.0),
            ("Worked 1 to 2 hrs on it.", 60.0),
            ("The call took an hr.", 60.0),
            ("Spent 20 minutes on the call.", 20.0),
            ("Per our 45 minute call, here are the changes.", 45.0),
            ("An hour reviewing the draft, comments attached.", 60.0),
            ("Had a 20 minute call with their counsel.", 20.0),
            ("I put in 3 hours on the brief.", 180.0),
            (
                "Spent 1 hour on X. Spent 30 minutes on Y. In total I spent 90 minutes.",
                90.0,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(stated_minutes(text), Some(*want), "{text}");
        }
    }

    #[test]
    fn times_that_are_not_work_are_not_taken() {
        for text in [
            "The deadline is in 2 hours.",
            "Can we meet in 30 minutes?",
            "I am available for 1 hour tomorrow.",
            "Let's schedule a 30 minute call next week.",
            "I sent this 2 hours ago.",
            "Please give 24 hours notice.",
            "The train takes 20 minutes from here?",
            "Could we do a 15 minute call?",
            "I will spend 3 hours on it.",
            "Meeting is in 45 minutes.",
            "Our 1 hour meeting is at 3pm.",
            "Confirming our 30 minute call on Friday.",
            "Please review within 24 hours.",
            "Reviewing this should take about 2 hours.",
            "Do you have 15 minutes today?",
            "I'll call you in 10 minutes.",
            "This is a 2 hour drive.",
            "No duration here at all.",
            "We are 5 minutes late.",
            "Staff completed 20 hours of training this year.",
            "The turbines have logged 4,000 hours on the new blades.",
            "Their team put 1,500 hours into the audit.",
            "We did 20 hours of training last year on the new system.",
            "I had 4 hours of video to watch for the course.",
            "I spent 3 hours a week on this file last year.",
        ] {
            assert_eq!(stated_minutes(text), None, "{text}");
        }
    }

    #[test]
    fn stated_time_is_capped_and_tells_call_from_meeting() {
        assert_eq!(
            stated_minutes("I spent 100 hours on this."),
            Some(MAX_STATED_MINUTES)
        );
        let s = stated_work("Thanks for the 30 minute call.").expect("stated");
        assert!(s.call && !s.meeting);
        let s = stated_work("Our meeting took an hour.").expect("stated");
        assert!(s.meeting && !s.call);
        assert_eq!(s.phrases, vec!["Our meeting took an hour"]);
        let s = stated_work("After the call, I spent 2 hours drafting.").expect("stated");
        assert!(!s.call && !s.meeting, "{s:?}");
    }

    #[test]
    fn any_text_is_safe() {
        let tricky = "İ spent 2.5 hours — ½ hour… on the ŁÓDŹ file; 30-min call. 1h 30m, 2-3 hrs, 9999 hours";
        let ends: Vec<usize> = tricky
            .char_indices()
            .map(|(i, _)| i)
            .chain([tricky.len()])
            .collect();
        for &end in &ends {
            for &start in ends.iter().filter(|&&s| s <= end) {
                let _ = stated_work(&tricky[start..end]);
            }
        }
        let long = "spent 1 min and ".repeat(5_000);
        assert_eq!(stated_minutes(&long), Some(100.0));
    }

    #[test]
    fn words_count_whitespace_separated_tokens() {
        assert_eq!(words("  one two\nthree  "), 3);
        assert_eq!(words(""), 0);
    }

    #[test]
    fn a_when_line_gives_the_requested_meeting_length() {
        let when = |t: &str| meeting_request_minutes(t);
        assert_eq!(
            when(
                "When: Thursday, January 31, 2002 10:30 AM-11:00 AM (GMT-06:00) Central Time.\nWhere: Room 4"
            ),
            Some(30.0)
        );
        assert_eq!(
            when("Wann: Dienstag, 3. Juni 2025 14:00–15:30 (UTC+01:00)"),
            Some(90.0)
        );
        assert_eq!(when("when: 11:30 am to 1 pm"), Some(90.0));
        assert_eq!(when("We meet Tuesday 2-3."), None);
        assert_eq!(when("When: 3 PM-2 PM"), None);
    }

    #[test]
    fn an_accepted_time_in_the_owners_text_is_a_meeting_of_that_length() {
        let accepted = |t: &str| accepted_meeting(t).map(|a| (a.minutes, a.weekday, a.tomorrow));
        use chrono::Weekday::*;
        assert_eq!(
            accepted("Jane,\n\nTuesday 2-2:30 works for me. I'll send the draft before."),
            Some((30.0, Some(Tue), false))
        );
        assert_eq!(
            accepted("10:30 to 11:15 am is fine, see you then."),
            Some((45.0, None, false))
        );
        assert_eq!(accepted("Tomorrow 11-1 works."), Some((120.0, None, true)));
        assert_eq!(
            accepted("Donnerstag 14.00-15.30 passt mir."),
            Some((90.0, None, false))
        );
        // Proposals, ranges of other things, and ranges without a word of acceptance.
        assert_eq!(accepted("Does Tuesday 2-2:30 work for you?"), None);
        assert_eq!(accepted("That works; it should take 2-3 weeks."), None);
        assert_eq!(accepted("Pages 10-12 are fine."), None);
        assert_eq!(accepted("We met 2-4 pm on Tuesday about the lease."), None);
        assert_eq!(
            accepted("Tuesday 9am-6pm works for the deposition."),
            None,
            "a day, not a meeting"
        );
        assert_eq!(
            accepted("Thursday 3:00-3:45 pm works."),
            Some((45.0, Some(Thu), false))
        );
    }

    #[test]
    fn social_mail_is_told_from_work_with_a_pleasantry() {
        for social in [
            "Golf Saturday?\nAre you up for a round? I have a tee time at 9 at Brookside.",
            "Thanks for dinner last night, it was great to see you and Tom.",
            "Save the date! Sarah and I are getting married on June 5 in Napa.",
            "Did you see the share price today? Up 12%. Crazy.",
            "Happy holidays to you and the family!",
        ] {
            assert!(social_cue(&[social]).is_some(), "{social}");
        }
        for work in [
            "Thanks for dinner. I marked up section 4 of the agreement as we discussed.",
            "Before the golf outing, can you send me the signed NDA?",
            "Please review the draft lease.",
            "I will be on vacation next week; the closing documents are with Tom.",
        ] {
            assert_eq!(social_cue(&[work]), None, "{work}");
        }
        // A work word in the subject keeps a social body from being dropped.
        assert_eq!(social_cue(&["Closing dinner", "See you at 7."]), None);
        assert_eq!(
            social_cue(&["Saturday", "Golf at 9?"]).as_deref(),
            Some("Golf")
        );
    }

    #[test]
    fn scheduling_notes_are_recognised() {
        assert!(is_scheduling("Can we meet Tuesday 2-2:30?"));
        assert!(is_scheduling(
            "We have tentatively scheduled a conference call for Thursday at 1:30."
        ));
        assert!(is_scheduling("Können wir am Montag einen Termin machen?"));
        assert!(!is_scheduling(
            "After our call I revised section 4; see attached."
        ));
    }

    #[test]
    fn clerical_requests_are_recognised() {
        assert!(is_clerical("Please fax the agreement to 646-758-4411"));
        assert!(is_clerical("Do you need a copy of this?"));
        assert!(!is_clerical("The indemnity cap should be 2x fees."));
    }
}
