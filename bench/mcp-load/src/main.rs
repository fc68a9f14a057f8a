//! `mcp-load`: command line of the MCP load generator.
//!
//! ```text
//! mcp-load throughput    --url URL [common options]
//! mcp-load latency       --url URL [--rate 200] [common options]
//! mcp-load storm         --url URL [common options]
//! mcp-load streaming     --url URL [--expect-progress 3] [common options]
//! mcp-load many-sessions --url URL [--sessions 1000] [--idle-secs 2] [common options]
//! mcp-load summarize FILE... [--skipped REASON]
//! mcp-load free-port
//! ```
//! A run prints the human table, then one JSON line (also appended to `--json-out`); it exits 1
//! when no operation succeeded.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use mcp_load::client::Target;
use mcp_load::report::Report;
use mcp_load::sampler::Group;
use mcp_load::scenario::{self, Kind, Plan};

/// MCP load generator: drives `tools/call echo` through Streamable HTTP and reports
/// throughput, latency percentiles and the CPU/memory of the processes under test.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One session per client (default 16), closed-loop tools/call.
    Throughput(Common),
    /// A fixed total rate from the clients (default 4), latency from the intended send time.
    Latency {
        #[command(flatten)]
        common: Common,
        /// Total calls per second.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
    },
    /// Clients (default 8) loop initialize → initialized → call → DELETE.
    Storm(Common),
    /// Closed loop with a progress token; every answer must be an SSE stream (or JSON) carrying
    /// exactly --expect-progress progress notifications before the result.
    Streaming {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 3)]
        expect_progress: u32,
    },
    /// Open --sessions sessions, keep them idle for --idle-secs (memory is read before and
    /// after), then spread closed-loop calls over all of them.
    ManySessions {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        #[arg(long, default_value_t = 2.0)]
        idle_secs: f64,
    },
    /// Pair the JSON lines of runs (labels role=baseline|subject, round=N, target=NAME) and print
    /// per scenario the median subject/baseline ratio with min..max, CPU, memory and latencies.
    Summarize {
        /// Files of JSON lines (other lines are ignored).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Why there are no subject runs (printed in their place).
        #[arg(long)]
        skipped: Option<String>,
    },
    /// Print a TCP port that is free on 127.0.0.1 right now.
    FreePort,
}

#[derive(Debug, Args)]
struct Common {
    /// The MCP endpoint, e.g. http://127.0.0.1:8080/servers/echo/mcp.
    #[arg(long)]
    url: String,
    /// Extra request header `Name: value` (repeatable), e.g. "Authorization: Bearer mcpgw_…".
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Virtual clients (one keep-alive connection each); default per scenario.
    #[arg(long)]
    clients: Option<usize>,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Length of each echoed text.
    #[arg(long, default_value_t = 32)]
    text_bytes: usize,
    /// Limit for one exchange, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Send 2026-07-28 stateless requests (no initialize, no session) instead.
    #[arg(long)]
    stateless: bool,
    /// PID of the system under test (repeatable); its descendants are included.
    #[arg(long = "sample-pid", value_name = "PID")]
    sample_pids: Vec<u32>,
    /// Leave processes with this command name (and their children) out of --sample-pid's tree,
    /// e.g. a stdio upstream the gateway spawned.
    #[arg(long = "exclude-comm", value_name = "NAME")]
    exclude_comm: Vec<String>,
    /// PID of the upstream (repeatable), reported separately.
    #[arg(long = "upstream-pid", value_name = "PID")]
    upstream_pids: Vec<u32>,
    /// Clock ticks per second of /proc/<pid>/stat (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
    /// `key=value` copied into the JSON line (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Also append the JSON line to this file.
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
    /// Print only the JSON line.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (common, kind) = match cli.command {
        Command::Summarize { files, skipped } => return summarize(&files, skipped.as_deref()),
        Command::FreePort => return free_port(),
        Command::Throughput(c) => (c, Kind::Throughput),
        Command::Latency { common, rate } => (common, Kind::Latency { rate }),
        Command::Storm(c) => (c, Kind::Storm),
        Command::Streaming {
            common,
            expect_progress,
        } => (common, Kind::Streaming { expect_progress }),
        Command::ManySessions {
            common,
            sessions,
            idle_secs,
        } => match Duration::try_from_secs_f64(idle_secs) {
            Ok(idle) => (common, Kind::ManySessions { sessions, idle }),
            Err(e) => return fail(&format!("--idle-secs: {e}")),
        },
    };
    match run(common, kind) {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("mcp-load: {message}");
    ExitCode::FAILURE
}

fn run(c: Common, kind: Kind) -> Result<ExitCode, String> {
    let seconds = |name: &str, v: f64| Duration::try_from_secs_f64(v).map_err(|e| format!("--{name}: {e}"));
    let mut labels = BTreeMap::new();
    for l in &c.labels {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| format!("label {l:?} is not key=value"))?;
        labels.insert(k.to_owned(), v.to_owned());
    }
    let target = Target::new(
        &c.url,
        &c.headers,
        c.stateless,
        Duration::from_millis(c.timeout_ms),
    )?;
    let plan = Plan {
        clients: c.clients.unwrap_or_else(|| kind.default_clients()),
        kind,
        warmup: seconds("warmup", c.warmup)?,
        duration: seconds("duration", c.duration)?,
        text_bytes: c.text_bytes,
        gateway: Group {
            roots: c.sample_pids,
            exclude_comm: c.exclude_comm,
        },
        upstream: Group {
            roots: c.upstream_pids,
            exclude_comm: Vec::new(),
        },
        clk_tck: c.clk_tck,
        labels,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let report = runtime.block_on(scenario::run(target, plan))?;
    let line = report.json_line();
    let mut stdout = std::io::stdout().lock();
    if !c.quiet {
        let _ = write!(stdout, "{}", report.table());
    }
    let _ = writeln!(stdout, "{line}");
    if let Some(path) = &c.json_out {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        writeln!(f, "{line}").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(if report.ops == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn summarize(files: &[PathBuf], skipped: Option<&str>) -> ExitCode {
    let mut records = Vec::new();
    for f in files {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => return fail(&format!("{}: {e}", f.display())),
        };
        records.extend(
            text.lines()
                .filter(|l| l.starts_with('{'))
                .filter_map(|l| serde_json::from_str::<Report>(l).ok()),
        );
    }
    if records.is_empty() {
        return fail("no run records found");
    }
    print!("{}", mcp_load::summarize::summarize(&records, skipped));
    ExitCode::SUCCESS
}

fn free_port() -> ExitCode {
    match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(addr) => {
            println!("{}", addr.port());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("no free port: {e}")),
    }
}
