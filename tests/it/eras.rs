//! Protocol eras: MCP 2026-07-28 (stateless) clients through the gateway to legacy upstreams,
//! and legacy clients to a 2026-07-28-only upstream.
//!
//! The modern client is the official Python SDK's `Client` (`tests/peers/modern_client.py`, in
//! `mode="auto"`, which probes `server/discover`, or pinned to 2026-07-28); the upstream is
//! `@modelcontextprotocol/server-everything` (legacy, over stdio and Streamable HTTP). The
//! driver validates every message the gateway sent against
//! `../shared/mcp-spec/2026-07-28/schema.json`. Cases the SDK cannot express (a wrong header,
//! an unknown version, GET/DELETE, a forged `requestState`) are raw HTTP built from the
//! schema's examples.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use gateway_types::model::{Role, ServerProtocol};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::mcp::{
    EverythingHttp, Setup, assert_all_passed, everything_js, node, peers, server, setup, stdio_everything,
};

const MODERN: &str = "2026-07-28";

fn schema_path() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/mcp-spec/2026-07-28/schema.json");
    assert!(p.exists(), "the 2026-07-28 schema is missing at {}", p.display());
    p.to_string_lossy().into_owned()
}

/// Runs the modern driver; returns its JSON report.
async fn drive_modern(url: &str, token: &str, mode: &str, scenarios: &[&str]) -> Value {
    let dir = peers();
    let mut cmd = Command::new(dir.join(".venv/bin/python"));
    cmd.arg(dir.join("modern_client.py"))
        .args(["--url", url, "--mode", mode, "--header"])
        .arg(format!("Authorization: Bearer {token}"))
        .args(["--timeout", "40", "--schema"])
        .arg(schema_path())
        .args(["--scenarios", &scenarios.join(",")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
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

const ALL: [&str; 7] = [
    "discover",
    "tools-list",
    "echo",
    "sampling",
    "elicitation",
    "roots",
    "progress",
];

/// The SDK client in `mode="auto"` against a legacy stdio server: the gateway answers
/// `server/discover`, so the client stays modern; tools are listed and called, and sampling,
/// elicitation and roots make the round trip as MRTR. Every message validates against the
/// 2026-07-28 schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_client_reaches_a_legacy_stdio_server() {
    let s = setup().await;
    stdio_everything(&s, "everything", "per_client").await;
    let url = s.app.url("/servers/everything/mcp");
    let report = drive_modern(&url, &s.token, "auto", &ALL).await;
    assert_all_passed(&report);
    assert_eq!(report["protocol_version"], MODERN, "{report:#}");
    assert!(report["messages"].as_u64().unwrap() > 0, "{report:#}");
    // The client never fell back to the handshake.
    assert!(report["methods"].get("initialize").is_none(), "{report:#}");
    assert!(report["methods"].get("server/discover").is_some(), "{report:#}");
}

/// The same against server-everything over Streamable HTTP (legacy), shared upstream, with the
/// client pinned to 2026-07-28 (no probe).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_client_reaches_a_legacy_streamable_http_server() {
    let s = setup().await;
    let upstream = EverythingHttp::start("streamableHttp").await;
    s.app
        .stores
        .servers
        .create(
            s.org,
            server(
                "everything-http",
                ServerProtocol::Http,
                Some(format!("http://127.0.0.1:{}/mcp", upstream.port)),
                None,
                vec![],
                "shared",
            ),
        )
        .await
        .unwrap();
    let url = s.app.url("/servers/everything-http/mcp");
    let report = drive_modern(&url, &s.token, MODERN, &ALL).await;
    assert_all_passed(&report);
    assert!(report["methods"].get("initialize").is_none(), "{report:#}");
}

/// A raw modern POST with the spec's headers.
async fn raw(s: &Setup, url: &str, headers: &[(&str, &str)], body: &Value) -> (u16, Value) {
    raw_as(s, &s.token, url, headers, body).await
}

/// [`raw`] with another principal's token.
async fn raw_as(s: &Setup, token: &str, url: &str, headers: &[(&str, &str)], body: &Value) -> (u16, Value) {
    let mut req = s
        .app
        .client
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    assert!(
        res.headers().get("mcp-session-id").is_none(),
        "a modern answer minted a session"
    );
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn meta(version: &str) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientInfo": {"name": "ExampleClient", "version": "1.0.0"},
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}

/// Header validation, unsupported versions, GET/DELETE and a forged `requestState`, built from
/// the spec's examples (the SDK always sends correct headers, so it cannot produce these).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_requests_are_validated() {
    let s = setup().await;
    stdio_everything(&s, "everything", "shared").await;
    let url = s.app.url("/servers/everything/mcp");
    let call = |name: &str, version: &str| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": name, "arguments": {"message": "hi"}, "_meta": meta(version)}})
    };

    // Correct headers: the call goes through, with resultType and no session.
    let (status, v) = raw(
        &s,
        &url,
        &[
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ],
        &call("echo", MODERN),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["resultType"], "complete", "{v}");
    assert_eq!(v["id"], 1, "{v}");

    // Mcp-Name in the Base64 sentinel form is decoded before comparing.
    let (status, v) = raw(
        &s,
        &url,
        &[
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?ZWNobw==?="),
        ],
        &call("echo", MODERN),
    )
    .await;
    assert_eq!(status, 200, "{v}");

    // Mismatches and missing headers: 400 HeaderMismatch.
    let bad: [&[(&str, &str)]; 5] = [
        &[
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", "get-sum"),
        ],
        &[
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/list"),
            ("mcp-name", "echo"),
        ],
        &[("mcp-protocol-version", MODERN), ("mcp-name", "echo")],
        &[("mcp-protocol-version", MODERN), ("mcp-method", "tools/call")],
        &[
            ("mcp-protocol-version", "2025-11-25"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ],
    ];
    for headers in bad {
        let (status, v) = raw(&s, &url, headers, &call("echo", MODERN)).await;
        assert_eq!(status, 400, "{headers:?}: {v}");
        assert_eq!(v["error"]["code"], -32020, "{headers:?}: {v}");
        assert_eq!(v["id"], 1, "{v}");
    }

    // An unknown version: 400 UnsupportedProtocolVersion listing what is supported.
    let (status, v) = raw(
        &s,
        &url,
        &[
            ("mcp-protocol-version", "1900-01-01"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ],
        &call("echo", "1900-01-01"),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], -32022, "{v}");
    assert_eq!(v["error"]["data"]["requested"], "1900-01-01", "{v}");
    let supported: Vec<&str> = v["error"]["data"]["supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(
        supported.contains(&MODERN) && supported.contains(&"2025-11-25"),
        "{v}"
    );

    // server/discover is the gateway's, from the upstream's initialize result.
    let (status, v) = raw(
        &s,
        &url,
        &[("mcp-protocol-version", MODERN), ("mcp-method", "server/discover")],
        &json!({"jsonrpc": "2.0", "id": "discover-1", "method": "server/discover", "params": {"_meta": meta(MODERN)}}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["supportedVersions"][0], MODERN, "{v}");
    assert!(v["result"]["capabilities"]["tools"].is_object(), "{v}");
    assert!(
        v["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"].is_string(),
        "{v}"
    );

    // A Mcp-Session-Id on a modern request is ignored.
    let (status, v) = raw(
        &s,
        &url,
        &[
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/list"),
            ("mcp-session-id", "00000000-0000-0000-0000-000000000000"),
        ],
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": meta(MODERN)}}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["cacheScope"], "private", "{v}");
    assert!(v["result"]["ttlMs"].is_u64(), "{v}");

    // An unknown method: 404 with -32601.
    let (status, v) = raw(
        &s,
        &url,
        &[("mcp-protocol-version", MODERN), ("mcp-method", "no/such")],
        &json!({"jsonrpc": "2.0", "id": 3, "method": "no/such", "params": {"_meta": meta(MODERN)}}),
    )
    .await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error"]["code"], -32601, "{v}");

    // A forged requestState: a clear error, nothing resumed.
    let mut forged = call("echo", MODERN);
    forged["params"]["requestState"] = json!("gw1.forged");
    forged["params"]["inputResponses"] = json!({});
    let (status, v) = raw(
        &s,
        &url,
        &[
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ],
        &forged,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["error"]["code"], -32602, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("requestState"),
        "{v}"
    );

    // GET and DELETE do not exist in the modern transport.
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let res = s
            .app
            .client
            .request(method.clone(), &url)
            .bearer_auth(&s.token)
            .header("mcp-protocol-version", MODERN)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "{method}");
    }
}

