//! Streamable HTTP upstreams (MCP 2025-03-26 … 2025-11-25): every message is a POST; the
//! server answers a request with JSON or with an SSE stream that may carry related messages
//! before the response; `Mcp-Session-Id` from the `initialize` answer goes on every later
//! request, `MCP-Protocol-Version` once negotiated; a GET stream carries server-initiated
//! messages; a dropped stream resumes with `Last-Event-ID`; closing the link sends DELETE.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use gateway_types::jsonrpc::{Message, Payload, RequestId};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use tokio::sync::{mpsc, watch};

use crate::error::{TransportError, codes, error_reply};
use crate::link::{Connector, InboxSlot, LINK_QUEUE, Link, LinkEvent, LinkTx, Outbound, UpstreamSpec, emit};
use crate::sse::{SseEvent, SseParser};

/// Header names of the transport.
pub mod headers {
    /// The session id header.
    pub const SESSION_ID: &str = "mcp-session-id";
    /// The negotiated revision header.
    pub const PROTOCOL_VERSION: &str = "mcp-protocol-version";
    /// SSE resumption.
    pub const LAST_EVENT_ID: &str = "last-event-id";
}

/// How many times a broken SSE stream is resumed before giving up on it.
const MAX_RESUMES: u32 = 5;

/// Builds Streamable HTTP links on one shared HTTP client (connection pool).
#[derive(Clone, Debug)]
pub struct HttpConnector {
    client: reqwest::Client,
}

impl HttpConnector {
    /// A connector on `client` (share one client across the gateway: it pools connections).
    #[must_use]
    pub fn new(client: reqwest::Client) -> Self {
        Self { client }
    }
}

/// The HTTP client the gateway uses for upstreams: rustls with the system's roots, no
/// overall timeout (SSE streams are long-lived; per-request timeouts live in the session).
///
/// # Errors
/// The TLS configuration cannot be built.
pub fn default_client() -> Result<reqwest::Client, TransportError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .build()
        .map_err(TransportError::Http)
}

#[derive(Debug)]
struct Shared {
    client: reqwest::Client,
    url: reqwest::Url,
    base_headers: HeaderMap,
    session: Mutex<Option<HeaderValue>>,
    version: Mutex<Option<HeaderValue>>,
    events: mpsc::Sender<LinkEvent>,
    /// The session, once it installed itself: messages go to it from the task that read them.
    inbox: InboxSlot,
    max_message_bytes: usize,
    name: String,
    /// Flips to true when the link is closing: streams stop resuming.
    closing: watch::Receiver<bool>,
    /// The shared runtime: every request and stream task runs there.
    runtime: tokio::runtime::Handle,
}

impl Shared {
    /// Hands a message to the session (directly once it installed itself); `false` when it
    /// is gone.
    async fn deliver(&self, message: Message, related: Option<RequestId>) -> bool {
        match self.inbox.get() {
            Some(inbox) => inbox.deliver(message, related).await,
            None => emit(&self.events, message, related).await,
        }
    }

    fn headers(&self) -> HeaderMap {
        let mut h = self.base_headers.clone();
        let lock = |m: &Mutex<Option<HeaderValue>>| m.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(v) = lock(&self.session) {
            h.insert(HeaderName::from_static(headers::SESSION_ID), v);
        }
        if let Some(v) = lock(&self.version) {
            h.insert(HeaderName::from_static(headers::PROTOCOL_VERSION), v);
        }
        h
    }
}

pub(crate) fn spec_headers(spec: &UpstreamSpec) -> Result<HeaderMap, TransportError> {
    let mut map = HeaderMap::new();
    for (k, v) in &spec.headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| TransportError::Config(format!("invalid header name {k:?}")))?;
        let mut value = HeaderValue::from_str(v)
            .map_err(|_| TransportError::Config(format!("invalid value for header {k:?}")))?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok(map)
}

pub(crate) fn spec_url(spec: &UpstreamSpec) -> Result<reqwest::Url, TransportError> {
    let url = spec
        .url
        .as_deref()
        .ok_or_else(|| TransportError::Config("an HTTP server needs a url".into()))?;
    reqwest::Url::parse(url).map_err(|_| TransportError::Config("invalid upstream url".into()))
}

