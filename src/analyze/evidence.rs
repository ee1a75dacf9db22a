//! Evidence of work: whether a message with people at a client shows work for them,
//! or is personal, social or job-seeking mail with people who happen to work there.
//!
//! A linear model (logistic regression) over the message's words and structure. Its
//! weights (`evidence_model.tsv`) are trained by `examples/train_evidence.rs` on the
//! labelled corpora in `tests/corpora/` and shipped in the binary; every decision is
//! explained by the features that weighed most. A user's reviews add a small model of
//! their own on top (`Learned`), trained from the features stored with each entry
//! (`Processed::features`) when a scan starts.
//!
//! The rules ask for evidence only where it decides something: mail already matched
//! to a client, not a calendar invitation, not time the owner stated.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use crate::domain::{Email, Learned};

/// Features kept per message (structure first, then the subject's and the text's
/// words in order). The same cap applies when scoring and when storing, so a stored
/// message scores as it did.
pub const MAX_FEATURES: usize = 160;
/// Words of new text read for features.
const MAX_WORDS_READ: usize = 400;

/// Words of personal life: family, home, leisure, feelings, health, faith.
static PERSONAL: LazyLock<regex::Regex> = LazyLock::new(|| {
    lexicon(concat!(
        "wife|husband|kids|kid|son|daughter|mom|dad|mother|father|brother|sister|",
        "family|baby|wedding|married|honeymoon|birthday|party|parties|weekend|vacation|",
        "holiday|holidays|trip|beach|golf|hunting|fishing|ski|skiing|game|games|",
        "football|baseball|basketball|tickets|concert|movie|dinner|lunch|drinks|beer|",
        "wine|bar|fun|love|miss|hug|hugs|sweet|cute|lovely|beautiful|awesome|cool|",
        "crazy|funny|lol|haha|hehe|hey|buddy|dude|guys|darling|honey|church|pray|",
        "prayers|god|bless|sick|hospital|surgery|doctor|funeral|sorry to hear|",
        "condolences|get well|house|home|dog|dogs|cat|christmas|thanksgiving|easter|",
        "gift|gifts|shopping|restaurant|hotel|flight|enjoy|enjoyed|glad|hope you|",
        "how are you|how's|stock|shares|options|401k|retirement",
    ))
});

/// Words of thanks and congratulation: courtesy, not work.
static COURTESY: LazyLock<regex::Regex> = LazyLock::new(|| {
    lexicon(concat!(
        "thanks|thank you|thank|congratulations|congrats|congratulate|well done|",
        "good job|great job|appreciate|appreciated|welcome|best wishes|good luck|",
        "cheers",
    ))
});

/// Words of employment: looking for a job, a résumé, a reference.
static JOBS: LazyLock<regex::Regex> = LazyLock::new(|| {
    lexicon(concat!(
        "resume|résumé|cv|interview|interviews|interviewing|job|jobs|position|",
        "positions|opening|openings|hire|hiring|hired|recruit|recruiter|recruiting|",
        "candidate|candidates|salary|offer letter|reference|references|career|",
        "opportunity|opportunities|internship|severance|laid off|layoff|layoffs",
    ))
});

/// A case-blind whole-word pattern for words and phrases separated by `|`.
fn lexicon(words: &str) -> regex::Regex {
    let alternation = words
        .split('|')
        .map(regex::escape)
        .collect::<Vec<_>>()
        .join("|");
    // ASCII case and word boundaries: the words are English, and the Unicode tables
    // cost a scan of every message's text several times over.
    regex::RegexBuilder::new(&format!(r"\b(?:{alternation})\b"))
        .case_insensitive(true)
        .unicode(false)
        .build()
        .unwrap_or_else(|e| panic!("evidence lexicon: {e}"))
}

/// How many words of a lexicon a text holds, as a feature: none, one, or several.
fn count_feature(name: &str, re: &regex::Regex, text: &str, out: &mut Vec<String>) {
    match re.find_iter(text).take(3).count() {
        0 => {}
        1 => out.push(format!("@{name}1")),
        _ => out.push(format!("@{name}2")),
    }
}

/// The shipped model, trained by `examples/train_evidence.rs`.
static MODEL_TSV: &str = include_str!("evidence_model.tsv");

