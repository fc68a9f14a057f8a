//! The hub: every live client session and upstream session of the process, the limits on
//! them, and the background upkeep (request deadlines, idle expiry, session records).
//!
//! Upstreams are kept per server in `shared` mode (one upstream session for all clients) and
//! per client session in `per_client` mode (for stdio: a process per client session).
//!
//! Administrators see and reach the sessions of their organization through the hub: a
//! [`HubEvent`] channel of session lifecycle events ([`Hub::subscribe`]; opening and closing
//! publish to it, a lagging subscriber skips, the hub never waits for one), pushes of
//! notifications to the sessions of a [`SessionScope`] ([`Hub::push`]) and the list of running
//! stdio processes ([`Hub::stdio_processes`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use gateway_types::ids::{NamespaceId, OrgId, ServerId, SessionId};
use gateway_types::jsonrpc::{Message, Notification};
use gateway_types::model::{McpSessionPatch, NewMcpSession, ServerProtocol, SessionProtocol, SessionStatus};
use gateway_types::store::SessionStore;
use tokio::sync::broadcast;

use tokio::sync::mpsc;

use crate::client::{ClientSession, ClientTransport, Guard, Owner, SessionBuffers};
use crate::federation::{FederationConnector, MemberSpec, Naming};
use crate::link::{Connectors, UpstreamSpec};
use crate::stdio::ProcessTable;
use crate::upstream::{ListChanged, Phase, RestartPolicy, UpstreamSession};

/// Lifecycle events buffered per subscriber; one that falls further behind skips the oldest.
pub const EVENT_BUFFER: usize = 1024;

/// How clients share an upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SessionMode {
    /// One upstream session per client session (stdio: one process per client). The default:
    /// what the client negotiates is what the upstream sees.
    #[default]
    PerClient,
    /// One upstream session for every client of the server; ids are remapped.
    Shared,
}

impl SessionMode {
    /// Parses `shared` / `per_client`.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "shared" => Some(Self::Shared),
            "per_client" => Some(Self::PerClient),
            _ => None,
        }
    }

    /// The text form (`shared`, `per_client`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::PerClient => "per_client",
        }
    }
}

/// Settings of the hub.
#[derive(Clone, Copy, Debug)]
pub struct HubSettings {
    /// Sessions idle longer than this are closed.
    pub idle_timeout: Duration,
    /// Buffer sizes per session.
    pub buffers: SessionBuffers,
    /// Upstream restart behaviour.
    pub restart: RestartPolicy,
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The organization has as many open sessions as it may.
    #[error("the organization's limit of {limit} open sessions is reached")]
    SessionLimit {
        /// The limit.
        limit: u32,
    },
    /// The hub is shutting down.
    #[error("the gateway is shutting down")]
    ShuttingDown,
}

/// Something that happened to the sessions of an organization (admin event stream).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// The organization it concerns; nobody else may see it.
    pub org_id: OrgId,
    /// The namespace of the server concerned, if any (namespace-confined admins see only theirs).
    pub namespace_id: Option<NamespaceId>,
    /// What happened.
    pub kind: HubEventKind,
}

/// What a [`HubEvent`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HubEventKind {
    /// A client session was opened.
    SessionOpened {
        /// The session.
        session_id: SessionId,
        /// Its server.
        server_id: ServerId,
        /// Where the client came in.
        transport: ClientTransport,
    },
    /// A client session ended (client, idle expiry, unregistered server, shutdown).
    SessionClosed {
        /// The session.
        session_id: SessionId,
        /// Its server.
        server_id: ServerId,
        /// Where the client came in.
        transport: ClientTransport,
    },
    /// A notification was pushed to sessions ([`Hub::push`]).
    Broadcast {
        /// The transport addressed, if one was.
        transport: Option<ClientTransport>,
        /// The server addressed, if one was.
        server_id: Option<ServerId>,
        /// The one session addressed, if one was.
        session_id: Option<SessionId>,
        /// The notification's method.
        method: String,
        /// Sessions whose queue took it.
        delivered: usize,
        /// Sessions whose queue was full or closed.
        dropped: usize,
    },
}

