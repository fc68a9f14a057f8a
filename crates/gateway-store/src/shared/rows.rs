// Row structs and their conversion to and from the domain model: the one place where rows
// meet domain types. `include!`d into each backend's `imp` module, where `schema` and
// `Backend` name that backend's tables and diesel backend.

/// `organizations`.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::organizations, check_for_backend(Backend), treat_none_as_default_value = false)]
struct OrganizationRow {
    id: DbUuid,
    name: String,
    slug: String,
    plan: String,
    max_servers: i32,
    max_sessions: i32,
    log_retention_days: i32,
    created_at: DbTime,
    updated_at: DbTime,
}

impl OrganizationRow {
    fn new(new: NewOrganization, at: DbTime) -> Self {
        let (max_servers, max_sessions, log_retention_days) = new.plan.default_limits();
        Self {
            id: uid(OrgId::new()),
            name: new.name,
            slug: new.slug,
            plan: new.plan.as_str().to_owned(),
            max_servers,
            max_sessions,
            log_retention_days,
            created_at: at,
            updated_at: at,
        }
    }

    fn into_domain(self) -> DbResult<Organization> {
        Ok(Organization {
            id: OrgId::from_uuid(self.id.0),
            name: self.name,
            slug: self.slug,
            plan: parse(&self.plan)?,
            max_servers: self.max_servers,
            max_sessions: self.max_sessions,
            log_retention_days: self.log_retention_days,
            created_at: self.created_at.0,
            updated_at: self.updated_at.0,
        })
    }
}

#[derive(AsChangeset)]
#[diesel(table_name = schema::organizations)]
struct OrganizationChanges {
    name: Option<String>,
    plan: Option<String>,
    max_servers: Option<i32>,
    max_sessions: Option<i32>,
    log_retention_days: Option<i32>,
    updated_at: DbTime,
}

impl OrganizationChanges {
    fn new(patch: OrganizationPatch, at: DbTime) -> Self {
        Self {
            name: patch.name,
            plan: patch.plan.map(|p| p.as_str().to_owned()),
            max_servers: patch.max_servers,
            max_sessions: patch.max_sessions,
            log_retention_days: patch.log_retention_days,
            updated_at: at,
        }
    }
}

/// `namespaces`.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::namespaces, check_for_backend(Backend), treat_none_as_default_value = false)]
struct NamespaceRow {
    id: DbUuid,
    org_id: DbUuid,
    name: String,
    slug: String,
    description: Option<String>,
    created_at: DbTime,
    updated_at: DbTime,
    source: String,
}

impl NamespaceRow {
    fn new(org: OrgId, new: NewNamespace, at: DbTime) -> Self {
        Self {
            id: uid(NamespaceId::new()),
            org_id: uid(org),
            name: new.name,
            slug: new.slug,
            description: new.description,
            created_at: at,
            updated_at: at,
            source: new.source.as_str().to_owned(),
        }
    }

    fn into_domain(self) -> DbResult<Namespace> {
        Ok(Namespace {
            id: NamespaceId::from_uuid(self.id.0),
            org_id: OrgId::from_uuid(self.org_id.0),
            name: self.name,
            slug: self.slug,
            description: self.description,
            source: parse(&self.source)?,
            created_at: self.created_at.0,
            updated_at: self.updated_at.0,
        })
    }
}

#[derive(AsChangeset)]
#[diesel(table_name = schema::namespaces)]
struct NamespaceChanges {
    name: Option<String>,
    slug: Option<String>,
    description: Option<Option<String>>,
    updated_at: DbTime,
}

impl NamespaceChanges {
    fn new(patch: NamespacePatch, at: DbTime) -> Self {
        Self {
            name: patch.name,
            slug: patch.slug,
            description: patch.description,
            updated_at: at,
        }
    }
}

/// `users`.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::users, check_for_backend(Backend), treat_none_as_default_value = false)]
struct UserRow {
    id: DbUuid,
    org_id: DbUuid,
    email: String,
    name: String,
    password_hash: String,
    role: String,
    is_active: bool,
    failed_logins: i32,
    locked_until: Option<DbTime>,
    last_login_at: Option<DbTime>,
    created_at: DbTime,
    updated_at: DbTime,
}

impl UserRow {
    fn new(org: OrgId, new: NewUser, at: DbTime) -> Self {
        Self {
            id: uid(UserId::new()),
            org_id: uid(org),
            email: new.email.to_lowercase(),
            name: new.name,
            password_hash: new.password_hash,
            role: new.role.as_str().to_owned(),
            is_active: true,
            failed_logins: 0,
            locked_until: None,
            last_login_at: None,
            created_at: at,
            updated_at: at,
        }
    }

