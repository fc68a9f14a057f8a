// @generated automatically by Diesel CLI.

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        org_id -> Uuid,
        user_id -> Nullable<Uuid>,
        key_type -> Text,
        name -> Text,
        prefix -> Text,
        key_hash -> Text,
        namespace_id -> Nullable<Uuid>,
        permissions -> Jsonb,
        expires_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    audit_chain_heads (org_id) {
        org_id -> Uuid,
        last_seq -> Int8,
        last_hash -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    audit_logs (id) {
        id -> Uuid,
        org_id -> Uuid,
        seq -> Int8,
        actor_type -> Text,
        actor_id -> Nullable<Text>,
        action -> Text,
        target_type -> Nullable<Text>,
        target_id -> Nullable<Text>,
        before_state -> Nullable<Jsonb>,
        after_state -> Nullable<Jsonb>,
        ip -> Nullable<Text>,
        request_id -> Nullable<Text>,
        prev_hash -> Text,
        hash -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    change_log (id) {
        id -> Int8,
        org_id -> Uuid,
        kind -> Text,
        entity_id -> Text,
        op -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    health_checks (id) {
        id -> Uuid,
        org_id -> Uuid,
        server_id -> Uuid,
        status -> Text,
        latency_ms -> Nullable<Int4>,
        error -> Nullable<Text>,
        checked_at -> Timestamptz,
    }
}

diesel::table! {
    log_aggregates (id) {
        id -> Uuid,
        org_id -> Uuid,
        granularity -> Text,
        bucket_start -> Timestamptz,
        dimension -> Text,
        dimension_key -> Text,
        request_count -> Int8,
        error_count -> Int8,
        total_latency_ms -> Int8,
        p50_ms -> Nullable<Int4>,
        p95_ms -> Nullable<Int4>,
        p99_ms -> Nullable<Int4>,
        request_bytes -> Int8,
        response_bytes -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    log_index (id) {
        id -> Uuid,
        org_id -> Uuid,
        namespace_id -> Nullable<Uuid>,
        server_id -> Nullable<Uuid>,
        principal_type -> Nullable<Text>,
        principal_id -> Nullable<Text>,
        transport -> Text,
        protocol_era -> Nullable<Text>,
        method -> Text,
        name -> Nullable<Text>,
        status -> Text,
        http_status -> Nullable<Int4>,
        error_code -> Nullable<Int4>,
        latency_ms -> Int4,
        request_bytes -> Int8,
        response_bytes -> Int8,
        client_ip -> Nullable<Text>,
        request_id -> Nullable<Text>,
        trace_id -> Nullable<Text>,
        body_ref -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    mcp_servers (id) {
        id -> Uuid,
        org_id -> Uuid,
        namespace_id -> Nullable<Uuid>,
        name -> Text,
        description -> Nullable<Text>,
        protocol -> Text,
        url -> Nullable<Text>,
        command -> Nullable<Text>,
        args -> Jsonb,
        environment -> Nullable<Text>,
        credentials -> Nullable<Text>,
        working_dir -> Nullable<Text>,
        timeout_seconds -> Int4,
        max_retries -> Int4,
        status -> Text,
        health_check_url -> Nullable<Text>,
        tags -> Jsonb,
        metadata -> Jsonb,
        source -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    mcp_sessions (id) {
        id -> Uuid,
        org_id -> Uuid,
        server_id -> Nullable<Uuid>,
        namespace_id -> Nullable<Uuid>,
        user_id -> Nullable<Uuid>,
        api_key_id -> Nullable<Uuid>,
        status -> Text,
        protocol -> Text,
        protocol_version -> Nullable<Text>,
        client_info -> Nullable<Jsonb>,
        process_pid -> Nullable<Int4>,
        process_status -> Nullable<Text>,
        exit_code -> Nullable<Int4>,
        created_at -> Timestamptz,
        last_activity_at -> Timestamptz,
        closed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    namespaces (id) {
        id -> Uuid,
        org_id -> Uuid,
        name -> Text,
        slug -> Text,
        description -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        source -> Text,
    }
}

diesel::table! {
    organizations (id) {
        id -> Uuid,
        name -> Text,
        slug -> Text,
        plan -> Text,
        max_servers -> Int4,
        max_sessions -> Int4,
        log_retention_days -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    policies (id) {
        id -> Uuid,
        org_id -> Uuid,
        name -> Text,
        rule -> Jsonb,
        enabled -> Bool,
        source -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    rate_limit_usage (id) {
        id -> Uuid,
        org_id -> Uuid,
        rate_limit_id -> Nullable<Uuid>,
        rule_key -> Text,
        window_start -> Timestamptz,
        allowed_count -> Int8,
        rejected_count -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    rate_limits (id) {
        id -> Uuid,
        org_id -> Uuid,
        name -> Text,
        scope -> Text,
        match_value -> Nullable<Text>,
        limit_count -> Int4,
        window_seconds -> Int4,
        enabled -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Uuid,
        org_id -> Uuid,
        user_id -> Uuid,
        family_id -> Uuid,
        token_hash -> Text,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        replaced_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    server_catalogs (server_id) {
        server_id -> Uuid,
        org_id -> Uuid,
        protocol_version -> Nullable<Text>,
        server_info -> Nullable<Jsonb>,
        capabilities -> Nullable<Jsonb>,
        instructions -> Nullable<Text>,
        tools -> Jsonb,
        resources -> Jsonb,
        resource_templates -> Jsonb,
        prompts -> Jsonb,
        fingerprint -> Nullable<Text>,
        pins -> Jsonb,
        changes -> Jsonb,
        refreshed_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        attempted_at -> Timestamptz,
    }
}

diesel::table! {
    server_stats (server_id) {
        server_id -> Uuid,
        org_id -> Uuid,
        total_requests -> Int8,
        total_errors -> Int8,
        total_latency_ms -> Int8,
        consecutive_failures -> Int4,
        last_request_at -> Nullable<Timestamptz>,
        last_error_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
        rolled_up_to -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        org_id -> Uuid,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        role -> Text,
        is_active -> Bool,
        failed_logins -> Int4,
        locked_until -> Nullable<Timestamptz>,
        last_login_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    virtual_servers (id) {
        id -> Uuid,
        org_id -> Uuid,
        namespace_id -> Nullable<Uuid>,
        name -> Text,
        description -> Nullable<Text>,
        adapter_type -> Text,
        endpoint_url -> Nullable<Text>,
        config -> Jsonb,
        tools -> Jsonb,
        credentials -> Nullable<Text>,
        status -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(api_keys -> namespaces (namespace_id));
diesel::joinable!(api_keys -> organizations (org_id));
diesel::joinable!(api_keys -> users (user_id));
diesel::joinable!(audit_chain_heads -> organizations (org_id));
diesel::joinable!(audit_logs -> organizations (org_id));
diesel::joinable!(health_checks -> mcp_servers (server_id));
diesel::joinable!(health_checks -> organizations (org_id));
diesel::joinable!(log_aggregates -> organizations (org_id));
diesel::joinable!(log_index -> organizations (org_id));
diesel::joinable!(mcp_servers -> namespaces (namespace_id));
diesel::joinable!(mcp_servers -> organizations (org_id));
diesel::joinable!(mcp_sessions -> api_keys (api_key_id));
diesel::joinable!(mcp_sessions -> mcp_servers (server_id));
diesel::joinable!(mcp_sessions -> namespaces (namespace_id));
diesel::joinable!(mcp_sessions -> organizations (org_id));
diesel::joinable!(mcp_sessions -> users (user_id));
diesel::joinable!(namespaces -> organizations (org_id));
diesel::joinable!(policies -> organizations (org_id));
diesel::joinable!(rate_limit_usage -> organizations (org_id));
diesel::joinable!(rate_limit_usage -> rate_limits (rate_limit_id));
diesel::joinable!(rate_limits -> organizations (org_id));
diesel::joinable!(refresh_tokens -> organizations (org_id));
diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(server_catalogs -> mcp_servers (server_id));
diesel::joinable!(server_catalogs -> organizations (org_id));
diesel::joinable!(server_stats -> mcp_servers (server_id));
diesel::joinable!(server_stats -> organizations (org_id));
diesel::joinable!(users -> organizations (org_id));
diesel::joinable!(virtual_servers -> namespaces (namespace_id));
diesel::joinable!(virtual_servers -> organizations (org_id));

diesel::allow_tables_to_appear_in_same_query!(
    api_keys,
    audit_chain_heads,
    audit_logs,
    change_log,
    health_checks,
    log_aggregates,
    log_index,
    mcp_servers,
    mcp_sessions,
    namespaces,
    organizations,
    policies,
    rate_limit_usage,
    rate_limits,
    refresh_tokens,
    server_catalogs,
    server_stats,
    users,
    virtual_servers,
);
