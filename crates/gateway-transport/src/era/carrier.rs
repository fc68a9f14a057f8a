//! The legacy upstream session that modern (stateless) requests ride on.
//!
//! A modern client has no session, but a legacy upstream needs one: initialized once, with the
//! client's capabilities (server-everything registers its sampling, elicitation and roots tools
//! only after seeing them). A [`Carrier`] is one client session at the hub, opened by the HTTP
//! layer for one principal, target and set of declared capabilities, initialized on first use
//! from the request's `_meta`, and reused by every modern request with the same key until the
//! hub expires it for idleness. Each modern request is one [`Call`] over it.
//!
//! Server-to-client requests reach a call on its own reply channel when the upstream's
//! transport names the request they belong to (Streamable HTTP); otherwise (stdio) they arrive
//! on the session's single outbound queue, and the carrier hands them to the most recent call
//! still in flight on it: with one call at a time per carrier, which is what one modern client
//! does while it waits for input, that is exact.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use gateway_types::jsonrpc::{
    ErrorObject, ErrorResponse, Message, Notification, Request, RequestId, Response, Version,
};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::RequestMeta;
use crate::client::ClientSession;
use crate::error::codes;
use crate::upstream::{Reply, next_server_request_id};

/// Messages buffered for one call (progress, the answer, input requests).
const CALL_QUEUE: usize = 64;

type Calls = Arc<Mutex<Vec<(u64, Reply)>>>;

/// A pooled, initialized legacy upstream session for modern requests.
#[derive(Debug)]
pub struct Carrier {
    session: Arc<ClientSession>,
    runtime: tokio::runtime::Handle,
    initialized: tokio::sync::Mutex<Option<Value>>,
    calls: Calls,
    next_call: AtomicU64,
}

impl Carrier {
    /// A carrier over `session` (which it consumes the outbound queue of); its pump runs on
    /// `runtime` until the session closes.
    #[must_use]
    pub fn new(session: Arc<ClientSession>, runtime: tokio::runtime::Handle) -> Arc<Self> {
        let calls: Calls = Arc::default();
        if let Some(rx) = session.take_outbound() {
            runtime.spawn(pump(Arc::clone(&session), rx, Arc::clone(&calls)));
        }
        Arc::new(Self {
            session,
            runtime,
            initialized: tokio::sync::Mutex::new(None),
            calls,
            next_call: AtomicU64::new(1),
        })
    }

    /// The client session at the hub.
    #[must_use]
    pub fn session(&self) -> &Arc<ClientSession> {
        &self.session
    }

    /// Whether the session was closed (the pool then opens a new carrier).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.session.is_closed()
    }

    /// The upstream's `initialize` result, initializing it first (once) with the capabilities
    /// and identity in `meta`.
    ///
    /// # Errors
    /// The upstream refused or could not be reached: the error for the client.
    pub async fn initialize(&self, meta: &RequestMeta) -> Result<Value, ErrorObject> {
        let mut done = self.initialized.lock().await;
        if let Some(result) = done.as_ref() {
            return Ok(result.clone());
        }
        let (tx, mut rx) = mpsc::channel(4);
        let init = Request {
            jsonrpc: Version,
            id: RequestId::Number(next_server_request_id()),
            method: "initialize".into(),
            params: Some(super::legacy_initialize_params(meta)),
            extra: Map::new(),
        };
        self.session.handle(Message::Request(init), &tx).await;
        drop(tx);
        match rx.recv().await {
            Some(Message::Response(r)) => {
                let initialized = Notification {
                    jsonrpc: Version,
                    method: "notifications/initialized".into(),
                    params: None,
                    extra: Map::new(),
                };
                let (sink, _) = mpsc::channel(1);
                self.session
                    .handle(Message::Notification(initialized), &sink)
                    .await;
                *done = Some(r.result.clone());
                Ok(r.result)
            }
            Some(Message::Error(e)) => Err(e.error),
            _ => Err(ErrorObject::new(
                codes::UPSTREAM_UNAVAILABLE,
                "upstream server unavailable",
            )),
        }
    }

    /// Starts a call: `req` (already translated for the legacy upstream) goes upstream under a
    /// gateway-minted id; the returned [`Call`] yields what comes back.
    pub async fn start(self: &Arc<Self>, mut req: Request) -> Call {
        let (tx, rx) = mpsc::channel(CALL_QUEUE);
        let registration = self.next_call.fetch_add(1, Ordering::Relaxed);
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((registration, tx.clone()));
        let id = RequestId::Number(next_server_request_id());
        req.id = id.clone();
        let call = Call {
            carrier: Arc::clone(self),
            rx,
            registration,
            id,
            finished: false,
        };
        self.session.handle(Message::Request(req), &tx).await;
        call
    }
}

