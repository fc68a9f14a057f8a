//! Running the built binaries (`gateway-api`, `gateway-worker`) as separate processes.
//!
//! The binaries are not built by `cargo test` for this package (a package cannot depend on
//! another package's binaries), so they are located next to the test executable: tests run
//! from `<target>/<profile>/deps/`, binaries live in `<target>/<profile>/`. Build them first
//! (`cargo build --bins`; `just test` does). A missing binary fails the test with that advice.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Upper bound for a process to start answering or to exit.
pub const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

/// The path of a workspace binary built for the same profile as the running test.
///
/// # Panics
/// The binary is not built.
#[must_use]
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from <target>/<profile>/deps");
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is not built; run `cargo build --bins` first (`just test` does)",
        path.display()
    );
    path
}

/// A command for `name` with a clean, explicit environment: no inherited `GATEWAY*` or
/// `RUST_LOG` variables, an empty configuration directory (the built-in YAML applies), a
/// temporary working directory, JSON logs, and output captured.
#[must_use]
pub fn command(name: &str, workdir: &Path) -> Command {
    let mut cmd = Command::new(binary(name));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().to_ascii_uppercase().starts_with("GATEWAY") || key == "RUST_LOG" {
            cmd.env_remove(&key);
        }
    }
    cmd.current_dir(workdir)
        .env("GATEWAY_CONFIG_DIR", workdir.join("no-config-dir"))
        .env("GATEWAY__LOGGING__FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// What a finished process printed.
#[derive(Debug)]
pub struct Finished {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `cmd` to completion within [`PROCESS_TIMEOUT`].
///
/// # Panics
/// It does not start or does not exit in time.
pub async fn run_to_exit(mut cmd: Command) -> Finished {
    let child = cmd.spawn().expect("spawn binary");
    let output = tokio::time::timeout(PROCESS_TIMEOUT, child.wait_with_output())
        .await
        .expect("the process did not exit in time")
        .expect("wait for the process");
    Finished {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A running binary whose output is being collected.
#[derive(Debug)]
pub struct Running {
    child: Child,
    /// For `gateway-api`: the address it logged as bound.
    pub address: Option<SocketAddr>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    _workdir: TempDir,
}

impl Running {
    /// Starts `gateway-api` on `127.0.0.1:0` with a fresh SQLite file (migrated on start) and
    /// waits until the address it logs answers `/health/live`.
    ///
    /// # Panics
    /// It does not start or never becomes live.
    pub async fn api(extra_env: &[(&str, &str)]) -> Self {
        let mut env = vec![
            ("GATEWAY__SERVER__HOST", "127.0.0.1"),
            ("GATEWAY__SERVER__PORT", "0"),
            ("GATEWAY__SERVER__WORKERS", "1"),
        ];
        env.extend_from_slice(extra_env);
        let running = Self::start("gateway-api", &env, |line| {
            logged_field(line, "server.address").is_some()
        })
        .await;
        running.wait_until_live().await;
        running
    }

    /// Starts `gateway-worker` on a fresh SQLite file and waits until it logs that it started.
    ///
    /// # Panics
    /// It does not start.
    pub async fn worker(extra_env: &[(&str, &str)]) -> Self {
        Self::start("gateway-worker", extra_env, |line| {
            logged_field(line, "message").is_some_and(|m| m.starts_with("gateway-worker started"))
        })
        .await
    }

    async fn start(name: &str, env: &[(&str, &str)], ready: fn(&str) -> bool) -> Self {
        let workdir = tempfile::tempdir().expect("temp dir");
        let db = format!("sqlite://{}", workdir.path().join("gateway.db").display());
        let mut cmd = command(name, workdir.path());
        cmd.env("GATEWAY__DATABASE__URL", db);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn binary");

        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (found, ready_line) = oneshot::channel();
        let readers = vec![
            collect(
                child.stdout.take().expect("stdout"),
                Arc::clone(&stdout),
                Some((ready, found)),
            ),
            collect(child.stderr.take().expect("stderr"), Arc::clone(&stderr), None),
        ];
        let line = match tokio::time::timeout(PROCESS_TIMEOUT, ready_line).await {
            Ok(Ok(line)) => line,
            _ => panic!(
                "{name} never became ready\nstdout:\n{}\nstderr:\n{}",
                lock(&stdout),
                lock(&stderr)
            ),
        };
        Self {
            child,
            address: logged_field(&line, "server.address").and_then(|a| a.parse().ok()),
            stdout,
            stderr,
            readers,
            _workdir: workdir,
        }
    }

    async fn wait_until_live(&self) {
        let address = self.address.expect("an api address");
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("reqwest client");
        let url = format!("http://{address}/health/live");
        let deadline = Instant::now() + PROCESS_TIMEOUT;
        loop {
            if let Ok(res) = client.get(&url).send().await
                && res.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "gateway-api never became live");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What it has written to stdout so far.
    #[must_use]
    pub fn stdout_so_far(&self) -> String {
        lock(&self.stdout).clone()
    }

    /// Sends a signal (`TERM`, `INT`) with the system's `kill`.
    ///
    /// # Panics
    /// The process already exited or `kill` fails.
    pub async fn signal(&self, name: &str) {
        let pid = self.child.id().expect("the process is running");
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .await
            .expect("run kill");
        assert!(status.success(), "kill -{name} {pid} failed");
    }

    /// Waits for the process to exit within [`PROCESS_TIMEOUT`]; returns its status and output.
    ///
    /// # Panics
    /// It does not exit in time.
    pub async fn wait(mut self) -> Finished {
        let status = tokio::time::timeout(PROCESS_TIMEOUT, self.child.wait())
            .await
            .expect("the process did not exit in time")
            .expect("wait for the process");
        // The readers end at end-of-file: everything the process wrote is collected.
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(PROCESS_TIMEOUT, reader).await;
        }
        Finished {
            status,
            stdout: lock(&self.stdout).clone(),
            stderr: lock(&self.stderr).clone(),
        }
    }
}

fn lock(text: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    text.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which output line means "ready", and where to send it.
type ReadyWatch = (fn(&str) -> bool, oneshot::Sender<String>);

/// Copies a stream into `sink` line by line; sends the first line `ready` accepts.
fn collect(
    stream: impl AsyncRead + Unpin + Send + 'static,
    sink: Arc<Mutex<String>>,
    mut ready: Option<ReadyWatch>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if ready.as_ref().is_some_and(|(accepts, _)| accepts(&line))
                && let Some((_, tx)) = ready.take()
            {
                let _ = tx.send(line.clone());
            }
            let mut text = lock(&sink);
            text.push_str(&line);
            text.push('\n');
        }
    })
}

/// A string field of a JSON log line.
fn logged_field(line: &str, field: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    Some(value.get(field)?.as_str()?.to_owned())
}

/// `mcp-echo --http ADDR` (`bench/mcp-echo`): a real MCP server over Streamable HTTP (one
/// `echo` tool), started and stopped at will, e.g. to take an upstream down and back up on the
/// same address.
#[derive(Debug)]
pub struct McpEcho {
    child: Child,
    /// The bound address.
    pub address: SocketAddr,
}

impl McpEcho {
    /// Starts it on `addr` (`127.0.0.1:0` for a free port) and waits for its
    /// `listening on …` line. A fixed address just freed may take a moment to be bindable
    /// again: it retries for [`PROCESS_TIMEOUT`].
    ///
    /// # Panics
    /// It cannot be started.
    pub async fn start(addr: &str) -> Self {
        let deadline = Instant::now() + PROCESS_TIMEOUT;
        loop {
            let mut child = Command::new(binary("mcp-echo"))
                .args(["--http", addr])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("spawn mcp-echo");
            let stdout = child.stdout.take().expect("stdout");
            let mut lines = BufReader::new(stdout).lines();
            let first = tokio::time::timeout(PROCESS_TIMEOUT, lines.next_line()).await;
            if let Ok(Ok(Some(line))) = first
                && let Some(address) = line.strip_prefix("listening on ").and_then(|a| a.parse().ok())
            {
                return Self { child, address };
            }
            let _ = child.kill().await;
            assert!(Instant::now() < deadline, "mcp-echo did not start on {addr}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://<address>/mcp`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.address)
    }

    /// Kills it and waits until it is gone; returns its address (to start it there again).
    pub async fn stop(mut self) -> SocketAddr {
        let _ = self.child.kill().await;
        self.address
    }
}
