//! The hub: every live client session and upstream session of the process, the limits on
//! them, and the background upkeep (request deadlines, idle expiry, session records).
//!
//! Upstreams are kept per server in `shared` mode (one upstream session for all clients) and
//! per client session in `per_client` mode (for stdio: a process per client session).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use gateway_types::ids::{OrgId, ServerId, SessionId};
use gateway_types::model::{McpSessionPatch, NewMcpSession, SessionProtocol, SessionStatus};
use gateway_types::store::SessionStore;

use crate::client::{ClientSession, ClientTransport, Guard, Owner, SessionBuffers};
use crate::link::{Connectors, UpstreamSpec};
use crate::stdio::ProcessTable;
use crate::upstream::{RestartPolicy, UpstreamSession};

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

#[derive(Default)]
struct Tables {
    sessions: HashMap<SessionId, Arc<ClientSession>>,
    per_org: HashMap<OrgId, u32>,
    shared: HashMap<ServerId, UpstreamSession>,
    shutting_down: bool,
}

/// Every live session of the process.
pub struct Hub {
    connectors: Connectors,
    processes: Arc<ProcessTable>,
    settings: HubSettings,
    tables: Mutex<Tables>,
    store: Option<Arc<dyn SessionStore>>,
    runtime: tokio::runtime::Handle,
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
        Arc::new(Self {
            runtime,
            connectors,
            processes,
            settings,
            tables: Mutex::new(Tables::default()),
            store,
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
        let (upstream, owns) = match mode {
            SessionMode::PerClient => (self.new_upstream(spec), true),
            SessionMode::Shared => {
                let existing = t
                    .shared
                    .get(&server_id)
                    .filter(|u| !matches!(u.phase(), crate::upstream::Phase::Closed))
                    .cloned();
                let upstream = existing.unwrap_or_else(|| {
                    let u = self.new_upstream(spec);
                    t.shared.insert(server_id, u.clone());
                    u
                });
                (upstream, false)
            }
        };
        let session = ClientSession::new(
            owner,
            server_id,
            transport,
            upstream,
            owns,
            guard,
            self.settings.buffers,
        );
        *t.per_org.entry(session.owner().org_id).or_insert(0) += 1;
        t.sessions.insert(session.id(), Arc::clone(&session));
        drop(t);
        self.record_open(&session);
        Ok(session)
    }

    fn new_upstream(&self, spec: UpstreamSpec) -> UpstreamSession {
        let connector = Arc::clone(self.connectors.for_protocol(spec.protocol));
        UpstreamSession::new(spec, connector, self.settings.restart, self.runtime.clone())
    }

    /// A session by id, if it is open and owned by `owner` (anyone else's is "not found").
    #[must_use]
    pub fn get(&self, id: SessionId, owner: &Owner) -> Option<Arc<ClientSession>> {
        let t = self.lock();
        let s = t.sessions.get(&id)?;
        (s.owner().org_id == owner.org_id && s.owner().principal == owner.principal).then(|| Arc::clone(s))
    }

    /// Every open session of an organization (admin views and broadcasts).
    #[must_use]
    pub fn sessions_of(&self, org: OrgId) -> Vec<Arc<ClientSession>> {
        self.lock()
            .sessions
            .values()
            .filter(|s| s.owner().org_id == org)
            .cloned()
            .collect()
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
        if let Some(u) = shared {
            u.close();
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
            let mut ups: Vec<UpstreamSession> = t.shared.values().cloned().collect();
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
            let shared: Vec<UpstreamSession> = t.shared.drain().map(|(_, u)| u).collect();
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
        let Some(store) = self.store.clone() else { return };
        let owner = session.owner().clone();
        let new = NewMcpSession {
            id: session.id(),
            server_id: Some(session.server_id()),
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
        self.runtime.spawn(async move {
            if let Err(err) = store.create(owner.org_id, new).await {
                tracing::warn!(error = %gateway_types::error::error_chain(&err), "could not record an MCP session");
            }
        });
    }

    fn record_close(&self, session: &ClientSession, status: SessionStatus) {
        let Some(store) = self.store.clone() else { return };
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
        self.runtime.spawn(async move {
            if let Err(err) = store.update(org, id, patch).await {
                tracing::debug!(error = %gateway_types::error::error_chain(&err), "could not record the end of an MCP session");
            }
        });
    }
}
