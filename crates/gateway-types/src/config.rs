//! Typed, validated configuration.
//!
//! These structs are the schema of `config/default.yaml`; loading (files, `GATEWAY__*`
//! environment overrides) lives with the application, which calls [`GatewayConfig::validate`]
//! and refuses to start while it reports anything. Every struct denies unknown keys so a typo
//! is an error, not a silently ignored setting. Secrets are [`SecretString`]s: they never
//! appear in `Debug` output or logs.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The JWT secret shipped in `config/default.yaml`. Production refuses to start with it.
pub const DEFAULT_JWT_SECRET: &str = "dev-only-insecure-jwt-secret-change-me-0000";
/// The shortest JWT secret production accepts, in bytes.
pub const MIN_JWT_SECRET_BYTES: usize = 32;
/// The master key `config/development.yaml` ships (base64 of 32 bytes). Production refuses it.
pub const DEVELOPMENT_MASTER_KEY: &str = "ZGV2LW9ubHktaW5zZWN1cmUtbWFzdGVyLWtleS0wMDA=";

/// Which deployment profile is running (`GATEWAY_ENV`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Local development: pretty logs, relaxed secrets.
    #[default]
    Development,
    /// Production: JSON logs, strict secrets.
    Production,
}

impl Environment {
    /// Parses `GATEWAY_ENV`'s value.
    ///
    /// # Errors
    /// An unknown name, with the accepted ones.
    pub fn parse(name: &str) -> Result<Self, ConfigIssue> {
        match name.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" => Ok(Self::Development),
            "production" | "prod" => Ok(Self::Production),
            other => Err(ConfigIssue::new(
                "GATEWAY_ENV",
                format!("unknown environment {other:?}; expected \"development\" or \"production\""),
            )),
        }
    }

    /// The name used for `config/<name>.yaml`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Production => "production",
        }
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// The profile; set by the loader from `GATEWAY_ENV`, not read from files.
    #[serde(skip)]
    pub environment: Environment,
    /// HTTP listener.
    pub server: ServerConfig,
    /// SQL store.
    pub database: DatabaseConfig,
    /// Redis (optional).
    pub redis: RedisConfig,
    /// Authentication.
    pub auth: AuthConfig,
    /// Logs.
    pub logging: LoggingConfig,
    /// Prometheus metrics.
    pub metrics: MetricsConfig,
    /// Access policies declared in configuration.
    pub policies: PoliciesConfig,
    /// MCP sessions and upstreams.
    pub mcp: McpConfig,
    /// Encryption of secrets at rest (upstream credentials, server environments).
    pub secrets: SecretsConfig,
    /// Rate limiting.
    pub rate_limit: RateLimitConfig,
    /// Namespaces and servers declared in configuration, reconciled into the store at start.
    pub declarative: DeclarativeConfig,
    /// The worker's health checks of registered servers.
    pub health_checks: HealthChecksConfig,
    /// Capability discovery: the catalog of each server, refreshed by the api.
    pub discovery: DiscoveryConfig,
    /// OpenTelemetry traces of MCP calls (off unless an OTLP endpoint is set).
    pub traces: TracesConfig,
}

/// OpenTelemetry traces: one span per MCP call, exported over OTLP/HTTP (JSON encoding).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracesConfig {
    /// The collector's base URL (`http://collector:4318`; `/v1/traces` is appended unless the
    /// URL already ends with it). Unset: no export, unless `OTEL_EXPORTER_OTLP_ENDPOINT` or
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported resource (`OTEL_SERVICE_NAME` wins when set).
    pub service_name: String,
    /// Share of new traces exported (0.0 .. 1.0); a client's sampled flag is honoured as is.
    pub sample_ratio: f64,
    /// Spans waiting for export; beyond it spans are dropped (and counted).
    pub queue_capacity: usize,
    /// Spans per export request, at most.
    pub batch_size: usize,
    /// A batch is sent at least this often while spans wait.
    pub flush_interval_ms: u64,
}

impl Default for TracesConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "mcp-gateway".into(),
            sample_ratio: 1.0,
            queue_capacity: 8192,
            batch_size: 512,
            flush_interval_ms: 1000,
        }
    }
}

impl TracesConfig {
    /// The traces URL to export to, from the configuration or the standard OpenTelemetry
    /// environment variables; `None` when tracing is off.
    #[must_use]
    pub fn endpoint(&self) -> Option<String> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        if let Some(full) = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            return Some(full);
        }
        let base = self
            .otlp_endpoint
            .clone()
            .filter(|v| !v.trim().is_empty())
            .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"))?;
        let base = base.trim_end_matches('/');
        Some(if base.ends_with("/v1/traces") {
            base.to_owned()
        } else {
            format!("{base}/v1/traces")
        })
    }

    /// `service.name`.
    #[must_use]
    pub fn service(&self) -> String {
        std::env::var("OTEL_SERVICE_NAME")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| self.service_name.clone())
    }
}

/// Capability discovery (the api's catalog of every server's tools, resources and prompts).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// Discover servers at all (off: catalogs are neither fetched nor refreshed; pins already
    /// stored still apply).
    pub enabled: bool,
    /// Each server's catalog is refreshed this often (with up to 10 % random jitter).
    pub refresh_interval_seconds: u64,
    /// One discovery (connect, handshake, every list page) fails after this.
    pub timeout_seconds: u64,
    /// Discoveries running at the same time, at most.
    pub concurrency: usize,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            refresh_interval_seconds: 600,
            timeout_seconds: 30,
            concurrency: 4,
        }
    }
}

/// Namespaces and servers declared in configuration (a deployment managed from version
/// control). The api reconciles them into the store before it serves: it creates what is
/// missing, updates what differs and deletes what it created earlier and the file no longer
/// declares; records created through the API are never touched. (Access policies are declared
/// under `policies.organizations` and apply from there.)
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeclarativeConfig {
    /// What each organization declares, by organization slug (a missing organization is
    /// created).
    pub organizations: std::collections::BTreeMap<String, DeclaredOrganization>,
}

/// The declarations of one organization.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeclaredOrganization {
    /// Namespaces.
    pub namespaces: Vec<DeclaredNamespace>,
    /// Servers.
    pub servers: Vec<DeclaredServer>,
}

/// A declared namespace.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredNamespace {
    /// Unique per organization: what declarations and servers name it by.
    pub slug: String,
    /// Display name (default: the slug).
    #[serde(default)]
    pub name: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// A declared server: the fields `POST /gateway/servers` takes (validated by the loader with the
/// same rules), with `namespace` (a slug) instead of `namespace_id`. Its `environment` values
/// and `credentials` are secrets: they may be written as `${VARIABLE}` (taken from the
/// process environment at start) and `Debug` never shows the document.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct DeclaredServer(pub serde_json::Value);

