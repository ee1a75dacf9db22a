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

/// The analyzer a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnalyzerChoice {
    /// The offline, deterministic rules (SPEC §4).
    Rules,
    /// An OpenAI-compatible chat model, with the rules as hint, cap and fallback.
    Llm,
}

/// A string that never appears in logs or `Debug` output (keys, tokens, URLs with
/// passwords).
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
                    Error::invalid(
                        "GMAIL_TOKEN_FILE",
                        "no config directory could be determined; set it",
                    )
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
            Some(p) => {
                QuotaProfile::parse(&p).map_err(|m| Error::invalid("GMAIL_QUOTA_PROFILE", m))?
            }
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
                    .ok_or_else(|| {
                        Error::invalid(name, format!("must be a whole number above 0, got `{v}`"))
                    })?;
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

/// A server setting that could not be used; names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

/// The tool server (`billable serve`, `billable mcp`). Read by [`ServerConfig::from_env`].
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// `BILLABLE_BIND` (or `serve --bind`): the address to listen on. Default 127.0.0.1:8787.
    pub bind: String,
    /// `BILLABLE_API_TOKEN`: the bearer token of local mode. Unset: one is generated at
    /// start and printed once to stderr.
    pub api_token: Option<Secret>,
    /// `BILLABLE_MAX_BODY_BYTES`: the largest request body; larger gets 413. Default 10 MiB.
    pub max_body_bytes: usize,
    /// `BILLABLE_USER_RPS`: requests per second per user, with a burst of twice that;
    /// beyond it 429 with Retry-After. 0 disables the limit. Default 50.
    pub user_rps: u32,
    /// `BILLABLE_REQUEST_TIMEOUT_SECS`: how long one request may run before it gets 408
    /// (a scan cut short keeps what it saved). Default 300.
    pub request_timeout_secs: u64,
    /// `BILLABLE_SHUTDOWN_GRACE_SECS`: on Ctrl-C or SIGTERM, how long running requests
    /// (scans) get to finish before the server exits. Default 30.
    pub shutdown_grace_secs: u64,
    /// `BILLABLE_ALLOWED_ORIGINS`: comma-separated browser origins allowed to use `/mcp`
    /// (e.g. `https://app.example.com:443,http://localhost:*`). Default: none, so a
    /// request that carries an `Origin` header is refused (desktop clients send none).
    pub allowed_origins: Vec<String>,
    /// `BILLABLE_ALLOWED_HOSTS`: comma-separated `Host` values `/mcp` accepts (DNS
    /// rebinding protection). Default: localhost, 127.0.0.1, ::1. `*` accepts any.
    pub allowed_hosts: Vec<String>,
    /// `SUPABASE_URL`: the Supabase project; with it the server verifies user JWTs
    /// against `{SUPABASE_URL}/auth/v1/.well-known/jwks.json` (ES256/RS256).
    pub supabase_url: Option<String>,
    /// `SUPABASE_JWT_SECRET`: the project's JWT secret, to verify HS256 user JWTs.
    /// With this or `SUPABASE_URL` set the server is in Supabase mode: each request's
    /// user is its JWT's `sub`.
    pub supabase_jwt_secret: Option<Secret>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1:8787".to_owned(),
            api_token: None,
            max_body_bytes: 10 * 1024 * 1024,
            user_rps: 50,
            request_timeout_secs: 300,
            shutdown_grace_secs: 30,
            allowed_origins: Vec::new(),
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            supabase_url: None,
            supabase_jwt_secret: None,
        }
    }
}

