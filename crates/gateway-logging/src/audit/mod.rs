//! The tamper-evident audit trail.
//!
//! - [`AuditEvent`], [`Actor`], [`RequestContext`], [`PolicyDenial`] and the [`actions`]
//!   names: what a record says;
//! - [`Auditor`]: records events off the request path (bounded queue, one writer task on the
//!   shared runtime, retries, counted losses);
//! - [`Sha256AuditHasher`]: the canonical hash the stores link the chain with (its module
//!   documents the exact encoding);
//! - [`verify_chain`]: walks an organization's chain and names the first broken row.
//!
//! Each organization has its own chain: record `n` carries the hash of record `n - 1`
//! (`prev_hash`) and its own hash over every stored field and that link. The store serializes
//! appends per organization, so replicas never fork a chain.

mod event;
mod hash;
mod verify;
mod writer;

pub use event::{Actor, AuditEvent, PolicyDenial, RequestContext, actions};
pub use hash::{Sha256AuditHasher, canonical_json};
pub use verify::{BrokenRow, VerifyReport, verify_chain};
pub use writer::{AUDIT_DROPPED_TOTAL, Auditor, AuditorOptions};

/// Describes this module's metrics to the installed recorder (call once, after installing it).
pub fn describe_metrics() {
    metrics::describe_counter!(
        AUDIT_DROPPED_TOTAL,
        "Audit events that were never written, by reason (queue_full, store_unavailable, store_error, closed)"
    );
}
