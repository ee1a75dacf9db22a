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

/// A secret (a token, a signing key) that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
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
        assert_eq!(
            format!("{:?}", Secret::new("hunter2")),
            "Secret(<redacted>)"
        );
    }
}
