//! stdio upstreams: the gateway starts the server's command and speaks newline-delimited
//! JSON-RPC on its stdin/stdout.
//!
//! - The process gets a **clean environment**: `PATH`, `HOME`, `LANG`, `TMPDIR` of the
//!   gateway (when set) plus the server record's own variables. The gateway's environment
//!   holds its secrets (`GATEWAY__AUTH__JWT_SECRET`…) and must never reach a child.
//! - It runs in **its own process group**, and the whole group is killed when the link closes
//!   (unregister, idle timeout, restart) and at gateway shutdown ([`ProcessTable::kill_all`]),
//!   so grandchildren (`npx` → `node`) never survive as orphans.
//! - **stderr** goes to the gateway's log at `info`, one event per line, lines cut at 4 KiB and
//!   at most [`STDERR_LINES_PER_SECOND`] per second (the rest is counted, not logged).
//! - A **crash** is seen at once (stdout closes): the link reports `Closed` and the session
//!   layer answers in-flight requests and restarts with backoff.
//! - A per-organization cap on live processes ([`ProcessTable`]).
//! - Closing: stdin is closed, the process gets 2 s to exit, then `SIGTERM` to the group,
//!   1 s more, then `SIGKILL` (the MCP lifecycle's shutdown sequence for stdio).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use gateway_types::jsonrpc::Message;
use rustix::process::{Pid, Signal};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use crate::error::TransportError;
use crate::link::{Connector, LINK_QUEUE, Link, LinkEvent, LinkTx, UpstreamSpec, emit};

/// Most stderr lines logged per second per process.
pub const STDERR_LINES_PER_SECOND: u32 = 50;
/// Longest stderr line logged (the rest is cut).
const STDERR_LINE_BYTES: usize = 4096;
/// Variables of the gateway's own environment a child inherits.
const INHERITED_ENV: [&str; 4] = ["PATH", "HOME", "LANG", "TMPDIR"];

/// Live processes: the per-organization cap and the process groups to kill at shutdown.
#[derive(Debug)]
pub struct ProcessTable {
    per_org_limit: usize,
    inner: Mutex<TableInner>,
}

#[derive(Debug, Default)]
struct TableInner {
    per_org: HashMap<String, usize>,
    groups: HashMap<u32, String>,
}

