//! WebSocket on `/servers/{id}/ws`: one JSON-RPC message per text frame (subprotocol `mcp`
//! when the client asks for it), a session per connection, ping every 20 s and the connection
//! closed when pongs stop for 60 s.

use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason};
use futures_util::StreamExt;
use gateway_transport::client::ClientTransport;
use gateway_transport::error::{codes, error_message};
use gateway_types::error::ErrorCode;
use gateway_types::jsonrpc::{ErrorObject, Payload};

use super::{check_origin, mcp_principal, open_failure, open_target, target_of};
use crate::authn::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;

const PING_EVERY: Duration = Duration::from_secs(20);
const PONG_TIMEOUT: Duration = Duration::from_secs(60);

/// GET with `Upgrade: websocket`.
pub(super) async fn open(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let principal = mcp_principal(&auth)?;
    check_origin(&req, &state)?;
    let target = target_of(&req);
    let session = open_target(&state, &req, principal, &target, ClientTransport::WebSocket, None)
        .await?
        .map_err(open_failure)?;
    let wants_mcp = req
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim() == "mcp"));
    let (mut response, mut ws, stream) = match actix_ws::handle(&req, body) {
        Ok(parts) => parts,
        Err(_) => {
            state.hub.close(session.id());
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "expected a WebSocket upgrade",
            ));
        }
    };
    if wants_mcp {
        response.headers_mut().insert(
            actix_web::http::header::SEC_WEBSOCKET_PROTOCOL,
            actix_web::http::header::HeaderValue::from_static("mcp"),
        );
    }
    let Some(mut outbound) = session.take_outbound() else {
        state.hub.close(session.id());
        return Err(ApiError::internal(std::io::Error::other(
            "new session without its queue",
        )));
    };
    session.set_streaming(true);
    let max = state.config.server.max_body_bytes;
    let hub = std::sync::Arc::clone(&state.hub);
    let runtime = state.runtime.clone();
    let mut stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    actix_web::rt::spawn(async move {
        let reply = session.sender();
        let mut ping = tokio::time::interval(PING_EVERY);
        let mut last_pong = Instant::now();
        let reason = loop {
            tokio::select! {
                frame = stream.next() => match frame {
                    Some(Ok(AggregatedMessage::Text(text))) => {
                        let messages = match serde_json::from_str::<Payload>(&text) {
                            Ok(Payload::Single(m)) => vec![m],
                            Ok(Payload::Batch(b)) => b,
                            Err(_) => {
                                let e = error_message(None, ErrorObject::new(codes::PARSE_ERROR, "Parse error"));
                                let _ = reply.try_send(e);
                                continue;
                            }
                        };
                        let session = std::sync::Arc::clone(&session);
                        let reply = reply.clone();
                        runtime.spawn(async move {
                            for m in messages {
                                session.handle(m, &reply).await;
                            }
                        });
                    }
                    Some(Ok(AggregatedMessage::Binary(_))) => {
                        break Some(CloseReason { code: CloseCode::Unsupported, description: Some("binary frames are not MCP".into()) });
                    }
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        if ws.pong(&bytes).await.is_err() { break None; }
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => last_pong = Instant::now(),
                    Some(Ok(AggregatedMessage::Close(_))) | None => break None,
                    Some(Err(_)) => break Some(CloseReason { code: CloseCode::Size, description: Some("message too large or malformed".into()) }),
                },
                out = outbound.recv() => match out {
                    Some(m) => {
                        let text = serde_json::to_string(&m).unwrap_or_default();
                        if ws.text(text).await.is_err() { break None; }
                    }
                    None => break None,
                },
                _ = ping.tick() => {
                    if last_pong.elapsed() > PONG_TIMEOUT {
                        break Some(CloseReason { code: CloseCode::Away, description: Some("no pong".into()) });
                    }
                    if ws.ping(b"").await.is_err() { break None; }
                }
            }
        };
        hub.close(session.id());
        let _ = ws.close(reason).await;
    });
    Ok(response)
}
