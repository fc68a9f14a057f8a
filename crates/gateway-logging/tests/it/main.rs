//! Integration tests of gateway-logging, through the real stores: every case runs on SQLite,
//! and on PostgreSQL when `DATABASE_URL` is set.

#![expect(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod audit;
mod request_log;
