//! The upstream side's common shape: a [`Link`] is a duplex pipe of JSON-RPC messages to one
//! upstream server, whatever its transport. Connectors ([`crate::stdio`], [`crate::http`],
//! [`crate::sse_client`], [`crate::ws`]) build links; [`crate::upstream::UpstreamSession`]
//! multiplexes clients over one.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gateway_types::jsonrpc::{Message, RequestId};
use gateway_types::model::ServerProtocol;
use tokio::sync::mpsc;

use crate::error::TransportError;

/// Capacity of a link's channels: beyond it, senders wait (backpressure), never grow memory.
pub const LINK_QUEUE: usize = 256;

/// Everything needed to reach one upstream server: built from its record, secrets opened.
#[derive(Clone)]
pub struct UpstreamSpec {
    /// The server's id (for logs and metrics).
    pub server_id: String,
    /// The server's name (for logs).
    pub name: String,
    /// The owning organization (process caps are per organization).
    pub org_id: String,
    /// Transport.
    pub protocol: ServerProtocol,
    /// URL (http, sse, ws).
    pub url: Option<String>,
    /// Command (stdio).
    pub command: Option<String>,
    /// Arguments (stdio).
    pub args: Vec<String>,
    /// Environment variables added to the process (stdio). Secret: never logged.
    pub env: Vec<(String, String)>,
    /// Working directory (stdio).
    pub working_dir: Option<String>,
    /// Extra request headers (credentials). Secret: never logged.
    pub headers: Vec<(String, String)>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries of idempotent list calls after a connection failure.
    pub max_retries: u32,
    /// Largest accepted message, in bytes.
    pub max_message_bytes: usize,
}

impl fmt::Debug for UpstreamSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamSpec")
            .field("server_id", &self.server_id)
            .field("name", &self.name)
            .field("protocol", &self.protocol)
            .field("url", &self.url)
            .field("command", &self.command)
            .field("env", &format_args!("[{} redacted]", self.env.len()))
            .field("headers", &format_args!("[{} redacted]", self.headers.len()))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What a link delivers.
#[derive(Debug)]
pub enum LinkEvent {
    /// A message from the upstream. `related` names the upstream request it belongs to when
    /// the transport says so (a message on a request's own SSE stream).
    Message {
        /// The message.
        message: Message,
        /// The request whose stream carried it.
        related: Option<RequestId>,
    },
    /// The upstream process ended (stdio links, just before `Closed`).
    Exited {
        /// The exit code, when it exited by itself.
        code: Option<i32>,
        /// The signal that ended it, if one did.
        signal: Option<i32>,
    },
    /// The link is gone; no more events follow.
    Closed {
        /// Why, for logs (never shown to clients).
        reason: String,
    },
}

/// A live connection to an upstream. Dropping `tx` closes it (the connector then stops the
/// process, or ends the HTTP session).
#[derive(Debug)]
pub struct Link {
    /// Messages to the upstream.
    pub tx: mpsc::Sender<Message>,
    /// Messages from the upstream, then one `Closed`.
    pub rx: mpsc::Receiver<LinkEvent>,
    /// The process id, for stdio links.
    pub pid: Option<u32>,
}

/// Builds links for one transport.
#[async_trait]
pub trait Connector: Send + Sync + fmt::Debug {
    /// Opens a link to the upstream.
    ///
    /// # Errors
    /// The upstream cannot be reached or started.
    async fn connect(&self, spec: &UpstreamSpec) -> Result<Link, TransportError>;
}

/// One connector per upstream transport.
#[derive(Clone, Debug)]
pub struct Connectors {
    /// stdio processes.
    pub stdio: Arc<dyn Connector>,
    /// Streamable HTTP.
    pub http: Arc<dyn Connector>,
    /// Legacy HTTP+SSE.
    pub sse: Arc<dyn Connector>,
    /// WebSocket.
    pub ws: Arc<dyn Connector>,
}

impl Connectors {
    /// The connector for a protocol.
    #[must_use]
    pub fn for_protocol(&self, protocol: ServerProtocol) -> &Arc<dyn Connector> {
        match protocol {
            ServerProtocol::Stdio => &self.stdio,
            ServerProtocol::Http => &self.http,
            ServerProtocol::Sse => &self.sse,
            ServerProtocol::Ws => &self.ws,
        }
    }
}

/// Sends a message event; `false` when the receiving side is gone.
pub(crate) async fn emit(tx: &mpsc::Sender<LinkEvent>, message: Message, related: Option<RequestId>) -> bool {
    tx.send(LinkEvent::Message { message, related }).await.is_ok()
}
