//! Every setting of a run that is not a user setting: where mail comes from, where
//! entries go, which analyzer runs. Flags come from the CLI; each has an environment
//! variable, listed in .env.example.

use std::path::PathBuf;

use crate::error::Error;
use crate::mail::gmail::{self, GmailAuth, GmailConfig, QuotaCosts, QuotaProfile};
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
    /// Gmail, when selected (`--gmail`) or configured for the server; see
    /// `Config::gmail_from_env` for its variables.
    pub gmail: Option<GmailConfig>,
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

impl Config {
    /// Gmail's configuration from the environment, `None` when no credentials are
    /// set. Variables (all in .env.example):
    /// - `GMAIL_API_BASE_URL`: API root (default https://gmail.googleapis.com/).
    /// - Credentials, the first that is set wins: `GMAIL_ACCESS_TOKEN` (an OAuth
    ///   access token); `GMAIL_SERVICE_ACCOUNT_FILE` (a key with domain-wide
    ///   delegation) with `GMAIL_SERVICE_ACCOUNT_SUBJECT` (the mailbox; default the
    ///   user id); `GMAIL_CLIENT_SECRET_FILE` (the installed-app client secret) with
    ///   `GMAIL_TOKEN_FILE` (where `billable auth gmail` stored tokens; default
    ///   gmail-token.json in the config directory).
    /// - `GMAIL_QUOTA_PROFILE`: `2026` (default: 100 units/s, get 20) or `legacy`
    ///   (250 units/s, get 5); `GMAIL_QUOTA_UNITS_PER_SEC`, `GMAIL_QUOTA_COST_GET`,
    ///   `GMAIL_QUOTA_COST_LIST`, `GMAIL_QUOTA_COST_HISTORY` override it.
    /// - `GMAIL_CONCURRENCY`: message bodies fetched at once (8).
    pub fn gmail_from_env() -> Result<Option<GmailConfig>, Error> {
        Self::gmail_from(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    }

    /// `gmail_from_env` over any variable lookup (tests pass a map).
    pub fn gmail_from(var: impl Fn(&str) -> Option<String>) -> Result<Option<GmailConfig>, Error> {
        let auth = if let Some(token) = var("GMAIL_ACCESS_TOKEN") {
            GmailAuth::AccessToken(token.trim().into())
        } else if let Some(key) = var("GMAIL_SERVICE_ACCOUNT_FILE") {
            GmailAuth::ServiceAccount {
                key_file: key.into(),
                subject: var("GMAIL_SERVICE_ACCOUNT_SUBJECT"),
            }
        } else if let Some(secret) = var("GMAIL_CLIENT_SECRET_FILE") {
            let token_file = match var("GMAIL_TOKEN_FILE") {
                Some(t) => PathBuf::from(t),
                None => gmail::auth::default_token_file().ok_or_else(|| {
                    Error::invalid("GMAIL_TOKEN_FILE", "no config directory could be determined; set it")
                })?,
            };
            GmailAuth::Installed {
                secret_file: secret.into(),
                token_file,
            }
        } else {
            return Ok(None);
        };
        let profile = match var("GMAIL_QUOTA_PROFILE") {
            Some(p) => QuotaProfile::parse(&p).map_err(|m| Error::invalid("GMAIL_QUOTA_PROFILE", m))?,
            None => QuotaProfile::default(),
        };
        let mut costs = QuotaCosts::for_profile(profile);
        let number = |name: &str, slot: &mut u32| -> Result<(), Error> {
            if let Some(v) = var(name) {
                *slot = v
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| Error::invalid(name, format!("must be a whole number above 0, got `{v}`")))?;
            }
            Ok(())
        };
        number("GMAIL_QUOTA_UNITS_PER_SEC", &mut costs.units_per_sec)?;
        number("GMAIL_QUOTA_COST_GET", &mut costs.get)?;
        number("GMAIL_QUOTA_COST_LIST", &mut costs.list)?;
        number("GMAIL_QUOTA_COST_HISTORY", &mut costs.history)?;
        let mut config = GmailConfig::new(auth);
        config.costs = costs;
        let mut concurrency = 8;
        number("GMAIL_CONCURRENCY", &mut concurrency)?;
        config.concurrency = concurrency as usize;
        if let Some(url) = var("GMAIL_API_BASE_URL") {
            config = config.with_base_url(url.trim());
        }
        Ok(Some(config))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn gmail(vars: &[(&str, &str)]) -> Result<Option<GmailConfig>, Error> {
        let map: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::gmail_from(|k| map.get(k).cloned())
    }

    #[test]
    fn gmail_is_configured_by_any_credential_and_the_access_token_wins() {
        assert_eq!(gmail(&[]).unwrap(), None);
        let c = gmail(&[
            ("GMAIL_ACCESS_TOKEN", "ya29.x"),
            ("GMAIL_SERVICE_ACCOUNT_FILE", "/k.json"),
            ("GMAIL_API_BASE_URL", "http://127.0.0.1:9"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.auth, GmailAuth::AccessToken("ya29.x".into()));
        assert_eq!(c.base_url, "http://127.0.0.1:9/");
        assert!(!format!("{c:?}").contains("ya29"), "the token never prints");
        let c = gmail(&[("GMAIL_CLIENT_SECRET_FILE", "/s.json"), ("GMAIL_TOKEN_FILE", "/t.json")])
            .unwrap()
            .unwrap();
        assert_eq!(
            c.auth,
            GmailAuth::Installed {
                secret_file: "/s.json".into(),
                token_file: "/t.json".into()
            }
        );
    }

    #[test]
    fn gmail_quota_defaults_to_the_2026_profile_and_can_be_overridden() {
        let c = gmail(&[("GMAIL_ACCESS_TOKEN", "t")]).unwrap().unwrap();
        assert_eq!((c.costs.units_per_sec, c.costs.get), (100, 20));
        let c = gmail(&[
            ("GMAIL_ACCESS_TOKEN", "t"),
            ("GMAIL_QUOTA_PROFILE", "legacy"),
            ("GMAIL_QUOTA_UNITS_PER_SEC", "120"),
            ("GMAIL_QUOTA_COST_LIST", "7"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((c.costs.units_per_sec, c.costs.get, c.costs.list), (120, 5, 7));
        let e = gmail(&[("GMAIL_ACCESS_TOKEN", "t"), ("GMAIL_QUOTA_UNITS_PER_SEC", "-1")]).unwrap_err();
        assert!(e.to_string().contains("GMAIL_QUOTA_UNITS_PER_SEC"), "{e}");
        let e = gmail(&[("GMAIL_ACCESS_TOKEN", "t"), ("GMAIL_QUOTA_PROFILE", "2020")]).unwrap_err();
        assert!(e.to_string().contains("legacy"), "{e}");
    }
}
