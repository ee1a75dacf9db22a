//! Which of a client's matters an entry is filed under, in a fixed order of evidence:
//! a matter number in the Subject, then a matter keyword in the Subject, then the
//! thread's earlier entry for the same client, then the client's only matter.
//!
//! Both analyzers call [`choose`] once the client is known; the pipeline calls it
//! again with the thread's matter (`tools::pipeline::Recorder`), because only it
//! knows the thread's earlier entries. Two matters that fit at the same step make the
//! entry wait for review: filing time under the wrong matter bills the wrong budget.

use super::rules::contains_whole_word;
use crate::domain::{ClientRule, Matter};

/// How the matter was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatterBy {
    /// Its number (`Matter::id`) is a whole token of the Subject.
    Number,
    /// This keyword of the matter is a whole word of the Subject.
    Keyword(String),
    /// The thread's earlier entry for this client is filed under it.
    Thread,
    /// The client has no other matter.
    Only,
}

/// The outcome of [`choose`].
#[derive(Debug, Clone, PartialEq)]
pub enum Choice<'a> {
    Matter(&'a Matter, MatterBy),
    /// Two or more matters fit at the same step (all numbers, or all keywords).
    Ambiguous(Vec<&'a Matter>),
    /// Nothing names a matter and the client has several (or none).
    None,
}

impl Choice<'_> {
    /// Whether the Subject settled it either way, so a thread's matter must not
    /// override it.
    pub fn from_subject(&self) -> bool {
        matches!(
            self,
            Choice::Matter(_, MatterBy::Number | MatterBy::Keyword(_)) | Choice::Ambiguous(_)
        )
    }

    /// The matter's id, when one was chosen.
    pub fn id(&self) -> Option<String> {
        match self {
            Choice::Matter(m, _) => Some(m.id.clone()),
            _ => None,
        }
    }

    /// The sentence for the entry's reasons; `None` when the client has no matters
    /// at all (nothing to choose, nothing to say).
    pub fn reason(&self, client: &ClientRule) -> Option<String> {
        Some(match self {
            Choice::Matter(m, MatterBy::Number) => {
                format!("matter {}: its number is in the subject", label(m))
            }
            Choice::Matter(m, MatterBy::Keyword(k)) => {
                format!("matter {} by the keyword \"{k}\" in the subject", label(m))
            }
            Choice::Matter(m, MatterBy::Thread) => format!(
                "matter {}, as the thread's earlier entry for {}",
                label(m),
                client.name
            ),
            Choice::Matter(m, MatterBy::Only) => {
                format!("matter {}, the only matter of {}", label(m), client.name)
            }
            Choice::Ambiguous(ms) => format!(
                "the subject fits matters {}; choose one",
                and_list(&ms.iter().map(|m| label(m)).collect::<Vec<_>>())
            ),
            Choice::None if client.matters.is_empty() => return None,
            Choice::None => format!(
                "no matter: nothing in the subject or the thread names one of {}'s matters ({})",
                client.name,
                client
                    .matters
                    .iter()
                    .map(label)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }
}

/// The client's matter for a message with this Subject. `thread` is the matter id of
/// the thread's earlier entry for this client, when the caller knows one; an id that
/// is not (or no longer) one of the client's matters is ignored.
pub fn choose<'a>(client: &'a ClientRule, subject: &str, thread: Option<&str>) -> Choice<'a> {
    let subject = subject.to_lowercase();
    let numbered: Vec<&Matter> = client
        .matters
        .iter()
        .filter(|m| contains_token(&subject, &m.id.to_lowercase()))
        .collect();
    match numbered.as_slice() {
        [m] => return Choice::Matter(m, MatterBy::Number),
        [_, _, ..] => return Choice::Ambiguous(numbered),
        [] => {}
    }
    let keyed: Vec<(&Matter, &String)> = client
        .matters
        .iter()
        .filter_map(|m| {
            m.keywords
                .iter()
                .find(|k| contains_whole_word(&subject, &k.to_lowercase()))
                .map(|k| (m, k))
        })
        .collect();
    match keyed.as_slice() {
        [(m, k)] => return Choice::Matter(m, MatterBy::Keyword((*k).clone())),
        [_, _, ..] => return Choice::Ambiguous(keyed.into_iter().map(|(m, _)| m).collect()),
        [] => {}
    }
    if let Some(m) = thread.and_then(|id| client.matter(id)) {
        return Choice::Matter(m, MatterBy::Thread);
    }
    match client.only_matter() {
        Some(m) => Choice::Matter(m, MatterBy::Only),
        None => Choice::None,
    }
}

/// `id` occurs in `hay` as a whole token: no letter, digit, `-`, `_` or `/` touching it,
/// so `ACME-001` is not found in `ACME-0012` or `XACME-001`, nor `2024-017` in
/// `2024-017-B`. Both are lower-case.
fn contains_token(hay: &str, id: &str) -> bool {
    if id.is_empty() {
        return false;
    }
    let joins = |c: char| c.is_alphanumeric() || matches!(c, '-' | '_' | '/');
    hay.match_indices(id).any(|(i, m)| {
        let before = hay[..i].chars().next_back();
        let after = hay[i + m.len()..].chars().next();
        !before.is_some_and(joins) && !after.is_some_and(joins)
    })
}

/// "A-1 (Lease)", or just the id when the name is the id (the older single matter).
pub fn label(m: &Matter) -> String {
    if m.name == m.id {
        m.id.clone()
    } else {
        format!("{} ({})", m.id, m.name)
    }
}

fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Settings;

    fn acme() -> ClientRule {
        let s = Settings::from_json(serde_json::json!({"clients": [{"name": "Acme", "matters": [
            {"id": "2024-017", "name": "Lease", "keywords": ["lease", "landlord"]},
            {"id": "ACME-001", "name": "Merger", "keywords": ["merger"]}
        ]}]}))
        .unwrap_or_else(|e| panic!("{e}"));
        s.clients[0].clone()
    }

    #[test]
    fn numbers_are_whole_tokens_ignoring_case() {
        assert!(contains_token("re: acme-001 draft", "acme-001"));
        assert!(contains_token("[2024-017] lease", "2024-017"));
        assert!(contains_token("file 2024-017.", "2024-017"));
        assert!(!contains_token("acme-0012", "acme-001"));
        assert!(!contains_token("xacme-001", "acme-001"));
        assert!(!contains_token("2024-017-b", "2024-017"));
        assert!(!contains_token("anything", ""));
    }

    #[test]
    fn the_number_beats_a_keyword_of_another_matter() {
        let c = acme();
        let got = choose(&c, "RE: acme-001 and the lease", None);
        assert_eq!(got.id().as_deref(), Some("ACME-001"));
        assert_eq!(
            got,
            Choice::Matter(&c.matters[1], MatterBy::Number),
            "{got:?}"
        );
    }

    #[test]
    fn two_fits_at_one_step_are_ambiguous_and_name_both() {
        let c = acme();
        let got = choose(&c, "Lease and merger", Some("2024-017"));
        assert!(matches!(got, Choice::Ambiguous(ref ms) if ms.len() == 2));
        assert!(got.from_subject());
        assert_eq!(
            got.reason(&c).as_deref(),
            Some("the subject fits matters 2024-017 (Lease) and ACME-001 (Merger); choose one")
        );
        // Two keywords of the same matter are one fit.
        let got = choose(&c, "Lease: landlord's letter", None);
        assert_eq!(got.id().as_deref(), Some("2024-017"));
    }

    #[test]
    fn the_thread_decides_only_when_the_subject_does_not() {
        let c = acme();
        let got = choose(&c, "Re: follow-up", Some("acme-001"));
        assert_eq!(got, Choice::Matter(&c.matters[1], MatterBy::Thread));
        assert!(!got.from_subject());
        // A matter since removed from the settings is ignored.
        assert_eq!(choose(&c, "Re: follow-up", Some("OLD-9")), Choice::None);
        assert!(choose(&c, "Re: follow-up", None).reason(&c).is_some());
    }

    #[test]
    fn a_single_matter_is_the_default_and_no_matters_say_nothing() {
        let s = Settings::from_json(serde_json::json!({"clients": [
            {"name": "Acme", "matter": "Acme-001"}, {"name": "Beta"}
        ]}))
        .unwrap_or_else(|e| panic!("{e}"));
        let got = choose(&s.clients[0], "Hello", None);
        assert_eq!(
            got.reason(&s.clients[0]).as_deref(),
            Some("matter Acme-001, the only matter of Acme")
        );
        assert_eq!(choose(&s.clients[1], "Hello", None), Choice::None);
        assert_eq!(Choice::None.reason(&s.clients[1]), None);
    }
}
