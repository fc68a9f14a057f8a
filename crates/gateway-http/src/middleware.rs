//! The edge middleware: what every request and every response goes through.
//!
//! In order, for each request:
//! 1. assign the request id (see [`crate::request_id`]) and open a tracing span carrying it;
//! 2. reject a declared body larger than `server.max_body_bytes` (413) before any handler
//!    runs, and answer CORS preflights;
//! 3. call the app; an error from an inner service becomes a response here, inside the
//!    request-id scope, so its envelope carries the id;
//! 4. re-render any error response the framework produced into the JSON envelope, and log a
//!    5xx once with its full source chain;
//! 5. add CORS, security and `X-Request-Id` headers;
//! 6. record metrics and one log line labelled by route pattern.

use std::future::{Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::error::InternalError;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{Error, HttpMessage, HttpResponse, ResponseError};
use gateway_types::config::{CorsConfig, GatewayConfig};
use gateway_types::error::{ErrorCode, error_chain};
use tracing::Instrument;

use crate::error::{ApiError, envelope_response};
use crate::metrics::{self, UNMATCHED_ROUTE};
use crate::request_id::{self, RequestId};

/// Content-Security-Policy of API responses: nothing may load, nothing may frame them. A route
/// that serves HTML (the dashboard, later) sets its own policy, which is kept.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
/// Strict-Transport-Security, sent only on connections the server itself terminated with TLS.
const HSTS: &str = "max-age=31536000; includeSubDomains";
/// Methods a CORS preflight may be granted.
const CORS_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
/// Request headers a CORS preflight may be granted.
const CORS_ALLOW_HEADERS: &str = "authorization, content-type, x-request-id, mcp-session-id, \
     mcp-protocol-version, mcp-method, mcp-name, last-event-id, x-mcp-namespace";
/// Response headers browsers may read.
const CORS_EXPOSE_HEADERS: &str = "x-request-id, mcp-session-id, mcp-protocol-version";
/// Routes whose completed requests are logged at debug level: probes and scrapes would
/// otherwise drown the access log.
const QUIET_ROUTES: &[&str] = &["/health", "/health/live", "/metrics"];

/// What the edge middleware enforces, from the configuration.
#[derive(Clone, Debug)]
pub(crate) struct EdgePolicy {
    max_body_bytes: usize,
    cors: Option<CorsPolicy>,
}

#[derive(Clone, Debug)]
struct CorsPolicy {
    any_origin: bool,
    origins: Vec<String>,
    allow_credentials: bool,
    max_age: HeaderValue,
}

impl EdgePolicy {
    pub(crate) fn from_config(cfg: &GatewayConfig) -> Self {
        Self {
            max_body_bytes: cfg.server.max_body_bytes,
            cors: CorsPolicy::from_config(&cfg.server.cors),
        }
    }
}

impl CorsPolicy {
    /// `None` when no origin is configured: then no CORS header is ever sent.
    fn from_config(cfg: &CorsConfig) -> Option<Self> {
        if cfg.allowed_origins.is_empty() {
            return None;
        }
        Some(Self {
            any_origin: cfg.allowed_origins.iter().any(|o| o == "*"),
            origins: cfg
                .allowed_origins
                .iter()
                .filter(|o| *o != "*")
                .cloned()
                .collect(),
            allow_credentials: cfg.allow_credentials,
            max_age: HeaderValue::from(cfg.max_age_seconds),
        })
    }

    /// Exact (byte-for-byte) origin matching, or anything when `*` is configured.
    fn allows(&self, origin: &str) -> bool {
        self.any_origin || self.origins.iter().any(|o| o == origin)
    }

    /// `Access-Control-Allow-Origin` for an allowed origin: `*` only for a wildcard policy
    /// without credentials, the echoed origin otherwise.
    fn allow_origin_value(&self, origin: &HeaderValue) -> HeaderValue {
        if self.any_origin && !self.allow_credentials {
            HeaderValue::from_static("*")
        } else {
            origin.clone()
        }
    }

    /// The answer to a preflight, or `None` if the request is not one.
    fn preflight(&self, req: &ServiceRequest) -> Option<HttpResponse> {
        let headers = req.headers();
        if req.method() != Method::OPTIONS || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
            return None;
        }
        let origin = headers.get(header::ORIGIN)?;
        let allowed = origin.to_str().is_ok_and(|o| self.allows(o));
        if !allowed {
            return Some(ApiError::new(ErrorCode::Forbidden, "origin not allowed").error_response());
        }
        let mut res = HttpResponse::NoContent().finish();
        let h = res.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.allow_origin_value(origin),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(CORS_METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(CORS_ALLOW_HEADERS),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        if self.allow_credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        Some(res)
    }

    /// Headers of an actual (non-preflight) response.
    fn decorate(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        let Some(origin) = origin else { return };
        if !origin.to_str().is_ok_and(|o| self.allows(o)) {
            return;
        }
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.allow_origin_value(origin),
        );
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(CORS_EXPOSE_HEADERS),
        );
        if self.allow_credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}

