//! `merge_time_entries` and `split_time_entry`: several small entries of one matter
//! billed as one, rounded once, and back.
//!
//! Six one-minute emails rounded one by one bill 36 minutes for 6 minutes of work;
//! merged, their raw minutes are summed and rounded once. The parts stay stored,
//! marked `merged_into`, hidden from lists, totals and exports, so a split restores
//! them exactly and a rescan never brings them back.

use chrono::Utc;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::review;
use super::{Hints, Progress, Tool};
use crate::analyze::duration;
use crate::context::Context;
use crate::domain::{Activity, EntryStatus, Settings, TimeEntry, UserId};
use crate::error::{Error, Result};

/// What `analyzer` says of a merged entry.
pub const MERGED: &str = "merged";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeArgs {
    /// Ids of two or more entries of one client and matter.
    pub ids: Vec<String>,
    /// The merged entry's description; null joins the parts' descriptions.
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MergeOutput {
    /// The new entry: the parts' raw minutes summed, rounded once.
    pub entry: TimeEntry,
    /// Ids of the entries now merged into it.
    pub merged: Vec<String>,
}

/// `merge_time_entries` in the tool table.
pub struct MergeTimeEntries;

impl Tool for MergeTimeEntries {
    const NAME: &'static str = "merge_time_entries";
    const DESCRIPTION: &'static str = "Merge two or more time entries of one client and matter into one whose raw minutes are their sum, rounded once (six 1-minute emails bill 6 minutes, not 36). split_time_entry undoes it.";
    const HINTS: Hints = Hints {
        read_only: false,
        destructive: false,
        idempotent: false,
        open_world: false,
    };
    type Args = MergeArgs;
    type Output = MergeOutput;

    fn run<'a>(
        ctx: &'a Context,
        user: &'a UserId,
        args: MergeArgs,
        _: &'a dyn Progress,
    ) -> impl Future<Output = Result<MergeOutput>> + Send + 'a {
        merge(ctx, user, args)
    }
}

pub async fn merge(ctx: &Context, user: &UserId, args: MergeArgs) -> Result<MergeOutput> {
    let ids = review::unique_ids(&args.ids, "ids")?;
    if ids.len() < 2 {
        return Err(Error::invalid("ids", "name at least two entries to merge"));
    }
    let description = args
        .description
        .as_deref()
        .map(|d| review::description(d, "description"))
        .transpose()?;
    let settings = ctx.store.settings(user).await?;
    let parts = review::entries(ctx, user, &ids).await?;
    review::check_changeable(&parts)?;
    let entry = merged(&parts, description, &settings)?;
    let now = entry.reviewed_at;
    let mut upserts: Vec<TimeEntry> = parts
        .into_iter()
        .map(|p| TimeEntry {
            merged_into: Some(entry.id.clone()),
            reviewed_at: now,
            ..p
        })
        .collect();
    upserts.push(entry.clone());
    ctx.store.write_reviewed(user, &upserts, &[]).await?;
    Ok(MergeOutput { entry, merged: ids })
}