static MODEL: LazyLock<Model> =
    LazyLock::new(|| Model::parse(MODEL_TSV).unwrap_or_else(|e| panic!("evidence_model.tsv: {e}")));

/// Weights of a linear model over a message's features, each worth 1/√n for a
/// message with n features (so a long message does not weigh more for its length),
/// with the thresholds its training chose.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub bias: f64,
    pub weights: HashMap<String, f64>,
    /// Below this probability of work, mail with a client is not billed.
    pub drop_below: f64,
    /// From this probability of work on, an entry may be suggested; between the two
    /// it needs review.
    pub suggest_from: f64,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            bias: 0.0,
            weights: HashMap::new(),
            drop_below: 0.0,
            suggest_from: 0.5,
        }
    }
}

/// The value of each present feature of a message with `n` features.
pub fn unit(n: usize) -> f64 {
    1.0 / (n.max(1) as f64).sqrt()
}

impl Model {
    /// The model shipped in the binary.
    pub fn shipped() -> &'static Model {
        &MODEL
    }

    /// Reads `bias\tB` and `feature\tweight` lines; `#` starts a comment line.
    pub fn parse(tsv: &str) -> Result<Model, String> {
        let mut model = Model::default();
        for (n, line) in tsv.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, w) = line
                .split_once('\t')
                .ok_or_else(|| format!("line {}: no tab", n + 1))?;
            let w: f64 = w
                .trim()
                .parse()
                .map_err(|e| format!("line {}: weight {w:?}: {e}", n + 1))?;
            match name {
                "bias" => model.bias = w,
                "drop_below" => model.drop_below = w,
                "suggest_from" => model.suggest_from = w,
                _ => {
                    model.weights.insert(name.to_owned(), w);
                }
            }
        }
        Ok(model)
    }

    /// The model as `parse` reads it, heaviest features first.
    pub fn to_tsv(&self, header: &str) -> String {
        let mut rows: Vec<_> = self.weights.iter().filter(|(_, w)| **w != 0.0).collect();
        rows.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(b.0)));
        let mut out = String::new();
        for line in header.lines() {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&format!("bias\t{:.5}\n", self.bias));
        out.push_str(&format!("drop_below\t{:.3}\n", self.drop_below));
        out.push_str(&format!("suggest_from\t{:.3}\n", self.suggest_from));
        for (name, w) in rows {
            out.push_str(&format!("{name}\t{w:.5}\n"));
        }
        out
    }

    /// The model's log-odds of work for these features.
    pub fn logit(&self, features: &[String]) -> f64 {
        self.bias
            + features
                .iter()
                .filter_map(|f| self.weights.get(f))
                .sum::<f64>()
                * unit(features.len())
    }
}

/// One reviewed entry's stored features and the person's verdict.
pub struct Review {
    pub features: Vec<String>,
    pub approved: bool,
}

/// Passes over the reviews when learning.
const LEARN_EPOCHS: usize = 12;
/// Step of each update.
const LEARN_RATE: f64 = 0.3;
/// Pull of each learned weight back to zero, per pass: what one review taught fades
/// unless others agree.
const LEARN_DECAY: f64 = 0.02;
/// Learned weights are held within ± this, so no single word outweighs the evidence.
const LEARN_MAX_WEIGHT: f64 = 1.5;

