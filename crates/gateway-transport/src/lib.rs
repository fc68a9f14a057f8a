//! # gateway-transport
//!
//! Will own the MCP wire protocols (issues 5 and 6): client-facing session machinery for
//! Streamable HTTP, legacy HTTP+SSE and WebSocket; upstream connectors for stdio (supervised
//! process groups), Streamable HTTP, SSE and WebSocket; JSON-RPC id remapping; and bridging
//! between the session-based (2024-11-05 … 2025-11-25) and stateless (2026-07-28) eras.
//!
//! Framework-free: depends only on `gateway-types`.
