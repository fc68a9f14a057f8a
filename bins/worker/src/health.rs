//! Wiring of the health-check job (`gateway_discovery::health`): built from the configuration
//! by `gateway_http::upstreams::health_checks`, run on the shared runtime until stopped.

use gateway_types::config::GatewayConfig;
use gateway_types::store::Stores;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The running job, or nothing when `health_checks.enabled` is false.
pub(crate) struct Health {
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

/// Starts the health checks (and the hourly roll-up into `server_stats`).
pub(crate) fn start(config: &GatewayConfig, stores: &Stores) -> anyhow::Result<Health> {
    if !config.health_checks.enabled {
        tracing::info!("health checks are disabled (health_checks.enabled)");
        return Ok(Health { running: None });
    }
    let checks = gateway_http::upstreams::health_checks(config, stores.clone())?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(checks.run(async move {
        let _ = stopped.await;
    }));
    Ok(Health {
        running: Some((stop, task)),
    })
}

impl Health {
    /// Stops the job after the check round in progress is abandoned.
    pub(crate) async fn stop(self) {
        if let Some((stop, task)) = self.running {
            let _ = stop.send(());
            if let Err(err) = task.await {
                tracing::error!(error = %err, "the health-check task failed");
            }
        }
    }
}
