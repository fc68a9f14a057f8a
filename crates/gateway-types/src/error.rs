//! The public error model.
//!
//! A [`GatewayError`] has two halves: what the client may see (a stable [`ErrorCode`] and a
//! message chosen by the code that raised it) and what only the logs may see (the `source`
//! chain). Nothing turns the source into client text: `gateway-http` renders `code` and
//! `message` only, and every internal error says just "internal error".

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A boxed error kept for logs.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Stable, machine-readable error codes. Their string forms are part of the API contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed (bad JSON, wrong types, missing fields).
    BadRequest,
    /// The request is well-formed but a value is not acceptable.
    Validation,
    /// No or invalid credentials.
    Unauthorized,
    /// Authenticated, but not allowed.
    Forbidden,
    /// No such resource (also: another organization's resource).
    NotFound,
    /// The HTTP method is not allowed on this route.
    MethodNotAllowed,
    /// The resource already exists or changed concurrently.
    Conflict,
    /// The request body exceeds the configured limit.
    PayloadTooLarge,
    /// The request body has an unsupported content type.
    UnsupportedMediaType,
    /// A rate limit was exceeded.
    RateLimited,
    /// A dependency (store, upstream) is unavailable right now; retrying may help.
    Unavailable,
    /// An upstream did not answer in time.
    Timeout,
    /// Anything else. Never carries details to the client.
    Internal,
}

impl ErrorCode {
    /// The wire form, e.g. `"not_found"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Validation => "validation_failed",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status this code maps to.
    #[must_use]
    pub const fn http_status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Validation => 422,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::RateLimited => 429,
            Self::Unavailable => 503,
            Self::Timeout => 504,
            Self::Internal => 500,
        }
    }

    /// The message used when the raiser chose none.
    #[must_use]
    pub const fn default_message(self) -> &'static str {
        match self {
            Self::BadRequest => "the request is malformed",
            Self::Validation => "the request contains invalid values",
            Self::Unauthorized => "authentication required",
            Self::Forbidden => "not allowed",
            Self::NotFound => "not found",
            Self::MethodNotAllowed => "method not allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "request body too large",
            Self::UnsupportedMediaType => "unsupported content type",
            Self::RateLimited => "rate limit exceeded",
            Self::Unavailable => "service temporarily unavailable",
            Self::Timeout => "upstream timed out",
            Self::Internal => "internal error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with a client-safe face and a log-only cause.
#[derive(Debug)]
pub struct GatewayError {
    code: ErrorCode,
    message: Cow<'static, str>,
    source: Option<BoxError>,
}

impl GatewayError {
    /// An error with a chosen, client-safe message.
    ///
    /// For [`ErrorCode::Internal`] the message is replaced by the default: internal
    /// details never reach a client, whatever the caller passes.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        let message = if code == ErrorCode::Internal {
            Cow::Borrowed(code.default_message())
        } else {
            message.into()
        };
        Self {
            code,
            message,
            source: None,
        }
    }

    /// An error with the code's default message.
    #[must_use]
    pub fn from_code(code: ErrorCode) -> Self {
        Self {
            code,
            message: Cow::Borrowed(code.default_message()),
            source: None,
        }
    }

    /// An internal error; `source` goes to the logs only.
    pub fn internal(source: impl Into<BoxError>) -> Self {
        Self::from_code(ErrorCode::Internal).with_source(source)
    }

    /// Attaches the log-only cause.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The public code.
    #[must_use]
    pub const fn code(&self) -> ErrorCode {
        self.code
    }

    /// The public message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for GatewayError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<crate::store::StoreError> for GatewayError {
    fn from(err: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match err {
            StoreError::NotFound => Self::from_code(ErrorCode::NotFound),
            StoreError::Conflict { what } => Self::new(ErrorCode::Conflict, format!("{what} already exists")),
            StoreError::LimitReached { what, limit } => Self::new(
                ErrorCode::Conflict,
                format!("the organization has reached its limit of {limit} {what}"),
            ),
            err @ StoreError::Unavailable(_) => Self::from_code(ErrorCode::Unavailable).with_source(err),
            err @ StoreError::Internal(_) => Self::internal(err),
        }
    }
}

/// A chain of error sources rendered for logs: `outer: inner: innermost`.
#[must_use]
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn internal_errors_never_carry_caller_text() {
        let err = GatewayError::new(ErrorCode::Internal, "SELECT * FROM users failed");
        assert_eq!(err.message(), "internal error");
    }

    #[test]
    fn store_errors_map_to_safe_public_errors() {
        let io = std::io::Error::other("connection refused to 10.0.0.5:5432");
        let err: GatewayError = StoreError::Unavailable(Box::new(io)).into();
        assert_eq!(err.code(), ErrorCode::Unavailable);
        assert!(!err.message().contains("10.0.0.5"));
        assert!(
            error_chain(&err).contains("10.0.0.5"),
            "the cause stays available for logs"
        );

        let err: GatewayError = StoreError::Conflict {
            what: "namespace slug".into(),
        }
        .into();
        assert_eq!(err.code().http_status(), 409);
        assert_eq!(err.message(), "namespace slug already exists");
    }
}
