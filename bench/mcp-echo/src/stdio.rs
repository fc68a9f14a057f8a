//! stdio: newline-delimited JSON-RPC on the given reader and writer (the process's stdin/stdout).
//!
//! Calls without simulated work are answered in order on the reading task; with `--delay-us`
//! each call waits on its own task, so a client that pipelines requests (a gateway multiplexing
//! many clients onto one child) gets them answered concurrently, possibly out of order. One
//! writer task flushes whenever it has nothing more queued.

use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader};
use tokio::sync::mpsc;

use crate::Options;
use crate::protocol::{self, Era, Message, Reply};

/// Serves until `input` ends, then waits for the answers still in flight.
pub async fn serve<R, W>(input: R, output: W, opts: Options) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(write_all(output, rx));
    let mut lines = BufReader::with_capacity(64 * 1024, input).lines();
    // An `initialize` selects the legacy era for the whole process.
    let mut initialized = false;
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let msg = match Message::parse(line.as_bytes()) {
            Ok(msg) => msg,
            Err(answer) => {
                let _ = tx.send(answer);
                continue;
            }
        };
        let era = match msg.meta_protocol_version() {
            _ if msg.method() == Some("initialize") => {
                initialized = true;
                Era::Legacy
            }
            Some(v) if opts.stateless && !initialized => {
                if v != protocol::MODERN_VERSION && msg.is_request() {
                    let _ = tx.send(protocol::unsupported_version(msg.id, v));
                    continue;
                }
                Era::Modern
            }
            _ => Era::Legacy,
        };
        let ctx = protocol::Context {
            era,
            stateless: opts.stateless,
            sse_progress: opts.sse_progress,
        };
        let reply = protocol::handle(&msg, ctx);
        let messages = match reply {
            Reply::Accepted => continue,
            Reply::Single { body, .. } => vec![body],
            Reply::Stream(messages) => messages,
        };
        if msg.method() == Some("tools/call") && !opts.delay.is_zero() {
            let tx = tx.clone();
            let gap = opts.delay / u32::try_from(messages.len()).unwrap_or(1).max(1);
            tokio::spawn(async move {
                for m in messages {
                    tokio::time::sleep(gap).await;
                    let _ = tx.send(m);
                }
            });
        } else {
            for m in messages {
                let _ = tx.send(m);
            }
        }
    }
    drop(tx);
    writer
        .await
        .map_err(|e| std::io::Error::other(format!("writer task: {e}")))?
}

async fn write_all<W: AsyncWrite + Unpin>(
    output: W,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) -> std::io::Result<()> {
    let mut out = tokio::io::BufWriter::with_capacity(64 * 1024, output);
    while let Some(first) = rx.recv().await {
        write_line(&mut out, &first).await?;
        while let Ok(more) = rx.try_recv() {
            write_line(&mut out, &more).await?;
        }
        out.flush().await?;
    }
    out.flush().await
}

async fn write_line<W: AsyncWrite + Unpin>(out: &mut W, message: &[u8]) -> std::io::Result<()> {
    out.write_all(message).await?;
    out.write_all(b"\n").await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncReadExt as _;

    use super::*;

    #[tokio::test]
    async fn answers_in_order_and_drains_at_eof() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let (server_in, server_out) = tokio::io::split(server);
        let opts = Options {
            stateless: true,
            sse_progress: Some(2),
            delay: Duration::from_millis(1),
        };
        let task = tokio::spawn(serve(server_in, server_out, opts));
        let input = concat!(
            r#"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
            "\n\n",
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"},"_meta":{"progressToken":9,"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
            "\n",
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{}}"#,
            "\n",
        );
        client.write_all(input.as_bytes()).await.unwrap();
        client.shutdown().await.unwrap();
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        task.await.unwrap().unwrap();
        let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert_eq!(lines[0]["result"]["supportedVersions"][0], "2026-07-28");
        assert_eq!(lines[1]["method"], "notifications/progress");
        assert_eq!(lines[2]["params"]["progress"], 2);
        assert_eq!(lines[3]["result"]["content"][0]["text"], "hi");
        assert_eq!(lines[3]["result"]["resultType"], "complete");
    }
}
