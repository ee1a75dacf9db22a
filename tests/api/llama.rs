//! The `llm` analyzer against a real model server: llama.cpp's own `llama-server`
//! (built from the llama.cpp sources in the llama-cpp-python source package by
//! scripts/llama-server.sh) with SmolLM2-135M-Instruct, on CPU.
//!
//! A 135M model cannot do the task; what is tested is that everything around it holds
//! against a real server's wire format: each scan completes, every message is saved,
//! and the scan reports what the model did. Three scans of the demo mailbox: with
//! `json_schema`, with JSON mode, and with a context too small for a batch.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{TestApp, fixture};
use crate::services;

struct LlamaServer {
    child: Child,
    base_url: String,
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts llama-server with `ctx` tokens of context (one slot) and waits until the
/// model is loaded.
async fn start(ctx: u32) -> LlamaServer {
    let (server, model) = services::llama();
    let port = free_port();
    let mut command = Command::new(&server);
    command
        .env_clear()
        .args(["--model", &model, "--host", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .args([
            "--ctx-size",
            &ctx.to_string(),
            "--parallel",
            "1",
            "--threads",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = command.spawn().expect("start llama-server");
    let server = LlamaServer {
        child,
        base_url: format!("http://127.0.0.1:{port}/v1"),
    };
    let started = Instant::now();
    loop {
        if healthy(port).await {
            return server;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "llama-server did not load {model} within 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `GET /health` answers 200 once the model is loaded (503 before).
async fn healthy(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    answer.starts_with(b"HTTP/1.1 200")
}

/// `billable scan --json` of the demo mailbox against `server`, with `env` added.
async fn scan(server: &LlamaServer, env: &[(&str, &str)]) -> Value {
    let app = TestApp::new();
    let mut command = app.command();
    command
        .arg("--mbox")
        .arg(fixture("demo.mbox"))
        .arg("--settings")
        .arg(fixture("demo-settings.json"))
        .args(["--json", "scan"])
        .env("OPENAI_BASE_URL", &server.base_url)
        .env("OPENAI_MODEL", "smollm2-135m")
        .env("LLM_CONCURRENCY", "1")
        .env("LLM_TIMEOUT_SECS", "120");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = tokio::process::Command::from(command)
        .output()
        .await
        .expect("run billable");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{env:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Every message the demo mailbox holds is accounted for and the model's work counted.
fn check(out: &Value, what: &str) {
    assert_eq!(out["status"], "completed", "{what}: {out}");
    assert_eq!(out["errors_total"], 0, "{what}: {out}");
    let n = |k: &str| out[k].as_u64().unwrap_or(0);
    assert_eq!(
        n("examined"),
        n("skipped_automated") + n("analyzed"),
        "{what}: every message saved: {out}"
    );
    let llm = &out["llm"];
    let asked = llm["answered"].as_u64().unwrap_or(0) + llm["fell_back"].as_u64().unwrap_or(0);
    assert!(asked > 0, "{what}: the model was asked: {out}");
    assert!(
        llm["requests"].as_u64().unwrap_or(0) > 0 && llm["prompt_tokens"].as_u64().unwrap_or(0) > 0,
        "{what}: {llm}"
    );
    eprintln!("llama-server, {what}: {llm}");
}

#[tokio::test]
async fn scans_against_llama_server_complete_save_every_message_and_report_the_model() {
    if services::LLAMA.skipped() {
        return;
    }
    let server = start(4096).await;
    let structured = scan(&server, &[]).await;
    check(&structured, "json_schema");
    let json_mode = scan(&server, &[("LLM_RESPONSE_FORMAT", "json_object")]).await;
    check(&json_mode, "json_object");
    drop(server);

    // A context one batch of eight does not fit. Told it is larger than it is, the
    // scan sends the batch, reads the real size from llama-server's 400 and halves.
    let small = start(1536).await;
    let overflow = scan(
        &small,
        &[("LLM_MAX_BATCH", "8"), ("LLM_CONTEXT_TOKENS", "32768")],
    )
    .await;
    check(&overflow, "a batch over a 1,536-token context");
    assert!(
        overflow["llm"]["requests"].as_u64().unwrap_or(0) >= 2,
        "the batch was split: {}",
        overflow["llm"]
    );
}
