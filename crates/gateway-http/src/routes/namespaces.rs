//! `/api/admin/namespaces`: the namespaces of the caller's organization.
//!
//! - `GET /api/admin/namespaces` (`namespaces:read`): a page (`offset`, `limit`), by slug.
//! - `POST /api/admin/namespaces` (`namespaces:write`): `{"name", "slug", "description"}` → 201.
//! - `GET|PUT|DELETE /api/admin/namespaces/{id}` (`{id}` is the id or the slug): `PUT` changes
//!   the fields it names (`null` clears `description`); `DELETE` of a namespace that still has
//!   servers is 409 unless `?force=true`, which detaches them (they stay registered, outside
//!   any namespace), ends their sessions and deletes the API keys confined to the namespace.
//! - `GET /api/admin/namespaces/{id}/servers` (`namespaces:read`, `servers:read`): its servers;
//!   `POST` with `{"server": "<id or name>"}` moves a server into it and `DELETE
//!   …/servers/{server}` takes one out (`namespaces:write`, `servers:write`).
//! - `GET /api/admin/namespaces/{id}/sessions` (`namespaces:read`, `users:read`): the recorded
//!   MCP sessions of its servers (`open=true` for open ones only), each marked `live` when it
//!   is open on this replica, and the live sessions this replica holds.
//!
//! Everything is scoped to the caller's organization (another organization's namespace is
//! 404). A credential confined to a namespace sees only that namespace and cannot create or
//! delete namespaces (403). Namespaces declared in configuration cannot be changed or deleted
//! here (409). Writes are audited (`namespace.create`, `namespace.update`, `namespace.delete`,
//! and `server.update` for a server moved in or out).

use std::collections::HashSet;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use gateway_auth::principal::Principal;
use gateway_auth::rbac::Permission;
use gateway_logging::audit::{AuditEvent, actions};
use gateway_transport::hub::SessionScope;
use gateway_types::error::ErrorCode;
use gateway_types::ids::{NamespaceId, ServerId};
use gateway_types::model::{
    McpServer, McpServerPatch, McpSession, Namespace, NamespacePatch, NewNamespace, Page, RecordSource,
    ServerFilter,
};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use super::servers::{self, ServerView};
use super::users::PageQuery;
use crate::audit::{self, ClientContext};
use crate::authn::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;

/// Longest slug.
const MAX_SLUG_CHARS: usize = 64;
/// Longest display name.
const MAX_NAME_CHARS: usize = 128;
/// Longest description.
const MAX_DESCRIPTION_CHARS: usize = 1024;

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such namespace")
}

/// Slugs: lower-case letters, digits and `-`, starting with a letter or digit, and never a
/// UUID (so `{id}` in a path is unambiguous).
pub(crate) fn valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= MAX_SLUG_CHARS
        && slug.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && slug.parse::<NamespaceId>().is_err()
}

/// Every problem of a namespace's fields, each prefixed with its field.
pub(crate) fn namespace_problems(slug: &str, name: &str, description: Option<&str>) -> Vec<String> {
    let mut problems = Vec::new();
    if !valid_slug(slug) {
        problems.push(format!(
            "slug: must be 1-{MAX_SLUG_CHARS} characters of a-z, 0-9 and '-', starting with a letter or digit (not a UUID)"
        ));
    }
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        problems.push(format!(
            "name: must be 1-{MAX_NAME_CHARS} characters, without control characters"
        ));
    }
    if let Some(d) = description
        && (d.chars().count() > MAX_DESCRIPTION_CHARS
            || d.chars().any(|c| c.is_control() && c != '\n' && c != '\t'))
    {
        problems.push(format!(
            "description: must be at most {MAX_DESCRIPTION_CHARS} characters, without control characters"
        ));
    }
    problems
}

fn check(problems: Vec<String>) -> Result<(), ApiError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::Validation, problems.join("; ")))
    }
}

/// A namespace as answered.
#[derive(Serialize)]
pub(crate) struct NamespaceView {
    id: String,
    name: String,
    slug: String,
    description: Option<String>,
    source: &'static str,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Namespace> for NamespaceView {
    fn from(n: Namespace) -> Self {
        Self {
            id: n.id.to_string(),
            name: n.name,
            slug: n.slug,
            description: n.description,
            source: n.source.as_str(),
            created_at: n.created_at,
            updated_at: n.updated_at,
        }
    }
}

