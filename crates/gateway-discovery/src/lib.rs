//! # gateway-discovery
//!
//! Will own the server registry (issue 7): turning a server record into a live upstream,
//! the in-memory capability catalog (tools, resources, prompts) refreshed on list-changed
//! notifications and on a schedule, namespace federation, and health checking.
//!
//! Depends on `gateway-types`, and on `gateway-transport` and `gateway-virtual` once they
//! provide upstreams.