/// An MRTR round trip in raw HTTP: the elicitation a legacy server sends mid-call becomes an
/// `InputRequiredResult`; a retry by another principal, or on another tool, is refused; the
/// right retry completes the call; the state is single-use. Raw HTTP, so the test controls the
/// retries the SDK would make by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mrtr_state_is_bound_and_single_use() {
    let s = setup().await;
    stdio_everything(&s, "everything", "per_client").await;
    let url = s.app.url("/servers/everything/mcp");
    let mut m = meta(MODERN);
    m["io.modelcontextprotocol/clientCapabilities"] = json!({"elicitation": {}});
    let headers = [
        ("mcp-protocol-version", MODERN),
        ("mcp-method", "tools/call"),
        ("mcp-name", "trigger-elicitation-request"),
    ];
    let body = json!({"jsonrpc": "2.0", "id": 10, "method": "tools/call",
        "params": {"name": "trigger-elicitation-request", "arguments": {}, "_meta": m}});
    let (status, v) = raw(&s, &url, &headers, &body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["resultType"], "input_required", "{v}");
    let requests = v["result"]["inputRequests"].as_object().unwrap();
    assert_eq!(requests.len(), 1, "{v}");
    let (key, request) = requests.iter().next().unwrap();
    assert_eq!(request["method"], "elicitation/create", "{v}");
    let token = v["result"]["requestState"].as_str().unwrap().to_owned();

    // Another user of the organization cannot resume it (and does not consume it).
    let eve = s.app.user_token(s.org, "eve@acme.test", Role::User).await;
    let mut stolen = body.clone();
    stolen["id"] = json!(20);
    stolen["params"]["requestState"] = json!(token);
    stolen["params"]["inputResponses"] = json!({ key.clone(): {"action": "decline"} });
    let (_, v) = raw_as(&s, &eve, &url, &headers, &stolen).await;
    assert_eq!(v["error"]["code"], -32602, "{v}");

    // The same state on another tool: refused, and consumed.
    let mut other = body.clone();
    other["id"] = json!(11);
    other["params"]["name"] = json!("echo");
    other["params"]["requestState"] = json!(token);
    let (_, v) = raw(
        &s,
        &url,
        &[
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ],
        &other,
    )
    .await;
    assert_eq!(v["error"]["code"], -32602, "{v}");

    // Start again, and answer properly.
    let (_, v) = raw(&s, &url, &headers, &body).await;
    let key2 = v["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    assert_ne!(&key2, key);
    let token = v["result"]["requestState"].as_str().unwrap().to_owned();
    let mut retry = body.clone();
    retry["id"] = json!(12);
    retry["params"]["requestState"] = json!(token);
    retry["params"]["inputResponses"] = json!({ key2.clone(): {
        "action": "accept",
        "content": {"name": "Raw Tester", "check": true, "email": "raw@example.com", "integer": 5}
    }});
    let (status, v) = raw(&s, &url, &headers, &retry).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["id"], 12, "{v}");
    assert_eq!(v["result"]["resultType"], "complete", "{v}");
    assert!(v.to_string().contains("Raw Tester"), "{v}");

    // Single use.
    let mut again = retry.clone();
    again["id"] = json!(13);
    let (_, v) = raw(&s, &url, &headers, &again).await;
    assert_eq!(v["error"]["code"], -32602, "{v}");
}

