//! `/admin/logs` (the audit trail, `kind=audit`; the request log joins as another kind) and
//! `/admin/logs/verify` (the audit chain's integrity). Both are scoped to the caller's
//! organization and need `audit:read`.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use gateway_auth::rbac::Permission;
use gateway_logging::audit::{Sha256AuditHasher, verify_chain};
use gateway_types::error::{ErrorCode, GatewayError};
use gateway_types::model::{AuditLog, Page};
use gateway_types::store::AuditFilter;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::authn::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;

/// Which log to read. Only `audit` exists so far; the request log will be `requests`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LogKind {
    /// The audit trail.
    Audit,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogsQuery {
    kind: LogKind,
    /// Only this action (`policy.update`).
    action: Option<String>,
    /// Only this actor id.
    actor_id: Option<String>,
    /// From (inclusive), RFC 3339.
    from: Option<DateTime<Utc>>,
    /// To (exclusive), RFC 3339.
    to: Option<DateTime<Utc>>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Items per page (1–500, default 50).
    limit: Option<u32>,
}

/// One audit record as listed: every stored field, hashes included, so a client can verify
/// the chain itself.
#[derive(Serialize)]
struct AuditView {
    id: String,
    seq: i64,
    actor_type: String,
    actor_id: Option<String>,
    action: String,
    target_type: Option<String>,
    target_id: Option<String>,
    before_state: Option<Value>,
    after_state: Option<Value>,
    ip: Option<String>,
    request_id: Option<String>,
    prev_hash: String,
    hash: String,
    created_at: DateTime<Utc>,
}

impl From<AuditLog> for AuditView {
    fn from(r: AuditLog) -> Self {
        Self {
            id: r.id.to_string(),
            seq: r.seq,
            actor_type: r.actor_type,
            actor_id: r.actor_id,
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            before_state: r.before_state,
            after_state: r.after_state,
            ip: r.ip,
            request_id: r.request_id,
            prev_hash: r.prev_hash,
            hash: r.hash,
            created_at: r.created_at,
        }
    }
}

/// A page of a log: `{"kind", "items", "next_cursor"}`; `next_cursor` is `null` on the last
/// page. Cursors are opaque to clients.
#[derive(Serialize)]
struct LogPage<T> {
    kind: &'static str,
    items: Vec<T>,
    next_cursor: Option<String>,
}

/// `GET /admin/logs?kind=audit[&action=&actor_id=&from=&to=&cursor=&limit=]`: the caller's
/// organization's audit records, newest first.
pub(crate) async fn list(
    state: web::Data<AppState>,
    who: Authenticated,
    q: web::Query<LogsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    match q.kind {
        LogKind::Audit => list_audit(&state, &who, q).await,
    }
}

async fn list_audit(state: &AppState, who: &Authenticated, q: LogsQuery) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::AuditRead)?;
    let limit = q.limit.unwrap_or(Page::default().limit).clamp(1, Page::MAX_LIMIT);
    let before_seq = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(c.parse::<i64>().ok().filter(|s| *s > 0).ok_or_else(|| {
            ApiError::new(ErrorCode::Validation, "cursor is not one this endpoint gave out")
        })?),
    };
    if let (Some(from), Some(to)) = (q.from, q.to)
        && from >= to
    {
        return Err(ApiError::new(ErrorCode::Validation, "from must be before to"));
    }
    let filter = AuditFilter {
        from: q.from,
        to: q.to,
        action: q.action,
        actor_id: q.actor_id,
        before_seq,
    };
    // One more than asked: whether a next page exists, without a count query.
    let mut rows = state.stores.audit.list(p.org_id, filter, limit + 1).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = more.then(|| rows.last().map(|r| r.seq.to_string())).flatten();
    Ok(HttpResponse::Ok().json(LogPage {
        kind: "audit",
        items: rows.into_iter().map(AuditView::from).collect(),
        next_cursor,
    }))
}

/// `GET /admin/logs/verify`: walks the caller's organization's audit chain and answers
/// `{"ok", "rows_checked", "first_broken": null | {"seq", "id", "reason"}}` (200 either way:
/// a broken chain is a finding, not an error).
pub(crate) async fn verify(state: web::Data<AppState>, who: Authenticated) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::AuditRead)?;
    let report = verify_chain(state.stores.audit.as_ref(), p.org_id, &Sha256AuditHasher)
        .await
        .map_err(GatewayError::from)?;
    if let Some(broken) = &report.first_broken {
        tracing::warn!(
            org.id = %p.org_id,
            audit.seq = broken.seq,
            reason = %broken.reason,
            "audit chain verification failed"
        );
    }
    Ok(HttpResponse::Ok().json(report))
}