impl ServerConfig {
    /// The settings the environment gives; unset or empty variables keep the defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// As `from_env`, reading variables through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        fn number<T: std::str::FromStr>(
            var: &'static str,
            v: Option<String>,
            default: T,
        ) -> Result<T, ConfigError> {
            match v {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| ConfigError {
                    var,
                    message: format!("expected a whole number, got `{v}`"),
                }),
            }
        }
        let list = |v: Option<String>, default: Vec<String>| match v {
            None => default,
            Some(v) => v
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        };
        let d = ServerConfig::default();
        let supabase_url = get("SUPABASE_URL").map(|u| u.trim_end_matches('/').to_owned());
        if let Some(url) = &supabase_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError {
                var: "SUPABASE_URL",
                message: format!(
                    "expected an http(s) URL such as https://abc.supabase.co, got `{url}`"
                ),
            });
        }
        Ok(ServerConfig {
            bind: get("BILLABLE_BIND").unwrap_or(d.bind),
            api_token: get("BILLABLE_API_TOKEN").map(Secret::new),
            max_body_bytes: number(
                "BILLABLE_MAX_BODY_BYTES",
                get("BILLABLE_MAX_BODY_BYTES"),
                d.max_body_bytes,
            )?,
            user_rps: number("BILLABLE_USER_RPS", get("BILLABLE_USER_RPS"), d.user_rps)?,
            request_timeout_secs: number(
                "BILLABLE_REQUEST_TIMEOUT_SECS",
                get("BILLABLE_REQUEST_TIMEOUT_SECS"),
                d.request_timeout_secs,
            )?,
            shutdown_grace_secs: number(
                "BILLABLE_SHUTDOWN_GRACE_SECS",
                get("BILLABLE_SHUTDOWN_GRACE_SECS"),
                d.shutdown_grace_secs,
            )?,
            allowed_origins: list(get("BILLABLE_ALLOWED_ORIGINS"), d.allowed_origins),
            allowed_hosts: list(get("BILLABLE_ALLOWED_HOSTS"), d.allowed_hosts),
            supabase_url,
            supabase_jwt_secret: get("SUPABASE_JWT_SECRET").map(Secret::new),
        })
    }

    /// Supabase mode: users are authenticated by their Supabase JWTs.
    pub fn supabase_mode(&self) -> bool {
        self.supabase_url.is_some() || self.supabase_jwt_secret.is_some()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn gmail(vars: &[(&str, &str)]) -> Result<Option<GmailConfig>, Error> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
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
        let c = gmail(&[
            ("GMAIL_CLIENT_SECRET_FILE", "/s.json"),
            ("GMAIL_TOKEN_FILE", "/t.json"),
        ])
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
        assert_eq!(
            (c.costs.units_per_sec, c.costs.get, c.costs.list),
            (120, 5, 7)
        );
        let e = gmail(&[
            ("GMAIL_ACCESS_TOKEN", "t"),
            ("GMAIL_QUOTA_UNITS_PER_SEC", "-1"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("GMAIL_QUOTA_UNITS_PER_SEC"), "{e}");
        let e = gmail(&[("GMAIL_ACCESS_TOKEN", "t"), ("GMAIL_QUOTA_PROFILE", "2020")]).unwrap_err();
        assert!(e.to_string().contains("legacy"), "{e}");
    }
}

#[cfg(test)]
mod server_config_tests {
    use super::*;

    #[test]
    fn server_settings_default_when_unset_and_name_the_variable_when_wrong() {
        let c = ServerConfig::from_lookup(|_| None).unwrap();
        assert_eq!(c, ServerConfig::default());
        assert!(!c.supabase_mode());
        let e = ServerConfig::from_lookup(|k| (k == "BILLABLE_USER_RPS").then(|| "fast".into()))
            .unwrap_err();
        assert_eq!(e.var, "BILLABLE_USER_RPS");
        let c = ServerConfig::from_lookup(|k| match k {
            "SUPABASE_URL" => Some("https://x.supabase.co/".into()),
            "BILLABLE_ALLOWED_ORIGINS" => Some("https://a.example:443, http://localhost:*".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.supabase_url.as_deref(), Some("https://x.supabase.co"));
        assert_eq!(
            c.allowed_origins,
            ["https://a.example:443", "http://localhost:*"]
        );
        assert!(c.supabase_mode());
        assert!(!format!("{:?}", Secret::new("hunter2")).contains("hunter2"));
    }
}
