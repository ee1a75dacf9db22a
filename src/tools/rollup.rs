//! The `rollup` setting: after a scan, the unreviewed suggestions of one thread (or one
//! matter) and day become one entry whose raw minutes are their sum, rounded once.
//!
//! Six one-minute emails on a thread bill 6 minutes, not 36. It is the merge of
//! `merge.rs` done by the scan, with two differences: the rolled-up entry is still a
//! suggestion (no person has reviewed it), and a later scan that finds more mail of the
//! same thread and day rolls it up again with the new entries instead of leaving two.

use std::collections::BTreeMap;

use super::merge;
use crate::context::Context;
use crate::domain::{EntryStatus, Rollup, Settings, TimeEntry, UserId, WorkDate};
use crate::error::Result;
use crate::store::EntryFilter;

/// What `analyzer` says of an entry a scan rolled up.
pub const ROLLUP: &str = "rollup";

/// Rolls up the suggestions dated `from`..=`to`; returns how many entries were folded
/// into others (0 when the setting is `none`).
pub async fn roll_up(
    ctx: &Context,
    user: &UserId,
    settings: &Settings,
    from: WorkDate,
    to: WorkDate,
) -> Result<u64> {
    if settings.rollup == Rollup::None {
        return Ok(0);
    }
    let mut candidates = Vec::new();
    for status in [EntryStatus::Suggested, EntryStatus::NeedsReview] {
        let filter = EntryFilter {
            from: Some(from),
            to: Some(to),
            status: Some(status),
            exported: Some(false),
            ..EntryFilter::default()
        };
        candidates.extend(ctx.store.list_entries(user, &filter).await?.0);
    }
    let mut groups: BTreeMap<Key, Vec<TimeEntry>> = BTreeMap::new();
    for e in candidates {
        if let Some(key) = key(&e, settings.rollup) {
            groups.entry(key).or_default().push(e);
        }
    }
    let mut folded = 0;
    for members in groups.into_values() {
        // An earlier rollup of the group is unrolled and rolled again with the rest.
        let (previous, fresh): (Vec<TimeEntry>, Vec<TimeEntry>) =
            members.into_iter().partition(|e| e.analyzer == ROLLUP);
        if fresh.is_empty() || previous.len() + fresh.len() < 2 {
            continue;
        }
        let mut parts = fresh;
        let mut deletes = Vec::new();
        for p in previous {
            parts.extend(ctx.store.merged_parts(user, &p.id).await?);
            deletes.push(p.id);
        }
        let Ok(mut entry) = merge::merged(&parts, None, None, settings) else {
            continue;
        };
        entry.analyzer = ROLLUP.to_owned();
        entry.reviewed_at = None;
        entry.status = if parts.iter().any(|p| p.status == EntryStatus::NeedsReview) {
            EntryStatus::NeedsReview
        } else {
            EntryStatus::Suggested
        };
        folded += parts.len() as u64 - 1;
        let mut upserts: Vec<TimeEntry> = parts
            .into_iter()
            .map(|p| TimeEntry {
                merged_into: Some(entry.id.clone()),
                ..p
            })
            .collect();
        upserts.push(entry);
        ctx.store.write_reviewed(user, &upserts, &deletes).await?;
    }
    Ok(folded)
}

/// (client, matter, thread or empty, day, billable).
type Key = (String, Option<String>, String, WorkDate, bool);

/// The group an entry rolls up into, if any. Only a scan's own, untouched
/// suggestions roll up: not a person's entry, nor a meeting (its invitation may still
/// be updated or cancelled), nor an entry with no client.
fn key(e: &TimeEntry, rollup: Rollup) -> Option<Key> {
    if e.is_locked() || e.event_uid.is_some() || e.analyzer == super::add::MANUAL {
        return None;
    }
    let client = e.client.clone()?;
    let thread = match rollup {
        Rollup::None => return None,
        Rollup::ThreadDay => e.thread_id.clone()?,
        Rollup::MatterDay => String::new(),
    };
    Some((client, e.matter.clone(), thread, e.work_date, e.billable))
}
