//! Plain types shared by every layer: what a message is, what the user configured,
//! what an entry is. Types that carry a rule are built by `parse`, never by hand.

pub mod email;
pub mod entry;
pub mod free_mail;
pub mod learned;
pub mod settings;
pub mod summary;
pub mod text;

pub use email::{Address, CalendarEvent, CalendarMethod, Email, PartStat};
pub use entry::{Activity, EntryStatus, TimeEntry, WorkDate};
pub use learned::{Learned, LearnedSummary};
pub use settings::{
    ClientRule, Matter, Rollup, Rounding, Settings, SettingsPatch, TimekeeperClass, is_utbms_code,
};
pub use summary::{GroupBy, Summary, SummaryGroup, SummaryQuery};

/// The authenticated user. Tools never take it from arguments: transports resolve it.
/// It may carry the caller's bearer token (a Supabase JWT, a Gmail access token) so
/// that stores and sources act as the user, never above them. Equality and hashing
/// use the id only, and the token never prints.
#[derive(Clone)]
pub struct UserId {
    id: String,
    token: Option<std::sync::Arc<str>>,
}

impl UserId {
    /// The one user of the embedded single-machine store.
    pub fn local() -> Self {
        UserId::new("local")
    }

    /// A user id from an authenticated source (for example a JWT `sub`).
    pub fn new(id: impl Into<String>) -> Self {
        UserId {
            id: id.into(),
            token: None,
        }
    }

    /// The same user, carrying the bearer token they authenticated with.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into().into());
        self
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// The caller's bearer token, when the transport had one.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }
}

impl PartialEq for UserId {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for UserId {}

impl std::hash::Hash for UserId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl std::fmt::Debug for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = if self.token.is_some() {
            "Some(<redacted>)"
        } else {
            "None"
        };
        write!(f, "UserId({:?}, token: {token})", self.id)
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::UserId;

    #[test]
    fn a_user_is_their_id_and_the_token_never_prints() {
        let a = UserId::new("u1").with_token("secret-jwt");
        assert_eq!(a, UserId::new("u1"));
        assert_eq!(a.token(), Some("secret-jwt"));
        assert!(!format!("{a:?} {a}").contains("secret-jwt"));
    }
}

#[cfg(test)]
mod spelling_tests {
    //! Every enum has one spelling: its `as_str` is what serde writes and reads.

    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::*;

    pub(crate) fn same<T>(values: &[T], as_str: impl Fn(&T) -> &'static str)
    where
        T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        for v in values {
            let json = serde_json::to_value(v).expect("serialize");
            assert_eq!(json, serde_json::json!(as_str(v)), "{v:?}");
            let back: T = serde_json::from_value(json).expect("deserialize");
            assert_eq!(&back, v);
        }
    }

    #[test]
    fn as_str_is_the_serde_spelling() {
        use Activity::*;
        same(&[EmailSent, EmailReceived, Meeting, Call, Other], |a| {
            a.as_str()
        });
        use EntryStatus::*;
        same(&[Suggested, NeedsReview, Approved, Rejected], |s| {
            s.as_str()
        });
        same(
            &[
                GroupBy::Client,
                GroupBy::Matter,
                GroupBy::Day,
                GroupBy::Week,
                GroupBy::Month,
            ],
            |g| g.as_str(),
        );
        same(&[Rounding::Up, Rounding::Nearest, Rounding::Down], |r| {
            r.as_str()
        });
    }
}
