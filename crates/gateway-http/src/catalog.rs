//! Capability catalogs in memory, and the api's discovery job that keeps them fresh.
//!
//! [`Catalogs`] holds every server's catalog (loaded from `server_catalogs` at start, updated
//! on each refresh and on `catalog` entries of the change feed, so every replica serves the
//! same catalog) plus, per server, the pinning mode and the tools withheld under it: the MCP
//! pipeline's guard asks it, from memory only.
//!
//! [`run`] (on the shared runtime) discovers ([`gateway_discovery::catalog::discover`]):
//! - at start, servers never discovered or changed since their last discovery (the
//!   declarative reconciler runs just before);
//! - on `server` create/update entries of the change feed whose record changed since its last
//!   discovery (API writes through any replica; status changes do not count);
//! - on `notifications/*/list_changed` from any live upstream session of this process;
//! - every `discovery.refresh_interval_seconds` (+ a per-server jitter of up to 10 %).
//!
//! Scheduled and change-driven refreshes take the job lock `catalog:<server id>` and re-check
//! the stored row under it, so with several replicas each runs about once. A refresh asked
//! through the API (`POST …/catalog/refresh`) or by a list-changed notification always runs.
//! A server that cannot be reached keeps its catalog and gets `last_error`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use chrono::Utc;
use gateway_discovery::catalog::{self as discovery, DiscoveryError};
use gateway_logging::audit::{Actor, AuditEvent};
use gateway_types::error::error_chain;
use gateway_types::ids::{OrgId, ServerId};
use gateway_types::model::{
    McpServer, PinningMode, ServerCatalog, ServerStatus, ToolChange, ToolChangeStatus,
};
use gateway_types::store::StoreError;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::servers_cache::ResolvedServer;
use crate::state::AppState;

/// Audit actions of this module.
pub mod actions {
    /// A server changed a pinned tool definition.
    pub const TOOL_CHANGED: &str = "catalog.tool_changed";
    /// An administrator approved changed tool definitions.
    pub const APPROVE: &str = "catalog.approve";
}

/// One server's catalog as the gateway serves it.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    /// The catalog.
    pub(crate) catalog: ServerCatalog,
    /// The server's pinning mode.
    pub(crate) mode: PinningMode,
    /// Tools withheld from clients (pending changes under `enforce`).
    pub(crate) withheld: BTreeSet<String>,
}

impl Entry {
    fn new(catalog: ServerCatalog, mode: PinningMode) -> Self {
        let withheld = discovery::withheld(&catalog, mode);
        Self {
            catalog,
            mode,
            withheld,
        }
    }
}

/// Why a refresh was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    /// The API or a list-changed notification: always runs.
    Forced,
    /// The record changed: runs unless it was discovered since.
    Changed,
    /// The schedule: runs unless it was discovered recently.
    Scheduled,
}

/// Every catalog of the process, by server.
#[derive(Debug, Default)]
pub struct Catalogs {
    entries: RwLock<HashMap<ServerId, Arc<Entry>>>,
    /// Serializes refreshes and approvals of one server within the process.
    locks: Mutex<HashMap<ServerId, Arc<tokio::sync::Mutex<()>>>>,
    /// Refreshes asked for from the request path (a live tools/list that differs).
    trigger: Mutex<Option<mpsc::UnboundedSender<(OrgId, ServerId, Why)>>>,
    /// Servers a live-list trigger is queued for (one at a time).
    triggered: Mutex<HashSet<ServerId>>,
}

impl Catalogs {
    /// A server's catalog, if this organization's and known.
    pub(crate) fn get(&self, org: OrgId, server: ServerId) -> Option<Arc<Entry>> {
        self.read()
            .get(&server)
            .filter(|e| e.catalog.org_id == org)
            .cloned()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<ServerId, Arc<Entry>>> {
        self.entries.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn put(&self, catalog: ServerCatalog, mode: PinningMode) -> Arc<Entry> {
        let id = catalog.server_id;
        let entry = Arc::new(Entry::new(catalog, mode));
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Arc::clone(&entry));
        entry
    }

    fn remove(&self, server: ServerId) {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&server);
    }

