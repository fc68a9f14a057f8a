// The storage traits of `gateway_types::store`, written once and `include!`d into each
// backend's `imp` module (after `prelude.rs` and `rows.rs`).

use schema::{
    api_keys, policies, audit_chain_heads, audit_logs, change_log, health_checks, log_aggregates, log_index,
    mcp_servers, mcp_sessions, namespaces, organizations, rate_limit_usage, rate_limits, refresh_tokens,
    server_catalogs, server_stats, users, virtual_servers,
};

impl Store {
    /// Every storage trait of this backend, as the trait objects the application is built from.
    #[must_use]
    pub fn into_stores(self) -> Stores {
        let s = Arc::new(self);
        Stores {
            organizations: s.clone(),
            namespaces: s.clone(),
            users: s.clone(),
            api_keys: s.clone(),
            refresh_tokens: s.clone(),
            servers: s.clone(),
            virtual_servers: s.clone(),
            sessions: s.clone(),
            audit: s.clone(),
            logs: s.clone(),
            rate_limits: s.clone(),
            health: s.clone(),
            changes: s.clone(),
            policies: s.clone(),
            catalogs: s.clone(),
            locks: job_locks(&s),
            denylist: Arc::new(crate::shared_state::MemoryDenyList::new()),
            status: s,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Organizations

#[async_trait]
impl OrganizationStore for Store {
    async fn create(&self, new: NewOrganization) -> StoreResult<Organization> {
        let row = OrganizationRow::new(new, now());
        let row = write_tx!(self, async move |c| {
            let row = diesel::insert_into(organizations::table)
                .values(&row)
                .returning(OrganizationRow::as_returning())
                .get_result(c)
                .await?;
            record_change(
                c,
                OrgId::from_uuid(row.id.0),
                change::ORGANIZATION,
                row.id.0,
                change::CREATE,
            )
            .await?;
            Ok(row)
        })?;
        Ok(row.into_domain()?)
    }

    async fn get(&self, id: OrgId) -> StoreResult<Option<Organization>> {
        let row = read!(self, c, {
            Ok(organizations::table
                .filter(organizations::id.eq(uid(id)))
                .select(OrganizationRow::as_select())
                .first(c)
                .await
                .optional()?)
        })?;
        Ok(row.map(OrganizationRow::into_domain).transpose()?)
    }

    async fn get_by_slug(&self, slug: &str) -> StoreResult<Option<Organization>> {
        let row = read!(self, c, {
            Ok(organizations::table
                .filter(organizations::slug.eq(slug))
                .select(OrganizationRow::as_select())
                .first(c)
                .await
                .optional()?)
        })?;
        Ok(row.map(OrganizationRow::into_domain).transpose()?)
    }

    async fn list(&self) -> StoreResult<Vec<Organization>> {
        let rows = read!(self, c, {
            Ok(organizations::table
                .select(OrganizationRow::as_select())
                .order((organizations::slug.asc(), organizations::id.asc()))
                .load(c)
                .await?)
        })?;
        Ok(rows
            .into_iter()
            .map(OrganizationRow::into_domain)
            .collect::<DbResult<_>>()?)
    }

    async fn update(&self, id: OrgId, patch: OrganizationPatch) -> StoreResult<Organization> {
        let changes = OrganizationChanges::new(patch, now());
        let row = write_tx!(self, async move |c| {
            let row = diesel::update(organizations::table.filter(organizations::id.eq(uid(id))))
                .set(&changes)
                .returning(OrganizationRow::as_returning())
                .get_result(c)
                .await
                .optional()?
                .ok_or(DbError::NotFound)?;
            record_change(c, id, change::ORGANIZATION, id, change::UPDATE).await?;
            Ok(row)
        })?;
        Ok(row.into_domain()?)
    }

    async fn delete(&self, id: OrgId) -> StoreResult<()> {
        write_tx!(self, async move |c| {
            let n = diesel::delete(organizations::table.filter(organizations::id.eq(uid(id))))
                .execute(c)
                .await?;
            if n == 0 {
                return Err(DbError::NotFound);
            }
            record_change(c, id, change::ORGANIZATION, id, change::DELETE).await
        })?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Namespaces

#[async_trait]
impl NamespaceStore for Store {
    async fn create(&self, org: OrgId, new: NewNamespace) -> StoreResult<Namespace> {
        let row = NamespaceRow::new(org, new, now());
        let row = write_tx!(self, async move |c| {
            let row = diesel::insert_into(namespaces::table)
                .values(&row)
                .returning(NamespaceRow::as_returning())
                .get_result(c)
                .await?;
            record_change(c, org, change::NAMESPACE, row.id.0, change::CREATE).await?;
            Ok(row)
        })?;
        Ok(row.into_domain()?)
    }

    async fn get(&self, org: OrgId, id: NamespaceId) -> StoreResult<Option<Namespace>> {
        let row = read!(self, c, {
            Ok(namespaces::table
                .filter(namespaces::id.eq(uid(id)))
                .filter(namespaces::org_id.eq(uid(org)))
                .select(NamespaceRow::as_select())
                .first(c)
                .await
                .optional()?)
        })?;
        Ok(row.map(NamespaceRow::into_domain).transpose()?)
    }

    async fn get_by_slug(&self, org: OrgId, slug: &str) -> StoreResult<Option<Namespace>> {
        let row = read!(self, c, {
            Ok(namespaces::table
                .filter(namespaces::org_id.eq(uid(org)))
                .filter(namespaces::slug.eq(slug))
                .select(NamespaceRow::as_select())
                .first(c)
                .await
                .optional()?)
        })?;
        Ok(row.map(NamespaceRow::into_domain).transpose()?)
    }

    async fn list(&self, org: OrgId, page: Page) -> StoreResult<Paged<Namespace>> {
        let (lim, off) = bounds(page);
        let (total, rows) = read!(self, c, {
            let total: i64 = namespaces::table
                .filter(namespaces::org_id.eq(uid(org)))
                .count()
                .get_result(&mut *c)
                .await?;
            let rows: Vec<NamespaceRow> = namespaces::table
                .filter(namespaces::org_id.eq(uid(org)))
                .select(NamespaceRow::as_select())
                .order((namespaces::slug.asc(), namespaces::id.asc()))
                .limit(lim)
                .offset(off)
                .load(c)
                .await?;
            Ok((total, rows))
        })?;
        Ok(Paged {
            items: rows
                .into_iter()
                .map(NamespaceRow::into_domain)
                .collect::<DbResult<_>>()?,
            total: count(total)?,
        })
    }

    async fn update(&self, org: OrgId, id: NamespaceId, patch: NamespacePatch) -> StoreResult<Namespace> {
        let changes = NamespaceChanges::new(patch, now());
        let row = write_tx!(self, async move |c| {
            let row = diesel::update(
                namespaces::table
                    .filter(namespaces::id.eq(uid(id)))
                    .filter(namespaces::org_id.eq(uid(org))),
            )
            .set(&changes)
            .returning(NamespaceRow::as_returning())
            .get_result(c)
            .await
            .optional()?
            .ok_or(DbError::NotFound)?;
            record_change(c, org, change::NAMESPACE, id, change::UPDATE).await?;
            Ok(row)
        })?;
        Ok(row.into_domain()?)
    }

    async fn delete(&self, org: OrgId, id: NamespaceId) -> StoreResult<()> {
        write_tx!(self, async move |c| {
            let (o, n) = (uid(org), uid(id));
            // The foreign keys delete the namespace's keys and detach its servers; each of
            // those is a configuration change too.
            let keys: Vec<DbUuid> = api_keys::table
                .filter(api_keys::org_id.eq(o))
                .filter(api_keys::namespace_id.eq(n))
                .select(api_keys::id)
                .load(&mut *c)
                .await?;
            let servers: Vec<DbUuid> = mcp_servers::table
                .filter(mcp_servers::org_id.eq(o))
                .filter(mcp_servers::namespace_id.eq(n))
                .select(mcp_servers::id)
                .load(&mut *c)
                .await?;
            let virtuals: Vec<DbUuid> = virtual_servers::table
                .filter(virtual_servers::org_id.eq(o))
                .filter(virtual_servers::namespace_id.eq(n))
                .select(virtual_servers::id)
                .load(&mut *c)
                .await?;
            let deleted = diesel::delete(
                namespaces::table
                    .filter(namespaces::id.eq(n))
                    .filter(namespaces::org_id.eq(o)),
            )
            .execute(&mut *c)
            .await?;
            if deleted == 0 {
                return Err(DbError::NotFound);
            }
            for k in keys {
                record_change(c, org, change::API_KEY, k.0, change::DELETE).await?;
            }
            for s in servers {
                record_change(c, org, change::SERVER, s.0, change::UPDATE).await?;
            }
            for v in virtuals {
                record_change(c, org, change::VIRTUAL_SERVER, v.0, change::UPDATE).await?;
            }
            record_change(c, org, change::NAMESPACE, id, change::DELETE).await
        })?;
        Ok(())
    }

    async fn list_all(&self, org: OrgId) -> StoreResult<Vec<Namespace>> {
        let rows = read!(self, c, {
            Ok(namespaces::table
                .filter(namespaces::org_id.eq(uid(org)))
                .select(NamespaceRow::as_select())
                .order((namespaces::slug.asc(), namespaces::id.asc()))
                .load(c)
                .await?)
        })?;
        Ok(rows
            .into_iter()
            .map(NamespaceRow::into_domain)
            .collect::<DbResult<_>>()?)
    }
}

// ---------------------------------------------------------------------------------------------
// Users

#[async_trait]
impl UserStore for Store {
    async fn create(&self, org: OrgId, new: NewUser) -> StoreResult<User> {
        let row = UserRow::new(org, new, now());
        let row = write_tx!(self, async move |c| {
            let row = diesel::insert_into(users::table)
                .values(&row)
                .returning(UserRow::as_returning())
                .get_result(c)
                .await?;
            record_change(c, org, change::USER, row.id.0, change::CREATE).await?;
            Ok(row)
        })?;
        Ok(row.into_domain()?)
    }

    async fn get(&self, org: OrgId, id: UserId) -> StoreResult<Option<User>> {
        let row = read!(self, c, {
            Ok(users::table
                .filter(users::id.eq(uid(id)))
                .filter(users::org_id.eq(uid(org)))
                .select(UserRow::as_select())
                .first(c)
                .await
                .optional()?)
        })?;
        Ok(row.map(UserRow::into_domain).transpose()?)
    }

    async fn find_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let email = email.to_lowercase();
        let row = read!(self, c, {
            Ok(users::table
                .filter(users::email.eq(&email))
                .select(UserRow::as_select())
                .first(c)
                .await
                .optional()?)
        })?;
        Ok(row.map(UserRow::into_domain).transpose()?)
    }

    async fn list(&self, org: OrgId, page: Page) -> StoreResult<Paged<User>> {
        let (lim, off) = bounds(page);
        let (total, rows) = read!(self, c, {
            let total: i64 = users::table
                .filter(users::org_id.eq(uid(org)))
                .count()
                .get_result(&mut *c)
                .await?;
            let rows: Vec<UserRow> = users::table
                .filter(users::org_id.eq(uid(org)))
                .select(UserRow::as_select())
                .order((users::email.asc(), users::id.asc()))
                .limit(lim)
                .offset(off)
                .load(c)
                .await?;
            Ok((total, rows))
        })?;
        Ok(Paged {
            items: rows
                .into_iter()
                .map(UserRow::into_domain)
                .collect::<DbResult<_>>()?,
            total: count(total)?,
        })
    }

    async fn update(&self, org: OrgId, id: UserId, patch: UserPatch) -> StoreResult<User> {
        let changes = UserChanges::new(patch, now());
        let row = write_tx!(self, async move |c| {
            let row = diesel::update(
                users::table
                    .filter(users::id.eq(uid(id)))
                    .filter(users::org_id.eq(uid(org))),
            )
            .set(&changes)
            .returning(UserRow::as_returning())
            .get_result(c)
            .await
            .optional()?
            .ok_or(DbError::NotFound)?;
            record_change(c, org, change::USER, id, change::UPDATE).await?;
            Ok(row)
        })?;
        Ok(row.into_domain()?)
    }

    async fn delete(&self, org: OrgId, id: UserId) -> StoreResult<()> {
        write_tx!(self, async move |c| {
            let (o, u) = (uid(org), uid(id));
            let keys: Vec<DbUuid> = api_keys::table
                .filter(api_keys::org_id.eq(o))
                .filter(api_keys::user_id.eq(u))
                .select(api_keys::id)
                .load(&mut *c)
                .await?;
            let deleted = diesel::delete(users::table.filter(users::id.eq(u)).filter(users::org_id.eq(o)))
                .execute(&mut *c)
                .await?;
            if deleted == 0 {
                return Err(DbError::NotFound);
            }
            for k in keys {
                record_change(c, org, change::API_KEY, k.0, change::DELETE).await?;
            }
            record_change(c, org, change::USER, id, change::DELETE).await
        })?;
        Ok(())
    }

    async fn record_login_success(&self, org: OrgId, id: UserId, at: DateTime<Utc>) -> StoreResult<()> {
        // Login bookkeeping is not a configuration change: no change-log entry.
        write_tx!(self, async move |c| {
            let n = diesel::update(
                users::table
                    .filter(users::id.eq(uid(id)))
                    .filter(users::org_id.eq(uid(org))),
            )
            .set((
                users::failed_logins.eq(0),
                users::locked_until.eq(None::<DbTime>),
                users::last_login_at.eq(ts(at)),
            ))
            .execute(c)
            .await?;
            if n == 0 { Err(DbError::NotFound) } else { Ok(()) }
        })?;
        Ok(())
    }

    async fn record_login_failure(
        &self,
        org: OrgId,
        id: UserId,
        locked_until: Option<DateTime<Utc>>,
    ) -> StoreResult<i32> {
        let locked_until = ts_opt(locked_until);
        let failures = write_tx!(self, async move |c| {
            diesel::update(
                users::table
                    .filter(users::id.eq(uid(id)))
                    .filter(users::org_id.eq(uid(org))),
            )
            .set((
                users::failed_logins.eq(users::failed_logins + 1),
                users::locked_until.eq(locked_until),
            ))
            .returning(users::failed_logins)
            .get_result::<i32>(c)
            .await
            .optional()?
            .ok_or(DbError::NotFound)
        })?;
        Ok(failures)
    }
}

// ---------------------------------------------------------------------------------------------
// API keys

#[async_trait]
impl ApiKeyStore for Store {
    async fn create(&self, org: OrgId, new: NewApiKey) -> StoreResult<ApiKey> {
        let (user, namespace) = (new.user_id, new.namespace_id);
        let row = ApiKeyRow::new(org, new, now());
        let row = write_tx!(self, async move |c| {
            if let Some(user) = user {
                require_owned!(&mut *c, users, org, user);
            }
            if let Some(ns) = namespace {
                require_owned!(&mut *c, namespaces, org, ns);
            }
            let row = diesel::insert_into(api_keys::table)
                .values(&row)
                .returning(ApiKeyRow::as_returning())
                .get_result(c)
                .await?;
            record_change(c, org, change::API_KEY, row.id.0, change::CREATE).await?;
            Ok(row)
        })?;
        Ok(row.into_domain()?)
    }

    async fn get(&self, org: OrgId, id: ApiKeyId) -> StoreResult<Option<ApiKey>> {
        let row = read!(self, c, {
            Ok(api_keys::table
                .filter(api_keys::id.eq(uid(id)))
                .filter(api_keys::org_id.eq(uid(org)))
                .select(ApiKeyRow::as_select())
                .first(c)
                .await
                .optional()?)
        })?;
        Ok(row.map(ApiKeyRow::into_domain).transpose()?)
    }

    async fn find_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
        let row = read!(self, c, {
            Ok(api_keys::table
                .filter(api_keys::key_hash.eq(key_hash))
                .select(ApiKeyRow::as_select())
                .first(c)
                .await
                .optional()?)
        })?;
        Ok(row.map(ApiKeyRow::into_domain).transpose()?)
    }

    async fn list(&self, org: OrgId, user: Option<UserId>) -> StoreResult<Vec<ApiKey>> {
        let rows = read!(self, c, {
            let mut q = api_keys::table.filter(api_keys::org_id.eq(uid(org))).into_boxed();
            if let Some(user) = user {
                q = q.filter(api_keys::user_id.eq(uid(user)));
            }
            Ok(q.select(ApiKeyRow::as_select())
                .order((api_keys::created_at.desc(), api_keys::id.desc()))
                .load::<ApiKeyRow>(c)
                .await?)
        })?;
        Ok(rows
            .into_iter()
            .map(ApiKeyRow::into_domain)
            .collect::<DbResult<_>>()?)
    }

    async fn revoke(&self, org: OrgId, id: ApiKeyId, at: DateTime<Utc>) -> StoreResult<()> {
        write_tx!(self, async move |c| {
            let n = diesel::update(
                api_keys::table
                    .filter(api_keys::id.eq(uid(id)))
                    .filter(api_keys::org_id.eq(uid(org)))
                    .filter(api_keys::revoked_at.is_null()),
            )
            .set(api_keys::revoked_at.eq(ts(at)))
            .execute(&mut *c)
            .await?;
            if n == 0 {
                // Already revoked (keep the first time) or not there.
                require_owned!(&mut *c, api_keys, org, id);
                return Ok(());
            }
            record_change(c, org, change::API_KEY, id, change::UPDATE).await
        })?;
        Ok(())
    }

    async fn touch_last_used(&self, uses: &[(ApiKeyId, DateTime<Utc>)]) -> StoreResult<()> {
        // One statement per key, the latest time per key only.
        let mut latest: std::collections::HashMap<ApiKeyId, DbTime> = std::collections::HashMap::new();
        for (id, at) in uses {
            let at = ts(*at);
            latest.entry(*id).and_modify(|t| *t = (*t).max(at)).or_insert(at);
        }
        if latest.is_empty() {
            return Ok(());
        }
        let mut latest: Vec<_> = latest.into_iter().collect();
        latest.sort_by_key(|(id, _)| *id);
        write_tx!(self, async move |c| {
            for (id, at) in latest {
                diesel::update(
                    api_keys::table
                        .filter(api_keys::id.eq(uid(id)))
                        .filter(api_keys::last_used_at.is_null().or(api_keys::last_used_at.lt(at))),
                )
                .set(api_keys::last_used_at.eq(at))
                .execute(&mut *c)
                .await?;
            }
            Ok(())
        })?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Refresh tokens

#[async_trait]
impl RefreshTokenStore for Store {
    async fn create(&self, org: OrgId, new: NewRefreshToken) -> StoreResult<RefreshToken> {
        let user = new.user_id;
        let row = RefreshTokenRow::new(org, new, now());
        let row = write_tx!(self, async move |c| {
            require_owned!(&mut *c, users, org, user);
            Ok(diesel::insert_into(refresh_tokens::table)
                .values(&row)
                .returning(RefreshTokenRow::as_returning())
                .get_result(c)
                .await?)
        })?;
        Ok(row.into_domain())
    }

    async fn find_by_hash(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>> {
        let row = read!(self, c, {
            Ok(refresh_tokens::table
                .filter(refresh_tokens::token_hash.eq(token_hash))
                .select(RefreshTokenRow::as_select())
                .first(c)
                .await
                .optional()?)
        })?;
        Ok(row.map(RefreshTokenRow::into_domain))
    }

    async fn rotate(
        &self,
        org: OrgId,
        old: RefreshTokenId,
        new: NewRefreshToken,
    ) -> StoreResult<RefreshToken> {
        let at = now();
        let new_id = RefreshTokenId::new();
        let row = write_tx!(self, async move |c| {
            // Revoking only a live token makes two concurrent rotations of the same token
            // conflict: the second finds it revoked.
            let revoked: Option<(DbUuid, DbUuid)> = diesel::update(
                refresh_tokens::table
                    .filter(refresh_tokens::id.eq(uid(old)))
                    .filter(refresh_tokens::org_id.eq(uid(org)))
                    .filter(refresh_tokens::revoked_at.is_null()),
            )
            .set((
                refresh_tokens::revoked_at.eq(at),
                refresh_tokens::replaced_by.eq(uid(new_id)),
            ))
            .returning((refresh_tokens::user_id, refresh_tokens::family_id))
            .get_result(&mut *c)
            .await
            .optional()?;
            let Some((user, family)) = revoked else {
                require_owned!(&mut *c, refresh_tokens, org, old);
                return Err(DbError::Conflict("refresh token"));
            };
            // The new token continues the old one's family, for the old one's user.
            let row = RefreshTokenRow {
                id: uid(new_id),
                org_id: uid(org),
                user_id: user,
                family_id: family,
                token_hash: new.token_hash,
                expires_at: ts(new.expires_at),
                revoked_at: None,
                replaced_by: None,
                created_at: at,
            };
            Ok(diesel::insert_into(refresh_tokens::table)
                .values(&row)
                .returning(RefreshTokenRow::as_returning())
                .get_result(c)
                .await?)
        })?;
        Ok(row.into_domain())
    }

    async fn revoke(&self, org: OrgId, id: RefreshTokenId, at: DateTime<Utc>) -> StoreResult<()> {
        write_tx!(self, async move |c| {
            let n = diesel::update(
                refresh_tokens::table
                    .filter(refresh_tokens::id.eq(uid(id)))
                    .filter(refresh_tokens::org_id.eq(uid(org)))
                    .filter(refresh_tokens::revoked_at.is_null()),
            )
            .set(refresh_tokens::revoked_at.eq(ts(at)))
            .execute(&mut *c)
            .await?;
            if n == 0 {
                require_owned!(&mut *c, refresh_tokens, org, id);
            }
            Ok(())
        })?;
        Ok(())
    }

    async fn revoke_family(&self, org: OrgId, family: TokenFamilyId, at: DateTime<Utc>) -> StoreResult<u64> {
        let n = write_tx!(self, async move |c| {
            Ok(diesel::update(
                refresh_tokens::table
                    .filter(refresh_tokens::org_id.eq(uid(org)))
                    .filter(refresh_tokens::family_id.eq(uid(family)))
                    .filter(refresh_tokens::revoked_at.is_null()),
            )
            .set(refresh_tokens::revoked_at.eq(ts(at)))
            .execute(c)
            .await?)
        })?;
        Ok(affected(n))
    }

    async fn revoke_user(
        &self,
        org: OrgId,
        user: UserId,
        keep_family: Option<TokenFamilyId>,
        at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let n = write_tx!(self, async move |c| {
            let targets = refresh_tokens::table
                .filter(refresh_tokens::org_id.eq(uid(org)))
                .filter(refresh_tokens::user_id.eq(uid(user)))
                .filter(refresh_tokens::revoked_at.is_null());
            let n = match keep_family {
                Some(keep) => {
                    diesel::update(targets.filter(refresh_tokens::family_id.ne(uid(keep))))
                        .set(refresh_tokens::revoked_at.eq(ts(at)))
                        .execute(c)
                        .await?
                }
                None => {
                    diesel::update(targets)
                        .set(refresh_tokens::revoked_at.eq(ts(at)))
                        .execute(c)
                        .await?
                }
            };
            Ok(n)
        })?;
        Ok(affected(n))
    }

    async fn delete_expired(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let n = write_tx!(self, async move |c| {
            Ok(
                diesel::delete(refresh_tokens::table.filter(refresh_tokens::expires_at.lt(ts(before))))
                    .execute(c)
                    .await?,
            )
        })?;
        Ok(affected(n))
    }
}

// ---------------------------------------------------------------------------------------------
// MCP servers

/// The servers of `org` matching `filter`, unordered.
fn server_query(org: OrgId, filter: &ServerFilter) -> mcp_servers::BoxedQuery<'static, Backend> {
    let mut q = mcp_servers::table
        .filter(mcp_servers::org_id.eq(uid(org)))
        .into_boxed();
    if let Some(ns) = filter.namespace_id {
        q = q.filter(mcp_servers::namespace_id.eq(uid(ns)));
    }
    if let Some(protocol) = filter.protocol {
        q = q.filter(mcp_servers::protocol.eq(protocol.as_str()));
    }
    if let Some(status) = filter.status {
        q = q.filter(mcp_servers::status.eq(status.as_str()));
    }
    if let Some(source) = filter.source {
        q = q.filter(mcp_servers::source.eq(source.as_str()));
    }
    if let Some(tag) = &filter.tag {
        q = filter_tag(q, tag.clone());
    }
    if let Some(needle) = &filter.search {
        q = q.filter(
            lower(mcp_servers::name.nullable())
                .like(contains_pattern(needle))
                .escape('\\'),
        );
    }
    q
}

#[async_trait]
impl ServerStore for Store {
    async fn create(&self, org: OrgId, new: NewMcpServer) -> StoreResult<McpServer> {
        let namespace = new.namespace_id;
        let limited = new.source == RecordSource::Api;
        let row = ServerRow::new(org, new, now());
        let row = write_tx!(self, async move |c| {
            // Serializes the organization's creates (PostgreSQL: the row lock; SQLite: the
            // IMMEDIATE transaction), so the count below cannot go stale before the insert.
            let max_servers = lock_organization(&mut *c, uid(org)).await?;
            if let Some(ns) = namespace {
                require_owned!(&mut *c, namespaces, org, ns);
            }
            if limited {
                let n: i64 = mcp_servers::table
                    .filter(mcp_servers::org_id.eq(uid(org)))
                    .count()
                    .get_result(&mut *c)
                    .await?;
                if n >= i64::from(max_servers) {
                    return Err(DbError::Limit {
                        what: "servers",
                        limit: i64::from(max_servers),
                    });
                }
            }
            let row = diesel::insert_into(mcp_servers::table)
                .values(&row)
                .returning(ServerRow::as_returning())
                .get_result(c)
                .await?;
            record_change(c, org, change::SERVER, row.id.0, change::CREATE).await?;
            Ok(row)
        })?;
        Ok(row.into_domain()?)
    }

    async fn get(&self, org: OrgId, id: ServerId) -> StoreResult<Option<McpServer>> {
        let row = read!(self, c, {
            Ok(mcp_servers::table
                .filter(mcp_servers::id.eq(uid(id)))
                .filter(mcp_servers::org_id.eq(uid(org)))
                .select(ServerRow::as_select())
                .first(c)
                .await
                .optional()?)
        })?;
        Ok(row.map(ServerRow::into_domain).transpose()?)
    }

    async fn get_by_name(&self, org: OrgId, name: &str) -> StoreResult<Option<McpServer>> {
        let row = read!(self, c, {
            Ok(mcp_servers::table
                .filter(mcp_servers::org_id.eq(uid(org)))
                .filter(mcp_servers::name.eq(name))
                .select(ServerRow::as_select())
                .first(c)
                .await
                .optional()?)
        })?;
        Ok(row.map(ServerRow::into_domain).transpose()?)
    }

    async fn list(&self, org: OrgId, filter: ServerFilter, page: Page) -> StoreResult<Paged<McpServer>> {
        let (lim, off) = bounds(page);
        let (total, rows) = read!(self, c, {
            let total: i64 = server_query(org, &filter).count().get_result(&mut *c).await?;
            let rows: Vec<ServerRow> = server_query(org, &filter)
                .select(ServerRow::as_select())
                .order((mcp_servers::name.asc(), mcp_servers::id.asc()))
                .limit(lim)
                .offset(off)
                .load(c)
                .await?;
            Ok((total, rows))
        })?;
        Ok(Paged {
            items: rows
                .into_iter()
                .map(ServerRow::into_domain)
                .collect::<DbResult<_>>()?,
            total: count(total)?,
        })
    }

    async fn list_all(&self) -> StoreResult<Vec<McpServer>> {
        let rows = read!(self, c, {
            Ok(mcp_servers::table
                .select(ServerRow::as_select())
                .order(mcp_servers::id.asc())
                .load(c)
                .await?)
        })?;
        Ok(rows
            .into_iter()
            .map(ServerRow::into_domain)
            .collect::<DbResult<_>>()?)
    }

    async fn count(&self, org: OrgId) -> StoreResult<u64> {
        let n = read!(self, c, {
            Ok(mcp_servers::table
                .filter(mcp_servers::org_id.eq(uid(org)))
                .count()
                .get_result::<i64>(c)
                .await?)
        })?;
        Ok(count(n)?)
    }

    async fn update(&self, org: OrgId, id: ServerId, patch: McpServerPatch) -> StoreResult<McpServer> {
        let namespace = patch.namespace_id.flatten();
        let changes = ServerChanges::new(patch, now());
        let row = write_tx!(self, async move |c| {
            if let Some(ns) = namespace {
                require_owned!(&mut *c, namespaces, org, ns);
            }
            let row = diesel::update(
                mcp_servers::table
                    .filter(mcp_servers::id.eq(uid(id)))
                    .filter(mcp_servers::org_id.eq(uid(org))),
            )
            .set(&changes)
            .returning(ServerRow::as_returning())
            .get_result(&mut *c)
            .await
            .optional()?
            .ok_or(DbError::NotFound)?;
            record_change(c, org, change::SERVER, id, change::UPDATE).await?;
            Ok(row)
        })?;
        Ok(row.into_domain()?)
    }

    async fn delete(&self, org: OrgId, id: ServerId) -> StoreResult<()> {
        write_tx!(self, async move |c| {
            let n = diesel::delete(
                mcp_servers::table
                    .filter(mcp_servers::id.eq(uid(id)))
                    .filter(mcp_servers::org_id.eq(uid(org))),
            )
            .execute(&mut *c)
            .await?;
            if n == 0 {
                return Err(DbError::NotFound);
            }
            record_change(c, org, change::SERVER, id, change::DELETE).await
        })?;
        Ok(())
    }

    async fn set_status(
        &self,
        org: OrgId,
        id: ServerId,
        expected: ServerStatus,
        to: ServerStatus,
    ) -> StoreResult<bool> {
        let changed = write_tx!(self, async move |c| {
            let n = diesel::update(
                mcp_servers::table
                    .filter(mcp_servers::id.eq(uid(id)))
                    .filter(mcp_servers::org_id.eq(uid(org)))
                    .filter(mcp_servers::status.eq(expected.as_str())),
            )
            .set(mcp_servers::status.eq(to.as_str()))
            .execute(&mut *c)
            .await?;
            if n == 0 {
                require_owned!(&mut *c, mcp_servers, org, id);
                return Ok(false);
            }
            if expected != to {
                record_change(c, org, change::SERVER, id, change::UPDATE).await?;
            }
            Ok(expected != to)
        })?;
        Ok(changed)
    }
}

// ---------------------------------------------------------------------------------------------
// Virtual servers

#[async_trait]
impl VirtualServerStore for Store {
    async fn create(&self, org: OrgId, new: NewVirtualServer) -> StoreResult<VirtualServer> {
        let namespace = new.namespace_id;
        let row = VirtualServerRow::new(org, new, now());
        let row = write_tx!(self, async move |c| {
            if let Some(ns) = namespace {
                require_owned!(&mut *c, namespaces, org, ns);
            }
            let row = diesel::insert_into(virtual_servers::table)
                .values(&row)
                .returning(VirtualServerRow::as_returning())
                .get_result(c)
                .await?;
            record_change(c, org, change::VIRTUAL_SERVER, row.id.0, change::CREATE).await?;
            Ok(row)
        })?;
        Ok(row.into_domain()?)
    }

    async fn get(&self, org: OrgId, id: VirtualServerId) -> StoreResult<Option<VirtualServer>> {
        let row = read!(self, c, {
            Ok(virtual_servers::table
                .filter(virtual_servers::id.eq(uid(id)))
                .filter(virtual_servers::org_id.eq(uid(org)))
                .select(VirtualServerRow::as_select())
                .first(c)
                .await
                .optional()?)
        })?;
        Ok(row.map(VirtualServerRow::into_domain).transpose()?)
    }

    async fn list(&self, org: OrgId) -> StoreResult<Vec<VirtualServer>> {
        let rows = read!(self, c, {
            Ok(virtual_servers::table
                .filter(virtual_servers::org_id.eq(uid(org)))
                .select(VirtualServerRow::as_select())
                .order((virtual_servers::name.asc(), virtual_servers::id.asc()))
                .load(c)
                .await?)
        })?;
        Ok(rows
            .into_iter()
            .map(VirtualServerRow::into_domain)
            .collect::<DbResult<_>>()?)
    }

    async fn update(
        &self,
        org: OrgId,
        id: VirtualServerId,
        patch: VirtualServerPatch,
    ) -> StoreResult<VirtualServer> {
        let changes = VirtualServerChanges::new(patch, now());
        let row = write_tx!(self, async move |c| {
            let row = diesel::update(
                virtual_servers::table
                    .filter(virtual_servers::id.eq(uid(id)))
                    .filter(virtual_servers::org_id.eq(uid(org))),
            )
            .set(&changes)
            .returning(VirtualServerRow::as_returning())
            .get_result(&mut *c)
            .await
            .optional()?
            .ok_or(DbError::NotFound)?;
            record_change(c, org, change::VIRTUAL_SERVER, id, change::UPDATE).await?;
            Ok(row)
        })?;
        Ok(row.into_domain()?)
    }

    async fn delete(&self, org: OrgId, id: VirtualServerId) -> StoreResult<()> {
        write_tx!(self, async move |c| {
            let n = diesel::delete(
                virtual_servers::table
                    .filter(virtual_servers::id.eq(uid(id)))
                    .filter(virtual_servers::org_id.eq(uid(org))),
            )
            .execute(&mut *c)
            .await?;
            if n == 0 {
                return Err(DbError::NotFound);
            }
            record_change(c, org, change::VIRTUAL_SERVER, id, change::DELETE).await
        })?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions

/// Session states that count as open.
const OPEN_SESSION: [&str; 2] = [SessionStatus::Active.as_str(), SessionStatus::Idle.as_str()];

#[async_trait]
impl SessionStore for Store {
    async fn create(&self, org: OrgId, new: NewMcpSession) -> StoreResult<McpSession> {
        let refs = (new.server_id, new.namespace_id, new.user_id, new.api_key_id);
        let row = SessionRow::new(org, new, now());
        let row = write_tx!(self, async move |c| {
            let (server, namespace, user, key) = refs;
            if let Some(id) = server {
                require_owned!(&mut *c, mcp_servers, org, id);
            }
            if let Some(id) = namespace {
                require_owned!(&mut *c, namespaces, org, id);
            }
            if let Some(id) = user {
                require_owned!(&mut *c, users, org, id);
            }
            if let Some(id) = key {
                require_owned!(&mut *c, api_keys, org, id);
            }
            Ok(diesel::insert_into(mcp_sessions::table)
                .values(&row)
                .returning(SessionRow::as_returning())
                .get_result(c)
                .await?)
        })?;
        Ok(row.into_domain()?)
    }

    async fn get(&self, org: OrgId, id: SessionId) -> StoreResult<Option<McpSession>> {
        let row = read!(self, c, {
            Ok(mcp_sessions::table
                .filter(mcp_sessions::id.eq(uid(id)))
                .filter(mcp_sessions::org_id.eq(uid(org)))
                .select(SessionRow::as_select())
                .first(c)
                .await
                .optional()?)
        })?;
        Ok(row.map(SessionRow::into_domain).transpose()?)
    }

    async fn list(
        &self,
        org: OrgId,
        server: Option<ServerId>,
        open_only: bool,
        page: Page,
    ) -> StoreResult<Paged<McpSession>> {
        let (lim, off) = bounds(page);
        let query = move || {
            let mut q = mcp_sessions::table
                .filter(mcp_sessions::org_id.eq(uid(org)))
                .into_boxed::<Backend>();
            if let Some(server) = server {
                q = q.filter(mcp_sessions::server_id.eq(uid(server)));
            }
            if open_only {
                q = q.filter(mcp_sessions::status.eq_any(OPEN_SESSION));
            }
            q
        };
        let (total, rows) = read!(self, c, {
            let total: i64 = query().count().get_result(&mut *c).await?;
            let rows: Vec<SessionRow> = query()
                .select(SessionRow::as_select())
                .order((mcp_sessions::created_at.desc(), mcp_sessions::id.desc()))
                .limit(lim)
                .offset(off)
                .load(c)
                .await?;
            Ok((total, rows))
        })?;
        Ok(Paged {
            items: rows
                .into_iter()
                .map(SessionRow::into_domain)
                .collect::<DbResult<_>>()?,
            total: count(total)?,
        })
    }

    async fn update(&self, org: OrgId, id: SessionId, patch: McpSessionPatch) -> StoreResult<McpSession> {
        if patch == McpSessionPatch::default() {
            return SessionStore::get(self, org, id)
                .await?
                .ok_or(gateway_types::store::StoreError::NotFound);
        }
        let changes = SessionChanges::new(patch);
        let row = write_tx!(self, async move |c| {
            diesel::update(
                mcp_sessions::table
                    .filter(mcp_sessions::id.eq(uid(id)))
                    .filter(mcp_sessions::org_id.eq(uid(org))),
            )
            .set(&changes)
            .returning(SessionRow::as_returning())
            .get_result(c)
            .await
            .optional()?
            .ok_or(DbError::NotFound)
        })?;
        Ok(row.into_domain()?)
    }

    async fn list_in_namespace(
        &self,
        org: OrgId,
        namespace: NamespaceId,
        open_only: bool,
        page: Page,
    ) -> StoreResult<Paged<McpSession>> {
        let (lim, off) = bounds(page);
        let query = move || {
            let servers = mcp_servers::table
                .filter(mcp_servers::org_id.eq(uid(org)))
                .filter(mcp_servers::namespace_id.eq(uid(namespace)))
                .select(mcp_servers::id.nullable());
            let mut q = mcp_sessions::table
                .filter(mcp_sessions::org_id.eq(uid(org)))
                .filter(
                    mcp_sessions::namespace_id
                        .eq(uid(namespace))
                        .or(mcp_sessions::server_id.eq_any(servers)),
                )
                .into_boxed::<Backend>();
            if open_only {
                q = q.filter(mcp_sessions::status.eq_any(OPEN_SESSION));
            }
            q
        };
        let (total, rows) = read!(self, c, {
            let total: i64 = query().count().get_result(&mut *c).await?;
            let rows: Vec<SessionRow> = query()
                .select(SessionRow::as_select())
                .order((mcp_sessions::created_at.desc(), mcp_sessions::id.desc()))
                .limit(lim)
                .offset(off)
                .load(c)
                .await?;
            Ok((total, rows))
        })?;
        Ok(Paged {
            items: rows
                .into_iter()
                .map(SessionRow::into_domain)
                .collect::<DbResult<_>>()?,
            total: count(total)?,
        })
    }

    async fn count_open(&self, org: OrgId) -> StoreResult<u64> {
        let n = read!(self, c, {
            Ok(mcp_sessions::table
                .filter(mcp_sessions::org_id.eq(uid(org)))
                .filter(mcp_sessions::status.eq_any(OPEN_SESSION))
                .count()
                .get_result::<i64>(c)
                .await?)
        })?;
        Ok(count(n)?)
    }

    async fn close_idle(&self, before: DateTime<Utc>, at: DateTime<Utc>) -> StoreResult<u64> {
        let n = write_tx!(self, async move |c| {
            Ok(diesel::update(
                mcp_sessions::table
                    .filter(mcp_sessions::status.eq_any(OPEN_SESSION))
                    .filter(mcp_sessions::last_activity_at.lt(ts(before))),
            )
            .set((
                mcp_sessions::status.eq(SessionStatus::Closed.as_str()),
                mcp_sessions::closed_at.eq(ts(at)),
            ))
            .execute(c)
            .await?)
        })?;
        Ok(affected(n))
    }
}

// ---------------------------------------------------------------------------------------------
// Audit trail

#[async_trait]
impl AuditStore for Store {
    async fn append(&self, org: OrgId, new: NewAuditLog, hasher: &dyn AuditHasher) -> StoreResult<AuditLog> {
        let genesis = hasher.genesis(org);
        let record = write_tx!(self, async move |c| {
            let at = now();
            // Make sure the chain head exists, then lock it: appends of one organization
            // queue here until the holder commits.
            diesel::insert_into(audit_chain_heads::table)
                .values(AuditHeadRow {
                    org_id: uid(org),
                    last_seq: 0,
                    last_hash: genesis.clone(),
                    updated_at: at,
                })
                .on_conflict(audit_chain_heads::org_id)
                .do_nothing()
                .execute(&mut *c)
                .await?;
            let (last_seq, last_hash) = lock_chain_head(&mut *c, uid(org)).await?;
            let mut record = AuditLog {
                id: AuditLogId::new(),
                org_id: org,
                seq: last_seq + 1,
                actor_type: new.actor_type,
                actor_id: new.actor_id,
                action: new.action,
                target_type: new.target_type,
                target_id: new.target_id,
                before_state: new.before_state,
                after_state: new.after_state,
                ip: new.ip,
                request_id: new.request_id,
                prev_hash: if last_seq == 0 { genesis } else { last_hash },
                hash: String::new(),
                created_at: at.0,
            };
            record.hash = hasher.hash(&record);
            diesel::insert_into(audit_logs::table)
                .values(AuditRow::from_domain(&record))
                .execute(&mut *c)
                .await?;
            diesel::update(audit_chain_heads::table.filter(audit_chain_heads::org_id.eq(uid(org))))
                .set((
                    audit_chain_heads::last_seq.eq(record.seq),
                    audit_chain_heads::last_hash.eq(&record.hash),
                    audit_chain_heads::updated_at.eq(at),
                ))
                .execute(c)
                .await?;
            Ok(record)
        })?;
        Ok(record)
    }

    async fn list(&self, org: OrgId, filter: AuditFilter, n: u32) -> StoreResult<Vec<AuditLog>> {
        let rows = read!(self, c, {
            let mut q = audit_logs::table
                .filter(audit_logs::org_id.eq(uid(org)))
                .into_boxed();
            if let Some(from) = filter.from {
                q = q.filter(audit_logs::created_at.ge(ts(from)));
            }
            if let Some(to) = filter.to {
                q = q.filter(audit_logs::created_at.lt(ts(to)));
            }
            if let Some(action) = filter.action {
                q = q.filter(audit_logs::action.eq(action));
            }
            if let Some(actor) = filter.actor_id {
                q = q.filter(audit_logs::actor_id.eq(actor));
            }
            if let Some(before) = filter.before_seq {
                q = q.filter(audit_logs::seq.lt(before));
            }
            Ok(q.select(AuditRow::as_select())
                .order(audit_logs::seq.desc())
                .limit(limit(n))
                .load::<AuditRow>(c)
                .await?)
        })?;
        Ok(rows.into_iter().map(AuditRow::into_domain).collect())
    }

    async fn chain(&self, org: OrgId, after_seq: i64, n: u32) -> StoreResult<Vec<AuditLog>> {
        let rows = read!(self, c, {
            Ok(audit_logs::table
                .filter(audit_logs::org_id.eq(uid(org)))
                .filter(audit_logs::seq.gt(after_seq))
                .select(AuditRow::as_select())
                .order(audit_logs::seq.asc())
                .limit(limit(n))
                .load(c)
                .await?)
        })?;
        Ok(rows.into_iter().map(AuditRow::into_domain).collect())
    }

    async fn head(&self, org: OrgId) -> StoreResult<Option<AuditChainHead>> {
        let head: Option<(i64, String)> = read!(self, c, {
            Ok(audit_chain_heads::table
                .filter(audit_chain_heads::org_id.eq(uid(org)))
                .select((audit_chain_heads::last_seq, audit_chain_heads::last_hash))
                .first(c)
                .await
                .optional()?)
        })?;
        // The head row starts at seq 0 inside the first append's transaction; a committed
        // head is always past it, but an empty chain is `None` either way.
        Ok(head
            .filter(|(seq, _)| *seq > 0)
            .map(|(last_seq, last_hash)| AuditChainHead { last_seq, last_hash }))
    }
}

// ---------------------------------------------------------------------------------------------
// Request logs

/// Rows per `INSERT` of a log batch (21 columns each: far below both backends' bind limits).
const LOG_CHUNK: usize = 500;

#[async_trait]
impl LogStore for Store {
    async fn insert_batch(&self, records: &[LogRecord]) -> StoreResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let rows: Vec<LogRow> = records.iter().map(LogRow::from_domain).collect();
        write_tx!(self, async move |c| {
            for chunk in rows.chunks(LOG_CHUNK) {
                insert_many!(&mut *c, log_index::table, chunk);
            }
            Ok(())
        })?;
        Ok(())
    }

    async fn query(&self, org: OrgId, query: LogQuery, n: u32) -> StoreResult<Vec<LogRecord>> {
        let rows = read!(self, c, {
            let mut q = log_index::table
                .filter(log_index::org_id.eq(uid(org)))
                .into_boxed();
            if let Some(from) = query.from {
                q = q.filter(log_index::created_at.ge(ts(from)));
            }
            if let Some(to) = query.to {
                q = q.filter(log_index::created_at.lt(ts(to)));
            }
            if let Some(server) = query.server_id {
                q = q.filter(log_index::server_id.eq(uid(server)));
            }
            if let Some(principal) = query.principal_id {
                q = q.filter(log_index::principal_id.eq(principal));
            }
            if let Some(method) = query.method {
                q = q.filter(log_index::method.eq(method));
            }
            if let Some(status) = query.status {
                q = q.filter(log_index::status.eq(status));
            }
            if let Some(needle) = query.name_contains {
                q = q.filter(
                    lower(log_index::name)
                        .like(contains_pattern(&needle))
                        .escape('\\'),
                );
            }
            if let Some((at, id)) = query.before {
                q = q.filter(
                    log_index::created_at
                        .lt(ts(at))
                        .or(log_index::created_at.eq(ts(at)).and(log_index::id.lt(uid(id)))),
                );
            }
            Ok(q.select(LogRow::as_select())
                .order((log_index::created_at.desc(), log_index::id.desc()))
                .limit(limit(n))
                .load::<LogRow>(c)
                .await?)
        })?;
        Ok(rows.into_iter().map(LogRow::into_domain).collect())
    }

    async fn get(&self, org: OrgId, id: LogId) -> StoreResult<Option<LogRecord>> {
        let row = read!(self, c, {
            Ok(log_index::table
                .filter(log_index::org_id.eq(uid(org)))
                .filter(log_index::id.eq(uid(id)))
                .select(LogRow::as_select())
                .first::<LogRow>(c)
                .await
                .optional()?)
        })?;
        Ok(row.map(LogRow::into_domain))
    }

    async fn delete_before(&self, org: OrgId, before: DateTime<Utc>) -> StoreResult<u64> {
        let n = write_tx!(self, async move |c| {
            Ok(diesel::delete(
                log_index::table
                    .filter(log_index::org_id.eq(uid(org)))
                    .filter(log_index::created_at.lt(ts(before))),
            )
            .execute(c)
            .await?)
        })?;
        Ok(affected(n))
    }

    async fn upsert_aggregates(&self, aggregates: &[LogAggregate]) -> StoreResult<()> {
        if aggregates.is_empty() {
            return Ok(());
        }
        let rows: Vec<AggregateRow> = aggregates.iter().map(AggregateRow::from_domain).collect();
        write_tx!(self, async move |c| {
            for row in rows {
                // Replace the counters; the first id of a bucket stays.
                diesel::insert_into(log_aggregates::table)
                    .values(&row)
                    .on_conflict((
                        log_aggregates::org_id,
                        log_aggregates::granularity,
                        log_aggregates::bucket_start,
                        log_aggregates::dimension,
                        log_aggregates::dimension_key,
                    ))
                    .do_update()
                    .set((
                        log_aggregates::request_count.eq(excluded(log_aggregates::request_count)),
                        log_aggregates::error_count.eq(excluded(log_aggregates::error_count)),
                        log_aggregates::total_latency_ms.eq(excluded(log_aggregates::total_latency_ms)),
                        log_aggregates::p50_ms.eq(excluded(log_aggregates::p50_ms)),
                        log_aggregates::p95_ms.eq(excluded(log_aggregates::p95_ms)),
                        log_aggregates::p99_ms.eq(excluded(log_aggregates::p99_ms)),
                        log_aggregates::request_bytes.eq(excluded(log_aggregates::request_bytes)),
                        log_aggregates::response_bytes.eq(excluded(log_aggregates::response_bytes)),
                        log_aggregates::updated_at.eq(excluded(log_aggregates::updated_at)),
                    ))
                    .execute(&mut *c)
                    .await?;
            }
            Ok(())
        })?;
        Ok(())
    }

    async fn aggregates(
        &self,
        org: OrgId,
        granularity: Granularity,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<LogAggregate>> {
        let rows = read!(self, c, {
            Ok(log_aggregates::table
                .filter(log_aggregates::org_id.eq(uid(org)))
                .filter(log_aggregates::granularity.eq(granularity.as_str()))
                .filter(log_aggregates::bucket_start.ge(ts(from)))
                .filter(log_aggregates::bucket_start.lt(ts(to)))
                .select(AggregateRow::as_select())
                .order((
                    log_aggregates::bucket_start.asc(),
                    log_aggregates::dimension.asc(),
                    log_aggregates::dimension_key.asc(),
                ))
                .load(c)
                .await?)
        })?;
        Ok(rows
            .into_iter()
            .map(AggregateRow::into_domain)
            .collect::<DbResult<_>>()?)
    }
}

// ---------------------------------------------------------------------------------------------
// Rate limits

#[async_trait]
impl PolicyStore for Store {
    async fn create(&self, org: OrgId, new: NewPolicy) -> StoreResult<StoredPolicy> {
        let row = PolicyRow::new(org, new, now());
        let row = write_tx!(self, async move |c| {
            let row = diesel::insert_into(policies::table)
                .values(&row)
                .returning(PolicyRow::as_returning())
                .get_result(c)
                .await?;
            record_change(c, org, change::POLICY, row.id.0, change::CREATE).await?;
            Ok(row)
        })?;
        Ok(row.into_domain()?)
    }

    async fn get(&self, org: OrgId, id: PolicyId) -> StoreResult<Option<StoredPolicy>> {
        let row = read!(self, c, {
            Ok(policies::table
                .filter(policies::id.eq(uid(id)))
                .filter(policies::org_id.eq(uid(org)))
                .select(PolicyRow::as_select())
                .first(c)
                .await
                .optional()?)
        })?;
        Ok(row.map(PolicyRow::into_domain).transpose()?)
    }

    async fn list(&self, org: OrgId) -> StoreResult<Vec<StoredPolicy>> {
        let rows = read!(self, c, {
            Ok(policies::table
                .filter(policies::org_id.eq(uid(org)))
                .select(PolicyRow::as_select())
                .order((policies::name.asc(), policies::id.asc()))
                .load(c)
                .await?)
        })?;
        Ok(rows.into_iter().map(PolicyRow::into_domain).collect::<DbResult<_>>()?)
    }

    async fn list_all(&self) -> StoreResult<Vec<StoredPolicy>> {
        let rows = read!(self, c, {
            Ok(policies::table
                .select(PolicyRow::as_select())
                .order((policies::org_id.asc(), policies::name.asc(), policies::id.asc()))
                .load(c)
                .await?)
        })?;
        Ok(rows.into_iter().map(PolicyRow::into_domain).collect::<DbResult<_>>()?)
    }

    async fn update(&self, org: OrgId, id: PolicyId, patch: PolicyPatch) -> StoreResult<StoredPolicy> {
        let changes = PolicyChanges::new(patch, now());
        let row = write_tx!(self, async move |c| {
            let row = diesel::update(
                policies::table.filter(policies::id.eq(uid(id))).filter(policies::org_id.eq(uid(org))),
            )
            .set(&changes)
            .returning(PolicyRow::as_returning())
            .get_result(&mut *c)
            .await
            .optional()?
            .ok_or(DbError::NotFound)?;
            record_change(c, org, change::POLICY, id, change::UPDATE).await?;
            Ok(row)
        })?;
        Ok(row.into_domain()?)
    }

    async fn delete(&self, org: OrgId, id: PolicyId) -> StoreResult<()> {
        write_tx!(self, async move |c| {
            let n = diesel::delete(
                policies::table.filter(policies::id.eq(uid(id))).filter(policies::org_id.eq(uid(org))),
            )
            .execute(&mut *c)
            .await?;
            if n == 0 {
                return Err(DbError::NotFound);
            }
            record_change(c, org, change::POLICY, id, change::DELETE).await
        })?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Rate limits

#[async_trait]
impl RateLimitStore for Store {
    async fn create(&self, org: OrgId, new: NewRateLimitRule) -> StoreResult<RateLimitRule> {
        let row = RateLimitRow::new(org, new, now());
        let row = write_tx!(self, async move |c| {
            let row = diesel::insert_into(rate_limits::table)
                .values(&row)
                .returning(RateLimitRow::as_returning())
                .get_result(c)
                .await?;
            record_change(c, org, change::RATE_LIMIT, row.id.0, change::CREATE).await?;
            Ok(row)
        })?;
        Ok(row.into_domain()?)
    }

    async fn get(&self, org: OrgId, id: RateLimitId) -> StoreResult<Option<RateLimitRule>> {
        let row = read!(self, c, {
            Ok(rate_limits::table
                .filter(rate_limits::id.eq(uid(id)))
                .filter(rate_limits::org_id.eq(uid(org)))
                .select(RateLimitRow::as_select())
                .first(c)
                .await
                .optional()?)
        })?;
        Ok(row.map(RateLimitRow::into_domain).transpose()?)
    }

    async fn list(&self, org: OrgId) -> StoreResult<Vec<RateLimitRule>> {
        let rows = read!(self, c, {
            Ok(rate_limits::table
                .filter(rate_limits::org_id.eq(uid(org)))
                .select(RateLimitRow::as_select())
                .order((rate_limits::name.asc(), rate_limits::id.asc()))
                .load(c)
                .await?)
        })?;
        Ok(rows
            .into_iter()
            .map(RateLimitRow::into_domain)
            .collect::<DbResult<_>>()?)
    }

    async fn list_all_enabled(&self) -> StoreResult<Vec<RateLimitRule>> {
        let rows = read!(self, c, {
            Ok(rate_limits::table
                .filter(rate_limits::enabled.eq(true))
                .select(RateLimitRow::as_select())
                .order((
                    rate_limits::org_id.asc(),
                    rate_limits::name.asc(),
                    rate_limits::id.asc(),
                ))
                .load(c)
                .await?)
        })?;
        Ok(rows
            .into_iter()
            .map(RateLimitRow::into_domain)
            .collect::<DbResult<_>>()?)
    }

    async fn update(
        &self,
        org: OrgId,
        id: RateLimitId,
        patch: RateLimitRulePatch,
    ) -> StoreResult<RateLimitRule> {
        let changes = RateLimitChanges::new(patch, now());
        let row = write_tx!(self, async move |c| {
            let row = diesel::update(
                rate_limits::table
                    .filter(rate_limits::id.eq(uid(id)))
                    .filter(rate_limits::org_id.eq(uid(org))),
            )
            .set(&changes)
            .returning(RateLimitRow::as_returning())
            .get_result(&mut *c)
            .await
            .optional()?
            .ok_or(DbError::NotFound)?;
            record_change(c, org, change::RATE_LIMIT, id, change::UPDATE).await?;
            Ok(row)
        })?;
        Ok(row.into_domain()?)
    }

    async fn delete(&self, org: OrgId, id: RateLimitId) -> StoreResult<()> {
        write_tx!(self, async move |c| {
            let n = diesel::delete(
                rate_limits::table
                    .filter(rate_limits::id.eq(uid(id)))
                    .filter(rate_limits::org_id.eq(uid(org))),
            )
            .execute(&mut *c)
            .await?;
            if n == 0 {
                return Err(DbError::NotFound);
            }
            record_change(c, org, change::RATE_LIMIT, id, change::DELETE).await
        })?;
        Ok(())
    }

    async fn add_usage(&self, usage: &[RateLimitUsage]) -> StoreResult<()> {
        if usage.is_empty() {
            return Ok(());
        }
        let usage = usage.to_vec();
        write_tx!(self, async move |c| {
            let at = now();
            for u in usage {
                // A rule deleted (or of another organization) since the counting keeps its
                // usage, unlinked.
                let rule: Option<DbUuid> = match u.rate_limit_id {
                    Some(rule) => rate_limits::table
                        .filter(rate_limits::id.eq(uid(rule)))
                        .filter(rate_limits::org_id.eq(uid(u.org_id)))
                        .select(rate_limits::id)
                        .first(&mut *c)
                        .await
                        .optional()?,
                    None => None,
                };
                let row = UsageRow {
                    id: DbUuid(uuid::Uuid::now_v7()),
                    org_id: uid(u.org_id),
                    rate_limit_id: rule,
                    rule_key: u.rule_key,
                    window_start: ts(u.window_start),
                    allowed_count: u.allowed_count,
                    rejected_count: u.rejected_count,
                    updated_at: at,
                };
                diesel::insert_into(rate_limit_usage::table)
                    .values(&row)
                    .on_conflict((
                        rate_limit_usage::org_id,
                        rate_limit_usage::rule_key,
                        rate_limit_usage::window_start,
                    ))
                    .do_update()
                    .set(
                        (
                            rate_limit_usage::allowed_count
                                .eq(rate_limit_usage::allowed_count
                                    + excluded(rate_limit_usage::allowed_count)),
                            rate_limit_usage::rejected_count
                                .eq(rate_limit_usage::rejected_count
                                    + excluded(rate_limit_usage::rejected_count)),
                            rate_limit_usage::updated_at.eq(excluded(rate_limit_usage::updated_at)),
                        ),
                    )
                    .execute(&mut *c)
                    .await?;
            }
            Ok(())
        })?;
        Ok(())
    }

    async fn usage(
        &self,
        org: OrgId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<RateLimitUsage>> {
        let rows = read!(self, c, {
            Ok(rate_limit_usage::table
                .filter(rate_limit_usage::org_id.eq(uid(org)))
                .filter(rate_limit_usage::window_start.ge(ts(from)))
                .filter(rate_limit_usage::window_start.lt(ts(to)))
                .select(UsageRow::as_select())
                .order((
                    rate_limit_usage::window_start.asc(),
                    rate_limit_usage::rule_key.asc(),
                ))
                .load(c)
                .await?)
        })?;
        Ok(rows.into_iter().map(UsageRow::into_domain).collect())
    }
}

// ---------------------------------------------------------------------------------------------
// Health checks and server counters

#[async_trait]
impl HealthStore for Store {
    async fn record(&self, org: OrgId, check: NewHealthCheck) -> StoreResult<HealthCheck> {
        let server = check.server_id;
        let row = HealthCheckRow::new(org, check);
        let row = write_tx!(self, async move |c| {
            require_owned!(&mut *c, mcp_servers, org, server);
            Ok(diesel::insert_into(health_checks::table)
                .values(&row)
                .returning(HealthCheckRow::as_returning())
                .get_result(c)
                .await?)
        })?;
        Ok(row.into_domain()?)
    }

    async fn history(&self, org: OrgId, server: ServerId, n: u32) -> StoreResult<Vec<HealthCheck>> {
        let rows = read!(self, c, {
            Ok(health_checks::table
                .filter(health_checks::org_id.eq(uid(org)))
                .filter(health_checks::server_id.eq(uid(server)))
                .select(HealthCheckRow::as_select())
                .order((health_checks::checked_at.desc(), health_checks::id.desc()))
                .limit(limit(n))
                .load(c)
                .await?)
        })?;
        Ok(rows
            .into_iter()
            .map(HealthCheckRow::into_domain)
            .collect::<DbResult<_>>()?)
    }

    async fn delete_before(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let n = write_tx!(self, async move |c| {
            Ok(
                diesel::delete(health_checks::table.filter(health_checks::checked_at.lt(ts(before))))
                    .execute(c)
                    .await?,
            )
        })?;
        Ok(affected(n))
    }

    async fn add_stats(
        &self,
        org: OrgId,
        server: ServerId,
        delta: ServerStatsDelta,
        failed: Option<bool>,
        at: DateTime<Utc>,
    ) -> StoreResult<ServerStats> {
        let at = ts(at);
        let row = write_tx!(self, async move |c| {
            require_owned!(&mut *c, mcp_servers, org, server);
            let zero = ServerStatsRow {
                server_id: uid(server),
                org_id: uid(org),
                total_requests: 0,
                total_errors: 0,
                total_latency_ms: 0,
                consecutive_failures: 0,
                last_request_at: None,
                last_error_at: None,
                updated_at: at,
                rolled_up_to: None,
            };
            diesel::insert_into(server_stats::table)
                .values(&zero)
                .on_conflict(server_stats::server_id)
                .do_nothing()
                .execute(&mut *c)
                .await?;
            // One UPDATE with the increments in SQL: concurrent adds never lose counts.
            Ok(diesel::update(
                server_stats::table
                    .filter(server_stats::server_id.eq(uid(server)))
                    .filter(server_stats::org_id.eq(uid(org))),
            )
            .set((
                server_stats::total_requests.eq(server_stats::total_requests + delta.requests),
                server_stats::total_errors.eq(server_stats::total_errors + delta.errors),
                server_stats::total_latency_ms.eq(server_stats::total_latency_ms + delta.latency_ms),
                server_stats::updated_at.eq(at),
                (delta.requests > 0).then_some(server_stats::last_request_at.eq(at)),
                (delta.errors > 0).then_some(server_stats::last_error_at.eq(at)),
                (failed == Some(true))
                    .then_some(server_stats::consecutive_failures.eq(server_stats::consecutive_failures + 1)),
                (failed == Some(false)).then_some(server_stats::consecutive_failures.eq(0)),
            ))
            .returning(ServerStatsRow::as_returning())
            .get_result(c)
            .await?)
        })?;
        Ok(row.into_domain())
    }

    async fn stats(&self, org: OrgId, server: ServerId) -> StoreResult<Option<ServerStats>> {
        let row = read!(self, c, {
            Ok(server_stats::table
                .filter(server_stats::server_id.eq(uid(server)))
                .filter(server_stats::org_id.eq(uid(org)))
                .select(ServerStatsRow::as_select())
                .first(c)
                .await
                .optional()?)
        })?;
        Ok(row.map(ServerStatsRow::into_domain))
    }

    async fn roll_up_requests(&self, until: DateTime<Utc>) -> StoreResult<u64> {
        let until = ts(until);
        let changed = write_tx!(self, async move |c| {
            // Every server gets a counters row, so every server carries a mark.
            let servers: Vec<(DbUuid, DbUuid)> = mcp_servers::table
                .select((mcp_servers::id, mcp_servers::org_id))
                .load(&mut *c)
                .await?;
            for (server, org) in &servers {
                let zero = ServerStatsRow {
                    server_id: *server,
                    org_id: *org,
                    total_requests: 0,
                    total_errors: 0,
                    total_latency_ms: 0,
                    consecutive_failures: 0,
                    last_request_at: None,
                    last_error_at: None,
                    updated_at: until,
                    rolled_up_to: None,
                };
                diesel::insert_into(server_stats::table)
                    .values(&zero)
                    .on_conflict(server_stats::server_id)
                    .do_nothing()
                    .execute(&mut *c)
                    .await?;
            }
            // The marks, locked (PostgreSQL) so a concurrent roll-up waits and then sees the
            // marks this one moves.
            let marks = lock_roll_up_marks(&mut *c).await?;
            // Servers sharing a mark (after the first run, all of them) are summed together.
            let mut by_mark: std::collections::BTreeMap<Option<DbTime>, Vec<DbUuid>> =
                std::collections::BTreeMap::new();
            for (server, mark) in marks {
                if mark.is_none_or(|m| m < until) {
                    by_mark.entry(mark).or_default().push(server);
                }
            }
            let mut changed = 0u64;
            for (mark, group) in by_mark {
                for chunk in group.chunks(500) {
                    // No mark yet: everything since the epoch (no record is older).
                    let from = mark.unwrap_or(DbTime(DateTime::<Utc>::UNIX_EPOCH));
                    let window = || {
                        log_index::table
                            .filter(log_index::server_id.eq_any(chunk.to_vec()))
                            .filter(log_index::created_at.gt(from))
                            .filter(log_index::created_at.le(until))
                    };
                    let all: Vec<(Option<DbUuid>, i64, Option<i64>, Option<DbTime>)> = window()
                        .group_by(log_index::server_id)
                        .select((
                            log_index::server_id,
                            diesel::dsl::count_star(),
                            diesel::dsl::sum(log_index::latency_ms),
                            max(log_index::created_at),
                        ))
                        .load(&mut *c)
                        .await?;
                    let errors: Vec<(Option<DbUuid>, i64, Option<DbTime>)> = window()
                        .filter(log_index::status.ne("ok"))
                        .group_by(log_index::server_id)
                        .select((
                            log_index::server_id,
                            diesel::dsl::count_star(),
                            max(log_index::created_at),
                        ))
                        .load(&mut *c)
                        .await?;
                    let errors: std::collections::HashMap<DbUuid, (i64, Option<DbTime>)> = errors
                        .into_iter()
                        .filter_map(|(s, n, at)| s.map(|s| (s, (n, at))))
                        .collect();
                    for (server, requests, latency, last) in all {
                        let Some(server) = server else { continue };
                        let (errs, last_error) = errors.get(&server).copied().unwrap_or((0, None));
                        diesel::update(server_stats::table.filter(server_stats::server_id.eq(server)))
                            .set((
                                server_stats::total_requests.eq(server_stats::total_requests + requests),
                                server_stats::total_errors.eq(server_stats::total_errors + errs),
                                server_stats::total_latency_ms
                                    .eq(server_stats::total_latency_ms + latency.unwrap_or(0)),
                                last.map(|at| server_stats::last_request_at.eq(at)),
                                last_error.map(|at| server_stats::last_error_at.eq(at)),
                                server_stats::updated_at.eq(now()),
                            ))
                            .execute(&mut *c)
                            .await?;
                        changed += 1;
                    }
                    diesel::update(
                        server_stats::table
                            .filter(server_stats::server_id.eq_any(chunk.to_vec()))
                            .filter(
                                server_stats::rolled_up_to
                                    .is_null()
                                    .or(server_stats::rolled_up_to.lt(until)),
                            ),
                    )
                    .set(server_stats::rolled_up_to.eq(until))
                    .execute(&mut *c)
                    .await?;
                }
            }
            Ok(changed)
        })?;
        Ok(changed)
    }
}

// ---------------------------------------------------------------------------------------------
// Change log and liveness

#[async_trait]
impl ChangeLogStore for Store {
    async fn since(&self, after: i64, n: u32) -> StoreResult<Vec<ChangeEntry>> {
        let rows = read!(self, c, {
            Ok(change_log::table
                .filter(change_log::id.gt(after))
                .select(ChangeRow::as_select())
                .order(change_log::id.asc())
                .limit(limit(n))
                .load(c)
                .await?)
        })?;
        Ok(rows.into_iter().map(ChangeRow::into_domain).collect())
    }

    async fn latest_id(&self) -> StoreResult<i64> {
        let id = read!(self, c, {
            Ok(change_log::table
                .select(max(change_log::id))
                .first::<Option<i64>>(c)
                .await?)
        })?;
        Ok(id.unwrap_or(0))
    }

    async fn prune(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let n = write_tx!(self, async move |c| {
            Ok(
                diesel::delete(change_log::table.filter(change_log::created_at.lt(ts(before))))
                    .execute(c)
                    .await?,
            )
        })?;
        Ok(affected(n))
    }
}

#[async_trait]
impl StoreHealth for Store {
    async fn ping(&self) -> StoreResult<()> {
        read!(self, c, {
            diesel::sql_query("SELECT 1").execute(c).await?;
            Ok(())
        })?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        BACKEND_NAME
    }
}

// ---------------------------------------------------------------------------------------------
// Capability catalogs

#[async_trait]
impl CatalogStore for Store {
    async fn get(&self, org: OrgId, server: ServerId) -> StoreResult<Option<ServerCatalog>> {
        let row = read!(self, c, {
            Ok(server_catalogs::table
                .filter(server_catalogs::org_id.eq(uid(org)))
                .filter(server_catalogs::server_id.eq(uid(server)))
                .select(CatalogRow::as_select())
                .first(c)
                .await
                .optional()?)
        })?;
        Ok(row.map(CatalogRow::into_domain).transpose()?)
    }

    async fn list_all(&self) -> StoreResult<Vec<ServerCatalog>> {
        let rows = read!(self, c, {
            Ok(server_catalogs::table
                .select(CatalogRow::as_select())
                .order(server_catalogs::server_id)
                .load(c)
                .await?)
        })?;
        Ok(rows
            .into_iter()
            .map(CatalogRow::into_domain)
            .collect::<DbResult<_>>()?)
    }

    async fn put(&self, org: OrgId, catalog: ServerCatalog) -> StoreResult<ServerCatalog> {
        let server = catalog.server_id;
        let row = CatalogRow::new(org, catalog)?;
        let row = write_tx!(self, async move |c| {
            require_owned!(&mut *c, mcp_servers, org, server);
            let row = diesel::insert_into(server_catalogs::table)
                .values(&row)
                .on_conflict(server_catalogs::server_id)
                .do_update()
                .set(&row)
                .returning(CatalogRow::as_returning())
                .get_result(c)
                .await?;
            record_change(c, org, change::CATALOG, server, change::UPDATE).await?;
            Ok(row)
        })?;
        Ok(row.into_domain()?)
    }
}
