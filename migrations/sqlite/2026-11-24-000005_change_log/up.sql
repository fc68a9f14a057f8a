-- Every admin write appends here in its own transaction; every process polls `id > last seen`.
-- No foreign key on org_id: the record of an organization's deletion must outlive it.
CREATE TABLE change_log (
    id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    org_id     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    entity_id  TEXT NOT NULL,
    op         TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX change_log_org_id_idx ON change_log (org_id);