/// The edge middleware (see the module docs).
#[derive(Clone, Debug)]
pub(crate) struct Edge {
    policy: Arc<EdgePolicy>,
}

impl Edge {
    pub(crate) fn new(policy: EdgePolicy) -> Self {
        Self {
            policy: Arc::new(policy),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Edge
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Transform = EdgeService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(EdgeService {
            service: Rc::new(service),
            policy: Arc::clone(&self.policy),
        }))
    }
}

/// The service of [`Edge`].
#[derive(Debug)]
pub(crate) struct EdgeService<S> {
    service: Rc<S>,
    policy: Arc<EdgePolicy>,
}

impl<S, B> Service<ServiceRequest> for EdgeService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let id = RequestId::from_headers(req.headers());
        req.extensions_mut().insert(id.clone());
        let method = req.method().clone();
        let origin = req.headers().get(header::ORIGIN).cloned();
        let span = tracing::info_span!(
            "http.request",
            request_id = %id,
            http.method = %method,
        );
        let service = Rc::clone(&self.service);
        let policy = Arc::clone(&self.policy);

        // Everything that may render an error body runs inside the request-id scope.
        let early_policy = Arc::clone(&policy);
        let handled = id.clone().scope(async move {
            if let Some(early) = early_response(&early_policy, &req) {
                return Ok(req.into_response(early));
            }
            match service.call(req).await {
                Ok(res) => {
                    let (req, res) = res.into_parts();
                    Ok(ServiceResponse::new(
                        req,
                        normalize_error(res.map_into_boxed_body(), None),
                    ))
                }
                // An inner service failed outright (no handler answered). The request is gone
                // with it, so the response is rendered here and handed to actix pre-built.
                Err(err) => Err((normalize_error(err.error_response(), Some(&err)), err)),
            }
        });

        Box::pin(
            async move {
                match handled.await {
                    Ok(mut res) => {
                        let secure = res.request().app_config().secure();
                        decorate(res.headers_mut(), &policy, origin.as_ref(), &id, secure);
                        let route = res.request().match_pattern();
                        let error = res.response().error();
                        finish(res.status(), route.as_deref(), error, &method, &id, started);
                        log_rest(&res, route.as_deref(), &method, &id, started);
                        Ok(res)
                    }
                    Err((mut response, err)) => {
                        decorate(response.headers_mut(), &policy, origin.as_ref(), &id, false);
                        finish(response.status(), None, Some(&err), &method, &id, started);
                        Err(InternalError::from_response(err, response).into())
                    }
                }
            }
            .instrument(span),
        )
    }
}

