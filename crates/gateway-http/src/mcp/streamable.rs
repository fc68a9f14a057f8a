//! Streamable HTTP (MCP 2025-03-26, 2025-06-18, 2025-11-25) on `/servers/{id}/mcp`.
//!
//! - POST `initialize` (no session header) opens a session; the answer carries
//!   `Mcp-Session-Id`. Every later POST, GET and DELETE must carry it: missing → 400, unknown,
//!   closed or someone else's → 404 (the client then re-initializes).
//! - A POST of notifications or responses only → 202. A POST with requests → the answer as
//!   JSON when nothing else came first, otherwise an SSE stream carrying the related messages
//!   (progress, server-to-client requests) and then the answer.
//! - GET opens the session's stream of server-initiated messages; `Last-Event-ID` resumes the
//!   GET stream or a POST's stream from the session's bounded event log.
//! - `MCP-Protocol-Version`, when sent, must be a supported revision (else 400).
//! - A 2026-07-28 (stateless) request is answered by [`super::modern`]; GET and DELETE with a
//!   modern `MCP-Protocol-Version` are 405.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures_util::stream;
use gateway_transport::client::{ClientSession, ClientTransport};
use gateway_transport::error::codes;
use gateway_transport::events::{GET_STREAM, Next, StreamKey};
use gateway_transport::sse;
use gateway_types::ids::SessionId;
use gateway_types::jsonrpc::{ErrorObject, Message, Payload};
use tokio::sync::mpsc;

use super::{
    SUPPORTED_VERSIONS, Target, check_origin, lookup_owner, mcp_principal, open_target, parse_body,
    rpc_error, session_matches, target_of,
};
use crate::authn::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// Keep-alive comment interval on idle SSE streams.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// POST: one JSON-RPC message (or a 2025-03-26 batch).
pub(super) async fn post(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let principal = mcp_principal(&auth)?;
    check_origin(&req, &state)?;
    let payload = match parse_body(&body) {
        Ok(p) => p,
        Err(resp) => return Ok(*resp),
    };
    let payload = match payload {
        Payload::Single(Message::Request(r)) if super::modern::is_modern(&req, &r) => {
            return super::modern::post(&req, &state, principal, r).await;
        }
        other => other,
    };
    let (messages, batch) = match payload {
        Payload::Single(m) => (vec![m], false),
        Payload::Batch(b) => (b, true),
    };
    let init = messages
        .iter()
        .any(|m| matches!(m, Message::Request(r) if r.method == "initialize"));
    if init {
        if batch || messages.len() != 1 {
            return Ok(rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                ErrorObject::new(codes::INVALID_REQUEST, "initialize must be sent alone"),
            ));
        }
        let target = target_of(&req);
        let session = match open_target(
            &state,
            &req,
            principal,
            &target,
            ClientTransport::StreamableHttp,
            None,
        )
        .await?
        {
            Ok(s) => s,
            Err(error) => return Ok(rpc_error(StatusCode::OK, messages[0].id().cloned(), error)),
        };
        let (tx, mut rx) = mpsc::channel(4);
        let msg = messages.into_iter().next();
        if let Some(msg) = msg {
            session.handle(msg, &tx).await;
        }
        drop(tx);
        let answer = rx.recv().await;
        return Ok(match answer {
            Some(m @ Message::Response(_)) => HttpResponse::Ok()
                .insert_header((SESSION_HEADER, session.id().to_string()))
                .json(m),
            Some(other) => {
                state.hub.close(session.id());
                HttpResponse::Ok().json(other)
            }
            None => {
                state.hub.close(session.id());
                rpc_error(
                    StatusCode::OK,
                    None,
                    ErrorObject::new(codes::UPSTREAM_UNAVAILABLE, "upstream server unavailable"),
                )
            }
        });
    }

    let session = match session_for(&req, &state, principal, &target_of(&req)) {
        Ok(s) => s,
        Err(resp) => return Ok(*resp),
    };
    if let Some(resp) = check_version(&req) {
        return Ok(resp);
    }
    let requests = messages
        .iter()
        .filter(|m| matches!(m, Message::Request(_)))
        .count();
    let (tx, mut rx) = mpsc::channel::<Message>(64);
    for m in messages {
        session.handle(m, &tx).await;
    }
    drop(tx);
    if requests == 0 {
        return Ok(HttpResponse::Accepted().finish());
    }
    let first = rx.recv().await;
    let Some(first) = first else {
        return Ok(rpc_error(
            StatusCode::OK,
            None,
            ErrorObject::new(codes::INTERNAL_ERROR, "internal error"),
        ));
    };
    let is_answer = matches!(first, Message::Response(_) | Message::Error(_));
    if requests == 1 && is_answer {
        return Ok(HttpResponse::Ok().json(first));
    }
    if batch && !accepts_sse(&req) {
        // Collect the answers of a batch into one JSON array.
        let mut answers = Vec::with_capacity(requests);
        if is_answer {
            answers.push(first);
        }
        while answers.len() < requests {
            match rx.recv().await {
                Some(m @ (Message::Response(_) | Message::Error(_))) => answers.push(m),
                Some(_) => {}
                None => break,
            }
        }
        return Ok(HttpResponse::Ok().json(answers));
    }
    // A stream: pumped into the session's event log on the shared runtime, so that it
    // survives a dropped connection and can be resumed.
    let key = session.events().new_stream();
    let pump_session = Arc::clone(&session);
    state.runtime.spawn(async move {
        let mut answered = 0usize;
        let mut next = Some(first);
        while let Some(m) = next.take() {
            if matches!(m, Message::Response(_) | Message::Error(_)) {
                answered += 1;
            }
            let last = answered >= requests;
            if let Ok(text) = serde_json::to_string(&m) {
                pump_session.events().push(key, text.into(), last);
            }
            if last {
                break;
            }
            next = rx.recv().await;
        }
        if answered < requests {
            // Every request is answered by design; should one ever not be, end the stream with an
            // error rather than leave the client waiting on it forever.
            let lost = Message::Error(gateway_types::jsonrpc::ErrorResponse::new(
                None,
                ErrorObject::new(codes::INTERNAL_ERROR, "the upstream ended before answering"),
            ));
            if let Ok(text) = serde_json::to_string(&lost) {
                pump_session.events().push(key, text.into(), true);
            }
        }
    });
    Ok(sse_response(session, key, 0))
}

