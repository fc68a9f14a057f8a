//! The WebSocket connector against a small MCP server built on tokio-tungstenite's server
//! side: subprotocol and credential checks, messages both ways, batches, closing from either
//! side, the size limit and the keep-alive.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gateway_transport::error::TransportError;
use gateway_transport::link::{Connector, Link, LinkEvent, UpstreamSpec};
use gateway_transport::ws::WsConnector;
use gateway_types::jsonrpc::Message;
use gateway_types::model::ServerProtocol;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const TOKEN: &str = "Bearer s3cret-token";
const WAIT: Duration = Duration::from_secs(5);

/// What the server saw.
#[derive(Debug)]
enum Seen {
    Handshake(HeaderMap),
    Ping,
    Close(Option<u16>),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// Answers MCP requests.
    Mcp,
    /// Completes the handshake, then never reads (so never answers a ping).
    Silent,
    /// Accepts the upgrade without selecting a subprotocol.
    NoSubprotocol,
}

struct TestServer {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
}

impl TestServer {
    async fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, seen) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve(tcp, mode, tx.clone()));
            }
        });
        Self { addr, seen }
    }

    fn url(&self) -> String {
        format!("ws://{}/mcp", self.addr)
    }

    async fn next(&mut self) -> Seen {
        tokio::time::timeout(WAIT, self.seen.recv())
            .await
            .unwrap()
            .unwrap()
    }

    /// The next event that is not a ping.
    async fn next_not_ping(&mut self) -> Seen {
        loop {
            match self.next().await {
                Seen::Ping => continue,
                other => return other,
            }
        }
    }
}

fn refuse(status: StatusCode) -> ErrorResponse {
    let mut res = ErrorResponse::new(None);
    *res.status_mut() = status;
    res
}

#[expect(
    clippy::result_large_err,
    reason = "the handshake callback's signature is tungstenite's"
)]
async fn serve(tcp: TcpStream, mode: Mode, seen: mpsc::UnboundedSender<Seen>) {
    let handshake = seen.clone();
    let callback = move |req: &Request, mut res: Response| -> Result<Response, ErrorResponse> {
        let offers_mcp = req
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == "mcp");
        if !offers_mcp {
            return Err(refuse(StatusCode::BAD_REQUEST));
        }
        if req.headers().get("authorization").and_then(|v| v.to_str().ok()) != Some(TOKEN) {
            return Err(refuse(StatusCode::UNAUTHORIZED));
        }
        let _ = handshake.send(Seen::Handshake(req.headers().clone()));
        if mode != Mode::NoSubprotocol {
            res.headers_mut()
                .insert("sec-websocket-protocol", HeaderValue::from_static("mcp"));
        }
        Ok(res)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        return;
    };
    if mode == Mode::Silent {
        tokio::time::sleep(Duration::from_secs(30)).await;
        return;
    }
    while let Some(Ok(frame)) = ws.next().await {
        match frame {
            Frame::Text(text) => {
                let request: Value = serde_json::from_str(text.as_str()).unwrap();
                for reply in answer(&request) {
                    let sent = match reply {
                        Reply::Json(v) => ws.send(Frame::text(v.to_string())).await,
                        Reply::Raw(s) => ws.send(Frame::text(s)).await,
                        Reply::Close => {
                            let frame = CloseFrame {
                                code: CloseCode::Away,
                                reason: "bye".into(),
                            };
                            ws.close(Some(frame)).await
                        }
                    };
                    if sent.is_err() {
                        return;
                    }
                }
            }
            Frame::Ping(_) => {
                let _ = seen.send(Seen::Ping);
            }
            Frame::Close(frame) => {
                let _ = seen.send(Seen::Close(frame.map(|f| u16::from(f.code))));
            }
            _ => {}
        }
    }
}

enum Reply {
    Json(Value),
    Raw(String),
    Close,
}

/// The server's answers to one message.
fn answer(request: &Value) -> Vec<Reply> {
    let id = request["id"].clone();
    let ok = |result: Value| json!({"jsonrpc": "2.0", "id": id, "result": result});
    match request["method"].as_str().unwrap_or_default() {
        "initialize" => vec![Reply::Json(ok(json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "ws-test", "version": "1"}
        })))],
        "tools/call" => {
            let text = format!(
                "Echo: {}",
                request["params"]["arguments"]["message"]
                    .as_str()
                    .unwrap_or_default()
            );
            vec![Reply::Json(ok(
                json!({"content": [{"type": "text", "text": text}]}),
            ))]
        }
        "test/batch" => vec![Reply::Json(json!([
            {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "batched"}},
            ok(json!({"batched": true}))
        ]))],
        "test/garbage" => vec![
            Reply::Raw("this is not JSON-RPC".into()),
            Reply::Json(ok(json!({}))),
        ],
        "test/huge" => {
            let bytes = usize::try_from(request["params"]["bytes"].as_u64().unwrap()).unwrap();
            vec![Reply::Json(ok(json!({"padding": "x".repeat(bytes)})))]
        }
        "test/close" => vec![Reply::Close],
        _ => vec![],
    }
}