    fn into_domain(self) -> DbResult<User> {
        Ok(User {
            id: UserId::from_uuid(self.id.0),
            org_id: OrgId::from_uuid(self.org_id.0),
            email: self.email,
            name: self.name,
            password_hash: self.password_hash,
            role: parse(&self.role)?,
            is_active: self.is_active,
            failed_logins: self.failed_logins,
            locked_until: self.locked_until.map(|t| t.0),
            last_login_at: self.last_login_at.map(|t| t.0),
            created_at: self.created_at.0,
            updated_at: self.updated_at.0,
        })
    }
}

#[derive(AsChangeset)]
#[diesel(table_name = schema::users)]
struct UserChanges {
    name: Option<String>,
    password_hash: Option<String>,
    role: Option<String>,
    is_active: Option<bool>,
    updated_at: DbTime,
}

impl UserChanges {
    fn new(patch: UserPatch, at: DbTime) -> Self {
        Self {
            name: patch.name,
            password_hash: patch.password_hash,
            role: patch.role.map(|r| r.as_str().to_owned()),
            is_active: patch.is_active,
            updated_at: at,
        }
    }
}

/// `api_keys`.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::api_keys, check_for_backend(Backend), treat_none_as_default_value = false)]
struct ApiKeyRow {
    id: DbUuid,
    org_id: DbUuid,
    user_id: Option<DbUuid>,
    key_type: String,
    name: String,
    prefix: String,
    key_hash: String,
    namespace_id: Option<DbUuid>,
    permissions: DbJson,
    expires_at: Option<DbTime>,
    last_used_at: Option<DbTime>,
    revoked_at: Option<DbTime>,
    created_at: DbTime,
}

impl ApiKeyRow {
    fn new(org: OrgId, new: NewApiKey, at: DbTime) -> Self {
        Self {
            id: uid(ApiKeyId::new()),
            org_id: uid(org),
            user_id: new.user_id.map(uid),
            key_type: new.key_type.as_str().to_owned(),
            name: new.name,
            prefix: new.prefix,
            key_hash: new.key_hash,
            namespace_id: new.namespace_id.map(uid),
            permissions: strings_json(&new.permissions),
            expires_at: ts_opt(new.expires_at),
            last_used_at: None,
            revoked_at: None,
            created_at: at,
        }
    }

    fn into_domain(self) -> DbResult<ApiKey> {
        Ok(ApiKey {
            id: ApiKeyId::from_uuid(self.id.0),
            org_id: OrgId::from_uuid(self.org_id.0),
            user_id: self.user_id.map(|u| UserId::from_uuid(u.0)),
            key_type: parse(&self.key_type)?,
            name: self.name,
            prefix: self.prefix,
            key_hash: self.key_hash,
            namespace_id: self.namespace_id.map(|n| NamespaceId::from_uuid(n.0)),
            permissions: strings(self.permissions)?,
            expires_at: self.expires_at.map(|t| t.0),
            last_used_at: self.last_used_at.map(|t| t.0),
            revoked_at: self.revoked_at.map(|t| t.0),
            created_at: self.created_at.0,
        })
    }
}

/// `refresh_tokens`.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::refresh_tokens, check_for_backend(Backend), treat_none_as_default_value = false)]
struct RefreshTokenRow {
    id: DbUuid,
    org_id: DbUuid,
    user_id: DbUuid,
    family_id: DbUuid,
    token_hash: String,
    expires_at: DbTime,
    revoked_at: Option<DbTime>,
    replaced_by: Option<DbUuid>,
    created_at: DbTime,
}

impl RefreshTokenRow {
    fn new(org: OrgId, new: NewRefreshToken, at: DbTime) -> Self {
        Self {
            id: uid(RefreshTokenId::new()),
            org_id: uid(org),
            user_id: uid(new.user_id),
            family_id: uid(new.family_id),
            token_hash: new.token_hash,
            expires_at: ts(new.expires_at),
            revoked_at: None,
            replaced_by: None,
            created_at: at,
        }
    }

    fn into_domain(self) -> RefreshToken {
        RefreshToken {
            id: RefreshTokenId::from_uuid(self.id.0),
            org_id: OrgId::from_uuid(self.org_id.0),
            user_id: UserId::from_uuid(self.user_id.0),
            family_id: TokenFamilyId::from_uuid(self.family_id.0),
            token_hash: self.token_hash,
            expires_at: self.expires_at.0,
            revoked_at: self.revoked_at.map(|t| t.0),
            replaced_by: self.replaced_by.map(|r| RefreshTokenId::from_uuid(r.0)),
            created_at: self.created_at.0,
        }
    }
}

