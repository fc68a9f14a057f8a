-- MCP servers, virtual servers, client sessions, health.
-- environment and credentials hold AES-256-GCM ciphertext ("<key id>:<base64>"), never plain text.
CREATE TABLE mcp_servers (
    id               UUID PRIMARY KEY,
    org_id           UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    namespace_id     UUID REFERENCES namespaces (id) ON DELETE SET NULL,
    name             TEXT NOT NULL,
    description      TEXT,
    protocol         TEXT NOT NULL,
    url              TEXT,
    command          TEXT,
    args             JSONB NOT NULL,
    environment      TEXT,
    credentials      TEXT,
    working_dir      TEXT,
    timeout_seconds  INTEGER NOT NULL,
    max_retries      INTEGER NOT NULL,
    status           TEXT NOT NULL,
    health_check_url TEXT,
    tags             JSONB NOT NULL,
    metadata         JSONB NOT NULL,
    source           TEXT NOT NULL DEFAULT 'api',
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    UNIQUE (org_id, name)
);
CREATE INDEX mcp_servers_org_id_idx ON mcp_servers (org_id);
CREATE INDEX mcp_servers_namespace_id_idx ON mcp_servers (namespace_id);

CREATE TABLE virtual_servers (
    id           UUID PRIMARY KEY,
    org_id       UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    namespace_id UUID REFERENCES namespaces (id) ON DELETE SET NULL,
    name         TEXT NOT NULL,
    description  TEXT,
    adapter_type TEXT NOT NULL,
    endpoint_url TEXT,
    config       JSONB NOT NULL,
    tools        JSONB NOT NULL,
    credentials  TEXT,
    status       TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (org_id, name)
);
CREATE INDEX virtual_servers_org_id_idx ON virtual_servers (org_id);

CREATE TABLE mcp_sessions (
    id               UUID PRIMARY KEY,
    org_id           UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    server_id        UUID REFERENCES mcp_servers (id) ON DELETE SET NULL,
    namespace_id     UUID REFERENCES namespaces (id) ON DELETE SET NULL,
    user_id          UUID REFERENCES users (id) ON DELETE SET NULL,
    api_key_id       UUID REFERENCES api_keys (id) ON DELETE SET NULL,
    status           TEXT NOT NULL,
    protocol         TEXT NOT NULL,
    protocol_version TEXT,
    client_info      JSONB,
    process_pid      INTEGER,
    process_status   TEXT,
    exit_code        INTEGER,
    created_at       TIMESTAMPTZ NOT NULL,
    last_activity_at TIMESTAMPTZ NOT NULL,
    closed_at        TIMESTAMPTZ
);
CREATE INDEX mcp_sessions_org_id_idx ON mcp_sessions (org_id);
CREATE INDEX mcp_sessions_server_id_idx ON mcp_sessions (server_id);

CREATE TABLE health_checks (
    id         UUID PRIMARY KEY,
    org_id     UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    server_id  UUID NOT NULL REFERENCES mcp_servers (id) ON DELETE CASCADE,
    status     TEXT NOT NULL,
    latency_ms INTEGER,
    error      TEXT,
    checked_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX health_checks_org_id_idx ON health_checks (org_id);
CREATE INDEX health_checks_server_checked_idx ON health_checks (server_id, checked_at);

CREATE TABLE server_stats (
    server_id            UUID PRIMARY KEY REFERENCES mcp_servers (id) ON DELETE CASCADE,
    org_id               UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    total_requests       BIGINT NOT NULL DEFAULT 0,
    total_errors         BIGINT NOT NULL DEFAULT 0,
    total_latency_ms     BIGINT NOT NULL DEFAULT 0,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_request_at      TIMESTAMPTZ,
    last_error_at        TIMESTAMPTZ,
    updated_at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX server_stats_org_id_idx ON server_stats (org_id);