impl fmt::Debug for DeclaredServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = |k: &str| {
            self.0
                .get(k)
                .and_then(serde_json::Value::as_str)
                .unwrap_or("?")
                .to_owned()
        };
        f.debug_struct("DeclaredServer")
            .field("name", &field("name"))
            .field("protocol", &field("protocol"))
            .finish_non_exhaustive()
    }
}

/// Health checks of registered servers, run by `gateway-worker`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthChecksConfig {
    /// Run them (a worker with this off runs its other jobs only).
    pub enabled: bool,
    /// Each server not `inactive` is checked this often.
    pub interval_seconds: u64,
    /// A check that has not succeeded within this fails.
    pub timeout_seconds: u64,
    /// Consecutive failed checks that make an `active` server `degraded`.
    pub degraded_after: u32,
    /// Consecutive failed checks that make a server `down` (calls to it are refused at once).
    pub down_after: u32,
    /// Consecutive successful checks that make a `degraded` or `down` server `active` again.
    pub recover_after: u32,
    /// Checks run at the same time, at most.
    pub concurrency: usize,
    /// Request logs are rolled into each server's counters (`server_stats`) this often.
    pub stats_interval_seconds: u64,
    /// Health-check results older than this many days are deleted (with each roll-up).
    pub retention_days: u32,
}

impl Default for HealthChecksConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_seconds: 30,
            timeout_seconds: 10,
            degraded_after: 1,
            down_after: 3,
            recover_after: 2,
            concurrency: 8,
            stats_interval_seconds: 3600,
            retention_days: 7,
        }
    }
}

/// Rate limiting: the levels every request is checked at, the rules declared in
/// configuration, and how the limiter behaves when Redis does not answer. The rule schema's
/// finer checks (match values per scope) belong to `gateway-ratelimit`, which the loader uses.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Off = no request is counted or limited (no headers either).
    pub enabled: bool,
    /// What a decision does while Redis (when configured) does not answer.
    pub failure_mode: RateLimitFailureMode,
    /// Longest wait for one Redis decision before it counts as a failure.
    pub redis_timeout_ms: u64,
    /// Consecutive Redis failures that open the circuit breaker (decisions stop asking Redis).
    pub breaker_failures: u32,
    /// While the breaker is open, Redis is probed this often; the first answer closes it.
    pub breaker_reprobe_ms: u64,
    /// Most counters the in-memory backend keeps; idle ones are evicted first.
    pub memory_max_keys: usize,
    /// Every replica rebuilds its rule snapshots from the store this often.
    pub reload_interval_seconds: u64,
    /// Usage counts are written to `rate_limit_usage` this often (in one batch).
    pub usage_flush_seconds: u64,
    /// Per client IP, before authentication; `None` = no per-IP limit.
    pub ip: Option<LimitConfig>,
    /// Per principal (user, API key, app), after authentication; `None` = none.
    pub principal: Option<LimitConfig>,
    /// Per organization, by plan.
    pub plans: PlanLimitsConfig,
    /// Rules for every organization (the API manages each organization's own).
    pub rules: Vec<RateLimitRuleConfig>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            failure_mode: RateLimitFailureMode::Open,
            redis_timeout_ms: 25,
            breaker_failures: 3,
            breaker_reprobe_ms: 2000,
            memory_max_keys: 100_000,
            reload_interval_seconds: 10,
            usage_flush_seconds: 60,
            ip: None,
            principal: None,
            plans: PlanLimitsConfig::default(),
            rules: Vec::new(),
        }
    }
}

/// What rate-limit decisions do while Redis does not answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitFailureMode {
    /// Decide on this replica's in-memory counters (each replica enforces the limits on its
    /// own), with a warning log and a metric.
    #[default]
    Open,
    /// Refuse every request that a limit applies to until Redis answers again.
    Closed,
}

/// A quota: `limit` requests per `window_seconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Requests allowed per window.
    pub limit: u32,
    /// The window, in seconds.
    #[serde(default = "default_window_seconds")]
    pub window_seconds: u32,
}

const fn default_window_seconds() -> u32 {
    60
}

/// Per-organization limits by plan; `None` = no organization-wide limit for that plan.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlanLimitsConfig {
    /// Organizations on the free plan.
    pub free: Option<LimitConfig>,
    /// Organizations on the team plan.
    pub team: Option<LimitConfig>,
    /// Organizations on the enterprise plan.
    pub enterprise: Option<LimitConfig>,
}

impl Default for PlanLimitsConfig {
    fn default() -> Self {
        Self {
            free: Some(LimitConfig {
                limit: 1200,
                window_seconds: 60,
            }),
            team: Some(LimitConfig {
                limit: 12_000,
                window_seconds: 60,
            }),
            enterprise: None,
        }
    }
}

/// A rate-limit rule declared in configuration; it applies to every organization.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRuleConfig {
    /// Unique among the declared rules; shown in errors, headers and metrics.
    pub name: String,
    /// What the rule counts (`ip`, `principal`, `organization`, `endpoint`, `method`, `tool`).
    pub scope: crate::model::RateLimitScope,
    /// Which value of the scope it applies to (a CIDR, a principal id, an organization slug,
    /// a route, an MCP method, a tool name); `None` = every value, each counted on its own.
    #[serde(default, rename = "match")]
    pub match_value: Option<String>,
    /// Requests allowed per window.
    pub limit: u32,
    /// The window, in seconds.
    #[serde(default = "default_window_seconds")]
    pub window_seconds: u32,
}

/// MCP sessions, their buffers and the upstream processes the gateway runs.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    /// Sessions without activity (and without an open stream) for this long are closed.
    pub session_idle_timeout_seconds: u64,
    /// Live stdio server processes per organization (0 = no limit).
    pub max_processes_per_org: usize,
    /// Server-initiated messages queued per session before new ones are dropped.
    pub outbound_queue: usize,
    /// SSE events kept per session for `Last-Event-ID` resumption.
    pub event_buffer_events: usize,
    /// Bytes of SSE events kept per session.
    pub event_buffer_bytes: usize,
    /// Upstream restarts: failures within `crash_window_seconds` after which a server is
    /// given up on (crash loop).
    pub max_restarts: usize,
    /// The window for counting failures.
    pub crash_window_seconds: u64,
    /// Between a server's name and an item's in a namespace federation (`<server>__<tool>`).
    pub federation_separator: String,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            session_idle_timeout_seconds: 1800,
            max_processes_per_org: 50,
            outbound_queue: 256,
            event_buffer_events: 1024,
            event_buffer_bytes: 8 * 1024 * 1024,
            max_restarts: 5,
            crash_window_seconds: 60,
            federation_separator: "__".into(),
        }
    }
}

