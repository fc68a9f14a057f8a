//! A namespace's servers presented as one MCP server.
//!
//! A federated client session is an ordinary [`crate::client::ClientSession`] whose upstream is
//! an [`UpstreamSession`] over a [`FederationConnector`]: the connector's link ends in a task
//! of the gateway that speaks MCP like a server and, behind it, holds one upstream session per
//! member server. So every client transport, id remapping, progress-token remapping, event
//! log and session record works for federations exactly as for a single server.
//!
//! What the federation does:
//! - `initialize` is answered by the gateway: every member is initialized with the client's
//!   parameters, and the capabilities offered are those of the members that answered.
//! - tools and prompts are listed from every reachable member (all pages), renamed
//!   `<server><separator><name>` ([`Naming`]; never longer than 64 characters: longer names are
//!   cut and end in a stable hash), ordered by server then upstream order; resources and
//!   resource templates get URIs `gw://<server>/<original URI>`, restored on the way back.
//! - a call is routed to its member with the original name, after the member's own guard
//!   (policy, then rate limits); answers, progress and server-to-client requests (sampling, elicitation, roots)
//!   flow back on the call's stream; cancellations reach the member that has the call.
//! - one member failing never breaks the others: its items drop out of the lists (and come
//!   back when it recovers: its upstream session restarts it), and calls to it get a clear
//!   error. Members' list-changed notifications are merged and sent at most once per
//!   [`DEBOUNCE`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use gateway_types::jsonrpc::{ErrorObject, Message, Notification, Request, RequestId, Response, Version};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::client::Guard;
use crate::error::{TransportError, codes, error_message, error_reply};
use crate::link::{Connector, Connectors, LINK_QUEUE, Link, LinkEvent, LinkTx, UpstreamSpec};
use crate::upstream::{ClientKey, RestartPolicy, ResultFilter, UpstreamSession};

/// The longest exposed tool or prompt name.
pub const MAX_NAME: usize = 64;
/// Merged list-changed notifications go out at most this often.
pub const DEBOUNCE: Duration = Duration::from_millis(200);
/// Pages read from one member for one list.
const MAX_PAGES: usize = 50;
/// The URI scheme of federated resources.
const URI_SCHEME: &str = "gw://";
/// The revision the gateway answers when the client asks for one it does not know.
const LATEST: &str = "2025-11-25";
/// The session-based revisions a federation speaks.
const VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// How exposed names are made from a server's name and an item's name.
#[derive(Clone, Debug)]
pub struct Naming {
    /// Between the server's name and the item's (default `__`).
    pub separator: String,
}

impl Default for Naming {
    fn default() -> Self {
        Self {
            separator: "__".into(),
        }
    }
}

impl Naming {
    /// `<server><separator><item>`, or, past [`MAX_NAME`], its first characters, `_` and
    /// eight hex digits of a stable hash of the whole name (deterministic across processes).
    #[must_use]
    pub fn exposed(&self, server: &str, item: &str) -> String {
        let full = format!("{server}{}{item}", self.separator);
        if full.len() <= MAX_NAME {
            return full;
        }
        let hash = format!("{:08x}", fnv1a(full.as_bytes()) & 0xffff_ffff);
        let mut keep = MAX_NAME - hash.len() - 1;
        while !full.is_char_boundary(keep) {
            keep -= 1;
        }
        format!("{}_{hash}", &full[..keep])
    }
}

/// FNV-1a, 64 bits: stable everywhere, unlike std's randomly seeded hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `gw://<server>/<uri>`.
#[must_use]
pub fn exposed_uri(server: &str, uri: &str) -> String {
    format!("{URI_SCHEME}{server}/{uri}")
}

/// The server and original URI of an exposed URI.
#[must_use]
pub fn restore_uri(uri: &str) -> Option<(&str, &str)> {
    uri.strip_prefix(URI_SCHEME)?.split_once('/')
}

