//! Gmail through google-gmail1: ids listed page by page (`messages.list`, or
//! `history.list` for an incremental scan), bodies fetched as `format=raw` and parsed
//! by the same code as local mail. Every call waits for the user's quota limiter
//! (governor, weighted in Gmail quota units) and is retried with backon on 429,
//! 403 rate limits, 5xx and connection errors, never before the server's Retry-After.
//! A rejected credential (401, a revoked grant) is one clear error, never retried.

pub mod auth;
pub mod vault;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryFutureExt};
use google_gmail1::api::Scope;
use google_gmail1::{Gmail, common, hyper_rustls, hyper_util};

use super::{Listed, MailError, MailQuery, MailSource, RawEmail};
use crate::domain::UserId;
use crate::limits::{Limit, Rate, SharedRates};

pub use auth::GmailAuth;

/// The HTTP(S) connector every Gmail client uses (plain http only for local fakes).
pub type Connector =
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// Google's default API root.
pub const DEFAULT_BASE_URL: &str = "https://gmail.googleapis.com/";
/// Ids per `messages.list` / `history.list` page (Gmail's maximum).
const PAGE_SIZE: u32 = 500;
/// Retry-After longer than this is treated as an outage: the scan stops (resumable)
/// instead of sleeping for minutes.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// Which of Google's two quota schemes the project is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuotaProfile {
    /// Projects created from May 2026: 100 units/s per user, messages.get 20.
    #[default]
    Y2026,
    /// Projects that used the API before May 2026: 250 units/s per user, get 5.
    Legacy,
}

impl QuotaProfile {
    /// `2026` or `legacy` (`GMAIL_QUOTA_PROFILE`).
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "2026" | "default" => Ok(QuotaProfile::Y2026),
            "legacy" => Ok(QuotaProfile::Legacy),
            other => Err(format!(
                "unknown Gmail quota profile `{other}`; use `2026` (projects created from May 2026) or `legacy`"
            )),
        }
    }
}

/// Units per second per user and what each method costs, as Google counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaCosts {
    pub units_per_sec: u32,
    pub get: u32,
    pub list: u32,
    pub history: u32,
    pub profile: u32,
}

impl QuotaCosts {
    pub fn for_profile(profile: QuotaProfile) -> Self {
        match profile {
            QuotaProfile::Y2026 => QuotaCosts {
                units_per_sec: 100,
                get: 20,
                list: 5,
                history: 2,
                profile: 1,
            },
            QuotaProfile::Legacy => QuotaCosts {
                units_per_sec: 250,
                get: 5,
                list: 5,
                history: 2,
                profile: 1,
            },
        }
    }
}

impl Default for QuotaCosts {
    fn default() -> Self {
        QuotaCosts::for_profile(QuotaProfile::default())
    }
}

/// One user's quota: a limit weighted in units, shared by all that user's scans (and
/// per-request sources), and by every process of the deployment when it shares its
/// limits.
pub struct UserQuota {
    limit: Limit,
    costs: QuotaCosts,
}

impl UserQuota {
    pub fn new(user: &UserId, costs: QuotaCosts, shared: Option<Arc<dyn SharedRates>>) -> Self {
        let per_second = costs.units_per_sec.max(1);
        let most = costs
            .get
            .max(costs.list)
            .max(costs.history)
            .max(costs.profile);
        // Half a second of burst: a full bucket at Google's end absorbs the jitter
        // between our clock and its, so a burst never lands as a 429.
        let rate = Rate {
            per_second: f64::from(per_second),
            burst: (per_second / 2).max(most).max(1),
        };
        UserQuota {
            limit: Limit::new(format!("gmail:{}", user.as_str()), rate, shared),
            costs,
        }
    }

    pub fn costs(&self) -> QuotaCosts {
        self.costs
    }

    /// Waits until `units` may be spent.
    pub async fn acquire(&self, units: u32) {
        self.limit.until_ready(units).await;
    }
}

/// How Gmail sources are built: where the API is, whose credentials, what quota.
#[derive(Clone, PartialEq)]
pub struct GmailConfig {
    /// API root (`GMAIL_API_BASE_URL`); tests point it at a local fake.
    pub base_url: String,
    pub auth: GmailAuth,
    pub costs: QuotaCosts,
    /// Bodies fetched at once per scan.
    pub concurrency: usize,
    /// Timeout of every request.
    pub timeout: Duration,
    /// Attempts after the first for a retryable failure.
    pub max_retries: usize,
    /// Shortest backoff between attempts (grows exponentially, jittered).
    pub min_backoff: Duration,
    /// Users' own stored grants, when the server keeps them (`BILLABLE_TOKEN_KEY`).
    pub grants: Option<Grants>,
}

