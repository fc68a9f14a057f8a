//! # gateway-discovery
//!
//! Owns the server registry's background side (issue 7): turning a server record into a live
//! upstream for checks, health checking with status hysteresis and the roll-up of request
//! logs into server counters ([`health`]), and capability discovery with tool-definition
//! pinning ([`catalog`]: what a server offers, fetched over its own transport; the api keeps
//! the results in memory and in `server_catalogs`).
//!
//! Depends on `gateway-types` and `gateway-transport` (its connectors reach the servers); it
//! sees storage only through the `gateway-types` traits and never holds secret keys (the
//! application opens a server's secrets through [`health::UpstreamSpecs`]).

pub mod catalog;
pub mod health;
