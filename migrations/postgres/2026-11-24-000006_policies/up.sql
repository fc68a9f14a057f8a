-- Access policy rules managed through the API. The rule document (effect, subjects, resources,
-- actions, conditions) is JSON owned by the policy engine; name is indexed for uniqueness.
CREATE TABLE policies (
    id         UUID PRIMARY KEY,
    org_id     UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    rule       JSONB NOT NULL,
    enabled    BOOLEAN NOT NULL DEFAULT TRUE,
    source     TEXT NOT NULL DEFAULT 'api',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (org_id, name)
);
CREATE INDEX policies_org_id_idx ON policies (org_id);
