//! Gmail credentials: a caller-supplied access token, a service account with
//! domain-wide delegation, or the installed-app flow (`billable auth gmail`) whose
//! tokens are stored, readable by the user only, in their config directory. Scans
//! never prompt: a missing or revoked grant is an error telling the user to
//! re-authorise.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use google_gmail1::yup_oauth2::{
    self, CustomHyperClientBuilder, InstalledFlowAuthenticator, InstalledFlowReturnMethod,
    ServiceAccountAuthenticator,
    authenticator::Authenticator,
    authenticator_delegate::InstalledFlowDelegate,
    storage::{TokenInfo, TokenStorage, TokenStorageError},
};
use google_gmail1::{common, hyper_util};

use super::{Connector, GmailConfig, connector};
use crate::domain::UserId;
use crate::mail::MailError;

/// The only scope billable asks for.
pub const READONLY_SCOPE: &str = "https://www.googleapis.com/auth/gmail.readonly";

/// Where Gmail credentials come from.
#[derive(Clone, PartialEq)]
pub enum GmailAuth {
    /// An OAuth access token the caller obtained (`GMAIL_ACCESS_TOKEN`, or one per
    /// request through `GmailHub::source_with_token`).
    AccessToken(Arc<str>),
    /// A service account key with domain-wide delegation; `subject` is the mailbox
    /// to read (default: the user id, when it is an address).
    ServiceAccount {
        key_file: PathBuf,
        subject: Option<String>,
    },
    /// The installed-app flow: the client secret downloaded from Google Cloud and the
    /// token file `billable auth gmail` wrote.
    Installed {
        secret_file: PathBuf,
        token_file: PathBuf,
    },
    /// A refresh token the user stored with billable (sealed at rest, see
    /// [`super::vault`]), exchanged through the OAuth client of `secret_file`.
    Refresh {
        secret_file: PathBuf,
        refresh_token: Arc<str>,
    },
}

impl GmailAuth {
    /// What a user does when Google refuses these credentials.
    pub fn how_to_renew(&self) -> &'static str {
        match self {
            GmailAuth::AccessToken(_) => "supply a fresh Gmail access token (GMAIL_ACCESS_TOKEN)",
            GmailAuth::ServiceAccount { .. } => {
                "check the service account's key and its domain-wide delegation for this mailbox"
            }
            GmailAuth::Installed { .. } => "re-authorise with `billable auth gmail`",
            GmailAuth::Refresh { .. } => {
                "connect Gmail again: store a new refresh token with PUT /v1/gmail/grant"
            }
        }
    }
}

impl std::fmt::Debug for GmailAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GmailAuth::AccessToken(_) => f.write_str("AccessToken(***)"),
            GmailAuth::ServiceAccount { key_file, subject } => f
                .debug_struct("ServiceAccount")
                .field("key_file", key_file)
                .field("subject", subject)
                .finish(),
            GmailAuth::Installed {
                secret_file,
                token_file,
            } => f
                .debug_struct("Installed")
                .field("secret_file", secret_file)
                .field("token_file", token_file)
                .finish(),
            GmailAuth::Refresh { secret_file, .. } => f
                .debug_struct("Refresh")
                .field("secret_file", secret_file)
                .finish_non_exhaustive(),
        }
    }
}

/// Where `billable auth gmail` keeps its tokens by default:
/// `gmail-token.json` in the user's config directory (~/.config/billable on Linux).
pub fn default_token_file() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "billable")
        .map(|dirs| dirs.config_dir().join("gmail-token.json"))
}

impl GmailAuth {
    /// The credentials to use for `user`: a service account without a configured
    /// subject reads the mailbox named by the user id.
    pub fn for_user(&self, user: &UserId) -> Result<GmailAuth, MailError> {
        match self {
            GmailAuth::ServiceAccount {
                key_file,
                subject: None,
            } => {
                if user.as_str().contains('@') {
                    Ok(GmailAuth::ServiceAccount {
                        key_file: key_file.clone(),
                        subject: Some(user.as_str().to_owned()),
                    })
                } else {
                    Err(MailError::Upstream(format!(
                        "a Gmail service account needs the mailbox to read: set \
                         GMAIL_SERVICE_ACCOUNT_SUBJECT (user `{}` is not an address)",
                        user.as_str()
                    )))
                }
            }
            other => Ok(other.clone()),
        }
    }