/// One request-log record for an authenticated REST request (MCP endpoints log their
/// exchanges in the message pipeline instead; unauthenticated requests have no organization).
fn log_rest(
    res: &ServiceResponse<BoxBody>,
    route: Option<&str>,
    method: &Method,
    id: &RequestId,
    started: Instant,
) {
    let Some(route) = route else { return };
    if crate::mcp::is_mcp_route(route) {
        return;
    }
    let req = res.request();
    let Some(state) = req.app_data::<actix_web::web::Data<crate::state::AppState>>() else {
        return;
    };
    let Some(logger) = &state.request_log else { return };
    let extensions = req.extensions();
    let Some(principal) = extensions.get::<gateway_auth::principal::Principal>() else {
        return;
    };
    let request_bytes = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let response_bytes = match res.response().body().size() {
        actix_web::body::BodySize::Sized(n) => n,
        _ => 0,
    };
    crate::request_log::log_rest(
        logger,
        &crate::request_log::RestRequest {
            principal,
            method: metrics::method_label(method),
            route,
            status: res.status().as_u16(),
            latency: started.elapsed(),
            request_bytes,
            response_bytes,
            client_ip: crate::client_ip::client_ip(req),
            request_id: id.as_str(),
            trace_id: req
                .headers()
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .and_then(crate::telemetry::trace_id_of),
        },
    );
}

/// CORS, security and request-id headers.
fn decorate(
    headers: &mut HeaderMap,
    policy: &EdgePolicy,
    origin: Option<&HeaderValue>,
    id: &RequestId,
    secure: bool,
) {
    if let Some(cors) = &policy.cors {
        cors.decorate(origin, headers);
    }
    set_security_headers(headers, secure);
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        headers.insert(request_id::HEADER, value);
    }
}

/// Answers before routing: oversized declared bodies (413) and CORS preflights.
fn early_response(policy: &EdgePolicy, req: &ServiceRequest) -> Option<HttpResponse> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > policy.max_body_bytes as u64) {
        return Some(
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "request body exceeds the limit of {} bytes",
                    policy.max_body_bytes
                ),
            )
            .error_response(),
        );
    }
    policy.cors.as_ref().and_then(|cors| cors.preflight(req))
}

/// Re-renders an error response that is not already our envelope, so the framework's own
/// errors (and any plain error status) reach the client in the same JSON shape, without their
/// `Display` text. Runs inside the request-id scope. `failed` is the error an inner service
/// returned instead of a response, if any.
fn normalize_error(res: HttpResponse, failed: Option<&Error>) -> HttpResponse {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let error = res.error().or(failed);
    let ours = match error {
        Some(err) => err.as_error::<ApiError>().is_some(),
        None => is_json(res.headers()),
    };
    if ours {
        return res;
    }
    let id = request_id::current();
    let id = id.as_ref().map_or("", RequestId::as_str);
    if status.is_server_error() {
        // Not an `ApiError`, so the failure log in `finish` cannot see it: log it here, once.
        tracing::error!(
            request_id = id,
            http.status = status.as_u16(),
            error.detail = error.map(|e| format!("{e:?}")),
            "request failed in the framework"
        );
    }
    let code = ApiError::code_for_status(status);
    let mut fresh = envelope_response(status, code, code.default_message(), id);
    // Keep headers the error set for the client (Allow, Retry-After, WWW-Authenticate).
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(v) = res.headers().get(&name) {
            fresh.headers_mut().insert(name, v.clone());
        }
    }
    fresh
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}

/// Security headers on every response; a handler's own value wins.
fn set_security_headers(headers: &mut HeaderMap, secure: bool) {
    let defaults = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CONTENT_SECURITY_POLICY, API_CSP),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    // Only when this server terminated TLS itself. Forwarded-proto headers are not trusted
    // until trusted proxies are configurable (the proxy-aware client IP work).
    if secure && !headers.contains_key(header::STRICT_TRANSPORT_SECURITY) {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
}

