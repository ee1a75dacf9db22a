//! Calendar parts: the first VEVENT of a text/calendar (or application/ics) part,
//! with its times resolved through IANA or Windows zone names and durations.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use mail_parser::{Message, MimeHeaders};

use crate::domain::email::{CalendarEvent, CalendarMethod, PartStat};

/// The first text/calendar (or application/ics) part, parsed.
pub(super) fn find_calendar(msg: &Message<'_>) -> Option<CalendarEvent> {
    let part = msg.parts.iter().find(|part| {
        let Some(ct) = part.content_type() else {
            return false;
        };
        let sub = ct.subtype().unwrap_or_default();
        (ct.ctype().eq_ignore_ascii_case("text") && sub.eq_ignore_ascii_case("calendar"))
            || (ct.ctype().eq_ignore_ascii_case("application") && sub.eq_ignore_ascii_case("ics"))
    })?;
    let text = match part.text_contents() {
        Some(t) => t.to_owned(),
        None => String::from_utf8_lossy(part.contents()).into_owned(),
    };
    let method_param = part
        .content_type()
        .and_then(|ct| ct.attribute("method"))
        .map(str::to_owned);
    parse_calendar(&text, method_param.as_deref())
}

/// One iCalendar content line: name, parameters (upper-case names), value.
struct ContentLine {
    name: String,
    params: Vec<(String, String)>,
    value: String,
}

impl ContentLine {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits `NAME;P=V;P2="x:y":value`, respecting quoted parameter values.
fn parse_content_line(line: &str) -> Option<ContentLine> {
    let mut in_quotes = false;
    let mut colon = None;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ':' if !in_quotes => {
                colon = Some(i);
                break;
            }
            _ => {}
        }
    }
    let colon = colon?;
    let head = line.get(..colon)?;
    let value = line.get(colon + 1..)?.to_owned();
    let mut pieces = Vec::new();
    let mut current = String::new();
    in_quotes = false;
    for c in head.chars() {
        match c {
            '"' => in_quotes = !in_quotes,
            ';' if !in_quotes => pieces.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    pieces.push(current);
    let mut pieces = pieces.into_iter();
    let name = pieces.next()?.trim().to_ascii_uppercase();
    let params = pieces
        .filter_map(|p| {
            let (n, v) = p.split_once('=')?;
            Some((n.trim().to_ascii_uppercase(), v.trim().to_owned()))
        })
        .collect();
    Some(ContentLine {
        name,
        params,
        value,
    })
}

/// Joins RFC 5545 folded lines (continuations start with a space or tab).
fn unfold(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(rest) = line.strip_prefix([' ', '\t'])
            && let Some(last) = out.last_mut()
        {
            last.push_str(rest);
            continue;
        }
        out.push(line.to_owned());
    }
    out
}

