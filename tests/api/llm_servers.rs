//! The `llm` analyzer against what real model servers do (issue: llama.cpp's
//! llama-server, llama-cpp-python, OpenAI), played by the fake in fake_openai.rs: a
//! 500 that names `response_format`, a context-size 400, requests that outlast the
//! timeout, an answer that loops until the token cap, a client in Cc, a Ctrl-C while
//! a request is in flight. The real server is in llama.rs.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use billable::analyze::llm::LlmAnalyzer;
use billable::config::LlmConfig;
use billable::context::Context;
use billable::mail::mbox::MboxSource;
use billable::store::sqlite::SqliteStore;
use serde_json::{Value, json};

use crate::fake_openai::{Behaviour, FakeOpenAi, Mode};
use crate::helpers::{TestApp, call, configure_demo, path_str, scan};

const MODEL: &str = "fake-model";

fn config(fake: &FakeOpenAi) -> LlmConfig {
    LlmConfig {
        base_url: Some(fake.base_url.clone()),
        model: MODEL.to_owned(),
        concurrency: 1,
        max_batch: 4,
        max_retries: 2,
        ..LlmConfig::default()
    }
}

/// `n` messages from clients (Acme, then Globex, alternating) to the owner.
fn received(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        let domain = ["acme.com", "globex.io"][i % 2];
        s.push_str(&format!(
            "From x@x Mon Nov 02 10:00:00 +0000 2026\nFrom: Dana Smith <dana@{domain}>\nTo: alex@morganlegal.com\n\
             Subject: Contract point {i}\nDate: Mon, 2 Nov 2026 10:{i:02}:00 -0500\nMessage-ID: <s{i}@test.example>\n\n\
             Please see my comments on section {i} of the agreement: revise the liability cap \
             and the notice period, and confirm the payment terms before closing.\n\n"
        ));
    }
    s
}

async fn app_with(app: &TestApp, mbox: &str, config: LlmConfig) -> Context {
    let analyzer = Arc::new(LlmAnalyzer::new(&config).expect("llm analyzer"));
    let store = SqliteStore::open(&app.db).expect("store");
    let source = MboxSource::open(app.write("m.mbox", mbox)).expect("mbox");
    let ctx = Context::new(Some(Arc::new(source)), analyzer, Arc::new(store));
    configure_demo(&ctx).await;
    ctx
}

async fn all_entries(ctx: &Context) -> Vec<Value> {
    let list = call(ctx, "list_time_entries", json!({"limit": 500}))
        .await
        .expect("list");
    list["entries"].as_array().cloned().unwrap_or_default()
}

/// One scan of `mail` against a fake in `behaviour`, `tweak` applied to the config.
/// Fields drop in order: the context before the test's folder.
struct Run {
    fake: FakeOpenAi,
    ctx: Context,
    out: Value,
    _app: TestApp,
}

async fn run(behaviour: Behaviour, mail: &str, tweak: impl FnOnce(LlmConfig) -> LlmConfig) -> Run {
    let fake = FakeOpenAi::start(behaviour).await;
    let app = TestApp::new();
    let ctx = app_with(&app, mail, tweak(config(&fake))).await;
    let out = scan(&ctx).await;
    Run {
        fake,
        ctx,
        out,
        _app: app,
    }
}

fn by_the_model(entries: &[Value]) -> usize {
    entries
        .iter()
        .filter(|e| e["analyzer"] == format!("llm:{MODEL}"))
        .count()
}

#[tokio::test]
async fn a_500_that_names_response_format_switches_to_json_mode_at_no_cost_in_retries() {
    // No retries at all: the switch must not need one.
    let Run {
        fake,
        ctx,
        out,
        _app,
        ..
    } = run(
        Behaviour {
            json_schema_500: true,
            ..Behaviour::default()
        },
        &received(4),
        |c| LlmConfig {
            max_retries: 0,
            ..c
        },
    )
    .await;
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(by_the_model(&all_entries(&ctx).await), 4, "{out}");
    let formats: Vec<Value> = fake
        .bodies()
        .iter()
        .map(|b| b["response_format"].clone())
        .collect();
    assert_eq!(formats[0]["type"], "json_schema");
    // Then llama.cpp's JSON mode with the schema, which its grammar enforces.
    assert_eq!(formats[1]["type"], "json_object", "{formats:?}");
    assert_eq!(formats[1]["schema"]["properties"]["r"]["maxItems"], 4);
    assert_eq!(formats.len(), 2, "one refusal, one answer: {formats:?}");
}

