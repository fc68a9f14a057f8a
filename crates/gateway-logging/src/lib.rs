//! # gateway-logging
//!
//! Will own observability records for the MCP Gateway (issue 9): the buffered, batched
//! request log, redaction, log sinks (rotating files, object storage, stdout JSON), the
//! hash-chained audit trail and its verification, hourly/daily rollups and retention.
//!
//! Depends only on `gateway-types`; storage through `gateway_types::store::{AuditStore, LogStore}`.
