//! Scoring entries against labels, exactly as the corpora's own scorers do
//! (tests/corpora/*/README.md): a message "has an entry" when an entry with
//! `billable != false` names it; `either` labels are counted per class but never scored.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::labels::{Label, Labels, Want, normalize_id};
use crate::domain::{Activity, EntryStatus, TimeEntry};

/// What scoring needs of an entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub message_id: String,
    pub billable: bool,
    pub status: EntryStatus,
    pub client: Option<String>,
    pub billed_minutes: u32,
    pub activity: Activity,
}

impl From<&TimeEntry> for Seen {
    fn from(e: &TimeEntry) -> Seen {
        Seen {
            message_id: normalize_id(&e.message_id),
            billable: e.billable,
            status: e.status,
            client: e.client.clone(),
            billed_minutes: e.billed_minutes,
            activity: e.activity,
        }
    }
}

/// The figures and where the errors are. Ratios are rounded to two decimals, as
/// printed, so the text and `--json` always agree; `None` when nothing was there to
/// measure (e.g. `client` with no client in any label). The counts give the exact ratios.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Precision: labelled billable among scored messages with an entry.
    #[serde(rename = "P")]
    pub p: Option<f64>,
    /// Recall: labelled-billable messages with an entry.
    #[serde(rename = "R")]
    pub r: Option<f64>,
    /// Labelled-not-billable messages left without an entry.
    pub spec: Option<f64>,
    /// Precision of the entries with status `suggested` alone.
    #[serde(rename = "Psugg")]
    pub psugg: Option<f64>,
    /// Precision of the entries with status `needs_review` alone.
    #[serde(rename = "Prev")]
    pub prev: Option<f64>,
    /// True positives naming the label's client (or an alternative), of those whose
    /// label names one.
    pub client: Option<f64>,
    /// True positives whose billed minutes are within the label's range, of those
    /// whose label has one.
    pub dur: Option<f64>,
    /// Scored labels (billable true or false).
    pub n: usize,
    /// Labels considered, `either` ones included.
    pub labels: usize,
    pub either: usize,
    pub tp: usize,
    pub fp: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
    pub tn: usize,
    pub suggested: Confusion,
    pub needs_review: Confusion,
    pub entries: EntryCounts,
    pub minutes: Minutes,
    /// P and R with each label standing for `weight` messages of the mailbox.
    pub weighted: Weighted,
    pub classes: Vec<ClassRow>,
    pub errors: Errors,
}

/// Entries of one status on scored messages: right (tp) and wrong (fp).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Confusion {
    pub tp: usize,
    pub fp: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EntryCounts {
    /// Entries considered (in scope).
    pub listed: usize,
    /// Entries with `billable: false`: they count as no entry.
    pub not_billable: usize,
    /// Billable entries on labelled messages.
    pub on_labelled: usize,
    /// Billable entries on messages no label names (not scored).
    pub on_unlabelled: usize,
}

/// Billed minutes on scored messages: the tool's entries against the middle of the
/// labels' ranges.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Minutes {
    pub tool: u64,
    pub labelled: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Weighted {
    #[serde(rename = "P")]
    pub p: Option<f64>,
    #[serde(rename = "R")]
    pub r: Option<f64>,
}

/// One class of labels: how many, and what became of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClassRow {
    pub class: String,
    /// `true`, `false`, `either`, or `mixed` when the class's labels disagree.
    pub label: String,
    pub n: usize,
    pub with_entry: usize,
    pub suggested: usize,
    pub needs_review: usize,
}

/// Errors grouped by what kind of message (or which mix-up) they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Errors {
    /// Entries on messages labelled not billable, by class.
    pub false_positives: Vec<Group>,
    /// Labelled-billable messages without an entry, by class.
    pub misses: Vec<Group>,
    /// By `label client -> entry client`.
    pub wrong_client: Vec<Group>,
    /// Billed minutes above the label's range, by class.
    pub billed_over: Vec<Group>,
    /// Billed minutes below the label's range, by class.
    pub billed_under: Vec<Group>,
    /// By `label activity -> entry activity` (reported, not in the headline figures).
    pub activity: Vec<Group>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    pub key: String,
    pub n: usize,
    /// The first few, in Message-ID order.
    pub examples: Vec<String>,
}

