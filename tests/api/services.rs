//! Postgres and postrust for the Supabase tests: connection details from the
//! environment `./scripts/test.sh` sets up (it starts both and drops everything on
//! exit), JWTs signed with the run's secret, and throwaway migrated databases.
//!
//! Without them (a plain `cargo test`) each group of tests that needs them is skipped
//! with one line on stderr saying so. With `BILLABLE_TEST_SERVICES=1` (set by the
//! script, so CI never skips) a missing service fails the test, naming the script.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use billable::domain::{Settings, Summary, SummaryQuery, TimeEntry, UserId};
use billable::jobs::ScanJob;
use billable::store::supabase::SupabaseStore;
use billable::store::{Batch, EntryFilter, EventState, Saved, ScanRecord, Store, StoreError};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_postgres::{Client, NoTls};

const DATABASE_URL: &str = "BILLABLE_TEST_DATABASE_URL";
const POSTGREST_URL: &str = "BILLABLE_TEST_POSTGREST_URL";
const JWT_SECRET: &str = "BILLABLE_TEST_JWT_SECRET";
/// Set to 1, a missing service fails the tests instead of skipping them.
const STRICT: &str = "BILLABLE_TEST_SERVICES";
const SCRIPT: &str = "./scripts/test.sh";

/// Tests that need the same services, skipped (or failed) together.
pub struct Group {
    name: &'static str,
    /// What must be running, as a sentence's subject and verb.
    running: &'static str,
    vars: &'static [&'static str],
}

/// tests/api/supabase.rs: the store through postrust with signed JWTs.
pub const SUPABASE: Group = Group {
    name: "the Supabase store tests",
    running: "Postgres and postrust are",
    vars: &[DATABASE_URL, POSTGREST_URL, JWT_SECRET],
};

/// tests/api/store_suite.rs run against Supabase.
pub const STORE_SUITE: Group = Group {
    name: "the store suite on Supabase",
    running: "Postgres and postrust are",
    vars: &[DATABASE_URL, POSTGREST_URL, JWT_SECRET],
};

/// tests/api/postgres.rs: the migrations checked in SQL.
pub const POSTGRES: Group = Group {
    name: "the Postgres schema tests",
    running: "Postgres is",
    vars: &[DATABASE_URL],
};

/// tests/api/llama.rs: llama.cpp's llama-server and the SmolLM2 weights, which
/// scripts/llama-server.sh builds and fetches (cached) for the run.
pub const LLAMA: Group = Group {
    name: "the real model server test",
    running: "llama-server and its model are",
    vars: &[LLAMA_SERVER, LLAMA_MODEL],
};

/// tests/api/browser.rs: Debian's Chromium and its chromedriver, which
/// scripts/test-services.sh installs when absent.
pub const BROWSER: Group = Group {
    name: "the browser tests",
    running: "chromium and chromedriver are",
    vars: &[CHROMIUM, CHROMEDRIVER],
};

/// The browser and its WebDriver server.
pub const CHROMIUM: &str = "BILLABLE_TEST_CHROMIUM";
pub const CHROMEDRIVER: &str = "BILLABLE_TEST_CHROMEDRIVER";

/// The llama-server binary and the GGUF weights it loads.
pub const LLAMA_SERVER: &str = "BILLABLE_TEST_LLAMA_SERVER";
pub const LLAMA_MODEL: &str = "BILLABLE_TEST_LLAMA_MODEL";

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Group {
    /// True when this group's services are not running, so the calling test should
    /// return at once. The first test of the group to ask prints the skip line;
    /// under `BILLABLE_TEST_SERVICES=1` it fails instead.
    pub fn skipped(&self) -> bool {
        let missing: Vec<&str> = self
            .vars
            .iter()
            .copied()
            .filter(|v| var(v).is_none())
            .collect();
        if missing.is_empty() {
            return false;
        }
        if var(STRICT).as_deref() == Some("1") {
            panic!(
                "{} need services, but {} not running ({} unset): run {SCRIPT}, which \
                 starts them for the run",
                self.name,
                self.running,
                missing.join(", ")
            );
        }
        static ANNOUNCED: Mutex<BTreeSet<&str>> = Mutex::new(BTreeSet::new());
        let first = ANNOUNCED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(self.name);
        if first {
            // Straight to stderr: the test harness captures `eprintln!` of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "skipping {}: {} not running; run {SCRIPT}",
                self.name,
                self.running
            );
        }
        true
    }
}

