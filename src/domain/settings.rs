//! The user's tracking settings. A `Settings` value is always valid: it is only built by
//! `Settings::default()` or `Settings::apply(patch)`, which checks every field.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How raw minutes become billed minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Rounding {
    Up,
    Nearest,
    Down,
}

impl Rounding {
    /// The one spelling, as in JSON and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Rounding::Up => "up",
            Rounding::Nearest => "nearest",
            Rounding::Down => "down",
        }
    }
}

/// Whether a scan suggests one entry per message (`none`) or one per thread and day
/// (`thread_day`) or per matter and day (`matter_day`), its minutes summed and rounded
/// once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rollup {
    #[default]
    None,
    ThreadDay,
    MatterDay,
}

impl Rollup {
    /// The one spelling, as in JSON and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Rollup::None => "none",
            Rollup::ThreadDay => "thread_day",
            Rollup::MatterDay => "matter_day",
        }
    }
}

/// One matter (engagement) of a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Matter {
    /// The firm's matter number (LEDES LAW_FIRM_MATTER_ID); a Subject that contains it
    /// files the mail under this matter.
    pub id: String,
    /// What the matter is called.
    pub name: String,
    /// Whole words that file a Subject under this matter.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Whether the client wants UTBMS task codes (L-codes) on this matter's entries.
    #[serde(default)]
    pub task_codes: bool,
    /// The task code new entries get when task_codes is on, e.g. L120.
    #[serde(default)]
    pub default_task_code: Option<String>,
    /// The client's own number for the matter (LEDES CLIENT_MATTER_ID), if it has one.
    #[serde(default)]
    pub client_matter_id: Option<String>,
}

/// A client and how to recognise its mail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientRule {
    /// Client name as it should appear on entries.
    pub name: String,
    /// Email domains of the client; subdomains match too.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Individual addresses of the client's people.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Whole words that identify the client in a Subject when no address matches.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// The one matter or project of a client with a single matter (older settings);
    /// loads as a matter of that id and name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matter: Option<String>,
    /// The client's matters.
    #[serde(default)]
    pub matters: Vec<Matter>,
    /// The client's id in its e-billing system (LEDES CLIENT_ID).
    #[serde(default)]
    pub ledes_client_id: Option<String>,
    /// Hourly rate for this client; null uses default_hourly_rate.
    #[serde(default)]
    pub hourly_rate: Option<f64>,
    /// Other names or domains the client goes by (an affiliate, a former name): a
    /// domain (`jaron.com`) matches like `domains`, a name like a Subject keyword.
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// Every setting, valid by construction. Serialized whole by `configure_time_tracking`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Settings {
    /// IANA time zone name.
    #[schemars(with = "String")]
    pub timezone: Tz,
    pub my_addresses: Vec<String>,
    pub billing_increment_minutes: u32,
    pub minimum_entry_minutes: u32,
    pub rounding: Rounding,
    pub default_hourly_rate: f64,
    pub currency: String,
    pub clients: Vec<ClientRule>,
    pub ignore_senders: Vec<String>,
    /// Friends and family, who may also work at a client: mail to or from them is
    /// never billed.
    pub personal_contacts: Vec<String>,
    pub default_query: Option<String>,
    pub min_confidence: f64,
    pub max_entry_minutes: u32,
    pub drafting_words_per_minute: u32,
    pub reading_words_per_minute: u32,
    pub attachment_review_minutes: u32,
    pub rollup: Rollup,
    /// LEDES TIMEKEEPER_ID.
    pub timekeeper_id: Option<String>,
    /// LEDES TIMEKEEPER_NAME, "Surname, First".
    pub timekeeper_name: Option<String>,
    /// LEDES TIMEKEEPER_CLASSIFICATION.
    pub timekeeper_classification: Option<TimekeeperClass>,
    /// LEDES LAW_FIRM_ID, usually the firm's tax id.
    pub law_firm_id: Option<String>,
    /// When an unattended scan of new mail runs, in `timezone`; none: never.
    #[schemars(with = "Option<String>")]
    pub schedule: Option<Schedule>,
    /// Whether your approvals and rejections teach billable what work looks like.
    pub learn_from_reviews: bool,
    /// Reviews made at or before this time teach nothing (a reset of what was learnt).
    #[schemars(with = "Option<String>")]
    pub learned_since: Option<DateTime<Utc>>,
    /// What your reviews taught (read-only; shown by configure, reset with
    /// `learned_since`). Absent when nothing was learnt.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::domain::LearnedSummary>")]
    pub learned: Option<std::sync::Arc<crate::domain::Learned>>,
}

/// When unattended scans run: every day, or Monday to Friday, at a time of day in
/// the user's time zone. Spelled `daily 07:00` or `weekdays 07:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub weekdays_only: bool,
    pub at: chrono::NaiveTime,
}

impl std::str::FromStr for Schedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wrong = || {
            format!(
                "`{s}` is not a schedule: write `daily HH:MM` or `weekdays HH:MM` (24-hour, your time zone)"
            )
        };
        let mut words = s.split_whitespace();
        let (Some(days), Some(at), None) = (words.next(), words.next(), words.next()) else {
            return Err(wrong());
        };
        let weekdays_only = match days.to_ascii_lowercase().as_str() {
            "daily" => false,
            "weekdays" => true,
            _ => return Err(wrong()),
        };
        let at = chrono::NaiveTime::parse_from_str(at, "%H:%M").map_err(|_| wrong())?;
        Ok(Schedule { weekdays_only, at })
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let days = if self.weekdays_only {
            "weekdays"
        } else {
            "daily"
        };
        write!(f, "{days} {}", self.at.format("%H:%M"))
    }
}

