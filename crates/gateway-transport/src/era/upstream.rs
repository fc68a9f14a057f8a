//! Upstreams of either era behind one [`Connector`]: [`EraConnector`] probes a new connection
//! with `server/discover` (as the specification's dual-era client does: on stdio any answer
//! that is not a recognized modern one means legacy; on Streamable HTTP a 4xx without a modern
//! error body means legacy; a dual-era server, whose `supportedVersions` also lists a legacy
//! revision, is used in its legacy revision, which keeps resource subscriptions and the GET
//! stream the bridge does not carry yet) and, for a modern-only server, puts a translator
//! between the link and the [`crate::upstream::UpstreamSession`], which keeps speaking the
//! session-based protocol:
//!
//! - `initialize` is answered from the `DiscoverResult` (the client's legacy revision when the
//!   gateway speaks it, the server's capabilities, identity and instructions); the client's
//!   capabilities and identity are remembered; `notifications/initialized` goes nowhere;
//! - `ping` is answered by the gateway; `logging/setLevel` is remembered and sent as the
//!   `_meta` log level of every later request;
//! - every other request gets the modern `_meta` (protocol version, client capabilities, client
//!   info, log level) — the HTTP connector mirrors it into the required headers;
//! - an `InputRequiredResult` becomes real server-to-client requests (sampling, elicitation,
//!   roots) to the client whose request it answers; when every one is answered, the original
//!   request is sent again under a new id with `inputResponses` and `requestState`, and its
//!   answer goes back under the original id.
//!
//! Not built: `resources/subscribe` and the GET stream over `subscriptions/listen` (answered
//! with an error), `x-mcp-header` parameters.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use gateway_types::jsonrpc::{ErrorObject, ErrorResponse, Message, Request, RequestId, Response, Version};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::{MODERN_VERSION, codes as era_codes, meta};
use crate::error::{TransportError, codes};
use crate::link::{Connector, LINK_QUEUE, Link, LinkEvent, LinkTx, UpstreamSpec};

/// Longest wait for the `server/discover` probe's answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Legacy revisions a modern upstream can be presented as, newest first.
const LEGACY_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

static IDS: AtomicU64 = AtomicU64::new(1);

fn next_id(prefix: &str) -> RequestId {
    RequestId::String(format!("{prefix}-{}", IDS.fetch_add(1, Ordering::Relaxed)))
}

/// A connector that detects the upstream's era and bridges a modern one.
#[derive(Debug)]
pub struct EraConnector {
    inner: Arc<dyn Connector>,
}

impl EraConnector {
    /// Wraps `inner` (stdio or Streamable HTTP).
    #[must_use]
    pub fn new(inner: Arc<dyn Connector>) -> Self {
        Self { inner }
    }
}

/// What the probe found.
enum Probe {
    Modern(Value),
    Legacy,
    Gone,
}

#[async_trait]
impl Connector for EraConnector {
    async fn connect(&self, spec: &UpstreamSpec) -> Result<Link, TransportError> {
        let mut link = self.inner.connect(spec).await?;
        if spec.legacy_only {
            return Ok(link);
        }
        match probe(&mut link, spec).await {
            Probe::Modern(discover) => {
                tracing::info!(server.name = %spec.name, "upstream speaks MCP 2026-07-28; bridging legacy clients to it");
                Ok(bridge(link, discover))
            }
            Probe::Legacy => Ok(link),
            // The probe killed the connection (a legacy server that exits on an unknown
            // method): connect again, without a probe.
            Probe::Gone => self.inner.connect(spec).await,
        }
    }
}

