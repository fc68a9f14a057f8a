//! A client's MCP session at the gateway: what every client-facing transport (Streamable
//! HTTP, legacy SSE, WebSocket, plain JSON-RPC) hands its messages to.
//!
//! The session runs the message pipeline: the gateway answers `ping` itself, asks the
//! [`Guard`] about every request (policy first, then per-method and per-tool limits) before
//! anything goes upstream, filters list results through it, and forwards the rest to its
//! [`UpstreamSession`].

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use gateway_types::ids::{ApiKeyId, NamespaceId, OrgId, ServerId, SessionId, UserId};
use gateway_types::jsonrpc::{ErrorObject, Message, Request, RequestId, Response, Version};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::error::error_message;
use crate::events::EventLog;
use crate::exchange::{Completion, ExchangeObserver};
use crate::upstream::{ClientKey, Reply, ResultFilter, UpstreamSession};

/// An admission that needs to wait (a rate limit decided on Redis); `Err` is the error the
/// client gets.
pub type Admission = Pin<Box<dyn Future<Output = Result<(), ErrorObject>> + Send + 'static>>;

/// The pipeline's hooks, implemented by the HTTP layer with the policy engine and limiters
/// (and, as an [`ExchangeObserver`], the request log and metrics of completed exchanges).
pub trait Guard: ResultFilter + ExchangeObserver {
    /// Decides whether a request may go upstream; `Err` is the error the client gets.
    ///
    /// # Errors
    /// The request is denied (policy).
    fn check(&self, request: &Request) -> Result<(), ErrorObject>;

    /// After [`Guard::check`] allowed it: an admission to await before the request goes
    /// upstream (rate limits), or `None` when nothing needs deciding, so a request without
    /// limits costs no allocation and no await.
    fn admit(&self, request: &Request) -> Option<Admission> {
        let _ = request;
        None
    }
}

/// A guard that allows everything.
#[derive(Debug, Default)]
pub struct AllowAll;

impl ResultFilter for AllowAll {
    fn filter(&self, _method: &str, _result: &mut Value) {}
}

impl ExchangeObserver for AllowAll {}

impl Guard for AllowAll {
    fn check(&self, _request: &Request) -> Result<(), ErrorObject> {
        Ok(())
    }
}

/// Who owns a session: only the same principal may use it (anyone else gets "not found").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Organization.
    pub org_id: OrgId,
    /// A stable key of the principal (user, key or app id).
    pub principal: String,
    /// The user, if any.
    pub user_id: Option<UserId>,
    /// The API key, if any.
    pub api_key_id: Option<ApiKeyId>,
    /// The namespace the session runs in.
    pub namespace_id: Option<NamespaceId>,
}

/// Where a session came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientTransport {
    /// Streamable HTTP.
    StreamableHttp,
    /// Legacy HTTP+SSE.
    Sse,
    /// WebSocket.
    WebSocket,
    /// Plain JSON-RPC.
    Rpc,
}

impl ClientTransport {
    /// The stable text form (`streamable_http`, `sse`, `websocket`, `rpc`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::StreamableHttp => "streamable_http",
            Self::Sse => "sse",
            Self::WebSocket => "websocket",
            Self::Rpc => "rpc",
        }
    }
}

/// One client session.
pub struct ClientSession {
    id: SessionId,
    key: ClientKey,
    owner: Owner,
    server_id: ServerId,
    transport: ClientTransport,
    upstream: UpstreamSession,
    owns_upstream: bool,
    federated: bool,
    guard: Arc<dyn Guard>,
    outbound: Reply,
    outbound_rx: Mutex<Option<mpsc::Receiver<Message>>>,
    events: EventLog,
    created: Instant,
    last_activity_ms: AtomicU64,
    streaming: AtomicBool,
    open_streams: std::sync::atomic::AtomicUsize,
    closed: AtomicBool,
    closed_signal: tokio::sync::watch::Sender<bool>,
    protocol_version: Mutex<Option<Arc<str>>>,
    client_info: Mutex<Option<Value>>,
}

impl std::fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSession")
            .field("id", &self.id)
            .field("server_id", &self.server_id)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

