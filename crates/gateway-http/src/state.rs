//! What every handler can reach.

use std::sync::Arc;
use std::time::Instant;

use gateway_types::config::GatewayConfig;
use gateway_types::store::Stores;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::metrics::{self, MetricsError};

/// Errors of [`AppState::new`].
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Not called from inside the shared tokio runtime.
    #[error("AppState::new must be called inside the shared tokio runtime")]
    NoRuntime(#[from] tokio::runtime::TryCurrentError),
    /// The Prometheus recorder could not be installed.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
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
}

impl AppState {
    /// Builds the state: captures the current (shared) runtime and, when metrics are enabled,
    /// installs the process-wide Prometheus recorder.
    ///
    /// # Errors
    /// Not inside a tokio runtime, or a foreign metrics recorder is already installed.
    pub fn new(config: Arc<GatewayConfig>, stores: Stores) -> Result<Self, StateError> {
        let runtime = tokio::runtime::Handle::try_current()?;
        let metrics = if config.metrics.enabled {
            Some(metrics::install()?)
        } else {
            None
        };
        Ok(Self {
            config,
            stores,
            started_at: Instant::now(),
            metrics,
            runtime,
        })
    }
}