async fn probe(link: &mut Link, spec: &UpstreamSpec) -> Probe {
    let id = next_id("gw-discover");
    let request = Request {
        jsonrpc: Version,
        id: id.clone(),
        method: "server/discover".into(),
        params: Some(json!({"_meta": gateway_meta(&Value::Object(Map::new()), None, None)})),
        extra: Map::new(),
    };
    if link.tx.send(Message::Request(request)).await.is_err() {
        return Probe::Gone;
    }
    let wait = PROBE_TIMEOUT.min(spec.timeout);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let event = tokio::time::timeout_at(deadline, link.rx.recv()).await;
        match event {
            Err(_) => return Probe::Legacy,
            Ok(None | Some(LinkEvent::Closed { .. } | LinkEvent::Exited { .. })) => return Probe::Gone,
            Ok(Some(LinkEvent::Message { message, .. })) => match message {
                Message::Response(r) if r.id == id => {
                    let versions: Vec<&str> = r
                        .result
                        .get("supportedVersions")
                        .and_then(Value::as_array)
                        .map(|v| v.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    // A dual-era server is spoken to in its legacy revision: that keeps what the
                    // bridge lacks so far (resource subscriptions, the GET stream).
                    let modern_only = versions.contains(&MODERN_VERSION)
                        && !versions.iter().any(|v| LEGACY_VERSIONS.contains(v));
                    return if modern_only {
                        Probe::Modern(r.result)
                    } else {
                        Probe::Legacy
                    };
                }
                Message::Error(e) if e.id.is_none() || e.id.as_ref() == Some(&id) => {
                    let supported = e
                        .error
                        .data
                        .as_ref()
                        .and_then(|d| d.get("supported"))
                        .and_then(Value::as_array)
                        .is_some_and(|v| v.iter().any(|x| x.as_str() == Some(MODERN_VERSION)));
                    if e.error.code == era_codes::UNSUPPORTED_PROTOCOL_VERSION && supported {
                        // Modern, but refused our probe's details: present what we know.
                        return Probe::Modern(
                            json!({"supportedVersions": [MODERN_VERSION], "capabilities": {}}),
                        );
                    }
                    return Probe::Legacy;
                }
                _ => {}
            },
        }
    }
}

/// The modern `_meta` of a request the gateway sends.
fn gateway_meta(capabilities: &Value, client_info: Option<&Value>, log_level: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert(meta::PROTOCOL_VERSION.into(), Value::from(MODERN_VERSION));
    m.insert(meta::CLIENT_CAPABILITIES.into(), capabilities.clone());
    m.insert(
        meta::CLIENT_INFO.into(),
        client_info
            .cloned()
            .unwrap_or_else(|| json!({"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")})),
    );
    if let Some(level) = log_level {
        m.insert(meta::LOG_LEVEL.into(), Value::from(level));
    }
    Value::Object(m)
}

/// A request in flight to the modern server.
struct Sent {
    /// The id the session used (answers go back under it).
    original: RequestId,
    /// The request as sent (without `inputResponses`/`requestState`), for retries.
    request: Request,
}

/// A round of input requests the client is answering.
struct Round {
    sent: Sent,
    state: Option<String>,
    /// Our server-request id → the input request's key.
    waiting: HashMap<RequestId, String>,
    answers: Map<String, Value>,
}

struct Bridge {
    discover: Value,
    capabilities: Value,
    client_info: Option<Value>,
    log_level: Option<String>,
    /// Upstream id (as sent) → what it was.
    sent: HashMap<RequestId, Sent>,
    /// Our server-request id → the round it belongs to (by original id).
    rounds: HashMap<RequestId, Round>,
    /// Our server-request id → the round's key.
    input_of: HashMap<RequestId, RequestId>,
}

fn bridge(link: Link, discover: Value) -> Link {
    let (out_tx, out_rx) = mpsc::channel::<Message>(LINK_QUEUE);
    let (in_tx, in_rx) = mpsc::channel::<LinkEvent>(LINK_QUEUE);
    // The inner link's inbox stays empty: its messages come through `rx` to the translator.
    let Link { tx, rx, pid, .. } = link;
    let state = Bridge {
        discover,
        capabilities: Value::Object(Map::new()),
        client_info: None,
        log_level: None,
        sent: HashMap::new(),
        rounds: HashMap::new(),
        input_of: HashMap::new(),
    };
    tokio::spawn(run(state, out_rx, tx, rx, in_tx));
    Link {
        tx: LinkTx::channel(out_tx),
        rx: in_rx,
        pid,
        inbox: None,
    }
}

