//! # gateway-ratelimit
//!
//! Will own rate limiting for the MCP Gateway (issue 8): one sliding-window algorithm with a
//! Redis backend (one atomic script per decision) and a bounded in-memory backend, rules per
//! IP, principal, organization, route, MCP method and tool, fallback when Redis is down, and
//! client-IP extraction that trusts `X-Forwarded-For`/`Forwarded` only from configured proxies.
//!
//! Depends only on `gateway-types` (and, for its script, Redis itself).
