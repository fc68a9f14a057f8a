//! The client-facing MCP endpoints: Streamable HTTP (`/servers/{id}/mcp`), legacy HTTP+SSE
//! (`/servers/{id}/sse`), WebSocket (`/servers/{id}/ws`), plain JSON-RPC
//! (`/servers/{id}/rpc`), the status endpoints and the administrators' endpoints
//! (`/sse/events`, `/sse/broadcast`, `/ws/*`, `/stdio/*`: [`admin`]). The protocol machinery is
//! `gateway-transport`'s; this module maps HTTP onto it.

mod admin;
mod federation;
mod guard;
mod legacy_sse;
mod modern;
mod rpc;
mod status;
mod streamable;
mod ws;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use gateway_auth::principal::{Principal, Subject};
use gateway_auth::rbac::Permission;
use gateway_transport::client::{ClientSession, ClientTransport, Owner};
use gateway_transport::error::codes;
use gateway_transport::hub::{OpenError, SessionMode};
use gateway_types::error::ErrorCode;
use gateway_types::ids::OrgId;
use gateway_types::jsonrpc::{ErrorObject, ErrorResponse, Message, RequestId};

use crate::authn::Authenticated;
use crate::error::ApiError;
use crate::routes::not_allowed;
use crate::servers_cache::ResolvedServer;
use crate::state::AppState;

pub(crate) use guard::{LogGuard, PolicyGuard, SessionGuard};
pub(crate) use modern::ModernState;

/// Protocol revisions of the session-based era the endpoints speak.
pub(crate) const SUPPORTED_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// Route patterns of the MCP transport endpoints: their traffic is logged per exchange by the
/// message pipeline, not per HTTP request.
const MCP_ROUTES: &[&str] = &[
    "/servers/{id}/mcp",
    "/servers/{id}/sse",
    "/servers/{id}/ws",
    "/servers/{id}/rpc",
    "/servers/{id}/rpc/batch",
    "/namespaces/{ns}/mcp",
    "/namespaces/{ns}/sse",
    "/namespaces/{ns}/ws",
    "/namespaces/{ns}/rpc",
    "/namespaces/{ns}/rpc/batch",
    "/mcp",
    "/sse",
    "/ws",
    "/rpc",
    "/rpc/batch",
];

/// Whether a route pattern is an MCP transport endpoint (see [`MCP_ROUTES`]).
pub(crate) fn is_mcp_route(pattern: &str) -> bool {
    MCP_ROUTES.contains(&pattern)
}

/// Registers the MCP routes.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/servers/{id}/mcp")
            .route(web::post().to(streamable::post))
            .route(web::get().to(streamable::get))
            .route(web::delete().to(streamable::delete))
            .default_service(not_allowed("GET, POST, DELETE")),
    )
    .service(
        web::resource("/servers/{id}/sse")
            .route(web::get().to(legacy_sse::open))
            .route(web::post().to(legacy_sse::message))
            .default_service(not_allowed("GET, POST")),
    )
    .service(
        web::resource("/servers/{id}/ws")
            .route(web::get().to(ws::open))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/servers/{id}/rpc")
            .route(web::post().to(rpc::call))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::scope("/namespaces/{ns}")
            .service(
                web::resource("/mcp")
                    .route(web::post().to(streamable::post))
                    .route(web::get().to(streamable::get))
                    .route(web::delete().to(streamable::delete))
                    .default_service(not_allowed("GET, POST, DELETE")),
            )
            .service(
                web::resource("/sse")
                    .route(web::get().to(legacy_sse::open))
                    .route(web::post().to(legacy_sse::message))
                    .default_service(not_allowed("GET, POST")),
            )
            .service(
                web::resource("/ws")
                    .route(web::get().to(ws::open))
                    .default_service(not_allowed("GET")),
            )
            .service(
                web::resource("/rpc")
                    .route(web::post().to(rpc::call))
                    .default_service(not_allowed("POST")),
            )
            .service(crate::routes::post_only("/rpc/batch", rpc::batch))
            .service(crate::routes::get_only("/rpc/introspection", rpc::introspection)),
    )
    .service(
        web::resource("/mcp")
            .route(web::post().to(streamable::post))
            .route(web::get().to(streamable::get))
            .route(web::delete().to(streamable::delete))
            .default_service(not_allowed("GET, POST, DELETE")),
    )
    .service(
        web::resource("/sse")
            .route(web::get().to(legacy_sse::open))
            .route(web::post().to(legacy_sse::message))
            .default_service(not_allowed("GET, POST")),
    )
    .service(
        web::resource("/ws")
            .route(web::get().to(ws::open))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/rpc")
            .route(web::post().to(rpc::call))
            .default_service(not_allowed("POST")),
    )
    .service(crate::routes::post_only("/rpc/batch", rpc::batch))
    .service(crate::routes::get_only("/rpc/introspection", rpc::introspection))
    .service(crate::routes::post_only("/servers/{id}/rpc/batch", rpc::batch))
    .service(crate::routes::get_only(
        "/servers/{id}/rpc/introspection",
        rpc::introspection,
    ))
    .service(crate::routes::get_only("/mcp/status", status::mcp))
    .service(crate::routes::get_only("/sse/status", status::sse))
    .service(crate::routes::get_only("/ws/status", status::ws))
    .service(crate::routes::get_only("/mcp/capabilities", status::capabilities))
    .service(crate::routes::get_only("/sse/events", admin::events))
    .service(crate::routes::post_only("/sse/broadcast", admin::sse_broadcast))
    .service(crate::routes::post_only("/ws/broadcast", admin::ws_broadcast))
    .service(crate::routes::post_only("/ws/send", admin::ws_send))
    .service(crate::routes::post_only("/stdio/execute", admin::stdio_execute))
    .service(crate::routes::get_only("/stdio/process", admin::stdio_processes))
    .service(crate::routes::post_only("/stdio/send", admin::stdio_send));
}