/// A variable the script exports; only asked for after the group's `skipped()`.
pub fn required(name: &str) -> String {
    var(name).unwrap_or_else(|| panic!("{name} is not set: run {SCRIPT}"))
}

/// The llama-server binary and the model it loads.
pub fn llama() -> (String, String) {
    (required(LLAMA_SERVER), required(LLAMA_MODEL))
}

/// The run's database, as its owner.
pub fn database_url() -> String {
    required(DATABASE_URL)
}

/// postrust's root, serving the run's database.
pub fn postgrest_url() -> String {
    required(POSTGREST_URL)
}

/// The secret postrust verifies JWTs with.
pub fn jwt_secret() -> String {
    required(JWT_SECRET)
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A token signed with `secret` carrying `claims`.
pub fn sign(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign a JWT")
}

/// A Supabase-shaped access token for `sub`, valid for an hour.
pub fn jwt(sub: &str) -> String {
    sign(
        &json!({
            "sub": sub,
            "role": "authenticated",
            "aud": "authenticated",
            "iat": now(),
            "exp": now() + 3600,
        }),
        &jwt_secret(),
    )
}

/// A new user: a random id and their own signed token.
pub fn signed_in_user() -> UserId {
    let id = uuid::Uuid::new_v4().to_string();
    let token = jwt(&id);
    UserId::new(id).with_token(token)
}

/// A Supabase store over the run's postrust.
pub fn supabase_store() -> SupabaseStore {
    SupabaseStore::new(&postgrest_url(), Some("test-anon-key")).expect("store")
}

/// Runs the store suite against Supabase: each suite user (a random string) becomes
/// a uuid with its own signed JWT, as a signed-in Supabase user would be.
pub struct SignedIn(pub SupabaseStore);

impl SignedIn {
    fn user(&self, user: &UserId) -> UserId {
        let digest = Sha256::digest(user.as_str().as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        let id = uuid::Uuid::from_bytes(bytes).to_string();
        let token = jwt(&id);
        UserId::new(id).with_token(token)
    }
}

#[async_trait]
impl Store for SignedIn {
    async fn settings(&self, user: &UserId) -> Result<Settings, StoreError> {
        self.0.settings(&self.user(user)).await
    }
    async fn save_settings(&self, user: &UserId, settings: &Settings) -> Result<(), StoreError> {
        self.0.save_settings(&self.user(user), settings).await
    }
    async fn processed_ids(
        &self,
        user: &UserId,
        ids: &[String],
        matching: &str,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        self.0.processed_ids(&self.user(user), ids, matching).await
    }
    async fn reviewed_counterparts(
        &self,
        user: &UserId,
    ) -> Result<std::collections::HashMap<String, billable::store::Reviewed>, StoreError> {
        self.0.reviewed_counterparts(&self.user(user)).await
    }
    async fn reviewed_features(
        &self,
        user: &UserId,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Vec<(String, bool)>, StoreError> {
        self.0.reviewed_features(&self.user(user), since).await
    }
    async fn events(
        &self,
        user: &UserId,
        uids: &[String],
    ) -> Result<std::collections::HashMap<String, EventState>, StoreError> {
        self.0.events(&self.user(user), uids).await
    }
    async fn thread_matters(
        &self,
        user: &UserId,
        thread_ids: &[String],
    ) -> Result<std::collections::HashMap<String, (String, String)>, StoreError> {
        self.0.thread_matters(&self.user(user), thread_ids).await
    }
    async fn entry_by_message(
        &self,
        user: &UserId,
        message_id: &str,
    ) -> Result<Option<TimeEntry>, StoreError> {
        self.0.entry_by_message(&self.user(user), message_id).await
    }
    async fn save_batch(&self, user: &UserId, batch: &Batch) -> Result<Saved, StoreError> {
        self.0.save_batch(&self.user(user), batch).await
    }
    async fn entries_by_id(
        &self,
        user: &UserId,
        ids: &[String],
    ) -> Result<Vec<TimeEntry>, StoreError> {
        self.0.entries_by_id(&self.user(user), ids).await
    }
    async fn write_reviewed(
        &self,
        user: &UserId,
        upserts: &[TimeEntry],
        deletes: &[String],
    ) -> Result<(), StoreError> {
        self.0
            .write_reviewed(&self.user(user), upserts, deletes)
            .await
    }
    async fn merged_parts(&self, user: &UserId, id: &str) -> Result<Vec<TimeEntry>, StoreError> {
        self.0.merged_parts(&self.user(user), id).await
    }
    async fn list_entries(
        &self,
        user: &UserId,
        filter: &EntryFilter,
    ) -> Result<(Vec<TimeEntry>, u64), StoreError> {
        self.0.list_entries(&self.user(user), filter).await
    }
    async fn summary(
        &self,
        user: &UserId,
        query: &SummaryQuery,
    ) -> Result<Arc<Summary>, StoreError> {
        self.0.summary(&self.user(user), query).await
    }
    async fn record_scan(&self, user: &UserId, scan: &ScanRecord) -> Result<(), StoreError> {
        self.0.record_scan(&self.user(user), scan).await
    }
    async fn scans(&self, user: &UserId, limit: u32) -> Result<Vec<ScanRecord>, StoreError> {
        self.0.scans(&self.user(user), limit).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.0.ping().await
    }
    async fn enqueue_scan(&self, user: &UserId, args: &Value) -> Result<ScanJob, StoreError> {
        self.0.enqueue_scan(&self.user(user), args).await
    }
    async fn scan_job(&self, user: &UserId, id: &str) -> Result<Option<ScanJob>, StoreError> {
        self.0.scan_job(&self.user(user), id).await
    }
    async fn scan_jobs(&self, user: &UserId, limit: u32) -> Result<Vec<ScanJob>, StoreError> {
        self.0.scan_jobs(&self.user(user), limit).await
    }
    async fn cancel_scan_job(
        &self,
        user: &UserId,
        id: &str,
    ) -> Result<Option<ScanJob>, StoreError> {
        self.0.cancel_scan_job(&self.user(user), id).await
    }
    async fn gmail_grant(
        &self,
        user: &UserId,
    ) -> Result<Option<billable::store::GmailGrant>, StoreError> {
        self.0.gmail_grant(&self.user(user)).await
    }
    async fn save_gmail_grant(&self, user: &UserId, sealed: &str) -> Result<(), StoreError> {
        self.0.save_gmail_grant(&self.user(user), sealed).await
    }
    async fn delete_gmail_grant(&self, user: &UserId) -> Result<bool, StoreError> {
        self.0.delete_gmail_grant(&self.user(user)).await
    }
}

/// A connection as the database owner.
pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Serializes creating databases: roles are cluster-wide, and concurrent compat
/// migrations would race on them.
static CREATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A database of the test's own, migrated with `billable::migrate`; dropped by
/// `drop()` (and by the test script, if a test panics first).
pub struct TempDb {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl TempDb {
    pub async fn new() -> TempDb {
        let run_url = database_url();
        let (server, run_db) = run_url.rsplit_once('/').expect("a database URL");
        let name = format!(
            "{run_db}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        let admin_url = format!("{server}/postgres");
        let url = format!("{server}/{name}");
        let _guard = CREATING.lock().await;
        connect(&admin_url)
            .await
            .batch_execute(&format!("create database \"{name}\""))
            .await
            .expect("create a test database");
        billable::migrate::migrate(&url, billable::migrate::Compat::Auto)
            .await
            .expect("migrate the test database");
        TempDb {
            name,
            url,
            admin_url,
        }
    }

    pub async fn client(&self) -> Client {
        connect(&self.url).await
    }

    pub async fn drop(self) {
        connect(&self.admin_url)
            .await
            .batch_execute(&format!(
                "drop database if exists \"{}\" with (force)",
                self.name
            ))
            .await
            .expect("drop the test database");
    }
}

/// Shared so the store suite's functions can take `&dyn Store`.
pub fn suite_store() -> Arc<SignedIn> {
    Arc::new(SignedIn(supabase_store()))
}
