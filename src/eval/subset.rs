//! Part of a mailbox: the oldest messages (which a simulated person reviews) and the
//! rest (which are scored), and a `MailSource` that lists only one part.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::mail::{Listed, MailError, MailQuery, MailSource, RawEmail};

/// A message of the mailbox as the split orders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dated {
    pub id: String,
    /// The Date header; `None` when missing or unreadable.
    pub date: Option<DateTime<Utc>>,
}

/// The mailbox cut in two by Date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub first: HashSet<String>,
    pub rest: HashSet<String>,
}

/// Orders the messages by Date (then id, so equal dates cut the same way every run)
/// and puts the oldest `floor(fraction × n)` in `first`. Messages without a readable
/// Date go last: nobody can say they were reviewed before the rest arrived. An id
/// listed twice counts once.
pub fn split_oldest(mut messages: Vec<Dated>, fraction: f64) -> Split {
    messages
        .sort_by(|a, b| (a.date.is_none(), a.date, &a.id).cmp(&(b.date.is_none(), b.date, &b.id)));
    let mut seen = HashSet::new();
    messages.retain(|m| seen.insert(m.id.clone()));
    // Truncation toward zero is the documented floor; the fraction is in (0, 1).
    let cut = ((messages.len() as f64) * fraction.clamp(0.0, 1.0)).floor() as usize;
    let rest = messages.split_off(cut.min(messages.len()));
    Split {
        first: messages.into_iter().map(|m| m.id).collect(),
        rest: rest.into_iter().map(|m| m.id).collect(),
    }
}

/// A source that shows only the messages whose ids are in `ids`: a scan through it
/// sees that part of the mailbox and nothing else.
pub struct OnlyIds {
    inner: Arc<dyn MailSource>,
    ids: HashSet<String>,
    what: String,
}

impl OnlyIds {
    /// `what` names the part in the scan report, e.g. "the oldest 30%".
    pub fn new(inner: Arc<dyn MailSource>, ids: HashSet<String>, what: &str) -> Self {
        OnlyIds {
            inner,
            ids,
            what: what.to_owned(),
        }
    }
}

#[async_trait]
impl MailSource for OnlyIds {
    fn describe(&self) -> String {
        format!(
            "{} ({}: {} messages)",
            self.inner.describe(),
            self.what,
            self.ids.len()
        )
    }

    fn list<'a>(&'a self, query: &'a MailQuery) -> BoxStream<'a, Result<Listed, MailError>> {
        // A message that cannot be read has no id to filter by; it is reported by
        // each part's scan, as the whole mailbox's scan would.
        self.inner
            .list(query)
            .filter(move |item| {
                let keep = match item {
                    Ok(listed) => self.ids.contains(&listed.id),
                    Err(_) => true,
                };
                std::future::ready(keep)
            })
            .boxed()
    }

    fn listing(&self, query: &MailQuery) -> Option<String> {
        self.inner.listing(query)
    }

    async fn fetch(&self, listed: Listed) -> Result<RawEmail, MailError> {
        self.inner.fetch(listed).await
    }

    async fn fetch_many(&self, listed: Vec<Listed>) -> Vec<Result<RawEmail, MailError>> {
        self.inner.fetch_many(listed).await
    }

    async fn get(&self, id: &str) -> Result<RawEmail, MailError> {
        if !self.ids.contains(id) {
            return Err(MailError::NotFound(id.to_owned()));
        }
        self.inner.get(id).await
    }

    async fn owner_addresses(&self) -> Result<Vec<String>, MailError> {
        self.inner.owner_addresses().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(id: &str, day: Option<u32>) -> Dated {
        Dated {
            id: id.to_owned(),
            date: day.map(|d| {
                DateTime::parse_from_rfc3339(&format!("2001-05-{d:02}T12:00:00Z"))
                    .unwrap()
                    .with_timezone(&Utc)
            }),
        }
    }

    fn ids(set: &HashSet<String>) -> Vec<&str> {
        let mut v: Vec<&str> = set.iter().map(String::as_str).collect();
        v.sort();
        v
    }

    #[test]
    fn the_oldest_fraction_by_count_goes_first() {
        let messages = vec![
            at("e", Some(5)),
            at("a", Some(1)),
            at("nodate", None),
            at("c", Some(3)),
            at("b", Some(3)),
            at("a", Some(1)),
            at("d", Some(4)),
        ];
        // Six distinct messages; 0.5 of them is 3: a, then b and c (same day, by id).
        let s = split_oldest(messages.clone(), 0.5);
        assert_eq!(ids(&s.first), ["a", "b", "c"]);
        assert_eq!(ids(&s.rest), ["d", "e", "nodate"]);
        // floor(0.3 × 6) = 1.
        assert_eq!(ids(&split_oldest(messages.clone(), 0.3).first), ["a"]);
        // Undated mail is never reviewed before the rest.
        assert_eq!(ids(&split_oldest(messages, 0.99).rest), ["nodate"]);
    }

    struct Three;

    #[async_trait]
    impl MailSource for Three {
        fn describe(&self) -> String {
            "three".to_owned()
        }
        fn list<'a>(&'a self, _: &'a MailQuery) -> BoxStream<'a, Result<Listed, MailError>> {
            let items = ["x", "y", "z"].map(|id| {
                Ok(Listed {
                    id: id.to_owned(),
                    thread_id: None,
                    raw: None,
                })
            });
            futures::stream::iter(items).boxed()
        }
        async fn get(&self, id: &str) -> Result<RawEmail, MailError> {
            Ok(RawEmail {
                id: id.to_owned(),
                ..Default::default()
            })
        }
    }

    #[tokio::test]
    async fn only_ids_lists_and_gets_its_part_alone() {
        let part: HashSet<String> = ["x", "z"].map(str::to_owned).into();
        let src = OnlyIds::new(Arc::new(Three), part, "a part");
        let query = MailQuery::default();
        let listed: Vec<String> = src.list(&query).map(|l| l.unwrap().id).collect().await;
        assert_eq!(listed, ["x", "z"]);
        assert!(src.get("z").await.is_ok());
        assert!(matches!(src.get("y").await, Err(MailError::NotFound(_))));
        assert_eq!(src.describe(), "three (a part: 2 messages)");
    }
}
