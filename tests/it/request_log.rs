//! The request log through the real server: REST requests and MCP exchanges (mcp-echo over
//! stdio, called through `/servers/{id}/rpc` and Streamable HTTP) leave one record each;
//! `/admin/logs?kind=request` filters and pages them for the caller's organization only;
//! stored bodies are redacted and fetched on demand; `/metrics` shows the documented series;
//! a sink that is down fails no request. SQLite always, PostgreSQL too when `DATABASE_URL` is
//! set.

use std::collections::HashSet;

use gateway_e2e::TestApp;
use gateway_store::test_support::TestDb;
use gateway_types::ids::OrgId;
use gateway_types::model::{NewMcpServer, RecordSource, Role, ServerProtocol, ServerStatus};
use serde_json::{Value, json};

/// SQLite always; PostgreSQL too when `DATABASE_URL` is set.
async fn backends() -> Vec<TestDb> {
    let mut dbs = vec![TestDb::sqlite().await];
    if let Some(pg) = TestDb::postgres().await {
        dbs.push(pg);
    }
    dbs
}

const SECRET_ARG: &str = "SECRET-ARGUMENT-7f3a";
const SECRET_PASSWORD: &str = "SECRET-PASSWORD-91bc";
const SECRET_HEADER: &str = "SECRET-HEADER-55de";

async fn app_on(db: &TestDb, body_dir: &str) -> TestApp {
    TestApp::builder()
        .database_url(db.url())
        .env("GATEWAY__AUTH__BCRYPT_COST", "4")
        .config_yaml(&format!(
            r#"
logging:
  redact_paths: ["arguments.text", "result.content.*.text"]
  request_log:
    flush_interval_ms: 20
    bodies:
      file:
        dir: "{body_dir}"
"#
        ))
        .spawn()
        .await
}

async fn echo_server(app: &TestApp, org: OrgId, name: &str, metadata: Value) -> String {
    app.stores
        .servers
        .create(
            org,
            NewMcpServer {
                namespace_id: None,
                name: name.into(),
                description: None,
                protocol: ServerProtocol::Stdio,
                url: None,
                command: Some(gateway_e2e::process::binary("mcp-echo").display().to_string()),
                args: vec!["--stdio".into()],
                environment: None,
                credentials: None,
                working_dir: None,
                timeout_seconds: 30,
                max_retries: 1,
                status: ServerStatus::Active,
                health_check_url: None,
                tags: vec![],
                metadata,
                source: RecordSource::Api,
            },
        )
        .await
        .unwrap()
        .id
        .to_string()
}