/// A modern-only upstream (`tests/peers/modern_server.py`: written from the 2026-07-28 spec and
/// its schema examples, because the SDK's server also answers `initialize`), over Streamable
/// HTTP or stdio.
struct ModernServer {
    _child: tokio::process::Child,
    port: Option<u16>,
}

impl ModernServer {
    async fn http() -> Self {
        use tokio::io::AsyncBufReadExt as _;
        let dir = peers();
        let mut child = Command::new(dir.join(".venv/bin/python"))
            .arg(dir.join("modern_server.py"))
            .arg("http")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let port = line.strip_prefix("PORT ").unwrap().trim().parse().unwrap();
        Self {
            _child: child,
            port: Some(port),
        }
    }
}

async fn register_modern(s: &Setup, name: &str, http: Option<&ModernServer>) {
    let dir = peers();
    let record = match http {
        Some(m) => server(
            name,
            ServerProtocol::Http,
            Some(format!("http://127.0.0.1:{}/mcp", m.port.unwrap())),
            None,
            vec![],
            "per_client",
        ),
        None => server(
            name,
            ServerProtocol::Stdio,
            None,
            Some(dir.join(".venv/bin/python").to_string_lossy().into_owned()),
            vec![
                dir.join("modern_server.py").to_string_lossy().into_owned(),
                "stdio".into(),
            ],
            "per_client",
        ),
    };
    s.app.stores.servers.create(s.org, record).await.unwrap();
}

