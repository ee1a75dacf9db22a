//! Every setting of a run that is not a user setting: where mail comes from, where
//! entries go, which analyzer runs, how the server listens. This is the one reader of
//! environment variables: [`Config::from_env`] reads them all (each field's doc names
//! its variable, and .env.example lists every one); flags of the CLI win over them.
//! `RUST_LOG` is read by the logger itself.

use std::path::PathBuf;
use std::str::FromStr;

use crate::mail::gmail::{self, GmailAuth, GmailConfig, QuotaCosts, QuotaProfile};
use crate::store::StoreError;
use crate::store::sqlite::SqliteStore;

/// A variable whose value cannot be used. The message names the variable and says
/// what it expects.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl ConfigError {
    fn new(var: &'static str, message: impl Into<String>) -> Self {
        ConfigError {
            var,
            message: message.into(),
        }
    }
}

/// The variables, read through one lookup: values are trimmed, and an empty value
/// counts as unset.
struct Vars<F>(F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    fn get(&self, var: &'static str) -> Option<String> {
        (self.0)(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn secret(&self, var: &'static str) -> Option<Secret> {
        self.get(var).map(Secret::new)
    }

    fn path(&self, var: &'static str) -> Option<PathBuf> {
        self.get(var).map(PathBuf::from)
    }

    /// The one number parser: unset is `None`, anything but a whole number an error.
    fn number<T: FromStr>(&self, var: &'static str) -> Result<Option<T>, ConfigError> {
        self.get(var)
            .map(|v| {
                v.parse().map_err(|_| {
                    ConfigError::new(var, format!("expected a whole number, got `{v}`"))
                })
            })
            .transpose()
    }

    /// A number that must be at least 1.
    fn positive(&self, var: &'static str) -> Result<Option<u32>, ConfigError> {
        match self.number::<u32>(var)? {
            Some(0) => Err(ConfigError::new(var, "must be at least 1, got `0`")),
            n => Ok(n),
        }
    }

    /// A comma-separated list; empty items are dropped.
    fn list(&self, var: &'static str) -> Option<Vec<String>> {
        self.get(var).map(|v| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
    }
}

/// The process environment; a value that is not UTF-8 counts as unset.
fn env(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

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

impl SourceConfig {
    /// At most one of `BILLABLE_MBOX`, `BILLABLE_MAILDIR` and `BILLABLE_EML_DIR`.
    fn read<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Self, ConfigError> {
        let source =
            |var, kind: fn(PathBuf) -> SourceConfig| vars.path(var).map(|p| (var, kind(p)));
        let mut set: Vec<(&'static str, SourceConfig)> = [
            source("BILLABLE_MBOX", SourceConfig::Mbox),
            source("BILLABLE_MAILDIR", SourceConfig::Maildir),
            source("BILLABLE_EML_DIR", SourceConfig::EmlDir),
        ]
        .into_iter()
        .flatten()
        .collect();
        if set.len() > 1 {
            let names: Vec<&str> = set.iter().map(|(var, _)| *var).collect();
            return Err(ConfigError::new(
                set[0].0,
                format!(
                    "only one mail source may be set, but {} are; unset all but one",
                    names.join(" and ")
                ),
            ));
        }
        Ok(set.pop().map_or(SourceConfig::None, |(_, source)| source))
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// `--db PATH` / `BILLABLE_DB`: the SQLite file. Default: `billable.sqlite3` in the
    /// user's data directory (e.g. ~/.local/share/billable on Linux).
    pub db: Option<PathBuf>,
    /// `--mbox` / `BILLABLE_MBOX`, `--maildir` / `BILLABLE_MAILDIR` or `--eml-dir` /
    /// `BILLABLE_EML_DIR`: the local mail source, if any.
    pub source: SourceConfig,
    /// The `GMAIL_*` variables (see [`Config::gmail_from_env`]): set whenever Gmail
    /// credentials are. The CLI reads Gmail only with `--gmail`, a server whenever
    /// it has no local source.
    pub gmail: Option<GmailConfig>,
    /// `--analyzer rules|llm` (a flag only): which analyzer runs. Default: `llm` when
    /// `OPENAI_API_KEY` or `OPENAI_BASE_URL` is set, else `rules`.
    pub analyzer: Option<AnalyzerChoice>,
    /// The LLM analyzer's settings (the `OPENAI_*` and `LLM_*` variables).
    pub llm: LlmConfig,
    /// `SUPABASE_URL`: the Supabase project URL (https://PROJECT.supabase.co), without
    /// a trailing slash. When set, entries live in Supabase (through PostgREST, as the
    /// signed-in user) instead of the SQLite file.
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
    /// `DATABASE_URL`: the Postgres that `billable migrate` applies sql/ to; on
    /// Supabase, where workers take jobs and every server and worker shares its rate
    /// limits (as the `billable_worker` role).
    pub database_url: Option<Secret>,
    /// The tool server's settings (the `BILLABLE_*` server variables and
    /// `SUPABASE_JWT_SECRET`).
    pub server: ServerConfig,
    /// `GMAIL_CLIENT_SECRET_FILE`: the OAuth client secret `billable auth gmail` uses
    /// when `--client-secret` is not given.
    pub gmail_client_secret_file: Option<PathBuf>,
    /// `COLUMNS` (set by shells): the width the CLI's tables fit; otherwise the
    /// terminal's own.
    pub columns: Option<usize>,
    /// `GMAIL_TOKEN_FILE`: where `billable auth gmail` stores the tokens when
    /// `--token-file` is not given (default: gmail-token.json in the config directory).
    pub gmail_token_file: Option<PathBuf>,
}

impl Config {
    /// Every variable billable reads; unset or empty variables keep the defaults, and
    /// a value that cannot be used is an error naming its variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env)
    }

    /// As [`Config::from_env`], reading variables through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(get);
        let server = ServerConfig::read(&vars)?;
        Ok(Config {
            db: vars.path("BILLABLE_DB"),
            source: SourceConfig::read(&vars)?,
            gmail: Self::gmail_read(&vars)?,
            analyzer: None,
            llm: LlmConfig::read(&vars)?,
            supabase_url: server.supabase_url.clone(),
            supabase_rest_url: vars.get("SUPABASE_REST_URL"),
            supabase_anon_key: vars.secret("SUPABASE_ANON_KEY"),
            supabase_access_token: vars.secret("SUPABASE_ACCESS_TOKEN"),
            database_url: vars.secret("DATABASE_URL"),
            server,
            gmail_client_secret_file: vars.path("GMAIL_CLIENT_SECRET_FILE"),
            gmail_token_file: vars.path("GMAIL_TOKEN_FILE"),
            columns: vars.get("COLUMNS").and_then(|c| c.parse().ok()),
        })
    }
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
    /// `LLM_MAX_BATCH`: messages per request at most. Default: 8.
    pub max_batch: usize,
    /// `LLM_MAX_RETRIES`: retries of one request after 429/5xx before the scan stops.
    /// Default: 6.
    pub max_retries: usize,
    /// `LLM_TIMEOUT_SECS`: timeout of one HTTP request; a batch that runs past it is
    /// split rather than sent again whole. Default: 90 s.
    pub request_timeout: std::time::Duration,
    /// `LLM_CONTEXT_TOKENS`: the model's context window. Unset: what the server says
    /// (llama.cpp's `/props`), else learnt from the first context-size error.
    pub context_tokens: Option<u32>,
    /// `LLM_RESPONSE_FORMAT`: `json_schema` (structured outputs; default, with JSON
    /// mode when the server refuses it) or `json_object` (JSON mode from the start).
    pub response_format: ResponseFormatChoice,
}

/// How answers are asked for: see [`LlmConfig::response_format`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseFormatChoice {
    #[default]
    JsonSchema,
    JsonObject,
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
            context_tokens: None,
            response_format: ResponseFormatChoice::JsonSchema,
        }
    }
}

