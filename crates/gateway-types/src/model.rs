//! The domain model: one type per stored aggregate, plus the inputs that create or change them.
//!
//! These types are storage-agnostic: `gateway-store` maps them to rows, the HTTP layer to JSON.
//! Enumerations have a stable lower-case text form ([`std::fmt::Display`] / [`std::str::FromStr`])
//! used both in storage and on the wire.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{
    AggregateId, ApiKeyId, AuditLogId, HealthCheckId, LogId, NamespaceId, OrgId, PolicyId, RateLimitId,
    RefreshTokenId, ServerId, SessionId, TokenFamilyId, UserId, VirtualServerId,
};

/// Declares a string-backed enum with a stable text form.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stable text form.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownVariant;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(UnknownVariant { kind: stringify!($name), value: other.to_owned() }),
                }
            }
        }
    };
}

/// A text value that names no variant of an enumeration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} value {value:?}")]
pub struct UnknownVariant {
    /// The enumeration.
    pub kind: &'static str,
    /// The offending text.
    pub value: String,
}

text_enum!(
    /// Commercial plan of an organization; sets default limits.
    Plan { Free = "free", Team = "team", Enterprise = "enterprise" }
);
text_enum!(
    /// A user's role within an organization.
    Role {
        /// Everything, including users, policies and limits.
        Admin = "admin",
        /// Uses and manages servers.
        User = "user",
        /// Read-only.
        Viewer = "viewer",
        /// A programmatic identity.
        ApiUser = "api_user",
    }
);
text_enum!(
    /// Who owns an API key.
    ApiKeyType {
        /// Belongs to a user and acts as that user.
        User = "user",
        /// Belongs to the organization (app-to-app).
        A2a = "a2a",
    }
);
text_enum!(
    /// How the gateway reaches an upstream MCP server.
    ServerProtocol { Stdio = "stdio", Http = "http", Sse = "sse", Ws = "ws" }
);
text_enum!(
    /// Operational state of a server.
    ServerStatus {
        /// Serving (set by admins, and by health checks when a server recovers).
        Active = "active",
        /// Switched off by an admin: never routed to, never health-checked.
        Inactive = "inactive",
        /// Set by older releases; treated like `degraded`.
        Unhealthy = "unhealthy",
        /// Set by older releases; treated like `down`.
        Error = "error",
        /// Failing health checks, still routed to (health checks set it).
        Degraded = "degraded",
        /// Failing health checks for long enough: calls are refused at once until it recovers
        /// (health checks set and clear it).
        Down = "down",
    }
);
text_enum!(
    /// Where a server record came from (declarative records are reconciled from configuration).
    RecordSource { Api = "api", Config = "config" }
);
text_enum!(
    /// The kind of service a virtual server wraps.
    AdapterType { Rest = "rest", Graphql = "graphql", Grpc = "grpc", Soap = "soap" }
);
text_enum!(
    /// Lifecycle of a client session.
    SessionStatus { Active = "active", Idle = "idle", Closed = "closed", Failed = "failed" }
);
text_enum!(
    /// The client-facing transport of a session.
    SessionProtocol {
        StreamableHttp = "streamable_http",
        Sse = "sse",
        Ws = "ws",
        Stdio = "stdio",
        Rpc = "rpc",
    }
);
text_enum!(
    /// Outcome of one health check.
    HealthStatus { Healthy = "healthy", Degraded = "degraded", Unhealthy = "unhealthy" }
);
text_enum!(
    /// Rollup period of a log aggregate.
    Granularity { Hour = "hour", Day = "day" }
);
text_enum!(
    /// What a rate-limit rule counts per.
    RateLimitScope {
        Ip = "ip",
        Principal = "principal",
        Organization = "organization",
        Endpoint = "endpoint",
        Method = "method",
        Tool = "tool",
    }
);

