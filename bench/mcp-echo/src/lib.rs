//! `mcp-echo`: a tiny, fast MCP server for benchmarks and end-to-end tests (bench-only, never
//! shipped).
//!
//! One tool, `echo` (`{text: string}` → one text content block with that text), served over
//! Streamable HTTP on `/mcp` (2025-11-25 sessions; with `--stateless` also the 2026-07-28
//! stateless mode and `server/discover`) or over stdio. It must stay much faster than any gateway
//! in front of it, so it answers with hand-written bytes and uses hyper directly. It depends on no
//! workspace crate and nothing may depend on it except tests and `mcp-load`'s tests.
//! See `README.md` beside this file for the protocol decisions.

use std::time::Duration;

pub mod http;
pub mod protocol;
pub mod stdio;

/// Behaviour switches shared by both transports.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Accept requests without a session as 2026-07-28 stateless requests, and answer
    /// `server/discover`.
    pub stateless: bool,
    /// Answer `tools/call` as an SSE stream (on stdio: a sequence of lines) carrying this many
    /// `notifications/progress` before the result, when the request has a progress token.
    pub sse_progress: Option<u32>,
    /// Simulated work per `tools/call` (an async sleep; tokio's timer has millisecond resolution).
    pub delay: Duration,
}
