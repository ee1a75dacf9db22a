//! Pipeline throughput.
//!
//! - `per_message/*`: parse, triage and the rules analyzer on one message at a time.
//! - `mbox_20k/*`: the same generated 20,000-message mbox read four ways in one run,
//!   so their ratio is fair on a noisy machine: mail-parser parsing every message
//!   (the parse-only ceiling: split in memory, and read from the file with
//!   mail-parser's own mbox reader), our mbox source + `parse_email`, and a whole
//!   `scan_billable_time` into a fresh SQLite file.
//! - `mbox_20k/store_only`: only the SQLite writes such a scan makes (its entries and
//!   processed marks, in the scan's 256-message batches), on the same run's clock: a
//!   scan cannot go faster than its one writer.
//!
//! `BENCH_MESSAGES` overrides the mailbox size.

#[path = "support/mbox_gen.rs"]
mod mbox_gen;

use std::sync::Arc;
use std::time::Duration;

use billable::analyze::rules::RulesAnalyzer;
use billable::analyze::{Analyzer, Outcome, triage};
use billable::context::Context;
use billable::domain::{Settings, UserId};
use billable::mail::mbox::MboxSource;
use billable::mail::{MailQuery, MailSource, RawEmail, parse};
use billable::store::sqlite::SqliteStore;
use billable::store::{Batch, Processed, ProcessedOutcome, Store};
use billable::tools::{self, NoProgress};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;

// The allocator the `billable` binary ships with, for every benchmark here alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn messages() -> usize {
    std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000)
}

fn settings() -> Settings {
    let patch = serde_json::from_str(mbox_gen::SETTINGS).expect("settings");
    Settings::default().apply(patch).expect("valid settings")
}

/// Splits an mbox the simple way, for the parse-only baseline.
fn split(bytes: &[u8]) -> Vec<&[u8]> {
    let mut starts = vec![];
    let mut at_line_start = true;
    for (i, b) in bytes.iter().enumerate() {
        if at_line_start && bytes[i..].starts_with(b"From ") {
            starts.push(i);
        }
        at_line_start = *b == b'\n';
    }
    starts.push(bytes.len());
    starts
        .windows(2)
        .map(|w| {
            let m = &bytes[w[0]..w[1]];
            m.iter()
                .position(|b| *b == b'\n')
                .map_or(m, |p| &m[p + 1..])
        })
        .collect()
}

fn per_message(c: &mut Criterion) {
    let mut buf = Vec::new();
    mbox_gen::write_mbox(&mut buf, 1000).expect("generate");
    let raws: Vec<RawEmail> = split(&buf)
        .into_iter()
        .map(|b| RawEmail {
            id: parse::local_id(b),
            thread_id: None,
            labels: vec![],
            bytes: b.to_vec(),
        })
        .collect();
    let settings = settings();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("per_message");
    group.throughput(Throughput::Elements(raws.len() as u64));
    group.bench_function("parse_triage_analyze", |b| {
        b.iter(|| {
            let mut entries = 0;
            for raw in &raws {
                let Ok(email) = parse::parse_email(raw) else {
                    continue;
                };
                if triage::automated(&email, &settings).is_some() {
                    continue;
                }
                let out = rt.block_on(RulesAnalyzer.analyze(
                    std::slice::from_ref(&email),
                    &settings,
                    &Default::default(),
                ));
                entries += out.len();
            }
            entries
        })
    });
    group.finish();
}

