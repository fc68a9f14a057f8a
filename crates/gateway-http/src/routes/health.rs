//! `GET /health` (readiness) and `GET /health/live` (liveness).
//!
//! Readiness answers 503 only when this process cannot serve traffic at all. A store that does
//! not answer makes the gateway `degraded`, still 200: the data plane serves from in-memory
//! caches (servers, keys, policies, limits) and rides out a database blip, so taking the
//! replica out of a load balancer for it would turn a partial outage into a full one. Nothing
//! is critical yet; `unavailable` is reserved for states such as "caches never loaded".

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use gateway_types::error::error_chain;
use serde::Serialize;

use crate::request_id::RequestId;
use crate::state::AppState;

/// How long the store may take to answer a ping. Below the usual 1 s probe timeout of
/// orchestrators, so a hung database shows up as `degraded`, not as a failed probe.
pub(crate) const STORE_PING_TIMEOUT: Duration = Duration::from_millis(500);

/// Overall state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Overall {
    /// Everything answers.
    Ok,
    /// Serving, with a dependency down.
    Degraded,
    /// Cannot serve traffic (503). Reserved: nothing produces it yet.
    #[expect(
        dead_code,
        reason = "part of the /health contract; produced once caches exist"
    )]
    Unavailable,
}

/// One component's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum ComponentStatus {
    Ok,
    Unavailable,
    /// Not configured (e.g. no `redis.url`).
    Disabled,
}

#[derive(Debug, Serialize)]
struct Readiness {
    status: Overall,
    version: &'static str,
    uptime_seconds: u64,
    components: Components,
}

#[derive(Debug, Serialize)]
struct Components {
    store: StoreComponent,
    redis: RedisComponent,
}

#[derive(Debug, Serialize)]
struct StoreComponent {
    status: ComponentStatus,
    backend: &'static str,
    latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct RedisComponent {
    status: ComponentStatus,
}

/// `GET /health/live`: the process is up and its HTTP workers answer.
pub(crate) async fn liveness() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// `GET /health`: readiness with each component's state.
pub(crate) async fn readiness(state: web::Data<AppState>, id: RequestId) -> HttpResponse {
    let store = check_store(&state, &id).await;
    let redis = RedisComponent {
        // As the rate limiter last saw it (no extra round trip): unavailable while its circuit
        // breaker is open. Rate limiting then falls back (or refuses, when configured to), and
        // the deny-list checks locally: degraded, not down.
        status: if state.config.redis.url.is_none() {
            ComponentStatus::Disabled
        } else if state.limits.limiter().redis_in_use() {
            ComponentStatus::Ok
        } else {
            ComponentStatus::Unavailable
        },
    };
    let status = if store.status == ComponentStatus::Ok && redis.status != ComponentStatus::Unavailable {
        Overall::Ok
    } else {
        Overall::Degraded
    };
    let body = Readiness {
        status,
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started_at.elapsed().as_secs(),
        components: Components { store, redis },
    };
    let code = match status {
        Overall::Ok | Overall::Degraded => StatusCode::OK,
        Overall::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    };
    HttpResponse::build(code).json(body)
}

/// Pings the store on the shared runtime (its pool belongs there, not to this worker), with
/// [`STORE_PING_TIMEOUT`].
async fn check_store(state: &AppState, id: &RequestId) -> StoreComponent {
    let health = state.stores.status.clone();
    let backend = health.backend();
    let task = state.runtime.spawn(async move {
        let started = Instant::now();
        let result = tokio::time::timeout(STORE_PING_TIMEOUT, health.ping()).await;
        (started.elapsed(), result)
    });
    let (elapsed, error) = match task.await {
        Ok((elapsed, Ok(Ok(())))) => (elapsed, None),
        Ok((elapsed, Ok(Err(err)))) => {
            tracing::warn!(
                request_id = %id,
                store.backend = backend,
                error.chain = %error_chain(&err),
                "store ping failed"
            );
            (elapsed, Some("ping failed"))
        }
        Ok((elapsed, Err(_))) => {
            tracing::warn!(
                request_id = %id,
                store.backend = backend,
                timeout_ms = STORE_PING_TIMEOUT.as_millis(),
                "store ping timed out"
            );
            (elapsed, Some("ping timed out"))
        }
        Err(err) => {
            tracing::error!(request_id = %id, error.chain = %error_chain(&err), "store ping task failed");
            (STORE_PING_TIMEOUT, Some("ping failed"))
        }
    };
    StoreComponent {
        status: if error.is_none() {
            ComponentStatus::Ok
        } else {
            ComponentStatus::Unavailable
        },
        backend,
        latency_ms: (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0,
        error,
    }
}
