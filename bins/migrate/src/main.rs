//! `gateway-migrate`: applies, reverts and lists the database migrations of the MCP Gateway,
//! on whichever backend the configuration names (`database.url`, `GATEWAY__DATABASE__URL`,
//! or `--database-url`). Wiring only: the migrations and their runner live in
//! `gateway_store::migrate`.
//!
//! ```text
//! gateway-migrate up                 apply every pending migration
//! gateway-migrate down [N]           revert the N most recent (default 1)
//! gateway-migrate status             list applied and pending migrations
//! gateway-migrate reset --yes        revert everything, then apply everything (deletes all data)
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use gateway_http::settings::{self, LoadOptions};
use gateway_types::config::DatabaseBackend;
use gateway_types::error::error_chain;
use secrecy::ExposeSecret;

/// Database migrations of the MCP Gateway.
#[derive(Debug, Parser)]
#[command(name = "gateway-migrate", version, about)]
struct Cli {
    /// Extra configuration file, layered over config/default.yaml and config/<GATEWAY_ENV>.yaml.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database URL (`sqlite://<path>` or `postgres://…`); when given, the configuration is
    /// not read at all.
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply every pending migration.
    Up,
    /// Revert the most recent migrations.
    Down {
        /// How many to revert.
        #[arg(default_value_t = 1)]
        n: usize,
    },
    /// List applied and pending migrations.
    Status,
    /// Revert every migration, then apply all again. Deletes all data.
    Reset {
        /// Confirm that all data may be deleted.
        #[arg(long)]
        yes: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", error_chain(err.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Reset { yes: false } = cli.command {
        bail!("reset reverts every migration and deletes all data; run it again with --yes to confirm");
    }
    let url = match cli.database_url {
        Some(url) => url,
        None => {
            let config = settings::load(LoadOptions::from_process(cli.config))
                .context("cannot load the gateway configuration")?;
            config.database.url.expose_secret().to_owned()
        }
    };
    let backend = DatabaseBackend::from_url(&url).map_err(|issue| anyhow::anyhow!("{issue}"))?;
    println!("database: {} ({})", redact(&url), backend_name(backend));

    match cli.command {
        Command::Up => {
            println!("applying pending migrations…");
            let applied = gateway_store::migrate::run_pending(&url)?;
            for name in &applied {
                println!("  applied  {name}");
            }
            match applied.len() {
                0 => println!("nothing to apply: the database is up to date"),
                n => println!("applied {n} migration{}", plural(n)),
            }
        }
        Command::Down { n } => {
            println!("reverting up to {n} migration{}…", plural(n));
            let reverted = gateway_store::migrate::revert(&url, n)?;
            for name in &reverted {
                println!("  reverted {name}");
            }
            match reverted.len() {
                0 => println!("nothing to revert: no migration is applied"),
                n => println!("reverted {n} migration{}", plural(n)),
            }
        }
        Command::Status => {
            let states = gateway_store::migrate::status(&url)?;
            for state in &states {
                println!(
                    "  [{}] {}",
                    if state.applied { "applied" } else { "pending" },
                    state.name
                );
            }
            let applied = states.iter().filter(|s| s.applied).count();
            println!("{applied} applied, {} pending", states.len() - applied);
        }
        Command::Reset { .. } => {
            println!("reverting every migration, then applying all…");
            let applied = gateway_store::migrate::reset(&url)?;
            for name in &applied {
                println!("  applied  {name}");
            }
            println!(
                "reset done: {} migration{} applied",
                applied.len(),
                plural(applied.len())
            );
        }
    }
    Ok(())
}

/// The URL without its password (SQLite: the file path).
fn redact(url: &str) -> String {
    if let Some(path) = url.strip_prefix("sqlite://") {
        return path.to_owned();
    }
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Cannot fail for URLs with a host, which every password-carrying URL has.
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

fn backend_name(backend: DatabaseBackend) -> &'static str {
    match backend {
        DatabaseBackend::Sqlite => "SQLite",
        DatabaseBackend::Postgres => "PostgreSQL",
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_print() {
        assert_eq!(
            redact("postgres://gw:s3cret@db:5432/gw?sslmode=require"),
            "postgres://gw:***@db:5432/gw?sslmode=require"
        );
        assert_eq!(redact("postgres://gw@db/gw"), "postgres://gw@db/gw");
        assert_eq!(redact("sqlite://data/gateway.db"), "data/gateway.db");
        assert!(!redact("postgres://u:p%40ss@h/d").contains("p%40ss"));
    }

    #[test]
    fn reset_needs_confirmation() {
        let cli = Cli::parse_from([
            "gateway-migrate",
            "--database-url",
            "sqlite:///nonexistent/x.db",
            "reset",
        ]);
        let err = run(cli).unwrap_err();
        assert!(err.to_string().contains("--yes"), "{err}");
    }

    #[test]
    fn down_defaults_to_one() {
        let cli = Cli::parse_from(["gateway-migrate", "down"]);
        assert!(matches!(cli.command, Command::Down { n: 1 }));
        let cli = Cli::parse_from(["gateway-migrate", "down", "3", "--database-url", "sqlite://x.db"]);
        assert!(matches!(cli.command, Command::Down { n: 3 }));
        assert_eq!(cli.database_url.as_deref(), Some("sqlite://x.db"));
    }
}
