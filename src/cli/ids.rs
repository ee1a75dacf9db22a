//! Entry ids as a person types them: a whole id, the short id the tables show (its
//! last [`SHORT`] characters), or any other start or end of one that names exactly
//! one of the user's entries.
//!
//! Tables show an id's end, not its start: ids are UUID v7, which begin with their
//! creation time, so the entries of one scan share their first 13 characters and only
//! the last ones tell them apart.

use crate::context::Context;
use crate::domain::UserId;
use crate::error::Error;
use crate::tools::{self, NoProgress, list};

/// How many of an id's last characters the tables show.
pub const SHORT: usize = 8;

/// Shorter fragments are taken as whole ids: four characters of a typo could
/// otherwise name some other entry.
const MIN_FRAGMENT: usize = 4;

/// The end of `id` the tables show.
pub fn short(id: &str) -> &str {
    let start = id.char_indices().rev().nth(SHORT - 1).map_or(0, |(i, _)| i);
    &id[start..]
}

/// The whole ids `typed` name, in order. Whole UUIDs are passed on without a lookup;
/// a fragment that names no entry is passed on as typed, so the tool's own "no time
/// entry with id …" names it and nothing is changed.
pub async fn resolve(ctx: &Context, user: &UserId, typed: &[String]) -> Result<Vec<String>, Error> {
    let whole = |t: &str| uuid::Uuid::try_parse(t.trim()).is_ok();
    if typed.iter().all(|t| whole(t)) {
        // Stored ids are lowercase, as UUIDs print.
        return Ok(typed
            .iter()
            .map(|t| t.trim().to_ascii_lowercase())
            .collect());
    }
    let all = all_ids(ctx, user).await?;
    typed.iter().map(|t| pick(&all, t)).collect()
}

/// The one id of `all` that `typed` names (see the module doc).
fn pick(all: &[String], typed: &str) -> Result<String, Error> {
    let t = typed.trim().to_ascii_lowercase();
    if t.chars().count() < MIN_FRAGMENT || all.contains(&t) {
        return Ok(t);
    }
    let found: Vec<&String> = all
        .iter()
        .filter(|id| id.starts_with(&t) || id.ends_with(&t))
        .collect();
    match found.as_slice() {
        [] => Ok(t),
        [one] => Ok((*one).clone()),
        many => {
            let shown: Vec<&str> = many.iter().take(5).map(|s| s.as_str()).collect();
            let more = match many.len() - shown.len() {
                0 => String::new(),
                n => format!(" and {n} more"),
            };
            Err(Error::invalid(
                "ids",
                format!(
                    "`{}` matches {} entries ({}{more}); give more of the id. Nothing was changed",
                    typed.trim(),
                    many.len(),
                    shown.join(", ")
                ),
            ))
        }
    }
}

/// Every id the user's entries have, through `list_time_entries` page by page.
async fn all_ids(ctx: &Context, user: &UserId) -> Result<Vec<String>, Error> {
    const PAGE: u32 = 500;
    let mut ids = Vec::new();
    loop {
        let args = list::Args {
            limit: Some(PAGE),
            offset: Some(ids.len() as u32),
            ..Default::default()
        };
        let page = tools::run::<list::ListTimeEntries>(ctx, user, args, &NoProgress).await?;
        let n = page.entries.len();
        ids.extend(page.entries.into_iter().map(|e| e.id));
        if n == 0 || ids.len() as u64 >= page.total {
            return Ok(ids);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<String> {
        [
            "0190a5b2-3c4d-7001-8000-00001a2b3c4d",
            "0190a5b2-3c4d-7002-8000-00009f8e7d6c",
            "0190a5b2-3c4d-7003-8000-0000ffff3c4d",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    #[test]
    fn the_short_id_is_the_end_a_table_shows() {
        assert_eq!(short("0190a5b2-3c4d-7001-8000-00001a2b3c4d"), "1a2b3c4d");
        assert_eq!(short("abc"), "abc");
    }

    #[test]
    fn a_unique_start_or_end_names_its_entry() {
        let all = ids();
        assert_eq!(pick(&all, "1A2B3C4D").unwrap(), all[0]);
        assert_eq!(pick(&all, " 9f8e7d6c ").unwrap(), all[1]);
        assert_eq!(pick(&all, "0190a5b2-3c4d-7003").unwrap(), all[2]);
        assert_eq!(pick(&all, &all[1]).unwrap(), all[1]);
    }

    #[test]
    fn an_ambiguous_fragment_names_every_match_and_an_unknown_one_is_passed_on() {
        let all = ids();
        let err = pick(&all, "3c4d").unwrap_err().to_string();
        assert!(err.contains(&all[0]) && err.contains(&all[2]), "{err}");
        assert!(!err.contains(&all[1]), "{err}");
        assert!(
            pick(&all, "0190a5b2")
                .unwrap_err()
                .to_string()
                .contains("3 entries")
        );
        assert_eq!(pick(&all, "deadbeef").unwrap(), "deadbeef");
        assert_eq!(pick(&all, "3c4").unwrap(), "3c4", "too short to look up");
    }
}
