//! Building the actix-web application and serving it.

use std::io;
use std::net::TcpListener;
use std::time::Duration;

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpServer, web};

use crate::error::{json_config, path_config, payload_config, query_config};
use crate::metrics::run_upkeep;
use crate::middleware::{Edge, EdgePolicy};
use crate::ratelimit::RateLimiting;
use crate::routes;
use crate::state::AppState;

/// The application as one actix worker runs it: state, extractor limits and error handlers,
/// routes, the JSON 404, the rate-limit middleware, and the edge middleware around everything.
pub(crate) fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let policy = EdgePolicy::from_config(&state.config);
    let limit = state.config.server.max_body_bytes;
    let limiting = RateLimiting::new(state.clone());
    App::new()
        .app_data(web::Data::new(state))
        .configure(|cfg| extractor_configs(cfg, limit))
        .configure(routes::configure)
        .default_service(web::to(routes::not_found))
        .wrap(limiting)
        .wrap(Edge::new(policy))
}

/// Body limits and JSON error envelopes for every extractor.
pub(crate) fn extractor_configs(cfg: &mut web::ServiceConfig, limit: usize) {
    cfg.app_data(json_config(limit))
        .app_data(query_config())
        .app_data(path_config())
        .app_data(payload_config(limit));
}

/// Serves the gateway on `listener` until `shutdown` resolves, then stops gracefully: the
/// listener closes at once, in-flight requests get `server.shutdown_timeout_seconds` to finish.
///
/// Call it from the binary's shared multi-threaded runtime: the metrics upkeep is spawned
/// there and lives as long as this call. HTTP requests run on actix's own worker threads
/// (`server.workers`, 0 = one per core). OS signals are not handled here; pass
/// [`crate::shutdown::signal`] (or any future) as `shutdown`.
///
/// # Errors
/// The listener cannot be used, or a worker fails to start.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let server_cfg = state.config.server.clone();
    let workers = match server_cfg.workers {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let keep_alive = match server_cfg.keep_alive_seconds {
        0 => None,
        s => Some(Duration::from_secs(s)),
    };
    let upkeep = state
        .metrics
        .clone()
        .map(|handle| tokio::spawn(run_upkeep(handle)));

    // Deny rules must be in force before the first request: without them, refuse to serve.
    state
        .policies
        .load_all(
            state.stores.organizations.as_ref(),
            state.stores.policies.as_ref(),
        )
        .await
        .map_err(|e| {
            io::Error::other(format!(
                "loading access policies: {}",
                gateway_types::error::error_chain(&e)
            ))
        })?;
    // Namespaces and servers declared in configuration, before the first request.
    crate::declarative::reconcile(&state).await.map_err(|e| {
        io::Error::other(format!(
            "applying the declarative configuration: {}",
            gateway_types::error::error_chain(&e)
        ))
    })?;
    // Which servers are down (health checks): later changes arrive through the change feed.
    if let Err(err) = state.servers.load_statuses().await {
        tracing::warn!(
            error.chain = gateway_types::error::error_chain(&err),
            "could not read server statuses; they are learned as servers are looked up"
        );
    }
    // Stored rate limits: without them the configuration's still apply, so a failure here
    // is a warning, and the periodic reload keeps trying.
    if let Err(err) = reload_rate_limits_once(&state).await {
        tracing::warn!(error = %gateway_types::error::error_chain(&err), "could not load the stored rate limits; the configuration's apply until the next reload");
    }
    let key_usage = tokio::spawn(flush_key_usage(state.clone()));
    let hub_upkeep = tokio::spawn(std::sync::Arc::clone(&state.hub).run_upkeep());
    let policy_reload = tokio::spawn(reload_policies(state.clone()));
    let change_poller = tokio::spawn(crate::changes::run(state.clone()));
    let catalogs = tokio::spawn(crate::catalog::run(state.clone()));
    let limits_upkeep = tokio::spawn(rate_limit_upkeep(state.clone()));
    let limits_usage = tokio::spawn(flush_rate_limit_usage(state.clone()));

    let factory_state = state.clone();
    let server = HttpServer::new(move || app(factory_state.clone()))
        .workers(workers)
        .keep_alive(keep_alive)
        .client_request_timeout(Duration::from_secs(server_cfg.client_request_timeout_seconds))
        .shutdown_timeout(server_cfg.shutdown_timeout_seconds)
        .disable_signals()
        .on_connect(set_nodelay)
        .listen(listener)?
        .run();
    let handle = server.handle();

    let mut server = std::pin::pin!(server);
    let shutdown = std::pin::pin!(shutdown);
    let result = tokio::select! {
        result = &mut server => result,
        () = shutdown => {
            tracing::info!(
                shutdown_timeout_seconds = server_cfg.shutdown_timeout_seconds,
                "shutting down: no new connections, draining in-flight requests"
            );
            // The stop command is executed by the server future: poll both.
            let ((), result) = tokio::join!(handle.stop(true), server);
            result
        }
    };
    if let Some(task) = upkeep {
        task.abort();
    }
    key_usage.abort();
    policy_reload.abort();
    change_poller.abort();
    catalogs.abort();
    hub_upkeep.abort();
    limits_upkeep.abort();
    limits_usage.abort();
    // Every MCP session ends; stdio servers get their grace period, then no process survives.
    state.hub.shutdown().await;
    // Last rate-limit usage counts.
    if let Err(err) = state.limits.flush_usage(state.stores.rate_limits.as_ref()).await {
        tracing::warn!(error = %gateway_types::error::error_chain(&err), "could not record rate-limit usage at shutdown");
    }
    // Last batch of API-key `last_used_at` times.
    if let Err(err) = state.auth.flush_key_usage().await {
        tracing::warn!(error = %gateway_types::error::error_chain(&err), "could not record API key usage at shutdown");
    }
    // Audit events still queued: written before the runtime goes away, within a bound.
    match tokio::time::timeout(AUDIT_FLUSH_TIMEOUT, state.auditor.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            tracing::error!(error = %gateway_types::error::error_chain(&err), "could not write queued audit events at shutdown");
        }
        Err(_) => tracing::error!(
            timeout_seconds = AUDIT_FLUSH_TIMEOUT.as_secs(),
            "queued audit events were not all written at shutdown"
        ),
    }
    result
}

