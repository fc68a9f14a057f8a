//! Plain JSON-RPC over HTTP on `/servers/{id}/rpc`, for callers that do not speak MCP's
//! session handshake: each POST (one message or a batch) runs on the server's shared upstream
//! session, which the gateway initializes itself when no client has.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use gateway_transport::client::ClientTransport;
use gateway_transport::hub::SessionMode;
use gateway_types::jsonrpc::{Message, Payload, Request, RequestId, Version};
use serde_json::{Map, json};
use tokio::sync::mpsc;

use super::{check_origin, mcp_principal, open_session, parse_body, resolve, rpc_error};
use crate::authn::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;

/// POST a JSON-RPC request or batch; the answers come back in the body.
pub(super) async fn call(
    req: HttpRequest,
    body: Bytes,
    path: web::Path<String>,
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let principal = mcp_principal(&auth)?;
    check_origin(&req, &state)?;
    let payload = match parse_body(&body) {
        Ok(p) => p,
        Err(resp) => return Ok(*resp),
    };
    let server = resolve(&state, principal, &path).await?;
    let session = match open_session(
        &state,
        &req,
        principal,
        &server,
        ClientTransport::Rpc,
        Some(SessionMode::Shared),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return Ok(rpc_error(StatusCode::OK, None, e)),
    };
    // The gateway initializes the shared upstream when no MCP client has.
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
    let (messages, batch) = match payload {
        Payload::Single(m) => (vec![m], false),
        Payload::Batch(b) => (b, true),
    };
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
    state.hub.close(session.id());
    Ok(match (batch, answers.len()) {
        (_, 0) => HttpResponse::Accepted().finish(),
        (false, _) => HttpResponse::Ok().json(answers.remove(0)),
        (true, _) => HttpResponse::Ok().json(answers),
    })
}