/// One member server of a federation.
#[derive(Clone)]
pub struct MemberSpec {
    /// The server's name (the prefix of its items).
    pub name: String,
    /// How to reach it.
    pub spec: UpstreamSpec,
    /// The caller's policy and rate limits on this server (checks and admits routed calls,
    /// filters lists).
    pub guard: Arc<dyn Guard>,
}

impl std::fmt::Debug for MemberSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberSpec")
            .field("name", &self.name)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// Opens federation links: each connection runs a fresh federation with its own upstream
/// session per member.
#[derive(Debug)]
pub struct FederationConnector {
    members: Vec<MemberSpec>,
    connectors: Connectors,
    restart: RestartPolicy,
    runtime: tokio::runtime::Handle,
    naming: Naming,
}

impl FederationConnector {
    /// A connector over `members` (sorted by name here, so exposed order is deterministic).
    #[must_use]
    pub fn new(
        mut members: Vec<MemberSpec>,
        connectors: Connectors,
        restart: RestartPolicy,
        runtime: tokio::runtime::Handle,
        naming: Naming,
    ) -> Self {
        members.sort_by(|a, b| a.name.cmp(&b.name));
        Self {
            members,
            connectors,
            restart,
            runtime,
            naming,
        }
    }
}

#[async_trait]
impl Connector for FederationConnector {
    async fn connect(&self, _spec: &UpstreamSpec) -> Result<Link, TransportError> {
        let (to_fed, from_client) = mpsc::channel::<Message>(LINK_QUEUE);
        let (events, rx) = mpsc::channel::<LinkEvent>(LINK_QUEUE);
        let members = self
            .members
            .iter()
            .map(|m| {
                let connector = Arc::clone(self.connectors.for_protocol(m.spec.protocol));
                let upstream =
                    UpstreamSession::new(m.spec.clone(), connector, self.restart, self.runtime.clone());
                Member {
                    name: m.name.clone(),
                    upstream,
                    guard: Arc::clone(&m.guard),
                    key: FEDERATION_KEYS.fetch_add(1, Ordering::Relaxed),
                    capabilities: Mutex::new(None),
                }
            })
            .collect();
        let (changed_tx, changed_rx) = mpsc::channel::<String>(64);
        self.runtime.spawn(debounce(changed_rx, events.clone()));
        let fed = Arc::new(Federation {
            members,
            events,
            naming: self.naming.clone(),
            tools: Mutex::new(HashMap::new()),
            prompts: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            server_requests: Mutex::new(HashMap::new()),
            init_params: Mutex::new(None),
            changed: changed_tx,
            next_id: AtomicU64::new(1),
            runtime: self.runtime.clone(),
        });
        for (i, m) in fed.members.iter().enumerate() {
            let (tx, rx) = mpsc::channel::<Message>(LINK_QUEUE);
            m.upstream.attach(m.key, tx);
            self.runtime.spawn(member_messages(Arc::clone(&fed), i, rx));
        }
        self.runtime.spawn(serve(fed, from_client));
        Ok(Link {
            tx: LinkTx::channel(to_fed),
            rx,
            pid: None,
            inbox: None,
        })
    }
}

/// Client keys of federations on their members (distinct from client sessions' keys by the
/// top bit, though only uniqueness per upstream session matters).
static FEDERATION_KEYS: AtomicU64 = AtomicU64::new(1 << 63);

struct Member {
    name: String,
    upstream: UpstreamSession,
    guard: Arc<dyn Guard>,
    key: ClientKey,
    /// The member's capabilities once it answered `initialize`.
    capabilities: Mutex<Option<Value>>,
}

