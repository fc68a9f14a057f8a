//! # gateway-e2e
//!
//! End-to-end test support for the MCP Gateway: [`TestApp`] starts the real application
//! in-process on `127.0.0.1:0` through the same entry points as `gateway-api` (load the
//! configuration, migrate and connect a throw-away store, `gateway_http::serve`), and
//! [`process`] runs the built binaries for multi-process tests. [`TcpProxy`] sits between
//! the gateway and a dependency so a test can cut the connection for real.
//!
//! It depends on the workspace crates as a client would, plus `gateway-store`'s
//! `test-support` feature; nothing depends on it. The tests themselves live in `it/`.
//!
//! ```no_run
//! # async fn example() {
//! let app = gateway_e2e::TestApp::spawn().await;
//! let res = app.get("/health").await;
//! assert_eq!(res.status(), 200);
//! # }
//! ```

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "a test harness: failing loudly with a message is its job"
)]

mod app;
mod fixtures;
pub mod process;
mod proxy;

pub use app::{TestApp, TestAppBuilder};
pub use fixtures::PASSWORD;
pub use proxy::TcpProxy;