/// Keys that seal secrets at rest (AES-256-GCM). The current key seals; it and the previous
/// keys open, so a key can rotate without re-encrypting everything at once.
///
/// Key ids are stored beside each ciphertext (`v1:<key id>:…`); the keys themselves are
/// base64 of 32 random bytes, checked by the loader (`gateway-auth`'s sealing module decodes
/// them; this crate only knows their shape).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// Id of `master_key`, written beside every value it seals.
    pub key_id: String,
    /// Base64 of 32 random bytes. No default: `config/development.yaml` sets a fixed
    /// development key, which production refuses.
    pub master_key: Option<SecretString>,
    /// Earlier keys by id: they still open what they sealed, and never seal.
    pub previous_keys: std::collections::BTreeMap<String, SecretString>,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        Self {
            key_id: "k1".into(),
            master_key: None,
            previous_keys: std::collections::BTreeMap::new(),
        }
    }
}

/// Whether `id` is a valid key id: 1-64 characters of `[A-Za-z0-9-_.]` (no `:`, the
/// separator of the sealed text form).
#[must_use]
pub fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Access policies from configuration; they apply together with the rules managed through
/// the API. The rule documents' schema belongs to `gateway-auth`'s policy engine, which the
/// loader uses to validate them.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoliciesConfig {
    /// The effect when no rule applies.
    pub default_effect: PolicyDefault,
    /// How often every organization's rules are reloaded from the store.
    pub reload_interval_seconds: u64,
    /// Rule documents by organization slug.
    pub organizations: std::collections::BTreeMap<String, Vec<serde_json::Value>>,
}

impl Default for PoliciesConfig {
    fn default() -> Self {
        Self {
            default_effect: PolicyDefault::Allow,
            reload_interval_seconds: 30,
            organizations: std::collections::BTreeMap::new(),
        }
    }
}

/// The effect when no policy rule applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyDefault {
    /// Everything RBAC permits (an organization without rules behaves as without the engine).
    #[default]
    Allow,
    /// Only what a rule allows.
    Deny,
}

/// HTTP listener settings.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to bind.
    pub host: String,
    /// Port to bind (0 picks a free port).
    pub port: u16,
    /// HTTP worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Grace period for in-flight requests at shutdown.
    pub shutdown_timeout_seconds: u64,
    /// Idle keep-alive of client connections.
    pub keep_alive_seconds: u64,
    /// Time a client has to send its request head.
    pub client_request_timeout_seconds: u64,
    /// Cross-origin resource sharing.
    pub cors: CorsConfig,
    /// Reverse proxies (CIDR ranges) whose `Forwarded` / `X-Forwarded-For` headers name the
    /// client; from anyone else those headers are ignored.
    pub trusted_proxies: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            workers: 0,
            max_body_bytes: 4 * 1024 * 1024,
            shutdown_timeout_seconds: 30,
            keep_alive_seconds: 75,
            client_request_timeout_seconds: 10,
            cors: CorsConfig::default(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// CORS policy. An empty `allowed_origins` sends no CORS headers at all.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Exact origins (`https://app.example.com`), or `"*"` for any (not with credentials).
    pub allowed_origins: Vec<String>,
    /// Whether browsers may send credentials.
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight answer.
    pub max_age_seconds: u32,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            allow_credentials: false,
            max_age_seconds: 600,
        }
    }
}

/// SQL store settings. The URL scheme picks the backend.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://<path>` or `postgres://…`. May hold a password, hence secret.
    pub url: SecretString,
    /// Pool size.
    pub max_connections: u32,
    /// Time to open a new connection.
    pub connect_timeout_seconds: u64,
    /// Time to wait for a pooled connection.
    pub acquire_timeout_seconds: u64,
    /// PostgreSQL `statement_timeout`.
    pub statement_timeout_seconds: u64,
    /// Connections older than this are recycled.
    pub max_lifetime_seconds: u64,
    /// SQLite `busy_timeout`.
    pub sqlite_busy_timeout_ms: u64,
    /// Apply pending migrations when the api starts.
    pub migrate_on_start: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: SecretString::from("sqlite://data/gateway.db"),
            max_connections: 16,
            connect_timeout_seconds: 5,
            acquire_timeout_seconds: 5,
            statement_timeout_seconds: 30,
            max_lifetime_seconds: 1800,
            sqlite_busy_timeout_ms: 5000,
            migrate_on_start: true,
        }
    }
}

/// Which SQL backend a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabaseBackend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

impl DatabaseBackend {
    /// The backend named by a URL's scheme.
    ///
    /// # Errors
    /// Any scheme but `sqlite://`, `postgres://` and `postgresql://`.
    pub fn from_url(url: &str) -> Result<Self, ConfigIssue> {
        if url.starts_with("sqlite://") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            let scheme = url.split_once("://").map_or("(none)", |(s, _)| s);
            Err(ConfigIssue::new(
                "database.url",
                format!("unsupported scheme {scheme:?}; use sqlite://<path> or postgres://…"),
            ))
        }
    }
}

impl DatabaseConfig {
    /// The backend this configuration names.
    ///
    /// # Errors
    /// An unsupported URL scheme.
    pub fn backend(&self) -> Result<DatabaseBackend, ConfigIssue> {
        DatabaseBackend::from_url(self.url.expose_secret())
    }

    /// The SQLite file path of a `sqlite://` URL.
    #[must_use]
    pub fn sqlite_path(&self) -> Option<&str> {
        self.url.expose_secret().strip_prefix("sqlite://")
    }
}

/// Redis settings. No URL means in-memory state (single node).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://` or `rediss://` URL; unset means no Redis.
    pub url: Option<SecretString>,
    /// Pool size.
    pub pool_size: usize,
    /// Time to connect or to answer one command before Redis counts as down.
    pub timeout_ms: u64,
    /// Prefix of every key the gateway writes (deployments sharing one Redis use their own).
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            pool_size: 16,
            timeout_ms: 250,
            key_prefix: "mcpgw:".into(),
        }
    }
}

