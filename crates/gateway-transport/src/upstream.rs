//! One upstream MCP session shared by one or more clients: JSON-RPC id remapping, progress
//! token remapping, routing of answers, notifications and server-to-client requests, the
//! `initialize` handshake (done once, replayed after a restart), per-request deadlines, and
//! restart with exponential backoff up to a crash-loop limit.
//!
//! # Id remapping
//! Every request a client sends gets a fresh upstream id (an integer unique on this upstream
//! session); the answer gets the client's id back. A `_meta.progressToken` is rewritten the
//! same way (`gw-<upstream id>`), so two clients using the same ids or tokens on one shared
//! upstream never see each other's answers or progress. Server-to-client requests get an id
//! unique in the gateway process ([`next_server_request_id`]) and the client's answer is
//! mapped back to the upstream's id.
//!
//! # Routing
//! - answers and progress go to the request's own reply channel;
//! - a server-to-client request (sampling, elicitation, roots) goes to the client whose request
//!   it arrived with (the transport says so for Streamable HTTP), else to the client with the
//!   most recent in-flight request, else to the most recently attached client; a server `ping`
//!   is answered by the gateway;
//! - `notifications/cancelled` for a server request goes to the client it was sent to;
//! - every other notification (logging, list changes, resource updates) goes to every client
//!   attached to the session.
//!
//! Notifications to a client whose queue is full are dropped (counted); answers wait for room
//! (backpressure), so a slow client slows only what it asked for.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use gateway_types::jsonrpc::{ErrorObject, Message, Notification, Request, RequestId, Response, Version};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{TransportError, codes, error_message, error_reply};
use crate::exchange::Completion;
use crate::link::{BoxFuture, Connector, Inbox, Link, LinkEvent, LinkTx, UpstreamSpec};

/// Where the answers to one request go.
pub type Reply = mpsc::Sender<Message>;

/// Identifies a client attached to an upstream session.
pub type ClientKey = u64;

/// Filters list results for one client (policy): called on `tools/list`, `resources/list`,
/// `resources/templates/list` and `prompts/list` results before the client sees them.
pub trait ResultFilter: Send + Sync {
    /// Removes what the client may not see from `result`.
    fn filter(&self, method: &str, result: &mut Value);
}

static SERVER_REQUEST_IDS: AtomicI64 = AtomicI64::new(1);

/// A process-wide unique id for a server-to-client request as a client sees it.
#[must_use]
pub fn next_server_request_id() -> i64 {
    SERVER_REQUEST_IDS.fetch_add(1, Ordering::Relaxed)
}

/// The state of a stdio upstream's process, for session records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessState {
    /// The current (or last) process id.
    pub pid: Option<u32>,
    /// `running`, `exited` (by itself or a signal) or `stopped` (by the gateway).
    pub status: Option<&'static str>,
    /// The exit code; a process ended by signal N reports 128 + N, as shells do.
    pub exit_code: Option<i32>,
}

/// Restart behaviour after the upstream connection breaks.
#[derive(Clone, Copy, Debug)]
pub struct RestartPolicy {
    /// First delay; doubled after each failure in a row.
    pub initial_backoff: Duration,
    /// Longest delay.
    pub max_backoff: Duration,
    /// Failures within `window` after which the session gives up (crash loop).
    pub max_failures: usize,
    /// The window for counting failures.
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            max_failures: 5,
            window: Duration::from_secs(60),
        }
    }
}

/// The state of the upstream connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not connected yet (connects on first use).
    Idle,
    /// Connecting (or re-initializing after a restart).
    Connecting,
    /// Connected.
    Ready,
    /// Connection lost; a restart is scheduled.
    Down,
    /// Gave up: too many failures in a row.
    Failed,
    /// Closed by the gateway.
    Closed,
}

impl Phase {
    /// The stable text form (`idle`, `connecting`, `ready`, `down`, `failed`, `closed`).
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Connecting => "connecting",
            Self::Ready => "ready",
            Self::Down => "down",
            Self::Failed => "failed",
            Self::Closed => "closed",
        }
    }
}

enum PendingKind {
    Client,
    Initialize,
    Internal(oneshot::Sender<Message>),
}

struct Pending {
    client: ClientKey,
    original_id: RequestId,
    reply: Option<Reply>,
    progress: Option<(String, Value)>,
    deadline: Instant,
    kind: PendingKind,
    method: Box<str>,
    filter: Option<Arc<dyn ResultFilter>>,
    attempts: u32,
    request: Option<Request>,
    /// Reports the exchange when the client gets its answer (or never does).
    completion: Option<Completion>,
}

struct ServerRequest {
    upstream_id: RequestId,
    client: ClientKey,
}

struct ClientPort {
    outbound: Reply,
}

enum Init {
    None,
    InFlight(Vec<(RequestId, Reply)>),
    Done {
        params: Value,
        result: Value,
        initialized_sent: bool,
    },
}