impl Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Schedule {
    /// The latest time a run was due at or before `now`, in `tz`: today's (or the
    /// last weekday's) slot once it has passed, else the one before. A local time
    /// that a clock change skips runs an hour later; one it repeats, the second time
    /// (as Postgres reads local times, so both stores agree).
    pub fn latest_slot(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        tz: Tz,
    ) -> chrono::DateTime<chrono::Utc> {
        use chrono::{Datelike, TimeZone};
        let local = now.with_timezone(&tz).naive_local();
        let mut day = local.date();
        if local.time() < self.at {
            day = day.pred_opt().unwrap_or(day);
        }
        while self.weekdays_only && day.weekday().number_from_monday() > 5 {
            day = day.pred_opt().unwrap_or(day);
        }
        let wall = day.and_time(self.at);
        let at = tz
            .from_local_datetime(&wall)
            .latest()
            .or_else(|| {
                tz.from_local_datetime(&(wall + chrono::Duration::hours(1)))
                    .latest()
            })
            .map(|t| t.with_timezone(&chrono::Utc));
        // No zone skips two hours at once; UTC's reading is the last resort.
        at.unwrap_or_else(|| chrono::Utc.from_utc_datetime(&wall))
    }
}

/// A timekeeper classification as LEDES 1998B spells it: PT partner, AS associate, OC
/// of counsel, LA legal assistant or paralegal, OT any other timekeeper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TimekeeperClass {
    PT,
    AS,
    OC,
    LA,
    OT,
}

impl TimekeeperClass {
    /// The one spelling, as in JSON and LEDES.
    pub fn as_str(self) -> &'static str {
        match self {
            TimekeeperClass::PT => "PT",
            TimekeeperClass::AS => "AS",
            TimekeeperClass::OC => "OC",
            TimekeeperClass::LA => "LA",
            TimekeeperClass::OT => "OT",
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timezone: Tz::UTC,
            my_addresses: Vec::new(),
            billing_increment_minutes: 6,
            minimum_entry_minutes: 6,
            rounding: Rounding::Up,
            default_hourly_rate: 0.0,
            currency: "USD".to_owned(),
            clients: Vec::new(),
            ignore_senders: Vec::new(),
            personal_contacts: Vec::new(),
            default_query: None,
            min_confidence: 0.5,
            max_entry_minutes: 480,
            drafting_words_per_minute: 20,
            reading_words_per_minute: 200,
            attachment_review_minutes: 6,
            rollup: Rollup::None,
            timekeeper_id: None,
            timekeeper_name: None,
            timekeeper_classification: None,
            law_firm_id: None,
            schedule: None,
            learn_from_reviews: true,
            learned_since: None,
            learned: None,
        }
    }
}

/// A partial update: every field optional, null or missing means "leave as is".
/// This is also the `settings` argument of `configure_time_tracking`, so unknown keys
/// are rejected here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    /// IANA time zone used for work dates, e.g. America/New_York.
    #[serde(default)]
    pub timezone: Option<String>,
    /// The user's own email addresses.
    #[serde(default)]
    pub my_addresses: Option<Vec<String>>,
    /// Billing increment in minutes, 1 to 60 (6 = tenths of an hour).
    #[serde(default)]
    pub billing_increment_minutes: Option<i64>,
    /// Smallest billed entry in minutes.
    #[serde(default)]
    pub minimum_entry_minutes: Option<i64>,
    /// How raw time is rounded to the increment.
    #[serde(default)]
    pub rounding: Option<Rounding>,
    /// Hourly rate when the client has none; not negative.
    #[serde(default)]
    pub default_hourly_rate: Option<f64>,
    /// ISO 4217 currency code, e.g. USD.
    #[serde(default)]
    pub currency: Option<String>,
    /// The full client list (replaces the current one).
    #[serde(default)]
    pub clients: Option<Vec<ClientRule>>,
    /// Senders never billed: name@domain or *@domain.
    #[serde(default)]
    pub ignore_senders: Option<Vec<String>>,
    /// People whose mail is never billed, either way (friends, family, even at a
    /// client): name@domain or *@domain.
    #[serde(default)]
    pub personal_contacts: Option<Vec<String>>,
    /// Gmail query used when a scan gives none; empty string clears it.
    #[serde(default)]
    pub default_query: Option<String>,
    /// Entries below this confidence (0 to 1) are marked needs_review.
    #[serde(default)]
    pub min_confidence: Option<f64>,
    /// Largest billed entry in minutes.
    #[serde(default)]
    pub max_entry_minutes: Option<i64>,
    /// Writing speed used to estimate sent mail.
    #[serde(default)]
    pub drafting_words_per_minute: Option<i64>,
    /// Reading speed used to estimate received mail.
    #[serde(default)]
    pub reading_words_per_minute: Option<i64>,
    /// Minutes added per attachment of received mail.
    #[serde(default)]
    pub attachment_review_minutes: Option<i64>,
    /// none (one entry per message), thread_day or matter_day (one entry per thread or
    /// matter and day, rounded once).
    #[serde(default)]
    pub rollup: Option<Rollup>,
    /// Your timekeeper id for LEDES invoices; empty string clears it.
    #[serde(default)]
    pub timekeeper_id: Option<String>,
    /// Your name for LEDES invoices, "Surname, First"; empty string clears it.
    #[serde(default)]
    pub timekeeper_name: Option<String>,
    /// PT (partner), AS (associate), OC (of counsel), LA (legal assistant) or OT
    /// (other), for LEDES invoices.
    #[serde(default)]
    pub timekeeper_classification: Option<TimekeeperClass>,
    /// When an unattended scan of new mail runs: `daily HH:MM` or `weekdays HH:MM`
    /// in your time zone (e.g. `weekdays 07:00`); empty string turns it off.
    #[serde(default)]
    pub schedule: Option<String>,
    /// Whether your approvals and rejections teach billable what work looks like
    /// (default true).
    #[serde(default)]
    pub learn_from_reviews: Option<bool>,
    /// `now` forgets what your reviews taught so far (later reviews teach again); an
    /// RFC 3339 time forgets the reviews up to it; an empty string learns from all.
    #[serde(default)]
    pub learned_since: Option<String>,
    /// Your firm's id for LEDES invoices (usually its tax id); empty string clears it.
    #[serde(default)]
    pub law_firm_id: Option<String>,
}

