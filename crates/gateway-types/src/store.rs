//! Storage traits, one per aggregate.
//!
//! `gateway-store` implements them on SQLite and PostgreSQL; domain crates and the HTTP layer
//! see only these traits (as `Arc<dyn …>` inside [`Stores`]). The hot path never calls them:
//! what requests need is cached in memory and refreshed through the change log.
//!
//! Contracts shared by every trait:
//! - Every tenant-owned method takes the caller's [`OrgId`]; a row of another organization
//!   behaves exactly like a missing row ([`StoreError::NotFound`], or `None` from finders).
//! - Finders return `Ok(None)` for "no such row"; an outage is always an `Err`, never `None`.
//! - Uniqueness violations are [`StoreError::Conflict`] naming what collided.
//! - Every create/update/delete of configuration (organizations, namespaces, users, API keys,
//!   servers, virtual servers, rate limits, policies) appends a [`ChangeEntry`] in the same transaction.
//! - Lists are ordered deterministically (documented per method).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::BoxError;
use crate::ids::{
    ApiKeyId, NamespaceId, OrgId, PolicyId, RateLimitId, RefreshTokenId, ServerId, SessionId, TokenFamilyId,
    UserId, VirtualServerId,
};
use crate::model::{
    ApiKey, AuditLog, ChangeEntry, Granularity, HealthCheck, LogAggregate, LogRecord, McpServer,
    McpServerPatch, McpSession, McpSessionPatch, Namespace, NamespacePatch, NewApiKey, NewAuditLog,
    NewHealthCheck, NewMcpServer, NewMcpSession, NewNamespace, NewOrganization, NewPolicy, NewRateLimitRule,
    NewRefreshToken, NewUser, NewVirtualServer, Organization, OrganizationPatch, Page, Paged, PolicyPatch,
    RateLimitRule, RateLimitRulePatch, RateLimitUsage, RefreshToken, ServerCatalog, ServerFilter,
    ServerStats, ServerStatsDelta, ServerStatus, StoredPolicy, User, UserPatch, VirtualServer,
    VirtualServerPatch,
};

