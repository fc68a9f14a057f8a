//! # gateway-auth
//!
//! Will own authentication and authorization for the MCP Gateway (issue 4): bcrypt password
//! hashing and policy, HS256/RS256/EdDSA access tokens with key rotation, refresh-token
//! rotation with reuse detection, API keys (stored as SHA-256 hashes, batched `last_used_at`),
//! app-to-app tokens, external OIDC issuers, role-based access control and the policy engine.
//!
//! Depends only on `gateway-types`: no HTTP framework, no database driver. Storage comes in
//! through the traits of `gateway_types::store`.
