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
//! gateway-api [--config FILE]                          serve
//! gateway-api [--config FILE] setup-admin [--email E]  create organization `default`, namespace
//!                                                      `default` and the admin (idempotent)
//! ```
//!
//! `setup-admin` takes the password from `GATEWAY_ADMIN_PASSWORD`; without it, development uses
//! `qwerty123` and production reads one line from standard input (refusing when it is not a
//! terminal, so a script cannot silently create an admin without a password).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use gateway_http::settings::{self, LoadOptions};
use gateway_http::{AppState, shutdown, telemetry};
use gateway_types::config::{Environment, GatewayConfig};
use secrecy::{ExposeSecret as _, SecretString};

/// How long leftover background tasks get once the server has stopped.
const RUNTIME_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The MCP Gateway API server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// A YAML file layered over config/default.yaml and config/<GATEWAY_ENV>.yaml;
    /// GATEWAY__SECTION__KEY environment variables still win.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create organization `default`, namespace `default` and an admin user; harmless to repeat.
    SetupAdmin {
        /// The admin's email.
        #[arg(long, default_value = gateway_auth::bootstrap::DEV_ADMIN_EMAIL)]
        email: String,
    },
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
    let result = match args.command {
        None => run(config),
        Some(Command::SetupAdmin { email }) => setup_admin(config, &email),
    };
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(
                error.chain = format!("{err:#}"),
                "gateway-api stopped on an error"
            );
            eprintln!("gateway-api: {err:#}");
            ExitCode::FAILURE
        }
    };
    telemetry::flush();
    code
}

fn setup_admin(config: GatewayConfig, email: &str) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    let password = match std::env::var("GATEWAY_ADMIN_PASSWORD") {
        Ok(p) if !p.is_empty() => p,
        _ if config.environment == Environment::Development => {
            gateway_auth::bootstrap::DEV_ADMIN_PASSWORD.to_owned()
        }
        _ => {
            anyhow::ensure!(
                std::io::stdin().is_terminal(),
                "set GATEWAY_ADMIN_PASSWORD (production has no default admin password)"
            );
            eprint!("password for {email}: ");
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    if config.environment == Environment::Production {
        anyhow::ensure!(
            password != gateway_auth::bootstrap::DEV_ADMIN_PASSWORD,
            "refusing the development password in production"
        );
    }
    migrate(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let report = runtime.block_on(async {
        let stores = gateway_store::connect(&config.database)
            .await
            .context("connecting to the database")?;
        gateway_auth::bootstrap::setup_admin(
            &stores.organizations,
            &stores.namespaces,
            &stores.users,
            email,
            SecretString::from(password),
            config.auth.bcrypt_cost,
        )
        .await
        .map_err(|e| anyhow::anyhow!(gateway_types::error::error_chain(&e)))
    })?;
    let state = |created: bool| if created { "created" } else { "already there" };
    println!("organization default: {}", state(report.organization_created));
    println!("namespace default:    {}", state(report.namespace_created));
    println!(
        "admin {}: {}",
        report.admin_email,
        if report.admin_created {
            "created"
        } else {
            "already there (password unchanged)"
        }
    );
    Ok(())
}

fn migrate(config: &GatewayConfig) -> anyhow::Result<()> {
    if config.database.migrate_on_start {
        let applied = gateway_store::migrate::run_pending(config.database.url.expose_secret())
            .context("applying database migrations")?;
        tracing::info!(
            migrations.applied = applied.len(),
            migrations.names = ?applied,
            "database schema is up to date"
        );
    }
    Ok(())
}

fn run(config: GatewayConfig) -> anyhow::Result<()> {
    migrate(&config)?;
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
    let stores = gateway_store::connect_all(&config.database, &config.redis)
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
