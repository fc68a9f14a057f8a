//! The upstream side's common shape: a [`Link`] is a duplex pipe of JSON-RPC messages to one
//! upstream server, whatever its transport. Connectors ([`crate::stdio`], [`crate::http`],
//! [`crate::sse_client`], [`crate::ws`]) build links; [`crate::upstream::UpstreamSession`]
//! multiplexes clients over one.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
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
    /// Speak only the session-based revisions to this server: no `server/discover` probe
    /// (server metadata `protocol_era: legacy`).
    pub legacy_only: bool,
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

/// A live connection to an upstream. Dropping every clone of `tx` closes it (the connector
/// then stops the process, or ends the HTTP session).
#[derive(Debug)]
pub struct Link {
    /// Messages to the upstream.
    pub tx: LinkTx,
    /// Messages from the upstream, then one `Closed`.
    pub rx: mpsc::Receiver<LinkEvent>,
    /// The process id, for stdio links.
    pub pid: Option<u32>,
    /// Set when the connector can hand messages to their consumer directly, on the task that
    /// read them, instead of through `rx` and a reader task: the session installs itself
    /// here. `Exited` and `Closed` still come through `rx`.
    pub inbox: Option<InboxSlot>,
}

/// Where a link delivers messages directly (see [`Link::inbox`]).
pub type InboxSlot = Arc<OnceLock<Box<dyn Inbox>>>;

/// The consumer of a link's messages.
pub trait Inbox: Send + Sync {
    /// Handles one message; `false` when the consumer is gone.
    fn deliver(&self, message: Message, related: Option<RequestId>) -> BoxFuture<'_, bool>;
}

impl fmt::Debug for dyn Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Inbox")
    }
}

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The sending half of a link: a queue to the connector's task, or the connector itself
/// taking each message at once (no queue, no task in between).
#[derive(Clone, Debug)]
pub struct LinkTx(TxKind);

#[derive(Clone, Debug)]
enum TxKind {
    Channel(mpsc::Sender<Message>),
    Direct(Arc<DirectTx>),
}

/// A connector that takes messages itself (see [`LinkTx::direct`]).
pub trait Outbound: Send + Sync + fmt::Debug {
    /// Takes one message without waiting; gives it back when the link is closed.
    ///
    /// # Errors
    /// The link is closed.
    fn send(&self, message: Message) -> Result<(), Message>;
    /// Every sender is gone: close the link.
    fn close(&self);
}

#[derive(Debug)]
struct DirectTx(Box<dyn Outbound>);

impl Drop for DirectTx {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl LinkTx {
    /// A link fed through a queue.
    #[must_use]
    pub fn channel(tx: mpsc::Sender<Message>) -> Self {
        Self(TxKind::Channel(tx))
    }

    /// A link that takes messages itself; closed when the last clone is dropped.
    #[must_use]
    pub fn direct(outbound: Box<dyn Outbound>) -> Self {
        Self(TxKind::Direct(Arc::new(DirectTx(outbound))))
    }

    /// Sends one message (waits while a queue is full).
    ///
    /// # Errors
    /// The link is closed: the message comes back.
    pub async fn send(&self, message: Message) -> Result<(), Message> {
        match &self.0 {
            TxKind::Channel(tx) => tx.send(message).await.map_err(|e| e.0),
            TxKind::Direct(d) => d.0.send(message),
        }
    }

    /// Sends one message without waiting.
    ///
    /// # Errors
    /// The link is closed or its queue full: the message comes back.
    pub fn try_send(&self, message: Message) -> Result<(), Message> {
        match &self.0 {
            TxKind::Channel(tx) => tx.try_send(message).map_err(|e| match e {
                mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => m,
            }),
            TxKind::Direct(d) => d.0.send(message),
        }
    }
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