/// Trains a user's weights on their reviews: logistic regression on what the shipped
/// model got wrong, so an approval of mail it already took for work teaches little
/// and a rejection of banter it took for work teaches most.
pub fn learn(reviews: &[Review]) -> Learned {
    let approved = reviews.iter().filter(|r| r.approved).count() as u32;
    let rejected = reviews.len() as u32 - approved;
    let mut weights: HashMap<String, f64> = HashMap::new();
    let base = Model::shipped();
    let bases: Vec<f64> = reviews.iter().map(|r| base.logit(&r.features)).collect();
    let delta = |w: &HashMap<String, f64>, f: &[String]| -> f64 {
        f.iter().filter_map(|x| w.get(x)).sum::<f64>() * unit(f.len())
    };
    // Rejections are rarer than approvals: each weighs as much as all the approvals
    // it stands against (up to 10 of them), so a few rejections of banter are heard
    // over many approvals of work.
    let rejection_weight = (f64::from(approved) / f64::from(rejected.max(1))).clamp(1.0, 10.0);
    for _ in 0..if reviews.is_empty() { 0 } else { LEARN_EPOCHS } {
        for (r, b) in reviews.iter().zip(&bases) {
            let z = b + delta(&weights, &r.features);
            let (y, weight) = if r.approved {
                (1.0, 1.0)
            } else {
                (0.0, rejection_weight)
            };
            let step = LEARN_RATE * weight * (y - sigmoid(z)) * unit(r.features.len());
            // A user's reviews teach words (what their work and their friends'
            // mail are about); the shape of mail is the shipped model's to weigh.
            for f in r.features.iter().filter(|f| !f.starts_with('@')) {
                let w = weights.entry(f.clone()).or_insert(0.0);
                *w = (*w + step).clamp(-LEARN_MAX_WEIGHT, LEARN_MAX_WEIGHT);
            }
        }
        weights.values_mut().for_each(|w| *w *= 1.0 - LEARN_DECAY);
    }
    weights.retain(|_, w| w.abs() >= 0.01);
    Learned::new(weights, approved, rejected)
}

/// With a plain sign of work, the probability from which an entry may be suggested
/// (else the model's `suggest_from`).
const SUGGEST_WITH_SIGNS: f64 = 0.8;

/// Features of plain work: several words of work, an attachment, an amount. With one
/// of them low odds hold mail for review; without, they drop it.
const WORK_CUES: &[&str] = &["@work3", "@attach", "@money"];

/// The evidence about one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// Log-odds of work from the shipped model.
    pub logit: f64,
    /// Log-odds the user's reviews add.
    pub learned: f64,
    /// The features that weighed most (shipped and learned weight together),
    /// strongest first, with their weight.
    pub top: Vec<(String, f64)>,
    /// The message has no plain sign of work (`WORK_CUES`).
    pub no_sign_of_work: bool,
}

/// What the evidence says to do with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Reads as personal, social or job-seeking: not billed.
    NotWork,
    /// Not enough to suggest: held for review.
    Weak,
    /// Shows work for the client.
    Work,
}

impl Judgement {
    pub fn probability(&self) -> f64 {
        sigmoid(self.logit + self.learned)
    }

    pub fn verdict(&self) -> Verdict {
        let p = self.probability();
        let model = Model::shipped();
        // Mail with no plain sign of work is dropped on low odds, and so is mail the
        // user's own reviews of mail like it say is not work; a word of work, an
        // attachment or an amount holds it for review instead.
        let learned_drop = self.learned < 0.0;
        if p < model.drop_below && (self.no_sign_of_work || learned_drop) {
            Verdict::NotWork
        } else if p < model.suggest_from && (self.no_sign_of_work || p < SUGGEST_WITH_SIGNS) {
            Verdict::Weak
        } else {
            Verdict::Work
        }
    }

    /// The features that pushed toward (`toward` true) or away from work, as words a
    /// person can read, at most `n`.
    pub fn cues(&self, toward: bool, n: usize) -> String {
        let cues: Vec<String> = self
            .top
            .iter()
            .filter(|(_, w)| (*w > 0.0) == toward)
            .take(n)
            .map(|(f, _)| describe(f))
            .collect();
        if cues.is_empty() {
            "nothing in particular".to_owned()
        } else {
            cues.join(", ")
        }
    }

    /// Whether the user's reviews moved this message's verdict.
    pub fn learned_decides(&self) -> bool {
        let without = Judgement {
            learned: 0.0,
            ..self.clone()
        };
        without.verdict() != self.verdict()
    }
}

/// Judges a message's features under the shipped model and the user's reviews.
pub fn judge(features: &[String], learned: Option<&Learned>) -> Judgement {
    let model = Model::shipped();
    let x = unit(features.len());
    let mut weighed: Vec<(&str, f64)> = features
        .iter()
        .filter_map(|f| {
            let w = (model.weights.get(f).copied().unwrap_or(0.0)
                + learned.map_or(0.0, |l| l.weight(f)))
                * x;
            (w.abs() >= 0.02).then_some((f.as_str(), w))
        })
        .collect();
    weighed.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(b.0)));
    let top = weighed
        .into_iter()
        .take(8)
        .map(|(f, w)| (f.to_owned(), w))
        .collect();
    let has = |cues: &[&str]| features.iter().any(|f| cues.contains(&f.as_str()));
    Judgement {
        logit: model.logit(features),
        learned: learned.map_or(0.0, |l| l.delta(features) * x),
        top,
        no_sign_of_work: !has(WORK_CUES),
    }
}

pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// A feature in words: `"pheasant"`, `subject "lunch"`, `an attachment`.
pub fn describe(feature: &str) -> String {
    if let Some(word) = feature.strip_prefix("s:") {
        return format!("subject \"{word}\"");
    }
    let Some(shape) = feature.strip_prefix('@') else {
        return format!("\"{feature}\"");
    };
    match shape {
        "sent" => "written by you",
        "received" => "received",
        "reply" => "a reply",
        "forward" => "a forward",
        "attach" => "an attachment",
        "question" => "a question",
        "exclaim" => "exclamation marks",
        "smiley" => "a smiley",
        "money" => "an amount of money",
        "number" => "figures",
        "url" => "a link",
        "nosubject" => "no subject",
        "cc" => "others copied",
        "social" => "words of social life",
        "work" => "words of work",
        "w0" => "no text of its own",
        "w1_10" => "a few words",
        "w11_40" => "a short note",
        "w41_150" => "a paragraph or two",
        "w151" => "a long text",
        "work3" => "several words of work",
        "personal1" | "personal2" => "words of personal life",
        "courtesy1" | "courtesy2" => "thanks or congratulations",
        "jobs1" | "jobs2" => "words about jobs",
        "spersonal1" | "spersonal2" => "a personal subject",
        "sjobs1" | "sjobs2" => "a subject about jobs",
        "rcpt1" => "one recipient",
        "rcpt2_4" => "a few recipients",
        "rcpt5" => "many recipients",
        other => other,
    }
    .to_owned()
}

/// The features of a message: its structure (`@…`), the subject's words (`s:…`) and
/// the words of its new text, each once, at most [`MAX_FEATURES`].
pub fn features(email: &Email, owner: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(64);
    let push = |f: &str, out: &mut Vec<String>| out.push(format!("@{f}"));
    push(if owner { "sent" } else { "received" }, &mut out);
    let subject = email.subject.trim_start().to_lowercase();
    let (reply, forward) = (email.is_reply(), email.is_forward());
    if reply {
        push("reply", &mut out);
    }
    if forward {
        push("forward", &mut out);
    }
    if subject.trim().is_empty() {
        push("nosubject", &mut out);
    }
    if email.attachments > 0 {
        push("attach", &mut out);
    }
    let text = email.new_text.as_str();
    if text.contains('?') {
        push("question", &mut out);
    }
    if text.contains('!') {
        push("exclaim", &mut out);
    }
    if [":)", ":-)", ";)", ";-)", ":(", ":-(", ":d"]
        .iter()
        .any(|s| text.contains(s))
    {
        push("smiley", &mut out);
    }
    if text.contains("http://") || text.contains("https://") || text.contains("www.") {
        push("url", &mut out);
    }
    if text
        .as_bytes()
        .windows(2)
        .any(|w| w[0] == b'$' && w[1].is_ascii_digit())
    {
        push("money", &mut out);
    }
    if !email.cc.is_empty() {
        push("cc", &mut out);
    }
    push(
        match email.new_words {
            0 => "w0",
            1..=10 => "w1_10",
            11..=40 => "w11_40",
            41..=150 => "w41_150",
            _ => "w151",
        },
        &mut out,
    );
    push(
        match email.to.len() + email.cc.len() {
            0 | 1 => "rcpt1",
            2..=4 => "rcpt2_4",
            _ => "rcpt5",
        },
        &mut out,
    );
    // A reply's or forward's subject is the thread's, not what this message says.
    let own_subject = if reply || forward {
        ""
    } else {
        email.subject.as_str()
    };
    if super::duration::social_cue(&[text, own_subject]).is_some() {
        push("social", &mut out);
    }
    let work_words = super::duration::work_words(text);
    if work_words >= 1 {
        push("work", &mut out);
    }
    if work_words >= 3 {
        push("work3", &mut out);
    }
    count_feature("personal", &PERSONAL, text, &mut out);
    count_feature("courtesy", &COURTESY, text, &mut out);
    count_feature("jobs", &JOBS, text, &mut out);
    count_feature("spersonal", &PERSONAL, own_subject, &mut out);
    count_feature("sjobs", &JOBS, own_subject, &mut out);
    let mut seen: HashSet<String> = HashSet::new();
    let mut number = false;
    let prefixes = ["re", "fw", "fwd", "aw", "sv", "antw", "wg", "tr"];
    for word in words(&subject)
        .filter(|w| !prefixes.contains(&w.as_str()) && !is_stop_word(w))
        .take(20)
    {
        let f = format!("s:{word}");
        if seen.insert(f.clone()) {
            out.push(f);
        }
    }
    for word in text_words(text).take(MAX_WORDS_READ) {
        if out.len() >= MAX_FEATURES {
            break;
        }
        match word {
            Token::Number => number = true,
            Token::Word(w) => {
                let w = w.to_lowercase();
                if !is_stop_word(&w) && !seen.contains(&w) {
                    seen.insert(w.clone());
                    out.push(w);
                }
            }
        }
    }
    if number {
        out.insert(0, "@number".to_owned());
    }
    out.truncate(MAX_FEATURES);
    out
}