async fn run(
    mut b: Bridge,
    mut from_session: mpsc::Receiver<Message>,
    to_server: LinkTx,
    mut from_server: mpsc::Receiver<LinkEvent>,
    to_session: mpsc::Sender<LinkEvent>,
) {
    loop {
        tokio::select! {
            m = from_session.recv() => {
                let Some(m) = m else { break };
                b.outgoing(m, &to_server, &to_session).await;
            }
            e = from_server.recv() => {
                let Some(e) = e else { break };
                let last = matches!(e, LinkEvent::Closed { .. });
                match e {
                    LinkEvent::Message { message, related } => b.incoming(message, related, &to_server, &to_session).await,
                    other => { let _ = to_session.send(other).await; }
                }
                if last { break; }
            }
        }
    }
}

async fn deliver(to_session: &mpsc::Sender<LinkEvent>, message: Message, related: Option<RequestId>) {
    let _ = to_session.send(LinkEvent::Message { message, related }).await;
}

fn response(id: RequestId, result: Value) -> Message {
    Message::Response(Response {
        jsonrpc: Version,
        id,
        result,
        extra: Map::new(),
    })
}

impl Bridge {
    fn initialize_result(&self, requested: Option<&str>) -> Value {
        let version = requested
            .filter(|v| LEGACY_VERSIONS.contains(v))
            .unwrap_or(LEGACY_VERSIONS[0]);
        let server_info = self
            .discover
            .get("_meta")
            .and_then(|m| m.get(meta::SERVER_INFO))
            .cloned()
            .unwrap_or_else(|| json!({"name": "modern-upstream", "version": "unknown"}));
        let mut result = json!({
            "protocolVersion": version,
            "capabilities": self.discover.get("capabilities").cloned().unwrap_or_else(|| json!({})),
            "serverInfo": server_info,
        });
        if let (Some(obj), Some(i)) = (result.as_object_mut(), self.discover.get("instructions")) {
            obj.insert("instructions".into(), i.clone());
        }
        result
    }

    fn with_meta(&self, mut req: Request) -> Request {
        let meta_value = gateway_meta(
            &self.capabilities,
            self.client_info.as_ref(),
            self.log_level.as_deref(),
        );
        let params = req.params.get_or_insert_with(|| Value::Object(Map::new()));
        if let Some(obj) = params.as_object_mut() {
            let m = obj.entry("_meta").or_insert_with(|| Value::Object(Map::new()));
            if let (Some(m), Some(add)) = (m.as_object_mut(), meta_value.as_object()) {
                for (k, v) in add {
                    m.insert(k.clone(), v.clone());
                }
            }
        }
        req
    }

    async fn outgoing(&mut self, m: Message, to_server: &LinkTx, to_session: &mpsc::Sender<LinkEvent>) {
        match m {
            Message::Request(req) => match req.method.as_str() {
                "initialize" => {
                    let params = req.params.clone().unwrap_or(Value::Null);
                    if let Some(caps) = params.get("capabilities").filter(|c| c.is_object()) {
                        self.capabilities = caps.clone();
                    }
                    self.client_info = params.get("clientInfo").filter(|c| c.is_object()).cloned();
                    let requested = params.get("protocolVersion").and_then(Value::as_str);
                    let result = self.initialize_result(requested);
                    deliver(to_session, response(req.id.clone(), result), Some(req.id)).await;
                }
                "ping" => deliver(to_session, response(req.id.clone(), json!({})), Some(req.id)).await,
                "logging/setLevel" => {
                    self.log_level = req
                        .params
                        .as_ref()
                        .and_then(|p| p.get("level"))
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    deliver(to_session, response(req.id.clone(), json!({})), Some(req.id)).await;
                }
                "resources/subscribe" | "resources/unsubscribe" => {
                    let error = Message::Error(ErrorResponse::new(
                        Some(req.id.clone()),
                        ErrorObject::new(
                            codes::METHOD_NOT_FOUND,
                            "resource subscriptions are not available on this server through the gateway yet",
                        ),
                    ));
                    deliver(to_session, error, Some(req.id)).await;
                }
                _ => {
                    let req = self.with_meta(req);
                    self.sent.insert(
                        req.id.clone(),
                        Sent {
                            original: req.id.clone(),
                            request: req.clone(),
                        },
                    );
                    let _ = to_server.send(Message::Request(req)).await;
                }
            },
            Message::Notification(n) => {
                if n.method == "notifications/initialized" {
                    return;
                }
                let _ = to_server.send(Message::Notification(n)).await;
            }
            answer @ (Message::Response(_) | Message::Error(_)) => {
                self.answer(answer, to_server).await;
            }
        }
    }