/// Metrics, the access log line and the once-only failure log.
fn finish(
    status: StatusCode,
    route: Option<&str>,
    error: Option<&Error>,
    method: &Method,
    id: &RequestId,
    started: Instant,
) {
    let elapsed = started.elapsed();
    let route = route.unwrap_or(UNMATCHED_ROUTE);
    let method_label = metrics::method_label(method);
    let status_code = status.as_u16();
    metrics::record_request(method_label, route, status_code, elapsed);

    if status.is_server_error()
        && let Some(api) = error.and_then(|e| e.as_error::<ApiError>())
    {
        tracing::error!(
            request_id = %id,
            http.route = route,
            http.status = status_code,
            error.code = api.code().as_str(),
            error.chain = %error_chain(api),
            "request failed"
        );
    }

    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    if QUIET_ROUTES.contains(&route) && status_code < 400 {
        tracing::debug!(
            http.method = method_label,
            http.route = route,
            http.status = status_code,
            request_id = %id,
            duration_ms,
            "request completed"
        );
    } else {
        tracing::info!(
            http.method = method_label,
            http.route = route,
            http.status = status_code,
            request_id = %id,
            duration_ms,
            "request completed"
        );
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;
    use actix_web::test::{TestRequest, call_service, init_service, read_body};
    use actix_web::{App, HttpResponse, web};
    use gateway_types::config::GatewayConfig;
    use serde_json::Value;

    use super::*;
    use crate::routes::{get_only, not_found};
    use crate::server::extractor_configs;

    const LIMIT: usize = 2048;

    #[derive(serde::Deserialize)]
    struct Probe {
        #[expect(dead_code, reason = "only deserialized")]
        name: String,
    }

    /// A test-only app: the real edge middleware and extractor configuration, around routes
    /// that exercise them (no product route takes JSON yet).
    macro_rules! test_app {
        ($cfg:expr) => {{
            let cfg: GatewayConfig = $cfg;
            init_service(
                App::new()
                    .configure(|c| extractor_configs(c, LIMIT))
                    .route(
                        "/json",
                        web::post()
                            .to(|_body: web::Json<Probe>| async { HttpResponse::NoContent().finish() }),
                    )
                    .route(
                        "/boom",
                        web::get().to(|| async {
                            Err::<HttpResponse, _>(ApiError::internal(std::io::Error::other(
                                "SELECT secret FROM vault",
                            )))
                        }),
                    )
                    .route(
                        "/framework",
                        web::get().to(|| async {
                            Err::<HttpResponse, _>(actix_web::error::ErrorBadGateway(
                                "upstream 10.0.0.9 said no",
                            ))
                        }),
                    )
                    .route(
                        "/conflict",
                        web::get().to(|| async {
                            Err::<HttpResponse, _>(actix_web::error::ErrorConflict("row 42 in table users"))
                        }),
                    )
                    .service(get_only("/only-get", || async { HttpResponse::Ok().finish() }))
                    .default_service(web::to(not_found))
                    .wrap(Edge::new(EdgePolicy::from_config(&cfg))),
            )
            .await
        }};
    }

    fn cors_config(origins: &[&str], credentials: bool) -> GatewayConfig {
        let mut cfg = GatewayConfig::default();
        cfg.server.cors.allowed_origins = origins.iter().map(|o| (*o).to_owned()).collect();
        cfg.server.cors.allow_credentials = credentials;
        cfg
    }

    async fn json_of(res: ServiceResponse<BoxBody>) -> Value {
        let id = res
            .headers()
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value = serde_json::from_slice(&read_body(res).await).unwrap();
        assert_eq!(
            body["error"]["request_id"],
            id.as_str(),
            "body and header ids agree"
        );
        body
    }

    #[actix_web::test]
    async fn malformed_json_is_a_400_envelope() {
        let app = test_app!(GatewayConfig::default());
        let req = TestRequest::post()
            .uri("/json")
            .insert_header(("content-type", "application/json"))
            .set_payload("{\"name\": x}")
            .to_request();
        let res = call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let body = json_of(res).await;
        insta::assert_json_snapshot!(body, {".error.request_id" => "[request_id]"}, @r#"
        {
          "error": {
            "code": "bad_request",
            "message": "invalid JSON body: expected value at line 1 column 10",
            "request_id": "[request_id]"
          }
        }
        "#);
    }

    #[actix_web::test]
    async fn wrong_json_shape_is_a_400_envelope() {
        let app = test_app!(GatewayConfig::default());
        let req = TestRequest::post()
            .uri("/json")
            .insert_header(("content-type", "application/json"))
            .set_payload("{\"other\": 1}")
            .to_request();
        let res = call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let body = json_of(res).await;
        assert_eq!(
            body["error"]["message"],
            "invalid JSON body: missing field `name` at line 1 column 12"
        );
    }

    #[actix_web::test]
    async fn wrong_content_type_is_415() {
        let app = test_app!(GatewayConfig::default());
        let req = TestRequest::post()
            .uri("/json")
            .insert_header(("content-type", "text/plain"))
            .set_payload("{\"name\": \"x\"}")
            .to_request();
        let res = call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let body = json_of(res).await;
        insta::assert_json_snapshot!(body, {".error.request_id" => "[request_id]"}, @r#"
        {
          "error": {
            "code": "unsupported_media_type",
            "message": "expected Content-Type: application/json",
            "request_id": "[request_id]"
          }
        }
        "#);
    }

    #[actix_web::test]
    async fn declared_oversized_body_is_413_before_any_handler() {
        let app = test_app!(GatewayConfig::default());
        let req = TestRequest::post()
            .uri("/json")
            .insert_header(("content-type", "application/json"))
            .set_payload(vec![b' '; LIMIT + 1])
            .to_request();
        let res = call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = json_of(res).await;
        assert_eq!(body["error"]["code"], "payload_too_large");
    }

    #[actix_web::test]
    async fn undeclared_oversized_body_is_413_from_the_json_limit() {
        let app = test_app!(GatewayConfig::default());
        let mut req = TestRequest::post()
            .uri("/json")
            .insert_header(("content-type", "application/json"))
            .set_payload(vec![b' '; LIMIT + 1])
            .to_request();
        req.headers_mut().remove(header::CONTENT_LENGTH);
        let res = call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = json_of(res).await;
        assert_eq!(
            body["error"]["message"],
            format!("request body exceeds the limit of {LIMIT} bytes")
        );
    }

    #[actix_web::test]
    async fn internal_errors_say_only_internal_error() {
        let app = test_app!(GatewayConfig::default());
        let res = call_service(&app, TestRequest::get().uri("/boom").to_request()).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = json_of(res).await;
        insta::assert_json_snapshot!(body, {".error.request_id" => "[request_id]"}, @r#"
        {
          "error": {
            "code": "internal",
            "message": "internal error",
            "request_id": "[request_id]"
          }
        }
        "#);
    }

    #[actix_web::test]
    async fn framework_errors_are_rerendered_without_their_text() {
        let app = test_app!(GatewayConfig::default());
        let res = call_service(&app, TestRequest::get().uri("/framework").to_request()).await;
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        let body = json_of(res).await;
        assert_eq!(body["error"]["code"], "internal");
        assert_eq!(body["error"]["message"], "internal error");

        let res = call_service(&app, TestRequest::get().uri("/conflict").to_request()).await;
        assert_eq!(res.status(), StatusCode::CONFLICT);
        let body = json_of(res).await;
        assert_eq!(body["error"]["code"], "conflict");
        assert!(!body.to_string().contains("users"));
    }

    #[actix_web::test]
    async fn unknown_route_and_wrong_method() {
        let app = test_app!(GatewayConfig::default());
        let res = call_service(&app, TestRequest::get().uri("/nope").to_request()).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(json_of(res).await["error"]["code"], "not_found");

        let res = call_service(&app, TestRequest::delete().uri("/only-get").to_request()).await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers().get("allow").unwrap(), "GET, HEAD");
        assert_eq!(json_of(res).await["error"]["code"], "method_not_allowed");

        let res = call_service(
            &app,
            TestRequest::default()
                .method(Method::HEAD)
                .uri("/only-get")
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[actix_web::test]
    async fn request_ids_are_echoed_when_sane_and_replaced_otherwise() {
        let app = test_app!(GatewayConfig::default());
        let req = TestRequest::get()
            .uri("/only-get")
            .insert_header(("x-request-id", "trace-42.a_b"))
            .to_request();
        let res = call_service(&app, req).await;
        assert_eq!(res.headers().get("x-request-id").unwrap(), "trace-42.a_b");

        let req = TestRequest::get()
            .uri("/only-get")
            .insert_header(("x-request-id", "evil id\"><script>"))
            .to_request();
        let res = call_service(&app, req).await;
        let id = res.headers().get("x-request-id").unwrap().to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "replaced by a uuid: {id}");
    }

    #[actix_web::test]
    async fn security_headers_on_every_response() {
        let app = test_app!(GatewayConfig::default());
        for uri in ["/only-get", "/nope", "/boom"] {
            let res = call_service(&app, TestRequest::get().uri(uri).to_request()).await;
            let h = res.headers();
            assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff", "{uri}");
            assert_eq!(h.get("x-frame-options").unwrap(), "DENY");
            assert_eq!(h.get("referrer-policy").unwrap(), "no-referrer");
            assert_eq!(h.get("content-security-policy").unwrap(), API_CSP);
            assert!(
                h.get("strict-transport-security").is_none(),
                "plain HTTP: no HSTS"
            );
            assert!(
                h.get("access-control-allow-origin").is_none(),
                "no CORS configured"
            );
            assert!(h.get("vary").is_none());
        }
    }

    #[actix_web::test]
    async fn cors_preflight_allowed_and_denied() {
        let app = test_app!(cors_config(&["https://app.example.com"], true));
        let preflight = |origin: &str| {
            TestRequest::default()
                .method(Method::OPTIONS)
                .uri("/json")
                .insert_header(("origin", origin))
                .insert_header(("access-control-request-method", "POST"))
                .insert_header(("access-control-request-headers", "content-type"))
                .to_request()
        };
        let res = call_service(&app, preflight("https://app.example.com")).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let h = res.headers();
        assert_eq!(
            h.get("access-control-allow-origin").unwrap(),
            "https://app.example.com"
        );
        assert_eq!(h.get("access-control-allow-credentials").unwrap(), "true");
        assert!(
            h.get("access-control-allow-methods")
                .unwrap()
                .to_str()
                .unwrap()
                .contains("POST")
        );
        assert!(
            h.get("access-control-allow-headers")
                .unwrap()
                .to_str()
                .unwrap()
                .contains("content-type")
        );
        assert_eq!(h.get("access-control-max-age").unwrap(), "600");
        assert_eq!(h.get("vary").unwrap(), "Origin");

        // Exact matching: another scheme, port or a suffix is a different origin.
        for denied in [
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://evil.app.example.com",
            "https://app.example.com.evil",
        ] {
            let res = call_service(&app, preflight(denied)).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{denied}");
            assert!(res.headers().get("access-control-allow-origin").is_none());
            assert_eq!(json_of(res).await["error"]["code"], "forbidden");
        }
    }

    #[actix_web::test]
    async fn cors_actual_requests() {
        let app = test_app!(cors_config(&["https://app.example.com"], false));
        let req = TestRequest::get()
            .uri("/only-get")
            .insert_header(("origin", "https://app.example.com"))
            .to_request();
        let res = call_service(&app, req).await;
        let h = res.headers();
        assert_eq!(
            h.get("access-control-allow-origin").unwrap(),
            "https://app.example.com"
        );
        assert!(h.get("access-control-allow-credentials").is_none());
        assert!(
            h.get("access-control-expose-headers")
                .unwrap()
                .to_str()
                .unwrap()
                .contains("x-request-id")
        );
        assert_eq!(h.get("vary").unwrap(), "Origin");

        let req = TestRequest::get()
            .uri("/only-get")
            .insert_header(("origin", "https://other.example.com"))
            .to_request();
        let res = call_service(&app, req).await;
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "the browser, not the server, blocks the read"
        );
        assert!(res.headers().get("access-control-allow-origin").is_none());
        assert_eq!(res.headers().get("vary").unwrap(), "Origin");

        let app = test_app!(cors_config(&["*"], false));
        let req = TestRequest::get()
            .uri("/only-get")
            .insert_header(("origin", "https://anyone.example"))
            .to_request();
        let res = call_service(&app, req).await;
        assert_eq!(res.headers().get("access-control-allow-origin").unwrap(), "*");
    }
}