/// Default limits of each plan.
impl Plan {
    /// `(max_servers, max_sessions, log_retention_days)` for new organizations on this plan.
    #[must_use]
    pub const fn default_limits(self) -> (i32, i32, i32) {
        match self {
            Self::Free => (10, 100, 7),
            Self::Team => (100, 1_000, 30),
            Self::Enterprise => (10_000, 100_000, 365),
        }
    }
}

/// A tenant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Organization {
    /// Id.
    pub id: OrgId,
    /// Display name.
    pub name: String,
    /// URL-safe unique name.
    pub slug: String,
    /// Plan.
    pub plan: Plan,
    /// Most servers this organization may register.
    pub max_servers: i32,
    /// Most concurrent client sessions.
    pub max_sessions: i32,
    /// Days request logs are kept.
    pub log_retention_days: i32,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Input for a new organization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewOrganization {
    /// Display name.
    pub name: String,
    /// URL-safe unique name.
    pub slug: String,
    /// Plan; limits default from it.
    pub plan: Plan,
}

/// A change to an organization; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OrganizationPatch {
    /// New display name.
    pub name: Option<String>,
    /// New plan.
    pub plan: Option<Plan>,
    /// New server limit.
    pub max_servers: Option<i32>,
    /// New session limit.
    pub max_sessions: Option<i32>,
    /// New retention.
    pub log_retention_days: Option<i32>,
}

/// A group of servers inside an organization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Namespace {
    /// Id.
    pub id: NamespaceId,
    /// Owner.
    pub org_id: OrgId,
    /// Display name.
    pub name: String,
    /// Unique per organization.
    pub slug: String,
    /// Free text.
    pub description: Option<String>,
    /// API or configuration.
    pub source: RecordSource,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Input for a new namespace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewNamespace {
    /// Display name.
    pub name: String,
    /// Unique per organization.
    pub slug: String,
    /// Free text.
    pub description: Option<String>,
    /// Origin of the record.
    pub source: RecordSource,
}

/// A change to a namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NamespacePatch {
    /// New display name.
    pub name: Option<String>,
    /// New slug.
    pub slug: Option<String>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
}

/// A user account. `password_hash` is a bcrypt hash and never leaves the server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Organization.
    pub org_id: OrgId,
    /// Lower-case email, unique across the gateway.
    pub email: String,
    /// Display name.
    pub name: String,
    /// bcrypt hash.
    #[serde(skip_serializing)]
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// Disabled users cannot log in.
    pub is_active: bool,
    /// Consecutive failed logins.
    pub failed_logins: i32,
    /// Locked out until.
    pub locked_until: Option<DateTime<Utc>>,
    /// Last successful login.
    pub last_login_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Input for a new user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewUser {
    /// Email (stored lower-cased).
    pub email: String,
    /// Display name.
    pub name: String,
    /// bcrypt hash computed by the caller.
    pub password_hash: String,
    /// Role.
    pub role: Role,
}

/// A change to a user.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UserPatch {
    /// New name.
    pub name: Option<String>,
    /// New bcrypt hash.
    pub password_hash: Option<String>,
    /// New role.
    pub role: Option<Role>,
    /// Enable or disable.
    pub is_active: Option<bool>,
}