impl ProcessTable {
    /// A table allowing `per_org_limit` live processes per organization (0 = no limit).
    #[must_use]
    pub fn new(per_org_limit: usize) -> Arc<Self> {
        Arc::new(Self {
            per_org_limit,
            inner: Mutex::new(TableInner::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TableInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Live processes of an organization.
    #[must_use]
    pub fn live(&self, org: &str) -> usize {
        self.lock().per_org.get(org).copied().unwrap_or(0)
    }

    /// Live processes in all.
    #[must_use]
    pub fn total(&self) -> usize {
        self.lock().groups.len()
    }

    /// The pids of every live process group (each pid is its group's id).
    #[must_use]
    pub fn pids(&self) -> Vec<u32> {
        self.lock().groups.keys().copied().collect()
    }

    /// Whether `pid` is a live process group of this table (started and not yet reaped).
    #[must_use]
    pub fn is_live(&self, pid: u32) -> bool {
        self.lock().groups.contains_key(&pid)
    }

    fn reserve(self: &Arc<Self>, org: &str) -> Result<Slot, TransportError> {
        let mut inner = self.lock();
        let count = inner.per_org.entry(org.to_owned()).or_insert(0);
        if self.per_org_limit > 0 && *count >= self.per_org_limit {
            return Err(TransportError::ProcessLimit {
                limit: self.per_org_limit,
            });
        }
        *count += 1;
        Ok(Slot {
            table: Arc::clone(self),
            org: org.to_owned(),
            pid: None,
        })
    }

    /// Kills every live process group (gateway shutdown). Idempotent.
    pub fn kill_all(&self) {
        let pids: Vec<u32> = self.lock().groups.keys().copied().collect();
        for pid in pids {
            kill_group(pid, Signal::KILL);
        }
    }
}

/// One reserved process slot; releasing it (drop) kills the group and frees the slot.
#[derive(Debug)]
struct Slot {
    table: Arc<ProcessTable>,
    org: String,
    pid: Option<u32>,
}

impl Slot {
    fn started(&mut self, pid: u32) {
        self.pid = Some(pid);
        self.table.lock().groups.insert(pid, self.org.clone());
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.table.lock();
        if let Some(pid) = self.pid {
            inner.groups.remove(&pid);
            // Whatever the process left behind in its group goes with it.
            kill_group(pid, Signal::KILL);
        }
        if let Some(count) = inner.per_org.get_mut(&self.org) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                inner.per_org.remove(&self.org);
            }
        }
    }
}

fn kill_group(pid: u32, signal: Signal) {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    // ESRCH (already gone) is the normal case after a clean exit.
    let _ = rustix::process::kill_process_group(pid, signal);
}

/// Starts stdio servers.
#[derive(Debug)]
pub struct StdioConnector {
    table: Arc<ProcessTable>,
}

impl StdioConnector {
    /// A connector counting processes in `table`.
    #[must_use]
    pub fn new(table: Arc<ProcessTable>) -> Self {
        Self { table }
    }
}

#[async_trait]
impl Connector for StdioConnector {
    async fn connect(&self, spec: &UpstreamSpec) -> Result<Link, TransportError> {
        let command = spec
            .command
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| TransportError::Config("a stdio server needs a command".into()))?;
        let mut slot = self.table.reserve(&spec.org_id)?;

        let mut cmd = Command::new(command);
        cmd.args(&spec.args)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        for key in INHERITED_ENV {
            if let Some(value) = std::env::var_os(key) {
                cmd.env(key, value);
            }
        }
        cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = spec.working_dir.as_deref().filter(|d| !d.is_empty()) {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().map_err(TransportError::Spawn)?;
        let pid = child.id().ok_or(TransportError::Closed)?;
        slot.started(pid);
        tracing::info!(server.name = %spec.name, server.id = %spec.server_id, pid, "started stdio server");

        let (stdin, stdout, stderr) = match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
            (Some(i), Some(o), Some(e)) => (i, o, e),
            _ => return Err(TransportError::Closed),
        };
        let (out_tx, out_rx) = mpsc::channel::<Message>(LINK_QUEUE);
        let (in_tx, in_rx) = mpsc::channel::<LinkEvent>(LINK_QUEUE);
        let (closed_tx, closed_rx) = oneshot::channel();

        tokio::spawn(write_stdin(stdin, out_rx, closed_tx));
        tokio::spawn(log_stderr(stderr, spec.name.clone(), pid));
        tokio::spawn(run(child, slot, stdout, in_tx, closed_rx, spec.clone()));
        Ok(Link {
            tx: LinkTx::channel(out_tx),
            rx: in_rx,
            pid: Some(pid),
            inbox: None,
        })
    }
}

/// Writes each message as one line; when the link is dropped, closes stdin and says so.
async fn write_stdin(
    mut stdin: tokio::process::ChildStdin,
    mut rx: mpsc::Receiver<Message>,
    closed: oneshot::Sender<()>,
) {
    let mut line = Vec::with_capacity(1024);
    while let Some(msg) = rx.recv().await {
        line.clear();
        if serde_json::to_writer(&mut line, &msg).is_err() {
            continue;
        }
        line.push(b'\n');
        if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
            break; // the process is gone: the reader reports it
        }
    }
    drop(stdin);
    let _ = closed.send(());
}