/// `mcp_servers`.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::mcp_servers, check_for_backend(Backend), treat_none_as_default_value = false)]
struct ServerRow {
    id: DbUuid,
    org_id: DbUuid,
    namespace_id: Option<DbUuid>,
    name: String,
    description: Option<String>,
    protocol: String,
    url: Option<String>,
    command: Option<String>,
    args: DbJson,
    environment: Option<String>,
    credentials: Option<String>,
    working_dir: Option<String>,
    timeout_seconds: i32,
    max_retries: i32,
    status: String,
    health_check_url: Option<String>,
    tags: DbJson,
    metadata: DbJson,
    source: String,
    created_at: DbTime,
    updated_at: DbTime,
}

impl ServerRow {
    fn new(org: OrgId, new: NewMcpServer, at: DbTime) -> Self {
        Self {
            id: uid(ServerId::new()),
            org_id: uid(org),
            namespace_id: new.namespace_id.map(uid),
            name: new.name,
            description: new.description,
            protocol: new.protocol.as_str().to_owned(),
            url: new.url,
            command: new.command,
            args: strings_json(&new.args),
            environment: unseal(new.environment),
            credentials: unseal(new.credentials),
            working_dir: new.working_dir,
            timeout_seconds: new.timeout_seconds,
            max_retries: new.max_retries,
            status: new.status.as_str().to_owned(),
            health_check_url: new.health_check_url,
            tags: strings_json(&new.tags),
            metadata: DbJson(new.metadata),
            source: new.source.as_str().to_owned(),
            created_at: at,
            updated_at: at,
        }
    }

    fn into_domain(self) -> DbResult<McpServer> {
        Ok(McpServer {
            id: ServerId::from_uuid(self.id.0),
            org_id: OrgId::from_uuid(self.org_id.0),
            namespace_id: self.namespace_id.map(|n| NamespaceId::from_uuid(n.0)),
            name: self.name,
            description: self.description,
            protocol: parse(&self.protocol)?,
            url: self.url,
            command: self.command,
            args: strings(self.args)?,
            environment: seal(self.environment),
            credentials: seal(self.credentials),
            working_dir: self.working_dir,
            timeout_seconds: self.timeout_seconds,
            max_retries: self.max_retries,
            status: parse(&self.status)?,
            health_check_url: self.health_check_url,
            tags: strings(self.tags)?,
            metadata: self.metadata.0,
            source: parse(&self.source)?,
            created_at: self.created_at.0,
            updated_at: self.updated_at.0,
        })
    }
}

#[derive(AsChangeset)]
#[diesel(table_name = schema::mcp_servers)]
struct ServerChanges {
    namespace_id: Option<Option<DbUuid>>,
    name: Option<String>,
    description: Option<Option<String>>,
    protocol: Option<String>,
    url: Option<Option<String>>,
    command: Option<Option<String>>,
    args: Option<DbJson>,
    environment: Option<Option<String>>,
    credentials: Option<Option<String>>,
    working_dir: Option<Option<String>>,
    timeout_seconds: Option<i32>,
    max_retries: Option<i32>,
    status: Option<String>,
    health_check_url: Option<Option<String>>,
    tags: Option<DbJson>,
    metadata: Option<DbJson>,
    updated_at: DbTime,
}

impl ServerChanges {
    fn new(patch: McpServerPatch, at: DbTime) -> Self {
        Self {
            namespace_id: patch.namespace_id.map(|n| n.map(uid)),
            name: patch.name,
            description: patch.description,
            protocol: patch.protocol.map(|p| p.as_str().to_owned()),
            url: patch.url,
            command: patch.command,
            args: patch.args.as_deref().map(strings_json),
            environment: patch.environment.map(unseal),
            credentials: patch.credentials.map(unseal),
            working_dir: patch.working_dir,
            timeout_seconds: patch.timeout_seconds,
            max_retries: patch.max_retries,
            status: patch.status.map(|s| s.as_str().to_owned()),
            health_check_url: patch.health_check_url,
            tags: patch.tags.as_deref().map(strings_json),
            metadata: patch.metadata.map(DbJson),
            updated_at: at,
        }
    }
}