/// Errors of every storage trait. No driver type crosses this boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such row (or it belongs to another organization).
    #[error("not found")]
    NotFound,
    /// A uniqueness constraint was violated.
    #[error("conflict: {what} already exists")]
    Conflict {
        /// What collided, in client-safe words (`"namespace slug"`).
        what: String,
    },
    /// A limit of the organization would be exceeded (`organizations.max_servers`).
    #[error("limit reached: at most {limit} {what}")]
    LimitReached {
        /// What is limited, in client-safe words (`"servers"`).
        what: String,
        /// The limit.
        limit: i64,
    },
    /// The database cannot be reached or timed out; retrying may help.
    #[error("store unavailable")]
    Unavailable(#[source] BoxError),
    /// Anything else (a bug, corrupt data).
    #[error("store internal error")]
    Internal(#[source] BoxError),
}

/// Result alias of the storage traits.
pub type StoreResult<T> = Result<T, StoreError>;

/// Organizations (tenants). Not tenant-scoped: callers are system code or super-admins.
#[async_trait]
pub trait OrganizationStore: Send + Sync {
    /// Creates an organization with its plan's default limits. Conflict on a taken slug.
    async fn create(&self, new: NewOrganization) -> StoreResult<Organization>;
    /// By id.
    async fn get(&self, id: OrgId) -> StoreResult<Option<Organization>>;
    /// By slug.
    async fn get_by_slug(&self, slug: &str) -> StoreResult<Option<Organization>>;
    /// All organizations, ordered by slug.
    async fn list(&self) -> StoreResult<Vec<Organization>>;
    /// Applies a patch; NotFound if missing.
    async fn update(&self, id: OrgId, patch: OrganizationPatch) -> StoreResult<Organization>;
    /// Deletes the organization and everything it owns.
    async fn delete(&self, id: OrgId) -> StoreResult<()>;
}

/// Namespaces of an organization.
#[async_trait]
pub trait NamespaceStore: Send + Sync {
    /// Creates a namespace. Conflict on a slug taken in this organization.
    async fn create(&self, org: OrgId, new: NewNamespace) -> StoreResult<Namespace>;
    /// By id.
    async fn get(&self, org: OrgId, id: NamespaceId) -> StoreResult<Option<Namespace>>;
    /// By slug.
    async fn get_by_slug(&self, org: OrgId, slug: &str) -> StoreResult<Option<Namespace>>;
    /// A page, ordered by slug.
    async fn list(&self, org: OrgId, page: Page) -> StoreResult<Paged<Namespace>>;
    /// Applies a patch.
    async fn update(&self, org: OrgId, id: NamespaceId, patch: NamespacePatch) -> StoreResult<Namespace>;
    /// Deletes; servers in it lose their namespace, keys scoped to it are deleted.
    async fn delete(&self, org: OrgId, id: NamespaceId) -> StoreResult<()>;
    /// Every namespace of the organization, ordered by slug (for reconciling configuration).
    async fn list_all(&self, org: OrgId) -> StoreResult<Vec<Namespace>>;
}

/// User accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user; the email is stored lower-cased. Conflict on a taken email.
    async fn create(&self, org: OrgId, new: NewUser) -> StoreResult<User>;
    /// By id.
    async fn get(&self, org: OrgId, id: UserId) -> StoreResult<Option<User>>;
    /// By email, case-insensitively, across organizations: the one unscoped finder, because
    /// login names no organization.
    async fn find_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    /// A page, ordered by email.
    async fn list(&self, org: OrgId, page: Page) -> StoreResult<Paged<User>>;
    /// Applies a patch.
    async fn update(&self, org: OrgId, id: UserId, patch: UserPatch) -> StoreResult<User>;
    /// Deletes the user, their keys and tokens.
    async fn delete(&self, org: OrgId, id: UserId) -> StoreResult<()>;
    /// Resets the failure counter and lock, and stamps `last_login_at`.
    async fn record_login_success(&self, org: OrgId, id: UserId, at: DateTime<Utc>) -> StoreResult<()>;
    /// Increments the failure counter and sets (or clears) the lock; returns the new count.
    async fn record_login_failure(
        &self,
        org: OrgId,
        id: UserId,
        locked_until: Option<DateTime<Utc>>,
    ) -> StoreResult<i32>;
}

/// API keys (user and app-to-app).
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Stores a key's metadata and hash. Conflict if the hash exists.
    async fn create(&self, org: OrgId, new: NewApiKey) -> StoreResult<ApiKey>;
    /// By id.
    async fn get(&self, org: OrgId, id: ApiKeyId) -> StoreResult<Option<ApiKey>>;
    /// By hash, across organizations (authentication). Returns revoked and expired keys too:
    /// the caller decides.
    async fn find_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>>;
    /// Keys of the organization, optionally of one user, newest first.
    async fn list(&self, org: OrgId, user: Option<UserId>) -> StoreResult<Vec<ApiKey>>;
    /// Marks revoked (idempotent: revoking twice keeps the first time).
    async fn revoke(&self, org: OrgId, id: ApiKeyId, at: DateTime<Utc>) -> StoreResult<()>;
    /// Batch update of `last_used_at` (a later time wins); unknown ids are ignored.
    async fn touch_last_used(&self, uses: &[(ApiKeyId, DateTime<Utc>)]) -> StoreResult<()>;
}

