//! `billable eval` on the labelled corpora in tests/corpora (issue 34's acceptance), and
//! the mechanics of eval itself on the demo mailbox. The built binary runs with a
//! cleared environment, so the rules analyzer is measured.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::helpers::{TestApp, billable, fixture};

/// real-dev (a lawyer's mailbox, 130 hand labels): the floors the analyzer must keep.
const REAL_DEV_FLOORS: [(&str, f64); 5] = [
    ("P", 0.95),
    ("R", 0.93),
    ("client", 1.00),
    ("dur", 0.95),
    ("Psugg", 0.95),
];

/// berkeley-dev (work or personal mail with people at the client, third-party labels).
/// Reached: spec 0.62 (0.14 before evidence of work), R 0.95, Psugg 1.00. Issue 34
/// asks for spec 0.70: not reached yet, so the floor is what is kept, not the goal.
const BERKELEY_DEV_FLOORS: [(&str, f64); 3] = [("spec", 0.60), ("R", 0.90), ("Psugg", 0.95)];

/// berkeley-dev scored on the newest 70% after a person reviewed the oldest 30%.
const BERKELEY_DEV_LEARNED_FRACTION: &str = "0.3";
/// Reached: spec 0.70, R 0.94, Psugg 1.00 (0.64 and 0.95 on the same messages without
/// learning; issue 34 asks for spec 0.80: not yet).
const BERKELEY_DEV_LEARNED_FLOORS: [(&str, f64); 3] =
    [("spec", 0.68), ("R", 0.90), ("Psugg", 0.95)];

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpora")
        .join(name)
}

/// Runs `billable --json eval …` (cleared environment, its own home) and returns the
/// JSON it printed, after checking it exited 0.
fn eval(args: &[&str]) -> Value {
    let home = tempfile::tempdir().expect("tempdir");
    let out = billable(home.path())
        .arg("--json")
        .arg("eval")
        .args(args)
        .output()
        .expect("run billable eval");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "billable eval {args:?} exited {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

fn eval_corpus(name: &str, mbox: &str, extra: &[&str]) -> Value {
    let dir = corpus(name);
    let labels = dir.join("labels.json");
    let mbox = dir.join(mbox);
    let mut args = vec![
        "--labels",
        labels.to_str().expect("utf-8 path"),
        "--mbox",
        mbox.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    eval(&args)
}

/// Every floor the figures miss, all at once, with the whole line to read.
fn assert_floors(corpus: &str, out: &Value, floors: &[(&str, f64)]) {
    let missed: Vec<String> = floors
        .iter()
        .filter_map(|(name, floor)| {
            let value = out[*name].as_f64();
            match value {
                Some(v) if v >= *floor => None,
                _ => Some(format!(
                    "{name}={} (floor {floor})",
                    value.map_or_else(|| "missing".to_owned(), |v| format!("{v:.2}"))
                )),
            }
        })
        .collect();
    assert!(
        missed.is_empty(),
        "{corpus}: {} below the floor; `{}`\nfalse positives: {}\nmisses: {}",
        missed.join(", "),
        out["line"].as_str().unwrap_or_default(),
        out["errors"]["false_positives"],
        out["errors"]["misses"]
    );
}

#[test]
fn the_real_dev_corpus_keeps_its_accuracy() {
    let out = eval_corpus("real-dev", "sara-shackleton.mbox", &[]);
    assert_eq!(
        out["n"], 130,
        "every real-dev label is scored: {}",
        out["line"]
    );
    assert_floors("real-dev", &out, &REAL_DEV_FLOORS);
}

#[test]
fn personal_mail_with_people_at_a_client_stays_unbilled_on_the_berkeley_corpus() {
    let out = eval_corpus("berkeley-dev", "mail.mbox", &[]);
    // 443 of the 596 labels are true or false; the rest are "either".
    assert_eq!(out["n"], 443, "{}", out["line"]);
    assert_floors("berkeley-dev", &out, &BERKELEY_DEV_FLOORS);
}

#[test]
fn after_a_review_of_the_oldest_mail_personal_mail_stays_unbilled_on_the_berkeley_corpus() {
    let out = eval_corpus(
        "berkeley-dev",
        "mail.mbox",
        &["--learn-first-fraction", BERKELEY_DEV_LEARNED_FRACTION],
    );
    let learning = &out["learning"];
    assert_eq!(
        learning["reviewed_messages"].as_u64().unwrap_or_default()
            + learning["scored_messages"].as_u64().unwrap_or_default(),
        learning["messages"].as_u64().unwrap_or(u64::MAX),
        "{learning}"
    );
    assert_floors(
        "berkeley-dev after review",
        &out,
        &BERKELEY_DEV_LEARNED_FLOORS,
    );
}

#[test]
fn the_reviews_of_the_oldest_mail_leave_more_personal_mail_unbilled_than_no_reviews() {
    let learned = ["--learn-first-fraction", BERKELEY_DEV_LEARNED_FRACTION];
    let with = eval_corpus("berkeley-dev", "mail.mbox", &learned);
    // The same split and the same simulated review, with learning turned off.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings: Value = serde_json::from_slice(
        &std::fs::read(corpus("berkeley-dev").join("settings.json")).expect("settings"),
    )
    .expect("settings JSON");
    settings["learn_from_reviews"] = Value::Bool(false);
    let off = dir.path().join("settings.json");
    std::fs::write(&off, settings.to_string()).expect("write settings");
    let mut args = vec!["--settings", off.to_str().expect("utf-8 path")];
    args.extend(learned);
    let without = eval_corpus("berkeley-dev", "mail.mbox", &args);
    assert_eq!(with["n"], without["n"], "the same messages are scored");
    let spec = |v: &Value| v["spec"].as_f64().unwrap_or_default();
    assert!(
        spec(&with) > spec(&without),
        "learning: `{}`; without: `{}`",
        with["line"],
        without["line"]
    );
}

/// The demo mailbox's 16 messages by Date: the oldest 8 are reviewed with 0.5.
const DEMO_OLDEST_HALF: [&str; 8] = [
    "msa-redline-reply-1@morganlegal.com",
    "msa-redline-2@acme.com",
    "termsheet-comments@morganlegal.com",
    "weekly-4471@lawweekly.com",
    "docusign-7781@docusign.net",
    "invite-msa-call@acme.com",
    "invite-board-prep@globex.io",
    "cancel-board-prep@globex.io",
];

#[test]
fn learning_reviews_the_oldest_part_as_labelled_and_scores_only_the_rest() {
    // The demo's labels, and a person who does not bill their own first reply, so the
    // review both approves and rejects.
    let app = TestApp::new();
    let mut doc: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("demo-labels.json")).expect("demo labels"),
    )
    .expect("demo labels JSON");
    doc["settings"] = Value::String(fixture("demo-settings.json").display().to_string());
    doc["labels"]
        .as_array_mut()
        .expect("labels")
        .push(serde_json::json!({
            "message_id": "msa-redline-reply-1@morganlegal.com", "billable": false
        }));
    let labels = app.write("labels.json", &doc.to_string());
    let mbox = fixture("demo.mbox");
    let out = eval(&[
        "--labels",
        labels.to_str().expect("utf-8"),
        "--mbox",
        mbox.to_str().expect("utf-8"),
        "--learn-first-fraction",
        "0.5",
    ]);
    let learning = &out["learning"];
    assert_eq!(learning["messages"], 16, "{learning}");
    assert_eq!(learning["reviewed_messages"], 8, "{learning}");
    assert_eq!(learning["scored_messages"], 8, "{learning}");
    let reviewed = learning["reviewed"].as_array().expect("reviewed entries");
    assert_eq!(
        reviewed.len() as u64,
        learning["entries"].as_u64().unwrap_or(0)
    );
    let (mut approved, mut rejected, mut left) = (0, 0, 0);
    for r in reviewed {
        let id = r["message_id"].as_str().unwrap_or_default();
        assert!(
            DEMO_OLDEST_HALF.contains(&id),
            "{id} is not among the oldest half, yet it was scanned first: {learning}"
        );
        let (label, status) = (r["label"].as_str(), r["status"].as_str());
        match label {
            Some("true") => {
                assert_eq!(status, Some("approved"), "{r}");
                approved += 1;
            }
            Some("false") => {
                assert_eq!(status, Some("rejected"), "{r}");
                rejected += 1;
            }
            _ => {
                assert!(matches!(status, Some("suggested" | "needs_review")), "{r}");
                left += 1;
            }
        }
    }
    assert_eq!(
        (
            learning["approved"].as_u64(),
            learning["rejected"].as_u64(),
            learning["left"].as_u64()
        ),
        (Some(approved), Some(rejected), Some(left))
    );
    assert!(
        approved >= 1,
        "the demo's first Acme mail is billable: {learning}"
    );
    assert!(
        rejected >= 1,
        "the first reply is labelled not billable: {learning}"
    );
    // Scored: the labels among the newest 8 messages alone.
    assert_eq!(out["labels"], 6, "{}", out["line"]);
    assert_eq!(out["n"], 6, "{}", out["line"]);
}