/// An API key. Only the SHA-256 of its secret is stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Id.
    pub id: ApiKeyId,
    /// Organization.
    pub org_id: OrgId,
    /// Owner for user keys; `None` for a2a keys.
    pub user_id: Option<UserId>,
    /// User or app-to-app.
    pub key_type: ApiKeyType,
    /// Display name.
    pub name: String,
    /// The recognisable, non-secret start of the key, shown in listings.
    pub prefix: String,
    /// Hex SHA-256 of the full key.
    #[serde(skip_serializing)]
    pub key_hash: String,
    /// Namespace the key is confined to.
    pub namespace_id: Option<NamespaceId>,
    /// Granted permissions (strings such as `servers:read`).
    pub permissions: Vec<String>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last use (updated in batches).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// Input for a new API key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewApiKey {
    /// Owner (user keys).
    pub user_id: Option<UserId>,
    /// Kind.
    pub key_type: ApiKeyType,
    /// Display name.
    pub name: String,
    /// Non-secret prefix.
    pub prefix: String,
    /// Hex SHA-256 of the key.
    pub key_hash: String,
    /// Namespace scope.
    pub namespace_id: Option<NamespaceId>,
    /// Permissions.
    pub permissions: Vec<String>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A refresh token, one link of a rotation family. Only its hash is stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefreshToken {
    /// Id.
    pub id: RefreshTokenId,
    /// Organization.
    pub org_id: OrgId,
    /// User.
    pub user_id: UserId,
    /// All tokens rotated from one login share a family.
    pub family_id: TokenFamilyId,
    /// Hex SHA-256 of the token.
    #[serde(skip_serializing)]
    pub token_hash: String,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Revocation time (set on rotation, logout, or family revocation).
    pub revoked_at: Option<DateTime<Utc>>,
    /// The token that replaced this one on rotation.
    pub replaced_by: Option<RefreshTokenId>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// Input for a new refresh token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewRefreshToken {
    /// User.
    pub user_id: UserId,
    /// Family (new login: a fresh id).
    pub family_id: TokenFamilyId,
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// A secret stored encrypted at rest: ciphertext plus the id of the key that sealed it.
/// Encryption happens above the store; the store never sees plain text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed(pub String);

/// A registered MCP server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct McpServer {
    /// Id.
    pub id: ServerId,
    /// Organization.
    pub org_id: OrgId,
    /// Namespace.
    pub namespace_id: Option<NamespaceId>,
    /// Unique per organization.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Upstream transport.
    pub protocol: ServerProtocol,
    /// For http/sse/ws.
    pub url: Option<String>,
    /// For stdio.
    pub command: Option<String>,
    /// For stdio.
    pub args: Vec<String>,
    /// Encrypted environment (stdio).
    #[serde(skip_serializing)]
    pub environment: Option<Sealed>,
    /// Encrypted upstream credentials (headers, tokens).
    #[serde(skip_serializing)]
    pub credentials: Option<Sealed>,
    /// For stdio.
    pub working_dir: Option<String>,
    /// Per-request upstream timeout.
    pub timeout_seconds: i32,
    /// Retries of failed upstream connections.
    pub max_retries: i32,
    /// Operational state.
    pub status: ServerStatus,
    /// Optional dedicated health URL.
    pub health_check_url: Option<String>,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// Free-form JSON object.
    pub metadata: Value,
    /// API or configuration.
    pub source: RecordSource,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Input for a new MCP server (already validated and with secrets sealed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewMcpServer {
    /// Namespace.
    pub namespace_id: Option<NamespaceId>,
    /// Unique per organization.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Upstream transport.
    pub protocol: ServerProtocol,
    /// URL.
    pub url: Option<String>,
    /// Command.
    pub command: Option<String>,
    /// Arguments.
    pub args: Vec<String>,
    /// Sealed environment.
    pub environment: Option<Sealed>,
    /// Sealed credentials.
    pub credentials: Option<Sealed>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// Timeout.
    pub timeout_seconds: i32,
    /// Retries.
    pub max_retries: i32,
    /// Initial status.
    pub status: ServerStatus,
    /// Health URL.
    pub health_check_url: Option<String>,
    /// Labels.
    pub tags: Vec<String>,
    /// JSON object.
    pub metadata: Value,
    /// Origin of the record.
    pub source: RecordSource,
}

/// A change to an MCP server. `Some(None)` clears an optional field.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct McpServerPatch {
    /// Namespace.
    pub namespace_id: Option<Option<NamespaceId>>,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<Option<String>>,
    /// Protocol.
    pub protocol: Option<ServerProtocol>,
    /// URL.
    pub url: Option<Option<String>>,
    /// Command.
    pub command: Option<Option<String>>,
    /// Arguments.
    pub args: Option<Vec<String>>,
    /// Sealed environment.
    pub environment: Option<Option<Sealed>>,
    /// Sealed credentials.
    pub credentials: Option<Option<Sealed>>,
    /// Working directory.
    pub working_dir: Option<Option<String>>,
    /// Timeout.
    pub timeout_seconds: Option<i32>,
    /// Retries.
    pub max_retries: Option<i32>,
    /// Status.
    pub status: Option<ServerStatus>,
    /// Health URL.
    pub health_check_url: Option<Option<String>>,
    /// Labels.
    pub tags: Option<Vec<String>>,
    /// JSON object.
    pub metadata: Option<Value>,
}

/// Filters for listing servers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerFilter {
    /// Only this namespace.
    pub namespace_id: Option<NamespaceId>,
    /// Only this protocol.
    pub protocol: Option<ServerProtocol>,
    /// Only this status.
    pub status: Option<ServerStatus>,
    /// Only servers carrying this tag.
    pub tag: Option<String>,
    /// Only this source.
    pub source: Option<RecordSource>,
    /// Only servers whose name contains this text (case-insensitively).
    pub search: Option<String>,
}