/// The one entry `parts` become. They must share client, matter and billability,
/// so an invoice line never mixes matters or charges what was not billable.
pub fn merged(
    parts: &[TimeEntry],
    description: Option<String>,
    settings: &Settings,
) -> Result<TimeEntry> {
    let first = parts
        .first()
        .ok_or_else(|| Error::invalid("ids", "name at least two entries to merge"))?;
    let Some(client) = first.client.clone() else {
        return Err(Error::invalid(
            "ids",
            format!(
                "entry {} has no client; set one first (update_time_entries)",
                first.id
            ),
        ));
    };
    for p in parts {
        let differs = |what: &str, a: Option<&str>, b: Option<&str>| {
            Error::invalid(
                "ids",
                format!(
                    "entries {} and {} are for different {what}s ({} and {}); merge only \
                     entries of one client and matter. Nothing was changed",
                    first.id,
                    p.id,
                    a.unwrap_or("none"),
                    b.unwrap_or("none")
                ),
            )
        };
        if p.client != first.client {
            return Err(differs(
                "client",
                first.client.as_deref(),
                p.client.as_deref(),
            ));
        }
        if p.matter != first.matter {
            return Err(differs(
                "matter",
                first.matter.as_deref(),
                p.matter.as_deref(),
            ));
        }
        if p.billable != first.billable {
            return Err(Error::invalid(
                "ids",
                format!(
                    "entry {} is billable and {} is not; merge billable and non-billable \
                     work separately. Nothing was changed",
                    if first.billable { &first.id } else { &p.id },
                    if first.billable { &p.id } else { &first.id },
                ),
            ));
        }
    }
    let same = |f: fn(&TimeEntry) -> Option<&str>| -> Option<String> {
        let v = f(first);
        parts
            .iter()
            .all(|p| f(p) == v)
            .then(|| v.map(str::to_owned))
            .flatten()
    };
    let raw: f64 = parts.iter().map(|p| p.duration_minutes).sum();
    let raw = (raw * 10.0).round() / 10.0;
    let billed = duration::billed_minutes(raw, settings);
    let description = description.unwrap_or_else(|| {
        let mut seen: Vec<&str> = Vec::new();
        for p in parts {
            if !seen.contains(&p.description.as_str()) {
                seen.push(&p.description);
            }
        }
        crate::domain::text::plain(&seen.join("; "), review::MAX_DESCRIPTION)
    });
    let status = if parts.iter().all(|p| p.status == EntryStatus::Approved) {
        EntryStatus::Approved
    } else {
        EntryStatus::Suggested
    };
    let activity = if parts.iter().all(|p| p.activity == first.activity) {
        first.activity
    } else {
        Activity::Other
    };
    let now = Utc::now();
    let id = uuid::Uuid::now_v7().to_string();
    Ok(TimeEntry {
        message_id: format!("merge:{id}"),
        id,
        thread_id: same(|e| e.thread_id.as_deref()),
        client: Some(client),
        matter: first.matter.clone(),
        activity,
        description,
        // The day the merged work began: an invoice line has one date.
        work_date: parts
            .iter()
            .map(|p| p.work_date)
            .min()
            .unwrap_or(first.work_date),
        duration_minutes: raw,
        billed_minutes: billed,
        hourly_rate: first.hourly_rate,
        amount: duration::amount(billed, first.hourly_rate),
        currency: first.currency.clone(),
        billable: first.billable,
        confidence: parts.iter().map(|p| p.confidence).fold(1.0, f64::min),
        status,
        analyzer: MERGED.to_owned(),
        created_at: now,
        event_uid: None,
        task_code: same(|e| e.task_code.as_deref()),
        activity_code: same(|e| e.activity_code.as_deref()),
        reviewed_at: Some(now),
        export_batch: None,
        exported_at: None,
        merged_into: None,
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitArgs {
    /// The id of an entry made by merge_time_entries.
    pub id: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SplitOutput {
    /// The merged entry's id, now removed.
    pub removed: String,
    /// The entries it was made of, as they were.
    pub entries: Vec<TimeEntry>,
}

/// `split_time_entry` in the tool table.
pub struct SplitTimeEntry;

impl Tool for SplitTimeEntry {
    const NAME: &'static str = "split_time_entry";
    const DESCRIPTION: &'static str = "Undo a merge: remove a merged time entry and restore the entries it was made of, as they were.";
    const HINTS: Hints = Hints {
        read_only: false,
        destructive: true,
        idempotent: false,
        open_world: false,
    };
    type Args = SplitArgs;
    type Output = SplitOutput;

    fn run<'a>(
        ctx: &'a Context,
        user: &'a UserId,
        args: SplitArgs,
        _: &'a dyn Progress,
    ) -> impl Future<Output = Result<SplitOutput>> + Send + 'a {
        split(ctx, user, args)
    }
}

pub async fn split(ctx: &Context, user: &UserId, args: SplitArgs) -> Result<SplitOutput> {
    let id = args.id.trim().to_owned();
    let merged = review::entries(ctx, user, std::slice::from_ref(&id)).await?;
    review::check_changeable(&merged)?;
    let parts = ctx.store.merged_parts(user, &id).await?;
    if parts.is_empty() {
        return Err(Error::invalid(
            "id",
            format!("entry {id} is not a merged entry, so there is nothing to split"),
        ));
    }
    // A split is a person's decision: parts a scan rolled up (never reviewed) are
    // marked reviewed now, so the next scan does not roll them up again.
    let now = Utc::now();
    let restored: Vec<TimeEntry> = parts
        .into_iter()
        .map(|p| TimeEntry {
            merged_into: None,
            reviewed_at: p.reviewed_at.or(Some(now)),
            ..p
        })
        .collect();
    ctx.store
        .write_reviewed(user, &restored, std::slice::from_ref(&id))
        .await?;
    Ok(SplitOutput {
        removed: id,
        entries: restored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{SettingsPatch, WorkDate};

    fn part(id: &str, raw: f64, date: &str) -> TimeEntry {
        TimeEntry {
            id: id.to_owned(),
            message_id: format!("m-{id}"),
            thread_id: Some("t1".to_owned()),
            client: Some("Acme".to_owned()),
            matter: Some("A-1".to_owned()),
            activity: Activity::EmailSent,
            description: format!("Email {id}"),
            work_date: WorkDate::parse(date).unwrap(),
            duration_minutes: raw,
            billed_minutes: 6,
            hourly_rate: 300.0,
            amount: 30.0,
            currency: "USD".to_owned(),
            billable: true,
            confidence: 0.9,
            status: EntryStatus::Approved,
            analyzer: "rules".to_owned(),
            created_at: Utc::now(),
            event_uid: None,
            task_code: None,
            activity_code: Some("A106".to_owned()),
            reviewed_at: None,
            export_batch: None,
            exported_at: None,
            merged_into: None,
        }
    }

    #[test]
    fn six_one_minute_emails_bill_six_minutes_not_thirty_six() {
        let parts: Vec<TimeEntry> = (0..6)
            .map(|i| part(&i.to_string(), 1.0, "2026-11-02"))
            .collect();
        let m = merged(&parts, None, &Settings::default()).unwrap();
        assert_eq!(
            (m.duration_minutes, m.billed_minutes, m.amount),
            (6.0, 6, 30.0)
        );
        assert_eq!(m.status, EntryStatus::Approved);
        assert_eq!(m.thread_id.as_deref(), Some("t1"));
        assert_eq!(m.activity_code.as_deref(), Some("A106"));
        assert_eq!(
            m.description,
            "Email 0; Email 1; Email 2; Email 3; Email 4; Email 5"
        );
    }

    #[test]
    fn a_merge_rounds_once_under_the_users_increment_and_takes_the_first_day() {
        let patch: SettingsPatch =
            serde_json::from_value(serde_json::json!({"billing_increment_minutes": 15})).unwrap();
        let s = Settings::default().apply(patch).unwrap();
        let parts = [part("a", 4.0, "2026-11-03"), part("b", 13.5, "2026-11-02")];
        let m = merged(&parts, Some("Lease review".to_owned()), &s).unwrap();
        assert_eq!((m.duration_minutes, m.billed_minutes), (17.5, 30));
        assert_eq!(m.work_date.to_string(), "2026-11-02");
        assert_eq!(m.description, "Lease review");
    }

    #[test]
    fn entries_of_different_matters_or_billability_are_not_merged() {
        let mut other = part("b", 1.0, "2026-11-02");
        other.matter = Some("A-2".to_owned());
        let err = merged(
            &[part("a", 1.0, "2026-11-02"), other],
            None,
            &Settings::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("different matters (A-1 and A-2)"), "{err}");
        let mut free = part("b", 1.0, "2026-11-02");
        free.billable = false;
        assert!(
            merged(
                &[part("a", 1.0, "2026-11-02"), free],
                None,
                &Settings::default()
            )
            .is_err()
        );
        let mut suggested = part("b", 1.0, "2026-11-02");
        suggested.status = EntryStatus::Suggested;
        let m = merged(
            &[part("a", 1.0, "2026-11-02"), suggested],
            None,
            &Settings::default(),
        )
        .unwrap();
        assert_eq!(m.status, EntryStatus::Suggested);
    }
}
