//! # gateway-logging
//!
//! Observability records of the MCP Gateway (issue 9). Built so far: the hash-chained,
//! tamper-evident [`audit`] trail — the events, the canonical SHA-256 hash, the [`audit::Auditor`]
//! that records events off the request path, and chain verification. Still to come: the
//! buffered request log, redaction, log sinks (rotating files, object storage, stdout JSON),
//! rollups and retention.
//!
//! Depends only on `gateway-types` (storage through `gateway_types::store::AuditStore`, later
//! `LogStore`) and small crates (sha2, hex, tokio, tracing, metrics); it knows no HTTP
//! framework and no database driver.
//!
//! ```no_run
//! # async fn example(store: std::sync::Arc<dyn gateway_types::store::AuditStore>, org: gateway_types::ids::OrgId)
//! # -> Result<(), gateway_logging::LoggingError> {
//! use gateway_logging::audit::{
//!     Actor, AuditEvent, Auditor, AuditorOptions, RequestContext, Sha256AuditHasher, actions, verify_chain,
//! };
//! use serde_json::json;
//!
//! // Once, on the shared runtime:
//! let auditor = Auditor::spawn(store.clone(), &tokio::runtime::Handle::current(), AuditorOptions::default());
//!
//! // In a handler: returns at once, the writer task appends.
//! auditor.record(
//!     org,
//!     AuditEvent::new(actions::USER_UPDATE, Actor::new("user", "0192…"))
//!         .target("user", "0193…")
//!         .before(json!({"role": "user"}))
//!         .after(json!({"role": "admin"}))
//!         .context(&RequestContext { ip: "10.0.0.7".parse().ok(), request_id: Some("req-1".into()) }),
//! );
//!
//! // Later: is the chain intact?
//! auditor.flush().await?;
//! let report = verify_chain(store.as_ref(), org, &Sha256AuditHasher).await?;
//! assert!(report.ok, "first broken row: {:?}", report.first_broken);
//! # Ok(())
//! # }
//! ```

pub mod audit;
mod error;

pub use error::LoggingError;
