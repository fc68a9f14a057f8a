//! End-to-end tests: one binary, a module per feature.

#![expect(
    clippy::unwrap_used,
    reason = "helpers shared by the tests fail the test loudly, like the tests themselves"
)]

mod audit;
mod auth;
mod binaries;
mod catalog;
mod changes;
mod cors;
mod declarative;
mod eras;
mod errors;
mod federation;
mod health;
mod health_worker;
mod mcp;
mod mcp_admin;
mod metrics;
mod namespaces;
mod policies;
mod rate_limits;
mod request_log;
mod servers;