/// Examples shown per group.
const EXAMPLES: usize = 3;

/// Scores `entries` against `labels`. With `scope`, only those message ids count:
/// labels and entries elsewhere are left out (the reviewed part of a learning run).
pub fn score(labels: &Labels, entries: &[Seen], scope: Option<&HashSet<String>>) -> Report {
    let in_scope = |id: &str| scope.is_none_or(|s| s.contains(id));
    let mut counts = EntryCounts::default();
    // The message's billable entry; a message has at most one entry, but should a
    // store hold two, a billable one decides, as in both scorers.
    let mut by_msg: HashMap<&str, &Seen> = HashMap::new();
    for e in entries.iter().filter(|e| in_scope(&e.message_id)) {
        counts.listed += 1;
        if e.billable {
            by_msg.entry(e.message_id.as_str()).or_insert(e);
        } else {
            counts.not_billable += 1;
        }
    }
    let labelled: HashSet<&str> = labels
        .labels
        .iter()
        .map(|l| l.message_id.as_str())
        .collect();
    counts.on_unlabelled = by_msg.keys().filter(|m| !labelled.contains(*m)).count();
    counts.on_labelled = by_msg.len() - counts.on_unlabelled;

    let mut t = Tally::default();
    for label in labels.labels.iter().filter(|l| in_scope(&l.message_id)) {
        t.add(label, by_msg.get(label.message_id.as_str()).copied());
    }
    t.report(counts)
}

/// Counts as labels are read.
#[derive(Default)]
struct Tally {
    labels: usize,
    either: usize,
    tp: usize,
    fp: usize,
    fn_: usize,
    tn: usize,
    suggested: Confusion,
    needs_review: Confusion,
    client_scored: usize,
    duration_scored: usize,
    minutes: Minutes,
    weight: [f64; 3],
    classes: BTreeMap<String, (HashSet<Want>, ClassRow)>,
    errors: BTreeMap<Kind, BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    FalsePositive,
    Miss,
    WrongClient,
    Over,
    Under,
    Activity,
}

impl Tally {
    fn error(&mut self, kind: Kind, key: String, example: String) {
        self.errors
            .entry(kind)
            .or_default()
            .entry(key)
            .or_default()
            .push(example);
    }

    fn add(&mut self, label: &Label, entry: Option<&Seen>) {
        self.labels += 1;
        let (wants, row) = self.classes.entry(label.class.clone()).or_default();
        wants.insert(label.want);
        row.n += 1;
        if let Some(e) = entry {
            row.with_entry += 1;
            match e.status {
                EntryStatus::Suggested => row.suggested += 1,
                EntryStatus::NeedsReview => row.needs_review += 1,
                EntryStatus::Approved | EntryStatus::Rejected => {}
            }
        }
        let id = label.message_id.clone();
        let right = match (label.want, entry) {
            (Want::Either, _) => {
                self.either += 1;
                return;
            }
            (Want::Billable, Some(e)) => {
                self.tp += 1;
                self.weight[0] += label.weight;
                self.minutes.tool += u64::from(e.billed_minutes);
                self.check_entry(label, e);
                true
            }
            (Want::Billable, None) => {
                self.fn_ += 1;
                self.weight[2] += label.weight;
                self.error(Kind::Miss, label.class.clone(), id);
                false
            }
            (Want::NotBillable, Some(e)) => {
                self.fp += 1;
                self.weight[1] += label.weight;
                self.minutes.tool += u64::from(e.billed_minutes);
                self.error(Kind::FalsePositive, label.class.clone(), id);
                false
            }
            (Want::NotBillable, None) => {
                self.tn += 1;
                return;
            }
        };
        if let Some((lo, hi)) = label.billed.filter(|_| label.want == Want::Billable) {
            self.minutes.labelled += f64::from(lo + hi) / 2.0;
        }
        let status = match entry.map(|e| e.status) {
            Some(EntryStatus::Suggested) => &mut self.suggested,
            Some(EntryStatus::NeedsReview) => &mut self.needs_review,
            _ => return,
        };
        if right {
            status.tp += 1;
        } else {
            status.fp += 1;
        }
    }

