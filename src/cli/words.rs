//! Errors in the command line's words. The tools speak their API (`changes.billed_minutes`,
//! `configure_time_tracking`), which is right over HTTP and MCP; a person at a terminal
//! needs the command and flag that fix it (`--minutes`, `billable configure`). Only the
//! `tool` command, which takes the API's JSON, keeps the API's words.

use crate::error::Error;

/// A tool argument's path and the flag that sets it, longest paths first so that
/// `changes.client` is replaced before `client`.
const FLAGS: &[(&str, &str)] = &[
    ("changes.billed_minutes", "--minutes"),
    ("changes.work_date", "--date"),
    ("changes.description", "--description"),
    ("changes.client", "--client"),
    ("changes.matter", "--matter"),
    ("changes.task_code", "--task-code"),
    ("changes.activity_code", "--activity-code"),
    ("changes.status", "--status"),
    ("changes.billable", "--billable"),
    ("invoice.number", "--invoice"),
    ("invoice.date", "--invoice-date"),
    ("invoice.description", "--invoice-description"),
    ("include_exported", "--include-exported"),
    ("billed_minutes", "--minutes"),
    ("work_date", "--date"),
    ("max_messages", "--max"),
    ("client", "--client"),
    ("matter", "--matter"),
    ("description", "--description"),
    ("from", "--from"),
    ("to", "--to"),
    ("limit", "--limit"),
    ("offset", "--offset"),
    ("format", "--format"),
];

/// Tool names and API phrases, and what a person types instead.
const PHRASES: &[(&str, &str)] = &[
    (
        "add one with configure_time_tracking",
        "add one with `billable configure --add clients='{\"name\":…}'`",
    ),
    (
        "with configure_time_tracking",
        "with `billable configure --set KEY=VALUE`",
    ),
    ("configure_time_tracking", "`billable configure`"),
    ("update_time_entries", "`billable edit`"),
    ("list_time_entries", "`billable entries`"),
    ("split_time_entry", "`billable split`"),
    ("merge_time_entries", "`billable merge`"),
    ("add_time_entry", "`billable add`"),
    ("export_time_entries", "`billable export`"),
    ("scan_billable_time", "`billable scan`"),
    ("give the export an invoice number", "give --invoice NUMBER"),
    (
        "set the entry's task_code",
        "set it with `billable edit ID --task-code CODE`",
    ),
    (
        "set the entry's matter",
        "set it with `billable edit ID --matter ID`",
    ),
];

/// The message the CLI prints for `e`.
pub fn message(e: &Error) -> String {
    match e {
        // The field is named by the flag (when there is one), the message in CLI words.
        Error::InvalidArgument { field, message } => {
            let flag = flag(field);
            let message = phrase(message);
            match flag {
                Some(flag) => format!("{flag}: {message}"),
                // Ids, settings and the like: the message names what is wrong.
                None if is_arg_free(field) => message,
                None => format!("invalid argument `{field}`: {message}"),
            }
        }
        other => phrase(&other.to_string()),
    }
}

fn flag(field: &str) -> Option<String> {
    // A command's own checks already name the flag.
    if field.starts_with("--") {
        return Some(field.to_owned());
    }
    if let Some(key) = field.strip_prefix("settings.") {
        return Some(format!("--set {key}"));
    }
    FLAGS
        .iter()
        .find(|(path, _)| *path == field)
        .map(|f| f.1.to_owned())
}

/// Fields whose messages already say what is wrong and what to do.
fn is_arg_free(field: &str) -> bool {
    matches!(field, "ids" | "id")
}

/// `message` with API words replaced by the CLI's.
fn phrase(message: &str) -> String {
    let mut out = message.to_owned();
    for (api, cli) in PHRASES {
        out = out.replace(api, cli);
    }
    for (path, flag) in FLAGS.iter().filter(|(p, _)| p.contains('.')) {
        out = out.replace(path, flag);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_commands_and_flags_not_tools_and_paths() {
        let e = Error::invalid(
            "changes.billed_minutes",
            "must be a multiple of your 6-minute billing increment, got 10 (try 12)",
        );
        assert_eq!(
            message(&e),
            "--minutes: must be a multiple of your 6-minute billing increment, got 10 (try 12)"
        );
        let e = Error::invalid(
            "changes.matter",
            "entry x has no client; set changes.client too",
        );
        assert_eq!(
            message(&e),
            "--matter: entry x has no client; set --client too"
        );
        let e = Error::invalid(
            "ids",
            "entry x has no client; set one first (update_time_entries)",
        );
        assert_eq!(
            message(&e),
            "entry x has no client; set one first (`billable edit`)"
        );
        let e = Error::NotFound("no time entry with id x; list_time_entries shows".into());
        assert!(message(&e).contains("`billable entries` shows"));
        let e = Error::invalid("status", "approve them first (`billable approve ID…`)");
        assert!(message(&e).starts_with("invalid argument `status`"));
        for (api, _) in PHRASES {
            assert!(!phrase(api).contains("_time_"), "{api}");
        }
    }
}
