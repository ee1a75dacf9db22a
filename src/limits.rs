//! Rate limits that hold across every process of a deployment. Each limit is a GCRA
//! bucket (governor's algorithm): in one process governor keeps it; with
//! [`SharedRates`] (Postgres, sql/0012_rate_limits.sql) every `serve` and `worker`
//! charges the same bucket on the database's clock, so N servers and M workers
//! together stay within one user's request rate and Gmail quota and the LLM
//! account's requests and tokens per minute.
//!
//! Should the shared buckets be unreachable, each process falls back to its own
//! bucket (and says so in the log): the limits then hold per process, as with one.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::migrate::{connect, describe};
use crate::store::StoreError;

/// A rate: `per_second` on average, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

impl Rate {
    /// `per_minute` with bursts of `burst`; `None` when `per_minute` is 0.
    pub fn per_minute(per_minute: u32, burst: u32) -> Option<Self> {
        (per_minute > 0).then(|| Rate {
            per_second: f64::from(per_minute) / 60.0,
            burst: burst.max(1),
        })
    }

    /// `per_second` with bursts of `burst`; `None` when `per_second` is 0.
    pub fn per_second(per_second: u32, burst: u32) -> Option<Self> {
        (per_second > 0).then(|| Rate {
            per_second: f64::from(per_second),
            burst: burst.max(1),
        })
    }

    fn quota(self) -> Quota {
        let period = Duration::from_secs_f64(1.0 / self.per_second.max(1e-9));
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst)
    }

    /// `cost` clamped to what one bucket can hold.
    fn clamp(self, cost: u32) -> u32 {
        cost.clamp(1, self.burst.max(1))
    }
}

/// Buckets every process of a deployment charges.
#[async_trait]
pub trait SharedRates: Send + Sync {
    /// Charges `cost` (at most `rate.burst`) to bucket `key`. With `reserve` it is
    /// always charged and the answer is how long to wait before going ahead; without,
    /// `ZERO` means charged, and anything else is how long until it could be
    /// (nothing charged).
    async fn take(
        &self,
        key: &str,
        cost: u32,
        rate: Rate,
        reserve: bool,
    ) -> Result<Duration, StoreError>;
}

/// The buckets in Postgres (`public.take_rate`), over `DATABASE_URL` as the
/// `billable_worker` role. One connection, shared: concurrent calls are pipelined.
pub struct PgRates {
    url: String,
    client: Mutex<Option<Arc<Client>>>,
}

impl PgRates {
    pub fn new(database_url: impl Into<String>) -> Self {
        PgRates {
            url: database_url.into(),
            client: Mutex::new(None),
        }
    }

    async fn client(&self) -> Result<Arc<Client>, StoreError> {
        let mut guard = self.client.lock().await;
        match guard.as_ref() {
            Some(client) if !client.is_closed() => Ok(client.clone()),
            _ => {
                let client = Arc::new(connect(&self.url).await?);
                *guard = Some(client.clone());
                Ok(client)
            }
        }
    }
}

#[async_trait]
impl SharedRates for PgRates {
    async fn take(
        &self,
        key: &str,
        cost: u32,
        rate: Rate,
        reserve: bool,
    ) -> Result<Duration, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "select public.take_rate($1::text, $2::float8, $3::float8, $4::float8, $5::bool)",
                &[
                    &key,
                    &f64::from(cost),
                    &rate.per_second,
                    &f64::from(rate.burst),
                    &reserve,
                ],
            )
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "the shared rate limits could not be charged: {}. Check DATABASE_URL \
                     (the billable_worker role) and that `billable migrate` ran",
                    describe(&e)
                ))
            })?;
        let secs: f64 = row.get(0);
        Ok(Duration::from_secs_f64(secs.clamp(0.0, 86_400.0)))
    }
}

/// Says, at most once a minute, that a process fell back to its own buckets.
fn fell_back(e: &StoreError) {
    static LAST: AtomicI64 = AtomicI64::new(i64::MIN);
    let now = chrono::Utc::now().timestamp();
    let last = LAST.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= 60
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(error = %e, "rate limits hold per process until the shared ones answer again");
    }
}