    fn lock_of(&self, server: ServerId) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(
            self.locks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(server)
                .or_default(),
        )
    }

    /// Whether `tool` of `server` is withheld (changed, not approved, `enforce`).
    pub(crate) fn is_withheld(&self, server: ServerId, tool: &str) -> bool {
        self.read()
            .get(&server)
            .is_some_and(|e| e.withheld.contains(tool))
    }

    /// Removes withheld tools from a `tools/list` result of `server`, and asks for a refresh
    /// when a listed tool differs from its pin and is not yet a known change (a live list saw
    /// it first).
    pub(crate) fn filter_tools(&self, server: ServerId, result: &mut Value) {
        let Some(entry) = self.read().get(&server).cloned() else {
            return;
        };
        let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) else {
            return;
        };
        if !entry.withheld.is_empty() {
            tools.retain(|t| discovery::tool_name(t).is_none_or(|n| !entry.withheld.contains(n)));
        }
        if entry.mode == PinningMode::Off || entry.catalog.pins.is_empty() {
            return;
        }
        let unknown_change = tools.iter().any(|t| {
            let Some(name) = discovery::tool_name(t) else {
                return false;
            };
            let Some(pin) = entry.catalog.pins.get(name) else {
                return false;
            };
            let fp = discovery::fingerprint(&discovery::tool_definition(t));
            fp != pin.fingerprint
                && !entry.catalog.changes.iter().any(|c| {
                    c.tool == name && c.status == ToolChangeStatus::Pending && c.new_fingerprint == fp
                })
        });
        if unknown_change {
            self.trigger(entry.catalog.org_id, server);
        }
    }

    fn trigger(&self, org: OrgId, server: ServerId) {
        if !self
            .triggered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(server)
        {
            return;
        }
        if let Some(tx) = self
            .trigger
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            let _ = tx.send((org, server, Why::Forced));
        }
    }
}

/// Why a refresh through the API failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RefreshError {
    /// The store failed.
    #[error("the store failed")]
    Store(#[from] StoreError),
    /// The server is gone.
    #[error("no such server")]
    NotFound,
}

/// The catalog of a server as the API shows it.
pub(crate) fn view(server: &McpServer, entry: Option<&Entry>) -> Value {
    let mode = PinningMode::of_metadata(&server.metadata);
    let Some(entry) = entry else {
        return json!({
            "server_id": server.id.to_string(),
            "server_name": server.name,
            "discovered": false,
            "pinning": mode.as_str(),
            "protocol_version": null,
            "server_info": null,
            "capabilities": null,
            "instructions": null,
            "tools": [],
            "resources": [],
            "resource_templates": [],
            "prompts": [],
            "counts": {"tools": 0, "resources": 0, "resource_templates": 0, "prompts": 0},
            "fingerprint": null,
            "refreshed_at": null,
            "attempted_at": null,
            "last_error": null,
            "withheld": [],
            "pending_changes": [],
            "changes": [],
        });
    };
    let c = &entry.catalog;
    let pending: Vec<&ToolChange> = c
        .changes
        .iter()
        .filter(|ch| ch.status == ToolChangeStatus::Pending)
        .collect();
    json!({
        "server_id": server.id.to_string(),
        "server_name": server.name,
        "discovered": c.refreshed_at.is_some(),
        "pinning": mode.as_str(),
        "protocol_version": c.protocol_version,
        "server_info": c.server_info,
        "capabilities": c.capabilities,
        "instructions": c.instructions,
        "tools": c.tools,
        "resources": c.resources,
        "resource_templates": c.resource_templates,
        "prompts": c.prompts,
        "counts": {
            "tools": c.tools.len(),
            "resources": c.resources.len(),
            "resource_templates": c.resource_templates.len(),
            "prompts": c.prompts.len(),
        },
        "fingerprint": c.fingerprint,
        "refreshed_at": c.refreshed_at,
        "attempted_at": c.attempted_at,
        "last_error": c.last_error,
        "withheld": discovery::withheld(c, mode),
        "pending_changes": pending,
        "changes": c.changes,
    })
}