async fn rpc(app: &TestApp, server: &str, token: &str, body: Value) -> Value {
    let res = app
        .client
        .post(app.url(&format!("/servers/{server}/rpc")))
        .bearer_auth(token)
        .header("x-api-key", SECRET_HEADER)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn call(id: u64, tool: &str, text: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": tool, "arguments": {"text": text, "password": SECRET_PASSWORD}}})
}

async fn flush(app: &TestApp) {
    app.state.request_log.as_ref().unwrap().flush().await.unwrap();
}

async fn logs(app: &TestApp, token: &str, query: &str) -> (u16, Value) {
    let res = app
        .client
        .get(app.url(&format!("/admin/logs?kind=request{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

fn items(page: &Value) -> Vec<Value> {
    page["items"].as_array().unwrap().clone()
}

/// Every file below `dir`, concatenated.
fn read_all(dir: &std::path::Path) -> String {
    let mut out = String::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.push_str(&read_all(&path));
        } else {
            out.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    out
}

#[tokio::test]
async fn rest_and_mcp_traffic_is_logged_filtered_paged_and_redacted() {
    for db in backends().await {
        traffic(&db).await;
    }
}

async fn traffic(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(db, &dir.path().display().to_string()).await;
    let acme = app.create_org("acme").await;
    let admin = app.user_token(acme, "admin@acme.test", Role::Admin).await;
    let dev = app.user_token(acme, "dev@acme.test", Role::User).await;
    let kept = echo_server(&app, acme, "kept", json!({"log_bodies": true})).await;
    let plain = echo_server(&app, acme, "plain", json!({})).await;

    // REST: one record per authenticated request.
    let res = app
        .client
        .get(app.url("/gateway/servers"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // MCP: tools/call that succeed and one that fails, on a server that keeps bodies.
    let answer = rpc(&app, &kept, &dev, call(1, "echo", SECRET_ARG)).await;
    assert_eq!(answer["result"]["content"][0]["text"], SECRET_ARG, "{answer}");
    let answer = rpc(&app, &kept, &dev, call(2, "nope", "x")).await;
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    for i in 0..5 {
        rpc(&app, &plain, &dev, call(10 + i, "echo", &format!("plain-{i}"))).await;
    }
    // Streamable HTTP too.
    let post = |body: Value, session: Option<String>| {
        let mut req = app
            .client
            .post(app.url("/servers/plain/mcp"))
            .bearer_auth(&dev)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        req.send()
    };
    let res = post(
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
        None,
    )
    .await
    .unwrap();
    let session = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    post(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        Some(session.clone()),
    )
    .await
    .unwrap();
    let res = post(call(30, "echo", "over-http"), Some(session)).await.unwrap();
    assert_eq!(res.status(), 200);
    flush(&app).await;

    // Everything, newest first.
    let (status, page) = logs(&app, &admin, "&limit=500").await;
    assert_eq!(status, 200, "{page}");
    let all = items(&page);
    let rest: Vec<&Value> = all.iter().filter(|r| r["transport"] == "rest").collect();
    assert!(
        rest.iter()
            .any(|r| r["method"] == "GET /gateway/servers" && r["http_status"] == 200 && r["status"] == "ok"),
        "{all:#?}"
    );
    assert!(
        all.iter().all(|r| r["method"] != "POST /servers/{id}/rpc"),
        "MCP endpoints are logged per exchange, not per HTTP request"
    );
    let calls: Vec<&Value> = all.iter().filter(|r| r["method"] == "tools/call").collect();
    assert_eq!(calls.len(), 8, "{calls:#?}");
    let ok = calls
        .iter()
        .find(|r| r["server_id"] == kept.as_str() && r["status"] == "ok")
        .unwrap();
    assert_eq!(ok["name"], "echo");
    assert_eq!(ok["transport"], "rpc");
    assert_eq!(ok["principal_type"], "user");
    assert_eq!(ok["client_ip"], "127.0.0.1");
    assert!(ok["request_id"].as_str().is_some_and(|s| !s.is_empty()), "{ok}");
    assert!(ok["request_bytes"].as_i64().unwrap() > 0 && ok["response_bytes"].as_i64().unwrap() > 0);
    assert_eq!(ok["has_body"], true);
    let failed = calls.iter().find(|r| r["status"] == "error").unwrap();
    assert_eq!(
        (failed["name"].as_str(), failed["error_code"].as_i64()),
        (Some("nope"), Some(-32602))
    );
    let http = calls
        .iter()
        .find(|r| r["transport"] == "streamable_http")
        .unwrap();
    assert_eq!(http["protocol_era"], "legacy");
    assert_eq!(http["has_body"], false, "the plain server keeps no bodies");

    // Filters.
    let (_, page) = logs(&app, &admin, "&status=error").await;
    assert_eq!(items(&page).len(), 1);
    let (_, page) = logs(&app, &admin, &format!("&server_id={kept}")).await;
    assert_eq!(items(&page).len(), 2);
    let (_, page) = logs(&app, &admin, "&method=tools/call&q=NOP").await;
    assert_eq!(items(&page).len(), 1, "full text on names, case-insensitive");
    let principal = ok["principal_id"].as_str().unwrap();
    let (_, page) = logs(
        &app,
        &admin,
        &format!("&principal_id={principal}&method=tools/call"),
    )
    .await;
    assert_eq!(items(&page).len(), 8);
    let newest = all[0]["created_at"].as_str().unwrap();
    let (_, page) = logs(&app, &admin, &format!("&to={}", urlencode(newest))).await;
    assert_eq!(
        items(&page).len(),
        all.len() - all.iter().filter(|r| r["created_at"] == newest).count()
    );

    // Cursor pagination: pages of 3 cover every call once, in order (the listing requests
    // themselves are logged as they go, so the REST records are left out).
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("&method=tools/call&limit=3&cursor={c}"),
            None => "&method=tools/call&limit=3".to_owned(),
        };
        let (status, page) = logs(&app, &admin, &q).await;
        assert_eq!(status, 200);
        let got = items(&page);
        assert!(got.len() <= 3);
        seen.extend(got.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = calls
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len());
    let (status, _) = logs(&app, &admin, "&cursor=garbage").await;
    assert_eq!(status, 422);

    // The stored body, redacted.
    let id = ok["id"].as_str().unwrap();
    let res = app
        .client
        .get(app.url(&format!("/admin/logs/{id}/body")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["request"]["arguments"]["text"], "[REDACTED]", "{body}");
    assert_eq!(body["request"]["arguments"]["password"], "[REDACTED]", "{body}");
    assert_eq!(body["result"]["content"][0]["text"], "[REDACTED]", "{body}");
    assert_eq!(body["headers"]["authorization"], "[REDACTED]", "{body}");
    assert_eq!(body["headers"]["x-api-key"], "[REDACTED]", "{body}");
    // Nothing on disk holds a secret: not the arguments, the result, the headers or the token.
    let on_disk = read_all(dir.path());
    assert!(on_disk.contains("[REDACTED]"));
    for secret in [SECRET_ARG, SECRET_PASSWORD, SECRET_HEADER, dev.as_str()] {
        assert!(
            !on_disk.contains(secret),
            "{secret} written to the sink: {on_disk}"
        );
    }
    // No body: 404; nor for an unknown id.
    let http_id = http["id"].as_str().unwrap();
    for path in [
        format!("/admin/logs/{http_id}/body"),
        "/admin/logs/not-an-id/body".to_owned(),
    ] {
        let res = app
            .client
            .get(app.url(&path))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }

    // Another organization sees none of it, not even by id.
    let other = app.create_org("other").await;
    let stranger = app.user_token(other, "admin@other.test", Role::Admin).await;
    let (_, page) = logs(&app, &stranger, "").await;
    assert!(
        items(&page).iter().all(|r| r["transport"] == "rest"),
        "only the stranger's own REST requests: {page}"
    );
    let res = app
        .client
        .get(app.url(&format!("/admin/logs/{id}/body")))
        .bearer_auth(&stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // `logs:read` belongs to users too (README, Roles and permissions); `audit:read` does not.
    let (status, _) = logs(&app, &dev, "").await;
    assert_eq!(status, 200);
    let res = app
        .client
        .get(app.url("/admin/logs?kind=audit"))
        .bearer_auth(&dev)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // The worker's rollup, then /admin/stats from it.
    let job = gateway_logging::rollup::Maintenance {
        logs: app.stores.logs.clone(),
        organizations: app.stores.organizations.clone(),
        locks: app.stores.locks.clone(),
        sink: None,
        interval: std::time::Duration::from_secs(60),
    };
    job.run_once(chrono::Utc::now()).await.unwrap().unwrap();
    let res = app
        .client
        .get(app.url("/admin/stats?granularity=hour"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let stats: Value = res.json().await.unwrap();
    assert!(stats["totals"]["requests"].as_i64().unwrap() >= 9, "{stats}");
    assert!(stats["totals"]["errors"].as_i64().unwrap() >= 1, "{stats}");
    assert_eq!(stats["top_tools"][0]["key"], "echo", "{stats}");
    assert_eq!(stats["top_tools"][0]["requests"], 7, "{stats}");
    assert!(
        stats["top_servers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["key"] == kept.as_str()),
        "{stats}"
    );
    assert!(stats["active_sessions"].as_u64().unwrap() >= 1, "{stats}");
    let res = app
        .client
        .get(app.url("/admin/stats"))
        .bearer_auth(&stranger)
        .send()
        .await
        .unwrap();
    let theirs: Value = res.json().await.unwrap();
    assert!(theirs["top_tools"].as_array().unwrap().is_empty(), "{theirs}");

    // Metrics after traffic.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for series in [
        r#"gateway_mcp_requests_total{server="kept",method="tools/call",tool="echo",outcome="ok"}"#,
        r#"gateway_mcp_requests_total{server="kept",method="tools/call",tool="-",outcome="error"}"#,
        "gateway_mcp_request_duration_seconds_bucket{server=\"plain\",method=\"tools/call\"",
        "gateway_request_log_written_total",
        "gateway_log_sink_written_total{sink=\"file\"}",
        "gateway_mcp_sessions_active{transport=\"streamable_http\"}",
        "gateway_stdio_processes",
        "gateway_upstreams_down",
    ] {
        assert!(metrics.contains(series), "{series} missing from:\n{metrics}");
    }
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn a_sink_outage_fails_no_request() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    // The sink's directory is a file: every write fails.
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, "not a directory").unwrap();
    let app = app_on(&db, &blocked.join("bodies").display().to_string()).await;
    let acme = app.create_org("acme").await;
    let dev = app.user_token(acme, "dev@acme.test", Role::Admin).await;
    let kept = echo_server(&app, acme, "kept", json!({"log_bodies": true})).await;
    for i in 0..3 {
        let answer = rpc(&app, &kept, &dev, call(i, "echo", "still-served")).await;
        assert_eq!(answer["result"]["content"][0]["text"], "still-served", "{answer}");
    }
    flush(&app).await;
    let (_, page) = logs(&app, &dev, "&method=tools/call").await;
    let rows = items(&page);
    assert_eq!(rows.len(), 3, "index records are written without bodies");
    assert!(rows.iter().all(|r| r["has_body"] == false));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("gateway_log_sink_failures_total{sink=\"file\"}"),
        "{metrics}"
    );
}

/// Reads one HTTP/1.1 request (head, then a `content-length` body) from a raw socket; `None`
/// when the peer closes first.
async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    use tokio::io::AsyncReadExt;

    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head_end, length) = loop {
        let n = sock.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (i + 4, length);
        }
    };
    while buf.len() < head_end + length {
        let n = sock.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    Some((head, buf[head_end..head_end + length].to_vec()))
}

/// A minimal Streamable HTTP MCP server on a raw socket that records each request's
/// `traceparent` header and body: enough to see what the gateway forwards.
async fn recording_upstream() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(Option<String>, Value)>,
) {
    use tokio::io::AsyncWriteExt;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                // One request per connection is enough.
                let Some((head, body)) = read_request(&mut sock).await else {
                    return;
                };
                let traceparent = head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("traceparent").then(|| v.trim().to_owned())
                });
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let _ = tx.send((traceparent, body.clone()));
                let answer = match (body.get("id"), body["method"].as_str()) {
                    (Some(id), Some("initialize")) => json!({"jsonrpc": "2.0", "id": id, "result": {
                        "protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                        "serverInfo": {"name": "recorder", "version": "1"}}}),
                    (Some(id), _) => json!({"jsonrpc": "2.0", "id": id, "result": {
                        "content": [{"type": "text", "text": "recorded"}]}}),
                    (None, _) => Value::Null,
                };
                let response = if answer.is_null() {
                    "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
                } else {
                    let text = answer.to_string();
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                        text.len()
                    )
                };
                let _ = sock.write_all(response.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (url, rx)
}

#[tokio::test]
async fn the_trace_context_reaches_the_upstream_in_meta_and_header() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(&db, &dir.path().display().to_string()).await;
    let acme = app.create_org("acme").await;
    let dev = app.user_token(acme, "dev@acme.test", Role::Admin).await;
    let (url, mut seen) = recording_upstream().await;
    app.stores
        .servers
        .create(
            acme,
            NewMcpServer {
                namespace_id: None,
                name: "recorder".into(),
                description: None,
                protocol: ServerProtocol::Http,
                url: Some(url),
                command: None,
                args: vec![],
                environment: None,
                credentials: None,
                working_dir: None,
                timeout_seconds: 10,
                max_retries: 0,
                status: ServerStatus::Active,
                health_check_url: None,
                tags: vec![],
                metadata: json!({}),
                source: RecordSource::Api,
            },
        )
        .await
        .unwrap();
    let client_trace = "0af7651916cd43dd8448eb211c80319c";
    let answer = rpc(
        &app,
        "recorder",
        &dev,
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "anything", "arguments": {},
            "_meta": {"traceparent": format!("00-{client_trace}-00f067aa0ba902b7-01"), "tracestate": "vendor=1"}}}),
    )
    .await;
    assert_eq!(answer["result"]["content"][0]["text"], "recorded", "{answer}");
    let call = loop {
        let (header, body) = seen.recv().await.unwrap();
        if body["method"] == "tools/call" {
            break (header, body);
        }
    };
    let (header, body) = call;
    let meta = &body["params"]["_meta"];
    let forwarded = meta["traceparent"].as_str().unwrap();
    assert!(forwarded.starts_with(&format!("00-{client_trace}-")), "{body}");
    assert_ne!(
        forwarded,
        format!("00-{client_trace}-00f067aa0ba902b7-01"),
        "the gateway's own span"
    );
    assert_eq!(meta["tracestate"], "vendor=1", "passed through");
    assert_eq!(
        header.as_deref(),
        Some(forwarded),
        "the HTTP header carries the same context"
    );

    // Without a client trace, a new one; the request log has the trace id.
    rpc(
        &app,
        "recorder",
        &dev,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    let (header, body) = loop {
        let (header, body) = seen.recv().await.unwrap();
        if body["method"] == "tools/list" {
            break (header, body);
        }
    };
    let fresh = body["params"]["_meta"]["traceparent"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(header.as_deref(), Some(fresh.as_str()));
    assert!(!fresh.contains(client_trace));
    // A REST request's record carries the trace id of its `traceparent` header.
    let rest_trace = "5bf92f3577b34da6a3ce929d0e0e4737";
    let res = app
        .client
        .get(app.url("/gateway/servers"))
        .bearer_auth(&dev)
        .header("traceparent", format!("00-{rest_trace}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    flush(&app).await;
    let (_, page) = logs(&app, &dev, "").await;
    let rows = items(&page);
    let rest = rows
        .iter()
        .find(|r| r["method"] == "GET /gateway/servers")
        .unwrap_or_else(|| unreachable!("no REST record in {page}"));
    assert_eq!(rest["trace_id"], rest_trace, "{rest}");
    let call = rows.iter().find(|r| r["method"] == "tools/call").unwrap();
    assert_eq!(call["trace_id"], client_trace);
    let list = rows.iter().find(|r| r["method"] == "tools/list").unwrap();
    assert_eq!(list["trace_id"].as_str(), Some(&fresh[3..35]));
}

/// A stand-in OpenTelemetry collector: accepts `POST /v1/traces` (OTLP/HTTP, JSON encoding)
/// and hands each body to the test.
async fn recording_collector() -> (String, tokio::sync::mpsc::UnboundedReceiver<(String, Value)>) {
    use tokio::io::AsyncWriteExt;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let Some((head, body)) = read_request(&mut sock).await else {
                    return;
                };
                let request_line = head.lines().next().unwrap_or("").to_owned();
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let _ = tx.send((request_line, body));
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                    .await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (url, rx)
}

/// Each MCP call is one OTLP span at the configured collector: the client's trace continued,
/// the client's span its parent, its own span id the parent the upstream saw, and the
/// semantic-convention attributes (never the arguments).
#[tokio::test]
async fn each_mcp_call_is_a_span_at_the_otlp_collector() {
    let db = TestDb::sqlite().await;
    let (collector, mut spans) = recording_collector().await;
    let app = TestApp::builder()
        .database_url(db.url())
        .env("GATEWAY__AUTH__BCRYPT_COST", "4")
        .config_yaml(&format!(
            "traces:\n  otlp_endpoint: \"{collector}\"\n  flush_interval_ms: 20\n  service_name: gw-test\n"
        ))
        .spawn()
        .await;
    let acme = app.create_org("acme").await;
    let dev = app.user_token(acme, "dev@acme.test", Role::Admin).await;
    let (url, mut seen) = recording_upstream().await;
    app.stores
        .servers
        .create(
            acme,
            NewMcpServer {
                namespace_id: None,
                name: "recorder".into(),
                description: None,
                protocol: ServerProtocol::Http,
                url: Some(url),
                command: None,
                args: vec![],
                environment: None,
                credentials: None,
                working_dir: None,
                timeout_seconds: 10,
                max_retries: 0,
                status: ServerStatus::Active,
                health_check_url: None,
                tags: vec![],
                metadata: json!({}),
                source: RecordSource::Api,
            },
        )
        .await
        .unwrap();
    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    rpc(
        &app,
        "recorder",
        &dev,
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "lookup", "arguments": {"text": SECRET_ARG},
            "_meta": {"traceparent": format!("00-{client_trace}-{client_span}-01")}}}),
    )
    .await;
    let forwarded = loop {
        let (header, body) = seen.recv().await.unwrap();
        if body["method"] == "tools/call" {
            break header.unwrap();
        }
    };
    let gateway_span = forwarded.split('-').nth(2).unwrap().to_owned();

    let (request_line, export) = tokio::time::timeout(std::time::Duration::from_secs(10), spans.recv())
        .await
        .expect("a span export within 10 s")
        .unwrap();
    assert!(request_line.starts_with("POST /v1/traces "), "{request_line}");
    let text = export.to_string();
    assert!(
        !text.contains(SECRET_ARG),
        "arguments never become attributes: {text}"
    );
    let resource = &export["resourceSpans"][0]["resource"]["attributes"];
    assert!(
        resource
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["key"] == "service.name" && a["value"]["stringValue"] == "gw-test"),
        "{resource}"
    );
    let all: Vec<Value> = export["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap()
        .clone();
    let span = all
        .iter()
        .find(|s| s["name"] == "tools/call lookup")
        .unwrap_or_else(|| unreachable!("no tools/call span in {text}"));
    assert_eq!(span["traceId"], client_trace);
    assert_eq!(span["parentSpanId"], client_span);
    assert_eq!(
        span["spanId"],
        gateway_span.as_str(),
        "the upstream's parent is the gateway's span"
    );
    assert_eq!(span["kind"], 2);
    let attr = |k: &str| {
        span["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == k)
            .map(|a| a["value"]["stringValue"].clone())
    };
    assert_eq!(attr("mcp.method.name"), Some(json!("tools/call")));
    assert_eq!(attr("gen_ai.tool.name"), Some(json!("lookup")));
    assert_eq!(attr("mcp_gateway.server"), Some(json!("recorder")));
    assert_eq!(attr("mcp_gateway.outcome"), Some(json!("ok")));
}