    /// Client, minutes and activity of a true positive.
    fn check_entry(&mut self, label: &Label, e: &Seen) {
        let id = &label.message_id;
        if let Some(want) = &label.client {
            self.client_scored += 1;
            let got = e.client.as_deref();
            let ok = got == Some(want.as_str())
                || label.client_alternatives.iter().any(|a| got == Some(a));
            if !ok {
                let key = format!("{want} -> {}", got.unwrap_or("none"));
                self.error(Kind::WrongClient, key, id.clone());
            }
        }
        if let Some((lo, hi)) = label.billed {
            self.duration_scored += 1;
            let bm = e.billed_minutes;
            let example = format!("{id} ({bm} vs {lo}-{hi})");
            if bm > hi {
                self.error(Kind::Over, label.class.clone(), example);
            } else if bm < lo {
                self.error(Kind::Under, label.class.clone(), example);
            }
        }
        if let Some(want) = label.activity
            && want != e.activity
        {
            let key = format!("{} -> {}", want.as_str(), e.activity.as_str());
            self.error(Kind::Activity, key, id.clone());
        }
    }

    fn wrong(&self, kind: Kind) -> usize {
        self.errors
            .get(&kind)
            .map_or(0, |g| g.values().map(Vec::len).sum())
    }

    fn groups(&mut self, kind: Kind) -> Vec<Group> {
        let mut groups: Vec<Group> = self
            .errors
            .remove(&kind)
            .unwrap_or_default()
            .into_iter()
            .map(|(key, mut ids)| {
                ids.sort();
                Group {
                    key,
                    n: ids.len(),
                    examples: ids.into_iter().take(EXAMPLES).collect(),
                }
            })
            .collect();
        groups.sort_by(|a, b| b.n.cmp(&a.n).then_with(|| a.key.cmp(&b.key)));
        groups
    }

    fn report(mut self, entries: EntryCounts) -> Report {
        let (tp, fp, fn_, tn) = (self.tp, self.fp, self.fn_, self.tn);
        let client_ok = self.client_scored - self.wrong(Kind::WrongClient);
        let dur_ok = self.duration_scored - self.wrong(Kind::Over) - self.wrong(Kind::Under);
        let [wtp, wfp, wfn] = self.weight;
        let mut classes: Vec<ClassRow> = std::mem::take(&mut self.classes)
            .into_iter()
            .map(|(class, (wants, mut row))| {
                row.class = class;
                row.label = match (wants.len(), wants.iter().next()) {
                    (1, Some(w)) => w.as_str().to_owned(),
                    _ => "mixed".to_owned(),
                };
                row
            })
            .collect();
        // Billable classes first, then not billable, then either, as the scorers list them.
        let order = |label: &str| {
            ["true", "false", "either", "mixed"]
                .iter()
                .position(|l| *l == label)
        };
        classes.sort_by(|a, b| {
            order(&a.label)
                .cmp(&order(&b.label))
                .then_with(|| a.class.cmp(&b.class))
        });
        let errors = Errors {
            false_positives: self.groups(Kind::FalsePositive),
            misses: self.groups(Kind::Miss),
            wrong_client: self.groups(Kind::WrongClient),
            billed_over: self.groups(Kind::Over),
            billed_under: self.groups(Kind::Under),
            activity: self.groups(Kind::Activity),
        };
        Report {
            p: ratio(tp, tp + fp),
            r: ratio(tp, tp + fn_),
            spec: ratio(tn, tn + fp),
            psugg: ratio(self.suggested.tp, self.suggested.tp + self.suggested.fp),
            prev: ratio(
                self.needs_review.tp,
                self.needs_review.tp + self.needs_review.fp,
            ),
            client: ratio(client_ok, self.client_scored),
            dur: ratio(dur_ok, self.duration_scored),
            n: tp + fp + fn_ + tn,
            labels: self.labels,
            either: self.either,
            tp,
            fp,
            fn_,
            tn,
            suggested: self.suggested,
            needs_review: self.needs_review,
            entries,
            minutes: self.minutes,
            weighted: Weighted {
                p: rounded(wtp, wtp + wfp),
                r: rounded(wtp, wtp + wfn),
            },
            classes,
            errors,
        }
    }
}

/// `x / y` rounded to two decimals as printed; `None` when `y` is 0.
fn ratio(x: usize, y: usize) -> Option<f64> {
    // Counts far below 2^52 convert exactly.
    rounded(x as f64, y as f64)
}