fn spec(url: String) -> UpstreamSpec {
    UpstreamSpec {
        server_id: "s1".into(),
        name: "ws-test".into(),
        org_id: "o1".into(),
        protocol: ServerProtocol::Ws,
        url: Some(url),
        command: None,
        args: vec![],
        env: vec![],
        working_dir: None,
        headers: vec![
            ("Authorization".into(), TOKEN.into()),
            ("X-Tenant".into(), "acme".into()),
        ],
        timeout: Duration::from_secs(10),
        max_retries: 0,
        max_message_bytes: 64 * 1024,
        legacy_only: false,
    }
}

fn request(id: i64, method: &str, params: Value) -> Message {
    serde_json::from_value(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).unwrap()
}

async fn next_event(link: &mut Link) -> LinkEvent {
    tokio::time::timeout(WAIT, link.rx.recv()).await.unwrap().unwrap()
}

/// The next event, which must be a message unrelated to any request.
async fn next_message(link: &mut Link) -> Value {
    let event = next_event(link).await;
    assert!(
        matches!(event, LinkEvent::Message { related: None, .. }),
        "expected a message, got {event:?}"
    );
    match event {
        LinkEvent::Message { message, .. } => serde_json::to_value(message).unwrap(),
        LinkEvent::Closed { .. } | LinkEvent::Exited { .. } => Value::Null,
    }
}

/// The next event, which must be `Closed`; returns its reason.
async fn next_closed(link: &mut Link) -> String {
    let event = next_event(link).await;
    assert!(
        matches!(event, LinkEvent::Closed { .. }),
        "expected Closed, got {event:?}"
    );
    match event {
        LinkEvent::Closed { reason } => reason,
        LinkEvent::Message { .. } | LinkEvent::Exited { .. } => String::new(),
    }
}

async fn connect(server: &TestServer) -> Link {
    WsConnector::new().connect(&spec(server.url())).await.unwrap()
}

#[tokio::test]
async fn messages_flow_both_ways_with_the_subprotocol_and_credentials() {
    let mut server = TestServer::start(Mode::Mcp).await;
    let mut link = connect(&server).await;

    let headers = match server.next().await {
        Seen::Handshake(headers) => headers,
        other => {
            assert!(
                matches!(other, Seen::Handshake(_)),
                "the handshake comes first: {other:?}"
            );
            HeaderMap::new()
        }
    };
    assert_eq!(headers["sec-websocket-protocol"], "mcp");
    assert_eq!(headers["authorization"], TOKEN);
    assert_eq!(headers["x-tenant"], "acme");

    link.tx
        .send(request(
            1,
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
        ))
        .await
        .unwrap();
    let init = next_message(&mut link).await;
    assert_eq!(init["id"], 1);
    assert_eq!(init["result"]["serverInfo"]["name"], "ws-test");

    link.tx
        .send(request(
            2,
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "héllo"}}),
        ))
        .await
        .unwrap();
    let echo = next_message(&mut link).await;
    assert_eq!(echo["id"], 2);
    assert_eq!(echo["result"]["content"][0]["text"], "Echo: héllo");
}

#[tokio::test]
async fn a_batch_frame_delivers_each_message_and_garbage_is_ignored() {
    let server = TestServer::start(Mode::Mcp).await;
    let mut link = connect(&server).await;

    link.tx.send(request(7, "test/batch", json!({}))).await.unwrap();
    let first = next_message(&mut link).await;
    assert_eq!(first["method"], "notifications/message");
    assert_eq!(first["params"]["data"], "batched");
    let second = next_message(&mut link).await;
    assert_eq!(second["id"], 7);
    assert_eq!(second["result"]["batched"], true);

    link.tx.send(request(8, "test/garbage", json!({}))).await.unwrap();
    let after = next_message(&mut link).await;
    assert_eq!(
        after["id"], 8,
        "the frame that is not JSON-RPC is skipped, the link lives on"
    );
}

#[tokio::test]
async fn the_server_closing_ends_the_link() {
    let server = TestServer::start(Mode::Mcp).await;
    let mut link = connect(&server).await;
    link.tx.send(request(1, "test/close", json!({}))).await.unwrap();
    let reason = next_closed(&mut link).await;
    assert!(reason.contains("1001") && reason.contains("bye"), "{reason}");
    assert!(link.rx.recv().await.is_none(), "nothing follows Closed");
}