/// Authentication settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HS256 signing secret for access tokens.
    pub jwt_secret: SecretString,
    /// Earlier HS256 secrets, still accepted for verification after a rotation.
    pub previous_jwt_secrets: Vec<SecretString>,
    /// Asymmetric signing keys; when set, the first signs and all verify and are published
    /// at `/.well-known/jwks.json`. Empty means HS256 with `jwt_secret`.
    pub signing_keys: Vec<SigningKeyConfig>,
    /// External identity providers whose bearer tokens are accepted (MCP authorization spec).
    pub oidc_issuers: Vec<OidcIssuerConfig>,
    /// The gateway's public base URL (`https://mcp.example.com`), used as the protected
    /// resource in `/.well-known/oauth-protected-resource`. Unset = derived from the request.
    pub public_url: Option<String>,
    /// `iss` of issued tokens.
    pub jwt_issuer: String,
    /// `aud` of issued tokens.
    pub jwt_audience: String,
    /// Access-token lifetime.
    pub access_token_ttl_seconds: u64,
    /// Refresh-token lifetime.
    pub refresh_token_ttl_seconds: u64,
    /// bcrypt cost for password hashes (production needs at least 12).
    pub bcrypt_cost: u32,
    /// Failed logins of one account, within `failure_window_seconds`, before it is locked.
    pub max_failed_logins: u32,
    /// Failed logins from one client IP, within `failure_window_seconds`, before it is throttled.
    pub max_failed_logins_per_ip: u32,
    /// The window in which failures are counted.
    pub failure_window_seconds: u64,
    /// How long a locked account or throttled IP waits.
    pub lockout_seconds: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: SecretString::from(DEFAULT_JWT_SECRET),
            previous_jwt_secrets: Vec::new(),
            signing_keys: Vec::new(),
            oidc_issuers: Vec::new(),
            public_url: None,
            jwt_issuer: "mcp-gateway".into(),
            jwt_audience: "mcp-gateway".into(),
            access_token_ttl_seconds: 900,
            refresh_token_ttl_seconds: 2_592_000,
            bcrypt_cost: 12,
            max_failed_logins: 5,
            max_failed_logins_per_ip: 20,
            failure_window_seconds: 900,
            lockout_seconds: 900,
        }
    }
}

/// An asymmetric JWT signing key.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyConfig {
    /// Key id published in the JWKS and put in token headers.
    pub kid: String,
    /// `RS256` or `EdDSA`.
    pub algorithm: SigningAlgorithm,
    /// PEM file with the PKCS#8 private key.
    pub private_key_file: std::path::PathBuf,
}

/// An external OpenID Connect issuer whose access tokens the gateway accepts.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcIssuerConfig {
    /// The exact `iss` of its tokens (`https://login.example.com/realms/acme`).
    pub issuer: String,
    /// The `aud` its tokens must carry for this gateway.
    pub audience: String,
    /// Where its signing keys are; unset = discovered from
    /// `<issuer>/.well-known/openid-configuration`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Organization slug every token of this issuer belongs to …
    #[serde(default)]
    pub organization: Option<String>,
    /// … or the claim holding the organization slug.
    #[serde(default)]
    pub organization_claim: Option<String>,
    /// Claim holding role names (a string or an array of strings).
    #[serde(default)]
    pub role_claim: Option<String>,
    /// Claim value → gateway role (`admin`, `user`, `viewer`, `api_user`); the most
    /// privileged match wins.
    #[serde(default)]
    pub role_map: std::collections::BTreeMap<String, String>,
    /// Role when no mapping matches; unset = such tokens are refused.
    #[serde(default)]
    pub default_role: Option<String>,
}

/// Algorithms for asymmetric signing keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    #[serde(rename = "RS256")]
    Rs256,
    /// Ed25519.
    #[serde(rename = "EdDSA")]
    EdDsa,
}

/// Log output settings.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// An `EnvFilter` directive, e.g. `info` or `info,gateway_store=debug`. `RUST_LOG` wins.
    pub level: String,
    /// `pretty`, `json`, or `auto` (pretty in development, JSON in production).
    pub format: LogFormat,
    /// JSON paths (dot-separated, `*` matches any key or array element, rooted at `arguments`
    /// or `result`) of tool arguments and results that are redacted before anything is written,
    /// on top of the built-in secret key names.
    pub redact_paths: Vec<String>,
    /// The request log: one record per REST request and per MCP exchange.
    pub request_log: RequestLogConfig,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Auto,
            redact_paths: Vec::new(),
            request_log: RequestLogConfig::default(),
        }
    }
}

/// The request log's buffer and writer (`logging.request_log`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestLogConfig {
    /// Write request-log records at all.
    pub enabled: bool,
    /// Records waiting to be written; when full, new records are dropped (and counted).
    pub queue_capacity: usize,
    /// Records per database write.
    pub batch_size: usize,
    /// Longest a record waits before its batch is written, in milliseconds.
    pub flush_interval_ms: u64,
    /// Full request and response bodies (redacted), in a log sink.
    pub bodies: LogBodiesConfig,
    /// How often the worker rolls the log up into `log_aggregates` and applies retention.
    pub maintenance_interval_seconds: u64,
}

impl Default for RequestLogConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            queue_capacity: 10_000,
            batch_size: 500,
            flush_interval_ms: 1_000,
            bodies: LogBodiesConfig::default(),
            maintenance_interval_seconds: 300,
        }
    }
}

/// Where and for whom full bodies are kept (`logging.request_log.bodies`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogBodiesConfig {
    /// Keep bodies for every organization and server (a server's `metadata.log_bodies`
    /// overrides it either way).
    pub enabled: bool,
    /// Organizations (slugs) whose bodies are kept even when `enabled` is false.
    pub organizations: Vec<String>,
    /// `file` (rotating local files, the default), `object_store` or `stdout`.
    pub sink: LogSinkKind,
    /// Bodies waiting for the sink; when full, bodies are dropped (and counted).
    pub queue_capacity: usize,
    /// Further attempts after a sink write fails.
    pub max_retries: u32,
    /// Wait before the first retry in milliseconds; doubles for each further one.
    pub retry_backoff_ms: u64,
    /// The `file` sink.
    pub file: FileSinkConfig,
    /// The `object_store` sink.
    pub object_store: ObjectStoreSinkConfig,
}

impl Default for LogBodiesConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            organizations: Vec::new(),
            sink: LogSinkKind::File,
            queue_capacity: 1_000,
            max_retries: 3,
            retry_backoff_ms: 200,
            file: FileSinkConfig::default(),
            object_store: ObjectStoreSinkConfig::default(),
        }
    }
}

/// Which sink keeps bodies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogSinkKind {
    /// Rotating local files.
    #[default]
    File,
    /// S3-compatible object storage.
    ObjectStore,
    /// One JSON object per line on standard output, for log shippers.
    Stdout,
}

/// Rotating local files (`logging.request_log.bodies.file`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileSinkConfig {
    /// Directory of the files.
    pub dir: String,
    /// A file is rotated when it reaches this size.
    pub max_file_bytes: u64,
    /// ... or this age, in seconds.
    pub max_file_age_seconds: u64,
    /// Rotated files kept; the oldest beyond it are deleted.
    pub max_files: usize,
}

impl Default for FileSinkConfig {
    fn default() -> Self {
        Self {
            dir: "data/log-bodies".into(),
            max_file_bytes: 64 * 1024 * 1024,
            max_file_age_seconds: 3_600,
            max_files: 168,
        }
    }
}