/// Sizes of a session's buffers.
#[derive(Clone, Copy, Debug)]
pub struct SessionBuffers {
    /// Server-initiated messages waiting for the client.
    pub outbound: usize,
    /// SSE events kept for resumption.
    pub events: usize,
    /// Bytes of SSE events kept for resumption.
    pub event_bytes: usize,
}

static CLIENT_KEYS: AtomicU64 = AtomicU64::new(1);

impl ClientSession {
    /// A session over `upstream` (shared with others unless `owns_upstream`). A `federated`
    /// session's upstream is a namespace federation and `server_id` the namespace's id.
    #[must_use]
    #[expect(
        clippy::too_many_arguments,
        reason = "everything a session is made of; the hub is the one caller"
    )]
    pub fn new(
        owner: Owner,
        server_id: ServerId,
        transport: ClientTransport,
        upstream: UpstreamSession,
        owns_upstream: bool,
        federated: bool,
        guard: Arc<dyn Guard>,
        buffers: SessionBuffers,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(buffers.outbound.max(1));
        let key = CLIENT_KEYS.fetch_add(1, Ordering::Relaxed);
        upstream.attach(key, tx.clone());
        Arc::new(Self {
            id: SessionId::new(),
            key,
            owner,
            server_id,
            transport,
            upstream,
            owns_upstream,
            federated,
            guard,
            outbound: tx,
            outbound_rx: Mutex::new(Some(rx)),
            events: EventLog::new(buffers.events, buffers.event_bytes),
            created: Instant::now(),
            last_activity_ms: AtomicU64::new(0),
            streaming: AtomicBool::new(false),
            open_streams: std::sync::atomic::AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            closed_signal: tokio::sync::watch::channel(false).0,
            protocol_version: Mutex::new(None),
            client_info: Mutex::new(None),
        })
    }

    /// The session id (`Mcp-Session-Id`).
    #[must_use]
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The owner.
    #[must_use]
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// The target server.
    #[must_use]
    pub fn server_id(&self) -> ServerId {
        self.server_id
    }

    /// The client-facing transport.
    #[must_use]
    pub fn transport(&self) -> ClientTransport {
        self.transport
    }

    /// The upstream session.
    #[must_use]
    pub fn upstream(&self) -> &UpstreamSession {
        &self.upstream
    }

    /// Whether the session owns its upstream (per-client mode).
    #[must_use]
    pub fn owns_upstream(&self) -> bool {
        self.owns_upstream
    }

    /// Whether the session is a namespace federation (its `server_id` is the namespace's id).
    #[must_use]
    pub fn is_federated(&self) -> bool {
        self.federated
    }

    /// The SSE event log.
    #[must_use]
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// The negotiated protocol revision, once initialized.
    #[must_use]
    pub fn protocol_version(&self) -> Option<String> {
        self.protocol_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_deref()
            .map(str::to_owned)
    }

    /// `clientInfo` from `initialize`.
    #[must_use]
    pub fn client_info(&self) -> Option<Value> {
        self.client_info
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A sender into the client's single outbound queue: transports with one stream per
    /// connection (legacy SSE, WebSocket) use it as the reply channel of every request.
    #[must_use]
    pub fn sender(&self) -> Reply {
        self.outbound.clone()
    }

    /// Takes the receiver of server-initiated messages (one consumer at a time: the GET
    /// stream, the SSE connection or the WebSocket). Give it back with [`Self::return_outbound`].
    pub fn take_outbound(&self) -> Option<mpsc::Receiver<Message>> {
        self.outbound_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Returns the receiver when its stream ends.
    pub fn return_outbound(&self, rx: mpsc::Receiver<Message>) {
        *self.outbound_rx.lock().unwrap_or_else(PoisonError::into_inner) = Some(rx);
    }

    /// Marks activity now.
    pub fn touch(&self) {
        let ms = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity_ms.store(ms, Ordering::Relaxed);
    }

    /// Time since the last activity; a session with an open stream counts as active.
    #[must_use]
    pub fn idle_for(&self) -> std::time::Duration {
        if self.streaming.load(Ordering::Relaxed) || self.open_streams.load(Ordering::Relaxed) > 0 {
            return std::time::Duration::ZERO;
        }
        let last = std::time::Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed));
        self.created.elapsed().saturating_sub(last)
    }

    /// Records that a long-lived stream is (or is no longer) open.
    pub fn set_streaming(&self, on: bool) {
        self.streaming.store(on, Ordering::Relaxed);
        self.touch();
    }

    /// Counts an open client stream (an SSE response) for as long as the guard lives: a session
    /// with an open stream is not idle; one whose client went away without DELETE becomes idle
    /// and expires.
    #[must_use]
    pub fn stream_guard(self: &Arc<Self>) -> StreamGuard {
        self.open_streams.fetch_add(1, Ordering::Relaxed);
        self.touch();
        StreamGuard(Arc::clone(self))
    }

    /// Resolves when the session is closed.
    pub async fn closed(&self) {
        let mut rx = self.closed_signal.subscribe();
        let _ = rx.wait_for(|closed| *closed).await;
    }

    /// Whether the session was closed.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Ends the session: detaches from the upstream (closing it when owned).
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::Relaxed) {
            return;
        }
        self.closed_signal.send_replace(true);
        self.upstream.detach(self.key);
        if self.owns_upstream {
            self.upstream.close();
        }
    }

    /// Runs one client message through the pipeline. Answers to a request (and messages
    /// related to it) go to `reply`; notifications and answers to server requests produce
    /// nothing.
    pub async fn handle(&self, message: Message, reply: &Reply) {
        self.touch();
        match message {
            Message::Request(req) => self.request(req, reply).await,
            Message::Notification(n) => self.upstream.notify(self.key, n).await,
            m @ (Message::Response(_) | Message::Error(_)) => self.upstream.respond(self.key, m).await,
        }
    }

    async fn request(&self, mut req: Request, reply: &Reply) {
        match req.method.as_str() {
            "ping" => {
                let _ = reply.send(ok(req.id, Value::Object(Map::new()))).await;
                return;
            }
            "initialize" => {
                if let Some(params) = req.params.as_ref() {
                    *self.client_info.lock().unwrap_or_else(PoisonError::into_inner) =
                        params.get("clientInfo").cloned();
                }
                let (tx, mut rx) = mpsc::channel(4);
                self.upstream.request(self.key, req, tx, None, None).await;
                if let Some(answer) = rx.recv().await {
                    if let Message::Response(r) = &answer
                        && let Some(v) = r.result.get("protocolVersion").and_then(Value::as_str)
                    {
                        *self
                            .protocol_version
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::from(v));
                    }
                    let _ = reply.send(answer).await;
                }
                return;
            }
            _ => {}
        }
        let completion = self.guard.observes().then(|| {
            let observer = Arc::clone(&self.guard) as Arc<dyn ExchangeObserver>;
            let version = self
                .protocol_version
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            Completion::start(observer, self.id, self.transport, version, &mut req)
        });
        if let Err(error) = self.guard.check(&req) {
            let answer = error_message(Some(req.id), error);
            if let Some(c) = completion {
                c.finish(&answer);
            }
            let _ = reply.send(answer).await;
            return;
        }
        if let Some(admission) = self.guard.admit(&req)
            && let Err(error) = admission.await
        {
            let answer = error_message(Some(req.id), error);
            if let Some(c) = completion {
                c.finish(&answer);
            }
            let _ = reply.send(answer).await;
            return;
        }
        let filter: Arc<dyn ResultFilter> = Arc::clone(&self.guard) as Arc<dyn ResultFilter>;
        self.upstream
            .request(self.key, req, reply.clone(), Some(filter), completion)
            .await;
    }

    /// Sends a server-initiated message to this client (admin broadcast).
    ///
    /// # Errors
    /// The client's queue is full or the session is closed.
    pub fn push(&self, message: Message) -> Result<(), Message> {
        self.outbound.try_send(message).map_err(|e| match e {
            mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => m,
        })
    }
}

/// See [`ClientSession::stream_guard`].
#[derive(Debug)]
pub struct StreamGuard(Arc<ClientSession>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

fn ok(id: RequestId, result: Value) -> Message {
    Message::Response(Response {
        jsonrpc: Version,
        id,
        result,
        extra: Map::new(),
    })
}
