//! MCP 2026-07-28 (stateless) requests on the Streamable HTTP endpoints (`/servers/{id}/mcp`,
//! `/mcp`, `/namespaces/{ns}/mcp`), for upstreams of the legacy era.
//!
//! A POST whose request carries a `_meta` protocol version (or an `MCP-Protocol-Version` header
//! naming no legacy revision) and is not `initialize` is modern ([`era::classify`]). Its
//! mirrored headers are validated (400 `HeaderMismatch`), its version checked (400
//! `UnsupportedProtocolVersion`), `Mcp-Session-Id` is ignored, and it runs on a pooled,
//! initialized legacy upstream session ([`Carrier`]) keyed by principal, target and declared
//! client capabilities. `server/discover` is answered by the gateway from the upstream's
//! `initialize` result. A server-to-client request from the upstream becomes an
//! `InputRequiredResult` ([`era::mrtr`]); the retry with `requestState` and `inputResponses`
//! resumes the call. The answer is JSON, or an SSE stream when notifications about the request
//! (progress) come first; closing that stream cancels the request upstream. GET and DELETE with
//! a modern `MCP-Protocol-Version` are 405. See `gateway-transport/src/era/README.md`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use futures_util::stream;
use gateway_auth::principal::Principal;
use gateway_transport::client::ClientTransport;
use gateway_transport::era::carrier::{Call, Carrier, Event};
use gateway_transport::era::mrtr::{MrtrStore, PendingInput};
use gateway_transport::era::{self, MirroredHeaders, RequestMeta};
use gateway_transport::error::codes;
use gateway_transport::sse;
use gateway_types::jsonrpc::{ErrorObject, ErrorResponse, Message, Request, RequestId, Response, Version};
use serde_json::{Map, Value};

use super::{SUPPORTED_VERSIONS, Target, open_target, owner_key, rpc_error, target_of};
use crate::error::ApiError;
use crate::state::AppState;

/// How long a call may wait for the client's input.
const INPUT_TTL: Duration = Duration::from_secs(300);
/// How many calls may wait for input at once, in this process.
const INPUT_MAX: usize = 1024;

/// Every revision the endpoints speak, newest first (what `server/discover` and
/// `UnsupportedProtocolVersion` list).
pub(crate) fn supported_versions() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = era::MODERN_VERSIONS.to_vec();
    v.extend(SUPPORTED_VERSIONS.iter().rev());
    v
}

/// The modern side's state: pooled carriers and calls waiting for input.
pub(crate) struct ModernState {
    carriers: Mutex<HashMap<String, Arc<Carrier>>>,
    mrtr: MrtrStore,
    input_keys: AtomicU64,
}

impl Default for ModernState {
    fn default() -> Self {
        Self {
            carriers: Mutex::new(HashMap::new()),
            mrtr: MrtrStore::new(INPUT_TTL, INPUT_MAX),
            input_keys: AtomicU64::new(1),
        }
    }
}

impl std::fmt::Debug for ModernState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModernState")
            .field("mrtr", &self.mrtr)
            .finish_non_exhaustive()
    }
}

