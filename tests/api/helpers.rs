//! Shared test scaffolding: a throwaway database per test, the demo fixtures, and a
//! way to run the real `billable` binary or call the tool registry in process.
//!
//! Every child process a test starts is hermetic ([`hermetic`]): it sees none of the
//! developer's environment, so their OPENAI_API_KEY or SUPABASE_URL can never send a
//! test's mail to a real service.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use billable::analyze::rules::RulesAnalyzer;
use billable::context::Context;
use billable::domain::UserId;
use billable::mail::MailSource;
use billable::store::sqlite::SqliteStore;
use billable::tools::{self, NoProgress};
use serde_json::Value;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn demo_settings() -> Value {
    let text = std::fs::read_to_string(fixture("demo-settings.json")).expect("demo settings");
    serde_json::from_str(&text).expect("demo settings JSON")
}

/// Clears `command`'s environment down to PATH and HOME (set to `home`, the test's
/// own folder, so no config or token file of the developer's is found either); the
/// test adds its own variables with `.env(..)` afterwards.
pub fn hermetic<'a>(command: &'a mut Command, home: &Path) -> &'a mut Command {
    command.env_clear().env("HOME", home);
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command
}

/// The `billable` binary, [`hermetic`]; `tokio::process::Command::from(..)` makes it
/// async.
pub fn billable(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_billable"));
    hermetic(&mut command, home);
    command
}

/// A test's own database (and folder for mail files), removed when dropped.
pub struct TestApp {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
}

impl TestApp {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("billable.sqlite3");
        TestApp { dir, db }
    }

    /// The binary ([`billable`], at home in the test's folder) with `--db` set.
    pub fn command(&self) -> Command {
        let mut command = billable(self.dir.path());
        command.arg("--db").arg(&self.db);
        command
    }

    /// Runs the binary with `--db` set; other arguments as given.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    /// As [`TestApp::run`], with these environment variables (and no others but PATH
    /// and HOME).
    pub fn run_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Run {
        let out = self
            .command()
            .args(args)
            .envs(vars.iter().copied())
            .output()
            .expect("run billable");
        Run(out)
    }

    /// Runs `billable --mbox M tool NAME JSON`, expecting success, and returns the JSON.
    pub fn tool(&self, mbox: &Path, name: &str, args: &Value) -> Value {
        let run = self.run(&["--mbox", path_str(mbox), "tool", name, &args.to_string()]);
        run.assert_ok();
        run.json()
    }

    /// An in-process context over this test's database.
    pub fn context(&self, source: Option<Arc<dyn MailSource>>) -> Context {
        let store = Arc::new(SqliteStore::open(&self.db).expect("open store"));
        Context::new(source, Arc::new(RulesAnalyzer), store.clone()).with_local_queue(store)
    }

    /// Writes a file into the test's folder and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, contents).expect("write");
        path
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn assert_ok(&self) {
        assert_eq!(
            self.code(),
            0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout())
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout()))
    }
}

/// Applies a settings patch, which must succeed.
pub async fn configure(ctx: &Context, settings: Value) {
    call(
        ctx,
        "configure_time_tracking",
        serde_json::json!({ "settings": settings }),
    )
    .await
    .expect("configure");
}

/// The local user's settings as stored.
pub async fn stored_settings(ctx: &Context) -> Value {
    call(ctx, "configure_time_tracking", Value::Null)
        .await
        .expect("settings")
}

/// Applies the demo settings (`tests/fixtures/demo-settings.json`).
pub async fn configure_demo(ctx: &Context) {
    configure(ctx, demo_settings()).await;
}

/// Calls a tool in process as the local user.
/// A whole scan with default arguments, which must not fail.
pub async fn scan(ctx: &Context) -> Value {
    // In the foreground, as a Gmail scan is only when asked.
    call(
        ctx,
        "scan_billable_time",
        serde_json::json!({"background": false}),
    )
    .await
    .expect("scan")
}

pub async fn call(ctx: &Context, name: &str, args: Value) -> billable::Result<Value> {
    tools::call(ctx, &UserId::local(), name, args, &NoProgress).await
}

/// Set in the child test process that `the_developers_llm_and_supabase_variables_never_reach_the_binary`
/// starts: its environment names real-looking services.
const LEAKY_PARENT: &str = "BILLABLE_TEST_LEAKY_PARENT";

#[test]
fn a_child_process_sees_only_path_home_and_what_the_test_sets() {
    let app = TestApp::new();
    let mut env = Command::new("env");
    hermetic(&mut env, app.dir.path()).env("BILLABLE_DB", "/x.sqlite3");
    let out = env.output().expect("run env");
    assert!(out.status.success());
    let names: std::collections::BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_owned()))
        .collect();
    let expected: std::collections::BTreeSet<String> =
        ["BILLABLE_DB", "HOME", "PATH"].map(String::from).into();
    assert_eq!(names, expected);
    assert!(
        std::env::vars_os().count() > names.len(),
        "the test process itself has more variables than its child"
    );
}

/// Runs the test below in a process of its own whose environment (the parent's, as a
/// developer's shell would have it) names an LLM and a Supabase project, and checks
/// that it ran and passed.
#[test]
fn the_developers_llm_and_supabase_variables_never_reach_the_binary() {
    let exe = std::env::current_exe().expect("the test binary");
    let out = Command::new(exe)
        .args([
            "--exact",
            "helpers::a_scan_in_a_process_whose_environment_names_real_services",
            "--test-threads=1",
        ])
        .env(LEAKY_PARENT, "1")
        .env("OPENAI_API_KEY", "sk-bogus-developer-key")
        .env("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        .env("SUPABASE_URL", "http://127.0.0.1:9")
        .env("SUPABASE_ANON_KEY", "bogus-anon-key")
        .env("SUPABASE_ACCESS_TOKEN", "bogus-user-jwt")
        .env("BILLABLE_MAILDIR", "/nonexistent/maildir")
        .output()
        .expect("run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Only meaningful as the child of the test above; on its own it has nothing to do.
#[test]
fn a_scan_in_a_process_whose_environment_names_real_services() {
    if std::env::var_os(LEAKY_PARENT).is_none() {
        return;
    }
    assert!(std::env::var_os("OPENAI_API_KEY").is_some());
    assert!(std::env::var_os("SUPABASE_URL").is_some());
    let app = TestApp::new();
    let settings = fixture("demo-settings.json");
    let mbox = fixture("demo.mbox");
    let run = app.run(&[
        "--mbox",
        path_str(&mbox),
        "--settings",
        path_str(&settings),
        "--json",
        "scan",
    ]);
    // Had the child seen them, the scan would have gone to the LLM and to Supabase
    // (both refusing connections), and read a Maildir that does not exist.
    run.assert_ok();
    let out = run.json();
    let entries = out["entries"].as_array().expect("entries");
    assert!(!entries.is_empty(), "{out}");
    assert!(entries.iter().all(|e| e["analyzer"] == "rules"), "{out}");
    let listed = app.run(&["entries", "--json"]).json();
    assert_eq!(
        listed["total"], out["entries_created"],
        "saved in SQLite: {listed}"
    );
}