/// `virtual_servers`.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::virtual_servers, check_for_backend(Backend), treat_none_as_default_value = false)]
struct VirtualServerRow {
    id: DbUuid,
    org_id: DbUuid,
    namespace_id: Option<DbUuid>,
    name: String,
    description: Option<String>,
    adapter_type: String,
    endpoint_url: Option<String>,
    config: DbJson,
    tools: DbJson,
    credentials: Option<String>,
    status: String,
    created_at: DbTime,
    updated_at: DbTime,
}

impl VirtualServerRow {
    fn new(org: OrgId, new: NewVirtualServer, at: DbTime) -> Self {
        Self {
            id: uid(VirtualServerId::new()),
            org_id: uid(org),
            namespace_id: new.namespace_id.map(uid),
            name: new.name,
            description: new.description,
            adapter_type: new.adapter_type.as_str().to_owned(),
            endpoint_url: new.endpoint_url,
            config: DbJson(new.config),
            tools: DbJson(new.tools),
            credentials: unseal(new.credentials),
            status: ServerStatus::Active.as_str().to_owned(),
            created_at: at,
            updated_at: at,
        }
    }

    fn into_domain(self) -> DbResult<VirtualServer> {
        Ok(VirtualServer {
            id: VirtualServerId::from_uuid(self.id.0),
            org_id: OrgId::from_uuid(self.org_id.0),
            namespace_id: self.namespace_id.map(|n| NamespaceId::from_uuid(n.0)),
            name: self.name,
            description: self.description,
            adapter_type: parse(&self.adapter_type)?,
            endpoint_url: self.endpoint_url,
            config: self.config.0,
            tools: self.tools.0,
            credentials: seal(self.credentials),
            status: parse(&self.status)?,
            created_at: self.created_at.0,
            updated_at: self.updated_at.0,
        })
    }
}

#[derive(AsChangeset)]
#[diesel(table_name = schema::virtual_servers)]
struct VirtualServerChanges {
    name: Option<String>,
    description: Option<Option<String>>,
    endpoint_url: Option<Option<String>>,
    config: Option<DbJson>,
    tools: Option<DbJson>,
    credentials: Option<Option<String>>,
    status: Option<String>,
    updated_at: DbTime,
}

impl VirtualServerChanges {
    fn new(patch: VirtualServerPatch, at: DbTime) -> Self {
        Self {
            name: patch.name,
            description: patch.description,
            endpoint_url: patch.endpoint_url,
            config: patch.config.map(DbJson),
            tools: patch.tools.map(DbJson),
            credentials: patch.credentials.map(unseal),
            status: patch.status.map(|s| s.as_str().to_owned()),
            updated_at: at,
        }
    }
}

/// `mcp_sessions`.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::mcp_sessions, check_for_backend(Backend), treat_none_as_default_value = false)]
struct SessionRow {
    id: DbUuid,
    org_id: DbUuid,
    server_id: Option<DbUuid>,
    namespace_id: Option<DbUuid>,
    user_id: Option<DbUuid>,
    api_key_id: Option<DbUuid>,
    status: String,
    protocol: String,
    protocol_version: Option<String>,
    client_info: Option<DbJson>,
    process_pid: Option<i32>,
    process_status: Option<String>,
    exit_code: Option<i32>,
    created_at: DbTime,
    last_activity_at: DbTime,
    closed_at: Option<DbTime>,
}

impl SessionRow {
    fn new(org: OrgId, new: NewMcpSession, at: DbTime) -> Self {
        Self {
            id: uid(new.id),
            org_id: uid(org),
            server_id: new.server_id.map(uid),
            namespace_id: new.namespace_id.map(uid),
            user_id: new.user_id.map(uid),
            api_key_id: new.api_key_id.map(uid),
            status: SessionStatus::Active.as_str().to_owned(),
            protocol: new.protocol.as_str().to_owned(),
            protocol_version: new.protocol_version,
            client_info: new.client_info.map(DbJson),
            process_pid: None,
            process_status: None,
            exit_code: None,
            created_at: at,
            last_activity_at: at,
            closed_at: None,
        }
    }

    fn into_domain(self) -> DbResult<McpSession> {
        Ok(McpSession {
            id: SessionId::from_uuid(self.id.0),
            org_id: OrgId::from_uuid(self.org_id.0),
            server_id: self.server_id.map(|s| ServerId::from_uuid(s.0)),
            namespace_id: self.namespace_id.map(|n| NamespaceId::from_uuid(n.0)),
            user_id: self.user_id.map(|u| UserId::from_uuid(u.0)),
            api_key_id: self.api_key_id.map(|k| ApiKeyId::from_uuid(k.0)),
            status: parse(&self.status)?,
            protocol: parse(&self.protocol)?,
            protocol_version: self.protocol_version,
            client_info: self.client_info.map(|j| j.0),
            process_pid: self.process_pid,
            process_status: self.process_status,
            exit_code: self.exit_code,
            created_at: self.created_at.0,
            last_activity_at: self.last_activity_at.0,
            closed_at: self.closed_at.map(|t| t.0),
        })
    }
}

