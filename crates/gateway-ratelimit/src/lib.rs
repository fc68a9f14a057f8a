//! # gateway-ratelimit
//!
//! Rate limiting for the MCP Gateway: one sliding-window algorithm ([`algorithm`]) with two
//! backends that give the same answers — this process's memory ([`memory`], bounded, idle
//! keys evicted) and Redis ([`redis`], one atomic script per decision, shared by every
//! replica) — the [`limiter`] that falls back from Redis to memory when Redis stops answering
//! (circuit breaker, fail-open or fail-closed), the [`rules`] (levels, matching, precedence)
//! and their per-organization snapshots ([`registry`]), usage counts for `rate_limit_usage`,
//! Prometheus metrics ([`metrics`]), the `RateLimit` / `RateLimit-Policy` header values
//! ([`headers`]) and the proxy-aware client address ([`client_ip`]).
//!
//! It knows nothing of HTTP frameworks or SQL: it depends on `gateway-types` (storage traits,
//! configuration) and talks to Redis itself, because its script is the algorithm.
//!
//! ```
//! # async fn demo() {
//! use std::sync::Arc;
//! use gateway_ratelimit::{Hit, Quota, clock::SystemClock, limiter::Limiter};
//!
//! let limiter = Limiter::memory(10_000, Arc::new(SystemClock));
//! let hit = Hit { key: "user:42".into(), quota: Quota::per_seconds(2, 60) };
//! assert!(limiter.check(std::slice::from_ref(&hit)).await.allowed);
//! assert!(limiter.check(std::slice::from_ref(&hit)).await.allowed);
//! let third = limiter.check(std::slice::from_ref(&hit)).await;
//! assert!(!third.allowed);
//! assert!(third.decisions[0].retry_after_ms > 0);
//! # }
//! ```

pub mod algorithm;
pub mod client_ip;
pub mod clock;
pub mod headers;
pub mod limiter;
pub mod memory;
pub mod metrics;
pub mod redis;
pub mod registry;
pub mod rules;
mod usage;

pub use algorithm::{Decision, Quota};
pub use registry::{Checked, RateLimits, Selection};
pub use rules::{Caller, Rule};

/// One key to decide on, with its quota. Keys are opaque; the registry builds them as
/// `<rule>:<window s>:<partition>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// The counter's key (unique per rule, window and partition).
    pub key: String,
    /// The quota it is decided against.
    pub quota: Quota,
}