/// The audit summary of a namespace.
pub(crate) fn summary(n: &Namespace) -> Value {
    json!({
        "id": n.id.to_string(),
        "name": n.name,
        "slug": n.slug,
        "description": n.description,
        "source": n.source.as_str(),
    })
}

/// The namespace `raw` (id or slug) names, if the caller may see it.
async fn find(state: &AppState, p: &Principal, raw: &str) -> Result<Namespace, ApiError> {
    let found = match raw.parse::<NamespaceId>() {
        Ok(id) => state.stores.namespaces.get(p.org_id, id).await?,
        Err(_) => state.stores.namespaces.get_by_slug(p.org_id, raw).await?,
    };
    found
        .filter(|n| p.namespace.is_none_or(|confined| confined == n.id))
        .ok_or_else(not_found)
}

fn not_confined(p: &Principal) -> Result<(), ApiError> {
    match p.namespace {
        Some(confined) => Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("this credential is confined to namespace {confined}"),
        )),
        None => Ok(()),
    }
}

fn declared(n: &Namespace, verb: &str) -> Result<(), ApiError> {
    if n.source == RecordSource::Config {
        Err(ApiError::new(
            ErrorCode::Conflict,
            format!("this namespace is declared in configuration; {verb} it there"),
        ))
    } else {
        Ok(())
    }
}

/// `GET /api/admin/namespaces`.
pub(crate) async fn list(
    state: web::Data<AppState>,
    who: Authenticated,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::NamespacesRead)?;
    if let Some(confined) = p.namespace {
        // Only its own namespace exists for a confined credential.
        let own = state.stores.namespaces.get(p.org_id, confined).await?;
        let total = u64::from(own.is_some());
        let page = q.page();
        let items: Vec<NamespaceView> = own
            .into_iter()
            .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
            .map(NamespaceView::from)
            .collect();
        return Ok(HttpResponse::Ok().json(json!({ "items": items, "total": total })));
    }
    let page = state.stores.namespaces.list(p.org_id, q.page()).await?;
    let items: Vec<NamespaceView> = page.items.into_iter().map(NamespaceView::from).collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items, "total": page.total })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    name: String,
    slug: String,
    description: Option<String>,
}

/// `POST /api/admin/namespaces`.
pub(crate) async fn create(
    state: web::Data<AppState>,
    who: Authenticated,
    ctx: ClientContext,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::NamespacesWrite)?;
    not_confined(p)?;
    let body = body.into_inner();
    check(namespace_problems(
        &body.slug,
        &body.name,
        body.description.as_deref(),
    ))?;
    let created = state
        .stores
        .namespaces
        .create(
            p.org_id,
            NewNamespace {
                name: body.name.trim().to_owned(),
                slug: body.slug,
                description: body.description,
                source: RecordSource::Api,
            },
        )
        .await?;
    tracing::info!(org.id = %p.org_id, namespace.id = %created.id, namespace.slug = %created.slug, "namespace created");
    state.auditor.record(
        p.org_id,
        AuditEvent::new(actions::NAMESPACE_CREATE, audit::actor(p))
            .target("namespace", created.id)
            .after(summary(&created))
            .context(&ctx.0),
    );
    Ok(HttpResponse::Created().json(NamespaceView::from(created)))
}

/// `GET /api/admin/namespaces/{id}` (id or slug).
pub(crate) async fn get(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::NamespacesRead)?;
    let ns = find(&state, p, &id).await?;
    Ok(HttpResponse::Ok().json(NamespaceView::from(ns)))
}

/// Distinguishes a field that is absent (`None`) from one that is `null` (`Some(None)`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateBody {
    name: Option<String>,
    slug: Option<String>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
}

/// `PUT /api/admin/namespaces/{id}` (id or slug).
pub(crate) async fn update(
    state: web::Data<AppState>,
    who: Authenticated,
    ctx: ClientContext,
    id: web::Path<String>,
    body: web::Json<UpdateBody>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::NamespacesWrite)?;
    let current = find(&state, p, &id).await?;
    declared(&current, "change")?;
    let body = body.into_inner();
    let name = body.name.clone().unwrap_or_else(|| current.name.clone());
    let slug = body.slug.clone().unwrap_or_else(|| current.slug.clone());
    let description = match &body.description {
        None => current.description.clone(),
        Some(d) => d.clone(),
    };
    check(namespace_problems(&slug, &name, description.as_deref()))?;
    let updated = state
        .stores
        .namespaces
        .update(
            p.org_id,
            current.id,
            NamespacePatch {
                name: body.name.map(|n| n.trim().to_owned()),
                slug: body.slug,
                description: body.description,
            },
        )
        .await?;
    state.auditor.record(
        p.org_id,
        AuditEvent::new(actions::NAMESPACE_UPDATE, audit::actor(p))
            .target("namespace", updated.id)
            .before(summary(&current))
            .after(summary(&updated))
            .context(&ctx.0),
    );
    Ok(HttpResponse::Ok().json(NamespaceView::from(updated)))
}