#[tokio::test]
async fn dropping_the_link_closes_the_socket_normally() {
    let mut server = TestServer::start(Mode::Mcp).await;
    let Link { tx, mut rx, .. } = connect(&server).await;
    assert!(matches!(server.next().await, Seen::Handshake(_)));
    drop(tx);
    let closed = server.next_not_ping().await;
    assert!(matches!(closed, Seen::Close(Some(1000))), "{closed:?}");
    let event = tokio::time::timeout(WAIT, rx.recv()).await.unwrap();
    assert!(
        matches!(&event, Some(LinkEvent::Closed { reason }) if reason == "closed by the gateway"),
        "{event:?}"
    );
}

#[tokio::test]
async fn a_frame_over_the_size_limit_is_refused() {
    let mut server = TestServer::start(Mode::Mcp).await;
    let mut link = connect(&server).await;
    assert!(matches!(server.next().await, Seen::Handshake(_)));

    // Under the limit: delivered.
    link.tx
        .send(request(1, "test/huge", json!({"bytes": 1000})))
        .await
        .unwrap();
    assert_eq!(next_message(&mut link).await["id"], 1);
    // Over it (64 KiB): the link ends and the server is told 1009 (message too big).
    link.tx
        .send(request(2, "test/huge", json!({"bytes": 100_000})))
        .await
        .unwrap();
    let reason = next_closed(&mut link).await;
    assert!(reason.contains("size limit"), "{reason}");
    let closed = server.next_not_ping().await;
    assert!(matches!(closed, Seen::Close(Some(1009))), "{closed:?}");
}

#[tokio::test]
async fn pings_keep_a_quiet_connection_alive() {
    let mut server = TestServer::start(Mode::Mcp).await;
    let connector = WsConnector::new().with_keepalive(Duration::from_millis(100), Duration::from_millis(400));
    let mut link = connector.connect(&spec(server.url())).await.unwrap();
    assert!(matches!(server.next().await, Seen::Handshake(_)));
    // Six pings = 600 ms without a message, past the 400 ms idle timeout: the pongs count.
    for _ in 0..6 {
        assert!(matches!(server.next().await, Seen::Ping));
    }
    link.tx
        .send(request(
            1,
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "still here"}}),
        ))
        .await
        .unwrap();
    assert_eq!(
        next_message(&mut link).await["result"]["content"][0]["text"],
        "Echo: still here"
    );
}

#[tokio::test]
async fn a_silent_connection_is_declared_dead() {
    let server = TestServer::start(Mode::Silent).await;
    let connector = WsConnector::new().with_keepalive(Duration::from_millis(100), Duration::from_millis(400));
    let mut link = connector.connect(&spec(server.url())).await.unwrap();
    let reason = next_closed(&mut link).await;
    assert!(reason.contains("no frame"), "{reason}");
}

#[tokio::test]
async fn handshake_failures_are_errors() {
    let server = TestServer::start(Mode::Mcp).await;
    // A wrong credential: the server's 401 is reported as a status.
    let mut bad = spec(server.url());
    bad.headers = vec![("Authorization".into(), "Bearer wrong".into())];
    let err = WsConnector::new().connect(&bad).await.unwrap_err();
    assert!(matches!(err, TransportError::Status { status: 401 }), "{err:?}");

    // A server that does not select `mcp` is refused.
    let plain = TestServer::start(Mode::NoSubprotocol).await;
    let err = WsConnector::new().connect(&spec(plain.url())).await.unwrap_err();
    assert!(matches!(err, TransportError::WebSocket(_)), "{err:?}");

    // TLS to a plain server fails in the TLS handshake (rustls on ring, system roots).
    let tls = spec(server.url().replacen("ws://", "wss://", 1));
    let err = WsConnector::new().connect(&tls).await.unwrap_err();
    assert!(matches!(err, TransportError::WebSocket(_)), "{err:?}");
}

#[tokio::test]
async fn bad_records_are_configuration_errors() {
    let connector = WsConnector::new();
    for url in ["http://127.0.0.1:1/mcp", "not a url"] {
        let err = connector.connect(&spec(url.into())).await.unwrap_err();
        assert!(matches!(err, TransportError::Config(_)), "{url}: {err:?}");
    }
    let mut no_url = spec(String::new());
    no_url.url = None;
    let err = connector.connect(&no_url).await.unwrap_err();
    assert!(matches!(err, TransportError::Config(_)), "{err:?}");
    let mut handshake_header = spec("ws://127.0.0.1:1/mcp".into());
    handshake_header
        .headers
        .push(("Sec-WebSocket-Protocol".into(), "other".into()));
    let err = connector.connect(&handshake_header).await.unwrap_err();
    assert!(matches!(err, TransportError::Config(_)), "{err:?}");
}
