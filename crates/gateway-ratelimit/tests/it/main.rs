//! Integration tests of gateway-ratelimit: one suite of cases run against both backends
//! ([`harness::both`]: in memory always, on the Redis at `REDIS_URL` when it is set — CI sets
//! it; set but unreachable fails), the two backends side by side, rules from the real SQLite
//! store, and Redis outages on a private `redis-server` this suite starts and stops itself.

#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod backends;
mod harness;
mod outage;
mod registry;
