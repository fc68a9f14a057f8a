//! Integration tests of gateway-auth.
#![expect(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod oidc;
