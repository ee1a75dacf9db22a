//! The labels file (docs/eval.md): what a person says each message should have become.
//! Parsed once into checked `Labels`; every error names the field, and the line where
//! serde knows it, so a hand-edited file is easy to fix.

use std::collections::HashSet;

use serde::Deserialize;

use crate::domain::Activity;

/// The only version of the format so far; a later one will say what changed.
pub const VERSION: u32 = 1;

/// What the label wants for its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Want {
    /// Work to bill: the message should get a billable entry.
    Billable,
    /// Not work to bill: the message should get no billable entry.
    NotBillable,
    /// Either answer is fine (`"billable": null`): reported, never scored.
    Either,
}

impl Want {
    /// How the labels file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Want::Billable => "true",
            Want::NotBillable => "false",
            Want::Either => "either",
        }
    }
}

/// One checked label.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// The message's id as entries carry it: the Message-ID without angle brackets,
    /// or the Gmail id.
    pub message_id: String,
    pub want: Want,
    /// The kind of message, for the per-class counts ("unclassified" when not given).
    pub class: String,
    /// The client a billable entry should name; `None`: not scored.
    pub client: Option<String>,
    /// Other clients that are also right.
    pub client_alternatives: Vec<String>,
    pub activity: Option<Activity>,
    /// The billed minutes a person would accept, inclusive; `None`: not scored.
    pub billed: Option<(u32, u32)>,
    /// How many messages of the mailbox this label stands for (a stratified sample).
    pub weight: f64,
}

/// A whole checked labels file.
#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    /// A settings file named by the labels file, relative to it.
    pub settings: Option<String>,
    pub labels: Vec<Label>,
}

/// A labels file that cannot be used, with the field (`labels[3].billable`) and, for
/// JSON errors, the line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct LabelsError {
    pub field: String,
    pub message: String,
}

fn error(field: impl Into<String>, message: impl Into<String>) -> LabelsError {
    LabelsError {
        field: field.into(),
        message: message.into(),
    }
}

/// The file as written; `deny_unknown_fields` catches a mistyped key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: Option<u32>,
    #[serde(default)]
    settings: Option<String>,
    /// Free text on where the labels come from; kept for people, unused here.
    #[serde(default)]
    #[allow(dead_code)]
    source: Option<String>,
    labels: Vec<RawLabel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLabel {
    message_id: String,
    /// `None`: the key is missing (an error); `Some(None)`: null, "either".
    #[serde(default, deserialize_with = "present")]
    billable: Option<Option<bool>>,
    #[serde(default)]
    class: Option<String>,
    #[serde(default)]
    client: Option<String>,
    #[serde(default)]
    client_alternatives: Vec<String>,
    #[serde(default)]
    activity: Option<Activity>,
    #[serde(default)]
    billed_min: Option<u32>,
    #[serde(default)]
    billed_max: Option<u32>,
    #[serde(default)]
    weight: Option<f64>,
    /// For people reading the file; unused here.
    #[serde(default)]
    #[allow(dead_code)]
    subject: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
}

/// Tells a present `null` from a missing key, which serde's `Option` cannot.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<bool>>, D::Error> {
    Option::<bool>::deserialize(d).map(Some)
}

impl Labels {
    /// Parses and checks a labels file's text.
    pub fn parse(text: &str) -> Result<Labels, LabelsError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let raw: RawFile = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.to_string();
            // serde names a missing or unknown key only in its message.
            let key = ["unknown field `", "missing field `"]
                .iter()
                .find_map(|p| message.split(*p).nth(1))
                .and_then(|rest| rest.split('`').next());
            let field = match (path.as_str(), key) {
                (".", Some(k)) => k.to_owned(),
                (p, Some(k)) if !p.ends_with(k) => format!("{p}.{k}"),
                (".", None) => "labels file".to_owned(),
                (p, _) => p.to_owned(),
            };
            error(field, message)
        })?;
        match raw.version {
            Some(VERSION) => {}
            Some(v) => {
                return Err(error(
                    "version",
                    format!(
                        "version {v} is not known to this billable; it reads version {VERSION}"
                    ),
                ));
            }
            None => {
                return Err(error(
                    "version",
                    format!("missing: start the file with \"version\": {VERSION}"),
                ));
            }
        }
        let mut seen = HashSet::new();
        let mut labels = Vec::with_capacity(raw.labels.len());
        for (i, r) in raw.labels.into_iter().enumerate() {
            let label = check(i, r)?;
            if !seen.insert(label.message_id.clone()) {
                return Err(error(
                    format!("labels[{i}].message_id"),
                    format!(
                        "`{}` is labelled twice: keep one label per message",
                        label.message_id
                    ),
                ));
            }
            labels.push(label);
        }
        Ok(Labels {
            settings: raw.settings,
            labels,
        })
    }
}

