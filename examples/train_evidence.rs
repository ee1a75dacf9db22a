//! Trains the evidence-of-work model that `src/analyze/evidence.rs` ships:
//!
//! `cargo run --release --example train_evidence -- [--write] [--folds K]
//!     MBOX LABELS.json SETTINGS.json [MBOX LABELS.json SETTINGS.json ...]`
//!
//! For every labelled message (billable true or false; "either" and unlabelled are
//! left out) that the rules match to a configured client and that is neither
//! automated nor a calendar invitation, it takes `evidence::features` and trains a
//! logistic regression (L2) on them. It first reports K-fold cross-validated figures
//! per corpus (each message scored by a model that never saw it) for a grid of
//! regularisation strengths and the thresholds in `evidence.rs`, then trains on all
//! of it with the chosen strength; `--write` writes `src/analyze/evidence_model.tsv`.
//!
//! Labels: billable's format (`{"labels":[{"message_id", "billable"}]}`, billable
//! true/false/null) or a map of message id to `{"billable": true|false|"either"}`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use billable::analyze::evidence::{self, Model, sigmoid};
use billable::analyze::{rules, triage};
use billable::domain::Settings;
use billable::mail::mbox::MboxSource;
use billable::mail::parse::parse_email;
use billable::mail::{MailQuery, MailSource};
use futures::StreamExt;

/// Features seen in fewer messages than this are not weighed (no word learnt from
/// one message).
const MIN_DOCS: usize = 5;
const EPOCHS: usize = 40;
/// Share of labelled work the drop threshold may lose (cross-validated).
const MAX_WORK_DROPPED: f64 = 0.04;
/// Precision the suggested entries must keep (cross-validated).
const MIN_PSUGG: f64 = 0.95;

struct Example {
    corpus: usize,
    id: String,
    features: Vec<String>,
    work: bool,
}

fn labels(path: &str) -> HashMap<String, bool> {
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}")))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = HashMap::new();
    let mut take = |id: &str, v: &serde_json::Value| {
        if let Some(b) = v.get("billable").and_then(|b| b.as_bool()) {
            out.insert(id.trim_matches(['<', '>']).to_owned(), b);
        }
    };
    match doc.get("labels") {
        Some(serde_json::Value::Array(list)) => {
            for l in list {
                if let Some(id) = l.get("message_id").and_then(|i| i.as_str()) {
                    take(id, l);
                }
            }
        }
        _ => {
            for (id, l) in doc.as_object().into_iter().flatten() {
                take(id, l);
            }
        }
    }
    out
}

async fn examples(
    corpus: usize,
    mbox: &str,
    labels_path: &str,
    settings_path: &str,
) -> Vec<Example> {
    let labels = labels(labels_path);
    let settings: serde_json::Value =
        serde_json::from_slice(&std::fs::read(settings_path).expect("settings"))
            .expect("settings json");
    let settings = Settings::from_json(settings).expect("valid settings");
    let source: Arc<dyn MailSource> = Arc::new(MboxSource::open(mbox).expect("mbox"));
    let query = MailQuery::default();
    let mut listed = source.list(&query);
    let mut out = Vec::new();
    while let Some(item) = listed.next().await {
        let Ok(item) = item else { continue };
        let Some(&work) = labels.get(&item.id) else {
            continue;
        };
        let Ok(raw) = source.fetch(item).await else {
            continue;
        };
        let Ok(email) = parse_email(&raw) else {
            continue;
        };
        if email.calendar.is_some() || triage::automated(&email, &settings).is_some() {
            continue;
        }
        if rules::match_client(&email, &settings).is_none() {
            continue;
        }
        let owner = rules::is_from_owner(&email, &settings);
        out.push(Example {
            corpus,
            id: email.id.clone(),
            features: evidence::features(&email, owner),
            work,
        });
    }
    out
}

