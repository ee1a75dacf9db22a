//! Undo of the page's last action: the tool calls that put back what it changed.
//! The page carries them in a hidden field, so undo works on any instance; they go
//! through the tools as the signed-in user like any action, so a tampered field can do
//! nothing the user could not do anyway.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::domain::TimeEntry;
use crate::tools::{merge, update};

/// The tools an undo may call.
const UNDOABLE: [&str; 3] = [
    "update_time_entries",
    "merge_time_entries",
    "split_time_entry",
];
/// Most calls one undo may make.
const MAX_STEPS: usize = 100;

/// One tool call of an undo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub tool: String,
    pub args: Value,
}

/// The field the page carries.
pub fn encode(steps: &[Step]) -> Option<String> {
    (!steps.is_empty()).then(|| serde_json::to_string(steps).unwrap_or_default())
}

/// The steps of a field the page sent back; anything but undoable tool calls is refused.
pub fn decode(field: &str) -> Result<Vec<Step>, String> {
    let steps: Vec<Step> = serde_json::from_str(field).map_err(|_| {
        "there is nothing to undo (the page's undo field is not valid); reload the page".to_owned()
    })?;
    if steps.is_empty() || steps.len() > MAX_STEPS {
        return Err("there is nothing to undo".to_owned());
    }
    if let Some(s) = steps.iter().find(|s| !UNDOABLE.contains(&s.tool.as_str())) {
        return Err(format!(
            "`{}` cannot be undone from the page",
            s.tool.chars().take(60).collect::<String>()
        ));
    }
    Ok(steps)
}

/// Puts back what `changes` will change on `before` (the entries as they were): one
/// update per distinct set of old values.
pub fn of_update(before: &[TimeEntry], changes: &update::Changes) -> Vec<Step> {
    let mut groups: Vec<(Value, Vec<String>)> = Vec::new();
    for e in before {
        let mut old = Map::new();
        old.insert("status".into(), json!(e.status));
        if changes.client.is_some()
            && let Some(client) = &e.client
        {
            old.insert("client".into(), json!(client));
        }
        if changes.client.is_some() || changes.matter.is_some() {
            old.insert("matter".into(), json!(e.matter.clone().unwrap_or_default()));
        }
        if changes.description.is_some() {
            old.insert("description".into(), json!(e.description));
        }
        if changes.billed_minutes.is_some() {
            old.insert("billed_minutes".into(), json!(e.billed_minutes));
        }
        if changes.work_date.is_some() {
            old.insert("work_date".into(), json!(e.work_date));
        }
        if changes.billable.is_some() {
            old.insert("billable".into(), json!(e.billable));
        }
        if changes.task_code.is_some() {
            old.insert(
                "task_code".into(),
                json!(e.task_code.clone().unwrap_or_default()),
            );
        }
        if changes.activity_code.is_some() {
            old.insert(
                "activity_code".into(),
                json!(e.activity_code.clone().unwrap_or_default()),
            );
        }
        let old = Value::Object(old);
        match groups.iter_mut().find(|(v, _)| *v == old) {
            Some((_, ids)) => ids.push(e.id.clone()),
            None => groups.push((old, vec![e.id.clone()])),
        }
    }
    groups
        .into_iter()
        .map(|(changes, ids)| Step {
            tool: "update_time_entries".into(),
            args: json!({ "ids": ids, "changes": changes }),
        })
        .collect()
}

/// Undoes a merge: split the merged entry.
pub fn of_merge(merged: &merge::MergeOutput) -> Vec<Step> {
    vec![Step {
        tool: "split_time_entry".into(),
        args: json!({ "id": merged.entry.id }),
    }]
}

/// Undoes a split: merge the parts again, with the merged entry's description.
pub fn of_split(merged: &TimeEntry, parts: &[TimeEntry]) -> Vec<Step> {
    vec![Step {
        tool: "merge_time_entries".into(),
        args: json!({
            "ids": parts.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
            "description": merged.description,
        }),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EntryStatus;
    use crate::export::fixtures::entry;

    #[test]
    fn an_approval_is_undone_by_restoring_each_old_status() {
        let mut a = entry("a", 30, 300.0);
        a.status = EntryStatus::NeedsReview;
        let mut b = entry("b", 30, 300.0);
        b.status = EntryStatus::Suggested;
        let mut c = b.clone();
        c.id = "c".into();
        let approve = update::Changes {
            status: Some(EntryStatus::Approved),
            ..Default::default()
        };
        let steps = of_update(&[a, b, c], &approve);
        assert_eq!(steps.len(), 2);
        assert_eq!(
            steps[0].args,
            json!({"ids": ["a"], "changes": {"status": "needs_review"}})
        );
        assert_eq!(
            steps[1].args,
            json!({"ids": ["b", "c"], "changes": {"status": "suggested"}})
        );
        let round = decode(&encode(&steps).unwrap()).unwrap();
        assert_eq!(round, steps);
    }

    #[test]
    fn an_edit_restores_only_the_fields_it_changed() {
        let e = entry("a", 30, 300.0);
        let edit = update::Changes {
            billed_minutes: Some(60),
            description: Some("new".into()),
            ..Default::default()
        };
        let steps = of_update(&[e], &edit);
        assert_eq!(
            steps[0].args["changes"],
            json!({"status": "approved", "description": "Reply to counsel on the lease", "billed_minutes": 30})
        );
    }

    #[test]
    fn only_the_review_tools_can_be_replayed() {
        let scan = r#"[{"tool": "scan_billable_time", "args": {}}]"#;
        assert!(decode(scan).unwrap_err().contains("cannot be undone"));
        assert!(decode("not json").is_err());
        assert!(decode("[]").is_err());
    }
}