/// How users' stored Gmail grants are used: the key that opens them and the OAuth
/// client (`GMAIL_CLIENT_SECRET_FILE`) they were issued to.
#[derive(Debug, Clone, PartialEq)]
pub struct Grants {
    pub key: Arc<vault::TokenKey>,
    pub secret_file: std::path::PathBuf,
}

impl GmailConfig {
    pub fn new(auth: GmailAuth) -> Self {
        GmailConfig {
            base_url: DEFAULT_BASE_URL.to_owned(),
            auth,
            costs: QuotaCosts::default(),
            concurrency: 8,
            timeout: Duration::from_secs(30),
            max_retries: 6,
            min_backoff: Duration::from_millis(250),
            grants: None,
        }
    }

    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        let mut url = url.into();
        if !url.ends_with('/') {
            url.push('/');
        }
        self.base_url = url;
        self
    }
}

impl std::fmt::Debug for GmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GmailConfig")
            .field("base_url", &self.base_url)
            .field("auth", &self.auth)
            .field("costs", &self.costs)
            .field("grants", &self.grants)
            .finish_non_exhaustive()
    }
}

/// Hands out one Gmail source per user (cached) and keeps each user's quota limiter,
/// so every scan of that user shares it.
pub struct GmailHub {
    config: GmailConfig,
    quotas: Mutex<HashMap<String, Arc<UserQuota>>>,
    /// The deployment's shared buckets, when it has them: each user's quota holds
    /// across every process.
    shared: Option<Arc<dyn SharedRates>>,
    sources: Mutex<HashMap<String, Arc<GmailSource>>>,
    /// Sources reading with a user's stored grant, by user, with the sealed grant
    /// they were built from: a grant stored again builds a new one.
    granted: Mutex<HashMap<String, (String, Arc<GmailSource>)>>,
}

impl GmailHub {
    pub fn new(config: GmailConfig) -> Self {
        GmailHub {
            config,
            quotas: Mutex::new(HashMap::new()),
            shared: None,
            sources: Mutex::new(HashMap::new()),
            granted: Mutex::new(HashMap::new()),
        }
    }

    /// Charges each user's quota to the deployment's shared buckets.
    pub fn with_shared_rates(mut self, shared: Option<Arc<dyn SharedRates>>) -> Self {
        self.shared = shared;
        self
    }

    pub fn config(&self) -> &GmailConfig {
        &self.config
    }

    /// The user's quota limiter.
    pub fn quota(&self, user: &UserId) -> Arc<UserQuota> {
        let mut quotas = self.quotas.lock().unwrap_or_else(|p| p.into_inner());
        quotas
            .entry(user.as_str().to_owned())
            .or_insert_with(|| {
                Arc::new(UserQuota::new(user, self.config.costs, self.shared.clone()))
            })
            .clone()
    }

    /// The user's source with the configured credentials (cached per user).
    pub fn source(&self, user: &UserId) -> Result<Arc<GmailSource>, MailError> {
        if let Some(s) = self
            .sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(user.as_str())
        {
            return Ok(s.clone());
        }
        let auth = self.config.auth.for_user(user)?;
        let source = Arc::new(GmailSource::new(&self.config, auth, self.quota(user))?);
        self.sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(user.as_str().to_owned(), source.clone());
        Ok(source)
    }

    /// Seals `refresh_token` for `user` to store, when this server keeps grants.
    pub fn seal_grant(&self, user: &UserId, refresh_token: &str) -> Result<String, MailError> {
        let grants = self.grants()?;
        Ok(grants.key.seal(user.as_str(), refresh_token))
    }

    fn grants(&self) -> Result<&Grants, MailError> {
        self.config.grants.as_ref().ok_or_else(|| {
            MailError::Upstream(format!(
                "this server does not keep Gmail authorisations: its operator sets {} and \
                 GMAIL_CLIENT_SECRET_FILE to enable them",
                vault::KEY_VAR
            ))
        })
    }

    /// Whether users' stored grants are read (see [`Grants`]).
    pub fn keeps_grants(&self) -> bool {
        self.config.grants.is_some()
    }

