//! The user's tracking settings. A `Settings` value is always valid: it is only built by
//! `Settings::default()` or `Settings::apply(patch)`, which checks every field.

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
    /// Matter or project to record on the client's entries.
    #[serde(default)]
    pub matter: Option<String>,
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
        let matter = self
            .matter
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty());
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
            matter,
            hourly_rate,
            aliases,
        })
    }

    /// The hourly rate for this client's work under `settings`.
    pub fn rate(&self, settings: &Settings) -> f64 {
        self.hourly_rate.unwrap_or(settings.default_hourly_rate)
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

    /// Whether `email` (lower-case) matches an `ignore_senders` entry.
    pub fn is_ignored_sender(&self, email: &str) -> bool {
        matches_any(&self.ignore_senders, email)
    }

    /// Whether `email` (lower-case) matches a `personal_contacts` entry.
    pub fn is_personal_contact(&self, email: &str) -> bool {
        matches_any(&self.personal_contacts, email)
    }

    pub fn client(&self, name: &str) -> Option<&ClientRule> {
        self.clients.iter().find(|c| c.name == name)
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
