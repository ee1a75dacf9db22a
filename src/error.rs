//! The library's error type. Everything inside returns `Error` (or a module error that
//! converts into it); transports map it once to a status code, an MCP error or an exit
//! code. `anyhow` is used only in `main` and at start-up.

use crate::analyze::AnalyzeError;
use crate::config::ConfigError;
use crate::domain::settings::SettingsError;
use crate::mail::MailError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown tool `{name}`; available tools: {available}")]
    UnknownTool { name: String, available: String },
    /// Arguments that do not fit the tool's schema; `field` names the culprit.
    #[error("invalid argument `{field}`: {message}")]
    InvalidArgument { field: String, message: String },
    /// Something the caller named does not exist (for this user); the message says
    /// what and how to find the right one.
    #[error("{0}")]
    NotFound(String),
    /// An environment variable whose value cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error(transparent)]
    Analyze(#[from] AnalyzeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An export the entries or settings cannot make; it names the entry and field.
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
}

/// How an error should be presented, independent of transport.
///
/// Exit codes of the CLI: 2 when the caller can fix it (input, a missing item, signing
/// in again, acting as the right account), 3 when retrying later may help, 1 for bugs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller's input is wrong; fixing it will help (HTTP 400/404/422, exit 2).
    InvalidInput,
    /// What was asked for does not exist (HTTP 404, exit 2).
    NotFound,
    /// The store refused the caller's credentials (missing, expired or forged token);
    /// signing in again will help (HTTP 401, exit 2).
    Unauthorized,
    /// The caller is signed in but may not do this (row-level security, a missing
    /// grant) (HTTP 403, exit 2).
    Forbidden,
    /// A write collided with another one; retrying the request will help (HTTP 409,
    /// exit 3).
    Conflict,
    /// A dependency is down or not configured; retrying later may help (HTTP 503, exit 3).
    Unavailable,
    /// A bug or corrupt data (HTTP 500, exit 1).
    Internal,
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::UnknownTool { .. }
            | Error::InvalidArgument { .. }
            | Error::Config(_)
            | Error::Settings(_)
            | Error::Export(_) => ErrorKind::InvalidInput,
            Error::Mail(MailError::NotFound(_)) | Error::NotFound(_) => ErrorKind::NotFound,
            Error::Mail(MailError::Malformed(_) | MailError::Query(_) | MailError::NoSource) => {
                ErrorKind::InvalidInput
            }
            Error::Mail(MailError::Io { .. } | MailError::Upstream(_) | MailError::NoGmail) => {
                ErrorKind::Unavailable
            }
            Error::Analyze(AnalyzeError::Message(_)) => ErrorKind::InvalidInput,
            Error::Analyze(AnalyzeError::Unavailable(_)) => ErrorKind::Unavailable,
            Error::Store(StoreError::Open { .. } | StoreError::Unavailable(_)) => {
                ErrorKind::Unavailable
            }
            Error::Store(StoreError::Unauthorized(_)) => ErrorKind::Unauthorized,
            Error::Store(StoreError::Forbidden(_)) => ErrorKind::Forbidden,
            Error::Store(StoreError::Conflict { .. } | StoreError::Busy(_)) => ErrorKind::Conflict,
            Error::Store(_) => ErrorKind::Internal,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