/// A page request: at most `limit` items after `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// Items to skip.
    pub offset: u32,
    /// Items to return (the store caps it at [`Page::MAX_LIMIT`]).
    pub limit: u32,
}

impl Page {
    /// The largest page a store returns.
    pub const MAX_LIMIT: u32 = 500;

    /// The page's limit, capped.
    #[must_use]
    pub fn capped_limit(self) -> u32 {
        self.limit.min(Self::MAX_LIMIT)
    }
}

impl Default for Page {
    fn default() -> Self {
        Self { offset: 0, limit: 50 }
    }
}

/// A page of results and the total count matching the filter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Paged<T> {
    /// The items.
    pub items: Vec<T>,
    /// Total matching items.
    pub total: u64,
}

/// A REST/GraphQL/gRPC/SOAP service presented as an MCP server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VirtualServer {
    /// Id.
    pub id: VirtualServerId,
    /// Organization.
    pub org_id: OrgId,
    /// Namespace.
    pub namespace_id: Option<NamespaceId>,
    /// Unique per organization.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Adapter.
    pub adapter_type: AdapterType,
    /// Base URL of the wrapped service.
    pub endpoint_url: Option<String>,
    /// Adapter configuration.
    pub config: Value,
    /// Tool definitions (JSON array).
    pub tools: Value,
    /// Sealed credentials.
    #[serde(skip_serializing)]
    pub credentials: Option<Sealed>,
    /// Status.
    pub status: ServerStatus,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Input for a new virtual server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewVirtualServer {
    /// Namespace.
    pub namespace_id: Option<NamespaceId>,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Adapter.
    pub adapter_type: AdapterType,
    /// Base URL.
    pub endpoint_url: Option<String>,
    /// Adapter configuration.
    pub config: Value,
    /// Tools.
    pub tools: Value,
    /// Sealed credentials.
    pub credentials: Option<Sealed>,
}

/// A change to a virtual server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VirtualServerPatch {
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<Option<String>>,
    /// Base URL.
    pub endpoint_url: Option<Option<String>>,
    /// Configuration.
    pub config: Option<Value>,
    /// Tools.
    pub tools: Option<Value>,
    /// Sealed credentials.
    pub credentials: Option<Option<Sealed>>,
    /// Status.
    pub status: Option<ServerStatus>,
}