/// Reads stdout until the process ends or the link is dropped, then reports `Closed`.
async fn run(
    mut child: Child,
    slot: Slot,
    stdout: ChildStdout,
    tx: mpsc::Sender<LinkEvent>,
    mut link_dropped: oneshot::Receiver<()>,
    spec: UpstreamSpec,
) {
    let mut lines = FramedRead::new(stdout, LinesCodec::new_with_max_length(spec.max_message_bytes));
    let mut dropped = false;
    loop {
        tokio::select! {
            line = lines.next() => match line {
                Some(Ok(line)) => {
                    if line.trim().is_empty() {
                        continue;
                    }
                    match serde_json::from_str::<Message>(&line) {
                        Ok(message) => {
                            if !emit(&tx, message, None).await {
                                dropped = true;
                                break;
                            }
                        }
                        Err(err) => tracing::warn!(server.name = %spec.name, error = %err, "stdio server wrote a line that is not JSON-RPC; ignored"),
                    }
                }
                Some(Err(LinesCodecError::MaxLineLengthExceeded)) => {
                    tracing::warn!(server.name = %spec.name, max_bytes = spec.max_message_bytes, "stdio server sent a message over the size limit; dropped");
                }
                Some(Err(LinesCodecError::Io(_))) | None => break,
            },
            _ = &mut link_dropped, if !dropped => {
                dropped = true;
                break;
            }
        }
    }
    let reason = if dropped {
        stop(&mut child, &slot).await;
        "closed by the gateway".to_owned()
    } else {
        // stdout closed: the process is exiting (or closed stdout and must go).
        match tokio::time::timeout(Duration::from_secs(1), child.wait()).await {
            Ok(Ok(status)) => {
                use std::os::unix::process::ExitStatusExt as _;
                let _ = tx
                    .send(LinkEvent::Exited {
                        code: status.code(),
                        signal: status.signal(),
                    })
                    .await;
                format!("process exited: {status}")
            }
            Ok(Err(_)) | Err(_) => {
                stop(&mut child, &slot).await;
                "process closed its stdout".to_owned()
            }
        }
    };
    tracing::info!(server.name = %spec.name, pid = slot.pid, reason = %reason, "stdio server stopped");
    let _ = tx.send(LinkEvent::Closed { reason }).await;
    drop(slot); // kills what is left of the group, frees the slot
}

/// The stdio shutdown sequence: stdin is already closed; wait, TERM the group, wait, KILL.
async fn stop(child: &mut Child, slot: &Slot) {
    if tokio::time::timeout(Duration::from_secs(2), child.wait())
        .await
        .is_ok()
    {
        return;
    }
    if let Some(pid) = slot.pid {
        kill_group(pid, Signal::TERM);
    }
    if tokio::time::timeout(Duration::from_secs(1), child.wait())
        .await
        .is_ok()
    {
        return;
    }
    if let Some(pid) = slot.pid {
        kill_group(pid, Signal::KILL);
    }
    let _ = child.wait().await;
}

/// Logs stderr line by line, bounded in line length and rate.
async fn log_stderr(stderr: ChildStderr, name: String, pid: u32) {
    let mut lines = FramedRead::new(stderr, LinesCodec::new_with_max_length(STDERR_LINE_BYTES));
    let mut window = Instant::now();
    let mut in_window = 0u32;
    let mut suppressed = 0u64;
    while let Some(line) = lines.next().await {
        let line = match line {
            Ok(line) => line,
            Err(LinesCodecError::MaxLineLengthExceeded) => "[line over 4 KiB cut]".to_owned(),
            Err(LinesCodecError::Io(_)) => break,
        };
        if window.elapsed() >= Duration::from_secs(1) {
            if suppressed > 0 {
                tracing::info!(server.name = %name, pid, suppressed, "stdio server stderr lines not logged (rate limit)");
            }
            window = Instant::now();
            in_window = 0;
            suppressed = 0;
        }
        in_window += 1;
        if in_window > STDERR_LINES_PER_SECOND {
            suppressed += 1;
            continue;
        }
        tracing::info!(server.name = %name, pid, stderr = %line, "stdio server stderr");
    }
}
