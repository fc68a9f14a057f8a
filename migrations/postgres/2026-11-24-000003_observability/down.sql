DROP TABLE log_aggregates;
DROP TABLE log_index;
DROP TABLE audit_chain_heads;
DROP TABLE audit_logs;
