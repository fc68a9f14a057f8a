//! Change propagation (ARCHITECTURE "Change propagation"): every admin write appends a
//! `change_log` row in its own transaction; each process polls `id > last seen` once a second
//! and reloads what changed, so a write through one replica reaches every replica's in-memory
//! caches within about a second, on SQLite and PostgreSQL alike.
//!
//! [`ChangeFeed`] is that poller's output: the built-in caches (servers, policies, API keys,
//! organization limits) react in [`apply`], and anything else that keeps a snapshot (rate-limit
//! rules, namespaces, catalogs) subscribes with [`ChangeFeed::subscribe`]. A subscriber that
//! falls behind gets `RecvError::Lagged` and should reload everything it holds.
//!
//! The poller starts at the newest entry when the process starts (caches load fresh anyway),
//! skips nothing after that, survives store outages (it retries on the next tick and keeps the
//! caches as they are), and prunes entries older than a day once an hour.

use std::sync::Arc;
use std::time::Duration;

use gateway_types::error::error_chain;
use gateway_types::ids::{ApiKeyId, OrgId, ServerId};
use gateway_types::model::ChangeEntry;
use tokio::sync::broadcast;

use crate::state::AppState;

/// How often the change log is polled.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Entries read per query (more are read on the same tick).
const BATCH: u32 = 500;
/// Entries older than this are pruned.
const KEEP: Duration = Duration::from_secs(24 * 3600);
/// How often old entries are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Changes a slow subscriber may fall behind before it is told to reload everything.
const CAPACITY: usize = 1024;

/// The kinds of record the change log names (`change_log.kind`).
pub mod kind {
    /// An organization (plan, limits, slug).
    pub const ORGANIZATION: &str = "organization";
    /// A namespace.
    pub const NAMESPACE: &str = "namespace";
    /// A user.
    pub const USER: &str = "user";
    /// An API key.
    pub const API_KEY: &str = "api_key";
    /// An MCP server.
    pub const SERVER: &str = "server";
    /// A virtual server.
    pub const VIRTUAL_SERVER: &str = "virtual_server";
    /// A rate-limit rule.
    pub const RATE_LIMIT: &str = "rate_limit";
    /// An access policy.
    pub const POLICY: &str = "policy";
    /// A server's capability catalog (a refresh or an approval).
    pub const CATALOG: &str = "catalog";
}

/// One change, as every subscriber sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The organization the record belongs to.
    pub org_id: OrgId,
    /// What kind of record ([`kind`]).
    pub kind: String,
    /// The record's id.
    pub entity_id: String,
    /// `create`, `update` or `delete`.
    pub op: String,
}

impl From<ChangeEntry> for Change {
    fn from(e: ChangeEntry) -> Self {
        Self {
            org_id: e.org_id,
            kind: e.kind,
            entity_id: e.entity_id,
            op: e.op,
        }
    }
}

/// The stream of changes of every organization. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ChangeFeed {
    tx: broadcast::Sender<Arc<Change>>,
}

impl Default for ChangeFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl ChangeFeed {
    /// A feed nobody listens to yet.
    #[must_use]
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
        }
    }

    /// Every change from now on. On `Lagged`, reload everything.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    fn publish(&self, change: Change) {
        // No subscriber is not an error.
        let _ = self.tx.send(Arc::new(change));
    }
}

/// Polls the change log until aborted; run it on the shared runtime.
pub(crate) async fn run(state: AppState) {
    let mut cursor = loop {
        match state.stores.changes.latest_id().await {
            Ok(id) => break id,
            Err(err) => {
                tracing::warn!(error = %error_chain(&err), "cannot read the change log; retrying");
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
    };
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune = tokio::time::Instant::now();
    let mut failing = false;
    loop {
        tick.tick().await;
        match poll(&state, &mut cursor).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("change log readable again");
            }
            Ok(()) => {}
            Err(err) if !failing => {
                failing = true;
                tracing::warn!(error = %error_chain(&err), "cannot read the change log; caches keep their contents");
            }
            Err(_) => {}
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = tokio::time::Instant::now();
            let before = chrono::Utc::now() - chrono::Duration::from_std(KEEP).unwrap_or_default();
            if let Err(err) = state.stores.changes.prune(before).await {
                tracing::warn!(error = %error_chain(&err), "cannot prune the change log");
            }
        }
    }
}

/// Reads and applies everything after `cursor`, advancing it past each applied entry.
async fn poll(state: &AppState, cursor: &mut i64) -> Result<(), gateway_types::store::StoreError> {
    loop {
        let entries = state.stores.changes.since(*cursor, BATCH).await?;
        let full = entries.len() >= BATCH as usize;
        for entry in entries {
            let id = entry.id;
            let change = Change::from(entry);
            apply(state, &change).await;
            state.changes.publish(change);
            *cursor = id;
        }
        if !full {
            return Ok(());
        }
    }
}

/// What this process's own caches do about a change.
async fn apply(state: &AppState, change: &Change) {
    let org = change.org_id;
    match change.kind.as_str() {
        kind::SERVER => {
            let Ok(id) = change.entity_id.parse::<ServerId>() else {
                return;
            };
            let record = match state.stores.servers.get(org, id).await {
                Ok(record) => record,
                Err(err) => {
                    // Unknown state: forget the cached entry so the next lookup asks the store.
                    tracing::warn!(error = %error_chain(&err), "cannot read a changed server");
                    state.servers.invalidate(org, id);
                    return;
                }
            };
            // A server that connects differently now ends its sessions through the cache's
            // callback (see AppState::new); a deleted one ends them here.
            state.servers.apply_change(org, id, record.as_ref());
            if record.is_none() {
                state.hub.drop_server(id);
            }
        }
        kind::POLICY | kind::ORGANIZATION => {
            let result = state
                .policies
                .refresh(
                    org,
                    state.stores.organizations.as_ref(),
                    state.stores.policies.as_ref(),
                )
                .await;
            if let Err(err) = result {
                tracing::warn!(error = %error_chain(&err), "cannot reload policies after a change; the periodic reload will retry");
            }
            if change.kind == kind::ORGANIZATION {
                state.org_limits.forget(org);
            }
        }
        kind::API_KEY if change.op != "create" => {
            if let Ok(id) = change.entity_id.parse::<ApiKeyId>() {
                state.auth.forget_key(id);
            }
        }
        _ => {}
    }
}
