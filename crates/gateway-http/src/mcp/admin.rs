//! The administrators' MCP endpoints: the session event stream, broadcasts and sends to client
//! sessions, and the stdio processes of registered servers.
//!
//! Every route needs `admin:broadcast` (admins only) and sees only the caller's organization
//! (and, for a namespace-confined credential, its namespace): another organization's sessions
//! and servers are never listed, counted or reachable (404).
//!
//! - `GET /sse/events`: an event stream of session lifecycle events (`session_opened`,
//!   `session_closed`, `broadcast`), a `: keep-alive` comment every 15 s, and a `lagged` event
//!   when the stream fell so far behind that events were skipped (the hub never waits for it).
//! - `POST /sse/broadcast`, `POST /ws/broadcast`: a notification to every open legacy-SSE or
//!   WebSocket session (optionally only those on one server).
//! - `POST /ws/send`: a notification to one WebSocket session.
//! - `POST /stdio/execute`: a JSON-RPC request on the shared upstream session of a registered
//!   stdio server (never a command from the body).
//! - `GET /stdio/process`: the running stdio processes.
//! - `POST /stdio/send`: a notification to a server's running shared stdio process.
//!
//! Only notifications are ever pushed to clients: a message with an `id` could be taken by a
//! client for the answer to one of its own requests, or make it answer the gateway.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use gateway_auth::principal::Principal;
use gateway_auth::rbac::Permission;
use gateway_logging::audit::{AuditEvent, actions};
use gateway_transport::client::ClientTransport;
use gateway_transport::error::codes;
use gateway_transport::hub::{HubEvent, HubEventKind, SessionScope, StdioProcess};
use gateway_transport::sse;
use gateway_types::error::ErrorCode;
use gateway_types::ids::SessionId;
use gateway_types::jsonrpc::{ErrorObject, Message, Notification, Request};
use gateway_types::model::ServerProtocol;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::rpc::{exchange, open_shared};
use super::{check_origin, resolve};

use crate::authn::Authenticated;
use crate::error::ApiError;
use crate::servers_cache::ResolvedServer;
use crate::state::AppState;

/// Keep-alive comment interval on the event stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Notifications the gateway sends upstream itself, with ids only it knows: an administrator
/// may not send them (`initialized` belongs to the handshake, `cancelled` names remapped ids).
const GATEWAY_MANAGED: [&str; 2] = ["notifications/initialized", "notifications/cancelled"];

/// `POST /sse/broadcast` and `POST /ws/broadcast`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BroadcastBody {
    /// A JSON-RPC notification.
    message: Value,
    /// Only sessions on this server (id or name).
    server_id: Option<String>,
}

/// `POST /ws/send`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SendBody {
    session_id: String,
    /// A JSON-RPC notification.
    message: Value,
}

/// `POST /stdio/execute` and `POST /stdio/send`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServerMessage {
    /// The server, by id or name.
    server: String,
    /// A JSON-RPC request (execute) or notification (send).
    message: Value,
}

/// The caller, who must hold `admin:broadcast`.
fn admin<'a>(
    auth: &'a Authenticated,
    req: &HttpRequest,
    state: &AppState,
) -> Result<&'a Principal, ApiError> {
    let principal = auth.require(Permission::AdminBroadcast)?;
    check_origin(req, state)?;
    Ok(principal)
}

/// Everything the caller may address.
fn scope_of(principal: &Principal) -> SessionScope {
    SessionScope {
        namespace_id: principal.namespace,
        ..SessionScope::org(principal.org_id)
    }
}

fn parse_message(message: Value) -> Result<Message, ApiError> {
    serde_json::from_value(message)
        .map_err(|_| ApiError::new(ErrorCode::BadRequest, "`message` is not a JSON-RPC 2.0 message"))
}

/// A JSON-RPC notification (a method and no `id`), else 400.
fn notification(message: Value) -> Result<Notification, ApiError> {
    match parse_message(message)? {
        Message::Notification(n) => Ok(n),
        _ => Err(ApiError::new(
            ErrorCode::BadRequest,
            "`message` must be a JSON-RPC notification: a method and no `id`",
        )),
    }
}

/// A JSON-RPC request (a method and an `id`), else 400.
fn request(message: Value) -> Result<Request, ApiError> {
    match parse_message(message)? {
        Message::Request(r) => Ok(r),
        _ => Err(ApiError::new(
            ErrorCode::BadRequest,
            "`message` must be a JSON-RPC request: a method and an `id`",
        )),
    }
}

/// A registered stdio server of the caller's organization: another organization's is 404, one
/// of another protocol 422.
async fn stdio_server(
    state: &AppState,
    principal: &Principal,
    id_or_name: &str,
) -> Result<std::sync::Arc<ResolvedServer>, ApiError> {
    let server = resolve(state, principal, id_or_name).await?;
    if server.record.protocol != ServerProtocol::Stdio {
        return Err(ApiError::new(
            ErrorCode::Validation,
            "not a stdio server: /stdio/* reaches only servers registered with protocol stdio",
        ));
    }
    Ok(server)
}

