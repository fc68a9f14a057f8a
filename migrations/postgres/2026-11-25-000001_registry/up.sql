-- The server registry: namespaces declared in configuration are marked (and reconciled at start),
-- and each server's counters remember up to when request logs were rolled into them.
ALTER TABLE namespaces ADD COLUMN source TEXT NOT NULL DEFAULT 'api';
ALTER TABLE server_stats ADD COLUMN rolled_up_to TIMESTAMPTZ;
