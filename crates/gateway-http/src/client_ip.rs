//! The client's address, as everything in the gateway sees it: the TCP peer, or — when the
//! peer is one of `server.trusted_proxies` — the client its `Forwarded` / `X-Forwarded-For`
//! headers name (see [`gateway_ratelimit::client_ip`] for the walk). Rate limits, policy
//! conditions on client IPs, the login throttle and the audit trail all call [`client_ip`].
//!
//! The rate-limit middleware resolves it once per request and keeps it in the request's
//! extensions; later calls read it from there.

use std::net::IpAddr;

use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpMessage, HttpRequest, web};
use gateway_ratelimit::client_ip::TrustedProxies;

use crate::state::AppState;

/// The address resolved for a request (kept in its extensions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClientIp(pub(crate) Option<IpAddr>);

/// The client's address of `req`.
#[must_use]
pub fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    if let Some(ClientIp(ip)) = req.extensions().get::<ClientIp>() {
        return *ip;
    }
    let peer = req.peer_addr().map(|a| a.ip());
    match req.app_data::<web::Data<AppState>>() {
        Some(state) => resolve(&state.trusted_proxies, peer, req.headers()),
        None => peer.map(|ip| ip.to_canonical()),
    }
}

/// The walk over a request's headers.
pub(crate) fn resolve(trusted: &TrustedProxies, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
    if trusted.is_empty() {
        return peer.map(|ip| ip.to_canonical());
    }
    // A line that is not text names nobody: the walk stops there rather than skipping it.
    let lines = |name| headers.get_all(name).map(|v| v.to_str().unwrap_or("unknown"));
    trusted.client_ip(
        peer,
        lines(header::FORWARDED),
        lines(header::HeaderName::from_static("x-forwarded-for")),
    )
}