/// Refresh tokens and their rotation families.
#[async_trait]
pub trait RefreshTokenStore: Send + Sync {
    /// Stores a new token.
    async fn create(&self, org: OrgId, new: NewRefreshToken) -> StoreResult<RefreshToken>;
    /// By hash, across organizations (the token is the credential).
    async fn find_by_hash(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>>;
    /// Atomically revokes `old` (recording its replacement) and stores `new` in the same family.
    /// Conflict if `old` was already revoked: that is token reuse, and the caller revokes
    /// the family.
    async fn rotate(
        &self,
        org: OrgId,
        old: RefreshTokenId,
        new: NewRefreshToken,
    ) -> StoreResult<RefreshToken>;
    /// Revokes one token (idempotent).
    async fn revoke(&self, org: OrgId, id: RefreshTokenId, at: DateTime<Utc>) -> StoreResult<()>;
    /// Revokes every live token of a family; returns how many.
    async fn revoke_family(&self, org: OrgId, family: TokenFamilyId, at: DateTime<Utc>) -> StoreResult<u64>;
    /// Revokes every live token of a user except one family; returns how many.
    async fn revoke_user(
        &self,
        org: OrgId,
        user: UserId,
        keep_family: Option<TokenFamilyId>,
        at: DateTime<Utc>,
    ) -> StoreResult<u64>;
    /// Deletes tokens that expired before `before`; returns how many.
    async fn delete_expired(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

/// Registered MCP servers.
#[async_trait]
pub trait ServerStore: Send + Sync {
    /// Registers a server. Conflict on a name taken in this organization. A server from the
    /// API ([`crate::model::RecordSource::Api`]) beyond the organization's `max_servers` is
    /// [`StoreError::LimitReached`]: the count and the insert are one transaction, serialized
    /// per organization, so concurrent creates never exceed the limit. Servers declared in
    /// configuration count toward the limit but are never refused by it (the operator
    /// declared them).
    async fn create(&self, org: OrgId, new: NewMcpServer) -> StoreResult<McpServer>;
    /// By id.
    async fn get(&self, org: OrgId, id: ServerId) -> StoreResult<Option<McpServer>>;
    /// By name.
    async fn get_by_name(&self, org: OrgId, name: &str) -> StoreResult<Option<McpServer>>;
    /// A filtered page, ordered by name.
    async fn list(&self, org: OrgId, filter: ServerFilter, page: Page) -> StoreResult<Paged<McpServer>>;
    /// Every server of every organization, ordered by id: for the in-memory routing cache.
    async fn list_all(&self) -> StoreResult<Vec<McpServer>>;
    /// Number of servers of the organization.
    async fn count(&self, org: OrgId) -> StoreResult<u64>;
    /// Applies a patch.
    async fn update(&self, org: OrgId, id: ServerId, patch: McpServerPatch) -> StoreResult<McpServer>;
    /// Deletes the server, its health history and stats.
    async fn delete(&self, org: OrgId, id: ServerId) -> StoreResult<()>;
    /// Sets the status to `to` only if it is `expected` (compare-and-set, so a health check
    /// never overwrites an admin's concurrent change); appends a change-log entry when it
    /// changed. Does not touch `updated_at` (a status is not a configuration change).
    /// Returns whether it changed; NotFound if the server is not the organization's.
    async fn set_status(
        &self,
        org: OrgId,
        id: ServerId,
        expected: ServerStatus,
        to: ServerStatus,
    ) -> StoreResult<bool>;
}

/// Virtual servers.
#[async_trait]
pub trait VirtualServerStore: Send + Sync {
    /// Creates. Conflict on a taken name.
    async fn create(&self, org: OrgId, new: NewVirtualServer) -> StoreResult<VirtualServer>;
    /// By id.
    async fn get(&self, org: OrgId, id: VirtualServerId) -> StoreResult<Option<VirtualServer>>;
    /// All of the organization, ordered by name.
    async fn list(&self, org: OrgId) -> StoreResult<Vec<VirtualServer>>;
    /// Applies a patch.
    async fn update(
        &self,
        org: OrgId,
        id: VirtualServerId,
        patch: VirtualServerPatch,
    ) -> StoreResult<VirtualServer>;
    /// Deletes.
    async fn delete(&self, org: OrgId, id: VirtualServerId) -> StoreResult<()>;
}

/// Client sessions (a record of them; live state is in memory).
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Records a new session (status `active`). Conflict if the id exists.
    async fn create(&self, org: OrgId, new: NewMcpSession) -> StoreResult<McpSession>;
    /// By id.
    async fn get(&self, org: OrgId, id: SessionId) -> StoreResult<Option<McpSession>>;
    /// A page, newest first, optionally of one server and only open ones.
    async fn list(
        &self,
        org: OrgId,
        server: Option<ServerId>,
        open_only: bool,
        page: Page,
    ) -> StoreResult<Paged<McpSession>>;
    /// Applies a patch.
    async fn update(&self, org: OrgId, id: SessionId, patch: McpSessionPatch) -> StoreResult<McpSession>;
    /// A page, newest first, of the sessions of a namespace: recorded with it, or on a
    /// server that is in it now; optionally only open ones.
    async fn list_in_namespace(
        &self,
        org: OrgId,
        namespace: NamespaceId,
        open_only: bool,
        page: Page,
    ) -> StoreResult<Paged<McpSession>>;
    /// Sessions not yet closed.
    async fn count_open(&self, org: OrgId) -> StoreResult<u64>;
    /// Closes every open session idle since before `before`; returns how many.
    async fn close_idle(&self, before: DateTime<Utc>, at: DateTime<Utc>) -> StoreResult<u64>;
}

/// Computes audit hashes; implemented by `gateway-logging`, given to the store so the store
/// can link the chain inside its transaction.
pub trait AuditHasher: Send + Sync {
    /// The `prev_hash` of an organization's first record.
    fn genesis(&self, org: OrgId) -> String;
    /// The hash of `record`, whose `prev_hash` and `seq` are set and whose `hash` is empty.
    fn hash(&self, record: &AuditLog) -> String;
}

/// Filters for reading the audit trail.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// From (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// To (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this actor id.
    pub actor_id: Option<String>,
    /// Only records with `seq` below this (cursor).
    pub before_seq: Option<i64>,
}

/// Where an organization's audit chain ends, as recorded by the last append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditChainHead {
    /// `seq` of the newest record.
    pub last_seq: i64,
    /// `hash` of the newest record.
    pub last_hash: String,
}