    /// A source reading `user`'s mailbox with their stored grant `sealed` (cached
    /// while the grant is the same), sharing the user's quota.
    pub fn source_with_grant(
        &self,
        user: &UserId,
        sealed: &str,
    ) -> Result<Arc<GmailSource>, MailError> {
        let grants = self.grants()?;
        if let Some((held, source)) = self
            .granted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(user.as_str())
            && held == sealed
        {
            return Ok(source.clone());
        }
        let refresh_token = grants
            .key
            .open(user.as_str(), sealed)
            .map_err(|e| MailError::Upstream(e.to_string()))?;
        let auth = GmailAuth::Refresh {
            secret_file: grants.secret_file.clone(),
            refresh_token: refresh_token.into(),
        };
        let source = Arc::new(GmailSource::new(&self.config, auth, self.quota(user))?);
        self.granted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                user.as_str().to_owned(),
                (sealed.to_owned(), source.clone()),
            );
        Ok(source)
    }

    /// A source reading with an access token the request supplied (e.g. the HTTP
    /// server's caller), sharing the user's quota. Not cached: the token is the
    /// caller's and may change on every request.
    pub fn source_with_token(
        &self,
        user: &UserId,
        access_token: impl Into<String>,
    ) -> Result<Arc<GmailSource>, MailError> {
        let auth = GmailAuth::AccessToken(access_token.into().into());
        Ok(Arc::new(GmailSource::new(
            &self.config,
            auth,
            self.quota(user),
        )?))
    }
}

/// Builds the HTTPS connector (plain http is allowed for local fakes). Native roots
/// when the system has them; without any, https fails at the handshake with a clear
/// error while http still works.
pub fn connector() -> Connector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = match hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider.clone())
    {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("no system CA certificates for Gmail ({e}); https will fail");
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                // Not input-dependent: ring supports rustls' default versions.
                .expect("the ring provider supports TLS 1.2 and 1.3")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        }
    };
    builder
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build()
}

/// Gmail as a mail source, for one user.
pub struct GmailSource {
    hub: Gmail<Connector>,
    quota: Arc<UserQuota>,
    config: GmailConfig,
    owner: tokio::sync::OnceCell<String>,
    /// What to do when Google refuses the credentials ([`GmailAuth::how_to_renew`]).
    renew: &'static str,
}

/// What one failed request means.
#[derive(Debug)]
enum Failure {
    /// 429, 403 rate limits, 5xx, connection errors, timeouts: retry after a wait.
    Transient {
        what: String,
        retry_after: Option<Duration>,
    },
    /// 401 or a credential that cannot be refreshed.
    Unauthorized(String),
    NotFound(String),
    /// Data from Gmail that is not what the API promises.
    Malformed(String),
    /// Anything else retrying will not fix.
    Fatal(String),
}

impl Failure {
    fn retryable(&self) -> bool {
        matches!(self, Failure::Transient { retry_after, .. } if retry_after.is_none_or(|d| d <= MAX_RETRY_AFTER))
    }

    fn into_mail(self, context: &str, renew: &str) -> MailError {
        match self {
            Failure::Unauthorized(why) => MailError::Upstream(format!(
                "Gmail rejected the credentials while trying to {context} ({why}): {renew}; \
                 what was scanned so far is saved"
            )),
            Failure::NotFound(why) => MailError::NotFound(why),
            Failure::Malformed(why) => {
                MailError::Malformed(format!("Gmail sent unreadable data ({context}): {why}"))
            }
            Failure::Transient { what, retry_after } => MailError::Upstream(format!(
                "Gmail is unavailable: failed to {context} after retries ({what}{}). \
                 Scan again later; what was done is saved and the scan resumes",
                retry_after
                    .map(|d| format!(", asked to wait {}s", d.as_secs()))
                    .unwrap_or_default()
            )),
            Failure::Fatal(why) => MailError::Upstream(format!("failed to {context}: {why}")),
        }
    }
}

/// Captures the status and Retry-After of a failed response (google-gmail1 keeps
/// only the JSON body in its error).
#[derive(Default)]
struct Capture {
    status: Option<u16>,
    retry_after: Option<Duration>,
}

impl common::Delegate for Capture {
    fn http_failure(
        &mut self,
        response: &common::Response,
        _err: Option<&serde_json::Value>,
    ) -> common::Retry {
        self.status = Some(response.status().as_u16());
        self.retry_after = retry_after(response.headers());
        common::Retry::Abort
    }
}

fn retry_after(headers: &google_gmail1::hyper::HeaderMap) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    // HTTP-date form.
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or_default())
}

