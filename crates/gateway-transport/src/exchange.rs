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
    /// The W3C trace id the exchange was forwarded with (32 hex digits).
    pub trace_id: &'a str,
    /// The gateway's span of the exchange (16 hex digits): the upstream's parent.
    pub span_id: &'a str,
    /// The client's span, when it sent a trace context.
    pub parent_span_id: Option<&'a str>,
    /// Whether the trace is sampled (the client's flag; new traces are).
    pub sampled: bool,
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

/// W3C trace context of an exchange: the client's trace (from `_meta.traceparent`) continued,
/// or a new one, with a fresh span id for the gateway's hop. [`TraceContext::inject`] writes it
/// into the forwarded request's `_meta` (`traceparent`, as the 2026-07-28 specification
/// reserves it; `tracestate` and `baggage` pass through untouched), and the HTTP upstream
/// transport copies it into the `traceparent` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// 16 bytes, lower-case hex.
    pub trace_id: [u8; 32],
    /// 8 bytes, lower-case hex.
    pub span_id: [u8; 16],
    /// The sampled flag of the incoming context (sampled when new).
    pub sampled: bool,
    /// The client's span (the parent of the gateway's), when it sent a trace context.
    pub parent_id: Option<[u8; 16]>,
}

fn hex_into<const N: usize>(bytes: &[u8]) -> [u8; N] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'0'; N];
    for (i, b) in bytes.iter().take(N / 2).enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0x0f)];
    }
    out
}

fn valid_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && s.bytes().any(|b| b != b'0')
}

impl TraceContext {
    /// Continues the trace of `traceparent` (version `00`), or starts a new one.
    #[must_use]
    pub fn continue_or_start(traceparent: Option<&str>) -> Self {
        let random = uuid::Uuid::new_v4();
        let span_id = hex_into::<16>(&random.as_bytes()[..8]);
        if let Some(tp) = traceparent {
            let parts: Vec<&str> = tp.split('-').collect();
            if let [version, trace, parent, flags] = parts[..]
                && version == "00"
                && valid_hex(trace, 32)
                && valid_hex(parent, 16)
                && flags.len() == 2
            {
                let mut trace_id = [0; 32];
                trace_id.copy_from_slice(trace.as_bytes());
                let mut parent_id = [0; 16];
                parent_id.copy_from_slice(parent.as_bytes());
                return Self {
                    trace_id,
                    span_id,
                    sampled: u8::from_str_radix(flags, 16).is_ok_and(|f| f & 1 == 1),
                    parent_id: Some(parent_id),
                };
            }
        }
        Self {
            trace_id: hex_into::<32>(uuid::Uuid::new_v4().as_bytes()),
            span_id,
            sampled: true,
            parent_id: None,
        }
    }

    /// The gateway's span id as text.
    #[must_use]
    pub fn span_id(&self) -> &str {
        std::str::from_utf8(&self.span_id).unwrap_or_default()
    }

    /// The client's span id as text, when there is one.
    #[must_use]
    pub fn parent_id(&self) -> Option<&str> {
        self.parent_id.as_ref().and_then(|p| std::str::from_utf8(p).ok())
    }

    /// The trace id as text.
    #[must_use]
    pub fn trace_id(&self) -> &str {
        std::str::from_utf8(&self.trace_id).unwrap_or_default()
    }

    /// `00-{trace}-{span}-{flags}`.
    #[must_use]
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{}",
            self.trace_id(),
            std::str::from_utf8(&self.span_id).unwrap_or_default(),
            if self.sampled { "01" } else { "00" }
        )
    }

    /// Sets `params._meta.traceparent` of `request` to this context (creating `params` and
    /// `_meta` when missing).
    pub fn inject(&self, request: &mut gateway_types::jsonrpc::Request) {
        let params = request
            .params
            .get_or_insert_with(|| Value::Object(serde_json::Map::new()));
        let Some(params) = params.as_object_mut() else {
            return;
        };
        let meta = params
            .entry("_meta")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("traceparent".into(), Value::String(self.traceparent()));
        }
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
    trace: TraceContext,
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
    /// Starts timing `request`, and sets its trace context (see [`TraceContext`]) so the
    /// upstream continues the client's trace.
    #[must_use]
    pub fn start(
        observer: Arc<dyn ExchangeObserver>,
        session: SessionId,
        transport: ClientTransport,
        protocol_version: Option<Arc<str>>,
        request: &mut gateway_types::jsonrpc::Request,
    ) -> Self {
        let incoming = request
            .params
            .as_ref()
            .and_then(|p| p.get("_meta"))
            .and_then(|m| m.get("traceparent"))
            .and_then(Value::as_str);
        let trace = TraceContext::continue_or_start(incoming);
        let request_bytes = json_size(&*request);
        trace.inject(request);
        let request = &*request;
        let params = request.params.as_ref();
        let name = params
            .and_then(|p| p.get("name").or_else(|| p.get("uri")))
            .and_then(Value::as_str)
            .map(Into::into);
        let keep = observer.wants_bodies();
        let tag = observer.request_tag();
        Self {
            tag,
            trace,
            request_bytes,
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
            trace_id: self.trace.trace_id(),
            span_id: self.trace.span_id(),
            parent_span_id: self.trace.parent_id(),
            sampled: self.trace.sampled,
        });
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        self.report(Outcome::Cancelled, None, 0, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_trace_is_continued_and_a_missing_one_started() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01";
        let t = TraceContext::continue_or_start(Some(tp));
        assert_eq!(t.trace_id(), "0af7651916cd43dd8448eb211c80319c");
        let out = t.traceparent();
        assert!(
            out.starts_with("00-0af7651916cd43dd8448eb211c80319c-") && out.ends_with("-01"),
            "{out}"
        );
        assert_ne!(
            &out[36..52],
            "00f067aa0ba902b7",
            "a new span id for the gateway's hop"
        );
        for bad in [
            "garbage",
            "01-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-0AF7651916CD43DD8448EB211C80319C-00f067aa0ba902b7-01",
        ] {
            let t = TraceContext::continue_or_start(Some(bad));
            assert_ne!(t.trace_id(), "0af7651916cd43dd8448eb211c80319c", "{bad}");
            assert_eq!(t.trace_id().len(), 32);
        }
        let mut req: gateway_types::jsonrpc::Request =
            serde_json::from_value(serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
                .unwrap_or_else(|_| unreachable!());
        t.inject(&mut req);
        assert_eq!(
            req.params
                .as_ref()
                .and_then(|p| p["_meta"]["traceparent"].as_str()),
            Some(t.traceparent().as_str())
        );
    }
}