/// Words too common to tell work from anything else; left out of the features so
/// the model weighs what a message is about, not how it is phrased.
const STOP_WORDS: &[&str] = &[
    "a", "about", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at",
    "be", "been", "before", "being", "but", "by", "can", "could", "did", "do", "does", "for",
    "from", "get", "got", "had", "has", "have", "he", "her", "here", "him", "his", "how", "i",
    "i'm", "if", "in", "into", "is", "it", "it's", "its", "just", "me", "more", "my", "no", "not",
    "now", "of", "on", "one", "or", "our", "out", "over", "she", "should", "so", "some", "than",
    "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "to", "too",
    "up", "us", "was", "we", "were", "what", "when", "where", "which", "who", "why", "will",
    "with", "would", "you", "your", "you're", "i'll", "we'll", "let", "know", "see", "send",
    "sent", "go", "going", "make", "take", "way", "well", "very", "much", "many",
];

static STOP: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| STOP_WORDS.iter().copied().collect());

fn is_stop_word(w: &str) -> bool {
    w.len() < 2 || STOP.contains(w)
}

enum Token<'a> {
    Word(&'a str),
    Number,
}

/// Lower-case words of 2 to 20 letters or digits (with at least one letter); the
/// subject's prefixes (re, fw) are words like any other there.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    words_and_numbers(text).filter_map(|t| match t {
        Token::Word(w) => Some(w.to_lowercase()),
        Token::Number => None,
    })
}

/// The words of a text as features take them: names are left out (a capitalised
/// word inside a sentence, an all-capitals word), so the model learns what mail is
/// about rather than who or where it is from.
fn text_words(text: &str) -> impl Iterator<Item = Token<'_>> {
    let mut sentence_start = true;
    let mut rest = text;
    std::iter::from_fn(move || {
        loop {
            let start = rest.find(|c: char| c.is_alphanumeric())?;
            let before = &rest[..start];
            if before.contains(['.', '!', '?', ':', '\n']) {
                sentence_start = true;
            }
            let tail = &rest[start..];
            let len = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '\''))
                .unwrap_or(tail.len());
            let word = tail[..len].trim_end_matches('\'');
            rest = &tail[len..];
            let at_start = std::mem::replace(&mut sentence_start, false);
            if word.chars().all(|c| c.is_ascii_digit()) {
                return Some(Token::Number);
            }
            let n = word.chars().count();
            if !(2..=20).contains(&n) || !word.chars().any(char::is_alphabetic) {
                continue;
            }
            let capital = word.chars().next().is_some_and(char::is_uppercase);
            let all_caps = word
                .chars()
                .filter(|c| c.is_alphabetic())
                .all(char::is_uppercase);
            if (capital && !at_start) || (all_caps && n > 1) {
                continue;
            }
            return Some(Token::Word(word));
        }
    })
}