/// A client session with the gateway (and, for stdio upstreams, its process).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct McpSession {
    /// Id (also the `Mcp-Session-Id` the client sees).
    pub id: SessionId,
    /// Organization.
    pub org_id: OrgId,
    /// Target server, if the session is bound to one.
    pub server_id: Option<ServerId>,
    /// Namespace for aggregate sessions.
    pub namespace_id: Option<NamespaceId>,
    /// Authenticated user.
    pub user_id: Option<UserId>,
    /// Authenticating API key.
    pub api_key_id: Option<ApiKeyId>,
    /// Lifecycle.
    pub status: SessionStatus,
    /// Client-facing transport.
    pub protocol: SessionProtocol,
    /// Negotiated MCP revision.
    pub protocol_version: Option<String>,
    /// `clientInfo` from `initialize`.
    pub client_info: Option<Value>,
    /// Upstream process id (stdio).
    pub process_pid: Option<i32>,
    /// Upstream process state (stdio).
    pub process_status: Option<String>,
    /// Upstream process exit code (stdio).
    pub exit_code: Option<i32>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last message.
    pub last_activity_at: DateTime<Utc>,
    /// Close time.
    pub closed_at: Option<DateTime<Utc>>,
}

/// Input for a new session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewMcpSession {
    /// Id chosen by the transport.
    pub id: SessionId,
    /// Target server.
    pub server_id: Option<ServerId>,
    /// Namespace.
    pub namespace_id: Option<NamespaceId>,
    /// User.
    pub user_id: Option<UserId>,
    /// API key.
    pub api_key_id: Option<ApiKeyId>,
    /// Transport.
    pub protocol: SessionProtocol,
    /// Negotiated revision.
    pub protocol_version: Option<String>,
    /// `clientInfo`.
    pub client_info: Option<Value>,
}

/// A change to a session.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct McpSessionPatch {
    /// Lifecycle.
    pub status: Option<SessionStatus>,
    /// Negotiated revision.
    pub protocol_version: Option<String>,
    /// Process id.
    pub process_pid: Option<Option<i32>>,
    /// Process state.
    pub process_status: Option<Option<String>>,
    /// Exit code.
    pub exit_code: Option<Option<i32>>,
    /// Last activity.
    pub last_activity_at: Option<DateTime<Utc>>,
    /// Close time.
    pub closed_at: Option<DateTime<Utc>>,
}

/// One audit record. `hash` = SHA-256 over `prev_hash` and the record's canonical content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditLog {
    /// Id.
    pub id: AuditLogId,
    /// Organization (the chain is per organization).
    pub org_id: OrgId,
    /// Position in the organization's chain, from 1.
    pub seq: i64,
    /// `user`, `api_key`, `system`…
    pub actor_type: String,
    /// Actor id.
    pub actor_id: Option<String>,
    /// `server.create`, `auth.login_failed`…
    pub action: String,
    /// Target kind.
    pub target_type: Option<String>,
    /// Target id.
    pub target_id: Option<String>,
    /// Summary before the change.
    pub before_state: Option<Value>,
    /// Summary after the change.
    pub after_state: Option<Value>,
    /// Client IP.
    pub ip: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
    /// Hash of the previous record (or the genesis value).
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
    /// Time.
    pub created_at: DateTime<Utc>,
}

/// An audit event to append; the store assigns `seq`, links the chain and computes hashes
/// with the hasher it is given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewAuditLog {
    /// Actor kind.
    pub actor_type: String,
    /// Actor id.
    pub actor_id: Option<String>,
    /// Action.
    pub action: String,
    /// Target kind.
    pub target_type: Option<String>,
    /// Target id.
    pub target_id: Option<String>,
    /// Before.
    pub before_state: Option<Value>,
    /// After.
    pub after_state: Option<Value>,
    /// Client IP.
    pub ip: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
}