fn delivery_json(delivered: usize, dropped: usize) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "delivered": delivered, "dropped": dropped }))
}

/// `GET /sse/events`.
pub(super) async fn events(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let principal = admin(&auth, &req, &state)?;
    let scope = scope_of(principal);
    // Subscribed before the answer leaves: whatever happens after the client sees the headers
    // is on the stream.
    let rx = state.hub.subscribe();
    let first = stream::once(async { Ok::<_, actix_web::Error>(Bytes::from_static(b": subscribed\n\n")) });
    let rest = stream::unfold(rx, move |mut rx| async move {
        // The keep-alive deadline counts from what this stream last sent, not from events of
        // other organizations it skipped.
        let deadline = tokio::time::Instant::now() + KEEP_ALIVE;
        loop {
            let chunk = match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => sse::keep_alive(),
                Ok(Ok(event)) => {
                    if !visible(&scope, &event) {
                        continue;
                    }
                    let (name, data) = event_json(&event);
                    sse::encode(None, Some(name), &data.to_string())
                }
                Ok(Err(RecvError::Lagged(skipped))) => {
                    sse::encode(None, Some("lagged"), &json!({ "skipped": skipped }).to_string())
                }
                Ok(Err(RecvError::Closed)) => return None,
            };
            return Some((Ok::<_, actix_web::Error>(chunk), rx));
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(first.chain(rest)))
}

fn visible(scope: &SessionScope, event: &HubEvent) -> bool {
    event.org_id == scope.org_id && scope.namespace_id.is_none_or(|ns| event.namespace_id == Some(ns))
}

/// The event's SSE name and its data.
fn event_json(event: &HubEvent) -> (&'static str, Value) {
    let at = event.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    match &event.kind {
        HubEventKind::SessionOpened {
            session_id,
            server_id,
            transport,
        }
        | HubEventKind::SessionClosed {
            session_id,
            server_id,
            transport,
        } => {
            let name = if matches!(event.kind, HubEventKind::SessionOpened { .. }) {
                "session_opened"
            } else {
                "session_closed"
            };
            (
                name,
                json!({
                    "type": name,
                    "at": at,
                    "session_id": session_id,
                    "server_id": server_id,
                    "namespace_id": event.namespace_id,
                    "transport": transport.as_str(),
                }),
            )
        }
        HubEventKind::Broadcast {
            transport,
            server_id,
            session_id,
            method,
            delivered,
            dropped,
        } => (
            "broadcast",
            json!({
                "type": "broadcast",
                "at": at,
                "transport": transport.map(ClientTransport::as_str),
                "server_id": server_id,
                "session_id": session_id,
                "method": method,
                "delivered": delivered,
                "dropped": dropped,
            }),
        ),
    }
}

/// Audits an administrator's message: the method and where it went, never its params.
fn audit(
    state: &AppState,
    req: &HttpRequest,
    principal: &Principal,
    action: &str,
    target: Option<(&str, String)>,
    after: Value,
) {
    let mut event = AuditEvent::new(action, crate::audit::actor(principal))
        .after(after)
        .context(&crate::audit::context(req));
    if let Some((kind, id)) = target {
        event = event.target(kind, id);
    }
    state.auditor.record(principal.org_id, event);
}

/// `POST /sse/broadcast`: to legacy HTTP+SSE sessions.
pub(super) async fn sse_broadcast(
    req: HttpRequest,
    body: web::Json<BroadcastBody>,
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    broadcast(ClientTransport::Sse, &req, body.into_inner(), &state, &auth).await
}

/// `POST /ws/broadcast`: to WebSocket sessions.
pub(super) async fn ws_broadcast(
    req: HttpRequest,
    body: web::Json<BroadcastBody>,
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    broadcast(ClientTransport::WebSocket, &req, body.into_inner(), &state, &auth).await
}

async fn broadcast(
    transport: ClientTransport,
    req: &HttpRequest,
    body: BroadcastBody,
    state: &AppState,
    auth: &Authenticated,
) -> Result<HttpResponse, ApiError> {
    let principal = admin(auth, req, state)?;
    let message = notification(body.message)?;
    let server_id = match body.server_id.as_deref() {
        Some(id) => Some(resolve(state, principal, id).await?.record.id),
        None => None,
    };
    let scope = SessionScope {
        transport: Some(transport),
        server_id,
        ..scope_of(principal)
    };
    let d = state.hub.push(&scope, &message);
    audit(
        state,
        req,
        principal,
        actions::ADMIN_BROADCAST,
        server_id.map(|s| ("server", s.to_string())),
        json!({"transport": transport.as_str(), "method": message.method, "delivered": d.delivered, "dropped": d.dropped}),
    );
    tracing::info!(
        org.id = %principal.org_id,
        transport = transport.as_str(),
        mcp.method = %message.method,
        delivered = d.delivered,
        dropped = d.dropped,
        "admin broadcast"
    );
    Ok(delivery_json(d.delivered, d.dropped))
}

/// `POST /ws/send`: to one WebSocket session of the organization.
pub(super) async fn ws_send(
    req: HttpRequest,
    body: web::Json<SendBody>,
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let principal = admin(&auth, &req, &state)?;
    let body = body.into_inner();
    let message = notification(body.message)?;
    let not_found = || ApiError::new(ErrorCode::NotFound, "no such WebSocket session");
    let id = body.session_id.parse::<uuid::Uuid>().map_err(|_| not_found())?;
    let scope = SessionScope {
        transport: Some(ClientTransport::WebSocket),
        session_id: Some(SessionId::from_uuid(id)),
        ..scope_of(principal)
    };
    let d = state.hub.push(&scope, &message);
    if d.matched == 0 {
        return Err(not_found());
    }
    audit(
        &state,
        &req,
        principal,
        actions::ADMIN_WS_SEND,
        Some(("session", id.to_string())),
        json!({"method": message.method, "delivered": d.delivered, "dropped": d.dropped}),
    );
    Ok(delivery_json(d.delivered, d.dropped))
}

/// `POST /stdio/execute`: the answer is the JSON-RPC answer (an error object when the server
/// failed, timed out or a policy denied the request).
pub(super) async fn stdio_execute(
    req: HttpRequest,
    body: web::Json<ServerMessage>,
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let principal = admin(&auth, &req, &state)?;
    let body = body.into_inner();
    let request = request(body.message)?;
    let server = stdio_server(&state, principal, &body.server).await?;
    audit(
        &state,
        &req,
        principal,
        actions::ADMIN_STDIO_EXECUTE,
        Some(("server", server.record.id.to_string())),
        json!({"method": request.method}),
    );
    let session = open_shared(&state, &req, principal, &server)
        .await
        .map_err(open_error)?;
    let answers = exchange(&session, vec![Message::Request(request)]).await;
    state.hub.close(session.id());
    match answers.into_iter().next() {
        Some(answer) => Ok(HttpResponse::Ok().json(answer)),
        None => Err(ApiError::internal(std::io::Error::other(
            "the pipeline left a request unanswered",
        ))),
    }
}

fn open_error(e: ErrorObject) -> ApiError {
    if e.code == codes::LIMIT_REACHED {
        ApiError::new(ErrorCode::RateLimited, e.message)
    } else {
        ApiError::new(ErrorCode::Unavailable, e.message)
    }
}

/// `GET /stdio/process`.
pub(super) async fn stdio_processes(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let principal = admin(&auth, &req, &state)?;
    let processes: Vec<Value> = state
        .hub
        .stdio_processes(principal.org_id, principal.namespace)
        .iter()
        .map(process_json)
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "processes": processes })))
}