impl ModernState {
    /// The carrier for `principal` on `target` with the capabilities in `meta`, opened (and
    /// pooled) when there is none or it was closed.
    async fn carrier(
        &self,
        state: &AppState,
        req: &HttpRequest,
        principal: &Principal,
        target: &Target,
        meta: &RequestMeta,
    ) -> Result<Result<Arc<Carrier>, ErrorObject>, ApiError> {
        let (org, who) = owner_key(principal);
        let key = format!("{org}|{who}|{target:?}|{}", meta.client_capabilities);
        let existing = {
            let mut carriers = self.carriers.lock().unwrap_or_else(PoisonError::into_inner);
            carriers.retain(|_, c| !c.is_closed());
            carriers.get(&key).cloned()
        };
        if let Some(c) = existing {
            return Ok(Ok(c));
        }
        let session = match open_target(
            state,
            req,
            principal,
            target,
            ClientTransport::StreamableHttp,
            None,
        )
        .await?
        {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        let mut carriers = self.carriers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = carriers.get(&key).filter(|c| !c.is_closed()) {
            // Another request opened one meanwhile: use it, close ours.
            let c = Arc::clone(c);
            drop(carriers);
            state.hub.close(session.id());
            return Ok(Ok(c));
        }
        let carrier = Carrier::new(session, state.runtime.clone());
        carriers.insert(key, Arc::clone(&carrier));
        Ok(Ok(carrier))
    }
}

/// What one modern request is, for answering it.
struct Ctx {
    client_id: RequestId,
    method: String,
    name: Option<String>,
    owner: String,
    meta: RequestMeta,
    sse: bool,
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Whether a GET or DELETE speaks the modern revision (then it is 405: the modern transport has
/// neither).
pub(super) fn is_modern_header(req: &HttpRequest) -> bool {
    header(req, "mcp-protocol-version").is_some_and(|v| era::MODERN_VERSIONS.contains(&v.trim()))
}

/// 405 for a modern GET or DELETE.
pub(super) fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header(("allow", "POST"))
        .finish()
}

/// Whether the request is modern (see the module documentation).
pub(super) fn is_modern(req: &HttpRequest, request: &Request) -> bool {
    era::classify(
        Some(request),
        header(req, "mcp-protocol-version"),
        &SUPPORTED_VERSIONS,
    ) == era::Era::Modern
}

/// Answers one modern request.
pub(super) async fn post(
    req: &HttpRequest,
    state: &AppState,
    principal: &Principal,
    request: Request,
) -> Result<HttpResponse, ApiError> {
    let id = request.id.clone();
    let headers = MirroredHeaders {
        protocol_version: header(req, "mcp-protocol-version"),
        method: header(req, "mcp-method"),
        name: header(req, "mcp-name"),
    };
    if let Err(e) = era::validate_headers(&headers, &request) {
        return Ok(rpc_error(StatusCode::BAD_REQUEST, Some(id), e));
    }
    let meta = RequestMeta::of(&request);
    let version = meta.protocol_version.clone().unwrap_or_default();
    if !era::MODERN_VERSIONS.contains(&version.as_str()) {
        return Ok(rpc_error(
            StatusCode::BAD_REQUEST,
            Some(id),
            era::unsupported_version(&version, &supported_versions()),
        ));
    }
    let ctx = Ctx {
        client_id: id.clone(),
        method: request.method.clone(),
        name: era::mirrored_name(&request).map(str::to_owned),
        owner: owner_key(principal).1,
        meta,
        sse: accepts_sse(req),
    };
    state.modern.mrtr.sweep();

    let params = request.params.as_ref();
    if let Some(token) = params.and_then(|p| p.get("requestState")).and_then(Value::as_str) {
        let pending = match state
            .modern
            .mrtr
            .take(token, &ctx.owner, &ctx.method, ctx.name.as_deref())
        {
            Ok(p) => p,
            Err(e) => return Ok(rpc_error(StatusCode::OK, Some(id), e.to_error_object())),
        };
        let responses = params
            .and_then(|p| p.get("inputResponses"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        return Ok(resume(state, pending, &responses, ctx).await);
    }

    let target = target_of(req);
    let carrier = match state
        .modern
        .carrier(state, req, principal, &target, &ctx.meta)
        .await?
    {
        Ok(c) => c,
        Err(e) => return Ok(rpc_error(StatusCode::OK, Some(id), e)),
    };
    let init = match carrier.initialize(&ctx.meta).await {
        Ok(init) => init,
        Err(e) => return Ok(rpc_error(StatusCode::OK, Some(id), e)),
    };
    if request.method == "server/discover" {
        let result = era::discover_result(&init, &supported_versions());
        return Ok(HttpResponse::Ok().json(Message::Response(Response {
            jsonrpc: Version,
            id,
            result,
            extra: Map::new(),
        })));
    }
    let mut upstream_req = request;
    era::strip_modern_meta(&mut upstream_req);
    let call = carrier.start(upstream_req).await;
    Ok(answer(state, call, ctx).await)
}

/// Answers the input requests of a pending call from the retry's `inputResponses`, then goes on
/// with the call (or asks again for what is still missing).
async fn resume(
    state: &AppState,
    pending: PendingInput,
    responses: &Map<String, Value>,
    ctx: Ctx,
) -> HttpResponse {
    let PendingInput {
        owner,
        method,
        name,
        call,
        requests,
        ids,
        log_level,
    } = pending;
    let mut missing_ids = Vec::new();
    let mut missing = Map::new();
    for (key, upstream_id) in ids {
        match responses.get(&key) {
            Some(result) => call.answer(upstream_id, result.clone()).await,
            None => {
                if let Some(r) = requests.get(&key) {
                    missing.insert(key.clone(), r.clone());
                }
                missing_ids.push((key, upstream_id));
            }
        }
    }
    if !missing_ids.is_empty() {
        let pending = PendingInput {
            owner,
            method,
            name,
            call,
            requests: missing.clone(),
            ids: missing_ids,
            log_level,
        };
        return match state.modern.mrtr.insert(pending) {
            Ok(token) => json_answer(ok(ctx.client_id, era::input_required(missing, &token))),
            Err(_) => json_answer(too_many(ctx.client_id)),
        };
    }
    answer(state, call, ctx).await
}

/// One step of a call: a message to stream before the answer, or the answer.
enum Step {
    Event(Message),
    Last(Message),
}

/// Drives a call to its first step; the answer is JSON, or an SSE stream when notifications
/// come first (and the client accepts SSE).
async fn answer(state: &AppState, call: Call, ctx: Ctx) -> HttpResponse {
    let modern = Arc::clone(&state.modern);
    let mut call = Some(call);
    match step(&modern, &mut call, &ctx).await {
        Step::Last(m) => json_answer(m),
        Step::Event(first) => {
            let body = stream::unfold(
                (Some(first), call, ctx, modern, false),
                |(first, mut call, ctx, modern, done)| async move {
                    if done {
                        return None;
                    }
                    let (message, last) = match first {
                        Some(m) => (m, false),
                        None => match step(&modern, &mut call, &ctx).await {
                            Step::Event(m) => (m, false),
                            Step::Last(m) => (m, true),
                        },
                    };
                    let text = serde_json::to_string(&message).unwrap_or_default();
                    let bytes = sse::encode(None, Some("message"), &text);
                    Some((Ok::<_, actix_web::Error>(bytes), (None, call, ctx, modern, last)))
                },
            );
            HttpResponse::Ok()
                .content_type("text/event-stream")
                .insert_header(("cache-control", "no-cache"))
                .insert_header(("x-accel-buffering", "no"))
                .streaming(body)
        }
    }
}

async fn step(modern: &ModernState, call: &mut Option<Call>, ctx: &Ctx) -> Step {
    loop {
        let Some(c) = call.as_mut() else {
            return Step::Last(error(
                ctx.client_id.clone(),
                ErrorObject::new(codes::INTERNAL_ERROR, "internal error"),
            ));
        };
        match c.next().await {
            Event::Done(m) => {
                *call = None;
                return Step::Last(modernize(m, ctx));
            }
            Event::Notification(n) => {
                let log = n.method == "notifications/message";
                if ctx.sse && (!log || ctx.meta.log_level.is_some()) {
                    return Step::Event(Message::Notification(n));
                }
            }
            Event::Input(r) => {
                if !era::INPUT_METHODS.contains(&ctx.method.as_str()) {
                    c.refuse(r.id, "this request cannot take client input").await;
                    continue;
                }
                if !ctx.meta.supports_input(&r.method) {
                    c.refuse(r.id, "the client did not declare this capability").await;
                    continue;
                }
                let Some(c) = call.take() else { continue };
                let key = format!("input-{}", modern.input_keys.fetch_add(1, Ordering::Relaxed));
                let mut input = Map::new();
                input.insert("method".into(), Value::from(r.method.clone()));
                if let Some(params) = r.params.clone() {
                    input.insert("params".into(), params);
                }
                let mut requests = Map::new();
                requests.insert(key.clone(), Value::Object(input));
                let pending = PendingInput {
                    owner: ctx.owner.clone(),
                    method: ctx.method.clone(),
                    name: ctx.name.clone(),
                    call: c,
                    requests: requests.clone(),
                    ids: vec![(key, r.id)],
                    log_level: ctx.meta.log_level.clone(),
                };
                return Step::Last(match modern.mrtr.insert(pending) {
                    Ok(token) => ok(ctx.client_id.clone(), era::input_required(requests, &token)),
                    Err(_) => too_many(ctx.client_id.clone()),
                });
            }
        }
    }
}

/// The upstream's answer as the modern client sees it: its own id, `resultType`, cache hints,
/// modern error codes.
fn modernize(message: Message, ctx: &Ctx) -> Message {
    match message {
        Message::Response(mut r) => {
            r.id = ctx.client_id.clone();
            era::to_modern_result(&ctx.method, &mut r.result);
            Message::Response(r)
        }
        Message::Error(mut e) => {
            e.id = Some(ctx.client_id.clone());
            era::to_modern_error(&ctx.method, &mut e.error);
            Message::Error(e)
        }
        other => other,
    }
}

/// A JSON answer; an unknown method is 404, as the modern transport requires.
fn json_answer(message: Message) -> HttpResponse {
    let status = match &message {
        Message::Error(e) if e.error.code == codes::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    };
    HttpResponse::build(status).json(message)
}

fn ok(id: RequestId, result: Value) -> Message {
    Message::Response(Response {
        jsonrpc: Version,
        id,
        result,
        extra: Map::new(),
    })
}

fn error(id: RequestId, e: ErrorObject) -> Message {
    Message::Error(ErrorResponse::new(Some(id), e))
}

fn too_many(id: RequestId) -> Message {
    error(
        id,
        ErrorObject::new(
            codes::LIMIT_REACHED,
            "too many requests are waiting for client input; try again later",
        ),
    )
}

fn accepts_sse(req: &HttpRequest) -> bool {
    header(req, "accept").is_some_and(|v| v.contains("text/event-stream") || v.contains("*/*"))
}