/// Logistic regression by SGD with L2 over features seen in `MIN_DOCS` messages,
/// each worth `evidence::unit(n)` in a message of n features (as the model scores).
fn train(examples: &[&Example], l2: f64) -> Model {
    let mut docs: HashMap<&str, usize> = HashMap::new();
    for e in examples {
        for f in &e.features {
            *docs.entry(f.as_str()).or_default() += 1;
        }
    }
    let vocab: HashSet<&str> = docs
        .into_iter()
        .filter(|(_, n)| *n >= MIN_DOCS)
        .map(|(f, _)| f)
        .collect();
    let rows: Vec<(Vec<&str>, f64, f64)> = examples
        .iter()
        .map(|e| {
            let x: Vec<&str> = e
                .features
                .iter()
                .map(String::as_str)
                .filter(|f| vocab.contains(f))
                .collect();
            (
                x,
                evidence::unit(e.features.len()),
                if e.work { 1.0 } else { 0.0 },
            )
        })
        .collect();
    let mut w: HashMap<&str, f64> = vocab.iter().map(|f| (*f, 0.0)).collect();
    let mut bias = 0.0;
    // A fixed order shuffled by a fixed rule, so training is reproducible.
    let mut order: Vec<usize> = (0..rows.len()).collect();
    for epoch in 0..EPOCHS {
        order.sort_by_key(|i| (i * 7919 + epoch * 104_729) % rows.len().max(1));
        let lr = 0.5 / (1.0 + epoch as f64 * 0.05);
        for &i in &order {
            let (x, u, y) = &rows[i];
            let z = bias + x.iter().map(|f| w[f]).sum::<f64>() * u;
            let g = y - sigmoid(z);
            bias += lr * g * 0.1;
            for f in x {
                if let Some(v) = w.get_mut(f) {
                    *v += lr * g * u;
                }
            }
        }
        let shrink = (1.0 - lr * l2).max(0.0);
        w.values_mut().for_each(|v| *v *= shrink);
    }
    Model {
        bias,
        weights: w
            .into_iter()
            .filter(|(_, v)| v.abs() >= 1e-3)
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        ..Model::default()
    }
}

fn fold(id: &str, k: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    (h.finish() % k as u64) as usize
}

#[derive(Default)]
struct Tally {
    pos: usize,
    neg: usize,
    pos_dropped: usize,
    neg_dropped: usize,
    sugg_pos: usize,
    sugg_neg: usize,
}

fn tally(scored: &[(f64, bool)], drop: f64, suggest: f64) -> Tally {
    let mut t = Tally::default();
    for &(p, work) in scored {
        if work {
            t.pos += 1;
        } else {
            t.neg += 1;
        }
        if p < drop {
            if work {
                t.pos_dropped += 1;
            } else {
                t.neg_dropped += 1;
            }
        } else if p >= suggest {
            if work {
                t.sugg_pos += 1;
            } else {
                t.sugg_neg += 1;
            }
        }
    }
    t
}