/// The checks JSON cannot express, for the label at index `i`.
fn check(i: usize, r: RawLabel) -> Result<Label, LabelsError> {
    let at = |key: &str| format!("labels[{i}].{key}");
    let message_id = normalize_id(&r.message_id);
    if message_id.is_empty() {
        return Err(error(
            at("message_id"),
            "empty: give the Message-ID without angle brackets, or the Gmail id",
        ));
    }
    let want = match r.billable {
        Some(Some(true)) => Want::Billable,
        Some(Some(false)) => Want::NotBillable,
        Some(None) => Want::Either,
        None => {
            return Err(error(
                at("billable"),
                format!(
                    "missing for `{message_id}`: give true, false, or null when either answer is fine"
                ),
            ));
        }
    };
    let billed = match (r.billed_min, r.billed_max) {
        (None, None) => None,
        (Some(lo), Some(hi)) if lo <= hi => Some((lo, hi)),
        (Some(lo), Some(hi)) => {
            return Err(error(
                at("billed_min"),
                format!("{lo} is above billed_max {hi} for `{message_id}`"),
            ));
        }
        (Some(_), None) => {
            return Err(error(
                at("billed_max"),
                format!(
                    "missing for `{message_id}`: give both billed_min and billed_max, or neither"
                ),
            ));
        }
        (None, Some(_)) => {
            return Err(error(
                at("billed_min"),
                format!(
                    "missing for `{message_id}`: give both billed_min and billed_max, or neither"
                ),
            ));
        }
    };
    let weight = match r.weight {
        None => 1.0,
        Some(w) if w.is_finite() && w > 0.0 => w,
        Some(w) => {
            return Err(error(
                at("weight"),
                format!("{w} for `{message_id}`: a weight is a positive number of messages"),
            ));
        }
    };
    let class = r
        .class
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "unclassified".to_owned());
    Ok(Label {
        message_id,
        want,
        class,
        client: r.client.filter(|c| !c.trim().is_empty()),
        client_alternatives: r.client_alternatives,
        activity: r.activity,
        billed,
        weight,
    })
}

/// A message id as entries carry it: no surrounding blanks or angle brackets.
pub fn normalize_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(labels: &str) -> Result<Labels, LabelsError> {
        Labels::parse(&format!(r#"{{"version": 1, "labels": [{labels}]}}"#))
    }

    #[test]
    fn a_label_reads_its_fields_and_null_means_either() {
        let l = parse(
            r#"{"message_id": "<a@x>", "billable": true, "class": "client_mail", "client": "Acme",
                "client_alternatives": ["Acme Ltd"], "activity": "email_sent", "billed_min": 6,
                "billed_max": 12, "weight": 2.5, "subject": "s", "note": "n"},
               {"message_id": "b@x", "billable": null}"#,
        )
        .unwrap();
        let a = &l.labels[0];
        assert_eq!(a.message_id, "a@x");
        assert_eq!(a.want, Want::Billable);
        assert_eq!(a.client.as_deref(), Some("Acme"));
        assert_eq!(a.billed, Some((6, 12)));
        assert_eq!(a.activity, Some(Activity::EmailSent));
        assert_eq!(a.weight, 2.5);
        let b = &l.labels[1];
        assert_eq!(
            (b.want, b.class.as_str(), b.weight),
            (Want::Either, "unclassified", 1.0)
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                r#"{"message_id": "a", "billable": "yes"}"#,
                "labels[0].billable",
            ),
            (r#"{"message_id": "a"}"#, "labels[0].billable"),
            (
                r#"{"message_id": "a", "billable": true, "billabel": true}"#,
                "labels[0].billabel",
            ),
            (r#"{"billable": true}"#, "labels[0].message_id"),
            (
                r#"{"message_id": "a", "billable": true, "activity": "lunch"}"#,
                "labels[0].activity",
            ),
            (
                r#"{"message_id": "a", "billable": true, "billed_min": 12, "billed_max": 6}"#,
                "labels[0].billed_min",
            ),
            (
                r#"{"message_id": "a", "billable": true, "billed_min": 6}"#,
                "labels[0].billed_max",
            ),
            (
                r#"{"message_id": "a", "billable": true, "weight": 0}"#,
                "labels[0].weight",
            ),
            (
                r#"{"message_id": " <> ", "billable": true}"#,
                "labels[0].message_id",
            ),
            (
                r#"{"message_id": "a", "billable": true}, {"message_id": "<a>", "billable": false}"#,
                "labels[1].message_id",
            ),
        ];
        for (labels, field) in cases {
            let e = parse(labels).unwrap_err();
            assert_eq!(e.field, field, "{labels}: {e}");
        }
    }

    #[test]
    fn a_json_error_says_where() {
        let e =
            Labels::parse("{\"version\": 1,\n \"labels\": [\n {\"message_id\": 3}]}").unwrap_err();
        assert_eq!(e.field, "labels[0].message_id");
        assert!(e.message.contains("line 3"), "{e}");
        let e = Labels::parse(r#"{"labels": []}"#).unwrap_err();
        assert_eq!(e.field, "version");
        let e = Labels::parse(r#"{"version": 2, "labels": []}"#).unwrap_err();
        assert_eq!(e.field, "version");
        let e = Labels::parse("42").unwrap_err();
        assert_eq!(e.field, "labels file");
    }
}