/// S3-compatible object storage (`logging.request_log.bodies.object_store`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectStoreSinkConfig {
    /// `s3://bucket/prefix` (credentials and region from the standard `AWS_*` environment),
    /// `file:///dir` or `memory://`.
    pub url: Option<String>,
    /// An S3-compatible endpoint (MinIO, Ceph...), instead of AWS.
    pub endpoint: Option<String>,
}

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// By environment.
    #[default]
    Auto,
    /// Human-readable.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Prometheus metrics settings.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `GET /metrics`.
    pub enabled: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// One invalid setting: the key (dotted, as in the YAML) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted key, e.g. `auth.jwt_secret`.
    pub key: String,
    /// What is wrong and what would be right.
    pub message: String,
}

impl ConfigIssue {
    /// A new issue.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every problem found in a configuration, reported together.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigIssue>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration ({} problem{}):",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for issue in &self.0 {
            write!(f, "\n  - {issue}")?;
        }
        Ok(())
    }
}

impl GatewayConfig {
    /// Checks every value and reports all problems at once.
    ///
    /// # Errors
    /// Every invalid value, each with its key.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut issues = Vec::new();
        let prod = self.environment == Environment::Production;
        let mut check = |ok: bool, key: &str, msg: &str| {
            if !ok {
                issues.push(ConfigIssue::new(key, msg));
            }
        };

        let m = &self.mcp;
        check(
            (10..=7 * 24 * 3600).contains(&m.session_idle_timeout_seconds),
            "mcp.session_idle_timeout_seconds",
            "must be between 10 and 604800",
        );
        check(
            (1..=65536).contains(&m.outbound_queue),
            "mcp.outbound_queue",
            "must be between 1 and 65536",
        );
        check(
            (1..=1_000_000).contains(&m.event_buffer_events),
            "mcp.event_buffer_events",
            "must be between 1 and 1000000",
        );
        check(
            (1024..=1024 * 1024 * 1024).contains(&m.event_buffer_bytes),
            "mcp.event_buffer_bytes",
            "must be between 1024 and 1073741824",
        );
        check(
            (1..=1000).contains(&m.max_restarts),
            "mcp.max_restarts",
            "must be between 1 and 1000",
        );
        check(
            (1..=86400).contains(&m.crash_window_seconds),
            "mcp.crash_window_seconds",
            "must be between 1 and 86400",
        );
        check(
            (1..=8).contains(&m.federation_separator.len())
                && m.federation_separator
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/')),
            "mcp.federation_separator",
            "must be 1 to 8 characters of A-Z, a-z, 0-9, _, -, . or /",
        );

        let s = &self.server;
        check(!s.host.trim().is_empty(), "server.host", "must not be empty");
        check(
            (1024..=1024 * 1024 * 1024).contains(&s.max_body_bytes),
            "server.max_body_bytes",
            "must be between 1024 and 1073741824",
        );
        check(
            s.workers <= 1024,
            "server.workers",
            "must be at most 1024 (0 = one per core)",
        );
        check(
            (1..=3600).contains(&s.shutdown_timeout_seconds),
            "server.shutdown_timeout_seconds",
            "must be between 1 and 3600",
        );
        check(
            (1..=3600).contains(&s.client_request_timeout_seconds),
            "server.client_request_timeout_seconds",
            "must be between 1 and 3600",
        );
        for (i, origin) in s.cors.allowed_origins.iter().enumerate() {
            check(
                valid_origin(origin),
                &format!("server.cors.allowed_origins[{i}]"),
                "must be \"*\" or an origin like https://app.example.com (scheme and host, no path)",
            );
        }
        check(
            !(s.cors.allow_credentials && s.cors.allowed_origins.iter().any(|o| o == "*")),
            "server.cors.allow_credentials",
            "cannot be true when allowed_origins contains \"*\"",
        );
        for (i, range) in s.trusted_proxies.iter().enumerate() {
            if let Err(msg) = crate::net::IpNet::parse(range) {
                check(false, &format!("server.trusted_proxies[{i}]"), &msg);
            }
        }
        rate_limit_issues(&self.rate_limit, &mut issues);

        let d = &self.database;
        if let Err(issue) = d.backend() {
            issues.push(issue);
        } else if d.sqlite_path().is_some_and(|p| p.trim().is_empty()) {
            issues.push(ConfigIssue::new("database.url", "sqlite:// needs a file path"));
        }
        let mut check = |ok: bool, key: &str, msg: &str| {
            if !ok {
                issues.push(ConfigIssue::new(key, msg));
            }
        };
        check(
            (1..=1000).contains(&d.max_connections),
            "database.max_connections",
            "must be between 1 and 1000",
        );
        check(
            (1..=300).contains(&d.connect_timeout_seconds),
            "database.connect_timeout_seconds",
            "must be between 1 and 300",
        );
        check(
            (1..=300).contains(&d.acquire_timeout_seconds),
            "database.acquire_timeout_seconds",
            "must be between 1 and 300",
        );
        check(
            d.statement_timeout_seconds >= 1,
            "database.statement_timeout_seconds",
            "must be at least 1",
        );
        check(
            d.max_lifetime_seconds >= 10,
            "database.max_lifetime_seconds",
            "must be at least 10",
        );

        if let Some(url) = &self.redis.url {
            let url = url.expose_secret();
            check(
                url.starts_with("redis://") || url.starts_with("rediss://"),
                "redis.url",
                "must start with redis:// or rediss://",
            );
        }
        check(
            (1..=1024).contains(&self.redis.pool_size),
            "redis.pool_size",
            "must be between 1 and 1024",
        );
        check(
            (1..=60_000).contains(&self.redis.timeout_ms),
            "redis.timeout_ms",
            "must be between 1 and 60000",
        );
        check(
            self.redis.key_prefix.len() <= 64 && self.redis.key_prefix.bytes().all(|b| b.is_ascii_graphic()),
            "redis.key_prefix",
            "must be at most 64 printable characters without spaces",
        );

