//! A directory of `.eml` files (searched recursively), read one file at a time.
//!
//! Files are listed sorted by path for a deterministic order; only the list of paths
//! is held in memory.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures::stream::BoxStream;

use super::maildir::{FilesIter, find_in_files, io_error, read_message_file, run_blocking};
use super::parse::raw_from_bytes;
use super::{Listed, MailError, MailQuery, MailSource, RawEmail, blocking_stream};

/// A directory tree of `.eml` files.
#[derive(Debug, Clone)]
pub struct EmlDirSource {
    dir: PathBuf,
}

impl EmlDirSource {
    /// Opens a directory; fails when it is not a readable directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, MailError> {
        let dir = dir.into();
        std::fs::read_dir(&dir).map_err(|source| io_error(&dir, source))?;
        Ok(EmlDirSource { dir })
    }

    /// Every `*.eml` file below the directory, sorted by path.
    fn files(&self) -> Result<Vec<(PathBuf, Vec<String>)>, MailError> {
        let mut files = Vec::new();
        let mut pending = vec![self.dir.clone()];
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

#[async_trait]
impl MailSource for EmlDirSource {
    fn describe(&self) -> String {
        format!("eml-dir {}", self.dir.display())
    }

    fn list<'a>(&'a self, query: &'a MailQuery) -> BoxStream<'a, Result<Listed, MailError>> {
        let source = self.clone();
        let query = query.clone();
        blocking_stream(move || FilesIter::new(move || source.files(), query))
    }

    async fn get(&self, id: &str) -> Result<RawEmail, MailError> {
        let source = self.clone();
        let id = id.to_owned();
        run_blocking(move || find_in_files(source.files()?, &id)).await
    }
}