struct State {
    link: Option<LinkTx>,
    generation: u64,
    pending: HashMap<i64, Pending>,
    progress: HashMap<String, i64>,
    server_requests: HashMap<i64, ServerRequest>,
    clients: HashMap<ClientKey, ClientPort>,
    attach_order: VecDeque<ClientKey>,
    init: Init,
    pid: Option<u32>,
    failures: VecDeque<Instant>,
    reader: Option<tokio::task::JoinHandle<()>>,
}

struct Inner {
    spec: UpstreamSpec,
    connector: Arc<dyn Connector>,
    restart: RestartPolicy,
    state: Mutex<State>,
    phase: watch::Sender<Phase>,
    next_id: AtomicI64,
    connect_lock: tokio::sync::Mutex<()>,
    dropped_notifications: AtomicI64,
    /// The stdio process's state (stays default for other transports).
    process: watch::Sender<ProcessState>,
    /// The shared runtime: connections and their tasks live there, never on the runtime of
    /// whichever caller happened to connect first (an HTTP worker's dies with it).
    runtime: tokio::runtime::Handle,
    /// Where `notifications/*/list_changed` from the upstream are also announced.
    list_changed: Option<tokio::sync::broadcast::Sender<ListChanged>>,
}

/// An upstream announced that one of its lists changed (`notifications/tools/list_changed`,
/// `.../resources/list_changed`, `.../prompts/list_changed`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListChanged {
    /// The server ([`UpstreamSpec::server_id`]).
    pub server_id: String,
    /// Its organization ([`UpstreamSpec::org_id`]).
    pub org_id: String,
    /// The notification's method.
    pub method: String,
}

/// A cheap handle to one upstream MCP session.
#[derive(Clone)]
pub struct UpstreamSession {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for UpstreamSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamSession")
            .field("server", &self.inner.spec.name)
            .field("phase", &*self.inner.phase.borrow())
            .finish_non_exhaustive()
    }
}

const LIST_METHODS: [&str; 4] = [
    "tools/list",
    "resources/list",
    "resources/templates/list",
    "prompts/list",
];
const RETRYABLE: [&str; 5] = [
    "tools/list",
    "resources/list",
    "resources/templates/list",
    "prompts/list",
    "ping",
];

impl UpstreamSession {
    /// A session that connects on first use.
    #[must_use]
    pub fn new(
        spec: UpstreamSpec,
        connector: Arc<dyn Connector>,
        restart: RestartPolicy,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        let (phase, _) = watch::channel(Phase::Idle);
        Self {
            inner: Arc::new(Inner {
                spec,
                connector,
                restart,
                state: Mutex::new(State {
                    link: None,
                    generation: 0,
                    pending: HashMap::new(),
                    progress: HashMap::new(),
                    server_requests: HashMap::new(),
                    clients: HashMap::new(),
                    attach_order: VecDeque::new(),
                    init: Init::None,
                    pid: None,
                    failures: VecDeque::new(),
                    reader: None,
                }),
                phase,
                next_id: AtomicI64::new(1),
                connect_lock: tokio::sync::Mutex::new(()),
                dropped_notifications: AtomicI64::new(0),
                process: watch::channel(ProcessState::default()).0,
                runtime,
                list_changed: None,
            }),
        }
    }