#[derive(AsChangeset)]
#[diesel(table_name = schema::mcp_sessions)]
struct SessionChanges {
    status: Option<String>,
    protocol_version: Option<String>,
    process_pid: Option<Option<i32>>,
    process_status: Option<Option<String>>,
    exit_code: Option<Option<i32>>,
    last_activity_at: Option<DbTime>,
    closed_at: Option<DbTime>,
}

impl SessionChanges {
    fn new(patch: McpSessionPatch) -> Self {
        Self {
            status: patch.status.map(|s| s.as_str().to_owned()),
            protocol_version: patch.protocol_version,
            process_pid: patch.process_pid,
            process_status: patch.process_status,
            exit_code: patch.exit_code,
            last_activity_at: ts_opt(patch.last_activity_at),
            closed_at: ts_opt(patch.closed_at),
        }
    }
}

/// `audit_logs`.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::audit_logs, check_for_backend(Backend), treat_none_as_default_value = false)]
struct AuditRow {
    id: DbUuid,
    org_id: DbUuid,
    seq: i64,
    actor_type: String,
    actor_id: Option<String>,
    action: String,
    target_type: Option<String>,
    target_id: Option<String>,
    before_state: Option<DbJson>,
    after_state: Option<DbJson>,
    ip: Option<String>,
    request_id: Option<String>,
    prev_hash: String,
    hash: String,
    created_at: DbTime,
}

impl AuditRow {
    fn from_domain(log: &AuditLog) -> Self {
        Self {
            id: uid(log.id),
            org_id: uid(log.org_id),
            seq: log.seq,
            actor_type: log.actor_type.clone(),
            actor_id: log.actor_id.clone(),
            action: log.action.clone(),
            target_type: log.target_type.clone(),
            target_id: log.target_id.clone(),
            before_state: log.before_state.clone().map(DbJson),
            after_state: log.after_state.clone().map(DbJson),
            ip: log.ip.clone(),
            request_id: log.request_id.clone(),
            prev_hash: log.prev_hash.clone(),
            hash: log.hash.clone(),
            created_at: ts(log.created_at),
        }
    }

    fn into_domain(self) -> AuditLog {
        AuditLog {
            id: AuditLogId::from_uuid(self.id.0),
            org_id: OrgId::from_uuid(self.org_id.0),
            seq: self.seq,
            actor_type: self.actor_type,
            actor_id: self.actor_id,
            action: self.action,
            target_type: self.target_type,
            target_id: self.target_id,
            before_state: self.before_state.map(|j| j.0),
            after_state: self.after_state.map(|j| j.0),
            ip: self.ip,
            request_id: self.request_id,
            prev_hash: self.prev_hash,
            hash: self.hash,
            created_at: self.created_at.0,
        }
    }
}

/// `audit_chain_heads`.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::audit_chain_heads, check_for_backend(Backend), treat_none_as_default_value = false)]
struct AuditHeadRow {
    org_id: DbUuid,
    last_seq: i64,
    last_hash: String,
    updated_at: DbTime,
}

/// `log_index`.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::log_index, check_for_backend(Backend), treat_none_as_default_value = false)]
struct LogRow {
    id: DbUuid,
    org_id: DbUuid,
    namespace_id: Option<DbUuid>,
    server_id: Option<DbUuid>,
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
    body_ref: Option<String>,
    created_at: DbTime,
}

impl LogRow {
    fn from_domain(r: &LogRecord) -> Self {
        Self {
            id: uid(r.id),
            org_id: uid(r.org_id),
            namespace_id: r.namespace_id.map(uid),
            server_id: r.server_id.map(uid),
            principal_type: r.principal_type.clone(),
            principal_id: r.principal_id.clone(),
            transport: r.transport.clone(),
            protocol_era: r.protocol_era.clone(),
            method: r.method.clone(),
            name: r.name.clone(),
            status: r.status.clone(),
            http_status: r.http_status,
            error_code: r.error_code,
            latency_ms: r.latency_ms,
            request_bytes: r.request_bytes,
            response_bytes: r.response_bytes,
            client_ip: r.client_ip.clone(),
            request_id: r.request_id.clone(),
            trace_id: r.trace_id.clone(),
            body_ref: r.body_ref.clone(),
            created_at: ts(r.created_at),
        }
    }

