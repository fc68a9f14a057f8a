-- Capability discovery: each server's catalog (what it offers, as last discovered), its pinned tool
-- definitions and the changes detected against them. One row per server.
CREATE TABLE server_catalogs (
    server_id          UUID PRIMARY KEY REFERENCES mcp_servers (id) ON DELETE CASCADE,
    org_id             UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    protocol_version   TEXT,
    server_info        JSONB,
    capabilities       JSONB,
    instructions       TEXT,
    tools              JSONB NOT NULL,
    resources          JSONB NOT NULL,
    resource_templates JSONB NOT NULL,
    prompts            JSONB NOT NULL,
    fingerprint        TEXT,
    pins               JSONB NOT NULL,
    changes            JSONB NOT NULL,
    refreshed_at       TIMESTAMPTZ,
    last_error         TEXT,
    attempted_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX server_catalogs_org_idx ON server_catalogs (org_id);
