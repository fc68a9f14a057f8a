//! Prometheus metrics: the process-wide recorder and the HTTP request metrics.
//!
//! The `metrics` recorder is global, so [`install`] installs it once per process and hands out
//! clones of the same [`PrometheusHandle`] afterwards (tests start several apps in one
//! process). `GET /metrics` renders from that handle on our own route: the exporter's own HTTP
//! listener is compiled out. Histograms get explicit buckets (otherwise they render as
//! summaries), and [`run_upkeep`] drains them periodically on the shared runtime.
//!
//! Labels are bounded: the route *pattern* (`/servers/{id}/mcp`, `unmatched` for requests no
//! route matched), a fixed set of method names, and the status code.

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use actix_web::http::Method;
use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};

/// Requests answered, by `method`, `route` and `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "gateway_http_requests_total";
/// Request latency in seconds, by `method` and `route`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "gateway_http_request_duration_seconds";

/// Open MCP client sessions of this process, by `transport`.
pub const MCP_SESSIONS_ACTIVE: &str = "gateway_mcp_sessions_active";
/// Running stdio server processes of this process.
pub const STDIO_PROCESSES: &str = "gateway_stdio_processes";
/// Shared upstream sessions of this process.
pub const UPSTREAM_SESSIONS: &str = "gateway_upstream_sessions";
/// Registered servers whose health checks fail (calls to them are refused).
pub const UPSTREAMS_DOWN: &str = "gateway_upstreams_down";

/// The `route` label of requests that matched no route (404s, early rejections, preflights).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Histogram buckets in seconds: 1 ms to 30 s, covering both the fast admin API and slow
/// upstream tool calls.
const BUCKETS_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often [`run_upkeep`] drains histograms.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static INSTALL: Mutex<()> = Mutex::new(());

/// Errors of [`install`].
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The exporter could not be built or another recorder is already installed.
    #[error("cannot install the Prometheus recorder")]
    Install(#[from] BuildError),
}

/// Installs the global Prometheus recorder on first call; later calls return the same handle.
///
/// # Errors
/// A recorder that is not ours is already installed in this process.
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let _guard = INSTALL.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets(BUCKETS_SECONDS)?
        .install_recorder()?;
    describe();
    Ok(HANDLE.get_or_init(|| handle).clone())
}

fn describe() {
    metrics::describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests answered, by method, route pattern and status"
    );
    metrics::describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "HTTP request latency, by method and route pattern"
    );
    metrics::describe_gauge!(
        MCP_SESSIONS_ACTIVE,
        "Open MCP client sessions of this process, by transport"
    );
    metrics::describe_gauge!(STDIO_PROCESSES, "Running stdio server processes of this process");
    metrics::describe_gauge!(UPSTREAM_SESSIONS, "Shared upstream MCP sessions of this process");
    metrics::describe_gauge!(UPSTREAMS_DOWN, "Registered servers whose health checks fail");
    gateway_logging::audit::describe_metrics();
    crate::request_log::describe_metrics();
    gateway_ratelimit::metrics::describe();
}

/// Drains histograms every few seconds, forever. Spawn it on the shared runtime; it holds
/// nothing but the handle, so aborting it is always safe.
pub async fn run_upkeep(handle: PrometheusHandle) {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

/// The bounded `method` label.
#[must_use]
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Sets the gauges that are read from live state at scrape time (sessions, processes,
/// upstream health).
pub(crate) fn record_gauges(state: &crate::state::AppState) {
    let stats = state.hub.stats();
    let rpc = stats
        .sessions
        .saturating_sub(stats.streamable_http + stats.sse + stats.websocket);
    for (transport, n) in [
        ("streamable_http", stats.streamable_http),
        ("sse", stats.sse),
        ("websocket", stats.websocket),
        ("rpc", rpc),
    ] {
        metrics::gauge!(MCP_SESSIONS_ACTIVE, "transport" => transport).set(n as f64);
    }
    metrics::gauge!(STDIO_PROCESSES).set(stats.processes as f64);
    metrics::gauge!(UPSTREAM_SESSIONS).set(stats.shared_upstreams as f64);
    metrics::gauge!(UPSTREAMS_DOWN).set(state.servers.down_count() as f64);
}

/// Records one answered request. No-op when no recorder is installed.
pub(crate) fn record_request(method: &'static str, route: &str, status: u16, elapsed: Duration) {
    metrics::counter!(
        HTTP_REQUESTS_TOTAL,
        "method" => method,
        "route" => route.to_owned(),
        "status" => status.to_string(),
    )
    .increment(1);
    metrics::histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        "method" => method,
        "route" => route.to_owned(),
    )
    .record(elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_is_idempotent_and_renders_buckets() {
        let a = install().unwrap();
        let b = install().unwrap();
        record_request("GET", "/things/{id}", 200, Duration::from_millis(3));
        let text = b.render();
        assert!(
            text.contains(r#"gateway_http_requests_total{method="GET",route="/things/{id}",status="200"}"#),
            "{text}"
        );
        assert!(
            text.contains("gateway_http_request_duration_seconds_bucket"),
            "histograms render with buckets: {text}"
        );
        assert_eq!(a.render().len(), b.render().len());
    }

    #[test]
    fn unknown_methods_share_one_label() {
        let custom = Method::from_bytes(b"PROPFIND").unwrap();
        assert_eq!(method_label(&custom), "other");
        assert_eq!(method_label(&Method::GET), "GET");
    }
}
