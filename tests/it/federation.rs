//! Namespace federation: every server of a namespace as one MCP server, driven by the
//! official Python SDK (an independent client) over Streamable HTTP, legacy SSE and
//! WebSocket, against two real `server-everything` instances (stdio and Streamable HTTP).

use std::collections::HashSet;
use std::time::Duration;

use gateway_types::ids::{NamespaceId, OrgId};
use gateway_types::model::{NewMcpServer, NewNamespace, ServerProtocol};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::mcp::{
    EverythingHttp, Raw, Setup, assert_all_passed, drive_with, everything_js, node, server, setup,
};

/// A server name long enough that its items' federated names must be shortened.
const LONG: &str = "a-server-with-a-name-long-enough-to-need-shortening";

pub(crate) async fn namespace(s: &Setup, slug: &str) -> NamespaceId {
    s.app
        .stores
        .namespaces
        .create(
            s.org,
            NewNamespace {
                name: slug.into(),
                slug: slug.into(),
                description: None,
                source: gateway_types::model::RecordSource::Api,
            },
        )
        .await
        .unwrap()
        .id
}

pub(crate) async fn register(s: &Setup, org: OrgId, ns: NamespaceId, mut new: NewMcpServer) {
    new.namespace_id = Some(ns);
    s.app.stores.servers.create(org, new).await.unwrap();
}

