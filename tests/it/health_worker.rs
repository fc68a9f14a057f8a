//! The worker's health checks against real servers (the `gateway-worker` binary, `mcp-echo`
//! over Streamable HTTP and stdio), on SQLite and (when `DATABASE_URL` is set) PostgreSQL: a
//! server that stops goes active → degraded → down, the api refuses its calls at once with a
//! JSON-RPC error, and it comes back to active when the server is started again.

use std::time::Duration;

use gateway_e2e::TestApp;
use gateway_e2e::process::{McpEcho, Running, binary};
use gateway_store::test_support::TestDb;
use gateway_types::ids::{OrgId, ServerId};
use gateway_types::model::{HealthStatus, NewMcpServer, RecordSource, Role, ServerProtocol, ServerStatus};
use gateway_types::store::Stores;
use serde_json::{Value, json};

use crate::servers::{org, token};

/// How long a test waits for the worker to get somewhere (checks run every second).
const PATIENCE: Duration = Duration::from_secs(60);

fn new_server(
    name: &str,
    protocol: ServerProtocol,
    url: Option<String>,
    command: Option<String>,
    args: &[&str],
) -> NewMcpServer {
    NewMcpServer {
        namespace_id: None,
        name: name.into(),
        description: None,
        protocol,
        url,
        command,
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        environment: None,
        credentials: None,
        working_dir: None,
        timeout_seconds: 10,
        max_retries: 0,
        status: ServerStatus::Active,
        health_check_url: None,
        tags: vec![],
        metadata: json!({"session_mode": "per_client"}),
        source: RecordSource::Api,
    }
}

/// Waits until `done` holds for the server's record, or fails with what it last saw.
async fn wait_for_status(stores: &Stores, org: OrgId, id: ServerId, want: ServerStatus, worker: &Running) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let status = stores.servers.get(org, id).await.unwrap().unwrap().status;
        if status == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "server {id} is still {status}, not {want}\nworker:\n{}",
            worker.stdout_so_far()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_check(stores: &Stores, org: OrgId, id: ServerId, want: HealthStatus, worker: &Running) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let newest = stores.health.history(org, id, 1).await.unwrap();
        if newest.first().is_some_and(|c| c.status == want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {want} check of {id}: {newest:?}\nworker:\n{}",
            worker.stdout_so_far()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One JSON-RPC request to the gateway's Streamable HTTP endpoint of `server`.
async fn mcp(
    app: &TestApp,
    token: &str,
    server: &str,
    session: Option<&str>,
    body: Value,
) -> (Option<String>, Value) {
    let mut req = app
        .client
        .post(app.url(&format!("/servers/{server}/mcp")))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    let res = req.send().await.unwrap();
    let id = res
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    (id, res.json().await.unwrap())
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}})
}

fn call_echo(id: i64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hi"}}})
}

