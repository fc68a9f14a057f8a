//! # gateway-http
//!
//! The MCP Gateway's HTTP application on actix-web: routes, middleware (request ids, security
//! headers, CORS, body limits, request metrics and logs, rate limits: [`ratelimit`]), the
//! client address behind proxies ([`client_ip`]), the single mapping from domain
//! errors to JSON error envelopes ([`error`]), the audit trail's request glue ([`audit`]), Prometheus metrics ([`metrics`]), and the
//! configuration loader ([`settings`]) and log setup ([`telemetry`]) the binaries share.
//!
//! It is the only crate that knows an HTTP framework; it composes the domain crates and sees
//! storage only through the `gateway-types` traits (never `gateway-store` types), so the same
//! app runs on SQLite or PostgreSQL. Binaries build the stores and call [`serve`] with a bound
//! listener and a shutdown future, which lets tests start the real app on port 0.
//!
//! ```no_run
//! # async fn run(stores: gateway_types::store::Stores) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use gateway_http::{AppState, serve, settings, shutdown};
//!
//! let config = Arc::new(settings::load(settings::LoadOptions::from_process(None))?);
//! let stop = shutdown::signal()?;
//! let state = AppState::new(config.clone(), stores)?;
//! let listener = std::net::TcpListener::bind((config.server.host.as_str(), config.server.port))?;
//! serve(listener, state, stop).await?;
//! # Ok(())
//! # }
//! ```

pub mod audit;
pub mod authn;
pub mod catalog;
pub mod changes;
pub mod client_ip;
pub mod declarative;
pub mod error;
pub mod logwriter;
mod mcp;
pub mod metrics;
mod middleware;
pub mod ratelimit;
pub mod request_id;
pub(crate) mod request_log;
mod routes;
mod server;
pub(crate) mod servers_cache;
pub mod settings;
pub mod shutdown;
pub mod state;
pub mod telemetry;
pub mod traces;
pub mod upstreams;

pub use error::ApiError;
pub use server::serve;
pub use state::AppState;