#[async_trait]
impl Connector for HttpConnector {
    async fn connect(&self, spec: &UpstreamSpec) -> Result<Link, TransportError> {
        let url = spec_url(spec)?;
        let (in_tx, in_rx) = mpsc::channel::<LinkEvent>(LINK_QUEUE);
        let (closing_tx, closing_rx) = watch::channel(false);
        let inbox = InboxSlot::default();
        let shared = Arc::new(Shared {
            client: self.client.clone(),
            url,
            base_headers: spec_headers(spec)?,
            session: Mutex::new(None),
            version: Mutex::new(None),
            events: in_tx,
            inbox: Arc::clone(&inbox),
            max_message_bytes: spec.max_message_bytes,
            name: spec.name.clone(),
            closing: closing_rx,
            runtime: tokio::runtime::Handle::current(),
        });
        let outbound = HttpOutbound {
            shared,
            init_gate: Arc::new(tokio::sync::RwLock::new(())),
            get_stream: Mutex::new(None),
            closing: closing_tx,
            closed: AtomicBool::new(false),
        };
        Ok(Link {
            tx: LinkTx::direct(Box::new(outbound)),
            rx: in_rx,
            pid: None,
            inbox: Some(inbox),
        })
    }
}

/// The sending side of a Streamable HTTP link: every message is its own POST, started at
/// once on the shared runtime (no queue, no pump task in between).
#[derive(Debug)]
struct HttpOutbound {
    shared: Arc<Shared>,
    /// Held for writing while `initialize` is in flight: the session id comes back on its
    /// answer, so nothing sent after it may go before.
    init_gate: Arc<tokio::sync::RwLock<()>>,
    get_stream: Mutex<Option<tokio::task::JoinHandle<()>>>,
    closing: watch::Sender<bool>,
    closed: AtomicBool,
}

impl Outbound for HttpOutbound {
    fn send(&self, msg: Message) -> Result<(), Message> {
        if self.closed.load(Ordering::Acquire) {
            return Err(msg);
        }
        let shared = Arc::clone(&self.shared);
        let gate = Arc::clone(&self.init_gate);
        let opens_stream = msg.method() == Some("notifications/initialized");
        match msg.method() {
            // The session id comes back on the `initialize` answer, and a server may set itself
            // up on `initialized` (server-everything registers tools then): nothing sent after
            // either may overtake it.
            Some("initialize" | "notifications/initialized") => {
                let held = Arc::clone(&gate).try_write_owned().ok();
                self.shared.runtime.spawn(async move {
                    let _held = match held {
                        Some(g) => g,
                        None => gate.write_owned().await,
                    };
                    post(shared, msg).await;
                });
                if opens_stream {
                    let mut stream = self.get_stream.lock().unwrap_or_else(PoisonError::into_inner);
                    if stream.is_none() {
                        let shared = Arc::clone(&self.shared);
                        let gate = Arc::clone(&self.init_gate);
                        *stream = Some(self.shared.runtime.spawn(async move {
                            drop(gate.read().await);
                            get_stream_task(shared).await;
                        }));
                    }
                }
            }
            _ => {
                let blocked = gate.try_read().is_err();
                self.shared.runtime.spawn(async move {
                    if blocked {
                        drop(gate.read().await);
                    }
                    post(shared, msg).await;
                });
            }
        }
        Ok(())
    }

    fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Stop streams, end the session.
        let _ = self.closing.send(true);
        if let Some(task) = self
            .get_stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
        let shared = Arc::clone(&self.shared);
        self.shared.runtime.spawn(async move {
            let session = shared
                .session
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if session.is_some() {
                let _ = shared
                    .client
                    .delete(shared.url.clone())
                    .headers(shared.headers())
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
            }
            let _ = shared
                .events
                .send(LinkEvent::Closed {
                    reason: "closed by the gateway".into(),
                })
                .await;
        });
    }
}

