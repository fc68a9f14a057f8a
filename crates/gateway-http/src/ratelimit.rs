//! Rate limiting on the HTTP side (the rules, the algorithm and the backends are
//! `gateway-ratelimit`'s).
//!
//! - [`RateLimiting`], a middleware inside the edge one: resolves the client address once
//!   ([`crate::client_ip`]), checks the per-IP rules before anything else runs (so floods and
//!   credential stuffing are refused before authentication), and adds the `RateLimit-Policy` /
//!   `RateLimit` headers of every check the request passed to its response.
//! - [`after_authentication`], called by the [`crate::authn::Authenticated`] extractor: the
//!   principal, organization, the organization's IP rules and the endpoint (route pattern).
//! - [`McpLimiter`], the message pipeline's per-method and per-tool limits (every transport
//!   hands its messages to that pipeline), answering with JSON-RPC error `-32004`.
//!
//! A refused HTTP request is a 429 with `Retry-After` (seconds), `RateLimit-Policy` and
//! `RateLimit`; with Redis down and `rate_limit.failure_mode: closed` it is a 503 with
//! `Retry-After`. `/health`, `/health/live` and `/metrics` are never limited (probes and
//! scrapes come from few addresses, and often).

use std::future::{Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use actix_web::{Error, HttpMessage, HttpRequest, ResponseError};
use gateway_auth::principal::{Principal, Subject};
use gateway_ratelimit::{Caller, Checked, RateLimits};
use gateway_transport::client::Admission;
use gateway_transport::error::codes;
use gateway_types::error::ErrorCode;
use gateway_types::jsonrpc::{ErrorObject, Request};
use serde_json::{Value, json};

use crate::client_ip::{ClientIp, client_ip, resolve};
use crate::error::ApiError;
use crate::state::AppState;

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Paths never limited: probes and scrapes.
const EXEMPT: &[&str] = &["/health", "/health/live", "/metrics"];

/// The checks a request passed, for its response headers (kept in its extensions).
#[derive(Debug, Default)]
struct Passed(Vec<Checked>);

/// The rate-limit middleware (see the module docs).
#[derive(Clone, Debug)]
pub(crate) struct RateLimiting {
    state: AppState,
}

impl RateLimiting {
    pub(crate) fn new(state: AppState) -> Self {
        Self { state }
    }
}

impl<S, B> Transform<S, ServiceRequest> for RateLimiting
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Transform = RateLimitingService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RateLimitingService {
            service: Rc::new(service),
            state: self.state.clone(),
        }))
    }
}

/// The service of [`RateLimiting`].
#[derive(Debug)]
pub(crate) struct RateLimitingService<S> {
    service: Rc<S>,
    state: AppState,
}

impl<S, B> Service<ServiceRequest> for RateLimitingService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let peer = req.peer_addr().map(|a| a.ip());
        let ip = resolve(&self.state.trusted_proxies, peer, req.headers());
        req.extensions_mut().insert(ClientIp(ip));
        let selection = if EXEMPT.contains(&req.path()) {
            None
        } else {
            self.state.limits.select_ip(ip)
        };
        let service = Rc::clone(&self.service);
        let limits = Arc::clone(&self.state.limits);
        Box::pin(async move {
            if let Some(selection) = selection {
                let checked = limits.decide(selection).await;
                if !checked.allowed() {
                    let response = refusal(&checked).error_response();
                    return Ok(req.into_response(response));
                }
                req.extensions_mut().insert(Passed(vec![checked]));
            }
            let mut res = service.call(req).await?.map_into_boxed_body();
            let rendered = {
                let ext = res.request().extensions();
                ext.get::<Passed>()
                    .and_then(|p| gateway_ratelimit::headers::render(p.0.iter().flat_map(Checked::entries)))
            };
            if let Some((policy, state)) = rendered {
                set_headers(res.headers_mut(), &policy, &state);
            }
            Ok(res)
        })
    }
}

fn set_headers(headers: &mut HeaderMap, policy: &str, state: &str) {
    if let (Ok(p), Ok(s)) = (HeaderValue::from_str(policy), HeaderValue::from_str(state)) {
        headers.insert(RATELIMIT_POLICY, p);
        headers.insert(RATELIMIT, s);
    }
}

/// The caller as the limiter sees it.
fn caller(principal: &Principal, ip: Option<std::net::IpAddr>) -> Caller {
    let (key, ids) = match &principal.subject {
        Subject::User { user_id, .. } => (format!("user:{user_id}"), vec![user_id.to_string()]),
        Subject::ApiKey { key_id, user_id } => (
            format!("user:{user_id}"),
            vec![key_id.to_string(), user_id.to_string()],
        ),
        Subject::App { key_id } => (format!("app:{key_id}"), vec![key_id.to_string()]),
        Subject::External { issuer, subject } => {
            let id = format!("{issuer}#{subject}");
            (format!("ext:{id}"), vec![id])
        }
    };
    Caller {
        org: principal.org_id,
        principal: key,
        ids,
        ip,
    }
}