#[test]
fn eval_prints_the_figures_last_and_leaves_the_users_database_alone() {
    let app = TestApp::new();
    let labels = fixture("demo-labels.json");
    let mbox = fixture("demo.mbox");
    let args = [
        "eval",
        "--labels",
        labels.to_str().expect("utf-8"),
        "--mbox",
        mbox.to_str().expect("utf-8"),
    ];
    // No --db: the default database would be in the test's home.
    let run = billable(app.dir.path())
        .args(args)
        .output()
        .expect("run billable eval");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("eval P=") && last.contains(" spec=") && last.ends_with(" n=11"),
        "{stdout}"
    );
    let data = app.dir.path().join(".local/share/billable");
    assert!(!data.exists(), "eval created {}", data.display());
    // The user's own database is refused, not used.
    let refused = app.run(&args);
    assert_eq!(refused.code(), 2, "{}", refused.stderr());
    assert!(refused.stderr().contains("--db"), "{}", refused.stderr());
    assert!(!app.db.exists(), "eval created the --db file");
}

#[test]
fn a_labels_file_that_does_not_parse_exits_2_naming_the_field() {
    let app = TestApp::new();
    let bad = app.write(
        "labels.json",
        "{\"version\": 1, \"labels\": [\n  {\"message_id\": \"a@x\", \"billable\": \"yes\"}\n]}",
    );
    let mbox = fixture("demo.mbox");
    let run = billable(app.dir.path())
        .args(["eval", "--labels"])
        .arg(&bad)
        .arg("--mbox")
        .arg(&mbox)
        .output()
        .expect("run billable eval");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("labels[0].billable"), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(stderr.contains("docs/eval.md"), "{stderr}");
    // A fraction outside (0, 1) is refused before anything is scanned.
    let labels = fixture("demo-labels.json");
    let run = billable(app.dir.path())
        .args(["eval", "--learn-first-fraction", "1.5", "--labels"])
        .arg(&labels)
        .arg("--mbox")
        .arg(&mbox)
        .output()
        .expect("run billable eval");
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("--learn-first-fraction"));
}
