//! Errors of the transport layer and the JSON-RPC errors the gateway itself emits.
//!
//! The gateway answers with the JSON-RPC 2.0 codes where they fit (`-32700` parse error,
//! `-32600` invalid request, `-32601` method not found, `-32602` invalid params, `-32603`
//! internal error) and with codes of the implementation-defined server range (`-32000` to
//! `-32099`) for what only a gateway can say. `-32002` is left out: MCP uses it for "resource
//! not found", which upstreams send and clients interpret.
//!
//! Messages are chosen texts: an upstream's or the operating system's error text never reaches
//! a client (it is logged, with its chain, where it is handled).

use gateway_types::jsonrpc::{ErrorObject, ErrorResponse, Message, RequestId};

/// Codes of the gateway's own JSON-RPC errors (server range).
pub mod codes {
    pub use gateway_types::jsonrpc::codes::*;

    /// The upstream server cannot be reached, is restarting or has failed.
    pub const UPSTREAM_UNAVAILABLE: i64 = -32000;
    /// The upstream did not answer within the server's `timeout_seconds`.
    pub const UPSTREAM_TIMEOUT: i64 = -32001;
    /// An access policy denies the request (the message names the deciding rule).
    pub const POLICY_DENIED: i64 = -32003;
    /// A limit of the gateway was reached (sessions, processes, queued messages).
    pub const LIMIT_REACHED: i64 = -32004;
}

/// Why an upstream operation failed. Never shown to clients as text: map it with
/// [`TransportError::to_error_object`].
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The server record cannot be turned into an upstream (no URL, no command…).
    #[error("invalid upstream configuration: {0}")]
    Config(String),
    /// Starting the process failed.
    #[error("cannot start the upstream process")]
    Spawn(#[source] std::io::Error),
    /// The organization already runs as many processes as it may.
    #[error("process limit of the organization reached ({limit})")]
    ProcessLimit {
        /// The configured limit.
        limit: usize,
    },
    /// An HTTP exchange with the upstream failed.
    #[error("upstream HTTP request failed")]
    Http(#[source] reqwest::Error),
    /// The upstream answered with an unexpected HTTP status.
    #[error("upstream answered HTTP {status}")]
    Status {
        /// The status code.
        status: u16,
    },
    /// The upstream sent something that is not MCP.
    #[error("upstream protocol error: {0}")]
    Protocol(String),
    /// The connection to the upstream is closed.
    #[error("upstream connection closed")]
    Closed,
    /// The upstream gave up after too many crashes in a row.
    #[error("upstream failed {restarts} times in a row; not restarting")]
    CrashLoop {
        /// Restarts within the window.
        restarts: usize,
    },
    /// No answer in time.
    #[error("upstream did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The WebSocket connection or handshake failed.
    #[error("upstream WebSocket error")]
    WebSocket(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    /// The TLS client configuration cannot be built.
    #[error("cannot configure TLS")]
    Tls(#[source] rustls::Error),
}

impl TransportError {
    /// The JSON-RPC error a client sees for this failure: a spec code and a chosen message.
    #[must_use]
    pub fn to_error_object(&self) -> ErrorObject {
        match self {
            Self::Timeout(d) => ErrorObject::new(
                codes::UPSTREAM_TIMEOUT,
                format!("upstream did not answer within {} s", d.as_secs()),
            ),
            Self::ProcessLimit { .. } => ErrorObject::new(
                codes::LIMIT_REACHED,
                "the organization's limit of running server processes is reached",
            ),
            Self::CrashLoop { .. } => ErrorObject::new(
                codes::UPSTREAM_UNAVAILABLE,
                "upstream server keeps crashing and was stopped",
            ),
            Self::Config(_) => {
                ErrorObject::new(codes::UPSTREAM_UNAVAILABLE, "upstream server is misconfigured")
            }
            Self::Spawn(_)
            | Self::Http(_)
            | Self::Status { .. }
            | Self::Protocol(_)
            | Self::Closed
            | Self::WebSocket(_)
            | Self::Tls(_) => ErrorObject::new(codes::UPSTREAM_UNAVAILABLE, "upstream server unavailable"),
        }
    }
}

/// An error response message.
#[must_use]
pub fn error_message(id: Option<RequestId>, error: ErrorObject) -> Message {
    Message::Error(ErrorResponse::new(id, error))
}

/// An error response with a code and a chosen message.
#[must_use]
pub fn error_reply(id: RequestId, code: i64, message: impl Into<String>) -> Message {
    error_message(Some(id), ErrorObject::new(code, message))
}
