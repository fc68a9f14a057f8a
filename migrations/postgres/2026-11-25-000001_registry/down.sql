ALTER TABLE server_stats DROP COLUMN rolled_up_to;
ALTER TABLE namespaces DROP COLUMN source;