/// Hands server-to-client requests from the session's outbound queue to the most recent call
/// in flight; a request no call waits for is refused. Broadcast notifications (list changes,
/// log messages of no request) have no place in the modern request/response exchange and are
/// dropped (the `subscriptions/listen` stream that would carry them is not built yet).
async fn pump(session: Arc<ClientSession>, mut rx: mpsc::Receiver<Message>, calls: Calls) {
    loop {
        let message = tokio::select! {
            m = rx.recv() => m,
            () = session.closed() => None,
        };
        let Some(message) = message else { break };
        let Message::Request(req) = message else {
            continue;
        };
        let target = calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last()
            .map(|(_, tx)| tx.clone());
        let id = req.id.clone();
        let delivered = match target {
            Some(tx) => tx.send(Message::Request(req)).await.is_ok(),
            None => false,
        };
        if !delivered {
            refuse(&session, id, "no request is waiting for this input").await;
        }
    }
}

/// Answers a server-to-client request with an error.
async fn refuse(session: &ClientSession, id: RequestId, message: &str) {
    let error = Message::Error(ErrorResponse::new(
        Some(id),
        ErrorObject::new(codes::INVALID_REQUEST, message),
    ));
    let (sink, _) = mpsc::channel(1);
    session.handle(error, &sink).await;
}

/// What a call yields next.
#[derive(Debug)]
pub enum Event {
    /// A notification about the call (progress, log message).
    Notification(Notification),
    /// A server-to-client request the call needs answered (sampling, elicitation, roots).
    Input(Request),
    /// The answer (a response or an error), with the gateway's id.
    Done(Message),
}

/// One modern request in flight on a [`Carrier`]. Dropped before its answer (the client closed
/// the response stream, or its pending input expired), it is cancelled upstream.
#[derive(Debug)]
pub struct Call {
    carrier: Arc<Carrier>,
    rx: mpsc::Receiver<Message>,
    registration: u64,
    id: RequestId,
    finished: bool,
}

impl Call {
    /// The carrier the call runs on.
    #[must_use]
    pub fn carrier(&self) -> &Arc<Carrier> {
        &self.carrier
    }

    /// The next event of the call.
    pub async fn next(&mut self) -> Event {
        loop {
            let Some(message) = self.rx.recv().await else {
                self.finished = true;
                return Event::Done(Message::Error(ErrorResponse::new(
                    Some(self.id.clone()),
                    ErrorObject::new(codes::INTERNAL_ERROR, "the upstream ended before answering"),
                )));
            };
            match message {
                m @ (Message::Response(_) | Message::Error(_)) => {
                    if m.id() == Some(&self.id) {
                        self.finished = true;
                        return Event::Done(m);
                    }
                }
                Message::Request(r) => return Event::Input(r),
                Message::Notification(n) => return Event::Notification(n),
            }
        }
    }

    /// Answers an input request with the client's result.
    pub async fn answer(&self, id: RequestId, result: Value) {
        let response = Message::Response(Response {
            jsonrpc: Version,
            id,
            result,
            extra: Map::new(),
        });
        let (sink, _) = mpsc::channel(1);
        self.carrier.session.handle(response, &sink).await;
    }

    /// Refuses an input request (the client cannot answer it).
    pub async fn refuse(&self, id: RequestId, message: &str) {
        refuse(&self.carrier.session, id, message).await;
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        let registration = self.registration;
        self.carrier
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(r, _)| *r != registration);
        if self.finished {
            return;
        }
        let cancel = Notification {
            jsonrpc: Version,
            method: "notifications/cancelled".into(),
            params: Some(json!({"requestId": self.id, "reason": "the client closed the response stream"})),
            extra: Map::new(),
        };
        let session = Arc::clone(&self.carrier.session);
        self.carrier.runtime.spawn(async move {
            let (sink, _) = mpsc::channel(1);
            session.handle(Message::Notification(cancel), &sink).await;
        });
    }
}
