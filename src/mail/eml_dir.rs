//! A directory of `.eml` files (searched recursively), read one file at a time.
//!
//! Files are listed sorted by path for a deterministic order; only the list of paths
//! is held in memory.

use std::path::{Path, PathBuf};

use super::files::{FilesSource, Layout, read_message_file};
use super::parse::raw_from_bytes;
use super::{MailError, RawEmail, io_error};

/// A directory tree of `.eml` files. `EmlDirSource::open` fails when it is not a
/// readable directory.
pub type EmlDirSource = FilesSource<EmlDir>;

/// The layout of an `.eml` folder: every `*.eml` file below it, at any depth.
#[derive(Debug, Clone, Copy)]
pub struct EmlDir;

impl Layout for EmlDir {
    const KIND: &'static str = "eml-dir";

    /// Every `*.eml` file below the directory, sorted by path.
    fn files(dir: &Path) -> Result<Vec<(PathBuf, Vec<String>)>, MailError> {
        let mut files = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(dir) = pending.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|source| io_error(&dir, source))?;
            for entry in entries {
                let entry = entry.map_err(|source| io_error(&dir, source))?;
                let path = entry.path();
                // file_type() does not follow symlinks, so a link loop cannot recurse
                // forever; linked files are still read.
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    pending.push(path);
                } else if is_eml(&path) && path.is_file() {
                    files.push((path, Vec::new()));
                }
            }
        }
        files.sort();
        Ok(files)
    }
}

fn is_eml(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("eml"))
}

/// Reads one `.eml` file (for `analyze FILE.eml`): id from the Message-ID header (or
/// the content hash), labels and thread id from Takeout headers when present.
pub fn read_eml_file(path: impl AsRef<Path>) -> Result<RawEmail, MailError> {
    let bytes = read_message_file(path.as_ref())?;
    Ok(raw_from_bytes(bytes, &[]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::{MailQuery, MailSource};
    use futures::StreamExt;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn eml_files_below_the_directory_are_listed_sorted_by_path() {
        let Ok(dir) = tempfile::tempdir() else {
            panic!("temp dir");
        };
        let root = dir.path();
        let write = |rel: &str, content: &str| {
            let path = root.join(rel);
            if let Some(parent) = path.parent() {
                assert!(std::fs::create_dir_all(parent).is_ok());
            }
            assert!(std::fs::write(path, content).is_ok());
        };
        write("b.eml", "Message-ID: <b@x>\r\nSubject: b\r\n\r\nb");
        write("a/nested.EML", "Message-ID: <a@x>\r\nSubject: a\r\n\r\na");
        write("notes.txt", "Message-ID: <txt@x>\r\n\r\nnot listed");
        write("c.eml", "Subject: no id\r\n\r\nc");

        let Ok(source) = EmlDirSource::open(root) else {
            panic!("open");
        };
        let all = MailQuery::default();
        let ids: Vec<String> = source
            .list(&all)
            .map(|item| item.map(|l| l.id).unwrap_or_else(|e| format!("error: {e}")))
            .collect()
            .await;
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert_eq!(ids[0], "a@x");
        assert_eq!(ids[1], "b@x");
        assert!(ids[2].starts_with("sha256:"));

        assert!(source.get("b@x").await.is_ok());
        assert!(matches!(
            source.get("txt@x").await,
            Err(MailError::NotFound(_))
        ));
    }

    #[test]
    fn read_eml_file_gives_the_message_id_or_an_io_error() {
        let Ok(dir) = tempfile::tempdir() else {
            panic!("temp dir");
        };
        let path = dir.path().join("one.eml");
        assert!(
            std::fs::write(
                &path,
                "Message-ID: <one@x>\r\nX-Gmail-Labels: Sent\r\n\r\nhi"
            )
            .is_ok()
        );
        let raw = read_eml_file(&path);
        assert!(raw.is_ok_and(|r| r.id == "one@x" && r.labels == ["Sent"]));
        assert!(matches!(
            read_eml_file(dir.path().join("missing.eml")),
            Err(MailError::Io { .. })
        ));
    }
}
