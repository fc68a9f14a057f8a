//! Hot-path server lookup: resolves `{id}` (id or name) to a server record with a short TTL.
//! (Interim version; the registry change adds sealed secrets and explicit invalidation.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use gateway_types::ids::{OrgId, ServerId};
use gateway_types::model::McpServer;
use gateway_types::store::{ServerStore, StoreError};

/// A server with its secrets opened, ready to connect to.
#[derive(Clone)]
pub struct ResolvedServer {
    /// The record.
    pub record: McpServer,
    /// Environment variables (stdio). Secret.
    pub env: Vec<(String, String)>,
    /// Request headers (credentials). Secret.
    pub headers: Vec<(String, String)>,
    /// `per_client` or `shared`.
    pub session_mode: String,
}

impl std::fmt::Debug for ResolvedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedServer")
            .field("id", &self.record.id)
            .field("name", &self.record.name)
            .field("env", &format_args!("[{} redacted]", self.env.len()))
            .field("headers", &format_args!("[{} redacted]", self.headers.len()))
            .field("session_mode", &self.session_mode)
            .finish()
    }
}

type Entries = HashMap<(OrgId, String), (Instant, Arc<ResolvedServer>)>;

/// The cache.
pub struct ServerCache {
    store: Arc<dyn ServerStore>,
    ttl: Duration,
    entries: Mutex<Entries>,
}

impl std::fmt::Debug for ServerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl ServerCache {
    /// A cache over `store`.
    #[must_use]
    pub fn new(store: Arc<dyn ServerStore>, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The server named or identified by `id_or_name` in `org`.
    ///
    /// # Errors
    /// The store is unavailable.
    pub async fn resolve(
        &self,
        org: OrgId,
        id_or_name: &str,
    ) -> Result<Option<Arc<ResolvedServer>>, StoreError> {
        let key = (org, id_or_name.to_owned());
        if let Some((at, s)) = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            && at.elapsed() < self.ttl
        {
            return Ok(Some(Arc::clone(s)));
        }
        let record = match id_or_name.parse::<uuid::Uuid>() {
            Ok(id) => self.store.get(org, ServerId::from_uuid(id)).await?,
            Err(_) => self.store.get_by_name(org, id_or_name).await?,
        };
        let Some(record) = record else { return Ok(None) };
        let session_mode = record
            .metadata
            .get("session_mode")
            .and_then(|v| v.as_str())
            .unwrap_or("per_client")
            .to_owned();
        let resolved = Arc::new(ResolvedServer {
            record,
            env: Vec::new(),
            headers: Vec::new(),
            session_mode,
        });
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, (Instant::now(), Arc::clone(&resolved)));
        Ok(Some(resolved))
    }

    /// Forgets a server (after an update or delete).
    pub fn invalidate(&self, org: OrgId, server: ServerId) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(o, _), (_, s)| !(*o == org && s.record.id == server));
    }
}