#[tokio::test]
async fn an_error_that_stops_the_scan_says_what_the_server_said() {
    let Run { out, _app, .. } = run(
        Behaviour {
            always_status: Some((503, "overloaded")),
            ..Behaviour::default()
        },
        &received(2),
        |c| LlmConfig {
            max_retries: 1,
            ..c
        },
    )
    .await;
    assert_eq!(out["status"], "interrupted", "{out}");
    let reason = out["stopped_reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("HTTP 503: refused by the fake"),
        "the server's own words are in the error: {reason}"
    );
}

#[tokio::test]
async fn a_batch_that_overflows_the_context_is_halved_and_the_context_remembered() {
    // A context two messages fit with room to spare but four do not (the fake
    // counts 2.5 characters a token plus max_tokens): measured first with no limit.
    let probe = FakeOpenAi::start(Behaviour::default()).await;
    let app = TestApp::new();
    let ctx = app_with(
        &app,
        &received(4),
        LlmConfig {
            max_batch: 2,
            ..config(&probe)
        },
    )
    .await;
    scan(&ctx).await;
    let two = probe
        .bodies()
        .iter()
        .map(|b| {
            b["messages"].as_array().map_or(0, |m| {
                m.iter()
                    .map(|m| m["content"].as_str().map_or(0, str::len))
                    .sum::<usize>()
            }) * 2
                / 5
                + b["max_tokens"].as_u64().unwrap_or(0) as usize
        })
        .max()
        .expect("a request");
    let Run {
        fake,
        ctx,
        out,
        _app,
        ..
    } = run(
        Behaviour {
            context_tokens: Some(two * 5 / 4),
            ..Behaviour::default()
        },
        &received(8),
        |c| c,
    )
    .await;
    assert_eq!(out["status"], "completed", "{out}");
    let entries = all_entries(&ctx).await;
    assert_eq!(entries.len(), 8);
    assert_eq!(by_the_model(&entries), 8, "{out}");
    // The first request of four overflowed; its halves fit, and the next batch of
    // four was sized by what the error said (an estimate, so one more overflow may
    // happen before it is split); never an error per request.
    let errors = fake.context_errors();
    assert!((1..=2).contains(&errors), "{errors}: {out}");
    assert!(fake.bodies().len() <= 7, "{}", fake.bodies().len());
    assert_eq!(out["llm"]["answered"], 8, "{out}");
}

#[tokio::test]
async fn a_lone_message_that_never_fits_falls_back_to_the_rules_and_the_scan_goes_on() {
    let Run {
        fake,
        ctx,
        out,
        _app,
        ..
    } = run(
        Behaviour {
            context_tokens: Some(50),
            ..Behaviour::default()
        },
        &received(3),
        |c| c,
    )
    .await;
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(out["entries_created"], 3, "{out}");
    for e in all_entries(&ctx).await {
        assert_eq!(
            (e["analyzer"].as_str(), e["status"].as_str()),
            (Some("rules"), Some("needs_review")),
            "{e}"
        );
    }
    assert_eq!(out["llm"]["fell_back"], 3, "{out}");
    // Learnt from the first error: the rest are not sent to fail again.
    assert_eq!(fake.context_errors(), 1, "{out}");
    // A rescan has nothing left to do: no error repeats on every scan.
    let again = scan(&ctx).await;
    assert_eq!(again["skipped_already_processed"], 3, "{again}");
}

#[tokio::test]
async fn a_batch_that_times_out_is_split_and_never_sent_again_whole() {
    // A slow CPU model: a request about more than one message outlasts the timeout.
    let Run {
        fake,
        ctx,
        out,
        _app,
        ..
    } = run(
        Behaviour {
            slow_over: Some((1, Duration::from_secs(5))),
            ..Behaviour::default()
        },
        &received(4),
        |c| LlmConfig {
            request_timeout: Duration::from_millis(800),
            ..c
        },
    )
    .await;
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(by_the_model(&all_entries(&ctx).await), 4, "{out}");
    // 4 → 2 + 2 → 1 + 1 + 1 + 1: three timeouts, seven requests, none sent twice.
    assert_eq!(out["llm"]["timed_out"], 3, "{out}");
    let bodies: Vec<String> = fake.bodies().iter().map(Value::to_string).collect();
    let distinct: HashSet<&String> = bodies.iter().collect();
    assert_eq!((bodies.len(), distinct.len()), (7, 7));
}