fn rounded(x: f64, y: f64) -> Option<f64> {
    if y <= 0.0 {
        return None;
    }
    // Rounded through the printed form, so JSON says exactly what the text says.
    format!("{:.2}", x / y).parse().ok()
}

/// A figure as the summary line prints it.
pub fn figure(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}"))
}

impl Report {
    /// The last line of `billable eval`:
    /// `eval P=0.95 R=0.95 spec=0.80 Psugg=0.97 client=1.00 dur=0.97 n=130`.
    pub fn line(&self) -> String {
        format!(
            "eval P={} R={} spec={} Psugg={} client={} dur={} n={}",
            figure(self.p),
            figure(self.r),
            figure(self.spec),
            figure(self.psugg),
            figure(self.client),
            figure(self.dur),
            self.n
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(json: &str) -> Labels {
        Labels::parse(&format!(r#"{{"version": 1, "labels": [{json}]}}"#)).unwrap()
    }

    fn seen(id: &str, status: EntryStatus, client: &str, minutes: u32) -> Seen {
        Seen {
            message_id: id.to_owned(),
            billable: true,
            status,
            client: Some(client.to_owned()),
            billed_minutes: minutes,
            activity: Activity::EmailReceived,
        }
    }

    use EntryStatus::{NeedsReview, Suggested};

    /// Six billable labels, four not billable, two either.
    fn corpus() -> Labels {
        labels(
            r#"
            {"message_id": "b1", "billable": true, "class": "work", "client": "Acme", "billed_min": 6, "billed_max": 12},
            {"message_id": "b2", "billable": true, "class": "work", "client": "Acme", "client_alternatives": ["Beta"], "billed_min": 6, "billed_max": 6},
            {"message_id": "b3", "billable": true, "class": "work", "client": "Acme", "billed_min": 12, "billed_max": 18},
            {"message_id": "b4", "billable": true, "class": "work", "client": "Acme", "billed_min": 6, "billed_max": 6, "activity": "email_sent"},
            {"message_id": "b5", "billable": true, "class": "work"},
            {"message_id": "b6", "billable": true, "class": "work", "client": "Acme", "billed_min": 6, "billed_max": 12},
            {"message_id": "n1", "billable": false, "class": "personal"},
            {"message_id": "n2", "billable": false, "class": "personal"},
            {"message_id": "n3", "billable": false, "class": "personal"},
            {"message_id": "n4", "billable": false, "class": "empty"},
            {"message_id": "e1", "billable": null, "class": "logistics"},
            {"message_id": "e2", "billable": null, "class": "logistics"}"#,
        )
    }

    fn entries() -> Vec<Seen> {
        let mut not_billable = seen("b6", Suggested, "Acme", 6);
        not_billable.billable = false;
        vec![
            seen("b1", Suggested, "Acme", 6),
            seen("b2", Suggested, "Beta", 6),
            seen("b3", NeedsReview, "Zeta", 24),
            seen("b4", Suggested, "Acme", 6),
            seen("b5", NeedsReview, "Acme", 6),
            not_billable,
            seen("n1", Suggested, "Acme", 6),
            seen("n2", NeedsReview, "Acme", 12),
            seen("e1", Suggested, "Acme", 6),
            seen("x9", Suggested, "Acme", 6),
        ]
    }

    #[test]
    fn figures_are_computed_as_the_scorers_do() {
        let r = score(&corpus(), &entries(), None);
        // b6's entry is not billable: a miss, as if there were none.
        assert_eq!((r.tp, r.fp, r.fn_, r.tn), (5, 2, 1, 2));
        assert_eq!((r.n, r.labels, r.either), (10, 12, 2));
        assert_eq!(r.p, Some(0.71)); // 5 / 7
        assert_eq!(r.r, Some(0.83)); // 5 / 6
        assert_eq!(r.spec, Some(0.5)); // 2 / 4
        assert_eq!(r.psugg, Some(0.75)); // b1 b2 b4 / + n1
        assert_eq!(r.prev, Some(0.67)); // b3 b5 / + n2
        // Client over TPs whose label names one (b5's does not): b3 is wrong, b2 an alternative.
        assert_eq!(r.client, Some(0.75));
        // Minutes over TPs with a range: b3 over (24 > 18); b1, b2, b4 within.
        assert_eq!(r.dur, Some(0.75));
        assert_eq!(r.minutes.tool, 6 + 6 + 24 + 6 + 6 + 6 + 12);
        assert_eq!(r.minutes.labelled, 9.0 + 6.0 + 15.0 + 6.0 + 9.0);
        assert_eq!(
            r.entries,
            EntryCounts {
                listed: 10,
                not_billable: 1,
                on_labelled: 8,
                on_unlabelled: 1
            }
        );
        assert_eq!(
            r.line(),
            "eval P=0.71 R=0.83 spec=0.50 Psugg=0.75 client=0.75 dur=0.75 n=10"
        );
    }

    #[test]
    fn errors_are_grouped_by_class() {
        let r = score(&corpus(), &entries(), None);
        let keys = |g: &[Group]| g.iter().map(|g| (g.key.clone(), g.n)).collect::<Vec<_>>();
        assert_eq!(
            keys(&r.errors.false_positives),
            [("personal".to_owned(), 2)]
        );
        assert_eq!(r.errors.false_positives[0].examples, ["n1", "n2"]);
        assert_eq!(keys(&r.errors.misses), [("work".to_owned(), 1)]);
        assert_eq!(
            keys(&r.errors.wrong_client),
            [("Acme -> Zeta".to_owned(), 1)]
        );
        assert_eq!(r.errors.billed_over[0].examples, ["b3 (24 vs 12-18)"]);
        assert!(r.errors.billed_under.is_empty());
        assert_eq!(
            keys(&r.errors.activity),
            [("email_sent -> email_received".to_owned(), 1)]
        );
    }

    #[test]
    fn either_labels_are_counted_per_class_but_never_scored() {
        let r = score(&corpus(), &entries(), None);
        let row = |c: &str| r.classes.iter().find(|row| row.class == c).unwrap().clone();
        let logistics = row("logistics");
        assert_eq!(
            (logistics.label.as_str(), logistics.n, logistics.with_entry),
            ("either", 2, 1)
        );
        let personal = row("personal");
        assert_eq!(
            (
                personal.n,
                personal.with_entry,
                personal.suggested,
                personal.needs_review
            ),
            (3, 2, 1, 1)
        );
        // Billable classes first.
        assert_eq!(r.classes[0].class, "work");
        // An entry on an either label changes no figure.
        let without: Vec<Seen> = entries()
            .into_iter()
            .filter(|e| e.message_id != "e1")
            .collect();
        let r2 = score(&corpus(), &without, None);
        assert_eq!((r2.p, r2.r, r2.spec, r2.psugg), (r.p, r.r, r.spec, r.psugg));
    }

    #[test]
    fn a_scope_leaves_out_the_other_messages() {
        let scope: HashSet<String> = ["b1", "n1", "n3", "x9"].map(str::to_owned).into();
        let r = score(&corpus(), &entries(), Some(&scope));
        assert_eq!((r.tp, r.fp, r.fn_, r.tn, r.labels), (1, 1, 0, 1, 3));
        assert_eq!(r.entries.listed, 3);
        assert_eq!(r.entries.on_unlabelled, 1);
        assert_eq!(r.spec, Some(0.5));
    }

    #[test]
    fn nothing_to_measure_is_not_a_number() {
        let r = score(
            &labels(r#"{"message_id": "n1", "billable": false}"#),
            &[],
            None,
        );
        assert_eq!((r.p, r.r, r.spec, r.client), (None, None, Some(1.0), None));
        assert_eq!(
            r.line(),
            "eval P=n/a R=n/a spec=1.00 Psugg=n/a client=n/a dur=n/a n=1"
        );
    }

    #[test]
    fn weights_give_the_mailbox_estimate() {
        let l = labels(
            r#"{"message_id": "a", "billable": true, "weight": 3},
               {"message_id": "b", "billable": false, "weight": 1},
               {"message_id": "c", "billable": true, "weight": 6}"#,
        );
        let e = [
            seen("a", Suggested, "Acme", 6),
            seen("b", Suggested, "Acme", 6),
        ];
        let r = score(&l, &e, None);
        assert_eq!(r.weighted.p, Some(0.75)); // 3 / (3 + 1)
        assert_eq!(r.weighted.r, Some(0.33)); // 3 / (3 + 6)
    }
}
