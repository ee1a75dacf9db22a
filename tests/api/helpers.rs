//! Shared test scaffolding: a throwaway database per test, the demo fixtures, and a
//! way to run the real `billable` binary or call the tool registry in process.

use std::path::{Path, PathBuf};
use std::process::Output;
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

    /// Runs the binary with `--db` set; other arguments as given.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_billable"))
            .arg("--db")
            .arg(&self.db)
            .args(args)
            .env_remove("BILLABLE_MBOX")
            .env_remove("BILLABLE_MAILDIR")
            .env_remove("BILLABLE_EML_DIR")
            // The LLM is only used where a test points it at its fake.
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
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
        let store = SqliteStore::open(&self.db).expect("open store");
        Context::new(source, Arc::new(RulesAnalyzer), Arc::new(store))
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

/// Applies the demo settings (`tests/fixtures/demo-settings.json`), which must succeed.
pub async fn configure_demo(ctx: &Context) {
    call(
        ctx,
        "configure_time_tracking",
        serde_json::json!({"settings": demo_settings()}),
    )
    .await
    .expect("configure the demo settings");
}

/// Calls a tool in process as the local user.
/// A whole scan with default arguments, which must not fail.
pub async fn scan(ctx: &Context) -> Value {
    call(ctx, "scan_billable_time", serde_json::json!({}))
        .await
        .expect("scan")
}

pub async fn call(ctx: &Context, name: &str, args: Value) -> billable::Result<Value> {
    tools::call(ctx, &UserId::local(), name, args, &NoProgress).await
}
