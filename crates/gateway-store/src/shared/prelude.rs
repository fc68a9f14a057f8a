// Imports and helper macros of the shared query code. `include!`d first into each backend's
// `imp` module; the backend module supplies `schema`, `Backend`, `Conn`, `Store` and the
// hooks (`lock_chain_head`, `serialize_changes`, `filter_tag`).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::dsl::max;
use diesel::expression_methods::{
    BoolExpressionMethods, EscapeExpressionMethods, ExpressionMethods, TextExpressionMethods,
};
use diesel::upsert::excluded;
use diesel::{AsChangeset, Insertable, NullableExpressionMethods, OptionalExtension, QueryDsl, Queryable, Selectable, SelectableHelper};
use diesel_async::RunQueryDsl;
use gateway_types::ids::{
    AggregateId, ApiKeyId, AuditLogId, HealthCheckId, LogId, NamespaceId, OrgId, PolicyId, RateLimitId,
    RefreshTokenId,
    ServerId, SessionId, TokenFamilyId, UserId, VirtualServerId,
};
use gateway_types::model::{
    ApiKey, AuditLog, ChangeEntry, Granularity, HealthCheck, LogAggregate, LogRecord, McpServer,
    McpServerPatch, McpSession, McpSessionPatch, Namespace, NamespacePatch, NewApiKey, NewAuditLog,
    NewHealthCheck, NewMcpServer, NewMcpSession, NewNamespace, NewOrganization, NewRateLimitRule,
    NewPolicy, NewRefreshToken, NewUser, NewVirtualServer, Organization, OrganizationPatch, Page, Paged, RateLimitRule,
    PolicyPatch, RateLimitRulePatch, RateLimitUsage, RefreshToken, ServerCatalog, ServerFilter, ServerStats, ServerStatsDelta,
    RecordSource, ServerStatus, SessionStatus, StoredPolicy, User, UserPatch, VirtualServer, VirtualServerPatch,
};
use gateway_types::store::{
    ApiKeyStore, AuditChainHead, AuditFilter, AuditHasher, AuditStore, CatalogStore, ChangeLogStore, HealthStore, LogQuery, LogStore,
    NamespaceStore, OrganizationStore, PolicyStore, RateLimitStore, RefreshTokenStore, ServerStore, SessionStore,
    StoreHealth, StoreResult, Stores, UserStore, VirtualServerStore,
};

use super::{
    BACKEND_NAME, Backend, Conn, Store, filter_tag, job_locks, lock_chain_head, lock_organization, lock_roll_up_marks,
    schema, serialize_changes,
};
use crate::convert::{affected, contains_pattern, count, parse, seal, strings, strings_json, unseal};
use crate::error::{DbError, DbResult};
use crate::types::{DbJson, DbTime, DbUuid, now, ts, ts_opt, uid};

diesel::define_sql_function! {
    /// SQL `lower()`, for case-insensitive matching on both backends.
    fn lower(x: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
}

/// Runs `$body` (a block evaluating to `DbResult<T>`, in which `?` converts driver errors)
/// with a pooled connection bound to `$c`. Plain reads need no transaction.
macro_rules! read {
    ($store:expr, $c:ident, $body:block) => {{
        let mut checkout = $store.conn().await?;
        let result = {
            let $c: &mut Conn = checkout.conn()?;
            run(async { $body }).await
        };
        checkout.finish();
        result
    }};
}

/// Awaits a read; gives the `async` block of `read!` its `DbResult` type.
async fn run<T>(read: impl std::future::Future<Output = DbResult<T>>) -> DbResult<T> {
    read.await
}

/// Fails the enclosing transaction with `NotFound` unless the row `$id` of `$table` belongs
/// to organization `$org`: references between tenant rows never cross organizations.
macro_rules! require_owned {
    ($c:expr, $table:ident, $org:expr, $id:expr) => {{
        let found: Option<DbUuid> = schema::$table::table
            .filter(schema::$table::id.eq(uid($id)))
            .filter(schema::$table::org_id.eq(uid($org)))
            .select(schema::$table::id)
            .first($c)
            .await
            .optional()?;
        if found.is_none() {
            return Err(DbError::NotFound);
        }
    }};
}

/// `LIMIT`/`OFFSET` of a page, capped at [`Page::MAX_LIMIT`].
fn bounds(page: Page) -> (i64, i64) {
    (i64::from(page.capped_limit()), i64::from(page.offset))
}

/// A caller-given row limit.
fn limit(n: u32) -> i64 {
    i64::from(n)
}

/// Change-log kinds (`ChangeEntry::kind`) and operations (`ChangeEntry::op`).
mod change {
    pub(super) const ORGANIZATION: &str = "organization";
    pub(super) const NAMESPACE: &str = "namespace";
    pub(super) const USER: &str = "user";
    pub(super) const API_KEY: &str = "api_key";
    pub(super) const SERVER: &str = "server";
    pub(super) const VIRTUAL_SERVER: &str = "virtual_server";
    pub(super) const RATE_LIMIT: &str = "rate_limit";
    pub(super) const POLICY: &str = "policy";
    pub(super) const CATALOG: &str = "catalog";
    pub(super) const CREATE: &str = "create";
    pub(super) const UPDATE: &str = "update";
    pub(super) const DELETE: &str = "delete";
}

/// Appends a change-log entry inside the caller's transaction.
async fn record_change(
    c: &mut Conn,
    org: OrgId,
    kind: &'static str,
    entity: impl ToString + Send,
    op: &'static str,
) -> DbResult<()> {
    serialize_changes(c).await?;
    diesel::insert_into(schema::change_log::table)
        .values(NewChangeRow {
            org_id: uid(org),
            kind,
            entity_id: entity.to_string(),
            op,
            created_at: now(),
        })
        .execute(c)
        .await?;
    Ok(())
}
