//! Reviewing entries from the command line: approve, reject, edit, add, merge and
//! split as a script drives them, and `billable review` as a person does, in a real
//! terminal (tmux).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{TestApp, fixture, hermetic, path_str};

/// The demo mailbox scanned with the demo settings stored as the user's, so later
/// commands know its clients and matters.
fn scanned_demo() -> TestApp {
    let app = TestApp::new();
    let (mbox, settings) = (fixture("demo.mbox"), fixture("demo-settings.json"));
    app.run(&[
        "--mbox",
        path_str(&mbox),
        "--settings",
        path_str(&settings),
        "--save",
        "scan",
    ])
    .assert_ok();
    app
}

/// Every listed entry, as `billable entries --json` prints them.
fn entries(app: &TestApp) -> Vec<Value> {
    let run = app.run(&["entries", "--json", "--limit", "500"]);
    run.assert_ok();
    run.json()["entries"].as_array().expect("entries").clone()
}

fn by_id<'a>(all: &'a [Value], id: &str) -> &'a Value {
    all.iter()
        .find(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("no entry {id} in {all:?}"))
}

fn id(e: &Value) -> String {
    e["id"].as_str().expect("id").to_owned()
}

/// Runs a command that must succeed and print JSON.
fn json(app: &TestApp, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let run = app.run(&all);
    run.assert_ok();
    run.json()
}

#[test]
fn approving_rejecting_editing_adding_merging_and_splitting_change_what_was_asked() {
    let app = scanned_demo();
    let before = entries(&app);
    let mut suggested = before.iter().filter(|e| e["status"] == "suggested");
    let (a1, a2, r1) = (
        id(suggested.next().unwrap()),
        id(suggested.next().unwrap()),
        id(suggested.next().unwrap()),
    );
    let initech = id(before.iter().find(|e| e["client"] == "Initech").unwrap());

    // The ids the table prints are what a person copies.
    let table = app.run_with(&["entries"], &[("COLUMNS", "200")]);
    table.assert_ok();
    let shown: Vec<String> = table
        .stdout()
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    let short = |full: &str| -> String {
        shown
            .iter()
            .find(|s| s.len() >= 8 && full.ends_with(s.as_str()))
            .unwrap_or_else(|| panic!("{full} is not in the table:\n{}", table.stdout()))
            .clone()
    };
    let approve = app.run(&["approve", &short(&a1), &short(&a2)]);
    approve.assert_ok();
    assert!(
        approve.stdout().starts_with("Approved 2 entries."),
        "{}",
        approve.stdout()
    );
    let rejected = json(&app, &["reject", &r1]);
    assert_eq!(rejected["updated"], 1, "{rejected}");

    let edited = json(
        &app,
        &[
            "edit",
            &initech,
            "--client",
            "Acme Corp",
            "--minutes",
            "30",
            "--description",
            "Reviewed the indemnity cap",
        ],
    );
    assert_eq!(
        edited["entries"][0]["matter"], "MSA renewal",
        "its only matter"
    );

    let call = json(
        &app,
        &[
            "add",
            "--client",
            "Globex",
            "--date",
            "2026-11-24",
            "--minutes",
            "18",
            "--description",
            "Call with Dan Wu on the term sheet",
        ],
    );
    assert_eq!(
        (&call["status"], &call["analyzer"], &call["activity"]),
        (&"approved".into(), &"manual".into(), &"call".into()),
        "{call}"
    );
    assert_eq!(call["matter"], "Series B financing", "{call}");
    assert_eq!(call["amount"], 120.0, "18 minutes at 400/h: {call}");
    let meeting = json(
        &app,
        &[
            "add",
            "--client",
            "Globex",
            "--date",
            "2026-11-25",
            "--minutes",
            "12",
            "--description",
            "Meeting with Priya Shah",
            "--activity",
            "meeting",
        ],
    );

    let after = entries(&app);
    assert_eq!(after.len(), before.len() + 2);
    for a in [&a1, &a2] {
        assert_eq!(by_id(&after, a)["status"], "approved");
    }
    assert_eq!(by_id(&after, &r1)["status"], "rejected");
    let e = by_id(&after, &initech);
    assert_eq!(
        (&e["client"], &e["billed_minutes"], &e["description"]),
        (
            &"Acme Corp".into(),
            &30.into(),
            &"Reviewed the indemnity cap".into()
        ),
        "{e}"
    );
    assert_eq!(e["amount"], 175.0, "30 minutes at Acme's 350/h: {e}");
    let untouched: Vec<&Value> = before
        .iter()
        .filter(|b| ![&a1, &a2, &r1, &initech].contains(&&id(b)))
        .collect();
    for b in &untouched {
        assert_eq!(by_id(&after, &id(b)), *b, "an entry not named changed");
    }

    let merged = json(
        &app,
        &[
            "merge",
            &id(&call),
            &id(&meeting),
            "--description",
            "Term sheet calls",
            // The parts are on two days: the merged entry's is the person's choice.
            "--date",
            "2026-11-24",
        ],
    );
    let m = &merged["entry"];
    assert_eq!(
        (&m["billed_minutes"], &m["description"], &m["work_date"]),
        (&30.into(), &"Term sheet calls".into(), &"2026-11-24".into()),
        "{merged}"
    );
    let listed = entries(&app);
    assert_eq!(listed.len(), before.len() + 1, "the parts are hidden");
    assert!(!listed.iter().any(|e| e["id"] == call["id"]));

    let split = app.run(&["split", &id(m)[id(m).len() - 8..]]);
    split.assert_ok();
    assert!(split.stdout().starts_with("Split "), "{}", split.stdout());
    let restored = entries(&app);
    assert_eq!(restored.len(), before.len() + 2);
    assert!(
        !restored.iter().any(|e| e["id"] == m["id"]),
        "merged entry gone"
    );
    // As they were, but for reviewed_at: the merge was a person's change too.
    let without_review = |e: &Value| {
        let mut e = e.clone();
        e.as_object_mut().unwrap().remove("reviewed_at");
        e
    };
    for part in [&call, &meeting] {
        assert_eq!(
            without_review(by_id(&restored, &id(part))),
            without_review(part),
            "restored as it was"
        );
    }
}

