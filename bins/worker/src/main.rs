//! `gateway-worker`: the MCP Gateway's background worker.
//!
//! Wiring only: it loads the configuration, installs logging, connects the store, starts the
//! jobs (each a library entry point, wired in its own module: [`health`] for the servers'
//! health checks and the roll-up into `server_stats`, [`request_log`] for the request log's
//! rollups into `log_aggregates` and its retention) and runs until SIGINT/SIGTERM. It never
//! runs migrations: `gateway-api` (or `gateway-migrate`) owns them.
//!
//! ```text
//! gateway-worker [--config FILE]
//! ```

mod health;
mod request_log;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use gateway_http::settings::{self, LoadOptions};
use gateway_http::{shutdown, telemetry};
use gateway_types::config::GatewayConfig;

/// The MCP Gateway background worker.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// A YAML file layered over config/default.yaml and config/<GATEWAY_ENV>.yaml;
    /// GATEWAY__SECTION__KEY environment variables still win.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match settings::load(LoadOptions::from_process(args.config)) {
        Ok(config) => config,
        Err(problems) => {
            eprintln!("gateway-worker: {problems}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(err) = telemetry::init(&config.logging, config.environment) {
        eprintln!("gateway-worker: cannot set up logging: {err}");
        return ExitCode::FAILURE;
    }
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gateway-worker")
        .build()
        .context("building the tokio runtime")
        .and_then(|runtime| runtime.block_on(run(config)));
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(
                error.chain = format!("{err:#}"),
                "gateway-worker stopped on an error"
            );
            eprintln!("gateway-worker: {err:#}");
            ExitCode::FAILURE
        }
    };
    telemetry::flush();
    code
}

async fn run(config: GatewayConfig) -> anyhow::Result<()> {
    let stop = shutdown::signal().context("installing signal handlers")?;
    let stores = gateway_store::connect(&config.database)
        .await
        .context("connecting to the database")?;
    let health = health::start(&config, &stores).context("starting the health checks")?;
    let request_log = request_log::start(&config, &stores).context("starting the request-log job")?;
    tracing::info!(
        store.backend = stores.status.backend(),
        health_checks = config.health_checks.enabled,
        "gateway-worker started"
    );
    stop.await;
    health.stop().await;
    request_log.stop().await;
    tracing::info!("gateway-worker stopped");
    Ok(())
}
