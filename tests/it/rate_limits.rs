//! Rate limiting end to end: per-IP limits before authentication (and the client address
//! behind trusted proxies), principal and organization limits after it, the rules' admin API
//! with changes applied live, usage and metrics, per-tool limits on every MCP transport (and
//! through a namespace's federation), and two gateway processes sharing one Redis.

use gateway_e2e::TestApp;
use gateway_e2e::process::Running;
use gateway_types::ids::OrgId;
use gateway_types::model::{NewMcpServer, NewNamespace, RecordSource, Role, ServerProtocol, ServerStatus};
use reqwest::Method;
use serde_json::{Value, json};

use crate::mcp_admin::{Events, websocket, ws_next};
use crate::policies::send;

async fn app(env: &[(&str, &str)]) -> TestApp {
    let mut b = TestApp::builder().env("GATEWAY__AUTH__BCRYPT_COST", "4");
    for (k, v) in env {
        b = b.env(k, v);
    }
    b.spawn().await
}

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
}

/// `GET path` with optional extra headers; the status and the `RateLimit` header.
async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> (u16, Option<String>) {
    let mut req = app.client.get(app.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), header(&res, "ratelimit"))
}

#[tokio::test]
async fn per_ip_limit_before_authentication_with_headers() {
    let app = app(&[("GATEWAY__RATE_LIMIT__IP__LIMIT", "3")]).await;
    for remaining in [2, 1, 0] {
        let res = app.get("/.well-known/jwks.json").await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            header(&res, "ratelimit-policy").as_deref(),
            Some(r#""ip";q=3;w=60"#)
        );
        let state = header(&res, "ratelimit").unwrap();
        assert!(state.starts_with(&format!(r#""ip";r={remaining};t="#)), "{state}");
    }
    let res = app.get("/.well-known/jwks.json").await;
    assert_eq!(res.status(), 429);
    let retry: u64 = header(&res, "retry-after").unwrap().parse().unwrap();
    // The next window, once 3 · (60 − e) ≤ 2 · 60: at most 60 + 20 s away.
    assert!((1..=80).contains(&retry), "{retry}");
    assert!(header(&res, "ratelimit").unwrap().starts_with(r#""ip";r=0;t="#));
    assert!(header(&res, "x-request-id").is_some());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(
        body["error"]["message"],
        format!("rate limit exceeded: at most 3 requests per 60 s (ip limit 'ip'); retry in {retry} s")
    );

    // Before authentication: a login is refused without looking at the credentials.
    let res = app
        .client
        .post(app.url("/auth/login"))
        .json(&json!({"email": "a@b.test", "password": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    // Probes and scrapes are never limited.
    for path in ["/health", "/health/live", "/metrics"] {
        let (status, state) = get(&app, path, &[]).await;
        assert_eq!((status, state), (200, None), "{path}");
    }
}

#[tokio::test]
async fn forwarded_headers_count_only_from_trusted_proxies() {
    // No trusted proxy: whatever X-Forwarded-For says, every request is 127.0.0.1's.
    let direct = app(&[("GATEWAY__RATE_LIMIT__IP__LIMIT", "2")]).await;
    let statuses = [
        get(
            &direct,
            "/.well-known/jwks.json",
            &[("x-forwarded-for", "198.51.100.1")],
        )
        .await
        .0,
        get(
            &direct,
            "/.well-known/jwks.json",
            &[("x-forwarded-for", "198.51.100.2")],
        )
        .await
        .0,
        get(
            &direct,
            "/.well-known/jwks.json",
            &[("forwarded", "for=198.51.100.3")],
        )
        .await
        .0,
    ];
    assert_eq!(statuses, [200, 200, 429], "spoofed headers are ignored");

    // Behind a trusted proxy (here: the test itself), the client it names counts.
    let proxied = app(&[
        ("GATEWAY__RATE_LIMIT__IP__LIMIT", "2"),
        ("GATEWAY__SERVER__TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let xff = |v: &'static str| [("x-forwarded-for", v)];
    for _ in 0..2 {
        assert_eq!(
            get(&proxied, "/.well-known/jwks.json", &xff("203.0.113.1"))
                .await
                .0,
            200
        );
    }
    assert_eq!(
        get(&proxied, "/.well-known/jwks.json", &xff("203.0.113.1"))
            .await
            .0,
        429
    );
    assert_eq!(
        get(&proxied, "/.well-known/jwks.json", &xff("203.0.113.2"))
            .await
            .0,
        200,
        "another client"
    );
    // A client forging the left of the chain does not escape: the rightmost untrusted hop
    // is the client.
    assert_eq!(
        get(&proxied, "/.well-known/jwks.json", &xff("6.6.6.6, 203.0.113.1"))
            .await
            .0,
        429
    );
    assert_eq!(
        get(
            &proxied,
            "/.well-known/jwks.json",
            &[("forwarded", r#"for=6.6.6.6, for="203.0.113.1:4711""#)]
        )
        .await
        .0,
        429,
        "Forwarded is read the same way"
    );

    // The audit trail sees the same client address.
    let acme = proxied.create_org("acme").await;
    proxied.user_token(acme, "admin@acme.test", Role::Admin).await;
    let res = proxied
        .client
        .post(proxied.url("/auth/login"))
        .header("x-forwarded-for", "203.0.113.9")
        .json(&json!({"email": "admin@acme.test", "password": "wrong-password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    proxied.flush_audit().await;
    let admin = proxied
        .client
        .post(proxied.url("/auth/login"))
        .header("x-forwarded-for", "203.0.113.10")
        .json(&json!({"email": "admin@acme.test", "password": "correct-horse-1"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = proxied
        .client
        .get(proxied.url("/admin/logs?kind=audit&action=auth.login_failed"))
        .header("x-forwarded-for", "203.0.113.11")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["items"][0]["ip"], "203.0.113.9", "{body:#}");
}

#[tokio::test]
async fn principal_and_organization_limits_after_authentication() {
    let app = app(&[("GATEWAY__RATE_LIMIT__PRINCIPAL__LIMIT", "3")]).await;
    let acme = app.create_org("acme").await;
    let a = app.user_token(acme, "a@acme.test", Role::Viewer).await;
    let b = app.user_token(acme, "b@acme.test", Role::Viewer).await;
    let call = |t: &str| {
        app.client
            .get(app.url("/gateway/servers"))
            .bearer_auth(t.to_owned())
            .send()
    };
    // The organization was created after the gateway loaded its rules: its first request
    // loads them (off the request path), so its plan's limit soon applies.
    let warm = app.user_token(acme, "warm@acme.test", Role::Viewer).await;
    let started = std::time::Instant::now();
    loop {
        let res = call(&warm).await.unwrap();
        if header(&res, "ratelimit-policy").is_some_and(|p| p.contains("plan-team")) {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the plan never applied"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let res = call(&a).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "ratelimit-policy").as_deref(),
        Some(r#""principal";q=3;w=60, "plan-team";q=12000;w=60"#),
        "every level checked, in order"
    );
    assert!(call(&a).await.unwrap().status().is_success());
    assert!(call(&a).await.unwrap().status().is_success());
    let res = call(&a).await.unwrap();
    assert_eq!(res.status(), 429);
    assert!(header(&res, "retry-after").is_some());
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("(principal limit 'principal')"),
        "{body}"
    );
    assert_eq!(
        call(&b).await.unwrap().status(),
        200,
        "a's burst does not limit b"
    );
}

async fn admin_setup(app: &TestApp, slug: &str) -> (OrgId, String) {
    let id = app.create_org(slug).await;
    let admin = app
        .user_token(id, &format!("admin@{slug}.test"), Role::Admin)
        .await;
    (id, admin)
}

#[tokio::test]
async fn rules_are_managed_through_the_admin_api_and_apply_live() {
    let app = app(&[]).await;
    let (acme, admin) = admin_setup(&app, "acme").await;
    let viewer = app.user_token(acme, "viewer@acme.test", Role::Viewer).await;
    let (_, other_admin) = admin_setup(&app, "other").await;
    let list_servers = || async { send(&app, Method::GET, "/gateway/servers", &viewer, None).await.0 };

    let (status, created) = send(
        &app,
        Method::POST,
        "/api/admin/rate-limits",
        &admin,
        Some(
            json!({"name": "list-servers", "scope": "endpoint", "match": "GET /gateway/servers", "limit": 2}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (
            &created["scope"],
            &created["match"],
            &created["limit"],
            &created["window_seconds"],
            &created["enabled"]
        ),
        (
            &json!("endpoint"),
            &json!("GET /gateway/servers"),
            &json!(2),
            &json!(60),
            &json!(true)
        )
    );
    let path = format!("/api/admin/rate-limits/{}", created["id"].as_str().unwrap());
    assert_eq!(
        [list_servers().await, list_servers().await, list_servers().await],
        [200, 200, 429]
    );

    // Raised: two more at once.
    let (status, updated) = send(&app, Method::PUT, &path, &admin, Some(json!({"limit": 4}))).await;
    assert_eq!((status, &updated["limit"]), (200, &json!(4)));
    assert_eq!(
        [list_servers().await, list_servers().await, list_servers().await],
        [200, 200, 429]
    );
    // Disabled, then deleted: no limit.
    send(&app, Method::PUT, &path, &admin, Some(json!({"enabled": false}))).await;
    assert_eq!(list_servers().await, 200);
    let (status, _) = send(&app, Method::DELETE, &path, &admin, None).await;
    assert_eq!(status, 204);
    assert_eq!(send(&app, Method::GET, &path, &admin, None).await.0, 404);
    for _ in 0..3 {
        assert_eq!(list_servers().await, 200);
    }

    // Validation reports every problem; names are unique; scopes are fixed.
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/admin/rate-limits",
        &admin,
        Some(json!({"name": "bad name", "scope": "ip", "match": "10.0.0.1/8", "limit": 0, "window_seconds": 0})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        body["error"]["message"],
        "name: must be 1-64 characters of A-Z a-z 0-9 - _ .; limit: must be between 1 and 1000000; \
         window_seconds: must be between 1 and 86400; match: an IP range is expected: host bits are set; \
         did you mean 10.0.0.0/8?"
    );
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/admin/rate-limits",
        &admin,
        Some(json!({"name": "total", "scope": "organization", "match": "other", "limit": 5})),
    )
    .await;
    assert_eq!(
        status, 422,
        "an organization's rule limits that organization only"
    );
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/admin/rate-limits",
        &admin,
        Some(json!({"name": "x", "scope": "galaxy", "limit": 5})),
    )
    .await;
    assert_eq!(status, 400, "not a scope");
    let rule = json!({"name": "tools", "scope": "method", "match": "tools/call", "limit": 100});
    let (_, tools) = send(
        &app,
        Method::POST,
        "/api/admin/rate-limits",
        &admin,
        Some(rule.clone()),
    )
    .await;
    assert_eq!(
        send(&app, Method::POST, "/api/admin/rate-limits", &admin, Some(rule))
            .await
            .0,
        409
    );
    let tools_path = format!("/api/admin/rate-limits/{}", tools["id"].as_str().unwrap());
    let (status, _) = send(
        &app,
        Method::PUT,
        &tools_path,
        &admin,
        Some(json!({"scope": "tool"})),
    )
    .await;
    assert_eq!(status, 422);

    // Organizations and roles.
    assert_eq!(
        send(&app, Method::GET, &tools_path, &other_admin, None).await.0,
        404
    );
    assert_eq!(
        send(
            &app,
            Method::PUT,
            &tools_path,
            &other_admin,
            Some(json!({"limit": 1}))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        send(&app, Method::DELETE, &tools_path, &other_admin, None)
            .await
            .0,
        404
    );
    let (status, theirs) = send(&app, Method::GET, "/api/admin/rate-limits", &other_admin, None).await;
    assert_eq!((status, theirs["items"].as_array().unwrap().len()), (200, 0));
    let (status, mine) = send(&app, Method::GET, "/api/admin/rate-limits", &viewer, None).await;
    assert_eq!(status, 200, "viewers read");
    assert_eq!(mine["items"][0]["name"], "tools");
    let declared: Vec<&str> = mine["declared"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        declared,
        ["plan-free", "plan-team"],
        "the configuration's defaults"
    );
    assert_eq!(
        send(&app, Method::PUT, &tools_path, &viewer, Some(json!({"limit": 1})))
            .await
            .0,
        403,
        "only administrators write"
    );

    // Audited.
    app.flush_audit().await;
    for (action, n) in [
        ("rate_limit.create", 2),
        ("rate_limit.update", 2),
        ("rate_limit.delete", 1),
    ] {
        let (_, logs) = send(
            &app,
            Method::GET,
            &format!("/admin/logs?kind=audit&action={action}"),
            &admin,
            None,
        )
        .await;
        assert_eq!(logs["items"].as_array().unwrap().len(), n, "{action}: {logs:#}");
    }
    let (_, logs) = send(
        &app,
        Method::GET,
        "/admin/logs?kind=audit&action=rate_limit.update",
        &admin,
        None,
    )
    .await;
    let last = &logs["items"][0];
    assert_eq!(last["target_type"], "rate_limit");
    assert_eq!(last["before_state"]["enabled"], true);
    assert_eq!(last["after_state"]["enabled"], false);

    // Usage per rule and minute, and the metrics.
    app.state
        .limits
        .flush_usage(app.stores.rate_limits.as_ref())
        .await
        .unwrap();
    let (status, usage) = send(&app, Method::GET, "/api/admin/rate-limits/usage", &admin, None).await;
    assert_eq!(status, 200);
    let row = usage["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule_key"] == "endpoint:list-servers")
        .unwrap_or_else(|| panic!("{usage:#}"));
    // The rule was deleted since: its usage stays, unlinked.
    assert_eq!(
        (&row["allowed"], &row["rejected"]),
        (&json!(4), &json!(2)),
        "{row}"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(
            r#"gateway_ratelimit_decisions_total{scope="endpoint",rule="list-servers",decision="limited"} 2"#
        ),
        "{metrics}"
    );
}

/// A `tools/call` of mcp-echo's `echo` tool.
fn echo(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hi"}}})
}

fn initialize(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "rate-limit-test", "version": "1"}}})
}

fn initialized() -> Value {
    json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
}

/// Two answers, then the limit's JSON-RPC error (ordered by request id: a refusal can overtake
/// the upstream's answers to earlier requests).
fn assert_limited(answers: &[Value], transport: &str) {
    assert_eq!(answers.len(), 3, "{transport}: {answers:#?}");
    let mut answers = answers.to_vec();
    answers.sort_by_key(|a| a["id"].as_u64());
    for a in &answers[..2] {
        assert_eq!(a["result"]["content"][0]["text"], "hi", "{transport}: {a}");
    }
    let error = &answers[2]["error"];
    assert_eq!(error["code"], -32004, "{transport}: {error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "rate limit exceeded: at most 2 calls of tool 'echo' per 60 s (rule 'echo-calls'); retry in "
        ),
        "{transport}: {message}"
    );
    let data = &error["data"];
    assert!(
        data["retry_after_ms"].as_u64().unwrap() > 0,
        "{transport}: {data}"
    );
    assert_eq!(
        (
            &data["limit"],
            &data["window_seconds"],
            &data["scope"],
            &data["rule"]
        ),
        (&json!(2), &json!(60), &json!("tool"), &json!("echo-calls"))
    );
}

#[tokio::test]
async fn a_tool_limit_answers_every_mcp_transport_with_a_json_rpc_error() {
    let app = app(&[]).await;
    let acme = app.create_org("acme").await;
    let admin = app.user_token(acme, "admin@acme.test", Role::Admin).await;
    let mut users = Vec::new();
    for name in ["rpc", "http", "sse", "ws", "namespace"] {
        users.push(
            app.user_token(acme, &format!("{name}@acme.test"), Role::User)
                .await,
        );
    }
    let [rpc, http, sse, ws, federated] = <[String; 5]>::try_from(users).unwrap();
    let tools = app
        .stores
        .namespaces
        .create(
            acme,
            NewNamespace {
                name: "Tools".into(),
                slug: "tools".into(),
                description: None,
                source: gateway_types::model::RecordSource::Api,
            },
        )
        .await
        .unwrap();
    app.stores
        .servers
        .create(
            acme,
            NewMcpServer {
                namespace_id: Some(tools.id),
                name: "echo".into(),
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
                metadata: json!({}),
                source: RecordSource::Api,
            },
        )
        .await
        .unwrap();
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/admin/rate-limits",
        &admin,
        Some(json!({"name": "echo-calls", "scope": "tool", "match": "echo", "limit": 2})),
    )
    .await;
    assert_eq!(status, 201);

    // Plain JSON-RPC: a batch of three calls.
    let res = app
        .client
        .post(app.url("/servers/echo/rpc"))
        .bearer_auth(&rpc)
        .json(&json!([echo(1), echo(2), echo(3)]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_limited(&res.json::<Vec<Value>>().await.unwrap(), "rpc");

    // Streamable HTTP.
    let post = |body: Value, session: Option<String>| {
        let mut req = app
            .client
            .post(app.url("/servers/echo/mcp"))
            .bearer_auth(&http)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        req.send()
    };
    let res = post(initialize(0), None).await.unwrap();
    assert_eq!(res.status(), 200);
    let session = header(&res, "mcp-session-id").unwrap();
    assert_eq!(
        post(initialized(), Some(session.clone())).await.unwrap().status(),
        202
    );
    let mut answers = Vec::new();
    for id in 1..=3 {
        let res = post(echo(id), Some(session.clone())).await.unwrap();
        assert_eq!(res.status(), 200);
        answers.push(res.json::<Value>().await.unwrap());
    }
    assert_limited(&answers, "streamable http");

    // Legacy HTTP+SSE: answers arrive on the stream.
    let mut events = Events::open(&app, &sse, "/servers/echo/sse").await;
    let endpoint = events.next_named("endpoint").await;
    let endpoint = endpoint.as_str().unwrap().to_owned();
    let mut answers = Vec::new();
    for (i, message) in [initialize(0), initialized(), echo(1), echo(2), echo(3)]
        .into_iter()
        .enumerate()
    {
        let res = app
            .client
            .post(app.url(&endpoint))
            .bearer_auth(&sse)
            .json(&message)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        if i != 1 {
            answers.push(events.next_named("message").await);
        }
    }
    assert_limited(&answers[1..], "sse");

    // WebSocket.
    let mut socket = websocket(&app, &ws, "echo").await;
    let mut answers = Vec::new();
    for (i, message) in [initialize(0), initialized(), echo(1), echo(2), echo(3)]
        .into_iter()
        .enumerate()
    {
        use futures_util::SinkExt;
        socket
            .send(tokio_tungstenite::tungstenite::Message::text(message.to_string()))
            .await
            .unwrap();
        if i != 1 {
            answers.push(ws_next(&mut socket).await);
        }
    }
    assert_limited(&answers[1..], "websocket");

    // A namespace's federation: the call is routed to the member with the tool's own name,
    // through the member's guard.
    let mut answers = Vec::new();
    for id in 1..=3 {
        let mut call = echo(id);
        call["params"]["name"] = json!("echo__echo");
        let res = app
            .client
            .post(app.url("/namespaces/tools/rpc"))
            .bearer_auth(&federated)
            .json(&call)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        answers.push(res.json::<Value>().await.unwrap());
    }
    assert_limited(&answers, "namespace federation");
}

/// Two `gateway-api` processes on one Redis: one combined per-IP limit.
#[tokio::test]
async fn two_gateways_sharing_redis_enforce_one_limit() {
    let Ok(redis) = std::env::var("REDIS_URL") else {
        eprintln!("REDIS_URL is not set: the shared-Redis test needs a Redis server (CI sets it)");
        return;
    };
    let prefix = format!("mcpgw-e2e-{}:", uuid_like());
    let env = [
        ("GATEWAY__REDIS__URL", redis.as_str()),
        ("GATEWAY__REDIS__KEY_PREFIX", prefix.as_str()),
        ("GATEWAY__RATE_LIMIT__IP__LIMIT", "5"),
    ];
    let a = Running::api(&env).await;
    let b = Running::api(&env).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let hit = |r: &Running| {
        let url = format!("http://{}/.well-known/jwks.json", r.address.unwrap());
        let client = client.clone();
        async move {
            let res = client.get(url).send().await.unwrap();
            (res.status().as_u16(), header(&res, "ratelimit"))
        }
    };
    let mut seen = Vec::new();
    for r in [&a, &b, &a, &b, &a, &b, &a] {
        seen.push(hit(r).await);
    }
    let statuses: Vec<u16> = seen.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429], "{seen:?}");
    let remaining: Vec<String> = seen[..5]
        .iter()
        .map(|(_, h)| h.clone().unwrap().split(';').nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(
        remaining,
        ["r=4", "r=3", "r=2", "r=1", "r=0"],
        "one count across processes"
    );
    let health: Value = client
        .get(format!("http://{}/health", a.address.unwrap()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["components"]["redis"]["status"], "ok", "{health}");
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{nanos:x}-{}", std::process::id())
}