    /// The client answered one of our input requests.
    async fn answer(&mut self, answer: Message, to_server: &LinkTx) {
        let Some(id) = answer.id().cloned() else { return };
        let Some(round_key) = self.input_of.remove(&id) else {
            return;
        };
        let Some(round) = self.rounds.get_mut(&round_key) else {
            return;
        };
        let Some(key) = round.waiting.remove(&id) else {
            return;
        };
        let value = match answer {
            Message::Response(r) => r.result,
            // An error from the client: the input is declined.
            _ => json!({"action": "decline"}),
        };
        round.answers.insert(key, value);
        if !round.waiting.is_empty() {
            return;
        }
        let Some(round) = self.rounds.remove(&round_key) else {
            return;
        };
        self.retry(round, to_server).await;
    }

    async fn retry(&mut self, round: Round, to_server: &LinkTx) {
        let Round {
            sent, state, answers, ..
        } = round;
        let mut req = sent.request.clone();
        req.id = next_id("gw-retry");
        if let Some(obj) = req.params.as_mut().and_then(Value::as_object_mut) {
            obj.insert("inputResponses".into(), Value::Object(answers));
            if let Some(s) = state {
                obj.insert("requestState".into(), Value::from(s));
            }
        }
        self.sent.insert(req.id.clone(), sent);
        let _ = to_server.send(Message::Request(req)).await;
    }

    async fn incoming(
        &mut self,
        message: Message,
        related: Option<RequestId>,
        to_server: &LinkTx,
        to_session: &mpsc::Sender<LinkEvent>,
    ) {
        match message {
            Message::Response(mut r) => {
                let Some(sent) = self.sent.remove(&r.id) else {
                    deliver(to_session, Message::Response(r), related).await;
                    return;
                };
                let input_required =
                    r.result.get("resultType").and_then(Value::as_str) == Some("input_required");
                if !input_required {
                    r.id = sent.original.clone();
                    deliver(to_session, Message::Response(r), Some(sent.original)).await;
                    return;
                }
                let state = r
                    .result
                    .get("requestState")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let requests = r
                    .result
                    .get("inputRequests")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let original = sent.original.clone();
                let round_key = next_id("gw-round");
                let mut round = Round {
                    sent,
                    state,
                    waiting: HashMap::new(),
                    answers: Map::new(),
                };
                let mut asks = Vec::new();
                for (key, ask) in requests {
                    let id = next_id("gw-input");
                    let Some(method) = ask.get("method").and_then(Value::as_str) else {
                        continue;
                    };
                    asks.push(Request {
                        jsonrpc: Version,
                        id: id.clone(),
                        method: method.to_owned(),
                        params: ask.get("params").cloned(),
                        extra: Map::new(),
                    });
                    round.waiting.insert(id.clone(), key);
                    self.input_of.insert(id, round_key.clone());
                }
                if round.waiting.is_empty() {
                    self.retry(round, to_server).await;
                    return;
                }
                self.rounds.insert(round_key, round);
                for ask in asks {
                    // `related` names the session's request, so the ask reaches its client.
                    deliver(to_session, Message::Request(ask), Some(original.clone())).await;
                }
            }
            Message::Error(mut e) => {
                let original =
                    e.id.as_ref()
                        .and_then(|id| self.sent.remove(id))
                        .map(|s| s.original);
                if let Some(original) = original {
                    e.id = Some(original.clone());
                    deliver(to_session, Message::Error(e), Some(original)).await;
                } else {
                    deliver(to_session, Message::Error(e), related).await;
                }
            }
            other => deliver(to_session, other, related).await,
        }
    }
}