/// Every server of a namespace (all pages).
async fn servers_in(state: &AppState, p: &Principal, ns: NamespaceId) -> Result<Vec<McpServer>, ApiError> {
    let mut all = Vec::new();
    loop {
        let page = state
            .stores
            .servers
            .list(
                p.org_id,
                ServerFilter {
                    namespace_id: Some(ns),
                    ..ServerFilter::default()
                },
                Page {
                    offset: u32::try_from(all.len()).unwrap_or(u32::MAX),
                    limit: Page::MAX_LIMIT,
                },
            )
            .await?;
        let done =
            page.items.is_empty() || all.len() + page.items.len() >= usize::try_from(page.total).unwrap_or(0);
        all.extend(page.items);
        if done {
            return Ok(all);
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteQuery {
    #[serde(default)]
    force: bool,
}

/// `DELETE /api/admin/namespaces/{id}` (id or slug); `?force=true` when it still has servers.
pub(crate) async fn delete(
    state: web::Data<AppState>,
    who: Authenticated,
    ctx: ClientContext,
    id: web::Path<String>,
    q: web::Query<DeleteQuery>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::NamespacesWrite)?;
    not_confined(p)?;
    let current = find(&state, p, &id).await?;
    declared(&current, "remove")?;
    let servers = servers_in(&state, p, current.id).await?;
    if !servers.is_empty() && !q.force {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "the namespace has {} server(s); delete with ?force=true to take them out of it (they stay registered), end their sessions and delete the API keys confined to it",
                servers.len()
            ),
        ));
    }
    state.stores.namespaces.delete(p.org_id, current.id).await?;
    // Keys confined to it are gone: stop accepting them at once here.
    state.auth.forget_namespace_keys(current.id);
    for s in &servers {
        state.servers.invalidate(p.org_id, s.id);
        state.hub.drop_server(s.id);
    }
    tracing::info!(
        org.id = %p.org_id,
        namespace.id = %current.id,
        servers.detached = servers.len(),
        "namespace deleted"
    );
    let mut before = summary(&current);
    if let Value::Object(map) = &mut before {
        map.insert(
            "detached_servers".into(),
            servers.iter().map(|s| Value::String(s.id.to_string())).collect(),
        );
    }
    state.auditor.record(
        p.org_id,
        AuditEvent::new(actions::NAMESPACE_DELETE, audit::actor(p))
            .target("namespace", current.id)
            .before(before)
            .context(&ctx.0),
    );
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/admin/namespaces/{id}/servers`.
pub(crate) async fn list_servers(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::NamespacesRead)?;
    if !p.allows(Permission::ServersRead) {
        return Err(ApiError::from_code(ErrorCode::Forbidden));
    }
    let ns = find(&state, p, &id).await?;
    let page = state
        .stores
        .servers
        .list(
            p.org_id,
            ServerFilter {
                namespace_id: Some(ns.id),
                ..ServerFilter::default()
            },
            q.page(),
        )
        .await?;
    let items: Vec<ServerView> = page
        .items
        .into_iter()
        .map(|s| ServerView::new(&state, s))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items, "total": page.total })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AttachBody {
    /// The server's id or name.
    server: String,
}

/// Moves `server` into `to` (or out of any namespace), ends its sessions, audits.
async fn move_server(
    state: &AppState,
    p: &Principal,
    ctx: &ClientContext,
    server: McpServer,
    to: Option<NamespaceId>,
) -> Result<McpServer, ApiError> {
    if server.source == RecordSource::Config {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "this server is declared in configuration; change its namespace there",
        ));
    }
    let updated = state
        .stores
        .servers
        .update(
            p.org_id,
            server.id,
            McpServerPatch {
                namespace_id: Some(to),
                ..McpServerPatch::default()
            },
        )
        .await;
    state.servers.invalidate(p.org_id, server.id);
    let updated = updated?;
    // Who may reach it changed: its sessions end (clients reconnect under the new scope).
    state.hub.drop_server(server.id);
    let before = ServerView::new(state, server);
    let after = ServerView::new(state, updated.clone());
    state.auditor.record(
        p.org_id,
        AuditEvent::new(actions::SERVER_UPDATE, audit::actor(p))
            .target("server", updated.id)
            .before(servers::summary(&before))
            .after(servers::summary(&after))
            .context(&ctx.0),
    );
    Ok(updated)
}

fn require_server_write(p: &Principal) -> Result<(), ApiError> {
    if p.allows(Permission::ServersWrite) {
        Ok(())
    } else {
        Err(ApiError::from_code(ErrorCode::Forbidden))
    }
}

/// `POST /api/admin/namespaces/{id}/servers`: `{"server": "<id or name>"}` moves it in.
pub(crate) async fn attach_server(
    state: web::Data<AppState>,
    who: Authenticated,
    ctx: ClientContext,
    id: web::Path<String>,
    body: web::Json<AttachBody>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::NamespacesWrite)?;
    require_server_write(p)?;
    let ns = find(&state, p, &id).await?;
    let server = servers::find(&state, p, &body.server).await?;
    if server.namespace_id == Some(ns.id) {
        return Ok(HttpResponse::Ok().json(ServerView::new(&state, server)));
    }
    let updated = move_server(&state, p, &ctx, server, Some(ns.id)).await?;
    Ok(HttpResponse::Ok().json(ServerView::new(&state, updated)))
}

/// `DELETE /api/admin/namespaces/{id}/servers/{server}`: takes a server out of it.
pub(crate) async fn detach_server(
    state: web::Data<AppState>,
    who: Authenticated,
    ctx: ClientContext,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::NamespacesWrite)?;
    require_server_write(p)?;
    not_confined(p)?;
    let (id, server) = path.into_inner();
    let ns = find(&state, p, &id).await?;
    let server = servers::find(&state, p, &server).await?;
    if server.namespace_id != Some(ns.id) {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "no such server in this namespace",
        ));
    }
    move_server(&state, p, &ctx, server, None).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionsQuery {
    offset: Option<u32>,
    limit: Option<u32>,
    #[serde(default)]
    open: bool,
}

#[derive(Serialize)]
struct SessionView {
    #[serde(flatten)]
    session: McpSession,
    /// Open on this replica right now.
    live: bool,
}

#[derive(Serialize)]
struct LiveSession {
    session_id: String,
    server_id: String,
    transport: &'static str,
    idle_seconds: u64,
}

/// `GET /api/admin/namespaces/{id}/sessions`.
pub(crate) async fn sessions(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
    q: web::Query<SessionsQuery>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::NamespacesRead)?;
    if !p.allows(Permission::UsersRead) {
        // Sessions name who is connected.
        return Err(ApiError::from_code(ErrorCode::Forbidden));
    }
    let ns = find(&state, p, &id).await?;
    let d = Page::default();
    let page = Page {
        offset: q.offset.unwrap_or(d.offset),
        limit: q.limit.unwrap_or(d.limit).clamp(1, Page::MAX_LIMIT),
    };
    let servers: HashSet<ServerId> = servers_in(&state, p, ns.id)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    let mut live = state.hub.sessions_in(&SessionScope {
        namespace_id: Some(ns.id),
        ..SessionScope::org(p.org_id)
    });
    // Sessions opened before their server moved here run on it all the same.
    for server in &servers {
        for s in state.hub.sessions_in(&SessionScope {
            server_id: Some(*server),
            ..SessionScope::org(p.org_id)
        }) {
            if !live.iter().any(|l| l.id() == s.id()) {
                live.push(s);
            }
        }
    }
    let live_ids: HashSet<_> = live.iter().map(|s| s.id()).collect();
    let recorded = state
        .stores
        .sessions
        .list_in_namespace(p.org_id, ns.id, q.open, page)
        .await?;
    let items: Vec<SessionView> = recorded
        .items
        .into_iter()
        .map(|session| SessionView {
            live: live_ids.contains(&session.id),
            session,
        })
        .collect();
    let mut live: Vec<LiveSession> = live
        .iter()
        .map(|s| LiveSession {
            session_id: s.id().to_string(),
            server_id: s.server_id().to_string(),
            transport: s.transport().as_str(),
            idle_seconds: s.idle_for().as_secs(),
        })
        .collect();
    live.sort_by(|a, b| a.session_id.cmp(&b.session_id));
    Ok(HttpResponse::Ok().json(json!({
        "items": items,
        "total": recorded.total,
        "live": live,
    })))
}