fn classify<T>(result: common::Result<(common::Response, T)>, cap: Capture) -> Result<T, Failure> {
    let (status, reason, message) = match result {
        Ok((_, value)) => return Ok(value),
        Err(common::Error::BadRequest(json)) => {
            let err = &json["error"];
            let status = cap
                .status
                .or_else(|| err["code"].as_u64().and_then(|c| u16::try_from(c).ok()))
                .unwrap_or(400);
            let reason = err["errors"][0]["reason"]
                .as_str()
                .or_else(|| err["status"].as_str())
                .unwrap_or_default()
                .to_owned();
            let message = err["message"].as_str().unwrap_or_default().to_owned();
            (status, reason, message)
        }
        Err(common::Error::Failure(response)) => {
            (response.status().as_u16(), String::new(), String::new())
        }
        Err(common::Error::MissingToken(e)) => {
            return Err(Failure::Unauthorized(format!("no access token: {e}")));
        }
        Err(common::Error::HttpError(e)) => {
            return Err(Failure::Transient {
                what: format!("connection failed: {e}"),
                retry_after: None,
            });
        }
        Err(common::Error::JsonDecodeError(_, e)) => return Err(Failure::Malformed(e.to_string())),
        Err(e) => return Err(Failure::Fatal(e.to_string().trim().to_owned())),
    };
    let what = if message.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {message}")
    };
    Err(match status {
        401 => Failure::Unauthorized(what),
        403 if matches!(
            reason.as_str(),
            "rateLimitExceeded" | "userRateLimitExceeded" | "RESOURCE_EXHAUSTED"
        ) =>
        {
            Failure::Transient {
                what,
                retry_after: cap.retry_after,
            }
        }
        403 => Failure::Fatal(format!(
            "{what}. Gmail refused access: check that the Gmail API is enabled for the project \
             and the grant includes the gmail.readonly scope"
        )),
        404 => Failure::NotFound(what),
        429 | 500 | 502 | 503 | 504 => Failure::Transient {
            what,
            retry_after: cap.retry_after,
        },
        _ => Failure::Fatal(what),
    })
}

/// Gmail's `after:`/`before:` take epoch seconds, so days start at midnight in the
/// user's time zone rather than Google's.
fn midnight(day: NaiveDate, tz: Tz) -> i64 {
    let naive = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|d| d.timestamp())
        .unwrap_or_else(|| naive.and_utc().timestamp())
}