impl LlmConfig {
    /// Reads the `OPENAI_*` and `LLM_*` variables; empty values count as unset.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env)
    }

    /// Like [`LlmConfig::from_env`] over any lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::read(&Vars(get))
    }

    fn read<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Self, ConfigError> {
        let d = LlmConfig::default();
        Ok(LlmConfig {
            api_key: vars.secret("OPENAI_API_KEY"),
            base_url: vars.get("OPENAI_BASE_URL"),
            model: vars.get("OPENAI_MODEL").unwrap_or(d.model),
            concurrency: vars
                .positive("LLM_CONCURRENCY")?
                .map_or(d.concurrency, |n| n as usize),
            rpm: vars.number("LLM_RPM")?.filter(|n| *n > 0),
            tpm: vars.number("LLM_TPM")?.filter(|n| *n > 0),
            max_batch: vars
                .positive("LLM_MAX_BATCH")?
                .map_or(d.max_batch, |n| n as usize),
            max_retries: vars
                .number::<u32>("LLM_MAX_RETRIES")?
                .map_or(d.max_retries, |n| n as usize),
            request_timeout: vars
                .positive("LLM_TIMEOUT_SECS")?
                .map_or(d.request_timeout, |n| {
                    std::time::Duration::from_secs(u64::from(n))
                }),
            context_tokens: vars.positive("LLM_CONTEXT_TOKENS")?,
            response_format: match vars.get("LLM_RESPONSE_FORMAT").as_deref() {
                None | Some("json_schema") => ResponseFormatChoice::JsonSchema,
                Some("json_object") => ResponseFormatChoice::JsonObject,
                Some(other) => {
                    return Err(ConfigError::new(
                        "LLM_RESPONSE_FORMAT",
                        format!("expected json_schema or json_object, got `{other}`"),
                    ));
                }
            },
        })
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
    pub fn gmail_from_env() -> Result<Option<GmailConfig>, ConfigError> {
        Self::gmail_from(env)
    }

    /// `gmail_from_env` over any variable lookup (tests pass a map).
    pub fn gmail_from(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<GmailConfig>, ConfigError> {
        Self::gmail_read(&Vars(get))
    }

    /// `BILLABLE_TOKEN_KEY` with `GMAIL_CLIENT_SECRET_FILE`: users may store their
    /// own Gmail grant, sealed under that key, for unattended scans.
    fn grants_read<F: Fn(&str) -> Option<String>>(
        vars: &Vars<F>,
    ) -> Result<Option<gmail::Grants>, ConfigError> {
        let Some(key) = vars.get(gmail::vault::KEY_VAR) else {
            return Ok(None);
        };
        let key = gmail::vault::TokenKey::parse(&key)
            .map_err(|e| ConfigError::new(gmail::vault::KEY_VAR, e.to_string()))?;
        let secret_file = vars.path("GMAIL_CLIENT_SECRET_FILE").ok_or_else(|| {
            ConfigError::new(
                "GMAIL_CLIENT_SECRET_FILE",
                "stored Gmail authorisations are exchanged through your OAuth client: set it \
                 to the client secret downloaded from Google Cloud",
            )
        })?;
        Ok(Some(gmail::Grants {
            key: std::sync::Arc::new(key),
            secret_file,
        }))
    }

    fn gmail_read<F: Fn(&str) -> Option<String>>(
        vars: &Vars<F>,
    ) -> Result<Option<GmailConfig>, ConfigError> {
        let auth = if let Some(token) = vars.get("GMAIL_ACCESS_TOKEN") {
            GmailAuth::AccessToken(token.into())
        } else if let Some(key) = vars.path("GMAIL_SERVICE_ACCOUNT_FILE") {
            GmailAuth::ServiceAccount {
                key_file: key,
                subject: vars.get("GMAIL_SERVICE_ACCOUNT_SUBJECT"),
            }
        } else if let Some(secret_file) = vars.path("GMAIL_CLIENT_SECRET_FILE") {
            let token_file = match vars.path("GMAIL_TOKEN_FILE") {
                Some(t) => t,
                None => gmail::auth::default_token_file().ok_or_else(|| {
                    ConfigError::new(
                        "GMAIL_TOKEN_FILE",
                        "no config directory could be determined; set it",
                    )
                })?,
            };
            GmailAuth::Installed {
                secret_file,
                token_file,
            }
        } else {
            return Ok(None);
        };
        let profile = match vars.get("GMAIL_QUOTA_PROFILE") {
            Some(p) => {
                QuotaProfile::parse(&p).map_err(|m| ConfigError::new("GMAIL_QUOTA_PROFILE", m))?
            }
            None => QuotaProfile::default(),
        };
        let mut costs = QuotaCosts::for_profile(profile);
        for (var, slot) in [
            ("GMAIL_QUOTA_UNITS_PER_SEC", &mut costs.units_per_sec),
            ("GMAIL_QUOTA_COST_GET", &mut costs.get),
            ("GMAIL_QUOTA_COST_LIST", &mut costs.list),
            ("GMAIL_QUOTA_COST_HISTORY", &mut costs.history),
        ] {
            if let Some(n) = vars.positive(var)? {
                *slot = n;
            }
        }
        let mut config = GmailConfig::new(auth);
        config.grants = Self::grants_read(vars)?;
        config.costs = costs;
        config.concurrency = vars
            .positive("GMAIL_CONCURRENCY")?
            .map_or(8, |n| n as usize);
        if let Some(url) = vars.get("GMAIL_API_BASE_URL") {
            config = config.with_base_url(url);
        }
        Ok(Some(config))
    }
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
    /// `BILLABLE_MAX_MCP_SESSIONS`: MCP sessions held at once (each costs about 120 KB
    /// until it is closed or idle for 5 minutes); a new one past it gets 503. Default 1000.
    pub max_mcp_sessions: usize,
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
            max_mcp_sessions: 1000,
            supabase_url: None,
            supabase_jwt_secret: None,
        }
    }
}