/// How long shutdown waits for queued audit events to be written.
const AUDIT_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Disables Nagle's algorithm on every client connection: SSE events and chunked answers are
/// small writes, and Nagle holding them until the client's delayed ACK adds ~40 ms to each.
fn set_nodelay(conn: &dyn std::any::Any, _: &mut actix_web::dev::Extensions) {
    if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
        let _ = tcp.set_nodelay(true);
    }
}

/// Rebuilds every organization's policy snapshot every `policies.reload_interval_seconds`, so
/// rules written through another replica, and organizations created after start, apply within
/// that time. A failed reload keeps the current snapshots.
async fn reload_policies(state: AppState) {
    let every = Duration::from_secs(state.config.policies.reload_interval_seconds.max(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate, and serve() has just loaded them
    loop {
        tick.tick().await;
        let result = state
            .policies
            .load_all(
                state.stores.organizations.as_ref(),
                state.stores.policies.as_ref(),
            )
            .await;
        if let Err(err) = result {
            tracing::warn!(error = %gateway_types::error::error_chain(&err), "could not reload policies; keeping the current ones");
        }
    }
}

async fn reload_rate_limits_once(state: &AppState) -> Result<(), gateway_types::store::StoreError> {
    state
        .limits
        .reload_all(
            state.stores.organizations.as_ref(),
            state.stores.rate_limits.as_ref(),
        )
        .await
}

/// Keeps the rate-limit rules current: an organization's snapshot is rebuilt when the change
/// feed reports a change to its rules or to the organization (its plan) — written through any
/// replica — and every snapshot every `rate_limit.reload_interval_seconds` (and after the feed
/// overflowed), which also drops idle in-memory counters. A failed reload keeps the current
/// rules.
async fn rate_limit_upkeep(state: AppState) {
    use tokio::sync::broadcast::error::RecvError;
    let every = Duration::from_secs(state.config.rate_limit.reload_interval_seconds.max(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // immediate; serve() has just loaded them
    let mut changes = state.changes.subscribe();
    loop {
        let org = tokio::select! {
            _ = tick.tick() => None,
            change = changes.recv() => match change {
                Ok(c) if c.kind == crate::changes::kind::RATE_LIMIT
                    || c.kind == crate::changes::kind::ORGANIZATION => Some(c.org_id),
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => None,
                // The feed lives as long as the state; were it gone, the ticks still reload.
                Err(RecvError::Closed) => {
                    tick.tick().await;
                    None
                }
            },
        };
        let s = &state.stores;
        let result = match org {
            Some(org) => {
                state
                    .limits
                    .reload_org(org, s.organizations.as_ref(), s.rate_limits.as_ref())
                    .await
            }
            None => {
                let dropped = state.limits.limiter().sweep();
                if dropped > 0 {
                    tracing::debug!(
                        ratelimit.keys_dropped = dropped,
                        "idle rate-limit counters dropped"
                    );
                }
                reload_rate_limits_once(&state).await
            }
        };
        if let Err(err) = result {
            tracing::warn!(error = %gateway_types::error::error_chain(&err), "could not reload rate limits; keeping the current ones");
        }
    }
}

/// Writes rate-limit usage (per rule and minute) every `rate_limit.usage_flush_seconds`, in
/// one batch; a failed write keeps the counts for the next one.
async fn flush_rate_limit_usage(state: AppState) {
    let every = Duration::from_secs(state.config.rate_limit.usage_flush_seconds.max(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(err) = state.limits.flush_usage(state.stores.rate_limits.as_ref()).await {
            tracing::warn!(error = %gateway_types::error::error_chain(&err), "could not record rate-limit usage; will retry");
        }
    }
}

/// How often API-key `last_used_at` times are written (in one batch).
const KEY_USAGE_FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// Writes API-key usage in batches, never per request.
async fn flush_key_usage(state: AppState) {
    let mut tick = tokio::time::interval(KEY_USAGE_FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(err) = state.auth.flush_key_usage().await {
            tracing::warn!(error = %gateway_types::error::error_chain(&err), "could not record API key usage; will retry");
        }
    }
}