/// Organization limits (and slug) read on session open, cached briefly (never a query per
/// request).
#[derive(Debug, Default)]
pub(crate) struct OrgLimits {
    entries: Mutex<HashMap<OrgId, OrgEntry>>,
}

/// When it was read, the session limit and the slug.
type OrgEntry = (Instant, u32, Arc<str>);

const ORG_LIMITS_TTL: Duration = Duration::from_secs(10);

impl OrgLimits {
    /// Forgets an organization's cached limits (it changed).
    pub(crate) fn forget(&self, org: OrgId) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&org);
    }

    async fn max_sessions(&self, state: &AppState, org: OrgId) -> Result<u32, ApiError> {
        if let Some((at, n, _)) = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&org)
            && at.elapsed() < ORG_LIMITS_TTL
        {
            return Ok(*n);
        }
        let found = state
            .stores
            .organizations
            .get(org)
            .await
            .map_err(ApiError::internal)?;
        let n = found
            .as_ref()
            .map_or(0, |o| u32::try_from(o.max_sessions).unwrap_or(0));
        let slug: Arc<str> = found.map_or_else(|| Arc::from(""), |o| Arc::from(o.slug));
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(org, (Instant::now(), n, slug));
        Ok(n)
    }

    /// The organization's slug as last read by [`Self::max_sessions`].
    fn slug(&self, org: OrgId) -> Option<Arc<str>> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&org)
            .map(|(_, _, slug)| Arc::clone(slug))
    }
}

/// Whether full bodies are logged for a session: a server's `metadata.log_bodies` (true or
/// false) decides; otherwise `logging.request_log.bodies.enabled` or the organization being
/// listed in `…bodies.organizations`.
fn keeps_bodies(state: &AppState, org: OrgId, server_metadata: Option<&serde_json::Value>) -> bool {
    if let Some(on) = server_metadata
        .and_then(|m| m.get("log_bodies"))
        .and_then(serde_json::Value::as_bool)
    {
        return on;
    }
    let cfg = &state.config.logging.request_log.bodies;
    cfg.enabled
        || (!cfg.organizations.is_empty()
            && state
                .org_limits
                .slug(org)
                .is_some_and(|slug| cfg.organizations.iter().any(|o| *o == *slug)))
}

/// The request log of a session the caller opens on a server (`server_id`) or a namespace.
fn session_log(
    state: &AppState,
    req: &HttpRequest,
    principal: &Principal,
    namespace_id: Option<gateway_types::ids::NamespaceId>,
    server_id: Option<gateway_types::ids::ServerId>,
    label: &str,
    server_metadata: Option<&serde_json::Value>,
) -> crate::request_log::McpLog {
    let bodies = state.request_log.is_some() && keeps_bodies(state, principal.org_id, server_metadata);
    let headers = bodies.then(|| {
        req.headers()
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_owned(), v.to_owned())))
            .collect()
    });
    crate::request_log::McpLog::new(
        state.request_log.clone(),
        principal,
        namespace_id,
        server_id,
        label,
        crate::client_ip::client_ip(req),
        headers,
        bodies,
    )
    .with_traces(state.traces.clone())
}

