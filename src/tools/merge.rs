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
use crate::domain::{Activity, EntryStatus, Settings, TimeEntry, UserId, WorkDate};
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
    /// The merged entry's work date (YYYY-MM-DD). Needed when the parts are on
    /// different days (an invoice line has one date); null keeps the parts' one day.
    #[serde(default)]
    pub work_date: Option<WorkDate>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MergeOutput {
    /// The new entry: the parts' minutes as reviewed, summed and rounded once, never
    /// more than the parts billed.
    pub entry: TimeEntry,
    /// Ids of the entries now merged into it.
    pub merged: Vec<String>,
}

/// `merge_time_entries` in the tool table.
pub struct MergeTimeEntries;

impl Tool for MergeTimeEntries {
    const NAME: &'static str = "merge_time_entries";
    const DESCRIPTION: &'static str = "Merge two or more time entries of one client and matter into one whose minutes are their sum, rounded once (six 1-minute emails bill 6 minutes, not 36); an entry whose billed minutes a person edited counts at its edited value, and the merge never bills more than its parts. Parts on different days need work_date. split_time_entry undoes it.";
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
    let work_date = args
        .work_date
        .map(|d| review::work_date(d, "work_date"))
        .transpose()?;
    let settings = ctx.store.settings(user).await?;
    let parts = review::entries(ctx, user, &ids).await?;
    review::check_changeable(&parts)?;
    let entry = merged(&parts, description, work_date, &settings)?;
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
    work_date: Option<WorkDate>,
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
    let work_date = one_day(parts, work_date)?;
    let minutes: Vec<f64> = parts
        .iter()
        .map(|p| reviewed_minutes(p, settings))
        .collect();
    // The largest part decides a code the parts do not share: an e-billing line
    // needs one, and it describes most of the time.
    let largest = parts
        .iter()
        .zip(&minutes)
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(first, |(p, _)| p);
    let same = |f: fn(&TimeEntry) -> Option<&str>| -> Option<String> {
        let v = f(first);
        parts
            .iter()
            .all(|p| f(p) == v)
            .then(|| v.map(str::to_owned))
            .flatten()
    };
    let shared_or_largest = |f: fn(&TimeEntry) -> Option<&str>| -> Option<String> {
        let v = f(first);
        if parts.iter().all(|p| f(p) == v) {
            v.map(str::to_owned)
        } else {
            f(largest).map(str::to_owned)
        }
    };
    let raw = (minutes.iter().sum::<f64>() * 10.0).round() / 10.0;
    // Rounded once, and never more than the parts billed as they stand: merging is
    // for billing less rounding, never more time than a person approved.
    let ceiling: u32 = parts.iter().map(|p| p.billed_minutes).sum();
    let billed = duration::billed_minutes(raw, settings).min(ceiling);
    let description = description.unwrap_or_else(|| {
        let mut seen: Vec<&str> = Vec::new();
        for p in parts {
            if !seen.contains(&p.description.as_str()) {
                seen.push(&p.description);
            }
        }
        crate::domain::text::shortened(&seen.join("; "), review::MAX_DESCRIPTION)
    });
    let status = if parts.iter().all(|p| p.status == first.status) {
        first.status
    } else if parts.iter().any(|p| p.status == EntryStatus::NeedsReview) {
        EntryStatus::NeedsReview
    } else {
        // Parts decided differently: the merged total is a new decision to make.
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
        work_date,
        duration_minutes: raw,
        billed_minutes: billed,
        hourly_rate: first.hourly_rate,
        amount: if first.billable {
            duration::amount(billed, first.hourly_rate)
        } else {
            0.0
        },
        currency: first.currency.clone(),
        billable: first.billable,
        confidence: parts.iter().map(|p| p.confidence).fold(1.0, f64::min),
        status,
        analyzer: MERGED.to_owned(),
        created_at: now,
        event_uid: None,
        task_code: shared_or_largest(|e| e.task_code.as_deref()),
        activity_code: shared_or_largest(|e| e.activity_code.as_deref()),
        reviewed_at: Some(now),
        export_batch: None,
        exported_at: None,
        merged_into: None,
    })
}

