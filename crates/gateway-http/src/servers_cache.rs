//! The server lookup cache of the hot path: `(organization, id or name)` → the server record
//! with its secrets opened, ready to connect to.
//!
//! The MCP endpoints resolve `{id}` in `/servers/{id}/…` through [`ServerCache::resolve`] on
//! every request, so it must not cost a database round trip each time:
//!
//! - entries (hits and misses alike) live for a short TTL ([`DEFAULT_TTL`], 5 s), so another
//!   replica's changes arrive within that time at the latest; the change feed
//!   ([`crate::changes`]) forgets a changed server within about a second;
//! - the `/gateway/servers` handlers call [`ServerCache::invalidate`] after every write, so
//!   this replica sees its own changes at once;
//! - when the store is unavailable, an expired entry is served stale rather than failing the
//!   request (the data plane keeps serving through a database blip, ARCHITECTURE "hot path");
//! - the cache holds at most [`MAX_ENTRIES`] entries; past that, expired entries go first and
//!   then everything, so lookups of made-up names cannot grow it without bound.
//!
//! It also keeps which servers are `down` (health checks failing): the MCP endpoints refuse
//! new sessions and every request on open sessions to those at once ([`ServerCache::is_down`]),
//! loaded at start ([`ServerCache::load_statuses`]) and fed by every record the cache reads and
//! by the change feed, which the worker's status writes reach within about a second.
//!
//! Opened secrets stay in memory only: [`ResolvedServer`]'s `Debug` redacts every environment
//! value and header value.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use gateway_auth::sealing::{SealError, Sealer};
use gateway_types::ids::{OrgId, ServerId};
use gateway_types::model::{McpServer, ServerStatus};
use gateway_types::store::{ServerStore, StoreError};
use serde::Deserialize;

/// How long an entry is used before the store is asked again.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(5);
/// Most entries kept (hits and misses of every organization).
pub(crate) const MAX_ENTRIES: usize = 10_000;
/// `metadata.session_mode` when the record has none.
pub(crate) const DEFAULT_SESSION_MODE: &str = "per_client";

/// A server ready to connect to: the record plus its opened secrets.
#[derive(Clone)]
pub(crate) struct ResolvedServer {
    /// The stored record (`environment` and `credentials` still sealed in it).
    pub(crate) record: McpServer,
    /// The opened environment of a stdio server, sorted by name.
    pub(crate) env: Vec<(String, String)>,
    /// Headers to send upstream: the configured `credentials.headers`, then
    /// `Authorization: Bearer …` from `credentials.bearer_token`.
    pub(crate) headers: Vec<(String, String)>,
    /// `per_client` (one upstream session per client session) or `shared`.
    pub(crate) session_mode: String,
}

impl fmt::Debug for ResolvedServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |pairs: &[(String, String)]| -> Vec<String> {
            pairs.iter().map(|(k, _)| format!("{k}=[REDACTED]")).collect()
        };
        f.debug_struct("ResolvedServer")
            .field("id", &self.record.id)
            .field("org_id", &self.record.org_id)
            .field("name", &self.record.name)
            .field("protocol", &self.record.protocol)
            .field("env", &redacted(&self.env))
            .field("headers", &redacted(&self.headers))
            .field("session_mode", &self.session_mode)
            .finish_non_exhaustive()
    }
}

/// The sealed `credentials` document: what `POST /gateway/servers` accepts.
#[derive(Debug, Default, Deserialize)]
struct CredentialsDoc {
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    bearer_token: Option<String>,
}

/// Why a record's secrets could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    /// The sealed value could not be opened (unknown key, tampering).
    #[error("cannot open the {field} of server {server}")]
    Seal {
        /// `environment` or `credentials`.
        field: &'static str,
        /// The server.
        server: ServerId,
        /// Why.
        #[source]
        source: SealError,
    },
    /// The opened value is not the JSON document it should be.
    #[error("the opened {field} of server {server} is not a valid document")]
    Shape {
        /// `environment` or `credentials`.
        field: &'static str,
        /// The server.
        server: ServerId,
    },
}

