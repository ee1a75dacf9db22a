//! What a hostile sender can put in a message never reaches a description as anything
//! but plain text (no markup, links, control or bidi characters, no formula), nor a
//! terminal as anything but text; idle connections cannot stop the server answering.

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

#[test]
fn the_cli_shows_control_characters_from_mail_as_escapes_in_every_table() {
    let app = TestApp::new();
    let settings = crate::helpers::fixture("demo-settings.json");
    let settings = crate::helpers::path_str(&settings);
    // Terminal controls in the sender's address, name and subject, from a domain no
    // client has, so the scan lists it among the domains with no client.
    let hostile = "From: \"Jane \u{1b}[31mRED\" <jane@evil\u{1b}[2J\u{7}.example>\r\n\
                   To: Alex Morgan <alex@morganlegal.com>\r\n\
                   Subject: \u{1b}]0;owned\u{7}Invoice \u{202E}fdp.exe\r\n\
                   Date: Mon, 23 Nov 2026 09:00:00 -0500\r\n\
                   Message-ID: <esc@evil.example>\r\n\r\n\
                   Please review the attached agreement and call me.\r\n";
    let eml = app.write("hostile.eml", hostile);
    let eml = crate::helpers::path_str(&eml);
    let mbox = app.write(
        "hostile.mbox",
        &format!("From jane@evil.example Mon Nov 23 09:00:00 2026\r\n{hostile}"),
    );
    let mbox = crate::helpers::path_str(&mbox);
    for args in [
        vec!["--settings", settings, "analyze", eml],
        vec!["--settings", settings, "--mbox", mbox, "scan"],
        vec!["--settings", settings, "entries"],
    ] {
        let run = app.run(&args);
        run.assert_ok();
        let (out, err) = (run.stdout(), run.stderr());
        for shown in [&out, &err] {
            assert!(
                !shown.contains(['\u{1b}', '\u{7}', '\u{202E}']),
                "{args:?} printed a control character raw: {shown:?}"
            );
        }
        if args.contains(&"scan") {
            assert!(out.contains("evil\\u{1b}[2j"), "shown as an escape: {out}");
        }
    }
}

/// A client's ordinary message, and one with `body` after headers `extra`.
fn client_mail(n: usize, extra: &str, body: &str) -> String {
    format!(
        "From jane.cooper@acme.com Mon Nov 23 09:00:00 2026\n\
         From: Jane Cooper <jane.cooper@acme.com>\nTo: Alex Morgan <alex@morganlegal.com>\n\
         Subject: MSA comments {n}\nDate: Mon, 23 Nov 2026 09:00:00 -0500\n\
         Message-ID: <bounds-{n}@acme.com>\nMIME-Version: 1.0\n{extra}\n{body}\n\n"
    )
}

/// Peak RSS (bytes) and CPU seconds of `billable ... --mbox PATH scan`, from wait4.
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which also gives its resource use"
)]
fn scan_cost(app: &TestApp, mbox: &std::path::Path) -> (u64, f64, serde_json::Value) {
    let stem = mbox.file_stem().and_then(|s| s.to_str()).unwrap_or("scan");
    let db = app.dir.path().join(format!("{stem}.sqlite3"));
    let _ = std::fs::remove_file(&db);
    let mut command = crate::helpers::billable(app.dir.path());
    let mut child = command
        .arg("--db")
        .arg(&db)
        .args([
            "--settings",
            crate::helpers::path_str(&crate::helpers::fixture("demo-settings.json")),
        ])
        .args(["--mbox", crate::helpers::path_str(mbox), "scan", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).map(|_| out)
    });
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, writing into the two values we pass.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "status {status}"
    );
    let out = reader.join().expect("reader").expect("read stdout");
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let rss = u64::try_from(usage.ru_maxrss).unwrap_or_default() * 1024;
    let cpu = seconds(usage.ru_utime) + seconds(usage.ru_stime);
    (rss, cpu, serde_json::from_str(&out).expect("scan json"))
}

/// The CPU a pathological message may cost: 2 s for a release binary. The suite runs
/// the debug binary, which spends 2.1–3.1 s on the 24 MB of empty MIME parts on a
/// 2-core machine (the code before and after the LLM changes alike, measured side by
/// side); before the parser was bounded it cost 4.2 s in a release build. So 6 s there.
const CPU_LIMIT_SECS: f64 = if cfg!(debug_assertions) { 6.0 } else { 2.0 };