/// One request-log index record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Id.
    pub id: LogId,
    /// Organization.
    pub org_id: OrgId,
    /// Namespace.
    pub namespace_id: Option<NamespaceId>,
    /// Server.
    pub server_id: Option<ServerId>,
    /// `user`, `api_key`, `a2a`…
    pub principal_type: Option<String>,
    /// Principal id.
    pub principal_id: Option<String>,
    /// `rest`, `streamable_http`, `sse`, `ws`…
    pub transport: String,
    /// `legacy` or `modern`.
    pub protocol_era: Option<String>,
    /// HTTP route pattern or MCP method.
    pub method: String,
    /// Tool/resource/prompt name.
    pub name: Option<String>,
    /// `ok`, `error`, `denied`, `rate_limited`…
    pub status: String,
    /// HTTP status, for REST.
    pub http_status: Option<i32>,
    /// JSON-RPC error code.
    pub error_code: Option<i32>,
    /// Latency.
    pub latency_ms: i32,
    /// Request size.
    pub request_bytes: i64,
    /// Response size.
    pub response_bytes: i64,
    /// Client IP.
    pub client_ip: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
    /// Trace id.
    pub trace_id: Option<String>,
    /// Pointer into the body store.
    pub body_ref: Option<String>,
    /// Time.
    pub created_at: DateTime<Utc>,
}

/// A rollup of request logs for one bucket and one dimension value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogAggregate {
    /// Id.
    pub id: AggregateId,
    /// Organization.
    pub org_id: OrgId,
    /// Hour or day.
    pub granularity: Granularity,
    /// Bucket start.
    pub bucket_start: DateTime<Utc>,
    /// `total`, `server`, `tool`, `principal`, `method`.
    pub dimension: String,
    /// The dimension's value (`""` for `total`).
    pub dimension_key: String,
    /// Requests.
    pub request_count: i64,
    /// Errors.
    pub error_count: i64,
    /// Sum of latencies.
    pub total_latency_ms: i64,
    /// Median latency.
    pub p50_ms: Option<i32>,
    /// 95th percentile.
    pub p95_ms: Option<i32>,
    /// 99th percentile.
    pub p99_ms: Option<i32>,
    /// Request bytes.
    pub request_bytes: i64,
    /// Response bytes.
    pub response_bytes: i64,
    /// Last recomputation.
    pub updated_at: DateTime<Utc>,
}

/// A rate-limit rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RateLimitRule {
    /// Id.
    pub id: RateLimitId,
    /// Organization.
    pub org_id: OrgId,
    /// Unique per organization.
    pub name: String,
    /// What is counted per.
    pub scope: RateLimitScope,
    /// Which value of the scope (route pattern, method, tool name, principal id); `None` = each.
    pub match_value: Option<String>,
    /// Requests allowed per window.
    pub limit_count: i32,
    /// Window length.
    pub window_seconds: i32,
    /// Disabled rules are ignored.
    pub enabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Input for a new rate-limit rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewRateLimitRule {
    /// Name.
    pub name: String,
    /// Scope.
    pub scope: RateLimitScope,
    /// Match value.
    pub match_value: Option<String>,
    /// Limit.
    pub limit_count: i32,
    /// Window.
    pub window_seconds: i32,
    /// Enabled.
    pub enabled: bool,
}

/// A change to a rate-limit rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RateLimitRulePatch {
    /// Name.
    pub name: Option<String>,
    /// Match value.
    pub match_value: Option<Option<String>>,
    /// Limit.
    pub limit_count: Option<i32>,
    /// Window.
    pub window_seconds: Option<i32>,
    /// Enabled.
    pub enabled: Option<bool>,
}

/// Usage counted for one rule key in one window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RateLimitUsage {
    /// Organization.
    pub org_id: OrgId,
    /// Rule, when the key came from a stored rule.
    pub rate_limit_id: Option<RateLimitId>,
    /// The limiter key (scope and value).
    pub rule_key: String,
    /// Window start.
    pub window_start: DateTime<Utc>,
    /// Admitted requests.
    pub allowed_count: i64,
    /// Rejected requests.
    pub rejected_count: i64,
}

/// One health-check result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// Id.
    pub id: HealthCheckId,
    /// Organization.
    pub org_id: OrgId,
    /// Server.
    pub server_id: ServerId,
    /// Outcome.
    pub status: HealthStatus,
    /// Round-trip time.
    pub latency_ms: Option<i32>,
    /// Client-safe failure summary.
    pub error: Option<String>,
    /// Time.
    pub checked_at: DateTime<Utc>,
}

