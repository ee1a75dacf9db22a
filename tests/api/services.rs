//! Postgres and postrust for the Supabase tests: connection details from the
//! environment `./scripts/test.sh` sets up (it starts both and drops everything on
//! exit), JWTs signed with the run's secret, and throwaway migrated databases.
//!
//! A test that needs these services fails, naming the script, when they are missing:
//! a skipped test would hide a store nobody checked.

use std::sync::Arc;

use async_trait::async_trait;
use billable::domain::{Settings, Summary, SummaryQuery, TimeEntry, UserId};
use billable::store::supabase::SupabaseStore;
use billable::store::{Batch, EntryFilter, EventState, Saved, ScanRecord, Store, StoreError};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_postgres::{Client, NoTls};

fn required(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!(
            "{name} is not set. The Supabase tests need Postgres and postrust: run \
             ./scripts/test.sh, which starts both for the run"
        ),
    }
}

/// The run's database, as its owner.
pub fn database_url() -> String {
    required("BILLABLE_TEST_DATABASE_URL")
}

/// postrust's root, serving the run's database.
pub fn postgrest_url() -> String {
    required("BILLABLE_TEST_POSTGREST_URL")
}

/// The secret postrust verifies JWTs with.
pub fn jwt_secret() -> String {
    required("BILLABLE_TEST_JWT_SECRET")
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
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        self.0.processed_ids(&self.user(user), ids).await
    }
    async fn events(
        &self,
        user: &UserId,
        uids: &[String],
    ) -> Result<std::collections::HashMap<String, EventState>, StoreError> {
        self.0.events(&self.user(user), uids).await
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