/// The `q` parameter for a scan's query and date range.
pub fn gmail_q(query: &MailQuery) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(q) = query
        .query
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
    {
        parts.push(q.to_owned());
    }
    if let Some(a) = query.after {
        parts.push(format!("after:{}", midnight(a, query.timezone)));
    }
    if let Some(b) = query.before {
        parts.push(format!("before:{}", midnight(b, query.timezone)));
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The longest `q` a candidate listing sends. Gmail documents no limit, but request
/// lines past a few kilobytes are refused on the way; the terms of a long client list
/// go into several queries instead, their ids merged.
pub const MAX_Q_CHARS: usize = 1500;

/// Gmail's tabs of automated mail, left out of a candidate listing unless the user's
/// own query names a category.
const AUTOMATED_CATEGORIES: [&str; 3] = ["promotions", "social", "forums"];

/// The words that can make a message one of a client's: every client's domains,
/// addresses, name, aliases and keywords (subject keywords, but Gmail also finds them
/// in a forwarded header or the quoted thread, as the analyzer's thread match does).
/// Case-insensitive duplicates are dropped.
pub fn candidate_terms(settings: &crate::domain::Settings) -> Vec<String> {
    let mut seen = HashSet::new();
    settings
        .clients
        .iter()
        .flat_map(|c| {
            c.domains
                .iter()
                .chain(&c.addresses)
                .chain(std::iter::once(&c.name))
                .chain(&c.aliases)
                .chain(&c.keywords)
        })
        .map(|t| t.trim().trim_start_matches('@').to_owned())
        .filter(|t| !t.is_empty() && seen.insert(t.to_lowercase()))
        .collect()
}

/// One candidate word as a Gmail search term: quotes, braces and parentheses dropped
/// (they are Gmail syntax), a phrase quoted; None when nothing is left.
fn gmail_term(word: &str) -> Option<String> {
    let cleaned: String = word
        .chars()
        .map(|c| if "\"{}()".contains(c) { ' ' } else { c })
        .collect();
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    let plain = |w: &str| {
        w.chars()
            .all(|c| c.is_alphanumeric() || ".@_+-'&".contains(c))
            && !w.starts_with('-')
            && !w.contains(':')
            && w != "OR"
            && w != "AND"
    };
    match words.as_slice() {
        [] => None,
        [one] if plain(one) => Some((*one).to_owned()),
        _ => Some(format!("\"{}\"", words.join(" "))),
    }
}

/// The `messages.list` queries of a scan. Without candidate words, the one query of
/// [`gmail_q`] (everything, or the user's query and dates). With them, each query is
/// `{word word …}` (Gmail's any-of) over a share of the words, without Gmail's
/// automated categories unless the user's query names one, and with the user's query
/// and dates, each query at most [`MAX_Q_CHARS`] long.
pub fn gmail_queries(query: &MailQuery) -> Vec<Option<String>> {
    let base = gmail_q(query);
    let terms: Vec<String> = query
        .candidates
        .iter()
        .filter_map(|w| gmail_term(w))
        .collect();
    if terms.is_empty() {
        return vec![base];
    }
    let mut tail = String::new();
    let names_category = query
        .query
        .as_deref()
        .is_some_and(|q| q.to_ascii_lowercase().contains("category:"));
    if !names_category {
        for c in AUTOMATED_CATEGORIES {
            tail.push_str(" -category:");
            tail.push_str(c);
        }
    }
    if let Some(b) = &base {
        tail.push_str(" (");
        tail.push_str(b);
        tail.push(')');
    }
    let room = MAX_Q_CHARS.saturating_sub(tail.len() + 2);
    let mut queries = Vec::new();
    let mut group = String::new();
    for term in terms {
        if !group.is_empty() && group.len() + 1 + term.len() > room {
            queries.push(Some(format!("{{{group}}}{tail}")));
            group.clear();
        }
        if !group.is_empty() {
            group.push(' ');
        }
        group.push_str(&term);
    }
    queries.push(Some(format!("{{{group}}}{tail}")));
    queries
}

fn listed(m: google_gmail1::api::Message) -> Option<Listed> {
    Some(Listed {
        id: m.id?,
        thread_id: m.thread_id,
        raw: None,
    })
}

impl GmailSource {
    /// A source for one user's mailbox with the given credentials and quota.
    pub fn new(
        config: &GmailConfig,
        auth: GmailAuth,
        quota: Arc<UserQuota>,
    ) -> Result<Self, MailError> {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_max_idle_per_host(config.concurrency.max(1) * 2)
                .build(connector());
        let renew = auth.how_to_renew();
        let token = auth.token_source(config)?;
        let mut hub = Gmail::new(client, token);
        hub.base_url(config.base_url.clone());
        hub.root_url(config.base_url.clone());
        Ok(GmailSource {
            hub,
            quota,
            config: config.clone(),
            owner: tokio::sync::OnceCell::new(),
            renew,
        })
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.config.min_backoff)
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(self.config.max_retries)
            .with_jitter()
    }

    /// Runs one API call with quota, timeout and retries.
    async fn call<T, F, Fut>(&self, units: u32, context: &str, attempt: F) -> Result<T, MailError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let timeout = self.config.timeout;
        let once = || async {
            self.quota.acquire(units).await;
            match tokio::time::timeout(timeout, attempt()).await {
                Ok(result) => result,
                Err(_) => Err(Failure::Transient {
                    what: format!("no answer within {}s", timeout.as_secs()),
                    retry_after: None,
                }),
            }
        };
        once.retry(self.backoff())
            .when(Failure::retryable)
            .adjust(|err, backoff| match err {
                // Never before the server's Retry-After; the jittered backoff when longer.
                Failure::Transient {
                    retry_after: Some(wait),
                    ..
                } => backoff.map(|b| b.max(*wait)),
                _ => backoff,
            })
            .notify(|err, wait| {
                tracing::debug!("Gmail: retrying {context} in {wait:?} after {err:?}")
            })
            .map_err(|f| f.into_mail(context, self.renew))
            .await
    }

    async fn profile(&self) -> Result<google_gmail1::api::Profile, MailError> {
        self.call(
            self.quota.costs.profile,
            "read the Gmail profile",
            || async {
                let mut cap = Capture::default();
                let result = self
                    .hub
                    .users()
                    .get_profile("me")
                    .add_scope(Scope::Readonly)
                    .delegate(&mut cap)
                    .doit()
                    .await;
                classify(result, cap)
            },
        )
        .await
    }

    async fn list_page(
        &self,
        q: Option<&str>,
        token: Option<&str>,
    ) -> Result<google_gmail1::api::ListMessagesResponse, MailError> {
        let context = match q {
            Some(q) => format!("list Gmail messages for query `{q}`"),
            None => "list Gmail messages".to_owned(),
        };
        self.call(self.quota.costs.list, &context, || async {
            let mut cap = Capture::default();
            let mut call = self
                .hub
                .users()
                .messages_list("me")
                .max_results(PAGE_SIZE)
                .add_scope(Scope::Readonly);
            if let Some(q) = q {
                call = call.q(q);
            }
            if let Some(t) = token {
                call = call.page_token(t);
            }
            let result = call.delegate(&mut cap).doit().await;
            classify(result, cap)
        })
        .await
    }

    /// One page of history; `Ok(None)` when the start id is too old (404).
    async fn history_page(
        &self,
        start: u64,
        token: Option<&str>,
    ) -> Result<Option<google_gmail1::api::ListHistoryResponse>, MailError> {
        let result = self
            .call(self.quota.costs.history, "list Gmail history", || async {
                let mut cap = Capture::default();
                let mut call = self
                    .hub
                    .users()
                    .history_list("me")
                    .start_history_id(start)
                    .add_history_types("messageAdded")
                    .max_results(PAGE_SIZE)
                    .add_scope(Scope::Readonly);
                if let Some(t) = token {
                    call = call.page_token(t);
                }
                let result = call.delegate(&mut cap).doit().await;
                classify(result, cap)
            })
            .await;
        match result {
            Ok(page) => Ok(Some(page)),
            Err(MailError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The full listing, page by page.
    fn list_all<'a>(&'a self, q: Option<String>) -> BoxStream<'a, Result<Listed, MailError>> {
        enum Page {
            Next(Option<String>),
            Done,
        }
        stream::unfold(Page::Next(None), move |state| {
            let q = q.clone();
            async move {
                let Page::Next(token) = state else {
                    return None;
                };
                match self.list_page(q.as_deref(), token.as_deref()).await {
                    Ok(page) => {
                        let items: Vec<_> = page
                            .messages
                            .unwrap_or_default()
                            .into_iter()
                            .filter_map(listed)
                            .map(Ok)
                            .collect();
                        let next = match page.next_page_token {
                            Some(t) if !t.is_empty() => Page::Next(Some(t)),
                            _ => Page::Done,
                        };
                        Some((stream::iter(items), next))
                    }
                    Err(e) => Some((stream::iter(vec![Err(listing_failed(e))]), Page::Done)),
                }
            }
        })
        .flatten()
        .boxed()
    }

    async fn get_raw(&self, id: &str) -> Result<RawEmail, MailError> {
        let context = format!("fetch Gmail message {id}");
        let message = self
            .call(self.quota.costs.get, &context, || async {
                let mut cap = Capture::default();
                let result = self
                    .hub
                    .users()
                    .messages_get("me", id)
                    .format("raw")
                    .add_scope(Scope::Readonly)
                    .delegate(&mut cap)
                    .doit()
                    .await;
                classify(result, cap)
            })
            .await
            .map_err(|e| match e {
                MailError::NotFound(_) => MailError::NotFound(id.to_owned()),
                e => e,
            })?;
        let bytes = message.raw.ok_or_else(|| {
            MailError::Malformed(format!("Gmail returned message {id} without its raw body"))
        })?;
        Ok(RawEmail {
            id: message.id.unwrap_or_else(|| id.to_owned()),
            thread_id: message.thread_id,
            labels: message.label_ids.unwrap_or_default(),
            // Attachment bodies go at once, not when the chunk is parsed.
            bytes: super::files::slim(bytes),
        })
    }
}