/// The caller, with the permission MCP traffic needs.
fn mcp_principal(auth: &Authenticated) -> Result<&Principal, ApiError> {
    auth.require(Permission::McpUse)
}

/// Browsers may only reach MCP endpoints from the gateway's own origin or a configured CORS
/// origin (DNS-rebinding protection, as the transport spec requires): anything else is 403.
fn check_origin(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let allowed = &state.config.server.cors.allowed_origins;
    if allowed.iter().any(|o| o == "*" || o.eq_ignore_ascii_case(origin)) {
        return Ok(());
    }
    let host = req.connection_info().host().to_owned();
    let same = origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/').eq_ignore_ascii_case(&host));
    if same {
        return Ok(());
    }
    if let Some(public) = &state.config.auth.public_url
        && public.trim_end_matches('/').eq_ignore_ascii_case(origin)
    {
        return Ok(());
    }
    Err(ApiError::new(ErrorCode::Forbidden, "origin not allowed"))
}

/// The server addressed by `{id}` (id or name) in the caller's organization. Another
/// organization's server, or one outside the credential's namespace, is "not found".
async fn resolve(
    state: &AppState,
    principal: &Principal,
    id_or_name: &str,
) -> Result<Arc<ResolvedServer>, ApiError> {
    let server = state
        .servers
        .resolve(principal.org_id, id_or_name)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such server"))?;
    if let Some(ns) = principal.namespace
        && server.record.namespace_id != Some(ns)
    {
        return Err(ApiError::new(ErrorCode::NotFound, "no such server"));
    }
    Ok(server)
}

fn owner_of(principal: &Principal, server: &ResolvedServer) -> Owner {
    Owner {
        namespace_id: server.record.namespace_id,
        ..owner_of_principal(principal)
    }
}

/// The owner of a session the caller opens (no namespace).
fn owner_of_principal(principal: &Principal) -> Owner {
    let (user_id, api_key_id) = match &principal.subject {
        Subject::User { user_id, .. } => (Some(*user_id), None),
        Subject::ApiKey { key_id, user_id } => (Some(*user_id), Some(*key_id)),
        Subject::App { key_id } => (None, Some(*key_id)),
        Subject::External { .. } => (None, None),
    };
    Owner {
        org_id: principal.org_id,
        principal: owner_key(principal).1,
        user_id,
        api_key_id,
        namespace_id: None,
    }
}

/// The owner key of a caller, for looking up their sessions.
fn owner_key(principal: &Principal) -> (OrgId, String) {
    let key = match &principal.subject {
        Subject::User { user_id, .. } | Subject::ApiKey { user_id, .. } => format!("user:{user_id}"),
        Subject::App { key_id } => format!("app:{key_id}"),
        Subject::External { issuer, subject } => format!("ext:{issuer}:{subject}"),
    };
    (principal.org_id, key)
}

fn lookup_owner(principal: &Principal) -> Owner {
    let (org_id, principal) = owner_key(principal);
    Owner {
        org_id,
        principal,
        user_id: None,
        api_key_id: None,
        namespace_id: None,
    }
}

/// Opens a client session on a server for the caller.
async fn open_session(
    state: &AppState,
    req: &HttpRequest,
    principal: &Principal,
    server: &ResolvedServer,
    transport: ClientTransport,
    mode: Option<SessionMode>,
) -> Result<Arc<ClientSession>, ErrorObject> {
    let max = state
        .org_limits
        .max_sessions(state, principal.org_id)
        .await
        .map_err(|_| ErrorObject::new(codes::INTERNAL_ERROR, "internal error"))?;
    if state.servers.is_down(server.record.id) {
        return Err(guard::server_down(&server.record.name));
    }
    let ip = crate::client_ip::client_ip(req);
    let policy = PolicyGuard::new(
        Arc::clone(&state.policies),
        state.auditor.clone(),
        principal,
        None,
        server.record.name.clone(),
        ip,
    )
    .with_availability(server.record.id, Arc::clone(&state.servers));
    let limits = crate::ratelimit::McpLimiter::new(state, principal, ip);
    let pins = guard::PinGuard::new(
        server.record.id,
        server.record.name.clone(),
        Arc::clone(&state.catalogs),
    );
    let log = session_log(
        state,
        req,
        principal,
        server.record.namespace_id,
        Some(server.record.id),
        &server.record.name,
        Some(&server.record.metadata),
    );
    let guard = Arc::new(SessionGuard::new(policy, limits).with_pins(pins).with_log(log));
    let mode = mode.unwrap_or_else(|| SessionMode::parse(&server.session_mode).unwrap_or_default());
    state
        .hub
        .open(
            owner_of(principal, server),
            crate::upstreams::spec_of(server, state.config.server.max_body_bytes),
            server.record.id,
            mode,
            transport,
            guard,
            max,
        )
        .map_err(|e| match e {
            OpenError::SessionLimit { limit } => ErrorObject::new(
                codes::LIMIT_REACHED,
                format!("the organization's limit of {limit} open MCP sessions is reached"),
            ),
            OpenError::ShuttingDown => {
                ErrorObject::new(codes::UPSTREAM_UNAVAILABLE, "the gateway is shutting down")
            }
        })
}