/// Input for a health-check result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewHealthCheck {
    /// Server.
    pub server_id: ServerId,
    /// Outcome.
    pub status: HealthStatus,
    /// Round-trip time.
    pub latency_ms: Option<i32>,
    /// Failure summary.
    pub error: Option<String>,
    /// Time.
    pub checked_at: DateTime<Utc>,
}

/// Running counters of one server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerStats {
    /// Server.
    pub server_id: ServerId,
    /// Organization.
    pub org_id: OrgId,
    /// Requests.
    pub total_requests: i64,
    /// Errors.
    pub total_errors: i64,
    /// Sum of latencies.
    pub total_latency_ms: i64,
    /// Failed health checks in a row.
    pub consecutive_failures: i32,
    /// Last request.
    pub last_request_at: Option<DateTime<Utc>>,
    /// Last error.
    pub last_error_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Increments to apply to a server's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatsDelta {
    /// Requests to add.
    pub requests: i64,
    /// Errors to add.
    pub errors: i64,
    /// Latency to add.
    pub latency_ms: i64,
}

/// An access policy rule as stored. The rule itself (effect, subjects, resources, actions,
/// conditions) is JSON whose schema `gateway-auth`'s policy engine owns; the store keeps it
/// opaque and indexes only the name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredPolicy {
    /// Id (also the rule's `id`).
    pub id: PolicyId,
    /// Organization.
    pub org_id: OrgId,
    /// Unique per organization (also the rule's `name`).
    pub name: String,
    /// The rule document.
    pub rule: Value,
    /// Disabled rules are kept but not applied.
    pub enabled: bool,
    /// API or configuration.
    pub source: RecordSource,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Input for a new policy rule (already validated by the policy engine).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewPolicy {
    /// Id, chosen by the caller so the rule document can carry it.
    pub id: PolicyId,
    /// Name.
    pub name: String,
    /// Rule document.
    pub rule: Value,
    /// Enabled.
    pub enabled: bool,
    /// Origin.
    pub source: RecordSource,
}

/// A change to a policy rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyPatch {
    /// Name.
    pub name: Option<String>,
    /// Rule document.
    pub rule: Option<Value>,
    /// Enabled.
    pub enabled: Option<bool>,
}

/// What kind of record a change-log entry is about.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeEntry {
    /// Monotonic position.
    pub id: i64,
    /// Organization.
    pub org_id: OrgId,
    /// `server`, `namespace`, `api_key`, `rate_limit`, …
    pub kind: String,
    /// The changed record's id.
    pub entity_id: String,
    /// `create`, `update`, `delete`.
    pub op: String,
    /// Time.
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_text_round_trips() {
        for p in ServerProtocol::ALL {
            assert_eq!(p.as_str().parse::<ServerProtocol>().unwrap(), *p);
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), *r);
        }
        let err = "root".parse::<Role>().unwrap_err();
        assert_eq!(err.to_string(), "unknown Role value \"root\"");
    }

    #[test]
    fn secrets_are_not_serialized() {
        let now = Utc::now();
        let user = User {
            id: UserId::new(),
            org_id: OrgId::new(),
            email: "a@b.c".into(),
            name: "A".into(),
            password_hash: "$2b$12$secret".into(),
            role: Role::Admin,
            is_active: true,
            failed_logins: 0,
            locked_until: None,
            last_login_at: None,
            created_at: now,
            updated_at: now,
        };
        let json = serde_json::to_string(&user).unwrap();
        assert!(!json.contains("secret"), "{json}");
    }

    #[test]
    fn page_limit_is_capped() {
        assert_eq!(
            Page {
                offset: 0,
                limit: 10_000
            }
            .capped_limit(),
            Page::MAX_LIMIT
        );
    }
}