fn process_json(p: &StdioProcess) -> Value {
    json!({
        "server_id": p.server_id,
        "server_name": p.server_name,
        "namespace_id": p.namespace_id,
        "pid": p.pid,
        "phase": p.phase.as_str(),
        "mode": p.mode.as_str(),
        "session_id": p.session_id,
        "clients": p.clients,
        "in_flight": p.in_flight,
    })
}

/// `POST /stdio/send`: a notification to the server's running shared stdio process (404 when
/// none runs: this never starts one).
pub(super) async fn stdio_send(
    req: HttpRequest,
    body: web::Json<ServerMessage>,
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let principal = admin(&auth, &req, &state)?;
    let body = body.into_inner();
    let message = notification(body.message)?;
    if GATEWAY_MANAGED.contains(&message.method.as_str()) {
        return Err(ApiError::new(
            ErrorCode::Validation,
            "the gateway sends notifications/initialized and notifications/cancelled itself",
        ));
    }
    let server = stdio_server(&state, principal, &body.server).await?;
    let not_running = || {
        ApiError::new(
            ErrorCode::NotFound,
            "no shared stdio process of this server is running",
        )
    };
    let upstream = state
        .hub
        .shared_upstream(principal.org_id, server.record.id)
        .filter(|u| u.pid().is_some())
        .ok_or_else(not_running)?;
    let method = message.method.clone();
    if !upstream.notify_if_connected(message).await {
        return Err(not_running());
    }
    audit(
        &state,
        &req,
        principal,
        actions::ADMIN_STDIO_SEND,
        Some(("server", server.record.id.to_string())),
        json!({"method": method}),
    );
    Ok(HttpResponse::Ok().json(json!({ "sent": true })))
}