/// What the modern server saw, through a raw legacy session: it was never sent `initialize`,
/// and every request carried the modern `_meta` (and, after `logging/setLevel`, the log level).
async fn modern_server_saw(s: &Setup, path: &str) -> Value {
    let mut raw = crate::mcp::Raw {
        app: &s.app,
        token: &s.token,
        path: path.into(),
        session: None,
    };
    let init = raw.init().await;
    assert_eq!(
        init["result"]["serverInfo"]["name"], "modern-only-server",
        "{init}"
    );
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18", "{init}");
    let pong = raw.call(1, "ping", json!({})).await;
    assert!(pong["result"].is_object(), "{pong}");
    let set = raw.call(2, "logging/setLevel", json!({"level": "info"})).await;
    assert!(set["result"].is_object(), "{set}");
    let listed = raw.call(3, "tools/list", json!({})).await;
    assert!(
        listed["result"]["tools"].as_array().unwrap().len() >= 3,
        "{listed}"
    );
    let seen = raw
        .call(4, "tools/call", json!({"name": "seen", "arguments": {}}))
        .await;
    serde_json::from_str(seen["result"]["content"][0]["text"].as_str().unwrap()).unwrap()
}

fn assert_modern_traffic(seen: &Value) {
    let methods: Vec<&str> = seen["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(methods.contains(&"server/discover"), "{seen}");
    assert!(!methods.contains(&"initialize"), "{seen}");
    assert!(
        !methods.contains(&"ping") && !methods.contains(&"logging/setLevel"),
        "{seen}"
    );
    for keys in seen["meta_keys"].as_array().unwrap() {
        let keys = keys.to_string();
        assert!(keys.contains("io.modelcontextprotocol/protocolVersion"), "{seen}");
        assert!(
            keys.contains("io.modelcontextprotocol/clientCapabilities"),
            "{seen}"
        );
        assert!(keys.contains("io.modelcontextprotocol/clientInfo"), "{seen}");
    }
    // The last request (`seen` itself) came after logging/setLevel: it carries the level.
    assert_eq!(
        seen["log_levels"].as_array().unwrap().last().unwrap(),
        "info",
        "{seen}"
    );
    assert!(seen.get("header_errors").is_none(), "{seen}");
}

/// A legacy client (the Python SDK driver, 2025-11-25 handshake over Streamable HTTP) reaches a
/// modern-only server over Streamable HTTP: the gateway answers `initialize` from
/// `server/discover`, sends `_meta` and the required headers, and turns the server's
/// `InputRequiredResult` into a real `elicitation/create` request on the client's stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_client_reaches_a_modern_http_server() {
    let s = setup().await;
    let upstream = ModernServer::http().await;
    register_modern(&s, "modern", Some(&upstream)).await;
    let url = s.app.url("/servers/modern/mcp");
    let report = crate::mcp::drive(
        "streamable-http",
        &url,
        &s.token,
        &["initialize", "ping", "echo", "elicitation"],
    )
    .await;
    assert_all_passed(&report);
    let seen = modern_server_saw(&s, "/servers/modern/mcp").await;
    assert_modern_traffic(&seen);
}