/// Discovers `server` now and stores the result (see the module docs for `why`).
async fn refresh(
    state: &AppState,
    org: OrgId,
    id: ServerId,
    why: Why,
) -> Result<Option<Arc<Entry>>, RefreshError> {
    let lock = state.catalogs.lock_of(id);
    let _held = lock.lock().await;
    let job = if why == Why::Forced {
        None
    } else {
        match state.stores.locks.try_lock(&format!("catalog:{id}")).await? {
            Some(job) => Some(job),
            None => return Ok(None),
        }
    };
    let result = refresh_locked(state, org, id, why).await;
    if let Some(job) = job {
        job.release().await;
    }
    result
}

async fn refresh_locked(
    state: &AppState,
    org: OrgId,
    id: ServerId,
    why: Why,
) -> Result<Option<Arc<Entry>>, RefreshError> {
    let Some(record) = state.stores.servers.get(org, id).await? else {
        state.catalogs.remove(id);
        return Err(RefreshError::NotFound);
    };
    let mode = PinningMode::of_metadata(&record.metadata);
    let stored = state.stores.catalogs.get(org, id).await?;
    let interval = refresh_interval(state);
    let skip = match (&stored, why) {
        (_, Why::Forced) | (None, _) => false,
        (Some(c), Why::Changed) => c.attempted_at >= record.updated_at,
        (Some(c), Why::Scheduled) => {
            let age = (Utc::now() - c.attempted_at).to_std().unwrap_or_default();
            age < interval.mul_f64(0.75)
        }
    };
    if skip || (record.status == ServerStatus::Inactive && why != Why::Forced) {
        let entry = stored.map(|c| state.catalogs.put(c, mode));
        return Ok(entry);
    }
    let mut catalog = stored.unwrap_or_else(|| ServerCatalog::empty(org, id, Utc::now()));
    let outcome = match ResolvedServer::open(record.clone(), &state.sealer) {
        Ok(server) => {
            let spec = crate::upstreams::spec_of(&server, state.config.server.max_body_bytes);
            let connector = Arc::clone(state.hub.connectors().for_protocol(spec.protocol));
            let timeout = Duration::from_secs(state.config.discovery.timeout_seconds.max(1));
            discovery::discover(spec, connector, state.runtime.clone(), timeout).await
        }
        Err(err) => {
            tracing::warn!(server.id = %id, error = %error_chain(&err), "cannot open a server's secrets for discovery");
            Err(DiscoveryError::Unreachable)
        }
    };
    let now = Utc::now();
    catalog.attempted_at = now;
    let mut detected = Vec::new();
    match outcome {
        Ok(found) => {
            catalog.fingerprint = Some(discovery::catalog_fingerprint(&found));
            detected = discovery::apply_pins(&mut catalog, &found.tools, mode, now);
            catalog.protocol_version = found.protocol_version;
            catalog.server_info = found.server_info;
            catalog.capabilities = found.capabilities;
            catalog.instructions = found.instructions;
            catalog.tools = found.tools;
            catalog.resources = found.resources;
            catalog.resource_templates = found.resource_templates;
            catalog.prompts = found.prompts;
            catalog.refreshed_at = Some(now);
            catalog.last_error = None;
            tracing::info!(
                org.id = %org,
                server.id = %id,
                server.name = %record.name,
                tools = catalog.tools.len(),
                changed_tools = detected.len(),
                "server catalog discovered"
            );
        }
        Err(err) => {
            tracing::warn!(org.id = %org, server.id = %id, server.name = %record.name, error = %err, "server discovery failed; its catalog is kept");
            catalog.last_error = Some(err.to_string());
        }
    }
    let catalog = match state.stores.catalogs.put(org, catalog.clone()).await {
        Ok(saved) => saved,
        Err(StoreError::NotFound) => {
            state.catalogs.remove(id);
            return Err(RefreshError::NotFound);
        }
        Err(err) => {
            tracing::warn!(server.id = %id, error = %error_chain(&err), "cannot store a server's catalog; serving it from memory");
            catalog
        }
    };
    state
        .catalogs
        .triggered
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&id);
    for change in &detected {
        tracing::warn!(
            org.id = %org,
            server.id = %id,
            server.name = %record.name,
            tool = %change.tool,
            pinning = mode.as_str(),
            "a server changed a pinned tool definition"
        );
        state.auditor.record(
            org,
            AuditEvent::new(actions::TOOL_CHANGED, Actor::system())
                .target("server", id)
                .before(json!({
                    "tool": change.tool,
                    "fingerprint": change.old_fingerprint,
                    "definition": change.old_definition,
                }))
                .after(json!({
                    "tool": change.tool,
                    "fingerprint": change.new_fingerprint,
                    "definition": change.new_definition,
                    "pinning": mode.as_str(),
                    "withheld": mode == PinningMode::Enforce,
                })),
        );
    }
    Ok(Some(state.catalogs.put(catalog, mode)))
}

