//! What a hostile sender can put in a message never reaches a description as anything
//! but plain text: no markup, links, control or bidi characters, no formula.

use serde_json::json;

use crate::helpers::{TestApp, call, configure_demo};

/// Subjects (and display names) an attacker controls.
const SUBJECTS: [&str; 7] = [
    "![pixel](https://evil.example/track.png) Contract [click here](javascript:alert(1))",
    "<script>alert(document.cookie)</script> MSA redline",
    "Invoice \u{1b}[2J\u{1b}[31mPAY NOW\u{1b}[0m",
    "Redline \u{202E}fdp.exe",
    "=HYPERLINK(\"https://evil.example\",\"Open\") terms",
    "Draft ＜img src=x onerror=alert(1)＞ memo",
    "@SUM(1+1) \u{200B}zero\u{FEFF}width",
];

fn message(subject: &str, n: usize) -> String {
    format!(
        "From: \"=cmd|' /C calc'!A0 <b>Jane</b>\" <jane.cooper@acme.com>\r\n\
         To: Alex Morgan <alex@morganlegal.com>\r\n\
         Subject: {subject}\r\n\
         Date: Mon, 23 Nov 2026 09:00:00 -0500\r\n\
         Message-ID: <hostile-{n}@acme.com>\r\n\r\n\
         Please review the attached redline of the master services agreement and send \
         your comments on the indemnity clause and the limitation of liability by Friday.\r\n"
    )
}

fn assert_plain(description: &str) {
    for bad in [
        "<",
        ">",
        "](",
        "://",
        "javascript:",
        "\u{1b}",
        "\u{202E}",
        "\u{200B}",
        "\u{FEFF}",
    ] {
        assert!(
            !description.contains(bad),
            "`{bad}` in the description {description:?}"
        );
    }
    assert!(
        !description.starts_with(['=', '+', '-', '@']),
        "a formula: {description:?}"
    );
    assert!(
        !description.chars().any(char::is_control),
        "a control character: {description:?}"
    );
}

#[tokio::test]
async fn every_injection_subject_yields_a_plain_text_description() {
    let app = TestApp::new();
    let ctx = app.context(None);
    configure_demo(&ctx).await;
    for (n, subject) in SUBJECTS.iter().enumerate() {
        let out = call(
            &ctx,
            "analyze_time_entry",
            json!({"raw_email": message(subject, n), "save": true}),
        )
        .await
        .expect("analyze");
        let entry = &out["entry"];
        assert!(entry.is_object(), "{subject:?} gave no entry: {out}");
        assert_plain(entry["description"].as_str().unwrap_or_default());
    }
    // And as stored.
    let list = call(&ctx, "list_time_entries", json!({"limit": 50}))
        .await
        .expect("list");
    let entries = list["entries"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), SUBJECTS.len());
    for e in entries {
        assert_plain(e["description"].as_str().unwrap_or_default());
    }
}

/// Lets this test process hold `n` open files (sockets), as far as the hard limit allows.
fn allow_open_files(n: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = n.min(limit.rlim_max);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    limit.rlim_cur
}

/// `billable serve` as a user would run it, with the usual limit of 1,024 open files.
struct Served {
    child: std::process::Child,
    base: String,
    _app: TestApp,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve_with_1024_files() -> Served {
    // As main does: one TLS provider for every client (reqwest is built without one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let app = TestApp::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut command = std::process::Command::new("sh");
    crate::helpers::hermetic(&mut command, app.dir.path());
    let child = command
        .args(["-c", "ulimit -n 1024 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_billable"))
        .args(["--db", crate::helpers::path_str(&app.db), "serve", "--bind"])
        .arg(format!("127.0.0.1:{port}"))
        .env("BILLABLE_API_TOKEN", "hostile-test-token")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start billable serve");
    // Dropped (and so killed) on every path, the panic below included.
    let served = Served {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _app: app,
    };
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client
            .get(format!("{}/healthz", served.base))
            .send()
            .await
            .is_ok()
        {
            return served;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("billable serve did not start on {}", served.base);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_half_sent_connections_cannot_stop_healthz() {
    use tokio::io::AsyncWriteExt;
    // This process holds the attacker's sockets; the server keeps the usual limit.
    let allowed = allow_open_files(4096);
    assert!(
        allowed >= 2048,
        "the test needs 2048 open files, the hard limit is {allowed}"
    );
    let s = serve_with_1024_files().await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    // 1,100 clients that start a request and never finish its headers.
    let mut idle = Vec::new();
    for _ in 0..1100 {
        let Ok(mut c) = tokio::net::TcpStream::connect(&addr).await else {
            continue;
        };
        let _ = c
            .write_all(b"GET /v1/tools HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer")
            .await;
        idle.push(c);
    }
    assert!(idle.len() > 1000, "only {} connections opened", idle.len());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            client.get(format!("{}/healthz", s.base)).send(),
        )
        .await
        .expect("healthz answered within 2 s")
        .expect("healthz answered");
        assert_eq!(r.status(), 200);
    }
    drop(idle);
}
