//! A Maildir (and Maildir++ subfolders), read one file at a time.
//!
//! Messages are the files in `cur/` and `new/` (`tmp/` holds deliveries in progress
//! and is ignored) of the root and of every `.Folder` subdirectory. Root messages get
//! the label `Inbox`; folder messages get the folder name as a label (`.Work.Acme` →
//! `Work/Acme`), and folders named like Sent (`Sent`, `Sent Items`, `Sent Messages`,
//! `Sent Mail`) also get `Sent`, which marks the owner's mail. Files are listed
//! sorted by file name (Maildir names start with the delivery time, so this is
//! roughly oldest first), then path, for a deterministic order. Only the sorted list
//! of paths is held in memory; contents are read one file at a time.

use std::fs::ReadDir;
use std::path::{Path, PathBuf};

use super::files::{FilesSource, Layout};
use super::{MailError, io_error};

/// A Maildir directory on disk. `MaildirSource::open` fails when the directory
/// cannot be read or has no `cur/`, `new/` or Maildir++ `.Folder/`.
pub type MaildirSource = FilesSource<Maildir>;

/// The Maildir layout: `cur/` and `new/` of the root and of `.Folder`s.
#[derive(Debug, Clone, Copy)]
pub struct Maildir;

impl Layout for Maildir {
    const KIND: &'static str = "maildir";

    /// A Maildir has `cur/`, `new/` or a Maildir++ `.Folder/` inside.
    fn check(dir: &Path, entries: ReadDir) -> Result<(), MailError> {
        let mut looks_like_maildir = false;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "cur"
                || name == "new"
                || (name.starts_with('.') && entry.path().join("cur").is_dir())
            {
                looks_like_maildir = true;
                break;
            }
        }
        if !looks_like_maildir {
            return Err(io_error(
                dir,
                std::io::Error::other(
                    "not a Maildir (no cur/ or new/ inside); use --eml-dir for a folder of .eml files",
                ),
            ));
        }
        Ok(())
    }

    /// Every message file with the labels its folder gives it, sorted.
    fn files(dir: &Path) -> Result<Vec<(PathBuf, Vec<String>)>, MailError> {
        let mut files = Vec::new();
        collect_folder(dir, &["Inbox".to_owned()], &mut files)?;
        let entries = std::fs::read_dir(dir).map_err(|source| io_error(dir, source))?;
        for entry in entries {
            let entry = entry.map_err(|source| io_error(dir, source))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(folder) = name.strip_prefix('.') else {
                continue;
            };
            if folder.is_empty() || folder.starts_with('.') || !entry.path().is_dir() {
                continue;
            }
            collect_folder(&entry.path(), &folder_labels(folder), &mut files)?;
        }
        files.sort_by(|(a, _), (b, _)| a.file_name().cmp(&b.file_name()).then_with(|| a.cmp(b)));
        Ok(files)
    }
}

/// Labels for a Maildir++ folder name (without the leading dot).
fn folder_labels(folder: &str) -> Vec<String> {
    let label = folder.replace('.', "/");
    let last = folder
        .rsplit('.')
        .next()
        .unwrap_or(folder)
        .to_ascii_lowercase();
    let mut labels = vec![label];
    if matches!(
        last.as_str(),
        "sent" | "sent items" | "sent messages" | "sent mail"
    ) && !labels.iter().any(|l| l == "Sent")
    {
        labels.push("Sent".to_owned());
    }
    labels
}

fn collect_folder(
    folder: &Path,
    labels: &[String],
    out: &mut Vec<(PathBuf, Vec<String>)>,
) -> Result<(), MailError> {
    for sub in ["cur", "new"] {
        let dir = folder.join(sub);
        if !dir.is_dir() {
            continue;
        }
        let entries = std::fs::read_dir(&dir).map_err(|source| io_error(&dir, source))?;
        for entry in entries {
            let entry = entry.map_err(|source| io_error(&dir, source))?;
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if !hidden && path.is_file() {
                out.push((path, labels.to_vec()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::{Listed, MailQuery, MailSource, RawEmail};
    use futures::StreamExt;

    fn message(id: &str, subject: &str) -> String {
        format!(
            "From: ann@acme.com\r\nTo: me@example.com\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\r\nbody\r\n"
        )
    }

    fn put(dir: &Path, rel: &str, content: &str) {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            assert!(std::fs::create_dir_all(parent).is_ok());
        }
        assert!(std::fs::write(path, content).is_ok());
    }

    fn maildir() -> tempfile::TempDir {
        let Ok(dir) = tempfile::tempdir() else {
            panic!("temp dir");
        };
        let root = dir.path();
        put(
            root,
            "cur/1700000002.M1.host:2,S",
            &message("b@x", "second"),
        );
        put(root, "new/1700000001.M1.host", &message("a@x", "first"));
        put(
            root,
            "tmp/1700000000.M1.host",
            &message("tmp@x", "in delivery"),
        );
        put(
            root,
            ".Sent/cur/1700000003.M1.host:2,S",
            &message("c@x", "my reply"),
        );
        put(
            root,
            ".Work.Acme/new/1700000004.M1.host",
            &message("d@x", "filed"),
        );
        put(
            root,
            ".Work.Acme/cur/1700000005.M1.host",
            &message("a@x", "duplicate of first"),
        );
        dir
    }

    async fn listed(source: &MaildirSource, query: &MailQuery) -> Vec<RawEmail> {
        source
            .list(query)
            .map(|item| match item {
                Ok(Listed { raw: Some(raw), .. }) => raw,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
            .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn maildir_lists_cur_new_and_subfolders_sorted_with_folder_labels() {
        let dir = maildir();
        let Ok(source) = MaildirSource::open(dir.path()) else {
            panic!("open");
        };
        let raws = listed(&source, &MailQuery::default()).await;
        let ids: Vec<_> = raws.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            ["a@x", "b@x", "c@x", "d@x"],
            "tmp/ ignored, duplicate dropped"
        );
        let labels: Vec<_> = raws.iter().map(|r| r.labels.join("|")).collect();
        assert_eq!(labels, ["Inbox", "Inbox", "Sent", "Work/Acme"]);

        let sent = MailQuery {
            query: Some("label:sent".into()),
            ..MailQuery::default()
        };
        let ids: Vec<_> = listed(&source, &sent)
            .await
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["c@x"]);
        assert!(
            source
                .get("d@x")
                .await
                .is_ok_and(|r| r.labels == ["Work/Acme"])
        );
        assert!(matches!(
            source.get("zzz").await,
            Err(MailError::NotFound(_))
        ));
    }

    #[test]
    fn sent_like_folders_are_labelled_sent() {
        assert_eq!(folder_labels("Sent Items"), ["Sent Items", "Sent"]);
        assert_eq!(
            folder_labels("INBOX.Sent Messages"),
            ["INBOX/Sent Messages", "Sent"]
        );
        assert_eq!(folder_labels("Sent"), ["Sent"]);
        assert_eq!(folder_labels("Archive"), ["Archive"]);
    }

    #[test]
    fn a_directory_without_cur_or_new_is_not_a_maildir() {
        let Ok(dir) = tempfile::tempdir() else {
            panic!("temp dir");
        };
        assert!(matches!(
            MaildirSource::open(dir.path()),
            Err(MailError::Io { .. })
        ));
    }
}