struct Federation {
    members: Vec<Member>,
    events: mpsc::Sender<LinkEvent>,
    naming: Naming,
    /// Exposed tool name → (member, original name), from the last listing.
    tools: Mutex<HashMap<String, (usize, String)>>,
    /// Exposed prompt name → (member, original name).
    prompts: Mutex<HashMap<String, (usize, String)>>,
    /// The client's request id → the member handling it (for cancellation).
    in_flight: Mutex<HashMap<RequestId, usize>>,
    /// A server-to-client request id → the member that sent it.
    server_requests: Mutex<HashMap<RequestId, usize>>,
    /// The client's `initialize` parameters, replayed to members that were not up at first.
    init_params: Mutex<Option<Value>>,
    /// List-changed notifications for the debouncer.
    changed: mpsc::Sender<String>,
    next_id: AtomicU64,
    runtime: tokio::runtime::Handle,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads what the client side sends until the link is dropped, then closes the members.
async fn serve(fed: Arc<Federation>, mut rx: mpsc::Receiver<Message>) {
    while let Some(message) = rx.recv().await {
        match message {
            Message::Request(req) => {
                let fed = Arc::clone(&fed);
                fed.runtime.clone().spawn(async move {
                    let id = req.id.clone();
                    let answer = fed.request(req).await;
                    lock(&fed.in_flight).remove(&id);
                    fed.send(answer, None).await;
                });
            }
            Message::Notification(n) => fed.client_notification(n).await,
            m @ (Message::Response(_) | Message::Error(_)) => fed.client_answer(m).await,
        }
    }
    for m in &fed.members {
        m.upstream.detach(m.key);
        m.upstream.close();
    }
}

/// Sends merged list-changed notifications: after the first change, waits [`DEBOUNCE`] and
/// sends one notification per kind that changed meanwhile.
async fn debounce(mut rx: mpsc::Receiver<String>, events: mpsc::Sender<LinkEvent>) {
    while let Some(first) = rx.recv().await {
        tokio::time::sleep(DEBOUNCE).await;
        let mut kinds = vec![first];
        while let Ok(more) = rx.try_recv() {
            if !kinds.contains(&more) {
                kinds.push(more);
            }
        }
        for method in kinds {
            let n = Notification {
                jsonrpc: Version,
                method,
                params: None,
                extra: Map::new(),
            };
            let event = LinkEvent::Message {
                message: Message::Notification(n),
                related: None,
            };
            if events.send(event).await.is_err() {
                return;
            }
        }
    }
}

/// What one member sends outside of any request (notifications, server requests).
async fn member_messages(fed: Arc<Federation>, member: usize, mut rx: mpsc::Receiver<Message>) {
    while let Some(message) = rx.recv().await {
        fed.relay(member, message, None).await;
    }
}

impl Federation {
    async fn send(&self, message: Message, related: Option<RequestId>) {
        let _ = self.events.send(LinkEvent::Message { message, related }).await;
    }

    fn internal_id(&self) -> RequestId {
        RequestId::String(format!("fed-{}", self.next_id.fetch_add(1, Ordering::Relaxed)))
    }

    /// Answers one request of the client.
    async fn request(&self, req: Request) -> Message {
        let id = req.id.clone();
        let result = match req.method.as_str() {
            "initialize" => Ok(self.initialize(req.params.clone()).await),
            "ping" => Ok(json!({})),
            "tools/list" => Ok(self.list_named("tools/list", "tools", &self.tools).await),
            "prompts/list" => Ok(self.list_named("prompts/list", "prompts", &self.prompts).await),
            "resources/list" => Ok(self.list_resources("resources/list", "resources", "uri").await),
            "resources/templates/list" => Ok(self
                .list_resources("resources/templates/list", "resourceTemplates", "uriTemplate")
                .await),
            "logging/setLevel" => {
                for (i, _) in self.members.iter().enumerate() {
                    let mut r = req.clone();
                    r.id = self.internal_id();
                    let _ = self.call_member(i, r, None).await;
                }
                Ok(json!({}))
            }
            "tools/call" => return self.routed_by_name(req, &self.tools, "tool").await,
            "prompts/get" => return self.routed_by_name(req, &self.prompts, "prompt").await,
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                return self.routed_by_uri(req).await;
            }
            "completion/complete" => return self.complete(req).await,
            _ => Err(ErrorObject::new(codes::METHOD_NOT_FOUND, "Method not found")),
        };
        match result {
            Ok(result) => Message::Response(Response {
                jsonrpc: Version,
                id,
                result,
                extra: Map::new(),
            }),
            Err(e) => error_message(Some(id), e),
        }
    }

