//! What the review tools share: finding a user's entries by id, and checking a
//! person's values against the settings before anything is written.

use std::collections::{HashMap, HashSet};

use crate::analyze::duration;
use crate::context::Context;
use crate::domain::{ClientRule, Settings, TimeEntry, UserId, WorkDate, is_utbms_code, text};
use crate::error::{Error, Result};

/// The most entries one call may change: a year of a busy practice.
pub const MAX_IDS: usize = 10_000;
/// The longest description a person may give, in characters.
pub const MAX_DESCRIPTION: usize = 2_000;

/// `ids` without repeats, in the order given, refusing an empty or oversized list.
pub fn unique_ids(ids: &[String], field: &str) -> Result<Vec<String>> {
    let mut seen = HashSet::new();
    let ids: Vec<String> = ids
        .iter()
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty() && seen.insert(id.clone()))
        .collect();
    if ids.is_empty() {
        return Err(Error::invalid(
            field,
            "name at least one entry id (list_time_entries shows them)",
        ));
    }
    if ids.len() > MAX_IDS {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_IDS} entries per call, got {}", ids.len()),
        ));
    }
    Ok(ids)
}

/// The user's entries with these ids, in the same order; any id that is unknown (or
/// another user's) fails the whole call, naming it.
pub async fn entries(ctx: &Context, user: &UserId, ids: &[String]) -> Result<Vec<TimeEntry>> {
    let mut found: HashMap<String, TimeEntry> = ctx
        .store
        .entries_by_id(user, ids)
        .await?
        .into_iter()
        .map(|e| (e.id.clone(), e))
        .collect();
    let missing: Vec<&str> = ids
        .iter()
        .filter(|id| !found.contains_key(*id))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().copied().take(5).collect();
        let more = match missing.len() - shown.len() {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        return Err(Error::NotFound(format!(
            "no time entry with id {}{more}; nothing was changed. list_time_entries shows \
             your entries and their ids",
            shown.join(", ")
        )));
    }
    Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
}

/// Refuses entries a person may no longer change here: exported ones (the billing
/// system has them) and ones merged into another (change the merged entry).
pub fn check_changeable(entries: &[TimeEntry]) -> Result<()> {
    for e in entries {
        if let (Some(batch), Some(at)) = (&e.export_batch, e.exported_at) {
            return Err(Error::invalid(
                "ids",
                format!(
                    "entry {} was exported on {} (batch {batch}); correct it in your billing \
                     system. Nothing was changed",
                    e.id,
                    at.format("%Y-%m-%d")
                ),
            ));
        }
        if let Some(into) = &e.merged_into {
            return Err(Error::invalid(
                "ids",
                format!(
                    "entry {} is merged into {into}; change that entry, or split it first \
                     (split_time_entry). Nothing was changed",
                    e.id
                ),
            ));
        }
    }
    Ok(())
}

/// The configured client a person named.
pub fn client<'s>(settings: &'s Settings, name: &str, field: &str) -> Result<&'s ClientRule> {
    settings.client_named(name).ok_or_else(|| {
        let known: Vec<&str> = settings.clients.iter().map(|c| c.name.as_str()).collect();
        let hint = if known.is_empty() {
            "no clients are configured yet; add one with configure_time_tracking".to_owned()
        } else {
            format!("configured clients: {}", known.join(", "))
        };
        Error::invalid(
            field,
            format!("`{}` is not a configured client; {hint}", name.trim()),
        )
    })
}

/// The id of `client`'s matter a person named (case as configured); empty means none.
pub fn matter(client: &ClientRule, id: &str, field: &str) -> Result<Option<String>> {
    let id = id.trim();
    if id.is_empty() {
        return Ok(None);
    }
    client
        .matter(id)
        .map(|m| Some(m.id.clone()))
        .ok_or_else(|| {
            let known: Vec<&str> = client.matters.iter().map(|m| m.id.as_str()).collect();
            let hint = if known.is_empty() {
                "it has no matters configured".to_owned()
            } else {
                format!("its matters: {}", known.join(", "))
            };
            Error::invalid(
                field,
                format!("`{id}` is not a matter of {}; {hint}", client.name),
            )
        })
}

/// A work date a person gave, within the years billable can bill.
pub fn work_date(date: WorkDate, field: &str) -> Result<WorkDate> {
    date.check_plausible()
        .map_err(|why| Error::invalid(field, why))
}