/// One limit: shared when a deployment has [`SharedRates`], else this process's.
pub struct Limit {
    key: String,
    rate: Rate,
    local: DefaultDirectRateLimiter,
    shared: Option<Arc<dyn SharedRates>>,
}

impl Limit {
    /// A limit named `key` (the shared bucket's name) at `rate`.
    pub fn new(key: impl Into<String>, rate: Rate, shared: Option<Arc<dyn SharedRates>>) -> Self {
        Limit {
            key: key.into(),
            rate,
            local: RateLimiter::direct(rate.quota()),
            shared,
        }
    }

    /// The same limit, charged to `shared` when given.
    pub fn with_shared(mut self, shared: Option<Arc<dyn SharedRates>>) -> Self {
        self.shared = shared;
        self
    }

    /// Waits until `cost` (clamped to the burst) may be spent, and spends it.
    pub async fn until_ready(&self, cost: u32) {
        let cost = self.rate.clamp(cost);
        if let Some(shared) = &self.shared {
            match shared.take(&self.key, cost, self.rate, true).await {
                Ok(wait) => {
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                    return;
                }
                Err(e) => fell_back(&e),
            }
        }
        let n = NonZeroU32::new(cost).unwrap_or(NonZeroU32::MIN);
        // `n` never exceeds the burst, so the capacity always suffices.
        let _ = self.local.until_n_ready(n).await;
    }
}

/// The same limit for every key (a user's requests): shared buckets `prefix:key`
/// when the deployment has them, else one governor map in this process.
pub struct KeyedLimit {
    prefix: &'static str,
    rate: Rate,
    local: DefaultKeyedRateLimiter<String>,
    shared: Option<Arc<dyn SharedRates>>,
    checks: std::sync::atomic::AtomicU64,
}

impl KeyedLimit {
    pub fn new(prefix: &'static str, rate: Rate, shared: Option<Arc<dyn SharedRates>>) -> Self {
        KeyedLimit {
            prefix,
            rate,
            local: RateLimiter::keyed(rate.quota()),
            shared,
            checks: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Spends one for `key` now, or `Err(how long until it could)`.
    pub async fn check(&self, key: &str) -> Result<(), Duration> {
        if let Some(shared) = &self.shared {
            match shared
                .take(&format!("{}:{key}", self.prefix), 1, self.rate, false)
                .await
            {
                Ok(wait) if wait.is_zero() => return Ok(()),
                Ok(wait) => return Err(wait),
                Err(e) => fell_back(&e),
            }
        }
        // Forget idle keys now and then so memory follows active users only.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.local.retain_recent();
        }
        self.local
            .check_key(&key.to_owned())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Buckets that are never reachable.
    struct Down;

    #[async_trait]
    impl SharedRates for Down {
        async fn take(&self, _: &str, _: u32, _: Rate, _: bool) -> Result<Duration, StoreError> {
            Err(StoreError::Unavailable("down".to_owned()))
        }
    }

    #[tokio::test]
    async fn unreachable_shared_buckets_leave_the_limit_to_this_process() {
        let rate = Rate::per_second(1, 2).unwrap();
        let limit = KeyedLimit::new("requests", rate, Some(Arc::new(Down)));
        assert!(limit.check("a").await.is_ok());
        assert!(limit.check("a").await.is_ok());
        let wait = limit.check("a").await.unwrap_err();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert!(limit.check("b").await.is_ok());
    }

    #[tokio::test]
    async fn a_limit_waits_its_turn_and_never_asks_more_than_its_burst() {
        let limit = Limit::new("gmail:a", Rate::per_second(10, 5).unwrap(), None);
        let start = std::time::Instant::now();
        // The burst, then 10 a second: a cost above the burst counts as the burst.
        limit.until_ready(50).await;
        limit.until_ready(5).await;
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(450) && waited <= Duration::from_millis(600),
            "{waited:?}"
        );
    }

    #[test]
    fn a_rate_of_zero_is_no_limit() {
        assert_eq!(Rate::per_minute(0, 10), None);
        assert_eq!(Rate::per_second(0, 10), None);
        assert_eq!(
            Rate::per_minute(120, 0),
            Some(Rate {
                per_second: 2.0,
                burst: 1
            })
        );
    }
}
