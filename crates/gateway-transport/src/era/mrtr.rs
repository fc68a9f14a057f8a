//! Multi Round-Trip Requests for legacy upstreams: a legacy server asks its client mid-call
//! (sampling, elicitation, roots) with a server-to-client request, which a modern client cannot
//! receive. The gateway answers the modern client with an `InputRequiredResult` whose
//! `requestState` is a gateway-minted token naming the call still waiting upstream; the
//! client's retry with `inputResponses` answers the waiting request and the call goes on.
//!
//! Tokens are 256 random bits (unguessable), bound to the principal, the method and the
//! mirrored name of the original request, single-use, and expire after a bounded lifetime; at
//! most a bounded number wait at once. A pending call that expires or is evicted is cancelled
//! upstream (its [`Call`] is dropped).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use gateway_types::jsonrpc::{ErrorObject, RequestId};
use serde_json::{Map, Value};

use super::carrier::Call;
use crate::error::codes;

/// A call waiting for the client's input.
#[derive(Debug)]
pub struct PendingInput {
    /// Who may resume it (the principal's stable key).
    pub owner: String,
    /// The original request's method.
    pub method: String,
    /// The original request's mirrored name (`params.name` / `params.uri`).
    pub name: Option<String>,
    /// The call, still in flight upstream.
    pub call: Call,
    /// The `inputRequests` the client got, by key.
    pub requests: Map<String, Value>,
    /// The upstream's request id behind each key.
    pub ids: Vec<(String, RequestId)>,
    /// The client declared a log level (log messages are relayed).
    pub log_level: Option<String>,
}

struct Entry {
    pending: PendingInput,
    expires: Instant,
}

/// Why a `requestState` was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum ResumeError {
    /// Unknown, expired, already used, or not this principal's.
    Unknown,
    /// It belongs to another request (method or name differ).
    Mismatch,
}

impl ResumeError {
    /// The JSON-RPC error for the client.
    #[must_use]
    pub fn to_error_object(&self) -> ErrorObject {
        match self {
            Self::Unknown => ErrorObject::new(
                codes::INVALID_PARAMS,
                "requestState is unknown or expired: send the original request again without it",
            ),
            Self::Mismatch => ErrorObject::new(
                codes::INVALID_PARAMS,
                "requestState belongs to a different request",
            ),
        }
    }
}

/// The store of pending input requests.
pub struct MrtrStore {
    entries: Mutex<HashMap<String, Entry>>,
    ttl: Duration,
    max: usize,
}

impl std::fmt::Debug for MrtrStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MrtrStore")
            .field("ttl", &self.ttl)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl MrtrStore {
    /// A store keeping a pending call at most `ttl`, and at most `max` at once.
    #[must_use]
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            max: max.max(1),
        }
    }

    /// Pending calls right now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether none is pending.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps a pending call and returns its token.
    ///
    /// # Errors
    /// The store is full (the call is given back, to be dropped, which cancels it).
    pub fn insert(&self, pending: PendingInput) -> Result<String, Box<PendingInput>> {
        let now = Instant::now();
        let expired: Vec<Entry>;
        let token = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            let stale: Vec<String> = entries
                .iter()
                .filter(|(_, e)| e.expires <= now)
                .map(|(k, _)| k.clone())
                .collect();
            expired = stale.iter().filter_map(|k| entries.remove(k)).collect();
            if entries.len() >= self.max {
                drop(entries);
                drop(expired);
                return Err(Box::new(pending));
            }
            let token = mint();
            entries.insert(
                token.clone(),
                Entry {
                    pending,
                    expires: now + self.ttl,
                },
            );
            token
        };
        // Expired calls are dropped outside the lock (dropping cancels them upstream).
        drop(expired);
        Ok(token)
    }

    /// Takes the pending call named by `token` for `owner`'s retry of `method` on `name`.
    ///
    /// # Errors
    /// Unknown, expired, someone else's, or a different request.
    pub fn take(
        &self,
        token: &str,
        owner: &str,
        method: &str,
        name: Option<&str>,
    ) -> Result<PendingInput, ResumeError> {
        let entry = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            match entries.get(token) {
                Some(e) if e.pending.owner == owner => {}
                _ => return Err(ResumeError::Unknown),
            }
            entries.remove(token)
        };
        let Some(entry) = entry else {
            return Err(ResumeError::Unknown);
        };
        if entry.expires <= Instant::now() {
            return Err(ResumeError::Unknown);
        }
        if entry.pending.method != method || entry.pending.name.as_deref() != name {
            // The state is consumed either way: a mismatched retry ends the call.
            return Err(ResumeError::Mismatch);
        }
        Ok(entry.pending)
    }

    /// Drops (and so cancels) every pending call past its lifetime.
    pub fn sweep(&self) {
        let now = Instant::now();
        let expired: Vec<Entry> = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            let stale: Vec<String> = entries
                .iter()
                .filter(|(_, e)| e.expires <= now)
                .map(|(k, _)| k.clone())
                .collect();
            stale.iter().filter_map(|k| entries.remove(k)).collect()
        };
        drop(expired);
    }
}

/// A fresh token: 32 random bytes, URL-safe Base64. Falls back to two v4 UUIDs (also from
/// the OS generator) if `getrandom` fails.
fn mint() -> String {
    let mut bytes = [0u8; 32];
    if getrandom::fill(&mut bytes).is_err() {
        let a = uuid::Uuid::new_v4();
        let b = uuid::Uuid::new_v4();
        bytes[..16].copy_from_slice(a.as_bytes());
        bytes[16..].copy_from_slice(b.as_bytes());
    }
    format!(
        "gw1.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = mint();
        let b = mint();
        assert_ne!(a, b);
        assert!(a.len() > 40, "{a}");
    }

    #[test]
    fn unknown_tokens_are_refused() {
        let store = MrtrStore::new(Duration::from_secs(60), 4);
        assert_eq!(
            store
                .take("gw1.nope", "user:1", "tools/call", Some("x"))
                .unwrap_err(),
            ResumeError::Unknown
        );
        assert!(store.is_empty());
    }
}