text_enum! {
    /// What the gateway does when a server changes a pinned tool definition (server metadata
    /// key `pinning`; `warn` when absent).
    PinningMode {
        /// The change is recorded and audited; the tool is withheld (not listed, calls refused)
        /// until an administrator approves it.
        Enforce = "enforce",
        /// The change is recorded and audited; the tool stays usable.
        Warn = "warn",
        /// Definitions are not pinned.
        Off = "off",
    }
}

impl PinningMode {
    /// The mode a server's `metadata` selects (`metadata.pinning`), `warn` when absent or unknown.
    #[must_use]
    pub fn of_metadata(metadata: &Value) -> Self {
        metadata
            .get("pinning")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or(Self::Warn)
    }
}

/// The definition of a tool that the gateway pinned (the first it saw, or the last approved).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolPin {
    /// sha256 (hex) of the canonical JSON of `definition`.
    pub fingerprint: String,
    /// `description`, `inputSchema`, `outputSchema` and `annotations` of the tool.
    pub definition: Value,
    /// When it was pinned.
    pub pinned_at: DateTime<Utc>,
}

text_enum! {
    /// The state of a detected tool-definition change.
    ToolChangeStatus {
        /// Waiting for an administrator.
        Pending = "pending",
        /// Approved: the new definition is pinned.
        Approved = "approved",
    }
}

/// A tool whose definition differs from its pin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolChange {
    /// The tool's name.
    pub tool: String,
    /// The pinned definition's fingerprint.
    pub old_fingerprint: String,
    /// The new definition's fingerprint.
    pub new_fingerprint: String,
    /// The pinned definition.
    pub old_definition: Value,
    /// The definition the server now announces.
    pub new_definition: Value,
    /// When the gateway first saw it.
    pub detected_at: DateTime<Utc>,
    /// Pending or approved.
    pub status: ToolChangeStatus,
    /// When it was approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<DateTime<Utc>>,
    /// Who approved it (`<actor type>:<id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
}

/// What the gateway knows a server offers (`server_catalogs`, one row per server): from the
/// last successful discovery, plus the tool pins and the changes detected against them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerCatalog {
    /// Organization.
    pub org_id: OrgId,
    /// Server.
    pub server_id: ServerId,
    /// The protocol revision the server speaks (negotiated or discovered).
    pub protocol_version: Option<String>,
    /// `serverInfo` (name, version, ...).
    pub server_info: Option<Value>,
    /// The server's capabilities.
    pub capabilities: Option<Value>,
    /// The server's instructions, if any.
    pub instructions: Option<String>,
    /// `tools/list`, every page.
    pub tools: Vec<Value>,
    /// `resources/list`, every page.
    pub resources: Vec<Value>,
    /// `resources/templates/list`, every page.
    pub resource_templates: Vec<Value>,
    /// `prompts/list`, every page.
    pub prompts: Vec<Value>,
    /// sha256 (hex) of the whole catalog's canonical JSON; `None` before the first success.
    pub fingerprint: Option<String>,
    /// Pinned tool definitions by tool name.
    pub pins: std::collections::BTreeMap<String, ToolPin>,
    /// Detected changes (pending ones, and the most recent approved ones).
    pub changes: Vec<ToolChange>,
    /// When the catalog was last fetched successfully.
    pub refreshed_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed (the gateway's words); `None` after a success.
    pub last_error: Option<String>,
    /// When discovery was last attempted.
    pub attempted_at: DateTime<Utc>,
}

impl ServerCatalog {
    /// An empty catalog of a server never reached.
    #[must_use]
    pub fn empty(org_id: OrgId, server_id: ServerId, at: DateTime<Utc>) -> Self {
        Self {
            org_id,
            server_id,
            protocol_version: None,
            server_info: None,
            capabilities: None,
            instructions: None,
            tools: Vec::new(),
            resources: Vec::new(),
            resource_templates: Vec::new(),
            prompts: Vec::new(),
            fingerprint: None,
            pins: std::collections::BTreeMap::new(),
            changes: Vec::new(),
            refreshed_at: None,
            last_error: None,
            attempted_at: at,
        }
    }
}
