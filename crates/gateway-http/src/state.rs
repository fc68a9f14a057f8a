//! What every handler can reach.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_transport::client::SessionBuffers;
use gateway_transport::hub::{Hub, HubSettings};
use gateway_transport::stdio::ProcessTable;
use gateway_transport::upstream::RestartPolicy;

use gateway_auth::jwt::{JwtKeys, KeyFileError, TokenIssuer};
use gateway_auth::oidc::{HttpJwksFetcher, OidcVerifier, StoreOrgResolver};
use gateway_auth::policy::{Effect, PolicyRegistry, PolicyRule};
use gateway_auth::sealing::Sealer;
use gateway_auth::service::{AuthService, AuthStores};
use gateway_logging::audit::{Auditor, AuditorOptions};
use gateway_logging::redact::Redactor;
use gateway_logging::request_log::{RequestLogger, RequestLoggerOptions};
use gateway_logging::sink::{FileSink, LogSink, StdoutSink};
use gateway_ratelimit::RateLimits;
use gateway_ratelimit::client_ip::TrustedProxies;
use gateway_ratelimit::clock::SystemClock;
use gateway_ratelimit::limiter::{Limiter, RedisSettings};
use gateway_ratelimit::redis::RedisBackend;
use gateway_types::config::GatewayConfig;
use gateway_types::config::LogSinkKind;
use gateway_types::store::{Stores, TokenDenyList};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::metrics::{self, MetricsError};
use crate::servers_cache::{self, ServerCache};