/// Parses the first VEVENT of an iCalendar text. `method_param` is the Content-Type
/// `method=` parameter, used when the body has no METHOD line.
pub fn parse_calendar(text: &str, method_param: Option<&str>) -> Option<CalendarEvent> {
    let mut method: Option<String> = None;
    let mut stack: Vec<String> = Vec::new();
    let mut in_first_event = false;
    let mut seen_event = false;
    let mut uid = String::new();
    let mut sequence = 0i64;
    let mut summary = None;
    let mut dtstart: Option<ContentLine> = None;
    let mut dtend: Option<ContentLine> = None;
    let mut duration: Option<String> = None;
    let mut organizer = None;
    let mut attendees = Vec::new();

    for line in unfold(text) {
        let Some(cl) = parse_content_line(&line) else {
            continue;
        };
        match cl.name.as_str() {
            "BEGIN" => {
                let comp = cl.value.trim().to_ascii_uppercase();
                if comp == "VEVENT" && !seen_event && stack.last().is_none_or(|c| c == "VCALENDAR")
                {
                    in_first_event = true;
                    seen_event = true;
                }
                stack.push(comp);
                continue;
            }
            "END" => {
                if let Some(comp) = stack.pop()
                    && comp == "VEVENT"
                {
                    in_first_event = false;
                }
                continue;
            }
            _ => {}
        }
        let at_calendar = stack.last().is_some_and(|c| c == "VCALENDAR");
        if at_calendar && cl.name == "METHOD" {
            method = Some(cl.value.trim().to_ascii_uppercase());
            continue;
        }
        // Properties of a VALARM inside the event are not the event's.
        if !in_first_event || stack.last().is_none_or(|c| c != "VEVENT") {
            continue;
        }
        match cl.name.as_str() {
            "UID" => uid = super::storable_id(cl.value.trim()),
            "SEQUENCE" => sequence = cl.value.trim().parse().unwrap_or(0),
            "SUMMARY" => summary = Some(unescape_text(&cl.value)).filter(|s| !s.is_empty()),
            "DTSTART" => dtstart = Some(cl),
            "DTEND" => dtend = Some(cl),
            "DURATION" => duration = Some(cl.value.trim().to_owned()),
            "ORGANIZER" => organizer = mailto(&cl.value),
            "ATTENDEE" => {
                if let Some(addr) = mailto(&cl.value) {
                    let stat = cl
                        .param("PARTSTAT")
                        .map(partstat)
                        .unwrap_or(PartStat::NeedsAction);
                    attendees.push((addr, stat));
                }
            }
            _ => {}
        }
    }
    if !seen_event {
        return None;
    }

    let method = match method
        .or_else(|| method_param.map(|m| m.trim().to_ascii_uppercase()))
        .unwrap_or_default()
        .as_str()
    {
        "REQUEST" => CalendarMethod::Request,
        "CANCEL" => CalendarMethod::Cancel,
        "REPLY" => CalendarMethod::Reply,
        other => CalendarMethod::Other(other.to_owned()),
    };

    let (start, start_date) = match dtstart.as_ref().and_then(ical_time) {
        Some(IcalTime::Instant(t)) => (Some(t), None),
        Some(IcalTime::Date(d)) => (None, Some(d)),
        None => (None, None),
    };
    let end = if start_date.is_some() {
        None
    } else {
        match dtend.as_ref().and_then(ical_time) {
            Some(IcalTime::Instant(t)) => Some(t),
            _ => start.and_then(|s| {
                duration
                    .as_deref()
                    .and_then(parse_duration)
                    .and_then(|d| s.checked_add_signed(d))
            }),
        }
    };

    Some(CalendarEvent {
        method,
        uid,
        sequence,
        summary,
        start,
        end,
        start_date,
        organizer,
        attendees,
    })
}

fn unescape_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') | Some('N') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out.trim().to_owned()
}

fn mailto(value: &str) -> Option<String> {
    let v = value.trim();
    let addr = match v.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("mailto:") => v.get(7..)?,
        _ => v,
    };
    let addr = addr.trim().to_ascii_lowercase();
    (addr.contains('@')).then_some(addr)
}

fn partstat(value: &str) -> PartStat {
    match value.trim().to_ascii_uppercase().as_str() {
        "ACCEPTED" => PartStat::Accepted,
        "DECLINED" => PartStat::Declined,
        "TENTATIVE" => PartStat::Tentative,
        "NEEDS-ACTION" => PartStat::NeedsAction,
        other => PartStat::Other(other.to_owned()),
    }
}

enum IcalTime {
    Instant(DateTime<Utc>),
    Date(NaiveDate),
}

