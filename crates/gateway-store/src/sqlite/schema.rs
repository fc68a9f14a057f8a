// @generated automatically by Diesel CLI.

diesel::table! {
    api_keys (id) {
        id -> Text,
        org_id -> Text,
        user_id -> Nullable<Text>,
        key_type -> Text,
        name -> Text,
        prefix -> Text,
        key_hash -> Text,
        namespace_id -> Nullable<Text>,
        permissions -> Text,
        expires_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    audit_chain_heads (org_id) {
        org_id -> Text,
        last_seq -> BigInt,
        last_hash -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    audit_logs (id) {
        id -> Text,
        org_id -> Text,
        seq -> BigInt,
        actor_type -> Text,
        actor_id -> Nullable<Text>,
        action -> Text,
        target_type -> Nullable<Text>,
        target_id -> Nullable<Text>,
        before_state -> Nullable<Text>,
        after_state -> Nullable<Text>,
        ip -> Nullable<Text>,
        request_id -> Nullable<Text>,
        prev_hash -> Text,
        hash -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    change_log (id) {
        id -> BigInt,
        org_id -> Text,
        kind -> Text,
        entity_id -> Text,
        op -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    health_checks (id) {
        id -> Text,
        org_id -> Text,
        server_id -> Text,
        status -> Text,
        latency_ms -> Nullable<Integer>,
        error -> Nullable<Text>,
        checked_at -> Timestamp,
    }
}

diesel::table! {
    log_aggregates (id) {
        id -> Text,
        org_id -> Text,
        granularity -> Text,
        bucket_start -> Timestamp,
        dimension -> Text,
        dimension_key -> Text,
        request_count -> BigInt,
        error_count -> BigInt,
        total_latency_ms -> BigInt,
        p50_ms -> Nullable<Integer>,
        p95_ms -> Nullable<Integer>,
        p99_ms -> Nullable<Integer>,
        request_bytes -> BigInt,
        response_bytes -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    log_index (id) {
        id -> Text,
        org_id -> Text,
        namespace_id -> Nullable<Text>,
        server_id -> Nullable<Text>,
        principal_type -> Nullable<Text>,
        principal_id -> Nullable<Text>,
        transport -> Text,
        protocol_era -> Nullable<Text>,
        method -> Text,
        name -> Nullable<Text>,
        status -> Text,
        http_status -> Nullable<Integer>,
        error_code -> Nullable<Integer>,
        latency_ms -> Integer,
        request_bytes -> BigInt,
        response_bytes -> BigInt,
        client_ip -> Nullable<Text>,
        request_id -> Nullable<Text>,
        trace_id -> Nullable<Text>,
        body_ref -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    mcp_servers (id) {
        id -> Text,
        org_id -> Text,
        namespace_id -> Nullable<Text>,
        name -> Text,
        description -> Nullable<Text>,
        protocol -> Text,
        url -> Nullable<Text>,
        command -> Nullable<Text>,
        args -> Text,
        environment -> Nullable<Text>,
        credentials -> Nullable<Text>,
        working_dir -> Nullable<Text>,
        timeout_seconds -> Integer,
        max_retries -> Integer,
        status -> Text,
        health_check_url -> Nullable<Text>,
        tags -> Text,
        metadata -> Text,
        source -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    mcp_sessions (id) {
        id -> Text,
        org_id -> Text,
        server_id -> Nullable<Text>,
        namespace_id -> Nullable<Text>,
        user_id -> Nullable<Text>,
        api_key_id -> Nullable<Text>,
        status -> Text,
        protocol -> Text,
        protocol_version -> Nullable<Text>,
        client_info -> Nullable<Text>,
        process_pid -> Nullable<Integer>,
        process_status -> Nullable<Text>,
        exit_code -> Nullable<Integer>,
        created_at -> Timestamp,
        last_activity_at -> Timestamp,
        closed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    namespaces (id) {
        id -> Text,
        org_id -> Text,
        name -> Text,
        slug -> Text,
        description -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        source -> Text,
    }
}

diesel::table! {
    organizations (id) {
        id -> Text,
        name -> Text,
        slug -> Text,
        plan -> Text,
        max_servers -> Integer,
        max_sessions -> Integer,
        log_retention_days -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    policies (id) {
        id -> Text,
        org_id -> Text,
        name -> Text,
        rule -> Text,
        enabled -> Bool,
        source -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    rate_limit_usage (id) {
        id -> Text,
        org_id -> Text,
        rate_limit_id -> Nullable<Text>,
        rule_key -> Text,
        window_start -> Timestamp,
        allowed_count -> BigInt,
        rejected_count -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    rate_limits (id) {
        id -> Text,
        org_id -> Text,
        name -> Text,
        scope -> Text,
        match_value -> Nullable<Text>,
        limit_count -> Integer,
        window_seconds -> Integer,
        enabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Text,
        org_id -> Text,
        user_id -> Text,
        family_id -> Text,
        token_hash -> Text,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        replaced_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    server_catalogs (server_id) {
        server_id -> Text,
        org_id -> Text,
        protocol_version -> Nullable<Text>,
        server_info -> Nullable<Text>,
        capabilities -> Nullable<Text>,
        instructions -> Nullable<Text>,
        tools -> Text,
        resources -> Text,
        resource_templates -> Text,
        prompts -> Text,
        fingerprint -> Nullable<Text>,
        pins -> Text,
        changes -> Text,
        refreshed_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        attempted_at -> Timestamp,
    }
}

diesel::table! {
    server_stats (server_id) {
        server_id -> Text,
        org_id -> Text,
        total_requests -> BigInt,
        total_errors -> BigInt,
        total_latency_ms -> BigInt,
        consecutive_failures -> Integer,
        last_request_at -> Nullable<Timestamp>,
        last_error_at -> Nullable<Timestamp>,
        updated_at -> Timestamp,
        rolled_up_to -> Nullable<Timestamp>,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        org_id -> Text,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        role -> Text,
        is_active -> Bool,
        failed_logins -> Integer,
        locked_until -> Nullable<Timestamp>,
        last_login_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    virtual_servers (id) {
        id -> Text,
        org_id -> Text,
        namespace_id -> Nullable<Text>,
        name -> Text,
        description -> Nullable<Text>,
        adapter_type -> Text,
        endpoint_url -> Nullable<Text>,
        config -> Text,
        tools -> Text,
        credentials -> Nullable<Text>,
        status -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
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