/// GET: the stream of server-initiated messages, or a resumed stream.
pub(super) async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let principal = mcp_principal(&auth)?;
    check_origin(&req, &state)?;
    if super::modern::is_modern_header(&req) {
        return Ok(super::modern::method_not_allowed());
    }
    let session = match session_for(&req, &state, principal, &target_of(&req)) {
        Ok(s) => s,
        Err(resp) => return Ok(*resp),
    };
    if !accepts_sse(&req) {
        return Err(ApiError::new(
            gateway_types::error::ErrorCode::BadRequest,
            "the GET stream needs Accept: text/event-stream",
        ));
    }
    let last_event = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(last) = last_event {
        let Some(key) = session.events().stream_of(last) else {
            return Err(ApiError::new(
                gateway_types::error::ErrorCode::NotFound,
                "that event is no longer available",
            ));
        };
        start_get_pump(&state, &session);
        return Ok(sse_response(session, key, last));
    }
    start_get_pump(&state, &session);
    let from = session.events().latest();
    Ok(sse_response(session, GET_STREAM, from))
}

/// DELETE: ends the session.
pub(super) async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let principal = mcp_principal(&auth)?;
    check_origin(&req, &state)?;
    if super::modern::is_modern_header(&req) {
        return Ok(super::modern::method_not_allowed());
    }
    let session = match session_for(&req, &state, principal, &target_of(&req)) {
        Ok(s) => s,
        Err(resp) => return Ok(*resp),
    };
    state.hub.close(session.id());
    Ok(HttpResponse::NoContent().finish())
}

/// Moves the session's server-initiated messages into its event log (once per session, until
/// the session closes).
fn start_get_pump(state: &AppState, session: &Arc<ClientSession>) {
    let Some(mut rx) = session.take_outbound() else {
        return;
    };
    let session = Arc::clone(session);
    state.runtime.spawn(async move {
        loop {
            let m = tokio::select! {
                m = rx.recv() => m,
                () = session.closed() => None,
            };
            let Some(m) = m else { break };
            if let Ok(text) = serde_json::to_string(&m) {
                session.events().push(GET_STREAM, text.into(), false);
            }
        }
    });
}

/// An SSE response following one stream of the session's event log from `after`.
fn sse_response(session: Arc<ClientSession>, key: StreamKey, after: u64) -> HttpResponse {
    let guard = session.stream_guard();
    let body = stream::unfold(
        (session, after, false, guard),
        move |(session, after, done, guard)| async move {
            if done {
                return None;
            }
            let next = tokio::time::timeout(KEEP_ALIVE, session.events().next(key, after)).await;
            match next {
                Err(_) => {
                    if session.is_closed() {
                        return None;
                    }
                    Some((
                        Ok::<_, actix_web::Error>(sse::keep_alive()),
                        (session, after, false, guard),
                    ))
                }
                Ok(Next::Lost) => None,
                Ok(Next::Event(seq, data, last)) => {
                    let bytes = sse::encode(Some(&seq.to_string()), Some("message"), &data);
                    Some((Ok(bytes), (session, seq, last, guard)))
                }
            }
        },
    );
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body)
}

/// The session named by the request's `Mcp-Session-Id`, owned by the caller, on this server.
fn session_for(
    req: &HttpRequest,
    state: &AppState,
    principal: &gateway_auth::principal::Principal,
    target: &Target,
) -> Result<Arc<ClientSession>, Box<HttpResponse>> {
    let Some(header) = req.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()) else {
        return Err(Box::new(rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            ErrorObject::new(
                codes::INVALID_REQUEST,
                "Mcp-Session-Id header required (send initialize first)",
            ),
        )));
    };
    let not_found = || {
        Box::new(rpc_error(
            StatusCode::NOT_FOUND,
            None,
            ErrorObject::new(codes::INVALID_REQUEST, "session not found: initialize a new one"),
        ))
    };
    let id = header.trim().parse::<uuid::Uuid>().map_err(|_| not_found())?;
    let session = state
        .hub
        .get(SessionId::from_uuid(id), &lookup_owner(principal))
        .filter(|s| session_matches(s, target))
        .ok_or_else(not_found)?;
    Ok(session)
}

fn check_version(req: &HttpRequest) -> Option<HttpResponse> {
    let v = req.headers().get(VERSION_HEADER)?;
    let ok = v.to_str().is_ok_and(|v| SUPPORTED_VERSIONS.contains(&v.trim()));
    (!ok).then(|| {
        rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            ErrorObject::new(
                codes::INVALID_REQUEST,
                format!(
                    "unsupported MCP-Protocol-Version; supported: {}",
                    SUPPORTED_VERSIONS.join(", ")
                ),
            ),
        )
    })
}

fn accepts_sse(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream") || v.contains("*/*"))
}
