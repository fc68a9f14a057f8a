//! `mcp-load`: the MCP load generator of `just bench` (bench-only, never shipped).
//!
//! Virtual clients speak MCP Streamable HTTP over keep-alive HTTP/1.1 connections on one
//! single-threaded runtime (leaving the other core to the system under test), check every answer,
//! and record latencies in an HDR histogram; a sampler reads the CPU time and memory of the
//! gateway's and the upstream's process trees from `/proc`. `summarize` turns paired runs into
//! ratios. It depends on no workspace crate (only its tests use `mcp-echo`).

pub mod client;
pub mod report;
pub mod sampler;
pub mod scenario;
pub mod sse;
pub mod summarize;
