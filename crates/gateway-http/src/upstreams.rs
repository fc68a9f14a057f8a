//! Reaching upstream servers from a record: the connectors every process uses (the api's hub,
//! the worker's health checks), the spec of a server with its secrets opened, and the worker's
//! health-check job built from the configuration.

use std::sync::Arc;
use std::time::Duration;

use gateway_auth::sealing::Sealer;
use gateway_discovery::health::{Checker, HealthJob, HealthSettings, UpstreamSpecs};
use gateway_transport::http::HttpConnector;
use gateway_transport::link::{Connectors, UpstreamSpec};
use gateway_transport::sse_client::SseConnector;
use gateway_transport::stdio::{ProcessTable, StdioConnector};
use gateway_transport::ws::WsConnector;
use gateway_types::config::GatewayConfig;
use gateway_types::error::BoxError;
use gateway_types::model::McpServer;
use gateway_types::store::Stores;

use gateway_transport::era::upstream::EraConnector;

use crate::servers_cache::ResolvedServer;
use crate::state::StateError;

/// One connector per upstream transport, on one shared HTTP client; stdio processes are
/// counted in `processes`.
///
/// # Errors
/// The HTTP client cannot be built.
pub fn connectors(processes: &Arc<ProcessTable>) -> Result<(Connectors, reqwest::Client), StateError> {
    let client = gateway_transport::http::default_client().map_err(StateError::Transport)?;
    let connectors = Connectors {
        // stdio and Streamable HTTP upstreams may speak either era: probe, bridge a modern one.
        stdio: Arc::new(EraConnector::new(Arc::new(StdioConnector::new(Arc::clone(
            processes,
        ))))),
        http: Arc::new(EraConnector::new(Arc::new(HttpConnector::new(client.clone())))),
        sse: Arc::new(SseConnector::new(client.clone())),
        ws: Arc::new(WsConnector::new()),
    };
    Ok((connectors, client))
}

/// What a connector needs to reach `server` (already opened).
pub(crate) fn spec_of(server: &ResolvedServer, max_message_bytes: usize) -> UpstreamSpec {
    let r = &server.record;
    UpstreamSpec {
        server_id: r.id.to_string(),
        name: r.name.clone(),
        org_id: r.org_id.to_string(),
        protocol: r.protocol,
        url: r.url.clone(),
        command: r.command.clone(),
        args: r.args.clone(),
        env: server.env.clone(),
        working_dir: r.working_dir.clone(),
        headers: server.headers.clone(),
        timeout: Duration::from_secs(u64::try_from(r.timeout_seconds.max(1)).unwrap_or(30)),
        max_retries: u32::try_from(r.max_retries.max(0)).unwrap_or(0),
        max_message_bytes,
        legacy_only: r.metadata.get("protocol_era").and_then(serde_json::Value::as_str) == Some("legacy"),
    }
}

/// Server records to upstream specs, opening their secrets with the configured keys.
#[derive(Debug)]
pub struct SealedSpecs {
    sealer: Sealer,
    max_message_bytes: usize,
}

impl SealedSpecs {
    /// From `secrets` (the keys) and `server.max_body_bytes` (the message limit).
    ///
    /// # Errors
    /// The keys are missing or invalid.
    pub fn from_config(config: &GatewayConfig) -> Result<Self, StateError> {
        Ok(Self {
            sealer: Sealer::from_config(&config.secrets).map_err(StateError::Secrets)?,
            max_message_bytes: config.server.max_body_bytes,
        })
    }
}

impl UpstreamSpecs for SealedSpecs {
    fn spec(&self, server: &McpServer) -> Result<UpstreamSpec, BoxError> {
        let resolved = ResolvedServer::open(server.clone(), &self.sealer)?;
        Ok(spec_of(&resolved, self.max_message_bytes))
    }
}

/// The worker's health checks: the job and the stdio processes it starts for checks.
#[derive(Debug)]
pub struct HealthChecks {
    job: HealthJob,
    processes: Arc<ProcessTable>,
}

impl HealthChecks {
    /// Runs the checks until `stop` resolves; then no process started for a check survives.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        self.job.run(stop).await;
        self.processes.kill_all();
    }
}

/// The worker's health-check job (`health_checks`), with its own connectors (stdio servers
/// it starts for checks are not limited per organization: at most `concurrency` run at once).
///
/// # Errors
/// The HTTP client or the secrets' keys cannot be set up.
pub fn health_checks(config: &GatewayConfig, stores: Stores) -> Result<HealthChecks, StateError> {
    let processes = ProcessTable::new(0);
    let (connectors, client) = connectors(&processes)?;
    let settings = HealthSettings::from(&config.health_checks);
    let job = HealthJob::new(
        stores,
        Checker::new(connectors, client, settings.timeout),
        Arc::new(SealedSpecs::from_config(config)?),
        settings,
    );
    Ok(HealthChecks { job, processes })
}