/// The tamper-evident audit trail.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends to the organization's chain, serialized per organization (the chain head row
    /// is locked), so concurrent writers and replicas never fork it.
    async fn append(&self, org: OrgId, new: NewAuditLog, hasher: &dyn AuditHasher) -> StoreResult<AuditLog>;
    /// Newest first, at most `limit`.
    async fn list(&self, org: OrgId, filter: AuditFilter, limit: u32) -> StoreResult<Vec<AuditLog>>;
    /// Chain order: records with `seq > after_seq`, ascending, at most `limit`.
    async fn chain(&self, org: OrgId, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditLog>>;
    /// The chain head: the `seq` and `hash` of the newest record, written in the same
    /// transaction as that record. `None` before the organization's first append. Verification
    /// compares it with the newest row, so deleting or rewriting the newest rows is detected.
    async fn head(&self, org: OrgId) -> StoreResult<Option<AuditChainHead>>;
}

/// Filters for reading the request log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// From (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// To (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// Only this server.
    pub server_id: Option<ServerId>,
    /// Only this principal id.
    pub principal_id: Option<String>,
    /// Only this method.
    pub method: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Substring of the tool/resource/prompt name.
    pub name_contains: Option<String>,
    /// Cursor: only records strictly older than this `(created_at, id)`.
    pub before: Option<(DateTime<Utc>, crate::ids::LogId)>,
}