/// Waits until the worker has logged the status change `from` → `to` of `server` (the log
/// line follows the write the test may already have seen).
async fn wait_for_transition(worker: &Running, server: ServerId, from: &str, to: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let out = worker.stdout_so_far();
        if logged_transition(&out, server, from, to) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never logged {from} -> {to} for {server}:\n{out}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A status change as the worker logs it.
fn logged_transition(stdout: &str, server: ServerId, from: &str, to: &str) -> bool {
    stdout.lines().any(|line| {
        serde_json::from_str::<Value>(line).is_ok_and(|v| {
            v["message"] == "server status changed by health checks"
                && v["server.id"] == server.to_string().as_str()
                && v["from"] == from
                && v["to"] == to
        })
    })
}

#[tokio::test]
async fn a_stopped_server_goes_down_is_refused_and_recovers() {
    scenario(TestDb::sqlite().await).await;
    match TestDb::postgres().await {
        Some(db) => scenario(db).await,
        None => eprintln!("DATABASE_URL is not set: PostgreSQL skipped"),
    }
}

async fn scenario(db: TestDb) {
    let echo = McpEcho::start("127.0.0.1:0").await;
    let app = TestApp::builder()
        .env("GATEWAY__AUTH__BCRYPT_COST", "4")
        .database_url(db.url())
        .spawn()
        .await;
    let stores = app.stores.clone();
    let acme = org(&app, "acme").await;
    let user = token(&app, acme, "dev@acme.example", Role::User).await;
    let create = |s: NewMcpServer| {
        let stores = stores.clone();
        async move { stores.servers.create(acme, s).await.unwrap().id }
    };
    let http = create(new_server(
        "echo",
        ServerProtocol::Http,
        Some(echo.url()),
        None,
        &[],
    ))
    .await;
    let mcp_echo = binary("mcp-echo").display().to_string();
    let stdio = create(new_server(
        "stdio-echo",
        ServerProtocol::Stdio,
        None,
        Some(mcp_echo),
        &["--stdio"],
    ))
    .await;
    let broken = create(new_server(
        "broken",
        ServerProtocol::Stdio,
        None,
        Some("/nonexistent/mcp-server".into()),
        &[],
    ))
    .await;
    let mut off = new_server(
        "off",
        ServerProtocol::Http,
        Some("http://127.0.0.1:9/mcp".into()),
        None,
        &[],
    );
    off.status = ServerStatus::Inactive;
    let off = create(off).await;

    let worker = Running::worker(&[
        ("GATEWAY__DATABASE__URL", db.url()),
        ("GATEWAY__HEALTH_CHECKS__INTERVAL_SECONDS", "1"),
        ("GATEWAY__HEALTH_CHECKS__TIMEOUT_SECONDS", "5"),
        ("GATEWAY__HEALTH_CHECKS__DEGRADED_AFTER", "1"),
        ("GATEWAY__HEALTH_CHECKS__DOWN_AFTER", "2"),
        ("GATEWAY__HEALTH_CHECKS__RECOVER_AFTER", "2"),
    ])
    .await;

    // Healthy servers, over both transports; a server that cannot start goes down.
    wait_for_check(&stores, acme, http, HealthStatus::Healthy, &worker).await;
    wait_for_check(&stores, acme, stdio, HealthStatus::Healthy, &worker).await;
    wait_for_status(&stores, acme, broken, ServerStatus::Down, &worker).await;
    let failures = stores
        .health
        .stats(acme, broken)
        .await
        .unwrap()
        .unwrap()
        .consecutive_failures;
    assert!(failures >= 2, "{failures}");
    let history = stores.health.history(acme, broken, 1).await.unwrap();
    assert_eq!(history[0].error.as_deref(), Some("cannot connect"));
    assert!(
        stores.health.history(acme, off, 10).await.unwrap().is_empty(),
        "inactive servers are not checked"
    );

    // A session through the gateway works.
    let (session, answer) = mcp(&app, &user, "echo", None, initialize()).await;
    assert!(answer["result"]["serverInfo"].is_object(), "{answer}");
    let session = session.unwrap();
    let (_, answer) = mcp(&app, &user, "echo", Some(&session), call_echo(2)).await;
    assert_eq!(answer["result"]["content"][0]["text"], "hi", "{answer}");

    // The server stops: degraded, then down.
    let address = echo.stop().await;
    wait_for_status(&stores, acme, http, ServerStatus::Down, &worker).await;
    wait_for_transition(&worker, http, "active", "degraded").await;
    wait_for_transition(&worker, http, "degraded", "down").await;

    // The api learns it from the change log and refuses at once: on the open session…
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let refused = loop {
        let (_, answer) = mcp(&app, &user, "echo", Some(&session), call_echo(3)).await;
        if answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("is down"))
        {
            break answer;
        }
        assert!(tokio::time::Instant::now() < deadline, "never refused: {answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(refused["error"]["code"], -32000, "{refused}");
    assert_eq!(refused["id"], 3);
    // …and on a new one.
    let (_, answer) = mcp(&app, &user, "echo", None, initialize()).await;
    assert_eq!(answer["error"]["code"], -32000, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server 'echo' is down"),
        "{answer}"
    );

    // Started again on the same address: back to active after two good checks, and served.
    let echo = McpEcho::start(&address.to_string()).await;
    wait_for_status(&stores, acme, http, ServerStatus::Active, &worker).await;
    wait_for_transition(&worker, http, "down", "active").await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (session, answer) = mcp(&app, &user, "echo", None, initialize()).await;
        if answer["result"]["serverInfo"].is_object() {
            let (_, answer) = mcp(&app, &user, "echo", session.as_deref(), call_echo(4)).await;
            assert_eq!(answer["result"]["content"][0]["text"], "hi", "{answer}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never served again: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    worker.signal("TERM").await;
    let out = worker.wait().await;
    assert!(out.status.success(), "{}", out.stderr);
    echo.stop().await;
    drop(app);
}
