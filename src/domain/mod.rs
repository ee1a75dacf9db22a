//! Plain types shared by every layer: what a message is, what the user configured,
//! what an entry is. Types that carry a rule are built by `parse`, never by hand.

pub mod email;
pub mod entry;
pub mod settings;
pub mod summary;

pub use email::{Address, CalendarEvent, CalendarMethod, Email, PartStat};
pub use entry::{Activity, EntryStatus, TimeEntry, WorkDate};
pub use settings::{ClientRule, Rounding, Settings, SettingsPatch};
pub use summary::{GroupBy, Summary, SummaryGroup, SummaryQuery};

/// The authenticated user. Tools never take it from arguments: transports resolve it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    /// The one user of the embedded single-machine store.
    pub fn local() -> Self {
        UserId("local".to_owned())
    }

    /// A user id from an authenticated source (for example a JWT `sub`).
    pub fn new(id: impl Into<String>) -> Self {
        UserId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