/// Which sessions an admin operation addresses: always one organization; optionally narrowed
/// to a namespace (a namespace-confined credential), a transport, a server, one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionScope {
    /// The organization.
    pub org_id: OrgId,
    /// Only sessions on servers of this namespace.
    pub namespace_id: Option<NamespaceId>,
    /// Only sessions that came in over this transport.
    pub transport: Option<ClientTransport>,
    /// Only sessions on this server.
    pub server_id: Option<ServerId>,
    /// Only this session.
    pub session_id: Option<SessionId>,
}

impl SessionScope {
    /// Every session of an organization.
    #[must_use]
    pub const fn org(org_id: OrgId) -> Self {
        Self {
            org_id,
            namespace_id: None,
            transport: None,
            server_id: None,
            session_id: None,
        }
    }

    fn matches(&self, s: &ClientSession) -> bool {
        let owner = s.owner();
        owner.org_id == self.org_id
            && self.namespace_id.is_none_or(|ns| owner.namespace_id == Some(ns))
            && self.transport.is_none_or(|t| s.transport() == t)
            && self.server_id.is_none_or(|id| s.server_id() == id)
            && self.session_id.is_none_or(|id| s.id() == id)
    }
}

/// What a push achieved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Sessions in the scope.
    pub matched: usize,
    /// Sessions whose queue took the message.
    pub delivered: usize,
    /// Sessions whose queue was full or closed (the message is dropped for them).
    pub dropped: usize,
}

/// A running stdio server process, as admin views show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StdioProcess {
    /// The server.
    pub server_id: ServerId,
    /// Its name.
    pub server_name: String,
    /// The namespace of the server, if any.
    pub namespace_id: Option<NamespaceId>,
    /// The process id (also its process group's id).
    pub pid: u32,
    /// The upstream connection's state.
    pub phase: Phase,
    /// Shared by every client of the server, or one client's own.
    pub mode: SessionMode,
    /// The client session owning it (`per_client` mode).
    pub session_id: Option<SessionId>,
    /// Attached client sessions.
    pub clients: usize,
    /// Requests waiting for the process's answer.
    pub in_flight: usize,
}

/// A server's shared upstream and whose it is.
#[derive(Clone)]
struct Shared {
    upstream: UpstreamSession,
    org_id: OrgId,
    namespace_id: Option<NamespaceId>,
}

#[derive(Default)]
struct Tables {
    sessions: HashMap<SessionId, Arc<ClientSession>>,
    per_org: HashMap<OrgId, u32>,
    shared: HashMap<ServerId, Shared>,
    shutting_down: bool,
}