/// A setting that failed validation; `field` is the JSON path of the offending value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid setting `{field}`: {message}")]
pub struct SettingsError {
    pub field: String,
    pub message: String,
}

/// The most a settings change may hold, as JSON: room for hundreds of clients.
pub const MAX_SETTINGS_BYTES: usize = 256 * 1024;

fn invalid(field: impl Into<String>, message: impl Into<String>) -> SettingsError {
    SettingsError {
        field: field.into(),
        message: message.into(),
    }
}

fn int_in(field: &str, v: i64, lo: i64, hi: i64) -> Result<u32, SettingsError> {
    if v < lo || v > hi {
        return Err(invalid(
            field,
            format!("must be between {lo} and {hi}, got {v}"),
        ));
    }
    Ok(v as u32)
}

fn rate(field: &str, v: f64) -> Result<f64, SettingsError> {
    if !v.is_finite() || v < 0.0 {
        return Err(invalid(
            field,
            format!("must be a non-negative number, got {v}"),
        ));
    }
    Ok(v)
}

/// Lower-cases and checks an address; `*@domain` is allowed where `wildcard` is true.
fn address(field: &str, a: &str, wildcard: bool) -> Result<String, SettingsError> {
    let a = a.trim().to_ascii_lowercase();
    let Some((local, domain)) = a.rsplit_once('@') else {
        return Err(invalid(field, format!("`{a}` is not an email address")));
    };
    let local_ok = !local.is_empty() && (wildcard || local != "*");
    if !local_ok || !valid_domain(domain) {
        let hint = if wildcard {
            " (use name@domain or *@domain)"
        } else {
            ""
        };
        return Err(invalid(
            field,
            format!("`{a}` is not an email address{hint}"),
        ));
    }
    Ok(a)
}

fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.contains('.')
        && d.split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

fn domain(field: &str, d: &str) -> Result<String, SettingsError> {
    let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
    if !valid_domain(&d) {
        return Err(invalid(
            field,
            format!("`{d}` is not a domain like example.com"),
        ));
    }
    Ok(d)
}

/// An alias with a dot and no white space (`jaron.com`, `@jaron.com`) is a domain.
fn is_domain_alias(a: &str) -> bool {
    a.contains('.') && !a.contains(char::is_whitespace) && !a.ends_with('.')
}

impl ClientRule {
    fn validated(self, i: usize) -> Result<ClientRule, SettingsError> {
        let at = |f: &str| format!("clients[{i}].{f}");
        let name = self.name.trim().to_owned();
        if name.is_empty() {
            return Err(invalid(at("name"), "must not be empty"));
        }
        let domains = self
            .domains
            .iter()
            .map(|d| domain(&at("domains"), d))
            .collect::<Result<_, _>>()?;
        let addresses = self
            .addresses
            .iter()
            .map(|a| address(&at("addresses"), a, false))
            .collect::<Result<_, _>>()?;
        let keywords: Vec<String> = self
            .keywords
            .iter()
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .collect();
        let hourly_rate = self
            .hourly_rate
            .map(|r| rate(&at("hourly_rate"), r))
            .transpose()?;
        let mut matters = self
            .matters
            .into_iter()
            .enumerate()
            .map(|(j, m)| m.validated(&at(&format!("matters[{j}]"))))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(m) = self
            .matter
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty())
            && !matters.iter().any(|x| x.id == m)
        {
            matters.insert(0, Matter::named(m));
        }
        let mut ids: Vec<&str> = matters.iter().map(|m| m.id.as_str()).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0].eq_ignore_ascii_case(w[1])) {
            return Err(invalid(
                at("matters"),
                format!("matter `{}` is listed twice", w[0]),
            ));
        }
        let ledes_client_id = optional_text(self.ledes_client_id);
        let mut domains: Vec<String> = domains;
        let mut keywords = keywords;
        for a in self
            .aliases
            .iter()
            .map(|a| a.trim())
            .filter(|a| !a.is_empty())
        {
            // Stored settings hold the aliases already added, so adding is idempotent.
            if is_domain_alias(a) {
                let d = domain(&at("aliases"), a)?;
                if !domains.contains(&d) {
                    domains.push(d);
                }
            } else if !keywords.iter().any(|k| k == a) {
                keywords.push(a.to_owned());
            }
        }
        let aliases = self
            .aliases
            .iter()
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        Ok(ClientRule {
            name,
            domains,
            addresses,
            keywords,
            matter: None,
            matters,
            ledes_client_id,
            hourly_rate,
            aliases,
        })
    }

    /// The matter with this id (case-insensitive).
    pub fn matter(&self, id: &str) -> Option<&Matter> {
        self.matters.iter().find(|m| m.id.eq_ignore_ascii_case(id))
    }

    /// The client's matter when it has exactly one.
    pub fn only_matter(&self) -> Option<&Matter> {
        match self.matters.as_slice() {
            [m] => Some(m),
            _ => None,
        }
    }

    /// The hourly rate for this client's work under `settings`.
    pub fn rate(&self, settings: &Settings) -> f64 {
        self.hourly_rate.unwrap_or(settings.default_hourly_rate)
    }
}