/// The minutes a part contributes: its raw minutes, unless a person set its billed
/// minutes to something its raw minutes do not round to; then the person's number.
fn reviewed_minutes(p: &TimeEntry, settings: &Settings) -> f64 {
    let edited = p.reviewed_at.is_some()
        && p.billed_minutes != duration::billed_minutes(p.duration_minutes, settings);
    if edited {
        f64::from(p.billed_minutes)
    } else {
        p.duration_minutes
    }
}

/// The merged entry's one day: the parts' day, or the one given. Moving work to
/// another day is a person's explicit choice, never a side effect of a merge.
fn one_day(parts: &[TimeEntry], given: Option<WorkDate>) -> Result<WorkDate> {
    let mut days: Vec<WorkDate> = parts.iter().map(|p| p.work_date).collect();
    days.sort();
    days.dedup();
    match (given, days.as_slice()) {
        (Some(day), _) => Ok(day),
        (None, [day]) => Ok(*day),
        (None, _) => Err(Error::invalid(
            "work_date",
            format!(
                "the entries are on different days ({}); give the day the merged entry is \
                 billed on. Nothing was changed",
                days.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
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
        let m = merged(&parts, None, None, &Settings::default()).unwrap();
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
    fn a_merge_rounds_once_under_the_users_increment_on_the_day_given() {
        let patch: SettingsPatch =
            serde_json::from_value(serde_json::json!({"billing_increment_minutes": 15})).unwrap();
        let s = Settings::default().apply(patch).unwrap();
        let mut parts = [part("a", 4.0, "2026-11-03"), part("b", 13.5, "2026-11-02")];
        for p in &mut parts {
            p.billed_minutes = 15;
        }
        let err = merged(&parts, None, None, &s).unwrap_err().to_string();
        assert!(
            err.contains("different days (2026-11-02, 2026-11-03)"),
            "{err}"
        );
        let day = WorkDate::parse("2026-11-03").unwrap();
        let m = merged(&parts, Some("Lease review".to_owned()), Some(day), &s).unwrap();
        assert_eq!((m.duration_minutes, m.billed_minutes), (17.5, 30));
        assert_eq!(m.work_date.to_string(), "2026-11-03");
        assert_eq!(m.description, "Lease review");
    }

    #[test]
    fn an_edited_part_counts_at_its_edited_minutes_and_the_merge_never_bills_more() {
        // The 48-minute call a person cut to 18, and a 60-minute meeting.
        let mut call = part("call", 48.0, "2026-11-19");
        call.billed_minutes = 18;
        call.status = EntryStatus::Approved;
        call.reviewed_at = Some(Utc::now());
        call.activity_code = Some("A106".to_owned());
        let mut meeting = part("meeting", 60.0, "2026-11-19");
        meeting.billed_minutes = 60;
        meeting.activity_code = Some("A106".to_owned());
        meeting.task_code = Some("L120".to_owned());
        call.task_code = Some("L120".to_owned());
        let m = merged(&[call, meeting], None, None, &Settings::default()).unwrap();
        assert_eq!((m.duration_minutes, m.billed_minutes), (78.0, 78));
        assert_eq!(m.work_date.to_string(), "2026-11-19");
        assert_eq!(m.status, EntryStatus::Approved);
        assert_eq!(
            (m.activity_code.as_deref(), m.task_code.as_deref()),
            (Some("A106"), Some("L120"))
        );
        // Parts billed under an older rounding (down): rounding their sum up now
        // would bill more than they did.
        let (mut a, mut b) = (part("a", 7.0, "2026-11-02"), part("b", 7.0, "2026-11-02"));
        a.billed_minutes = 6;
        b.billed_minutes = 6;
        let m = merged(&[a, b], None, None, &Settings::default()).unwrap();
        assert_eq!(m.billed_minutes, 12);
    }

    #[test]
    fn entries_of_different_matters_or_billability_are_not_merged() {
        let mut other = part("b", 1.0, "2026-11-02");
        other.matter = Some("A-2".to_owned());
        let err = merged(
            &[part("a", 1.0, "2026-11-02"), other],
            None,
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
            None,
            &Settings::default(),
        )
        .unwrap();
        assert_eq!(m.status, EntryStatus::Suggested);
    }
}
