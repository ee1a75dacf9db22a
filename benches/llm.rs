//! The LLM analyzer against the local fake server (tests/api/fake_openai.rs) at 500 ms
//! per request.
//!
//! - `llm/scan_200`: a scan of 200 non-automated client messages (fresh database each
//!   time) with LLM_CONCURRENCY 8 and 8 messages per request at most.
//! - `llm/analyze_cached`: a second `analyze_time_entry` of the same message, answered
//!   from the analysis cache (the goal is under 5 ms).
//!
//! Before criterion runs, one measured scan prints the acceptance ratio: wall time ÷
//! ideal, where ideal = requests made ÷ concurrency × latency, and the most requests
//! the fake saw in flight at once.

#[path = "../tests/api/fake_openai.rs"]
mod fake_openai;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use billable::analyze::llm::LlmAnalyzer;
use billable::config::LlmConfig;
use billable::context::Context;
use billable::domain::UserId;
use billable::mail::mbox::MboxSource;
use billable::store::sqlite::SqliteStore;
use billable::tools::{self, NoProgress};
use criterion::Criterion;
use fake_openai::{Behaviour, FakeOpenAi};
use serde_json::{Value, json};

const MESSAGES: usize = 200;
const LATENCY: Duration = Duration::from_millis(500);
const CONCURRENCY: usize = 8;

const SETTINGS: &str = r#"{"timezone": "America/New_York", "my_addresses": ["owner@firm.example"],
  "clients": [{"name": "Acme", "domains": ["acme.com"]}, {"name": "Globex", "domains": ["globex.io"]}]}"#;

/// `n` client messages, a third written by the owner, none automated.
fn mailbox(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        let domain = ["acme.com", "globex.io"][i % 2];
        let (labels, from, to) = if i % 3 == 0 {
            (
                "Sent",
                "owner@firm.example".to_owned(),
                format!("c{i}@{domain}"),
            )
        } else {
            (
                "Inbox",
                format!("c{i}@{domain}"),
                "owner@firm.example".to_owned(),
            )
        };
        s.push_str(&format!(
            "From x@x Mon Nov 02 10:00:00 +0000 2026\nX-Gmail-Labels: {labels}\nFrom: {from}\nTo: {to}\n\
             Subject: Matter {i}\nDate: Mon, 2 Nov 2026 10:{:02}:00 -0500\nMessage-ID: <b{i}@bench.example>\n\n\
             Comments on section {i}: revise the liability cap and the notice period, and \
             confirm the payment terms with counsel before closing.\n\n",
            i % 60
        ));
    }
    s
}

fn config(fake: &FakeOpenAi) -> LlmConfig {
    LlmConfig {
        base_url: Some(fake.base_url.clone()),
        model: "fake-model".to_owned(),
        concurrency: CONCURRENCY,
        ..LlmConfig::default()
    }
}

async fn context(fake: &FakeOpenAi, mbox: &Path, db: &Path) -> Context {
    let analyzer = Arc::new(LlmAnalyzer::new(&config(fake)).expect("analyzer"));
    let store = Arc::new(SqliteStore::open(db).expect("store"));
    let source = Arc::new(MboxSource::open(mbox).expect("mbox"));
    let ctx = Context::new(Some(source), analyzer, store);
    let settings: Value = serde_json::from_str(SETTINGS).expect("settings");
    call(
        &ctx,
        "configure_time_tracking",
        json!({ "settings": settings }),
    )
    .await;
    ctx
}

async fn call(ctx: &Context, name: &str, args: Value) -> Value {
    tools::call(ctx, &UserId::local(), name, args, &NoProgress)
        .await
        .expect("tool call")
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mbox = dir.path().join("bench.mbox");
    std::fs::write(&mbox, mailbox(MESSAGES)).expect("mbox");
    let fake = rt.block_on(FakeOpenAi::start(Behaviour {
        latency: LATENCY,
        ..Behaviour::default()
    }));

    // The acceptance measurement, once.
    rt.block_on(async {
        let db = dir.path().join("report.sqlite3");
        let ctx = context(&fake, &mbox, &db).await;
        let before = fake.requests();
        let started = Instant::now();
        let out = call(&ctx, "scan_billable_time", json!({})).await;
        let wall = started.elapsed();
        let requests = fake.requests() - before;
        let ideal = LATENCY.as_secs_f64() * requests as f64 / CONCURRENCY as f64;
        println!(
            "llm scan of {MESSAGES} messages: {} analyzed, {requests} requests, max {} in flight (bound {CONCURRENCY}), \
             wall {:.3} s, ideal {ideal:.3} s, ratio {:.3}",
            out["analyzed"],
            fake.max_in_flight(),
            wall.as_secs_f64(),
            wall.as_secs_f64() / ideal
        );
        assert!(fake.max_in_flight() <= CONCURRENCY);
    });

    let mut c = Criterion::default().configure_from_args();
    {
        let mut g = c.benchmark_group("llm");
        g.sample_size(10);
        g.measurement_time(Duration::from_secs(25));
        let mut run = 0;
        g.bench_function("scan_200", |b| {
            b.iter(|| {
                run += 1;
                let db = dir.path().join(format!("scan-{run}.sqlite3"));
                rt.block_on(async {
                    let ctx = context(&fake, &mbox, &db).await;
                    call(&ctx, "scan_billable_time", json!({})).await
                })
            })
        });
        let db = dir.path().join("cached.sqlite3");
        let ctx = rt.block_on(context(&fake, &mbox, &db));
        let args = json!({"message_id": "b1@bench.example"});
        rt.block_on(call(&ctx, "analyze_time_entry", args.clone()));
        let requests = fake.requests();
        g.bench_function("analyze_cached", |b| {
            b.iter(|| rt.block_on(call(&ctx, "analyze_time_entry", args.clone())))
        });
        assert_eq!(fake.requests(), requests, "cached analyses made requests");
        g.finish();
    }
    c.final_summary();
}