/// Trims a free-text setting; empty means unset.
fn optional_text(v: Option<String>) -> Option<String> {
    v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Whether `code` looks like a UTBMS code: one capital letter and three digits (L120,
/// A104).
pub fn is_utbms_code(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 4 && b[0].is_ascii_uppercase() && b[1..].iter().all(u8::is_ascii_digit)
}

impl Matter {
    /// A matter known only by one name (the older single `matter` setting).
    pub fn named(name: String) -> Matter {
        Matter {
            id: name.clone(),
            name,
            keywords: Vec::new(),
            task_codes: false,
            default_task_code: None,
            client_matter_id: None,
        }
    }

    fn validated(self, at: &str) -> Result<Matter, SettingsError> {
        let id = self.id.trim().to_owned();
        if id.is_empty() {
            return Err(invalid(format!("{at}.id"), "must not be empty"));
        }
        let name = optional_text(Some(self.name)).unwrap_or_else(|| id.clone());
        let keywords = self
            .keywords
            .iter()
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .collect();
        let default_task_code = optional_text(self.default_task_code)
            .map(|c| c.to_ascii_uppercase())
            .map(|c| {
                if is_utbms_code(&c) {
                    Ok(c)
                } else {
                    Err(invalid(
                        format!("{at}.default_task_code"),
                        format!("`{c}` is not a UTBMS task code such as L120"),
                    ))
                }
            })
            .transpose()?;
        Ok(Matter {
            id,
            name,
            keywords,
            task_codes: self.task_codes,
            default_task_code,
            client_matter_id: optional_text(self.client_matter_id),
        })
    }
}

impl SettingsPatch {
    /// Refuses a change larger than [`MAX_SETTINGS_BYTES`]. Every message of a scan is
    /// matched against the clients, addresses and senders, so settings of any size
    /// would make every scan slow. Checked where a change arrives (the tool, a
    /// settings file), not on every read of stored settings.
    pub fn within_limit(&self) -> Result<(), SettingsError> {
        let size = serde_json::to_vec(self).map_or(0, |v| v.len());
        if size > MAX_SETTINGS_BYTES {
            return Err(invalid(
                "settings",
                format!(
                    "{} KiB of settings is more than the {} KiB allowed; keep each client's \
                     domains and addresses, and leave out contacts that are not clients",
                    size / 1024,
                    MAX_SETTINGS_BYTES / 1024
                ),
            ));
        }
        Ok(())
    }
}

impl Settings {
    /// Applies a partial update and validates the result as a whole.
    pub fn apply(&self, patch: SettingsPatch) -> Result<Settings, SettingsError> {
        let mut s = self.clone();
        if let Some(tz) = patch.timezone {
            s.timezone = tz.trim().parse::<Tz>().map_err(|_| {
                invalid(
                    "timezone",
                    format!(
                        "`{tz}` is not an IANA time zone such as Europe/London or America/New_York"
                    ),
                )
            })?;
        }
        if let Some(list) = patch.my_addresses {
            s.my_addresses = list
                .iter()
                .map(|a| address("my_addresses", a, false))
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = patch.billing_increment_minutes {
            s.billing_increment_minutes = int_in("billing_increment_minutes", v, 1, 60)?;
        }
        if let Some(v) = patch.minimum_entry_minutes {
            s.minimum_entry_minutes = int_in("minimum_entry_minutes", v, 0, 480)?;
        }
        if let Some(r) = patch.rounding {
            s.rounding = r;
        }
        if let Some(v) = patch.default_hourly_rate {
            s.default_hourly_rate = rate("default_hourly_rate", v)?;
        }
        if let Some(c) = patch.currency {
            let c = c.trim().to_ascii_uppercase();
            if c.len() != 3 || !c.chars().all(|ch| ch.is_ascii_alphabetic()) {
                return Err(invalid(
                    "currency",
                    format!("`{c}` is not a 3-letter ISO 4217 code such as USD"),
                ));
            }
            s.currency = c;
        }
        if let Some(clients) = patch.clients {
            s.clients = clients
                .into_iter()
                .enumerate()
                .map(|(i, c)| c.validated(i))
                .collect::<Result<_, _>>()?;
            let mut names: Vec<&str> = s.clients.iter().map(|c| c.name.as_str()).collect();
            names.sort_unstable();
            if let Some(w) = names.windows(2).find(|w| w[0].eq_ignore_ascii_case(w[1])) {
                return Err(invalid(
                    "clients",
                    format!("client `{}` is listed twice", w[0]),
                ));
            }
        }
        if let Some(list) = patch.ignore_senders {
            s.ignore_senders = list
                .iter()
                .map(|a| address("ignore_senders", a, true))
                .collect::<Result<_, _>>()?;
        }
        if let Some(list) = patch.personal_contacts {
            s.personal_contacts = list
                .iter()
                .map(|a| address("personal_contacts", a, true))
                .collect::<Result<_, _>>()?;
        }
        if let Some(q) = patch.default_query {
            let q = q.trim().to_owned();
            s.default_query = (!q.is_empty()).then_some(q);
        }
        if let Some(v) = patch.min_confidence {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(
                    "min_confidence",
                    format!("must be between 0 and 1, got {v}"),
                ));
            }
            s.min_confidence = v;
        }
        if let Some(v) = patch.max_entry_minutes {
            s.max_entry_minutes = int_in("max_entry_minutes", v, 1, 1440)?;
        }
        if let Some(v) = patch.drafting_words_per_minute {
            s.drafting_words_per_minute = int_in("drafting_words_per_minute", v, 1, 1000)?;
        }
        if let Some(v) = patch.reading_words_per_minute {
            s.reading_words_per_minute = int_in("reading_words_per_minute", v, 1, 5000)?;
        }
        if let Some(v) = patch.attachment_review_minutes {
            s.attachment_review_minutes = int_in("attachment_review_minutes", v, 0, 480)?;
        }
        if let Some(r) = patch.rollup {
            s.rollup = r;
        }
        if let Some(v) = patch.timekeeper_id {
            s.timekeeper_id = optional_text(Some(v));
        }
        if let Some(v) = patch.timekeeper_name {
            s.timekeeper_name = optional_text(Some(v));
            if let Some(name) = &s.timekeeper_name {
                let ok = name.split_once(',').is_some_and(|(last, first)| {
                    !last.trim().is_empty() && !first.trim().is_empty()
                });
                if !ok {
                    return Err(invalid(
                        "timekeeper_name",
                        format!("`{name}` is not in the form \"Surname, First\""),
                    ));
                }
            }
        }
        if let Some(c) = patch.timekeeper_classification {
            s.timekeeper_classification = Some(c);
        }
        if let Some(v) = patch.law_firm_id {
            s.law_firm_id = optional_text(Some(v));
        }
        if let Some(v) = patch.schedule {
            s.schedule = match optional_text(Some(v)) {
                Some(text) => Some(text.parse().map_err(|m| invalid("schedule", m))?),
                None => None,
            };
        }
        if let Some(v) = patch.learn_from_reviews {
            s.learn_from_reviews = v;
        }
        if let Some(v) = patch.learned_since {
            s.learned_since = match v.trim() {
                "" => None,
                "now" => Some(Utc::now()),
                t => Some(
                    DateTime::parse_from_rfc3339(t)
                        .map_err(|_| {
                            invalid(
                                "learned_since",
                                format!(
                                    "`{t}` is not a time: write `now` to forget what your reviews taught so far, \
                                     a time such as 2026-12-01T00:00:00Z, or an empty string to learn from every review"
                                ),
                            )
                        })?
                        .with_timezone(&Utc),
                ),
            };
        }
        if s.minimum_entry_minutes > s.max_entry_minutes {
            return Err(invalid(
                "minimum_entry_minutes",
                format!(
                    "must not exceed max_entry_minutes ({})",
                    s.max_entry_minutes
                ),
            ));
        }
        Ok(s)
    }

    /// Settings as the patch that would recreate them: how they are stored.
    pub fn to_patch(&self) -> SettingsPatch {
        SettingsPatch {
            timezone: Some(self.timezone.name().to_owned()),
            my_addresses: Some(self.my_addresses.clone()),
            billing_increment_minutes: Some(self.billing_increment_minutes.into()),
            minimum_entry_minutes: Some(self.minimum_entry_minutes.into()),
            rounding: Some(self.rounding),
            default_hourly_rate: Some(self.default_hourly_rate),
            currency: Some(self.currency.clone()),
            clients: Some(self.clients.clone()),
            ignore_senders: Some(self.ignore_senders.clone()),
            personal_contacts: Some(self.personal_contacts.clone()),
            default_query: Some(self.default_query.clone().unwrap_or_default()),
            min_confidence: Some(self.min_confidence),
            max_entry_minutes: Some(self.max_entry_minutes.into()),
            drafting_words_per_minute: Some(self.drafting_words_per_minute.into()),
            reading_words_per_minute: Some(self.reading_words_per_minute.into()),
            attachment_review_minutes: Some(self.attachment_review_minutes.into()),
            rollup: Some(self.rollup),
            timekeeper_id: self.timekeeper_id.clone(),
            timekeeper_name: self.timekeeper_name.clone(),
            timekeeper_classification: self.timekeeper_classification,
            law_firm_id: self.law_firm_id.clone(),
            schedule: self.schedule.map(|s| s.to_string()),
            learn_from_reviews: Some(self.learn_from_reviews),
            learned_since: Some(
                self.learned_since
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                    .unwrap_or_default(),
            ),
        }
    }

    /// Settings from their stored JSON form (a full patch).
    pub fn from_json(value: serde_json::Value) -> Result<Settings, SettingsError> {
        let patch: SettingsPatch =
            serde_json::from_value(value).map_err(|e| invalid("settings", e.to_string()))?;
        Settings::default().apply(patch)
    }

    /// Whether `email` (lower-case) is one of the owner's addresses.
    pub fn is_mine(&self, email: &str) -> bool {
        self.my_addresses.iter().any(|a| a == email)
    }

    /// Whether `domain` (any case) is the domain of one of `my_addresses`.
    pub fn is_my_domain(&self, domain: &str) -> bool {
        self.my_addresses.iter().any(|a| {
            a.rsplit_once('@')
                .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain))
        })
    }

    /// Whether `email` (lower-case) matches an `ignore_senders` entry.
    pub fn is_ignored_sender(&self, email: &str) -> bool {
        matches_any(&self.ignore_senders, email)
    }

    /// Whether `email` (lower-case) matches a `personal_contacts` entry.
    pub fn is_personal_contact(&self, email: &str) -> bool {
        matches_any(&self.personal_contacts, email)
    }

    /// A short fingerprint of what decides whether mail is a client's: the clients'
    /// names, domains, addresses, keywords and aliases, the owner's addresses and the
    /// personal contacts. Mail that matched no client is marked processed under it, so
    /// it is examined again once any of these change (rates or rounding do not count).
    pub fn matching_key(&self) -> String {
        use sha2::{Digest, Sha256};
        let clients: Vec<_> = self
            .clients
            .iter()
            .map(|c| (&c.name, &c.domains, &c.addresses, &c.keywords, &c.aliases))
            .collect();
        let parts = (&clients, &self.my_addresses, &self.personal_contacts);
        let json = serde_json::to_vec(&parts).unwrap_or_default();
        let digest = Sha256::digest(&json);
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn client(&self, name: &str) -> Option<&ClientRule> {
        self.clients.iter().find(|c| c.name == name)
    }

    /// The configured client of this name, ignoring case (what a person types).
    pub fn client_named(&self, name: &str) -> Option<&ClientRule> {
        let name = name.trim();
        self.client(name).or_else(|| {
            self.clients
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(name))
        })
    }
}