/// A refresh asked for through the API: runs now, whatever the schedule.
pub(crate) async fn refresh_now(
    state: &AppState,
    org: OrgId,
    id: ServerId,
) -> Result<Option<Arc<Entry>>, RefreshError> {
    refresh(state, org, id, Why::Forced).await
}

/// Approves the pending changes of `tools` (`None`: all); returns the tools approved.
pub(crate) async fn approve(
    state: &AppState,
    server: &McpServer,
    tools: Option<&[String]>,
    by: &str,
) -> Result<(Vec<ToolChange>, Option<Arc<Entry>>), RefreshError> {
    let lock = state.catalogs.lock_of(server.id);
    let _held = lock.lock().await;
    let Some(mut catalog) = state.stores.catalogs.get(server.org_id, server.id).await? else {
        return Ok((Vec::new(), None));
    };
    let approved = discovery::approve(&mut catalog, tools, by, Utc::now());
    if approved.is_empty() {
        let mode = PinningMode::of_metadata(&server.metadata);
        return Ok((approved, Some(state.catalogs.put(catalog, mode))));
    }
    let catalog = match state.stores.catalogs.put(server.org_id, catalog).await {
        Ok(c) => c,
        Err(StoreError::NotFound) => return Err(RefreshError::NotFound),
        Err(e) => return Err(e.into()),
    };
    let mode = PinningMode::of_metadata(&server.metadata);
    Ok((approved, Some(state.catalogs.put(catalog, mode))))
}

fn refresh_interval(state: &AppState) -> Duration {
    Duration::from_secs(state.config.discovery.refresh_interval_seconds.max(10))
}

/// A stable per-server delay of up to 10 % of the interval, so refreshes spread out.
fn jitter(id: ServerId, interval: Duration) -> Duration {
    let spread = (interval.as_millis() / 10).max(1);
    let offset = id.as_uuid().as_u128() % spread;
    Duration::from_millis(u64::try_from(offset).unwrap_or(0))
}

/// Loads every stored catalog into memory (with each server's pinning mode).
async fn load(state: &AppState) -> Result<Vec<McpServer>, StoreError> {
    let servers = state.stores.servers.list_all().await?;
    let modes: HashMap<ServerId, PinningMode> = servers
        .iter()
        .map(|s| (s.id, PinningMode::of_metadata(&s.metadata)))
        .collect();
    for catalog in state.stores.catalogs.list_all().await? {
        let mode = modes
            .get(&catalog.server_id)
            .copied()
            .unwrap_or(PinningMode::Warn);
        state.catalogs.put(catalog, mode);
    }
    Ok(servers)
}

