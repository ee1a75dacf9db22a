//! The context every tool runs with: the mail source, the analyzer, the store (with
//! its summary cache) and the analysis cache. Built once per process (or per test)
//! from a `Config`.

use std::sync::Arc;

use crate::analyze::Analyzer;
use crate::analyze::cache::AnalysisCache;
use crate::analyze::llm::LlmAnalyzer;
use crate::analyze::rules::RulesAnalyzer;
use crate::config::{AnalyzerChoice, Config, SourceConfig};
use crate::domain::{Settings, UserId};
use crate::error::Result;
use crate::jobs::Queue;
use crate::limits::{PgRates, SharedRates};
use crate::mail::eml_dir::EmlDirSource;
use crate::mail::gmail::GmailHub;
use crate::mail::maildir::MaildirSource;
use crate::mail::mbox::MboxSource;
use crate::mail::{MailError, MailSource};
use crate::store::Store;
use crate::store::cached::CachedStore;
use crate::store::sqlite::SqliteStore;
use crate::store::supabase::SupabaseStore;

pub struct Context {
    source: Option<Arc<dyn MailSource>>,
    /// Gmail, when configured: one source per user (their credentials and quota).
    gmail: Option<Arc<GmailHub>>,
    pub analyzer: Arc<dyn Analyzer>,
    /// The store behind its summary cache (a [`CachedStore`]), so every write drops
    /// the writer's cached summaries.
    pub store: Arc<dyn Store>,
    /// The same store as `store`, typed, for what only the cache does.
    cache: Arc<CachedStore>,
    /// Analyses per user and message content, in front of the analyzer.
    pub analyses: AnalysisCache,
    /// The embedded store's job queue (SQLite mode): the server's one in-process
    /// worker takes background scans from it. On Supabase, `billable worker`
    /// processes take them from Postgres instead.
    local_queue: Option<Arc<dyn Queue>>,
    /// The deployment's shared rate limits (Postgres), on Supabase with
    /// `DATABASE_URL`: every server and worker charges the same buckets.
    shared_rates: Option<Arc<dyn SharedRates>>,
}

impl Context {
    /// A context from explicit parts; tests use this to swap in fakes. The store is
    /// wrapped in the summary cache.
    pub fn new(
        source: Option<Arc<dyn MailSource>>,
        analyzer: Arc<dyn Analyzer>,
        store: Arc<dyn Store>,
    ) -> Self {
        let cache = Arc::new(CachedStore::new(store));
        Context {
            source,
            gmail: None,
            analyzer,
            store: cache.clone(),
            cache,
            analyses: AnalysisCache::new(),
            local_queue: None,
            shared_rates: None,
        }
    }

    /// Reads mail from `source` instead of the configured one (`billable eval` scans
    /// one part of a mailbox at a time).
    pub fn with_source(mut self, source: Arc<dyn MailSource>) -> Self {
        self.source = Some(source);
        self
    }

    /// Runs background scans in process from `queue` (the embedded store's).
    pub fn with_local_queue(mut self, queue: Arc<dyn Queue>) -> Self {
        self.local_queue = Some(queue);
        self
    }

    /// The deployment's shared rate limits, when it has them.
    pub fn shared_rates(&self) -> Option<Arc<dyn SharedRates>> {
        self.shared_rates.clone()
    }

    /// The queue an in-process worker takes background scans from, in SQLite mode.
    pub fn local_queue(&self) -> Option<Arc<dyn Queue>> {
        self.local_queue.clone()
    }

    /// `user`'s settings for the rest of this run, stored nowhere (`--settings FILE`
    /// without `--save`); see [`CachedStore::use_for_run`].
    pub fn use_settings_for_run(&self, user: UserId, settings: Settings) {
        self.cache.use_for_run(user, settings);
    }

    /// Reads Gmail through `hub` for users without a local source.
    pub fn with_gmail(mut self, hub: Arc<GmailHub>) -> Self {
        self.gmail = Some(hub);
        self
    }

    /// The Gmail hub, when configured. A transport whose caller supplies a Gmail
    /// access token per request uses `hub.source_with_token(user, token)`.
    pub fn gmail(&self) -> Option<&Arc<GmailHub>> {
        self.gmail.as_ref()
    }