    /// Also announces the upstream's list-changed notifications on `tx` (for a new session,
    /// before it is shared; later it changes nothing).
    #[must_use]
    pub fn with_list_changed(mut self, tx: tokio::sync::broadcast::Sender<ListChanged>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.list_changed = Some(tx);
        }
        self
    }

    /// The upstream's description.
    #[must_use]
    pub fn spec(&self) -> &UpstreamSpec {
        &self.inner.spec
    }

    /// The connection state.
    #[must_use]
    pub fn phase(&self) -> Phase {
        self.inner.phase.borrow().clone()
    }

    /// The process id, for stdio upstreams that are running.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.lock().pid
    }

    /// Follows the stdio process's state (pid, running/exited/stopped, exit code).
    #[must_use]
    pub fn process_state(&self) -> watch::Receiver<ProcessState> {
        self.inner.process.subscribe()
    }

    /// In-flight requests.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.lock().pending.len()
    }

    /// Attached clients.
    #[must_use]
    pub fn clients(&self) -> usize {
        self.lock().clients.len()
    }

    /// Notifications dropped because a client's queue was full.
    #[must_use]
    pub fn dropped_notifications(&self) -> i64 {
        self.inner.dropped_notifications.load(Ordering::Relaxed)
    }

    /// The `initialize` result the upstream gave, once it did.
    #[must_use]
    pub fn initialize_result(&self) -> Option<Value> {
        match &self.lock().init {
            Init::Done { result, .. } => Some(result.clone()),
            _ => None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Attaches a client: server-initiated messages for it go to `outbound`.
    pub fn attach(&self, client: ClientKey, outbound: Reply) {
        let mut st = self.lock();
        st.clients.insert(client, ClientPort { outbound });
        st.attach_order.retain(|c| *c != client);
        st.attach_order.push_back(client);
    }

    /// Detaches a client; its in-flight requests are cancelled upstream.
    pub fn detach(&self, client: ClientKey) {
        let cancelled: Vec<i64> = {
            let mut st = self.lock();
            st.clients.remove(&client);
            st.attach_order.retain(|c| *c != client);
            st.server_requests.retain(|_, r| r.client != client);
            let ids: Vec<i64> = st
                .pending
                .iter()
                .filter(|(_, p)| p.client == client && matches!(p.kind, PendingKind::Client))
                .map(|(id, _)| *id)
                .collect();
            for id in &ids {
                if let Some(p) = st.pending.remove(id)
                    && let Some((token, _)) = p.progress
                {
                    st.progress.remove(&token);
                }
            }
            ids
        };
        for id in cancelled {
            self.send_detached(cancelled_notification(RequestId::Number(id), "client went away"));
        }
    }

    /// Closes the session: the link is dropped (the process is stopped, the HTTP session
    /// deleted) and every in-flight request is answered with an error.
    pub fn close(&self) {
        let (pending, reader) = {
            let mut st = self.lock();
            st.link = None;
            st.generation += 1;
            st.pid = None;
            st.progress.clear();
            st.server_requests.clear();
            (std::mem::take(&mut st.pending), st.reader.take())
        };
        self.inner.phase.send_replace(Phase::Closed);
        self.inner.process.send_if_modified(|p| {
            let running = p.status == Some("running");
            if running {
                p.status = Some("stopped");
            }
            running
        });
        fail_all(pending, &TransportError::Closed);
        if let Some(reader) = reader {
            reader.abort();
        }
    }

    /// Sends a client's request upstream; its answer (and related messages) go to `reply`.
    /// Every request is answered: by the upstream, or by the gateway with an error.
    pub async fn request(
        &self,
        client: ClientKey,
        mut req: Request,
        reply: Reply,
        filter: Option<Arc<dyn ResultFilter>>,
        completion: Option<Completion>,
    ) {
        if req.method == "initialize" {
            self.initialize(client, req, reply).await;
            return;
        }
        let filter = filter.filter(|_| LIST_METHODS.contains(&req.method.as_str()));
        let link = match self.ensure_link().await {
            Ok(link) => link,
            Err(err) => {
                let answer = error_message(Some(req.id), err.to_error_object());
                if let Some(c) = completion {
                    c.finish(&answer);
                }
                let _ = reply.send(answer).await;
                return;
            }
        };
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let original_id = std::mem::replace(&mut req.id, RequestId::Number(id));
        let progress = rewrite_progress_token(&mut req, id);
        let retry_copy = RETRYABLE.contains(&req.method.as_str()).then(|| req.clone());
        let method: Box<str> = req.method.as_str().into();
        {
            let mut st = self.lock();
            if let Some((token, _)) = &progress {
                st.progress.insert(token.clone(), id);
            }
            st.pending.insert(
                id,
                Pending {
                    client,
                    original_id: original_id.clone(),
                    reply: Some(reply.clone()),
                    progress,
                    deadline: Instant::now() + self.inner.spec.timeout,
                    kind: PendingKind::Client,
                    method,
                    filter,
                    attempts: 0,
                    request: retry_copy,
                    completion,
                },
            );
        }
        if link.send(Message::Request(req)).await.is_err() {
            // The link died between ensure_link and now: answer unless the closer did.
            if let Some(p) = self.take_pending(id) {
                answer_error(p, &TransportError::Closed).await;
            }
        }
    }

    /// Forwards a client's notification (`initialized` only once per upstream session;
    /// `cancelled` with the request id mapped).
    pub async fn notify(&self, client: ClientKey, mut n: Notification) {
        match n.method.as_str() {
            "notifications/initialized" => {
                let first = {
                    let mut st = self.lock();
                    match &mut st.init {
                        Init::Done { initialized_sent, .. } if !*initialized_sent => {
                            *initialized_sent = true;
                            true
                        }
                        _ => false,
                    }
                };
                if !first {
                    return;
                }
            }
            "notifications/cancelled" => {
                let Some(original) = n
                    .params
                    .as_ref()
                    .and_then(|p| p.get("requestId"))
                    .and_then(|v| serde_json::from_value::<RequestId>(v.clone()).ok())
                else {
                    return;
                };
                let upstream_id = {
                    let mut st = self.lock();
                    let found = st
                        .pending
                        .iter()
                        .find(|(_, p)| {
                            p.client == client
                                && p.original_id == original
                                && matches!(p.kind, PendingKind::Client)
                        })
                        .map(|(id, _)| *id);
                    if let Some(id) = found
                        && let Some(p) = st.pending.remove(&id)
                        && let Some((token, _)) = p.progress
                    {
                        st.progress.remove(&token);
                    }
                    found
                };
                let Some(upstream_id) = upstream_id else { return };
                if let Some(params) = n.params.as_mut().and_then(Value::as_object_mut) {
                    params.insert("requestId".into(), Value::from(upstream_id));
                }
            }
            _ => {}
        }
        if let Ok(link) = self.ensure_link().await {
            let _ = link.send(Message::Notification(n)).await;
        }
    }

    /// Sends a notification of the gateway's own (an administrator's) to the upstream, only if
    /// it is connected right now: unlike [`Self::notify`], this never connects or starts a
    /// process. `false` when there is no live connection.
    pub async fn notify_if_connected(&self, n: Notification) -> bool {
        let link = self.lock().link.clone();
        match link {
            Some(link) => link.send(Message::Notification(n)).await.is_ok(),
            None => false,
        }
    }

    /// Forwards a client's answer to a server-to-client request.
    pub async fn respond(&self, client: ClientKey, msg: Message) {
        let Some(RequestId::Number(cf)) = msg.id().cloned() else {
            return;
        };
        let upstream_id = {
            let mut st = self.lock();
            match st.server_requests.get(&cf) {
                Some(r) if r.client == client => st.server_requests.remove(&cf).map(|r| r.upstream_id),
                _ => None,
            }
        };
        let Some(upstream_id) = upstream_id else { return };
        let msg = match msg {
            Message::Response(mut r) => {
                r.id = upstream_id;
                Message::Response(r)
            }
            Message::Error(mut e) => {
                e.id = Some(upstream_id);
                Message::Error(e)
            }
            other => other,
        };
        let link = self.lock().link.clone();
        if let Some(link) = link {
            let _ = link.send(msg).await;
        }
    }

    async fn initialize(&self, client: ClientKey, req: Request, reply: Reply) {
        enum Next {
            Forward,
            Answer(Value),
            Wait,
        }
        let next = {
            let mut st = self.lock();
            match &mut st.init {
                Init::None => {
                    st.init = Init::InFlight(Vec::new());
                    Next::Forward
                }
                Init::InFlight(waiters) => {
                    waiters.push((req.id.clone(), reply.clone()));
                    Next::Wait
                }
                Init::Done { result, .. } => Next::Answer(result.clone()),
            }
        };
        match next {
            Next::Wait => {}
            Next::Answer(result) => {
                let _ = reply.send(response(req.id, result)).await;
            }
            Next::Forward => {
                let link = match self.ensure_link().await {
                    Ok(link) => link,
                    Err(err) => {
                        let waiters = self.reset_init();
                        let e = err.to_error_object();
                        let _ = reply.send(error_message(Some(req.id), e.clone())).await;
                        for (id, r) in waiters {
                            let _ = r.send(error_message(Some(id), e.clone())).await;
                        }
                        return;
                    }
                };
                let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
                let mut upstream_req = req.clone();
                upstream_req.id = RequestId::Number(id);
                self.lock().pending.insert(
                    id,
                    Pending {
                        client,
                        original_id: req.id,
                        reply: Some(reply),
                        progress: None,
                        deadline: Instant::now() + self.inner.spec.timeout,
                        kind: PendingKind::Initialize,
                        method: "initialize".into(),
                        filter: None,
                        attempts: 0,
                        request: Some(upstream_req.clone()),
                        completion: None,
                    },
                );
                if link.send(Message::Request(upstream_req)).await.is_err()
                    && let Some(p) = self.take_pending(id)
                {
                    self.finish_initialize(
                        p,
                        error_reply(
                            RequestId::Number(id),
                            codes::UPSTREAM_UNAVAILABLE,
                            "upstream server unavailable",
                        ),
                    )
                    .await;
                }
            }
        }
    }

    fn reset_init(&self) -> Vec<(RequestId, Reply)> {
        let mut st = self.lock();
        match std::mem::replace(&mut st.init, Init::None) {
            Init::InFlight(w) => w,
            other => {
                st.init = other;
                Vec::new()
            }
        }
    }

    async fn finish_initialize(&self, p: Pending, msg: Message) {
        let waiters = match &msg {
            Message::Response(r) => {
                let params = p
                    .request
                    .as_ref()
                    .and_then(|r| r.params.clone())
                    .unwrap_or(Value::Null);
                let mut st = self.lock();
                match std::mem::replace(
                    &mut st.init,
                    Init::Done {
                        params,
                        result: r.result.clone(),
                        initialized_sent: false,
                    },
                ) {
                    Init::InFlight(w) => w,
                    _ => Vec::new(),
                }
            }
            _ => self.reset_init(),
        };
        for (id, reply) in waiters {
            let _ = reply.send(with_id(msg.clone(), id)).await;
        }
        if let Some(reply) = p.reply {
            let _ = reply.send(with_id(msg, p.original_id)).await;
        }
    }

    fn take_pending(&self, id: i64) -> Option<Pending> {
        let mut st = self.lock();
        let p = st.pending.remove(&id)?;
        if let Some((token, _)) = &p.progress {
            st.progress.remove(token);
        }
        Some(p)
    }

    /// Answers requests whose deadline passed (called periodically by the hub) and cancels
    /// them upstream.
    pub async fn expire(&self, now: Instant) {
        let expired: Vec<(i64, Pending)> = {
            let mut st = self.lock();
            let ids: Vec<i64> = st
                .pending
                .iter()
                .filter(|(_, p)| p.deadline <= now)
                .map(|(id, _)| *id)
                .collect();
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(p) = st.pending.remove(&id) {
                    if let Some((token, _)) = &p.progress {
                        st.progress.remove(token);
                    }
                    out.push((id, p));
                }
            }
            out
        };
        for (id, p) in expired {
            tracing::warn!(server.name = %self.inner.spec.name, method = %p.method, timeout_s = self.inner.spec.timeout.as_secs(), "upstream request timed out");
            self.send_detached(cancelled_notification(
                RequestId::Number(id),
                "timed out at the gateway",
            ));
            match p.kind {
                PendingKind::Initialize => {
                    let timeout = TransportError::Timeout(self.inner.spec.timeout).to_error_object();
                    self.finish_initialize(p, error_message(Some(RequestId::Number(id)), timeout))
                        .await;
                }
                _ => answer_error(p, &TransportError::Timeout(self.inner.spec.timeout)).await,
            }
        }
    }

    fn send_detached(&self, msg: Message) {
        let link = self.lock().link.clone();
        if let Some(link) = link {
            let _ = link.try_send(msg);
        }
    }

    /// The current link, connecting (or waiting for a restart) when there is none.
    async fn ensure_link(&self) -> Result<LinkTx, TransportError> {
        loop {
            if let Some(link) = self.lock().link.clone() {
                return Ok(link);
            }
            let phase = self.phase();
            match phase {
                Phase::Failed => {
                    return Err(TransportError::CrashLoop {
                        restarts: self.inner.restart.max_failures,
                    });
                }
                Phase::Closed => return Err(TransportError::Closed),
                Phase::Down => {
                    // A restart is scheduled: wait for it (bounded by the request timeout).
                    let mut rx = self.inner.phase.subscribe();
                    let waited = tokio::time::timeout(
                        self.inner.spec.timeout,
                        rx.wait_for(|p| !matches!(p, Phase::Down)),
                    )
                    .await;
                    if waited.is_err() {
                        return Err(TransportError::Timeout(self.inner.spec.timeout));
                    }
                }
                Phase::Idle | Phase::Connecting | Phase::Ready => {
                    self.connect().await?;
                }
            }
        }
    }

    /// Connects (one connector at a time); after a restart, replays `initialize`.
    async fn connect(&self) -> Result<(), TransportError> {
        let _guard = self.inner.connect_lock.lock().await;
        if self.lock().link.is_some() {
            return Ok(());
        }
        if matches!(self.phase(), Phase::Closed | Phase::Failed) {
            return Err(TransportError::Closed);
        }
        self.inner.phase.send_replace(Phase::Connecting);
        let connector = Arc::clone(&self.inner.connector);
        let spec = self.inner.spec.clone();
        let connecting = self
            .inner
            .runtime
            .spawn(async move { connector.connect(&spec).await });
        let link = match connecting.await.unwrap_or(Err(TransportError::Closed)) {
            Ok(link) => link,
            Err(err) => {
                tracing::warn!(server.name = %self.inner.spec.name, error = %gateway_types::error::error_chain(&err), "cannot connect to the upstream");
                self.on_failure();
                return Err(err);
            }
        };
        let Link { tx, rx, pid, inbox } = link;
        if let Some(slot) = inbox {
            // Messages are handled on the task that read them: no hop through the reader.
            let _ = slot.set(Box::new(SessionInbox(Arc::downgrade(&self.inner))));
        }
        let generation = {
            let mut st = self.lock();
            st.generation += 1;
            st.pid = pid;
            st.generation
        };
        if pid.is_some() {
            self.inner.process.send_replace(ProcessState {
                pid,
                status: Some("running"),
                exit_code: None,
            });
        }
        let reader = self.inner.runtime.spawn(read_link(self.clone(), rx, generation));
        let replay = {
            let mut st = self.lock();
            st.reader = Some(reader);
            match &st.init {
                Init::Done { params, .. } => Some(params.clone()),
                _ => None,
            }
        };
        if let Some(params) = replay {
            // The upstream restarted: it must be initialized again, as the first client did.
            if let Err(err) = self.replay_initialize(&tx, params).await {
                tracing::warn!(server.name = %self.inner.spec.name, error = %gateway_types::error::error_chain(&err), "re-initializing the restarted upstream failed");
                if let Some(reader) = self.lock().reader.take() {
                    reader.abort();
                }
                self.on_failure();
                return Err(err);
            }
        }
        self.lock().link = Some(tx);
        self.inner.phase.send_replace(Phase::Ready);
        Ok(())
    }

    async fn replay_initialize(&self, tx: &LinkTx, params: Value) -> Result<(), TransportError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (done_tx, done_rx) = oneshot::channel();
        self.lock().pending.insert(
            id,
            Pending {
                client: 0,
                original_id: RequestId::Number(id),
                reply: None,
                progress: None,
                deadline: Instant::now() + self.inner.spec.timeout,
                kind: PendingKind::Internal(done_tx),
                method: "initialize".into(),
                filter: None,
                attempts: 0,
                request: None,
                completion: None,
            },
        );
        let req = Request {
            jsonrpc: Version,
            id: RequestId::Number(id),
            method: "initialize".into(),
            params: Some(params),
            extra: Map::new(),
        };
        tx.send(Message::Request(req))
            .await
            .map_err(|_| TransportError::Closed)?;
        let answer = tokio::time::timeout(self.inner.spec.timeout, done_rx)
            .await
            .map_err(|_| TransportError::Timeout(self.inner.spec.timeout))?
            .map_err(|_| TransportError::Closed)?;
        if !matches!(answer, Message::Response(_)) {
            return Err(TransportError::Protocol(
                "initialize refused after restart".into(),
            ));
        }
        let initialized = Notification {
            jsonrpc: Version,
            method: "notifications/initialized".into(),
            params: None,
            extra: Map::new(),
        };
        tx.send(Message::Notification(initialized))
            .await
            .map_err(|_| TransportError::Closed)?;
        Ok(())
    }

    /// Counts a failure; schedules a restart with backoff, or gives up.
    fn on_failure(&self) {
        let now = Instant::now();
        let (failures, has_work) = {
            let mut st = self.lock();
            st.failures.push_back(now);
            let window = self.inner.restart.window;
            while st
                .failures
                .front()
                .is_some_and(|t| now.duration_since(*t) > window)
            {
                st.failures.pop_front();
            }
            (
                st.failures.len(),
                !st.clients.is_empty() || matches!(st.init, Init::Done { .. }),
            )
        };
        if matches!(self.phase(), Phase::Closed) {
            return;
        }
        if failures >= self.inner.restart.max_failures {
            tracing::error!(server.name = %self.inner.spec.name, failures, "upstream keeps failing; giving up until it is re-registered or the gateway restarts");
            self.inner.phase.send_replace(Phase::Failed);
            return;
        }
        self.inner.phase.send_replace(Phase::Down);
        let exp = u32::try_from(failures.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(16);
        let delay = self
            .inner
            .restart
            .initial_backoff
            .saturating_mul(1 << exp)
            .min(self.inner.restart.max_backoff);
        let this = self.clone();
        self.inner.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            if this.phase() != Phase::Down {
                return;
            }
            if has_work {
                tracing::info!(server.name = %this.inner.spec.name, delay_ms = delay.as_millis() as u64, "restarting upstream");
                let _ = this.connect().await;
            } else {
                this.inner.phase.send_replace(Phase::Idle);
            }
        });
    }

    /// The link broke: answer everything in flight, then restart.
    async fn on_closed(&self, generation: u64, reason: &str) {
        let (pending, retry) = {
            let mut st = self.lock();
            if st.generation != generation {
                return; // an older link
            }
            st.link = None;
            st.pid = None;
            st.progress.clear();
            st.server_requests.clear();
            st.reader = None;
            let all = std::mem::take(&mut st.pending);
            // Idempotent list calls are retried on the next connection.
            let (retry, fail): (Vec<_>, Vec<_>) = all.into_values().partition(|p| {
                matches!(p.kind, PendingKind::Client)
                    && p.request.is_some()
                    && p.attempts < self.inner.spec.max_retries
            });
            (fail, retry)
        };
        if matches!(self.phase(), Phase::Closed) {
            fail_all_vec(pending, &TransportError::Closed).await;
            return;
        }
        tracing::warn!(server.name = %self.inner.spec.name, reason, in_flight = pending.len() + retry.len(), "upstream connection lost");
        for p in pending {
            match p.kind {
                PendingKind::Initialize => {
                    let e = TransportError::Closed.to_error_object();
                    self.finish_initialize(p, error_message(None, e)).await;
                }
                _ => answer_error(p, &TransportError::Closed).await,
            }
        }
        self.on_failure();
        for p in retry {
            let this = self.clone();
            self.inner.runtime.spawn(async move { this.retry(p).await });
        }
    }

    /// Boxed with an explicit `Send`: retrying re-enters connecting, which spawns the reader
    /// that calls this, and the compiler cannot infer `Send` through that cycle.
    fn retry(&self, mut p: Pending) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            p.attempts += 1;
            let Some(mut req) = p.request.take() else { return };
            let link = match self.ensure_link().await {
                Ok(l) => l,
                Err(err) => {
                    answer_error(p, &err).await;
                    return;
                }
            };
            let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
            req.id = RequestId::Number(id);
            p.request = Some(req.clone());
            p.deadline = Instant::now() + self.inner.spec.timeout;
            self.lock().pending.insert(id, p);
            if link.send(Message::Request(req)).await.is_err()
                && let Some(p) = self.take_pending(id)
            {
                answer_error(p, &TransportError::Closed).await;
            }
        })
    }

    /// Handles one message from the upstream.
    async fn on_message(&self, message: Message, related: Option<RequestId>) {
        match message {
            Message::Response(_) | Message::Error(_) => {
                let Some(RequestId::Number(id)) = message.id().cloned() else {
                    return;
                };
                let Some(p) = self.take_pending(id) else {
                    tracing::debug!(server.name = %self.inner.spec.name, id, "answer to an unknown or expired request; dropped");
                    return;
                };
                match p.kind {
                    PendingKind::Internal(done) => {
                        let _ = done.send(message);
                    }
                    PendingKind::Initialize => self.finish_initialize(p, message).await,
                    PendingKind::Client => {
                        let mut message = with_id(message, p.original_id);
                        if let (Some(filter), Message::Response(r)) = (&p.filter, &mut message) {
                            filter.filter(&p.method, &mut r.result);
                        }
                        if let Some(c) = p.completion {
                            c.finish(&message);
                        }
                        if let Some(reply) = p.reply {
                            let _ = reply.send(message).await;
                        }
                    }
                }
            }
            Message::Request(req) => self.on_server_request(req, related).await,
            Message::Notification(n) => self.on_notification(n).await,
        }
    }

    async fn on_server_request(&self, mut req: Request, related: Option<RequestId>) {
        if req.method == "ping" {
            let link = self.lock().link.clone();
            if let Some(link) = link {
                let _ = link.send(response(req.id, Value::Object(Map::new()))).await;
            }
            return;
        }
        let cf = next_server_request_id();
        let target = {
            let mut st = self.lock();
            let related_pending = related.as_ref().and_then(|r| match r {
                RequestId::Number(n) => st.pending.get(n),
                RequestId::String(_) => None,
            });
            let (client, via) = if let Some(p) = related_pending {
                (Some(p.client), p.reply.clone())
            } else if st.clients.len() == 1 {
                (st.clients.keys().next().copied(), None)
            } else if let Some(p) = st
                .pending
                .values()
                .filter(|p| matches!(p.kind, PendingKind::Client))
                .max_by_key(|p| p.deadline)
            {
                (Some(p.client), None)
            } else {
                (st.attach_order.back().copied(), None)
            };
            client.and_then(|c| {
                let port = st.clients.get(&c)?.outbound.clone();
                st.server_requests.insert(
                    cf,
                    ServerRequest {
                        upstream_id: req.id.clone(),
                        client: c,
                    },
                );
                Some(via.unwrap_or(port))
            })
        };
        let upstream_id = std::mem::replace(&mut req.id, RequestId::Number(cf));
        match target {
            Some(to) => {
                if to.send(Message::Request(req)).await.is_err() {
                    self.lock().server_requests.remove(&cf);
                    self.answer_upstream_error(upstream_id, "client is gone").await;
                }
            }
            None => {
                self.answer_upstream_error(upstream_id, "no client connected")
                    .await
            }
        }
    }

    async fn answer_upstream_error(&self, id: RequestId, message: &str) {
        let link = self.lock().link.clone();
        if let Some(link) = link {
            let _ = link.send(error_reply(id, codes::INTERNAL_ERROR, message)).await;
        }
    }

    async fn on_notification(&self, mut n: Notification) {
        match n.method.as_str() {
            "notifications/progress" => {
                let token = n
                    .params
                    .as_ref()
                    .and_then(|p| p.get("progressToken"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let Some(token) = token else { return };
                let target = {
                    let st = self.lock();
                    st.progress
                        .get(&token)
                        .and_then(|id| st.pending.get(id))
                        .and_then(|p| Some((p.reply.clone()?, p.progress.as_ref()?.1.clone())))
                };
                if let Some((reply, original)) = target {
                    if let Some(params) = n.params.as_mut().and_then(Value::as_object_mut) {
                        params.insert("progressToken".into(), original);
                    }
                    if reply.try_send(Message::Notification(n)).is_err() {
                        self.inner.dropped_notifications.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            "notifications/cancelled" => {
                let id = n
                    .params
                    .as_ref()
                    .and_then(|p| p.get("requestId"))
                    .and_then(|v| serde_json::from_value::<RequestId>(v.clone()).ok());
                let Some(id) = id else { return };
                let target = {
                    let mut st = self.lock();
                    let cf = st
                        .server_requests
                        .iter()
                        .find(|(_, r)| r.upstream_id == id)
                        .map(|(cf, r)| (*cf, r.client));
                    cf.and_then(|(cf, client)| {
                        st.server_requests.remove(&cf);
                        Some((cf, st.clients.get(&client)?.outbound.clone()))
                    })
                };
                if let Some((cf, outbound)) = target {
                    if let Some(params) = n.params.as_mut().and_then(Value::as_object_mut) {
                        params.insert("requestId".into(), Value::from(cf));
                    }
                    let _ = outbound.try_send(Message::Notification(n));
                }
            }
            _ => {
                if n.method.ends_with("/list_changed")
                    && let Some(tx) = &self.inner.list_changed
                {
                    // Nobody listening is not an error.
                    let _ = tx.send(ListChanged {
                        server_id: self.inner.spec.server_id.clone(),
                        org_id: self.inner.spec.org_id.clone(),
                        method: n.method.clone(),
                    });
                }
                let ports: Vec<Reply> = self.lock().clients.values().map(|c| c.outbound.clone()).collect();
                for port in ports {
                    if port.try_send(Message::Notification(n.clone())).is_err() {
                        self.inner.dropped_notifications.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// Delivers a direct link's messages to the session (weakly: the link must not keep the
/// session alive).
struct SessionInbox(std::sync::Weak<Inner>);

impl Inbox for SessionInbox {
    fn deliver(&self, message: Message, related: Option<RequestId>) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let Some(inner) = self.0.upgrade() else {
                return false;
            };
            UpstreamSession { inner }.on_message(message, related).await;
            true
        })
    }
}

/// Reads one link until it closes.
async fn read_link(session: UpstreamSession, mut rx: mpsc::Receiver<LinkEvent>, generation: u64) {
    while let Some(event) = rx.recv().await {
        match event {
            LinkEvent::Message { message, related } => session.on_message(message, related).await,
            LinkEvent::Exited { code, signal } => {
                session.inner.process.send_modify(|p| {
                    p.status = Some("exited");
                    p.exit_code = code.or_else(|| signal.map(|s| 128 + s));
                });
            }
            LinkEvent::Closed { reason } => {
                session.on_closed(generation, &reason).await;
                return;
            }
        }
    }
    session.on_closed(generation, "link ended").await;
}

fn response(id: RequestId, result: Value) -> Message {
    Message::Response(Response {
        jsonrpc: Version,
        id,
        result,
        extra: Map::new(),
    })
}

fn with_id(message: Message, id: RequestId) -> Message {
    match message {
        Message::Response(mut r) => {
            r.id = id;
            Message::Response(r)
        }
        Message::Error(mut e) => {
            e.id = Some(id);
            Message::Error(e)
        }
        other => other,
    }
}

fn cancelled_notification(id: RequestId, reason: &str) -> Message {
    Message::Notification(Notification {
        jsonrpc: Version,
        method: "notifications/cancelled".into(),
        params: Some(serde_json::json!({ "requestId": id, "reason": reason })),
        extra: Map::new(),
    })
}

/// Rewrites `params._meta.progressToken` to a gateway token; returns (gateway token, original).
fn rewrite_progress_token(req: &mut Request, id: i64) -> Option<(String, Value)> {
    let meta = req
        .params
        .as_mut()?
        .as_object_mut()?
        .get_mut("_meta")?
        .as_object_mut()?;
    let original = meta.get("progressToken")?.clone();
    let token = format!("gw-{id}");
    meta.insert("progressToken".into(), Value::String(token.clone()));
    Some((token, original))
}

async fn answer_error(p: Pending, err: &TransportError) {
    let msg = error_message(Some(p.original_id), err.to_error_object());
    if let Some(c) = p.completion {
        c.finish(&msg);
    }
    if let Some(reply) = p.reply {
        let _ = reply.send(msg).await;
    }
}

fn fail_all(pending: HashMap<i64, Pending>, err: &TransportError) {
    let obj: ErrorObject = err.to_error_object();
    for (_, p) in pending {
        let msg = error_message(Some(p.original_id), obj.clone());
        if let Some(c) = p.completion {
            c.finish(&msg);
        }
        if let Some(reply) = p.reply {
            // From a sync context: best effort; a full queue means the client is not reading.
            let _ = reply.try_send(msg);
        }
    }
}

async fn fail_all_vec(pending: Vec<Pending>, err: &TransportError) {
    for p in pending {
        answer_error(p, err).await;
    }
}
