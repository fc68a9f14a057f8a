-- Audit trail (hash-chained per organization), request-log index and rollups.
CREATE TABLE audit_logs (
    id           TEXT NOT NULL PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    actor_type   TEXT NOT NULL,
    actor_id     TEXT,
    action       TEXT NOT NULL,
    target_type  TEXT,
    target_id    TEXT,
    before_state TEXT,
    after_state  TEXT,
    ip           TEXT,
    request_id   TEXT,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    UNIQUE (org_id, seq)
);
CREATE INDEX audit_logs_org_created_idx ON audit_logs (org_id, created_at);

-- One row per organization, locked (SELECT ... FOR UPDATE) while appending so the chain never forks.
CREATE TABLE audit_chain_heads (
    org_id     TEXT NOT NULL PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    last_seq   BIGINT NOT NULL,
    last_hash  TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE log_index (
    id             TEXT NOT NULL PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    namespace_id   TEXT,
    server_id      TEXT,
    principal_type TEXT,
    principal_id   TEXT,
    transport      TEXT NOT NULL,
    protocol_era   TEXT,
    method         TEXT NOT NULL,
    name           TEXT,
    status         TEXT NOT NULL,
    http_status    INTEGER,
    error_code     INTEGER,
    latency_ms     INTEGER NOT NULL,
    request_bytes  BIGINT NOT NULL,
    response_bytes BIGINT NOT NULL,
    client_ip      TEXT,
    request_id     TEXT,
    trace_id       TEXT,
    body_ref       TEXT,
    created_at     TIMESTAMP NOT NULL
);
CREATE INDEX log_index_org_created_idx ON log_index (org_id, created_at);
CREATE INDEX log_index_server_created_idx ON log_index (server_id, created_at);

CREATE TABLE log_aggregates (
    id               TEXT NOT NULL PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    granularity      TEXT NOT NULL,
    bucket_start     TIMESTAMP NOT NULL,
    dimension        TEXT NOT NULL,
    dimension_key    TEXT NOT NULL,
    request_count    BIGINT NOT NULL,
    error_count      BIGINT NOT NULL,
    total_latency_ms BIGINT NOT NULL,
    p50_ms           INTEGER,
    p95_ms           INTEGER,
    p99_ms           INTEGER,
    request_bytes    BIGINT NOT NULL,
    response_bytes   BIGINT NOT NULL,
    updated_at       TIMESTAMP NOT NULL,
    UNIQUE (org_id, granularity, bucket_start, dimension, dimension_key)
);
CREATE INDEX log_aggregates_org_bucket_idx ON log_aggregates (org_id, granularity, bucket_start);