impl ResolvedServer {
    /// Opens the record's secrets.
    ///
    /// # Errors
    /// A secret cannot be opened with the configured keys, or is not the expected document.
    pub(crate) fn open(record: McpServer, sealer: &Sealer) -> Result<Self, OpenError> {
        let id = record.id;
        let env = match &record.environment {
            None => Vec::new(),
            Some(sealed) => {
                let text = sealer.open(sealed).map_err(|source| OpenError::Seal {
                    field: "environment",
                    server: id,
                    source,
                })?;
                let map: std::collections::BTreeMap<String, String> =
                    serde_json::from_str(&text).map_err(|_| OpenError::Shape {
                        field: "environment",
                        server: id,
                    })?;
                map.into_iter().collect()
            }
        };
        let headers = match &record.credentials {
            None => Vec::new(),
            Some(sealed) => {
                let text = sealer.open(sealed).map_err(|source| OpenError::Seal {
                    field: "credentials",
                    server: id,
                    source,
                })?;
                let doc: CredentialsDoc = serde_json::from_str(&text).map_err(|_| OpenError::Shape {
                    field: "credentials",
                    server: id,
                })?;
                let mut headers: Vec<(String, String)> = doc.headers.into_iter().collect();
                if let Some(token) = doc.bearer_token {
                    headers.push(("Authorization".to_owned(), format!("Bearer {token}")));
                }
                headers
            }
        };
        let session_mode = session_mode_of(&record).to_owned();
        Ok(Self {
            record,
            env,
            headers,
            session_mode,
        })
    }
}

/// `metadata.session_mode` of a record, or the default.
pub(crate) fn session_mode_of(record: &McpServer) -> &str {
    record
        .metadata
        .get("session_mode")
        .and_then(serde_json::Value::as_str)
        .unwrap_or(DEFAULT_SESSION_MODE)
}

/// One cached answer: a server, or "no such server".
struct Entry {
    value: Option<Arc<ResolvedServer>>,
    fetched_at: Instant,
}

/// Server lookups by organization and id or name, cached for a short TTL.
pub(crate) struct ServerCache {
    store: Arc<dyn ServerStore>,
    sealer: Arc<Sealer>,
    ttl: Duration,
    entries: RwLock<HashMap<(OrgId, String), Entry>>,
    /// Bumped by every invalidation: a lookup that started before one does not cache what it
    /// read (it may predate the write).
    generation: AtomicU64,
    /// Servers whose status is `down` (or the older `error`).
    down: RwLock<HashSet<ServerId>>,
    /// How each server handed out connects ([`connection_print`]), to notice changes.
    connections: Mutex<HashMap<ServerId, u64>>,
    /// Told when a server handed out connects differently now.
    on_change: Option<Box<dyn Fn(ServerId) + Send + Sync>>,
}

impl fmt::Debug for ServerCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCache")
            .field("ttl", &self.ttl)
            .field("entries", &self.len())
            .finish_non_exhaustive()
    }
}

impl ServerCache {
    /// A cache over `store` whose entries live for `ttl`.
    pub(crate) fn new(store: Arc<dyn ServerStore>, sealer: Arc<Sealer>, ttl: Duration) -> Self {
        Self {
            store,
            sealer,
            ttl,
            entries: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            down: RwLock::new(HashSet::new()),
            connections: Mutex::new(HashMap::new()),
            on_change: None,
        }
    }

