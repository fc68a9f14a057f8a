//! The storage contract suite: every case runs on SQLite, and on PostgreSQL when
//! `DATABASE_URL` is set (set but unreachable fails). Plus schema and migration checks.

// The cases are plain `async fn`s called from the `#[tokio::test]` functions that
// `harness::contract!` generates, so clippy's test exemptions do not reach them.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failed step must fail the test"
)]

mod harness;

mod api_keys;
mod audit;
mod backends;
mod catalogs;
mod change_log;
mod health;
mod logs;
mod namespaces;
mod organizations;
mod policies;
mod rate_limits;
mod redis;
mod refresh_tokens;
mod registry;
mod schema;
mod servers;
mod sessions;
mod users;
mod virtual_servers;
