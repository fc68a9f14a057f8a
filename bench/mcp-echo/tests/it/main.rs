//! End-to-end tests of the `mcp-echo` binary: Streamable HTTP (sessions, stateless 2026-07-28,
//! SSE progress) and stdio.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod http;
mod stdio;

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// A running `mcp-echo --http 127.0.0.1:0`, killed on drop.
#[derive(Debug)]
pub struct Echo {
    pub url: String,
    _child: Child,
}

impl Echo {
    pub async fn start(extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-echo"))
            .args(["--http", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut first = String::new();
        BufReader::new(stdout).read_line(&mut first).await.unwrap();
        let addr = first
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        Self {
            url: format!("http://{addr}/mcp"),
            _child: child,
        }
    }
}

/// Spawns `mcp-echo` with the given arguments and piped stdin/stdout.
pub fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mcp-echo"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}