    /// Whether `server` is down: its health checks fail, and calls to it are refused at once
    /// until it recovers. An in-memory lookup, for the request path.
    pub(crate) fn is_down(&self, server: ServerId) -> bool {
        self.down
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&server)
    }

    /// How many servers are down now (for the `gateway_upstreams_down` gauge).
    pub(crate) fn down_count(&self) -> usize {
        self.down.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Records a server's current status (from a record just read).
    pub(crate) fn note_status(&self, server: ServerId, status: ServerStatus) {
        let down = matches!(status, ServerStatus::Down | ServerStatus::Error);
        let mut set = self.down.write().unwrap_or_else(PoisonError::into_inner);
        if down {
            set.insert(server);
        } else {
            set.remove(&server);
        }
    }

    /// Records the status of every server (at start).
    ///
    /// # Errors
    /// The store failed.
    pub(crate) async fn load_statuses(&self) -> Result<(), StoreError> {
        let all = self.store.list_all().await?;
        let down: HashSet<ServerId> = all
            .iter()
            .filter(|s| matches!(s.status, ServerStatus::Down | ServerStatus::Error))
            .map(|s| s.id)
            .collect();
        *self.down.write().unwrap_or_else(PoisonError::into_inner) = down;
        Ok(())
    }

    fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// The server of `org` whose id or name is `id_or_name`, with its secrets opened; `None`
    /// when there is none (another organization's server included).
    ///
    /// A text that parses as a UUID is looked up as an id (names never parse as one).
    ///
    /// # Errors
    /// The store failed and nothing usable is cached, or the record's secrets cannot be opened
    /// with the configured keys ([`StoreError::Internal`]).
    pub(crate) async fn resolve(
        &self,
        org: OrgId,
        id_or_name: &str,
    ) -> Result<Option<Arc<ResolvedServer>>, StoreError> {
        let key = (org, id_or_name.to_owned());
        let generation = self.generation.load(Ordering::Acquire);
        let stale = {
            let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
            match entries.get(&key) {
                Some(e) if e.fetched_at.elapsed() < self.ttl => return Ok(e.value.clone()),
                Some(e) => Some(e.value.clone()),
                None => None,
            }
        };
        let fetched = match id_or_name.parse::<ServerId>() {
            Ok(id) => self.store.get(org, id).await,
            Err(_) => self.store.get_by_name(org, id_or_name).await,
        };
        let record = match fetched {
            Ok(record) => record,
            Err(err @ StoreError::Unavailable(_)) => {
                return match stale {
                    Some(value) => {
                        tracing::warn!(
                            org.id = %org,
                            error.chain = gateway_types::error::error_chain(&err),
                            "store unavailable; serving a cached server lookup past its lifetime"
                        );
                        Ok(value)
                    }
                    None => Err(err),
                };
            }
            Err(err) => return Err(err),
        };
        if let Some(r) = &record {
            self.note_status(r.id, r.status);
        }
        let value = match record {
            None => None,
            Some(record) => {
                self.learn(&record);
                Some(Arc::new(
                    ResolvedServer::open(record, &self.sealer)
                        .map_err(|e| StoreError::Internal(Box::new(e)))?,
                ))
            }
        };
        self.insert(key, value.clone(), generation);
        Ok(value)
    }

    fn insert(&self, key: (OrgId, String), value: Option<Arc<ResolvedServer>>, generation: u64) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            let ttl = self.ttl;
            entries.retain(|_, e| e.fetched_at.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            key,
            Entry {
                value,
                fetched_at: Instant::now(),
            },
        );
    }

    /// Forgets everything cached about `server` of `org` (by id and by name), and every
    /// cached miss of `org` (a created or renamed server may answer one of them now). Call it
    /// after every write.
    pub(crate) fn invalidate(&self, org: OrgId, server: ServerId) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.retain(|(o, _), e| {
            *o != org
                || e.value
                    .as_ref()
                    .is_some_and(|resolved| resolved.record.id != server)
        });
    }

    /// Calls `f` with a server's id whenever this cache learns that the server now connects
    /// differently from the version it handed out before (live sessions on it must end).
    pub(crate) fn on_connection_change(mut self, f: impl Fn(ServerId) + Send + Sync + 'static) -> Self {
        self.on_change = Some(Box::new(f));
        self
    }

    /// Remembers how a server connects; tells [`Self::on_connection_change`]'s callback when
    /// that differs from what was handed out before.
    fn learn(&self, record: &McpServer) {
        let print = connection_print(record);
        let before = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(record.id, print);
        if before.is_some_and(|b| b != print)
            && let Some(f) = &self.on_change
        {
            f(record.id);
        }
    }

    /// Applies a change another writer made (the change feed): forgets the server's entries
    /// and, for a server this process has handed out, learns its new version (`None`: gone).
    pub(crate) fn apply_change(&self, org: OrgId, server: ServerId, now: Option<&McpServer>) {
        self.invalidate(org, server);
        // A status written elsewhere (the health checks) applies at once; a server gone is not down.
        match now {
            Some(record) => self.note_status(record.id, record.status),
            None => self.note_status(server, ServerStatus::Active),
        }
        let known = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&server);
        match now {
            Some(record) if known => self.learn(record),
            Some(_) => {}
            None => {
                self.connections
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&server);
            }
        }
    }
}