/// Sends one message; delivers what comes back. A failed request is answered with an error
/// (the client must never wait for an answer that cannot come).
async fn post(shared: Arc<Shared>, msg: Message) {
    let request_id = match &msg {
        Message::Request(r) => Some(r.id.clone()),
        _ => None,
    };
    let is_init = msg.method() == Some("initialize");
    let body = match serde_json::to_vec(&msg) {
        Ok(b) => b,
        Err(_) => return,
    };
    let mut headers = shared.headers();
    headers.insert(
        ACCEPT,
        HeaderValue::from_static("application/json, text/event-stream"),
    );
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Message::Request(r) = &msg {
        // A 2026-07-28 request (its `_meta` says so) mirrors its version, method and name.
        for (name, value) in crate::era::request_headers(r) {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        }
        // W3C trace context: the request's `_meta` carries it (set by the pipeline); HTTP
        // upstreams get it as headers too.
        if let Some(meta) = r.params.as_ref().and_then(|p| p.get("_meta")) {
            for key in ["traceparent", "tracestate"] {
                if let Some(v) = meta
                    .get(key)
                    .and_then(serde_json::Value::as_str)
                    .and_then(|v| HeaderValue::from_str(v).ok())
                {
                    headers.insert(key, v);
                }
            }
        }
    }
    let result = shared
        .client
        .post(shared.url.clone())
        .headers(headers)
        .body(body)
        .send()
        .await;
    let response = match result {
        Ok(r) => r,
        Err(err) => {
            tracing::warn!(server.name = %shared.name, error = %gateway_types::error::error_chain(&err), "upstream POST failed");
            fail(&shared, request_id).await;
            return;
        }
    };
    let status = response.status();
    if status.as_u16() == 404
        && shared
            .session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    {
        // The upstream forgot the session: this link is over; the session layer reconnects.
        fail(&shared, request_id).await;
        let _ = shared
            .events
            .send(LinkEvent::Closed {
                reason: "upstream session expired (404)".into(),
            })
            .await;
        return;
    }
    if !status.is_success() {
        tracing::warn!(server.name = %shared.name, status = status.as_u16(), "upstream answered an error status");
        // A JSON-RPC error body is still an answer — to this POST's request, even when the
        // server could not tell its id (`"id": null`, e.g. a legacy server refusing a request
        // without a session).
        if let Some(id) = request_id {
            let bytes = response.bytes().await.unwrap_or_default();
            match serde_json::from_slice::<Message>(&bytes) {
                Ok(Message::Error(mut e)) => {
                    if e.id.is_none() {
                        e.id = Some(id.clone());
                    }
                    let _ = shared.deliver(Message::Error(e), Some(id)).await;
                }
                _ => fail(&shared, Some(id)).await,
            }
        }
        return;
    }
    if is_init && let Some(v) = response.headers().get(headers::SESSION_ID) {
        *shared.session.lock().unwrap_or_else(PoisonError::into_inner) = Some(v.clone());
    }
    if status.as_u16() == 202 || request_id.is_none() {
        return;
    }
    let is_sse = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if is_sse {
        let answered = read_stream(&shared, response, request_id.as_ref(), is_init).await;
        if !answered {
            fail(&shared, request_id).await;
        }
        return;
    }
    let bytes = match read_limited(response, shared.max_message_bytes).await {
        Some(b) => b,
        None => {
            fail(&shared, request_id).await;
            return;
        }
    };
    match serde_json::from_slice::<Payload>(&bytes) {
        Ok(Payload::Single(m)) => {
            if is_init {
                note_version(&shared, &m);
            }
            let _ = shared.deliver(m, request_id).await;
        }
        Ok(Payload::Batch(items)) => {
            for m in items {
                let _ = shared.deliver(m, request_id.clone()).await;
            }
        }
        Err(_) => {
            tracing::warn!(server.name = %shared.name, "upstream answered with a body that is not JSON-RPC");
            fail(&shared, request_id).await;
        }
    }
}

/// Reads a body up to `limit` bytes.
async fn read_limited(response: reqwest::Response, limit: usize) -> Option<bytes::Bytes> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return None;
    }
    let mut stream = response.bytes_stream();
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.ok()?;
        if buf.len() + chunk.len() > limit {
            return None;
        }
        buf.extend_from_slice(&chunk);
    }
    Some(buf.freeze())
}

/// Remembers the negotiated protocol revision from an `initialize` answer.
fn note_version(shared: &Shared, m: &Message) {
    if let Message::Response(r) = m
        && let Some(v) = r.result.get("protocolVersion").and_then(|v| v.as_str())
        && let Ok(v) = HeaderValue::from_str(v)
    {
        *shared.version.lock().unwrap_or_else(PoisonError::into_inner) = Some(v);
    }
}