#[tokio::test]
async fn an_answer_that_loops_to_the_token_cap_keeps_its_complete_items() {
    let Run {
        fake,
        ctx,
        out,
        _app,
        ..
    } = run(Behaviour::always(Mode::Looping), &received(4), |c| c).await;
    assert_eq!(by_the_model(&all_entries(&ctx).await), 4, "{out}");
    assert_eq!(fake.requests(), 1, "nothing was asked again: {out}");
    let body = &fake.bodies()[0];
    // The schema bounds the answer: exactly four items, an index among them.
    let schema = &body["response_format"]["json_schema"]["schema"];
    let r = &schema["properties"]["r"];
    assert_eq!(
        (r["minItems"].as_u64(), r["maxItems"].as_u64()),
        (Some(4), Some(4))
    );
    assert_eq!(r["items"]["properties"]["i"]["enum"], json!([0, 1, 2, 3]));
    // Keys go out in the schema file's order: the index first, the reason last.
    let text = body["response_format"].to_string();
    assert!(
        text.find("\"i\":") < text.find("\"b\":") && text.find("\"k\":") < text.find("\"w\":"),
        "{text}"
    );
    // Both spellings of the answer cap, and no sampling.
    assert_eq!(body["max_tokens"], body["max_completion_tokens"]);
    assert!(body["max_tokens"].as_u64().is_some_and(|n| n > 0));
    assert_eq!(body["temperature"], 0);
}