    fn into_domain(self) -> LogRecord {
        LogRecord {
            id: LogId::from_uuid(self.id.0),
            org_id: OrgId::from_uuid(self.org_id.0),
            namespace_id: self.namespace_id.map(|n| NamespaceId::from_uuid(n.0)),
            server_id: self.server_id.map(|s| ServerId::from_uuid(s.0)),
            principal_type: self.principal_type,
            principal_id: self.principal_id,
            transport: self.transport,
            protocol_era: self.protocol_era,
            method: self.method,
            name: self.name,
            status: self.status,
            http_status: self.http_status,
            error_code: self.error_code,
            latency_ms: self.latency_ms,
            request_bytes: self.request_bytes,
            response_bytes: self.response_bytes,
            client_ip: self.client_ip,
            request_id: self.request_id,
            trace_id: self.trace_id,
            body_ref: self.body_ref,
            created_at: self.created_at.0,
        }
    }
}

/// `log_aggregates`.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::log_aggregates, check_for_backend(Backend), treat_none_as_default_value = false)]
struct AggregateRow {
    id: DbUuid,
    org_id: DbUuid,
    granularity: String,
    bucket_start: DbTime,
    dimension: String,
    dimension_key: String,
    request_count: i64,
    error_count: i64,
    total_latency_ms: i64,
    p50_ms: Option<i32>,
    p95_ms: Option<i32>,
    p99_ms: Option<i32>,
    request_bytes: i64,
    response_bytes: i64,
    updated_at: DbTime,
}

impl AggregateRow {
    fn from_domain(a: &LogAggregate) -> Self {
        Self {
            id: uid(a.id),
            org_id: uid(a.org_id),
            granularity: a.granularity.as_str().to_owned(),
            bucket_start: ts(a.bucket_start),
            dimension: a.dimension.clone(),
            dimension_key: a.dimension_key.clone(),
            request_count: a.request_count,
            error_count: a.error_count,
            total_latency_ms: a.total_latency_ms,
            p50_ms: a.p50_ms,
            p95_ms: a.p95_ms,
            p99_ms: a.p99_ms,
            request_bytes: a.request_bytes,
            response_bytes: a.response_bytes,
            updated_at: ts(a.updated_at),
        }
    }

    fn into_domain(self) -> DbResult<LogAggregate> {
        Ok(LogAggregate {
            id: AggregateId::from_uuid(self.id.0),
            org_id: OrgId::from_uuid(self.org_id.0),
            granularity: parse(&self.granularity)?,
            bucket_start: self.bucket_start.0,
            dimension: self.dimension,
            dimension_key: self.dimension_key,
            request_count: self.request_count,
            error_count: self.error_count,
            total_latency_ms: self.total_latency_ms,
            p50_ms: self.p50_ms,
            p95_ms: self.p95_ms,
            p99_ms: self.p99_ms,
            request_bytes: self.request_bytes,
            response_bytes: self.response_bytes,
            updated_at: self.updated_at.0,
        })
    }
}

/// `policies`.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::policies, check_for_backend(Backend), treat_none_as_default_value = false)]
struct PolicyRow {
    id: DbUuid,
    org_id: DbUuid,
    name: String,
    rule: DbJson,
    enabled: bool,
    source: String,
    created_at: DbTime,
    updated_at: DbTime,
}

impl PolicyRow {
    fn new(org: OrgId, new: NewPolicy, at: DbTime) -> Self {
        Self {
            id: uid(new.id),
            org_id: uid(org),
            name: new.name,
            rule: DbJson(new.rule),
            enabled: new.enabled,
            source: new.source.as_str().to_owned(),
            created_at: at,
            updated_at: at,
        }
    }

    fn into_domain(self) -> DbResult<StoredPolicy> {
        Ok(StoredPolicy {
            id: PolicyId::from_uuid(self.id.0),
            org_id: OrgId::from_uuid(self.org_id.0),
            name: self.name,
            rule: self.rule.0,
            enabled: self.enabled,
            source: parse(&self.source)?,
            created_at: self.created_at.0,
            updated_at: self.updated_at.0,
        })
    }
}

#[derive(AsChangeset)]
#[diesel(table_name = schema::policies)]
struct PolicyChanges {
    name: Option<String>,
    rule: Option<DbJson>,
    enabled: Option<bool>,
    updated_at: DbTime,
}

