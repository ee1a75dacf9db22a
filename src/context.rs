//! The context every tool runs with: the mail source, the analyzer, the store and the
//! caches in front of it. Built once per process (or per test) from a `Config`.

use std::sync::Arc;

use crate::analyze::Analyzer;
use crate::analyze::rules::RulesAnalyzer;
use crate::config::{Config, SourceConfig};
use crate::domain::UserId;
use crate::error::Result;
use crate::mail::eml_dir::EmlDirSource;
use crate::mail::maildir::MaildirSource;
use crate::mail::mbox::MboxSource;
use crate::mail::{MailError, MailSource};
use crate::store::Store;
use crate::store::sqlite::SqliteStore;
use crate::store::supabase::SupabaseStore;
use crate::tools::summary::SummaryCache;

pub struct Context {
    source: Option<Arc<dyn MailSource>>,
    pub analyzer: Arc<dyn Analyzer>,
    pub store: Arc<dyn Store>,
    /// Summaries per user, dropped whenever that user writes.
    pub summaries: SummaryCache,
}

impl Context {
    /// A context from explicit parts; tests use this to swap in fakes.
    pub fn new(
        source: Option<Arc<dyn MailSource>>,
        analyzer: Arc<dyn Analyzer>,
        store: Arc<dyn Store>,
    ) -> Self {
        Context {
            source,
            analyzer,
            store,
            summaries: SummaryCache::new(),
        }
    }

    /// The context a configuration describes: the embedded defaults unless told otherwise.
    pub fn from_config(config: &Config) -> Result<Self> {
        let source: Option<Arc<dyn MailSource>> = match &config.source {
            SourceConfig::None => None,
            SourceConfig::Mbox(path) => Some(Arc::new(MboxSource::open(path)?)),
            SourceConfig::Maildir(path) => Some(Arc::new(MaildirSource::open(path)?)),
            SourceConfig::EmlDir(path) => Some(Arc::new(EmlDirSource::open(path)?)),
        };
        let store: Arc<dyn Store> = match config.supabase_rest_url() {
            Some(rest_url) => Arc::new(SupabaseStore::new(
                &rest_url,
                config.supabase_anon_key.as_ref().map(|k| k.expose()),
            )?),
            None => Arc::new(SqliteStore::open(&config.db_path()?)?),
        };
        Ok(Context::new(source, Arc::new(RulesAnalyzer), store))
    }

    /// The mail source for `user`, or an error telling them how to configure one.
    /// Local sources are shared; a per-user source (Gmail) holds that user's
    /// credentials and quota.
    pub fn source(&self, _user: &UserId) -> Result<Arc<dyn MailSource>> {
        self.source
            .clone()
            .ok_or_else(|| MailError::NoSource.into())
    }
}
