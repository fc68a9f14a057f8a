//! # gateway-types
//!
//! The vocabulary every other MCP Gateway crate speaks: identifier newtypes ([`ids`]), the
//! domain model of every stored aggregate ([`model`]), JSON-RPC 2.0 messages that keep
//! unknown fields ([`jsonrpc`]), the public error model ([`error`]), typed and validated
//! configuration ([`config`]), IP ranges ([`net`]) and the storage traits, one per aggregate
//! ([`store`]).
//!
//! It depends on no workspace crate and on no framework, driver or runtime: only serde,
//! serde_json, thiserror, async-trait, uuid, chrono, url and secrecy. Embed it in any Rust
//! service that needs to talk about gateway objects without pulling in the gateway.
//!
//! ```
//! use gateway_types::config::{Environment, GatewayConfig};
//! use gateway_types::error::{ErrorCode, GatewayError};
//! use gateway_types::ids::ServerId;
//!
//! let mut cfg = GatewayConfig::default();
//! cfg.environment = Environment::Production;
//! let problems = cfg.validate().unwrap_err();
//! assert!(problems.0.iter().any(|p| p.key == "auth.jwt_secret"));
//!
//! let err = GatewayError::new(ErrorCode::NotFound, format!("server {} not found", ServerId::new()));
//! assert_eq!(err.code().http_status(), 404);
//! ```

pub mod config;
pub mod error;
pub mod ids;
pub mod jsonrpc;
pub mod model;
pub mod net;
pub mod store;
