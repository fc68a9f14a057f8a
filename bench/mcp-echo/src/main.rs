//! `mcp-echo`: command line of the benchmark echo server (see the library for what it serves).
//!
//! ```text
//! mcp-echo --http 127.0.0.1:0 [--stateless] [--sse-progress N] [--delay-us N] [--threads N]
//! mcp-echo --stdio [--stateless] [--sse-progress N] [--delay-us N]
//! ```
//! With `--http`, the first line on stdout is `listening on <bound address>`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mcp_echo::Options;

/// A tiny, fast MCP echo server for benchmarks and tests.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Serve Streamable HTTP on this address, path /mcp (port 0 picks a free port).
    #[arg(
        long,
        value_name = "ADDR",
        required_unless_present = "stdio",
        conflicts_with = "stdio"
    )]
    http: Option<SocketAddr>,
    /// Serve newline-delimited JSON-RPC on stdin/stdout.
    #[arg(long)]
    stdio: bool,
    /// Also accept 2026-07-28 stateless requests (no session) and answer server/discover.
    #[arg(long)]
    stateless: bool,
    /// Answer tools/call as SSE with N notifications/progress before the result (sent only when
    /// the request carries _meta.progressToken).
    #[arg(long, value_name = "N")]
    sse_progress: Option<u32>,
    /// Simulated work per tools/call, in microseconds (async sleep, millisecond resolution).
    #[arg(long, value_name = "N", default_value_t = 0)]
    delay_us: u64,
    /// Runtime threads for --http (1 = a single-threaded runtime).
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let opts = Options {
        stateless: args.stateless,
        sse_progress: args.sse_progress,
        delay: Duration::from_micros(args.delay_us),
    };
    let runtime = if args.threads > 1 && !args.stdio {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("mcp-echo: cannot build the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match args.http {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr).await?;
                let bound = listener.local_addr()?;
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "listening on {bound}")?;
                stdout.flush()?;
                drop(stdout);
                mcp_echo::http::serve(listener, opts, shutdown_signal()).await
            }
            None => mcp_echo::stdio::serve(tokio::io::stdin(), tokio::io::stdout(), opts).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mcp-echo: {err}");
            ExitCode::FAILURE
        }
    }
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
