DROP TABLE rate_limit_usage;
DROP TABLE rate_limits;
