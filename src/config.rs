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
    /// `SUPABASE_URL`: the Supabase project URL (https://PROJECT.supabase.co). When
    /// set, entries live in Supabase (through PostgREST, as the signed-in user)
    /// instead of the SQLite file.
    pub supabase_url: Option<String>,
    /// `SUPABASE_REST_URL`: the PostgREST root, when it is not `SUPABASE_URL` +
    /// `/rest/v1` (a self-hosted PostgREST or postrust serves at its root).
    pub supabase_rest_url: Option<String>,
    /// `SUPABASE_ANON_KEY`: the project's anon (public) key, sent as `apikey`. Never
    /// the service-role key: user data is read and written as the user.
    pub supabase_anon_key: Option<Secret>,
    /// `SUPABASE_ACCESS_TOKEN`: the CLI's user JWT for Supabase (the HTTP server uses
    /// each caller's own bearer token instead).
    pub supabase_access_token: Option<Secret>,
    /// `DATABASE_URL`: the Postgres that `billable migrate` applies sql/ to.
    pub database_url: Option<Secret>,
}

/// A string that never appears in logs or `Debug` output (keys, tokens, URLs with
/// passwords).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Config {
    /// The PostgREST root of the configured Supabase project, if any.
    pub fn supabase_rest_url(&self) -> Option<String> {
        let explicit = self
            .supabase_rest_url
            .as_deref()
            .filter(|u| !u.trim().is_empty());
        match explicit {
            Some(url) => Some(url.trim().trim_end_matches('/').to_owned()),
            None => self
                .supabase_url
                .as_deref()
                .filter(|u| !u.trim().is_empty())
                .map(crate::store::supabase::rest_url_for),
        }
    }

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