/// The limits of an authenticated request: principal, organization, the organization's IP
/// rules and the endpoint.
///
/// # Errors
/// 429 (or 503 when the limiter cannot decide and fails closed) with the rate-limit headers.
pub(crate) async fn after_authentication(
    req: &HttpRequest,
    state: &AppState,
    principal: &Principal,
) -> Result<(), ApiError> {
    let who = caller(principal, client_ip(req));
    if state.limits.needs_load(who.org) {
        // An organization created since the last reload: load its rules off the request path.
        let (s, org) = (state.clone(), who.org);
        state.runtime.spawn(async move {
            let loaded = s
                .limits
                .reload_org(org, s.stores.organizations.as_ref(), s.stores.rate_limits.as_ref())
                .await;
            if let Err(err) = loaded {
                tracing::warn!(org.id = %org, error = %gateway_types::error::error_chain(&err), "could not load an organization's rate limits; the declared ones apply until the next reload");
            }
        });
    }
    let pattern = req.match_pattern();
    let route = pattern.as_deref().map(|p| (req.method().as_str(), p));
    let Some(selection) = state.limits.select_request(&who, route) else {
        return Ok(());
    };
    let checked = state.limits.decide(selection).await;
    if !checked.allowed() {
        return Err(refusal(&checked));
    }
    let mut ext = req.extensions_mut();
    match ext.get_mut::<Passed>() {
        Some(passed) => passed.0.push(checked),
        None => {
            ext.insert(Passed(vec![checked]));
        }
    }
    Ok(())
}

/// The REST answer to a refused request.
fn refusal(checked: &Checked) -> ApiError {
    let Some((rule, decision)) = checked.refusal() else {
        // Redis did not answer and the failure mode is closed.
        return ApiError::new(ErrorCode::Unavailable, "rate limiting is unavailable")
            .with_header(RETRY_AFTER, HeaderValue::from_static("1"));
    };
    let message = format!(
        "rate limit exceeded: at most {} requests per {} s ({} limit '{}'); retry in {} s",
        decision.quota.limit,
        decision.quota.window_seconds(),
        rule.scope.as_str(),
        rule.name,
        decision.retry_after_seconds(),
    );
    let mut err = ApiError::new(ErrorCode::RateLimited, message)
        .with_header(RETRY_AFTER, HeaderValue::from(decision.retry_after_seconds()));
    if let Some((policy, state)) = gateway_ratelimit::headers::render(checked.entries())
        && let (Ok(p), Ok(s)) = (HeaderValue::from_str(&policy), HeaderValue::from_str(&state))
    {
        err = err.with_header(RATELIMIT_POLICY, p).with_header(RATELIMIT, s);
    }
    err
}

/// The per-method and per-tool limits of one MCP client session.
#[derive(Debug)]
pub(crate) struct McpLimiter {
    limits: Arc<RateLimits>,
    caller: Caller,
    reprobe_ms: u64,
}

impl McpLimiter {
    pub(crate) fn new(state: &AppState, principal: &Principal, ip: Option<std::net::IpAddr>) -> Self {
        Self {
            limits: Arc::clone(&state.limits),
            caller: caller(principal, ip),
            reprobe_ms: state.config.rate_limit.breaker_reprobe_ms,
        }
    }

    /// The admission of one request, or `None` when no rule applies (a snapshot lookup).
    pub(crate) fn admit(&self, request: &Request) -> Option<Admission> {
        let tool = (request.method == "tools/call")
            .then(|| {
                request
                    .params
                    .as_ref()
                    .and_then(|p| p.get("name"))
                    .and_then(Value::as_str)
            })
            .flatten();
        let selection = self.limits.select_mcp(&self.caller, &request.method, tool)?;
        let limits = Arc::clone(&self.limits);
        let method = request.method.clone();
        let tool = tool.map(str::to_owned);
        let reprobe_ms = self.reprobe_ms;
        Some(Box::pin(async move {
            let checked = limits.decide(selection).await;
            if checked.allowed() {
                return Ok(());
            }
            let error = mcp_refusal(&checked, &method, tool.as_deref(), reprobe_ms);
            tracing::debug!(mcp.method = %method, error.message = %error.message, "MCP request rate-limited");
            Err(error)
        }))
    }
}

/// The JSON-RPC answer to a refused MCP request: `-32004` with the rule, the quota and
/// `retry_after_ms` in `data`.
fn mcp_refusal(checked: &Checked, method: &str, tool: Option<&str>, reprobe_ms: u64) -> ErrorObject {
    let Some((rule, d)) = checked.refusal() else {
        return ErrorObject {
            code: codes::LIMIT_REACHED,
            message: "rate limiting is unavailable; retry shortly".into(),
            data: Some(json!({ "retry_after_ms": reprobe_ms })),
        };
    };
    let what = match (rule.scope, tool) {
        (gateway_types::model::RateLimitScope::Tool, Some(tool)) => format!("calls of tool '{tool}'"),
        _ => format!("{method} requests"),
    };
    ErrorObject {
        code: codes::LIMIT_REACHED,
        message: format!(
            "rate limit exceeded: at most {} {what} per {} s (rule '{}'); retry in {} s",
            d.quota.limit,
            d.quota.window_seconds(),
            rule.name,
            d.retry_after_seconds(),
        ),
        data: Some(json!({
            "retry_after_ms": d.retry_after_ms,
            "limit": d.quota.limit,
            "window_seconds": d.quota.window_seconds(),
            "scope": rule.scope.as_str(),
            "rule": rule.name,
        })),
    }
}
