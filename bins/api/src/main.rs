//! `gateway-api`: the MCP Gateway's API server.
//!
//! Wiring only: parse the command line, load and validate the configuration (every problem is
//! printed, then exit 1), install logging, apply pending migrations (synchronously, before any
//! runtime exists: the migration harness uses `block_in_place`), build the shared
//! multi-threaded tokio runtime, connect the stores, bind the listener and serve
//! `gateway-http` until SIGINT or SIGTERM. It must not depend on actix-web or hold any logic of
//! its own.
//!
//! ```text
//! gateway-api [--config FILE]
//! ```

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use gateway_http::settings::{self, LoadOptions};
use gateway_http::{AppState, shutdown, telemetry};
use gateway_types::config::GatewayConfig;
use secrecy::ExposeSecret as _;

/// How long leftover background tasks get once the server has stopped.
const RUNTIME_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The MCP Gateway API server.
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
            eprintln!("gateway-api: {problems}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(err) = telemetry::init(&config.logging, config.environment) {
        eprintln!("gateway-api: cannot set up logging: {err}");
        return ExitCode::FAILURE;
    }
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(
                error.chain = format!("{err:#}"),
                "gateway-api stopped on an error"
            );
            eprintln!("gateway-api: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: GatewayConfig) -> anyhow::Result<()> {
    if config.database.migrate_on_start {
        let applied = gateway_store::migrate::run_pending(config.database.url.expose_secret())
            .context("applying database migrations")?;
        tracing::info!(
            migrations.applied = applied.len(),
            migrations.names = ?applied,
            "database schema is up to date"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gateway-rt")
        .build()
        .context("building the tokio runtime")?;
    let result = runtime.block_on(serve(Arc::new(config)));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_GRACE);
    result
}

async fn serve(config: Arc<GatewayConfig>) -> anyhow::Result<()> {
    let stop = shutdown::signal().context("installing signal handlers")?;
    let stores = gateway_store::connect(&config.database)
        .await
        .context("connecting to the database")?;
    let state = AppState::new(Arc::clone(&config), stores)?;
    let listener = TcpListener::bind((config.server.host.as_str(), config.server.port))
        .with_context(|| format!("binding {}:{}", config.server.host, config.server.port))?;
    let address = listener.local_addr().context("reading the bound address")?;
    tracing::info!(
        server.address = %address,
        environment = config.environment.as_str(),
        store.backend = state.stores.status.backend(),
        "gateway-api listening on http://{address}"
    );
    gateway_http::serve(listener, state, stop)
        .await
        .context("serving HTTP")?;
    tracing::info!("gateway-api stopped");
    Ok(())
}
