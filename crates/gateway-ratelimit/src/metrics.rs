//! Prometheus metrics of the limiter (through the `metrics` facade; the application installs
//! the recorder). Labels are bounded: a rule's scope and name, the decision, the failure mode;
//! never a key, an IP address or a principal.

/// Decisions per rule: `scope`, `rule` (its name), `decision` (`allowed` | `limited`).
pub const DECISIONS_TOTAL: &str = "gateway_ratelimit_decisions_total";
/// Decisions made without Redis while it did not answer, by `mode` (`open` | `closed`).
pub const FALLBACK_TOTAL: &str = "gateway_ratelimit_fallback_total";
/// Redis decisions and probes that failed or timed out.
pub const REDIS_ERRORS_TOTAL: &str = "gateway_ratelimit_redis_errors_total";
/// 1 while decisions go to Redis, 0 while the breaker is open (absent without Redis).
pub const REDIS_AVAILABLE: &str = "gateway_ratelimit_redis_available";
/// In-memory counters evicted because the backend was full.
pub const MEMORY_EVICTIONS_TOTAL: &str = "gateway_ratelimit_memory_evictions_total";

/// Describes the metrics (call once, after installing the recorder).
pub fn describe() {
    metrics::describe_counter!(
        DECISIONS_TOTAL,
        "Rate-limit decisions, by rule scope, rule name and decision (allowed, limited)"
    );
    metrics::describe_counter!(
        FALLBACK_TOTAL,
        "Rate-limit decisions made without Redis while it did not answer, by failure mode"
    );
    metrics::describe_counter!(
        REDIS_ERRORS_TOTAL,
        "Rate-limit calls to Redis that failed or timed out"
    );
    metrics::describe_gauge!(
        REDIS_AVAILABLE,
        "1 while rate-limit decisions go to Redis, 0 while its circuit breaker is open"
    );
    metrics::describe_counter!(
        MEMORY_EVICTIONS_TOTAL,
        "In-memory rate-limit counters evicted because the backend was full"
    );
}

pub(crate) fn fallback(mode: &'static str) {
    metrics::counter!(FALLBACK_TOTAL, "mode" => mode).increment(1);
}

pub(crate) fn redis_error() {
    metrics::counter!(REDIS_ERRORS_TOTAL).increment(1);
}

pub(crate) fn redis_available(up: bool) {
    metrics::gauge!(REDIS_AVAILABLE).set(if up { 1.0 } else { 0.0 });
}

pub(crate) fn memory_evicted(n: usize) {
    metrics::counter!(MEMORY_EVICTIONS_TOTAL).increment(u64::try_from(n).unwrap_or(u64::MAX));
}
