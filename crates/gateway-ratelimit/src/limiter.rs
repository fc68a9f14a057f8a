//! The limiter: Redis when configured, this process's memory otherwise, and the fallback
//! between them.
//!
//! With Redis, every decision is one script call bounded by `redis_timeout`. A failure or a
//! timeout counts against a circuit breaker; after `breaker_failures` in a row it opens and
//! decisions stop asking Redis at all (no added latency), while a background probe (`PING`,
//! on the runtime the limiter was given) runs at most every `breaker_reprobe`; the first
//! answer closes the breaker and decisions return to Redis. Meanwhile decisions follow the
//! failure mode: **open** decides on the in-memory counters (each replica then enforces the
//! limits on its own), **closed** refuses. Both are logged (a warning when the breaker opens,
//! an info line when Redis is back) and counted (`gateway_ratelimit_fallback_total`).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use gateway_types::config::RateLimitFailureMode;

use crate::Hit;
use crate::algorithm::Decision;
use crate::clock::Clock;
use crate::memory::MemoryBackend;
use crate::metrics;
use crate::redis::RedisBackend;

/// Which backend answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The in-memory counters (no Redis configured).
    Memory,
    /// Redis.
    Redis,
    /// The in-memory counters, because Redis did not answer (fail-open).
    Fallback,
    /// Nobody: Redis did not answer and the failure mode is closed; the request is refused.
    Unavailable,
}

impl Source {
    /// The stable text form (`memory`, `redis`, `fallback`, `unavailable`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis => "redis",
            Self::Fallback => "fallback",
            Self::Unavailable => "unavailable",
        }
    }
}

/// The answer to one decision over several keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Admitted (and counted on every key) or refused (counted nowhere).
    pub allowed: bool,
    /// One per key, in order; empty when [`Source::Unavailable`].
    pub decisions: Vec<Decision>,
    /// Who decided.
    pub source: Source,
}

/// How the limiter talks to Redis.
#[derive(Clone, Copy, Debug)]
pub struct RedisSettings {
    /// Longest wait for one decision.
    pub timeout: Duration,
    /// Consecutive failures that open the breaker.
    pub breaker_failures: u32,
    /// Probe interval while the breaker is open.
    pub breaker_reprobe: Duration,
    /// What decisions do while Redis does not answer.
    pub failure_mode: RateLimitFailureMode,
}

struct RedisLink {
    backend: Arc<RedisBackend>,
    settings: RedisSettings,
    breaker: Arc<Breaker>,
    runtime: Option<tokio::runtime::Handle>,
}

/// Sliding-window decisions on Redis or in memory (see the module docs).
pub struct Limiter {
    memory: MemoryBackend,
    redis: Option<RedisLink>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("redis", &self.redis.as_ref().map(|r| &r.backend))
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// A limiter on this process's memory only (at most about `max_keys` counters).
    #[must_use]
    pub fn memory(max_keys: usize, clock: Arc<dyn Clock>) -> Self {
        Self {
            memory: MemoryBackend::new(max_keys),
            redis: None,
            clock,
        }
    }

    /// A limiter on Redis, with the in-memory counters for the fallback. Probes run on
    /// `runtime` (the current runtime when `None`).
    #[must_use]
    pub fn redis(
        backend: RedisBackend,
        settings: RedisSettings,
        max_keys: usize,
        clock: Arc<dyn Clock>,
        runtime: Option<tokio::runtime::Handle>,
    ) -> Self {
        metrics::redis_available(true);
        Self {
            memory: MemoryBackend::new(max_keys),
            redis: Some(RedisLink {
                backend: Arc::new(backend),
                breaker: Arc::new(Breaker::new(settings.breaker_failures, settings.breaker_reprobe)),
                settings,
                runtime,
            }),
            clock,
        }
    }

    /// The clock decisions are made with.
    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Whether Redis is configured.
    #[must_use]
    pub fn has_redis(&self) -> bool {
        self.redis.is_some()
    }

    /// Whether decisions currently go to Redis (configured and the breaker closed).
    #[must_use]
    pub fn redis_in_use(&self) -> bool {
        self.redis.as_ref().is_some_and(|r| r.breaker.is_closed())
    }

    /// The in-memory counters (the whole limiter without Redis, the fallback with it).
    #[must_use]
    pub fn memory_backend(&self) -> &MemoryBackend {
        &self.memory
    }