/// A fingerprint of how a server is reached (status and descriptive fields aside): two
/// versions with the same print connect alike.
fn connection_print(r: &McpServer) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    r.protocol.as_str().hash(&mut h);
    r.url.hash(&mut h);
    r.command.hash(&mut h);
    r.args.hash(&mut h);
    r.environment.as_ref().map(|s| &s.0).hash(&mut h);
    r.credentials.as_ref().map(|s| &s.0).hash(&mut h);
    r.working_dir.hash(&mut h);
    r.timeout_seconds.hash(&mut h);
    r.max_retries.hash(&mut h);
    session_mode_of(r).hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_store::test_support::TestDb;
    use gateway_types::config::SecretsConfig;
    use gateway_types::model::{
        McpServerPatch, NewMcpServer, NewOrganization, Plan, RecordSource, ServerProtocol, ServerStatus,
    };
    use secrecy::SecretString;
    use serde_json::json;

    fn sealer() -> Arc<Sealer> {
        Arc::new(
            Sealer::from_config(&SecretsConfig {
                master_key: Some(SecretString::from(gateway_types::config::DEVELOPMENT_MASTER_KEY)),
                ..SecretsConfig::default()
            })
            .unwrap(),
        )
    }

    async fn fixture(db: &TestDb, sealer: &Sealer, slug: &str) -> (OrgId, McpServer) {
        let org = db
            .stores()
            .organizations
            .create(NewOrganization {
                name: slug.into(),
                slug: slug.into(),
                plan: Plan::Team,
            })
            .await
            .unwrap()
            .id;
        let server = db
            .stores()
            .servers
            .create(
                org,
                NewMcpServer {
                    namespace_id: None,
                    name: "everything".into(),
                    description: None,
                    protocol: ServerProtocol::Http,
                    url: Some("https://mcp.example.com/mcp".into()),
                    command: None,
                    args: vec![],
                    environment: Some(sealer.seal_json(&json!({"B": "2", "A": "1"})).unwrap()),
                    credentials: Some(
                        sealer
                            .seal_json(&json!({"headers": {"X-Api-Key": "hdr-secret"}, "bearer_token": "tok-secret"}))
                            .unwrap(),
                    ),
                    working_dir: None,
                    timeout_seconds: 30,
                    max_retries: 3,
                    status: ServerStatus::Active,
                    health_check_url: None,
                    tags: vec![],
                    metadata: json!({"session_mode": "shared"}),
                    source: RecordSource::Api,
                },
            )
            .await
            .unwrap();
        (org, server)
    }

    #[tokio::test]
    async fn resolves_by_id_and_name_with_secrets_opened() {
        let db = TestDb::sqlite().await;
        let sealer = sealer();
        let (org, server) = fixture(&db, &sealer, "acme").await;
        let (other_org, _) = fixture(&db, &sealer, "globex").await;
        let cache = ServerCache::new(db.stores().servers.clone(), sealer, DEFAULT_TTL);

        let by_name = cache.resolve(org, "everything").await.unwrap().unwrap();
        let by_id = cache.resolve(org, &server.id.to_string()).await.unwrap().unwrap();
        assert_eq!(by_name.record.id, server.id);
        assert_eq!(by_id.record.id, server.id);
        assert_eq!(
            by_name.env,
            [("A".to_owned(), "1".to_owned()), ("B".to_owned(), "2".to_owned())]
        );
        assert_eq!(
            by_name.headers,
            [
                ("X-Api-Key".to_owned(), "hdr-secret".to_owned()),
                ("Authorization".to_owned(), "Bearer tok-secret".to_owned())
            ]
        );
        assert_eq!(by_name.session_mode, "shared");

        // Another organization's server is not there, by id or by name.
        assert!(
            cache
                .resolve(other_org, &server.id.to_string())
                .await
                .unwrap()
                .is_none()
        );
        assert_ne!(
            cache
                .resolve(other_org, "everything")
                .await
                .unwrap()
                .unwrap()
                .record
                .id,
            server.id
        );
        assert!(cache.resolve(org, "nope").await.unwrap().is_none());

        let debug = format!("{by_name:?}");
        assert!(!debug.contains("secret") && !debug.contains("\"1\""), "{debug}");
        assert!(debug.contains("X-Api-Key=[REDACTED]"), "{debug}");
    }

    #[tokio::test]
    async fn entries_live_until_their_ttl_or_an_invalidation() {
        let db = TestDb::sqlite().await;
        let sealer = sealer();
        let (org, server) = fixture(&db, &sealer, "acme").await;
        let store = db.stores().servers.clone();
        let cache = ServerCache::new(store.clone(), sealer.clone(), Duration::from_secs(3600));
        assert!(
            cache.resolve(org, "renamed").await.unwrap().is_none(),
            "a miss is cached too"
        );
        let before = cache.resolve(org, "everything").await.unwrap().unwrap();
        assert_eq!(before.session_mode, "shared");

        store
            .update(
                org,
                server.id,
                McpServerPatch {
                    name: Some("renamed".into()),
                    metadata: Some(json!({})),
                    ..McpServerPatch::default()
                },
            )
            .await
            .unwrap();
        let cached = cache.resolve(org, "everything").await.unwrap().unwrap();
        assert_eq!(
            cached.record.name, "everything",
            "within the TTL, the cached entry"
        );
        assert!(cache.resolve(org, "renamed").await.unwrap().is_none());

        cache.invalidate(org, server.id);
        assert!(cache.resolve(org, "everything").await.unwrap().is_none());
        let after = cache.resolve(org, "renamed").await.unwrap().unwrap();
        assert_eq!(after.session_mode, DEFAULT_SESSION_MODE);

        // With no lifetime, every lookup asks the store.
        let eager = ServerCache::new(store.clone(), sealer, Duration::ZERO);
        assert!(eager.resolve(org, "renamed").await.unwrap().is_some());
        store.delete(org, server.id).await.unwrap();
        assert!(eager.resolve(org, "renamed").await.unwrap().is_none());
    }

    /// The real store, with lookups that fail as an outage would while `down` is set.
    struct Flaky {
        inner: Arc<dyn ServerStore>,
        down: std::sync::atomic::AtomicBool,
    }

    impl Flaky {
        fn outage<T>(&self) -> Option<Result<T, StoreError>> {
            self.down.load(Ordering::SeqCst).then(|| {
                Err(StoreError::Unavailable(Box::new(std::io::Error::other(
                    "connection refused",
                ))))
            })
        }
    }

    #[async_trait::async_trait]
    impl ServerStore for Flaky {
        async fn create(&self, org: OrgId, new: NewMcpServer) -> Result<McpServer, StoreError> {
            self.inner.create(org, new).await
        }
        async fn get(&self, org: OrgId, id: ServerId) -> Result<Option<McpServer>, StoreError> {
            match self.outage() {
                Some(err) => err,
                None => self.inner.get(org, id).await,
            }
        }
        async fn get_by_name(&self, org: OrgId, name: &str) -> Result<Option<McpServer>, StoreError> {
            match self.outage() {
                Some(err) => err,
                None => self.inner.get_by_name(org, name).await,
            }
        }
        async fn list(
            &self,
            org: OrgId,
            filter: gateway_types::model::ServerFilter,
            page: gateway_types::model::Page,
        ) -> Result<gateway_types::model::Paged<McpServer>, StoreError> {
            self.inner.list(org, filter, page).await
        }
        async fn list_all(&self) -> Result<Vec<McpServer>, StoreError> {
            self.inner.list_all().await
        }
        async fn count(&self, org: OrgId) -> Result<u64, StoreError> {
            self.inner.count(org).await
        }
        async fn update(
            &self,
            org: OrgId,
            id: ServerId,
            patch: McpServerPatch,
        ) -> Result<McpServer, StoreError> {
            self.inner.update(org, id, patch).await
        }
        async fn delete(&self, org: OrgId, id: ServerId) -> Result<(), StoreError> {
            self.inner.delete(org, id).await
        }
        async fn set_status(
            &self,
            org: OrgId,
            id: ServerId,
            expected: ServerStatus,
            to: ServerStatus,
        ) -> Result<bool, StoreError> {
            self.inner.set_status(org, id, expected, to).await
        }
    }

    #[tokio::test]
    async fn an_outage_serves_expired_entries_and_fails_only_what_was_never_cached() {
        let db = TestDb::sqlite().await;
        let sealer = sealer();
        let (org, server) = fixture(&db, &sealer, "acme").await;
        let flaky = Arc::new(Flaky {
            inner: db.stores().servers.clone(),
            down: std::sync::atomic::AtomicBool::new(false),
        });
        let cache = ServerCache::new(flaky.clone(), sealer, Duration::ZERO);
        assert!(cache.resolve(org, "everything").await.unwrap().is_some());
        assert!(cache.resolve(org, "missing").await.unwrap().is_none());

        flaky.down.store(true, Ordering::SeqCst);
        let stale = cache.resolve(org, "everything").await.unwrap().unwrap();
        assert_eq!(stale.record.id, server.id, "expired, but better than nothing");
        assert!(cache.resolve(org, "missing").await.unwrap().is_none());
        let err = cache.resolve(org, &server.id.to_string()).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Unavailable(_)),
            "never looked up: {err:?}"
        );

        flaky.down.store(false, Ordering::SeqCst);
        assert!(
            cache
                .resolve(org, &server.id.to_string())
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn secrets_sealed_with_an_unknown_key_are_an_error_not_a_miss() {
        let db = TestDb::sqlite().await;
        let (org, _) = fixture(&db, &sealer(), "acme").await;
        let other = Arc::new(
            Sealer::from_config(&SecretsConfig {
                key_id: "k2".into(),
                master_key: Some(SecretString::from("cHJvZHVjdGlvbi1rZXktb2YtMzItYnl0ZXMtLS0tLS0=")),
                ..SecretsConfig::default()
            })
            .unwrap(),
        );
        let cache = ServerCache::new(db.stores().servers.clone(), other, DEFAULT_TTL);
        let err = cache.resolve(org, "everything").await.unwrap_err();
        assert!(matches!(err, StoreError::Internal(_)), "{err:?}");
        let chain = gateway_types::error::error_chain(&err);
        assert!(chain.contains("\"k1\""), "{chain}");
    }
}