fn mbox_20k(c: &mut Criterion) {
    let n = messages();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.mbox");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        mbox_gen::write_mbox(&mut w, n).expect("generate");
    }
    let bytes = std::fs::read(&path).expect("read");
    let rt = tokio::runtime::Runtime::new().expect("runtime");

    let mut group = c.benchmark_group("mbox_20k");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(n as u64));

    group.bench_function("mail_parser_parse_only", |b| {
        b.iter(|| {
            let parser = mail_parser::MessageParser::default();
            split(&bytes)
                .into_iter()
                .filter(|m| parser.parse(*m).is_some())
                .count()
        })
    });

    // mail-parser end to end on the file: its own mbox reader (as its
    // `mailbox_parse_mbox` example does) and a parse per message. The scan reads the
    // file too; the in-memory split above leaves that out.
    group.bench_function("mail_parser_mbox_file_parse_only", |b| {
        b.iter(|| {
            let parser = mail_parser::MessageParser::default();
            let file = std::io::BufReader::new(std::fs::File::open(&path).expect("mbox"));
            mail_parser::mailbox::mbox::MessageIterator::new(file)
                .filter_map(Result::ok)
                .filter(|m| parser.parse(m.contents()).is_some())
                .count()
        })
    });

    group.bench_function("source_and_parse", |b| {
        let source = MboxSource::open(&path).expect("mbox");
        b.iter(|| {
            rt.block_on(async {
                let query = MailQuery::default();
                let mut stream = source.list(&query);
                let mut parsed = 0;
                while let Some(Ok(listed)) = stream.next().await {
                    if let Some(raw) = listed.raw
                        && parse::parse_email(&raw).is_ok()
                    {
                        parsed += 1;
                    }
                }
                parsed
            })
        })
    });

    group.bench_function("store_only", |b| {
        let batches = scan_batches(&bytes);
        b.iter_batched(
            || {
                let db = tempfile::tempdir().expect("tempdir");
                let store = SqliteStore::open(&db.path().join("b.sqlite3")).expect("store");
                (db, store)
            },
            |(_db, store)| {
                rt.block_on(async {
                    for batch in &batches {
                        store
                            .save_batch(&UserId::local(), batch)
                            .await
                            .expect("save");
                    }
                })
            },
            BatchSize::PerIteration,
        )
    });

    group.bench_function("scan_into_sqlite", |b| {
        b.iter_batched(
            || {
                let db = tempfile::tempdir().expect("tempdir");
                let store = SqliteStore::open(&db.path().join("b.sqlite3")).expect("store");
                let source = MboxSource::open(&path).expect("mbox");
                let ctx = Context::new(Some(Arc::new(source)), Arc::new(RulesAnalyzer), Arc::new(store));
                rt.block_on(async {
                    let patch = serde_json::json!({ "settings": serde_json::from_str::<serde_json::Value>(mbox_gen::SETTINGS).expect("json") });
                    tools::call(&ctx, &UserId::local(), "configure_time_tracking", patch, &NoProgress).await.expect("configure");
                });
                (db, ctx)
            },
            |(_db, ctx)| {
                rt.block_on(async {
                    let out = tools::call(&ctx, &UserId::local(), "scan_billable_time", serde_json::json!({}), &NoProgress)
                        .await
                        .expect("scan");
                    assert_eq!(out["examined"].as_u64(), Some(n as u64));
                    out
                })
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// The batches a scan of `mbox` saves: per 256 messages, an entry for each billable
/// one and a processed mark for every one.
fn scan_batches(mbox: &[u8]) -> Vec<Batch> {
    let settings = settings();
    split(mbox)
        .chunks(tools::scan::CHUNK)
        .map(|chunk| {
            let mut batch = Batch::default();
            for bytes in chunk {
                // As the mbox source yields it (labels and thread from the headers).
                let raw = parse::raw_from_bytes(bytes.to_vec(), &[]);
                let Ok(email) = parse::parse_email(&raw) else {
                    continue;
                };
                let (outcome, reason) = match triage::automated(&email, &settings) {
                    Some(reason) => (ProcessedOutcome::Automated, Some(reason)),
                    None => {
                        let analysis = billable::analyze::rules::analyze(&email, &settings);
                        let reason = analysis.reasons.first().cloned();
                        match analysis.outcome {
                            Outcome::Entry(entry) | Outcome::Meeting { entry, .. } => {
                                batch.entries.push(entry);
                                (ProcessedOutcome::Entry, reason)
                            }
                            _ => (ProcessedOutcome::NotBillable, reason),
                        }
                    }
                };
                batch.processed.push(Processed {
                    message_id: email.id.clone(),
                    content_hash: email.content_hash.clone(),
                    analyzer: "rules".to_owned(),
                    outcome,
                    reason,
                    unmatched_under: None,
                    counterpart: None,
                    features: None,
                    processed_at: chrono::Utc::now(),
                });
            }
            batch
        })
        .collect()
}

criterion_group!(benches, per_message, mbox_20k);
criterion_main!(benches);
