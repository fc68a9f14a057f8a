//! Legacy HTTP+SSE (MCP 2024-11-05) on `/servers/{id}/sse`: GET opens the session's stream,
//! whose first event, `endpoint`, names where to POST messages (this same path with
//! `?sessionId=`); answers and server-initiated messages all arrive on the stream. The session
//! ends when the stream does.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use gateway_transport::client::ClientTransport;
use gateway_transport::error::codes;
use gateway_transport::hub::Hub;
use gateway_transport::sse;
use gateway_types::ids::SessionId;
use gateway_types::jsonrpc::{ErrorObject, Payload};
use serde::Deserialize;

use super::{
    check_origin, lookup_owner, mcp_principal, open_failure, open_target, parse_body, rpc_error,
    session_matches, target_of,
};
use crate::authn::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;

const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Closes the session when the stream is dropped (the client went away).
struct CloseOnDrop {
    hub: Arc<Hub>,
    id: SessionId,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.hub.close(self.id);
    }
}

/// GET: opens a session and its stream.
pub(super) async fn open(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let principal = mcp_principal(&auth)?;
    check_origin(&req, &state)?;
    let target = target_of(&req);
    let session = open_target(&state, &req, principal, &target, ClientTransport::Sse, None)
        .await?
        .map_err(open_failure)?;
    let Some(rx) = session.take_outbound() else {
        return Err(ApiError::internal(std::io::Error::other(
            "new session without its queue",
        )));
    };
    session.set_streaming(true);
    let endpoint = format!("{}?sessionId={}", req.path(), session.id());
    let first = sse::encode(None, Some("endpoint"), &endpoint);
    let guard = CloseOnDrop {
        hub: Arc::clone(&state.hub),
        id: session.id(),
    };
    // The endpoint event, then every message for the client; the guard ends the session when
    // the client goes away (the body is dropped).
    let messages = stream::unfold((rx, guard, session), |(mut rx, guard, session)| async move {
        let bytes = match tokio::time::timeout(KEEP_ALIVE, rx.recv()).await {
            Err(_) => sse::keep_alive(),
            Ok(None) => return None,
            Ok(Some(m)) => {
                session.touch();
                let text = serde_json::to_string(&m).unwrap_or_default();
                sse::encode(None, Some("message"), &text)
            }
        };
        Some((Ok::<_, actix_web::Error>(bytes), (rx, guard, session)))
    });
    let body = stream::once(async move { Ok::<_, actix_web::Error>(first) }).chain(messages);
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body))
}

#[derive(Deserialize)]
pub(super) struct SessionQuery {
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
}

/// POST `?sessionId=`: a message for the session; answers go to the stream.
pub(super) async fn message(
    req: HttpRequest,
    body: Bytes,
    query: web::Query<SessionQuery>,
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let principal = mcp_principal(&auth)?;
    check_origin(&req, &state)?;
    let not_found = || {
        rpc_error(
            StatusCode::NOT_FOUND,
            None,
            ErrorObject::new(codes::INVALID_REQUEST, "session not found"),
        )
    };
    let Some(id) = query
        .session_id
        .as_deref()
        .and_then(|s| s.parse::<uuid::Uuid>().ok())
    else {
        return Ok(not_found());
    };
    let Some(session) = state
        .hub
        .get(SessionId::from_uuid(id), &lookup_owner(principal))
        .filter(|s| session_matches(s, &target_of(&req)))
    else {
        return Ok(not_found());
    };
    let payload = match parse_body(&body) {
        Ok(p) => p,
        Err(resp) => return Ok(*resp),
    };
    let messages = match payload {
        Payload::Single(m) => vec![m],
        Payload::Batch(b) => b,
    };
    let reply = session.sender();
    // Answers go to the stream: handle on the shared runtime and answer 202 at once.
    state.runtime.spawn(async move {
        for m in messages {
            session.handle(m, &reply).await;
        }
    });
    Ok(HttpResponse::Accepted().finish())
}