/// Cross-validated thresholds: drop below the highest probability that drops at most
/// `MAX_WORK_DROPPED` of the work; suggest from the lowest that keeps the suggested
/// entries' precision at `MIN_PSUGG` (else the highest tried).
fn thresholds(scored: &[(f64, bool)]) -> (f64, f64) {
    let steps: Vec<f64> = (1..100).map(|i| i as f64 / 100.0).collect();
    let drop = steps
        .iter()
        .copied()
        .rfind(|&d| {
            let t = tally(scored, d, 1.1);
            ratio(t.pos_dropped, t.pos) <= MAX_WORK_DROPPED
        })
        .unwrap_or(0.01);
    let suggest = steps
        .iter()
        .copied()
        .filter(|&s| s > drop)
        .find(|&s| {
            let t = tally(scored, drop, s);
            ratio(t.sugg_pos, t.sugg_pos + t.sugg_neg) >= MIN_PSUGG
        })
        .unwrap_or(0.99);
    (drop, suggest)
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn auc(scored: &[(f64, bool)]) -> f64 {
    let pos: Vec<f64> = scored.iter().filter(|s| s.1).map(|s| s.0).collect();
    let neg: Vec<f64> = scored.iter().filter(|s| !s.1).map(|s| s.0).collect();
    let mut wins = 0.0;
    for p in &pos {
        for n in &neg {
            wins += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (pos.len() * neg.len()).max(1) as f64
}

fn report(name: &str, scored: &[(f64, bool)], drop: f64, suggest: f64) -> String {
    let t = tally(scored, drop, suggest);
    format!(
        "{name}: n={} (work {}, not {}) AUC={:.3} spec={:.2} (not-work dropped) work_dropped={:.3} \
         Psugg={:.3} suggested={}",
        scored.len(),
        t.pos,
        t.neg,
        auc(scored),
        ratio(t.neg_dropped, t.neg),
        ratio(t.pos_dropped, t.pos),
        ratio(t.sugg_pos, t.sugg_pos + t.sugg_neg),
        t.sugg_pos + t.sugg_neg
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let write = args.iter().any(|a| a == "--write");
    args.retain(|a| a != "--write");
    let mut k = 5;
    if let Some(i) = args.iter().position(|a| a == "--folds") {
        k = args[i + 1].parse().expect("--folds K");
        args.drain(i..=i + 1);
    }
    assert!(
        args.len().is_multiple_of(3) && !args.is_empty(),
        "MBOX LABELS SETTINGS, one or more times"
    );
    let mut all = Vec::new();
    let mut names = Vec::new();
    for (c, chunk) in args.chunks(3).enumerate() {
        let got = examples(c, &chunk[0], &chunk[1], &chunk[2]).await;
        let name = std::path::Path::new(&chunk[0])
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| chunk[0].clone());
        eprintln!("{name}: {} labelled messages with a client", got.len());
        names.push(name);
        all.extend(got);
    }
    let grid = [0.003, 0.03, 0.1, 0.3, 1.0];
    let mut best: Option<(f64, f64, f64, f64)> = None; // (score, l2, drop, suggest)
    let mut lines: HashMap<String, Vec<String>> = HashMap::new();
    for &l2 in &grid {
        let mut scored: Vec<Vec<(f64, bool)>> = vec![Vec::new(); names.len()];
        for f in 0..k {
            let train_set: Vec<&Example> = all.iter().filter(|e| fold(&e.id, k) != f).collect();
            let model = train(&train_set, l2);
            for e in all.iter().filter(|e| fold(&e.id, k) == f) {
                scored[e.corpus].push((sigmoid(model.logit(&e.features)), e.work));
            }
        }
        let all_scored: Vec<(f64, bool)> = scored.concat();
        let (drop, suggest) = thresholds(&all_scored);
        for (c, s) in scored.iter().enumerate() {
            let line = format!("l2={l2} {}", report(&names[c], s, drop, suggest));
            println!("{line}");
            lines.entry(l2.to_string()).or_default().push(line);
        }
        let score = auc(&all_scored);
        println!("   thresholds: drop below {drop:.3}, suggest from {suggest:.3}");
        if best.is_none_or(|b| score > b.0) {
            best = Some((score, l2, drop, suggest));
        }
    }
    let Some((_, l2, drop, suggest)) = best else {
        return;
    };
    println!(
        "chosen l2={l2} (highest cross-validated AUC over all the corpora's messages), drop below {drop:.3}, suggest from {suggest:.3}"
    );
    let refs: Vec<&Example> = all.iter().collect();
    let mut model = train(&refs, l2);
    model.drop_below = drop;
    model.suggest_from = suggest;
    println!(
        "final model: {} weights, bias {:.3}",
        model.weights.len(),
        model.bias
    );
    let lines = lines.remove(&l2.to_string()).unwrap_or_default();
    if write {
        let header = format!(
            "Evidence-of-work model: logistic regression, L2 {l2}, features in {MIN_DOCS}+ messages.\n\
             Trained by `cargo run --release --example train_evidence -- --write` on: {}.\n\
             {k}-fold cross-validated (each message scored by a model that never saw it):\n{}",
            names.join(", "),
            lines.join("\n")
        );
        std::fs::write("src/analyze/evidence_model.tsv", model.to_tsv(&header))
            .expect("write model");
        println!("wrote src/analyze/evidence_model.tsv");
    }
}
