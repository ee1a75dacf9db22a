//! The mail query of a scan: Gmail search syntax plus an optional date range.
//! Gmail evaluates the query itself; local sources evaluate the subset below.
//! TODO(helper): matching for local sources.

use chrono::NaiveDate;
use chrono_tz::Tz;

/// What a scan asks the source for.
#[derive(Debug, Clone, PartialEq)]
pub struct MailQuery {
    /// Gmail search syntax, e.g. `from:acme.com -label:promotions`.
    pub query: Option<String>,
    /// Messages dated on or after this day (in `timezone`).
    pub after: Option<NaiveDate>,
    /// Messages dated before this day (in `timezone`).
    pub before: Option<NaiveDate>,
    /// The user's time zone: days start at midnight there.
    pub timezone: Tz,
}

impl Default for MailQuery {
    fn default() -> Self {
        MailQuery {
            query: None,
            after: None,
            before: None,
            timezone: Tz::UTC,
        }
    }
}
