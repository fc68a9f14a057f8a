//! The one mapping from domain errors to HTTP responses.
//!
//! Which type to use where:
//! - domain crates return their own `thiserror` enums and convert them into
//!   [`GatewayError`] (a public code and message plus a log-only source chain);
//! - handlers return `Result<_, ApiError>`; `?` converts a [`GatewayError`] or a
//!   [`StoreError`] into an [`ApiError`];
//! - [`ApiError`] renders the JSON envelope
//!   `{"error":{"code","message","request_id"}}`. It overrides
//!   [`ResponseError::error_response`] because actix's default writes `Display` into the body:
//!   here the body is built from the public code and message only, and every 5xx says just
//!   "internal error".
//!
//! Extractor failures (malformed JSON, wrong content type, oversized bodies, bad query strings
//! and path parameters) are mapped by [`json_config`], [`query_config`], [`path_config`] and
//! [`payload_config`]; anything else the framework produces is re-rendered into the same
//! envelope by the edge middleware. The failure itself is logged once, by that middleware, with
//! its full source chain and the request id.

use std::borrow::Cow;
use std::fmt;

use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use gateway_types::error::{ErrorCode, GatewayError};
use gateway_types::store::StoreError;
use serde::Serialize;

use crate::request_id;

/// Longest message taken from a parser (serde) into a client-facing error.
const MAX_PARSER_MESSAGE_CHARS: usize = 200;

/// An error answered to a REST client as the JSON error envelope.
///
/// The status comes from the [`ErrorCode`]; the body carries the code, the public message and
/// the request id, never the source chain.
#[derive(Debug)]
pub struct ApiError {
    inner: GatewayError,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with a chosen, client-safe message (ignored for [`ErrorCode::Internal`]).
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        GatewayError::new(code, message).into()
    }

    /// An error with the code's default message.
    #[must_use]
    pub fn from_code(code: ErrorCode) -> Self {
        GatewayError::from_code(code).into()
    }

    /// An internal error: the client sees "internal error", the logs see `source`.
    pub fn internal(source: impl Into<gateway_types::error::BoxError>) -> Self {
        GatewayError::internal(source).into()
    }

    /// 405 with the `Allow` header listing the route's methods (e.g. `"GET, HEAD"`).
    #[must_use]
    pub fn method_not_allowed(allow: &'static str) -> Self {
        Self::new(
            ErrorCode::MethodNotAllowed,
            format!("method not allowed; this route accepts {allow}"),
        )
        .with_header(header::ALLOW, HeaderValue::from_static(allow))
    }

    /// Adds a response header (e.g. `Allow`, `Retry-After`).
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The public code.
    #[must_use]
    pub const fn code(&self) -> ErrorCode {
        self.inner.code()
    }

    /// The public message.
    #[must_use]
    pub fn message(&self) -> &str {
        self.inner.message()
    }

    /// The wrapped error, source chain included (for logs).
    #[must_use]
    pub const fn gateway_error(&self) -> &GatewayError {
        &self.inner
    }

    /// The code an HTTP status stands for, for errors the framework produced.
    #[must_use]
    pub fn code_for_status(status: StatusCode) -> ErrorCode {
        match status.as_u16() {
            401 => ErrorCode::Unauthorized,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            405 => ErrorCode::MethodNotAllowed,
            409 => ErrorCode::Conflict,
            413 => ErrorCode::PayloadTooLarge,
            415 => ErrorCode::UnsupportedMediaType,
            422 => ErrorCode::Validation,
            429 => ErrorCode::RateLimited,
            503 => ErrorCode::Unavailable,
            504 => ErrorCode::Timeout,
            400..=499 => ErrorCode::BadRequest,
            _ => ErrorCode::Internal,
        }
    }
}

impl From<GatewayError> for ApiError {
    fn from(inner: GatewayError) -> Self {
        Self {
            inner,
            headers: Vec::new(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        GatewayError::from(err).into()
    }
}

/// Public text only: `code: message`. The source chain is reachable through
/// [`std::error::Error::source`] for logs, never through `Display`.
impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.inner)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = envelope_response(
            self.status_code(),
            self.code(),
            self.message(),
            request_id::current().as_ref().map_or("", |id| id.as_str()),
        );
        for (name, value) in &self.headers {
            res.headers_mut().insert(name.clone(), value.clone());
        }
        res
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: EnvelopeBody<'a>,
}

#[derive(Serialize)]
struct EnvelopeBody<'a> {
    code: &'a str,
    message: &'a str,
    request_id: &'a str,
}

/// Builds the error envelope. Every 5xx says only "internal error", whatever `message` is:
/// server-side failures are described in the logs, under the same request id.
pub(crate) fn envelope_response(
    status: StatusCode,
    code: ErrorCode,
    message: &str,
    request_id: &str,
) -> HttpResponse {
    let message = if status.is_server_error() {
        ErrorCode::Internal.default_message()
    } else {
        message
    };
    let body = Envelope {
        error: EnvelopeBody {
            code: code.as_str(),
            message,
            request_id,
        },
    };
    // Serializing three strings cannot fail; fall back to a fixed body all the same.
    let json = serde_json::to_string(&body).unwrap_or_else(|_| {
        r#"{"error":{"code":"internal","message":"internal error","request_id":""}}"#.to_owned()
    });
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(json)
}

