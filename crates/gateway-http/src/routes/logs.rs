//! `/admin/logs` (the request log, `kind=request`, needs `logs:read`; the audit trail,
//! `kind=audit`, needs `audit:read`), `/admin/logs/{id}/body` (a request's stored body,
//! `logs:read`), `/admin/logs/verify` (the audit chain's integrity, `audit:read`) and
//! `/admin/stats` (rollups from `log_aggregates` and live session counts, `logs:read`). All
//! are scoped to the caller's organization.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use gateway_auth::rbac::Permission;
use gateway_logging::audit::{Sha256AuditHasher, verify_chain};
use gateway_types::error::{ErrorCode, GatewayError};
use gateway_types::ids::{LogId, ServerId};
use gateway_types::model::{AuditLog, LogRecord, Page};
use gateway_types::store::{AuditFilter, LogQuery};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::authn::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;

/// Which log to read.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LogKind {
    /// The audit trail.
    Audit,
    /// The request log.
    Request,
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
    /// Request log: only this server (id).
    server_id: Option<uuid::Uuid>,
    /// Request log: only this principal id.
    principal_id: Option<String>,
    /// Request log: only this method (`tools/call`, `GET /gateway/servers`).
    method: Option<String>,
    /// Request log: only this status (`ok`, `error`, `denied`, `rate_limited`, `cancelled`).
    status: Option<String>,
    /// Request log: tool/resource/prompt names containing this text (case-insensitive).
    q: Option<String>,
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
        LogKind::Request => list_requests(&state, &who, q).await,
    }
}

/// One request-log record as listed.
#[derive(Serialize)]
struct RequestView {
    id: String,
    namespace_id: Option<String>,
    server_id: Option<String>,
    principal_type: Option<String>,
    principal_id: Option<String>,
    transport: String,
    protocol_era: Option<String>,
    method: String,
    name: Option<String>,
    status: String,
    http_status: Option<i32>,
    error_code: Option<i32>,
    latency_ms: i32,
    request_bytes: i64,
    response_bytes: i64,
    client_ip: Option<String>,
    request_id: Option<String>,
    trace_id: Option<String>,
    has_body: bool,
    created_at: DateTime<Utc>,
}

impl From<LogRecord> for RequestView {
    fn from(r: LogRecord) -> Self {
        Self {
            id: r.id.to_string(),
            namespace_id: r.namespace_id.map(|n| n.to_string()),
            server_id: r.server_id.map(|s| s.to_string()),
            principal_type: r.principal_type,
            principal_id: r.principal_id,
            transport: r.transport,
            protocol_era: r.protocol_era,
            method: r.method,
            name: r.name,
            status: r.status,
            http_status: r.http_status,
            error_code: r.error_code,
            latency_ms: r.latency_ms,
            request_bytes: r.request_bytes,
            response_bytes: r.response_bytes,
            client_ip: r.client_ip,
            request_id: r.request_id,
            trace_id: r.trace_id,
            has_body: r.body_ref.is_some(),
            created_at: r.created_at,
        }
    }
}

fn bad_cursor() -> ApiError {
    ApiError::new(ErrorCode::Validation, "cursor is not one this endpoint gave out")
}

/// A request-log cursor: `{created_at as microseconds}.{id}` of the last record of a page.
fn parse_request_cursor(c: &str) -> Result<(DateTime<Utc>, LogId), ApiError> {
    let (micros, id) = c.split_once('.').ok_or_else(bad_cursor)?;
    let micros: i64 = micros.parse().map_err(|_| bad_cursor())?;
    let at = DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(bad_cursor)?;
    let id: uuid::Uuid = id.parse().map_err(|_| bad_cursor())?;
    Ok((at, LogId::from_uuid(id)))
}

async fn list_requests(
    state: &AppState,
    who: &Authenticated,
    q: LogsQuery,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::LogsRead)?;
    let limit = q.limit.unwrap_or(Page::default().limit).clamp(1, Page::MAX_LIMIT);
    let before = q.cursor.as_deref().map(parse_request_cursor).transpose()?;
    if let (Some(from), Some(to)) = (q.from, q.to)
        && from >= to
    {
        return Err(ApiError::new(ErrorCode::Validation, "from must be before to"));
    }
    let query = LogQuery {
        from: q.from,
        to: q.to,
        server_id: q.server_id.map(ServerId::from_uuid),
        principal_id: q.principal_id,
        method: q.method,
        status: q.status,
        name_contains: q.q.filter(|s| !s.is_empty()),
        before,
    };
    let mut rows = state.stores.logs.query(p.org_id, query, limit + 1).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = more
        .then(|| {
            rows.last()
                .map(|r| format!("{}.{}", r.created_at.timestamp_micros(), r.id))
        })
        .flatten();
    Ok(HttpResponse::Ok().json(LogPage {
        kind: "request",
        items: rows.into_iter().map(RequestView::from).collect(),
        next_cursor,
    }))
}

/// `GET /admin/logs/{id}/body`: the stored (redacted) body of a request-log record, as JSON.
/// 404 when the record is not the caller's organization's, has no body, or the body is no
/// longer kept.
pub(crate) async fn body(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::LogsRead)?;
    let not_found = || ApiError::new(ErrorCode::NotFound, "no stored body for this log record");
    let id: uuid::Uuid = path.into_inner().parse().map_err(|_| not_found())?;
    let record = state
        .stores
        .logs
        .get(p.org_id, LogId::from_uuid(id))
        .await?
        .ok_or_else(not_found)?;
    let (Some(body_ref), Some(sink)) = (
        record.body_ref.as_deref(),
        state.request_log.as_ref().and_then(|l| l.sink()),
    ) else {
        return Err(not_found());
    };
    let bytes = sink
        .read(p.org_id, body_ref)
        .await
        .map_err(|e| ApiError::from(GatewayError::from(gateway_logging::LoggingError::from(e))))?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().content_type("application/json").body(bytes))
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