/// Billed minutes a person gave, within the settings' minimum and cap and a whole
/// number of billing increments (so an invoice's tenths of an hour add up).
pub fn billed_minutes(settings: &Settings, minutes: u32, field: &str) -> Result<u32> {
    let (lo, hi) = (settings.minimum_entry_minutes, settings.max_entry_minutes);
    if minutes < lo.max(1) || minutes > hi {
        return Err(Error::invalid(
            field,
            format!(
                "must be between {} and {hi} minutes (minimum_entry_minutes and \
                 max_entry_minutes), got {minutes}",
                lo.max(1)
            ),
        ));
    }
    let inc = settings.billing_increment_minutes.max(1);
    if !minutes.is_multiple_of(inc) {
        return Err(Error::invalid(
            field,
            format!(
                "must be a multiple of your {inc}-minute billing increment, got {minutes} \
                 (try {})",
                minutes.div_ceil(inc) * inc
            ),
        ));
    }
    Ok(minutes)
}

/// A description a person wrote, kept as written (export quotes what a spreadsheet
/// would read as a formula); only blank text and invisible characters are refused.
pub fn description(text_in: &str, field: &str) -> Result<String> {
    let d = text::typed(text_in, MAX_DESCRIPTION).map_err(|why| Error::invalid(field, why))?;
    if d.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    Ok(d)
}

/// A UTBMS code a person gave (`A104`, `L120`); empty clears it. Activity codes are
/// A-codes, task codes are not.
pub fn code(value: &str, field: &str, activity: bool) -> Result<Option<String>> {
    let c = value.trim().to_ascii_uppercase();
    if c.is_empty() {
        return Ok(None);
    }
    if !is_utbms_code(&c) || c.starts_with('A') != activity {
        let example = if activity { "A104" } else { "L120" };
        return Err(Error::invalid(
            field,
            format!(
                "`{c}` is not a UTBMS {} code such as {example}",
                if activity { "activity" } else { "task" }
            ),
        ));
    }
    Ok(Some(c))
}

/// Recomputes what an entry charges from its minutes (nothing when not billable); with `new_rate`, at its client's
/// current rate (it changed client, or is new) rather than the rate it was made with.
pub fn price(entry: &mut TimeEntry, settings: &Settings, new_rate: bool) {
    if new_rate && let Some(rule) = entry.client.as_deref().and_then(|c| settings.client(c)) {
        entry.hourly_rate = rule.rate(settings);
    }
    entry.amount = if entry.billable {
        duration::amount(entry.billed_minutes, entry.hourly_rate)
    } else {
        // Recorded, never charged: summaries and exports bill no amount for it.
        0.0
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SettingsPatch;

    fn settings() -> Settings {
        let patch: SettingsPatch = serde_json::from_value(serde_json::json!({
            "clients": [{"name": "Acme", "matters": [{"id": "A-1", "name": "Lease"}]}],
        }))
        .unwrap();
        Settings::default().apply(patch).unwrap()
    }

    #[test]
    fn minutes_must_be_whole_increments_within_the_bounds() {
        let s = settings();
        assert_eq!(billed_minutes(&s, 18, "m").unwrap(), 18);
        for bad in [0, 3, 10, 486, 600] {
            let err = billed_minutes(&s, bad, "m").unwrap_err();
            assert!(
                matches!(err, Error::InvalidArgument { ref field, .. } if field == "m"),
                "{bad}"
            );
        }
        assert!(
            billed_minutes(&s, 10, "m")
                .unwrap_err()
                .to_string()
                .contains("try 12")
        );
    }

    #[test]
    fn clients_and_matters_must_be_configured() {
        let s = settings();
        let acme = client(&s, " acme ", "client").unwrap();
        assert_eq!(acme.name, "Acme");
        assert_eq!(
            matter(acme, "a-1", "matter").unwrap().as_deref(),
            Some("A-1")
        );
        assert_eq!(matter(acme, "", "matter").unwrap(), None);
        let err = matter(acme, "B-2", "matter").unwrap_err().to_string();
        assert!(err.contains("its matters: A-1"), "{err}");
        let err = client(&s, "Globex", "client").unwrap_err().to_string();
        assert!(err.contains("configured clients: Acme"), "{err}");
    }

    #[test]
    fn codes_are_utbms_of_the_right_kind() {
        assert_eq!(code(" a104 ", "c", true).unwrap().as_deref(), Some("A104"));
        assert_eq!(code("L120", "c", false).unwrap().as_deref(), Some("L120"));
        assert_eq!(code("", "c", false).unwrap(), None);
        assert!(code("L120", "c", true).is_err());
        assert!(code("A104", "c", false).is_err());
        assert!(code("review", "c", true).is_err());
    }

    #[test]
    fn ids_are_deduplicated_and_bounded() {
        let ids = ["a", "b", "a", " "].map(str::to_owned);
        assert_eq!(unique_ids(&ids, "ids").unwrap(), ["a", "b"]);
        assert!(unique_ids(&[], "ids").is_err());
        let many: Vec<String> = (0..=MAX_IDS).map(|i| i.to_string()).collect();
        assert!(unique_ids(&many, "ids").is_err());
    }
}