/// Every live session of the process.
pub struct Hub {
    connectors: Connectors,
    processes: Arc<ProcessTable>,
    settings: HubSettings,
    tables: Mutex<Tables>,
    recorder: Option<mpsc::Sender<Record>>,
    runtime: tokio::runtime::Handle,
    events: broadcast::Sender<HubEvent>,
    list_changed: broadcast::Sender<ListChanged>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Counts for status endpoints and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct HubStats {
    /// Open client sessions.
    pub sessions: usize,
    /// Of them, over Streamable HTTP.
    pub streamable_http: usize,
    /// Over legacy SSE.
    pub sse: usize,
    /// Over WebSocket.
    pub websocket: usize,
    /// Shared upstream sessions.
    pub shared_upstreams: usize,
    /// Running stdio processes.
    pub processes: usize,
}

impl Hub {
    /// A hub over the given connectors; `store` records sessions (off the request path);
    /// `runtime` is the shared runtime where upstream connections live.
    #[must_use]
    pub fn new(
        connectors: Connectors,
        processes: Arc<ProcessTable>,
        settings: HubSettings,
        store: Option<Arc<dyn SessionStore>>,
        runtime: tokio::runtime::Handle,
    ) -> Arc<Self> {
        let recorder = store.map(|store| {
            let (tx, rx) = mpsc::channel(RECORD_QUEUE);
            runtime.spawn(record_sessions(store, rx));
            tx
        });
        Arc::new(Self {
            runtime,
            connectors,
            processes,
            settings,
            tables: Mutex::new(Tables::default()),
            recorder,
            events: broadcast::channel(EVENT_BUFFER).0,
            list_changed: broadcast::channel(EVENT_BUFFER).0,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The process table (stdio).
    #[must_use]
    pub fn processes(&self) -> &Arc<ProcessTable> {
        &self.processes
    }

    /// Opens a client session on `spec`'s server. `max_sessions` is the organization's limit
    /// (0 = none).
    ///
    /// # Errors
    /// The organization's session limit is reached, or the hub is shutting down.
    #[expect(
        clippy::too_many_arguments,
        reason = "everything a session is made of; one call site per transport"
    )]
    pub fn open(
        &self,
        owner: Owner,
        spec: UpstreamSpec,
        server_id: ServerId,
        mode: SessionMode,
        transport: ClientTransport,
        guard: Arc<dyn Guard>,
        max_sessions: u32,
    ) -> Result<Arc<ClientSession>, OpenError> {
        let mut t = self.lock();
        if t.shutting_down {
            return Err(OpenError::ShuttingDown);
        }
        let count = t.per_org.get(&owner.org_id).copied().unwrap_or(0);
        if max_sessions > 0 && count >= max_sessions {
            return Err(OpenError::SessionLimit { limit: max_sessions });
        }
        let spec_is_stdio = spec.protocol == ServerProtocol::Stdio;
        let (upstream, owns) = match mode {
            SessionMode::PerClient => (self.new_upstream(spec), true),
            SessionMode::Shared => {
                let existing = t
                    .shared
                    .get(&server_id)
                    .filter(|s| !matches!(s.upstream.phase(), Phase::Closed))
                    .map(|s| s.upstream.clone());
                let upstream = existing.unwrap_or_else(|| {
                    let u = self.new_upstream(spec);
                    t.shared.insert(
                        server_id,
                        Shared {
                            upstream: u.clone(),
                            org_id: owner.org_id,
                            namespace_id: owner.namespace_id,
                        },
                    );
                    u
                });
                (upstream, false)
            }
        };
        let stdio = owns && spec_is_stdio;
        let session = ClientSession::new(
            owner,
            server_id,
            transport,
            upstream,
            owns,
            false,
            guard,
            self.settings.buffers,
        );
        let session = self.register(t, session);
        if stdio && let Some(recorder) = &self.recorder {
            self.runtime
                .spawn(record_process(Arc::clone(&session), recorder.clone()));
        }
        Ok(session)
    }

    /// Opens a client session on a namespace federation: its upstream is a
    /// [`FederationConnector`] over `members`, private to the session. `namespace` stands in
    /// for the server id (sessions are found by it; the session record names no server).
    ///
    /// # Errors
    /// The organization's session limit is reached, or the hub is shutting down.
    #[expect(
        clippy::too_many_arguments,
        reason = "everything a federated session is made of; one call site"
    )]
    pub fn open_federated(
        &self,
        owner: Owner,
        spec: UpstreamSpec,
        members: Vec<MemberSpec>,
        naming: Naming,
        namespace: ServerId,
        transport: ClientTransport,
        guard: Arc<dyn crate::client::Guard>,
        max_sessions: u32,
    ) -> Result<Arc<ClientSession>, OpenError> {
        let t = self.lock();
        if t.shutting_down {
            return Err(OpenError::ShuttingDown);
        }
        let count = t.per_org.get(&owner.org_id).copied().unwrap_or(0);
        if max_sessions > 0 && count >= max_sessions {
            return Err(OpenError::SessionLimit { limit: max_sessions });
        }
        let connector = Arc::new(FederationConnector::new(
            members,
            self.connectors.clone(),
            self.settings.restart,
            self.runtime.clone(),
            naming,
        ));
        let upstream = UpstreamSession::new(spec, connector, self.settings.restart, self.runtime.clone());
        let session = ClientSession::new(
            owner,
            namespace,
            transport,
            upstream,
            true,
            true,
            guard,
            self.settings.buffers,
        );
        Ok(self.register(t, session))
    }

