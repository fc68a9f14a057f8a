CREATE TABLE rate_limits (
    id             TEXT NOT NULL PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    scope          TEXT NOT NULL,
    match_value    TEXT,
    limit_count    INTEGER NOT NULL,
    window_seconds INTEGER NOT NULL,
    enabled        BOOLEAN NOT NULL DEFAULT TRUE,
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL,
    UNIQUE (org_id, name)
);
CREATE INDEX rate_limits_org_id_idx ON rate_limits (org_id);

CREATE TABLE rate_limit_usage (
    id             TEXT NOT NULL PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    rate_limit_id  TEXT REFERENCES rate_limits (id) ON DELETE CASCADE,
    rule_key       TEXT NOT NULL,
    window_start   TIMESTAMP NOT NULL,
    allowed_count  BIGINT NOT NULL,
    rejected_count BIGINT NOT NULL,
    updated_at     TIMESTAMP NOT NULL,
    UNIQUE (org_id, rule_key, window_start)
);
CREATE INDEX rate_limit_usage_org_id_idx ON rate_limit_usage (org_id);