/// The same over stdio: the `server/discover` probe on a fresh process finds the modern server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_client_reaches_a_modern_stdio_server() {
    let s = setup().await;
    register_modern(&s, "modern-stdio", None).await;
    let url = s.app.url("/servers/modern-stdio/mcp");
    let report = crate::mcp::drive(
        "streamable-http",
        &url,
        &s.token,
        &["initialize", "ping", "echo", "elicitation"],
    )
    .await;
    assert_all_passed(&report);
    let seen = modern_server_saw(&s, "/servers/modern-stdio/mcp").await;
    assert_modern_traffic(&seen);
}

/// A modern client through the gateway to a modern-only server: both bridges in series (the
/// carrier's legacy session over the translated modern upstream). Every message the gateway
/// sent validates against the 2026-07-28 schema, and the elicitation makes the MRTR round trip
/// on both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_client_reaches_a_modern_server() {
    let s = setup().await;
    let upstream = ModernServer::http().await;
    register_modern(&s, "modern", Some(&upstream)).await;
    let url = s.app.url("/servers/modern/mcp");
    let report = drive_modern(&url, &s.token, "auto", &["discover", "echo", "elicitation"]).await;
    assert_all_passed(&report);
    assert_eq!(report["protocol_version"], MODERN, "{report:#}");
}

/// Closing a modern request's SSE response cancels it upstream (raw HTTP: the SDK cannot drop
/// one response stream on purpose). A long operation with progress streams; the client reads the
/// first progress event and hangs up; the upstream request is then gone from the process's
/// in-flight count long before the operation (60 s) could end by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_response_stream_cancels_upstream() {
    use futures_util::StreamExt as _;

    let s = setup().await;
    stdio_everything(&s, "everything", "per_client").await;
    let url = s.app.url("/servers/everything/mcp");
    let mut m = meta(MODERN);
    m["progressToken"] = json!("p-1");
    let res = s
        .app
        .client
        .post(&url)
        .bearer_auth(&s.token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "trigger-long-running-operation")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "trigger-long-running-operation", "arguments": {"duration": 60, "steps": 60}, "_meta": m}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"),
        "{:?}",
        res.headers()
    );
    let mut body = res.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("notifications/progress") {
        let chunk = tokio::time::timeout(Duration::from_secs(30), body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("\"progressToken\":\"p-1\""), "{seen}");
    let in_flight = || {
        s.app
            .state
            .hub
            .stdio_processes(s.org, None)
            .iter()
            .map(|p| p.in_flight)
            .sum::<usize>()
    };
    assert_eq!(in_flight(), 1);
    drop(body);
    let gone = tokio::time::timeout(Duration::from_secs(20), async {
        while in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        gone.is_ok(),
        "the upstream request is still in flight after the client hung up"
    );
}

/// A modern request on a namespace's aggregate endpoint: the carrier is the federation's
/// session, so discovery, listing and calling prefixed tools work as for one server (raw HTTP).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_requests_reach_a_namespace() {
    let s = setup().await;
    let ns = crate::federation::namespace(&s, "mods").await;
    crate::federation::register(
        &s,
        s.org,
        ns,
        server(
            "alpha",
            ServerProtocol::Stdio,
            None,
            Some(node()),
            vec![everything_js(), "stdio".into()],
            "per_client",
        ),
    )
    .await;
    let url = s.app.url("/namespaces/mods/mcp");
    let (status, v) = raw(
        &s,
        &url,
        &[
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "server/discover"),
        ],
        &json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta(MODERN)}}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["supportedVersions"][0], MODERN, "{v}");
    let (status, v) = raw(
        &s,
        &url,
        &[("mcp-protocol-version", MODERN), ("mcp-method", "tools/list")],
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": meta(MODERN)}}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(v.to_string().contains("\"alpha__echo\""), "{v}");
    let (status, v) = raw(
        &s,
        &url,
        &[("mcp-protocol-version", MODERN), ("mcp-method", "tools/call"), ("mcp-name", "alpha__echo")],
        &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                "params": {"name": "alpha__echo", "arguments": {"message": "via namespace"}, "_meta": meta(MODERN)}}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["content"][0]["text"], "Echo: via namespace", "{v}");
    assert_eq!(v["result"]["resultType"], "complete", "{v}");
}