    /// The token provider google-gmail1 calls before every request.
    pub(super) fn token_source(&self, _config: &GmailConfig) -> Result<TokenSource, MailError> {
        Ok(match self {
            GmailAuth::AccessToken(token) => TokenSource::Static(token.clone()),
            other => TokenSource::Lazy(Arc::new(LazyAuth {
                auth: other.clone(),
                built: tokio::sync::OnceCell::new(),
            })),
        })
    }
}

type YupAuth = Authenticator<Connector>;

fn yup_client() -> CustomHyperClientBuilder<Connector> {
    CustomHyperClientBuilder::from(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build::<_, String>(connector()),
    )
}

/// Refuses to start an interactive flow in the middle of a scan.
struct NoPrompt;

impl InstalledFlowDelegate for NoPrompt {
    fn present_user_url<'a>(
        &'a self,
        _url: &'a str,
        _need_code: bool,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>> {
        Box::pin(async {
            Err("no valid Gmail authorisation is stored (missing, expired or revoked)".to_owned())
        })
    }
}

/// Builds the yup-oauth2 authenticator on first use (building reads files).
pub(super) struct LazyAuth {
    auth: GmailAuth,
    built: tokio::sync::OnceCell<YupAuth>,
}

impl LazyAuth {
    async fn get(&self) -> Result<&YupAuth, String> {
        self.built
            .get_or_try_init(|| async {
                match &self.auth {
                    GmailAuth::ServiceAccount { key_file, subject } => {
                        let key = yup_oauth2::read_service_account_key(key_file)
                            .await
                            .map_err(|e| {
                                format!(
                                    "could not read the service account key {}: {e}",
                                    key_file.display()
                                )
                            })?;
                        let mut builder =
                            ServiceAccountAuthenticator::with_client(key, yup_client());
                        if let Some(s) = subject {
                            builder = builder.subject(s.clone());
                        }
                        builder.build().await.map_err(|e| e.to_string())
                    }
                    GmailAuth::Installed {
                        secret_file,
                        token_file,
                    } => {
                        let secret = read_secret(secret_file).await?;
                        if !token_file.exists() {
                            return Err(format!(
                                "no Gmail authorisation stored at {}",
                                token_file.display()
                            ));
                        }
                        // Interactive, so that when a refresh is refused yup-oauth2's
                        // fallback to the consent flow fails at once through `NoPrompt`
                        // (the redirect flow would wait for a browser forever).
                        InstalledFlowAuthenticator::with_client(
                            secret,
                            InstalledFlowReturnMethod::Interactive,
                            yup_client(),
                        )
                        .persist_tokens_to_disk(token_file)
                        .flow_delegate(Box::new(NoPrompt))
                        .build()
                        .await
                        .map_err(|e| e.to_string())
                    }
                    GmailAuth::Refresh {
                        secret_file,
                        refresh_token,
                    } => {
                        let secret = read_secret(secret_file).await?;
                        InstalledFlowAuthenticator::with_client(
                            secret,
                            InstalledFlowReturnMethod::Interactive,
                            yup_client(),
                        )
                        .with_storage(Box::new(StoredGrant::new(refresh_token)))
                        .flow_delegate(Box::new(NoPrompt))
                        .build()
                        .await
                        .map_err(|e| e.to_string())
                    }
                    GmailAuth::AccessToken(_) => {
                        Err("an access token needs no authenticator".to_owned())
                    }
                }
            })
            .await
    }
}

/// yup-oauth2's token storage for a stored grant: in memory only, starting from the
/// refresh token alone (an access token that has expired), so the first request
/// exchanges it and later ones reuse the access token until it expires.
struct StoredGrant {
    token: tokio::sync::Mutex<TokenInfo>,
}