/// A DTSTART/DTEND value: UTC (`Z`), local time in a TZID zone, floating (read as UTC)
/// or a date (all-day).
fn ical_time(cl: &ContentLine) -> Option<IcalTime> {
    let value = cl.value.trim();
    let is_date = cl
        .param("VALUE")
        .is_some_and(|v| v.eq_ignore_ascii_case("DATE"))
        || (value.len() == 8 && value.bytes().all(|b| b.is_ascii_digit()));
    if is_date {
        return NaiveDate::parse_from_str(value.get(..8).unwrap_or(value), "%Y%m%d")
            .ok()
            .map(IcalTime::Date);
    }
    let (local, utc) = match value.strip_suffix(['Z', 'z']) {
        Some(v) => (v, true),
        None => (value, false),
    };
    let naive = NaiveDateTime::parse_from_str(local, "%Y%m%dT%H%M%S")
        .or_else(|_| NaiveDateTime::parse_from_str(local, "%Y%m%dT%H%M"));
    let naive = naive.ok()?;
    if utc {
        return Some(IcalTime::Instant(naive.and_utc()));
    }
    let tz = cl.param("TZID").and_then(resolve_tzid).unwrap_or(Tz::UTC);
    let instant = match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(earliest, _) => earliest.with_timezone(&Utc),
        // A time in a DST gap: the clock skipped it; read it as the hour after.
        LocalResult::None => tz
            .from_local_datetime(&(naive + Duration::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| naive.and_utc()),
    };
    Some(IcalTime::Instant(instant))
}

/// An IANA zone from a TZID, also Windows names Outlook uses; `None` when unknown
/// (the caller then reads the time as UTC).
fn resolve_tzid(tzid: &str) -> Option<Tz> {
    let id = tzid.trim().trim_matches('"').trim_start_matches('/');
    if let Ok(tz) = id.parse::<Tz>() {
        return Some(tz);
    }
    // `/mozilla.org/20050126_1/Europe/Berlin` style prefixes.
    if let Some(tz) = id
        .match_indices('/')
        .filter_map(|(i, _)| id.get(i + 1..)?.parse::<Tz>().ok())
        .next()
    {
        return Some(tz);
    }
    const WINDOWS: &[(&str, &str)] = &[
        ("Eastern Standard Time", "America/New_York"),
        ("US Eastern Standard Time", "America/Indianapolis"),
        ("Central Standard Time", "America/Chicago"),
        ("Mountain Standard Time", "America/Denver"),
        ("US Mountain Standard Time", "America/Phoenix"),
        ("Pacific Standard Time", "America/Los_Angeles"),
        ("Alaskan Standard Time", "America/Anchorage"),
        ("Hawaiian Standard Time", "Pacific/Honolulu"),
        ("Atlantic Standard Time", "America/Halifax"),
        ("E. South America Standard Time", "America/Sao_Paulo"),
        ("GMT Standard Time", "Europe/London"),
        ("Greenwich Standard Time", "Atlantic/Reykjavik"),
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("Romance Standard Time", "Europe/Paris"),
        ("Central Europe Standard Time", "Europe/Budapest"),
        ("Central European Standard Time", "Europe/Warsaw"),
        ("E. Europe Standard Time", "Europe/Chisinau"),
        ("FLE Standard Time", "Europe/Kiev"),
        ("GTB Standard Time", "Europe/Bucharest"),
        ("Russian Standard Time", "Europe/Moscow"),
        ("Israel Standard Time", "Asia/Jerusalem"),
        ("Arabian Standard Time", "Asia/Dubai"),
        ("India Standard Time", "Asia/Kolkata"),
        ("China Standard Time", "Asia/Shanghai"),
        ("Singapore Standard Time", "Asia/Singapore"),
        ("Tokyo Standard Time", "Asia/Tokyo"),
        ("Korea Standard Time", "Asia/Seoul"),
        ("AUS Eastern Standard Time", "Australia/Sydney"),
        ("E. Australia Standard Time", "Australia/Brisbane"),
        ("New Zealand Standard Time", "Pacific/Auckland"),
        ("UTC", "UTC"),
        ("Coordinated Universal Time", "UTC"),
    ];
    WINDOWS
        .iter()
        .find(|(win, _)| win.eq_ignore_ascii_case(id))
        .and_then(|(_, iana)| iana.parse().ok())
}

