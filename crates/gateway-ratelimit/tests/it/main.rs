//! Integration tests of gateway-ratelimit.
