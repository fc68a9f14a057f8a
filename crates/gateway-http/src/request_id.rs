//! Request ids: one per request, on every response as `X-Request-Id`, in every log line and
//! every error body.
//!
//! A client (or a proxy in front of the gateway) may send its own `X-Request-Id`; it is kept
//! when it is 1 to 128 characters of `[A-Za-z0-9._-]`, so ids correlate across hops without
//! letting a client inject log lines or header tricks. Anything else is replaced by a fresh
//! UUID.

use std::fmt;
use std::future::{Ready, ready};
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header::{HeaderMap, HeaderName};
use actix_web::{FromRequest, HttpMessage, HttpRequest};

/// The request-id header.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest accepted incoming id.
pub const MAX_LEN: usize = 128;

tokio::task_local! {
    static CURRENT: RequestId;
}

/// The id of one request. Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// A fresh random id.
    #[must_use]
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string().into())
    }

    /// Accepts a client-supplied id if it is sane (see the module docs).
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        let sane = !value.is_empty()
            && value.len() <= MAX_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        sane.then(|| Self(value.into()))
    }

    /// The incoming header's id if sane, else a fresh one.
    #[must_use]
    pub fn from_headers(headers: &HeaderMap) -> Self {
        headers
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(Self::parse)
            .unwrap_or_else(Self::generate)
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Runs `fut` with this id as the [`current`] one.
    pub(crate) async fn scope<F: Future>(self, fut: F) -> F::Output {
        CURRENT.scope(self, fut).await
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of the request being handled, inside the edge middleware's scope (handlers,
/// extractors and their error handlers); `None` outside a request.
#[must_use]
pub fn current() -> Option<RequestId> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Extracts the id the edge middleware assigned. Without that middleware (never in the real
/// app) a fresh id is made up, so the extractor cannot fail.
impl FromRequest for RequestId {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let id = req
            .extensions()
            .get::<Self>()
            .cloned()
            .unwrap_or_else(Self::generate);
        ready(Ok(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_kept() {
        for ok in [
            "abc",
            "A-b_c.9",
            &"x".repeat(128),
            "0af7651916cd43dd8448eb211c80319c",
        ] {
            assert_eq!(RequestId::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn anything_else_is_rejected() {
        for bad in [
            "",
            &"x".repeat(129),
            "a b",
            "a\nb",
            "<script>",
            "id;drop",
            "ünï",
            "a/b",
        ] {
            assert!(RequestId::parse(bad).is_none(), "{bad:?} accepted");
        }
    }

    #[test]
    fn generated_ids_are_uuids() {
        let id = RequestId::generate();
        assert!(uuid::Uuid::parse_str(id.as_str()).is_ok());
        assert_ne!(id, RequestId::generate());
    }

    #[tokio::test]
    async fn current_is_scoped() {
        assert!(current().is_none());
        let id = RequestId::generate();
        let seen = id.clone().scope(async { current() }).await;
        assert_eq!(seen, Some(id));
    }
}