/// Shortens a parser message so a huge or hostile input cannot blow up the error body.
fn parser_message(prefix: &str, err: &dyn fmt::Display) -> String {
    let text = err.to_string();
    let mut out = String::with_capacity(prefix.len() + text.len().min(MAX_PARSER_MESSAGE_CHARS));
    out.push_str(prefix);
    out.extend(text.chars().take(MAX_PARSER_MESSAGE_CHARS));
    if text.chars().count() > MAX_PARSER_MESSAGE_CHARS {
        out.push('…');
    }
    out
}

fn payload_error(err: &PayloadError, limit: usize) -> ApiError {
    match err {
        PayloadError::Overflow => too_large(limit),
        _ => ApiError::new(ErrorCode::BadRequest, "could not read the request body"),
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("request body exceeds the limit of {limit} bytes"),
    )
}

/// The error for a JSON body that could not be extracted.
///
/// Syntax and type errors carry serde's position-bearing message ("expected value at line 1
/// column 2"), shortened; the body itself is never echoed beyond that.
#[must_use]
pub fn json_error(err: &JsonPayloadError, limit: usize) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => too_large(limit),
        JsonPayloadError::ContentType => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "expected Content-Type: application/json",
        ),
        JsonPayloadError::Deserialize(e) => {
            ApiError::new(ErrorCode::BadRequest, parser_message("invalid JSON body: ", e))
        }
        JsonPayloadError::Payload(e) => payload_error(e, limit),
        // `Serialize` and future variants are our own failures, not the client's.
        _ => ApiError::from_code(ErrorCode::Internal),
    }
}

/// `JsonConfig` for every JSON extractor: body limit and the error envelope.
#[must_use]
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |err, _req: &HttpRequest| json_error(&err, limit).into())
}

/// `QueryConfig`: a query string that does not deserialize is a 400 envelope.
#[must_use]
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req: &HttpRequest| {
        let api = match &err {
            QueryPayloadError::Deserialize(e) => {
                ApiError::new(ErrorCode::BadRequest, parser_message("invalid query string: ", e))
            }
            _ => ApiError::new(ErrorCode::BadRequest, "invalid query string"),
        };
        api.into()
    })
}

/// `PathConfig`: a path parameter that does not deserialize is a 400 envelope.
#[must_use]
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req: &HttpRequest| {
        let api = match &err {
            PathError::Deserialize(e) => ApiError::new(
                ErrorCode::BadRequest,
                parser_message("invalid path parameter: ", e),
            ),
            _ => ApiError::new(ErrorCode::BadRequest, "invalid path parameter"),
        };
        api.into()
    })
}

/// `PayloadConfig` for raw-body extractors (`Bytes`, `String`): the same limit.
#[must_use]
pub fn payload_config(limit: usize) -> web::PayloadConfig {
    web::PayloadConfig::new(limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    async fn body_json(res: HttpResponse) -> serde_json::Value {
        let bytes = to_bytes(res.into_body()).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[actix_web::test]
    async fn internal_errors_never_show_their_cause() {
        let err = ApiError::internal(std::io::Error::other("password=hunter2 at 10.0.0.5"));
        assert_eq!(err.to_string(), "internal: internal error");
        let res = err.error_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_json(res).await;
        insta::assert_json_snapshot!(body, @r#"
        {
          "error": {
            "code": "internal",
            "message": "internal error",
            "request_id": ""
          }
        }
        "#);
        let chain = gateway_types::error::error_chain(&err);
        assert!(
            chain.contains("hunter2"),
            "the chain stays available for logs: {chain}"
        );
    }

    #[actix_web::test]
    async fn store_errors_map_to_their_status() {
        assert_eq!(
            ApiError::from(StoreError::NotFound).status_code(),
            StatusCode::NOT_FOUND
        );
        let unavailable = ApiError::from(StoreError::Unavailable(Box::new(std::io::Error::other(
            "connect to 10.1.1.1 refused",
        ))));
        assert_eq!(unavailable.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        let body = body_json(unavailable.error_response()).await;
        assert!(!body.to_string().contains("10.1.1.1"));
    }

    #[actix_web::test]
    async fn method_not_allowed_lists_methods() {
        let res = ApiError::method_not_allowed("GET, HEAD").error_response();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers().get(header::ALLOW).unwrap(), "GET, HEAD");
    }

    #[test]
    fn long_parser_messages_are_cut() {
        let long = "x".repeat(1000);
        let msg = parser_message("invalid JSON body: ", &long);
        assert!(msg.chars().count() <= 19 + MAX_PARSER_MESSAGE_CHARS + 1);
    }

    #[test]
    fn framework_statuses_map_to_codes() {
        assert_eq!(
            ApiError::code_for_status(StatusCode::PAYLOAD_TOO_LARGE),
            ErrorCode::PayloadTooLarge
        );
        assert_eq!(
            ApiError::code_for_status(StatusCode::REQUEST_TIMEOUT),
            ErrorCode::BadRequest
        );
        assert_eq!(
            ApiError::code_for_status(StatusCode::BAD_GATEWAY),
            ErrorCode::Internal
        );
    }
}