impl PolicyChanges {
    fn new(patch: PolicyPatch, at: DbTime) -> Self {
        Self { name: patch.name, rule: patch.rule.map(DbJson), enabled: patch.enabled, updated_at: at }
    }
}

/// `rate_limits`.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::rate_limits, check_for_backend(Backend), treat_none_as_default_value = false)]
struct RateLimitRow {
    id: DbUuid,
    org_id: DbUuid,
    name: String,
    scope: String,
    match_value: Option<String>,
    limit_count: i32,
    window_seconds: i32,
    enabled: bool,
    created_at: DbTime,
    updated_at: DbTime,
}

impl RateLimitRow {
    fn new(org: OrgId, new: NewRateLimitRule, at: DbTime) -> Self {
        Self {
            id: uid(RateLimitId::new()),
            org_id: uid(org),
            name: new.name,
            scope: new.scope.as_str().to_owned(),
            match_value: new.match_value,
            limit_count: new.limit_count,
            window_seconds: new.window_seconds,
            enabled: new.enabled,
            created_at: at,
            updated_at: at,
        }
    }

    fn into_domain(self) -> DbResult<RateLimitRule> {
        Ok(RateLimitRule {
            id: RateLimitId::from_uuid(self.id.0),
            org_id: OrgId::from_uuid(self.org_id.0),
            name: self.name,
            scope: parse(&self.scope)?,
            match_value: self.match_value,
            limit_count: self.limit_count,
            window_seconds: self.window_seconds,
            enabled: self.enabled,
            created_at: self.created_at.0,
            updated_at: self.updated_at.0,
        })
    }
}

#[derive(AsChangeset)]
#[diesel(table_name = schema::rate_limits)]
struct RateLimitChanges {
    name: Option<String>,
    match_value: Option<Option<String>>,
    limit_count: Option<i32>,
    window_seconds: Option<i32>,
    enabled: Option<bool>,
    updated_at: DbTime,
}

impl RateLimitChanges {
    fn new(patch: RateLimitRulePatch, at: DbTime) -> Self {
        Self {
            name: patch.name,
            match_value: patch.match_value,
            limit_count: patch.limit_count,
            window_seconds: patch.window_seconds,
            enabled: patch.enabled,
            updated_at: at,
        }
    }
}

/// `rate_limit_usage`.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::rate_limit_usage, check_for_backend(Backend), treat_none_as_default_value = false)]
struct UsageRow {
    id: DbUuid,
    org_id: DbUuid,
    rate_limit_id: Option<DbUuid>,
    rule_key: String,
    window_start: DbTime,
    allowed_count: i64,
    rejected_count: i64,
    updated_at: DbTime,
}

impl UsageRow {
    fn into_domain(self) -> RateLimitUsage {
        RateLimitUsage {
            org_id: OrgId::from_uuid(self.org_id.0),
            rate_limit_id: self.rate_limit_id.map(|r| RateLimitId::from_uuid(r.0)),
            rule_key: self.rule_key,
            window_start: self.window_start.0,
            allowed_count: self.allowed_count,
            rejected_count: self.rejected_count,
        }
    }
}

/// `health_checks`.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::health_checks, check_for_backend(Backend), treat_none_as_default_value = false)]
struct HealthCheckRow {
    id: DbUuid,
    org_id: DbUuid,
    server_id: DbUuid,
    status: String,
    latency_ms: Option<i32>,
    error: Option<String>,
    checked_at: DbTime,
}

impl HealthCheckRow {
    fn new(org: OrgId, new: NewHealthCheck) -> Self {
        Self {
            id: uid(HealthCheckId::new()),
            org_id: uid(org),
            server_id: uid(new.server_id),
            status: new.status.as_str().to_owned(),
            latency_ms: new.latency_ms,
            error: new.error,
            checked_at: ts(new.checked_at),
        }
    }

    fn into_domain(self) -> DbResult<HealthCheck> {
        Ok(HealthCheck {
            id: HealthCheckId::from_uuid(self.id.0),
            org_id: OrgId::from_uuid(self.org_id.0),
            server_id: ServerId::from_uuid(self.server_id.0),
            status: parse(&self.status)?,
            latency_ms: self.latency_ms,
            error: self.error,
            checked_at: self.checked_at.0,
        })
    }
}

/// `server_stats`.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = schema::server_stats, check_for_backend(Backend), treat_none_as_default_value = false)]
struct ServerStatsRow {
    server_id: DbUuid,
    org_id: DbUuid,
    total_requests: i64,
    total_errors: i64,
    total_latency_ms: i64,
    consecutive_failures: i32,
    last_request_at: Option<DbTime>,
    last_error_at: Option<DbTime>,
    updated_at: DbTime,
    rolled_up_to: Option<DbTime>,
}