impl ServerConfig {
    /// The settings the environment gives; unset or empty variables keep the defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env)
    }

    /// As `from_env`, reading variables through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::read(&Vars(get))
    }

    fn read<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Self, ConfigError> {
        let d = ServerConfig::default();
        let supabase_url = vars
            .get("SUPABASE_URL")
            .map(|u| u.trim_end_matches('/').to_owned());
        if let Some(url) = &supabase_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::new(
                "SUPABASE_URL",
                format!("expected an http(s) URL such as https://abc.supabase.co, got `{url}`"),
            ));
        }
        Ok(ServerConfig {
            bind: vars.get("BILLABLE_BIND").unwrap_or(d.bind),
            api_token: vars.secret("BILLABLE_API_TOKEN"),
            max_body_bytes: vars
                .number("BILLABLE_MAX_BODY_BYTES")?
                .unwrap_or(d.max_body_bytes),
            user_rps: vars.number("BILLABLE_USER_RPS")?.unwrap_or(d.user_rps),
            request_timeout_secs: vars
                .number("BILLABLE_REQUEST_TIMEOUT_SECS")?
                .unwrap_or(d.request_timeout_secs),
            shutdown_grace_secs: vars
                .number("BILLABLE_SHUTDOWN_GRACE_SECS")?
                .unwrap_or(d.shutdown_grace_secs),
            allowed_origins: vars
                .list("BILLABLE_ALLOWED_ORIGINS")
                .unwrap_or(d.allowed_origins),
            allowed_hosts: vars
                .list("BILLABLE_ALLOWED_HOSTS")
                .unwrap_or(d.allowed_hosts),
            max_mcp_sessions: vars
                .number("BILLABLE_MAX_MCP_SESSIONS")?
                .unwrap_or(d.max_mcp_sessions),
            supabase_url,
            supabase_jwt_secret: vars.secret("SUPABASE_JWT_SECRET"),
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

    fn gmail(vars: &[(&str, &str)]) -> Result<Option<GmailConfig>, ConfigError> {
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
mod from_env_tests {
    use std::cell::RefCell;
    use std::collections::{BTreeSet, HashMap};

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        Config::from_lookup(|k| map.get(k).map(|v| (*v).to_owned()))
    }

    #[test]
    fn nothing_set_is_the_embedded_defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.analyzer_choice(), AnalyzerChoice::Rules);
        assert_eq!(c.supabase_rest_url(), None);
    }

    #[test]
    fn every_part_is_read_from_one_lookup_and_empty_counts_as_unset() {
        let c = config(&[
            ("BILLABLE_DB", "/data/b.sqlite3"),
            ("BILLABLE_MAILDIR", " /mail "),
            ("BILLABLE_MBOX", "  "),
            ("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1"),
            ("LLM_TPM", "0"),
            ("GMAIL_ACCESS_TOKEN", "ya29.x"),
            ("GMAIL_CONCURRENCY", "3"),
            ("SUPABASE_URL", "https://abc.supabase.co/"),
            ("SUPABASE_ANON_KEY", "the-anon-key"),
            ("SUPABASE_ACCESS_TOKEN", "the-user-jwt"),
            ("DATABASE_URL", "postgres://u:pw@db/billable"),
            ("BILLABLE_USER_RPS", "0"),
            ("SUPABASE_JWT_SECRET", "s3cret"),
        ])
        .unwrap();
        assert_eq!(c.db, Some(PathBuf::from("/data/b.sqlite3")));
        assert_eq!(c.source, SourceConfig::Maildir("/mail".into()));
        assert_eq!(c.analyzer_choice(), AnalyzerChoice::Llm);
        assert_eq!(c.llm.tpm, None, "0 is no limit");
        assert_eq!(c.gmail.as_ref().map(|g| g.concurrency), Some(3));
        assert_eq!(
            c.supabase_rest_url().as_deref(),
            Some("https://abc.supabase.co/rest/v1")
        );
        assert_eq!(
            c.supabase_anon_key.as_ref().map(Secret::expose),
            Some("the-anon-key")
        );
        assert_eq!(
            c.supabase_access_token.as_ref().map(Secret::expose),
            Some("the-user-jwt")
        );
        assert!(c.database_url.is_some());
        assert_eq!(c.server.user_rps, 0);
        assert!(c.server.supabase_mode());
        let printed = format!("{c:?}");
        for secret in ["ya29", "the-anon-key", "the-user-jwt", "pw@", "s3cret"] {
            assert!(!printed.contains(secret), "{secret} printed: {printed}");
        }
    }

    #[test]
    fn a_value_that_cannot_be_used_is_an_error_naming_its_variable() {
        for (var, value) in [
            ("LLM_CONCURRENCY", "0"),
            ("LLM_RPM", "many"),
            ("BILLABLE_MAX_BODY_BYTES", "10MiB"),
            ("BILLABLE_SHUTDOWN_GRACE_SECS", "-1"),
            ("SUPABASE_URL", "abc.supabase.co"),
        ] {
            let e = config(&[(var, value)]).unwrap_err();
            assert_eq!(e.var, var);
            let message = crate::Error::from(e).to_string();
            assert!(
                message.contains(var) && message.contains(value),
                "{message}"
            );
        }
        let e = config(&[("GMAIL_ACCESS_TOKEN", "t"), ("GMAIL_QUOTA_COST_GET", "0")]).unwrap_err();
        assert_eq!(e.var, "GMAIL_QUOTA_COST_GET");
        let e = crate::Error::from(config(&[("LLM_TPM", "x")]).unwrap_err());
        assert_eq!(e.kind(), crate::error::ErrorKind::InvalidInput);
    }

    #[test]
    fn two_mail_sources_are_an_error_naming_both() {
        let e = config(&[("BILLABLE_MBOX", "/m.mbox"), ("BILLABLE_EML_DIR", "/eml")]).unwrap_err();
        let message = e.to_string();
        assert!(
            message.contains("BILLABLE_MBOX") && message.contains("BILLABLE_EML_DIR"),
            "{message}"
        );
    }

    /// Every variable `from_env` asks for, over the branches that ask different ones.
    fn variables_read() -> BTreeSet<String> {
        let asked = RefCell::new(BTreeSet::new());
        for credential in [
            None,
            Some("GMAIL_ACCESS_TOKEN"),
            Some("GMAIL_SERVICE_ACCOUNT_FILE"),
            Some("GMAIL_CLIENT_SECRET_FILE"),
        ] {
            Config::from_lookup(|k| {
                asked.borrow_mut().insert(k.to_owned());
                (Some(k) == credential).then(|| "/x".to_owned())
            })
            .unwrap();
        }
        asked.into_inner()
    }

    #[test]
    fn env_example_lists_exactly_the_variables_billable_reads() {
        let listed: BTreeSet<String> = include_str!("../.env.example")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_owned()))
            .filter(|k| k != "RUST_LOG")
            .collect();
        assert_eq!(listed, variables_read());
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