/// Bad input: exit 2, stderr names `needle`, and no entry changed.
fn assert_unchanged(app: &TestApp, args: &[&str], needle: &str) {
    let before = entries(app);
    let run = app.run(args);
    assert_eq!(
        run.code(),
        2,
        "{args:?}\nstdout: {}\nstderr: {}",
        run.stdout(),
        run.stderr()
    );
    assert!(
        run.stderr().contains(needle),
        "{args:?}: stderr should mention `{needle}`: {}",
        run.stderr()
    );
    assert_eq!(entries(app), before, "{args:?} changed entries");
}

#[test]
fn unknown_ids_and_bad_values_exit_2_and_change_nothing() {
    let app = scanned_demo();
    let all = entries(&app);
    let acme = id(all.iter().find(|e| e["client"] == "Acme Corp").unwrap());
    let other = id(all.iter().find(|e| e["id"] != acme.as_str()).unwrap());
    let unknown = "00000000-0000-7000-8000-000000000000";
    assert_unchanged(&app, &["approve", unknown], unknown);
    assert_unchanged(&app, &["approve", &acme, "deadbeef", &other], "deadbeef");
    assert_unchanged(&app, &["reject", &acme, unknown], unknown);
    assert_unchanged(
        &app,
        &["edit", &acme, "--minutes", "600"],
        "max_entry_minutes",
    );
    assert_unchanged(&app, &["edit", &acme, "--client", "Umbrella"], "Umbrella");
    assert_unchanged(&app, &["edit", &acme, "--matter", "ZZ-9"], "ZZ-9");
    assert_unchanged(
        &app,
        &[
            "add",
            "--client",
            "Umbrella",
            "--date",
            "2026-11-24",
            "--minutes",
            "12",
            "--description",
            "Call",
        ],
        "Umbrella",
    );
    assert_unchanged(
        &app,
        &[
            "add",
            "--client",
            "Acme Corp",
            "--date",
            "2026-11-24",
            "--minutes",
            "600",
            "--description",
            "Call",
        ],
        "max_entry_minutes",
    );
    assert_unchanged(&app, &["edit", &acme], "--minutes");
    assert_unchanged(&app, &["split", &acme], "not a merged entry");
    // One scan's ids share their first characters (UUID v7 starts with the time).
    assert_unchanged(&app, &["approve", &acme[..8]], &other);
}