    /// Adds an opened session to the tables, records and announces it.
    fn register(
        &self,
        mut t: std::sync::MutexGuard<'_, Tables>,
        session: Arc<ClientSession>,
    ) -> Arc<ClientSession> {
        *t.per_org.entry(session.owner().org_id).or_insert(0) += 1;
        t.sessions.insert(session.id(), Arc::clone(&session));
        drop(t);
        self.record_open(&session);
        self.publish(
            &session,
            HubEventKind::SessionOpened {
                session_id: session.id(),
                server_id: session.server_id(),
                transport: session.transport(),
            },
        );
        session
    }

    /// Subscribes to the lifecycle events of every organization (filter by
    /// [`HubEvent::org_id`]). The hub never waits for a subscriber: one more than
    /// [`EVENT_BUFFER`] events behind gets `Lagged` and skips ahead.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<HubEvent> {
        self.events.subscribe()
    }

    fn publish(&self, session: &ClientSession, kind: HubEventKind) {
        // No subscriber is the normal case: nothing to do then.
        let _ = self.events.send(HubEvent {
            at: Utc::now(),
            org_id: session.owner().org_id,
            namespace_id: session.owner().namespace_id,
            kind,
        });
    }

    /// The open sessions in `scope`.
    #[must_use]
    pub fn sessions_in(&self, scope: &SessionScope) -> Vec<Arc<ClientSession>> {
        self.lock()
            .sessions
            .values()
            .filter(|s| scope.matches(s))
            .cloned()
            .collect()
    }

    /// Pushes a notification (never a request or an answer: nothing a client could take for
    /// the answer to one of its requests) to every open session in `scope`, without waiting:
    /// a session whose queue is full or closed misses it (counted as dropped). Publishes a
    /// [`HubEventKind::Broadcast`] event when the scope matched any session.
    pub fn push(&self, scope: &SessionScope, notification: &Notification) -> Delivery {
        let sessions = self.sessions_in(scope);
        let mut delivery = Delivery {
            matched: sessions.len(),
            ..Delivery::default()
        };
        for session in &sessions {
            match session.push(Message::Notification(notification.clone())) {
                Ok(()) => delivery.delivered += 1,
                Err(_) => delivery.dropped += 1,
            }
        }
        if delivery.matched > 0 {
            let _ = self.events.send(HubEvent {
                at: Utc::now(),
                org_id: scope.org_id,
                namespace_id: scope.namespace_id,
                kind: HubEventKind::Broadcast {
                    transport: scope.transport,
                    server_id: scope.server_id,
                    session_id: scope.session_id,
                    method: notification.method.clone(),
                    delivered: delivery.delivered,
                    dropped: delivery.dropped,
                },
            });
        }
        delivery
    }

    /// The shared upstream of a server of `org`, if one exists and is not closed.
    #[must_use]
    pub fn shared_upstream(&self, org: OrgId, server: ServerId) -> Option<UpstreamSession> {
        self.lock()
            .shared
            .get(&server)
            .filter(|s| s.org_id == org && !matches!(s.upstream.phase(), Phase::Closed))
            .map(|s| s.upstream.clone())
    }

    /// The running stdio processes of an organization (optionally of one namespace's
    /// servers): shared upstreams and per-client ones, each with a live process group.
    #[must_use]
    pub fn stdio_processes(&self, org: OrgId, namespace: Option<NamespaceId>) -> Vec<StdioProcess> {
        struct Candidate {
            upstream: UpstreamSession,
            server_id: ServerId,
            namespace_id: Option<NamespaceId>,
            mode: SessionMode,
            session_id: Option<SessionId>,
        }
        let candidates: Vec<Candidate> = {
            let t = self.lock();
            let shared = t
                .shared
                .iter()
                .filter(|(_, s)| s.org_id == org)
                .map(|(id, s)| Candidate {
                    upstream: s.upstream.clone(),
                    server_id: *id,
                    namespace_id: s.namespace_id,
                    mode: SessionMode::Shared,
                    session_id: None,
                });
            let own = t
                .sessions
                .values()
                .filter(|s| s.owns_upstream() && s.owner().org_id == org)
                .map(|s| Candidate {
                    upstream: s.upstream().clone(),
                    server_id: s.server_id(),
                    namespace_id: s.owner().namespace_id,
                    mode: SessionMode::PerClient,
                    session_id: Some(s.id()),
                });
            shared.chain(own).collect()
        };
        let mut out: Vec<StdioProcess> = candidates
            .into_iter()
            .filter(|c| {
                c.upstream.spec().protocol == ServerProtocol::Stdio
                    && namespace.is_none_or(|n| c.namespace_id == Some(n))
            })
            .filter_map(|c| {
                let u = &c.upstream;
                // The upstream's pid is cleared when its link closes; the table says whether
                // the process group is still there.
                let pid = u.pid().filter(|pid| self.processes.is_live(*pid))?;
                Some(StdioProcess {
                    server_id: c.server_id,
                    server_name: u.spec().name.clone(),
                    namespace_id: c.namespace_id,
                    pid,
                    phase: u.phase(),
                    mode: c.mode,
                    session_id: c.session_id,
                    clients: u.clients(),
                    in_flight: u.in_flight(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.server_name.cmp(&b.server_name).then(a.pid.cmp(&b.pid)));
        out
    }

    fn new_upstream(&self, spec: UpstreamSpec) -> UpstreamSession {
        let connector = Arc::clone(self.connectors.for_protocol(spec.protocol));
        UpstreamSession::new(spec, connector, self.settings.restart, self.runtime.clone())
            .with_list_changed(self.list_changed.clone())
    }

    /// The connectors upstream sessions use (for the gateway's own connections, e.g.
    /// capability discovery).
    #[must_use]
    pub fn connectors(&self) -> &Connectors {
        &self.connectors
    }

    /// `notifications/*/list_changed` of every upstream session the hub opened (shared and
    /// per-client) from now on. A lagging subscriber skips.
    #[must_use]
    pub fn subscribe_list_changed(&self) -> broadcast::Receiver<ListChanged> {
        self.list_changed.subscribe()
    }

    /// A session by id, if it is open and owned by `owner` (anyone else's is "not found").
    #[must_use]
    pub fn get(&self, id: SessionId, owner: &Owner) -> Option<Arc<ClientSession>> {
        let t = self.lock();
        let s = t.sessions.get(&id)?;
        (s.owner().org_id == owner.org_id && s.owner().principal == owner.principal).then(|| Arc::clone(s))
    }

    /// Closes a session (client DELETE, disconnect, idle expiry).
    pub fn close(&self, id: SessionId) {
        let session = {
            let mut t = self.lock();
            let s = t.sessions.remove(&id);
            if let Some(s) = &s
                && let Some(c) = t.per_org.get_mut(&s.owner().org_id)
            {
                *c = c.saturating_sub(1);
            }
            s
        };
        if let Some(session) = session {
            session.close();
            self.record_close(&session, SessionStatus::Closed);
            self.publish(
                &session,
                HubEventKind::SessionClosed {
                    session_id: session.id(),
                    server_id: session.server_id(),
                    transport: session.transport(),
                },
            );
        }
    }

    /// Closes the shared upstream of a server (unregistered or changed); per-client sessions of
    /// it are closed too.
    pub fn drop_server(&self, server: ServerId) {
        let (shared, sessions) = {
            let mut t = self.lock();
            let shared = t.shared.remove(&server);
            let ids: Vec<SessionId> = t
                .sessions
                .values()
                .filter(|s| s.server_id() == server)
                .map(|s| s.id())
                .collect();
            (shared, ids)
        };
        for id in sessions {
            self.close(id);
        }
        if let Some(s) = shared {
            s.upstream.close();
        }
    }

    /// Counts for status endpoints.
    #[must_use]
    pub fn stats(&self) -> HubStats {
        let t = self.lock();
        let mut s = HubStats {
            sessions: t.sessions.len(),
            shared_upstreams: t.shared.len(),
            processes: self.processes.total(),
            ..HubStats::default()
        };
        for session in t.sessions.values() {
            match session.transport() {
                ClientTransport::StreamableHttp => s.streamable_http += 1,
                ClientTransport::Sse => s.sse += 1,
                ClientTransport::WebSocket => s.websocket += 1,
                ClientTransport::Rpc => {}
            }
        }
        s
    }

    /// One round of upkeep: answers requests past their deadline and closes idle sessions.
    /// Run it every few hundred milliseconds ([`Self::run_upkeep`]).
    pub async fn upkeep(&self) {
        let now = Instant::now();
        let (upstreams, idle) = {
            let t = self.lock();
            let mut ups: Vec<UpstreamSession> = t.shared.values().map(|s| s.upstream.clone()).collect();
            ups.extend(
                t.sessions
                    .values()
                    .filter(|s| s.owns_upstream())
                    .map(|s| s.upstream().clone()),
            );
            let idle: Vec<SessionId> = t
                .sessions
                .values()
                .filter(|s| s.idle_for() > self.settings.idle_timeout)
                .map(|s| s.id())
                .collect();
            (ups, idle)
        };
        for u in upstreams {
            if u.in_flight() > 0 {
                u.expire(now).await;
            }
        }
        for id in idle {
            tracing::info!(session.id = %id, "closing idle MCP session");
            self.close(id);
        }
    }

    /// Runs [`Self::upkeep`] every 250 ms until the hub shuts down.
    pub async fn run_upkeep(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.lock().shutting_down {
                return;
            }
            self.upkeep().await;
        }
    }

    /// Closes every session and upstream, and kills every stdio process group.
    pub async fn shutdown(&self) {
        let (ids, shared) = {
            let mut t = self.lock();
            t.shutting_down = true;
            let ids: Vec<SessionId> = t.sessions.keys().copied().collect();
            let shared: Vec<UpstreamSession> = t.shared.drain().map(|(_, s)| s.upstream).collect();
            (ids, shared)
        };
        for id in ids {
            self.close(id);
        }
        for u in shared {
            u.close();
        }
        // Give stdio servers their grace period, then make sure no process group survives.
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.processes.total() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.processes.kill_all();
    }

    fn record_open(&self, session: &ClientSession) {
        let Some(recorder) = &self.recorder else { return };
        let owner = session.owner().clone();
        let new = NewMcpSession {
            id: session.id(),
            server_id: (!session.is_federated()).then(|| session.server_id()),
            namespace_id: owner.namespace_id,
            user_id: owner.user_id,
            api_key_id: owner.api_key_id,
            protocol: match session.transport() {
                ClientTransport::StreamableHttp => SessionProtocol::StreamableHttp,
                ClientTransport::Rpc => SessionProtocol::Rpc,
                ClientTransport::Sse => SessionProtocol::Sse,
                ClientTransport::WebSocket => SessionProtocol::Ws,
            },
            protocol_version: None,
            client_info: None,
        };
        record(recorder, Record::Open(owner.org_id, new));
    }

    fn record_close(&self, session: &ClientSession, status: SessionStatus) {
        let Some(recorder) = &self.recorder else { return };
        let org = session.owner().org_id;
        let id = session.id();
        let now = Utc::now();
        let patch = McpSessionPatch {
            status: Some(status),
            protocol_version: session.protocol_version(),
            closed_at: Some(now),
            last_activity_at: Some(now),
            ..McpSessionPatch::default()
        };
        record(recorder, Record::Close(org, id, patch));
    }
}

/// Session records waiting to be written; beyond it records are dropped (counted in the log),
/// never blocking a request.
const RECORD_QUEUE: usize = 4096;

/// A change to the `mcp_sessions` table.
enum Record {
    Open(OrgId, NewMcpSession),
    Close(OrgId, SessionId, McpSessionPatch),
    Update(OrgId, SessionId, McpSessionPatch),
}

/// How long a closed session's record still follows its process (to note it stopped).
const PROCESS_RECORD_GRACE: Duration = Duration::from_secs(10);

/// Records a per-client stdio session's process as it changes: its pid when it starts (and
/// restarts), `exited` with the exit code when it dies, `stopped` when the gateway ends it.
async fn record_process(session: Arc<ClientSession>, recorder: mpsc::Sender<Record>) {
    let mut rx = session.upstream().process_state();
    let org = session.owner().org_id;
    let id = session.id();
    loop {
        let changed = if session.is_closed() {
            match tokio::time::timeout(PROCESS_RECORD_GRACE, rx.changed()).await {
                Ok(r) => r,
                Err(_) => return,
            }
        } else {
            tokio::select! {
                r = rx.changed() => r,
                () = session.closed() => continue,
            }
        };
        if changed.is_err() {
            return;
        }
        let state = *rx.borrow_and_update();
        let patch = McpSessionPatch {
            process_pid: Some(state.pid.and_then(|p| i32::try_from(p).ok())),
            process_status: Some(state.status.map(str::to_owned)),
            exit_code: Some(state.exit_code),
            ..McpSessionPatch::default()
        };
        record(&recorder, Record::Update(org, id, patch));
        if session.is_closed() && state.status != Some("running") {
            return;
        }
    }
}

fn record(recorder: &mpsc::Sender<Record>, rec: Record) {
    if recorder.try_send(rec).is_err() {
        tracing::warn!("MCP session record queue full; a session record was dropped");
    }
}

/// Writes session records in order (a close never overtakes its open), off the request path.
async fn record_sessions(store: Arc<dyn SessionStore>, mut rx: mpsc::Receiver<Record>) {
    while let Some(rec) = rx.recv().await {
        let result = match rec {
            Record::Open(org, new) => store.create(org, new).await.map(|_| ()),
            Record::Close(org, id, patch) | Record::Update(org, id, patch) => {
                store.update(org, id, patch).await.map(|_| ())
            }
        };
        if let Err(err) = result {
            tracing::warn!(error = %gateway_types::error::error_chain(&err), "could not record an MCP session");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::AllowAll;
    use crate::error::TransportError;
    use crate::link::{Connector, Link};

    /// Sessions here never reach their upstream: opening one does not connect.
    #[derive(Debug)]
    struct Unreachable;

    #[async_trait::async_trait]
    impl Connector for Unreachable {
        async fn connect(&self, _spec: &UpstreamSpec) -> Result<Link, TransportError> {
            Err(TransportError::Closed)
        }
    }

    fn hub() -> Arc<Hub> {
        let c: Arc<dyn Connector> = Arc::new(Unreachable);
        Hub::new(
            Connectors {
                stdio: Arc::clone(&c),
                http: Arc::clone(&c),
                sse: Arc::clone(&c),
                ws: c,
            },
            ProcessTable::new(0),
            HubSettings {
                idle_timeout: Duration::from_secs(60),
                buffers: SessionBuffers {
                    outbound: 2,
                    events: 8,
                    event_bytes: 1 << 16,
                },
                restart: RestartPolicy::default(),
            },
            None,
            tokio::runtime::Handle::current(),
        )
    }

    fn spec(org: OrgId, server: ServerId) -> UpstreamSpec {
        UpstreamSpec {
            server_id: server.to_string(),
            name: "s".into(),
            org_id: org.to_string(),
            protocol: ServerProtocol::Stdio,
            url: None,
            command: Some("true".into()),
            args: vec![],
            env: vec![],
            working_dir: None,
            headers: vec![],
            timeout: Duration::from_secs(5),
            max_retries: 0,
            max_message_bytes: 1 << 20,
            legacy_only: false,
        }
    }

    fn open(hub: &Hub, org: OrgId, server: ServerId, transport: ClientTransport) -> Arc<ClientSession> {
        let owner = Owner {
            org_id: org,
            principal: "user:test".into(),
            user_id: None,
            api_key_id: None,
            namespace_id: None,
        };
        hub.open(
            owner,
            spec(org, server),
            server,
            SessionMode::PerClient,
            transport,
            Arc::new(AllowAll),
            0,
        )
        .unwrap()
    }

    fn note(method: &str) -> Notification {
        serde_json::from_value(serde_json::json!({"jsonrpc": "2.0", "method": method})).unwrap()
    }

    #[tokio::test]
    async fn open_and_close_publish_lifecycle_events() {
        let hub = hub();
        let mut rx = hub.subscribe();
        let (org, server) = (OrgId::new(), ServerId::new());
        let s = open(&hub, org, server, ClientTransport::WebSocket);
        hub.close(s.id());
        let opened = rx.recv().await.unwrap();
        assert_eq!(opened.org_id, org);
        assert_eq!(
            opened.kind,
            HubEventKind::SessionOpened {
                session_id: s.id(),
                server_id: server,
                transport: ClientTransport::WebSocket
            }
        );
        let closed = rx.recv().await.unwrap();
        assert!(
            matches!(closed.kind, HubEventKind::SessionClosed { session_id, .. } if session_id == s.id())
        );
    }

    #[tokio::test]
    async fn a_lagging_subscriber_skips_and_never_blocks_the_hub() {
        let hub = hub();
        let mut rx = hub.subscribe();
        let (org, server) = (OrgId::new(), ServerId::new());
        // Twice as many events as the buffer holds; nobody reads meanwhile.
        for _ in 0..EVENT_BUFFER {
            let s = open(&hub, org, server, ClientTransport::Sse);
            hub.close(s.id());
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(n)) if n == EVENT_BUFFER as u64
        ));
        assert!(rx.recv().await.is_ok());
    }

    #[tokio::test]
    async fn push_reaches_only_the_scope_and_counts_full_queues() {
        let hub = hub();
        let (org, other_org) = (OrgId::new(), OrgId::new());
        let (a, b) = (ServerId::new(), ServerId::new());
        let ws_a = open(&hub, org, a, ClientTransport::WebSocket);
        let ws_b = open(&hub, org, b, ClientTransport::WebSocket);
        let sse_a = open(&hub, org, a, ClientTransport::Sse);
        let foreign = open(&hub, other_org, a, ClientTransport::WebSocket);
        let mut events = hub.subscribe();

        let scope = SessionScope {
            transport: Some(ClientTransport::WebSocket),
            ..SessionScope::org(org)
        };
        let d = hub.push(&scope, &note("notifications/message"));
        assert_eq!((d.matched, d.delivered, d.dropped), (2, 2, 0));
        let only_a = SessionScope {
            server_id: Some(a),
            ..scope
        };
        assert_eq!(hub.push(&only_a, &note("notifications/x")).delivered, 1);
        // ws_a's queue (2) is full now: the next push to it is dropped, not waited for.
        let d = hub.push(&only_a, &note("notifications/y"));
        assert_eq!((d.delivered, d.dropped), (0, 1));

        let mut rx = ws_a.take_outbound().unwrap();
        assert!(
            matches!(rx.recv().await, Some(Message::Notification(n)) if n.method == "notifications/message")
        );
        assert_eq!(ws_b.take_outbound().unwrap().len(), 1);
        assert!(sse_a.take_outbound().unwrap().is_empty());
        assert!(foreign.take_outbound().unwrap().is_empty());

        let e = events.recv().await.unwrap();
        assert_eq!(e.org_id, org);
        assert!(matches!(
            e.kind,
            HubEventKind::Broadcast {
                delivered: 2,
                dropped: 0,
                ..
            }
        ));

        // Nobody in scope: nothing pushed, nothing published.
        let none = SessionScope::org(OrgId::new());
        assert_eq!(hub.push(&none, &note("notifications/z")), Delivery::default());
    }
}
