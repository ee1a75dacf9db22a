//! README.md's examples, run as written and in order against one database (the
//! default one, in the test's own home folder): each exits 0, and none but
//! `configure` (or `--save`) changes the stored settings.
//!
//! What a reader types differently is substituted, and only that: the example ids
//! (`1a2b3c4d` …) become ids of the entries the scan made, `~/Takeout/…` is the demo
//! mailbox, `message.eml` one of its messages, `cargo run --release --` the built
//! binary. `review` needs a terminal (tests/api/review_cli.rs drives it in tmux);
//! `serve` runs on a free port until it answers.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::helpers::{fixture, hermetic};

/// The commands of README.md's `sh` blocks: lines that start with `billable` or
/// `cargo run`, continuation lines joined.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let mut commands = Vec::new();
    let mut in_sh = false;
    let mut pending: Option<String> = None;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let line = match pending.take() {
            Some(start) => start + "\n" + line,
            None if line.starts_with("billable ") || line.starts_with("cargo run ") => {
                line.to_owned()
            }
            None => continue,
        };
        // A `\` before the end (or before a comment) continues the command.
        let code = line.rsplit('\n').next().unwrap_or_default();
        let code = code.split(" #").next().unwrap_or_default().trim_end();
        if code.ends_with('\\') {
            pending = Some(line);
        } else {
            commands.push(line.replace("cargo run --release -- ", "billable "));
        }
    }
    commands
}

/// The ids the README's examples stand for, replaced by real ones as they come up.
const EXAMPLE_IDS: [&str; 4] = ["1a2b3c4d", "9f8e7d6c", "0c1d2e3f", "5e6f7a8b"];

struct Reader {
    home: tempfile::TempDir,
    work: tempfile::TempDir,
    bin_dir: std::path::PathBuf,
}

impl Reader {
    fn shell(&self, script: &str) -> Command {
        let mut command = Command::new("bash");
        hermetic(&mut command, self.home.path());
        let path = std::env::var("PATH").unwrap_or_default();
        command
            .env("PATH", format!("{}:{path}", self.bin_dir.display()))
            .current_dir(self.work.path())
            .args(["-c", script]);
        command
    }