    /// Decides `hits` (distinct keys) now: admitted only if every key admits, and then counted
    /// on every key. An empty `hits` is admitted without any work.
    pub async fn check(&self, hits: &[Hit]) -> Verdict {
        if hits.is_empty() {
            return Verdict {
                allowed: true,
                decisions: Vec::new(),
                source: Source::Memory,
            };
        }
        let now = self.clock.now_ms();
        let Some(redis) = &self.redis else {
            let (allowed, decisions) = self.memory.check(hits, now);
            return Verdict {
                allowed,
                decisions,
                source: Source::Memory,
            };
        };
        if redis.breaker.is_closed() {
            let answer = tokio::time::timeout(redis.settings.timeout, redis.backend.check(hits, now)).await;
            match answer {
                Ok(Ok((allowed, decisions))) => {
                    redis.breaker.success();
                    return Verdict {
                        allowed,
                        decisions,
                        source: Source::Redis,
                    };
                }
                Ok(Err(err)) => redis.failed(&err),
                Err(_) => redis.failed(&TimedOut(redis.settings.timeout)),
            }
        } else {
            redis.probe_if_due();
        }
        match redis.settings.failure_mode {
            RateLimitFailureMode::Open => {
                metrics::fallback("open");
                let (allowed, decisions) = self.memory.check(hits, now);
                Verdict {
                    allowed,
                    decisions,
                    source: Source::Fallback,
                }
            }
            RateLimitFailureMode::Closed => {
                metrics::fallback("closed");
                Verdict {
                    allowed: false,
                    decisions: Vec::new(),
                    source: Source::Unavailable,
                }
            }
        }
    }

    /// Drops in-memory counters whose windows are over; returns how many.
    pub fn sweep(&self) -> usize {
        self.memory.sweep(self.clock.now_ms())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("Redis did not answer within {0:?}")]
struct TimedOut(Duration);

impl RedisLink {
    fn failed(&self, err: &(dyn std::error::Error + 'static)) {
        metrics::redis_error();
        let chain = gateway_types::error::error_chain(err);
        if self.breaker.failure() {
            metrics::redis_available(false);
            tracing::warn!(
                error = %chain,
                failure_mode = ?self.settings.failure_mode,
                reprobe_ms = u64::try_from(self.settings.breaker_reprobe.as_millis()).unwrap_or(u64::MAX),
                "Redis stopped answering the rate limiter; deciding without it until it answers again"
            );
        } else {
            tracing::warn!(error = %chain, "a rate-limit decision on Redis failed; decided without it");
        }
    }

    /// Starts a background probe when the breaker is open and the last probe is old enough.
    fn probe_if_due(&self) {
        if !self.breaker.claim_probe() {
            return;
        }
        let runtime = self
            .runtime
            .clone()
            .or_else(|| tokio::runtime::Handle::try_current().ok());
        let Some(runtime) = runtime else {
            self.breaker.probe_done(false);
            return;
        };
        let backend = Arc::clone(&self.backend);
        let breaker = Arc::clone(&self.breaker);
        let timeout = self.settings.timeout;
        runtime.spawn(async move {
            let ok = matches!(tokio::time::timeout(timeout, backend.ping()).await, Ok(Ok(())));
            breaker.probe_done(ok);
            if ok {
                metrics::redis_available(true);
                tracing::info!("Redis answers the rate limiter again; decisions use it");
            }
        });
    }
}

/// Consecutive-failure circuit breaker with a probe interval.
#[derive(Debug)]
struct Breaker {
    threshold: u32,
    reprobe: Duration,
    failures: AtomicU32,
    open: AtomicBool,
    probing: AtomicBool,
    last_probe: Mutex<Option<Instant>>,
}

impl Breaker {
    fn new(threshold: u32, reprobe: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            reprobe,
            failures: AtomicU32::new(0),
            open: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            last_probe: Mutex::new(None),
        }
    }

    fn is_closed(&self) -> bool {
        !self.open.load(Ordering::Acquire)
    }

    fn success(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }

    /// Counts a failure; true when this one opened the breaker.
    fn failure(&self) -> bool {
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if n >= self.threshold && !self.open.swap(true, Ordering::AcqRel) {
            *self.last_probe.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
            return true;
        }
        false
    }

    /// Whether the caller may start a probe now (one at a time, one per interval).
    fn claim_probe(&self) -> bool {
        {
            let last = self.last_probe.lock().unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < self.reprobe) {
                return false;
            }
        }
        if self.probing.swap(true, Ordering::AcqRel) {
            return false;
        }
        *self.last_probe.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        true
    }

    fn probe_done(&self, ok: bool) {
        if ok {
            self.failures.store(0, Ordering::Relaxed);
            self.open.store(false, Ordering::Release);
        }
        self.probing.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_the_threshold_and_probes_once_per_interval() {
        let b = Breaker::new(3, Duration::from_secs(3600));
        assert!(!b.failure());
        b.success();
        assert!(!b.failure());
        assert!(!b.failure());
        assert!(b.is_closed(), "successes reset the count");
        assert!(b.failure(), "the third in a row opens it");
        assert!(!b.is_closed());
        assert!(!b.failure(), "already open");
        assert!(!b.claim_probe(), "not before the interval");
        *b.last_probe.lock().unwrap() = None;
        assert!(b.claim_probe());
        *b.last_probe.lock().unwrap() = None;
        assert!(!b.claim_probe(), "one probe at a time");
        b.probe_done(false);
        assert!(!b.is_closed());
        *b.last_probe.lock().unwrap() = None;
        assert!(b.claim_probe());
        b.probe_done(true);
        assert!(b.is_closed());
    }
}
