//! # gateway-transport
//!
//! The MCP wire protocols of the MCP Gateway, framework-free (depends only on
//! `gateway-types`; the HTTP endpoints that use it live in `gateway-http`).
//!
//! - **Upstream connectors** ([`link`]): one [`link::Connector`] trait turning a server
//!   record into a [`link::Link`], a duplex pipe of JSON-RPC messages — [`stdio`] (supervised
//!   process groups), [`http`] (Streamable HTTP), [`sse_client`] (legacy HTTP+SSE) and [`ws`]
//!   (WebSocket).
//! - **Upstream sessions** ([`upstream`]): many clients over one link with JSON-RPC id and
//!   progress-token remapping, routing of server-to-client requests, deadlines, retries of
//!   idempotent list calls, restart with backoff and a crash-loop limit.
//! - **Client sessions** ([`client`]): the message pipeline every client-facing transport
//!   feeds, with the [`client::Guard`] hook for policy and limits, and the bounded SSE event
//!   log ([`events`]) behind `Last-Event-ID` resumption.
//! - **The hub** ([`hub`]): every live session, session limits, idle expiry, shutdown that
//!   leaves no child process behind, and what administrators see and do: session lifecycle
//!   events, notifications pushed to an organization's sessions, running stdio processes.
//!
//! Protocol decisions are explained in this crate's `README.md`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use gateway_transport::link::{Connector, UpstreamSpec};
//! use gateway_transport::stdio::{ProcessTable, StdioConnector};
//! use gateway_transport::upstream::{RestartPolicy, UpstreamSession};
//! use gateway_types::model::ServerProtocol;
//!
//! # async fn demo() {
//! let spec = UpstreamSpec {
//!     server_id: "s1".into(), name: "everything".into(), org_id: "o1".into(),
//!     protocol: ServerProtocol::Stdio, url: None,
//!     command: Some("npx".into()), args: vec!["@modelcontextprotocol/server-everything".into()],
//!     env: vec![], working_dir: None, headers: vec![],
//!     timeout: Duration::from_secs(30), max_retries: 2, max_message_bytes: 4 << 20,
//!     legacy_only: false,
//! };
//! let connector: Arc<dyn Connector> = Arc::new(StdioConnector::new(ProcessTable::new(10)));
//! let upstream = UpstreamSession::new(spec, connector, RestartPolicy::default(), tokio::runtime::Handle::current());
//! let (tx, mut rx) = tokio::sync::mpsc::channel(16);
//! upstream.attach(1, tx.clone());
//! let init = serde_json::from_value(serde_json::json!({
//!     "jsonrpc": "2.0", "id": 1, "method": "initialize",
//!     "params": {"protocolVersion": "2025-11-25", "capabilities": {},
//!                "clientInfo": {"name": "demo", "version": "1"}}
//! })).unwrap();
//! upstream.request(1, init, tx, None, None).await;
//! println!("{:?}", rx.recv().await);
//! # }
//! ```

pub mod client;
pub mod era;
pub mod error;
pub mod events;
pub mod exchange;
pub mod federation;
pub mod http;
pub mod hub;
pub mod link;
pub mod sse;
pub mod sse_client;
pub mod stdio;
pub mod upstream;
pub mod ws;