    /// Initializes every member with the client's parameters; answers with the union of
    /// what the members that answered offer.
    async fn initialize(&self, params: Option<Value>) -> Value {
        let requested = params
            .as_ref()
            .and_then(|p| p.get("protocolVersion"))
            .and_then(Value::as_str)
            .filter(|v| VERSIONS.contains(v))
            .unwrap_or(LATEST)
            .to_owned();
        *lock(&self.init_params) = params;
        let inits = (0..self.members.len()).map(|i| self.ensure_initialized(i));
        futures_util::future::join_all(inits).await;
        let mut tools = false;
        let mut prompts = false;
        let mut resources = false;
        let mut subscribe = false;
        let mut logging = false;
        let mut completions = false;
        for m in &self.members {
            if let Some(c) = lock(&m.capabilities).as_ref() {
                tools |= c.get("tools").is_some();
                prompts |= c.get("prompts").is_some();
                resources |= c.get("resources").is_some();
                subscribe |= c.pointer("/resources/subscribe") == Some(&Value::Bool(true));
                logging |= c.get("logging").is_some();
                completions |= c.get("completions").is_some();
            }
        }
        let mut caps = Map::new();
        // A federation can always list (possibly nothing) and say when its lists change.
        caps.insert("tools".into(), json!({"listChanged": true}));
        if prompts || !tools {
            caps.insert("prompts".into(), json!({"listChanged": true}));
        }
        if resources {
            caps.insert(
                "resources".into(),
                json!({"listChanged": true, "subscribe": subscribe}),
            );
        }
        if logging {
            caps.insert("logging".into(), json!({}));
        }
        if completions {
            caps.insert("completions".into(), json!({}));
        }
        json!({
            "protocolVersion": requested,
            "capabilities": caps,
            "serverInfo": {"name": "mcp-gateway-federation", "version": env!("CARGO_PKG_VERSION")},
            "instructions": format!(
                "Tools and prompts of {} servers; each name starts with its server's name and '{}'.",
                self.members.len(),
                self.naming.separator
            ),
        })
    }

    /// Initializes a member unless it already answered; whether it is usable.
    async fn ensure_initialized(&self, i: usize) -> bool {
        let m = &self.members[i];
        if lock(&m.capabilities).is_some() {
            return true;
        }
        let params = lock(&self.init_params).clone().unwrap_or_else(|| {
            json!({"protocolVersion": LATEST, "capabilities": {},
                   "clientInfo": {"name": "mcp-gateway-federation", "version": env!("CARGO_PKG_VERSION")}})
        });
        let req = Request {
            jsonrpc: Version,
            id: self.internal_id(),
            method: "initialize".into(),
            params: Some(params),
            extra: Map::new(),
        };
        match self.call_member(i, req, None).await {
            Ok(result) => {
                let caps = result.get("capabilities").cloned().unwrap_or_else(|| json!({}));
                *lock(&m.capabilities) = Some(caps);
                m.upstream
                    .notify(
                        m.key,
                        Notification {
                            jsonrpc: Version,
                            method: "notifications/initialized".into(),
                            params: None,
                            extra: Map::new(),
                        },
                    )
                    .await;
                true
            }
            Err(e) => {
                tracing::warn!(server.name = %m.name, error = %e.message, "federation member did not initialize");
                false
            }
        }
    }