    /// The context a configuration describes: the embedded defaults unless told otherwise.
    pub fn from_config(config: &Config) -> Result<Self> {
        let source: Option<Arc<dyn MailSource>> = match &config.source {
            SourceConfig::None => None,
            SourceConfig::Mbox(path) => Some(Arc::new(MboxSource::open(path)?)),
            SourceConfig::Maildir(path) => Some(Arc::new(MaildirSource::open(path)?)),
            SourceConfig::EmlDir(path) => Some(Arc::new(EmlDirSource::open(path)?)),
        };
        let (store, queue): (Arc<dyn Store>, Option<Arc<dyn Queue>>) =
            match config.supabase_rest_url() {
                Some(rest_url) => (
                    Arc::new(SupabaseStore::new(
                        &rest_url,
                        config.supabase_anon_key.as_ref().map(|k| k.expose()),
                    )?),
                    None,
                ),
                None => {
                    let sqlite = Arc::new(SqliteStore::open(&config.db_path()?)?);
                    (sqlite.clone(), Some(sqlite))
                }
            };
        // Many processes share one Supabase project; its Postgres holds their limits.
        let shared: Option<Arc<dyn SharedRates>> = match (&queue, &config.database_url) {
            (None, Some(url)) => Some(Arc::new(PgRates::new(url.expose()))),
            _ => None,
        };
        let analyzer: Arc<dyn Analyzer> = match config.analyzer_choice() {
            AnalyzerChoice::Rules => Arc::new(RulesAnalyzer),
            AnalyzerChoice::Llm => {
                Arc::new(LlmAnalyzer::new(&config.llm)?.with_shared_rates(shared.clone()))
            }
        };
        let mut ctx = Context::new(source, analyzer, store);
        ctx.local_queue = queue;
        ctx.shared_rates = shared.clone();
        Ok(match &config.gmail {
            Some(gmail) => ctx.with_gmail(Arc::new(
                GmailHub::new(gmail.clone()).with_shared_rates(shared),
            )),
            None => ctx,
        })
    }

    /// Whether scans read Gmail (no local source is configured): they run at the
    /// quota's pace, so they run in the background unless asked otherwise.
    pub fn reads_gmail(&self) -> bool {
        self.source.is_none() && self.gmail.is_some()
    }

    /// Stores `user`'s Gmail refresh token for unattended scans: checked with Google
    /// once (it reads the mailbox's address), then sealed; the token itself is never
    /// stored, logged or returned.
    pub async fn connect_gmail(
        &self,
        user: &UserId,
        refresh_token: &str,
    ) -> Result<GmailGrantStatus> {
        let refresh_token = refresh_token.trim();
        if refresh_token.is_empty() || refresh_token.len() > 2048 {
            return Err(crate::Error::InvalidArgument {
                field: "refresh_token".to_owned(),
                message: "give the Gmail OAuth refresh token (at most 2048 characters)".to_owned(),
            });
        }
        let hub = self.gmail.as_ref().ok_or(MailError::NoGmail)?;
        let sealed = hub.seal_grant(user, refresh_token)?;
        let mailbox = hub
            .source_with_grant(user, &sealed)?
            .owner_addresses()
            .await?
            .into_iter()
            .next();
        self.store.save_gmail_grant(user, &sealed).await?;
        tracing::info!(user = %user.as_str(), "Gmail authorisation stored");
        Ok(GmailGrantStatus {
            connected: true,
            mailbox,
            updated_at: Some(chrono::Utc::now()),
        })
    }

    /// Whether `user` has a stored Gmail grant (never the grant).
    pub async fn gmail_grant_status(&self, user: &UserId) -> Result<GmailGrantStatus> {
        let grant = self.store.gmail_grant(user).await?;
        Ok(GmailGrantStatus {
            connected: grant.is_some(),
            mailbox: None,
            updated_at: grant.map(|g| g.updated_at),
        })
    }

    /// Forgets `user`'s stored Gmail grant: unattended scans stop reading their
    /// mailbox. (Revoke billable's access at myaccount.google.com as well to
    /// invalidate the token itself.)
    pub async fn disconnect_gmail(&self, user: &UserId) -> Result<GmailGrantStatus> {
        self.store.delete_gmail_grant(user).await?;
        tracing::info!(user = %user.as_str(), "Gmail authorisation removed");
        Ok(GmailGrantStatus {
            connected: false,
            mailbox: None,
            updated_at: None,
        })
    }

    /// The mail source for `user`, or an error telling them how to configure one.
    /// Local sources are shared; a per-user source (Gmail) holds that user's
    /// credentials and quota: the grant they stored, when the server keeps grants
    /// and they have one, else the server's configured credentials.
    pub async fn source(&self, user: &UserId) -> Result<Arc<dyn MailSource>> {
        if let Some(source) = &self.source {
            return Ok(source.clone());
        }
        let Some(hub) = &self.gmail else {
            return Err(MailError::NoSource.into());
        };
        if hub.keeps_grants()
            && let Some(grant) = self.store.gmail_grant(user).await?
        {
            return Ok(hub.source_with_grant(user, &grant.sealed)?);
        }
        Ok(hub.source(user)?)
    }
}

/// What a user sees of their stored Gmail grant.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GmailGrantStatus {
    pub connected: bool,
    /// The mailbox the grant reads, when it was just checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<String>,
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
}