        let a = &self.auth;
        let secret = a.jwt_secret.expose_secret();
        if prod {
            check(
                secret != DEFAULT_JWT_SECRET,
                "auth.jwt_secret",
                "is the shipped default; set GATEWAY__AUTH__JWT_SECRET to a random value of at least 32 bytes",
            );
            check(
                secret.len() >= MIN_JWT_SECRET_BYTES,
                "auth.jwt_secret",
                "is shorter than 32 bytes; production needs a long random secret",
            );
            check(
                a.bcrypt_cost >= 12,
                "auth.bcrypt_cost",
                "must be at least 12 in production",
            );
        } else {
            check(!secret.is_empty(), "auth.jwt_secret", "must not be empty");
        }
        for (i, key) in a.signing_keys.iter().enumerate() {
            let ok = !key.kid.is_empty()
                && key.kid.len() <= 64
                && key
                    .kid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            check(
                ok,
                &format!("auth.signing_keys[{i}].kid"),
                "must be 1-64 characters of [A-Za-z0-9-_.]",
            );
        }
        check(
            a.signing_keys
                .iter()
                .map(|k| &k.kid)
                .collect::<std::collections::HashSet<_>>()
                .len()
                == a.signing_keys.len(),
            "auth.signing_keys",
            "kids must be unique",
        );
        for (i, idp) in a.oidc_issuers.iter().enumerate() {
            let key = |field: &str| format!("auth.oidc_issuers[{i}].{field}");
            check(
                secure_url(&idp.issuer),
                &key("issuer"),
                "must be an https URL (http only for localhost)",
            );
            check(!idp.audience.is_empty(), &key("audience"), "must not be empty");
            if let Some(url) = &idp.jwks_url {
                check(
                    secure_url(url),
                    &key("jwks_url"),
                    "must be an https URL (http only for localhost)",
                );
            }
            check(
                idp.organization.is_some() != idp.organization_claim.is_some(),
                &key("organization"),
                "set exactly one of organization and organization_claim",
            );
            for (claim, role) in &idp.role_map {
                check(
                    ROLE_NAMES.contains(&role.as_str()),
                    &key(&format!("role_map.{claim}")),
                    ROLE_HINT,
                );
            }
            if let Some(role) = &idp.default_role {
                check(
                    ROLE_NAMES.contains(&role.as_str()),
                    &key("default_role"),
                    ROLE_HINT,
                );
            }
            check(
                idp.default_role.is_some() || (idp.role_claim.is_some() && !idp.role_map.is_empty()),
                &key("default_role"),
                "needed unless role_claim and role_map are set",
            );
        }
        let sec = &self.secrets;
        check(
            valid_key_id(&sec.key_id),
            "secrets.key_id",
            "must be 1-64 characters of [A-Za-z0-9-_.]",
        );
        for id in sec.previous_keys.keys() {
            check(
                valid_key_id(id),
                &format!("secrets.previous_keys.{id}"),
                "key ids must be 1-64 characters of [A-Za-z0-9-_.]",
            );
        }
        check(
            !sec.previous_keys.contains_key(&sec.key_id),
            &format!("secrets.previous_keys.{}", sec.key_id),
            "repeats secrets.key_id; a key id names one key",
        );
        if prod {
            match &sec.master_key {
                None => check(
                    false,
                    "secrets.master_key",
                    "is not set; set GATEWAY__SECRETS__MASTER_KEY to base64 of 32 random bytes (e.g. `openssl rand -base64 32`)",
                ),
                Some(key) => check(
                    key.expose_secret().trim() != DEVELOPMENT_MASTER_KEY,
                    "secrets.master_key",
                    "is the development key; set GATEWAY__SECRETS__MASTER_KEY to base64 of 32 random bytes (e.g. `openssl rand -base64 32`)",
                ),
            }
            for (id, key) in &sec.previous_keys {
                check(
                    key.expose_secret().trim() != DEVELOPMENT_MASTER_KEY,
                    &format!("secrets.previous_keys.{id}"),
                    "is the development key; production never opens values sealed with it",
                );
            }
        }
        let h = &self.health_checks;
        check(
            (1..=86_400).contains(&h.interval_seconds),
            "health_checks.interval_seconds",
            "must be between 1 and 86400",
        );
        check(
            (1..=300).contains(&h.timeout_seconds),
            "health_checks.timeout_seconds",
            "must be between 1 and 300",
        );
        check(
            (1..=100).contains(&h.degraded_after),
            "health_checks.degraded_after",
            "must be between 1 and 100",
        );
        check(
            (h.degraded_after..=100).contains(&h.down_after),
            "health_checks.down_after",
            "must be between health_checks.degraded_after and 100",
        );
        check(
            (1..=100).contains(&h.recover_after),
            "health_checks.recover_after",
            "must be between 1 and 100",
        );
        check(
            (1..=256).contains(&h.concurrency),
            "health_checks.concurrency",
            "must be between 1 and 256",
        );
        check(
            (60..=86_400).contains(&h.stats_interval_seconds),
            "health_checks.stats_interval_seconds",
            "must be between 60 and 86400",
        );
        check(
            (1..=3650).contains(&h.retention_days),
            "health_checks.retention_days",
            "must be between 1 and 3650",
        );
        let t = &self.traces;
        if let Some(url) = t.otlp_endpoint.as_deref().filter(|u| !u.trim().is_empty()) {
            check(
                url::Url::parse(url)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some()),
                "traces.otlp_endpoint",
                "must be an http(s) URL like http://otel-collector:4318",
            );
        }
        check(
            (0.0..=1.0).contains(&t.sample_ratio),
            "traces.sample_ratio",
            "must be between 0.0 and 1.0",
        );
        check(
            (1..=1_000_000).contains(&t.queue_capacity),
            "traces.queue_capacity",
            "must be between 1 and 1000000",
        );
        check(
            (1..=10_000).contains(&t.batch_size),
            "traces.batch_size",
            "must be between 1 and 10000",
        );
        check(
            (10..=60_000).contains(&t.flush_interval_ms),
            "traces.flush_interval_ms",
            "must be between 10 and 60000",
        );
        let d = &self.discovery;
        check(
            (10..=604_800).contains(&d.refresh_interval_seconds),
            "discovery.refresh_interval_seconds",
            "must be between 10 and 604800",
        );
        check(
            (1..=300).contains(&d.timeout_seconds),
            "discovery.timeout_seconds",
            "must be between 1 and 300",
        );
        check(
            (1..=64).contains(&d.concurrency),
            "discovery.concurrency",
            "must be between 1 and 64",
        );
        check(
            (1..=3600).contains(&self.policies.reload_interval_seconds),
            "policies.reload_interval_seconds",
            "must be between 1 and 3600",
        );
        if let Some(url) = &a.public_url {
            check(
                url::Url::parse(url)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some()),
                "auth.public_url",
                "must be an http(s) URL like https://mcp.example.com",
            );
        }
        check(
            (4..=31).contains(&a.bcrypt_cost),
            "auth.bcrypt_cost",
            "must be between 4 and 31",
        );
        check(!a.jwt_issuer.is_empty(), "auth.jwt_issuer", "must not be empty");
        check(
            !a.jwt_audience.is_empty(),
            "auth.jwt_audience",
            "must not be empty",
        );
        check(
            (10..=86_400).contains(&a.access_token_ttl_seconds),
            "auth.access_token_ttl_seconds",
            "must be between 10 and 86400",
        );
        check(
            a.refresh_token_ttl_seconds > a.access_token_ttl_seconds,
            "auth.refresh_token_ttl_seconds",
            "must be longer than auth.access_token_ttl_seconds",
        );
        check(
            !self.logging.level.trim().is_empty(),
            "logging.level",
            "must not be empty",
        );
        let rl = &self.logging.request_log;
        check(
            (1..=10_000_000).contains(&rl.queue_capacity),
            "logging.request_log.queue_capacity",
            "must be between 1 and 10000000",
        );
        check(
            (1..=10_000).contains(&rl.batch_size),
            "logging.request_log.batch_size",
            "must be between 1 and 10000",
        );
        check(
            (10..=60_000).contains(&rl.flush_interval_ms),
            "logging.request_log.flush_interval_ms",
            "must be between 10 and 60000",
        );
        check(
            (1..=86_400).contains(&rl.maintenance_interval_seconds),
            "logging.request_log.maintenance_interval_seconds",
            "must be between 1 and 86400",
        );
        check(
            (1..=1_000_000).contains(&rl.bodies.queue_capacity),
            "logging.request_log.bodies.queue_capacity",
            "must be between 1 and 1000000",
        );
        check(
            rl.bodies.file.max_files >= 1 && rl.bodies.file.max_file_bytes >= 1024,
            "logging.request_log.bodies.file",
            "max_files must be at least 1 and max_file_bytes at least 1024",
        );
        check(
            rl.bodies.sink != LogSinkKind::ObjectStore || rl.bodies.object_store.url.is_some(),
            "logging.request_log.bodies.object_store.url",
            "must be set when the sink is object_store",
        );
        for (i, path) in self.logging.redact_paths.iter().enumerate() {
            let root = path.split('.').next().unwrap_or("");
            check(
                (root == "arguments" || root == "result") && !path.split('.').any(str::is_empty),
                &format!("logging.redact_paths[{i}]"),
                "must be a dot-separated path starting with arguments or result",
            );
        }

        if issues.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(issues))
        }
    }
}