/// Loads the catalogs, then keeps them fresh until aborted; run it on the shared runtime.
pub(crate) async fn run(state: AppState) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(OrgId, ServerId, Why)>();
    *state
        .catalogs
        .trigger
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(tx.clone());
    let mut changes = state.changes.subscribe();
    let mut list_changed = state.hub.subscribe_list_changed();
    let enabled = state.config.discovery.enabled;
    let servers = loop {
        match load(&state).await {
            Ok(servers) => break servers,
            Err(err) => {
                tracing::warn!(error = %error_chain(&err), "cannot load the server catalogs; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    if enabled {
        for s in servers {
            let stale = state
                .catalogs
                .get(s.org_id, s.id)
                .is_none_or(|e| e.catalog.attempted_at < s.updated_at);
            if stale && s.status != ServerStatus::Inactive {
                let _ = tx.send((s.org_id, s.id, Why::Changed));
            }
        }
    }
    let interval = refresh_interval(&state);
    let concurrency = state.config.discovery.concurrency.max(1);
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let queued: Arc<Mutex<HashSet<ServerId>>> = Arc::default();
    let running: Arc<Mutex<HashSet<ServerId>>> = Arc::default();
    let mut tick = tokio::time::interval(Duration::from_secs(5).min(interval / 10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some((org, id, why)) = rx.recv() => {
                if !enabled {
                    continue;
                }
                if !queued.lock().unwrap_or_else(PoisonError::into_inner).insert(id) {
                    continue;
                }
                let state = state.clone();
                let slots = Arc::clone(&slots);
                let queued = Arc::clone(&queued);
                let running = Arc::clone(&running);
                tokio::spawn(async move {
                    let _slot = slots.acquire_owned().await;
                    // Out of the queue before it runs: a list change announced meanwhile
                    // queues another refresh.
                    queued.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                    running.lock().unwrap_or_else(PoisonError::into_inner).insert(id);
                    match refresh(&state, org, id, why).await {
                        Ok(_) | Err(RefreshError::NotFound) => {}
                        Err(err) => tracing::warn!(server.id = %id, error = %error_chain(&err), "catalog refresh failed"),
                    }
                    running.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                });
            }
            change = changes.recv() => match change {
                Ok(c) => on_change(&state, &tx, &c).await,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if let Err(err) = load(&state).await {
                        tracing::warn!(error = %error_chain(&err), "cannot reload the server catalogs");
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            note = list_changed.recv() => if let Ok(note) = note
                && let (Ok(org), Ok(id)) = (note.org_id.parse::<OrgId>(), note.server_id.parse::<ServerId>())
            {
                tracing::info!(server.id = %id, method = %note.method, "upstream list changed; refreshing its catalog");
                let _ = tx.send((org, id, Why::Forced));
            },
            _ = tick.tick() => if enabled {
                let now = Utc::now();
                let busy: HashSet<ServerId> = running
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .chain(queued.lock().unwrap_or_else(PoisonError::into_inner).iter())
                    .copied()
                    .collect();
                let due: Vec<(OrgId, ServerId)> = state
                    .catalogs
                    .read()
                    .values()
                    .filter(|e| !busy.contains(&e.catalog.server_id))
                    .filter(|e| {
                        let age = (now - e.catalog.attempted_at).to_std().unwrap_or_default();
                        age >= interval + jitter(e.catalog.server_id, interval)
                    })
                    .map(|e| (e.catalog.org_id, e.catalog.server_id))
                    .collect();
                for (org, id) in due {
                    let _ = tx.send((org, id, Why::Scheduled));
                }
            },
        }
    }
}

/// What a change-feed entry means for the catalogs.
async fn on_change(
    state: &AppState,
    tx: &mpsc::UnboundedSender<(OrgId, ServerId, Why)>,
    c: &crate::changes::Change,
) {
    let Ok(id) = c.entity_id.parse::<ServerId>() else {
        return;
    };
    match c.kind.as_str() {
        crate::changes::kind::SERVER if c.op == "delete" => state.catalogs.remove(id),
        crate::changes::kind::SERVER => {
            let _ = tx.send((c.org_id, id, Why::Changed));
        }
        crate::changes::kind::CATALOG => {
            // Written by a refresh or an approval here or on another replica.
            let record = state.stores.servers.get(c.org_id, id).await;
            let catalog = state.stores.catalogs.get(c.org_id, id).await;
            match (record, catalog) {
                (Ok(Some(server)), Ok(Some(catalog))) => {
                    state
                        .catalogs
                        .put(catalog, PinningMode::of_metadata(&server.metadata));
                }
                (Ok(None), _) | (_, Ok(None)) => state.catalogs.remove(id),
                (Err(err), _) | (_, Err(err)) => {
                    tracing::warn!(server.id = %id, error = %error_chain(&err), "cannot reload a changed catalog");
                }
            }
        }
        _ => {}
    }
}
