//! Wiring of the request-log job (`gateway_logging::rollup::Maintenance`): hourly and daily
//! rollups into `log_aggregates` and retention, on the shared runtime until stopped.

use std::time::Duration;

use gateway_logging::rollup::Maintenance;
use gateway_types::config::GatewayConfig;
use gateway_types::store::Stores;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The running job, or nothing when `logging.request_log.enabled` is false.
pub(crate) struct RequestLogJob {
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

/// Starts the rollups and retention.
pub(crate) fn start(config: &GatewayConfig, stores: &Stores) -> anyhow::Result<RequestLogJob> {
    let cfg = &config.logging.request_log;
    if !cfg.enabled {
        return Ok(RequestLogJob { running: None });
    }
    let sink = gateway_http::state::build_sink(&cfg.bodies)?;
    let job = Maintenance {
        logs: stores.logs.clone(),
        organizations: stores.organizations.clone(),
        locks: stores.locks.clone(),
        sink: Some(sink),
        interval: Duration::from_secs(cfg.maintenance_interval_seconds),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(job.run(async move {
        let _ = stopped.await;
    }));
    Ok(RequestLogJob {
        running: Some((stop, task)),
    })
}

impl RequestLogJob {
    /// Stops the job (a round in progress is abandoned; the next worker redoes it).
    pub(crate) async fn stop(self) {
        if let Some((stop, task)) = self.running {
            let _ = stop.send(());
            if let Err(err) = task.await {
                tracing::error!(error = %err, "the request-log task failed");
            }
        }
    }
}