impl ServerStatsRow {
    fn into_domain(self) -> ServerStats {
        ServerStats {
            server_id: ServerId::from_uuid(self.server_id.0),
            org_id: OrgId::from_uuid(self.org_id.0),
            total_requests: self.total_requests,
            total_errors: self.total_errors,
            total_latency_ms: self.total_latency_ms,
            consecutive_failures: self.consecutive_failures,
            last_request_at: self.last_request_at.map(|t| t.0),
            last_error_at: self.last_error_at.map(|t| t.0),
            updated_at: self.updated_at.0,
        }
    }
}

/// `change_log`, as read.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = schema::change_log, check_for_backend(Backend))]
struct ChangeRow {
    id: i64,
    org_id: DbUuid,
    kind: String,
    entity_id: String,
    op: String,
    created_at: DbTime,
}

impl ChangeRow {
    fn into_domain(self) -> ChangeEntry {
        ChangeEntry {
            id: self.id,
            org_id: OrgId::from_uuid(self.org_id.0),
            kind: self.kind,
            entity_id: self.entity_id,
            op: self.op,
            created_at: self.created_at.0,
        }
    }
}

/// `change_log`, as written (the id is assigned by the database).
#[derive(Insertable)]
#[diesel(table_name = schema::change_log)]
struct NewChangeRow<'a> {
    org_id: DbUuid,
    kind: &'a str,
    entity_id: String,
    op: &'a str,
    created_at: DbTime,
}

/// `server_catalogs`.
#[derive(Clone, Debug, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = schema::server_catalogs, check_for_backend(Backend), treat_none_as_default_value = false)]
struct CatalogRow {
    server_id: DbUuid,
    org_id: DbUuid,
    protocol_version: Option<String>,
    server_info: Option<DbJson>,
    capabilities: Option<DbJson>,
    instructions: Option<String>,
    tools: DbJson,
    resources: DbJson,
    resource_templates: DbJson,
    prompts: DbJson,
    fingerprint: Option<String>,
    pins: DbJson,
    changes: DbJson,
    refreshed_at: Option<DbTime>,
    last_error: Option<String>,
    attempted_at: DbTime,
}

fn json_of<T: serde::Serialize>(value: &T) -> DbResult<DbJson> {
    serde_json::to_value(value)
        .map(DbJson)
        .map_err(|e| DbError::Corrupt(Box::new(e)))
}

fn json_from<T: serde::de::DeserializeOwned>(value: DbJson) -> DbResult<T> {
    serde_json::from_value(value.0).map_err(|e| DbError::Corrupt(Box::new(e)))
}

impl CatalogRow {
    fn new(org: OrgId, c: ServerCatalog) -> DbResult<Self> {
        Ok(Self {
            server_id: uid(c.server_id),
            org_id: uid(org),
            protocol_version: c.protocol_version,
            server_info: c.server_info.map(DbJson),
            capabilities: c.capabilities.map(DbJson),
            instructions: c.instructions,
            tools: DbJson(serde_json::Value::Array(c.tools)),
            resources: DbJson(serde_json::Value::Array(c.resources)),
            resource_templates: DbJson(serde_json::Value::Array(c.resource_templates)),
            prompts: DbJson(serde_json::Value::Array(c.prompts)),
            fingerprint: c.fingerprint,
            pins: json_of(&c.pins)?,
            changes: json_of(&c.changes)?,
            refreshed_at: c.refreshed_at.map(ts),
            last_error: c.last_error,
            attempted_at: ts(c.attempted_at),
        })
    }

    fn into_domain(self) -> DbResult<ServerCatalog> {
        Ok(ServerCatalog {
            org_id: OrgId::from_uuid(self.org_id.0),
            server_id: ServerId::from_uuid(self.server_id.0),
            protocol_version: self.protocol_version,
            server_info: self.server_info.map(|j| j.0),
            capabilities: self.capabilities.map(|j| j.0),
            instructions: self.instructions,
            tools: json_from(self.tools)?,
            resources: json_from(self.resources)?,
            resource_templates: json_from(self.resource_templates)?,
            prompts: json_from(self.prompts)?,
            fingerprint: self.fingerprint,
            pins: json_from(self.pins)?,
            changes: json_from(self.changes)?,
            refreshed_at: self.refreshed_at.map(|t| t.0),
            last_error: self.last_error,
            attempted_at: self.attempted_at.0,
        })
    }
}