fn words_and_numbers(text: &str) -> impl Iterator<Item = Token<'_>> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\''))
        .filter(|w| !w.is_empty())
        .filter_map(|w| {
            if w.chars().all(|c| c.is_ascii_digit()) {
                return Some(Token::Number);
            }
            let n = w.chars().count();
            ((2..=20).contains(&n) && w.chars().any(char::is_alphabetic)).then_some(Token::Word(w))
        })
}

/// Features as stored with a processed message: separated by spaces (no feature
/// holds one).
pub fn join(features: &[String]) -> String {
    features.join(" ")
}

/// Stored features back into a list.
pub fn split(stored: &str) -> Vec<String> {
    stored
        .split_whitespace()
        .take(MAX_FEATURES)
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Address;

    fn email(subject: &str, text: &str) -> Email {
        Email {
            subject: subject.into(),
            new_text: text.into(),
            new_words: text.split_whitespace().count(),
            to: vec![Address::new(None, "a@acme.com")],
            ..Email::default()
        }
    }

    #[test]
    fn the_shipped_model_parses_and_has_weights() {
        let m = Model::shipped();
        assert!(m.weights.len() > 100, "{}", m.weights.len());
        assert!(m.weights.values().all(|w| w.is_finite()));
    }

    #[test]
    fn features_are_structure_subject_words_then_text_words_each_once() {
        let f = features(
            &email(
                "Re: Draft ISDA",
                "Please see the draft, the draft! 2024 $5 ok?",
            ),
            true,
        );
        assert_eq!(f[0], "@number");
        assert!(f.contains(&"@sent".to_owned()));
        assert!(f.contains(&"@reply".to_owned()));
        assert!(f.contains(&"@question".to_owned()));
        assert!(f.contains(&"@exclaim".to_owned()));
        assert!(f.contains(&"@money".to_owned()));
        assert!(f.contains(&"s:isda".to_owned()));
        assert_eq!(f.iter().filter(|x| *x == "draft").count(), 1);
        assert!(!f.iter().any(|x| x.contains(' ') || x == "2024"));
    }

    #[test]
    fn features_are_capped_and_survive_storage() {
        let text: String = (0..2000).map(|i| format!("word{i}x ")).collect();
        let f = features(&email("Hello", &text), false);
        assert_eq!(f.len(), MAX_FEATURES);
        assert_eq!(split(&join(&f)), f);
    }

    #[test]
    fn a_model_round_trips_through_its_file() {
        let mut m = Model {
            bias: 0.5,
            drop_below: 0.25,
            suggest_from: 0.75,
            ..Model::default()
        };
        m.weights.insert("golf".into(), -1.25);
        m.weights.insert("@attach".into(), 0.75);
        assert_eq!(Model::parse(&m.to_tsv("trained\non data")).unwrap(), m);
        assert!(Model::parse("bias\tx").is_err());
    }

    #[test]
    fn rejections_teach_similar_mail_from_anyone_and_approvals_teach_work() {
        let banter = |extra: &str| {
            features(
                &email(
                    "weekend",
                    &format!("pheasant season opens, the dogs are ready {extra}"),
                ),
                false,
            )
        };
        let work = features(
            &email("ISDA schedule", "attached is the schedule for your review"),
            false,
        );
        let before = judge(&banter("bring boots"), None);
        let learned = learn(&[
            Review {
                features: banter("see you there"),
                approved: false,
            },
            Review {
                features: work.clone(),
                approved: true,
            },
        ]);
        assert_eq!((learned.approved(), learned.rejected()), (1, 1));
        let after = judge(&banter("bring boots"), Some(&learned));
        assert!(
            after.probability() < before.probability() - 0.1,
            "{before:?} {after:?}"
        );
        let work_after = judge(&work, Some(&learned));
        assert!(work_after.probability() >= judge(&work, None).probability());
        let (_, away) = learned.strongest(5);
        assert!(away.iter().any(|(w, _)| w == "pheasant"), "{away:?}");
    }

    #[test]
    fn no_reviews_learn_nothing() {
        let l = learn(&[]);
        assert!(l.is_empty());
        assert_eq!(l.delta(&["golf".to_owned()]), 0.0);
    }
}