#[test]
fn no_pathological_message_costs_more_than_64_mib_or_2_s_of_cpu() {
    const MIB: usize = 1024 * 1024;
    let app = TestApp::new();
    let plain = "Content-Type: text/plain\n";
    let ordinary = |n| client_mail(n, plain, "Please review the draft and send comments.");
    let mailbox = |name: &str, extra: &str, body: &str| {
        let text = format!(
            "{}{}{}",
            ordinary(1),
            client_mail(2, extra, body),
            ordinary(3)
        );
        app.write(name, &text)
    };
    let base = app.write(
        "base.mbox",
        &format!("{}{}{}", ordinary(1), ordinary(2), ordinary(3)),
    );
    let empty_parts = "--b\n\n".repeat(24 * MIB / 5);
    let cid_html: String = (0..16 * MIB / 28)
        .map(|i| format!("<img src=\"cid:i{i:07}@acme\">"))
        .collect();
    let cid_parts: String = (0..20_000)
        .map(|i| format!("--b\nContent-Type: image/png\nContent-ID: <i{i:07}@acme>\n\nAAAA\n"))
        .collect();
    let cases = [
        (
            "24 MB of empty MIME parts",
            mailbox(
                "empty-parts.mbox",
                "Content-Type: multipart/mixed; boundary=\"b\"\n",
                &format!("{empty_parts}--b--"),
            ),
        ),
        (
            "16 MB of cid: references and 20,000 inline parts",
            mailbox(
                "cids.mbox",
                "Content-Type: multipart/related; boundary=\"b\"\n",
                &format!(
                    "--b\nContent-Type: text/html\n\n<p>Please review.</p>{cid_html}\n{cid_parts}--b--"
                ),
            ),
        ),
        (
            "a 200 MB line",
            mailbox("line.mbox", plain, &"a".repeat(200 * MIB)),
        ),
    ];
    let (base_rss, base_cpu, _) = scan_cost(&app, &base);
    for (what, mbox) in &cases {
        let (rss, cpu, scan) = scan_cost(&app, mbox);
        assert_eq!(scan["examined"], 3, "{what}: {scan}");
        assert!(
            scan["entries_created"].as_u64() >= Some(2),
            "{what}: {scan}"
        );
        let grown = rss.saturating_sub(base_rss) as f64 / MIB as f64;
        assert!(
            grown <= 64.0,
            "{what}: {grown:.0} MiB more than three plain messages"
        );
        assert!(
            cpu - base_cpu <= CPU_LIMIT_SECS,
            "{what}: {:.2} s more CPU",
            cpu - base_cpu
        );
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
    serve(TestApp::new(), &[], &[]).await
}

/// `billable [args] serve` on a free port with the usual limit of 1,024 open files,
/// once `/healthz` answers.
async fn serve(app: TestApp, args: &[&str], vars: &[(&str, &str)]) -> Served {
    // As main does: one TLS provider for every client (reqwest is built without one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut command = std::process::Command::new("sh");
    crate::helpers::hermetic(&mut command, app.dir.path());
    let child = command
        .args(["-c", "ulimit -n 1024 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_billable"))
        .args(["--db", crate::helpers::path_str(&app.db)])
        .args(args)
        .args(["serve", "--bind"])
        .arg(format!("127.0.0.1:{port}"))
        .env("BILLABLE_API_TOKEN", TOKEN)
        .envs(vars.iter().copied())
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

const TOKEN: &str = "hostile-test-token";

/// CPU seconds the process has used (user and system), from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    // SAFETY: sysconf only reads a system constant.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_stops_when_its_client_leaves_and_sigterm_stops_the_server_in_time() {
    let app = TestApp::new();
    let mut mbox = Vec::new();
    crate::mbox_gen::write_mbox(&mut mbox, 60_000).expect("generate");
    let mbox = app.write("big.mbox", &String::from_utf8(mbox).expect("utf-8"));
    let mbox = crate::helpers::path_str(&mbox).to_owned();
    let mut s = serve(
        app,
        &["--mbox", &mbox],
        &[("BILLABLE_SHUTDOWN_GRACE_SECS", "2")],
    )
    .await;
    let pid = s.child.id();
    // A long query that matches nothing: the scan reads the whole mailbox, listing
    // nothing, for a long time.
    let terms: Vec<String> = (0..3000).map(|n| format!("-subject:zq{n}x")).collect();
    let query = format!("{} subject:nothing-has-this", terms.join(" "));
    let scan = |timeout: u64| {
        let (base, query) = (s.base.clone(), query.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{base}/v1/tools/scan_billable_time"))
                .bearer_auth(TOKEN)
                .json(&json!({ "query": query }))
                .timeout(std::time::Duration::from_secs(timeout))
                .send()
                .await
        })
    };
    let gone = scan(1).await.expect("task");
    assert!(gone.is_err(), "the client gave up: {gone:?}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let before = cpu_seconds(pid);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let busy = cpu_seconds(pid) - before;
    assert!(
        busy < 0.3,
        "{busy:.2} s of CPU in 1 s after the client left"
    );

    // A scan in progress, then SIGTERM: the server is gone within its 2 s of grace.
    let running = scan(600);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let cpu = cpu_seconds(pid);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(cpu_seconds(pid) > cpu, "the second scan is running");
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let asked = std::time::Instant::now();
    let exited = loop {
        if let Ok(Some(status)) = s.child.try_wait() {
            break Some(status);
        }
        if asked.elapsed() > std::time::Duration::from_secs(5) {
            break None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        exited.is_some(),
        "still running {:?} after SIGTERM",
        asked.elapsed()
    );
    running.abort();
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