#[async_trait]
impl MailSource for GmailSource {
    fn describe(&self) -> String {
        match self.owner.get() {
            Some(address) => format!("gmail {address}"),
            None => "gmail".to_owned(),
        }
    }

    fn list<'a>(&'a self, query: &'a MailQuery) -> BoxStream<'a, Result<Listed, MailError>> {
        let queries = gmail_queries(query);
        if let [q] = queries.as_slice() {
            return self.list_all(q.clone());
        }
        // A message several queries find is listed once.
        first_of_each_id(stream::iter(queries).flat_map(move |q| self.list_all(q)))
    }

    fn listing(&self, query: &MailQuery) -> Option<String> {
        if query.candidates.is_empty() {
            return Some(
                "every message: no clients are configured, so any mail could be billable"
                    .to_owned(),
            );
        }
        let n = gmail_queries(query).len();
        let queries = if n == 1 { "query" } else { "queries" };
        Some(format!(
            "only mail that names a configured client ({n} Gmail {queries})"
        ))
    }

    fn list_since<'a>(
        &'a self,
        query: &'a MailQuery,
        cursor: &'a str,
    ) -> BoxStream<'a, Result<Listed, MailError>> {
        let Ok(start) = cursor.trim().parse::<u64>() else {
            return self.list(query);
        };
        if !query.is_unfiltered() || !query.candidates.is_empty() {
            // history.list has no query: a filtered scan lists (ids only, cheap), and
            // so does a candidate listing, which then also finds older mail of a
            // client added since the last scan.
            return self.list(query);
        }
        enum Page {
            Start,
            Next(String),
            Done,
        }
        let added = stream::unfold(Page::Start, move |state| async move {
            let token = match state {
                Page::Start => None,
                Page::Next(t) => Some(t),
                Page::Done => return None,
            };
            let first = token.is_none();
            match self.history_page(start, token.as_deref()).await {
                Ok(Some(page)) => {
                    let next = match page.next_page_token {
                        Some(t) if !t.is_empty() => Page::Next(t),
                        _ => Page::Done,
                    };
                    Some((stream::iter(page_added(page.history)).boxed(), next))
                }
                // A stale history id: fall back to the full listing.
                Ok(None) if first => {
                    tracing::info!("Gmail history id {start} has expired; listing all mail");
                    Some((self.list(query), Page::Done))
                }
                Ok(None) => Some((
                    stream::iter(vec![Err(MailError::Upstream(
                        "Gmail history expired while it was being read; scan again".to_owned(),
                    ))])
                    .boxed(),
                    Page::Done,
                )),
                Err(e) => Some((
                    stream::iter(vec![Err(listing_failed(e))]).boxed(),
                    Page::Done,
                )),
            }
        })
        .flatten();
        first_of_each_id(added)
    }

    async fn get(&self, id: &str) -> Result<RawEmail, MailError> {
        self.get_raw(id).await
    }

    async fn fetch_many(&self, listed: Vec<Listed>) -> Vec<Result<RawEmail, MailError>> {
        let mut out = Vec::with_capacity(listed.len());
        let mut fetches = stream::iter(listed)
            .map(|l| async move {
                match l.raw {
                    Some(raw) => Ok(raw),
                    None => self.get_raw(&l.id).await,
                }
            })
            .buffered(self.config.concurrency.max(1));
        while let Some(result) = fetches.next().await {
            // An outage ends the batch; the rest stay unprocessed for the next scan.
            let stop = matches!(result, Err(MailError::Upstream(_)));
            out.push(result);
            if stop {
                break;
            }
        }
        out
    }

    async fn owner_addresses(&self) -> Result<Vec<String>, MailError> {
        let address = self
            .owner
            .get_or_try_init(|| async {
                let profile = self.profile().await?;
                profile.email_address.ok_or_else(|| {
                    MailError::Upstream("Gmail's profile has no email address".to_owned())
                })
            })
            .await?;
        Ok(vec![address.clone()])
    }

    async fn cursor(&self) -> Result<Option<String>, MailError> {
        let profile = self.profile().await?;
        if let Some(address) = profile.email_address {
            let _ = self.owner.set(address);
        }
        Ok(profile.history_id.map(|h| h.to_string()))
    }
}