/// An open failure on a transport that answers with HTTP before any JSON-RPC (legacy SSE,
/// WebSocket): a limit is 429, a shutdown 503, anything else 500.
fn open_failure(error: ErrorObject) -> ApiError {
    let code = match error.code {
        codes::LIMIT_REACHED => ErrorCode::RateLimited,
        codes::UPSTREAM_UNAVAILABLE => ErrorCode::Unavailable,
        _ => ErrorCode::Internal,
    };
    ApiError::new(code, error.message)
}

/// A JSON-RPC error as an HTTP response with the given status.
fn rpc_error(status: actix_web::http::StatusCode, id: Option<RequestId>, error: ErrorObject) -> HttpResponse {
    HttpResponse::build(status).json(Message::Error(ErrorResponse::new(id, error)))
}

/// Parses a JSON-RPC body; a parse failure is the right JSON-RPC error.
fn parse_body(body: &Bytes) -> Result<gateway_types::jsonrpc::Payload, Box<HttpResponse>> {
    serde_json::from_slice(body).map_err(|e| {
        let code = if e.is_syntax() || e.is_eof() {
            codes::PARSE_ERROR
        } else {
            codes::INVALID_REQUEST
        };
        let message = if code == codes::PARSE_ERROR {
            "Parse error"
        } else {
            "Invalid Request"
        };
        Box::new(rpc_error(
            actix_web::http::StatusCode::BAD_REQUEST,
            None,
            ErrorObject::new(code, message),
        ))
    })
}

/// What an MCP endpoint addresses: one server (`/servers/{id}/…`) or a namespace federation
/// (`/namespaces/{ns}/…`; `/mcp`, `/sse`, `/ws`, `/rpc` with the `X-MCP-Namespace` header or
/// the credential's namespace scope).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Server(String),
    Namespace(Option<String>),
}

fn target_of(req: &HttpRequest) -> Target {
    if let Some(id) = req.match_info().get("id") {
        return Target::Server(id.to_owned());
    }
    let slug = req.match_info().get("ns").map(str::to_owned).or_else(|| {
        req.headers()
            .get(federation::NAMESPACE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    Target::Namespace(slug)
}

/// Opens a client session on what the request addresses. The outer error is the HTTP
/// answer for an unknown target; the inner one the JSON-RPC error of a refused open.
async fn open_target(
    state: &AppState,
    req: &HttpRequest,
    principal: &Principal,
    target: &Target,
    transport: ClientTransport,
    mode: Option<SessionMode>,
) -> Result<Result<Arc<ClientSession>, ErrorObject>, ApiError> {
    match target {
        Target::Server(id) => {
            let server = resolve(state, principal, id).await?;
            Ok(open_session(state, req, principal, &server, transport, mode).await)
        }
        Target::Namespace(slug) => {
            let ns = federation::resolve_namespace(state, principal, slug.as_deref()).await?;
            Ok(federation::open_federation(state, req, principal, &ns, transport).await)
        }
    }
}

fn session_matches(session: &ClientSession, target: &Target) -> bool {
    match target {
        Target::Server(path) => {
            !session.is_federated()
                && (session.upstream().spec().name == *path
                    || path
                        .parse::<uuid::Uuid>()
                        .is_ok_and(|id| *session.server_id().as_uuid() == id))
        }
        Target::Namespace(None) => session.is_federated(),
        Target::Namespace(Some(slug)) => {
            session.is_federated() && session.upstream().spec().name == federation::federation_name(slug)
        }
    }
}
