//! Completed MCP exchanges: what the pipeline reports to the HTTP layer (request log, metrics,
//! traces) when a client's request has its answer.
//!
//! A [`Completion`] is made when a request enters the pipeline, travels with it (inside the
//! upstream's pending entry) and reports exactly once: [`Completion::finish`] with the answer
//! the client gets, or, when it is dropped unanswered (the client went away, the session
//! closed), as [`Outcome::Cancelled`]. Reporting is synchronous and cheap: it borrows what is
//! at hand and leaves building records to the [`ExchangeObserver`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_types::ids::SessionId;
use gateway_types::jsonrpc::Message;
use serde_json::Value;

use crate::client::ClientTransport;
use crate::error::codes;

/// How an exchange ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A result.
    Ok,
    /// A JSON-RPC error from the upstream or the gateway.
    Error,
    /// Refused by policy.
    Denied,
    /// Refused by a rate limit.
    RateLimited,
    /// Never answered (the client or session went away).
    Cancelled,
}

impl Outcome {
    /// The stable text form (`ok`, `error`, `denied`, `rate_limited`, `cancelled`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Denied => "denied",
            Self::RateLimited => "rate_limited",
            Self::Cancelled => "cancelled",
        }
    }

    fn of(message: &Message) -> (Self, Option<i64>) {
        match message {
            Message::Error(e) => {
                let code = e.error.code;
                let outcome = match code {
                    codes::POLICY_DENIED => Self::Denied,
                    codes::LIMIT_REACHED => Self::RateLimited,
                    _ => Self::Error,
                };
                (outcome, Some(code))
            }
            _ => (Self::Ok, None),
        }
    }
}

/// One completed exchange, as reported.
#[derive(Debug)]
pub struct Exchange<'a> {
    /// The client session.
    pub session: SessionId,
    /// The client-facing transport.
    pub transport: ClientTransport,
    /// The negotiated protocol revision, when known.
    pub protocol_version: Option<&'a str>,
    /// The JSON-RPC method.
    pub method: &'a str,
    /// The tool or prompt name, or the resource URI.
    pub name: Option<&'a str>,
    /// How it ended.
    pub outcome: Outcome,
    /// The JSON-RPC error code, if it ended in an error.
    pub error_code: Option<i64>,
    /// From entering the pipeline to the answer.
    pub latency: Duration,
    /// Serialized size of the request.
    pub request_bytes: u64,
    /// Serialized size of the answer (0 when cancelled).
    pub response_bytes: u64,
    /// The request's `params`, kept only when the observer asked for bodies.
    pub params: Option<Value>,
    /// The answer, when there is one.
    pub response: Option<&'a Message>,
    /// What [`ExchangeObserver::request_tag`] answered when the exchange started.
    pub tag: Option<&'a str>,
}

/// Receives completed exchanges. Called on whatever task delivers the answer: must not block
/// or await.
pub trait ExchangeObserver: Send + Sync {
    /// Whether exchanges are reported at all (no [`Completion`] is made otherwise).
    fn observes(&self) -> bool {
        false
    }

    /// Whether to keep the request's `params` for [`Exchange::params`] (bodies are logged).
    fn wants_bodies(&self) -> bool {
        false
    }

    /// Called when the exchange starts, on the task that received the request: an opaque tag
    /// (the HTTP request id in scope there) handed back in [`Exchange::tag`].
    fn request_tag(&self) -> Option<Box<str>> {
        None
    }

    /// One exchange completed.
    fn completed(&self, exchange: Exchange<'_>) {
        let _ = exchange;
    }
}

/// Counts bytes written, for sizes without allocating.
struct Counter(u64);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The serialized size of a JSON value, without building the string.
pub fn json_size<T: serde::Serialize + ?Sized>(value: &T) -> u64 {
    let mut c = Counter(0);
    let _ = serde_json::to_writer(&mut c, value);
    c.0
}

/// An exchange in flight; reports once (see the module docs).
pub struct Completion {
    observer: Arc<dyn ExchangeObserver>,
    session: SessionId,
    transport: ClientTransport,
    protocol_version: Option<Arc<str>>,
    started: Instant,
    method: Box<str>,
    name: Option<Box<str>>,
    request_bytes: u64,
    params: Option<Value>,
    tag: Option<Box<str>>,
    done: bool,
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completion")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl Completion {
    /// Starts timing `request` (already parsed; `request_bytes` its size on the wire).
    #[must_use]
    pub fn start(
        observer: Arc<dyn ExchangeObserver>,
        session: SessionId,
        transport: ClientTransport,
        protocol_version: Option<Arc<str>>,
        request: &gateway_types::jsonrpc::Request,
    ) -> Self {
        let params = request.params.as_ref();
        let name = params
            .and_then(|p| p.get("name").or_else(|| p.get("uri")))
            .and_then(Value::as_str)
            .map(Into::into);
        let keep = observer.wants_bodies();
        let tag = observer.request_tag();
        Self {
            tag,
            request_bytes: json_size(request),
            params: if keep { params.cloned() } else { None },
            observer,
            session,
            transport,
            protocol_version,
            started: Instant::now(),
            method: request.method.as_str().into(),
            name,
            done: false,
        }
    }

    /// Reports the answer the client gets.
    pub fn finish(mut self, answer: &Message) {
        let (outcome, error_code) = Outcome::of(answer);
        self.report(outcome, error_code, json_size(answer), Some(answer));
    }

    fn report(
        &mut self,
        outcome: Outcome,
        error_code: Option<i64>,
        response_bytes: u64,
        response: Option<&Message>,
    ) {
        if self.done {
            return;
        }
        self.done = true;
        self.observer.completed(Exchange {
            session: self.session,
            transport: self.transport,
            protocol_version: self.protocol_version.as_deref(),
            method: &self.method,
            name: self.name.as_deref(),
            outcome,
            error_code,
            latency: self.started.elapsed(),
            request_bytes: self.request_bytes,
            response_bytes,
            params: self.params.take(),
            response,
            tag: self.tag.as_deref(),
        });
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        self.report(Outcome::Cancelled, None, 0, None);
    }
}