/// `alpha` (stdio) and [`LONG`] (Streamable HTTP) in namespace `tools`.
async fn two_servers(s: &Setup) -> (NamespaceId, EverythingHttp) {
    let ns = namespace(s, "tools").await;
    register(
        s,
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
    let http = EverythingHttp::start("streamableHttp").await;
    register(
        s,
        s.org,
        ns,
        server(
            LONG,
            ServerProtocol::Http,
            Some(format!("http://127.0.0.1:{}/mcp", http.port)),
            None,
            vec![],
            "per_client",
        ),
    )
    .await;
    (ns, http)
}

fn names(list: &Value, field: &str) -> Vec<String> {
    list["result"][field]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_namespace_is_one_mcp_server_for_an_independent_client_on_every_transport() {
    let s = setup().await;
    let (_ns, _http) = two_servers(&s).await;
    let scenarios = [
        "ping",
        "tools-list",
        "echo",
        "resources",
        "prompts",
        "completion",
        "logging",
        "progress",
        "sampling",
        "elicitation",
        "cancellation",
        "large-payload",
        "concurrent-calls",
    ];
    let prefix = [
        "--tool-prefix",
        "alpha__",
        "--prompt-prefix",
        "alpha__",
        "--resource-prefix",
        "gw://alpha/",
    ];
    let report = drive_with(
        "streamable-http",
        &s.app.url("/namespaces/tools/mcp"),
        &s.token,
        &scenarios,
        &prefix,
    )
    .await;
    assert_all_passed(&report);
    // The same through the header-addressed aggregate endpoints.
    let report = drive_with(
        "sse",
        &s.app.url("/namespaces/tools/sse"),
        &s.token,
        &["echo", "progress"],
        &prefix,
    )
    .await;
    assert_all_passed(&report);
    let ws = s.app.url("/namespaces/tools/ws").replacen("http://", "ws://", 1);
    let report = drive_with("ws", &ws, &s.token, &["echo", "sampling"], &prefix).await;
    assert_all_passed(&report);
}

#[tokio::test]
async fn names_are_unique_short_and_routed_and_resources_round_trip() {
    let s = setup().await;
    let (_ns, _http) = two_servers(&s).await;
    let mut raw = Raw {
        app: &s.app,
        token: &s.token,
        path: "/namespaces/tools/mcp".into(),
        session: None,
    };
    let init = raw.init().await;
    assert_eq!(init["result"]["serverInfo"]["name"], "mcp-gateway-federation");
    assert!(init["result"]["capabilities"]["tools"].is_object(), "{init}");

    let tools = raw.call(1, "tools/list", json!({})).await;
    let tools = names(&tools, "tools");
    let unique: HashSet<&String> = tools.iter().collect();
    assert_eq!(unique.len(), tools.len(), "duplicate names: {tools:?}");
    assert!(
        tools.iter().all(|n| n.len() <= 64),
        "a name over 64 characters: {tools:?}"
    );
    assert!(tools.contains(&"alpha__echo".to_owned()), "{tools:?}");
    let long_echo = tools
        .iter()
        .find(|n| n.starts_with(&LONG[..20]) && n.len() == 64)
        .cloned();
    assert!(
        long_echo.is_some(),
        "the long server's names are shortened to 64: {tools:?}"
    );
    let again = raw.call(2, "tools/list", json!({})).await;
    assert_eq!(names(&again, "tools"), tools, "names and order are deterministic");

    // Calls reach the right server: both echo, each through its own name.
    let long_echo = gateway_transport::federation::Naming::default().exposed(LONG, "echo");
    assert!(tools.contains(&long_echo), "{tools:?}");
    for (i, exposed) in ["alpha__echo".to_owned(), long_echo].into_iter().enumerate() {
        let id = i64::try_from(10 + i).unwrap();
        let answer = raw
            .call(
                id,
                "tools/call",
                json!({"name": exposed, "arguments": {"message": format!("hi {i}")}}),
            )
            .await;
        let text = answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default();
        assert!(text.contains(&format!("hi {i}")), "{answer}");
    }
    let unknown = raw
        .call(20, "tools/call", json!({"name": "nobody__echo", "arguments": {}}))
        .await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");

    // Resource URIs name their server and are restored on the way back.
    let listed = raw.call(21, "resources/list", json!({})).await;
    let uri = listed["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["uri"].as_str())
        .find(|u| u.starts_with("gw://alpha/"))
        .map(str::to_owned);
    assert!(uri.is_some(), "{listed}");
    let uri = uri.unwrap();
    let read = raw.call(22, "resources/read", json!({"uri": uri})).await;
    assert_eq!(read["result"]["contents"][0]["uri"], uri.as_str(), "{read}");
}

#[tokio::test]
async fn one_member_failing_leaves_the_others_working_and_it_comes_back() {
    let s = setup().await;
    let (_ns, _http) = two_servers(&s).await;
    let mut raw = Raw {
        app: &s.app,
        token: &s.token,
        path: "/namespaces/tools/mcp".into(),
        session: None,
    };
    raw.init().await;
    let before = names(&raw.call(1, "tools/list", json!({})).await, "tools");
    assert!(before.iter().any(|n| n.starts_with("alpha__")));
    let pids = s.app.state.hub.processes().pids();
    assert_eq!(pids.len(), 1, "alpha is the one process");
    Command::new("kill")
        .args(["-9", &pids[0].to_string()])
        .status()
        .await
        .unwrap();

    // The other member keeps answering at once.
    let long_echo = gateway_transport::federation::Naming::default().exposed(LONG, "echo");
    let answer = raw
        .call(
            2,
            "tools/call",
            json!({"name": long_echo, "arguments": {"message": "still here"}}),
        )
        .await;
    assert!(
        answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("still here"),
        "{answer}"
    );
    // alpha restarts after its backoff: its tools are listed again and its calls work.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut back = false;
    let mut id = 3;
    while !back && std::time::Instant::now() < deadline {
        id += 1;
        let answer = raw
            .call(
                id,
                "tools/call",
                json!({"name": "alpha__echo", "arguments": {"message": "back"}}),
            )
            .await;
        back = answer["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("back"));
        if !back {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert!(back, "alpha did not come back");
    let after = names(&raw.call(100, "tools/list", json!({})).await, "tools");
    assert_eq!(after, before, "the same names after the restart");
}

#[tokio::test]
async fn namespaces_are_chosen_by_path_header_or_key_scope_and_other_tenants_are_not_found() {
    let s = setup().await;
    let (ns, _http) = two_servers(&s).await;
    let post = |path: &str, header: Option<&str>, token: &str| {
        let mut req = s
            .app
            .client
            .post(s.app.url(path))
            .bearer_auth(token.to_owned())
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}));
        if let Some(h) = header {
            req = req.header("x-mcp-namespace", h);
        }
        req.send()
    };
    assert_eq!(post("/mcp", Some("tools"), &s.token).await.unwrap().status(), 200);
    assert_eq!(
        post("/mcp", None, &s.token).await.unwrap().status(),
        400,
        "no namespace chosen"
    );
    assert_eq!(
        post("/namespaces/nope/mcp", None, &s.token)
            .await
            .unwrap()
            .status(),
        404
    );

    // Another tenant's namespace of the same slug is not found.
    let other = s.app.create_org("globex").await;
    let token = s
        .app
        .user_token(other, "eve@globex.test", gateway_types::model::Role::User)
        .await;
    assert_eq!(
        post("/namespaces/tools/mcp", None, &token)
            .await
            .unwrap()
            .status(),
        404
    );

    // An API key scoped to the namespace needs no path or header; scoped elsewhere, 404.
    let res = s
        .app
        .client
        .post(s.app.url("/auth/api-keys"))
        .bearer_auth(&s.token)
        .json(&json!({"name": "scoped", "namespace_id": ns.to_string()}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let key: Value = res.json().await.unwrap();
    let key = key["key"].as_str().unwrap().to_owned();
    assert_eq!(
        post("/mcp", None, &key).await.unwrap().status(),
        200,
        "the key's scope chooses"
    );
    namespace(&s, "elsewhere").await;
    assert_eq!(
        post("/namespaces/elsewhere/mcp", None, &key)
            .await
            .unwrap()
            .status(),
        404,
        "a scoped key reaches no other namespace"
    );
}

#[tokio::test]
async fn plain_json_rpc_reaches_a_namespace_with_batches_and_introspection() {
    let s = setup().await;
    let (_ns, _http) = two_servers(&s).await;
    let client = &s.app.client;
    let res = client
        .post(s.app.url("/namespaces/tools/rpc"))
        .bearer_auth(&s.token)
        .json(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"alpha__echo","arguments":{"message":"plain"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    assert!(
        answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("plain"),
        "{answer}"
    );

    // /rpc/batch takes arrays only and answers arrays.
    let res = client
        .post(s.app.url("/rpc/batch"))
        .bearer_auth(&s.token)
        .header("x-mcp-namespace", "tools")
        .json(&json!({"jsonrpc":"2.0","id":1,"method":"ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = client
        .post(s.app.url("/rpc/batch"))
        .bearer_auth(&s.token)
        .header("x-mcp-namespace", "tools")
        .json(&json!([{"jsonrpc":"2.0","id":"p","method":"ping"},
                      {"jsonrpc":"2.0","id":"e","method":"tools/call","params":{"name":"alpha__echo","arguments":{"message":"b"}}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let answers: Value = res.json().await.unwrap();
    assert_eq!(answers.as_array().unwrap().len(), 2, "{answers}");

    // Introspection lists what the caller may use, on a namespace and on one server.
    let res = client
        .get(s.app.url("/rpc/introspection"))
        .bearer_auth(&s.token)
        .header("x-mcp-namespace", "tools")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let intro: Value = res.json().await.unwrap();
    let tools: Vec<&str> = intro["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(tools.contains(&"alpha__echo"), "{intro}");
    assert!(
        intro["tools"][0]["inputSchema"].is_object(),
        "schemas are included"
    );
    assert!(
        intro["methods"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "tools/call")
    );
    let res = client
        .get(s.app.url("/servers/alpha/rpc/introspection"))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let intro: Value = res.json().await.unwrap();
    assert!(
        intro["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "echo"),
        "{intro}"
    );
}