/// Answers a request that cannot be answered by the upstream.
async fn fail(shared: &Shared, request_id: Option<RequestId>) {
    if let Some(id) = request_id {
        let msg = error_reply(
            id.clone(),
            codes::UPSTREAM_UNAVAILABLE,
            "upstream server unavailable",
        );
        let _ = shared.deliver(msg, Some(id)).await;
    }
}

/// Delivers the messages of an SSE response; resumes with `Last-Event-ID` when the stream
/// breaks before the answer. Returns whether the answer to `request_id` was delivered.
async fn read_stream(
    shared: &Shared,
    response: reqwest::Response,
    request_id: Option<&RequestId>,
    is_init: bool,
) -> bool {
    let mut parser = SseParser::new(shared.max_message_bytes);
    let mut response = response;
    let mut resumes = 0;
    loop {
        let mut body = response.bytes_stream();
        let mut events: Vec<SseEvent> = Vec::new();
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else { break };
            if parser.feed(&chunk, &mut events).is_err() {
                tracing::warn!(server.name = %shared.name, "upstream SSE event over the size limit");
                return false;
            }
            for ev in events.drain(..) {
                if !ev.is_message() || ev.data.is_empty() {
                    continue;
                }
                let Ok(m) = serde_json::from_str::<Message>(&ev.data) else {
                    tracing::warn!(server.name = %shared.name, "upstream SSE event is not JSON-RPC; ignored");
                    continue;
                };
                let is_answer = request_id.is_some_and(|id| m.id() == Some(id))
                    && matches!(m, Message::Response(_) | Message::Error(_));
                if is_answer && is_init {
                    note_version(shared, &m);
                }
                if !shared.deliver(m, request_id.cloned()).await {
                    return true;
                }
                if is_answer {
                    return true;
                }
            }
        }
        // The stream ended without the answer: resume if the server gave event ids.
        let Some(last) = parser.last_event_id().map(str::to_owned) else {
            return false;
        };
        if *shared.closing.borrow() || resumes >= MAX_RESUMES {
            return false;
        }
        resumes += 1;
        tokio::time::sleep(Duration::from_millis(100 * u64::from(resumes))).await;
        let mut headers = shared.headers();
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        if let Ok(v) = HeaderValue::from_str(&last) {
            headers.insert(HeaderName::from_static(headers::LAST_EVENT_ID), v);
        }
        match shared
            .client
            .get(shared.url.clone())
            .headers(headers)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => response = r,
            _ => return false,
        }
    }
}

/// The GET stream for server-initiated messages; reconnects with `Last-Event-ID` until the
/// link closes. A 405 means the server offers none.
async fn get_stream_task(shared: Arc<Shared>) {
    let mut last_id: Option<String> = None;
    let mut failures = 0u32;
    loop {
        if *shared.closing.borrow() {
            return;
        }
        let mut headers = shared.headers();
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        if let Some(v) = last_id.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(HeaderName::from_static(headers::LAST_EVENT_ID), v);
        }
        let response = shared
            .client
            .get(shared.url.clone())
            .headers(headers)
            .send()
            .await;
        match response {
            Ok(r) if r.status().as_u16() == 405 => return,
            Ok(r) if r.status().is_success() => {
                failures = 0;
                let mut parser = SseParser::new(shared.max_message_bytes);
                let mut body = r.bytes_stream();
                let mut events = Vec::new();
                while let Some(Ok(chunk)) = body.next().await {
                    if parser.feed(&chunk, &mut events).is_err() {
                        break;
                    }
                    for ev in events.drain(..) {
                        if !ev.is_message() || ev.data.is_empty() {
                            continue;
                        }
                        if let Ok(m) = serde_json::from_str::<Message>(&ev.data)
                            && !shared.deliver(m, None).await
                        {
                            return;
                        }
                    }
                }
                if let Some(id) = parser.last_event_id() {
                    last_id = Some(id.to_owned());
                }
            }
            Ok(r) if r.status().as_u16() == 404 => {
                let _ = shared
                    .events
                    .send(LinkEvent::Closed {
                        reason: "upstream session expired (404)".into(),
                    })
                    .await;
                return;
            }
            _ => failures += 1,
        }
        // Back off: 0.25 s, doubling, capped at 10 s.
        let delay =
            Duration::from_millis(250u64.saturating_mul(1 << failures.min(6))).min(Duration::from_secs(10));
        tokio::time::sleep(delay).await;
    }
}