/// Request-log index and rollups.
#[async_trait]
pub trait LogStore: Send + Sync {
    /// Inserts a batch in one transaction (records carry their organization).
    async fn insert_batch(&self, records: &[LogRecord]) -> StoreResult<()>;
    /// Newest first, at most `limit`.
    async fn query(&self, org: OrgId, query: LogQuery, limit: u32) -> StoreResult<Vec<LogRecord>>;
    /// One record by id; another organization's record is `None`.
    async fn get(&self, org: OrgId, id: crate::ids::LogId) -> StoreResult<Option<LogRecord>>;
    /// Deletes index rows older than `before`; returns how many.
    async fn delete_before(&self, org: OrgId, before: DateTime<Utc>) -> StoreResult<u64>;
    /// Inserts or replaces rollups (unique per org, granularity, bucket, dimension, key).
    async fn upsert_aggregates(&self, aggregates: &[LogAggregate]) -> StoreResult<()>;
    /// Rollups of one granularity in `[from, to)`, ordered by bucket then dimension and key.
    async fn aggregates(
        &self,
        org: OrgId,
        granularity: Granularity,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<LogAggregate>>;
}

/// Rate-limit rules and usage.
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Creates a rule. Conflict on a taken name.
    async fn create(&self, org: OrgId, new: NewRateLimitRule) -> StoreResult<RateLimitRule>;
    /// By id.
    async fn get(&self, org: OrgId, id: RateLimitId) -> StoreResult<Option<RateLimitRule>>;
    /// Rules of the organization, ordered by name.
    async fn list(&self, org: OrgId) -> StoreResult<Vec<RateLimitRule>>;
    /// Every enabled rule of every organization: for the in-memory limiter cache.
    async fn list_all_enabled(&self) -> StoreResult<Vec<RateLimitRule>>;
    /// Applies a patch.
    async fn update(
        &self,
        org: OrgId,
        id: RateLimitId,
        patch: RateLimitRulePatch,
    ) -> StoreResult<RateLimitRule>;
    /// Deletes.
    async fn delete(&self, org: OrgId, id: RateLimitId) -> StoreResult<()>;
    /// Adds counts to usage rows (created when missing).
    async fn add_usage(&self, usage: &[RateLimitUsage]) -> StoreResult<()>;
    /// Usage in `[from, to)`, ordered by window then key.
    async fn usage(
        &self,
        org: OrgId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<RateLimitUsage>>;
}

/// Health-check history and server counters.
#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Records a result. NotFound if the server is not the organization's.
    async fn record(&self, org: OrgId, check: NewHealthCheck) -> StoreResult<HealthCheck>;
    /// Newest results of a server, at most `limit`.
    async fn history(&self, org: OrgId, server: ServerId, limit: u32) -> StoreResult<Vec<HealthCheck>>;
    /// Deletes results older than `before`; returns how many.
    async fn delete_before(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// Adds to a server's counters (created when missing); `failed` sets or resets
    /// `consecutive_failures` when given.
    async fn add_stats(
        &self,
        org: OrgId,
        server: ServerId,
        delta: ServerStatsDelta,
        failed: Option<bool>,
        at: DateTime<Utc>,
    ) -> StoreResult<ServerStats>;
    /// A server's counters, if any were recorded.
    async fn stats(&self, org: OrgId, server: ServerId) -> StoreResult<Option<ServerStats>>;
    /// Adds the request-log records of every server (of every organization) created after
    /// the server's previous roll-up and at or before `until` to its counters (requests,
    /// errors = records whose status is not `ok`, latency, last request and error times), and
    /// moves its roll-up mark to `until`, in one transaction: running it twice for the same
    /// `until` adds nothing. A mark never moves backwards. Returns how many servers' counters
    /// changed.
    async fn roll_up_requests(&self, until: DateTime<Utc>) -> StoreResult<u64>;
}

/// Capability catalogs of servers (`server_catalogs`, one row per server), with their tool
/// pins and detected changes.
#[async_trait]
pub trait CatalogStore: Send + Sync {
    /// A server's catalog, if it was ever discovered.
    async fn get(&self, org: OrgId, server: ServerId) -> StoreResult<Option<ServerCatalog>>;
    /// Every catalog of every organization: for the in-memory catalog at start.
    async fn list_all(&self) -> StoreResult<Vec<ServerCatalog>>;
    /// Creates or replaces the server's catalog (`catalog.server_id`) and appends a `catalog`
    /// change-log entry in the same transaction, so every replica reloads it. NotFound if the
    /// server is not the organization's. A server's deletion deletes its catalog.
    async fn put(&self, org: OrgId, catalog: ServerCatalog) -> StoreResult<ServerCatalog>;
}

/// The change log every process polls to refresh its caches.
#[async_trait]
pub trait ChangeLogStore: Send + Sync {
    /// Entries with `id > after`, ascending, at most `limit`.
    async fn since(&self, after: i64, limit: u32) -> StoreResult<Vec<ChangeEntry>>;
    /// The newest id (0 when empty).
    async fn latest_id(&self) -> StoreResult<i64>;
    /// Deletes entries older than `before`; returns how many.
    async fn prune(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

/// Access policy rules of organizations.
#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// Stores a rule. Conflict on a name (or id) taken in this organization.
    async fn create(&self, org: OrgId, new: NewPolicy) -> StoreResult<StoredPolicy>;
    /// By id.
    async fn get(&self, org: OrgId, id: PolicyId) -> StoreResult<Option<StoredPolicy>>;
    /// Rules of the organization, ordered by name.
    async fn list(&self, org: OrgId) -> StoreResult<Vec<StoredPolicy>>;
    /// Every rule of every organization, ordered by organization then name: for the
    /// in-memory policy snapshots.
    async fn list_all(&self) -> StoreResult<Vec<StoredPolicy>>;
    /// Applies a patch.
    async fn update(&self, org: OrgId, id: PolicyId, patch: PolicyPatch) -> StoreResult<StoredPolicy>;
    /// Deletes.
    async fn delete(&self, org: OrgId, id: PolicyId) -> StoreResult<()>;
}

/// A lock taken by [`JobLocks::try_lock`]; held until [`JobLock::release`] (or drop).
#[async_trait]
pub trait JobLock: Send {
    /// Releases the lock. Dropping a lock without releasing it also frees it (on PostgreSQL by
    /// closing its connection), later rather than at once.
    async fn release(self: Box<Self>);
}

/// Mutual exclusion of background jobs between worker processes, so each runs once.
///
/// PostgreSQL: session-level advisory locks (`pg_try_advisory_lock`) on a connection held for
/// the lock's life; a worker that dies loses its locks with its connections. SQLite: a lock
/// within this process only (run one worker per SQLite database).
#[async_trait]
pub trait JobLocks: Send + Sync {
    /// Takes the lock named `key` if nobody holds it; `None` (at once, without waiting) if
    /// someone does.
    async fn try_lock(&self, key: &str) -> StoreResult<Option<Box<dyn JobLock>>>;
}

/// Liveness of the store itself.
#[async_trait]
pub trait StoreHealth: Send + Sync {
    /// One round trip to the database.
    async fn ping(&self) -> StoreResult<()>;
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
}

/// Every store, as trait objects: what the application is built from.
#[derive(Clone)]
pub struct Stores {
    /// Organizations.
    pub organizations: Arc<dyn OrganizationStore>,
    /// Namespaces.
    pub namespaces: Arc<dyn NamespaceStore>,
    /// Users.
    pub users: Arc<dyn UserStore>,
    /// API keys.
    pub api_keys: Arc<dyn ApiKeyStore>,
    /// Refresh tokens.
    pub refresh_tokens: Arc<dyn RefreshTokenStore>,
    /// MCP servers.
    pub servers: Arc<dyn ServerStore>,
    /// Virtual servers.
    pub virtual_servers: Arc<dyn VirtualServerStore>,
    /// Sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Audit trail.
    pub audit: Arc<dyn AuditStore>,
    /// Request logs.
    pub logs: Arc<dyn LogStore>,
    /// Rate limits.
    pub rate_limits: Arc<dyn RateLimitStore>,
    /// Health checks.
    pub health: Arc<dyn HealthStore>,
    /// Change log.
    pub changes: Arc<dyn ChangeLogStore>,
    /// Access policy rules.
    pub policies: Arc<dyn PolicyStore>,
    /// Capability catalogs.
    pub catalogs: Arc<dyn CatalogStore>,
    /// Locks that make background jobs run once across workers.
    pub locks: Arc<dyn JobLocks>,
    /// Revoked access tokens (in memory, or on Redis when configured).
    pub denylist: Arc<dyn TokenDenyList>,
    /// Store liveness.
    pub status: Arc<dyn StoreHealth>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("backend", &self.status.backend())
            .finish_non_exhaustive()
    }
}

/// Access tokens revoked before their expiry (logout), by `jti`.
///
/// Shared state: with Redis configured every replica sees a logout at once; without it an
/// in-memory implementation serves a single node. Entries may be forgotten after `expires_at`.
#[async_trait]
pub trait TokenDenyList: Send + Sync {
    /// Deny-lists `jti` until `expires_at`.
    async fn deny(&self, jti: &str, expires_at: DateTime<Utc>) -> StoreResult<()>;
    /// Whether `jti` is deny-listed.
    async fn is_denied(&self, jti: &str) -> StoreResult<bool>;
}