/// Errors of [`AppState::new`].
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Not called from inside the shared tokio runtime.
    #[error("AppState::new must be called inside the shared tokio runtime")]
    NoRuntime(#[from] tokio::runtime::TryCurrentError),
    /// The Prometheus recorder could not be installed.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// A configured JWT signing key could not be loaded.
    #[error(transparent)]
    SigningKey(#[from] KeyFileError),
    /// The policies declared in configuration are invalid (the loader validates them first).
    #[error("invalid policies in configuration: {0}")]
    Policies(#[from] gateway_auth::policy::InvalidPolicy),
    /// The HTTP client for upstream servers could not be built.
    #[error("cannot set up the upstream HTTP client")]
    Transport(#[source] gateway_transport::error::TransportError),
    /// The HTTP client for external identity providers could not be built.
    #[error("cannot set up the identity-provider client")]
    Oidc(#[source] gateway_auth::AuthError),
    /// The keys for secrets at rest are missing or invalid (the loader checks them first).
    #[error(transparent)]
    Secrets(gateway_types::config::ConfigErrors),
    /// The rate-limit rules or the trusted proxies are invalid (the loader checks them first).
    #[error("invalid rate limiting configuration: {0}")]
    RateLimit(String),
    /// The request log's body sink cannot be set up.
    #[error("cannot set up the request log's body sink")]
    LogSink(#[source] gateway_logging::sink::SinkError),
    /// The trace exporter's HTTP client cannot be built.
    #[error("cannot set up the trace exporter")]
    Traces(#[source] gateway_transport::error::TransportError),
}

/// The application state, shared by all actix workers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<GatewayConfig>,
    /// Every store, as trait objects.
    pub stores: Stores,
    /// When the process started serving (for `uptime_seconds`).
    pub started_at: Instant,
    /// The Prometheus handle; `None` when `metrics.enabled` is false.
    pub metrics: Option<PrometheusHandle>,
    /// The binary's shared multi-threaded runtime. actix workers run on their own
    /// single-threaded runtimes, and a task spawned there dies with its worker: anything that
    /// must outlive a request, or that opens connections a pool keeps, runs here.
    pub runtime: tokio::runtime::Handle,
    /// Authentication: tokens, keys, logins.
    pub auth: Arc<AuthService>,
    /// Access policy snapshots, one per organization (loaded by [`crate::serve`]).
    pub policies: Arc<PolicyRegistry>,
    /// Every live MCP session and upstream of this process.
    pub hub: Arc<Hub>,
    /// Organization limits for the MCP endpoints, cached briefly.
    pub(crate) org_limits: Arc<crate::mcp::OrgLimits>,
    /// MCP 2026-07-28 requests: pooled upstream sessions and calls waiting for client input.
    pub(crate) modern: Arc<crate::mcp::ModernState>,
    /// The audit trail's recorder; its writer task runs on [`Self::runtime`].
    pub auditor: Auditor,
    /// The request log (`None` when `logging.request_log.enabled` is false); its writer task
    /// runs on [`Self::runtime`].
    pub request_log: Option<RequestLogger>,
    /// The OTLP span exporter (`None` unless `traces.otlp_endpoint` or the OpenTelemetry
    /// environment names a collector); its task runs on [`Self::runtime`].
    pub traces: Option<crate::traces::SpanExporter>,
    /// Seals and opens secrets at rest (server environments, upstream credentials).
    pub sealer: Arc<Sealer>,
    /// Server lookups by id or name with secrets opened, for the MCP endpoints; the
    /// `/gateway/servers` handlers invalidate it on every write.
    pub(crate) servers: Arc<ServerCache>,
    /// Changes written through any replica, from the change-log poller ([`crate::changes`]).
    pub changes: crate::changes::ChangeFeed,
    /// Rate-limit rules in force and the limiter (Redis or in-memory).
    pub limits: Arc<RateLimits>,
    /// `server.trusted_proxies`, for [`crate::client_ip::client_ip`].
    pub trusted_proxies: Arc<TrustedProxies>,
    /// Every server's capability catalog, pins and withheld tools ([`crate::catalog`]).
    pub catalogs: Arc<crate::catalog::Catalogs>,
}

impl AppState {
    /// Builds the state: captures the current (shared) runtime, starts the audit writer on it
    /// and, when metrics are enabled, installs the process-wide Prometheus recorder.
    ///
    /// # Errors
    /// Not inside a tokio runtime, a foreign metrics recorder is already installed, or the
    /// configuration's signing keys, policies or secrets keys are unusable.
    pub fn new(config: Arc<GatewayConfig>, stores: Stores) -> Result<Self, StateError> {
        let runtime = tokio::runtime::Handle::try_current()?;
        let metrics = if config.metrics.enabled {
            Some(metrics::install()?)
        } else {
            None
        };
        let auth = Arc::new(build_auth(&config, &stores)?);
        let policies = Arc::new(build_policies(&config)?);
        let hub = build_hub(&config, &stores, runtime.clone())?;
        let auditor = Auditor::spawn(stores.audit.clone(), &runtime, AuditorOptions::default());
        let request_log = build_request_log(&config, &stores, &runtime)?;
        let traces = match config.traces.endpoint() {
            Some(_) => {
                let client = gateway_transport::http::default_client().map_err(StateError::Traces)?;
                crate::traces::SpanExporter::start(&config.traces, client, &runtime)
            }
            None => None,
        };
        let sealer = Arc::new(Sealer::from_config(&config.secrets).map_err(StateError::Secrets)?);
        let limits = Arc::new(build_limits(&config, &runtime)?);
        let trusted_proxies = Arc::new(
            TrustedProxies::parse(&config.server.trusted_proxies)
                .map_err(|(i, e)| StateError::RateLimit(format!("server.trusted_proxies[{i}]: {e}")))?,
        );
        let on_change = Arc::downgrade(&hub);
        let servers = Arc::new(
            ServerCache::new(
                stores.servers.clone(),
                Arc::clone(&sealer),
                servers_cache::DEFAULT_TTL,
            )
            // Sessions on a server that connects differently now end (stdio processes stop).
            .on_connection_change(move |id| {
                if let Some(hub) = on_change.upgrade() {
                    hub.drop_server(id);
                }
            }),
        );
        Ok(Self {
            limits,
            trusted_proxies,
            auth,
            policies,
            hub,
            org_limits: Arc::default(),
            modern: Arc::default(),
            auditor,
            request_log,
            traces,
            sealer,
            servers,
            changes: crate::changes::ChangeFeed::new(),
            catalogs: Arc::default(),
            config,
            stores,
            started_at: Instant::now(),
            metrics,
            runtime,
        })
    }
}

/// The request logger with the configured body sink (bodies are collected only when some
/// organization or server may keep them: `bodies.enabled`, listed organizations, or any
/// server's `metadata.log_bodies`, which is why the sink always exists when logging is on).
fn build_request_log(
    config: &GatewayConfig,
    stores: &Stores,
    runtime: &tokio::runtime::Handle,
) -> Result<Option<RequestLogger>, StateError> {
    let cfg = &config.logging.request_log;
    if !cfg.enabled {
        return Ok(None);
    }
    let sink = build_sink(&cfg.bodies)?;
    let redactor = Arc::new(Redactor::new(&config.logging.redact_paths));
    Ok(Some(RequestLogger::spawn(
        stores.logs.clone(),
        Some(sink),
        redactor,
        runtime,
        RequestLoggerOptions::from_config(cfg),
    )))
}

/// The sink `logging.request_log.bodies.sink` names (the worker uses it for retention).
///
/// # Errors
/// The object-store sink is configured but unusable, or not in this build.
pub fn build_sink(cfg: &gateway_types::config::LogBodiesConfig) -> Result<Arc<dyn LogSink>, StateError> {
    Ok(match cfg.sink {
        LogSinkKind::File => Arc::new(FileSink::new(&cfg.file)),
        LogSinkKind::Stdout => Arc::new(StdoutSink::new()),
        #[cfg(feature = "object-store")]
        LogSinkKind::ObjectStore => Arc::new(
            gateway_logging::sink::ObjectStoreSink::from_config(&cfg.object_store)
                .map_err(StateError::LogSink)?,
        ),
        #[cfg(not(feature = "object-store"))]
        LogSinkKind::ObjectStore => {
            return Err(StateError::LogSink(
                gateway_logging::sink::SinkError::Unsupported(
                    "this build has no object_store support (feature object-store)",
                ),
            ));
        }
    })
}

/// The rate limiter: on Redis when `redis.url` is set (falling back to memory as
/// `rate_limit.failure_mode` says), in memory otherwise; with the configuration's rules.
fn build_limits(config: &GatewayConfig, runtime: &tokio::runtime::Handle) -> Result<RateLimits, StateError> {
    let rl = &config.rate_limit;
    let clock = Arc::new(SystemClock);
    let limiter = if config.redis.url.is_some() {
        let timeout = Duration::from_millis(rl.redis_timeout_ms);
        let backend = RedisBackend::new(&config.redis, &config.redis.key_prefix, timeout)
            .map_err(|e| StateError::RateLimit(gateway_types::error::error_chain(&e)))?;
        let settings = RedisSettings {
            timeout,
            breaker_failures: rl.breaker_failures,
            breaker_reprobe: Duration::from_millis(rl.breaker_reprobe_ms),
            failure_mode: rl.failure_mode,
        };
        Limiter::redis(
            backend,
            settings,
            rl.memory_max_keys,
            clock,
            Some(runtime.clone()),
        )
    } else {
        Limiter::memory(rl.memory_max_keys, clock)
    };
    RateLimits::new(rl, limiter).map_err(|e| StateError::RateLimit(e.to_string()))
}

/// The MCP hub: connectors for every upstream transport on one shared HTTP client.
fn build_hub(
    config: &GatewayConfig,
    stores: &Stores,
    runtime: tokio::runtime::Handle,
) -> Result<Arc<Hub>, StateError> {
    let m = &config.mcp;
    let processes = ProcessTable::new(m.max_processes_per_org);
    let (connectors, _) = crate::upstreams::connectors(&processes)?;
    let settings = HubSettings {
        idle_timeout: Duration::from_secs(m.session_idle_timeout_seconds),
        buffers: SessionBuffers {
            outbound: m.outbound_queue,
            events: m.event_buffer_events,
            event_bytes: m.event_buffer_bytes,
        },
        restart: RestartPolicy {
            max_failures: m.max_restarts,
            window: Duration::from_secs(m.crash_window_seconds),
            ..RestartPolicy::default()
        },
    };
    Ok(Hub::new(
        connectors,
        processes,
        settings,
        Some(stores.sessions.clone()),
        runtime,
    ))
}

/// The authentication service over the stores (the access-token deny-list is the stores': in
/// memory, or on Redis when the binary connected it).
fn build_auth(config: &GatewayConfig, stores: &Stores) -> Result<AuthService, StateError> {
    let a = &config.auth;
    let issuer = TokenIssuer::new(
        JwtKeys::from_config(a)?,
        a.jwt_issuer.clone(),
        a.jwt_audience.clone(),
        a.access_token_ttl_seconds,
    );
    let denylist: Arc<dyn TokenDenyList> = stores.denylist.clone();
    let auth_stores = AuthStores {
        users: stores.users.clone(),
        api_keys: stores.api_keys.clone(),
        refresh_tokens: stores.refresh_tokens.clone(),
        denylist,
    };
    let mut service = AuthService::new(auth_stores, issuer, a);
    if !a.oidc_issuers.is_empty() {
        let fetcher = HttpJwksFetcher::new().map_err(StateError::Oidc)?;
        let orgs = StoreOrgResolver::new(stores.organizations.clone());
        service = service.with_oidc(OidcVerifier::new(
            &a.oidc_issuers,
            Arc::new(fetcher),
            Arc::new(orgs),
        ));
    }
    Ok(service)
}

/// The policy registry with the rules declared in configuration; stored rules are loaded by
/// [`crate::serve`] before it accepts traffic.
fn build_policies(config: &GatewayConfig) -> Result<PolicyRegistry, StateError> {
    let default_effect = match config.policies.default_effect {
        gateway_types::config::PolicyDefault::Allow => Effect::Allow,
        gateway_types::config::PolicyDefault::Deny => Effect::Deny,
    };
    let mut declared = std::collections::BTreeMap::new();
    for (slug, docs) in &config.policies.organizations {
        let rules = docs
            .iter()
            .map(|d| serde_json::from_value::<PolicyRule>(d.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| gateway_auth::policy::InvalidPolicy {
                problems: vec![gateway_auth::policy::Problem {
                    path: slug.clone(),
                    message: e.to_string(),
                }],
            })?;
        declared.insert(slug.clone(), rules);
    }
    Ok(PolicyRegistry::new(default_effect, declared)?)
}
