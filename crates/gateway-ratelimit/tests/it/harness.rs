//! The two-backend test macro and what the cases share.

use std::sync::Arc;
use std::time::Duration;

use gateway_ratelimit::clock::{Clock, ManualClock};
use gateway_ratelimit::limiter::{Limiter, RedisSettings, Source, Verdict};
use gateway_ratelimit::redis::RedisBackend;
use gateway_ratelimit::{Hit, Quota};
use gateway_types::config::{RateLimitFailureMode, RedisConfig};
use secrecy::SecretString;

/// A window start far from any edge a test crosses by accident: every case positions itself
/// explicitly relative to it.
pub const T0: u64 = 1_800_000_000_000;

/// Generates, for each case `async fn case(h: &Harness)`, a module with a `memory` test and a
/// `redis` test (which passes without running when `REDIS_URL` is unset).
macro_rules! both {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn memory() {
                super::$case(&$crate::harness::Harness::memory()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn redis() {
                if let Some(h) = $crate::harness::Harness::redis() {
                    super::$case(&h).await;
                }
            }
        }
    )+};
}
pub(crate) use both;

/// The Redis the shared suite runs on, if any.
pub fn redis_url() -> Option<String> {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "REDIS_URL is not set: the Redis half of the rate-limit suite does not run (CI sets it)"
            );
            None
        }
    }
}

/// A key prefix no other test (or run) uses: nothing is ever flushed.
pub fn prefix() -> String {
    format!("mcpgw-test-{}:", uuid::Uuid::new_v4().simple())
}

pub fn redis_config(url: &str) -> RedisConfig {
    RedisConfig {
        url: Some(SecretString::from(url.to_owned())),
        pool_size: 16,
        timeout_ms: 1000,
        ..RedisConfig::default()
    }
}

/// Settings that never fall back in a healthy test: a generous timeout.
pub fn settings(mode: RateLimitFailureMode) -> RedisSettings {
    RedisSettings {
        timeout: Duration::from_secs(2),
        breaker_failures: 3,
        breaker_reprobe: Duration::from_millis(100),
        failure_mode: mode,
    }
}

/// One backend under test, with a clock the test moves.
#[derive(Debug)]
pub struct Harness {
    pub clock: Arc<ManualClock>,
    redis: Option<(String, String)>,
}

impl Harness {
    pub fn memory() -> Self {
        Self {
            clock: Arc::new(ManualClock::at(T0)),
            redis: None,
        }
    }

    pub fn redis() -> Option<Self> {
        let url = redis_url()?;
        Some(Self {
            clock: Arc::new(ManualClock::at(T0)),
            redis: Some((url, prefix())),
        })
    }

    /// The source every decision of this backend must come from (a Redis case that silently
    /// fell back to memory would prove nothing).
    pub fn source(&self) -> Source {
        if self.redis.is_some() {
            Source::Redis
        } else {
            Source::Memory
        }
    }

    /// A limiter on this backend. With Redis, every limiter shares the counters (like
    /// replicas); in memory, each has its own (like separate processes).
    pub fn limiter(&self) -> Limiter {
        let clock: Arc<dyn Clock> = self.clock.clone();
        match &self.redis {
            None => Limiter::memory(10_000, clock),
            Some((url, prefix)) => {
                let backend = RedisBackend::new(&redis_config(url), prefix, Duration::from_secs(2)).unwrap();
                Limiter::redis(backend, settings(RateLimitFailureMode::Open), 10_000, clock, None)
            }
        }
    }

    /// Decides, and checks the decision came from this backend.
    pub async fn check(&self, limiter: &Limiter, hits: &[Hit]) -> Verdict {
        let v = limiter.check(hits).await;
        assert_eq!(
            v.source,
            self.source(),
            "decided by {:?}; is the backend reachable?",
            v.source
        );
        v
    }

    pub fn set(&self, now_ms: u64) {
        self.clock.set(now_ms);
    }
}

pub fn hit(key: &str, limit: u32, window_seconds: u32) -> Hit {
    Hit {
        key: key.to_owned(),
        quota: Quota::per_seconds(limit, window_seconds),
    }
}
