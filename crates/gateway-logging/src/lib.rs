//! # gateway-logging
//!
//! Observability records of the MCP Gateway (issue 9):
//! - the hash-chained, tamper-evident [`audit`] trail — the events, the canonical SHA-256
//!   hash, the [`audit::Auditor`] that records events off the request path, and chain
//!   verification;
//! - the [`request_log`]: one record per REST request and MCP exchange, queued without
//!   blocking and written in batches by [`request_log::RequestLogger`];
//! - [`redact`]ion of headers, secret-looking keys and configured JSON paths before any body
//!   is written;
//! - log [`sink`]s for full bodies (rotating files, object storage behind the `object-store`
//!   feature, stdout JSON);
//! - [`rollup`]: hourly and daily aggregates and retention, run by the worker.
//!
//! Depends only on `gateway-types` (storage through `gateway_types::store::AuditStore` and
//! `LogStore`) and small crates (sha2, hex, tokio, tracing, metrics; `object_store` when the
//! feature is on); it knows no HTTP framework and no database driver.
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
pub mod redact;
pub mod request_log;
pub mod rollup;
pub mod sink;

pub use error::LoggingError;