    /// Sends a request of the federation's own to a member; its result or error. Messages
    /// related to it (progress, server requests) are forwarded to the client.
    async fn call_member(
        &self,
        i: usize,
        req: Request,
        filter: Option<Arc<dyn ResultFilter>>,
    ) -> Result<Value, ErrorObject> {
        let m = &self.members[i];
        let (tx, mut rx) = mpsc::channel::<Message>(16);
        m.upstream.request(m.key, req, tx, filter, None).await;
        while let Some(message) = rx.recv().await {
            match message {
                Message::Response(r) => return Ok(r.result),
                Message::Error(e) => return Err(e.error),
                other => self.relay(i, other, None).await,
            }
        }
        Err(ErrorObject::new(
            codes::UPSTREAM_UNAVAILABLE,
            "upstream server unavailable",
        ))
    }

    /// Every page of a list from one member, after its policy filter.
    async fn list_all(&self, i: usize, method: &str, field: &str) -> Option<Vec<Value>> {
        if !self.ensure_initialized(i).await {
            return None;
        }
        let guard: Arc<dyn ResultFilter> = Arc::clone(&self.members[i].guard) as Arc<dyn ResultFilter>;
        let mut items = Vec::new();
        let mut cursor: Option<Value> = None;
        for _ in 0..MAX_PAGES {
            let params = cursor.take().map(|c| json!({"cursor": c}));
            let req = Request {
                jsonrpc: Version,
                id: self.internal_id(),
                method: method.into(),
                params,
                extra: Map::new(),
            };
            match self.call_member(i, req, Some(Arc::clone(&guard))).await {
                Ok(mut result) => {
                    if let Some(Value::Array(page)) = result.get_mut(field).map(Value::take) {
                        items.extend(page);
                    }
                    match result.get("nextCursor") {
                        Some(c) if !c.is_null() => cursor = Some(c.clone()),
                        _ => return Some(items),
                    }
                }
                Err(e) => {
                    tracing::warn!(server.name = %self.members[i].name, method, error = %e.message, "federation member left out of a list");
                    return None;
                }
            }
        }
        Some(items)
    }

    /// Tools or prompts of every member, renamed; remembers the names for routing.
    async fn list_named(
        &self,
        method: &str,
        field: &str,
        names: &Mutex<HashMap<String, (usize, String)>>,
    ) -> Value {
        let lists =
            futures_util::future::join_all((0..self.members.len()).map(|i| self.list_all(i, method, field)))
                .await;
        let mut out = Vec::new();
        let mut map = HashMap::new();
        for (i, list) in lists.into_iter().enumerate() {
            for mut item in list.into_iter().flatten() {
                let Some(original) = item.get("name").and_then(Value::as_str).map(str::to_owned) else {
                    continue;
                };
                let exposed = self.naming.exposed(&self.members[i].name, &original);
                if map.contains_key(&exposed) {
                    continue; // the same name twice from one server: the first wins
                }
                item["name"] = Value::String(exposed.clone());
                map.insert(exposed, (i, original));
                out.push(item);
            }
        }
        *lock(names) = map;
        json!({ field: out })
    }

    /// Resources or templates of every member with their URIs rewritten.
    async fn list_resources(&self, method: &str, field: &str, uri_field: &str) -> Value {
        let lists =
            futures_util::future::join_all((0..self.members.len()).map(|i| self.list_all(i, method, field)))
                .await;
        let mut out = Vec::new();
        for (i, list) in lists.into_iter().enumerate() {
            for mut item in list.into_iter().flatten() {
                if let Some(uri) = item.get(uri_field).and_then(Value::as_str) {
                    item[uri_field] = Value::String(exposed_uri(&self.members[i].name, uri));
                    out.push(item);
                }
            }
        }
        json!({ field: out })
    }

    /// The member and original name of an exposed name, listing again once if unknown.
    async fn find_name(
        &self,
        exposed: &str,
        names: &Mutex<HashMap<String, (usize, String)>>,
        kind: &str,
    ) -> Option<(usize, String)> {
        if let Some(found) = lock(names).get(exposed).cloned() {
            return Some(found);
        }
        if kind == "tool" {
            self.list_named("tools/list", "tools", names).await;
        } else {
            self.list_named("prompts/list", "prompts", names).await;
        }
        lock(names).get(exposed).cloned()
    }