    fn run(&self, script: &str) -> (String, String) {
        let out = self.shell(script).output().expect("run bash");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "`{script}` exited {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status.code()
        );
        (stdout, stderr)
    }

    fn json(&self, script: &str) -> Value {
        serde_json::from_str(&self.run(script).0).expect("JSON")
    }

    /// The stored settings; what reviews taught (`learned`) moves with every review,
    /// so it is left out.
    fn settings(&self) -> Value {
        let mut settings = self.json("billable --json configure");
        if let Some(map) = settings.as_object_mut() {
            map.remove("learned");
        }
        settings
    }

    fn entry_ids(&self) -> Vec<(String, String)> {
        self.json("billable --json entries --limit 500")["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| {
                (
                    e["id"].as_str().unwrap_or_default().to_owned(),
                    e["client"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

/// Ids for the examples: two Acme Corp entries (approved, edited, then merged), a third
/// entry (rejected); the merged entry's id comes from the merge itself.
fn pick_ids(reader: &Reader) -> Vec<(&'static str, String)> {
    let entries = reader.entry_ids();
    // Two of one day: a merge across days needs --date, which the example has not.
    let listed = reader.json("billable --json entries --limit 500");
    let acme_days: Vec<(String, String)> = listed["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["client"] == "Acme Corp")
        .map(|e| {
            (
                e["work_date"].as_str().unwrap_or_default().to_owned(),
                e["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let day = acme_days
        .iter()
        .find(|(d, _)| acme_days.iter().filter(|(o, _)| o == d).count() >= 2)
        .map(|(d, _)| d.clone())
        .expect("two Acme Corp entries of one day");
    let acme: Vec<&String> = acme_days
        .iter()
        .filter(|(d, _)| *d == day)
        .map(|(_, id)| id)
        .collect();
    assert!(
        acme.len() >= 2,
        "the scan made too few Acme Corp entries: {entries:?}"
    );
    let other = entries
        .iter()
        .map(|(id, _)| id)
        .find(|id| !acme[..2].contains(id))
        .expect("a third entry");
    vec![
        (EXAMPLE_IDS[0], acme[0].clone()),
        (EXAMPLE_IDS[1], acme[1].clone()),
        (EXAMPLE_IDS[2], other.clone()),
    ]
}

fn stores_settings(command: &str) -> bool {
    command.contains(" --save")
        || (command.contains(" configure")
            && [" --set", " --add", " --remove", "--settings"]
                .iter()
                .any(|flag| command.contains(flag)))
}

#[test]
fn every_readme_example_runs_as_written_against_one_database() {
    let reader = Reader {
        home: tempfile::tempdir().unwrap(),
        work: tempfile::tempdir().unwrap(),
        bin_dir: Path::new(env!("CARGO_BIN_EXE_billable"))
            .parent()
            .expect("the binary's folder")
            .to_owned(),
    };
    let work = reader.work.path();
    std::fs::create_dir_all(work.join("tests")).unwrap();
    std::os::unix::fs::symlink(fixture(""), work.join("tests/fixtures")).unwrap();
    let corpora = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpora");
    std::os::unix::fs::symlink(corpora, work.join("tests/corpora")).unwrap();
    std::fs::create_dir_all(work.join("target")).unwrap();
    let takeout = reader.home.path().join("Takeout/Mail");
    std::fs::create_dir_all(&takeout).unwrap();
    std::fs::copy(fixture("demo.mbox"), takeout.join("All mail.mbox")).unwrap();
    let demo = std::fs::read_to_string(fixture("demo.mbox")).unwrap();
    let first = demo
        .split("\nFrom ")
        .nth(1)
        .and_then(|m| m.split_once('\n'))
        .map(|(_, message)| message.to_owned())
        .expect("a second message in the demo mbox");
    std::fs::write(work.join("message.eml"), first).unwrap();

    let commands = readme_commands();
    assert!(commands.len() >= 20, "found only {commands:?}");
    let mut ids: Vec<(&'static str, String)> = Vec::new();
    let mut ran = 0;
    for command in &commands {
        if command.starts_with("billable review") {
            continue;
        }
        if ids.is_empty() && EXAMPLE_IDS.iter().any(|id| command.contains(id)) {
            ids = pick_ids(&reader);
        }
        let mut script = command.clone();
        for (example, id) in &ids {
            script = script.replace(example, id);
        }
        let before = reader.settings();
        if command.ends_with(" serve") {
            serve_until_it_answers(&reader, &script);
        } else if command.starts_with("billable merge") {
            let had = reader.entry_ids();
            reader.run(&script);
            let merged = reader
                .entry_ids()
                .into_iter()
                .map(|(id, _)| id)
                .find(|id| !had.iter().any(|(old, _)| old == id))
                .expect("merge made a new entry");
            ids.push((EXAMPLE_IDS[3], merged));
        } else {
            reader.run(&script);
        }
        ran += 1;
        if !stores_settings(command) {
            assert_eq!(
                reader.settings(),
                before,
                "`{command}` changed the settings"
            );
        }
    }
    assert!(ran >= 18, "ran {ran} of {commands:?}");
    // What the examples did, as a reader would check it.
    let stored = reader.settings();
    assert_eq!(stored["clients"][0]["name"], "Acme Corp", "{stored}");
    assert!(work.join("target/demo.sqlite3").is_file());
    let ledes = std::fs::read_to_string(work.join("acme-november.txt")).expect("LEDES file");
    assert!(ledes.starts_with("LEDES1998B[]"), "{ledes}");
    let csv = std::fs::read_to_string(work.join("november.csv")).expect("CSV file");
    assert!(csv.lines().count() >= 2, "{csv}");
    // The files the README sends to standard output are files too: CRLF rows, no
    // escapes, a header and the approved entries.
    for (name, header) in [
        ("harvest.csv", "Date,Client"),
        ("toggl.csv", "Email,Client"),
    ] {
        let file = std::fs::read_to_string(work.join(name)).expect(name);
        assert!(file.starts_with(header), "{name}: {file}");
        assert!(!file.contains("\\u{"), "{name}: {file}");
        assert!(file.lines().count() >= 2, "{name}: {file}");
        assert!(file.ends_with("\r\n"), "{name}: {file}");
    }
    assert_eq!(stored["rollup"], "thread_day", "{stored}");
    // The README's LEDES sample is what the binary wrote for the same export.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let sample = readme
        .split("LEDES1998B[]\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the README's LEDES sample");
    let written: Vec<&str> = ledes.lines().skip(1).collect();
    let shown: Vec<&str> = sample.lines().collect();
    assert_eq!(shown.first(), written.first(), "the header line");
    assert!(
        shown.len() >= 2 && shown[1..].iter().all(|l| written.contains(l)),
        "README sample lines must be lines the binary writes:\n{sample}\n---\n{ledes}"
    );
}

/// Starts the README's `serve` line on a free port (BILLABLE_BIND) and stops it once
/// `/healthz` answers.
fn serve_until_it_answers(reader: &Reader, script: &str) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut child = reader
        .shell(&format!("exec {script}"))
        .env("BILLABLE_BIND", format!("127.0.0.1:{port}"))
        .env("BILLABLE_API_TOKEN", "readme-test-token")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start serve");
    let answered = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        healthz(port)
    });
    let _ = child.kill();
    let out = child.wait_with_output().expect("serve's output");
    assert!(
        answered,
        "`{script}` did not answer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn healthz(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}