/// The ranges of the `rate_limit` section's numbers (the match values of its rules are checked
/// by `gateway-ratelimit`, through the loader).
fn rate_limit_issues(r: &RateLimitConfig, issues: &mut Vec<ConfigIssue>) {
    let mut check = |ok: bool, key: &str, msg: &str| {
        if !ok {
            issues.push(ConfigIssue::new(key, msg));
        }
    };
    check(
        (1..=10_000).contains(&r.redis_timeout_ms),
        "rate_limit.redis_timeout_ms",
        "must be between 1 and 10000",
    );
    check(
        (1..=1000).contains(&r.breaker_failures),
        "rate_limit.breaker_failures",
        "must be between 1 and 1000",
    );
    check(
        (10..=600_000).contains(&r.breaker_reprobe_ms),
        "rate_limit.breaker_reprobe_ms",
        "must be between 10 and 600000",
    );
    check(
        (100..=100_000_000).contains(&r.memory_max_keys),
        "rate_limit.memory_max_keys",
        "must be between 100 and 100000000",
    );
    check(
        (1..=3600).contains(&r.reload_interval_seconds),
        "rate_limit.reload_interval_seconds",
        "must be between 1 and 3600",
    );
    check(
        (1..=3600).contains(&r.usage_flush_seconds),
        "rate_limit.usage_flush_seconds",
        "must be between 1 and 3600",
    );
    let quotas = [
        ("rate_limit.ip", r.ip),
        ("rate_limit.principal", r.principal),
        ("rate_limit.plans.free", r.plans.free),
        ("rate_limit.plans.team", r.plans.team),
        ("rate_limit.plans.enterprise", r.plans.enterprise),
    ];
    for (key, quota) in quotas {
        if let Some(q) = quota {
            limit_issues(key, q.limit, q.window_seconds, issues);
        }
    }
    let mut names = std::collections::HashSet::new();
    for (i, rule) in r.rules.iter().enumerate() {
        let key = format!("rate_limit.rules[{i}]");
        limit_issues(&key, rule.limit, rule.window_seconds, issues);
        if !names.insert(rule.name.as_str()) {
            issues.push(ConfigIssue::new(
                format!("{key}.name"),
                "repeats the name of an earlier rule",
            ));
        }
    }
}

/// Largest `limit` of a quota.
pub const MAX_RATE_LIMIT: u32 = 1_000_000;
/// Longest window of a quota, in seconds (a day).
pub const MAX_RATE_WINDOW_SECONDS: u32 = 86_400;

fn limit_issues(key: &str, limit: u32, window_seconds: u32, issues: &mut Vec<ConfigIssue>) {
    if !(1..=MAX_RATE_LIMIT).contains(&limit) {
        issues.push(ConfigIssue::new(
            format!("{key}.limit"),
            format!("must be between 1 and {MAX_RATE_LIMIT}"),
        ));
    }
    if !(1..=MAX_RATE_WINDOW_SECONDS).contains(&window_seconds) {
        issues.push(ConfigIssue::new(
            format!("{key}.window_seconds"),
            format!("must be between 1 and {MAX_RATE_WINDOW_SECONDS}"),
        ));
    }
}

const ROLE_NAMES: &[&str] = &["admin", "user", "viewer", "api_user"];
const ROLE_HINT: &str = "must be one of admin, user, viewer, api_user";

/// https, or http to a loopback host (development and tests).
fn secure_url(raw: &str) -> bool {
    url::Url::parse(raw).is_ok_and(|u| match u.scheme() {
        "https" => u.host_str().is_some(),
        "http" => matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")),
        _ => false,
    })
}