/// An RFC 5545 DURATION such as `PT1H30M`, `P1D`, `P2W`, `-PT15M`.
fn parse_duration(value: &str) -> Option<Duration> {
    let v = value.trim();
    let (sign, v) = match v.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, v.strip_prefix('+').unwrap_or(v)),
    };
    let v = v.strip_prefix(['P', 'p'])?;
    let mut seconds: i64 = 0;
    let mut number = String::new();
    let mut any = false;
    for c in v.chars() {
        match c.to_ascii_uppercase() {
            'T' => {}
            d if d.is_ascii_digit() => number.push(d),
            unit => {
                let n: i64 = number.parse().ok()?;
                number.clear();
                let factor = match unit {
                    'W' => 7 * 86_400,
                    'D' => 86_400,
                    'H' => 3_600,
                    'M' => 60,
                    'S' => 1,
                    _ => return None,
                };
                seconds = seconds.checked_add(n.checked_mul(factor)?)?;
                any = true;
            }
        }
    }
    (any && number.is_empty()).then(|| Duration::try_seconds(sign * seconds))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::email::Email;
    use crate::mail::parse::tests::parse;

    fn invite(method: &str, event: &str) -> Email {
        parse(&format!(
            "From: ann@acme.com\nTo: me@example.com\nSubject: Invitation\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nYou are invited.\n--b\nContent-Type: text/calendar; charset=utf-8; method={method}\n\nBEGIN:VCALENDAR\nMETHOD:{method}\nBEGIN:VTIMEZONE\nTZID:Europe/Berlin\nBEGIN:STANDARD\nDTSTART:19701025T030000\nEND:STANDARD\nEND:VTIMEZONE\nBEGIN:VEVENT\n{event}\nBEGIN:VALARM\nTRIGGER:-PT15M\nDESCRIPTION:not the summary\nEND:VALARM\nEND:VEVENT\nEND:VCALENDAR\n--b--\n"
        ))
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> Option<DateTime<Utc>> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).single()
    }

    #[test]
    fn a_request_with_utc_times_organizer_attendees_and_folded_lines() {
        let email = invite(
            "REQUEST",
            "UID:evt-1@acme.com\nSEQUENCE:2\nSUMMARY:Contract review\\, round 2\nDTSTART:20240610T150000Z\nDTEND:20240610T163000Z\nORGANIZER;CN=Ann:mailto:Ann@Acme.com\nATTENDEE;CN=\"Me: myself\";PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT:mai\n lto:Me@Example.com\nATTENDEE;PARTSTAT=TENTATIVE:mailto:bob@acme.com\nATTENDEE:mailto:carl@acme.com",
        );
        let Some(cal) = email.calendar else {
            panic!("no calendar parsed");
        };
        assert_eq!(cal.method, CalendarMethod::Request);
        assert_eq!(cal.uid, "evt-1@acme.com");
        assert_eq!(cal.sequence, 2);
        assert_eq!(cal.summary.as_deref(), Some("Contract review, round 2"));
        assert_eq!(cal.start, utc(2024, 6, 10, 15, 0));
        assert_eq!(cal.end, utc(2024, 6, 10, 16, 30));
        assert_eq!(cal.start_date, None);
        assert_eq!(cal.organizer.as_deref(), Some("ann@acme.com"));
        assert_eq!(
            cal.attendees,
            vec![
                ("me@example.com".to_owned(), PartStat::Accepted),
                ("bob@acme.com".to_owned(), PartStat::Tentative),
                ("carl@acme.com".to_owned(), PartStat::NeedsAction),
            ]
        );
        assert_eq!(email.new_text, "You are invited.");
    }

    #[test]
    fn tzid_local_times_are_converted_with_the_zone_rules() {
        let email = invite(
            "REQUEST",
            "UID:tz\nDTSTART;TZID=Europe/Berlin:20240610T090000\nDTEND;TZID=\"Europe/Berlin\":20240610T100000",
        );
        let cal = email.calendar;
        assert_eq!(
            cal.as_ref().and_then(|c| c.start),
            utc(2024, 6, 10, 7, 0),
            "CEST is UTC+2"
        );
        assert_eq!(cal.and_then(|c| c.end), utc(2024, 6, 10, 8, 0));
    }

    #[test]
    fn windows_zone_names_unknown_zones_and_floating_times() {
        let email = invite(
            "REQUEST",
            "UID:w\nDTSTART;TZID=Eastern Standard Time:20240115T090000\nDTEND;TZID=Nowhere/Special:20240115T100000",
        );
        let cal = email.calendar;
        assert_eq!(
            cal.as_ref().and_then(|c| c.start),
            utc(2024, 1, 15, 14, 0),
            "EST is UTC-5"
        );
        assert_eq!(
            cal.and_then(|c| c.end),
            utc(2024, 1, 15, 10, 0),
            "unknown zone is read as UTC"
        );
        let email = invite(
            "REQUEST",
            "UID:f\nDTSTART:20240115T090000\nDTEND:20240115T093000",
        );
        assert_eq!(email.calendar.and_then(|c| c.end), utc(2024, 1, 15, 9, 30));
    }

    #[test]
    fn all_day_events_have_only_a_start_date() {
        let email = invite(
            "REQUEST",
            "UID:d\nDTSTART;VALUE=DATE:20240610\nDTEND;VALUE=DATE:20240611",
        );
        let Some(cal) = email.calendar else {
            panic!("no calendar parsed");
        };
        assert_eq!(cal.start_date, NaiveDate::from_ymd_opt(2024, 6, 10));
        assert_eq!((cal.start, cal.end), (None, None));
        assert_eq!(cal.sequence, 0, "SEQUENCE defaults to 0");
    }

    #[test]
    fn duration_gives_the_end() {
        let email = invite(
            "REQUEST",
            "UID:dur\nDTSTART:20240610T150000Z\nDURATION:PT1H15M",
        );
        assert_eq!(email.calendar.and_then(|c| c.end), utc(2024, 6, 10, 16, 15));
        assert_eq!(parse_duration("P1W"), Some(Duration::days(7)));
        assert_eq!(parse_duration("P1DT2H"), Some(Duration::hours(26)));
        assert_eq!(parse_duration("garbage"), None);
        assert_eq!(parse_duration("PT"), None);
    }

    #[test]
    fn cancel_and_declined_reply_are_read() {
        let email = invite(
            "CANCEL",
            "UID:evt-1@acme.com\nSEQUENCE:3\nDTSTART:20240610T150000Z",
        );
        let cal = email.calendar;
        assert_eq!(
            cal.as_ref().map(|c| c.method.clone()),
            Some(CalendarMethod::Cancel)
        );
        assert_eq!(cal.map(|c| c.sequence), Some(3));
        let email = invite(
            "REPLY",
            "UID:evt-1@acme.com\nDTSTART:20240610T150000Z\nATTENDEE;PARTSTAT=DECLINED:MAILTO:ME@example.com",
        );
        let Some(cal) = email.calendar else {
            panic!("no calendar parsed");
        };
        assert_eq!(cal.method, CalendarMethod::Reply);
        assert_eq!(
            cal.attendees,
            vec![("me@example.com".to_owned(), PartStat::Declined)]
        );
    }

    #[test]
    fn a_calendar_without_an_event_is_none() {
        assert_eq!(
            parse_calendar("BEGIN:VCALENDAR\nMETHOD:REQUEST\nEND:VCALENDAR", None),
            None
        );
        assert_eq!(parse_calendar("\u{0}garbage:::\n;;;", None), None);
    }
}