    async fn routed_by_name(
        &self,
        mut req: Request,
        names: &Mutex<HashMap<String, (usize, String)>>,
        kind: &str,
    ) -> Message {
        let exposed = req
            .params
            .as_ref()
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let Some(exposed) = exposed else {
            return error_reply(
                req.id,
                codes::INVALID_PARAMS,
                format!("a {kind} name is required"),
            );
        };
        let Some((member, original)) = self.find_name(&exposed, names, kind).await else {
            return error_reply(
                req.id,
                codes::INVALID_PARAMS,
                format!("unknown {kind}: {exposed}"),
            );
        };
        if let Some(p) = req.params.as_mut().and_then(Value::as_object_mut) {
            p.insert("name".into(), Value::String(original));
        }
        self.forward(member, req, |_, _| {}).await
    }

    async fn routed_by_uri(&self, mut req: Request) -> Message {
        let exposed = req
            .params
            .as_ref()
            .and_then(|p| p.get("uri"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let Some((member, original)) = exposed.as_deref().and_then(|u| self.member_of_uri(u)) else {
            return error_reply(req.id, codes::INVALID_PARAMS, "unknown resource URI");
        };
        if let Some(p) = req.params.as_mut().and_then(Value::as_object_mut) {
            p.insert("uri".into(), Value::String(original));
        }
        self.forward(member, req, |fed, result| {
            if let Some(Value::Array(contents)) = result.get_mut("contents") {
                for c in contents {
                    if let Some(uri) = c.get("uri").and_then(Value::as_str) {
                        c["uri"] = Value::String(exposed_uri(&fed.members[member].name, uri));
                    }
                }
            }
        })
        .await
    }

    async fn complete(&self, mut req: Request) -> Message {
        let reference = req.params.as_ref().and_then(|p| p.get("ref")).cloned();
        let kind = reference
            .as_ref()
            .and_then(|r| r.get("type"))
            .and_then(Value::as_str);
        let target = match kind {
            Some("ref/prompt") => {
                let name = reference
                    .as_ref()
                    .and_then(|r| r.get("name"))
                    .and_then(Value::as_str);
                match name {
                    Some(n) => self
                        .find_name(n, &self.prompts, "prompt")
                        .await
                        .map(|(m, o)| (m, "name", o)),
                    None => None,
                }
            }
            Some("ref/resource") => reference
                .as_ref()
                .and_then(|r| r.get("uri"))
                .and_then(Value::as_str)
                .and_then(|u| self.member_of_uri(u))
                .map(|(m, o)| (m, "uri", o)),
            _ => None,
        };
        let Some((member, field, original)) = target else {
            return error_reply(req.id, codes::INVALID_PARAMS, "unknown completion reference");
        };
        if let Some(r) = req
            .params
            .as_mut()
            .and_then(|p| p.get_mut("ref"))
            .and_then(Value::as_object_mut)
        {
            r.insert(field.into(), Value::String(original));
        }
        self.forward(member, req, |_, _| {}).await
    }

    fn member_of_uri(&self, exposed: &str) -> Option<(usize, String)> {
        let (server, original) = restore_uri(exposed)?;
        let i = self.members.iter().position(|m| m.name == server)?;
        Some((i, original.to_owned()))
    }

    /// Forwards a client's request to a member (after its guard) and relays everything that
    /// comes back on the request's stream; `fix` adjusts a successful result.
    async fn forward(&self, member: usize, req: Request, fix: impl Fn(&Self, &mut Value)) -> Message {
        let m = &self.members[member];
        if let Err(e) = m.guard.check(&req) {
            return error_message(Some(req.id), e);
        }
        if let Some(admission) = m.guard.admit(&req)
            && let Err(e) = admission.await
        {
            return error_message(Some(req.id), e);
        }
        if !self.ensure_initialized(member).await {
            return error_reply(
                req.id,
                codes::UPSTREAM_UNAVAILABLE,
                format!("server {} is unavailable", m.name),
            );
        }
        let id = req.id.clone();
        lock(&self.in_flight).insert(id.clone(), member);
        let (tx, mut rx) = mpsc::channel::<Message>(16);
        m.upstream.request(m.key, req, tx, None, None).await;
        while let Some(message) = rx.recv().await {
            match message {
                Message::Response(mut r) => {
                    fix(self, &mut r.result);
                    return Message::Response(r);
                }
                e @ Message::Error(_) => return e,
                other => self.relay(member, other, Some(id.clone())).await,
            }
        }
        error_reply(
            id,
            codes::UPSTREAM_UNAVAILABLE,
            format!("server {} is unavailable", m.name),
        )
    }

    /// A message from a member outside of an answer: relayed to the client, adjusted.
    async fn relay(&self, member: usize, message: Message, related: Option<RequestId>) {
        match message {
            Message::Request(req) => {
                lock(&self.server_requests).insert(req.id.clone(), member);
                self.send(Message::Request(req), related).await;
            }
            Message::Notification(mut n) => {
                match n.method.as_str() {
                    "notifications/tools/list_changed"
                    | "notifications/prompts/list_changed"
                    | "notifications/resources/list_changed" => {
                        self.list_changed(n.method);
                        return;
                    }
                    "notifications/resources/updated" => {
                        if let Some(p) = n.params.as_mut().and_then(Value::as_object_mut)
                            && let Some(uri) = p.get("uri").and_then(Value::as_str)
                        {
                            let exposed = exposed_uri(&self.members[member].name, uri);
                            p.insert("uri".into(), Value::String(exposed));
                        }
                    }
                    "notifications/message" => {
                        if let Some(p) = n.params.as_mut().and_then(Value::as_object_mut) {
                            let name = &self.members[member].name;
                            let logger = match p.get("logger").and_then(Value::as_str) {
                                Some(l) => format!("{name}/{l}"),
                                None => name.clone(),
                            };
                            p.insert("logger".into(), Value::String(logger));
                        }
                    }
                    _ => {}
                }
                self.send(Message::Notification(n), related).await;
            }
            // Answers arrive on their request's channel, never here.
            Message::Response(_) | Message::Error(_) => {}
        }
    }

    /// Queues a list-changed notification for the debouncer ([`debounce`]).
    fn list_changed(&self, method: String) {
        // A full queue already holds a flush's worth of changes: dropping one loses nothing.
        let _ = self.changed.try_send(method);
    }

    /// The client's notifications: cancellation reaches the member with the request; roots
    /// changes reach every member.
    async fn client_notification(&self, n: Notification) {
        match n.method.as_str() {
            "notifications/cancelled" => {
                let id = n
                    .params
                    .as_ref()
                    .and_then(|p| p.get("requestId"))
                    .and_then(|v| serde_json::from_value::<RequestId>(v.clone()).ok());
                let member = id.and_then(|id| lock(&self.in_flight).get(&id).copied());
                if let Some(i) = member {
                    let m = &self.members[i];
                    m.upstream.notify(m.key, n).await;
                }
            }
            "notifications/roots/list_changed" => {
                for m in &self.members {
                    m.upstream.notify(m.key, n.clone()).await;
                }
            }
            // `initialized` was sent to each member after its own initialize.
            _ => {}
        }
    }

    /// The client's answer to a server-to-client request: back to the member that asked.
    async fn client_answer(&self, message: Message) {
        let Some(id) = message.id().cloned() else { return };
        let member = lock(&self.server_requests).remove(&id);
        if let Some(i) = member {
            let m = &self.members[i];
            m.upstream.respond(m.key, message).await;
        }
    }
}