#[tokio::test]
async fn a_client_in_cc_of_received_mail_is_no_answer_the_model_may_give() {
    // Acme writes, Globex is in Cc; the model answers Globex (injected or mistaken).
    let mail = "From x@x Mon Nov 02 10:00:00 +0000 2026\nFrom: Dana Smith <dana@acme.com>\n\
        To: alex@morganlegal.com\nCc: Ray <ray@globex.io>\nSubject: MSA comments\n\
        Date: Mon, 2 Nov 2026 10:00:00 -0500\nMessage-ID: <cc1@test.example>\n\n\
        Please revise the liability cap and the notice period in the MSA and send a new draft.\n\n";
    let Run {
        fake,
        ctx,
        out,
        _app,
        ..
    } = run(
        Behaviour::always(Mode::Obedient {
            client: "Globex".to_owned(),
            minutes: 6.0,
        }),
        mail,
        |c| c,
    )
    .await;
    let entries = all_entries(&ctx).await;
    assert_eq!(entries.len(), 1, "{out}");
    assert_eq!(entries[0]["client"], "Acme Corp", "{}", entries[0]);
    assert_eq!(entries[0]["status"], "needs_review");
    let user = fake.bodies()[0]["messages"][1]["content"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(user.contains("candidates: [\"Acme Corp\"]"), "{user}");
}

#[tokio::test]
async fn a_model_that_moves_sent_mail_to_another_client_needs_review() {
    // The owner writes to Acme and Globex: both are candidates, but a choice other
    // than the rules' is the model's alone, so a person confirms it.
    let mail = "From x@x Mon Nov 02 10:00:00 +0000 2026\nX-Gmail-Labels: Sent\n\
        From: Alex Morgan <alex@morganlegal.com>\nTo: Dana Smith <dana@acme.com>\n\
        Cc: Ray <ray@globex.io>\nSubject: MSA comments\n\
        Date: Mon, 2 Nov 2026 10:00:00 -0500\nMessage-ID: <cc2@test.example>\n\n\
        I revised the liability cap and the notice period in the MSA; a new draft is attached.\n\n";
    let Run { ctx, _app, .. } = run(
        Behaviour::always(Mode::Obedient {
            client: "Globex".to_owned(),
            minutes: 6.0,
        }),
        mail,
        |c| c,
    )
    .await;
    let entries = all_entries(&ctx).await;
    assert_eq!(entries[0]["client"], "Globex", "{}", entries[0]);
    assert_eq!(entries[0]["status"], "needs_review", "{}", entries[0]);
}

#[tokio::test]
async fn a_useless_model_is_reported_not_passed_off_as_success() {
    let before = billable::metrics::global().get(billable::metrics::Counter::Llm, "fell_back");
    let Run { ctx, out, _app, .. } =
        run(Behaviour::always(Mode::Malformed), &received(4), |c| c).await;
    let llm = &out["llm"];
    assert_eq!(
        (llm["answered"].as_u64(), llm["fell_back"].as_u64()),
        (Some(0), Some(4)),
        "{out}"
    );
    assert_eq!(llm["requests"], 2, "asked once more, then fell back: {out}");
    assert!(
        llm["prompt_tokens"].as_u64().is_some_and(|n| n > 0),
        "{out}"
    );
    let warning = llm["warning"].as_str().unwrap_or("");
    assert!(warning.contains("unusable for 4 of 4"), "{out}");
    // /metrics counts it too (the process-wide registry, which tests running beside
    // this one add to; `Meter`'s unit test checks the exact count).
    let after = billable::metrics::global().get(billable::metrics::Counter::Llm, "fell_back");
    assert!(after >= before + 4);
    // Fallbacks are results too: analyzing the same mail again asks nothing and
    // counts cache hits.
    let again = call(&ctx, "scan_billable_time", json!({"reanalyze": true}))
        .await
        .expect("rescan");
    assert_eq!(again["llm"]["cache_hits"], 4, "{again}");
    assert_eq!(again["llm"]["requests"], 0, "{again}");
}

#[tokio::test]
async fn junk_descriptions_fall_back_and_a_doubtful_not_billable_keeps_the_entry_for_review() {
    let Run { ctx, out, _app, .. } = run(Behaviour::always(Mode::Junk), &received(4), |c| c).await;
    let entries = all_entries(&ctx).await;
    // Items 0 and 2: junk descriptions (",", a contact's name) → the rules' entry.
    // Item 1: not billable at confidence 0.3 → the rules' entry, flagged.
    // Item 3: not billable at confidence 0.95 → no entry.
    assert_eq!(entries.len(), 3, "{out}");
    assert!(
        entries.iter().all(|e| e["status"] == "needs_review"),
        "{entries:?}"
    );
    assert!(
        entries
            .iter()
            .all(|e| e["description"] != "," && e["description"] != "Dana Smith")
    );
    assert_eq!(out["not_billable"], 1, "{out}");
}

/// The CLI scanning `mbox` with the LLM at `fake`, its output piped.
fn cli_scan(app: &TestApp, fake: &FakeOpenAi, mbox: &std::path::Path) -> std::process::Child {
    app.command()
        .args(["--mbox", path_str(mbox), "--settings"])
        .arg(crate::helpers::fixture("demo-settings.json"))
        .arg("scan")
        .env("OPENAI_BASE_URL", &fake.base_url)
        .env("OPENAI_MODEL", MODEL)
        .env("LLM_MAX_BATCH", "2")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn")
}

#[tokio::test]
async fn a_signal_while_a_request_is_in_flight_saves_what_needed_no_model_and_stops_at_once() {
    for signal in ["-INT", "-TERM"] {
        // Two client messages for the model, two from strangers the rules settle.
        let mut mail = received(2);
        for i in 0..2 {
            mail.push_str(&format!(
                "From x@x Mon Nov 02 10:00:00 +0000 2026\nFrom: Pat <pat@stranger{i}.example>\nTo: alex@morganlegal.com\n\
                 Subject: Hello {i}\nDate: Mon, 2 Nov 2026 11:00:00 -0500\nMessage-ID: <u{i}@test.example>\n\n\
                 Are you free for a call about our new project next week?\n\n"
            ));
        }
        let fake = FakeOpenAi::start(Behaviour {
            latency: Duration::from_secs(60),
            ..Behaviour::default()
        })
        .await;
        let app = TestApp::new();
        let mbox = app.write("m.mbox", &mail);
        let child = cli_scan(&app, &fake, &mbox);
        // Signal once the model has been asked.
        let waited = Instant::now();
        while fake.requests() == 0 && waited.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(fake.requests() > 0, "the model was never asked");
        let signalled = Instant::now();
        let killed = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .expect("join")
            .expect("wait");
        let stopped_in = signalled.elapsed();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(3), "{signal}: {stdout}{stderr}");
        assert!(
            stopped_in < Duration::from_secs(10),
            "{signal}: {stopped_in:?}"
        );
        assert!(
            stdout.contains("run the same command again to resume"),
            "{stdout}"
        );
        // What needed no model is saved; the client mail is not marked processed.
        let ctx = app.context(None);
        let user = billable::domain::UserId::local();
        let scans = ctx.store.scans(&user, 1).await.expect("scans");
        assert_eq!(scans[0].status.as_str(), "interrupted", "{signal}");
        let ids: Vec<String> = [
            "<u0@test.example>",
            "<u1@test.example>",
            "<s0@test.example>",
            "<s1@test.example>",
        ]
        .iter()
        .map(|id| id.trim_matches(['<', '>']).to_owned())
        .collect();
        // The run's settings: the stored ones (none) with the --settings file on top.
        let patch: billable::domain::SettingsPatch =
            serde_json::from_value(crate::helpers::demo_settings()).expect("patch");
        let stored = ctx.store.settings(&user).await.expect("settings");
        let settings = stored.apply(patch).expect("settings");
        let done = ctx
            .store
            .processed_ids(&user, &ids, &settings.matching_key())
            .await
            .expect("processed");
        assert!(
            done.contains("u0@test.example") && done.contains("u1@test.example"),
            "{signal}: {done:?}"
        );
        assert!(
            !done.contains("s0@test.example") && !done.contains("s1@test.example"),
            "{signal}: {done:?}"
        );
        // Resumed with a quick model, the client mail is analyzed and nothing twice.
        fake.set(Behaviour::default());
        let child = cli_scan(&app, &fake, &mbox);
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .expect("join")
            .expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let entries = all_entries(&ctx).await;
        assert_eq!(by_the_model(&entries), 2, "{signal}: {entries:?}");
    }
}