#[test]
fn review_without_a_terminal_says_to_use_approve_reject_and_edit() {
    let app = scanned_demo();
    let run = app.run(&["review"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr()
            .contains("billable review needs a terminal; use approve/reject/edit in scripts"),
        "{}",
        run.stderr()
    );
}

/// A tmux server of the test's own (its own socket, so a developer's sessions are
/// never touched), killed when dropped, even when the test fails.
struct Tmux {
    socket: String,
    session: String,
    home: std::path::PathBuf,
}

impl Tmux {
    fn start(home: &Path, name: &str, command: &str) -> Tmux {
        let tmux = Tmux {
            socket: format!("billable-{name}-{}", std::process::id()),
            session: name.to_owned(),
            home: home.to_owned(),
        };
        let run = tmux.tmux(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "200",
            "-y",
            "50",
            command,
            ";",
            "set-option",
            "-t",
            name,
            "remain-on-exit",
            "on",
        ]);
        assert!(run.status.success(), "{run:?}");
        tmux
    }

    /// Where the server listens; removed with it, as tmux leaves the file behind.
    fn socket_path(&self) -> Option<std::path::PathBuf> {
        let run = self.tmux(&["display-message", "-p", "#{socket_path}"]);
        let path = String::from_utf8_lossy(&run.stdout).trim().to_owned();
        (run.status.success() && !path.is_empty()).then(|| path.into())
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        let mut command = Command::new("/usr/bin/tmux");
        hermetic(&mut command, &self.home);
        command
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.session];
        args.extend_from_slice(keys);
        let run = self.tmux(&args);
        assert!(run.status.success(), "{run:?}");
    }

    fn screen(&self) -> String {
        let run = self.tmux(&["capture-pane", "-p", "-t", &self.session]);
        String::from_utf8_lossy(&run.stdout).into_owned()
    }

    /// The screen once it shows `text`, waiting at most 20 s.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the terminal never showed `{text}`:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let socket = self.socket_path();
        let _ = self.tmux(&["kill-server"]);
        if let Some(path) = socket {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The id on the card headed `Entry N of`.
fn card_id(screen: &str, n: usize) -> String {
    let head = format!("Entry {n} of ");
    let line = screen
        .lines()
        .find(|l| l.starts_with(&head))
        .unwrap_or_else(|| panic!("no card {n}:\n{screen}"));
    let (_, rest) = line.split_once(" · id ").expect("an id on the card");
    rest.split_whitespace().next().unwrap().to_owned()
}

#[test]
fn review_in_a_terminal_saves_each_decision_as_it_is_made() {
    let app = scanned_demo();
    let awaiting = entries(&app)
        .iter()
        .filter(|e| e["status"] == "suggested" || e["status"] == "needs_review")
        .count();
    let home = app.dir.path();
    let exit = home.join("exit");
    let command = format!(
        "env -i HOME='{}' PATH='{}' '{}' --db '{}' review; echo EXIT=$? > '{}'",
        home.display(),
        std::env::var("PATH").unwrap_or_default(),
        env!("CARGO_BIN_EXE_billable"),
        app.db.display(),
        exit.display()
    );
    let tmux = Tmux::start(home, "review", &command);

    let screen = tmux.wait_for(&format!("Entry 1 of {awaiting} "));
    let first = card_id(&screen, 1);
    tmux.keys(&["a"]);
    let screen = tmux.wait_for("Entry 2 of ");
    let second = card_id(&screen, 2);
    tmux.keys(&["m"]);
    tmux.wait_for("Minutes to bill");
    tmux.keys(&["-l", "30"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("30 min (0.5 h)");
    tmux.keys(&["s"]);
    let screen = tmux.wait_for("Entry 3 of ");
    let third = card_id(&screen, 3);
    tmux.keys(&["r"]);
    tmux.wait_for("Entry 4 of ");
    tmux.keys(&["q"]);
    let screen = tmux.wait_for("1 approved, 1 rejected, 1 edited, 1 skipped.");
    assert!(
        screen.contains(&format!("{} left for later", awaiting - 3)),
        "{screen}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !exit.exists() {
        assert!(Instant::now() < deadline, "review never exited");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The shell may have created the file but not yet written it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let code = loop {
        let text = std::fs::read_to_string(&exit).unwrap_or_default();
        if text.ends_with('\n') || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code.trim(), "EXIT=0");

    let after = entries(&app);
    assert_eq!(by_id(&after, &first)["status"], "approved");
    let edited = by_id(&after, &second);
    assert_eq!(
        (&edited["billed_minutes"], &edited["status"]),
        (&30.into(), &"suggested".into()),
        "edited and skipped: {edited}"
    );
    assert_eq!(by_id(&after, &third)["status"], "rejected");
}

#[test]
fn review_explains_opens_undoes_and_answers_every_key() {
    let app = scanned_demo();
    let home = app.dir.path();
    let mbox = fixture("demo.mbox");
    let command = format!(
        "env -i HOME='{}' PATH='{}' '{}' --db '{}' --mbox '{}' review",
        home.display(),
        std::env::var("PATH").unwrap_or_default(),
        env!("CARGO_BIN_EXE_billable"),
        app.db.display(),
        mbox.display(),
    );
    let tmux = Tmux::start(home, "review-keys", &command);
    let screen = tmux.wait_for("Entry 1 of ");
    let first = card_id(&screen, 1);
    tmux.keys(&["?"]);
    tmux.wait_for("u  undo the last approve");
    tmux.keys(&["x"]);
    tmux.wait_for("`x` does nothing here; ? shows the keys");
    tmux.keys(&["w"]);
    tmux.wait_for("confidence");
    tmux.wait_for("  - ");
    tmux.keys(&["o"]);
    tmux.wait_for("Subject: ");
    // Approved, then undone: back on the same entry, awaiting review again.
    let awaiting = by_id(&entries(&app), &first)["status"].clone();
    tmux.keys(&["a"]);
    tmux.wait_for("Entry 2 of ");
    assert_eq!(by_id(&entries(&app), &first)["status"], "approved");
    tmux.keys(&["u"]);
    tmux.wait_for("undone");
    let after = entries(&app);
    assert_eq!(by_id(&after, &first)["status"], awaiting);
    tmux.keys(&["q"]);
    tmux.wait_for("0 approved, 0 rejected, 0 edited, 0 skipped.");
}
