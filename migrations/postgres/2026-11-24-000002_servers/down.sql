DROP TABLE server_stats;
DROP TABLE health_checks;
DROP TABLE mcp_sessions;
DROP TABLE virtual_servers;
DROP TABLE mcp_servers;
