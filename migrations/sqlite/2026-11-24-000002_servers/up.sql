-- MCP servers, virtual servers, client sessions, health.
-- environment and credentials hold AES-256-GCM ciphertext ("<key id>:<base64>"), never plain text.
CREATE TABLE mcp_servers (
    id               TEXT NOT NULL PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    namespace_id     TEXT REFERENCES namespaces (id) ON DELETE SET NULL,
    name             TEXT NOT NULL,
    description      TEXT,
    protocol         TEXT NOT NULL,
    url              TEXT,
    command          TEXT,
    args             TEXT NOT NULL,
    environment      TEXT,
    credentials      TEXT,
    working_dir      TEXT,
    timeout_seconds  INTEGER NOT NULL,
    max_retries      INTEGER NOT NULL,
    status           TEXT NOT NULL,
    health_check_url TEXT,
    tags             TEXT NOT NULL,
    metadata         TEXT NOT NULL,
    source           TEXT NOT NULL DEFAULT 'api',
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL,
    UNIQUE (org_id, name)
);
CREATE INDEX mcp_servers_org_id_idx ON mcp_servers (org_id);
CREATE INDEX mcp_servers_namespace_id_idx ON mcp_servers (namespace_id);

CREATE TABLE virtual_servers (
    id           TEXT NOT NULL PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    namespace_id TEXT REFERENCES namespaces (id) ON DELETE SET NULL,
    name         TEXT NOT NULL,
    description  TEXT,
    adapter_type TEXT NOT NULL,
    endpoint_url TEXT,
    config       TEXT NOT NULL,
    tools        TEXT NOT NULL,
    credentials  TEXT,
    status       TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    UNIQUE (org_id, name)
);
CREATE INDEX virtual_servers_org_id_idx ON virtual_servers (org_id);

CREATE TABLE mcp_sessions (
    id               TEXT NOT NULL PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    server_id        TEXT REFERENCES mcp_servers (id) ON DELETE SET NULL,
    namespace_id     TEXT REFERENCES namespaces (id) ON DELETE SET NULL,
    user_id          TEXT REFERENCES users (id) ON DELETE SET NULL,
    api_key_id       TEXT REFERENCES api_keys (id) ON DELETE SET NULL,
    status           TEXT NOT NULL,
    protocol         TEXT NOT NULL,
    protocol_version TEXT,
    client_info      TEXT,
    process_pid      INTEGER,
    process_status   TEXT,
    exit_code        INTEGER,
    created_at       TIMESTAMP NOT NULL,
    last_activity_at TIMESTAMP NOT NULL,
    closed_at        TIMESTAMP
);
CREATE INDEX mcp_sessions_org_id_idx ON mcp_sessions (org_id);
CREATE INDEX mcp_sessions_server_id_idx ON mcp_sessions (server_id);

CREATE TABLE health_checks (
    id         TEXT NOT NULL PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    server_id  TEXT NOT NULL REFERENCES mcp_servers (id) ON DELETE CASCADE,
    status     TEXT NOT NULL,
    latency_ms INTEGER,
    error      TEXT,
    checked_at TIMESTAMP NOT NULL
);
CREATE INDEX health_checks_org_id_idx ON health_checks (org_id);
CREATE INDEX health_checks_server_checked_idx ON health_checks (server_id, checked_at);

CREATE TABLE server_stats (
    server_id            TEXT NOT NULL PRIMARY KEY REFERENCES mcp_servers (id) ON DELETE CASCADE,
    org_id               TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    total_requests       BIGINT NOT NULL DEFAULT 0,
    total_errors         BIGINT NOT NULL DEFAULT 0,
    total_latency_ms     BIGINT NOT NULL DEFAULT 0,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_request_at      TIMESTAMP,
    last_error_at        TIMESTAMP,
    updated_at           TIMESTAMP NOT NULL
);
CREATE INDEX server_stats_org_id_idx ON server_stats (org_id);
