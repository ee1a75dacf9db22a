//! Where mail comes from. Every source (mbox, Maildir, .eml directory, later Gmail)
//! implements `MailSource`; the scan pipeline knows nothing else about them.

pub mod eml_dir;
pub mod files;
pub mod gmail;
pub mod maildir;
pub mod mbox;
pub mod parse;
pub mod query;

use async_trait::async_trait;
use chrono::NaiveDate;
use futures::stream::BoxStream;

pub use query::{CompiledQuery, MailQuery};

/// One message's raw RFC 5322 bytes and what the source knows about it.
#[derive(Debug, Clone, Default)]
pub struct RawEmail {
    /// The source's id: Gmail's message id, or for local sources the Message-ID header
    /// without angle brackets (`parse::local_id` when the header is missing).
    pub id: String,
    pub thread_id: Option<String>,
    /// Gmail labels: `labelIds` from the API, `X-Gmail-Labels` in a Takeout mbox.
    pub labels: Vec<String>,
    pub bytes: Vec<u8>,
}

/// A message as listed. Local sources read the bytes while listing, so they hand them
/// over at once; Gmail lists ids first so processed messages are dropped before any
/// body is fetched.
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: String,
    pub thread_id: Option<String>,
    pub raw: Option<RawEmail>,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("could not read {path}: {source}. Check that the path exists and is readable")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no message with id `{0}` in the mail source; list entries or scan to see valid ids")]
    NotFound(String),
    #[error("the message could not be parsed: {0}")]
    Malformed(String),
    #[error("invalid mail query: {0}")]
    Query(String),
    #[error("no mail source is configured: pass --mbox FILE, --maildir DIR or --eml-dir DIR")]
    NoSource,
    #[error(
        "Gmail is not configured on this server: its operator sets GMAIL_CLIENT_SECRET_FILE \
         and BILLABLE_TOKEN_KEY to let users connect their mailboxes"
    )]
    NoGmail,
    /// An upstream service (Gmail) failed in a way retrying will not fix now.
    #[error("{0}")]
    Upstream(String),
}

/// A message id as sets of ids seen hold it: 128 bits of its SHA-256, 16 bytes
/// however long the id, so a scan of a large mailbox remembers every id in little
/// memory (two ids colliding is as unlikely as a SHA-256 collision of 128 bits).
pub fn id_key(id: &str) -> u128 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(id.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(first)
}

/// An I/O error on a mail file or folder, naming the path.
pub(crate) fn io_error(path: &std::path::Path, source: std::io::Error) -> MailError {
    MailError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A source of mail. Implementations must stream: memory stays flat however large the
/// mailbox.
#[async_trait]
pub trait MailSource: Send + Sync {
    /// A short human description, e.g. `mbox demo.mbox`.
    fn describe(&self) -> String;

    /// Streams the messages that match `query`, oldest first where the source knows
    /// the order. Errors on single messages are yielded in the stream; the stream ends
    /// after an error that stops the whole listing.
    fn list<'a>(&'a self, query: &'a MailQuery) -> BoxStream<'a, Result<Listed, MailError>>;

    /// What `list` reads of the mailbox for `query`, in words for the scan report,
    /// when it is not simply every message that matches.
    fn listing(&self, _query: &MailQuery) -> Option<String> {
        None
    }

    /// The raw bytes of a listed message (local sources already carry them).
    async fn fetch(&self, listed: Listed) -> Result<RawEmail, MailError> {
        match listed.raw {
            Some(raw) => Ok(raw),
            None => self.get(&listed.id).await,
        }
    }

    /// One message by id.
    async fn get(&self, id: &str) -> Result<RawEmail, MailError>;

    /// Addresses the source knows belong to the owner (the Gmail account address).
    async fn owner_addresses(&self) -> Result<Vec<String>, MailError> {
        Ok(Vec::new())
    }

    /// Fetches several listed messages, results in the same order. Network sources
    /// override this to keep a bounded number in flight; after an error that stops
    /// the scan (`Upstream`) the rest may be left out.
    async fn fetch_many(&self, listed: Vec<Listed>) -> Vec<Result<RawEmail, MailError>> {
        let mut out = Vec::with_capacity(listed.len());
        for l in listed {
            out.push(self.fetch(l).await);
        }
        out
    }

    /// Where the mailbox is now (Gmail: its historyId), recorded with a completed
    /// scan so the next one can list only what was added. `None`: not supported.
    async fn cursor(&self) -> Result<Option<String>, MailError> {
        Ok(None)
    }

    /// Streams what was added since `cursor` (from an earlier `cursor()`) and matches
    /// `query`; sources that cannot tell (or whose cursor expired) list everything.
    fn list_since<'a>(
        &'a self,
        query: &'a MailQuery,
        _cursor: &'a str,
    ) -> BoxStream<'a, Result<Listed, MailError>> {
        self.list(query)
    }
}

/// A date range on the message Date, inclusive of `after`, exclusive of `before`,
/// as in Gmail's `after:`/`before:`.
pub fn in_range(
    date: Option<NaiveDate>,
    after: Option<NaiveDate>,
    before: Option<NaiveDate>,
) -> bool {
    match date {
        Some(d) => after.is_none_or(|a| d >= a) && before.is_none_or(|b| d < b),
        None => after.is_none() && before.is_none(),
    }
}
