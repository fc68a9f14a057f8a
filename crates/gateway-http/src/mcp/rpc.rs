//! Plain JSON-RPC over HTTP on `/servers/{id}/rpc`, for callers that do not speak MCP's
//! session handshake: each POST (one message or a batch) runs on the server's shared upstream
//! session, which the gateway initializes itself when no client has.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use gateway_auth::principal::Principal;
use gateway_transport::client::{ClientSession, ClientTransport};
use gateway_transport::error::codes;
use gateway_transport::hub::SessionMode;
use gateway_types::jsonrpc::{ErrorObject, Message, Payload, Request, RequestId, Version};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::{
    Target, check_origin, mcp_principal, open_session, open_target, parse_body, resolve, rpc_error, target_of,
};
use crate::authn::Authenticated;
use crate::error::ApiError;
use crate::servers_cache::ResolvedServer;
use crate::state::AppState;

/// POST a JSON-RPC request or batch; the answers come back in the body.
pub(super) async fn call(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    run(req, body, state, auth, false).await
}

/// POST a JSON-RPC batch (a JSON array, even of one); the answers come back as an array.
pub(super) async fn batch(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    run(req, body, state, auth, true).await
}

async fn run(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
    auth: Authenticated,
    batch_only: bool,
) -> Result<HttpResponse, ApiError> {
    let principal = mcp_principal(&auth)?;
    check_origin(&req, &state)?;
    let payload = match parse_body(&body) {
        Ok(p) => p,
        Err(resp) => return Ok(*resp),
    };
    let (messages, batch) = match payload {
        Payload::Single(_) if batch_only => {
            return Ok(rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                ErrorObject::new(
                    codes::INVALID_REQUEST,
                    "a batch (a JSON array of messages) is required",
                ),
            ));
        }
        Payload::Single(m) => (vec![m], false),
        Payload::Batch(b) => (b, true),
    };
    let session = match open_rpc(&state, &req, principal).await? {
        Ok(s) => s,
        Err(e) => return Ok(rpc_error(StatusCode::OK, None, e)),
    };
    let mut answers = exchange(&session, messages).await;
    state.hub.close(session.id());
    Ok(match (batch, answers.len()) {
        (_, 0) if !batch_only => HttpResponse::Accepted().finish(),
        (false, _) => HttpResponse::Ok().json(answers.remove(0)),
        (true, _) => HttpResponse::Ok().json(answers),
    })
}

/// GET: what a JSON-RPC caller can use here: the methods, and the tools, prompts, resources
/// and resource templates (with their schemas) the caller may see.
pub(super) async fn introspection(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let principal = mcp_principal(&auth)?;
    check_origin(&req, &state)?;
    let session = match open_rpc(&state, &req, principal).await? {
        Ok(s) => s,
        Err(e) => return Ok(rpc_error(StatusCode::OK, None, e)),
    };
    let lists = [
        ("tools/list", "tools"),
        ("prompts/list", "prompts"),
        ("resources/list", "resources"),
        ("resources/templates/list", "resourceTemplates"),
    ];
    let requests = lists
        .iter()
        .enumerate()
        .map(|(i, (method, _))| {
            Message::Request(Request {
                jsonrpc: Version,
                id: RequestId::Number(i64::try_from(i).unwrap_or_default()),
                method: (*method).to_owned(),
                params: None,
                extra: Map::new(),
            })
        })
        .collect();
    let answers = exchange(&session, requests).await;
    let initialized = session.upstream().initialize_result();
    state.hub.close(session.id());
    let mut out = serde_json::Map::new();
    for (i, (_, field)) in lists.iter().enumerate() {
        let id = RequestId::Number(i64::try_from(i).unwrap_or_default());
        let items = answers
            .iter()
            .find_map(|m| match m {
                Message::Response(r) if r.id == id => r.result.get(*field).cloned(),
                _ => None,
            })
            .unwrap_or_else(|| json!([]));
        out.insert((*field).to_owned(), items);
    }
    out.insert(
        "methods".into(),
        json!([
            "ping",
            "tools/list",
            "tools/call",
            "prompts/list",
            "prompts/get",
            "resources/list",
            "resources/templates/list",
            "resources/read",
            "completion/complete",
            "logging/setLevel"
        ]),
    );
    if let Some(init) = initialized {
        out.insert(
            "serverInfo".into(),
            init.get("serverInfo").cloned().unwrap_or(Value::Null),
        );
        out.insert(
            "capabilities".into(),
            init.get("capabilities").cloned().unwrap_or(Value::Null),
        );
    }
    Ok(HttpResponse::Ok().json(Value::Object(out)))
}

/// A plain JSON-RPC session on what the request addresses: a server's shared upstream
/// session, or a namespace federation of the caller's own; initialized by the gateway.
async fn open_rpc(
    state: &AppState,
    req: &HttpRequest,
    principal: &Principal,
) -> Result<Result<Arc<ClientSession>, ErrorObject>, ApiError> {
    Ok(match target_of(req) {
        Target::Server(id) => {
            let server = resolve(state, principal, &id).await?;
            open_shared(state, req, principal, &server).await
        }
        target => match open_target(state, req, principal, &target, ClientTransport::Rpc, None).await? {
            Ok(session) => {
                introduce(&session).await;
                Ok(session)
            }
            Err(e) => Err(e),
        },
    })
}

/// Opens a plain JSON-RPC client session on the server's shared upstream session, and
/// initializes that upstream when no MCP client has (the gateway introduces itself as
/// `mcp-gateway-rpc`). The caller closes the session when done; the upstream lives on.
pub(super) async fn open_shared(
    state: &AppState,
    req: &HttpRequest,
    principal: &Principal,
    server: &ResolvedServer,
) -> Result<Arc<ClientSession>, ErrorObject> {
    let session = open_session(
        state,
        req,
        principal,
        server,
        ClientTransport::Rpc,
        Some(SessionMode::Shared),
    )
    .await?;
    introduce(&session).await;
    Ok(session)
}

/// Initializes the session's upstream as `mcp-gateway-rpc` unless a client already did.
async fn introduce(session: &ClientSession) {
    if session.upstream().initialize_result().is_none() {
        let (tx, mut rx) = mpsc::channel(2);
        let init = Request {
            jsonrpc: Version,
            id: RequestId::String("gateway-init".into()),
            method: "initialize".into(),
            params: Some(json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "mcp-gateway-rpc", "version": env!("CARGO_PKG_VERSION")}
            })),
            extra: Map::new(),
        };
        session.handle(Message::Request(init), &tx).await;
        if let Some(Message::Response(_)) = rx.recv().await {
            let done =
                serde_json::from_value(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
            if let Ok(n) = done {
                session.handle(n, &tx).await;
            }
        }
    }
}

/// Runs `messages` through the session's pipeline, in order, and collects the answers to its
/// requests (notifications and responses produce none); every request is answered, by the
/// upstream or with the gateway's error.
pub(super) async fn exchange(session: &ClientSession, messages: Vec<Message>) -> Vec<Message> {
    let requests = messages
        .iter()
        .filter(|m| matches!(m, Message::Request(_)))
        .count();
    let (tx, mut rx) = mpsc::channel(64);
    for m in messages {
        session.handle(m, &tx).await;
    }
    drop(tx);
    let mut answers = Vec::with_capacity(requests);
    while answers.len() < requests {
        match rx.recv().await {
            Some(m @ (Message::Response(_) | Message::Error(_))) => answers.push(m),
            Some(_) => {}
            None => break,
        }
    }
    answers
}