fn valid_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    match url::Url::parse(origin) {
        Ok(u) => {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.path() == "/"
                && !origin.ends_with('/')
                && u.query().is_none()
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(cfg: &GatewayConfig) -> Vec<String> {
        cfg.validate()
            .err()
            .map(|e| e.0.into_iter().map(|i| i.key).collect())
            .unwrap_or_default()
    }

    #[test]
    fn defaults_are_valid_in_development() {
        assert_eq!(keys(&GatewayConfig::default()), Vec::<String>::new());
    }

    #[test]
    fn production_rejects_default_and_short_secrets() {
        let mut cfg = GatewayConfig {
            environment: Environment::Production,
            ..Default::default()
        };
        assert!(keys(&cfg).contains(&"auth.jwt_secret".to_string()));
        cfg.auth.jwt_secret = SecretString::from("short");
        assert!(keys(&cfg).contains(&"auth.jwt_secret".to_string()));
        cfg.auth.jwt_secret = SecretString::from("x".repeat(48));
        cfg.secrets.master_key = Some(SecretString::from("cHJvZHVjdGlvbi1rZXktb2YtMzItYnl0ZXMtLS0tLS0="));
        assert_eq!(keys(&cfg), Vec::<String>::new());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut cfg = GatewayConfig::default();
        cfg.server.max_body_bytes = 1;
        cfg.database.url = SecretString::from("mysql://x");
        cfg.database.max_connections = 0;
        cfg.auth.bcrypt_cost = 99;
        cfg.server.cors.allowed_origins = vec!["https://ok.example".into(), "ftp://nope/x".into()];
        let got = keys(&cfg);
        for want in [
            "server.max_body_bytes",
            "database.url",
            "database.max_connections",
            "auth.bcrypt_cost",
            "server.cors.allowed_origins[1]",
        ] {
            assert!(got.iter().any(|k| k == want), "missing {want} in {got:?}");
        }
        assert!(!got.iter().any(|k| k == "server.cors.allowed_origins[0]"));
    }

    #[test]
    fn oidc_issuers_are_checked() {
        let mut cfg = GatewayConfig::default();
        cfg.auth.oidc_issuers = vec![OidcIssuerConfig {
            issuer: "http://idp.example.com".into(),
            audience: String::new(),
            jwks_url: None,
            organization: Some("default".into()),
            organization_claim: Some("org".into()),
            role_claim: None,
            role_map: [("g".to_owned(), "root".to_owned())].into(),
            default_role: None,
        }];
        let got = keys(&cfg);
        for want in [
            "auth.oidc_issuers[0].issuer",
            "auth.oidc_issuers[0].audience",
            "auth.oidc_issuers[0].organization",
            "auth.oidc_issuers[0].role_map.g",
            "auth.oidc_issuers[0].default_role",
        ] {
            assert!(got.iter().any(|k| k == want), "missing {want} in {got:?}");
        }
        cfg.auth.oidc_issuers[0] = OidcIssuerConfig {
            issuer: "https://idp.example.com/realms/a".into(),
            audience: "mcp-gateway".into(),
            jwks_url: Some("http://127.0.0.1:9/jwks".into()),
            organization: None,
            organization_claim: Some("org".into()),
            role_claim: Some("groups".into()),
            role_map: [("admins".to_owned(), "admin".to_owned())].into(),
            default_role: None,
        };
        assert_eq!(keys(&cfg), Vec::<String>::new());
    }

    #[test]
    fn production_needs_its_own_master_key() {
        let mut cfg = GatewayConfig {
            environment: Environment::Production,
            ..Default::default()
        };
        cfg.auth.jwt_secret = SecretString::from("x".repeat(48));
        assert_eq!(keys(&cfg), ["secrets.master_key"], "missing");
        cfg.secrets.master_key = Some(SecretString::from(DEVELOPMENT_MASTER_KEY));
        assert_eq!(keys(&cfg), ["secrets.master_key"], "the development key");
        cfg.secrets.master_key = Some(SecretString::from("cHJvZHVjdGlvbi1rZXktb2YtMzItYnl0ZXMtLS0tLS0="));
        cfg.secrets.previous_keys = [("old".to_owned(), SecretString::from(DEVELOPMENT_MASTER_KEY))].into();
        assert_eq!(keys(&cfg), ["secrets.previous_keys.old"]);
        cfg.secrets.previous_keys.clear();
        assert_eq!(keys(&cfg), Vec::<String>::new());
    }

    #[test]
    fn secret_key_ids_are_checked() {
        let mut cfg = GatewayConfig::default();
        cfg.secrets.key_id = "k:1".into();
        cfg.secrets.previous_keys = [
            ("k:1".to_owned(), SecretString::from("x")),
            ("bad id".to_owned(), SecretString::from("x")),
        ]
        .into();
        let got = keys(&cfg);
        for want in [
            "secrets.key_id",
            "secrets.previous_keys.k:1",
            "secrets.previous_keys.bad id",
        ] {
            assert!(got.iter().any(|k| k == want), "missing {want} in {got:?}");
        }
    }

    #[test]
    fn signing_key_ids_are_checked() {
        let key = |kid: &str| SigningKeyConfig {
            kid: kid.into(),
            algorithm: SigningAlgorithm::EdDsa,
            private_key_file: "/k.pem".into(),
        };
        let mut cfg = GatewayConfig::default();
        cfg.auth.signing_keys = vec![key("a"), key("a"), key("bad kid!")];
        let got = keys(&cfg);
        assert!(got.contains(&"auth.signing_keys".to_string()), "{got:?}");
        assert!(got.contains(&"auth.signing_keys[2].kid".to_string()), "{got:?}");
        cfg.auth.signing_keys = vec![key("2026-11"), key("2026-05")];
        assert_eq!(keys(&cfg), Vec::<String>::new());
    }

    #[test]
    fn backend_comes_from_the_scheme() {
        assert_eq!(
            DatabaseBackend::from_url("sqlite://data/x.db").unwrap(),
            DatabaseBackend::Sqlite
        );
        assert_eq!(
            DatabaseBackend::from_url("postgres://h/db").unwrap(),
            DatabaseBackend::Postgres
        );
        assert_eq!(
            DatabaseBackend::from_url("postgresql://h/db").unwrap(),
            DatabaseBackend::Postgres
        );
        let err = DatabaseBackend::from_url("mysql://h/db").unwrap_err();
        assert_eq!(err.key, "database.url");
        assert!(err.message.contains("mysql"));
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let mut cfg = GatewayConfig::default();
        cfg.secrets.master_key = Some(SecretString::from(DEVELOPMENT_MASTER_KEY));
        cfg.secrets.previous_keys = [("k0".to_owned(), SecretString::from("b2xkLWtleQ=="))].into();
        let debug = format!("{cfg:?}");
        assert!(!debug.contains(DEFAULT_JWT_SECRET));
        assert!(!debug.contains(DEVELOPMENT_MASTER_KEY), "{debug}");
        assert!(!debug.contains("b2xkLWtleQ=="), "{debug}");
        assert!(debug.contains("k0"), "key ids are not secret: {debug}");
    }

    #[test]
    fn rate_limits_and_trusted_proxies_are_checked() {
        let mut cfg = GatewayConfig::default();
        cfg.server.trusted_proxies = vec!["10.0.0.0/8".into(), "10.0.0.1/8".into(), "proxy".into()];
        cfg.rate_limit.ip = Some(LimitConfig {
            limit: 0,
            window_seconds: 60,
        });
        cfg.rate_limit.plans.team = Some(LimitConfig {
            limit: 10,
            window_seconds: 86_401,
        });
        cfg.rate_limit.redis_timeout_ms = 0;
        let rule = |name: &str| RateLimitRuleConfig {
            name: name.into(),
            scope: crate::model::RateLimitScope::Tool,
            match_value: None,
            limit: 5,
            window_seconds: 60,
        };
        cfg.rate_limit.rules = vec![rule("a"), rule("a")];
        let got = keys(&cfg);
        assert_eq!(
            got,
            [
                "server.trusted_proxies[1]",
                "server.trusted_proxies[2]",
                "rate_limit.redis_timeout_ms",
                "rate_limit.ip.limit",
                "rate_limit.plans.team.window_seconds",
                "rate_limit.rules[1].name",
            ]
        );
    }

    #[test]
    fn environment_names() {
        assert_eq!(Environment::parse("production").unwrap(), Environment::Production);
        assert_eq!(Environment::parse("DEV").unwrap(), Environment::Development);
        assert!(Environment::parse("staging").is_err());
    }
}