impl StoredGrant {
    fn new(refresh_token: &str) -> Self {
        StoredGrant {
            token: tokio::sync::Mutex::new(TokenInfo {
                access_token: None,
                refresh_token: Some(refresh_token.to_owned()),
                expires_at: Some(time::OffsetDateTime::UNIX_EPOCH),
                id_token: None,
            }),
        }
    }
}

#[async_trait::async_trait]
impl TokenStorage for StoredGrant {
    async fn set(&self, _scopes: &[&str], token: TokenInfo) -> Result<(), TokenStorageError> {
        let mut held = self.token.lock().await;
        // Google's refresh answers carry no refresh token: keep the one we hold.
        let refresh_token = token.refresh_token.clone().or(held.refresh_token.take());
        *held = TokenInfo {
            refresh_token,
            ..token
        };
        Ok(())
    }

    async fn get(&self, _scopes: &[&str]) -> Option<TokenInfo> {
        Some(self.token.lock().await.clone())
    }
}

async fn read_secret(path: &Path) -> Result<yup_oauth2::ApplicationSecret, String> {
    yup_oauth2::read_application_secret(path)
        .await
        .map_err(|e| {
            format!(
                "could not read the Gmail OAuth client secret {}: {e}. Download it from Google \
             Cloud (an OAuth client of type Desktop app) and set GMAIL_CLIENT_SECRET_FILE",
                path.display()
            )
        })
}

/// What google-gmail1 asks for a token.
#[derive(Clone)]
pub(super) enum TokenSource {
    Static(Arc<str>),
    Lazy(Arc<LazyAuth>),
}

type TokenFuture<'a> = std::pin::Pin<
    Box<
        dyn Future<Output = Result<Option<String>, Box<dyn std::error::Error + Send + Sync>>>
            + Send
            + 'a,
    >,
>;

impl common::GetToken for TokenSource {
    fn get_token<'a>(&'a self, _scopes: &'a [&str]) -> TokenFuture<'a> {
        Box::pin(async move {
            match self {
                TokenSource::Static(t) => Ok(Some(t.to_string())),
                TokenSource::Lazy(lazy) => {
                    let auth = lazy.get().await?;
                    // Always exactly gmail.readonly, whatever scope a method defaults to.
                    let token = auth.token(&[READONLY_SCOPE]).await?;
                    Ok(token.token().map(str::to_owned))
                }
            }
        })
    }
}

/// Runs the installed-app flow (`billable auth gmail`): prints the consent URL,
/// receives Google's redirect on a loopback port, and stores the tokens in
/// `token_file`, readable and writable by the user only. `delegate` replaces the
/// default "open this URL" prompt (tests drive the browser's part with it).
pub async fn authorize(
    secret_file: &Path,
    token_file: &Path,
    delegate: Option<Box<dyn InstalledFlowDelegate>>,
) -> Result<(), MailError> {
    let secret = read_secret(secret_file)
        .await
        .map_err(MailError::Upstream)?;
    // A new folder is created 0700; one that exists (perhaps shared) is left as it is.
    if let Some(dir) = token_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::private::dir(dir).map_err(|source| MailError::Io {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let mut builder = InstalledFlowAuthenticator::with_client(
        secret,
        InstalledFlowReturnMethod::HTTPRedirect,
        yup_client(),
    )
    .persist_tokens_to_disk(token_file);
    if let Some(d) = delegate {
        builder = builder.flow_delegate(d);
    }
    let auth = builder.build().await.map_err(|source| MailError::Io {
        path: token_file.display().to_string(),
        source,
    })?;
    auth.token(&[READONLY_SCOPE]).await.map_err(|e| {
        MailError::Upstream(format!(
            "Gmail authorisation failed: {e}. Run `billable auth gmail` again"
        ))
    })?;
    // yup-oauth2 creates the file 0600; make sure an older file is not left wider.
    restrict(token_file, 0o600)
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> Result<(), MailError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        MailError::Io {
            path: path.display().to_string(),
            source,
        }
    })
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> Result<(), MailError> {
    Ok(())
}
