//! The development corpus of real mail (../shared/corpora/real-dev, a lawyer's
//! mailbox with hand labels) as a regression floor: its scorer must report at least
//! the accuracy the rules analyzer has reached.

use std::path::Path;
use std::process::Command;

/// The floor: the scorer's figures when this test was last raised, rounded down.
const FLOOR: [(&str, f64); 4] = [("P", 0.95), ("R", 0.95), ("client", 1.00), ("dur", 0.97)];

/// `real-dev P=0.94 R=0.95 client=1.00 dur=0.97 n=130` as (name, value) pairs.
fn figures(line: &str) -> Vec<(String, f64)> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .filter_map(|(k, v)| v.parse::<f64>().ok().map(|v| (k.to_owned(), v)))
        .collect()
}

#[test]
fn the_rules_analyzer_keeps_its_accuracy_on_the_real_dev_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scorer = root.join("../shared/corpora/real-dev/score.py");
    assert!(
        scorer.exists(),
        "{} is missing: the real-dev corpus lives beside the repository in ../shared",
        scorer.display()
    );
    // A cleared environment: no LLM, Supabase or Gmail settings of the caller leak in.
    let out = Command::new("python3")
        .arg(&scorer)
        .arg(env!("CARGO_BIN_EXE_billable"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", scorer.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the scorer exited {}:\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("real-dev "))
        .unwrap_or_else(|| panic!("no `real-dev` line in the scorer's output:\n{stdout}"));
    let got = figures(last);
    for (name, floor) in FLOOR {
        let value = got
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no {name}= in `{last}`"));
        assert!(
            value >= floor,
            "{name} fell to {value} (floor {floor}): `{last}`\n{stdout}"
        );
    }
}

#[test]
fn figures_are_read_from_the_scorer_line() {
    let got = figures("real-dev P=0.94 R=0.95 client=1.00 dur=0.97 n=130");
    assert_eq!(got.len(), 5);
    assert_eq!(got[0], ("P".to_owned(), 0.94));
}