/// Whether `email` equals one of `patterns` or is in the domain of a `*@domain` one
/// (subdomains included).
fn matches_any(patterns: &[String], email: &str) -> bool {
    patterns.iter().any(|pat| match pat.strip_prefix("*@") {
        Some(domain) => email
            .rsplit_once('@')
            .is_some_and(|(_, d)| d == domain || d.ends_with(&format!(".{domain}"))),
        None => pat == email,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_schedule_is_spelled_daily_or_weekdays_and_a_time() {
        let s: Schedule = " Weekdays  7:05 ".parse().unwrap();
        assert_eq!(s.to_string(), "weekdays 07:05");
        assert_eq!(
            "daily 23:59".parse::<Schedule>().unwrap().to_string(),
            "daily 23:59"
        );
        for bad in [
            "",
            "daily",
            "hourly 07:00",
            "daily 25:00",
            "daily 7",
            "daily 07:00 x",
        ] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad}");
        }
        let set = Settings::default()
            .apply(patch(serde_json::json!({"schedule": "daily 07:00"})))
            .unwrap();
        assert_eq!(
            set.schedule.map(|s| s.to_string()).as_deref(),
            Some("daily 07:00")
        );
        // Stored as its patch and read back the same; an empty string turns it off.
        let back = Settings::from_json(serde_json::to_value(set.to_patch()).unwrap()).unwrap();
        assert_eq!(back.schedule, set.schedule);
        let off = set
            .apply(patch(serde_json::json!({"schedule": " "})))
            .unwrap();
        assert_eq!(off.schedule, None);
        let err = Settings::default()
            .apply(patch(serde_json::json!({"schedule": "at 7"})))
            .unwrap_err();
        assert_eq!(err.field, "schedule");
    }

    #[test]
    fn the_latest_slot_is_today_once_passed_else_the_one_before_in_the_users_zone() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let daily: Schedule = "daily 07:00".parse().unwrap();
        let weekdays: Schedule = "weekdays 07:00".parse().unwrap();
        // Friday 2026-12-04, 08:00 in New York (13:00 UTC): today's 07:00 has passed.
        assert_eq!(
            daily.latest_slot(at("2026-12-04T13:00:00Z"), ny),
            at("2026-12-04T12:00:00Z")
        );
        // 06:00 there: yesterday's.
        assert_eq!(
            daily.latest_slot(at("2026-12-04T11:00:00Z"), ny),
            at("2026-12-03T12:00:00Z")
        );
        // Exactly at the slot: due now.
        assert_eq!(
            daily.latest_slot(at("2026-12-04T12:00:00Z"), ny),
            at("2026-12-04T12:00:00Z")
        );
        // Saturday and Sunday: weekdays still point at Friday; Monday moves on.
        assert_eq!(
            weekdays.latest_slot(at("2026-12-05T13:00:00Z"), ny),
            at("2026-12-04T12:00:00Z")
        );
        assert_eq!(
            weekdays.latest_slot(at("2026-12-07T11:00:00Z"), ny),
            at("2026-12-04T12:00:00Z")
        );
        assert_eq!(
            weekdays.latest_slot(at("2026-12-07T13:00:00Z"), ny),
            at("2026-12-07T12:00:00Z")
        );
        // Across the spring change (2026-03-08), 02:30 does not exist in New York: the
        // slot runs an hour later, at 03:30 EDT (07:30 UTC), as Postgres reads it.
        let gap: Schedule = "daily 02:30".parse().unwrap();
        assert_eq!(
            gap.latest_slot(at("2026-03-08T12:00:00Z"), ny),
            at("2026-03-08T07:30:00Z")
        );
        // Summer time: 07:00 EDT is 11:00 UTC.
        assert_eq!(
            daily.latest_slot(at("2026-07-01T12:00:00Z"), ny),
            at("2026-07-01T11:00:00Z")
        );
    }

    #[test]
    fn settings_larger_than_the_limit_are_refused_whole() {
        let client = |i: usize| -> ClientRule {
            serde_json::from_value(serde_json::json!({
                "name": format!("Client {i}"),
                "domains": [format!("client{i}.example.com")]
            }))
            .unwrap()
        };
        let many = SettingsPatch {
            clients: Some((0..20_000).map(client).collect()),
            ..SettingsPatch::default()
        };
        let err = many.within_limit().unwrap_err();
        assert_eq!(err.field, "settings");
        assert!(err.message.contains("KiB"), "{err}");
        let few = SettingsPatch {
            clients: Some((0..300).map(client).collect()),
            ..SettingsPatch::default()
        };
        few.within_limit().unwrap();
        assert_eq!(Settings::default().apply(few).unwrap().clients.len(), 300);
    }

    fn patch(v: serde_json::Value) -> SettingsPatch {
        serde_json::from_value(v).expect("patch")
    }

    #[test]
    fn the_matching_key_changes_with_who_is_a_client_and_not_with_rates() {
        let with = |v: serde_json::Value| Settings::default().apply(patch(v)).unwrap();
        let base =
            with(serde_json::json!({"clients": [{"name": "Acme", "domains": ["acme.com"]}]}));
        let key = base.matching_key();
        assert_eq!(key.len(), 16);
        assert_eq!(key, base.clone().matching_key());
        let same = with(serde_json::json!({
            "clients": [{"name": "Acme", "domains": ["acme.com"], "hourly_rate": 400.0}],
            "billing_increment_minutes": 15,
            "default_hourly_rate": 90.0
        }));
        assert_eq!(same.matching_key(), key);
        for changed in [
            serde_json::json!({"clients": []}),
            serde_json::json!({"clients": [{"name": "Acme", "domains": ["acme.com", "acme.de"]}]}),
            serde_json::json!({"clients": [{"name": "Acme", "domains": ["acme.com"], "aliases": ["Roadrunner"]}]}),
            serde_json::json!({"clients": [{"name": "Acme", "domains": ["acme.com"], "keywords": ["anvil"]}]}),
            serde_json::json!({"clients": [{"name": "Acme", "domains": ["acme.com"]}], "my_addresses": ["me@firm.com"]}),
            serde_json::json!({"clients": [{"name": "Acme", "domains": ["acme.com"]}], "personal_contacts": ["pal@acme.com"]}),
        ] {
            assert_ne!(with(changed.clone()).matching_key(), key, "{changed}");
        }
    }

    #[test]
    fn defaults_are_the_specified_ones() {
        let s = Settings::default();
        assert_eq!(s.billing_increment_minutes, 6);
        assert_eq!(s.minimum_entry_minutes, 6);
        assert_eq!(s.min_confidence, 0.5);
        assert_eq!(s.max_entry_minutes, 480);
        assert_eq!(s.drafting_words_per_minute, 20);
        assert_eq!(s.reading_words_per_minute, 200);
        assert_eq!(s.attachment_review_minutes, 6);
    }

    #[test]
    fn a_bad_time_zone_names_the_field() {
        let err = Settings::default()
            .apply(patch(serde_json::json!({"timezone": "Mars/Olympus"})))
            .unwrap_err();
        assert_eq!(err.field, "timezone");
    }

    #[test]
    fn increments_outside_1_to_60_are_refused() {
        for bad in [0, 61, -6] {
            let err = Settings::default()
                .apply(patch(serde_json::json!({"billing_increment_minutes": bad})))
                .unwrap_err();
            assert_eq!(err.field, "billing_increment_minutes");
        }
        let ok = Settings::default()
            .apply(patch(serde_json::json!({"billing_increment_minutes": 15})))
            .unwrap();
        assert_eq!(ok.billing_increment_minutes, 15);
    }

    #[test]
    fn negative_rates_are_refused_with_their_path() {
        let err = Settings::default()
            .apply(patch(
                serde_json::json!({"clients": [{"name": "Acme", "hourly_rate": -1.0}]}),
            ))
            .unwrap_err();
        assert_eq!(err.field, "clients[0].hourly_rate");
        let err = Settings::default()
            .apply(patch(serde_json::json!({"default_hourly_rate": -5})))
            .unwrap_err();
        assert_eq!(err.field, "default_hourly_rate");
    }

    #[test]
    fn unknown_keys_are_refused_by_the_patch_type() {
        let err =
            serde_json::from_value::<SettingsPatch>(serde_json::json!({"billing_incrememt": 6}))
                .unwrap_err();
        assert!(err.to_string().contains("billing_incrememt"), "{err}");
    }

    #[test]
    fn stored_form_round_trips() {
        let s = Settings::default()
            .apply(patch(serde_json::json!({
                "timezone": "America/New_York",
                "clients": [{"name": "Acme", "domains": ["@Acme.com"], "keywords": ["Widget"]}],
                "ignore_senders": ["*@Example.org"],
            })))
            .unwrap();
        assert_eq!(s.clients[0].domains, vec!["acme.com"]);
        let again = Settings::from_json(serde_json::to_value(s.to_patch()).unwrap()).unwrap();
        assert_eq!(again, s);
    }

    #[test]
    fn ignore_senders_match_addresses_and_whole_domains() {
        let s = Settings::default()
            .apply(patch(
                serde_json::json!({"ignore_senders": ["*@example.org", "bot@acme.com"]}),
            ))
            .unwrap();
        assert!(s.is_ignored_sender("x@example.org"));
        assert!(s.is_ignored_sender("x@mail.example.org"));
        assert!(!s.is_ignored_sender("x@notexample.org"));
        assert!(s.is_ignored_sender("bot@acme.com"));
        assert!(!s.is_ignored_sender("jane@acme.com"));
    }

    #[test]
    fn personal_contacts_are_validated_and_matched_like_ignore_senders() {
        let s = Settings::default()
            .apply(patch(serde_json::json!({
                "personal_contacts": ["Golf.Buddy@Acme.com", "*@family.net"]
            })))
            .unwrap();
        assert!(s.is_personal_contact("golf.buddy@acme.com"));
        assert!(s.is_personal_contact("mum@home.family.net"));
        assert!(!s.is_personal_contact("jane@acme.com"));
        let err = Settings::default()
            .apply(patch(
                serde_json::json!({"personal_contacts": ["not an address"]}),
            ))
            .unwrap_err();
        assert_eq!(err.field, "personal_contacts");
    }

    #[test]
    fn the_old_single_matter_loads_as_the_clients_only_matter() {
        let s = Settings::default()
            .apply(patch(serde_json::json!({"clients": [
                {"name": "Acme", "matter": "Acme-001"}
            ]})))
            .unwrap();
        let m = s.clients[0].only_matter().unwrap();
        assert_eq!((m.id.as_str(), m.name.as_str()), ("Acme-001", "Acme-001"));
        let again = Settings::from_json(serde_json::to_value(s.to_patch()).unwrap()).unwrap();
        assert_eq!(again, s);
    }

    #[test]
    fn matters_are_validated_with_their_path() {
        let err = Settings::default()
            .apply(patch(serde_json::json!({"clients": [{"name": "Acme", "matters": [
                {"id": "A-1", "name": "Lease"},
                {"id": "A-2", "name": "Merger", "task_codes": true, "default_task_code": "phase one"}
            ]}]})))
            .unwrap_err();
        assert_eq!(err.field, "clients[0].matters[1].default_task_code");
        let err = Settings::default()
            .apply(patch(
                serde_json::json!({"clients": [{"name": "Acme", "matters": [
                    {"id": "A-1", "name": "Lease"}, {"id": "a-1", "name": "Again"}
                ]}]}),
            ))
            .unwrap_err();
        assert_eq!(err.field, "clients[0].matters");
        let s = Settings::default()
            .apply(patch(
                serde_json::json!({"clients": [{"name": "Acme", "matters": [
                    {"id": "A-1", "name": "Lease", "task_codes": true, "default_task_code": "l120"}
                ]}]}),
            ))
            .unwrap();
        assert_eq!(
            s.clients[0]
                .matter("a-1")
                .unwrap()
                .default_task_code
                .as_deref(),
            Some("L120")
        );
    }

    #[test]
    fn ledes_identity_settings_are_checked_and_cleared_by_an_empty_string() {
        let err = Settings::default()
            .apply(patch(serde_json::json!({"timekeeper_name": "Jane Doe"})))
            .unwrap_err();
        assert_eq!(err.field, "timekeeper_name");
        let s = Settings::default()
            .apply(patch(serde_json::json!({
                "timekeeper_id": " JD ", "timekeeper_name": "Doe, Jane",
                "timekeeper_classification": "PT", "law_firm_id": "12-3456789",
                "rollup": "matter_day"
            })))
            .unwrap();
        assert_eq!(s.timekeeper_id.as_deref(), Some("JD"));
        assert_eq!(s.rollup, Rollup::MatterDay);
        let again = Settings::from_json(serde_json::to_value(s.to_patch()).unwrap()).unwrap();
        assert_eq!(again, s);
        let cleared = s
            .apply(patch(serde_json::json!({"timekeeper_id": ""})))
            .unwrap();
        assert_eq!(cleared.timekeeper_id, None);
        let err = serde_json::from_value::<SettingsPatch>(
            serde_json::json!({"timekeeper_classification": "Partner"}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("Partner"), "{err}");
    }

    #[test]
    fn client_aliases_add_domains_and_names() {
        let s = Settings::default()
            .apply(patch(serde_json::json!({"clients": [
                {"name": "Goldman Sachs", "domains": ["gs.com"], "aliases": ["J. Aron", "@JAron.com"]}
            ]})))
            .unwrap();
        let c = &s.clients[0];
        assert_eq!(c.domains, vec!["gs.com", "jaron.com"]);
        assert_eq!(c.keywords, vec!["J. Aron"]);
        let again = Settings::from_json(serde_json::to_value(s.to_patch()).unwrap()).unwrap();
        assert_eq!(again, s);
        let err = Settings::default()
            .apply(patch(serde_json::json!({"clients": [
                {"name": "A", "aliases": ["bad..domain"]}
            ]})))
            .unwrap_err();
        assert_eq!(err.field, "clients[0].aliases");
    }
}
