//! Streamable HTTP.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::Echo;

const ACCEPT: &str = "application/json, text/event-stream";

struct Client {
    http: reqwest::Client,
    url: String,
    session: Option<String>,
}

impl Client {
    fn new(echo: &Echo) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: echo.url.clone(),
            session: None,
        }
    }

    fn post(&self, body: &Value) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .post(&self.url)
            .header("accept", ACCEPT)
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(s) = &self.session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-11-25");
        }
        req
    }

    async fn rpc(&self, body: Value) -> (StatusCode, Value) {
        let res = self.post(&body).send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn initialize(&mut self) {
        let res = self
            .post(&json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":"2025-11-25","capabilities":{},
                "clientInfo":{"name":"it","version":"0"}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let session = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        assert!(session.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["result"]["protocolVersion"], "2025-11-25");
        assert_eq!(v["result"]["capabilities"]["tools"], json!({}));
        self.session = Some(session);
    }
}

fn call(id: u64, text: &str) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
           "params":{"name":"echo","arguments":{"text":text}}})
}

#[tokio::test]
async fn session_lifecycle() {
    let echo = Echo::start(&[]).await;
    let mut c = Client::new(&echo);

    // Without a session, only initialize is accepted.
    let (status, _) = c.rpc(call(1, "x")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    c.initialize().await;
    let res = c
        .post(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert!(res.text().await.unwrap().is_empty());

    let (status, v) = c
        .rpc(json!({"jsonrpc":"2.0","id":"l","method":"tools/list"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["id"], "l");
    assert_eq!(v["result"]["tools"][0]["name"], "echo");
    assert_eq!(
        v["result"]["tools"][0]["inputSchema"]["properties"]["text"]["type"],
        "string"
    );

    let (status, v) = c.rpc(call(2, "héllo \"world\"")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v,
        json!({"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"héllo \"world\""}]}})
    );

    let (_, v) = c.rpc(json!({"jsonrpc":"2.0","id":3,"method":"ping"})).await;
    assert_eq!(v["result"], json!({}));

    let (status, v) = c
        .rpc(json!({"jsonrpc":"2.0","id":4,"method":"resources/list"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["error"]["code"], -32601);

    // DELETE ends the session; afterwards it is unknown.
    let session = c.session.clone().unwrap();
    let del = || c.http.delete(&c.url).header("mcp-session-id", &session).send();
    assert_eq!(del().await.unwrap().status(), StatusCode::OK);
    let (status, _) = c.rpc(call(5, "x")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(del().await.unwrap().status(), StatusCode::NOT_FOUND);

    c.session = Some("no-such-session".into());
    let (status, v) = c.rpc(call(6, "x")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["id"], 6);
}

#[tokio::test]
async fn transport_rules() {
    let echo = Echo::start(&[]).await;
    let http = reqwest::Client::new();
    let post = || {
        http.post(&echo.url)
            .header("content-type", "application/json")
            .body(r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#)
    };
    let status = |r: reqwest::Response| r.status();
    assert_eq!(
        status(post().header("accept", "application/json").send().await.unwrap()),
        StatusCode::NOT_ACCEPTABLE
    );
    assert_eq!(
        status(
            post()
                .header("accept", ACCEPT)
                .header("origin", "http://evil.example")
                .send()
                .await
                .unwrap()
        ),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(http.get(&echo.url).send().await.unwrap()),
        StatusCode::METHOD_NOT_ALLOWED
    );
    let other = echo.url.replace("/mcp", "/other");
    assert_eq!(
        status(http.post(other).send().await.unwrap()),
        StatusCode::NOT_FOUND
    );
    let res = http
        .post(&echo.url)
        .header("accept", ACCEPT)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32700);
}

/// A 2026-07-28 request: `_meta` in the body, mirrored headers.
fn modern(http: &reqwest::Client, url: &str, method: &str, mut params: Value) -> reqwest::RequestBuilder {
    params["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2026-07-28");
    params["_meta"]["io.modelcontextprotocol/clientCapabilities"] = json!({});
    let mut req = http
        .post(url)
        .header("accept", ACCEPT)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(name) = params["name"].as_str() {
        req = req.header("mcp-name", name);
    }
    req.body(json!({"jsonrpc":"2.0","id":1,"method":method,"params":params}).to_string())
}

/// Splits an SSE body into the JSON of each event's data.
fn sse_events(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            (!data.is_empty()).then(|| serde_json::from_str(&data.join("\n")).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn stateless_mode_and_progress() {
    let echo = Echo::start(&["--stateless", "--sse-progress", "2"]).await;
    let http = reqwest::Client::new();

    let res = modern(&http, &echo.url, "server/discover", json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["result"]["resultType"], "complete");
    assert_eq!(v["result"]["supportedVersions"][0], "2026-07-28");

    let res = modern(
        &http,
        &echo.url,
        "tools/call",
        json!({"name":"echo","arguments":{"text":"streamed"},"_meta":{"progressToken":"p"}}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let events = sse_events(&res.text().await.unwrap());
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["method"], "notifications/progress");
    assert_eq!(events[1]["params"]["progress"], 2);
    assert_eq!(events[1]["params"]["progressToken"], "p");
    assert_eq!(events[2]["result"]["content"][0]["text"], "streamed");
    assert_eq!(events[2]["result"]["resultType"], "complete");

    // A header that disagrees with the body is refused.
    let res = http
        .post(&echo.url)
        .header("accept", ACCEPT)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "not-echo")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32020);

    let res = http
        .post(&echo.url)
        .header("accept", ACCEPT)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "1900-01-01")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"1900-01-01"}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32022);
    assert_eq!(v["error"]["data"]["requested"], "1900-01-01");

    let res = modern(&http, &echo.url, "nothing/here", json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Sessions still work next to the stateless mode.
    let mut c = Client::new(&echo);
    c.initialize().await;
    // With --sse-progress, a call without a progress token is a stream holding only the result.
    let res = c.post(&call(1, "legacy")).send().await.unwrap();
    let events = sse_events(&res.text().await.unwrap());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["result"]["content"][0]["text"], "legacy");
}