/// The listing with each message id once (the first time it comes); errors pass.
fn first_of_each_id<'a>(
    listing: impl futures::Stream<Item = Result<Listed, MailError>> + Send + 'a,
) -> BoxStream<'a, Result<Listed, MailError>> {
    let mut seen = HashSet::new();
    listing
        .filter(move |item| {
            let keep = match item {
                Ok(l) => seen.insert(crate::mail::id_key(&l.id)),
                Err(_) => true,
            };
            futures::future::ready(keep)
        })
        .boxed()
}

/// A listing that fails part-way fails the scan (which is then resumable), never
/// one message: a scan that went on would look complete and record its cursor.
fn listing_failed(e: MailError) -> MailError {
    match e {
        MailError::Malformed(m) | MailError::NotFound(m) => MailError::Upstream(m),
        e => e,
    }
}

/// The ids of messages added in a page of history, skipping spam and trash (as
/// `messages.list` does).
fn page_added(history: Option<Vec<google_gmail1::api::History>>) -> Vec<Result<Listed, MailError>> {
    history
        .unwrap_or_default()
        .into_iter()
        .flat_map(|h| h.messages_added.unwrap_or_default())
        .filter_map(|added| added.message)
        .filter(|m| {
            !m.label_ids
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|l| l == "SPAM" || l == "TRASH")
        })
        .filter_map(listed)
        .map(Ok)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates(words: &[&str]) -> MailQuery {
        MailQuery {
            candidates: words.iter().map(|w| (*w).to_owned()).collect(),
            ..MailQuery::default()
        }
    }

    #[test]
    fn candidate_words_are_every_clients_domains_addresses_names_aliases_and_keywords() {
        let settings = crate::domain::Settings::from_json(serde_json::json!({"clients": [
            {"name": "Acme Corp", "domains": ["acme.com"], "addresses": ["jane@gmail.com"],
             "keywords": ["Roadrunner", "acme"], "aliases": ["Acme Labs", "acmelabs.io"]},
            {"name": "Globex", "domains": ["globex.io"]}
        ]}))
        .unwrap();
        let mut terms = candidate_terms(&settings);
        terms.sort();
        assert_eq!(
            terms,
            [
                "Acme Corp",
                "Acme Labs",
                "Globex",
                "Roadrunner",
                "acme",
                "acme.com",
                "acmelabs.io",
                "globex.io",
                "jane@gmail.com"
            ]
        );
    }

    #[test]
    fn a_candidate_query_is_any_of_the_words_without_automated_tabs_and_with_the_users_query() {
        let mut query = candidates(&["acme.com", "Acme Corp", "jane@acme.com", "a \"quoted\" {x}"]);
        assert_eq!(
            gmail_queries(&query),
            [Some(
                "{acme.com \"Acme Corp\" jane@acme.com \"a quoted x\"} -category:promotions -category:social -category:forums"
                    .to_owned()
            )]
        );
        query.query = Some("subject:contract OR label:work".to_owned());
        query.after = NaiveDate::from_ymd_opt(2026, 11, 1);
        let q = gmail_queries(&query).remove(0).unwrap();
        assert!(
            q.ends_with(" (subject:contract OR label:work after:1793491200)"),
            "{q}"
        );
        // The user's own category choice wins.
        query.query = Some("category:promotions".to_owned());
        let q = gmail_queries(&query).remove(0).unwrap();
        assert!(!q.contains("-category:"), "{q}");
        // Syntax words are quoted, so a client called OR or -x is a word.
        assert_eq!(
            gmail_queries(&candidates(&["OR", "-x", "a:b"])),
            [Some(
                "{\"OR\" \"-x\" \"a:b\"} -category:promotions -category:social -category:forums"
                    .to_owned()
            )]
        );
        // No words: the query as before (everything when the user gave none).
        assert_eq!(gmail_queries(&MailQuery::default()), [None]);
        assert_eq!(gmail_queries(&candidates(&[" ", "{}"])), [None]);
    }

    #[test]
    fn a_long_client_list_is_split_into_queries_of_bounded_length_covering_every_word() {
        let words: Vec<String> = (0..2000).map(|i| format!("client{i}.example")).collect();
        let query = MailQuery {
            candidates: words.clone(),
            query: Some("-label:done".to_owned()),
            ..MailQuery::default()
        };
        let queries: Vec<String> = gmail_queries(&query).into_iter().flatten().collect();
        assert!(queries.len() > 10, "{}", queries.len());
        let mut covered = Vec::new();
        for q in &queries {
            assert!(q.len() <= MAX_Q_CHARS, "{} chars", q.len());
            assert!(q.ends_with(" (-label:done)"), "{q}");
            let group = q.trim_start_matches('{').split('}').next().unwrap();
            covered.extend(group.split(' ').map(str::to_owned));
        }
        assert_eq!(covered, words);
    }

    #[test]
    fn date_ranges_become_epoch_seconds_at_midnight_in_the_users_zone() {
        let query = MailQuery {
            query: Some("from:acme.com".to_owned()),
            after: NaiveDate::from_ymd_opt(2026, 11, 1),
            before: NaiveDate::from_ymd_opt(2026, 11, 2),
            timezone: chrono_tz::America::New_York,
            candidates: Vec::new(),
        };
        // Midnight in New York on 1 Nov 2026 (EDT, UTC-4) and 2 Nov (EST, UTC-5).
        assert_eq!(
            gmail_q(&query).as_deref(),
            Some("from:acme.com after:1793505600 before:1793595600")
        );
        assert_eq!(gmail_q(&MailQuery::default()), None);
    }

    #[test]
    fn quota_profiles_follow_googles_two_schemes() {
        let legacy = QuotaCosts::for_profile(QuotaProfile::Legacy);
        assert_eq!(
            (
                legacy.units_per_sec,
                legacy.get,
                legacy.list,
                legacy.history
            ),
            (250, 5, 5, 2)
        );
        let new = QuotaCosts::for_profile(QuotaProfile::parse("2026").unwrap());
        assert_eq!(
            (new.units_per_sec, new.get, new.list, new.history),
            (100, 20, 5, 2)
        );
        assert_eq!(QuotaProfile::parse("LEGACY"), Ok(QuotaProfile::Legacy));
        assert!(QuotaProfile::parse("2025").unwrap_err().contains("legacy"));
    }

    #[test]
    fn retry_after_is_read_in_seconds_or_as_a_date() {
        let mut headers = google_gmail1::hyper::HeaderMap::new();
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(
            "retry-after",
            "Thu, 01 Jan 1970 00:00:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }
}
