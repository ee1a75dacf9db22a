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
    /// `--analyzer rules|llm`: which analyzer runs. Default: `llm` when `OPENAI_API_KEY`
    /// or `OPENAI_BASE_URL` is set, else `rules`.
    pub analyzer: Option<AnalyzerChoice>,
    /// The LLM analyzer's settings (the `OPENAI_*` and `LLM_*` variables).
    pub llm: LlmConfig,
}

/// The analyzer a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnalyzerChoice {
    /// The offline, deterministic rules (SPEC §4).
    Rules,
    /// An OpenAI-compatible chat model, with the rules as hint, cap and fallback.
    Llm,
}

/// A value that never prints (API keys).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How the LLM analyzer reaches its model and how hard it may push it.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    /// `OPENAI_API_KEY`: the API key (never printed). Optional for local servers.
    pub api_key: Option<Secret>,
    /// `OPENAI_BASE_URL`: an OpenAI-compatible API root, e.g. http://localhost:11434/v1
    /// for Ollama. Default: https://api.openai.com/v1.
    pub base_url: Option<String>,
    /// `OPENAI_MODEL`: the chat model. Default: gpt-4.1-mini.
    pub model: String,
    /// `LLM_CONCURRENCY`: requests in flight at once. Default: 8.
    pub concurrency: usize,
    /// `LLM_RPM`: requests per minute (unset or 0: no limit).
    pub rpm: Option<u32>,
    /// `LLM_TPM`: tokens per minute, estimated from text length (unset or 0: no limit).
    pub tpm: Option<u32>,
    /// Messages per request at most (not an environment variable; tests and benches
    /// change it). Default: 8.
    pub max_batch: usize,
    /// Retries of one request after 429/5xx/timeouts before the scan stops. Default: 6.
    pub max_retries: usize,
    /// Timeout of one HTTP request. Default: 90 s.
    pub request_timeout: std::time::Duration,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            api_key: None,
            base_url: None,
            model: "gpt-4.1-mini".to_owned(),
            concurrency: 8,
            rpm: None,
            tpm: None,
            max_batch: 8,
            max_retries: 6,
            request_timeout: std::time::Duration::from_secs(90),
        }
    }
}

impl LlmConfig {
    /// Reads the `OPENAI_*` and `LLM_*` variables; empty values count as unset.
    pub fn from_env() -> Result<Self, crate::Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`LlmConfig::from_env`] over any lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, crate::Error> {
        let var = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let number = |k: &str| -> Result<Option<u32>, crate::Error> {
            var(k)
                .map(|v| {
                    v.parse::<u32>().map_err(|_| {
                        crate::Error::invalid(k, format!("must be a whole number, got `{v}`"))
                    })
                })
                .transpose()
        };
        let mut c = LlmConfig {
            api_key: var("OPENAI_API_KEY").map(Secret::new),
            base_url: var("OPENAI_BASE_URL"),
            ..LlmConfig::default()
        };
        if let Some(m) = var("OPENAI_MODEL") {
            c.model = m;
        }
        if let Some(n) = number("LLM_CONCURRENCY")? {
            if n == 0 {
                return Err(crate::Error::invalid(
                    "LLM_CONCURRENCY",
                    "must be at least 1",
                ));
            }
            c.concurrency = n as usize;
        }
        c.rpm = number("LLM_RPM")?.filter(|n| *n > 0);
        c.tpm = number("LLM_TPM")?.filter(|n| *n > 0);
        Ok(c)
    }

    /// Whether an LLM is configured at all (a key or a server).
    pub fn is_configured(&self) -> bool {
        self.api_key.is_some() || self.base_url.is_some()
    }
}

impl Config {
    /// The analyzer to run: the flag, else `llm` when an LLM is configured.
    pub fn analyzer_choice(&self) -> AnalyzerChoice {
        match self.analyzer {
            Some(choice) => choice,
            None if self.llm.is_configured() => AnalyzerChoice::Llm,
            None => AnalyzerChoice::Rules,
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
