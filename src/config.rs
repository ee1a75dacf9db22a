//! Every setting of a run that is not a user setting: where mail comes from, where
//! entries go, which analyzer runs. Flags come from the CLI; each has an environment
//! variable, listed in .env.example.

use std::path::PathBuf;

use crate::store::StoreError;
use crate::store::sqlite::SqliteStore;

/// Where mail is read from.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum SourceConfig {
    #[default]
    None,
    /// `--mbox FILE` / `BILLABLE_MBOX`: an mbox file (Google Takeout flavour).
    Mbox(PathBuf),
    /// `--maildir DIR` / `BILLABLE_MAILDIR`.
    Maildir(PathBuf),
    /// `--eml-dir DIR` / `BILLABLE_EML_DIR`: a folder of .eml files.
    EmlDir(PathBuf),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// `--db PATH` / `BILLABLE_DB`: the SQLite file. Default: `billable.sqlite3` in the
    /// user's data directory (e.g. ~/.local/share/billable on Linux).
    pub db: Option<PathBuf>,
    pub source: SourceConfig,
}

impl Config {
    /// The SQLite path to use.
    pub fn db_path(&self) -> Result<PathBuf, StoreError> {
        match &self.db {
            Some(p) => Ok(p.clone()),
            None => SqliteStore::default_path().ok_or_else(|| StoreError::Open {
                path: "(user data directory)".to_owned(),
                message: "no home or data directory could be determined".to_owned(),
            }),
        }
    }
}
