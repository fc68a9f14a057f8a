-- Capability discovery: each server's catalog (what it offers, as last discovered), its pinned tool
-- definitions and the changes detected against them. One row per server.
CREATE TABLE server_catalogs (
    server_id          TEXT NOT NULL PRIMARY KEY REFERENCES mcp_servers (id) ON DELETE CASCADE,
    org_id             TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    protocol_version   TEXT,
    server_info        TEXT,
    capabilities       TEXT,
    instructions       TEXT,
    tools              TEXT NOT NULL,
    resources          TEXT NOT NULL,
    resource_templates TEXT NOT NULL,
    prompts            TEXT NOT NULL,
    fingerprint        TEXT,
    pins               TEXT NOT NULL,
    changes            TEXT NOT NULL,
    refreshed_at       TIMESTAMP,
    last_error         TEXT,
    attempted_at       TIMESTAMP NOT NULL
);
CREATE INDEX server_catalogs_org_idx ON server_catalogs (org_id);
